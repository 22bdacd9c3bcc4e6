package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/servicetest"
	"github.com/aramaki/aramaki/web"
)

const xss = `<script>alert(1)</script>`

// The fixture: a hosting company with two customer projects that share
// storage and compute; the blog and a system with a hostile title are
// public.
var fixtureFiles = map[string]string{
	"systems/webshop.yaml": `id: webshop
title: Webshop
category: customer project
subsystems: [webshop-app, webshop-db]
contacts:
  - {name: Shop oncall, email: oncall@example.com}
  - {name: Shop lead, email: lead@example.com}
routing:
  - {contact: Shop oncall}
  - {contact: Shop lead, after: 30m}
rules:
  - text: Flushing the Varnish cache is always fine.
`,
	"systems/webshop-app.yaml":    "id: webshop-app\ntitle: Webshop app\nsubsystems: [compute]\nchecks:\n  - {name: http, command: check_http -H shop}\n",
	"systems/webshop-db.yaml":     "id: webshop-db\ntitle: Webshop database\nsubsystems: [storage]\n",
	"systems/blog.yaml":           "id: blog\ntitle: Blog\ncategory: customer project\nsubsystems: [blog-db]\npublic: true\n",
	"systems/blog-db.yaml":        "id: blog-db\ntitle: Blog database\nsubsystems: [storage]\n",
	"systems/infrastructure.yaml": "id: infrastructure\ntitle: Hosting infrastructure\ncategory: infrastructure\nsubsystems: [storage, compute]\n",
	"systems/storage.yaml":        "id: storage\ntitle: Storage\ncategory: infrastructure\n",
	"systems/compute.yaml":        "id: compute\ntitle: Compute\ncategory: infrastructure\n",
	"systems/hostile.yaml":        "id: hostile\ntitle: \"" + xss + "\"\ndescription: \"https://example.com/a/very/long/url/without/any/break/points/that/must/wrap/on/a/phone/screen/instead/of/scrolling\"\npublic: true\n",
}

// env is the web UI over a real SQLite store and a real Git repository.
type env struct {
	t     testing.TB
	srv   *httptest.Server
	svc   *service.Service
	admin aramaki.Principal
	pw    map[string]string // user -> password
}

// MustEnv starts the UI with the first admin and vera, a viewer on webshop.
func MustEnv(t testing.TB) *env {
	t.Helper()
	return MustEnvWith(t, fixtureFiles)
}

// MustEnvWith is MustEnv over other systems.
func MustEnvWith(t testing.TB, files map[string]string) *env {
	t.Helper()
	return MustEnvOptions(t, files, web.Options{})
}

// MustEnvOptions is MustEnvWith with the UI's options.
func MustEnvOptions(t testing.TB, files map[string]string, opts web.Options) *env {
	t.Helper()
	ctx := context.Background()
	se := servicetest.MustService(t, files)
	svc, log, creds := se.Service, se.Log, se.Admin
	admin, err := svc.AuthenticateToken(ctx, creds.Token)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, svc: svc, admin: admin, pw: map[string]string{"admin": creds.Password}}
	if _, err := svc.CreateUser(ctx, admin, "vera", "vera-secret-password"); err != nil {
		t.Fatal(err)
	}
	if svc.Graph().System("webshop") != nil {
		if _, err := svc.GrantRole(ctx, admin, "vera", "webshop", aramaki.RoleViewer); err != nil {
			t.Fatal(err)
		}
	}
	e.pw["vera"] = "vera-secret-password"
	e.srv = httptest.NewServer(web.New(svc, log, opts))
	t.Cleanup(e.srv.Close)
	return e
}

// Client is a browser-like HTTP client with its own cookie jar.
func (e *env) Client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// MustLogin logs a user in through the login form.
func (e *env) MustLogin(user string) *http.Client {
	e.t.Helper()
	c := e.Client()
	status, _, resp := e.Post(c, "/login", url.Values{"user": {user}, "password": {e.pw[user]}})
	if status != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		e.t.Fatalf("login %s: status %d, location %q", user, status, resp.Header.Get("Location"))
	}
	return c
}

// Get fetches a page.
func (e *env) Get(c *http.Client, path string) (int, string, *http.Response) {
	e.t.Helper()
	resp, err := c.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp
}

// Post submits a form.
func (e *env) Post(c *http.Client, path string, form url.Values) (int, string, *http.Response) {
	e.t.Helper()
	resp, err := c.PostForm(e.srv.URL+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]*)"`)

// CSRF is the CSRF token in a page's forms.
func CSRF(t testing.TB, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil || m[1] == "" {
		t.Fatalf("no csrf field in page:\n%s", body)
	}
	return m[1]
}
