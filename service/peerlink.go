package service

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/aramaki/aramaki"
)

// What flows to peers comes from the timeline: every event is considered
// once for each peer, in order, and those its grants cover go to its
// outbox, numbered. The link (package federation) sends the outbox, the
// peer acknowledges after storing, and what is acknowledged is forgotten.

// OutboxBatch is how many events FederateEvents considers in one
// transaction.
const OutboxBatch = 2000

// coverage is, per peer, the systems its grants share events of now —
// those granted and everything under them — each with when its earliest
// grant in force began: events before that are not shared.
func (s *Service) coverage(ctx context.Context, now time.Time, kind aramaki.GrantKind) (map[string]map[string]time.Time, error) {
	grants, err := s.store.Grants(ctx, "")
	if err != nil {
		return nil, err
	}
	g := s.Graph()
	out := map[string]map[string]time.Time{}
	for _, gr := range grants {
		if !gr.Active(now) || !containsKind(gr.Kinds, kind) {
			continue
		}
		covered := out[gr.Peer]
		if covered == nil {
			covered = map[string]time.Time{}
			out[gr.Peer] = covered
		}
		for _, id := range gr.Systems {
			if g.System(id) == nil {
				continue // gone from the config: nothing of it to share
			}
			for _, d := range append([]string{id}, g.Descendants(id)...) {
				if _, _, remote := aramaki.SplitRemote(d); remote {
					continue // another peer's: never passed on
				}
				if since, ok := covered[d]; !ok || gr.Created.Before(since) {
					covered[d] = gr.Created
				}
			}
		}
	}
	return out, nil
}

// covers reports whether an event's systems are all covered, since before
// it happened.
func covers(covered map[string]time.Time, e aramaki.Event) bool {
	set := map[string]bool{}
	for _, id := range e.Systems {
		since, ok := covered[id]
		if !ok || e.Time.Before(since) {
			return false
		}
		set[id] = true
	}
	return aramaki.Shareable(e, set)
}

func containsKind(kinds []aramaki.GrantKind, k aramaki.GrantKind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// FederateEvents puts the events each peer's grants cover in its outbox,
// until every peer has caught up with the timeline.
func (s *Service) FederateEvents(ctx context.Context) error {
	peers, err := s.store.Peers(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	cover, err := s.coverage(ctx, now, aramaki.GrantEvents)
	if err != nil {
		return err
	}
	statusCover, err := s.coverage(ctx, now, aramaki.GrantStatus)
	if err != nil {
		return err
	}
	for _, p := range peers {
		if p.Removed != nil {
			continue
		}
		covered := cover[p.Name]
		// Announcements go to whoever uses the system, with either grant.
		announced := maps.Clone(covered)
		if announced == nil {
			announced = map[string]time.Time{}
		}
		for id, since := range statusCover[p.Name] {
			if was, ok := announced[id]; !ok || since.Before(was) {
				announced[id] = since
			}
		}
		for {
			n, err := s.store.FillOutbox(ctx, p.Name, OutboxBatch, now, func(evs []aramaki.Event) ([]aramaki.OutboxMessage, error) {
				var out []aramaki.OutboxMessage
				for _, e := range evs {
					// How a run the peer asked for goes is told whatever
					// its grants share.
					if m, ok := actionResult(e, p.Name); ok {
						out = append(out, m)
					}
					if !covers(covered, e) && !(e.Kind == aramaki.KindAnnouncement && covers(announced, e)) {
						continue
					}
					shared, _ := e.Share()
					body, err := json.Marshal(shared)
					if err != nil {
						return nil, fmt.Errorf("marshal shared event: %w", err)
					}
					out = append(out, aramaki.OutboxMessage{Kind: "event", Body: body})
				}
				return out, nil
			})
			if err != nil {
				return fmt.Errorf("outbox of peer %s: %w", p.Name, err)
			}
			if n < OutboxBatch {
				break
			}
		}
	}
	return nil
}

// PeerOutbox returns up to limit of a peer's outbox messages after a seq,
// to send. Each is checked again against the grants in force: an event
// whose grant was revoked or ran out since it was queued is withheld (it
// is not sent, and goes when a later message is acknowledged).
//
// through is the last seq read, withheld or not: where to read on from.
func (s *Service) PeerOutbox(ctx context.Context, peer string, after uint64, limit int) (msgs []aramaki.OutboxMessage, through uint64, err error) {
	msgs, err = s.store.Outbox(ctx, peer, after, limit)
	if err != nil || len(msgs) == 0 {
		return msgs, after, err
	}
	through = msgs[len(msgs)-1].Seq
	cover, err := s.coverage(ctx, s.now(), aramaki.GrantEvents)
	if err != nil {
		return nil, after, err
	}
	statusCover, err := s.coverage(ctx, s.now(), aramaki.GrantStatus)
	if err != nil {
		return nil, after, err
	}
	covered := cover[peer]
	out := msgs[:0]
	var withheld []aramaki.WithheldMessage
	for _, m := range msgs {
		if m.Kind == "status" {
			var st struct{ System string }
			if json.Unmarshal(m.Body, &st) != nil {
				withheld = append(withheld, aramaki.WithheldMessage{Seq: m.Seq})
				continue
			}
			if _, ok := statusCover[peer][st.System]; !ok {
				withheld = append(withheld, aramaki.WithheldMessage{Seq: m.Seq, StatusOf: st.System})
				continue
			}
		}
		if m.Kind == "event" {
			var r struct { // what coverage needs of an aramaki.RemoteEvent
				Time    time.Time         `json:"time"`
				Kind    aramaki.EventKind `json:"kind"`
				Systems []string          `json:"systems"`
			}
			if json.Unmarshal(m.Body, &r) != nil || len(r.Systems) == 0 {
				withheld = append(withheld, aramaki.WithheldMessage{Seq: m.Seq})
				continue
			}
			// Covered still, by a grant made before it happened.
			shared := true
			for _, id := range r.Systems {
				since, ok := covered[id]
				if !ok && r.Kind == aramaki.KindAnnouncement {
					since, ok = statusCover[peer][id]
				}
				shared = shared && ok && !r.Time.Before(since)
			}
			if !shared {
				withheld = append(withheld, aramaki.WithheldMessage{Seq: m.Seq})
				continue
			}
		}
		out = append(out, m)
	}
	// Withheld for good: not sent later under another grant.
	if err := s.store.WithholdOutbox(ctx, peer, withheld); err != nil {
		return nil, after, err
	}
	return out, through, nil
}

// PeerAcked forgets what a peer acknowledged having stored.
func (s *Service) PeerAcked(ctx context.Context, peer string, seq uint64) error {
	return s.store.AckOutbox(ctx, peer, seq)
}

// PeerMessage is a message a peer sent, as the link opened it (signature,
// sender and recipient checked): its number and what it brings.
type PeerMessage struct {
	Seq      uint64
	Events   []aramaki.RemoteEvent
	Statuses []aramaki.RemoteStatus // on the peer's ids
	// Actions the peer asks to run here; ActionResults say how runs of
	// its systems this server asked for go.
	Actions       []PeerAction
	ActionResults []PeerActionResult
	// Grants, when GrantsTold, are the grants the peer holds in force for
	// this server, on the peer's ids, replacing what it told before.
	Grants     []aramaki.ReceivedGrant
	GrantsTold bool
}

// PeerReceived stores what a peer sent, in one transaction, each message
// once, and returns the last seq stored, for the link to acknowledge. A
// peer speaks only of its own systems: events are stored on them
// (storage@a), by the peer. An action it asks to run is checked against
// its grants now, and run or refused in the same transaction.
func (s *Service) PeerReceived(ctx context.Context, peer aramaki.Peer, msgs []PeerMessage) (uint64, error) {
	in := make([]aramaki.ReceivedMessage, 0, len(msgs))
	var grants []aramaki.Grant // read once, when a message asks to run an action
	grantsRead, runs := false, false
	for _, m := range msgs {
		r := aramaki.ReceivedMessage{Seq: m.Seq, GrantsTold: m.GrantsTold, Grants: receivedGrants(peer.Name, m.Grants)}
		if len(m.Actions) > 0 && !grantsRead {
			var err error
			if grants, err = s.store.Grants(ctx, peer.Name); err != nil {
				return 0, err
			}
			grantsRead = true
		}
		for _, a := range m.Actions {
			run, refusal, err := s.peerAction(ctx, s.Graph(), peer, grants, a)
			if err != nil {
				return 0, err
			}
			if run != nil {
				r.Runs, runs = append(r.Runs, *run), true
			} else {
				r.Events = append(r.Events, *refusal)
			}
		}
		for _, res := range m.ActionResults {
			r.RunResults = append(r.RunResults, s.peerActionResult(peer, res))
		}
		for _, re := range m.Events {
			if err := re.Validate(); err != nil {
				return 0, aramaki.Errorf(aramaki.EINVALID, "message %d of peer %s: %s", m.Seq, peer.Name, aramaki.ErrorMessage(err))
			}
			ev, err := re.Local(peer.Name, peer.Server)
			if err != nil {
				return 0, err
			}
			r.Events = append(r.Events, ev)
			if ev.Kind == aramaki.KindAnnouncement {
				g := s.Graph()
				for _, id := range ev.Systems {
					if g.System(id) != nil {
						r.Notifications = append(r.Notifications, s.tellOwners(g, id, ev.Summary, ev.Summary+"\n(from peer "+peer.Name+")\n", "/systems/"+id)...)
					}
				}
			}
		}
		g := s.Graph()
		for _, st := range m.Statuses {
			if err := aramaki.ValidateSystemID(st.System); err != nil {
				return 0, aramaki.Errorf(aramaki.EINVALID, "message %d of peer %s: %s", m.Seq, peer.Name, aramaki.ErrorMessage(err))
			}
			st.System = aramaki.RemoteSystemID(st.System, peer.Name)
			if g.System(st.System) == nil {
				continue // not used here: nothing to roll up or alert on
			}
			r.Statuses = append(r.Statuses, st)
		}
		in = append(in, r)
	}
	last, err := s.store.ReceiveFromPeer(ctx, peer.Name, in)
	if err == nil && slices.ContainsFunc(in, func(m aramaki.ReceivedMessage) bool { return len(m.Statuses) > 0 }) {
		s.wakeAlerts() // a peer's system changed: as a check would
		s.wakeFederation()
	}
	if err == nil && runs {
		// Started at once on the agents connected here, as a run asked
		// for here is; those elsewhere when their replica dispatches.
		if err := s.DispatchRuns(ctx); err != nil {
			s.log.Error("starting runs a peer asked for", "peer", peer.Name, "err", err)
		}
		s.wakeRuns()
	}
	return last, err
}

// PeerLinkState returns where the exchange with a peer stands.
func (s *Service) PeerLinkState(ctx context.Context, peer string) (aramaki.PeerLink, error) {
	return s.store.PeerLink(ctx, peer)
}

// PeerByServer returns the peer with a server id, for a link to check who
// is on the other end; ENOTFOUND when it is no peer (or was removed).
func (s *Service) PeerByServer(ctx context.Context, server string) (aramaki.Peer, error) {
	return s.store.PeerByServer(ctx, server)
}

// LinkPeers returns the peers this server keeps links with.
func (s *Service) LinkPeers(ctx context.Context) ([]aramaki.Peer, error) {
	peers, err := s.store.Peers(ctx)
	if err != nil {
		return nil, err
	}
	out := peers[:0]
	for _, p := range peers {
		if p.Removed == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// sharedRecheck is how long FederateStatus and FederateGrants trust their
// memory of what a peer was told before they ask the store again: a
// status withheld from a peer (its grant ended) is told again within that.
const sharedRecheck = time.Minute

// told is what a peer was last found told of something (a status, its
// grants' digest), and when that was checked against the store.
type told struct {
	what    string
	checked time.Time
}

// toldAlready reports whether the peer was told what, as this replica
// found within sharedRecheck: then there is nothing to write.
func (s *Service) toldAlready(key, what string, now time.Time) bool {
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	last, ok := s.shared[key]
	return ok && last.what == what && now.Sub(last.checked) < sharedRecheck
}

// noteTold remembers that the store has the peer told what.
func (s *Service) noteTold(key, what string, now time.Time) {
	s.sharedMu.Lock()
	s.shared[key] = told{what: what, checked: now}
	s.sharedMu.Unlock()
}

// FederationWake is signalled when a status changed here or on a peer:
// the links fill the outboxes and share statuses at once, rather than at
// their next tick, so that a change passes along a chain of servers in
// milliseconds.
func (s *Service) FederationWake() <-chan struct{} { return s.fedWake }

func (s *Service) wakeFederation() {
	select {
	case s.fedWake <- struct{}{}:
	default:
	}
}

// FederateStatus tells each peer the rolled-up status of every system its
// grants share the status of, when it changed since the peer was told.
func (s *Service) FederateStatus(ctx context.Context) error {
	now := s.now()
	cover, err := s.coverage(ctx, now, aramaki.GrantStatus)
	if err != nil {
		return err
	}
	grants, err := s.store.Grants(ctx, "")
	if err != nil {
		return err
	}
	g := s.Graph()
	for _, gr := range grants {
		if !gr.Active(now) || !containsKind(gr.Kinds, aramaki.GrantStatus) || cover[gr.Peer] == nil {
			continue
		}
		for _, id := range gr.Systems {
			if g.System(id) == nil {
				continue
			}
			scope := append([]string{id}, g.Descendants(id)...)
			states, err := s.store.CheckStates(ctx, scope)
			if err != nil {
				return err
			}
			// A peer's system used here counts as on this server's own
			// pages: the peer is told the status it sees, not whence.
			if states, err = s.withRemote(ctx, g, scope, states); err != nil {
				return err
			}
			status := newRollup(g, states).status(id)
			since := time.Time{}
			for _, st := range states {
				if st.Status == status && (since.IsZero() || st.Since.After(since)) {
					since = st.Since
				}
			}
			if since.IsZero() {
				since = now
			}
			key := "status\x00" + gr.ID + "\x00" + id
			if s.toldAlready(key, status.String(), now) {
				continue // no write
			}
			body, err := json.Marshal(map[string]any{"system": id, "status": status.String(), "since": since.UTC()})
			if err != nil {
				return err
			}
			if _, err := s.store.ShareStatus(ctx, gr.Peer, id, status, body, now); err != nil {
				return fmt.Errorf("status of %s for peer %s: %w", id, gr.Peer, err)
			}
			s.noteTold(key, status.String(), now)
		}
	}
	return nil
}
