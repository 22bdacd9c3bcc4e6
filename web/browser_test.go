package web_test

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

const chromiumPath = "/usr/bin/chromium"

// MustBrowser starts Debian's chromium headless with a fresh profile. It
// skips the test when chromium is missing, except on CI (CI=true), where
// scripts/test.sh installs it.
func MustBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing; scripts/test.sh installs Debian's chromium", chromiumPath)
		}
		t.Skipf("%s is missing: apt-get install chromium (scripts/test.sh does) to run the browser tests", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshot saves a full-page screenshot into $ARAMAKI_ARTIFACTS, if set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("ARAMAKI_ARTIFACTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// noOverflow fails when the page scrolls sideways.
func noOverflow(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	sizes, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, document.documentElement.clientWidth]`))
	if err != nil {
		t.Fatal(err)
	}
	if sizes[0] > sizes[1] {
		t.Errorf("%s: horizontal overflow: scrollWidth %d > clientWidth %d", where, sizes[0], sizes[1])
	}
}

func TestBrowserLoginHomeLogout(t *testing.T) {
	e := MustEnv(t)
	ctx := MustBrowser(t)

	err := chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/systems/webshop"),
		// Hidden from anonymous: the login page, coming back afterwards.
		chromedp.WaitVisible(chromedp.CSS(`input[name=user]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=user]`), "vera"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), e.pw["vera"]),
		chromedp.Click(chromedp.CSS(`form.stack button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`h1 .status`)),
		chromedp.Click(chromedp.CSS(`header .brand`)),
		chromedp.WaitVisible(chromedp.CSS(`ul.systems`)),
	)
	if err != nil {
		t.Fatalf("log in and open home: %v", err)
	}
	home, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Webshop", "Blog", "Webshop app", "Webshop database", "OK"} {
		if !strings.Contains(strings.ToUpper(home), strings.ToUpper(want)) {
			t.Errorf("home lacks %q:\n%s", want, home)
		}
	}
	if strings.Contains(home, "Hosting infrastructure") {
		t.Errorf("vera sees infrastructure:\n%s", home)
	}
	if scripts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`typeof htmx === "object" ? 1 : 0`)); err != nil || scripts != 1 {
		t.Errorf("htmx not loaded under the CSP: %v %d", err, scripts)
	}
	screenshot(t, ctx, "home-desktop")

	for _, path := range []string{"/", "/systems/webshop", "/systems/hostile", "/timeline", "/runs", "/agents", "/review"} {
		err := chromedp.Do(ctx,
			chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
			chromedp.Navigate(e.srv.URL+path),
			chromedp.WaitVisible(chromedp.CSS(`main`)),
		)
		if err != nil {
			t.Fatalf("open %s at 375 px: %v", path, err)
		}
		noOverflow(t, ctx, path+" at 375 px")
		if path == "/" {
			screenshot(t, ctx, "home-phone")
		}
		if path == "/systems/webshop" {
			screenshot(t, ctx, "system-phone")
		}
		if path == "/timeline" {
			screenshot(t, ctx, "timeline-phone")
		}
	}

	// Posting a note from a phone (vera may operate the shop's database).
	if _, err := e.svc.GrantRole(context.Background(), e.admin, "vera", "webshop-db", aramaki.RoleOperator); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/systems/webshop-db"),
		chromedp.WaitVisible(chromedp.CSS(`textarea[name=text]`)),
		chromedp.SendKeys(chromedp.CSS(`textarea[name=text]`), "Vacuumed the shop database at 3am"),
		chromedp.Click(chromedp.CSS(`form[action$="/notes"] button`)),
	)
	if err != nil {
		t.Fatalf("post a note: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
		if strings.Contains(page, "Vacuumed the shop database at 3am") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the posted note is not on the system page:\n%s", page)
		}
	}

	// The timeline is live: an event shows up without reloading.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/timeline"), chromedp.WaitVisible(chromedp.CSS(`ol.events`))); err != nil {
		t.Fatalf("open the timeline: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // the stream connects
	if _, err := e.svc.PostNote(context.Background(), e.admin, "webshop-db", "Live from the <b>database</b>"); err != nil {
		t.Fatal(err)
	}
	waitForText := func(text, what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			arrived, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("ol.events").innerText.includes(`+strconv.Quote(text)+`)`))
			if err != nil {
				t.Fatal(err)
			}
			if arrived {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not arrive on the open timeline", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitForText("Live from the <b>database</b>", "a new note")

	// A check breaking on a host shows up the same way.
	ictx, stopIngest := context.WithCancel(context.Background())
	defer stopIngest()
	go e.svc.RunIngest(ictx)
	tok, err := e.svc.CreateEnrollmentToken(ictx, e.admin, []string{"webshop-app"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	agent, err := e.svc.Enroll(ictx, tok.ID, tok.Secret, pub, "web1", "1")
	if err != nil {
		t.Fatal(err)
	}
	done, err := e.svc.SubmitResults(ictx, service.NewStream(), agent, []aramaki.CheckResult{
		{Seq: 1, System: "webshop-app", Check: "http", Status: aramaki.StatusCritical, Output: "HTTP CRITICAL - 503", Started: time.Now()},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Err != nil {
		t.Fatal(r.Err)
	}
	waitForText("webshop-app/http is CRITICAL on web1", "a status change")
	if bold, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector("ol.events b")`)); bold {
		t.Error("markup in a live event was rendered, not escaped")
	}

	// Its history page fits a phone too.
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/systems/webshop-app/checks/http"),
		chromedp.WaitVisible(chromedp.CSS(`table.stats`)),
	)
	if err != nil {
		t.Fatalf("open the check page: %v", err)
	}
	noOverflow(t, ctx, "the check page at 375 px")
	screenshot(t, ctx, "check-phone")

	err = chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/"),
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=password]`)),
		chromedp.Navigate(e.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`main`)),
	)
	if err != nil {
		t.Fatalf("log out: %v", err)
	}
	home, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	loginVisible, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector('a[href="/login"]')`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(home, "Webshop") || !loginVisible {
		t.Errorf("after logout home still shows private systems or no login link:\n%s", home)
	}
}

func TestBrowserAlertsOnAPhone(t *testing.T) {
	e := MustEnvWith(t, alertFiles())
	m := MustMonitor(e)
	web := m.MustReport("webshop-app", "http", aramaki.StatusCritical,
		"HTTP CRITICAL - 503 Service Unavailable from https://shop.example.com/a/very/long/url/without/any/break/points/that/must/not/scroll/sideways\n<html><body>"+xss+"</body></html>")
	disk := m.MustReport("webshop-db", "disk", aramaki.StatusWarning, "DISK WARNING - 85% used on /var/lib/postgresql")
	if _, err := e.svc.CreateSilence(context.Background(), e.admin, service.SilenceRequest{
		System: "webshop", Duration: 2 * time.Hour, Reason: "Upgrading PostgreSQL", Maintenance: true,
	}); err != nil {
		t.Fatal(err)
	}
	ctx := MustBrowser(t)

	// Notifications link to the queue; on a phone, logging in on the way.
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
		chromedp.Navigate(e.srv.URL+"/alerts?group="+web.Group),
		chromedp.WaitVisible(chromedp.CSS(`input[name=user]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=user]`), "admin"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), e.pw["admin"]),
		chromedp.Click(chromedp.CSS(`form.stack button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`ul.alerts`)),
	)
	if err != nil {
		t.Fatalf("log in to the queue: %v", err)
	}
	noOverflow(t, ctx, "/alerts at 375 px")
	screenshot(t, ctx, "alerts-phone")
	queue, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"webshop-app · http", "webshop-db · disk", "Acknowledge selected", "HTTP CRITICAL - 503"} {
		if !strings.Contains(queue, want) {
			t.Errorf("the queue lacks %q:\n%s", want, queue)
		}
	}
	if scripts, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script").length`)); scripts != 0 {
		t.Error("output from the host became a script on the queue")
	}

	// Open the alert and acknowledge it with a tap.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a.title[href="/alerts/`+web.ID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`pre.output`)),
	)
	if err != nil {
		t.Fatalf("open the alert: %v", err)
	}
	noOverflow(t, ctx, "/alerts/ID at 375 px")
	screenshot(t, ctx, "alert-phone")
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`form[action$="/acknowledge"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`h1 ~ p .state-acknowledged`)),
	)
	if err != nil {
		t.Fatalf("acknowledge the alert: %v", err)
	}
	page, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, "by admin") || !strings.Contains(page, "acknowledged") {
		t.Errorf("the alert page does not say who acknowledged it:\n%s", page)
	}

	// Back in the queue, the other one by ticking it.
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/alerts"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=ids][value="`+disk.ID+`"]`)),
		chromedp.Click(chromedp.CSS(`input[name=ids][value="`+disk.ID+`"]`)),
		chromedp.SendKeys(chromedp.CSS(`.bulk input[name=text]`), "Vacuum running"),
		chromedp.Click(chromedp.CSS(`.bulk button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`input[name=ids]`)),
	)
	if err != nil {
		t.Fatalf("acknowledge the selected alerts: %v", err)
	}
	v, err := e.svc.Alert(context.Background(), e.admin, disk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.State != aramaki.AlertAcknowledged || len(v.Notes) != 1 || v.Notes[0].Text != "Vacuum running" {
		t.Errorf("the ticked alert: %+v %+v", v.Alert, v.Notes)
	}

	// The system page with its alerts, silence and silence form open.
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/systems/webshop"),
		chromedp.WaitVisible(chromedp.CSS(`ul.silences`)),
		chromedp.Click(chromedp.CSS(`details.silence summary`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=reason]`)),
	)
	if err != nil {
		t.Fatalf("open the silence form: %v", err)
	}
	noOverflow(t, ctx, "/systems/webshop with silences at 375 px")
	screenshot(t, ctx, "system-silences-phone")
}

func TestBrowserRunningAnActionOnAPhone(t *testing.T) {
	s := MustShop(t)
	before := s.MustRun("otto", "flush-varnish", "yesterday's flush", nil)
	s.MustFinish(before.ID, s.web1, aramaki.RunSucceeded, 3*time.Second, "")
	s.MustFinish(before.ID, s.web2, aramaki.RunFailed, 5*time.Second, "")
	ctx := MustBrowser(t)

	// The system page with its actions, the run form open.
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
		chromedp.Navigate(s.srv.URL+"/systems/webshop-app"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=user]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=user]`), "olga"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), s.pw["olga"]),
		chromedp.Click(chromedp.CSS(`form.stack button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#actions svg.durations`)),
	)
	if err != nil {
		t.Fatalf("log in to the system page: %v", err)
	}
	noOverflow(t, ctx, "/systems/webshop-app with actions at 375 px")
	form := `#action-flush-varnish form`
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#action-flush-varnish summary`)),
		chromedp.WaitVisible(chromedp.CSS(form+` textarea[name=reason]`)),
	)
	if err != nil {
		t.Fatalf("open the run form: %v", err)
	}
	noOverflow(t, ctx, "the run form at 375 px")
	screenshot(t, ctx, "actions-phone")

	// Every pattern on the page compiles as the browser compiles it, and
	// holds back what the server would refuse.
	valid, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`Array.from(document.querySelectorAll("input[pattern]")).every(function (i) {
		try { new RegExp(i.pattern, "v"); return true; } catch (e) { return false; } })`))
	if err != nil || !valid {
		t.Errorf("a pattern attribute does not compile in the browser: %v", err)
	}
	for _, c := range patternCases {
		if c.js == "" {
			continue
		}
		js := `(function () { var re = new RegExp("^(?:" + ` + strconv.Quote(c.js) + ` + ")$", "v"); return [` +
			jsStrings(c.match) + `].every(function (v) { return re.test(v); }) && ![` + jsStrings(c.nomatch) + `].some(function (v) { return re.test(v); }); })()`
		if same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil || !same {
			t.Errorf("pattern %s as %s: the browser disagrees with the server: %v", c.pattern, c.js, err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(form+` input[name="p.pattern"]`), "/img/ && rm")); err != nil {
		t.Fatal(err)
	}
	mismatch, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#action-flush-varnish input[name="p.pattern"]').validity.patternMismatch`))
	if err != nil || !mismatch {
		t.Errorf("the browser lets a value through its pattern: %v", err)
	}

	// Run it by filling the form.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(form+` textarea[name=reason]`), "product pages are stale"),
		chromedp.SetValue(chromedp.CSS(form+` input[name="p.pattern"]`), "^/products/"),
		chromedp.SetValue(chromedp.CSS(form+` select[name="p.scope"]`), "all"),
		chromedp.Click(chromedp.CSS(form+` input[name=confirm]`)),
		chromedp.Click(chromedp.CSS(form+` button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#run h1 .run-running`)),
	)
	if err != nil {
		t.Fatalf("run the action: %v", err)
	}
	runs, err := s.svc.Runs(s.ctx, s.admin, service.RunQuery{})
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs: %v %+v", err, runs)
	}
	run := runs[0]
	if run.Reason != "product pages are stale" || run.Params["pattern"] != "^/products/" || run.Params["scope"] != "all" || run.RequestedBy != "olga" {
		t.Fatalf("the run from the form: %+v", run)
	}
	noOverflow(t, ctx, "the run page at 375 px")

	// Output arrives on the open page without reloading it, escaped.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.stillThisPage = true`)); err != nil {
		t.Fatal(err)
	}
	if err := s.svc.DispatchRuns(s.ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.svc.RunOutput(s.ctx, s.web1, run.ID, 1, "ban req.url ~ ^/products/\n<script>document.title='owned'</script>\n"+
		"purged 12 objects from https://shop.example.com/a/very/long/url/without/any/break/points/that/must/not/scroll/sideways\n"); err != nil {
		t.Fatal(err)
	}
	waitFor := func(js, what string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
				t.Fatalf("%s did not happen on the open run page:\n%s", what, page)
			}
		}
	}
	waitFor(`document.querySelector("#run pre.output") !== null && document.querySelector("#run pre.output").innerText.includes("purged 12 objects")`, "the output arriving")
	if ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.stillThisPage === true && document.querySelectorAll("main script").length === 0 && document.title !== "owned" && document.querySelector("#run pre.output").innerText.includes("<script>")`)); !ok {
		t.Error("the page reloaded, or output from a host became markup")
	}
	noOverflow(t, ctx, "the run page with long output at 375 px")

	// The hosts finish: the page says so, and stops asking.
	s.MustFinish(run.ID, s.web1, aramaki.RunSucceeded, 2*time.Second, "")
	s.MustFinish(run.ID, s.web2, aramaki.RunSucceeded, 3*time.Second, "done\n")
	waitFor(`!!document.querySelector("#run h1 .run-succeeded") && !document.querySelector("#run[hx-trigger]") && window.stillThisPage === true`, "the run ending")
	noOverflow(t, ctx, "the finished run page at 375 px")
	screenshot(t, ctx, "run-phone")
}

// jsStrings writes strings as JavaScript array elements.
func jsStrings(ss []string) string {
	var quoted []string
	for _, s := range ss {
		quoted = append(quoted, strconv.QuoteToASCII(s))
	}
	return strings.Join(quoted, ", ")
}

func TestBrowserAWorkflowOnAPhone(t *testing.T) {
	s := MustWorkflowShop(t)
	s.hub.mu.Lock()
	s.hub.agents = []string{s.web1.ID} // web2 is away for the dry run
	s.hub.mu.Unlock()
	ctx := MustBrowser(t)

	// The system page with its workflows, the form open.
	card := `#workflow-rolling-restart`
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
		chromedp.Navigate(s.srv.URL+"/systems/webshop"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=user]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=user]`), "olga"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), s.pw["olga"]),
		chromedp.Click(chromedp.CSS(`form.stack button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(card+` ol.workflow-steps`)),
		chromedp.Click(chromedp.CSS(card+` summary`)),
		chromedp.WaitVisible(chromedp.CSS(card+` input[name="i.pattern"]`)),
	)
	if err != nil {
		t.Fatalf("open the workflow's form: %v", err)
	}
	noOverflow(t, ctx, "/systems/webshop with workflows at 375 px")
	screenshot(t, ctx, "workflows-phone")

	// What would it do? Without a reason or the rule read.
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(card+` input[name="i.pattern"]`), "^/products/"),
		chromedp.Click(chromedp.CSS(card+` button[formaction$="/plan"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#plan ol.plan`)),
	)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	plan, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#plan`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1. restart", "1 at a time, of 2 hosts", "not connected now", "2. flush", "pattern=^/products/"} {
		if !strings.Contains(strings.ToLower(plan), strings.ToLower(want)) {
			t.Errorf("the dry run lacks %q:\n%s", want, plan)
		}
	}
	noOverflow(t, ctx, "the dry run at 375 px")
	screenshot(t, ctx, "workflow-plan-phone")
	if runs := s.workflowRuns(); len(runs) != 0 {
		t.Fatalf("the dry run ran: %+v", runs)
	}

	// Ask to run it from the dry run's page.
	s.hub.mu.Lock()
	s.hub.agents = []string{s.web1.ID, s.web2.ID}
	s.hub.mu.Unlock()
	form := `form.workflow-form`
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(form+` textarea[name=reason]`), "the shop leaks memory, see https://shop.example.com/a/very/long/url/without/any/break/points/that/must/not/scroll/sideways"),
		chromedp.Click(chromedp.CSS(form+` input[name=confirm]`)),
		chromedp.Click(chromedp.CSS(form+` button:not([formaction])`)),
		chromedp.WaitVisible(chromedp.CSS(`#workflow-run h1 .run-awaiting_approval`)),
	)
	if err != nil {
		t.Fatalf("ask to run the workflow: %v", err)
	}
	runs := s.workflowRuns()
	if len(runs) != 1 || runs[0].Inputs["pattern"] != "^/products/" || runs[0].RequestedBy != "olga" {
		t.Fatalf("the workflow run from the form: %+v", runs)
	}
	w := runs[0]
	noOverflow(t, ctx, "the workflow run page at 375 px")

	// Approved and under way: the open page follows, without reloading.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.stillThisPage = true`)); err != nil {
		t.Fatal(err)
	}
	waitFor := func(js, what string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
				t.Fatalf("%s did not happen on the open workflow run page:\n%s", what, page)
			}
		}
	}
	if _, err := s.svc.ApproveWorkflowRun(s.ctx, s.Principal("otto"), w.ID); err != nil {
		t.Fatal(err)
	}
	s.MustAdvance()
	web1 := hostRun(t, s.MustWorkflowRun(w.ID), 0, "web1")
	waitFor(`!!document.querySelector('#step-restart a[href="/runs/`+web1+`"]') && !!document.querySelector("#workflow-run h1 .run-running") && window.stillThisPage === true`, "the first host starting")
	s.MustFinish(web1, s.web1, aramaki.RunSucceeded, 2*time.Second, "restarted <script>document.title='owned'</script> version=2.4.1\n")
	s.MustAdvance()
	web2 := hostRun(t, s.MustWorkflowRun(w.ID), 0, "web2")
	waitFor(`!!document.querySelector('#step-restart a[href="/runs/`+web2+`"]') && !!document.querySelector('#step-restart a[href="/runs/`+web1+`"] + .run-succeeded')`, "the second host starting")
	noOverflow(t, ctx, "the running workflow at 375 px")
	screenshot(t, ctx, "workflow-run-phone")

	// A host's link leads to its run; back, the rest of the run.
	s.MustFinish(web2, s.web2, aramaki.RunSucceeded, 2*time.Second, "restarted\n")
	s.MustAdvance()
	w = s.MustWorkflowRun(w.ID)
	for _, h := range w.Steps[1].Hosts {
		a := s.web1
		if h.Name == "web2" {
			a = s.web2
		}
		s.MustFinish(hostRun(t, w, 1, h.Name), a, aramaki.RunSucceeded, time.Second, "")
	}
	s.MustAdvance()
	waitFor(`!!document.querySelector("#workflow-run h1 .run-succeeded") && !document.querySelector("#workflow-run[hx-trigger]") && window.stillThisPage === true`, "the workflow run ending")
	if ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelectorAll("main script").length === 0 && document.title !== "owned" && document.querySelector("#step-restart").innerText.includes("version=2.4.1")`)); !ok {
		t.Error("the step's output is missing, or what a host printed became markup")
	}
	noOverflow(t, ctx, "the finished workflow run at 375 px")
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#step-restart a[href="/runs/`+web1+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#run h1 .run-succeeded`)),
	)
	if err != nil {
		t.Fatalf("open a host's run: %v", err)
	}
	if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#run`))); !strings.Contains(text, "workflow run "+w.ID) {
		t.Errorf("the host's run does not say which workflow run it is part of:\n%s", text)
	}
	for _, path := range []string{"/workflow-runs", "/workflow-runs/" + w.ID} {
		if err := chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+path), chromedp.WaitVisible(chromedp.CSS(`main`))); err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		noOverflow(t, ctx, path+" at 375 px")
	}
}
