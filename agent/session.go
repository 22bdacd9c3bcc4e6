package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/agent/check"
	"github.com/aramaki/aramaki/agent/inventory"
	"github.com/aramaki/aramaki/agent/queue"
	"github.com/aramaki/aramaki/wire"
)

const (
	handshakeTimeout = 30 * time.Second
	writeTimeout     = 30 * time.Second
	pingTimeout      = 30 * time.Second
	factsTimeout     = time.Minute
	// window is how many result batches may wait for their ack at once, so
	// that sending a long queue does not wait a round trip per batch.
	window = 8
	// batchBytes bounds a batch well below wire.MaxFrameSize.
	batchBytes = 1 << 20
)

// session is one connection to the server.
type session struct {
	a     *Agent
	conn  *websocket.Conn
	q     *queue.Queue
	sched *check.Scheduler
	// sent is the last sequence sent (or known to the server); inflight
	// the last sequence of every batch sent and not yet acknowledged.
	sent     uint64
	inflight []uint64
	// skew is the server's clock minus this host's, when they disagree by
	// more than maxSkew: timestamps sent are corrected by it, or the server
	// would refuse every frame of an agent whose clock is far off.
	skew time.Duration
	// version is the protocol version the server chose.
	version int
}

// maxSkew is the clock difference tolerated without correction.
const maxSkew = time.Minute

// now is the time by the server's clock, as far as the agent knows it.
func (s *session) now() time.Time { return time.Now().Add(s.skew) }

// session connects, authenticates and then serves the connection until it
// breaks or ctx ends. welcomed tells whether the server accepted the agent.
func (a *Agent) session(ctx context.Context, q *queue.Queue, sched *check.Scheduler) (welcomed bool, err error) {
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(hctx, a.id.ServerURL+ConnectPath, &websocket.DialOptions{
		HTTPClient:   a.client,
		Subprotocols: wire.Subprotocols(),
	})
	if err != nil {
		if resp != nil && resp.StatusCode != 101 {
			return false, fmt.Errorf("connect: the server answered %s", resp.Status)
		}
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.CloseNow()
	version, ok := wire.VersionOf(conn.Subprotocol())
	if !ok {
		conn.Close(websocket.StatusPolicyViolation, "this agent speaks "+strings.Join(wire.Subprotocols(), " or "))
		return false, fmt.Errorf("connect: the server speaks none of %s", strings.Join(wire.Subprotocols(), ", "))
	}
	conn.SetReadLimit(wire.MaxFrameSize)
	var binding []byte
	if resp.TLS != nil {
		// Binds the signature to this TLS session: it is worthless on another.
		if binding, err = resp.TLS.ExportKeyingMaterial(wire.ChannelBindingLabel, nil, 32); err != nil {
			return false, fmt.Errorf("connect: channel binding: %w", err)
		}
	}
	s := &session{a: a, conn: conn, q: q, sched: sched, version: version}

	hello, err := expect[*wire.Hello](hctx, conn, version)
	if err != nil {
		return false, err
	}
	if skew := time.Until(hello.ServerTime); !hello.ServerTime.IsZero() && (skew > maxSkew || skew < -maxSkew) {
		s.skew = skew
		a.log.Error("this host's clock is off: fix it (NTP); meanwhile the agent corrects its timestamps by the server's clock",
			"server_minus_host", skew.Round(time.Second))
	}
	auth := &wire.Auth{
		Version:      version,
		AgentID:      a.id.AgentID,
		AgentVersion: a.cfg.Version,
		Time:         s.now(),
		Signature:    ed25519.Sign(a.key, wire.AuthPayload(hello.Nonce, a.id.AgentID, binding)),
		Acked:        q.Acked(),
	}
	if err := s.send(auth); err != nil {
		return false, fmt.Errorf("send auth: %w", err)
	}
	welcome, err := expect[*wire.Welcome](hctx, conn, version)
	if err != nil {
		return false, err
	}
	if welcome.AgentID != a.id.AgentID {
		return false, fmt.Errorf("the server welcomed agent %s, this is %s", welcome.AgentID, a.id.AgentID)
	}
	cancel()
	return true, s.serve(ctx, welcome)
}

// expect reads one handshake frame of type M; an error frame becomes a
// *ServerError.
func expect[M wire.Message](ctx context.Context, conn *websocket.Conn, version int) (M, error) {
	var zero M
	_, raw, err := conn.Read(ctx)
	if err != nil {
		return zero, fmt.Errorf("handshake: %w", err)
	}
	m, err := wire.DecodeFromServerVersion(raw, version, time.Now())
	if err != nil {
		return zero, fmt.Errorf("handshake: %w", err)
	}
	if e, ok := m.(*wire.ErrorMessage); ok {
		return zero, &ServerError{Code: e.Code, Message: e.Message}
	}
	want, ok := m.(M)
	if !ok {
		return zero, fmt.Errorf("handshake: expected a %s frame, got %s", zero.FrameType(), m.FrameType())
	}
	return want, nil
}

func (s *session) serve(ctx context.Context, w *wire.Welcome) error {
	a, q := s.a, s.q
	a.applyChecks(w.Checks, s.sched)
	if last := q.Last(); w.Acked > last {
		a.log.Warn("the server has more results from this agent than its queue ever held: was the data directory restored from an older copy? Numbering continues after the server's",
			"server_acked", w.Acked, "last_seq", last)
	}
	// Results that will never arrive are reported before those after them.
	floor := q.Floor()
	if w.Acked < floor {
		// Dropped from a full queue, or acknowledged before by a server that
		// has forgotten them since (its database restored from a backup).
		a.log.Warn("reporting results that will never arrive", "from", w.Acked+1, "to", floor)
		if err := s.send(&wire.Gap{From: w.Acked + 1, To: floor, Dropped: floor - w.Acked}); err != nil {
			return fmt.Errorf("send gap: %w", err)
		}
	}
	for _, g := range q.Gaps() {
		// Records lost to damage on disk, above the floor.
		if g.From = max(g.From, w.Acked+1, floor+1); g.From <= g.To {
			g.Dropped = g.To - g.From + 1
			a.log.Warn("reporting results lost from the queue", "from", g.From, "to", g.To)
			if err := s.send(&g); err != nil {
				return fmt.Errorf("send gap: %w", err)
			}
		}
	}
	if err := q.Ack(w.Acked); err != nil {
		return err
	}
	s.sent = w.Acked
	a.log.Info("connected", "server", a.id.ServerURL, "checks", len(w.Checks), "server_acked", w.Acked,
		"pending", q.Pending(), "keepalive", w.Keepalive.D())

	// Reads have their own context: cancelling a read closes the
	// connection, and a stopping agent closes it politely instead.
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	frames := make(chan wire.Message)
	readErr := make(chan error, 1)
	go s.readLoop(rctx, frames, readErr)

	facts := make(chan *wire.Facts, 1)
	collect := func() {
		go func() {
			fctx, cancel := context.WithTimeout(rctx, factsTimeout)
			defer cancel()
			f := inventory.Collect(fctx)
			f.Collected = f.Collected.Add(s.skew)
			select {
			case facts <- f:
			case <-rctx.Done():
			}
		}()
	}
	collect()
	factsTick := time.NewTicker(a.cfg.FactsInterval)
	defer factsTick.Stop()
	keepalive := time.NewTicker(w.Keepalive.D())
	defer keepalive.Stop()
	var pinging atomic.Bool

	if err := s.fill(); err != nil {
		return err
	}
	// Actions, version 2: what this host allows, what runs it knows of,
	// and what the server may have missed of them.
	var runsNotify <-chan struct{}
	if s.version >= 2 {
		if err := s.announceActions(); err != nil {
			return err
		}
		a.runs.reconnected()
		if err := s.send(&wire.Runs{Runs: a.runs.statuses()}); err != nil {
			return fmt.Errorf("send runs: %w", err)
		}
		if err := s.sendRuns(); err != nil {
			return err
		}
		runsNotify = a.runs.notify
	}
	for {
		select {
		case <-runsNotify:
			if err := s.sendRuns(); err != nil {
				return err
			}
		case <-ctx.Done():
			s.conn.Close(websocket.StatusNormalClosure, "agent stopping")
			return nil
		case err := <-readErr:
			return err
		case m := <-frames:
			if err := s.handle(m); err != nil {
				return err
			}
		case <-q.Notify():
			if err := s.fill(); err != nil {
				return err
			}
		case <-keepalive.C:
			if err := s.send(&wire.Keepalive{Time: s.now()}); err != nil {
				return fmt.Errorf("send keepalive: %w", err)
			}
			// A ping finds a connection that died without a word (a NAT
			// forgot it) long before TCP would.
			if pinging.CompareAndSwap(false, true) {
				go func() {
					defer pinging.Store(false)
					pctx, cancel := context.WithTimeout(rctx, pingTimeout)
					defer cancel()
					if err := s.conn.Ping(pctx); err != nil && rctx.Err() == nil {
						a.log.Warn("the server does not answer pings; reconnecting", "err", err)
						s.conn.CloseNow()
					}
				}()
			}
		case <-factsTick.C:
			collect()
		case f := <-facts:
			if err := s.send(f); err != nil {
				return fmt.Errorf("send facts: %w", err)
			}
			a.log.Debug("sent inventory facts", "units", len(f.Units), "ports", len(f.Ports))
		}
	}
}

func (s *session) readLoop(ctx context.Context, frames chan<- wire.Message, readErr chan<- error) {
	for {
		_, raw, err := s.conn.Read(ctx)
		if err != nil {
			if st := websocket.CloseStatus(err); st != -1 {
				readErr <- fmt.Errorf("the server closed the connection (%d)", st)
			} else {
				readErr <- fmt.Errorf("read: %w", err)
			}
			return
		}
		m, err := wire.DecodeFromServerVersion(raw, s.version, time.Now())
		if err != nil {
			readErr <- fmt.Errorf("the server sent a frame this agent refuses: %w", err)
			return
		}
		select {
		case frames <- m:
		case <-ctx.Done():
			return
		}
	}
}

func (s *session) handle(m wire.Message) error {
	switch m := m.(type) {
	case *wire.Ack:
		// Never more than was sent: a confused server must not make the
		// agent forget results it has not seen.
		seq := min(m.Seq, s.sent)
		if err := s.q.Ack(seq); err != nil {
			return err
		}
		i := 0
		for i < len(s.inflight) && s.inflight[i] <= seq {
			i++
		}
		s.inflight = s.inflight[i:]
		return s.fill()
	case *wire.Checks:
		s.a.applyChecks(m.Checks, s.sched)
	case *wire.Run:
		if !s.sched.RunNow(m.System, m.Check, m.Request) {
			s.a.log.Warn("the server asked to run a check this agent does not have", "system", m.System, "check", m.Check, "request", m.Request)
		}
	case *wire.StartRun:
		s.a.runs.start(s.a.ctx, m, s.skew)
	case *wire.CancelRun:
		s.a.runs.cancel(m.Run)
	case *wire.RunAck:
		s.a.runs.acked(m.Run)
	case *wire.ErrorMessage:
		return &ServerError{Code: m.Code, Message: m.Message}
	default:
		return fmt.Errorf("the server sent an unexpected %s frame", m.FrameType())
	}
	return nil
}

// fill sends queued results after s.sent until the window is full.
func (s *session) fill() error {
	for len(s.inflight) < window {
		rs, err := s.q.Read(s.sent, wire.MaxBatch, batchBytes)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return nil
		}
		last := rs[len(rs)-1].Seq
		// A result the server would refuse (older than it keeps, say, after
		// a month without the server) would block everything behind it:
		// it is reported as lost instead.
		now := s.now()
		batch := rs[:0]
		var gaps []wire.Gap
		for _, r := range rs {
			r.Started = r.Started.Add(s.skew)
			if err := (&wire.Results{Results: []wire.Result{r}}).Validate(now); err != nil {
				s.a.log.Warn("dropping a queued result the server would refuse", "seq", r.Seq, "err", err)
				if n := len(gaps); n > 0 && gaps[n-1].To+1 == r.Seq {
					gaps[n-1].To++
					gaps[n-1].Dropped++
				} else {
					gaps = append(gaps, wire.Gap{From: r.Seq, To: r.Seq, Dropped: 1})
				}
				continue
			}
			batch = append(batch, r)
		}
		for i := range gaps {
			if err := s.send(&gaps[i]); err != nil {
				return fmt.Errorf("send gap: %w", err)
			}
		}
		if len(batch) > 0 {
			if err := s.send(&wire.Results{Results: batch}); err != nil {
				return fmt.Errorf("send results: %w", err)
			}
			s.inflight = append(s.inflight, batch[len(batch)-1].Seq)
		}
		s.sent = last
	}
	return nil
}

func (s *session) send(m wire.Message) error {
	raw, err := wire.EncodeVersion(m, s.version, s.now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, raw); err != nil {
		if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline") {
			return fmt.Errorf("the server did not take a frame within %s", writeTimeout)
		}
		return err
	}
	return nil
}

// announceActions tells the server what this host allows. A declaration
// the server would refuse is left out, and said so here.
func (s *session) announceActions() error {
	var decls []wire.ActionDeclaration
	for _, spec := range s.a.runs.runner.Actions() {
		d := declarationOf(spec)
		if err := d.Validate(); err != nil {
			s.a.log.Warn("not offering an action the server would refuse", "action", spec.Name, "err", err)
			continue
		}
		decls = append(decls, d)
	}
	if err := s.send(&wire.Actions{Actions: decls}); err != nil {
		return fmt.Errorf("send actions: %w", err)
	}
	return nil
}

// sendRuns sends the output and ends of runs the server has not seen.
func (s *session) sendRuns() error {
	for _, m := range s.a.runs.pending(s.skew) {
		if err := s.send(m); err != nil {
			return fmt.Errorf("send %s: %w", m.FrameType(), err)
		}
	}
	return nil
}

// declarationOf is an action as the wire carries it.
func declarationOf(a aramaki.ActionSpec) wire.ActionDeclaration {
	d := wire.ActionDeclaration{Name: a.Name, Description: a.Description, Argv: a.Argv, Timeout: wire.Millis(a.Timeout), User: a.User}
	for _, p := range a.Params {
		d.Params = append(d.Params, wire.ActionParam{Name: p.Name, Type: string(p.Type), Description: p.Description,
			Pattern: p.Pattern, Min: p.Min, Max: p.Max, Values: p.Values, Default: p.Default})
	}
	return d
}
