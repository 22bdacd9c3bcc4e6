package federation_test

// Benchmarks of one peer link: two servers in process, each with its own
// SQLite store, linked over a real websocket on loopback (httptest), as in
// link_test.go. Server a shares its system storage with b.
//
// An event is visible on b when b's store has committed it: b stores what
// a sends and moves the link's received_seq in one transaction, so
// received_seq ≥ k means a's outbox message k is on b's timeline. The
// benchmarks poll that (service.PeerLinkState, one read of one row) every
// 250 µs, and map message k to the k-th event a wrote after the link's
// outbox was quiet.
//
//	go test ./federation -run '^$' -bench 'Link' -benchtime 20s
//	go test ./federation -run '^$' -bench 'LinkCatchUp' -benchtime 1x -backlog 3600000

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/federation"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
)

var (
	backlog        = flag.Int("backlog", 360_000, "events waiting on a when BenchmarkLinkCatchUp brings the link back")
	catchUpProfile = flag.String("catchup.cpuprofile", "", "write a CPU profile of BenchmarkLinkCatchUp's catching up alone to this file")
	catchUpLive    = flag.Int("catchup.live", 1000, "events a second written on a while BenchmarkLinkCatchUp catches up, as on a link still carrying them")
)

// serverGC sets the garbage collector as aramaki server sets its own
// (cmd/aramaki/gc.go: GOGC=400 under a memory limit), unless GOGC in the
// environment says otherwise, for the length of a benchmark.
func serverGC(tb testing.TB) {
	if os.Getenv("GOGC") == "" {
		old := debug.SetGCPercent(400)
		tb.Cleanup(func() { debug.SetGCPercent(old) })
	}
}

// benchServer is a linkServer whose links can be stopped and started
// again, with its store at hand to write events fast.
type benchServer struct {
	*linkServer
	st *store.Store

	mu   sync.Mutex
	stop context.CancelFunc
}

// mustBenchServer starts a server. Its goroutines carry the pprof label
// server=name, so that a CPU profile tells the two servers apart from
// each other and from the load: go tool pprof -tagfocus server=b.
func mustBenchServer(tb testing.TB, name string, systems ...aramaki.System) *benchServer {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	var s *benchServer
	pprof.Do(ctx, pprof.Labels("server", name), func(ctx context.Context) {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		st, err := store.Open(ctx, filepath.Join(tb.TempDir(), "db"), log)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { st.Close() })
		links := &federation.Links{Log: log}
		srv := httptest.NewServer(links.Handler())
		tb.Cleanup(srv.Close)
		svc := service.New(st, staticConfig{systems}, log, service.Options{ServerName: name, URL: srv.URL})
		if err := svc.Open(ctx); err != nil {
			tb.Fatal(err)
		}
		if _, err := svc.SyncConfig(ctx, "config"); err != nil {
			tb.Fatal(err)
		}
		links.Svc = svc
		s = &benchServer{linkServer: &linkServer{svc: svc, links: links, url: srv.URL, ctx: ctx}, st: st}
	})
	s.start()
	tb.Cleanup(s.halt)
	return s
}

// start runs the server's links: it fills its outboxes and dials its peers.
func (s *benchServer) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pprof.SetGoroutineLabels(ctx)
		s.links.Run(ctx)
	}()
	s.stop = func() { cancel(); <-done }
}

// halt stops the server's links: its dialled links close.
func (s *benchServer) halt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// mustBenchPeers makes b a peer of a, dialling a, with a grant of a's
// storage events, and waits until the link carries them.
func mustBenchPeers(tb testing.TB) (a, b *benchServer) {
	tb.Helper()
	serverGC(tb)
	a = mustBenchServer(tb, "a", aramaki.System{ID: "storage", Title: "Storage"})
	b = mustBenchServer(tb, "b")
	b.svc.SetJoiner(joinDirect{a.linkServer, a.url})
	inv, err := a.svc.CreateInvitation(a.ctx, root, "b", 0)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := b.svc.AcceptInvitation(b.ctx, root, inv.ID+" "+inv.Secret, ""); err != nil {
		tb.Fatal(err)
	}
	if _, err := a.svc.CreateGrant(a.ctx, root, service.GrantRequest{Peer: "b", Systems: []string{"storage"},
		Kinds: []aramaki.GrantKind{aramaki.GrantEvents}, Until: time.Now().Add(24 * time.Hour)}); err != nil {
		tb.Fatal(err)
	}
	// A note written while a fill is under way may be judged against the
	// grants read before the grant existed, and never queued: write
	// another until one is.
	for tries := 0; ; tries++ {
		if tries == 100 {
			tb.Fatal("a queues no note for b")
		}
		if _, err := a.svc.PostNote(a.ctx, root, "storage", "the link is up"); err != nil {
			tb.Fatal(err)
		}
		time.Sleep(5 * federation.FillEvery)
		l, err := a.svc.PeerLinkState(a.ctx, "b")
		if err != nil {
			tb.Fatal(err)
		}
		if l.NextSeq > 1 {
			break
		}
	}
	mustSettle(tb, a, b)
	return a, b
}

// mustSettle waits until b stored all of a's outbox, and returns the seq
// of the last message: the next event a writes will be that plus one.
func mustSettle(tb testing.TB, a, b *benchServer) uint64 {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		time.Sleep(2 * federation.FillEvery) // a fill after the last event
		la, err := a.svc.PeerLinkState(a.ctx, "b")
		if err != nil {
			tb.Fatal(err)
		}
		if got := received(tb, b); la.NextSeq > 1 && got == la.NextSeq-1 {
			return got
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the link did not settle: a's outbox at %+v", la)
		}
	}
}

// received is the last of a's messages b stored.
func received(tb testing.TB, b *benchServer) uint64 {
	l, err := b.svc.PeerLinkState(b.ctx, "a")
	if err != nil {
		tb.Fatal(err)
	}
	return l.ReceivedSeq
}

// watch polls b's store and notes when each of a's messages after seq
// became visible; seen stops it after one last look and returns the
// times: seen()[k] is message seq+k+1's.
func watch(tb testing.TB, b *benchServer, seq uint64) (seen func() []time.Time) {
	var (
		times []time.Time
		stop  = make(chan struct{})
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		last := seq
		for {
			stopping := false
			select {
			case <-stop:
				stopping = true
			default:
			}
			if got := received(tb, b); got > last {
				now := time.Now()
				for range got - last {
					times = append(times, now)
				}
				last = got
			}
			if stopping {
				return
			}
			time.Sleep(250 * time.Microsecond)
		}
	}()
	return func() []time.Time {
		close(stop)
		<-done
		return times
	}
}

// waitReceived waits until b stored a's message seq, or fails after d.
func waitReceived(tb testing.TB, b *benchServer, seq uint64, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for received(tb, b) < seq {
		if time.Now().After(deadline) {
			tb.Fatalf("b stored up to message %d of a; waited %s for %d", received(tb, b), d, seq)
		}
		time.Sleep(time.Millisecond)
	}
}

// writeEventsAt writes shared events on a, one transaction each, at rate
// a second until ctx ends, and returns how many it wrote.
func writeEventsAt(ctx context.Context, a *benchServer, rate int) int {
	if rate <= 0 {
		return 0
	}
	every := time.Second / time.Duration(rate)
	next, n := time.Now(), 0
	for ctx.Err() == nil {
		ev, err := aramaki.NewEvent(time.Now(), aramaki.KindNote, "user:root", []string{"storage"}, "live event "+strconv.Itoa(n), nil)
		if err == nil {
			if _, err = a.st.AppendEvent(a.ctx, ev); err == nil {
				n++
			}
		}
		next = next.Add(every)
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
	}
	return n
}

// mustWriteEvents writes n shared events on a straight into its store,
// one transaction each, as fast as the store takes them.
func mustWriteEvents(tb testing.TB, a *benchServer, n int) {
	tb.Helper()
	for i := range n {
		ev, err := aramaki.NewEvent(time.Now(), aramaki.KindNote, "user:root", []string{"storage"}, "backlog event "+strconv.Itoa(i), nil)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := a.st.AppendEvent(a.ctx, ev); err != nil {
			tb.Fatal(err)
		}
	}
}

// cpuTime is the CPU time this process used so far (both servers, the
// load and the polling), from /proc; zero where there is no /proc.
func cpuTime() time.Duration {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// After the command in parentheses: fields 14 and 15 of stat(5),
	// utime and stime, in clock ticks of 1/100 s.
	f := bytes.Fields(raw[bytes.LastIndexByte(raw, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(string(f[11]), 10, 64)
	stime, _ := strconv.ParseInt(string(f[12]), 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkLinkLatency writes notes on a at a rate through the service
// (one transaction each) and reports how long each took, from before a's
// write to its commit on b.
func BenchmarkLinkLatency(b *testing.B) {
	for _, rate := range []int{100, 1000} {
		b.Run(fmt.Sprintf("rate=%d/s", rate), func(bb *testing.B) {
			a, pb := mustBenchPeers(bb)
			seq := mustSettle(bb, a, pb)
			seen := watch(bb, pb, seq)
			var sent []time.Time
			// Poisson arrivals, so that events meet the fill ticker at
			// every phase.
			r := rand.New(rand.NewPCG(1, uint64(rate)))
			every := float64(time.Second) / float64(rate)
			cpu := cpuTime()
			start := time.Now()
			next := start
			for bb.Loop() {
				next = next.Add(time.Duration(r.ExpFloat64() * every))
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				sent = append(sent, time.Now())
				if _, err := a.svc.PostNote(a.ctx, root, "storage", "note "+strconv.Itoa(len(sent))); err != nil {
					bb.Fatal(err)
				}
			}
			waitReceived(bb, pb, seq+uint64(len(sent)), 30*time.Second)
			took := time.Since(start)
			cpu = cpuTime() - cpu
			times := seen()
			lat := make([]time.Duration, len(sent))
			for i := range sent {
				lat[i] = times[i].Sub(sent[i])
			}
			slices.Sort(lat)
			bb.ReportMetric(ms(percentile(lat, 0.50)), "p50-ms")
			bb.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
			bb.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
			bb.ReportMetric(cpu.Seconds()/took.Seconds(), "cores")
		})
	}
}

// BenchmarkLinkCatchUp takes b's link down, writes a backlog of events on
// a while a keeps filling b's outbox, brings the link back and reports how
// long b took to catch up — to store them all and come within a second of
// the -catchup.live events a second a keeps writing meanwhile — and at
// what rate: the link's sustained throughput. The backlog is -backlog
// events (each iteration the same).
func BenchmarkLinkCatchUp(b *testing.B) {
	a, pb := mustBenchPeers(b)
	for b.Loop() {
		b.StopTimer()
		seq := mustSettle(b, a, pb)
		pb.halt() // the link is down
		mustWriteEvents(b, a, *backlog)
		last := seq + uint64(*backlog)
		deadline := time.Now().Add(10 * time.Minute)
		for { // a's outbox holds the backlog, as after an outage
			la, err := a.svc.PeerLinkState(a.ctx, "b")
			if err != nil {
				b.Fatal(err)
			}
			if la.NextSeq > last {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("a's outbox did not fill: %+v", la)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if *catchUpProfile != "" {
			f, err := os.Create(*catchUpProfile)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		cpu := cpuTime()
		start := time.Now()
		pb.start() // b dials a again at once
		// The link still carries its traffic: caught up means b stored the
		// backlog and is within a second of what keeps coming.
		live, stopLive := context.WithCancel(context.Background())
		written := make(chan int)
		go func() { written <- writeEventsAt(live, a, *catchUpLive) }()
		deadline = time.Now().Add(30 * time.Minute)
		for {
			got := received(b, pb)
			la, err := a.svc.PeerLinkState(a.ctx, "b")
			if err != nil {
				b.Fatal(err)
			}
			if got >= last && la.NextSeq-1-got <= uint64(max(*catchUpLive, 1)) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("b stored up to message %d of a; a's outbox is at %d", got, la.NextSeq-1)
			}
			time.Sleep(time.Millisecond)
		}
		took := time.Since(start)
		stopLive()
		b.ReportMetric(float64(<-written)/took.Seconds(), "live-events/s")
		cpu = cpuTime() - cpu
		if *catchUpProfile != "" {
			pprof.StopCPUProfile()
		}
		b.ReportMetric(took.Seconds(), "catch-up-s")
		b.ReportMetric(float64(*backlog)/took.Seconds(), "events/s")
		b.ReportMetric(cpu.Seconds()/took.Seconds(), "cores")
		b.ReportMetric(float64(cpu.Microseconds())/float64(*backlog), "cpu-µs/event")
	}
}

// BenchmarkLinkLive writes events on a as fast as its store takes them,
// one transaction each, while the link carries them, and reports the
// rate written and how far b lagged behind at the end.
func BenchmarkLinkLive(b *testing.B) {
	a, pb := mustBenchPeers(b)
	seq := mustSettle(b, a, pb)
	n := 0
	cpu := cpuTime()
	start := time.Now()
	for b.Loop() {
		mustWriteEvents(b, a, 1)
		n++
	}
	written := time.Since(start)
	waitReceived(b, pb, seq+uint64(n), 10*time.Minute)
	took := time.Since(start)
	cpu = cpuTime() - cpu
	b.ReportMetric(float64(n)/written.Seconds(), "written/s")
	b.ReportMetric(float64(n)/took.Seconds(), "events/s")
	b.ReportMetric(ms(took-written), "lag-ms")
	b.ReportMetric(cpu.Seconds()/took.Seconds(), "cores")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
}
