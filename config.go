package aramaki

import "time"

// Commit describes a config repository commit.
type Commit struct {
	Hash    string    `json:"hash"`
	Author  string    `json:"author"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// ConfigSnapshot is the validated content of one config repository commit.
type ConfigSnapshot struct {
	Commit    Commit
	Systems   []System
	Notifiers []Notifier
}

// ConfigState is what the server knows about its config repository: the
// commit in force and the last commit that was refused, with why.
type ConfigState struct {
	Applied   *Commit    `json:"applied,omitempty"`
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	// Rejected is the newest commit that was refused; it is cleared when a
	// later commit applies.
	Rejected  *Commit    `json:"rejected,omitempty"`
	Errors    []string   `json:"errors,omitempty"`
	CheckedAt *time.Time `json:"checked_at,omitempty"`
}

// ConfigAppliedData is the detail of a config.applied event.
type ConfigAppliedData struct {
	Commit  Commit   `json:"commit"`
	Added   []string `json:"added,omitempty"`
	Changed []string `json:"changed,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Counts are the lengths of the lists before they were shortened.
	Counts map[string]int `json:"counts,omitempty"`
}

// ConfigRejectedData is the detail of a config.rejected event.
type ConfigRejectedData struct {
	Commit Commit   `json:"commit"`
	Errors []string `json:"errors"`
}
