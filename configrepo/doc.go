// Package configrepo reads the config repository: a Git repository, local or
// remote, whose systems/ directory declares the server's systems in YAML,
// with who hears of their alerts, and whose notifiers.yaml declares the
// channels alerts are sent through. Parse turns the files of one commit into
// systems and notifiers, or into every problem found, each as
// "file:line: message"; it is a pure function, fuzzed and table-tested
// without Git. Repo reads the newest commit with go-git and implements
// service.ConfigSource. WriteSample creates the repository the quickstart
// starts from.
package configrepo
