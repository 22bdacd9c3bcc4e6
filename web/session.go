package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// Sessions are API tokens. Logging in through the form calls svc.Login,
// which issues a token named "web session" valid for sessionTTL; its secret
// ("ark_<id>_<secret>") is the session cookie. Every request authenticates
// the cookie like a Bearer token, so revoking the token (logout, or
// DELETE /api/v1/tokens/{id}) ends the session. No session state lives in
// the web package.
const (
	cookieName = "aramaki_session"
	sessionTTL = 12 * time.Hour
)

// session is who is asking: the principal and, when logged in, the cookie's
// token secret (which keys the CSRF token).
type session struct {
	aramaki.Principal
	secret string
}

// session authenticates the request's cookie. No cookie, or one that no
// longer works (expired, revoked), is anonymous; a dead cookie is cleared.
func (u *UI) session(w http.ResponseWriter, r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return &session{}
	}
	p, err := u.svc.AuthenticateToken(r.Context(), c.Value)
	if err != nil || p.Anonymous() {
		u.setCookie(w, r, "", -1)
		return &session{}
	}
	return &session{Principal: p, secret: c.Value}
}

func (u *UI) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil || u.opts.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

// tokenID is the token id inside a secret: "ark_<id>_<secret>".
func tokenID(secret string) string {
	rest, _ := strings.CutPrefix(secret, "ark_")
	id, _, _ := strings.Cut(rest, "_")
	return id
}

// csrfToken is the hidden "csrf" field of every form: an HMAC keyed by the
// SHA-256 of the session secret, so it is bound to the session, needs no
// storage and cannot be derived without the HttpOnly cookie. Anonymous
// sessions have none.
func (s *session) csrfToken() string {
	if s == nil || s.secret == "" {
		return ""
	}
	key := sha256.Sum256([]byte(s.secret))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("aramaki-csrf"))
	return hex.EncodeToString(m.Sum(nil))
}

// csrf guards a POST handler: without the session's CSRF token the request
// is refused with 403 before anything changes.
func (u *UI) csrf(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		want := s.csrfToken()
		got := r.PostFormValue("csrf")
		if want == "" || !hmac.Equal([]byte(got), []byte(want)) {
			http.Error(w, "Forbidden: the form is stale or did not come from this site. Reload the page and try again.", http.StatusForbidden)
			return nil
		}
		return h(w, r, s)
	}
}

// redirectToLogin sends the browser to the login page, to come back here.
func redirectToLogin(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// safeNext accepts only relative URLs on this site as a redirect target.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request, s *session) error {
	next := safeNext(r.URL.Query().Get("next"))
	if !s.Anonymous() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return nil
	}
	u.render(w, r, http.StatusOK, "login", s, map[string]any{"Next": next})
	return nil
}

// login checks the form and starts a session. It cannot carry a CSRF token:
// there is no session yet to bind one to. Cross-site login forms are kept
// out by the CSP's form-action 'self' on our pages and the SameSite=Lax
// cookie (a forged login could only log the victim into the forger's
// account, and a cross-site POST carries no cookie of ours).
func (u *UI) login(w http.ResponseWriter, r *http.Request, s *session) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	user, pw := r.PostFormValue("user"), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	tok, err := u.svc.Login(r.Context(), user, pw, "web session", sessionTTL)
	if err != nil {
		code := aramaki.ErrorCode(err)
		if code != aramaki.EUNAUTHORIZED && code != aramaki.EINVALID && code != aramaki.EFORBIDDEN {
			return err
		}
		u.render(w, r, http.StatusUnauthorized, "login", &session{}, map[string]any{
			"Next": next, "User": user, "Error": "Wrong user name or password.",
		})
		return nil
	}
	u.setCookie(w, r, tok.Secret, int(sessionTTL/time.Second))
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// logout revokes the session's token and clears the cookie.
func (u *UI) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := u.svc.DeleteToken(r.Context(), s.Principal, tokenID(s.secret)); err != nil && aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
		return err
	}
	u.setCookie(w, r, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}
