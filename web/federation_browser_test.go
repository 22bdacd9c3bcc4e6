package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/web"
)

// browserLogin logs a user in through the login form, in a phone's window.
func browserLogin(t *testing.T, ctx context.Context, e *env, user string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
		chromedp.Navigate(e.srv.URL+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=user]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=user]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), e.pw[user]),
		chromedp.Click(chromedp.CSS(`form.stack button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"]`)),
	)
	if err != nil {
		t.Fatalf("log in as %s: %v", user, err)
	}
}

func mainText(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// On a phone, an admin grants a peer the use of a system through the form
// and sees it listed; a user whose role went away meanwhile is told
// plainly that the service refused, and nothing is granted.
func TestBrowserFederationGrantOnAPhone(t *testing.T) {
	e := MustEnvOptions(t, fixtureFiles, web.Options{PublicURL: "http://hoster.example:8080", ServerName: "hoster"})
	e.MustPeer("shop", "")
	ctx := MustBrowser(t)
	browserLogin(t, ctx, e, "admin")

	err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`header a[href="/peers"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#peer-shop`)),
	)
	if err != nil {
		t.Fatalf("open the federation page from the navigation: %v", err)
	}
	noOverflow(t, ctx, "the federation page at 375 px")
	screenshot(t, ctx, "federation-phone")

	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`details.grant-form summary`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/grants"] select[name=system]`)),
		chromedp.SetValue(chromedp.CSS(`form[action="/grants"] select[name=system]`), "webshop-db"),
		chromedp.SetValue(chromedp.CSS(`form[action="/grants"] select[name=duration]`), "7 days"),
		chromedp.Click(chromedp.CSS(`form[action="/grants"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#peer-shop li.grant`)),
	)
	if err != nil {
		t.Fatalf("grant through the form: %v", err)
	}
	gs := e.Grants("shop")
	if len(gs) != 1 || gs[0].Systems[0] != "webshop-db" || gs[0].CreatedBy != "admin" {
		t.Fatalf("grants after the form: %+v", gs)
	}
	listed, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#grant-`+gs[0].ID)))
	if err != nil {
		t.Fatalf("the new grant is not listed: %v", err)
	}
	for _, want := range []string{"webshop-db", "in force", "allows events, status", "granted by admin"} {
		if !strings.Contains(listed, want) {
			t.Errorf("the listed grant lacks %q: %s", want, listed)
		}
	}
	noOverflow(t, ctx, "the federation page with a grant at 375 px")

	// An invitation's token fits the phone and its copy button works under
	// the CSP.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`details#invite summary`)),
		chromedp.SendKeys(chromedp.CSS(`form[action="/peers/invitations"] input[name=name]`), "partner"),
		chromedp.Click(chromedp.CSS(`form[action="/peers/invitations"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`textarea#invitation-token`)),
		chromedp.Click(chromedp.CSS(`button[data-copy]`)),
	)
	if err != nil {
		t.Fatalf("make an invitation: %v", err)
	}
	noOverflow(t, ctx, "the invitation at 375 px")
	screenshot(t, ctx, "federation-invitation-phone")
	token, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`textarea#invitation-token`)))
	if err != nil {
		t.Fatal(err)
	}
	var button string
	if !strings.HasPrefix(token, "arpeer1.") {
		t.Errorf("the token box holds %q", token)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if button, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`button[data-copy]`))); err != nil {
			t.Fatal(err)
		}
		if button != "Copy token" || time.Now().After(deadline) {
			break
		}
	}
	if button != "Copied" && button != "Selected: copy it" {
		t.Errorf("the copy button did nothing: %q", button)
	}

	// vera administers the shop's app: she is offered the form. By the time
	// she sends it, her role is gone, and the service refuses.
	if _, err := e.svc.GrantRole(context.Background(), e.admin, "vera", "webshop-app", aramaki.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/peers"),
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=password]`)),
	)
	if err != nil {
		t.Fatalf("log out: %v", err)
	}
	browserLogin(t, ctx, e, "vera")
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/peers"),
		chromedp.Click(chromedp.CSS(`details.grant-form summary`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/grants"] input[name=peer]`)),
		chromedp.SendKeys(chromedp.CSS(`form[action="/grants"] input[name=peer]`), "shop"),
		chromedp.SetValue(chromedp.CSS(`form[action="/grants"] select[name=system]`), "webshop-app"),
	)
	if err != nil {
		t.Fatalf("fill the grant form as vera: %v", err)
	}
	if err := e.svc.RevokeRole(context.Background(), e.admin, "vera", "webshop-app"); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`form[action="/grants"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.error[role=alert]`)),
	)
	if err != nil {
		t.Fatalf("send the grant form as vera: %v", err)
	}
	refusal, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.error[role=alert]`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Not granted:", "this needs the admin role on system webshop-app", "Nothing was changed."} {
		if !strings.Contains(refusal, want) {
			t.Errorf("the refusal lacks %q: %s", want, refusal)
		}
	}
	noOverflow(t, ctx, "the refusal at 375 px")
	screenshot(t, ctx, "federation-refused-phone")
	if gs := e.Grants(""); len(gs) != 1 || gs[0].Systems[0] != "webshop-db" {
		t.Fatalf("grants after vera's refused form: %+v", gs)
	}
	// She no longer administers anything: no form is offered.
	if page := mainText(t, ctx); !strings.Contains(page, "You administer no system") {
		t.Errorf("vera is still offered the grant form:\n%s", page)
	}
}
