// Package configrepo reads the config repository: a Git repository, local or
// remote, whose systems/ directory declares the server's systems in YAML.
// Parse turns the files of one commit into systems, or into every problem
// found, each as "file:line: message"; it is a pure function, fuzzed and
// table-tested without Git. Repo reads the newest commit with go-git and
// implements service.ConfigSource. WriteSample creates the repository the
// quickstart starts from.
package configrepo
