package service_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
)

// staticConfig is a config source of fixed systems.
type staticConfig struct{ systems []aramaki.System }

func (c staticConfig) Load(context.Context) (aramaki.ConfigSnapshot, []string, error) {
	return aramaki.ConfigSnapshot{Commit: aramaki.Commit{Hash: "c1", Author: "T <t@example.com>", Message: "systems", Time: time.Now()}, Systems: c.systems}, nil, nil
}

// clock is a test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var root = aramaki.Principal{User: "root", Bindings: []aramaki.RoleBinding{{User: "root", System: aramaki.GlobalScope, Role: aramaki.RoleAdmin}}}

func TestASilentAgentTurnsItsKeepaliveCriticalAndBackWhenItReturns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clk := &clock{now: time.Now()}
	svc := service.New(st, staticConfig{[]aramaki.System{{ID: "shop", Title: "Shop", Subsystems: []string{"web"}}, {ID: "web", Title: "Web"}}}, log, service.Options{Now: clk.Now})
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SyncConfig(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	go svc.RunIngest(ctx)

	tok, err := svc.CreateEnrollmentToken(ctx, root, []string{"web"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	a, err := svc.Enroll(ctx, tok.ID, tok.Secret, pub, "web1", "test")
	if err != nil {
		t.Fatal(err)
	}
	keepalive := func() aramaki.Status {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			states, err := st.CheckStates(ctx, []string{"web"})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range states {
				if s.Check == aramaki.KeepaliveCheck {
					return s.Status
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("no keepalive state")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	svc.AgentConnected(ctx, a)
	if s := keepalive(); s != aramaki.StatusOK {
		t.Fatalf("connected agent's keepalive is %s", s)
	}

	// Silent for longer than the timeout: the watcher finds it and turns
	// it critical.
	clk.Add(3 * time.Minute)
	wctx, stop := context.WithCancel(ctx)
	go svc.WatchKeepalives(wctx, 2*time.Minute, 50*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for keepalive() != aramaki.StatusCritical {
		if time.Now().After(deadline) {
			t.Fatal("a silent agent's keepalive did not turn critical")
		}
		clk.Add(time.Second)
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	status, err := svc.SystemStatus(ctx, root, "shop")
	if err != nil || status.Status != aramaki.StatusCritical {
		t.Fatalf("the silent agent's system's user shop is %v (%v), want critical", status.Status, err)
	}
	page, err := svc.Timeline(ctx, root, service.TimelineRequest{System: "shop", Kinds: []aramaki.EventKind{aramaki.KindStatusChanged}})
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("status.changed events for shop: %v %v, want one", page.Events, err)
	}

	// It comes back.
	svc.AgentConnected(ctx, a)
	deadline = time.Now().Add(5 * time.Second)
	for keepalive() != aramaki.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("a returning agent's keepalive did not turn OK")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// changingConfig serves the systems it holds now.
type changingConfig struct {
	mu      sync.Mutex
	hash    string
	systems []aramaki.System
}

func (c *changingConfig) set(hash string, systems []aramaki.System) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hash, c.systems = hash, systems
}

func (c *changingConfig) Load(context.Context) (aramaki.ConfigSnapshot, []string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return aramaki.ConfigSnapshot{Commit: aramaki.Commit{Hash: c.hash, Author: "T <t@example.com>", Message: c.hash, Time: time.Now()}, Systems: c.systems}, nil, nil
}

func TestARemovedCheckIsNoLongerAProblem(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := &changingConfig{}
	withCheck := []aramaki.System{{ID: "web", Title: "Web", Checks: []aramaki.Check{{Name: "http", Command: "check_http"}}}}
	cfg.set("c1", withCheck)
	svc := service.New(st, cfg, log, service.Options{})
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SyncConfig(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	go svc.RunIngest(ctx)
	tok, _ := svc.CreateEnrollmentToken(ctx, root, []string{"web"}, time.Hour)
	pub, _, _ := ed25519.GenerateKey(nil)
	a, err := svc.Enroll(ctx, tok.ID, tok.Secret, pub, "web1", "test")
	if err != nil {
		t.Fatal(err)
	}
	done, err := svc.SubmitResults(ctx, service.NewStream(), a, []aramaki.CheckResult{{Seq: 1, System: "web", Check: "http", Status: aramaki.StatusCritical, Started: time.Now()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Err != nil || r.LastSeq != 1 {
		t.Fatalf("submit: %+v", r)
	}
	if v, _ := svc.SystemStatus(ctx, root, "web"); v.Status != aramaki.StatusCritical {
		t.Fatalf("web is %s, want critical", v.Status)
	}
	cfg.set("c2", []aramaki.System{{ID: "web", Title: "Web"}})
	if _, err := svc.SyncConfig(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	if v, _ := svc.SystemStatus(ctx, root, "web"); v.Status != aramaki.StatusOK || len(v.Problems) != 0 {
		t.Fatalf("after the check was removed web is %s with %v", v.Status, v.Problems)
	}
}
