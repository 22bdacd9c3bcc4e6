package service

import (
	"context"
	"time"

	"github.com/aramaki/aramaki"
)

// Store is what the service needs of persistence. Each method is one
// transaction; a method that takes an audit event appends it in the same
// transaction as the change it records, so no mutation goes unaudited.
// Errors carry aramaki error codes (ENOTFOUND, ECONFLICT, ...).
type Store interface {
	// Systems returns the systems of the config in force, ordered by id.
	Systems(ctx context.Context) ([]aramaki.System, error)
	ConfigState(ctx context.Context) (aramaki.ConfigState, error)
	// ApplyConfig replaces all systems with the snapshot's, records its
	// commit as applied (clearing a rejection) and appends ev. When that
	// commit is already the applied one it changes nothing and returns false.
	ApplyConfig(ctx context.Context, snap aramaki.ConfigSnapshot, ev aramaki.Event) (bool, error)
	// RejectConfig records a refused commit with its problems and appends ev.
	// When that commit is already recorded as rejected (or applied) it
	// changes nothing and returns false.
	RejectConfig(ctx context.Context, c aramaki.Commit, problems []string, ev aramaki.Event) (bool, error)
	// MarkConfigChecked records when the repository was last read.
	MarkConfigChecked(ctx context.Context, at time.Time) error

	// AppendEvent stores an event; an event whose id is already stored is
	// ignored and false returned.
	AppendEvent(ctx context.Context, ev aramaki.Event) (bool, error)
	Event(ctx context.Context, id string) (aramaki.Event, error)
	Timeline(ctx context.Context, q aramaki.TimelineQuery) (aramaki.TimelinePage, error)

	// Bootstrap creates the first user as a global admin with an API token,
	// in one transaction. It fails with ECONFLICT when any user exists.
	Bootstrap(ctx context.Context, name, passwordHash string, tok aramaki.Token, secretHash []byte, audit aramaki.Event) (aramaki.User, error)
	CreateUser(ctx context.Context, name, passwordHash string, audit aramaki.Event) (aramaki.User, error)
	// UserByName returns the user and the password hash.
	UserByName(ctx context.Context, name string) (aramaki.User, string, error)
	UserByID(ctx context.Context, id int64) (aramaki.User, error)
	Users(ctx context.Context) ([]aramaki.User, error)
	SetPassword(ctx context.Context, userID int64, passwordHash string, audit aramaki.Event) error

	CreateToken(ctx context.Context, t aramaki.Token, secretHash []byte, audit aramaki.Event) error
	// TokenByID returns the token and the hash of its secret.
	TokenByID(ctx context.Context, id string) (aramaki.Token, []byte, error)
	Tokens(ctx context.Context, userID int64) ([]aramaki.Token, error)
	DeleteToken(ctx context.Context, userID int64, id string, audit aramaki.Event) error

	// GrantRole adds or replaces the role of b.User on b.System.
	GrantRole(ctx context.Context, b aramaki.RoleBinding, audit aramaki.Event) error
	RevokeRole(ctx context.Context, user, system string, audit aramaki.Event) error
	// RoleBindings returns the API-granted roles of a user, or of everyone
	// when user is empty, ordered by user and system.
	RoleBindings(ctx context.Context, user string) ([]aramaki.RoleBinding, error)
}

// ConfigSource reads the config repository.
type ConfigSource interface {
	// Load fetches the newest commit and parses it. A broken commit is not
	// an error: Load returns its Commit with the list of problems (each
	// "file:line: message") and no systems. The error is for failures to
	// reach or read the repository at all.
	Load(ctx context.Context) (aramaki.ConfigSnapshot, []string, error)
}
