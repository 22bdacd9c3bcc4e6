package varnishtest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aramaki/aramaki/varnishtest"
)

func TestABanThroughTheAdminCLIEmptiesTheCache(t *testing.T) {
	t.Parallel()
	var fetches atomic.Int64 // each fetch is a new version of the page
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, "version %d of %s\n", n, r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	v := varnishtest.MustStart(t, strings.TrimPrefix(backend.URL, "http://"))

	first := mustGet(t, v.Addr+"/index.html")
	if first.body != "version 1 of /index.html\n" || fetches.Load() != 1 {
		t.Fatalf("first GET: %q after %d fetches; want version 1 fetched once", first.body, fetches.Load())
	}
	if ids := strings.Fields(first.header.Get("X-Varnish")); len(ids) != 1 {
		t.Errorf("first GET: X-Varnish %q; want one id, a miss", ids)
	}

	cached := mustGet(t, v.Addr+"/index.html")
	if cached.body != first.body || fetches.Load() != 1 {
		t.Fatalf("second GET: %q after %d fetches; want version 1 from the cache", cached.body, fetches.Load())
	}
	// A hit names its own request and the one that fetched the object.
	if ids := strings.Fields(cached.header.Get("X-Varnish")); len(ids) != 2 {
		t.Errorf("second GET: X-Varnish %q; want two ids, a hit", ids)
	}
	if cached.header.Get("Age") == "" {
		t.Errorf("second GET: no Age header on a hit")
	}

	v.MustAdmin(t, "ban", "req.url", "~", ".")
	if bans := v.MustBans(t); !slices.Contains(bans, "req.url ~ .") {
		t.Errorf("ban.list after the ban: %q; want req.url ~ .", bans)
	}

	fresh := mustGet(t, v.Addr+"/index.html")
	if fresh.body != "version 2 of /index.html\n" || fetches.Load() != 2 {
		t.Fatalf("GET after the ban: %q after %d fetches; want version 2, fetched again", fresh.body, fetches.Load())
	}
	if again := mustGet(t, v.Addr+"/index.html"); again.body != fresh.body || fetches.Load() != 2 {
		t.Errorf("GET after that: %q after %d fetches; want version 2 cached again", again.body, fetches.Load())
	}
}

func TestTheAdminCLIIsAlsoFoundThroughTheWorkingDirectory(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(backend.Close)
	v := varnishtest.MustStart(t, strings.TrimPrefix(backend.URL, "http://"))

	// varnishadm -n reads the CLI's address and secret from the working
	// directory, as an action on the same machine would.
	out, err := exec.Command(varnishtest.MustVarnishadm(t), "-n", v.WorkDir, "status").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "running") {
		t.Fatalf("varnishadm -n %s status: %v\n%s", v.WorkDir, err, out)
	}
}

type response struct {
	header http.Header
	body   string
}

func mustGet(t *testing.T, url string) response {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %q", url, res.Status, body)
	}
	return response{header: res.Header, body: string(body)}
}
