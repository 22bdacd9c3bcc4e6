package service_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
)

// startedHub is a RunHub whose agents note when they were asked to start.
type startedHub struct {
	mu        sync.Mutex
	connected []string
	started   map[string]time.Time // run id → when asked
	signal    chan struct{}
}

func (h *startedHub) StartRun(s aramaki.RunStart, _ time.Duration) error {
	h.mu.Lock()
	h.started[s.Run] = time.Now()
	h.mu.Unlock()
	select {
	case h.signal <- struct{}{}:
	default:
	}
	return nil
}
func (h *startedHub) CancelRun(string, string) error           { return nil }
func (h *startedHub) ConnectedAgents() []string                { return h.connected }
func (h *startedHub) Connected(string) bool                    { return true }
func (h *startedHub) Revoked(string, string)                   {}
func (h *startedHub) Run(string, string, string, string) error { return nil }

// From asking for a run to the connected agent being asked to start it:
// the run's transaction, and the start handed to the connected agent right after it.
func BenchmarkRequestToStart(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "db"), log)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	systems := []aramaki.System{{ID: "shop", Title: "Shop", Actions: []aramaki.ActionRef{{Name: "flush-varnish"}}}}
	svc := service.New(st, staticConfig{systems}, log, service.Options{})
	if err := svc.Open(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.SyncConfig(ctx, "config"); err != nil {
		b.Fatal(err)
	}
	h := &startedHub{started: map[string]time.Time{}, signal: make(chan struct{}, 1)}
	svc.SetHub(h)
	tok, _ := svc.CreateEnrollmentToken(ctx, root, []string{"shop"}, time.Hour)
	pub, _, _ := ed25519.GenerateKey(nil)
	a, err := svc.Enroll(ctx, tok.ID, tok.Secret, pub, "web1", "bench")
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.SetAgentActions(ctx, a, []aramaki.ActionSpec{{Name: "flush-varnish", Argv: []string{"/usr/bin/varnishadm", "ban", "req.url", "~", "."}}}); err != nil {
		b.Fatal(err)
	}
	h.connected = []string{a.ID}
	go svc.RunDispatch(ctx)
	var latencies []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		asked := time.Now()
		run, err := svc.RequestRun(ctx, root, service.RunRequest{System: "shop", Action: "flush-varnish", Reason: fmt.Sprintf("bench %d", i)})
		if err != nil {
			b.Fatal(err)
		}
		for {
			h.mu.Lock()
			at, ok := h.started[run.ID]
			h.mu.Unlock()
			if ok {
				latencies = append(latencies, at.Sub(asked))
				break
			}
			<-h.signal
		}
		// The host says it is done, so that the next run starts alone.
		if err := svc.RunFinished(ctx, a, run.ID, service.RunEnd{State: aramaki.RunSucceeded, Started: asked, Ended: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}
