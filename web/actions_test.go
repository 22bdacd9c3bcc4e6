package web_test

import (
	"context"
	"crypto/ed25519"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// actionFiles is the fixture with two actions on the shop's app: flushing
// Varnish, which anyone operating the shop may do, and restarting the app,
// which a second person approves.
func actionFiles() map[string]string {
	files := maps.Clone(fixtureFiles)
	files["systems/webshop-app.yaml"] = `id: webshop-app
title: Webshop app
subsystems: [compute]
checks:
  - {name: http, command: check_http -H shop}
actions:
  - name: flush-varnish
    description: Flush the Varnish cache
    rule: "Flushing the Varnish cache is always fine; tell #shop afterwards."
  - name: restart-app
    description: Restart the shop application
    approval: true
    rule: "Restart one host at a time; tell the customer first."
`
	return files
}

// hosts is the agents' side of runs: every agent is connected and does
// what it is asked, which the tests then report as the agent would.
type hosts struct {
	mu     sync.Mutex
	agents []string
}

func (h *hosts) StartRun(aramaki.RunStart, time.Duration) error { return nil }
func (h *hosts) CancelRun(string, string) error                 { return nil }
func (h *hosts) ConnectedAgents() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.agents)
}
func (h *hosts) Connected(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.agents, id)
}
func (h *hosts) Revoked(string, string)                   {}
func (h *hosts) Run(string, string, string, string) error { return nil }

// shop is the UI with the shop's two web hosts allowing both actions, and
// olga and otto operating the shop (vera only views it).
type shop struct {
	*env
	ctx  context.Context
	hub  *hosts
	web1 aramaki.Agent
	web2 aramaki.Agent
}

// flushSpec is how the hosts declare flushing Varnish: one parameter of
// each type.
var flushSpec = aramaki.ActionSpec{Name: "flush-varnish", Description: "Flush Varnish",
	Argv: []string{"/usr/bin/varnishadm", "ban", "req.url", "~", "{pattern}"}, Timeout: 30 * time.Second,
	Params: []aramaki.Param{
		{Name: "pattern", Type: aramaki.ParamString, Description: "URLs to flush", Pattern: `[A-Za-z0-9/^$.*_-]{1,100}`, Default: ptr("^/")},
		{Name: "scope", Type: aramaki.ParamEnum, Values: []string{"pages", "images", "all"}, Default: ptr("pages")},
		{Name: "wait", Type: aramaki.ParamInt, Min: ptr[int64](0), Max: ptr[int64](60), Default: ptr("0")},
		{Name: "dry", Type: aramaki.ParamBool, Default: ptr("false")},
	}}

func ptr[T any](v T) *T { return &v }

func MustShop(t testing.TB) *shop {
	t.Helper()
	return MustShopWith(t, actionFiles())
}

// MustShopWith is MustShop over other systems.
func MustShopWith(t testing.TB, files map[string]string) *shop {
	t.Helper()
	e := MustEnvWith(t, files)
	ctx := context.Background()
	h := &hosts{}
	e.svc.SetHub(h)
	for _, user := range []string{"olga", "otto"} {
		e.pw[user] = user + "-secret-password"
		if _, err := e.svc.CreateUser(ctx, e.admin, user, e.pw[user]); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.GrantRole(ctx, e.admin, user, "webshop", aramaki.RoleOperator); err != nil {
			t.Fatal(err)
		}
	}
	s := &shop{env: e, ctx: ctx, hub: h}
	restart := aramaki.ActionSpec{Name: "restart-app", Argv: []string{"/usr/bin/systemctl", "restart", "shop"}}
	for _, name := range []string{"web1", "web2"} {
		tok, err := e.svc.CreateEnrollmentToken(ctx, e.admin, []string{"webshop-app"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(nil)
		a, err := e.svc.Enroll(ctx, tok.ID, tok.Secret, pub, name, "1")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.SetAgentActions(ctx, a, []aramaki.ActionSpec{flushSpec, restart}); err != nil {
			t.Fatal(err)
		}
		h.agents = append(h.agents, a.ID)
		if name == "web1" {
			s.web1 = a
		} else {
			s.web2 = a
		}
	}
	return s
}

// Principal is a user as the service knows them.
func (s *shop) Principal(user string) aramaki.Principal {
	s.t.Helper()
	tok, err := s.svc.Login(s.ctx, user, s.pw[user], "test", time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	p, err := s.svc.AuthenticateToken(s.ctx, tok.Secret)
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}

// MustRun asks for a run and has the hosts start it.
func (s *shop) MustRun(user, action, reason string, params map[string]string) aramaki.Run {
	s.t.Helper()
	run, err := s.svc.RequestRun(s.ctx, s.Principal(user), service.RunRequest{System: "webshop-app", Action: action, Reason: reason, Params: params})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.svc.DispatchRuns(s.ctx); err != nil {
		s.t.Fatal(err)
	}
	return run
}

// MustFinish has a host print and end its part of a run.
func (s *shop) MustFinish(run string, a aramaki.Agent, state aramaki.RunState, took time.Duration, output string) {
	s.t.Helper()
	if output != "" {
		if err := s.svc.RunOutput(s.ctx, a, run, 1, output); err != nil {
			s.t.Fatal(err)
		}
	}
	code := 0
	if state != aramaki.RunSucceeded {
		code = 1
	}
	// A run takes from when it was asked for until its last host ended.
	start := time.Now()
	if err := s.svc.RunFinished(s.ctx, a, run, service.RunEnd{State: state, ExitCode: &code, Started: start, Ended: start.Add(took)}); err != nil {
		s.t.Fatal(err)
	}
}

// section is the part of a page from the element with this id to the
// end of its list item.
func section(t *testing.T, body, id string) string {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no #%s on the page:\n%s", id, body)
	}
	body = body[i:]
	if j := strings.Index(body, "\n  </li>"); j >= 0 {
		body = body[:j]
	}
	return body
}

func TestTheSystemPageShowsActionsWithTheirRulesAndRecentRuns(t *testing.T) {
	s := MustShop(t)
	run := s.MustRun("olga", "flush-varnish", "product pages are stale", nil)
	s.MustFinish(run.ID, s.web1, aramaki.RunSucceeded, 2*time.Second, "ban added\n")
	s.MustFinish(run.ID, s.web2, aramaki.RunSucceeded, 3*time.Second, "ban added\n")

	body := s.MustGet(s.MustLogin("otto"), "/systems/webshop-app")
	flush := section(t, body, "action-flush-varnish")
	mustContain(t, "flush-varnish on the system page", flush,
		"Flush the Varnish cache", "<strong>Rule:</strong> Flushing the Varnish cache is always fine; tell #shop afterwards.",
		"Who may run it: operators", "you may", ">web1</a>", ">web2</a>",
		`<a href="/runs/`+run.ID+`">ran <time`, "just now</time> by olga</a>: ", `<span class="status run-succeeded">succeeded</span>`,
		"1 finished run in 30 days · 0% failed · average 3.0 s · p95 3.0 s",
		// The form: a reason, one field per parameter, the rule read.
		`action="/systems/webshop-app/actions/flush-varnish/runs#action-flush-varnish"`,
		`<textarea name="reason" rows="2" required`,
		`<input name="p.pattern" value="^/"`, `pattern="[\$\*\--9A-Z\^-_a-z]{1,100}"`, `title="must match [A-Za-z0-9/^$.*_-]{1,100}"`,
		`<select name="p.scope">`, `<option selected>pages</option>`, `<option>images</option>`,
		`<input type="number" name="p.wait" value="0" step="1" inputmode="numeric" min="0" max="60">`,
		`<input type="checkbox" name="p.dry" value="true">`,
		`<input type="checkbox" name="confirm" value="1" required> I have read the rule`)
	mustNotContain(t, "flush-varnish on the system page", flush, "break_glass", "needs a second person")
	// The rule comes before the form.
	if strings.Index(flush, "Rule:") > strings.Index(flush, "<form") {
		t.Error("the rule is not shown before the form")
	}
	restart := section(t, body, "action-restart-app")
	mustContain(t, "restart-app on the system page", restart,
		"needs a second person", "another operator approves each run before it starts", "Not run here in the last 30 days.",
		`name="break_glass"`, "Only in an emergency", "Ask to run")
	mustNotContain(t, "restart-app on the system page", restart, "<svg") // no finished runs, no chart

	// A viewer sees the actions and their rules, and no form.
	body = s.MustGet(s.MustLogin("vera"), "/systems/webshop-app")
	mustContain(t, "the system page as a viewer", body, "Flushing the Varnish cache is always fine", "you may not", "by olga")
	mustNotContain(t, "the system page as a viewer", body, "/actions/flush-varnish/runs", "Run…", `name="reason"`)
}

func TestRunningAnActionFromTheSystemPage(t *testing.T) {
	s := MustShop(t)
	olga := s.MustLogin("olga")
	csrf := CSRF(t, s.MustGet(olga, "/systems/webshop-app"))
	form := func(values ...string) url.Values {
		f := url.Values{"csrf": {csrf}, "reason": {"stale <b>images</b>"}, "confirm": {"1"},
			"p.pattern": {"^/img/"}, "p.scope": {"images"}, "p.wait": {"5"}}
		for i := 0; i+1 < len(values); i += 2 {
			if values[i+1] == "" {
				f.Del(values[i])
			} else {
				f.Set(values[i], values[i+1])
			}
		}
		return f
	}
	runs := func() []aramaki.Run {
		t.Helper()
		runs, err := s.svc.Runs(s.ctx, s.admin, service.RunQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return runs
	}

	// Refused, said in the action's card with the form open and filled.
	for _, c := range []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"a value not matching its pattern", form("p.pattern", "/img/ && rm -rf"), http.StatusBadRequest, "value &#34;/img/ &amp;&amp; rm -rf&#34; of pattern does not match its pattern"},
		{"a number out of range", form("p.wait", "600"), http.StatusBadRequest, "value 600 of wait is out of range"},
		{"a choice not offered", form("p.scope", "everything"), http.StatusBadRequest, "value &#34;everything&#34; of scope is not one of pages, images, all"},
		{"no reason", form("reason", " "), http.StatusBadRequest, "say why: a run needs a reason"},
		{"the rule not read", form("confirm", ""), http.StatusBadRequest, "Tick “I have read the rule” first."},
		{"breaking glass where no approval is needed", form("break_glass", "1"), http.StatusBadRequest, "action flush-varnish needs no approval"},
	} {
		status, body, _ := s.Post(olga, "/systems/webshop-app/actions/flush-varnish/runs", c.form)
		if status != c.status {
			t.Errorf("%s: status %d, want %d", c.name, status, c.status)
		}
		card := section(t, body, "action-flush-varnish")
		mustContain(t, c.name, card, `<p class="error" role="alert">`+c.want, `<details class="run-form" open>`)
		if c.name != "no reason" {
			mustContain(t, c.name, card, ">stale &lt;b&gt;images&lt;/b&gt;</textarea>")
		}
		if c.name == "a number out of range" {
			mustContain(t, c.name, card, `name="p.wait" value="600"`, `<option selected>images</option>`)
		}
	}
	if n := len(runs()); n != 0 {
		t.Fatalf("%d runs after refused forms", n)
	}

	// Without the CSRF token nothing runs.
	noCSRF := form()
	noCSRF.Del("csrf")
	if status, _, _ := s.Post(olga, "/systems/webshop-app/actions/flush-varnish/runs", noCSRF); status != http.StatusForbidden {
		t.Errorf("without csrf: status %d, want 403", status)
	}
	// A viewer may not, even with a token of her own.
	vera := s.MustLogin("vera")
	veraForm := form("csrf", CSRF(t, s.MustGet(vera, "/systems/webshop-app")))
	status, body, _ := s.Post(vera, "/systems/webshop-app/actions/flush-varnish/runs", veraForm)
	if status != http.StatusForbidden || !strings.Contains(body, `<p class="error" role="alert">this needs the operator role on system webshop-app</p>`) {
		t.Errorf("a viewer running an action: status %d\n%s", status, body)
	}
	// An action the system does not have, on a system she cannot see.
	status, body, _ = s.Post(olga, "/systems/webshop-app/actions/drop-db/runs", form())
	if status != http.StatusNotFound || !strings.Contains(body, `<p class="error" role="alert">system webshop-app has no action drop-db</p>`) {
		t.Errorf("an unknown action: %d\n%s", status, body)
	}
	status, body, _ = s.Post(olga, "/systems/infrastructure/actions/flush-varnish/runs", form())
	if status != http.StatusNotFound || strings.Contains(body, "Hosting infrastructure") {
		t.Errorf("a hidden system: %d\n%s", status, body)
	}
	if n := len(runs()); n != 0 {
		t.Fatalf("%d runs after forms that were not allowed", n)
	}

	// Run: to the run's page.
	status, _, resp := s.Post(olga, "/systems/webshop-app/actions/flush-varnish/runs", form())
	loc := resp.Header.Get("Location")
	if status != http.StatusSeeOther || !regexp.MustCompile(`^/runs/\d+$`).MatchString(loc) {
		t.Fatalf("run: status %d, location %q", status, loc)
	}
	got := runs()
	if len(got) != 1 || "/runs/"+got[0].ID != loc {
		t.Fatalf("runs %+v, redirected to %s", got, loc)
	}
	want := map[string]string{"pattern": "^/img/", "scope": "images", "wait": "5", "dry": "false"}
	if r := got[0]; !maps.Equal(r.Params, want) || r.Reason != "stale <b>images</b>" || r.RequestedBy != "olga" || len(r.Targets) != 2 {
		t.Errorf("the run: %+v, want params %v", r, want)
	}
	// A ticked box is true; an empty field is left out: each host fills
	// in its own default.
	s.Post(olga, "/systems/webshop-app/actions/flush-varnish/runs", form("p.dry", "true", "p.pattern", ""))
	if r := runs()[0]; r.Params["dry"] != "true" || r.Params["pattern"] != "" {
		t.Errorf("ticked dry, empty pattern: %v", r.Params)
	}
}

func TestTheRunPageShowsEachHostsOutputEscapedAndFollowsTheRun(t *testing.T) {
	s := MustShop(t)
	run := s.MustRun("olga", "flush-varnish", "images are <i>stale</i>", map[string]string{"pattern": "^/img/"})
	if err := s.svc.RunOutput(s.ctx, s.web1, run.ID, 1, "ban added\n<script>alert(1)</script>\n"); err != nil {
		t.Fatal(err)
	}
	otto := s.MustLogin("otto")
	body := s.MustGet(otto, "/runs/"+run.ID)
	mustContain(t, "the run page", body,
		`<h1>flush-varnish on webshop-app <span class="status run-running">running</span></h1>`,
		`<a href="/runs">Runs</a>`, // in the header
		"<strong>Rule:</strong> Flushing the Varnish cache is always fine",
		"<dt>Asked by</dt><dd>olga, ", "<dd class=\"reason\">images are &lt;i&gt;stale&lt;/i&gt;</dd>",
		"<code>pattern=^/img/</code>", "<dt>Approval</dt><dd>not needed</dd>",
		`<span class="title">web1</span> <span class="status run-running">running</span>`,
		"ban added\n&lt;script&gt;alert(1)&lt;/script&gt;", "No output yet.",
		`hx-trigger="every 2s"`, `action="/runs/`+run.ID+`/cancel"`)
	mustNotContain(t, "the run page", body, "<script>alert(1)</script>", "<i>stale</i>", "/approve")

	// The page polls its live part; unchanged, nothing comes back.
	live := regexp.MustCompile(`hx-get="(/runs/\d+/live\?v=[0-9a-f]+)"`).FindStringSubmatch(body)
	if live == nil {
		t.Fatalf("no live address on the page:\n%s", body)
	}
	if status, body, _ := s.Get(otto, live[1]); status != http.StatusNoContent || body != "" {
		t.Errorf("polling an unchanged run: %d %q", status, body)
	}
	// New output: the live part again, with the new output and address.
	if err := s.svc.RunOutput(s.ctx, s.web2, run.ID, 1, "web2 says <b>hi</b>\n"); err != nil {
		t.Fatal(err)
	}
	status, part, _ := s.Get(otto, live[1])
	if status != http.StatusOK || !strings.HasPrefix(strings.TrimSpace(part), `<div class="run" id="run"`) || strings.Contains(part, "<html") {
		t.Fatalf("polling after new output: %d\n%s", status, part)
	}
	mustContain(t, "the live part", part, "web2 says &lt;b&gt;hi&lt;/b&gt;", `name="csrf" value="`+CSRF(t, body)+`"`)
	if strings.Contains(part, live[1]) {
		t.Error("the live part polls its old version")
	}
	// Over: the last live part no longer polls.
	s.MustFinish(run.ID, s.web1, aramaki.RunSucceeded, time.Second, "")
	s.MustFinish(run.ID, s.web2, aramaki.RunFailed, 2*time.Second, "")
	_, part, _ = s.Get(otto, live[1])
	mustContain(t, "the last live part", part, `<h1>flush-varnish on webshop-app <span class="status run-failed">failed</span></h1>`,
		"exit code 1 · started ", "<dt>Took</dt>")
	mustNotContain(t, "the last live part", part, "hx-trigger", "/cancel")
	body = s.MustGet(otto, "/runs/"+run.ID)
	mustNotContain(t, "the finished run's page", body, "hx-get", "/cancel")

	// Who cannot see the system sees no run; anonymous people log in first.
	if status, _, _ := s.Get(s.MustLogin("vera"), "/runs/"+run.ID); status != http.StatusOK {
		t.Errorf("a viewer of the shop: %d", status)
	}
	if status, _, resp := s.Get(s.Client(), "/runs/"+run.ID); status != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("anonymous: %d %v", status, resp.Header)
	}
	if status, _, _ := s.Get(s.Client(), live[1]); status != http.StatusUnauthorized {
		t.Errorf("anonymous polling: %d, want 401 (not the login page swapped in)", status)
	}
	if status, _, _ := s.Get(otto, "/runs/999999"); status != http.StatusNotFound {
		t.Errorf("no such run: %d", status)
	}
}

func TestASecondPersonApprovesARun(t *testing.T) {
	s := MustShop(t)
	run := s.MustRun("olga", "restart-app", "the shop leaks memory", nil)
	if run.State != aramaki.RunAwaitingApproval {
		t.Fatalf("run is %s", run.State)
	}
	olga := s.MustLogin("olga")
	body := s.MustGet(olga, "/runs/"+run.ID)
	mustContain(t, "the run page for who asked", body, "run-awaiting_approval\">awaiting approval</span>",
		"You asked for it: waiting for a second person with the operator role to approve it.", "<dd>waiting</dd>",
		`action="/runs/`+run.ID+`/cancel"`)
	mustNotContain(t, "the run page for who asked", body, "/approve")
	// Approving one's own is refused, and said on the page.
	status, refused, _ := s.Post(olga, "/runs/"+run.ID+"/approve", url.Values{"csrf": {CSRF(t, body)}})
	if status != http.StatusForbidden || !strings.Contains(refused, `<p class="error" role="alert">you asked for run `+run.ID+`: another person must approve it</p>`) {
		t.Errorf("approving one's own run: %d\n%s", status, refused)
	}

	otto := s.MustLogin("otto")
	body = s.MustGet(otto, "/runs/"+run.ID)
	mustContain(t, "the run page for another operator", body, "Waiting for you, or another operator, to approve it", `action="/runs/`+run.ID+`/approve"`)
	if status, _, _ := s.Post(otto, "/runs/"+run.ID+"/approve", url.Values{}); status != http.StatusForbidden {
		t.Errorf("approving without csrf: %d", status)
	}
	if status, _, resp := s.Post(otto, "/runs/"+run.ID+"/approve", url.Values{"csrf": {CSRF(t, body)}}); status != http.StatusSeeOther || resp.Header.Get("Location") != "/runs/"+run.ID {
		t.Fatalf("approving: %d %v", status, resp.Header)
	}
	body = s.MustGet(otto, "/runs/"+run.ID)
	mustContain(t, "the approved run", body, `run-running">running</span>`, "<dt>Approval</dt><dd>by otto, ")
	mustNotContain(t, "the approved run", body, "/approve")
	// Approving twice says why not.
	status, body, _ = s.Post(otto, "/runs/"+run.ID+"/approve", url.Values{"csrf": {CSRF(t, body)}})
	if status != http.StatusConflict || !strings.Contains(body, "needs no approval: it is running") {
		t.Errorf("approving again: %d\n%s", status, body)
	}
}

func TestBreakingGlassIsHighlighted(t *testing.T) {
	s := MustShop(t)
	olga := s.MustLogin("olga")
	csrf := CSRF(t, s.MustGet(olga, "/systems/webshop-app"))
	_, _, resp := s.Post(olga, "/systems/webshop-app/actions/restart-app/runs", url.Values{"csrf": {csrf}, "reason": {"the shop is down, nobody answers"},
		"confirm": {"1"}, "break_glass": {"1"}})
	body := s.MustGet(olga, resp.Header.Get("Location"))
	mustContain(t, "a break-glass run", body, `<p class="break-glass-banner" role="status"><strong>Break glass:</strong> olga ran it without the approval it needs.`,
		"<strong>skipped: break glass</strong>", `run-running">running</span>`)
	body = s.MustGet(olga, "/runs")
	mustContain(t, "the runs list", body, `<span class="tag break-glass">break glass</span> by olga`)
	// On the timeline too, each event of the run linking to it.
	id := strings.TrimPrefix(resp.Header.Get("Location"), "/runs/")
	body = s.MustGet(olga, "/timeline?system=webshop-app&kind=run.break_glass")
	mustContain(t, "the timeline", body, `<li class="break-glass">`, "BREAK GLASS: olga ran restart-app on webshop-app", `<a class="run-link" href="/runs/`+id+`">run `+id+`</a>`)
}

func TestCancellingARun(t *testing.T) {
	s := MustShop(t)
	// The hosts are away: the run waits for them.
	s.hub.mu.Lock()
	away := s.hub.agents
	s.hub.agents = nil
	s.hub.mu.Unlock()
	run, err := s.svc.RequestRun(s.ctx, s.Principal("olga"), service.RunRequest{System: "webshop-app", Action: "flush-varnish", Reason: "wrong pattern"})
	if err != nil {
		t.Fatal(err)
	}
	otto := s.MustLogin("otto")
	body := s.MustGet(otto, "/runs/"+run.ID)
	if status, _, _ := s.Post(otto, "/runs/"+run.ID+"/cancel", url.Values{"csrf": {"0000"}}); status != http.StatusForbidden {
		t.Errorf("cancel with a wrong csrf: %d", status)
	}
	if status, _, resp := s.Post(otto, "/runs/"+run.ID+"/cancel", url.Values{"csrf": {CSRF(t, body)}}); status != http.StatusSeeOther || resp.Header.Get("Location") != "/runs/"+run.ID {
		t.Fatalf("cancel: %d %v", status, resp.Header)
	}
	body = s.MustGet(otto, "/runs/"+run.ID)
	mustContain(t, "the cancelled run", body, `run-cancelled">cancelled</span></h1>`, "<dt>Cancelled by</dt><dd>otto</dd>", "cancelled before it started")
	mustNotContain(t, "the cancelled run", body, "/cancel\"", "hx-get")
	status, body, _ := s.Post(otto, "/runs/"+run.ID+"/cancel", url.Values{"csrf": {CSRF(t, body)}})
	if status != http.StatusConflict || !strings.Contains(body, "is cancelled already") {
		t.Errorf("cancelling again: %d\n%s", status, body)
	}
	// A viewer sees no button and may not.
	s.hub.mu.Lock()
	s.hub.agents = away
	s.hub.mu.Unlock()
	vera := s.MustLogin("vera")
	run2 := s.MustRun("olga", "flush-varnish", "again", nil)
	body = s.MustGet(vera, "/runs/"+run2.ID)
	mustNotContain(t, "the run page for a viewer", body, "/cancel\"")
	if status, _, _ := s.Post(vera, "/runs/"+run2.ID+"/cancel", url.Values{"csrf": {CSRF(t, body)}}); status != http.StatusForbidden {
		t.Errorf("a viewer cancelling: %d", status)
	}
}

func TestTheDurationChartHasABarPerFinishedRun(t *testing.T) {
	s := MustShop(t)
	for i, c := range []struct {
		state aramaki.RunState
		took  time.Duration
	}{{aramaki.RunSucceeded, 2 * time.Second}, {aramaki.RunFailed, 8 * time.Second}, {aramaki.RunSucceeded, 4 * time.Second}} {
		run := s.MustRun("olga", "flush-varnish", "run "+string(rune('a'+i)), nil)
		s.MustFinish(run.ID, s.web1, c.state, c.took, "")
		s.MustFinish(run.ID, s.web2, aramaki.RunSucceeded, c.took/2, "")
	}
	s.MustRun("olga", "flush-varnish", "still running", nil)

	body := s.MustGet(s.MustLogin("vera"), "/systems/webshop-app")
	card := section(t, body, "action-flush-varnish")
	mustContain(t, "the chart's numbers", card, "3 finished runs in 30 days · 33% failed · average ", " · p95 ", "tallest: ")
	i := strings.Index(card, `<svg class="durations"`)
	if i < 0 {
		t.Fatalf("no chart:\n%s", card)
	}
	chart := card[i : i+strings.Index(card[i:], "</svg>")]
	if n := strings.Count(chart, "<rect"); n != 3 {
		t.Errorf("%d bars, want one per finished run (3):\n%s", n, chart)
	}
	if n := strings.Count(chart, `class="d-failed"`); n != 1 {
		t.Errorf("%d failed bars, want 1:\n%s", n, chart)
	}
	// The longest run is as tall as the chart.
	if !strings.Contains(chart, `y="0.0" width="3" height="60.0" class="d-failed"`) {
		t.Errorf("the failed run, the longest, is not full height:\n%s", chart)
	}
	if strings.Contains(chart, "<script") || strings.Contains(body, "<script>") && !strings.Contains(body, "<script src=") {
		t.Error("the chart needs a script")
	}
}

func TestTheRunsListFilters(t *testing.T) {
	s := MustShop(t)
	ok := s.MustRun("olga", "flush-varnish", "stale pages", nil)
	s.MustFinish(ok.ID, s.web1, aramaki.RunSucceeded, time.Second, "")
	s.MustFinish(ok.ID, s.web2, aramaki.RunSucceeded, time.Second, "")
	waiting := s.MustRun("olga", "restart-app", "leaks memory", nil)
	otto := s.MustLogin("otto")

	body := s.MustGet(otto, "/runs")
	mustContain(t, "the runs list", body, "2 runs, newest first", `href="/runs/`+ok.ID+`">flush-varnish on webshop-app</a>`,
		`href="/runs/`+waiting.ID+`">restart-app on webshop-app</a>`, "stale pages", "leaks memory", "· 2 hosts")
	if strings.Index(body, "/runs/"+waiting.ID) > strings.Index(body, "/runs/"+ok.ID) {
		t.Error("the runs list is not newest first")
	}
	body = s.MustGet(otto, "/runs?state=awaiting_approval")
	mustContain(t, "awaiting runs", body, "leaks memory", `<option value="awaiting_approval" selected>`)
	mustNotContain(t, "awaiting runs", body, "stale pages")
	body = s.MustGet(otto, "/runs?system=webshop&action=flush-varnish&since=1h")
	mustContain(t, "flushes under the shop", body, "stale pages", `<option selected>flush-varnish</option>`)
	mustNotContain(t, "flushes under the shop", body, "leaks memory")
	body = s.MustGet(otto, "/runs?system=blog")
	mustContain(t, "runs on the blog", body, "No runs match.")
	if status, _, _ := s.Get(otto, "/runs?state=bored"); status != http.StatusBadRequest {
		t.Errorf("an unknown state: %d", status)
	}
	if status, _, _ := s.Get(s.Client(), "/runs"); status != http.StatusSeeOther {
		t.Errorf("anonymous: %d", status)
	}
}
