package wire

import (
	"maps"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"
)

// Remote actions: a server asks a peer to run an action of one of the
// peer's systems that a grant lets it run (KindAction), and the peer
// answers how the run went (KindActionResult): once it took it on or
// refused it, and when it ended. Both are outbox kinds: durable, numbered,
// replayed after a disconnect, each stored once.
//
// Both are kinds of federation protocol version 2 (2026-11-24), the first
// released. A server sends an action only when one of its users asks to
// run a peer's action.

// Limits of remote actions.
const (
	MaxPeerReason       = 1000 // bytes of the reason given for a run
	maxPeerRunResultMsg = 500  // characters of why a run was refused or ended
	maxPeerHosts        = 100000
)

var (
	peerUserPattern  = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)
	peerRunIDPattern = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)
)

// PeerAction is the body of an action message: the origin asks the
// recipient to run an action on one of the recipient's systems. Who asked
// is the user's name on the origin: the recipient shows them as that user
// of the peer, and never learns more of them.
type PeerAction struct {
	Run       string            `json:"run"`    // the run's id on the origin
	System    string            `json:"system"` // the recipient's system id
	Action    string            `json:"action"`
	Params    map[string]string `json:"params,omitempty"`
	Reason    string            `json:"reason"`
	Requester string            `json:"requester"` // a user of the origin
	Requested time.Time         `json:"requested"`
}

// DecodePeerAction decodes and checks the body of an action message.
func DecodePeerAction(body []byte) (*PeerAction, error) {
	var a PeerAction
	if len(body) > MaxPeerBody {
		return nil, errorf("peer action exceeds %d KiB", MaxPeerBody>>10)
	}
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	switch {
	case !peerRunIDPattern.MatchString(a.Run):
		return nil, errorf("peer action: run %s is not a run id", clip(a.Run))
	case !localSystemPattern.MatchString(a.System):
		return nil, errorf("peer action %s: %s is not a system id of the recipient", a.Run, clip(a.System))
	case !actionNamePattern.MatchString(a.Action):
		return nil, errorf("peer action %s: %s is not an action name", a.Run, clip(a.Action))
	case !peerUserPattern.MatchString(a.Requester):
		return nil, errorf("peer action %s: requester %s is not a user name", a.Run, clip(a.Requester))
	case a.Requested.IsZero() || a.Requested.Year() < 2000 || a.Requested.Year() > 9999:
		return nil, errorf("peer action %s: no valid time", a.Run)
	case len(a.Params) > MaxParams:
		return nil, errorf("peer action %s: more than %d parameters", a.Run, MaxParams)
	}
	if err := plainText("peer action "+a.Run+" reason", a.Reason, MaxPeerReason); err != nil {
		return nil, err
	}
	if len(a.Reason) == 0 {
		return nil, errorf("peer action %s: no reason given", a.Run)
	}
	for _, k := range slices.Sorted(maps.Keys(a.Params)) {
		if !actionNamePattern.MatchString(k) {
			return nil, errorf("peer action %s: invalid parameter name %s", a.Run, clip(k))
		}
		if err := plainText("peer action "+a.Run+" parameter "+k, a.Params[k], MaxParamValue); err != nil {
			return nil, err
		}
	}
	return &a, nil
}

// Run states a peer says its run of an action is in.
const (
	PeerRunAwaitingApproval = "awaiting_approval" // it waits for a person of the peer to approve it
	PeerRunRunning          = "running"
	PeerRunSucceeded        = "succeeded"
	PeerRunFailed           = "failed"
	PeerRunCancelled        = "cancelled"
	PeerRunTimedOut         = "timed_out"
	PeerRunRefused          = "refused" // no grant allows it, or it cannot run: see Message
)

// PeerActionResult is the body of an action_result message: how the run
// the recipient asked for (Run, the recipient's id) goes on the origin.
// It says how many hosts succeeded and failed, never which: the hosts are
// the origin's business.
type PeerActionResult struct {
	Run     string `json:"run"`                // the run's id on the recipient, which asked
	PeerRun string `json:"peer_run,omitempty"` // the run's id on the origin; none when refused
	State   string `json:"state"`
	// HostsOK and HostsFailed count the hosts that succeeded and those
	// that did not, once the run ended.
	HostsOK     int        `json:"hosts_ok"`
	HostsFailed int        `json:"hosts_failed"`
	Started     *time.Time `json:"started,omitempty"`
	Ended       *time.Time `json:"ended,omitempty"`
	// Message says why it was refused, or why it ended as it did.
	Message string `json:"message,omitempty"`
}

// Final reports whether the result is the run's last word.
func (r *PeerActionResult) Final() bool {
	return r.State != PeerRunAwaitingApproval && r.State != PeerRunRunning
}

// DecodePeerActionResult decodes and checks the body of an action_result
// message.
func DecodePeerActionResult(body []byte) (*PeerActionResult, error) {
	var r PeerActionResult
	if len(body) > 8192 {
		return nil, errorf("peer action result exceeds 8 KiB")
	}
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	if !peerRunIDPattern.MatchString(r.Run) {
		return nil, errorf("peer action result: run %s is not a run id", clip(r.Run))
	}
	switch r.State {
	case PeerRunAwaitingApproval, PeerRunRunning, PeerRunSucceeded, PeerRunFailed, PeerRunCancelled, PeerRunTimedOut:
		if !peerRunIDPattern.MatchString(r.PeerRun) {
			return nil, errorf("peer action result %s: the run's id there, %s, is not a run id", r.Run, clip(r.PeerRun))
		}
	case PeerRunRefused:
		if r.PeerRun != "" {
			return nil, errorf("peer action result %s: a refused run has no id there", r.Run)
		}
		if r.Message == "" {
			return nil, errorf("peer action result %s: a refusal says why", r.Run)
		}
	default:
		return nil, errorf("peer action result %s: unknown state %s", r.Run, clip(r.State))
	}
	if r.HostsOK < 0 || r.HostsFailed < 0 || r.HostsOK+r.HostsFailed > maxPeerHosts {
		return nil, errorf("peer action result %s: host counts must be 0 to %d", r.Run, maxPeerHosts)
	}
	if !r.Final() && (r.HostsOK > 0 || r.HostsFailed > 0 || r.Ended != nil) {
		return nil, errorf("peer action result %s: a run that is %s has not ended", r.Run, r.State)
	}
	for _, t := range []*time.Time{r.Started, r.Ended} {
		if t != nil && (t.Year() < 2000 || t.Year() > 9999) {
			return nil, errorf("peer action result %s: no valid time", r.Run)
		}
	}
	if !utf8.ValidString(r.Message) || utf8.RuneCountInString(r.Message) > maxPeerRunResultMsg {
		return nil, errorf("peer action result %s: the message must be at most %d characters of UTF-8", r.Run, maxPeerRunResultMsg)
	}
	if err := plainText("peer action result "+r.Run+" message", r.Message, 4*maxPeerRunResultMsg); err != nil {
		return nil, err
	}
	return &r, nil
}
