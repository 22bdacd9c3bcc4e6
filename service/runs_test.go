package service_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
)

// hosts is a RunHub of agents that are all connected and remember what
// they were asked.
type hosts struct {
	mu        sync.Mutex
	connected []string
	started   []aramaki.RunStart
	cancelled []string
}

func (h *hosts) StartRun(s aramaki.RunStart, _ time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Contains(h.connected, s.Agent) {
		return aramaki.Errorf(aramaki.ENOTFOUND, "agent %s is not connected", s.Agent)
	}
	h.started = append(h.started, s)
	return nil
}

func (h *hosts) CancelRun(agent, run string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cancelled = append(h.cancelled, agent+"/"+run)
	return nil
}

func (h *hosts) ConnectedAgents() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.connected)
}

// The AgentHub part: not used by runs.
func (h *hosts) Connected(string) bool                    { return true }
func (h *hosts) Revoked(string, string)                   {}
func (h *hosts) Run(string, string, string, string) error { return nil }

func (h *hosts) take() ([]aramaki.RunStart, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, c := h.started, h.cancelled
	h.started, h.cancelled = nil, nil
	return s, c
}

// shopActions: the shop's two web hosts allow flushing Varnish; the
// database restart needs a second person.
type shopActions struct {
	t     *testing.T
	ctx   context.Context
	svc   *service.Service
	st    *store.Store
	hub   *hosts
	web   []aramaki.Agent
	db    aramaki.Agent
	olga  aramaki.Principal // operator of the shop
	otto  aramaki.Principal // another operator
	vera  aramaki.Principal // viewer
	clock *clock
}

func MustShopActions(t *testing.T) *shopActions {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	systems := []aramaki.System{
		{ID: "shop", Title: "Shop", Subsystems: []string{"shop-web", "shop-db"},
			Owners: []aramaki.Contact{{Name: "Sam", Email: "sam@example.com"}}, Workflows: shopWorkflows, Public: true},
		{ID: "shop-web", Title: "Shop web", Actions: []aramaki.ActionRef{{Name: "flush-varnish", Rule: "Flush only when product pages are stale."}}},
		{ID: "shop-db", Title: "Shop database", Actions: []aramaki.ActionRef{{Name: "restart-db", Approval: true}, {Name: "drop-db", Role: aramaki.RoleAdmin}}},
	}
	clk := &clock{now: time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)}
	svc := service.New(st, staticConfig{systems}, log, service.Options{Now: clk.Now})
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SyncConfig(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	h := &hosts{}
	svc.SetHub(h)
	e := &shopActions{t: t, ctx: ctx, svc: svc, st: st, hub: h, clock: clk}
	enroll := func(name, system string, specs ...aramaki.ActionSpec) aramaki.Agent {
		tok, err := svc.CreateEnrollmentToken(ctx, root, []string{system}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(nil)
		a, err := svc.Enroll(ctx, tok.ID, tok.Secret, pub, name, "test")
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.SetAgentActions(ctx, a, specs); err != nil {
			t.Fatal(err)
		}
		h.connected = append(h.connected, a.ID)
		return a
	}
	flush := aramaki.ActionSpec{Name: "flush-varnish", Argv: []string{"/usr/bin/varnishadm", "ban", "req.url", "~", "{pattern}"},
		Params: []aramaki.Param{{Name: "pattern", Type: aramaki.ParamString, Pattern: `[A-Za-z0-9/^$.*_-]{1,100}`, Default: ptr(".")}}, Timeout: 30 * time.Second}
	e.web = []aramaki.Agent{enroll("web1", "shop-web", flush), enroll("web2", "shop-web", flush)}
	e.db = enroll("db1", "shop-db", aramaki.ActionSpec{Name: "restart-db", Argv: []string{"/usr/bin/systemctl", "restart", "postgresql"}},
		aramaki.ActionSpec{Name: "drop-db", Argv: []string{"/usr/bin/dropdb", "shop"}})
	enroll("web3", "shop-web") // allows nothing
	for user, role := range map[string]aramaki.Role{"olga": aramaki.RoleOperator, "otto": aramaki.RoleOperator, "vera": aramaki.RoleViewer} {
		// Stored too: a workflow checks again, as it goes, what who asked
		// for it may do.
		if _, err := svc.CreateUser(ctx, root, user, "a long enough password"); err != nil {
			t.Fatal(err)
		}
		b, err := svc.GrantRole(ctx, root, user, "shop", role)
		if err != nil {
			t.Fatal(err)
		}
		p := aramaki.Principal{User: user, Bindings: []aramaki.RoleBinding{b}}
		switch user {
		case "olga":
			e.olga = p
		case "otto":
			e.otto = p
		default:
			e.vera = p
		}
	}
	return e
}

func ptr[T any](v T) *T { return &v }

func (e *shopActions) events(kinds ...aramaki.EventKind) []string {
	e.t.Helper()
	page, err := e.svc.Timeline(e.ctx, root, service.TimelineRequest{System: "shop", Kinds: kinds})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range page.Events {
		out = append(out, ev.Summary)
	}
	slices.Reverse(out)
	return out
}

func TestFlushingVarnishRunsOnEveryHostThatAllowsItAndEndsWhenTheyAllDid(t *testing.T) {
	e := MustShopActions(t)
	run, err := e.svc.RequestRun(e.ctx, e.olga, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: "product pages are stale",
		Params: map[string]string{"pattern": "^/products/"}})
	if err != nil {
		t.Fatal(err)
	}
	if run.State != aramaki.RunRunning || len(run.Targets) != 2 || run.Params["pattern"] != "^/products/" {
		t.Fatalf("run %+v: want it running on web1 and web2 (web3 allows nothing)", run)
	}
	// Its hosts are connected here: asked to start at once, without
	// waiting for the dispatcher.
	started, _ := e.hub.take()
	if len(started) != 2 || started[0].Action != "flush-varnish" || started[0].Params["pattern"] != "^/products/" || run.Targets[0].State != aramaki.RunRunning {
		t.Fatalf("asked to start: %+v (hosts %+v)", started, run.Targets)
	}
	if err := e.svc.DispatchRuns(e.ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := e.hub.take(); len(again) != 0 {
		t.Fatalf("started twice: %+v", again)
	}

	// The hosts print and finish.
	now := e.clock.Now()
	zero := 0
	for i, a := range e.web {
		if err := e.svc.RunOutput(e.ctx, a, run.ID, 1, "ban added\n"); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(2 * time.Second)
		if err := e.svc.RunFinished(e.ctx, a, run.ID, service.RunEnd{State: aramaki.RunSucceeded, ExitCode: &zero, Started: now, Ended: e.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		got, err := e.svc.Run(e.ctx, e.olga, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[int]aramaki.RunState{0: aramaki.RunRunning, 1: aramaki.RunSucceeded}[i]; got.State != want {
			t.Fatalf("after %d of 2 hosts: %s, want %s", i+1, got.State, want)
		}
		if got.Rule != "Flush only when product pages are stale." || got.Targets[i].Output != "ban added\n" {
			t.Errorf("run view %+v", got)
		}
	}
	got := e.events(aramaki.KindRunRequested, aramaki.KindRunStarted, aramaki.KindRunFinished)
	if len(got) != 3 || !strings.Contains(got[0], "olga asked to run flush-varnish on shop-web") || !strings.Contains(got[0], "product pages are stale") ||
		!strings.Contains(got[2], "succeeded") {
		t.Errorf("on the timeline: %q", got)
	}

	// "Flushed 4 minutes ago by olga": the recent runs before running again.
	recent, err := e.svc.Runs(e.ctx, e.otto, service.RunQuery{System: "shop-web", Action: "flush-varnish", Since: time.Hour})
	if err != nil || len(recent) != 1 || recent[0].RequestedBy != "olga" || recent[0].State != aramaki.RunSucceeded {
		t.Errorf("recent runs: %+v, %v", recent, err)
	}
	stats, err := e.svc.RunStats(e.ctx, e.vera, "shop-web", "flush-varnish", 24*time.Hour)
	if err != nil || stats.Runs != 1 || stats.Failed != 0 || stats.Average != 4*time.Second {
		t.Errorf("stats %+v, %v", stats, err)
	}
}

func TestWhoMayRunWhatAndWithWhichValues(t *testing.T) {
	e := MustShopActions(t)
	for _, c := range []struct {
		name string
		p    aramaki.Principal
		req  service.RunRequest
		code string
		want string
	}{
		{"a viewer", e.vera, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: "x"}, aramaki.EFORBIDDEN, ""},
		{"no reason", e.olga, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: " "}, aramaki.EINVALID, "needs a reason"},
		{"an action the system does not have", e.olga, service.RunRequest{System: "shop-web", Action: "reboot", Reason: "x"}, aramaki.ENOTFOUND, "has no action reboot"},
		{"an action for admins", e.olga, service.RunRequest{System: "shop-db", Action: "drop-db", Reason: "x"}, aramaki.EFORBIDDEN, ""},
		{"shell metacharacters", e.olga, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: "x", Params: map[string]string{"pattern": "x; reboot"}}, aramaki.EINVALID, "does not match"},
		{"an unknown parameter", e.olga, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: "x", Params: map[string]string{"argv": "/bin/sh"}}, aramaki.EINVALID, `no parameter "argv"`},
		{"a host that does not run it", e.olga, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: "x", Agents: []string{"web1", "web3"}}, aramaki.EINVALID, `"web3" does not run flush-varnish`},
		{"a host of another system", e.olga, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: "x", Agents: []string{"db1"}}, aramaki.EINVALID, `"db1" does not run`},
		{"break glass on what needs no approval", e.olga, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: "x", BreakGlass: true}, aramaki.EINVALID, "needs no approval"},
	} {
		_, err := e.svc.RequestRun(e.ctx, c.p, c.req)
		if aramaki.ErrorCode(err) != c.code || !strings.Contains(aramaki.ErrorMessage(err), c.want) {
			t.Errorf("%s: %v, want %s saying %q", c.name, err, c.code, c.want)
		}
	}
	if runs, _ := e.svc.Runs(e.ctx, root, service.RunQuery{}); len(runs) != 0 {
		t.Errorf("refused requests left runs: %+v", runs)
	}
}

func TestWhatAHostAllowsIsOnTheTimelineWhenItChanges(t *testing.T) {
	e := MustShopActions(t)
	web1 := e.web[0]
	stored, err := e.st.Agent(e.ctx, web1.ID)
	if err != nil {
		t.Fatal(err)
	}
	flush, _ := stored.Action("flush-varnish")
	purge := aramaki.ActionSpec{Name: "purge", Argv: []string{"/usr/bin/varnishadm", "purge"}}
	for _, actions := range [][]aramaki.ActionSpec{{flush}, {flush, purge}, {purge}} {
		if err := e.svc.SetAgentActions(e.ctx, web1, actions); err != nil {
			t.Fatal(err)
		}
	}
	got := e.events(aramaki.KindAgentActions)
	want := []string{
		// At enrolment, every host.
		"host web1 now allows flush-varnish (its agent's local configuration)",
		"host web2 now allows flush-varnish (its agent's local configuration)",
		"host db1 now allows restart-db, drop-db (its agent's local configuration)",
		// Said again unchanged: nothing; then changed twice.
		"host web1 now allows purge (its agent's local configuration)",
		"host web1 no longer allows flush-varnish (its agent's local configuration)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("on the timeline:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestARunCanBeNarrowedToSomeOfItsHosts(t *testing.T) {
	e := MustShopActions(t)
	run, err := e.svc.RequestRun(e.ctx, e.olga, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: "web2 serves stale pages",
		Agents: []string{"web2", "web2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Targets) != 1 || run.Targets[0].Name != "web2" {
		t.Fatalf("targets %+v, want web2 only", run.Targets)
	}
}

func TestARestartNeedsASecondPersonUnlessGlassIsBroken(t *testing.T) {
	e := MustShopActions(t)
	run, err := e.svc.RequestRun(e.ctx, e.olga, service.RunRequest{System: "shop-db", Action: "restart-db", Reason: "connections stuck"})
	if err != nil || run.State != aramaki.RunAwaitingApproval {
		t.Fatalf("run %+v, %v: want it awaiting approval", run, err)
	}
	e.svc.DispatchRuns(e.ctx)
	if started, _ := e.hub.take(); len(started) != 0 {
		t.Fatalf("started before approval: %+v", started)
	}
	if _, err := e.svc.ApproveRun(e.ctx, e.olga, run.ID); aramaki.ErrorCode(err) != aramaki.EFORBIDDEN {
		t.Errorf("approving one's own run: %v", err)
	}
	if _, err := e.svc.ApproveRun(e.ctx, e.vera, run.ID); aramaki.ErrorCode(err) != aramaki.EFORBIDDEN {
		t.Errorf("a viewer approving: %v", err)
	}
	approved, err := e.svc.ApproveRun(e.ctx, e.otto, run.ID)
	if err != nil || approved.State != aramaki.RunRunning || approved.ApprovedBy != "otto" {
		t.Fatalf("approved %+v, %v", approved, err)
	}
	if _, err := e.svc.ApproveRun(e.ctx, e.otto, run.ID); aramaki.ErrorCode(err) != aramaki.ECONFLICT {
		t.Errorf("approving twice: %v", err)
	}
	e.svc.DispatchRuns(e.ctx)
	if started, _ := e.hub.take(); len(started) != 1 || started[0].Agent != e.db.ID {
		t.Fatalf("started after approval: %+v", started)
	}

	// At 3am, alone: break glass.
	glass, err := e.svc.RequestRun(e.ctx, e.olga, service.RunRequest{System: "shop-db", Action: "restart-db", Reason: "shop down, nobody answers", BreakGlass: true})
	if err != nil || glass.State != aramaki.RunRunning || !glass.BreakGlass {
		t.Fatalf("break glass %+v, %v", glass, err)
	}
	got := e.events(aramaki.KindRunBreakGlass)
	if len(got) != 1 || !strings.HasPrefix(got[0], "BREAK GLASS: olga ran restart-db on shop-db") {
		t.Errorf("break glass on the timeline: %q", got)
	}
	// The owners are told, through the outbox alerting sends from.
	told, err := e.st.Notifications(e.ctx, "", 10)
	if err != nil || len(told) != 1 || told[0].Recipient.Address != "sam@example.com" || !strings.Contains(told[0].Message.Subject, "Break glass") {
		t.Errorf("owners told: %+v, %v", told, err)
	}
}

func TestCancellingARunStopsItOnItsHostsAndAFinishedOneCannotBe(t *testing.T) {
	e := MustShopActions(t)
	waiting, _ := e.svc.RequestRun(e.ctx, e.olga, service.RunRequest{System: "shop-db", Action: "restart-db", Reason: "x"})
	cancelled, err := e.svc.CancelRun(e.ctx, e.otto, waiting.ID)
	if err != nil || cancelled.State != aramaki.RunCancelled || cancelled.CancelledBy != "otto" {
		t.Fatalf("cancelling a run awaiting approval: %+v, %v", cancelled, err)
	}
	if _, err := e.svc.CancelRun(e.ctx, e.otto, waiting.ID); aramaki.ErrorCode(err) != aramaki.ECONFLICT || !strings.Contains(aramaki.ErrorMessage(err), "cancelled already") {
		t.Errorf("cancelling a finished run: %v", err)
	}

	run, _ := e.svc.RequestRun(e.ctx, e.olga, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: "stale"})
	e.svc.DispatchRuns(e.ctx)
	e.hub.take()
	if _, err := e.svc.CancelRun(e.ctx, e.olga, run.ID); err != nil {
		t.Fatal(err)
	}
	if _, cancels := e.hub.take(); len(cancels) != 2 {
		t.Fatalf("agents told to cancel: %q", cancels)
	}
	// The agents are told again (the cancel may have been asked on
	// another replica, or lost with a connection) until they say it ended.
	resend := func() []string {
		t.Helper()
		if err := e.svc.ExpireRuns(e.ctx); err != nil {
			t.Fatal(err)
		}
		_, cancels := e.hub.take()
		return cancels
	}
	if first := resend(); len(first) != 2 {
		t.Fatalf("told again: %q", first)
	}
	if soon := resend(); len(soon) != 0 {
		t.Fatalf("told again at once: %q", soon)
	}
	e.clock.Add(service.CancelResend)
	if later := resend(); len(later) != 2 {
		t.Fatalf("told again later: %q", later)
	}
	for _, a := range e.web {
		if err := e.svc.RunFinished(e.ctx, a, run.ID, service.RunEnd{State: aramaki.RunCancelled, Started: e.clock.Now(), Ended: e.clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := e.svc.Run(e.ctx, e.olga, run.ID); got.State != aramaki.RunCancelled {
		t.Errorf("after the hosts stopped: %s", got.State)
	}
}

func TestAnAgentThatDisconnectsMidRunFailsItUntilItSaysHowItEnded(t *testing.T) {
	e := MustShopActions(t)
	run, _ := e.svc.RequestRun(e.ctx, e.olga, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: "stale"})
	e.svc.DispatchRuns(e.ctx)
	zero := 0
	if err := e.svc.RunFinished(e.ctx, e.web[0], run.ID, service.RunEnd{State: aramaki.RunSucceeded, ExitCode: &zero, Started: e.clock.Now(), Ended: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.AgentGone(e.ctx, e.web[1].ID); err != nil {
		t.Fatal(err)
	}
	got, _ := e.svc.Run(e.ctx, e.olga, run.ID)
	if got.State != aramaki.RunFailed || !strings.Contains(got.Targets[1].Error, "disconnected") {
		t.Fatalf("after web2 went away: %s, %+v", got.State, got.Targets[1])
	}
	// Back, it says the flush went through.
	if err := e.svc.RunFinished(e.ctx, e.web[1], run.ID, service.RunEnd{State: aramaki.RunSucceeded, ExitCode: &zero, Started: e.clock.Now(), Ended: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	got, _ = e.svc.Run(e.ctx, e.olga, run.ID)
	if got.State != aramaki.RunSucceeded || got.Targets[1].Error != "" {
		t.Fatalf("reconciled: %s, %+v", got.State, got.Targets[1])
	}
	if ev := e.events(aramaki.KindRunFinished); len(ev) != 2 || !strings.Contains(ev[1], "said how it ended when it came back") {
		t.Errorf("finished events %q", ev)
	}
}

func TestAnAgentCannotEndWhatItWasNeverAskedToStart(t *testing.T) {
	e := MustShopActions(t)
	run, _ := e.svc.RequestRun(e.ctx, e.olga, service.RunRequest{System: "shop-db", Action: "restart-db", Reason: "x"})
	zero := 0
	err := e.svc.RunFinished(e.ctx, e.db, run.ID, service.RunEnd{State: aramaki.RunSucceeded, ExitCode: &zero, Started: e.clock.Now(), Ended: e.clock.Now()})
	if aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
		t.Errorf("finishing a part awaiting approval: %v", err)
	}
	if err := e.svc.RunOutput(e.ctx, e.db, run.ID, 1, "fake"); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
		t.Errorf("output of a part never started: %v", err)
	}
	if got, _ := e.svc.Run(e.ctx, e.olga, run.ID); got.State != aramaki.RunAwaitingApproval {
		t.Errorf("the run after a forged end: %s", got.State)
	}
	if _, err := e.svc.Run(e.ctx, aramaki.Principal{}, run.ID); aramaki.ErrorCode(err) != aramaki.EUNAUTHORIZED {
		t.Errorf("an anonymous look at a run: %v", err)
	}
}

func TestNothingWaitsForever(t *testing.T) {
	e := MustShopActions(t)
	// Nobody approves within a day.
	waiting, _ := e.svc.RequestRun(e.ctx, e.olga, service.RunRequest{System: "shop-db", Action: "restart-db", Reason: "x"})
	// A host that never comes back, and one that never says how it ended.
	e.hub.connected = []string{e.web[1].ID}
	flush, _ := e.svc.RequestRun(e.ctx, e.olga, service.RunRequest{System: "shop-web", Action: "flush-varnish", Reason: "stale"})
	e.svc.DispatchRuns(e.ctx)

	e.clock.Add(31 * time.Second) // past the flush's 30s timeout, not past the grace
	if err := e.svc.ExpireRuns(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.svc.Run(e.ctx, e.olga, flush.ID); got.State != aramaki.RunRunning {
		t.Fatalf("expired too early: %+v", got)
	}
	e.clock.Add(service.StartTimeout)
	if err := e.svc.ExpireRuns(e.ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := e.svc.Run(e.ctx, e.olga, flush.ID)
	if got.State != aramaki.RunFailed || !strings.Contains(got.Targets[0].Error, "did not connect") || got.Targets[1].State != aramaki.RunTimedOut {
		t.Fatalf("after an hour: %s, %+v", got.State, got.Targets)
	}
	e.clock.Add(service.ApprovalTimeout)
	if err := e.svc.ExpireRuns(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.svc.Run(e.ctx, e.olga, waiting.ID); got.State != aramaki.RunCancelled || !strings.Contains(got.Error, "nobody approved") {
		t.Fatalf("after a day without approval: %+v", got)
	}
	if ev := e.events(aramaki.KindRunFinished); len(ev) != 2 {
		t.Errorf("on the timeline: %q", ev)
	}
}
