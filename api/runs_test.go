package api_test

import (
	"context"
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

// banPattern is what the web hosts let a Varnish ban match.
const banPattern = `[A-Za-z0-9/^$.*_-]{1,100}`

// MustActionHosts enrolls, once, the hosts that allow the fixture's
// actions, as their agents' local configuration would declare them: two
// web hosts that flush Varnish, a database host that restarts PostgreSQL,
// the blog's host and a storage host. No hub: runs are asked for, approved
// and cancelled, never started on a host.
func (e *env) MustActionHosts() []aramaki.Agent {
	e.t.Helper()
	if e.hosts != nil {
		return e.hosts
	}
	dflt := "."
	flush := aramaki.ActionSpec{Name: "flush-varnish", Argv: []string{"/usr/bin/varnishadm", "ban", "req.url", "~", "{pattern}"},
		Params: []aramaki.Param{{Name: "pattern", Type: aramaki.ParamString, Pattern: banPattern, Default: &dflt}}, Timeout: 30 * time.Second}
	for _, h := range []struct {
		name, system string
		spec         aramaki.ActionSpec
	}{
		{"web-a", "webshop-app", flush},
		{"web-b", "webshop-app", flush},
		{"db-a", "webshop-db", aramaki.ActionSpec{Name: "restart-db", Argv: []string{"/usr/bin/systemctl", "restart", "postgresql"}}},
		{"blog-a", "blog", aramaki.ActionSpec{Name: "flush-cache", Argv: []string{"/usr/bin/wp", "cache", "flush"}}},
		{"stor-a", "infrastructure", aramaki.ActionSpec{Name: "rebalance-storage", Argv: []string{"/usr/bin/ceph", "balancer", "on"}}},
	} {
		a := e.MustAgent(h.name, h.system)
		if err := e.svc.SetAgentActions(context.Background(), a, []aramaki.ActionSpec{h.spec}); err != nil {
			e.t.Fatal(err)
		}
		e.hosts = append(e.hosts, a)
	}
	return e.hosts
}

// MustRun asks, as role, to run an action on a system with a reason.
func (e *env) MustRun(role, system, action, reason string) aramaki.Run {
	e.t.Helper()
	e.MustActionHosts()
	var run aramaki.Run
	e.MustDo("POST", "/api/v1/systems/"+system+"/actions/"+action+"/runs", role, api.RunRequest{Reason: reason}, http.StatusCreated, &run)
	return run
}

// MustRuns lists the runs role sees with a query.
func (e *env) MustRuns(role, query string) []aramaki.Run {
	e.t.Helper()
	var list api.RunsResponse
	e.MustDo("GET", "/api/v1/runs?"+query, role, nil, http.StatusOK, &list)
	return list.Runs
}

func ids(runs []aramaki.Run) []string {
	out := []string{}
	for _, r := range runs {
		out = append(out, r.ID)
	}
	return out
}

func TestARunWaitsForASecondPersonAndIsCancelledOnce(t *testing.T) {
	e := MustEnv(t)
	e.MustActionHosts()
	run := e.MustRun("operator", "webshop-db", "restart-db", "Connections pile up since the deploy")
	if run.State != aramaki.RunAwaitingApproval || !run.Approval || run.RequestedBy != "otto" || run.Started != nil ||
		len(run.Targets) != 1 || run.Targets[0].Name != "db-a" || run.Targets[0].State != aramaki.RunRequested {
		t.Fatalf("a restart that needs approval: %+v", run)
	}
	path := "/api/v1/runs/" + run.ID

	// The asker cannot approve it, nor a viewer; nobody logged in does not
	// learn that it exists.
	status, raw := e.Do("POST", path+"/approve", "operator", nil)
	if status != http.StatusForbidden || !strings.Contains(string(raw), "another person must approve it") {
		t.Fatalf("approving one's own run: %d %s", status, raw)
	}
	e.MustDo("POST", path+"/approve", "viewer", nil, http.StatusForbidden, nil)
	e.MustDo("POST", path+"/approve", "", nil, http.StatusNotFound, nil)
	e.MustDo("GET", path, "", nil, http.StatusUnauthorized, nil) // runs are for the team

	var view service.RunView
	e.MustDo("GET", path, "viewer", nil, http.StatusOK, &view)
	if view.ID != run.ID || view.Rule != "Tell the shop's owner before restarting." || view.Reason != "Connections pile up since the deploy" {
		t.Fatalf("the viewer sees %+v", view)
	}

	var approved aramaki.Run
	e.MustDo("POST", path+"/approve", "admin", map[string]string{}, http.StatusOK, &approved)
	if approved.State != aramaki.RunRunning || approved.ApprovedBy != "admin" || approved.Approved == nil || approved.Started == nil {
		t.Fatalf("approved: %+v", approved)
	}
	status, raw = e.Do("POST", path+"/approve", "admin", nil)
	if status != http.StatusConflict || !strings.Contains(string(raw), "needs no approval: it is running") {
		t.Fatalf("approving twice: %d %s", status, raw)
	}

	var cancelled aramaki.Run
	e.MustDo("POST", path+"/cancel", "operator", nil, http.StatusOK, &cancelled)
	// No host had started it: it ends at once.
	if cancelled.State != aramaki.RunCancelled || cancelled.CancelledBy != "otto" || cancelled.Ended == nil ||
		cancelled.Targets[0].State != aramaki.RunCancelled {
		t.Fatalf("cancelled: %+v", cancelled)
	}
	status, raw = e.Do("POST", path+"/cancel", "operator", nil)
	if status != http.StatusConflict || !strings.Contains(string(raw), "is cancelled already") {
		t.Fatalf("cancelling twice: %d %s", status, raw)
	}

	if got := ids(e.MustRuns("viewer", "system=webshop&state=cancelled&action=restart-db")); !slices.Equal(got, []string{run.ID}) {
		t.Errorf("the viewer's cancelled restarts under the shop: %q, want %q", got, run.ID)
	}
	kinds := map[aramaki.EventKind]int{}
	for _, ev := range e.MustTimeline("viewer", url.Values{"system": {"webshop-db"}, "kind": {"run.requested,run.awaiting_approval,run.approved,run.started,run.finished"}}).Events {
		kinds[ev.Kind]++
	}
	for _, k := range []aramaki.EventKind{aramaki.KindRunRequested, aramaki.KindRunAwaiting, aramaki.KindRunApproved, aramaki.KindRunStarted, aramaki.KindRunFinished} {
		if kinds[k] != 1 {
			t.Errorf("the timeline has %d %s events, want 1: %v", kinds[k], k, kinds)
		}
	}
}

func TestBreakingGlassSkipsTheApprovalLoudly(t *testing.T) {
	e := MustEnv(t)
	e.MustActionHosts()
	var run aramaki.Run
	e.MustDo("POST", "/api/v1/systems/webshop-db/actions/restart-db/runs", "operator",
		api.RunRequest{Reason: "The shop is down and nobody answers", BreakGlass: true}, http.StatusCreated, &run)
	if run.State != aramaki.RunRunning || !run.BreakGlass || run.ApprovedBy != "" {
		t.Fatalf("a break-glass run: %+v", run)
	}
	evs := e.MustTimeline("admin", url.Values{"kind": {string(aramaki.KindRunBreakGlass)}}).Events
	if len(evs) != 1 || !strings.Contains(evs[0].Summary, "BREAK GLASS: otto ran restart-db") {
		t.Fatalf("the break-glass events: %q", summaries(evs))
	}
}

func TestRunsAreSeenByWhoMaySeeTheirSystem(t *testing.T) {
	e := MustEnv(t)
	e.MustActionHosts()
	shop := e.MustRun("operator", "webshop-app", "flush-varnish", "Stale product pages")
	blog := e.MustRun("admin", "blog", "flush-cache", "New theme")
	storage := e.MustRun("admin", "infrastructure", "rebalance-storage", "New disks")

	for _, c := range []struct {
		role, query string
		want        []string
	}{
		{"viewer", "", []string{blog.ID, shop.ID}},
		{"operator", "system=webshop", []string{shop.ID}},
		{"admin", "", []string{storage.ID, blog.ID, shop.ID}},
		{"admin", "action=flush-cache", []string{blog.ID}},
		{"admin", "since=1h&limit=1", []string{storage.ID}},
		{"admin", "state=awaiting_approval", []string{}},
	} {
		if got := ids(e.MustRuns(c.role, c.query)); !slices.Equal(got, c.want) {
			t.Errorf("runs as %q with %q: %q, want %q", c.role, c.query, got, c.want)
		}
	}
	// Public systems too: what commands printed is for the team.
	e.MustDo("GET", "/api/v1/runs/"+blog.ID, "", nil, http.StatusUnauthorized, nil)
	e.MustDo("GET", "/api/v1/runs", "", nil, http.StatusUnauthorized, nil)
	e.MustDo("GET", "/api/v1/runs/"+storage.ID, "viewer", nil, http.StatusNotFound, nil)
	e.MustDo("POST", "/api/v1/runs/"+storage.ID+"/cancel", "operator", nil, http.StatusNotFound, nil)
	// Only admins run the storage rebalance; an operator of the shop is
	// not even told of it.
	e.MustDo("POST", "/api/v1/systems/infrastructure/actions/rebalance-storage/runs", "operator", api.RunRequest{Reason: "x"}, http.StatusNotFound, nil)
	e.MustDo("GET", "/api/v1/runs?system=infrastructure", "viewer", nil, http.StatusNotFound, nil)
}

func TestARunShowsWhatEachHostSaidAndCountsInTheStatistics(t *testing.T) {
	e := MustEnv(t)
	hosts := e.MustActionHosts()
	var run aramaki.Run
	e.MustDo("POST", "/api/v1/systems/webshop-app/actions/flush-varnish/runs", "operator",
		api.RunRequest{Reason: "Stale product pages", Params: map[string]string{"pattern": "^/products/"}}, http.StatusCreated, &run)
	if run.State != aramaki.RunRunning || run.Params["pattern"] != "^/products/" || len(run.Targets) != 2 {
		t.Fatalf("a flush on both web hosts: %+v", run)
	}
	// The hosts' agents are asked to start and report as they would over
	// the websocket.
	ctx := context.Background()
	var ids []string
	for _, h := range hosts {
		ids = append(ids, h.ID)
	}
	e.svc.SetHub(&servicetest.Hub{Agents: ids})
	if err := e.svc.DispatchRuns(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i, h := range hosts[:2] {
		if err := e.svc.RunOutput(ctx, h, run.ID, 1, "bans: 1\x1b[2J\n"); err != nil {
			t.Fatal(err)
		}
		code := i // web-b fails
		if err := e.svc.RunFinished(ctx, h, run.ID, service.RunEnd{State: []aramaki.RunState{aramaki.RunSucceeded, aramaki.RunFailed}[i],
			ExitCode: &code, Started: start, Ended: start.Add(time.Duration(i+1) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	var view service.RunView
	e.MustDo("GET", "/api/v1/runs/"+run.ID, "viewer", nil, http.StatusOK, &view)
	if view.State != aramaki.RunFailed || view.Ended == nil || view.Rule != "Flushing the Varnish cache is always fine." {
		t.Fatalf("the finished run: %+v", view)
	}
	for _, tg := range view.Targets {
		if tg.Output != "bans: 1\x1b[2J\n" || tg.ExitCode == nil {
			t.Errorf("host %s: output %q, exit code %v; want the output as sent (the API escapes nothing: JSON does)", tg.Name, tg.Output, tg.ExitCode)
		}
	}
	var st aramaki.RunStats
	e.MustDo("GET", "/api/v1/systems/webshop-app/actions/flush-varnish/stats?period=24h", "viewer", nil, http.StatusOK, &st)
	if st.Runs != 1 || st.Failed != 1 || len(st.Durations) != 1 || st.P95 <= 0 {
		t.Fatalf("stats: %+v", st)
	}
	e.MustDo("GET", "/api/v1/systems/webshop-app/actions/flush-varnish/stats", "viewer", nil, http.StatusOK, &st)
	if st.Runs != 1 {
		t.Fatalf("stats over the default week: %+v", st)
	}
	e.MustDo("POST", "/api/v1/runs/"+run.ID+"/cancel", "operator", nil, http.StatusConflict, nil)
}
