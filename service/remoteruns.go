package service

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// Remote actions. A user of this server runs an action of a peer's system
// (storage@a) as any other: the run is stored here, by the user, and the
// request goes to the peer in the same transaction. The peer checks its
// grants when the request arrives — its check is the one that counts —
// and runs it as an ordinary run, by the user as the peer knows them
// (alice@b), with its own approval rules; or refuses. It answers when it
// takes the run on, and when the run ends: how many hosts succeeded and
// failed, never which.

// PeerAction is what a peer asked to run here, as the link opened it.
type PeerAction struct {
	Run       string // the run's id on the peer
	System    string // this server's system
	Action    string
	Params    map[string]string
	Reason    string
	Requester string // a user of the peer
	Requested time.Time
}

// PeerActionResult is what a peer said of a run of its system this server
// asked for, as the link opened it.
type PeerActionResult struct {
	Run         string // this server's id of the run
	PeerRun     string // the peer's; empty when refused
	State       aramaki.RunState
	HostsOK     int
	HostsFailed int
	Started     *time.Time
	Ended       *time.Time
	Message     string
}

// peerActionBody is the body of an action message (wire.PeerAction).
type peerActionBody struct {
	Run       string            `json:"run"`
	System    string            `json:"system"`
	Action    string            `json:"action"`
	Params    map[string]string `json:"params,omitempty"`
	Reason    string            `json:"reason"`
	Requester string            `json:"requester"`
	Requested time.Time         `json:"requested"`
}

// peerActionResultBody is the body of an action_result message
// (wire.PeerActionResult).
type peerActionResultBody struct {
	Run         string     `json:"run"`
	PeerRun     string     `json:"peer_run,omitempty"`
	State       string     `json:"state"`
	HostsOK     int        `json:"hosts_ok"`
	HostsFailed int        `json:"hosts_failed"`
	Started     *time.Time `json:"started,omitempty"`
	Ended       *time.Time `json:"ended,omitempty"`
	Message     string     `json:"message,omitempty"`
}

// Outbox kinds of remote actions.
const (
	outboxAction       = "action"
	outboxActionResult = "action_result"
)

// requestPeerRun asks the peer whose system it is to run an action. Who
// may is whoever may run an action of a system of this server that uses
// it (the operator role, flowing down to the peer's system as to any
// subsystem). Whether a grant allows it is the peer's to say.
func (s *Service) requestPeerRun(ctx context.Context, g *aramaki.Graph, p aramaki.Principal, req RunRequest) (aramaki.Run, error) {
	system, peer, _ := aramaki.SplitRemote(req.System)
	if err := s.require(p, req.System, aramaki.RoleOperator); err != nil {
		return aramaki.Run{}, err
	}
	if err := aramaki.ValidateReason(req.Reason); err != nil {
		return aramaki.Run{}, err
	}
	switch {
	case req.BreakGlass:
		return aramaki.Run{}, aramaki.Errorf(aramaki.EINVALID, "%s runs on peer %s, whose own approval rules apply: glass cannot be broken from here", req.System, peer)
	case len(req.Agents) > 0:
		return aramaki.Run{}, aramaki.Errorf(aramaki.EINVALID, "%s runs on peer %s, on the hosts it chooses: name no agents", req.System, peer)
	case len(req.Params) > aramaki.MaxParams:
		return aramaki.Run{}, aramaki.Errorf(aramaki.EINVALID, "at most %d parameters", aramaki.MaxParams)
	}
	for name, value := range req.Params {
		if err := aramaki.ValidateActionName(name); err != nil {
			return aramaki.Run{}, aramaki.Errorf(aramaki.EINVALID, "invalid parameter name %q", clipRunes(name, 64))
		}
		if len(value) > aramaki.MaxParamValue || strings.ContainsRune(value, 0) {
			return aramaki.Run{}, aramaki.Errorf(aramaki.EINVALID, "parameter %s: at most %d bytes, no NUL", name, aramaki.MaxParamValue)
		}
	}
	if req.Params == nil {
		req.Params = map[string]string{}
	}
	if err := s.peerGrantsRefuse(ctx, peer, req.System, req.Action); err != nil {
		return aramaki.Run{}, err
	}
	now := s.now()
	run := aramaki.Run{System: req.System, Action: req.Action, Params: req.Params, Reason: strings.TrimSpace(req.Reason), RequestedBy: p.User,
		Requested: now, State: aramaki.RunRequested, Targets: []aramaki.RunTarget{}, Peer: peer}
	return s.store.CreatePeerRun(ctx, run, now, func(r aramaki.Run) ([]aramaki.Event, aramaki.OutboxMessage, error) {
		ev, err := s.event(aramaki.KindRunRequested, p.Actor(), []string{r.System}, fmt.Sprintf("%s asked peer %s to run %s on %s (run %s): %s",
			p.User, peer, r.Action, r.System, r.ID, r.Reason), aramaki.RunData{Run: r, Actor: p.User})
		if err != nil {
			return nil, aramaki.OutboxMessage{}, err
		}
		body, err := json.Marshal(peerActionBody{Run: r.ID, System: system, Action: r.Action, Params: r.Params, Reason: r.Reason,
			Requester: p.User, Requested: now.UTC()})
		if err != nil {
			return nil, aramaki.OutboxMessage{}, fmt.Errorf("marshal action: %w", err)
		}
		return []aramaki.Event{ev}, aramaki.OutboxMessage{Kind: outboxAction, Body: body}, nil
	})
}

// peerAction decides, when it arrives, what a peer asked to run here: a
// run, if a grant to the peer in force now allows the action on the
// system and it can run; a refusal on the timeline otherwise, which the
// peer is told of. What the peer is told of a system it was not granted
// is the same whether the system exists or not.
func (s *Service) peerAction(ctx context.Context, g *aramaki.Graph, peer aramaki.Peer, grants []aramaki.Grant, a PeerAction) (*aramaki.PeerRunRequest, *aramaki.Event, error) {
	who, actor := aramaki.PeerUser(a.Requester, peer.Name), "peer:"+peer.Name
	refuse := func(why, told string) (*aramaki.PeerRunRequest, *aramaki.Event, error) {
		var systems []string
		if g.System(a.System) != nil {
			systems = []string{a.System}
		}
		ev, err := s.event(aramaki.KindRunRefused, actor, systems, fmt.Sprintf("%s of peer %s asked to run %s on %s (run %s there): refused, %s",
			who, peer.Name, a.Action, a.System, a.Run, why), aramaki.RunRefusal{Peer: peer.Name, PeerRun: a.Run, System: a.System, Action: a.Action,
			Params: a.Params, Reason: a.Reason, Requester: who, Why: why, Told: told})
		return nil, &ev, err
	}
	now := s.now()
	var allowing []string
	for _, gr := range grants {
		if gr.Peer == peer.Name && gr.AllowsAction(now, a.System, a.Action) {
			allowing = append(allowing, gr.ID)
		}
	}
	notGranted := func() (*aramaki.PeerRunRequest, *aramaki.Event, error) {
		return refuse("no grant to the peer in force allows it", fmt.Sprintf("no grant of this server allows action %s on %s", a.Action, a.System))
	}
	if g.System(a.System) == nil || len(allowing) == 0 {
		return notGranted()
	}
	ref, err := actionRef(g, a.System, a.Action)
	if err != nil {
		return refuse(aramaki.ErrorMessage(err), fmt.Sprintf("%s has no action %s any more", a.System, a.Action))
	}
	if err := aramaki.ValidateReason(a.Reason); err != nil {
		return refuse(aramaki.ErrorMessage(err), aramaki.ErrorMessage(err))
	}
	run, _, err := s.planRun(ctx, ref, RunRequest{System: a.System, Action: a.Action, Reason: a.Reason, Params: a.Params}, who)
	switch aramaki.ErrorCode(err) {
	case "":
	case aramaki.EINVALID:
		// The reason names the host whose declaration the values do not
		// fit: the peer is told only that they do not.
		return refuse(aramaki.ErrorMessage(err), fmt.Sprintf("the parameters do not fit action %s on %s", a.Action, a.System))
	case aramaki.ENOTFOUND:
		return refuse(aramaki.ErrorMessage(err), fmt.Sprintf("no host of %s runs action %s now", a.System, a.Action))
	default:
		return nil, nil, err
	}
	run.Peer, run.PeerRun = peer.Name, a.Run
	return &aramaki.PeerRunRequest{Run: run, Events: func(r aramaki.Run) ([]aramaki.Event, []aramaki.Notification, error) {
		return s.runCreated(g, r, who, actor)
	}, Grants: allowing, Refused: func() ([]aramaki.Event, error) {
		_, ev, err := notGranted()
		return []aramaki.Event{*ev}, err
	}}, nil, nil
}

// peerActionResult moves on a run of a peer's system as the peer says it
// goes. Only the peer that runs it is heard, and nothing after the run
// ended.
func (s *Service) peerActionResult(peer aramaki.Peer, res PeerActionResult) aramaki.PeerRunResult {
	return aramaki.PeerRunResult{Run: res.Run, Change: func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
		if r.Peer != peer.Name || !r.Remote() || r.State.Final() {
			return r, nil, nil
		}
		now := s.now()
		var (
			kind    aramaki.EventKind
			summary string
		)
		switch {
		case res.State == aramaki.RunAwaitingApproval:
			if r.State != aramaki.RunRequested {
				return r, nil, nil
			}
			r.State, r.PeerRun = res.State, res.PeerRun
			kind, summary = aramaki.KindRunAwaiting, fmt.Sprintf("run %s of %s on %s waits for a person of peer %s to approve it (run %s there)",
				r.ID, r.Action, r.System, peer.Name, r.PeerRun)
		case res.State == aramaki.RunRunning:
			if r.State == aramaki.RunRunning {
				return r, nil, nil
			}
			r.State, r.PeerRun, r.Started = res.State, res.PeerRun, cmpTime(res.Started, now)
			kind, summary = aramaki.KindRunStarted, fmt.Sprintf("run %s of %s on %s started on peer %s (run %s there)", r.ID, r.Action, r.System, peer.Name, r.PeerRun)
		case res.State.Final():
			r.State, r.PeerRun, r.HostsOK, r.HostsFailed, r.Error = res.State, res.PeerRun, res.HostsOK, res.HostsFailed, clipRunes(res.Message, 500)
			if r.Started == nil && res.Started != nil {
				r.Started = res.Started
			}
			r.Ended = cmpTime(res.Ended, now)
			kind = aramaki.KindRunFinished
			if r.State == aramaki.RunRefused {
				summary = fmt.Sprintf("run %s of %s on %s: peer %s refused it: %s", r.ID, r.Action, r.System, peer.Name, r.Error)
			} else {
				summary = fmt.Sprintf("run %s of %s on %s %s on peer %s (run %s there): %s", r.ID, r.Action, r.System,
					strings.ReplaceAll(string(r.State), "_", " "), peer.Name, r.PeerRun, hostCount(r.HostsOK, r.HostsFailed))
			}
		default:
			return r, nil, nil
		}
		ev, err := s.runEvent(kind, "peer:"+peer.Name, r, summary)
		return r, []aramaki.Event{ev}, err
	}}
}

func cmpTime(t *time.Time, or time.Time) *time.Time {
	if t != nil {
		return t
	}
	return &or
}

func hostCount(ok, failed int) string {
	plural := func(n int) string {
		if n == 1 {
			return "1 host"
		}
		return fmt.Sprintf("%d hosts", n)
	}
	return fmt.Sprintf("%s succeeded, %s did not", plural(ok), plural(failed))
}

// actionResult is the message telling a peer how a run it asked for
// goes, made of the run's event: when it was taken on (running or
// waiting for approval), approved, and ended; and when it was refused.
// It tells how many hosts succeeded and failed, not which.
func actionResult(e aramaki.Event, peer string) (aramaki.OutboxMessage, bool) {
	var body peerActionResultBody
	switch e.Kind {
	case aramaki.KindRunRefused:
		var d aramaki.RunRefusal
		if json.Unmarshal(e.Data, &d) != nil || d.Peer != peer {
			return aramaki.OutboxMessage{}, false
		}
		body = peerActionResultBody{Run: d.PeerRun, State: string(aramaki.RunRefused), Message: d.Told}
	case aramaki.KindRunRequested, aramaki.KindRunApproved, aramaki.KindRunFinished:
		var d aramaki.RunData
		if json.Unmarshal(e.Data, &d) != nil || !d.Run.ForPeer() || d.Run.Peer != peer || d.Run.PeerRun == "" {
			return aramaki.OutboxMessage{}, false
		}
		r := d.Run
		body = peerActionResultBody{Run: r.PeerRun, PeerRun: r.ID, State: string(r.State), Started: r.Started}
		if r.State.Final() {
			for _, t := range r.Targets {
				if t.State == aramaki.RunSucceeded {
					body.HostsOK++
				} else {
					body.HostsFailed++
				}
			}
			body.Ended, body.Message = r.Ended, r.Error
		}
	default:
		return aramaki.OutboxMessage{}, false
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return aramaki.OutboxMessage{}, false
	}
	return aramaki.OutboxMessage{Kind: outboxActionResult, Body: raw}, true
}

// endOrphanedPeerRuns ends the open runs of peers' systems whose peer is
// no longer one: nobody is left to say how they end.
func (s *Service) endOrphanedPeerRuns(ctx context.Context, runs []aramaki.Run, now time.Time) error {
	var active map[string]bool
	for _, run := range runs {
		if !run.Remote() {
			continue
		}
		if active == nil {
			peers, err := s.LinkPeers(ctx)
			if err != nil {
				return err
			}
			active = map[string]bool{}
			for _, p := range peers {
				active[p.Name] = true
			}
		}
		if active[run.Peer] {
			continue
		}
		_, err := s.store.ChangeRun(ctx, run.ID, func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
			if r.State.Final() {
				return r, nil, nil
			}
			r.State, r.Ended = aramaki.RunFailed, &now
			r.Error = fmt.Sprintf("%s is no longer a peer of this server: how the run ends there is not known", r.Peer)
			ev, err := s.runEvent(aramaki.KindRunFinished, "server", r, fmt.Sprintf("run %s of %s on %s failed: %s", r.ID, r.Action, r.System, r.Error))
			return r, []aramaki.Event{ev}, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}
