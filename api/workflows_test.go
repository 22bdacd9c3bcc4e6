package api_test

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/servicetest"
)

// MustWorkflowRun asks, as role, to run a workflow of a system with a
// reason and the inputs' defaults.
func (e *env) MustWorkflowRun(role, system, workflow, reason string) aramaki.WorkflowRun {
	e.t.Helper()
	e.MustActionHosts()
	var w aramaki.WorkflowRun
	e.MustDo("POST", "/api/v1/systems/"+system+"/workflows/"+workflow+"/runs", role, api.WorkflowRunRequest{Reason: reason}, http.StatusCreated, &w)
	return w
}

// MustWorkflowRuns lists the workflow runs role sees with a query.
func (e *env) MustWorkflowRuns(role, query string) []string {
	e.t.Helper()
	var list api.WorkflowRunsResponse
	e.MustDo("GET", "/api/v1/workflow-runs?"+query, role, nil, http.StatusOK, &list)
	out := []string{}
	for _, w := range list.WorkflowRuns {
		out = append(out, w.ID)
	}
	return out
}

// MustAdvance moves the workflow runs on as the server's dispatcher does:
// the engine starts what it may, the connected hosts are asked to start
// their parts. It returns the workflow run as it is then.
func (e *env) MustAdvance(id string) aramaki.WorkflowRun {
	e.t.Helper()
	ctx := context.Background()
	// Two rounds, as the engine does at once when hosts just ended: the
	// first sees them end, the second reads what they printed.
	for range 2 {
		if err := e.svc.AdvanceWorkflows(ctx); err != nil {
			e.t.Fatal(err)
		}
		if err := e.svc.DispatchRuns(ctx); err != nil {
			e.t.Fatal(err)
		}
	}
	var w aramaki.WorkflowRun
	e.MustDo("GET", "/api/v1/workflow-runs/"+id, "viewer", nil, http.StatusOK, &w)
	return w
}

// hostNames are the names of the hosts of a step, with their states.
func hostNames(st aramaki.StepState) []string {
	var out []string
	for _, h := range st.Hosts {
		out = append(out, h.Name+" "+string(h.State))
	}
	return out
}

func kindsOn(e *env, system string, kinds ...aramaki.EventKind) map[aramaki.EventKind]int {
	var ks []string
	for _, k := range kinds {
		ks = append(ks, string(k))
	}
	out := map[aramaki.EventKind]int{}
	for _, ev := range e.MustTimeline("admin", url.Values{"system": {system}, "kind": {strings.Join(ks, ",")}, "limit": {"500"}}).Events {
		out[ev.Kind]++
	}
	return out
}

func TestAWorkflowsDryRunShowsWhatWouldRunWhereAndStoresNothing(t *testing.T) {
	e := MustEnv(t)
	hosts := e.MustActionHosts()
	before := len(e.MustTimeline("admin", url.Values{"limit": {"500"}}).Events)

	// No reason is needed to look.
	var plan service.WorkflowPlan
	e.MustDo("POST", "/api/v1/systems/webshop/workflows/restart-and-flush/runs", "operator", api.WorkflowRunRequest{DryRun: true}, http.StatusOK, &plan)
	if plan.System != "webshop" || plan.Workflow != "restart-and-flush" || !plan.Approval || len(plan.Steps) != 2 {
		t.Fatalf("the plan of a workflow with a restart that needs approval: %+v", plan)
	}
	restart, flush := plan.Steps[0], plan.Steps[1]
	if restart.Name != "restart" || restart.System != "webshop-db" || restart.Action != "restart-db" || restart.Concurrency != 1 || restart.StopAfter != "1" ||
		len(restart.Hosts) != 1 || restart.Hosts[0].Name != "db-a" || restart.Hosts[0].Connected {
		t.Errorf("the restart step: %+v", restart)
	}
	if flush.System != "webshop-app" || flush.Action != "flush-varnish" || flush.Concurrency != 2 || flush.StopAfter != "50%" ||
		len(flush.Hosts) != 2 || flush.Hosts[0].Name != "web-a" || flush.Hosts[1].Name != "web-b" {
		t.Errorf("the flush step: %+v", flush)
	}

	// Once web-a's agent is connected, the plan says so; the inputs fill
	// the values.
	e.svc.SetHub(&servicetest.Hub{Agents: []string{hosts[0].ID}})
	e.MustDo("POST", "/api/v1/systems/webshop/workflows/flush-web/runs", "operator",
		api.WorkflowRunRequest{DryRun: true, Inputs: map[string]string{"pattern": "^/products/"}}, http.StatusOK, &plan)
	if plan.Approval || plan.Rule != "Tell the shop's owner afterwards." || plan.Inputs["pattern"] != "^/products/" || len(plan.Steps) != 1 {
		t.Fatalf("the plan of flush-web: %+v", plan)
	}
	st := plan.Steps[0]
	if st.Params["pattern"] != "^/products/" || st.Concurrency != 1 || st.Outputs["bans"] != `bans: (\d+)` ||
		len(st.Hosts) != 2 || !st.Hosts[0].Connected || st.Hosts[1].Connected {
		t.Errorf("the flush step: %+v", st)
	}

	// A value the hosts would refuse is refused before anything runs; who
	// may not run it may not plan it either.
	status, raw := e.Do("POST", "/api/v1/systems/webshop/workflows/flush-web/runs", "operator", `{"dry_run": true, "inputs": {"pattern": "/; rm -rf /"}}`)
	if status != http.StatusBadRequest || !strings.Contains(string(raw), "does not match its pattern") {
		t.Errorf("a dry run with a value the hosts refuse: %d %s", status, raw)
	}
	e.MustDo("POST", "/api/v1/systems/webshop/workflows/flush-web/runs", "viewer", `{"dry_run": true}`, http.StatusForbidden, nil)
	e.MustDo("POST", "/api/v1/systems/webshop/workflows/flush-web/runs", "", `{"dry_run": true}`, http.StatusUnauthorized, nil)

	if got := e.MustWorkflowRuns("admin", ""); len(got) != 0 {
		t.Errorf("dry runs stored workflow runs %q", got)
	}
	if after := len(e.MustTimeline("admin", url.Values{"limit": {"500"}}).Events); after != before {
		t.Errorf("dry runs changed the timeline: %d events before, %d after", before, after)
	}
}

func TestAWorkflowRunGoesThroughItsHostsSoManyAtATime(t *testing.T) {
	e := MustEnv(t)
	hosts := e.MustActionHosts()
	web := hosts[:2] // web-a, web-b
	e.svc.SetHub(&servicetest.Hub{Agents: []string{web[0].ID, web[1].ID}})
	ctx := context.Background()

	w := e.MustWorkflowRun("operator", "webshop", "flush-web", "Stale product pages")
	if w.State != aramaki.RunRunning || w.RequestedBy != "otto" || w.Started == nil || w.Approval || w.Inputs["pattern"] != "." ||
		len(w.Steps) != 1 || w.Steps[0].State != aramaki.RunRequested || !slices.Equal(hostNames(w.Steps[0]), []string{"web-a requested", "web-b requested"}) {
		t.Fatalf("a workflow run just asked for: %+v", w)
	}

	// One host at a time: web-a first.
	w = e.MustAdvance(w.ID)
	st := w.Steps[0]
	if st.State != aramaki.RunRunning || st.Params["pattern"] != "." || st.Started == nil ||
		!slices.Equal(hostNames(st), []string{"web-a running", "web-b requested"}) || st.Hosts[0].Run == "" || st.Hosts[1].Run != "" {
		t.Fatalf("the step under way: %+v", st)
	}
	runs := e.MustRuns("viewer", "workflow_run="+w.ID)
	if len(runs) != 1 || runs[0].ID != st.Hosts[0].Run || runs[0].WorkflowRun != w.ID || runs[0].RequestedBy != "otto" ||
		len(runs[0].Targets) != 1 || runs[0].Targets[0].Name != "web-a" || !strings.Contains(runs[0].Reason, "workflow flush-web (run "+w.ID+"), step flush: Stale product pages") {
		t.Fatalf("the runs of the workflow run: %+v", runs)
	}

	// Each host says what it did; the step's output is read from the
	// first host (by name) that printed it.
	for i, h := range web {
		run := w.Steps[0].Hosts[i].Run
		if err := e.svc.RunOutput(ctx, h, run, 1, []string{"bans: 3\n", "bans: 4\n"}[i]); err != nil {
			t.Fatal(err)
		}
		zero, now := 0, time.Now()
		if err := e.svc.RunFinished(ctx, h, run, service.RunEnd{State: aramaki.RunSucceeded, ExitCode: &zero, Started: now.Add(-time.Second), Ended: now}); err != nil {
			t.Fatal(err)
		}
		w = e.MustAdvance(w.ID)
	}
	st = w.Steps[0]
	if w.State != aramaki.RunSucceeded || w.Ended == nil || w.Error != "" || st.State != aramaki.RunSucceeded || st.Outputs["bans"] != "3" ||
		!slices.Equal(hostNames(st), []string{"web-a succeeded", "web-b succeeded"}) || st.Hosts[1].Run == "" {
		t.Fatalf("the workflow run at its end: %+v", w)
	}
	if got := ids(e.MustRuns("viewer", "workflow_run="+w.ID)); !slices.Equal(got, []string{st.Hosts[1].Run, st.Hosts[0].Run}) {
		t.Errorf("the runs of the workflow run: %q", got)
	}
	if got := e.MustWorkflowRuns("viewer", "workflow=flush-web&state=succeeded&system=webshop"); !slices.Equal(got, []string{w.ID}) {
		t.Errorf("the succeeded flush-web runs: %q", got)
	}
	want := map[aramaki.EventKind]int{aramaki.KindWorkflowRequested: 1, aramaki.KindWorkflowStarted: 1, aramaki.KindWorkflowStep: 2, aramaki.KindWorkflowFinished: 1}
	if got := kindsOn(e, "webshop", slices.Collect(maps.Keys(want))...); !maps.Equal(got, want) {
		t.Errorf("the workflow events on the timeline: %v, want %v", got, want)
	}
}

func TestAWorkflowRunWaitsForASecondPersonAndIsCancelledOnce(t *testing.T) {
	e := MustEnv(t)
	w := e.MustWorkflowRun("operator", "webshop", "restart-and-flush", "Connections pile up since the deploy")
	if w.State != aramaki.RunAwaitingApproval || !w.Approval || w.Started != nil || len(w.Steps) != 2 ||
		!slices.Equal(hostNames(w.Steps[0]), []string{"db-a requested"}) || !slices.Equal(hostNames(w.Steps[1]), []string{"web-a requested", "web-b requested"}) {
		t.Fatalf("a workflow run with a restart that needs approval: %+v", w)
	}
	path := "/api/v1/workflow-runs/" + w.ID

	// Not by who asked, nor by a viewer; nobody logged in does not learn
	// that it exists.
	status, raw := e.Do("POST", path+"/approve", "operator", nil)
	if status != http.StatusForbidden || !strings.Contains(string(raw), "another person must approve it") {
		t.Fatalf("approving one's own workflow run: %d %s", status, raw)
	}
	e.MustDo("POST", path+"/approve", "viewer", nil, http.StatusForbidden, nil)
	e.MustDo("POST", path+"/approve", "", nil, http.StatusNotFound, nil)
	e.MustDo("GET", path, "", nil, http.StatusUnauthorized, nil)
	if w = e.MustAdvance(w.ID); w.State != aramaki.RunAwaitingApproval || len(e.MustRuns("admin", "workflow_run="+w.ID)) != 0 {
		t.Fatalf("an unapproved workflow run went on: %+v", w)
	}

	var approved aramaki.WorkflowRun
	e.MustDo("POST", path+"/approve", "admin", map[string]string{}, http.StatusOK, &approved)
	if approved.State != aramaki.RunRunning || approved.ApprovedBy != "admin" || approved.Approved == nil || approved.Started == nil {
		t.Fatalf("approved: %+v", approved)
	}
	status, raw = e.Do("POST", path+"/approve", "admin", nil)
	if status != http.StatusConflict || !strings.Contains(string(raw), "needs no approval: it is running") {
		t.Fatalf("approving twice: %d %s", status, raw)
	}

	// Approving the workflow approved its restart.
	w = e.MustAdvance(w.ID)
	restart := w.Steps[0]
	if restart.State != aramaki.RunRunning || restart.Hosts[0].Run == "" {
		t.Fatalf("the restart step once approved: %+v", restart)
	}
	var run service.RunView
	e.MustDo("GET", "/api/v1/runs/"+restart.Hosts[0].Run, "viewer", nil, http.StatusOK, &run)
	if run.State != aramaki.RunRunning || run.ApprovedBy != "admin" || run.WorkflowRun != w.ID || run.Action != "restart-db" {
		t.Fatalf("the restart's run: %+v", run.Run)
	}

	var cancelled aramaki.WorkflowRun
	e.MustDo("POST", path+"/cancel", "operator", nil, http.StatusOK, &cancelled)
	if cancelled.State != aramaki.RunCancelled || cancelled.CancelledBy != "otto" || cancelled.Ended == nil ||
		cancelled.Steps[0].State != aramaki.RunCancelled || cancelled.Steps[1].State != aramaki.RunCancelled ||
		!strings.Contains(cancelled.Steps[1].Error, "not started") || !slices.Equal(hostNames(cancelled.Steps[1]), []string{"web-a cancelled", "web-b cancelled"}) {
		t.Fatalf("cancelled: %+v", cancelled)
	}
	// The restart no host had started yet ends at once.
	e.MustDo("GET", "/api/v1/runs/"+restart.Hosts[0].Run, "viewer", nil, http.StatusOK, &run)
	if run.State != aramaki.RunCancelled || run.CancelledBy != "otto" {
		t.Errorf("the restart's run after the workflow run was cancelled: %+v", run.Run)
	}
	status, raw = e.Do("POST", path+"/cancel", "operator", nil)
	if status != http.StatusConflict || !strings.Contains(string(raw), "is cancelled already") {
		t.Fatalf("cancelling twice: %d %s", status, raw)
	}

	want := map[aramaki.EventKind]int{aramaki.KindWorkflowRequested: 1, aramaki.KindWorkflowAwaiting: 1, aramaki.KindWorkflowApproved: 1,
		aramaki.KindWorkflowStarted: 1, aramaki.KindWorkflowStep: 1, aramaki.KindWorkflowCancel: 1, aramaki.KindWorkflowFinished: 1}
	if got := kindsOn(e, "webshop", slices.Collect(maps.Keys(want))...); !maps.Equal(got, want) {
		t.Errorf("the workflow events on the timeline: %v, want %v", got, want)
	}
}

func TestWorkflowRunsAreSeenByWhoMaySeeTheirSystem(t *testing.T) {
	e := MustEnv(t)
	flush := e.MustWorkflowRun("operator", "webshop", "flush-web", "Stale product pages")
	restart := e.MustWorkflowRun("admin", "webshop", "restart-and-flush", "Slow queries")
	rebalance := e.MustWorkflowRun("admin", "infrastructure", "rebalance", "New disks")

	for _, c := range []struct {
		role, query string
		want        []string
	}{
		{"viewer", "", []string{restart.ID, flush.ID}},
		{"operator", "system=webshop", []string{restart.ID, flush.ID}},
		{"admin", "", []string{rebalance.ID, restart.ID, flush.ID}},
		{"admin", "workflow=flush-web", []string{flush.ID}},
		{"admin", "state=awaiting_approval", []string{restart.ID}},
		{"admin", "system=infrastructure&state=running,awaiting_approval", []string{rebalance.ID}},
		{"admin", "limit=1", []string{rebalance.ID}},
		{"admin", "state=succeeded", []string{}},
	} {
		if got := e.MustWorkflowRuns(c.role, c.query); !slices.Equal(got, c.want) {
			t.Errorf("workflow runs as %q with %q: %q, want %q", c.role, c.query, got, c.want)
		}
	}
	e.MustDo("GET", "/api/v1/workflow-runs", "", nil, http.StatusUnauthorized, nil)
	e.MustDo("GET", "/api/v1/workflow-runs/"+rebalance.ID, "viewer", nil, http.StatusNotFound, nil)
	e.MustDo("POST", "/api/v1/workflow-runs/"+rebalance.ID+"/cancel", "operator", nil, http.StatusNotFound, nil)
	e.MustDo("GET", "/api/v1/workflow-runs?system=infrastructure", "viewer", nil, http.StatusNotFound, nil)
	// Only admins run the rebalance; an operator of the shop is not even
	// told of it.
	e.MustDo("POST", "/api/v1/systems/infrastructure/workflows/rebalance/runs", "operator", api.WorkflowRunRequest{Reason: "x"}, http.StatusNotFound, nil)
}
