package check

import (
	"context"
	"hash/fnv"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/aramaki/aramaki/wire"
)

// DefaultConcurrency is how many checks run at once unless told otherwise.
const DefaultConcurrency = 4

// Scheduler runs every check at its interval. Each check fires at a fixed
// phase within its interval (Offset): derived from a seed (the agent id)
// and the check, so checks with the same interval spread out instead of all
// firing at once, and a restarted agent keeps the rhythm it had. At most a
// fixed number of checks run at once; a check never overlaps itself, and a
// run that misses its slot waits for the next one.
type Scheduler struct {
	seed   string
	report func(wire.Result)
	slots  chan struct{}

	mu      sync.Mutex
	ctx     context.Context // set while Run runs
	defs    map[string]wire.CheckDefinition
	running map[string]context.CancelFunc
	wg      sync.WaitGroup
}

// NewScheduler makes a scheduler that hands every result to report (from
// several goroutines at once). concurrency ≤ 0 means DefaultConcurrency.
func NewScheduler(seed string, concurrency int, report func(wire.Result)) *Scheduler {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	return &Scheduler{
		seed:    seed,
		report:  report,
		slots:   make(chan struct{}, concurrency),
		defs:    map[string]wire.CheckDefinition{},
		running: map[string]context.CancelFunc{},
	}
}

// Start starts running the checks; they run until ctx ends. Then they stop
// (commands still running are killed, and their results not reported);
// Wait waits for that.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx = ctx
	for key := range s.defs {
		s.start(key)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		s.mu.Lock()
		s.ctx = nil
		s.running = map[string]context.CancelFunc{}
		s.mu.Unlock()
	}()
}

// Wait returns when the scheduler has stopped after its context ended.
func (s *Scheduler) Wait() { s.wg.Wait() }

// Set replaces the check definitions: removed checks stop (a run in
// progress is killed), new ones start, changed ones restart, and unchanged
// ones carry on undisturbed.
func (s *Scheduler) Set(defs []wire.CheckDefinition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]wire.CheckDefinition, len(defs))
	for _, d := range defs {
		next[d.Key()] = d
	}
	for key, old := range s.defs {
		if d, ok := next[key]; !ok || !reflect.DeepEqual(d, old) {
			if stop := s.running[key]; stop != nil {
				stop()
				delete(s.running, key)
			}
		}
	}
	s.defs = next
	if s.ctx == nil {
		return
	}
	for key := range next {
		if s.running[key] == nil {
			s.start(key)
		}
	}
}

// Definitions returns the current definitions, ordered by key.
func (s *Scheduler) Definitions() []wire.CheckDefinition {
	s.mu.Lock()
	defer s.mu.Unlock()
	defs := make([]wire.CheckDefinition, 0, len(s.defs))
	for _, d := range s.defs {
		defs = append(defs, d)
	}
	sort.Slice(defs, func(i, j int) bool { return defs[i].Key() < defs[j].Key() })
	return defs
}

// RunNow runs a check at once, outside its schedule, and reports its result
// with request set. It reports false, and runs nothing, when there is no
// such check or the scheduler is not running.
func (s *Scheduler) RunNow(system, name, request string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	def, ok := s.defs[system+"/"+name]
	if !ok || s.ctx == nil {
		return false
	}
	ctx := s.ctx
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.runOnce(ctx, def, request)
	}()
	return true
}

// start starts key's loop; s.mu is held.
func (s *Scheduler) start(key string) {
	ctx, cancel := context.WithCancel(s.ctx)
	s.running[key] = cancel
	def := s.defs[key]
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.loop(ctx, def)
	}()
}

func (s *Scheduler) loop(ctx context.Context, def wire.CheckDefinition) {
	interval, offset := def.Interval.D(), s.Offset(def)
	timer := time.NewTimer(time.Until(NextSlot(time.Now(), interval, offset)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		s.runOnce(ctx, def, "")
		timer.Reset(time.Until(NextSlot(time.Now(), interval, offset)))
	}
}

func (s *Scheduler) runOnce(ctx context.Context, def wire.CheckDefinition, request string) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	res := Run(ctx, def)
	<-s.slots
	if ctx.Err() != nil {
		return
	}
	res.Request = request
	s.report(res)
}

// Offset is the check's phase within its interval: a hash of the seed and
// the check's key, so it is the same after every restart.
func (s *Scheduler) Offset(def wire.CheckDefinition) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(s.seed))
	h.Write([]byte{0})
	h.Write([]byte(def.Key()))
	return time.Duration(h.Sum64() % uint64(def.Interval.D()))
}

// NextSlot is the first time after now at which a check with this interval
// and offset fires: the instants offset + k·interval since the Unix epoch.
func NextSlot(now time.Time, interval, offset time.Duration) time.Time {
	n, iv, off := now.UnixNano(), int64(interval), int64(offset)
	k := (n - off) / iv
	if n-off < 0 && (n-off)%iv != 0 {
		k--
	}
	return time.Unix(0, (k+1)*iv+off)
}
