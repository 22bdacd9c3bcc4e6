package aramaki

import (
	"slices"
	"time"
)

// ReceivedGrant is a grant a peer holds in force for this server, as the
// peer last told it: what this server may use of the peer's systems. The
// peer's own check is the authority when this server uses it; knowing it
// here lets people see what they may ask, and be told at once when they
// ask for what no grant allows.
type ReceivedGrant struct {
	Peer    string      `json:"peer"`    // the peer that granted it
	ID      string      `json:"id"`      // the peer's id for it
	Systems []string    `json:"systems"` // as used here: storage@hoster
	Kinds   []GrantKind `json:"kinds"`
	Actions []string    `json:"actions,omitempty"`
	Until   time.Time   `json:"until"`
}

// Active reports whether the grant is in force at a time.
func (g ReceivedGrant) Active(now time.Time) bool { return now.Before(g.Until) }

// AllowsAction reports whether the grant, in force at now, lets this
// server run an action on the peer's system (storage@hoster).
func (g ReceivedGrant) AllowsAction(now time.Time, system, action string) bool {
	return g.Active(now) && slices.Contains(g.Systems, system) && slices.Contains(g.Actions, action)
}
