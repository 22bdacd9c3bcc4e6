package service

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aramaki/aramaki"
)

// Ingestion: agent connections submit batches of results; one writer
// groups the batches of many connections into one transaction (group
// commit) and answers each with the agent's last stored sequence, which the
// connection acknowledges. Nothing is acknowledged before it is committed.

// maxGroup bounds the results written in one transaction. Large groups
// amortise the commit (one fsync for many agents); under load the writer
// takes whatever arrived while it committed the last group. Measured with
// aramaki bench agents at 50,000 results/s: 5,000 left the writer
// saturated (ack p50 around 1 s), 20,000 did not (p50 12 ms).
const maxGroup = 20000

type submission struct {
	batch  aramaki.ResultBatch
	stream *Stream
	done   chan IngestResult
}

// Stream is one connection's sequence of submissions. Once one of its
// batches failed to commit, none after it may be written: the store would
// take the later sequence numbers as the agent's last, and the failed
// results would be skipped for good. The agent reconnects and resends from
// what is really stored.
type Stream struct {
	failed atomic.Bool
}

// NewStream starts the submissions of one agent connection.
func NewStream() *Stream { return &Stream{} }

// IngestResult is the outcome of a submitted batch.
type IngestResult struct {
	LastSeq uint64 // every result of the agent up to here is stored
	Err     error
}

// SubmitResults hands results of an agent to the writer and returns a
// channel that yields the outcome once they are committed. Results for
// checks the agent does not run are dropped (and logged): they are never
// stored. gap, when not nil, reports results the agent lost.
func (s *Service) SubmitResults(ctx context.Context, stream *Stream, a aramaki.Agent, results []aramaki.CheckResult, gap *aramaki.GapReport) (<-chan IngestResult, error) {
	allowed := map[string]bool{}
	for _, c := range s.ChecksFor(a) {
		allowed[c.System+"/"+c.Name] = true
	}
	kept := results[:0:0]
	dropped := 0
	now := s.now().UTC()
	var through uint64
	for _, r := range results {
		through = max(through, r.Seq)
		if !allowed[r.System+"/"+r.Check] {
			dropped++
			continue
		}
		r.Agent, r.Received = a.ID, now
		kept = append(kept, r)
	}
	if dropped > 0 {
		s.log.Warn("dropped results for checks the agent does not run", "agent", a.ID, "name", a.Name, "dropped", dropped)
	}
	b := aramaki.ResultBatch{Agent: a.ID, Results: kept, Through: through}
	if gap != nil {
		ev, err := s.event(aramaki.KindResultsLost, "agent:"+a.ID, a.Systems,
			fmt.Sprintf("Agent %s lost %d results (sequence %d to %d): its queue was full while the server was unreachable", a.Name, gap.To-gap.From+1, gap.From, gap.To),
			map[string]any{"agent": a.ID, "from": gap.From, "to": gap.To})
		if err != nil {
			return nil, err
		}
		gap.Event = ev
		b.Gap = gap
	}
	sub := &submission{batch: b, stream: stream, done: make(chan IngestResult, 1)}
	select {
	case s.ingest <- sub:
		return sub.done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Seen records that an agent was heard from; written in bulk.
func (s *Service) Seen(agentID, version string) {
	s.seenMu.Lock()
	s.seen[agentID] = aramaki.AgentSeen{Agent: agentID, At: s.now().UTC(), Version: version}
	s.seenMu.Unlock()
}

// RunIngest is the writer: it runs until ctx ends.
func (s *Service) RunIngest(ctx context.Context) {
	flush := time.NewTicker(5 * time.Second)
	defer flush.Stop()
	for {
		var group []*submission
		select {
		case <-ctx.Done():
			s.flushSeen(context.Background())
			return
		case <-flush.C:
			s.flushSeen(ctx)
			continue
		case sub := <-s.ingest:
			group = append(group, sub)
		}
		n := len(group[0].batch.Results)
	gather:
		for n < maxGroup {
			select {
			case sub := <-s.ingest:
				group = append(group, sub)
				n += len(sub.batch.Results)
			default:
				break gather
			}
		}
		s.write(ctx, group)
	}
}

func (s *Service) write(ctx context.Context, group []*submission) {
	errFailedBefore := aramaki.Errorf(aramaki.EUNAVAILABLE, "an earlier batch of this connection was not stored")
	live := group[:0:0]
	for _, sub := range group {
		if sub.stream != nil && sub.stream.failed.Load() {
			sub.done <- IngestResult{Err: errFailedBefore}
			continue
		}
		live = append(live, sub)
	}
	group = live
	if len(group) == 0 {
		return
	}
	batches := make([]aramaki.ResultBatch, len(group))
	for i, sub := range group {
		batches[i] = sub.batch
	}
	changed := false
	seqs, err := s.store.RecordResults(ctx, batches, func(c aramaki.StatusChange) (aramaki.Event, error) {
		changed = true
		return s.changeEvent(c)
	})
	if err != nil {
		s.log.Error("storing check results failed; agents will resend them", "batches", len(batches), "err", err)
	} else if changed {
		s.wakeAlerts()
		s.wakeFederation()
	}
	for i, sub := range group {
		if err != nil {
			if sub.stream != nil {
				sub.stream.failed.Store(true)
			}
			sub.done <- IngestResult{Err: err}
			continue
		}
		sub.done <- IngestResult{LastSeq: seqs[i]}
		for _, r := range sub.batch.Results {
			s.waiters.deliver(r)
		}
	}
}

func (s *Service) flushSeen(ctx context.Context) {
	s.seenMu.Lock()
	seen := make([]aramaki.AgentSeen, 0, len(s.seen))
	for _, v := range s.seen {
		seen = append(seen, v)
	}
	clear(s.seen)
	s.seenMu.Unlock()
	if len(seen) == 0 {
		return
	}
	if err := s.store.TouchAgents(ctx, seen); err != nil {
		s.log.Error("recording agent keepalives failed", "agents", len(seen), "err", err)
	}
}

// changeEvent turns a status change into a timeline event: every real
// transition, and a first result only when it is a problem.
func (s *Service) changeEvent(c aramaki.StatusChange) (aramaki.Event, error) {
	if c.First && !c.To.Problem() {
		return aramaki.Event{}, nil
	}
	who := s.agentName(c.Agent)
	var summary string
	if c.First {
		summary = fmt.Sprintf("%s/%s is %s on %s", c.System, c.Check, strings.ToUpper(c.To.String()), who)
	} else {
		summary = fmt.Sprintf("%s/%s %s → %s on %s", c.System, c.Check, strings.ToUpper(c.From.String()), strings.ToUpper(c.To.String()), who)
	}
	if line := firstLine(c.Output); line != "" {
		summary += ": " + line
	}
	actor := "agent:" + c.Agent
	if c.Check == aramaki.KeepaliveCheck {
		actor = "server"
	}
	return aramaki.NewEvent(c.At, aramaki.KindStatusChanged, actor, []string{c.System}, summary, aramaki.StatusChangedData{StatusChange: c})
}

func (s *Service) agentName(id string) string {
	if v, ok := s.names.Load(id); ok {
		return v.(string)
	}
	return id
}

// AgentConnected notes a connected agent: its name for summaries, when it
// was seen, and its keepalive status is OK again.
func (s *Service) AgentConnected(ctx context.Context, a aramaki.Agent) {
	s.names.Store(a.ID, a.Name)
	s.Seen(a.ID, a.Version)
	s.keepalive(ctx, a, aramaki.StatusOK, fmt.Sprintf("Agent %s is connected", a.Name))
}

// keepalive records the server's keepalive result for an agent on each of
// its systems.
func (s *Service) keepalive(ctx context.Context, a aramaki.Agent, st aramaki.Status, output string) {
	now := s.now().UTC()
	var results []aramaki.CheckResult
	for _, sys := range a.Systems {
		results = append(results, aramaki.CheckResult{Agent: a.ID, System: sys, Check: aramaki.KeepaliveCheck, Status: st, Output: output, Started: now, Received: now})
	}
	if len(results) == 0 {
		return
	}
	sub := &submission{batch: aramaki.ResultBatch{Agent: a.ID, Results: results}, done: make(chan IngestResult, 1)}
	select {
	case s.ingest <- sub:
	case <-ctx.Done():
	}
}

// WatchKeepalives turns the keepalive check of every agent silent for
// longer than timeout critical, looking every interval, until ctx ends.
func (s *Service) WatchKeepalives(ctx context.Context, timeout, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.flushSeen(ctx)
		if err := s.checkKeepalives(ctx, timeout); err != nil && ctx.Err() == nil {
			s.log.Error("keepalive check failed", "err", err)
		}
	}
}

func (s *Service) checkKeepalives(ctx context.Context, timeout time.Duration) error {
	agents, err := s.store.Agents(ctx)
	if err != nil {
		return err
	}
	states, err := s.store.CheckStates(ctx, nil)
	if err != nil {
		return err
	}
	current := map[string]aramaki.Status{} // agent/system -> keepalive status
	for _, st := range states {
		if st.Check == aramaki.KeepaliveCheck {
			current[st.Agent+"/"+st.System] = st.Status
		}
	}
	now := s.now()
	for _, a := range agents {
		if a.Revoked != nil {
			continue
		}
		s.names.Store(a.ID, a.Name)
		silent := a.LastSeen == nil || now.Sub(*a.LastSeen) > timeout
		if !silent {
			// Heard from again without reconnecting (a host that was frozen).
			for _, sys := range a.Systems {
				if st, ok := current[a.ID+"/"+sys]; ok && st == aramaki.StatusCritical {
					s.keepalive(ctx, aramaki.Agent{ID: a.ID, Name: a.Name, Systems: []string{sys}}, aramaki.StatusOK,
						fmt.Sprintf("Agent %s is heard from again", a.Name))
				}
			}
			continue
		}
		for _, sys := range a.Systems {
			if st, ok := current[a.ID+"/"+sys]; ok && st == aramaki.StatusCritical {
				continue
			}
			last := "never"
			if a.LastSeen != nil {
				last = now.Sub(*a.LastSeen).Round(time.Second).String() + " ago"
			}
			s.keepalive(ctx, aramaki.Agent{ID: a.ID, Name: a.Name, Systems: []string{sys}}, aramaki.StatusCritical,
				fmt.Sprintf("No keepalive from agent %s for more than %s (last heard from %s)", a.Name, timeout, last))
		}
	}
	return nil
}

// Retention says how long results and status history are kept.
type Retention struct {
	Results time.Duration
	History time.Duration
}

// Prune deletes results and history past their retention every ten minutes,
// until ctx ends.
func (s *Service) Prune(ctx context.Context, r Retention) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		now := s.now()
		if err := s.store.Prune(ctx, now.Add(-r.Results), now.Add(-r.History)); err != nil && ctx.Err() == nil {
			s.log.Error("pruning history failed", "err", err)
		}
		// Alerts, their notifications and silences live as long as history.
		if err := s.store.PruneAlerts(ctx, now.Add(-r.History)); err != nil && ctx.Err() == nil {
			s.log.Error("pruning alerts failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
