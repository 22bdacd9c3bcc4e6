package service

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aramaki/aramaki"
)

// Service is the application: every use case of the API, UI and CLI goes
// through it, and it decides who may do what.
type Service struct {
	store  Store
	config ConfigSource
	log    *slog.Logger
	now    func() time.Time

	mu    sync.RWMutex
	graph *aramaki.Graph

	syncMu sync.Mutex // one config sync at a time

	logins  *loginGuard
	hub     AgentHub
	waiters runWaiters
	ingest  chan *submission
	seenMu  sync.Mutex
	seen    map[string]aramaki.AgentSeen // keepalives not yet written
	names   sync.Map                     // agent id -> host name, for summaries

	changed   chan struct{} // closed and replaced when the config changes
	changedMu sync.Mutex

	groupWait   time.Duration
	alertWake   chan struct{} // a status changed: run the alert engine soon
	url         string
	maxAttempts int
	permanent   func(error) bool

	digestEvery   time.Duration
	digestChecked time.Time // only RunAlerts' goroutine touches it

	runWake chan struct{} // a run may be waiting to start
	fedWake chan struct{} // a status changed: tell peers now, not at the next tick
	// shared is what FederateStatus and FederateGrants last found peers
	// told, so that an unchanged status or list of grants costs no write.
	sharedMu sync.Mutex
	shared   map[string]told
	// cancelsSent is when this replica last told an agent connected here
	// to stop its part of a cancelled run: only RunDispatch's goroutine
	// touches it.
	cancelsSent map[string]time.Time

	// Federation: this server's name and TLS CA pin as peers see them,
	// and how it joins others.
	serverName string
	caSHA256   string
	joiner     PeerJoiner
	links      linkStates // what the links with peers last reported (links.go)
	dialTurns  dialTurns  // the peers this replica dials (dialpeers.go)
}

// Options tune a Service; the zero value is usable.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// GroupWait is how long a new alert group waits for related alerts
	// before people are notified; DefaultGroupWait when zero, no wait when
	// negative.
	GroupWait time.Duration
	// URL is the server's address people open, for links in notifications.
	URL string
	// MaxAttempts is how often a notification is tried before it is given
	// up; DefaultMaxAttempts when zero.
	MaxAttempts int
	// Permanent tells errors of senders that no retry can fix.
	Permanent func(error) bool
	// DigestEvery is how often owners get their systems' review digest by
	// e-mail; never when zero.
	DigestEvery time.Duration
	// ServerName is what this server calls itself to its peers (they may
	// call it otherwise); CASHA256 is the hex SHA-256 of its TLS CA
	// certificate, which peers pin.
	ServerName string
	CASHA256   string
}

// New returns a Service over a store and a config source. Call Open before use.
func New(store Store, config ConfigSource, log *slog.Logger, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	empty, _ := aramaki.NewGraph(nil)
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Permanent == nil {
		opts.Permanent = func(error) bool { return false }
	}
	if opts.GroupWait == 0 {
		opts.GroupWait = DefaultGroupWait
	} else if opts.GroupWait < 0 {
		opts.GroupWait = 0
	}
	return &Service{store: store, config: config, log: log, now: opts.Now, graph: empty,
		logins: newLoginGuard(), ingest: make(chan *submission, 1024), seen: map[string]aramaki.AgentSeen{}, changed: make(chan struct{}),
		groupWait: opts.GroupWait, alertWake: make(chan struct{}, 1), url: opts.URL, maxAttempts: opts.MaxAttempts, permanent: opts.Permanent, digestEvery: opts.DigestEvery, runWake: make(chan struct{}, 1), fedWake: make(chan struct{}, 1), shared: map[string]told{},
		serverName: opts.ServerName, caSHA256: opts.CASHA256}
}

// Open loads the system graph in force, and the agents' names for the
// timeline, from the store.
func (s *Service) Open(ctx context.Context) error {
	agents, err := s.store.Agents(ctx)
	if err != nil {
		return fmt.Errorf("load agents: %w", err)
	}
	for _, a := range agents {
		s.names.Store(a.ID, a.Name)
	}
	return s.refreshGraph(ctx)
}

// Graph returns the system graph in force.
func (s *Service) Graph() *aramaki.Graph {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.graph
}

func (s *Service) refreshGraph(ctx context.Context) error {
	systems, err := s.store.Systems(ctx)
	if err != nil {
		return fmt.Errorf("load systems: %w", err)
	}
	g, err := aramaki.NewGraph(systems)
	if err != nil {
		return fmt.Errorf("build system graph from store: %w", err)
	}
	s.mu.Lock()
	old := s.graph
	s.graph = g
	s.mu.Unlock()
	// Tell the agent connections only when something changed: they push
	// every agent its checks again.
	if !sameJSON(old.Systems(), g.Systems()) {
		s.changedMu.Lock()
		close(s.changed)
		s.changed = make(chan struct{})
		s.changedMu.Unlock()
	}
	return nil
}

// ConfigChanged returns a channel that is closed the next time the system
// graph is replaced.
func (s *Service) ConfigChanged() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	return s.changed
}

// event makes an event stamped now; the inputs are ours, so a failure is a
// bug. Summaries naming many systems are shortened to fit; the data keeps
// everything.
func (s *Service) event(kind aramaki.EventKind, actor string, systems []string, summary string, data any) (aramaki.Event, error) {
	ev, err := aramaki.NewEvent(s.now(), kind, actor, systems, clipRunes(summary, aramaki.MaxSummaryLen), data)
	if err != nil {
		return aramaki.Event{}, fmt.Errorf("make %s event: %w", kind, err)
	}
	return ev, nil
}

// require returns a forbidden (or, for nobody, unauthorized) error unless
// the principal holds at least role min on the system; GlobalScope asks for
// the role on everything.
func (s *Service) require(p aramaki.Principal, systemID string, min aramaki.Role) error {
	var role aramaki.Role
	if systemID == aramaki.GlobalScope {
		role = p.GlobalRole()
	} else {
		role = s.Graph().RoleOn(p, systemID)
	}
	if role.AtLeast(min) {
		return nil
	}
	if p.Anonymous() {
		return aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
	}
	if systemID == aramaki.GlobalScope {
		return aramaki.Errorf(aramaki.EFORBIDDEN, "this needs the %s role on the whole server", min)
	}
	return aramaki.Errorf(aramaki.EFORBIDDEN, "this needs the %s role on system %s", min, systemID)
}

// requireOwner asks for more than the admin role for what hands out power
// over a system (roles, agents): a system used by several others (shared
// storage under many customers' projects) may only be handed out by an
// admin of the system itself or of every system that uses it, not by the
// admin of one customer's project the role flows down from.
func (s *Service) requireOwner(p aramaki.Principal, systemID string) error {
	if err := s.require(p, systemID, aramaki.RoleAdmin); err != nil {
		return err
	}
	if p.GlobalRole().AtLeast(aramaki.RoleAdmin) {
		return nil
	}
	g := s.Graph()
	sys := g.System(systemID)
	for _, b := range p.Bindings {
		if b.System == systemID && b.Role.AtLeast(aramaki.RoleAdmin) {
			return nil
		}
	}
	for _, u := range sys.Roles[aramaki.RoleAdmin] {
		if u == p.User {
			return nil
		}
	}
	for _, parent := range g.UsedBy(systemID) {
		if !g.RoleOn(p, parent).AtLeast(aramaki.RoleAdmin) {
			return aramaki.Errorf(aramaki.EFORBIDDEN, "system %s is also used by %s, which you do not administer; ask an admin of %s itself", systemID, parent, systemID)
		}
	}
	return nil
}
