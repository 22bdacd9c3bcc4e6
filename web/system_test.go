package web_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

func TestASystemPageDrawsEachChecksLastThirtyDays(t *testing.T) {
	e := MustEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.svc.RunIngest(ctx)
	tok, err := e.svc.CreateEnrollmentToken(ctx, e.admin, []string{"webshop-app"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	a, err := e.svc.Enroll(ctx, tok.ID, tok.Secret, pub, "web1", "1")
	if err != nil {
		t.Fatal(err)
	}
	done, err := e.svc.SubmitResults(ctx, service.NewStream(), a, []aramaki.CheckResult{
		{Seq: 1, System: "webshop-app", Check: "http", Status: aramaki.StatusCritical, Output: "CRITICAL - <script>alert(1)</script>", Started: time.Now()},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Err != nil {
		t.Fatal(r.Err)
	}
	_, body, _ := e.Get(e.MustLogin("admin"), "/systems/webshop-app")
	strip := body[strings.Index(body, `<svg class="strip"`):]
	strip = strip[:strings.Index(strip, "</svg>")]
	if n := strings.Count(strip, "<rect"); n != 30 {
		t.Fatalf("the strip has %d days, want 30:\n%s", n, strip)
	}
	if !strings.HasSuffix(strings.TrimSpace(strip[strings.LastIndex(strip, "<rect"):]), "</rect>") || !strings.Contains(strip[strings.LastIndex(strip, "<rect"):], `class="s-critical"`) {
		t.Fatalf("today is not drawn critical:\n%s", strip)
	}
	if strings.Contains(body, "<script>alert(1)</script>") {
		t.Fatal("check output from the host was not escaped")
	}
}

func TestACheckPageSaysWhetherItIsAlwaysBroken(t *testing.T) {
	e := MustEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.svc.RunIngest(ctx)
	tok, err := e.svc.CreateEnrollmentToken(ctx, e.admin, []string{"webshop-app"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	a, err := e.svc.Enroll(ctx, tok.ID, tok.Secret, pub, "web1", "1")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	done, err := e.svc.SubmitResults(ctx, service.NewStream(), a, []aramaki.CheckResult{
		{Seq: 1, System: "webshop-app", Check: "http", Status: aramaki.StatusOK, Output: "OK", Started: now.Add(-72 * time.Hour)},
		{Seq: 2, System: "webshop-app", Check: "http", Status: aramaki.StatusCritical, Output: "CRITICAL - <img src=x onerror=alert(1)>", Started: now.Add(-48 * time.Hour)},
		{Seq: 3, System: "webshop-app", Check: "http", Status: aramaki.StatusOK, Output: "OK - back", Started: now.Add(-47 * time.Hour)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Err != nil {
		t.Fatal(r.Err)
	}
	c := e.MustLogin("admin")
	_, body, _ := e.Get(c, "/systems/webshop-app")
	if !strings.Contains(body, "2 changes in 30 days") || !strings.Contains(body, `href="/systems/webshop-app/checks/http"`) {
		t.Errorf("the system page does not count the changes or link the history:\n%s", body)
	}
	code, body, _ := e.Get(c, "/systems/webshop-app/checks/http")
	if code != http.StatusOK {
		t.Fatalf("check page: %d", code)
	}
	for _, want := range []string{
		`<th scope="row">24h</th>`, `<th scope="row">7d</th>`, `<th scope="row">30d</th>`,
		"first result", "CRITICAL - &lt;img src=x onerror=alert(1)&gt;", "OK - back", `<svg class="strip"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the check page lacks %q", want)
		}
	}
	if strings.Contains(body, "<img src=x") {
		t.Error("check output from the host was not escaped")
	}
	// Over 7 days, the check was OK most of the time and critical for an
	// hour of the 72 it has been known.
	row := body[strings.Index(body, `<th scope="row">7d</th>`):]
	row = row[:strings.Index(row, "</tr>")]
	if !strings.Contains(row, "<td>99%</td>") || !strings.Contains(row, "<td>1%</td>") || !strings.Contains(row, "<td>2</td>") {
		t.Errorf("7d row %s: want 99%% OK, 1%% critical, 2 changes", row)
	}
	if code, _, _ := e.Get(c, "/systems/webshop-app/checks/nope"); code != http.StatusNotFound {
		t.Errorf("a check the system does not have: %d, want 404", code)
	}
}
