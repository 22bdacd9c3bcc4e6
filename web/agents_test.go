package web_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTheAgentsPageListsAgentsAndAdminsRevokeThem(t *testing.T) {
	e := MustEnv(t)
	ctx := context.Background()
	tok, err := e.svc.CreateEnrollmentToken(ctx, e.admin, []string{"webshop"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	a, err := e.svc.Enroll(ctx, tok.ID, tok.Secret, pub, "shop-web1", "1.0")
	if err != nil {
		t.Fatal(err)
	}

	// A viewer of webshop sees it, without a way to revoke it that works.
	vera := e.MustLogin("vera")
	if status, body, _ := e.Get(vera, "/agents"); status != http.StatusOK || !strings.Contains(body, "shop-web1") || !strings.Contains(body, "disconnected") {
		t.Fatalf("vera's agents page: %d\n%s", status, body)
	}
	_, body, _ := e.Get(vera, "/agents/"+a.ID)
	if status, _, _ := e.Post(vera, "/agents/"+a.ID+"/revoke", url.Values{"csrf": {CSRF(t, body)}}); status != http.StatusForbidden {
		t.Fatalf("a viewer revoking: status %d, want 403", status)
	}

	// The admin revokes it.
	admin := e.MustLogin("admin")
	_, body, _ = e.Get(admin, "/agents/"+a.ID)
	if !strings.Contains(body, "Revoke this agent") {
		t.Fatalf("the admin's agent page has no revoke button:\n%s", body)
	}
	if status, _, _ := e.Post(admin, "/agents/"+a.ID+"/revoke", url.Values{"csrf": {CSRF(t, body)}}); status != http.StatusSeeOther {
		t.Fatalf("revoke: status %d", status)
	}
	if _, body, _ := e.Get(admin, "/agents"); !strings.Contains(body, "revoked") {
		t.Fatalf("the agents page does not show the agent revoked:\n%s", body)
	}

	// Anonymous visitors are sent to log in.
	if status, _, resp := e.Get(e.Client(), "/agents"); status != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("anonymous agents page: %d", status)
	}
}
