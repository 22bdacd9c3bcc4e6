// Package aramaki is the domain of Aramaki, a federated DevOps control plane:
// systems and the graph they form, timeline events, users, roles and the one
// error type every layer speaks. It imports nothing else of the project; the
// store, the config repository, the HTTP API and the CLI are adapters around it
// and the binaries in cmd wire them together.
package aramaki
