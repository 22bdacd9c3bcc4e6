package web_test

import (
	"context"
	"crypto/ed25519"
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
