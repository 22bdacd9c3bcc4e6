// Package agent is the Aramaki agent: the small process on a host that is
// enrolled to one server, connects out to it over a websocket, runs the
// checks the server defines and reports their results, keepalives and
// inventory facts.
//
// Enroll makes a data directory the home of a newly enrolled agent; New
// and Run run it. The agent keeps working while the server is away: check
// definitions are cached on disk, and results wait in a disk queue (package
// queue) until the server acknowledges them. The checks themselves run in
// package check; package inventory collects the host's facts.
//
// # Data directory
//
//	agent.json   identity: agent id, name, server URL, pinned CA fingerprint and certificate
//	agent.key    Ed25519 private key, PKCS#8 PEM, mode 0600
//	checks.json  the check definitions last received from the server
//	queue/       results not yet acknowledged, and the sequence numbering
//	lock         held by the agent using the directory
//
// The agent imports neither the store nor the HTTP API nor any database
// driver, only the domain, the wire protocol and the websocket library.
package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/agent/action"
	"github.com/aramaki/aramaki/agent/check"
	"github.com/aramaki/aramaki/agent/queue"
	"github.com/aramaki/aramaki/wire"
)

// Defaults of Config.
const (
	DefaultFactsInterval  = 24 * time.Hour
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = time.Minute
	DefaultRevokedBackoff = 24 * time.Hour
)

// Config is how an agent runs. Only Dir is required.
type Config struct {
	// Dir is the data directory, enrolled with Enroll.
	Dir string
	// Version is the agent's version, reported to the server.
	Version string
	// Concurrency is how many checks may run at once (default 4).
	Concurrency int
	// QueueMaxRecords and QueueMaxBytes bound the disk queue (defaults
	// 100,000 results and 256 MiB); when full, the oldest results are
	// dropped and the server is told.
	QueueMaxRecords int
	QueueMaxBytes   int64
	// FactsInterval is how often inventory facts are sent besides on every
	// connect (default 24h).
	FactsInterval time.Duration
	// ActionsDir holds the host's allow-listed actions (see package
	// action); empty or missing: none.
	ActionsDir string
	// Reconnecting waits between MinBackoff and MaxBackoff (defaults 1s and
	// 60s), doubling with each failure, with jitter; after the server said
	// the agent is revoked it waits RevokedBackoff (default 24h).
	MinBackoff, MaxBackoff, RevokedBackoff time.Duration
}

func (c Config) withDefaults() Config {
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.FactsInterval <= 0 {
		c.FactsInterval = DefaultFactsInterval
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(c.MinBackoff, DefaultMaxBackoff)
	}
	if c.RevokedBackoff <= 0 {
		c.RevokedBackoff = DefaultRevokedBackoff
	}
	return c
}

// stableSession is how long a connection must last for the next
// reconnect to start again at the shortest backoff.
const stableSession = 30 * time.Second

// Agent is an enrolled agent, ready to run.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	id     Identity
	key    ed25519.PrivateKey
	client *http.Client

	queue *queue.Queue // while Run runs
	runs  *runs        // the host's action runs
	ctx   context.Context
}

// New loads the agent enrolled in cfg.Dir. It returns ErrNotEnrolled when
// the directory holds no enrollment.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	cfg = cfg.withDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("agent: no data directory")
	}
	if log == nil {
		log = slog.Default()
	}
	id, err := LoadIdentity(cfg.Dir)
	if err != nil {
		return nil, err
	}
	key, err := loadKey(cfg.Dir)
	if err != nil {
		return nil, err
	}
	ca, err := id.caCert()
	if err != nil {
		return nil, err
	}
	client, _, err := newClient(id.ServerURL, id.CASHA256, ca)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", IdentityFile, err)
	}
	return &Agent{cfg: cfg, log: log.With("agent", id.AgentID), id: id, key: key, client: client}, nil
}

// Identity is who the agent is.
func (a *Agent) Identity() Identity { return a.id }

// Run runs the agent until ctx ends: it runs the checks (from the cache at
// first, then as the server defines them), queues their results on disk,
// and keeps a connection to the server, reconnecting with backoff forever.
// It returns nil when ctx ends, after stopping the checks; an error only
// when it cannot start (another agent uses the directory, the queue cannot
// be opened). Call it once.
func (a *Agent) Run(ctx context.Context) error {
	unlock, err := lockDir(a.cfg.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	q, err := queue.Open(filepath.Join(a.cfg.Dir, QueueDir), queue.Options{MaxRecords: a.cfg.QueueMaxRecords, MaxBytes: a.cfg.QueueMaxBytes})
	if err != nil {
		return err
	}
	defer q.Close()
	a.queue = q

	defs, err := loadChecks(a.cfg.Dir)
	if err != nil {
		a.log.Warn("ignoring the cached check definitions; waiting for the server's", "err", err)
		defs = nil
	}
	sched := check.NewScheduler(a.id.AgentID, a.cfg.Concurrency, a.record)
	sched.Set(defs)
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		sched.Wait()
		a.client.CloseIdleConnections()
		a.log.Info("agent stopped", "pending", q.Pending())
	}()
	sched.Start(ctx)
	a.ctx = ctx
	runner := action.NewRunner(action.Config{})
	if a.cfg.ActionsDir != "" {
		specs, problems, err := action.Load(a.cfg.ActionsDir)
		for _, p := range problems {
			a.log.Error("an allow-listed action is refused", "problem", p.String())
		}
		if err != nil {
			a.log.Error("cannot read the allow-listed actions; none are offered", "dir", a.cfg.ActionsDir, "err", err)
		} else if err := runner.Set(specs); err != nil {
			a.log.Error("the allow-listed actions are refused; none are offered", "err", err)
		}
	}
	a.runs = newRuns(runner)
	defer runner.Wait()
	a.log.Info("agent started", "server", a.id.ServerURL, "name", a.id.Name, "version", a.cfg.Version,
		"checks", len(defs), "actions", len(runner.Actions()), "pending", q.Pending(), "last_seq", q.Last())

	failures := 0
	for {
		start := time.Now()
		welcomed, err := a.session(ctx, q, sched)
		if ctx.Err() != nil {
			return nil
		}
		// Only a connection that lasted resets the backoff: a server that
		// welcomes and then drops the agent at once is not hammered.
		if welcomed && time.Since(start) > stableSession {
			failures = 0
		}
		var refused *ServerError
		var wait time.Duration
		if errors.As(err, &refused) && refused.Code == wire.CodeRevoked {
			wait = a.cfg.RevokedBackoff
			a.log.Error("THE SERVER HAS REVOKED THIS AGENT: its results are refused. Enroll it again (aramaki-agent --enroll TOKEN --force) or uninstall it",
				"server", a.id.ServerURL, "message", refused.Message, "next_attempt_in", wait)
		} else {
			wait = backoff(failures, a.cfg.MinBackoff, a.cfg.MaxBackoff)
			failures++
			a.log.Warn("not connected to the server", "server", a.id.ServerURL, "err", err,
				"retry_in", wait.Round(time.Millisecond), "pending", q.Pending())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is the wait after n failures in a row: lo doubling up to hi, then
// a random part of it (between half and all), so that many agents cut off
// at once do not come back at once.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := hi
	if n < 30 && lo<<n < hi && lo<<n > 0 {
		d = lo << n
	}
	return d/2 + rand.N(d/2+1)
}

// record queues a check result; from then on it survives anything.
func (a *Agent) record(res wire.Result) {
	seq, err := a.queue.Append(res)
	if err != nil {
		a.log.Error("cannot queue a check result: it is lost", "system", res.System, "check", res.Check, "err", err)
		return
	}
	a.log.Debug("check result", "seq", seq, "system", res.System, "check", res.Check,
		"status", aramaki.Status(res.Status).String(), "duration", res.Duration.D(), "request", res.Request)
}

// applyChecks runs new definitions and caches them for the next start.
func (a *Agent) applyChecks(defs []wire.CheckDefinition, sched *check.Scheduler) {
	sched.Set(defs)
	if err := saveChecks(a.cfg.Dir, defs); err != nil {
		a.log.Error("cannot cache the check definitions; they run, but not after a restart without the server", "err", err)
	}
	if len(defs) > 20 {
		a.log.Info("check definitions", "count", len(defs))
		return
	}
	names := make([]string, 0, len(defs))
	for _, d := range defs {
		names = append(names, d.Key())
	}
	a.log.Info("check definitions", "count", len(defs), "checks", strings.Join(names, " "))
}
