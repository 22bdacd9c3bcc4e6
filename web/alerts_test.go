package web_test

import (
	"context"
	"crypto/ed25519"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// alertFiles is the fixture with a second check, on the shop's database.
func alertFiles() map[string]string {
	files := maps.Clone(fixtureFiles)
	files["systems/webshop-db.yaml"] = "id: webshop-db\ntitle: Webshop database\nsubsystems: [storage]\nchecks:\n  - {name: disk, command: check_disk -w 80% -c 90%}\n"
	return files
}

// monitor is one agent on the shop's app and database that reports check
// results and runs the alert engine after each, as the server would.
type monitor struct {
	e     *env
	ctx   context.Context
	agent aramaki.Agent
	seq   uint64
}

// MustMonitor enrolls the agent and starts ingesting its results.
func MustMonitor(e *env) *monitor {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	go e.svc.RunIngest(ctx)
	tok, err := e.svc.CreateEnrollmentToken(ctx, e.admin, []string{"webshop-app", "webshop-db"}, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	a, err := e.svc.Enroll(ctx, tok.ID, tok.Secret, pub, "shop1", "1")
	if err != nil {
		e.t.Fatal(err)
	}
	return &monitor{e: e, ctx: ctx, agent: a}
}

// MustReport submits a result and runs one round of alerting; it returns
// the alert open on the check afterwards.
func (m *monitor) MustReport(system, check string, status aramaki.Status, output string) aramaki.Alert {
	m.e.t.Helper()
	m.seq++
	done, err := m.e.svc.SubmitResults(m.ctx, service.NewStream(), m.agent, []aramaki.CheckResult{
		{Seq: m.seq, System: system, Check: check, Status: status, Output: output, Started: time.Now()},
	}, nil)
	if err != nil {
		m.e.t.Fatal(err)
	}
	if r := <-done; r.Err != nil {
		m.e.t.Fatal(r.Err)
	}
	if err := m.e.svc.AlertRound(m.ctx, nil); err != nil {
		m.e.t.Fatal(err)
	}
	alerts, err := m.e.svc.Alerts(m.ctx, m.e.admin, service.AlertQuery{System: system})
	if err != nil {
		m.e.t.Fatal(err)
	}
	for _, a := range alerts {
		if a.Check == check && a.Active() {
			return a
		}
	}
	if status != aramaki.StatusOK {
		m.e.t.Fatalf("no alert open on %s/%s after a %s result: %+v", system, check, status, alerts)
	}
	return aramaki.Alert{}
}

// MustGet fetches a page that must be there.
func (e *env) MustGet(c *http.Client, path string) string {
	e.t.Helper()
	status, body, _ := e.Get(c, path)
	if status != http.StatusOK {
		e.t.Fatalf("GET %s: status %d\n%s", path, status, body)
	}
	return body
}

func mustContain(t *testing.T, where, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q:\n%s", where, w, body)
		}
	}
}

func mustNotContain(t *testing.T, where, body string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(body, w) {
			t.Errorf("%s has %q", where, w)
		}
	}
}

func TestTheAlertQueueListsAlertsAndFilters(t *testing.T) {
	e := MustEnvWith(t, alertFiles())
	m := MustMonitor(e)
	web := m.MustReport("webshop-app", "http", aramaki.StatusCritical, "HTTP CRITICAL - 503 Service Unavailable\nbody: maintenance")
	disk := m.MustReport("webshop-db", "disk", aramaki.StatusWarning, "DISK WARNING - 85% used on /var/lib/postgresql")
	admin := e.MustLogin("admin")

	body := e.MustGet(admin, "/alerts")
	mustContain(t, "the queue", body,
		`<a href="/alerts">Alerts</a>`, // in the header
		`href="/alerts/`+web.ID+`"`, "webshop-app · http", "HTTP CRITICAL - 503 Service Unavailable", "status-critical",
		`href="/alerts/`+disk.ID+`"`, "webshop-db · disk", "DISK WARNING - 85% used", "status-warning",
		`name="ids" value="`+web.ID+`"`, "Acknowledge selected", "2 alerts, newest first")
	mustNotContain(t, "the queue", body, "body: maintenance") // only the first line
	if strings.Index(body, `href="/alerts/`+disk.ID+`"`) > strings.Index(body, `href="/alerts/`+web.ID+`"`) {
		t.Error("the queue is not newest first")
	}

	body = e.MustGet(admin, "/alerts?system=webshop-db")
	mustContain(t, "the queue of webshop-db", body, "webshop-db · disk", `<option value="webshop-db" selected>`)
	mustNotContain(t, "the queue of webshop-db", body, "webshop-app · http")
	body = e.MustGet(admin, "/alerts?system=webshop") // and everything under it
	mustContain(t, "the queue of webshop", body, "webshop-db · disk", "webshop-app · http")
	body = e.MustGet(admin, "/alerts?category=infrastructure")
	mustNotContain(t, "the queue of infrastructure", body, "webshop-db · disk", "webshop-app · http")

	body = e.MustGet(admin, "/alerts?state=resolved")
	mustContain(t, "resolved alerts", body, "No resolved alerts", `href="/alerts?state=any"`)
	mustNotContain(t, "resolved alerts", body, "webshop-app · http")
	body = e.MustGet(admin, "/alerts?older_than=1h")
	mustNotContain(t, "alerts older than an hour", body, "webshop-app · http", "webshop-db · disk")

	// Once the check recovers, the alert leaves the default queue.
	m.MustReport("webshop-db", "disk", aramaki.StatusOK, "DISK OK")
	body = e.MustGet(admin, "/alerts")
	mustNotContain(t, "the queue after the disk recovered", body, "webshop-db · disk")
	body = e.MustGet(admin, "/alerts?state=any")
	mustContain(t, "alerts in any state", body, "webshop-db · disk", "resolved", "webshop-app · http")
	mustNotContain(t, "alerts in any state", body, `name="ids" value="`+disk.ID+`"`) // resolved: nothing to acknowledge

	// Notifications link to one group: the two broke together.
	body = e.MustGet(admin, "/alerts?state=any&group="+url.QueryEscape(web.Group))
	mustContain(t, "their group", body, "webshop-app · http", "webshop-db · disk", `name="group" value="`+web.Group+`"`, "Only the alerts of group")
	body = e.MustGet(admin, "/alerts?state=any&group=999")
	mustContain(t, "another group", body, "Only the alerts of group")
	mustNotContain(t, "another group", body, "webshop-app · http", "webshop-db · disk")

	if status, _, _ := e.Get(admin, "/alerts?group=another"); status != http.StatusBadRequest {
		t.Errorf("a group that is no number: status %d, want 400", status)
	}
	if status, _, _ := e.Get(admin, "/alerts?state=sleeping"); status != http.StatusBadRequest {
		t.Errorf("an unknown state: status %d, want 400", status)
	}
	if status, _, resp := e.Get(e.Client(), "/alerts"); status != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("anonymous queue: status %d, want a way to log in", status)
	}
	if status, _, resp := e.Get(e.Client(), "/alerts/"+web.ID); status != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("anonymous alert page: status %d, want a way to log in", status)
	}
}

func TestAnOperatorWorksAnAlertFromItsPage(t *testing.T) {
	e := MustEnvWith(t, alertFiles())
	m := MustMonitor(e)
	alert := m.MustReport("webshop-app", "http", aramaki.StatusCritical, "HTTP CRITICAL - 503")
	admin := e.MustLogin("admin")
	path := "/alerts/" + alert.ID

	body := e.MustGet(admin, path)
	mustContain(t, "the alert page", body,
		`href="/systems/webshop-app"`, `href="/systems/webshop-app/checks/http"`, "HTTP CRITICAL - 503",
		`<span class="state state-open">open</span>`, "not yet", "level 0",
		`action="`+path+`/acknowledge"`, `action="`+path+`/assign"`, `action="`+path+`/comment"`,
		`action="`+path+`/escalate"`, `action="`+path+`/resolve"`, "Nobody has done anything",
		"Who was told", "the group waits a moment") // nobody routed yet
	csrf := CSRF(t, body)

	post := func(action string, form url.Values, want int) string {
		t.Helper()
		form.Set("csrf", csrf)
		status, body, resp := e.Post(admin, path+"/"+action, form)
		if status != want {
			t.Fatalf("%s: status %d, want %d\n%s", action, status, want, body)
		}
		if want == http.StatusSeeOther && resp.Header.Get("Location") != path {
			t.Fatalf("%s: redirected to %q, want the alert page", action, resp.Header.Get("Location"))
		}
		return body
	}
	post("acknowledge", url.Values{}, http.StatusSeeOther)
	body = e.MustGet(admin, path)
	mustContain(t, "the acknowledged alert", body, "acknowledged", "by admin", "admin</span>")
	mustNotContain(t, "the acknowledged alert", body, `action="`+path+`/acknowledge"`)

	// Someone else was quicker, on a page loaded before: said, not hidden.
	body = post("acknowledge", url.Values{}, http.StatusConflict)
	mustContain(t, "acknowledging twice", body, `class="error" role="alert"`, "acknowledged already, by admin", "HTTP CRITICAL - 503")

	post("assign", url.Values{"user": {"vera"}}, http.StatusSeeOther)
	body = post("assign", url.Values{"user": {"Not A User!"}}, http.StatusBadRequest)
	mustContain(t, "assigning to nonsense", body, "assign to whom?")
	post("comment", url.Values{"text": {"Varnish is out of memory"}}, http.StatusSeeOther)
	body = post("comment", url.Values{"text": {"   "}}, http.StatusBadRequest)
	mustContain(t, "an empty comment", body, "a comment needs text")
	post("escalate", url.Values{}, http.StatusSeeOther)
	body = e.MustGet(admin, path)
	mustContain(t, "the worked alert", body, "<dd>vera</dd>", "level 1", "Varnish is out of memory", "commented", "escalated", "assigned it to")

	post("resolve", url.Values{}, http.StatusSeeOther)
	body = e.MustGet(admin, path)
	mustContain(t, "the resolved alert", body, `state-resolved`, "<dt>Resolved</dt>", `action="`+path+`/comment"`)
	mustNotContain(t, "the resolved alert", body, `action="`+path+`/resolve"`, `action="`+path+`/assign"`, `action="`+path+`/escalate"`)
	body = post("resolve", url.Values{}, http.StatusConflict)
	mustContain(t, "resolving twice", body, "resolved already")

	if status, _, _ := e.Get(admin, "/alerts/no-such-alert"); status != http.StatusNotFound {
		t.Errorf("an unknown alert: status %d, want 404", status)
	}
}

func TestAViewerSeesAlertsButNoFormsAndCannotChangeThem(t *testing.T) {
	e := MustEnvWith(t, alertFiles())
	m := MustMonitor(e)
	alert := m.MustReport("webshop-app", "http", aramaki.StatusCritical, "HTTP CRITICAL - 503")
	vera := e.MustLogin("vera")

	body := e.MustGet(vera, "/alerts")
	mustContain(t, "vera's queue", body, "webshop-app · http")
	mustNotContain(t, "vera's queue", body, `name="ids"`, "Acknowledge selected", `action="/alerts/acknowledge"`)
	body = e.MustGet(vera, "/alerts/"+alert.ID)
	mustContain(t, "vera's alert page", body, "HTTP CRITICAL - 503")
	mustNotContain(t, "vera's alert page", body, "/acknowledge", "/assign", "/comment", "/escalate", "/resolve")
	csrf := CSRF(t, body) // of the logout form: a valid token, no permission

	for _, action := range []string{"acknowledge", "escalate", "resolve"} {
		status, body, _ := e.Post(vera, "/alerts/"+alert.ID+"/"+action, url.Values{"csrf": {csrf}})
		if status != http.StatusForbidden || !strings.Contains(body, "operator role") {
			t.Errorf("vera's %s: status %d, want 403 saying why:\n%s", action, status, body)
		}
	}
	status, body, _ := e.Post(vera, "/alerts/acknowledge", url.Values{"csrf": {csrf}, "ids": {alert.ID}})
	if status != http.StatusForbidden || !strings.Contains(body, "Acknowledged 0 of 1 alerts") || !strings.Contains(body, "operator role") {
		t.Errorf("vera's bulk acknowledge: status %d, want 403 saying why:\n%s", status, body)
	}
	v, err := e.svc.Alert(context.Background(), e.admin, alert.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.State != aramaki.AlertOpen || v.Level != 0 || len(v.Notes) != 0 {
		t.Fatalf("a viewer changed the alert: %+v", v)
	}
}

func TestAcknowledgingSelectedAlertsAtOnce(t *testing.T) {
	e := MustEnvWith(t, alertFiles())
	m := MustMonitor(e)
	web := m.MustReport("webshop-app", "http", aramaki.StatusCritical, "HTTP CRITICAL - 503")
	disk := m.MustReport("webshop-db", "disk", aramaki.StatusCritical, "DISK CRITICAL - 95% used")
	admin := e.MustLogin("admin")
	body := e.MustGet(admin, "/alerts?system=webshop")
	mustContain(t, "the queue", body, `name="back" value="/alerts?system=webshop"`)
	csrf := CSRF(t, body)

	status, body, _ := e.Post(admin, "/alerts/acknowledge", url.Values{"csrf": {csrf}})
	if status != http.StatusBadRequest || !strings.Contains(body, "Select the alerts to acknowledge first") {
		t.Fatalf("acknowledging nothing: status %d\n%s", status, body)
	}
	status, _, resp := e.Post(admin, "/alerts/acknowledge", url.Values{
		"csrf": {csrf}, "ids": {web.ID, disk.ID}, "text": {"Storage migration, on it"}, "back": {"/alerts?system=webshop"},
	})
	if status != http.StatusSeeOther || resp.Header.Get("Location") != "/alerts?system=webshop" {
		t.Fatalf("bulk acknowledge: status %d, location %q, want back to the filtered queue", status, resp.Header.Get("Location"))
	}
	for _, a := range []aramaki.Alert{web, disk} {
		v, err := e.svc.Alert(context.Background(), e.admin, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if v.State != aramaki.AlertAcknowledged || v.AcknowledgedBy != "admin" || len(v.Notes) != 1 || v.Notes[0].Text != "Storage migration, on it" {
			t.Errorf("%s/%s after the bulk acknowledge: %+v %+v", a.System, a.Check, v.Alert, v.Notes)
		}
	}
	body = e.MustGet(admin, "/alerts")
	mustContain(t, "the queue", body, "acknowledged by admin")
	mustNotContain(t, "the queue", body, `name="ids"`) // nothing left to acknowledge

	// Acknowledged meanwhile by someone else: the queue says so.
	status, body, _ = e.Post(admin, "/alerts/acknowledge", url.Values{"csrf": {csrf}, "ids": {web.ID, disk.ID}, "back": {"https://evil.example/alerts"}})
	if status != http.StatusConflict {
		t.Fatalf("acknowledging twice: status %d, want 409", status)
	}
	mustContain(t, "acknowledging twice", body, "Acknowledged 0 of 2 alerts", "acknowledged already, by admin")
}

func TestSilencingASystemFromItsPage(t *testing.T) {
	e := MustEnvWith(t, alertFiles())
	m := MustMonitor(e)
	m.MustReport("webshop-app", "http", aramaki.StatusCritical, "HTTP CRITICAL - 503")
	admin := e.MustLogin("admin")

	body := e.MustGet(admin, "/systems/webshop")
	mustContain(t, "the webshop page", body, "<h2>Alerts</h2>", "webshop-app · http", "<summary>Silence…</summary>", `action="/systems/webshop/silences"`)
	csrf := CSRF(t, body)
	silence := func(form url.Values) (int, string) {
		t.Helper()
		form.Set("csrf", csrf)
		status, body, resp := e.Post(admin, "/systems/webshop/silences", form)
		if status == http.StatusSeeOther && resp.Header.Get("Location") != "/systems/webshop#silences" {
			t.Fatalf("silence: redirected to %q", resp.Header.Get("Location"))
		}
		return status, body
	}

	for _, bad := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"duration": {"2h"}, "reason": {" "}}, "a silence needs a reason"},
		{url.Values{"duration": {"forever"}, "reason": {"x"}}, "Choose how long"},
		{url.Values{"end": {"2001-01-01T10:00"}, "reason": {"x"}}, "is not after the start"},
		{url.Values{"end": {"tomorrow"}, "reason": {"x"}}, "is not a time like"},
		{url.Values{"start": {"soon"}, "duration": {"1h"}, "reason": {"x"}}, "The start &#34;soon&#34; is not a time like"},
	} {
		status, body := silence(bad.form)
		if status != http.StatusBadRequest || !strings.Contains(body, bad.want) {
			t.Errorf("silence %v: status %d, want 400 saying %q", bad.form, status, bad.want)
		}
	}

	if status, body := silence(url.Values{"duration": {"2h"}, "reason": {"Deploying the new checkout"}, "maintenance": {"1"}, "until_resolved": {"1"}}); status != http.StatusSeeOther {
		t.Fatalf("silence: status %d\n%s", status, body)
	}
	end := time.Now().Add(24 * time.Hour).UTC().Format("2006-01-02T15:04")
	if status, body := silence(url.Values{"duration": {"1h"}, "end": {end}, "reason": {"Until the vendor calls back"}}); status != http.StatusSeeOther {
		t.Fatalf("silence until a time: status %d\n%s", status, body)
	}
	// A maintenance window planned for tomorrow morning.
	start := time.Now().Add(36 * time.Hour).UTC().Format("2006-01-02T15:04")
	if status, body := silence(url.Values{"start": {start}, "duration": {"2h"}, "reason": {"Storage firmware update"}, "maintenance": {"1"}}); status != http.StatusSeeOther {
		t.Fatalf("a planned window: status %d\n%s", status, body)
	}
	body = e.MustGet(admin, "/systems/webshop")
	mustContain(t, "the planned window", body, "Storage firmware update", "from <time>"+strings.Replace(start, "T", " ", 1)+" UTC</time>", "Cancel")
	mustContain(t, "the silenced webshop", body, "Deploying the new checkout", `<span class="tag">maintenance</span>`, "by admin",
		"ends when its alerts resolve", "(in 2 h)", "Until the vendor calls back", strings.Replace(end, "T", " ", 1)+" UTC", "End now")
	// It covers the systems under it, and says where it is.
	body = e.MustGet(admin, "/systems/webshop-app")
	mustContain(t, "webshop-app", body, "Deploying the new checkout", `on <a href="/systems/webshop">webshop</a>, above this system`)

	// A viewer sees the silences, not the buttons.
	body = e.MustGet(e.MustLogin("vera"), "/systems/webshop")
	mustContain(t, "vera's webshop page", body, "Deploying the new checkout")
	mustNotContain(t, "vera's webshop page", body, "End now", "Silence…", `action="/systems/webshop/silences"`)

	silences, err := e.svc.SilencesOn(context.Background(), e.admin, "webshop")
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, sl := range silences {
		if sl.Reason == "Deploying the new checkout" {
			id = sl.ID
		}
		if sl.Reason == "Until the vendor calls back" && sl.End.Format("2006-01-02T15:04") != end {
			t.Errorf("the silence until a time ends at %s, want %s UTC", sl.End, end)
		}
	}
	status, _, resp := e.Post(admin, "/silences/"+id+"/end", url.Values{"csrf": {csrf}, "system": {"webshop"}})
	if status != http.StatusSeeOther || resp.Header.Get("Location") != "/systems/webshop#silences" {
		t.Fatalf("end the silence: status %d, location %q", status, resp.Header.Get("Location"))
	}
	body = silencesOn(e.MustGet(admin, "/systems/webshop"))
	mustNotContain(t, "the webshop's silences after one ended", body, "Deploying the new checkout")
	mustContain(t, "the webshop's silences after one ended", body, "Until the vendor calls back")
	status, body, _ = e.Post(admin, "/silences/"+id+"/end", url.Values{"csrf": {csrf}, "system": {"webshop"}})
	if status != http.StatusConflict || !strings.Contains(body, "is over already") {
		t.Errorf("ending it twice: status %d, want 409 saying so", status)
	}
}

// silencesOn is the silences section of a system page (the timeline
// below tells of silences too).
func silencesOn(page string) string {
	_, s, _ := strings.Cut(page, `<section id="silences">`)
	s, _, _ = strings.Cut(s, "</section>")
	return s
}

func TestAlertAndSilenceFormsNeedTheCSRFToken(t *testing.T) {
	e := MustEnvWith(t, alertFiles())
	m := MustMonitor(e)
	alert := m.MustReport("webshop-app", "http", aramaki.StatusCritical, "HTTP CRITICAL - 503")
	admin := e.MustLogin("admin")
	sl, err := e.svc.CreateSilence(context.Background(), e.admin, service.SilenceRequest{System: "webshop", Duration: time.Hour, Reason: "Deploying"})
	if err != nil {
		t.Fatal(err)
	}
	for path, form := range map[string]url.Values{
		"/alerts/" + alert.ID + "/acknowledge": {},
		"/alerts/" + alert.ID + "/resolve":     {},
		"/alerts/" + alert.ID + "/comment":     {"text": {"forged"}},
		"/alerts/acknowledge":                  {"ids": {alert.ID}},
		"/systems/webshop/silences":            {"duration": {"1h"}, "reason": {"forged"}},
		"/silences/" + sl.ID + "/end":          {"system": {"webshop"}},
	} {
		for _, bad := range []string{"", "00", strings.Repeat("0", 64)} {
			f := url.Values{"csrf": {bad}}
			for k, v := range form {
				f[k] = v
			}
			if status, _, _ := e.Post(admin, path, f); status != http.StatusForbidden {
				t.Errorf("%s with csrf %q: status %d, want 403", path, bad, status)
			}
		}
	}
	v, err := e.svc.Alert(context.Background(), e.admin, alert.ID)
	if err != nil {
		t.Fatal(err)
	}
	silences, err := e.svc.SilencesOn(context.Background(), e.admin, "webshop")
	if err != nil {
		t.Fatal(err)
	}
	if v.State != aramaki.AlertOpen || len(v.Notes) != 0 || len(silences) != 1 || silences[0].Ended != nil {
		t.Fatalf("a forged form changed something: %+v %+v", v, silences)
	}
}

func TestHostileOutputInAlertsIsEscaped(t *testing.T) {
	e := MustEnvWith(t, alertFiles())
	m := MustMonitor(e)
	alert := m.MustReport("webshop-app", "http", aramaki.StatusCritical, "CRITICAL - "+xss+"\n<img src=x onerror=alert(2)>")
	admin := e.MustLogin("admin")
	if _, err := e.svc.ChangeAlert(context.Background(), e.admin, alert.ID, service.AlertComment, "see "+xss); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/alerts", "/alerts/" + alert.ID, "/systems/webshop-app"} {
		body := e.MustGet(admin, path)
		mustNotContain(t, path, body, xss, "<img src=x")
		if path != "/systems/webshop-app" {
			mustContain(t, path, body, "CRITICAL - &lt;script&gt;alert(1)&lt;/script&gt;")
		}
	}
	mustContain(t, "the alert page", e.MustGet(admin, "/alerts/"+alert.ID), "&lt;img src=x onerror=alert(2)&gt;", "see &lt;script&gt;")
}
