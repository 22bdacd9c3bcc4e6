// Package service holds Aramaki's use cases: reading and posting to the
// timeline, applying config repository commits, users, tokens and roles. It
// decides who may do what; the HTTP API, web UI and CLI only translate.
// Persistence and the config repository are reached through the small
// interfaces in ports.go.
package service
