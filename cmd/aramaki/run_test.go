package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/servicetest"
)

// runServer is the API over a real service with a shop whose two web
// hosts allow flushing Varnish and whose database host allows a restart
// that needs a second person. No agent is connected: the test says what
// the hosts printed and how their part ended, as their agents would.
type runServer struct {
	t     *testing.T
	ctx   context.Context
	svc   *service.Service
	url   string
	admin string // token
	otto  string // token of an operator of the shop
	hosts map[string]aramaki.Agent
	seq   uint64
}

func MustRunServer(t *testing.T) *runServer {
	t.Helper()
	se := servicetest.MustService(t, map[string]string{
		"systems/shop.yaml": "id: shop\ntitle: Shop\nsubsystems: [shop-web, shop-db]\n",
		"systems/shop-web.yaml": `id: shop-web
title: Shop web
actions:
  - {name: flush-varnish, rule: Flush only when product pages are stale.}
`,
		"systems/shop-db.yaml": `id: shop-db
title: Shop database
actions:
  - {name: restart-db, approval: true}
`,
	})
	srv := httptest.NewServer(api.New(se.Service, se.Log, api.Options{}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	svc := se.Service
	admin, err := svc.AuthenticateToken(ctx, se.Admin.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, admin, "otto", "a long enough password"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.GrantRole(ctx, admin, "otto", "shop", aramaki.RoleOperator); err != nil {
		t.Fatal(err)
	}
	otto, err := svc.Login(ctx, "otto", "a long enough password", "cli", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := &runServer{t: t, ctx: ctx, svc: svc, url: srv.URL, admin: se.Admin.Token, otto: otto.Secret, hosts: map[string]aramaki.Agent{}}
	dflt := "."
	flush := aramaki.ActionSpec{Name: "flush-varnish", Argv: []string{"/usr/bin/varnishadm", "ban", "req.url", "~", "{pattern}"},
		Params: []aramaki.Param{{Name: "pattern", Type: aramaki.ParamString, Pattern: `[A-Za-z0-9/^$.*_-]{1,100}`, Default: &dflt}}}
	restart := aramaki.ActionSpec{Name: "restart-db", Argv: []string{"/usr/bin/systemctl", "restart", "postgresql"}}
	for _, h := range []struct {
		name, system string
		spec         aramaki.ActionSpec
	}{{"web1", "shop-web", flush}, {"web2", "shop-web", flush}, {"db1", "shop-db", restart}} {
		tok, err := svc.CreateEnrollmentToken(ctx, admin, []string{h.system}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(nil)
		a, err := svc.Enroll(ctx, tok.ID, tok.Secret, pub, h.name, "test")
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.SetAgentActions(ctx, a, []aramaki.ActionSpec{h.spec}); err != nil {
			t.Fatal(err)
		}
		s.hosts[h.name] = a
	}
	// The hosts are connected and take what they are asked to start.
	hub := &servicetest.Hub{}
	for _, a := range s.hosts {
		hub.Agents = append(hub.Agents, a.ID)
	}
	svc.SetHub(hub)
	t.Setenv("ARAMAKI_CLIENT_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	t.Setenv("ARAMAKI_CA", "")
	return s
}

// CLIAs runs a client command with a token and returns its exit code, what
// it printed and what it complained about.
func (s *runServer) CLIAs(token string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(s.ctx, append(args, "--server", s.url, "--token", token), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// MustCLI runs a client command as the admin and fails unless it succeeds.
func (s *runServer) MustCLI(args ...string) string {
	s.t.Helper()
	code, out, errs := s.CLIAs(s.admin, args...)
	if code != 0 {
		s.t.Fatalf("aramaki %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// Say records what a host printed for a run, as its agent sends it.
func (s *runServer) Say(host, run, output string) {
	s.t.Helper()
	s.seq++
	if err := s.svc.DispatchRuns(s.ctx); err != nil { // the host was asked to start it
		s.t.Fatal(err)
	}
	if err := s.svc.RunOutput(s.ctx, s.hosts[host], run, s.seq, output); err != nil {
		s.t.Error(err)
	}
}

// End records how a host's part of a run ended.
func (s *runServer) End(host, run string, state aramaki.RunState, exit int) {
	s.t.Helper()
	now := time.Now()
	if err := s.svc.DispatchRuns(s.ctx); err != nil { // the host was asked to start it
		s.t.Fatal(err)
	}
	if err := s.svc.RunFinished(s.ctx, s.hosts[host], run, service.RunEnd{State: state, ExitCode: &exit, Started: now.Add(-time.Second), Ended: now}); err != nil {
		s.t.Error(err)
	}
}

// MustRunID runs the action as the admin and returns the run's id.
func (s *runServer) MustRunID(action, system, reason string) string {
	s.t.Helper()
	var r aramaki.Run
	mustJSON(s.t, s.MustCLI("run", action, "--system", system, "--reason", reason, "-o", "json"), &r)
	return r.ID
}

// NextRun waits for a run newer than after to be asked for, and returns it.
func (s *runServer) NextRun(after string) string {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		runs, err := s.svc.Runs(s.ctx, aramaki.Principal{User: "admin", Bindings: []aramaki.RoleBinding{{User: "admin", System: aramaki.GlobalScope, Role: aramaki.RoleAdmin}}}, service.RunQuery{Limit: 1})
		if err != nil {
			s.t.Error(err)
			return ""
		}
		if len(runs) > 0 && runs[0].ID != after {
			return runs[0].ID
		}
	}
	s.t.Error("no new run was asked for")
	return ""
}

func TestRunningAnActionSaysWhoDidItLatelyAndFollowsItsOutput(t *testing.T) {
	s := MustRunServer(t)
	out := s.MustCLI("run", "flush-varnish", "--system", "shop-web", "--reason", "Stale product pages", "--param", "pattern=^/products/")
	if !strings.Contains(out, "Rule: Flush only when product pages are stale.\n") || !strings.Contains(out, "of flush-varnish on shop-web (web1, web2): running") ||
		strings.Contains(out, "ran on") {
		t.Fatalf("the first run:\n%s", out)
	}
	var runs api.RunsResponse
	mustJSON(t, s.MustCLI("runs", "--action", "flush-varnish", "-o", "json"), &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].Params["pattern"] != "^/products/" {
		t.Fatalf("runs -o json: %+v", runs)
	}
	first := runs.Runs[0]
	s.End("web1", first.ID, aramaki.RunSucceeded, 0)
	s.End("web2", first.ID, aramaki.RunSucceeded, 0)

	// Before flushing again: who flushed, how long ago, and how it went.
	// The host's output is followed as it comes, a line at a time, and
	// nothing it prints drives the terminal.
	var second string
	done := make(chan struct{})
	go func() {
		defer close(done)
		id := s.NextRun(first.ID)
		second = id
		s.Say("web1", id, "banned \x1b]0;owned\x07/products/\n")
		s.Say("web2", id, "varnish: \x1b[31mno ")
		time.Sleep(300 * time.Millisecond)
		s.Say("web2", id, "such ban\u202e\nsecond line\n")
		s.End("web1", id, aramaki.RunSucceeded, 0)
		s.End("web2", id, aramaki.RunFailed, 3)
	}()
	code, out, errs := s.CLIAs(s.admin, "run", "flush-varnish", "--system", "shop-web", "--reason", "Still stale", "--wait", "20s")
	<-done
	if !regexp.MustCompile(`\nflush-varnish ran on shop-web (just now|\d+ s ago), asked by admin: succeeded \(Stale product pages\)\n`).MatchString(out) {
		t.Errorf("running it again does not say who ran it before, when and how it went:\n%s", out)
	}
	for _, want := range []string{"web1: banned �]0;owned�/products/\n", "web2: varnish: �[31mno such ban�\n", "web2: second line\n", "failed after"} {
		if !strings.Contains(out, want) {
			t.Errorf("the waiting run's output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 || !strings.Contains(errs, "failed: web2 failed (exit 3)") {
		t.Errorf("a run that failed on a host: exit %d, %s", code, errs)
	}
	if strings.ContainsAny(out, "\x1b\x07\u202e") {
		t.Errorf("the host's output reaches the terminal raw: %q", out)
	}

	// A flush that succeeds everywhere exits 0.
	go func() {
		id := s.NextRun(second)
		s.End("web1", id, aramaki.RunSucceeded, 0)
		s.End("web2", id, aramaki.RunSucceeded, 0)
	}()
	if out := s.MustCLI("run", "flush-varnish", "--system", "shop-web", "--reason", "Once more", "--wait", "20s"); !strings.Contains(out, "succeeded after") ||
		strings.Count(out, " ran on shop-web ") != 2 {
		t.Errorf("a run that succeeded:\n%s", out)
	}
}

func TestARunNeedingApprovalWaitsForAnotherPerson(t *testing.T) {
	s := MustRunServer(t)
	code, out, errs := s.CLIAs(s.otto, "run", "restart-db", "--system", "shop-db", "--reason", "Connections pile up", "--wait", "5s")
	if code != 1 || !strings.Contains(out, "awaiting approval") || !strings.Contains(out, "aramaki approve ") ||
		!strings.Contains(errs, "waits for a second person to approve it") {
		t.Fatalf("waiting for a run that needs approval: exit %d\n%s%s", code, out, errs)
	}
	id := s.NextRun("")
	if code, _, errs := s.CLIAs(s.otto, "approve", id); code != 1 || !strings.Contains(errs, "another person must approve it (forbidden)") {
		t.Errorf("approving one's own run: exit %d, %s", code, errs)
	}
	if out := s.MustCLI("approve", id); !strings.Contains(out, "Approved run "+id+" of restart-db on shop-db, asked by otto: running") {
		t.Errorf("approve: %s", out)
	}
	// Breaking glass runs it at once, and says so everywhere.
	code, out, errs = s.CLIAs(s.otto, "run", "restart-db", "--system", "shop-db", "--reason", "Shop down, nobody answers", "--break-glass")
	if code != 0 || !strings.Contains(out, "running (break glass)") || !strings.Contains(out, "restart-db is running on shop-db, asked by otto") {
		t.Errorf("breaking glass: exit %d\n%s%s", code, out, errs)
	}
}

func TestRunsAreListedShownCancelledAndSummedUp(t *testing.T) {
	s := MustRunServer(t)
	flushed := s.MustRunID("flush-varnish", "shop-web", "Stale product pages\x1b[2J")
	s.Say("web1", flushed, "ban added\x1b[2J\nall done\n")
	s.End("web1", flushed, aramaki.RunSucceeded, 0)
	s.End("web2", flushed, aramaki.RunFailed, 2)
	pending := s.MustRunID("restart-db", "shop-db", "Connections pile up")

	table := s.MustCLI("runs")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "ASKED BY") || !strings.Contains(lines[0], "DURATION") {
		t.Fatalf("runs table:\n%s", table)
	}
	for i, want := range [][]string{
		{pending, "restart-db", "shop-db", "awaiting approval", "admin", "just now", "Connections pile up"},
		{flushed, "flush-varnish", "shop-web", "failed", "admin", "Stale product pages"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d lacks %q:\n%s", i+1, w, table)
			}
		}
	}
	if strings.Contains(table, "\x1b") {
		t.Errorf("the table shows control characters: %q", table)
	}
	var some api.RunsResponse
	mustJSON(t, s.MustCLI("runs", "--state", "failed,cancelled", "--system", "shop", "--since", "1h", "-o", "json"), &some)
	if len(some.Runs) != 1 || some.Runs[0].ID != flushed {
		t.Errorf("runs --state failed,cancelled: %+v", some.Runs)
	}

	show := s.MustCLI("run", "show", flushed)
	for _, want := range []string{"Run " + flushed + " of flush-varnish on shop-web: failed", "Rule:      Flush only when product pages are stale.",
		"On web1: succeeded, exit 0", "  ban added�[2J\n  all done\n", "On web2: failed, exit 2"} {
		if !strings.Contains(show, want) {
			t.Errorf("run show lacks %q:\n%s", want, show)
		}
	}
	if strings.Contains(show, "\x1b") {
		t.Errorf("run show prints control characters: %q", show)
	}
	var view service.RunView
	mustJSON(t, s.MustCLI("run", "show", flushed, "-o", "json"), &view)
	if view.Targets[0].Output != "ban added\x1b[2J\nall done\n" {
		t.Errorf("run show -o json: the output is not as the host sent it: %q", view.Targets[0].Output)
	}

	if out := s.MustCLI("run", "cancel", pending); !strings.Contains(out, "Cancelled run "+pending+" of restart-db on shop-db: cancelled") {
		t.Errorf("run cancel: %s", out)
	}
	if code, _, errs := s.CLIAs(s.admin, "run", "cancel", pending); code != 1 || !strings.Contains(errs, "is cancelled already (conflict)") {
		t.Errorf("cancelling twice: exit %d, %s", code, errs)
	}

	stats := s.MustCLI("run", "stats", "flush-varnish", "--system", "shop-web", "--period", "24h")
	for _, want := range []string{"flush-varnish on shop-web over the last 24h0m0s", "Runs:     1", "Failed:   1 (100.0%)", "Average:  ", "p95:      "} {
		if !strings.Contains(stats, want) {
			t.Errorf("run stats lacks %q:\n%s", want, stats)
		}
	}
	var st aramaki.RunStats
	mustJSON(t, s.MustCLI("run", "stats", "flush-varnish", "--system", "shop-web", "-o", "json"), &st)
	if st.Runs != 1 || st.Failed != 1 {
		t.Errorf("run stats -o json: %+v", st)
	}
}

func TestTheRunCommandsRefuseWhatTheyCannotDo(t *testing.T) {
	s := MustRunServer(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "flsh-varnish", "--system", "shop-web", "--reason", "x"}, "system shop-web has no action flsh-varnish (its actions: flush-varnish) (not_found)"},
		{[]string{"run", "flush-varnish", "--system", "shop", "--reason", "x"}, "system shop has no action flush-varnish (it has none)"},
		{[]string{"run", "flush-varnish", "--system", "shop-web"}, "give --reason"},
		{[]string{"run", "flush-varnish", "--reason", "x"}, "Give --system"},
		{[]string{"run", "flush-varnish", "--system", "shop-web", "--reason", "x", "--param", "pattern"}, "give NAME=VALUE"},
		{[]string{"run", "flush-varnish", "--system", "shop-web", "--reason", "x", "--param", "pattern=/; rm -rf /"}, "does not match its pattern"},
		{[]string{"run", "flush-varnish", "--system", "shop-web", "--reason", "x", "--break-glass"}, "needs no approval"},
		{[]string{"run", "show"}, "usage: aramaki run"},
		{[]string{"run", "show", "1", "--reason", "x"}, "show takes no --reason"},
		{[]string{"run", "flush-varnish", "extra", "--system", "shop-web", "--reason", "x"}, "usage: aramaki run"},
		{[]string{"run", "flush-varnish", "--system", "shop-web", "--reason", "x", "--period", "1h"}, "running an action takes no --period"},
		{[]string{"run", "stats", "flush-varnish"}, "Give --system"},
		{[]string{"run", "show", "999"}, "run 999 not found (not_found)"},
		{[]string{"runs", "--state", "sleeping"}, `unknown run state "sleeping"`},
		{[]string{"approve"}, "usage: aramaki approve ID"},
	} {
		if code, _, errs := s.CLIAs(s.admin, c.args...); code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("aramaki %s: exit %d, %s; want %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
	var runs api.RunsResponse
	mustJSON(t, s.MustCLI("runs", "-o", "json"), &runs)
	if len(runs.Runs) != 0 {
		t.Errorf("refused runs were recorded: %+v", runs.Runs)
	}
	if !slices.ContainsFunc(commands(), func(c commandInfo) bool { return c.name == "approve" }) {
		t.Error("no approve command")
	}
}
