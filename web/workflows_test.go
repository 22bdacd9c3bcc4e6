package web_test

import (
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// workflowFiles is the shop with four workflows: restarting the app one
// host at a time and then flushing the cache (a second person approves
// it: restarting does), flushing everywhere (no rule, no approval, the
// pattern required), rotating logs no host allows yet, and flushing what
// the restart says it released.
func workflowFiles() map[string]string {
	files := actionFiles()
	files["systems/webshop-app.yaml"] += `  - name: rotate-logs
    description: Rotate the application's logs
`
	files["systems/webshop.yaml"] += `workflows:
  - name: rolling-restart
    description: Restart the shop on every app host, one at a time, then flush the cache
    rule: "Not during the evening peak (18-22 h); watch the error rate while it runs."
    inputs:
      - {name: pattern, description: URLs to flush afterwards, default: "^/"}
    steps:
      - name: restart
        system: webshop-app
        action: restart-app
        concurrency: 1
        stop_after: 1
        outputs: {version: 'version=(\S+)'}
      - name: flush
        system: webshop-app
        action: flush-varnish
        params: {pattern: "${inputs.pattern}"}
  - name: flush-all
    description: Flush the cache on every app host
    inputs:
      - {name: pattern, description: URLs to flush}
    steps:
      - {name: flush, system: webshop-app, action: flush-varnish, params: {pattern: "${inputs.pattern}", scope: all}, stop_after: 50%}
  - name: rotate
    steps:
      - {name: rotate, system: webshop-app, action: rotate-logs}
  - name: flush-release
    steps:
      - {name: restart, system: webshop-app, action: restart-app, outputs: {version: 'version=(\S+)'}}
      - {name: flush, system: webshop-app, action: flush-varnish, params: {pattern: "^/v${steps.restart.version}/"}}
`
	return files
}

func MustWorkflowShop(t testing.TB) *shop {
	t.Helper()
	return MustShopWith(t, workflowFiles())
}

// MustAdvance moves the workflow runs on as the server does every second,
// and has the hosts start what they were asked to. Twice: what the hosts
// printed is read in the round after they ended.
func (s *shop) MustAdvance() {
	s.t.Helper()
	for range 2 {
		if err := s.svc.AdvanceWorkflows(s.ctx); err != nil {
			s.t.Fatal(err)
		}
		if err := s.svc.DispatchRuns(s.ctx); err != nil {
			s.t.Fatal(err)
		}
	}
}

// MustWorkflowRun is a workflow run as the service has it now.
func (s *shop) MustWorkflowRun(id string) aramaki.WorkflowRun {
	s.t.Helper()
	w, err := s.svc.WorkflowRun(s.ctx, s.admin, id)
	if err != nil {
		s.t.Fatal(err)
	}
	return w
}

// workflowRuns are all workflow runs, newest first.
func (s *shop) workflowRuns() []aramaki.WorkflowRun {
	s.t.Helper()
	runs, err := s.svc.WorkflowRuns(s.ctx, s.admin, service.WorkflowRunQuery{})
	if err != nil {
		s.t.Fatal(err)
	}
	return runs
}

// hostRun is the run of a host in a step of a workflow run.
func hostRun(t *testing.T, w aramaki.WorkflowRun, step int, host string) string {
	t.Helper()
	for _, h := range w.Steps[step].Hosts {
		if h.Name == host && h.Run != "" {
			return h.Run
		}
	}
	t.Fatalf("no run of %s in step %d of workflow run %s: %+v", host, step, w.ID, w.Steps[step].Hosts)
	return ""
}

func TestTheSystemPageShowsWorkflowsWithTheirStepsAndRules(t *testing.T) {
	s := MustWorkflowShop(t)
	w, err := s.svc.RequestWorkflow(s.ctx, s.Principal("olga"), service.WorkflowRequest{System: "webshop", Workflow: "flush-all",
		Reason: "prices changed", Inputs: map[string]string{"pattern": "^/products/"}})
	if err != nil {
		t.Fatal(err)
	}

	body := s.MustGet(s.MustLogin("otto"), "/systems/webshop")
	restart := section(t, body, "workflow-rolling-restart")
	mustContain(t, "rolling-restart on the system page", restart,
		`<span class="title">rolling-restart</span> <span class="tag approval">needs a second person</span>`,
		"Restart the shop on every app host, one at a time, then flush the cache",
		"<strong>Rule:</strong> Not during the evening peak (18-22 h); watch the error rate while it runs.",
		"Who may run it: operators, and another operator approves each run before it starts · you may",
		"<li>restart: restart-app on webshop-app, 1 at a time, stops after 1 failure, reads version from the output</li>",
		"<li>flush: flush-varnish on webshop-app with pattern=${inputs.pattern}, all hosts at once, stops after 1 failure</li>",
		"Not run here yet.",
		// The form: inputs filled with their defaults, a reason, the rule
		// read, and two buttons.
		`action="/systems/webshop/workflows/rolling-restart/runs"`,
		`<input name="i.pattern" value="^/"`, "URLs to flush afterwards",
		`<textarea name="reason" rows="2" required`,
		`<input type="checkbox" name="confirm" value="1" required> I have read the rule`,
		`formaction="/systems/webshop/workflows/rolling-restart/plan" formnovalidate>What would this do?</button>`,
		`<button type="submit">Ask to run</button>`,
		`href="/workflow-runs?system=webshop&amp;workflow=rolling-restart"`)
	if strings.Index(restart, "Rule:") > strings.Index(restart, "<form") {
		t.Error("the rule is not shown before the form")
	}
	flush := section(t, body, "workflow-flush-all")
	mustContain(t, "flush-all on the system page", flush,
		"<li>flush: flush-varnish on webshop-app with pattern=${inputs.pattern} scope=all, all hosts at once, stops once 50% of its hosts failed</li>",
		`<input name="i.pattern" value="" autocapitalize="none" autocomplete="off" spellcheck="false" maxlength="1024" required>`,
		"I have checked what it would do", `<button type="submit">Run</button>`,
		`<a href="/workflow-runs/`+w.ID+`">ran <time`, "by olga</a>: ", `run-running">running</span>`)
	mustNotContain(t, "flush-all on the system page", flush, "needs a second person", "Rule:")

	// A viewer sees the workflows, their rules and runs, and no form.
	body = s.MustGet(s.MustLogin("vera"), "/systems/webshop")
	mustContain(t, "the system page as a viewer", body, `id="workflow-rolling-restart"`, "Not during the evening peak", "you may not",
		"restart: restart-app on webshop-app", `<a href="/workflow-runs/`+w.ID+`">`)
	mustNotContain(t, "the system page as a viewer", body, "/workflows/rolling-restart/runs", "/plan", "What would this do?", `name="i.pattern"`)
	// Nobody logged in sees no workflows of a public system.
	if body := s.MustGet(s.Client(), "/systems/blog"); strings.Contains(body, "Workflows") {
		t.Error("the blog shows workflows it does not have")
	}
}

func TestADryRunShowsWhatAWorkflowWouldDo(t *testing.T) {
	s := MustWorkflowShop(t)
	s.hub.mu.Lock()
	s.hub.agents = []string{s.web1.ID} // web2 is away
	s.hub.mu.Unlock()
	olga := s.MustLogin("olga")
	csrf := CSRF(t, s.MustGet(olga, "/systems/webshop"))
	plan := func(c *http.Client, path string, form url.Values) (int, string) {
		t.Helper()
		status, body, _ := s.Post(c, path, form)
		return status, body
	}

	// Neither a reason nor the rule read: it changes nothing.
	status, body := plan(olga, "/systems/webshop/workflows/rolling-restart/plan", url.Values{"csrf": {csrf}, "i.pattern": {"^/img/"}})
	if status != http.StatusOK {
		t.Fatalf("dry run: %d\n%s", status, body)
	}
	mustContain(t, "the dry run", body,
		"<h1>What would rolling-restart do?</h1>", "a dry run: nothing has run",
		"<strong>Rule:</strong> Not during the evening peak",
		"A second person must approve it before it starts.",
		"Inputs: <code>pattern=^/img/</code>")
	restart := section(t, body, "step-restart")
	mustContain(t, "the restart step", restart,
		"1. restart", "<dt>Action</dt><dd>restart-app on <a href=\"/systems/webshop-app\">webshop-app</a></dd>",
		"<dt>Values</dt><dd>none</dd>", "<dt>At once</dt><dd>1 at a time, of 2 hosts</dd>", "<dt>Stops</dt><dd>stops after 1 failure</dd>",
		"<code>version</code> from what its hosts print: <code>version=(\\S&#43;)</code>",
		`<a href="/agents/`+s.web1.ID+`">web1</a></li>`,
		`<a href="/agents/`+s.web2.ID+`">web2</a> <span class="tag offline">not connected now</span>`,
		"1 of its hosts is not connected now: the step waits up to an hour for it, then counts it failed.")
	flush := section(t, body, "step-flush")
	mustContain(t, "the flush step", flush, "2. flush", "<code>pattern=^/img/</code>", "<dd>all 2 hosts at once</dd>")
	// The form again, filled with what was sent, to run it from here.
	mustContain(t, "the dry run's form", body, `<h2>Run it</h2>`, `<input name="i.pattern" value="^/img/"`,
		`action="/systems/webshop/workflows/rolling-restart/runs"`)
	if runs := s.workflowRuns(); len(runs) != 0 {
		t.Fatalf("a dry run made workflow runs: %+v", runs)
	}

	// A value from an earlier step's output is known only then.
	_, body = plan(olga, "/systems/webshop/workflows/flush-release/plan", url.Values{"csrf": {csrf}})
	mustContain(t, "a dry run with an output", section(t, body, "step-flush"), "<code>pattern=^/v${steps.restart.version}/</code>",
		"A value with ${steps.…} is filled in from an earlier step's output when that step ends.")

	// What cannot run says why, on the page, not as a server error; the
	// form stays, filled, to fix it.
	for _, c := range []struct {
		name     string
		workflow string
		form     url.Values
		want     string
	}{
		{"an action no host allows", "rotate", url.Values{},
			"It cannot run: step rotate: no host of webshop-app allows action rotate-logs: its agents&#39; local configuration must declare it"},
		{"a value the hosts refuse", "rolling-restart", url.Values{"i.pattern": {"/img/ && <script>"}},
			"It cannot run: step flush: value &#34;/img/ &amp;&amp; &lt;script&gt;&#34; of pattern does not match its pattern [A-Za-z0-9/^$.*_-]{1,100} (as web1 declares it)"},
		{"a required input left empty", "flush-all", url.Values{"i.pattern": {""}},
			"It cannot run: workflow flush-all needs the input pattern"},
	} {
		c.form.Set("csrf", csrf)
		status, body := plan(olga, "/systems/webshop/workflows/"+c.workflow+"/plan", c.form)
		if status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", c.name, status)
		}
		mustContain(t, c.name, body, `<p class="error" role="alert">`+c.want+`</p>`, `<h2>Run it</h2>`)
		mustNotContain(t, c.name, body, "<script>", `class="plan"`)
	}

	// A viewer learns she may not; a hidden system or an unknown workflow
	// is not found; without the CSRF token, nothing.
	vera := s.MustLogin("vera")
	status, body = plan(vera, "/systems/webshop/workflows/rolling-restart/plan", url.Values{"csrf": {CSRF(t, s.MustGet(vera, "/systems/webshop"))}})
	if status != http.StatusForbidden || !strings.Contains(body, "It cannot run: this needs the operator role on system webshop") {
		t.Errorf("a viewer's dry run: %d\n%s", status, body)
	}
	mustNotContain(t, "a viewer's dry run", body, "Run it", "rolling-restart/runs")
	status, body = plan(olga, "/systems/webshop/workflows/drop-db/plan", url.Values{"csrf": {csrf}})
	if status != http.StatusNotFound || !strings.Contains(body, "system webshop has no workflow drop-db") {
		t.Errorf("an unknown workflow: %d\n%s", status, body)
	}
	status, body = plan(olga, "/systems/infrastructure/workflows/rolling-restart/plan", url.Values{"csrf": {csrf}})
	if status != http.StatusNotFound || strings.Contains(body, "Hosting infrastructure") {
		t.Errorf("a hidden system: %d\n%s", status, body)
	}
	if status, _ := plan(olga, "/systems/webshop/workflows/rolling-restart/plan", url.Values{}); status != http.StatusForbidden {
		t.Errorf("without csrf: %d", status)
	}
	if status, _ := plan(s.Client(), "/systems/webshop/workflows/rolling-restart/plan", url.Values{}); status != http.StatusForbidden {
		t.Errorf("anonymous: %d", status)
	}
}

func TestRunningAWorkflowFromItsForm(t *testing.T) {
	s := MustWorkflowShop(t)
	olga := s.MustLogin("olga")
	csrf := CSRF(t, s.MustGet(olga, "/systems/webshop"))
	form := func(values ...string) url.Values {
		f := url.Values{"csrf": {csrf}, "reason": {"prices <b>changed</b>"}, "confirm": {"1"}, "i.pattern": {"^/products/"}}
		for i := 0; i+1 < len(values); i += 2 {
			if values[i+1] == "" {
				f.Del(values[i])
			} else {
				f.Set(values[i], values[i+1])
			}
		}
		return f
	}
	const path = "/systems/webshop/workflows/flush-all/runs"

	// Refused: said on the dry run's page, the plan shown, the form
	// filled again.
	for _, c := range []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"not confirmed", form("confirm", ""), http.StatusBadRequest, "Tick “I have checked what it would do” first."},
		{"no reason", form("reason", " "), http.StatusBadRequest, "say why: a run needs a reason"},
		{"a value the hosts refuse", form("i.pattern", "; rm -rf /"), http.StatusBadRequest, "step flush: value &#34;; rm -rf /&#34; of pattern does not match its pattern"},
	} {
		status, body, _ := s.Post(olga, path, c.form)
		if status != c.status {
			t.Errorf("%s: status %d, want %d", c.name, status, c.status)
		}
		mustContain(t, c.name, body, `<p class="error" role="alert">`+c.want, `<h2>Run it</h2>`)
		if c.name != "no reason" {
			mustContain(t, c.name, body, ">prices &lt;b&gt;changed&lt;/b&gt;</textarea>")
		}
		if c.name == "a value the hosts refuse" {
			// Said once, not again as the dry run's.
			if n := strings.Count(body, "does not match its pattern"); n != 1 {
				t.Errorf("%s: said %d times", c.name, n)
			}
		} else {
			mustContain(t, c.name, body, `id="step-flush"`, "<code>pattern=^/products/</code> <code>scope=all</code>")
		}
	}
	noCSRF := form()
	noCSRF.Del("csrf")
	if status, _, _ := s.Post(olga, path, noCSRF); status != http.StatusForbidden {
		t.Errorf("without csrf: status %d, want 403", status)
	}
	vera := s.MustLogin("vera")
	status, body, _ := s.Post(vera, path, form("csrf", CSRF(t, s.MustGet(vera, "/systems/webshop"))))
	if status != http.StatusForbidden || !strings.Contains(body, `<p class="error" role="alert">this needs the operator role on system webshop</p>`) {
		t.Errorf("a viewer running a workflow: %d\n%s", status, body)
	}
	if status, body, _ := s.Post(olga, "/systems/infrastructure/workflows/flush-all/runs", form()); status != http.StatusNotFound || strings.Contains(body, "Hosting infrastructure") {
		t.Errorf("a hidden system: %d\n%s", status, body)
	}
	if runs := s.workflowRuns(); len(runs) != 0 {
		t.Fatalf("%d workflow runs after refused forms", len(runs))
	}

	// Run: to the workflow run's page.
	status, _, resp := s.Post(olga, path, form())
	loc := resp.Header.Get("Location")
	if status != http.StatusSeeOther || !regexp.MustCompile(`^/workflow-runs/\d+$`).MatchString(loc) {
		t.Fatalf("run: status %d, location %q", status, loc)
	}
	runs := s.workflowRuns()
	if len(runs) != 1 || "/workflow-runs/"+runs[0].ID != loc {
		t.Fatalf("workflow runs %+v, redirected to %s", runs, loc)
	}
	w := runs[0]
	if w.Workflow.Name != "flush-all" || w.Reason != "prices <b>changed</b>" || w.RequestedBy != "olga" || !maps.Equal(w.Inputs, map[string]string{"pattern": "^/products/"}) {
		t.Errorf("the workflow run: %+v", w)
	}
	body = s.MustGet(olga, loc)
	mustContain(t, "the new workflow run", body,
		`<h1>flush-all on webshop <span class="status run-running">running</span></h1>`,
		`<dd class="reason">prices &lt;b&gt;changed&lt;/b&gt;</dd>`, "<code>pattern=^/products/</code>", "<dt>Approval</dt><dd>not needed</dd>",
		`hx-trigger="every 2s"`, `action="/workflow-runs/`+w.ID+`/cancel"`,
		"Values, filled in when it starts: <code>pattern=${inputs.pattern} scope=all</code>",
		`<span class="host">web1</span> <span class="meta">not started</span>`)
	mustNotContain(t, "the new workflow run", body, "<b>changed</b>", "/approve")

	// The step starts on both hosts, each a run with its page.
	s.MustAdvance()
	w = s.MustWorkflowRun(w.ID)
	web1, web2 := hostRun(t, w, 0, "web1"), hostRun(t, w, 0, "web2")
	body = s.MustGet(olga, loc)
	mustContain(t, "the running step", body, "<p>Values: <code>pattern=^/products/</code> <code>scope=all</code> </p>",
		`<a href="/runs/`+web1+`">web1</a> <span class="status run-running">running</span>`,
		`<a href="/runs/`+web2+`">web2</a> <span class="status run-running">running</span>`)
	mustContain(t, "a host's run page", s.MustGet(olga, "/runs/"+web1), `<dt>Part of</dt><dd><a href="/workflow-runs/`+w.ID+`">workflow run `+w.ID+`</a></dd>`)
	s.MustFinish(web1, s.web1, aramaki.RunSucceeded, time.Second, "")
	s.MustFinish(web2, s.web2, aramaki.RunSucceeded, time.Second, "")
	s.MustAdvance()
	body = s.MustGet(olga, loc)
	mustContain(t, "the finished workflow run", body, `<h1>flush-all on webshop <span class="status run-succeeded">succeeded</span></h1>`,
		"<dt>Took</dt>", `<a href="/runs/`+web2+`">web2</a> <span class="status run-succeeded">succeeded</span>`)
	mustNotContain(t, "the finished workflow run", body, "hx-get", "/cancel\"")
}

func TestASecondPersonApprovesAWorkflowRunAndItIsFollowedLive(t *testing.T) {
	s := MustWorkflowShop(t)
	w, err := s.svc.RequestWorkflow(s.ctx, s.Principal("olga"), service.WorkflowRequest{System: "webshop", Workflow: "rolling-restart", Reason: "the shop leaks memory"})
	if err != nil {
		t.Fatal(err)
	}
	if w.State != aramaki.RunAwaitingApproval {
		t.Fatalf("workflow run is %s", w.State)
	}
	page := "/workflow-runs/" + w.ID
	olga := s.MustLogin("olga")
	body := s.MustGet(olga, page)
	mustContain(t, "the page for who asked", body, `run-awaiting_approval">awaiting approval</span>`,
		"You asked for it: waiting for a second person with the operator role to approve it.", "<dd>waiting</dd>",
		`action="/workflow-runs/`+w.ID+`/cancel"`, "<strong>Rule:</strong> Not during the evening peak",
		"<code>pattern=^/</code>", "restart-app on <a href=\"/systems/webshop-app\">webshop-app</a> · 1 at a time, stops after 1 failure",
		"Reads <code>version</code> from what its hosts print: <code>version=(\\S&#43;)</code>")
	mustNotContain(t, "the page for who asked", body, "/approve")
	status, refused, _ := s.Post(olga, page+"/approve", url.Values{"csrf": {CSRF(t, body)}})
	if status != http.StatusForbidden || !strings.Contains(refused, `<p class="error" role="alert">you asked for workflow run `+w.ID+`: another person must approve it</p>`) {
		t.Errorf("approving one's own: %d\n%s", status, refused)
	}

	otto := s.MustLogin("otto")
	body = s.MustGet(otto, page)
	mustContain(t, "the page for another operator", body, "Waiting for you, or another operator, to approve it", `action="/workflow-runs/`+w.ID+`/approve"`)
	if status, _, _ := s.Post(otto, page+"/approve", url.Values{}); status != http.StatusForbidden {
		t.Errorf("approving without csrf: %d", status)
	}
	if status, _, resp := s.Post(otto, page+"/approve", url.Values{"csrf": {CSRF(t, body)}}); status != http.StatusSeeOther || resp.Header.Get("Location") != page {
		t.Fatalf("approving: %d %v", status, resp.Header)
	}
	body = s.MustGet(otto, page)
	mustContain(t, "the approved workflow run", body, `<h1>rolling-restart on webshop <span class="status run-running">running</span></h1>`, "<dt>Approval</dt><dd>by otto, ")
	mustNotContain(t, "the approved workflow run", body, "/approve")
	status, body, _ = s.Post(otto, page+"/approve", url.Values{"csrf": {CSRF(t, body)}})
	if status != http.StatusConflict || !strings.Contains(body, "needs no approval: it is running") {
		t.Errorf("approving again: %d\n%s", status, body)
	}

	// The page polls its live part; unchanged, nothing comes back.
	body = s.MustGet(otto, page)
	live := regexp.MustCompile(`hx-get="(/workflow-runs/\d+/live\?v=[0-9a-f]+)"`).FindStringSubmatch(body)
	if live == nil {
		t.Fatalf("no live address on the page:\n%s", body)
	}
	if status, body, _ := s.Get(otto, live[1]); status != http.StatusNoContent || body != "" {
		t.Errorf("polling an unchanged workflow run: %d %q", status, body)
	}
	// One host at a time: web1 first.
	s.MustAdvance()
	w = s.MustWorkflowRun(w.ID)
	web1 := hostRun(t, w, 0, "web1")
	status, part, _ := s.Get(otto, live[1])
	if status != http.StatusOK || !strings.HasPrefix(strings.TrimSpace(part), `<div class="run" id="workflow-run"`) || strings.Contains(part, "<html") {
		t.Fatalf("polling after the step started: %d\n%s", status, part)
	}
	mustContain(t, "the live part", part, `<a href="/runs/`+web1+`">web1</a> <span class="status run-running">running</span>`,
		`<span class="host">web2</span> <span class="meta">not started</span>`, `class="card step border-run-running current" id="step-restart"`,
		`name="csrf" value="`+CSRF(t, body)+`"`)
	if strings.Contains(part, live[1]) {
		t.Error("the live part polls its old version")
	}
	s.MustFinish(web1, s.web1, aramaki.RunSucceeded, time.Second, "restarted, version=<b>2.4.1</b>\n")
	s.MustAdvance()
	w = s.MustWorkflowRun(w.ID)
	web2 := hostRun(t, w, 0, "web2")
	s.MustFinish(web2, s.web2, aramaki.RunSucceeded, time.Second, "restarted, version=2.4.2\n")
	s.MustAdvance()
	body = s.MustGet(otto, page)
	restart := section(t, body, "step-restart")
	mustContain(t, "the restart step, done", restart, `run-succeeded">succeeded</span>`, "<p>Outputs: <code>version=&lt;b&gt;2.4.1&lt;/b&gt;</code> </p>")
	flush := section(t, body, "step-flush")
	mustContain(t, "the flush step, running", flush, `run-running">running</span>`, "<code>pattern=^/</code>")
	w = s.MustWorkflowRun(w.ID)
	flushing := []string{hostRun(t, w, 1, "web1"), hostRun(t, w, 1, "web2")}

	// Cancelled: the hosts under way are stopped, what was not started
	// is said.
	vera := s.MustLogin("vera")
	body = s.MustGet(vera, page)
	mustNotContain(t, "the page for a viewer", body, "/cancel\"", "/approve\"")
	if status, _, _ := s.Post(vera, page+"/cancel", url.Values{"csrf": {CSRF(t, body)}}); status != http.StatusForbidden {
		t.Errorf("a viewer cancelling: %d", status)
	}
	if status, _, _ := s.Post(otto, page+"/cancel", url.Values{"csrf": {"0000"}}); status != http.StatusForbidden {
		t.Errorf("cancel with a wrong csrf: %d", status)
	}
	body = s.MustGet(otto, page)
	if status, _, resp := s.Post(otto, page+"/cancel", url.Values{"csrf": {CSRF(t, body)}}); status != http.StatusSeeOther || resp.Header.Get("Location") != page {
		t.Fatalf("cancel: %d %v", status, resp.Header)
	}
	body = s.MustGet(otto, page)
	mustContain(t, "the cancelled workflow run", body, `<h1>rolling-restart on webshop <span class="status run-cancelled">cancelled</span></h1>`,
		"<dt>Cancelled by</dt><dd>otto</dd>", "<dt>Error</dt><dd>cancelled by otto</dd>",
		// The page follows the hosts until they stopped.
		`hx-trigger="every 2s"`, `<a href="/runs/`+flushing[0]+`">web1</a> <span class="status run-running">running</span>`)
	mustNotContain(t, "the cancelled workflow run", body, "/cancel\"")
	s.MustFinish(flushing[0], s.web1, aramaki.RunCancelled, time.Second, "")
	s.MustFinish(flushing[1], s.web2, aramaki.RunCancelled, time.Second, "")
	body = s.MustGet(otto, page)
	mustContain(t, "the cancelled workflow run, its hosts stopped", body,
		`<a href="/runs/`+flushing[0]+`">web1</a> <span class="status run-cancelled">cancelled</span>`,
		`<a href="/runs/`+flushing[1]+`">web2</a> <span class="status run-cancelled">cancelled</span>`)
	mustNotContain(t, "the cancelled workflow run, its hosts stopped", body, "hx-get")
	status, body, _ = s.Post(otto, page+"/cancel", url.Values{"csrf": {CSRF(t, body)}})
	if status != http.StatusConflict || !strings.Contains(body, "is cancelled already") {
		t.Errorf("cancelling again: %d\n%s", status, body)
	}

	// Who cannot see the system sees no workflow run; anonymous people
	// log in first; polling without a session is a plain 401.
	if status, _, _ := s.Get(s.MustLogin("vera"), page); status != http.StatusOK {
		t.Errorf("a viewer of the shop: %d", status)
	}
	if status, _, resp := s.Get(s.Client(), page); status != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("anonymous: %d %v", status, resp.Header)
	}
	if status, _, _ := s.Get(s.Client(), live[1]); status != http.StatusUnauthorized {
		t.Errorf("anonymous polling: %d, want 401", status)
	}
	if status, _, _ := s.Get(otto, "/workflow-runs/999999"); status != http.StatusNotFound {
		t.Errorf("no such workflow run: %d", status)
	}
}

func TestWorkflowRunsOnTheTimelineAndInTheirList(t *testing.T) {
	s := MustWorkflowShop(t)
	waiting, err := s.svc.RequestWorkflow(s.ctx, s.Principal("olga"), service.WorkflowRequest{System: "webshop", Workflow: "rolling-restart", Reason: "leaks memory"})
	if err != nil {
		t.Fatal(err)
	}
	flushing, err := s.svc.RequestWorkflow(s.ctx, s.Principal("otto"), service.WorkflowRequest{System: "webshop", Workflow: "flush-all",
		Reason: "stale prices", Inputs: map[string]string{"pattern": "^/"}})
	if err != nil {
		t.Fatal(err)
	}
	s.MustAdvance()
	otto := s.MustLogin("otto")

	// Every event of a workflow run links to its page.
	body := s.MustGet(otto, "/timeline?system=webshop&kind=workflow.requested,workflow.awaiting_approval,workflow.step")
	for _, w := range []aramaki.WorkflowRun{waiting, flushing} {
		mustContain(t, "the timeline", body, `<a class="run-link" href="/workflow-runs/`+w.ID+`">workflow run `+w.ID+`</a>`)
	}
	mustContain(t, "the timeline", body, "workflow.awaiting_approval", "workflow.step")
	if n := strings.Count(body, `href="/workflow-runs/`); n != 4 {
		t.Errorf("%d links to workflow runs on the timeline, want 4 (asked twice, awaiting once, a step started once):\n%s", n, body)
	}

	body = s.MustGet(otto, "/workflow-runs")
	mustContain(t, "the workflow runs list", body, "2 workflow runs, newest first",
		`href="/workflow-runs/`+waiting.ID+`">rolling-restart on webshop</a> <span class="status run-awaiting_approval">`,
		`href="/workflow-runs/`+flushing.ID+`">flush-all on webshop</a> <span class="status run-running">`,
		"by otto", " · 1 step · now flush", "leaks memory", "stale prices", `<a href="/runs">runs</a>`)
	if strings.Index(body, "/workflow-runs/"+flushing.ID) > strings.Index(body, "/workflow-runs/"+waiting.ID) {
		t.Error("the workflow runs list is not newest first")
	}
	body = s.MustGet(otto, "/workflow-runs?state=awaiting_approval")
	mustContain(t, "awaiting workflow runs", body, "leaks memory", `<option value="awaiting_approval" selected>`)
	mustNotContain(t, "awaiting workflow runs", body, "stale prices")
	body = s.MustGet(otto, "/workflow-runs?system=webshop&workflow=flush-all")
	mustContain(t, "flushes of the shop", body, "stale prices", `<option selected>flush-all</option>`)
	mustNotContain(t, "flushes of the shop", body, "leaks memory")
	mustContain(t, "workflow runs of the blog", s.MustGet(otto, "/workflow-runs?system=blog"), "No workflow runs match.")
	if status, _, _ := s.Get(otto, "/workflow-runs?state=bored"); status != http.StatusBadRequest {
		t.Errorf("an unknown state: %d", status)
	}
	if status, _, _ := s.Get(s.Client(), "/workflow-runs"); status != http.StatusSeeOther {
		t.Errorf("anonymous: %d", status)
	}
	mustContain(t, "the runs list", s.MustGet(otto, "/runs"), `<a href="/workflow-runs">workflow runs</a>`)
	// Each host's part is a run in the runs list.
	runs, err := s.svc.Runs(s.ctx, s.admin, service.RunQuery{WorkflowRun: flushing.ID})
	if err != nil || len(runs) != 2 || !slices.ContainsFunc(runs, func(r aramaki.Run) bool { return r.Targets[0].Name == "web2" }) {
		t.Fatalf("the runs of the flush: %v %+v", err, runs)
	}
}
