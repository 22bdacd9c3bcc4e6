package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/servicetest"
)

// workflowFiles are a shop whose web hosts flush Varnish and whose
// database host restarts (with a second person), and two workflows: a
// flush of the web hosts one at a time, then again with what the first
// flush printed; a restart of the database.
var workflowFiles = map[string]string{
	"systems/shop.yaml": `id: shop
title: Shop
subsystems: [shop-web, shop-db]
workflows:
  - name: flush-all
    rule: Tell the shop channel afterwards.
    inputs:
      - {name: pattern, default: "."}
    steps:
      - {name: flush, system: shop-web, action: flush-varnish, concurrency: 1, params: {pattern: "${inputs.pattern}"}, outputs: {bans: 'bans: (\d+)'}}
      - {name: again, system: shop-web, action: flush-varnish, stop_after: 50%, params: {pattern: "/${steps.flush.bans}"}}
  - name: restart-db
    steps:
      - {name: restart, system: shop-db, action: restart-db}
`,
	"systems/shop-web.yaml": "id: shop-web\ntitle: Shop web\nactions: [{name: flush-varnish}]\n",
	"systems/shop-db.yaml":  "id: shop-db\ntitle: Shop database\nactions: [{name: restart-db, approval: true}]\n",
}

// MustWorkflowServer is the API over a real service with the shop of
// workflowFiles: web1 and web2 are connected, db1 is not. No agent runs
// anything: the test says what the hosts printed and how their parts
// ended, as their agents would.
func MustWorkflowServer(t *testing.T) *runServer {
	t.Helper()
	se := servicetest.MustService(t, workflowFiles)
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
	svc.SetHub(&servicetest.Hub{Agents: []string{s.hosts["web1"].ID, s.hosts["web2"].ID}})
	t.Setenv("ARAMAKI_CLIENT_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	t.Setenv("ARAMAKI_CA", "")
	return s
}

// adminPrincipal is who the test asks the service as.
var adminPrincipal = aramaki.Principal{User: "admin", Bindings: []aramaki.RoleBinding{{User: "admin", System: aramaki.GlobalScope, Role: aramaki.RoleAdmin}}}

// PlayHosts runs the server's dispatcher and plays the connected hosts
// until the test ends: each part of a workflow run a host is asked to
// start prints what prints says and ends as ends says.
func (s *runServer) PlayHosts(prints func(host string) string, ends func(host string) aramaki.RunState) {
	ctx, cancel := context.WithCancel(s.ctx)
	var wg sync.WaitGroup
	s.t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(2)
	go func() { defer wg.Done(); s.svc.RunDispatch(ctx) }()
	go func() {
		defer wg.Done()
		done := map[string]bool{}
		for seq := uint64(1); ctx.Err() == nil; time.Sleep(20 * time.Millisecond) {
			runs, err := s.svc.Runs(ctx, adminPrincipal, service.RunQuery{States: []aramaki.RunState{aramaki.RunRunning}})
			if err != nil {
				continue
			}
			for _, r := range runs {
				if done[r.ID] || r.WorkflowRun == "" || len(r.Targets) != 1 {
					continue
				}
				done[r.ID] = true
				host, zero, now := s.hosts[r.Targets[0].Name], 0, time.Now()
				err := s.svc.DispatchRuns(ctx) // the host was asked to start it
				if err == nil {
					err = s.svc.RunOutput(ctx, host, r.ID, seq, prints(host.Name))
					seq++
				}
				if err == nil {
					err = s.svc.RunFinished(ctx, host, r.ID, service.RunEnd{State: ends(host.Name), ExitCode: &zero, Started: now.Add(-time.Second), Ended: now})
				}
				if err != nil && ctx.Err() == nil {
					s.t.Errorf("host %s, run %s: %v", host.Name, r.ID, err)
				}
			}
		}
	}()
}

func TestAWorkflowsPlanIsShownAndNothingRunsOnADryRun(t *testing.T) {
	s := MustWorkflowServer(t)
	code, out, errs := s.CLIAs(s.otto, "workflow", "run", "flush-all", "--system", "shop", "--dry-run", "--input", "pattern=^/products/")
	if code != 0 {
		t.Fatalf("a dry run: exit %d\n%s%s", code, out, errs)
	}
	want := `Workflow flush-all on shop: 2 steps
Rule:     Tell the shop channel afterwards.
Inputs:   pattern=^/products/
1. flush: flush-varnish on shop-web, 1 at a time, stops at the first failure
   Hosts:   web1, web2
   Values:  pattern=^/products/
   Outputs: bans
2. again: flush-varnish on shop-web, 2 at a time, stops once 50% of its hosts failed
   Hosts:   web1, web2
   Values:  pattern=/${steps.flush.bans}
`
	if out != want {
		t.Errorf("the dry run:\n%s\nwant:\n%s", out, want)
	}
	out = s.MustCLI("workflow", "run", "restart-db", "--system", "shop", "--dry-run")
	for _, w := range []string{"Approval: a second person must approve it before it starts\n", "Hosts:   db1 (not connected)\n", "1 of 1 not connected: the step waits for them"} {
		if !strings.Contains(out, w) {
			t.Errorf("the dry run of the restart lacks %q:\n%s", w, out)
		}
	}
	var plan service.WorkflowPlan
	mustJSON(t, s.MustCLI("workflow", "run", "flush-all", "--system", "shop", "--dry-run", "-o", "json"), &plan)
	if len(plan.Steps) != 2 || plan.Steps[0].Params["pattern"] != "." || len(plan.Steps[1].Hosts) != 2 || !plan.Steps[1].Hosts[0].Connected {
		t.Errorf("the dry run in JSON: %+v", plan)
	}
	var list api.WorkflowRunsResponse
	mustJSON(t, s.MustCLI("workflow", "runs", "-o", "json"), &list)
	if len(list.WorkflowRuns) != 0 {
		t.Errorf("dry runs stored workflow runs: %+v", list.WorkflowRuns)
	}
}

func TestAWorkflowRunIsFollowedStepByStepUntilItEnds(t *testing.T) {
	s := MustWorkflowServer(t)
	var failing atomic.Value // the host that fails its part
	failing.Store("")
	s.PlayHosts(func(host string) string { return "bans: 3\x1b[2J\n" },
		func(host string) aramaki.RunState {
			if host == failing.Load() {
				return aramaki.RunFailed
			}
			return aramaki.RunSucceeded
		})

	code, out, errs := s.CLIAs(s.otto, "workflow", "run", "flush-all", "--system", "shop", "--reason", "Stale product pages", "--wait", "30s")
	if code != 0 {
		t.Fatalf("a workflow run that succeeds: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"Workflow flush-all on shop: 2 steps\nRule:     Tell the shop channel afterwards.\n",
		"\nWorkflow run 1 of flush-all on shop: running\n",
		"Step 1/2 flush: flush-varnish on shop-web, 2 hosts, 1 at a time, stops at the first failure: pattern=.\n",
		"  web1: succeeded (run ",
		"  web2: succeeded (run ",
		"Step 1/2 flush: succeeded, outputs bans=3\n",
		"Step 2/2 again: flush-varnish on shop-web, 2 hosts, 2 at a time, stops once 50% of its hosts failed: pattern=/3\n",
		"Step 2/2 again: succeeded\n",
		"Workflow run 1 succeeded after ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("following the workflow run, no %q in:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "Step 1/2 flush: succeeded"), strings.Index(out, "Step 2/2 again: flush-varnish"); i < 0 || j < i {
		t.Errorf("the steps are not told in order:\n%s", out)
	}

	// Once more: it says it ran just now; web2 fails the first step, whose
	// breaker trips at the first failure, so the second never starts; the
	// command says so and exits 1.
	failing.Store("web2")
	code, out, errs = s.CLIAs(s.admin, "workflow", "run", "flush-all", "--system", "shop", "--reason", "Still stale", "--wait", "30s")
	if !regexp.MustCompile(`\nflush-all ran on shop (just now|\d+ s ago), asked by otto: succeeded \(Stale product pages\)\n`).MatchString(out) {
		t.Errorf("running it again does not say who ran it before:\n%s", out)
	}
	if code != 1 || !strings.Contains(out, "  web2: failed (run ") || !strings.Contains(out, "Workflow run 2 failed after") ||
		!strings.Contains(errs, "workflow run 2 failed: step flush stopped after 1 of 2 hosts failed (stop_after 1)") {
		t.Errorf("a workflow run that failed: exit %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out, "Step 2/2 again: flush-varnish") || !strings.Contains(out, "Step 2/2 again: cancelled: not started") {
		t.Errorf("the step after the failure:\n%s", out)
	}
}

func TestWorkflowRunsAreListedShownApprovedAndCancelled(t *testing.T) {
	s := MustWorkflowServer(t)
	code, out, errs := s.CLIAs(s.otto, "workflow", "run", "restart-db", "--system", "shop", "--reason", "Connections pile up", "--wait", "5s")
	if code != 1 || !strings.Contains(out, "Workflow run 1 of restart-db on shop: awaiting approval\n") ||
		!strings.Contains(out, "It waits for a second person to approve it: aramaki workflow approve 1\n") ||
		!strings.Contains(errs, "workflow run 1 has not started: it waits for a second person to approve it") {
		t.Fatalf("waiting for a workflow run that needs approval: exit %d\n%s%s", code, out, errs)
	}
	var flush aramaki.WorkflowRun
	mustJSON(t, s.MustCLI("workflow", "run", "flush-all", "--system", "shop", "--reason", "Stale\x1b[2J pages", "--input", "pattern=^/products/", "-o", "json"), &flush)
	if flush.ID != "2" || flush.State != aramaki.RunRunning || flush.Inputs["pattern"] != "^/products/" {
		t.Fatalf("workflow run -o json: %+v", flush)
	}

	table := s.MustCLI("workflow", "runs")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^ID +WORKFLOW +SYSTEM +STATE +STEP +ASKED BY +WHEN +DURATION +REASON$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^2 +flush-all +shop +running +1/2 flush +admin +just now +\S+ +Stale�\[2J pages$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^1 +restart-db +shop +awaiting approval +0/1 done +otto +just now +- +Connections pile up$`).MatchString(lines[2]) {
		t.Errorf("workflow runs:\n%s", table)
	}
	var some api.WorkflowRunsResponse
	mustJSON(t, s.MustCLI("workflow", "runs", "--state", "awaiting_approval", "--workflow", "restart-db", "--system", "shop", "-o", "json"), &some)
	if len(some.WorkflowRuns) != 1 || some.WorkflowRuns[0].ID != "1" {
		t.Errorf("workflow runs awaiting approval: %+v", some.WorkflowRuns)
	}

	if code, _, errs := s.CLIAs(s.otto, "workflow", "approve", "1"); code != 1 || !strings.Contains(errs, "another person must approve it (forbidden)") {
		t.Errorf("approving one's own workflow run: exit %d, %s", code, errs)
	}
	if out := s.MustCLI("workflow", "approve", "1"); out != "Approved workflow run 1 of restart-db on shop, asked by otto: running\n" {
		t.Errorf("workflow approve: %q", out)
	}
	if err := s.svc.AdvanceWorkflows(s.ctx); err != nil {
		t.Fatal(err)
	}
	show := s.MustCLI("workflow", "show", "1")
	for _, want := range []string{
		"Workflow run 1 of restart-db on shop: running\n",
		"Asked:     ", "by otto (just now): Connections pile up\n",
		"Approved:  ", " by admin\n",
		"\nStep 1/1 restart: restart-db on shop-db: running\n",
		"What each host printed: aramaki run show RUN\n",
	} {
		if !strings.Contains(show, want) {
			t.Errorf("workflow show lacks %q:\n%s", want, show)
		}
	}
	if !regexp.MustCompile(`\n  db1 +running +run \d+\n`).MatchString(show) {
		t.Errorf("workflow show does not give the host's run:\n%s", show)
	}

	if out := s.MustCLI("workflow", "cancel", "1"); out != "Cancelled workflow run 1 of restart-db on shop: no more hosts are started\n" {
		t.Errorf("workflow cancel: %q", out)
	}
	if code, _, errs := s.CLIAs(s.admin, "workflow", "cancel", "1"); code != 1 || !strings.Contains(errs, "is cancelled already (conflict)") {
		t.Errorf("cancelling twice: exit %d, %s", code, errs)
	}
	show = s.MustCLI("workflow", "show", "2")
	for _, want := range []string{"Inputs:    pattern=^/products/\n", "Rule:      Tell the shop channel afterwards.\n", "Step 2/2 again: flush-varnish on shop-web: requested\n", "  web2  requested  -\n"} {
		if !strings.Contains(show, want) {
			t.Errorf("workflow show lacks %q:\n%s", want, show)
		}
	}
	if strings.Contains(show, "\x1b") {
		t.Errorf("workflow show prints control characters: %q", show)
	}
	var shown aramaki.WorkflowRun
	mustJSON(t, s.MustCLI("workflow", "show", "2", "-o", "json"), &shown)
	if shown.Reason != "Stale\x1b[2J pages" {
		t.Errorf("workflow show -o json: the reason is not as given: %q", shown.Reason)
	}
}

func TestTheWorkflowCommandsRefuseWhatTheyCannotDo(t *testing.T) {
	s := MustWorkflowServer(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"workflow"}, "usage: aramaki workflow run NAME"},
		{[]string{"workflow", "rerun", "flush-all"}, "usage: aramaki workflow"},
		{[]string{"workflow", "run"}, "usage: aramaki workflow"},
		{[]string{"workflow", "show"}, "usage: aramaki workflow"},
		{[]string{"workflow", "runs", "flush-all"}, "usage: aramaki workflow"},
		{[]string{"workflow", "run", "flush-all", "--reason", "x"}, "Give --system"},
		{[]string{"workflow", "run", "flush-all", "--system", "shop"}, "give --reason TEXT (or look first with --dry-run)"},
		{[]string{"workflow", "run", "flush-all", "--system", "shop", "--reason", "x", "--input", "pattern"}, `--input "pattern": give NAME=VALUE`},
		{[]string{"workflow", "run", "flush-all", "--system", "shop", "--reason", "x", "--input", "a=1", "--input", "a=2"}, "--input a is given twice"},
		{[]string{"workflow", "run", "flush-all", "--system", "shop", "--reason", "x", "--wait", "-1s"}, "--wait must not be negative"},
		{[]string{"workflow", "run", "flush-all", "--system", "shop", "--dry-run", "--wait", "1m"}, "not both"},
		{[]string{"workflow", "run", "flush-all", "--system", "shop", "--reason", "x", "--limit", "3"}, "running a workflow takes no --limit"},
		{[]string{"workflow", "runs", "--reason", "x"}, "runs takes no --reason"},
		{[]string{"workflow", "show", "1", "--system", "shop"}, "show takes no --system"},
		{[]string{"workflow", "run", "flush-al", "--system", "shop", "--reason", "x"}, "system shop has no workflow flush-al (not_found)"},
		{[]string{"workflow", "run", "flush-all", "--system", "shop-web", "--dry-run"}, "system shop-web has no workflow flush-all"},
		{[]string{"workflow", "run", "flush-all", "--system", "shop", "--reason", "x", "--input", "colour=red"}, `workflow flush-all has no input "colour" (invalid)`},
		{[]string{"workflow", "run", "flush-all", "--system", "shop", "--reason", "x", "--input", "pattern=/; rm -rf /"}, "does not match its pattern"},
		{[]string{"workflow", "runs", "--state", "sleeping"}, `unknown run state "sleeping"`},
		{[]string{"workflow", "show", "999"}, "workflow run 999 not found (not_found)"},
		{[]string{"workflow", "approve", "999"}, "workflow run 999 not found (not_found)"},
	} {
		if code, _, errs := s.CLIAs(s.admin, c.args...); code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("aramaki %s: exit %d, %s; want %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
	var list api.WorkflowRunsResponse
	mustJSON(t, s.MustCLI("workflow", "runs", "-o", "json"), &list)
	if len(list.WorkflowRuns) != 0 {
		t.Errorf("refused workflow runs were recorded: %+v", list.WorkflowRuns)
	}
	var help bytes.Buffer
	run(context.Background(), []string{"help"}, &help, &help)
	if !strings.Contains(help.String(), "\n  workflow    run a workflow across a system's hosts") {
		t.Errorf("aramaki help does not list the workflow command:\n%s", help.String())
	}
}

func TestAWorkflowsProgressIsPrintedOnceAsItChanges(t *testing.T) {
	started, ended := time.Now(), time.Now()
	w := aramaki.WorkflowRun{ID: "7", State: aramaki.RunRunning,
		Workflow: aramaki.Workflow{Name: "roll", Steps: []aramaki.WorkflowStep{{Name: "restart", Concurrency: 1, StopAfter: aramaki.Breaker{Failures: 2}}, {Name: "flush"}}},
		Steps: []aramaki.StepState{
			{Name: "restart", System: "app", Action: "restart-php", State: aramaki.RunRunning, Started: &started, Params: map[string]string{"grace": "5"},
				Hosts: []aramaki.StepHost{{Agent: "a1", Name: "app1", Run: "11", State: aramaki.RunRunning}, {Agent: "a2", Name: "app2", State: aramaki.RunRequested}}},
			{Name: "flush", System: "cache", Action: "flush\x1b[2J", State: aramaki.RunRequested, Hosts: []aramaki.StepHost{{Agent: "c1", Name: "cache1", State: aramaki.RunRequested}}},
		}}
	seen := map[string]aramaki.RunState{}
	var out bytes.Buffer
	printProgress(&out, w, seen)
	printProgress(&out, w, seen) // nothing changed
	w.Steps[0].Hosts[0].State = aramaki.RunSucceeded
	w.Steps[0].Hosts[1].Run, w.Steps[0].Hosts[1].State = "12", aramaki.RunFailed
	w.Steps[0].State, w.Steps[0].Ended, w.Steps[0].Error = aramaki.RunSucceeded, &ended, "1 of 2 hosts failed, below stop_after 2"
	w.Steps[0].Outputs = map[string]string{"version": "2.4"}
	w.Steps[1].State, w.Steps[1].Ended, w.Steps[1].Error = aramaki.RunCancelled, &ended, "not started: the workflow run stopped before it"
	w.Steps[1].Hosts[0].State = aramaki.RunCancelled
	printProgress(&out, w, seen)
	want := `Step 1/2 restart: restart-php on app, 2 hosts, 1 at a time, stops after 2 failures: grace=5
  app1: running (run 11)
  app1: succeeded (run 11)
  app2: failed (run 12)
Step 1/2 restart: succeeded, outputs version=2.4: 1 of 2 hosts failed, below stop_after 2
Step 2/2 flush: cancelled: not started: the workflow run stopped before it
`
	if out.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", out.String(), want)
	}
	for breaker, words := range map[string]string{"1": "stops at the first failure", "3": "stops after 3 failures", "25%": "stops once 25% of its hosts failed"} {
		if got := stopsAfter(breaker); got != words {
			t.Errorf("stopsAfter(%q) = %q, want %q", breaker, got, words)
		}
	}
}
