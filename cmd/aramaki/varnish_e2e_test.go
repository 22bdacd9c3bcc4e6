package main_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aramaki/aramaki/varnishtest"
)

// 3am: product pages are stale. The on-call flushes the shop's Varnish
// cache with the action its host allows; the ban lands in the real Varnish,
// the next request reaches the shop again, and the run with its reason is
// on the timeline.
func TestFlushingTheVarnishCacheAt3am(t *testing.T) {
	t.Parallel()
	var version atomic.Int64
	version.Store(1)
	var fetched atomic.Int64
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, "product page, price list version %d\n", version.Load())
	}))
	defer shop.Close()
	backend, _ := url.Parse(shop.URL)
	v := varnishtest.MustStart(t, backend.Host)
	get := func() string {
		t.Helper()
		resp, err := http.Get(v.Addr + "/products/42")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	get()
	version.Store(2) // new prices; the cache still has the old page
	if page := get(); !strings.Contains(page, "version 1") || fetched.Load() != 1 {
		t.Fatalf("the cache does not hold the page: %q after %d fetches", page, fetched.Load())
	}

	actions := t.TempDir()
	varnishadm := varnishtest.MustVarnishadm(t)
	if err := os.WriteFile(filepath.Join(actions, "varnish.yaml"), []byte(fmt.Sprintf(`actions:
  - name: flush-varnish
    description: Ban cached pages matching a URL pattern
    argv: [%s, -T, %s, -S, %s, ban, req.url, "~", "{pattern}"]
    params:
      - {name: pattern, type: string, pattern: "[A-Za-z0-9/^$.*_-]{1,100}", default: "."}
    timeout: 20s
`, varnishadm, v.AdminAddr, v.SecretFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	const plugin = "/usr/lib/nagios/plugins/check_http"
	if _, err := os.Stat(plugin); err != nil && os.Getenv("CI") != "true" {
		t.Skipf("%s is not installed (apt-get install monitoring-plugins-basic)", plugin)
	}
	varnishURL, _ := url.Parse(v.Addr)
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"shop.yaml": fmt.Sprintf(`id: shop-varnish
title: The shop's Varnish
checks:
  - {name: cache, command: "%s -I 127.0.0.1 -p %s -u /products/42 -s price", interval: 1s}
actions:
  - {name: flush-varnish, rule: "Flush when product pages are stale; tell #shop."}
`, plugin, varnishURL.Port())}))
	MustEnrollAgentWith(t, srv, []string{"--actions", actions}, "shop-varnish")

	// The check watches the cache.
	var history struct {
		Results []struct{ Status, Output string }
	}
	Eventually(t, 30*time.Second, "the cache check", func() bool {
		mustJSON(t, srv.MustCLI("check", "history", "shop-varnish", "cache", "-o", "json"), &history)
		return len(history.Results) > 0
	})
	if r := history.Results[0]; r.Status != "ok" || !strings.HasPrefix(r.Output, "HTTP OK") {
		t.Errorf("the cache check: %+v", r)
	}

	var run runView
	Eventually(t, 20*time.Second, "the agent's actions", func() bool {
		return srv.MustAPI("POST", "/api/v1/systems/shop-varnish/actions/flush-varnish/runs", map[string]any{
			"reason": "product pages show old prices", "params": map[string]string{"pattern": "^/products/"}}, &run) == http.StatusCreated
	})
	Eventually(t, 30*time.Second, "the flush to finish", func() bool {
		srv.MustAPI("GET", "/api/v1/runs/"+run.ID, nil, &run)
		return run.State != "running"
	})
	if run.State != "succeeded" || run.RequestedBy != "admin" || run.Reason != "product pages show old prices" {
		t.Fatalf("the flush: %+v", run)
	}

	// In Varnish itself: the ban is there, and the page comes fresh.
	if bans := v.MustBans(t); !slices.Contains(bans, "req.url ~ ^/products/") {
		t.Errorf("bans in Varnish: %q", bans)
	}
	// (The check's own requests are cached apart: it sends another Host.)
	if page := get(); !strings.Contains(page, "version 2") {
		t.Errorf("after the flush the cache still serves %q", page)
	}

	var page struct {
		Events []struct {
			Kind    string
			Actor   string
			Summary string
		}
	}
	srv.MustAPI("GET", "/api/v1/timeline?system=shop-varnish&kind=run.requested,run.finished", nil, &page)
	if len(page.Events) != 2 || !strings.Contains(page.Events[1].Summary, "product pages show old prices") || !strings.Contains(page.Events[0].Summary, "succeeded") {
		t.Errorf("the flush on the timeline: %+v", page.Events)
	}
}
