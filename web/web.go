// Package web is Aramaki's web UI: server-rendered pages for people at 3am.
// It translates HTTP to the service's use cases and back, like the JSON API,
// and imports no other adapter. Templates and static files are embedded;
// static files are served under content-hashed URLs so they can be cached
// forever. htmx is vendored in static/ (see static/README).
package web

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

//go:embed templates
var templateFS embed.FS

// Options tune the UI.
type Options struct {
	// SecureCookies marks the session cookie Secure even on plain HTTP
	// requests, for a server behind a TLS-terminating proxy. Requests that
	// arrive over TLS always get Secure cookies.
	SecureCookies bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// PublicURL, CAFingerprint and ServerName are this server as its
	// peers reach it, for the invitation tokens the federation page makes
	// (like api.Options).
	PublicURL     string
	CAFingerprint string
	ServerName    string
}

// UI is the web UI's HTTP handler.
type UI struct {
	svc    *service.Service
	log    *slog.Logger
	opts   Options
	mux    *http.ServeMux
	static *staticFiles
	pages  map[string]*template.Template
}

// New builds the UI. Every route is listed here.
func New(svc *service.Service, log *slog.Logger, opts Options) *UI {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	u := &UI{svc: svc, log: log, opts: opts, mux: http.NewServeMux(), static: mustStatic()}
	u.pages = mustPages(u.funcs())

	u.mux.HandleFunc("GET /static/{hash}/{name}", u.serveStatic)
	u.mux.HandleFunc("GET /login", u.wrap(u.loginPage))
	u.mux.HandleFunc("POST /login", u.wrap(u.login))
	u.mux.HandleFunc("POST /logout", u.wrap(u.csrf(u.logout)))
	u.mux.HandleFunc("GET /{$}", u.wrap(u.homePage))
	u.mux.HandleFunc("GET /systems/{id}", u.wrap(u.systemPage))
	u.mux.HandleFunc("GET /systems/{id}/checks/{check}", u.wrap(u.checkPage))
	u.mux.HandleFunc("POST /systems/{id}/notes", u.wrap(u.csrf(u.postNote)))
	u.mux.HandleFunc("POST /systems/{id}/silences", u.wrap(u.csrf(u.createSilence)))
	u.mux.HandleFunc("POST /silences/{id}/end", u.wrap(u.csrf(u.endSilence)))
	u.mux.HandleFunc("POST /systems/{id}/actions/{action}/runs", u.wrap(u.csrf(u.requestRun)))
	u.mux.HandleFunc("GET /runs", u.wrap(u.runsPage))
	u.mux.HandleFunc("GET /runs/{id}", u.wrap(u.runPage))
	u.mux.HandleFunc("GET /runs/{id}/live", u.wrap(u.runLive))
	u.mux.HandleFunc("POST /runs/{id}/approve", u.wrap(u.csrf(u.changeRun(svc.ApproveRun))))
	u.mux.HandleFunc("POST /runs/{id}/cancel", u.wrap(u.csrf(u.changeRun(svc.CancelRun))))
	u.mux.HandleFunc("POST /systems/{id}/workflows/{workflow}/plan", u.wrap(u.csrf(u.planWorkflow)))
	u.mux.HandleFunc("POST /systems/{id}/workflows/{workflow}/runs", u.wrap(u.csrf(u.requestWorkflow)))
	u.mux.HandleFunc("GET /workflow-runs", u.wrap(u.workflowRunsPage))
	u.mux.HandleFunc("GET /workflow-runs/{id}", u.wrap(u.workflowRunPage))
	u.mux.HandleFunc("GET /workflow-runs/{id}/live", u.wrap(u.workflowRunLive))
	u.mux.HandleFunc("POST /workflow-runs/{id}/approve", u.wrap(u.csrf(u.changeWorkflowRun(svc.ApproveWorkflowRun))))
	u.mux.HandleFunc("POST /workflow-runs/{id}/cancel", u.wrap(u.csrf(u.changeWorkflowRun(svc.CancelWorkflowRun))))
	u.mux.HandleFunc("GET /alerts", u.wrap(u.alertsPage))
	u.mux.HandleFunc("POST /alerts/acknowledge", u.wrap(u.csrf(u.acknowledgeAlerts)))
	u.mux.HandleFunc("GET /alerts/{id}", u.wrap(u.alertPage))
	u.mux.HandleFunc("POST /alerts/{id}/acknowledge", u.wrap(u.csrf(u.changeAlert(service.AlertAck, "text"))))
	u.mux.HandleFunc("POST /alerts/{id}/assign", u.wrap(u.csrf(u.changeAlert(service.AlertAssign, "user"))))
	u.mux.HandleFunc("POST /alerts/{id}/comment", u.wrap(u.csrf(u.changeAlert(service.AlertComment, "text"))))
	u.mux.HandleFunc("POST /alerts/{id}/escalate", u.wrap(u.csrf(u.changeAlert(service.AlertEscalate, "text"))))
	u.mux.HandleFunc("POST /alerts/{id}/resolve", u.wrap(u.csrf(u.changeAlert(service.AlertResolve, "text"))))
	u.mux.HandleFunc("GET /review", u.wrap(u.reviewPage))
	u.mux.HandleFunc("GET /timeline", u.wrap(u.timelinePage))
	u.mux.HandleFunc("GET /timeline/stream", u.wrap(u.timelineStream))
	u.mux.HandleFunc("GET /agents", u.wrap(u.agentsPage))
	u.mux.HandleFunc("GET /agents/{id}", u.wrap(u.agentPage))
	u.mux.HandleFunc("POST /agents/{id}/revoke", u.wrap(u.csrf(u.revokeAgent)))
	// Federation lives at /peers: /federation/ is the way of other servers.
	u.mux.HandleFunc("GET /peers", u.wrap(u.federationPage))
	u.mux.HandleFunc("POST /peers/invitations", u.wrap(u.csrf(u.createInvitation)))
	u.mux.HandleFunc("POST /peers/accept", u.wrap(u.csrf(u.acceptInvitation)))
	u.mux.HandleFunc("POST /peers/{name}/remove", u.wrap(u.csrf(u.removePeer)))
	u.mux.HandleFunc("POST /grants", u.wrap(u.csrf(u.createGrant)))
	u.mux.HandleFunc("POST /grants/{id}/revoke", u.wrap(u.csrf(u.revokeGrant)))
	u.mux.HandleFunc("/", u.wrap(func(w http.ResponseWriter, r *http.Request, s *session) error {
		return aramaki.Errorf(aramaki.ENOTFOUND, "There is no page here.")
	}))
	return u
}

// ServeHTTP sets the security headers every UI response carries and routes.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	u.mux.ServeHTTP(w, r)
}

// handlerFunc is a page handler: it gets the request's session (maybe
// anonymous) and returns an error to be shown as an error page.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

func (u *UI) wrap(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				u.log.Error("panic in web handler", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				u.renderError(w, r, nil, fmt.Errorf("panic: %v", v))
			}
		}()
		s := u.session(w, r)
		if err := h(w, r, s); err != nil {
			u.renderError(w, r, s, err)
		}
	}
}

func (u *UI) renderError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code := aramaki.ErrorCode(err)
	if code == aramaki.EINTERNAL {
		u.log.Error("web request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if s == nil {
		s = &session{}
	}
	// Anonymous people asking for something hidden get the login page.
	if s.Anonymous() && (code == aramaki.ENOTFOUND || code == aramaki.EUNAUTHORIZED || code == aramaki.EFORBIDDEN) && r.Method == http.MethodGet && r.URL.Path != "/login" {
		redirectToLogin(w, r)
		return
	}
	u.render(w, r, api.Status(code), "error", s, map[string]any{
		"Status": api.Status(code), "Message": aramaki.ErrorMessage(err),
	})
}

// page is what every template gets: the session and the page's own data.
type page struct {
	Session *session
	CSRF    string
	Data    any
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, data any) {
	t, ok := u.pages[name]
	if !ok {
		panic("web: no template " + name)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", page{Session: s, CSRF: s.csrfToken(), Data: data}); err != nil && !errors.Is(err, context.Canceled) {
		u.log.Error("render page", "page", name, "err", err)
	}
}

// mustPages parses each page template together with the layout and the
// parts pages share (templates/parts): a page defines "title" and
// "content", the layout places them.
func mustPages(funcs template.FuncMap) map[string]*template.Template {
	base := template.Must(template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts/*.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		t := template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
		pages[n[len("templates/"):len(n)-len(".html")]] = t
	}
	return pages
}

func (u *UI) funcs() template.FuncMap {
	return template.FuncMap{
		"static": u.static.url,
		"mul":    func(a, b int) int { return a * b },
		// dict passes more than one value to a template: dict "Card" . "CSRF" $.CSRF.
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, errors.New("dict: odd number of arguments")
			}
			m := make(map[string]any, len(kv)/2)
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
		"pct": func(share float64) string {
			if share == 0 {
				return "–"
			}
			return fmt.Sprintf("%.0f%%", share*100)
		},
		"time": func(t time.Time) string {
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"firstLine":     firstLine,
		"duration":      formatDuration,
		"stateWord":     stateWord,
		"failed":        failureRate,
		"runOf":         runOf,
		"workflowRunOf": workflowRunOf,
		"did":           func(kind string) string { return cmp.Or(noteVerbs[kind], kind) },
		"in": func(t time.Time) string {
			d := t.Sub(u.opts.Now()).Round(time.Minute)
			switch {
			case d < time.Minute:
				return "now"
			case d < time.Hour:
				return fmt.Sprintf("in %d min", int(d.Minutes()))
			case d < 48*time.Hour:
				return fmt.Sprintf("in %d h", int(d.Hours()))
			}
			return fmt.Sprintf("in %d days", int(d.Hours()/24))
		},
		"ago": func(t time.Time) string {
			d := u.opts.Now().Sub(t).Round(time.Minute)
			switch {
			case d < time.Minute:
				return "just now"
			case d < time.Hour:
				return fmt.Sprintf("%d min ago", int(d.Minutes()))
			case d < 48*time.Hour:
				return fmt.Sprintf("%d h ago", int(d.Hours()))
			}
			return fmt.Sprintf("%d days ago", int(d.Hours()/24))
		},
	}
}
