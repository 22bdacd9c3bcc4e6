package action

import (
	"cmp"
	"context"
	"maps"
	"os"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aramaki/aramaki"
)

// Defaults and limits of a Runner.
const (
	DefaultMaxRuns   = 16
	DefaultKillGrace = 5 * time.Second
	// MaxChunk is the most output passed on at once.
	MaxChunk = 16 << 10
	// MaxRunID is the longest run id.
	MaxRunID = 128
	// keepFinished is how many ended runs a Runner remembers, so that the
	// agent can report them after a reconnect and a run id is never run
	// twice.
	keepFinished = 32
)

// Env is the whole environment of an action: nothing of the agent's leaks
// into it.
var Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}

// Output streams.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Chunk is a piece of a run's output.
type Chunk struct {
	Seq    int    // 0, 1, 2, … in the order the pieces were read
	Stream string // Stdout or Stderr
	Data   []byte // valid UTF-8, at most MaxChunk bytes
}

// Config is how a Runner runs actions.
type Config struct {
	// MaxRuns is how many runs may go on at once (default 16); more are
	// refused.
	MaxRuns int
	// KillGrace is how long a run that timed out or was cancelled has
	// between SIGTERM and SIGKILL (default 5s).
	KillGrace time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxRuns <= 0 {
		c.MaxRuns = DefaultMaxRuns
	}
	if c.KillGrace <= 0 {
		c.KillGrace = DefaultKillGrace
	}
	return c
}

// Runner runs the host's actions. It is safe for concurrent use.
type Runner struct {
	cfg Config

	mu       sync.Mutex
	specs    map[string]aramaki.ActionSpec
	running  map[string]*Run
	finished []*Run // the most recent last
	wg       sync.WaitGroup
}

// NewRunner returns a Runner without actions; Set gives it some.
func NewRunner(cfg Config) *Runner {
	return &Runner{cfg: cfg.withDefaults(), specs: map[string]aramaki.ActionSpec{}, running: map[string]*Run{}}
}

// Set replaces the allowed actions, as after a reload. Runs in progress go
// on as they were started. It refuses a list with an invalid action or a
// name given twice, and keeps the actions it had.
func (r *Runner) Set(specs []aramaki.ActionSpec) error {
	m := make(map[string]aramaki.ActionSpec, len(specs))
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			return err
		}
		if _, dup := m[s.Name]; dup {
			return aramaki.Errorf(aramaki.EINVALID, "action %s is declared twice", s.Name)
		}
		if s.Timeout == 0 {
			s.Timeout = aramaki.DefaultRunTimeout
		}
		m[s.Name] = s
	}
	r.mu.Lock()
	r.specs = m
	r.mu.Unlock()
	return nil
}

// Actions returns the allowed actions, sorted by name: what the agent
// tells the server this host allows.
func (r *Runner) Actions() []aramaki.ActionSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.SortedFunc(maps.Values(r.specs), func(a, b aramaki.ActionSpec) int { return cmp.Compare(a.Name, b.Name) })
}

// Start starts a run of an allowed action with the given values, streaming
// its output to out (which may be nil). out is called from one goroutine at
// a time, in the order the output was read, while the run goes on; it
// should not block for long.
//
// Start refuses, and starts nothing, when the action is not allowed on
// this host, a value does not fit its parameter, the run id is running or
// has run already, MaxRuns runs are going on, or the action runs as a user
// the agent cannot become. Otherwise it returns the run; a program that
// cannot be started makes a run that has failed already.
//
// ctx bounds the run: when it ends, the run is cancelled as by Cancel. Pass
// the agent's lifetime, not a request's.
func (r *Runner) Start(ctx context.Context, id, action string, values map[string]string, out func(Chunk)) (*Run, error) {
	if id == "" || len(id) > MaxRunID {
		return nil, aramaki.Errorf(aramaki.EINVALID, "a run id must have 1 to %d bytes", MaxRunID)
	}
	if ctx.Err() != nil {
		return nil, aramaki.Errorf(aramaki.EUNAVAILABLE, "the agent is stopping")
	}
	r.mu.Lock()
	spec, ok := r.specs[action]
	r.mu.Unlock()
	if !ok {
		return nil, aramaki.Errorf(aramaki.ENOTFOUND, "action %s is not allowed on this host", action)
	}
	argv, err := spec.Command(values)
	if err != nil {
		return nil, err
	}
	cred, err := credential(spec, os.Geteuid())
	if err != nil {
		return nil, err
	}

	run := &Run{
		ID: id, Action: action, Argv: argv, User: spec.User,
		timeout: spec.Timeout, out: out,
		cancel: make(chan struct{}), done: make(chan struct{}),
		status: Status{ID: id, Action: action, State: aramaki.RunRunning, ExitCode: -1},
	}
	r.mu.Lock()
	switch {
	case r.running[id] != nil:
		r.mu.Unlock()
		return nil, aramaki.Errorf(aramaki.ECONFLICT, "run %s is running already", id)
	case slices.ContainsFunc(r.finished, func(f *Run) bool { return f.ID == id }):
		r.mu.Unlock()
		return nil, aramaki.Errorf(aramaki.ECONFLICT, "run %s has run already: a run id is run once", id)
	case len(r.running) >= r.cfg.MaxRuns:
		r.mu.Unlock()
		return nil, aramaki.Errorf(aramaki.EUNAVAILABLE, "%d actions are running on this host already, the most it runs at once: try again when one has ended", len(r.running))
	}
	r.running[id] = run
	r.wg.Add(1)
	r.mu.Unlock()

	started := make(chan struct{})
	go func() {
		defer r.wg.Done()
		run.execute(ctx, cred, r.cfg.KillGrace, started)
		r.mu.Lock()
		delete(r.running, id)
		r.finished = append(r.finished, run)
		if len(r.finished) > keepFinished {
			r.finished = slices.Delete(r.finished, 0, len(r.finished)-keepFinished)
		}
		r.mu.Unlock()
		// Only now: whoever waits for the run finds the runner's books
		// agreeing (its slot free, its id taken).
		close(run.done)
	}()
	<-started
	return run, nil
}

// Cancel cancels a run in progress by its id.
func (r *Runner) Cancel(id string) error {
	r.mu.Lock()
	run := r.running[id]
	r.mu.Unlock()
	if run == nil {
		return aramaki.Errorf(aramaki.ENOTFOUND, "run %s is not running on this host", id)
	}
	run.Cancel()
	return nil
}

// Lookup returns a run in progress or one of the runs that ended last.
func (r *Runner) Lookup(id string) (*Run, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if run := r.running[id]; run != nil {
		return run, true
	}
	for _, run := range r.finished {
		if run.ID == id {
			return run, true
		}
	}
	return nil, false
}

// Runs returns the status of the runs in progress and of the runs that
// ended last, ordered by when they started: what the agent reconciles with
// the server after a reconnect.
func (r *Runner) Runs() []Status {
	r.mu.Lock()
	runs := slices.Concat(r.finished, slices.Collect(maps.Values(r.running)))
	r.mu.Unlock()
	out := make([]Status, len(runs))
	for i, run := range runs {
		out[i] = run.Status()
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.ID, b.ID)) })
	return out
}

// Wait waits until every run has ended; cancel the context given to Start
// first to make them end.
func (r *Runner) Wait() {
	r.wg.Wait()
}

// credential is who an action runs as: nil for the agent's own user.
// Only root can become someone else; an agent that is not root refuses an
// action declared with another user rather than run it as itself.
func credential(spec aramaki.ActionSpec, euid int) (*syscall.Credential, error) {
	if spec.User == "" {
		return nil, nil
	}
	u, err := user.Lookup(spec.User)
	if err != nil {
		return nil, aramaki.Errorf(aramaki.EINVALID, "action %s runs as user %s, who does not exist on this host", spec.Name, spec.User)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, aramaki.Errorf(aramaki.EINVALID, "action %s runs as user %s, whose uid %s or gid %s is not a number", spec.Name, spec.User, u.Uid, u.Gid)
	}
	if int(uid) == euid {
		return nil, nil
	}
	if euid != 0 {
		return nil, aramaki.Errorf(aramaki.EFORBIDDEN, "action %s runs as user %s, and the agent (uid %d) is not root and cannot become another user", spec.Name, spec.User, euid)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, aramaki.Errorf(aramaki.EINVALID, "action %s runs as user %s, whose groups cannot be read: %v", spec.Name, spec.User, err)
	}
	groups := make([]uint32, 0, len(ids))
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil {
			groups = append(groups, uint32(g))
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, nil
}
