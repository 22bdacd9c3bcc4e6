package check_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki/agent/check"
	"github.com/aramaki/aramaki/wire"
)

func TestNextSlot(t *testing.T) {
	base := time.Unix(1_800_000_000, 0) // a multiple of a minute
	cases := []struct {
		now              time.Time
		interval, offset time.Duration
		want             time.Time
	}{
		{base, time.Minute, 0, base.Add(time.Minute)},
		{base, time.Minute, 10 * time.Second, base.Add(10 * time.Second)},
		{base.Add(10 * time.Second), time.Minute, 10 * time.Second, base.Add(70 * time.Second)},
		{base.Add(9 * time.Second), time.Minute, 10 * time.Second, base.Add(10 * time.Second)},
		{base.Add(59 * time.Second), 30 * time.Second, 5 * time.Second, base.Add(65 * time.Second)},
		{time.Unix(-5, 0), 10 * time.Second, 0, time.Unix(0, 0)},
		{time.Unix(-10, 0), 10 * time.Second, 3 * time.Second, time.Unix(-7, 0)},
	}
	for _, c := range cases {
		if got := check.NextSlot(c.now, c.interval, c.offset); !got.Equal(c.want) {
			t.Errorf("NextSlot(%v, %s, %s) = %v, want %v", c.now.Unix(), c.interval, c.offset, got.Unix(), c.want.Unix())
		}
	}
}

func TestOffsetsAreStableAndSpreadOut(t *testing.T) {
	a := check.NewScheduler("ag_0123456789abcdef", 0, nil)
	b := check.NewScheduler("ag_0123456789abcdef", 0, nil)
	other := check.NewScheduler("ag_fedcba9876543210", 0, nil)
	seen := map[time.Duration]bool{}
	for _, name := range []string{"http", "disk", "load", "swap", "ntp", "dns", "smtp", "ssh"} {
		d := wire.CheckDefinition{System: "webshop", Name: name, Command: []string{"true"}, Interval: 60000, Timeout: 1000}
		off := a.Offset(d)
		if off < 0 || off >= time.Minute {
			t.Fatalf("offset %s outside the interval", off)
		}
		if b.Offset(d) != off {
			t.Fatalf("offset of %s changed between schedulers of the same agent", name)
		}
		if other.Offset(d) == off {
			t.Errorf("two agents share the offset %s of %s", off, name)
		}
		seen[off.Truncate(time.Second)] = true
	}
	if len(seen) < 6 {
		t.Fatalf("8 checks share %d distinct seconds of a minute", len(seen))
	}
}

// collector gathers reported results.
type collector struct {
	mu      sync.Mutex
	results []wire.Result
}

func (c *collector) report(r wire.Result) {
	c.mu.Lock()
	c.results = append(c.results, r)
	c.mu.Unlock()
}

func (c *collector) get() []wire.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]wire.Result(nil), c.results...)
}

func (c *collector) count(name string) int {
	n := 0
	for _, r := range c.get() {
		if r.Check == name {
			n++
		}
	}
	return n
}

func every(name string, interval time.Duration, argv ...string) wire.CheckDefinition {
	return wire.CheckDefinition{System: "webshop", Name: name, Command: argv, Interval: wire.Millis(interval), Timeout: wire.Millis(time.Minute)}
}

func MustStart(t *testing.T, s *check.Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.Start(ctx)
	go func() { s.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the scheduler did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestSchedulerRunsChecksAtTheirIntervalAndPhase(t *testing.T) {
	var c collector
	s := check.NewScheduler("ag_0123456789abcdef", 4, c.report)
	d := every("fast", time.Second, "echo", "OK")
	s.Set([]wire.CheckDefinition{d})
	stop := MustStart(t, s)
	time.Sleep(3200 * time.Millisecond)
	stop()
	results := c.get()
	if len(results) < 2 || len(results) > 4 {
		t.Fatalf("%d results in 3.2s from a check every second", len(results))
	}
	off := s.Offset(d)
	for _, r := range results {
		phase := time.Duration(r.Started.UnixNano() % int64(time.Second))
		if diff := phase - off; diff < 0 || diff > 100*time.Millisecond {
			t.Errorf("run started at phase %s, the check's offset is %s", phase, off)
		}
	}
}

func TestSchedulerRunsAtMostNChecksAtOnce(t *testing.T) {
	var c collector
	s := check.NewScheduler("ag_0123456789abcdef", 2, c.report)
	var defs []wire.CheckDefinition
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		defs = append(defs, every(name, time.Second, "sleep", "0.3"))
	}
	s.Set(defs)
	stop := MustStart(t, s)
	time.Sleep(2500 * time.Millisecond)
	stop()
	results := c.get()
	if len(results) < 4 {
		t.Fatalf("only %d results", len(results))
	}
	for _, r := range results {
		overlapping := 0
		for _, o := range results {
			if !o.Started.After(r.Started) && o.Started.Add(o.Duration.D()).After(r.Started) {
				overlapping++
			}
		}
		if overlapping > 2 {
			t.Fatalf("%d checks ran at once with a limit of 2", overlapping)
		}
	}
}

func TestSchedulerAppliesNewDefinitions(t *testing.T) {
	var c collector
	s := check.NewScheduler("ag_0123456789abcdef", 4, c.report)
	keep := every("keep", time.Second, "echo", "kept")
	gone := every("gone", time.Second, "sleep", "100")
	s.Set([]wire.CheckDefinition{keep, gone})
	MustStart(t, s)
	time.Sleep(1500 * time.Millisecond) // "gone" is running its sleep now
	added := every("added", time.Second, "echo", "new")
	start := time.Now()
	s.Set([]wire.CheckDefinition{keep, added})
	time.Sleep(2200 * time.Millisecond)
	if n := c.count("gone"); n != 0 {
		t.Fatalf("a removed check reported %d results", n)
	}
	if c.count("added") < 1 || c.count("keep") < 2 {
		t.Fatalf("added %d, kept %d results", c.count("added"), c.count("keep"))
	}
	for _, r := range c.get() {
		if r.Check == "keep" && r.Started.Before(start) && r.Started.Add(2*time.Second).Before(start) {
			t.Fatalf("unexpected old result %+v", r)
		}
	}
	if defs := s.Definitions(); len(defs) != 2 || defs[0].Name != "added" || defs[1].Name != "keep" {
		t.Fatalf("definitions %+v", defs)
	}
}

func TestRunNowRunsAKnownCheckAtOnceWithTheRequest(t *testing.T) {
	var c collector
	s := check.NewScheduler("ag_0123456789abcdef", 4, c.report)
	s.Set([]wire.CheckDefinition{every("daily", 24*time.Hour, "echo", "OK")})
	if s.RunNow("webshop", "daily", "r1") {
		t.Fatal("RunNow ran a check before the scheduler started")
	}
	MustStart(t, s)
	if s.RunNow("webshop", "nope", "r2") {
		t.Fatal("RunNow ran an unknown check")
	}
	if !s.RunNow("webshop", "daily", "r3") {
		t.Fatal("RunNow refused a known check")
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(c.get()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r := c.get(); len(r) != 1 || r[0].Request != "r3" || r[0].Output != "OK" {
		t.Fatalf("results %+v", r)
	}
}
