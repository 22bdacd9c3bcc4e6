package web_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/web"
)

// The 3am pages under load: 100 systems (10 projects of 9 components and
// an anchor each... 10 anchors + 90 components), 1,000 checks, and
// 1,000,000 timeline events, most of them status changes.
func benchSystems() map[string]string {
	files := map[string]string{}
	for p := 0; p < 10; p++ {
		var subs []string
		for c := 0; c < 9; c++ {
			id := fmt.Sprintf("p%d-c%d", p, c)
			subs = append(subs, id)
			var checks strings.Builder
			for k := 0; k < 10; k++ {
				fmt.Fprintf(&checks, "  - {name: check%d, command: check_dummy 0}\n", k)
			}
			files["systems/"+id+".yaml"] = fmt.Sprintf("id: %s\ntitle: Component %d of project %d\nchecks:\n%s", id, c, p, checks.String())
		}
		var checks strings.Builder
		for k := 0; k < 10; k++ {
			fmt.Fprintf(&checks, "  - {name: check%d, command: check_dummy 0}\n", k)
		}
		files[fmt.Sprintf("systems/p%d.yaml", p)] = fmt.Sprintf("id: p%d\ntitle: Project %d\ncategory: customer project\nsubsystems: [%s]\nrules:\n  - text: Call the owner first.\nchecks:\n%s",
			p, p, strings.Join(subs, ", "), checks.String())
	}
	return files
}

// MustLoad fills the store: one agent per system, every check reporting,
// and status flips until there are a million events.
func MustLoad(b *testing.B, e *env, events int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.svc.RunIngest(ctx)
	var agents []aramaki.Agent
	for p := 0; p < 10; p++ {
		for c := -1; c < 9; c++ {
			sys := fmt.Sprintf("p%d", p)
			if c >= 0 {
				sys = fmt.Sprintf("p%d-c%d", p, c)
			}
			tok, err := e.svc.CreateEnrollmentToken(ctx, e.admin, []string{sys}, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			pub, _, _ := ed25519.GenerateKey(nil)
			a, err := e.svc.Enroll(ctx, tok.ID, tok.Secret, pub, "host-"+sys, "1")
			if err != nil {
				b.Fatal(err)
			}
			a.Systems = []string{sys}
			agents = append(agents, a)
		}
	}
	start := time.Now().Add(-29 * 24 * time.Hour)
	seq := map[string]uint64{}
	made := 0
	for round := 0; made < events; round++ {
		var pending []<-chan service.IngestResult
		for _, a := range agents {
			var results []aramaki.CheckResult
			for k := 0; k < 10; k++ {
				seq[a.ID]++
				// Every check flips every round: each result is a change, and
				// a change is an event.
				status := aramaki.StatusOK
				if round%2 == 1 {
					status = aramaki.StatusCritical
				}
				results = append(results, aramaki.CheckResult{Seq: seq[a.ID], System: a.Systems[0], Check: fmt.Sprintf("check%d", k),
					Status: status, Output: "DUMMY " + status.String(), Started: start.Add(time.Duration(made+len(results)) * time.Second)})
			}
			done, err := e.svc.SubmitResults(ctx, nil, a, results, nil)
			if err != nil {
				b.Fatal(err)
			}
			pending = append(pending, done)
			made += len(results)
		}
		for _, d := range pending {
			if r := <-d; r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	// The last round leaves the checks as they are; the alerts follow.
	if err := e.svc.AlertRound(ctx, nil); err != nil {
		b.Fatal(err)
	}
}

func benchPage(b *testing.B, path string) {
	e := MustEnvWith(b, benchSystems())
	n := 1_000_000
	if testing.Short() {
		n = 20_000
	}
	t0 := time.Now()
	MustLoad(b, e, n)
	b.Logf("loaded %d events in %s", n, time.Since(t0).Round(time.Second))
	c := e.MustLogin("admin")
	u, _ := http.NewRequest("GET", e.srv.URL, nil)
	var cookie *http.Cookie
	for _, ck := range c.Jar.Cookies(u.URL) {
		cookie = ck
	}
	ui := web.New(e.svc, slog.New(slog.DiscardHandler), web.Options{})
	var durations []time.Duration
	var size int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(cookie)
		rec := httptest.NewRecorder()
		t := time.Now()
		ui.ServeHTTP(rec, req)
		durations = append(durations, time.Since(t))
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d", path, rec.Code)
		}
		if i == 0 {
			var z bytes.Buffer
			w := gzip.NewWriter(&z)
			w.Write(rec.Body.Bytes())
			w.Close()
			size = z.Len()
		}
	}
	b.StopTimer()
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(size)/1024, "gzip-KiB")
}

func BenchmarkSystemPage(b *testing.B)   { benchPage(b, "/systems/p3") }
func BenchmarkTimelinePage(b *testing.B) { benchPage(b, "/timeline?system=p3") }
func BenchmarkAlertsPage(b *testing.B)   { benchPage(b, "/alerts") }
