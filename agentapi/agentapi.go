// Package agentapi is the way in for agents: the enrollment endpoint and
// the agent websocket, speaking the wire protocol. It authenticates agents
// by their Ed25519 keys, feeds their results to the service's writer and
// acknowledges them after commit, and keeps the live connections the
// service uses to push checks and ask for ad hoc runs.
package agentapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/wire"
)

// Options tune the agent API.
type Options struct {
	// Keepalive is how often agents send keepalives.
	Keepalive time.Duration
	// AuthTimeout bounds the handshake.
	AuthTimeout time.Duration
	// InFlight bounds the result batches of one connection waiting for
	// their commit; more make the connection wait (back-pressure).
	InFlight int
}

// Server serves agents.
type Server struct {
	svc  *service.Service
	log  *slog.Logger
	opts Options

	mu    sync.Mutex
	conns map[string]*conn
}

// New returns the agent API over a service, and registers itself as the
// service's hub of agent connections.
func New(svc *service.Service, log *slog.Logger, opts Options) *Server {
	if opts.Keepalive == 0 {
		opts.Keepalive = 20 * time.Second
	}
	if opts.AuthTimeout == 0 {
		opts.AuthTimeout = 10 * time.Second
	}
	if opts.InFlight == 0 {
		opts.InFlight = 16
	}
	s := &Server{svc: svc, log: log, opts: opts, conns: map[string]*conn{}}
	svc.SetHub(s)
	return s
}

// Handler serves the enrollment endpoint and the websocket.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/agent/enroll", s.enroll)
	mux.HandleFunc("GET /api/v1/agent/connect", s.connect)
	return mux
}

// writeError answers like the JSON API does: the same body, the same
// mapping of codes to statuses.
func writeError(w http.ResponseWriter, code, msg string) {
	status := api.Status(code)
	var body api.ErrorBody
	body.Error.Code, body.Error.Message = code, msg
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
	if err != nil {
		writeError(w, aramaki.ETOOLARGE, "enrollment request exceeds 16 KiB")
		return
	}
	req, tok, err := wire.DecodeEnrollRequest(raw)
	if err != nil {
		writeError(w, aramaki.EINVALID, err.Error())
		return
	}
	a, err := s.svc.Enroll(r.Context(), tok.ID, tok.Secret, ed25519.PublicKey(req.PublicKey), req.Hostname, req.AgentVersion)
	if err != nil {
		code := aramaki.ErrorCode(err)
		if code == aramaki.EINTERNAL {
			s.log.Error("enrollment failed", "err", err)
		} else {
			s.log.Warn("enrollment refused", "host", req.Hostname, "remote", r.RemoteAddr, "reason", aramaki.ErrorMessage(err))
		}
		writeError(w, code, aramaki.ErrorMessage(err))
		return
	}
	s.log.Info("agent enrolled", "agent", a.ID, "host", a.Name, "systems", a.Systems)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(wire.EnrollResponse{AgentID: a.ID, Name: a.Name, Systems: a.Systems})
}

// conn is one authenticated agent connection.
type conn struct {
	agent     aramaki.Agent
	version   int       // the protocol version spoken
	connected time.Time // when it was accepted
	ws        *websocket.Conn
	out       chan []byte // frames to send; the writer goroutine owns ws writes
	done      chan struct{}
	once      sync.Once
}

func (c *conn) close(code websocket.StatusCode, reason string) {
	c.once.Do(func() {
		close(c.done)
		c.ws.Close(code, reason)
	})
}

func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: wire.Subprotocols()})
	if err != nil {
		return // Accept has answered
	}
	version, ok := wire.VersionOf(ws.Subprotocol())
	if !ok {
		ws.Close(websocket.StatusPolicyViolation, "speak "+strings.Join(wire.Subprotocols(), " or "))
		return
	}
	ws.SetReadLimit(wire.MaxFrameSize)
	ctx := r.Context()
	a, err := s.handshake(ctx, r, ws, version)
	if err != nil {
		s.log.Warn("agent refused", "remote", r.RemoteAddr, "reason", err)
		s.sendError(ctx, ws, err)
		return
	}
	c := &conn{agent: a, version: version, connected: time.Now(), ws: ws, out: make(chan []byte, 64), done: make(chan struct{})}
	// Registered before the welcome: once the agent knows it is in, the
	// server can reach it.
	s.register(c)
	defer s.unregister(c)
	if err := s.welcome(ctx, c); err != nil {
		c.close(websocket.StatusInternalError, "")
		return
	}
	s.svc.AgentConnected(ctx, a)
	s.log.Info("agent connected", "agent", a.ID, "host", a.Name, "remote", r.RemoteAddr)
	err = s.serve(ctx, c)
	c.close(websocket.StatusNormalClosure, "")
	s.log.Info("agent disconnected", "agent", a.ID, "host", a.Name, "reason", err)
	s.unregister(c)
	if s.lookup(a.ID) == nil {
		// Its running actions' outcome is unknown until it is back.
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if err := s.svc.AgentGone(gctx, a.ID); err != nil {
			s.log.Error("cannot mark the runs of a disconnected agent", "agent", a.ID, "err", err)
		}
		cancel()
	}
}

func (s *Server) sendError(ctx context.Context, ws *websocket.Conn, err error) {
	code := aramaki.ErrorCode(err)
	var werr *wire.Error
	if errors.As(err, &werr) {
		code = wire.CodeProtocol
	}
	if code == aramaki.EFORBIDDEN {
		code = wire.CodeRevoked
	}
	msg := aramaki.ErrorMessage(err)
	if werr != nil {
		msg = werr.Msg
	}
	if frame, e := wire.Encode(&wire.ErrorMessage{Code: code, Message: msg}, time.Now()); e == nil {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ws.Write(wctx, websocket.MessageText, frame)
		cancel()
	}
	ws.Close(websocket.StatusPolicyViolation, code)
}

// handshake: hello with a nonce, auth signed over it and the TLS channel.
func (s *Server) handshake(ctx context.Context, r *http.Request, ws *websocket.Conn, version int) (aramaki.Agent, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.AuthTimeout)
	defer cancel()
	nonce := make([]byte, wire.NonceSize)
	rand.Read(nonce)
	hello, err := wire.EncodeVersion(&wire.Hello{Version: version, Nonce: nonce, ServerTime: time.Now().UTC()}, version, time.Now())
	if err != nil {
		return aramaki.Agent{}, err
	}
	if err := ws.Write(ctx, websocket.MessageText, hello); err != nil {
		return aramaki.Agent{}, err
	}
	_, raw, err := ws.Read(ctx)
	if err != nil {
		return aramaki.Agent{}, err
	}
	auth, err := wire.DecodeAuthVersion(raw, version, time.Now())
	if err != nil {
		return aramaki.Agent{}, err
	}
	var binding []byte
	if r.TLS != nil {
		if binding, err = r.TLS.ExportKeyingMaterial(wire.ChannelBindingLabel, nil, 32); err != nil {
			return aramaki.Agent{}, err
		}
	}
	a, err := s.svc.AuthenticateAgent(ctx, auth.AgentID, wire.AuthPayload(nonce, auth.AgentID, binding), auth.Signature)
	if err != nil {
		return aramaki.Agent{}, err
	}
	a.Version = auth.AgentVersion
	return a, nil
}

// welcome accepts the agent: its checks, and what is stored of its results.
func (s *Server) welcome(ctx context.Context, c *conn) error {
	w := &wire.Welcome{AgentID: c.agent.ID, Checks: definitions(s.svc.ChecksFor(c.agent)), Keepalive: wire.Millis(s.opts.Keepalive), Acked: c.agent.LastSeq}
	frame, err := wire.Encode(w, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.AuthTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, frame)
}

func definitions(specs []service.CheckSpec) []wire.CheckDefinition {
	out := make([]wire.CheckDefinition, 0, len(specs))
	for _, c := range specs {
		out = append(out, wire.CheckDefinition{System: c.System, Name: c.Name, Command: c.Command, Interval: wire.Millis(c.Interval), Timeout: wire.Millis(c.Timeout)})
	}
	return out
}

// serve runs the connection: the reader, in this goroutine, submits
// results; the writer sends frames and acknowledges batches in the order
// they were submitted, each once its commit is done. Two goroutines a
// connection keep ten thousand agents within memory.
func (s *Server) serve(ctx context.Context, c *conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pending := make(chan (<-chan service.IngestResult), s.opts.InFlight)
	werr := make(chan error, 1)
	go func() {
		werr <- s.writer(ctx, c, pending)
		cancel() // stops the reader too
	}()
	err := s.reader(ctx, c, pending)
	cancel()
	if w := <-werr; err == nil || errors.Is(err, context.Canceled) {
		err = w
	}
	return err
}

func (s *Server) writer(ctx context.Context, c *conn, pending <-chan (<-chan service.IngestResult)) error {
	changed := s.svc.ConfigChanged()
	var waiting []<-chan service.IngestResult // submitted, oldest first, commit not yet known
	for {
		var head <-chan service.IngestResult
		if len(waiting) > 0 {
			head = waiting[0]
		}
		in := pending
		if len(waiting) >= s.opts.InFlight {
			in = nil // the reader waits: back-pressure
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return errors.New("closed")
		case ch := <-in:
			waiting = append(waiting, ch)
		case res := <-head:
			waiting = waiting[1:]
			if res.Err != nil {
				return res.Err // the agent reconnects and resends
			}
			frame, err := wire.Encode(&wire.Ack{Seq: res.LastSeq}, time.Now())
			if err != nil {
				return err
			}
			if err := c.ws.Write(ctx, websocket.MessageText, frame); err != nil {
				return err
			}
		case frame := <-c.out:
			if err := c.ws.Write(ctx, websocket.MessageText, frame); err != nil {
				return err
			}
		case <-changed:
			changed = s.svc.ConfigChanged()
			frame, err := wire.Encode(&wire.Checks{Checks: definitions(s.svc.ChecksFor(c.agent))}, time.Now())
			if err != nil {
				return err
			}
			if err := c.ws.Write(ctx, websocket.MessageText, frame); err != nil {
				return err
			}
		}
	}
}

func (s *Server) reader(ctx context.Context, c *conn, pending chan<- (<-chan service.IngestResult)) error {
	stream := service.NewStream()
	for {
		// An agent sends a keepalive every Keepalive; one silent for three
		// of them is gone (a host powered off leaves a half-open socket).
		rctx, cancel := context.WithTimeout(ctx, 3*s.opts.Keepalive)
		_, raw, err := c.ws.Read(rctx)
		cancel()
		if err != nil {
			return err
		}
		msg, err := wire.DecodeFromAgentVersion(raw, c.version, time.Now())
		if err != nil {
			s.log.Warn("agent sent a bad frame", "agent", c.agent.ID, "err", err)
			s.sendError(ctx, c.ws, err)
			return err
		}
		s.svc.Seen(c.agent.ID, c.agent.Version)
		var ch <-chan service.IngestResult
		switch m := msg.(type) {
		case *wire.Results:
			ch, err = s.svc.SubmitResults(ctx, stream, c.agent, results(m.Results), nil)
		case *wire.Gap:
			ch, err = s.svc.SubmitResults(ctx, stream, c.agent, nil, &aramaki.GapReport{From: m.From, To: m.To})
		case *wire.Keepalive:
			continue
		case *wire.Facts:
			raw, _ := json.Marshal(m)
			if err := s.svc.RecordFacts(ctx, c.agent, m.Collected, raw); err != nil {
				s.log.Warn("storing agent facts failed", "agent", c.agent.ID, "err", err)
			}
			continue
		case *wire.Actions:
			specs := make([]aramaki.ActionSpec, 0, len(m.Actions))
			for _, d := range m.Actions {
				specs = append(specs, specOf(d))
			}
			if err := s.svc.SetAgentActions(ctx, c.agent, specs); err != nil {
				s.log.Warn("storing the actions an agent allows failed", "agent", c.agent.ID, "err", err)
			}
			c.agent.Actions = specs
			continue
		case *wire.RunOutput:
			if err := s.svc.RunOutput(ctx, c.agent, m.Run, m.Seq, m.Data); err != nil {
				if aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
					return err // the agent reconnects and sends it again
				}
				s.log.Warn("run output of no part of this agent's", "agent", c.agent.ID, "run", m.Run, "err", err)
			}
			continue
		case *wire.RunFinished:
			end := service.RunEnd{State: aramaki.RunState(m.State), ExitCode: m.ExitCode, Started: m.Started.UTC(), Ended: m.Ended.UTC(),
				Error: m.Error, Dropped: int64(m.Dropped)}
			err := s.svc.RunFinished(ctx, c.agent, m.Run, end)
			if err != nil && aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
				return err // the agent reconnects and says it again
			}
			// Stored (or a run this server does not know): the agent may
			// forget it.
			s.send(c, &wire.RunAck{Run: m.Run})
			continue
		case *wire.Runs:
			known := map[string]string{}
			for _, r := range m.Runs {
				known[r.Run] = r.State
			}
			if err := s.svc.ReconcileRuns(ctx, c.agent, known, c.connected); err != nil {
				s.log.Warn("reconciling an agent's runs failed", "agent", c.agent.ID, "err", err)
			}
			continue
		default:
			continue
		}
		if err != nil {
			return err
		}
		select {
		case pending <- ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func results(in []wire.Result) []aramaki.CheckResult {
	out := make([]aramaki.CheckResult, len(in))
	for i, r := range in {
		out[i] = aramaki.CheckResult{Seq: r.Seq, System: r.System, Check: r.Check, Status: aramaki.StatusFromExit(int(r.Status)),
			Output: r.Output, Started: r.Started.UTC(), Duration: r.Duration.D(), Request: r.Request}
		if len(r.Metrics) > 0 {
			out[i].Metrics = make([]aramaki.Metric, len(r.Metrics))
			for j, m := range r.Metrics {
				out[i].Metrics[j] = aramaki.Metric(m)
			}
		}
	}
	return out
}

func (s *Server) register(c *conn) {
	s.mu.Lock()
	old := s.conns[c.agent.ID]
	s.conns[c.agent.ID] = c
	s.mu.Unlock()
	if old != nil {
		old.close(websocket.StatusPolicyViolation, "replaced by a newer connection of the same agent")
	}
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	if s.conns[c.agent.ID] == c {
		delete(s.conns, c.agent.ID)
	}
	s.mu.Unlock()
}

func (s *Server) lookup(id string) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[id]
}

// Connected reports whether the agent is connected to this server.
func (s *Server) Connected(id string) bool { return s.lookup(id) != nil }

// Revoked ends a revoked agent's connection with an error frame.
func (s *Server) Revoked(id, message string) {
	code := wire.CodeRevoked
	c := s.lookup(id)
	if c == nil {
		return
	}
	if frame, err := wire.Encode(&wire.ErrorMessage{Code: code, Message: message}, time.Now()); err == nil {
		select {
		case c.out <- frame:
		default:
		}
	}
	// Give the writer a moment to deliver the reason, then cut.
	time.AfterFunc(time.Second, func() { c.close(websocket.StatusPolicyViolation, code) })
}

// Run asks a connected agent to run a check now.
func (s *Server) Run(agentID, request, system, check string) error {
	c := s.lookup(agentID)
	if c == nil {
		return aramaki.Errorf(aramaki.ENOTFOUND, "agent %s is not connected", agentID)
	}
	frame, err := wire.Encode(&wire.Run{Request: request, System: system, Check: check}, time.Now())
	if err != nil {
		return err
	}
	select {
	case c.out <- frame:
		return nil
	default:
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "agent %s is busy", agentID)
	}
}

// specOf is an action as the domain knows it.
func specOf(d wire.ActionDeclaration) aramaki.ActionSpec {
	a := aramaki.ActionSpec{Name: d.Name, Description: d.Description, Argv: d.Argv, Timeout: d.Timeout.D(), User: d.User}
	for _, p := range d.Params {
		a.Params = append(a.Params, aramaki.Param{Name: p.Name, Type: aramaki.ParamType(p.Type), Description: p.Description,
			Pattern: p.Pattern, Min: p.Min, Max: p.Max, Values: p.Values, Default: p.Default})
	}
	return a
}

// send queues a frame for a connection's writer; a full queue drops it
// (what is dropped is said again: acks are asked for again, runs started
// again by the dispatcher).
func (s *Server) send(c *conn, m wire.Message) error {
	frame, err := wire.EncodeVersion(m, c.version, time.Now())
	if err != nil {
		return err
	}
	select {
	case c.out <- frame:
		return nil
	case <-c.done:
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "agent %s is gone", c.agent.ID)
	default:
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "agent %s is busy", c.agent.ID)
	}
}

// StartRun asks a connected agent to start its part of a run.
func (s *Server) StartRun(start aramaki.RunStart, timeout time.Duration) error {
	c := s.lookup(start.Agent)
	if c == nil {
		return aramaki.Errorf(aramaki.ENOTFOUND, "agent %s is not connected here", start.Agent)
	}
	if c.version < 2 {
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "agent %s speaks protocol version %d, which has no actions: upgrade it", start.Agent, c.version)
	}
	return s.send(c, &wire.StartRun{Run: start.Run, Action: start.Action, Params: start.Params, Timeout: wire.Millis(timeout)})
}

// CancelRun asks a connected agent to stop its part of a run.
func (s *Server) CancelRun(agentID, run string) error {
	c := s.lookup(agentID)
	if c == nil {
		return aramaki.Errorf(aramaki.ENOTFOUND, "agent %s is not connected here", agentID)
	}
	if c.version < 2 {
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "agent %s speaks protocol version %d, which has no actions", agentID, c.version)
	}
	return s.send(c, &wire.CancelRun{Run: run})
}

// ConnectedAgents lists the agents connected here that can run actions.
func (s *Server) ConnectedAgents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.conns))
	for id, c := range s.conns {
		if c.version >= 2 {
			out = append(out, id)
		}
	}
	return out
}
