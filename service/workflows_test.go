package service_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// shopWorkflows: flush the web hosts one at a time, reading what the first
// one banned, then flush that on both at once; and restart the database,
// whose action needs a second person.
var shopWorkflows = []aramaki.Workflow{
	{Name: "rolling-flush", Rule: "Tell #shop.", Inputs: []aramaki.WorkflowInput{{Name: "pattern", Default: ptr(".")}}, Steps: []aramaki.WorkflowStep{
		{Name: "first", System: "shop-web", Action: "flush-varnish", Params: map[string]string{"pattern": "${inputs.pattern}"}, Concurrency: 1,
			Outputs: map[string]string{"banned": `banned (\S+)`}},
		{Name: "again", System: "shop-web", Action: "flush-varnish", Params: map[string]string{"pattern": "${steps.first.banned}"}},
	}},
	{Name: "flush-all", Steps: []aramaki.WorkflowStep{{Name: "flush", System: "shop-web", Action: "flush-varnish", StopAfter: aramaki.Breaker{Failures: 5}}}},
	{Name: "read-both", Steps: []aramaki.WorkflowStep{{Name: "read", System: "shop-web", Action: "flush-varnish", Outputs: map[string]string{"banned": `banned (\S+)`}}}},
	{Name: "restart-db", Steps: []aramaki.WorkflowStep{{Name: "restart", System: "shop-db", Action: "restart-db"}}},
}

// advance lets the engine and the dispatcher do what they do every second,
// a few rounds.
func (e *shopActions) advance() {
	e.t.Helper()
	for range 3 {
		if err := e.svc.AdvanceWorkflows(e.ctx); err != nil {
			e.t.Fatal(err)
		}
		if err := e.svc.DispatchRuns(e.ctx); err != nil {
			e.t.Fatal(err)
		}
	}
}

// finish has a host say how its part of a run ended, after printing.
func (e *shopActions) finish(agent aramaki.Agent, run string, state aramaki.RunState, output string) {
	e.t.Helper()
	if output != "" {
		if err := e.svc.RunOutput(e.ctx, agent, run, 1, output); err != nil {
			e.t.Fatal(err)
		}
	}
	code := 0
	if state != aramaki.RunSucceeded {
		code = 1
	}
	now := e.clock.Now()
	if err := e.svc.RunFinished(e.ctx, agent, run, service.RunEnd{State: state, ExitCode: &code, Started: now, Ended: now}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *shopActions) workflowRun(id string) aramaki.WorkflowRun {
	e.t.Helper()
	w, err := e.svc.WorkflowRun(e.ctx, e.olga, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

func hostsOf(starts []aramaki.RunStart, web []aramaki.Agent) []string {
	var out []string
	for _, s := range starts {
		for _, a := range web {
			if a.ID == s.Agent {
				out = append(out, a.Name+":"+s.Params["pattern"])
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestTheDryRunShowsWhatWouldRunWhereAndChangesNothing(t *testing.T) {
	e := MustShopActions(t)
	plan, err := e.svc.PlanWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "rolling-flush", Inputs: map[string]string{"pattern": "^/products/"}})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Rule != "Tell #shop." || plan.Approval || len(plan.Steps) != 2 {
		t.Fatalf("plan %+v", plan)
	}
	first, again := plan.Steps[0], plan.Steps[1]
	var names []string
	for _, h := range first.Hosts {
		names = append(names, h.Name)
		if !h.Connected {
			t.Errorf("%s shown as not connected", h.Name)
		}
	}
	if !slices.Equal(names, []string{"web1", "web2"}) || first.Params["pattern"] != "^/products/" || first.Concurrency != 1 || first.StopAfter != "1" ||
		again.Params["pattern"] != "${steps.first.banned}" || again.Concurrency != 2 {
		t.Errorf("steps %+v", plan.Steps)
	}
	if runs, _ := e.svc.WorkflowRuns(e.ctx, root, service.WorkflowRunQuery{}); len(runs) != 0 {
		t.Errorf("a dry run stored %+v", runs)
	}

	for _, c := range []struct {
		name string
		p    aramaki.Principal
		req  service.WorkflowRequest
		code string
		want string
	}{
		{"a viewer", e.vera, service.WorkflowRequest{System: "shop", Workflow: "rolling-flush"}, aramaki.EFORBIDDEN, ""},
		{"an unknown workflow", e.olga, service.WorkflowRequest{System: "shop", Workflow: "reboot-all"}, aramaki.ENOTFOUND, "has no workflow reboot-all"},
		{"an unknown input", e.olga, service.WorkflowRequest{System: "shop", Workflow: "rolling-flush", Inputs: map[string]string{"argv": "x"}}, aramaki.EINVALID, `no input "argv"`},
		{"a value the hosts refuse", e.olga, service.WorkflowRequest{System: "shop", Workflow: "rolling-flush", Inputs: map[string]string{"pattern": "x; reboot"}}, aramaki.EINVALID, "as web1 declares it"},
	} {
		_, err := e.svc.PlanWorkflow(e.ctx, c.p, c.req)
		if aramaki.ErrorCode(err) != c.code || !strings.Contains(aramaki.ErrorMessage(err), c.want) {
			t.Errorf("%s: %v, want %s saying %q", c.name, err, c.code, c.want)
		}
	}
}

func TestAWorkflowRunsItsStepsInOrderSoManyAtATimeAndFeedsOutputsOn(t *testing.T) {
	e := MustShopActions(t)
	if _, err := e.svc.RequestWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "rolling-flush"}); aramaki.ErrorCode(err) != aramaki.EINVALID {
		t.Fatalf("without a reason: %v", err)
	}
	w, err := e.svc.RequestWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "rolling-flush", Reason: "stale pages after the deploy",
		Inputs: map[string]string{"pattern": "^/p/"}})
	if err != nil {
		t.Fatal(err)
	}
	if w.State != aramaki.RunRunning || w.Inputs["pattern"] != "^/p/" {
		t.Fatalf("workflow run %+v", w)
	}

	// One host at a time.
	e.advance()
	started, _ := e.hub.take()
	if got := hostsOf(started, e.web); !slices.Equal(got, []string{"web1:^/p/"}) {
		t.Fatalf("first started %q, want web1 alone", got)
	}
	e.finish(e.web[0], started[0].Run, aramaki.RunSucceeded, "banned ^/p/x\n")
	e.advance()
	started, _ = e.hub.take()
	if got := hostsOf(started, e.web); !slices.Equal(got, []string{"web2:^/p/"}) {
		t.Fatalf("then started %q, want web2", got)
	}
	e.finish(e.web[1], started[0].Run, aramaki.RunSucceeded, "banned ^/p/y\n")

	// The output of the first host (by name) feeds the next step, whose
	// hosts run at once.
	e.advance()
	started, _ = e.hub.take()
	if got := hostsOf(started, e.web); !slices.Equal(got, []string{"web1:^/p/x", "web2:^/p/x"}) {
		t.Fatalf("the second step started %q", got)
	}
	got := e.workflowRun(w.ID)
	if got.Step != 1 || got.Steps[0].State != aramaki.RunSucceeded || got.Steps[0].Outputs["banned"] != "^/p/x" || got.Steps[1].State != aramaki.RunRunning {
		t.Fatalf("after the first step: %+v", got)
	}
	for _, s := range started {
		i := slices.IndexFunc(e.web, func(a aramaki.Agent) bool { return a.ID == s.Agent })
		e.finish(e.web[i], s.Run, aramaki.RunSucceeded, "")
	}
	e.advance()
	got = e.workflowRun(w.ID)
	if got.State != aramaki.RunSucceeded || got.Ended == nil || got.Steps[1].State != aramaki.RunSucceeded {
		t.Fatalf("at the end: %+v", got)
	}
	for _, st := range got.Steps {
		for _, h := range st.Hosts {
			if h.Run == "" || h.State != aramaki.RunSucceeded {
				t.Errorf("step %s host %+v", st.Name, h)
			}
		}
	}

	// Each host's part is a run of its own, with the workflow's reason.
	runs, err := e.svc.Runs(e.ctx, e.olga, service.RunQuery{System: "shop"})
	if err != nil || len(runs) != 4 {
		t.Fatalf("runs %d, %v", len(runs), err)
	}
	for _, r := range runs {
		if r.WorkflowRun != w.ID || r.RequestedBy != "olga" || !strings.Contains(r.Reason, "stale pages after the deploy") || len(r.Targets) != 1 {
			t.Errorf("run %+v", r)
		}
	}
	events := e.events(aramaki.KindWorkflowRequested, aramaki.KindWorkflowStarted, aramaki.KindWorkflowStep, aramaki.KindWorkflowFinished)
	if len(events) != 7 || !strings.Contains(events[0], "olga asked to run workflow rolling-flush on shop") ||
		!strings.Contains(events[2], "1 at a time, stopping after 1 failed") || !strings.Contains(events[3], "read banned") ||
		!strings.Contains(events[4], "2 at a time") || !strings.Contains(events[6], "workflow run "+w.ID+" of rolling-flush on shop succeeded") {
		t.Errorf("on the timeline:\n%s", strings.Join(events, "\n"))
	}
}

func TestTheBreakerStopsAWorkflowAtTheFirstFailure(t *testing.T) {
	e := MustShopActions(t)
	w, err := e.svc.RequestWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "rolling-flush", Reason: "stale"})
	if err != nil {
		t.Fatal(err)
	}
	e.advance()
	started, _ := e.hub.take()
	e.finish(e.web[0], started[0].Run, aramaki.RunFailed, "varnishadm: connection refused\n")
	e.advance()
	if again, _ := e.hub.take(); len(again) != 0 {
		t.Fatalf("started after the breaker tripped: %+v", again)
	}
	got := e.workflowRun(w.ID)
	first, second := got.Steps[0], got.Steps[1]
	if got.State != aramaki.RunFailed || !strings.Contains(got.Error, "step first stopped after 1 of 2 hosts failed") ||
		first.State != aramaki.RunFailed || first.Hosts[1].State != aramaki.RunCancelled || first.Hosts[1].Run != "" ||
		second.State != aramaki.RunCancelled || second.Hosts[0].State != aramaki.RunCancelled {
		t.Fatalf("workflow run %+v", got)
	}
}

func TestAShareOfFailuresBelowTheBreakerLetsTheWorkflowGoOn(t *testing.T) {
	b := aramaki.Breaker{Percent: 50}
	if b.Tripped(1, 4) || !b.Tripped(2, 4) || (aramaki.Breaker{}).Tripped(0, 3) || !(aramaki.Breaker{}).Tripped(1, 100) || (aramaki.Breaker{Failures: 3}).Tripped(2, 3) {
		t.Error("breakers trip at the wrong count")
	}
}

func TestAWorkflowWhoseActionNeedsApprovalWaitsForASecondPerson(t *testing.T) {
	e := MustShopActions(t)
	w, err := e.svc.RequestWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "restart-db", Reason: "connections stuck"})
	if err != nil {
		t.Fatal(err)
	}
	e.advance()
	if started, _ := e.hub.take(); w.State != aramaki.RunAwaitingApproval || len(started) != 0 {
		t.Fatalf("%s, started %+v: want it waiting", w.State, started)
	}
	if _, err := e.svc.ApproveWorkflowRun(e.ctx, e.olga, w.ID); aramaki.ErrorCode(err) != aramaki.EFORBIDDEN {
		t.Fatalf("approving one's own: %v", err)
	}
	if _, err := e.svc.ApproveWorkflowRun(e.ctx, e.vera, w.ID); aramaki.ErrorCode(err) != aramaki.EFORBIDDEN {
		t.Fatalf("a viewer approving: %v", err)
	}
	if _, err := e.svc.ApproveWorkflowRun(e.ctx, e.otto, w.ID); err != nil {
		t.Fatal(err)
	}
	e.advance()
	started, _ := e.hub.take()
	if len(started) != 1 || started[0].Agent != e.db.ID {
		t.Fatalf("started %+v, want db1", started)
	}
	if got := e.workflowRun(w.ID); got.ApprovedBy != "otto" || got.State != aramaki.RunRunning {
		t.Errorf("workflow run %+v", got)
	}
}

func TestCancellingAWorkflowStopsItsRunningHostsAndStartsNoMore(t *testing.T) {
	e := MustShopActions(t)
	w, _ := e.svc.RequestWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "rolling-flush", Reason: "stale"})
	e.advance()
	started, _ := e.hub.take()
	if _, err := e.svc.CancelWorkflowRun(e.ctx, e.vera, w.ID); aramaki.ErrorCode(err) != aramaki.EFORBIDDEN {
		t.Fatalf("a viewer cancelling: %v", err)
	}
	got, err := e.svc.CancelWorkflowRun(e.ctx, e.otto, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != aramaki.RunCancelled || got.CancelledBy != "otto" || got.Steps[0].Hosts[1].State != aramaki.RunCancelled {
		t.Fatalf("workflow run %+v", got)
	}
	if _, cancelled := e.hub.take(); !slices.Equal(cancelled, []string{e.web[0].ID + "/" + started[0].Run}) {
		t.Fatalf("hosts told to cancel: %q", cancelled)
	}
	e.finish(e.web[0], started[0].Run, aramaki.RunCancelled, "")
	if got := e.workflowRun(w.ID); got.Steps[0].Hosts[0].State != aramaki.RunCancelled {
		t.Errorf("the host that was running: %s, want how its run ended", got.Steps[0].Hosts[0].State)
	}
	e.advance()
	if again, _ := e.hub.take(); len(again) != 0 {
		t.Fatalf("started after cancelling: %+v", again)
	}
	if _, err := e.svc.CancelWorkflowRun(e.ctx, e.otto, w.ID); aramaki.ErrorCode(err) != aramaki.ECONFLICT {
		t.Fatalf("cancelling again: %v", err)
	}
}

func TestHostsThatEndBetweenTwoRoundsAreReadAtTheNext(t *testing.T) {
	e := MustShopActions(t)
	w, err := e.svc.RequestWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "read-both", Reason: "which bans?"})
	if err != nil {
		t.Fatal(err)
	}
	e.advance()
	started, _ := e.hub.take()
	if len(started) != 2 {
		t.Fatalf("started %+v, want both hosts at once", started)
	}
	for _, s := range started {
		i := slices.IndexFunc(e.web, func(a aramaki.Agent) bool { return a.ID == s.Agent })
		e.finish(e.web[i], s.Run, aramaki.RunSucceeded, "banned "+e.web[i].Name+"\n")
	}
	for range 2 {
		if err := e.svc.AdvanceWorkflows(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.workflowRun(w.ID); got.State != aramaki.RunSucceeded || got.Steps[0].Outputs["banned"] != "web1" {
		t.Fatalf("workflow run %+v", got)
	}
}

func TestAnInputCannotSmuggleAReferenceToAnOutput(t *testing.T) {
	e := MustShopActions(t)
	_, err := e.svc.PlanWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "rolling-flush", Inputs: map[string]string{"pattern": "${steps.first.banned}"}})
	if aramaki.ErrorCode(err) != aramaki.EINVALID {
		t.Fatalf("dry run: %v", err)
	}
}

func TestAStepWhoseEveryHostFailedFailsWhateverItsBreaker(t *testing.T) {
	e := MustShopActions(t)
	w, _ := e.svc.RequestWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "flush-all", Reason: "stale"})
	e.advance()
	started, _ := e.hub.take()
	for _, s := range started {
		i := slices.IndexFunc(e.web, func(a aramaki.Agent) bool { return a.ID == s.Agent })
		e.finish(e.web[i], s.Run, aramaki.RunFailed, "")
	}
	e.advance()
	if got := e.workflowRun(w.ID); got.State != aramaki.RunFailed || !strings.Contains(got.Error, "2 of 2 hosts failed") {
		t.Fatalf("workflow run %s: %s", got.State, got.Error)
	}
}

// A host whose agent is away waits; when the workflow run stops, it is
// never started, even when its agent comes back.
func TestAHostWaitingForItsAgentIsNotStartedOnceTheWorkflowStopped(t *testing.T) {
	for _, how := range []string{"breaker", "cancel"} {
		t.Run(how, func(t *testing.T) {
			e := MustShopActions(t)
			e.hub.connected = slices.DeleteFunc(e.hub.connected, func(id string) bool { return id == e.web[1].ID })
			w, _ := e.svc.RequestWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "read-both", Reason: "stale"})
			e.advance()
			started, _ := e.hub.take()
			if len(started) != 1 || started[0].Agent != e.web[0].ID {
				t.Fatalf("started %+v, want web1 (web2 is away)", started)
			}
			if how == "breaker" {
				e.finish(e.web[0], started[0].Run, aramaki.RunFailed, "")
			} else if _, err := e.svc.CancelWorkflowRun(e.ctx, e.otto, w.ID); err != nil {
				t.Fatal(err)
			}
			e.advance()
			if got := e.workflowRun(w.ID); !got.State.Final() {
				t.Fatalf("workflow run %s, want it over without waiting for web2", got.State)
			}
			e.hub.connected = append(e.hub.connected, e.web[1].ID)
			e.advance()
			if again, _ := e.hub.take(); len(again) != 0 {
				t.Fatalf("started once web2 came back: %+v", again)
			}
		})
	}
}

func TestAStepChecksAgainWhatAllowedItWhenItStarts(t *testing.T) {
	e := MustShopActions(t)
	w, _ := e.svc.RequestWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "rolling-flush", Reason: "stale"})
	e.advance()
	started, _ := e.hub.take()
	e.finish(e.web[0], started[0].Run, aramaki.RunSucceeded, "banned x\n")
	e.advance()
	started, _ = e.hub.take()
	// olga loses her role before the second step.
	if err := e.svc.RevokeRole(e.ctx, root, "olga", "shop"); err != nil {
		t.Fatal(err)
	}
	e.finish(e.web[1], started[0].Run, aramaki.RunSucceeded, "banned y\n")
	e.advance()
	if again, _ := e.hub.take(); len(again) != 0 {
		t.Fatalf("the next step started: %+v", again)
	}
	got := e.workflowRun(w.ID)
	if got.State != aramaki.RunFailed || !strings.Contains(got.Error, "olga, who asked for it, may no longer run flush-varnish on shop-web") {
		t.Fatalf("workflow run %s: %s", got.State, got.Error)
	}
}

// Who may see the shop (it is public) but not the system a step runs on
// learns nothing of that step's hosts, values or outputs.
func TestAStepOnASystemOneCannotSeeIsShownWithoutItsHosts(t *testing.T) {
	e := MustShopActions(t)
	w, _ := e.svc.RequestWorkflow(e.ctx, e.olga, service.WorkflowRequest{System: "shop", Workflow: "rolling-flush", Reason: "stale", Inputs: map[string]string{"pattern": "^/secret/"}})
	e.advance()
	pat := aramaki.Principal{User: "pat"} // logged in, no role anywhere
	got, err := e.svc.WorkflowRun(e.ctx, pat, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range got.Steps {
		if len(st.Hosts) != 0 || st.Params != nil || st.Outputs != nil {
			t.Errorf("step %s shown to an outsider: %+v", st.Name, st)
		}
	}
	if got.Workflow.Steps[0].Params != nil {
		t.Errorf("the step's values shown to an outsider: %+v", got.Workflow.Steps[0])
	}
	list, err := e.svc.WorkflowRuns(e.ctx, pat, service.WorkflowRunQuery{})
	if err != nil || len(list) != 1 || len(list[0].Steps[0].Hosts) != 0 {
		t.Errorf("in the list: %+v, %v", list, err)
	}
	if mine, _ := e.svc.WorkflowRun(e.ctx, e.vera, w.ID); len(mine.Steps[0].Hosts) != 2 {
		t.Errorf("a viewer of the shop, and so of what is under it, sees %+v", mine.Steps[0].Hosts)
	}
}
