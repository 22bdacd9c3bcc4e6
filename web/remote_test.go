package web_test

import (
	"net/http"
	"testing"
)

// A peer's system used here has a page like any other: what the peer
// shares of it (unknown until it does), and the systems that use it.
func TestAPeersSystemHasAPage(t *testing.T) {
	e := MustEnvWith(t, map[string]string{"systems/shop.yaml": "id: shop\ntitle: Shop\nsubsystems: [storage@hoster]\n"})
	admin := e.MustLogin("admin")
	status, body, _ := e.Get(admin, "/systems/shop")
	if status != http.StatusOK {
		t.Fatalf("the shop page: %d", status)
	}
	mustContain(t, "the shop page", body, "storage at hoster", `href="/systems/storage@hoster"`)
	status, body, _ = e.Get(admin, "/systems/storage@hoster")
	if status != http.StatusOK {
		t.Fatalf("the remote system's page: %d\n%s", status, body)
	}
	mustContain(t, "the remote system's page", body, "storage at hoster", "has not told this server its status", `href="/systems/shop"`)
}
