package wire

import (
	"regexp"
	"time"
)

// PeerGrants is the body of a grant message: every grant the origin holds
// in force for the recipient, whole, as it stands when sent. The
// recipient replaces what it knew of the origin's grants with it, so a
// revoked grant is one no longer listed, and an expired one is past its
// Until. It tells the recipient what it may use of the origin's systems —
// its own business — and nothing of other peers.
type PeerGrants struct {
	Grants []PeerGrant `json:"grants"`
}

// PeerGrant is one grant as its recipient learns of it: the origin's id
// for it, the origin's systems it covers, what it allows of them, until
// when.
type PeerGrant struct {
	ID      string    `json:"id"`
	Systems []string  `json:"systems"`
	Kinds   []string  `json:"kinds,omitempty"`   // "events", "status"
	Actions []string  `json:"actions,omitempty"` // action names
	Until   time.Time `json:"until"`
}

// Limits on a grant message.
const (
	MaxPeerGrants       = 1000 // grants in force for one peer
	MaxPeerGrantSystems = 1000 // systems of one grant
	MaxPeerGrantActions = 100  // actions of one grant
)

var peerGrantIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// DecodePeerGrants decodes and checks the body of a grant message.
func DecodePeerGrants(body []byte) (*PeerGrants, error) {
	var g PeerGrants
	if len(body) > MaxPeerBody {
		return nil, errorf("peer grants exceed %d KiB", MaxPeerBody>>10)
	}
	if err := decodeStrict(body, &g); err != nil {
		return nil, err
	}
	if g.Grants == nil {
		return nil, errorf("peer grants: the list of grants is missing (an empty list says there are none)")
	}
	if len(g.Grants) > MaxPeerGrants {
		return nil, errorf("peer grants: %d grants, more than %d", len(g.Grants), MaxPeerGrants)
	}
	ids := map[string]bool{}
	for _, gr := range g.Grants {
		switch {
		case !peerGrantIDPattern.MatchString(gr.ID):
			return nil, errorf("peer grants: %s is not a grant id", clip(gr.ID))
		case ids[gr.ID]:
			return nil, errorf("peer grants: grant %s is listed twice", gr.ID)
		case len(gr.Systems) == 0 || len(gr.Systems) > MaxPeerGrantSystems:
			return nil, errorf("peer grant %s: it must cover 1 to %d systems", gr.ID, MaxPeerGrantSystems)
		case len(gr.Actions) > MaxPeerGrantActions:
			return nil, errorf("peer grant %s: more than %d actions", gr.ID, MaxPeerGrantActions)
		case len(gr.Kinds) == 0 && len(gr.Actions) == 0:
			return nil, errorf("peer grant %s: it allows nothing", gr.ID)
		case gr.Until.IsZero() || gr.Until.Year() < 2000 || gr.Until.Year() > 9999:
			return nil, errorf("peer grant %s: no valid end time", gr.ID)
		}
		ids[gr.ID] = true
		for _, s := range gr.Systems {
			if !localSystemPattern.MatchString(s) {
				return nil, errorf("peer grant %s: %s is not a system id of the origin", gr.ID, clip(s))
			}
		}
		for _, k := range gr.Kinds {
			if k != "events" && k != "status" {
				return nil, errorf("peer grant %s: %s is not a kind a grant allows (events, status)", gr.ID, clip(k))
			}
		}
		for _, a := range gr.Actions {
			if !actionNamePattern.MatchString(a) {
				return nil, errorf("peer grant %s: %s is not an action name", gr.ID, clip(a))
			}
		}
	}
	return &g, nil
}
