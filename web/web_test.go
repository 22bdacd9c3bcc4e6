package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestSecurityHeaders(t *testing.T) {
	e := MustEnv(t)
	for _, path := range []string{"/", "/login", "/nope"} {
		_, _, resp := e.Get(e.Client(), path)
		h := resp.Header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'self'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
}

func TestStaticHashedAndImmutable(t *testing.T) {
	e := MustEnv(t)
	c := e.Client()
	_, body, _ := e.Get(c, "/")
	for _, name := range []string{"style.css", "htmx.min.js"} {
		m := regexp.MustCompile(`/static/([0-9a-f]{12})/` + regexp.QuoteMeta(name)).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no hashed URL for %s in page", name)
		}
		status, _, resp := e.Get(c, m[0])
		if status != http.StatusOK || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: status %d, Cache-Control %q", m[0], status, resp.Header.Get("Cache-Control"))
		}
		if status, _, _ := e.Get(c, "/static/000000000000/"+name); status != http.StatusNotFound {
			t.Errorf("%s under a wrong hash: status %d", name, status)
		}
	}
}

func TestLoginLogout(t *testing.T) {
	e := MustEnv(t)
	if status, body, _ := e.Post(e.Client(), "/login", url.Values{"user": {"vera"}, "password": {"wrong-password-1"}}); status != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password") {
		t.Fatalf("bad password: %d %s", status, body)
	}
	c := e.MustLogin("vera")
	u, _ := url.Parse(e.srv.URL)
	var session *http.Cookie
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "aramaki_session" {
			session = ck
		}
	}
	if session == nil || !strings.HasPrefix(session.Value, "ark_") {
		t.Fatalf("no session cookie: %v", c.Jar.Cookies(u))
	}
	_, body, _ := e.Get(c, "/")
	if !strings.Contains(body, "Webshop") || !strings.Contains(body, "vera") {
		t.Fatalf("home as vera lacks webshop:\n%s", body)
	}
	status, _, resp := e.Post(c, "/logout", url.Values{"csrf": {CSRF(t, body)}})
	if status != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d %v", status, resp.Header)
	}
	// The token is revoked, not just forgotten by the browser.
	if _, err := e.svc.AuthenticateToken(context.Background(), session.Value); err == nil {
		t.Fatal("session token still works after logout")
	}
	if _, body, _ := e.Get(c, "/"); strings.Contains(body, "Webshop") {
		t.Fatal("webshop visible after logout")
	}
}

func TestLoginCookieFlags(t *testing.T) {
	e := MustEnv(t)
	_, _, resp := e.Post(e.Client(), "/login", url.Values{"user": {"vera"}, "password": {e.pw["vera"]}})
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"aramaki_session=ark_", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
}

func TestLoginNextOnlyRelative(t *testing.T) {
	e := MustEnv(t)
	for next, want := range map[string]string{
		"/systems/webshop": "/systems/webshop", "//evil.example": "/", "https://evil.example/": "/",
		"/\\evil.example": "/", "javascript:alert(1)": "/",
	} {
		_, _, resp := e.Post(e.Client(), "/login", url.Values{"user": {"vera"}, "password": {e.pw["vera"]}, "next": {next}})
		if got := resp.Header.Get("Location"); got != want {
			t.Errorf("next %q: redirected to %q, want %q", next, got, want)
		}
	}
}

func TestPostWithoutCSRFRefused(t *testing.T) {
	e := MustEnv(t)
	c := e.MustLogin("admin")
	_, body, _ := e.Get(c, "/systems/webshop")
	good := CSRF(t, body)
	for _, bad := range []url.Values{{}, {"csrf": {"00"}}, {"csrf": {strings.Repeat("0", len(good))}}} {
		form := url.Values{"text": {"should not be posted"}}
		for k, v := range bad {
			form[k] = v
		}
		if status, _, _ := e.Post(c, "/systems/webshop/notes", form); status != http.StatusForbidden {
			t.Errorf("note with csrf %v: status %d, want 403", bad, status)
		}
		if status, _, _ := e.Post(c, "/logout", bad); status != http.StatusForbidden {
			t.Errorf("logout with csrf %v: status %d, want 403", bad, status)
		}
	}
	if _, body, _ := e.Get(c, "/systems/webshop"); strings.Contains(body, "should not be posted") || !strings.Contains(body, "Log out") {
		t.Fatal("a refused POST changed something")
	}
	// An anonymous POST has no session to bind a token to.
	if status, _, _ := e.Post(e.Client(), "/systems/blog/notes", url.Values{"text": {"x"}, "csrf": {good}}); status != http.StatusForbidden {
		t.Errorf("anonymous note: status %d", status)
	}
	// With the token it works.
	if status, _, _ := e.Post(c, "/systems/webshop/notes", url.Values{"text": {"Varnish flushed"}, "csrf": {good}}); status != http.StatusSeeOther {
		t.Fatalf("note with csrf: status %d", status)
	}
	if _, body, _ := e.Get(c, "/systems/webshop"); !strings.Contains(body, "Varnish flushed") {
		t.Fatal("posted note not on the system page")
	}
}

func TestHostileTextEscaped(t *testing.T) {
	e := MustEnv(t)
	if _, err := e.svc.PostNote(context.Background(), e.admin, "webshop", "note "+xss); err != nil {
		t.Fatal(err)
	}
	c := e.MustLogin("admin")
	for _, path := range []string{"/", "/systems/hostile", "/systems/webshop"} {
		_, body, _ := e.Get(c, path)
		if strings.Contains(body, xss) {
			t.Errorf("%s renders %s unescaped", path, xss)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s lacks the escaped text:\n%s", path, body)
		}
	}
}

func TestAnonymousSeesOnlyPublic(t *testing.T) {
	e := MustEnv(t)
	c := e.Client()
	status, body, _ := e.Get(c, "/")
	if status != http.StatusOK || !strings.Contains(body, "Blog") || strings.Contains(body, "Webshop") || strings.Contains(body, "Hosting infrastructure") {
		t.Fatalf("anonymous home: %d\n%s", status, body)
	}
	if status, _, _ := e.Get(c, "/systems/blog"); status != http.StatusOK {
		t.Errorf("public system: status %d", status)
	}
	status, _, resp := e.Get(c, "/systems/webshop")
	if status != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fsystems%2Fwebshop" {
		t.Errorf("hidden system as anonymous: %d %q", status, resp.Header.Get("Location"))
	}
	// Logged in, a hidden system is simply not there.
	if status, _, _ := e.Get(e.MustLogin("vera"), "/systems/infrastructure"); status != http.StatusNotFound {
		t.Errorf("hidden system as vera: status %d", status)
	}
}
