package service_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
)

// outageEnv is shared storage used by 1,000 customer projects, each with
// an owner routed by e-mail and an app of 10 checks: 10,000 checks, 1,001
// people to notify.
type outageEnv struct {
	svc    *service.Service
	st     *store.Store
	agents []aramaki.Agent // agents[i] runs the apps of projects 100i..100i+99; agents[0] storage too
	seq    map[string]uint64
	clk    *clock
}

const outageProjects = 1000

func MustOutageEnv(b *testing.B) *outageEnv {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "db"), log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	systems := []aramaki.System{
		{ID: "infrastructure", Title: "Infrastructure", Subsystems: []string{"storage"},
			Contacts: []aramaki.Contact{{Name: "Infra oncall", Email: "oncall@example.com"}}, Routing: []aramaki.Route{{Contact: "Infra oncall"}}},
		{ID: "storage", Title: "Storage", Checks: []aramaki.Check{{Name: "disk", Command: "check_disk"}}},
	}
	for i := range outageProjects {
		p, app := fmt.Sprintf("p%d", i), fmt.Sprintf("p%d-app", i)
		var checks []aramaki.Check
		for k := range 10 {
			checks = append(checks, aramaki.Check{Name: fmt.Sprintf("c%d", k), Command: "check_http"})
		}
		systems = append(systems,
			aramaki.System{ID: p, Title: "Project " + p, Subsystems: []string{app, "storage"},
				Owners: []aramaki.Contact{{Name: "Owner " + p, Email: p + "@example.com"}}, Routing: []aramaki.Route{{Contact: "Owner " + p}}},
			aramaki.System{ID: app, Title: "App of " + p, Checks: checks})
	}
	clk := &clock{now: time.Now()}
	svc := service.New(st, snapshotConfig{aramaki.ConfigSnapshot{Commit: aramaki.Commit{Hash: "c1", Author: "T <t@example.com>", Message: "systems", Time: clk.Now()},
		Systems: systems}}, log, service.Options{Now: clk.Now, GroupWait: -1})
	if err := svc.Open(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.SyncConfig(ctx, "config"); err != nil {
		b.Fatal(err)
	}
	e := &outageEnv{svc: svc, st: st, seq: map[string]uint64{}, clk: clk}
	for i := range 10 {
		var mine []string
		for k := range 100 {
			mine = append(mine, fmt.Sprintf("p%d-app", i*100+k))
		}
		if i == 0 {
			mine = append(mine, "storage")
		}
		tok, err := svc.CreateEnrollmentToken(ctx, root, mine, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(nil)
		a, err := svc.Enroll(ctx, tok.ID, tok.Secret, pub, fmt.Sprintf("host%d", i), "bench")
		if err != nil {
			b.Fatal(err)
		}
		e.agents = append(e.agents, a)
	}
	return e
}

// submit stores results of agent i and waits for the commit.
func (e *outageEnv) submit(b *testing.B, ctx context.Context, i int, results []aramaki.CheckResult) time.Duration {
	a := e.agents[i]
	for j := range results {
		e.seq[a.ID]++
		results[j].Seq, results[j].Started = e.seq[a.ID], e.clk.Now()
	}
	start := time.Now()
	done, err := e.svc.SubmitResults(ctx, service.NewStream(), a, results, nil)
	if err != nil {
		b.Fatal(err)
	}
	if r := <-done; r.Err != nil {
		b.Fatal(r.Err)
	}
	return time.Since(start)
}

// allApps returns results of every app check of agent i's projects.
func allApps(i int, status aramaki.Status) []aramaki.CheckResult {
	var rs []aramaki.CheckResult
	for k := range 100 {
		for c := range 10 {
			rs = append(rs, aramaki.CheckResult{System: fmt.Sprintf("p%d-app", i*100+k), Check: fmt.Sprintf("c%d", c), Status: status, Output: status.String()})
		}
	}
	return rs
}

// A status change of storage, used by 1,000 projects, is routed to the
// 1,001 people responsible and their notifications are queued.
func BenchmarkRouteAChangeOnASystemUsedByAThousand(b *testing.B) {
	e := MustOutageEnv(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.svc.RunIngest(ctx)
	var durations []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		status := aramaki.StatusCritical
		if i%2 == 1 {
			status = aramaki.StatusOK
		}
		e.submit(b, ctx, 0, []aramaki.CheckResult{{System: "storage", Check: "disk", Status: status, Output: status.String()}})
		start := time.Now()
		if err := e.svc.AlertRound(ctx, nil); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
		e.clk.Add(time.Minute)
	}
	b.StopTimer()
	list, err := e.st.Notifications(ctx, "", 5000)
	if err != nil {
		b.Fatal(err)
	}
	if want := (b.N + 1) / 2 * 1001; len(list) < min(want, 5000) {
		b.Fatalf("%d notifications queued, want %d", len(list), want)
	}
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(durations[len(durations)*9/10].Microseconds())/1000, "p90-ms")
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds())/1000, "p50-ms")
}

// An outage turns 10,000 checks critical at once: grouped into one page
// per person and queued, while another agent's results keep being stored.
func BenchmarkAnOutageOfTenThousandChecks(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := MustOutageEnv(b)
		ctx, cancel := context.WithCancel(context.Background())
		go e.svc.RunIngest(ctx)
		for a := range 10 {
			e.submit(b, ctx, a, allApps(a, aramaki.StatusOK))
		}
		e.submit(b, ctx, 0, []aramaki.CheckResult{{System: "storage", Check: "disk", Status: aramaki.StatusOK}})
		if err := e.svc.AlertRound(ctx, nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		start := time.Now()
		e.submit(b, ctx, 0, []aramaki.CheckResult{{System: "storage", Check: "disk", Status: aramaki.StatusCritical}})
		for a := range 10 {
			e.submit(b, ctx, a, allApps(a, aramaki.StatusCritical))
		}
		stored := time.Since(start)
		// Alerting runs while a probe keeps storing results of storage.
		alerted := make(chan time.Duration)
		go func() {
			if err := e.svc.AlertRound(ctx, nil); err != nil {
				b.Error(err)
			}
			alerted <- time.Since(start)
		}()
		var probes []time.Duration
		var took time.Duration
	probe:
		for {
			select {
			case took = <-alerted:
				break probe
			default:
				probes = append(probes, e.submit(b, ctx, 0, []aramaki.CheckResult{{System: "storage", Check: "disk", Status: aramaki.StatusCritical}}))
			}
		}
		b.StopTimer()
		alerts, err := e.st.Alerts(ctx, aramaki.AlertFilter{Limit: 20000})
		if err != nil {
			b.Fatal(err)
		}
		groups := map[string]bool{}
		for _, a := range alerts {
			groups[a.Group] = true
		}
		list, err := e.st.Notifications(ctx, "", 5000)
		if err != nil {
			b.Fatal(err)
		}
		if len(alerts) != 10001 || len(groups) != 1 || len(list) != 1001 {
			b.Fatalf("%d alerts in %d groups, %d notifications; want 10,001 in 1 group, 1,001 notifications", len(alerts), len(groups), len(list))
		}
		slices.Sort(probes)
		b.ReportMetric(stored.Seconds(), "stored-s")
		b.ReportMetric(took.Seconds(), "queued-s")
		if len(probes) > 0 {
			b.ReportMetric(float64(probes[len(probes)-1].Microseconds())/1000, "max-ingest-ms")
		}
		cancel()
		b.StartTimer()
	}
}
