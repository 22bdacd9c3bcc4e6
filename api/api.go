// Package api is Aramaki's JSON HTTP API: every route in one table, errors
// as {"error": {"code", "message"}} with the status chosen in one place,
// bearer-token authentication, and the OpenAPI document that describes it.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// EMETHOD is the code of a request with a method its path does not take.
// It belongs to HTTP, not to the domain.
const EMETHOD = "method_not_allowed"

// queryParams refuses query parameters a route does not know, so that a
// misspelt filter is an error rather than silently ignored.
func queryParams(r *http.Request, known ...string) error {
	for k := range r.URL.Query() {
		if !slices.Contains(known, k) {
			return aramaki.Errorf(aramaki.EINVALID, "unknown query parameter %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	return nil
}

// listParam reads a repeatable, comma-separated query parameter.
func listParam(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// durationParam reads a positive duration query parameter, or def when it
// is not given.
func durationParam(q url.Values, name, example string, def time.Duration) (time.Duration, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, aramaki.Errorf(aramaki.EINVALID, "%s must be a duration like %s, not %q", name, example, v)
	}
	return d, nil
}

// limitParam reads the limit query parameter: 0 when it is not given.
func limitParam(q url.Values, max int) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, aramaki.Errorf(aramaki.EINVALID, "limit must be a number between 1 and %d", max)
	}
	return n, nil
}

// MaxBodySize bounds every request body.
const MaxBodySize = 1 << 20

//go:embed openapi.json
var openAPIDocument []byte

// API serves the JSON API.
type API struct {
	svc    *service.Service
	log    *slog.Logger
	opts   Options
	mux    *http.ServeMux
	routes []Route
	joins  chan struct{} // the joins of other servers under way: see join
}

// Options are what the API needs to know about the server it is part of.
type Options struct {
	// PublicURL is where agents reach the server; it goes into enrollment tokens.
	PublicURL string
	// CAFingerprint is the hex SHA-256 of the CA certificate agents must
	// see; empty for a plain-HTTP development server. Peers pin it too.
	CAFingerprint string
	// ServerName is what this server calls itself to its peers;
	// "aramaki" when empty.
	ServerName string
}

// Route is one method and path pattern of the API.
type Route struct {
	Method  string
	Pattern string
	handle  func(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error
}

// New returns the API over a service.
func New(svc *service.Service, log *slog.Logger, opts Options) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{svc: svc, log: log, opts: opts, mux: http.NewServeMux(), joins: make(chan struct{}, maxJoins)}
	a.routes = []Route{
		{"GET", "/healthz", a.healthz},
		{"GET", "/api/v1/openapi.json", a.openAPI},
		{"POST", "/api/v1/login", a.login},
		{"GET", "/api/v1/me", a.me},
		{"POST", "/api/v1/me/password", a.changePassword},

		{"GET", "/api/v1/systems", a.listSystems},
		{"GET", "/api/v1/systems/{id}", a.getSystem},
		{"GET", "/api/v1/systems/{id}/descendants", a.descendants},
		{"GET", "/api/v1/systems/{id}/ancestors", a.ancestors},
		{"POST", "/api/v1/systems/{id}/notes", a.postNote},
		{"POST", "/api/v1/systems/{id}/announcements", a.announce},
		{"GET", "/api/v1/systems/{id}/status", a.systemStatus},
		{"GET", "/api/v1/systems/{id}/checks/{check}", a.checkHistory},
		{"POST", "/api/v1/systems/{id}/checks/{check}/run", a.runCheck},
		{"GET", "/api/v1/systems/{id}/silences", a.systemSilences},
		{"GET", "/api/v1/systems/{id}/digest", a.digest},
		{"POST", "/api/v1/systems/{id}/actions/{action}/runs", a.requestRun},
		{"GET", "/api/v1/systems/{id}/actions/{action}/stats", a.runStats},
		{"POST", "/api/v1/systems/{id}/workflows/{workflow}/runs", a.requestWorkflow},

		{"GET", "/api/v1/alerts", a.listAlerts},
		{"GET", "/api/v1/alerts/{id}", a.getAlert},
		{"POST", "/api/v1/alerts/{id}/acknowledge", a.changeAlert(service.AlertAck)},
		{"POST", "/api/v1/alerts/{id}/assign", a.assignAlert},
		{"POST", "/api/v1/alerts/{id}/comment", a.changeAlert(service.AlertComment)},
		{"POST", "/api/v1/alerts/{id}/escalate", a.changeAlert(service.AlertEscalate)},
		{"POST", "/api/v1/alerts/{id}/resolve", a.changeAlert(service.AlertResolve)},
		{"POST", "/api/v1/alerts/acknowledge", a.acknowledgeAlerts},
		{"GET", "/api/v1/silences", a.listSilences},
		{"POST", "/api/v1/silences", a.createSilence},
		{"DELETE", "/api/v1/silences/{id}", a.endSilence},

		{"GET", "/api/v1/runs", a.listRuns},
		{"GET", "/api/v1/runs/{id}", a.getRun},
		{"POST", "/api/v1/runs/{id}/approve", change(a, (*service.Service).ApproveRun)},
		{"POST", "/api/v1/runs/{id}/cancel", change(a, (*service.Service).CancelRun)},
		{"GET", "/api/v1/workflow-runs", a.listWorkflowRuns},
		{"GET", "/api/v1/workflow-runs/{id}", a.getWorkflowRun},
		{"POST", "/api/v1/workflow-runs/{id}/approve", change(a, (*service.Service).ApproveWorkflowRun)},
		{"POST", "/api/v1/workflow-runs/{id}/cancel", change(a, (*service.Service).CancelWorkflowRun)},

		{"GET", "/api/v1/agents", a.listAgents},
		{"GET", "/api/v1/agents/{id}", a.getAgent},
		{"POST", "/api/v1/agents/{id}/revoke", a.revokeAgent},
		{"GET", "/api/v1/enrollment-tokens", a.listEnrollmentTokens},
		{"POST", "/api/v1/enrollment-tokens", a.createEnrollmentToken},

		{"GET", "/api/v1/timeline", a.timeline},
		{"GET", "/api/v1/events/{id}", a.getEvent},

		{"GET", "/api/v1/config", a.configState},
		{"POST", "/api/v1/config/reload", a.configReload},

		{"GET", "/api/v1/users", a.listUsers},
		{"POST", "/api/v1/users", a.createUser},
		{"POST", "/api/v1/users/{name}/disable", a.disableUser},
		{"POST", "/api/v1/users/{name}/enable", a.enableUser},
		{"PUT", "/api/v1/users/{name}/email", a.setUserEmail},
		{"GET", "/api/v1/tokens", a.listTokens},
		{"POST", "/api/v1/tokens", a.createToken},
		{"DELETE", "/api/v1/tokens/{id}", a.deleteToken},
		{"GET", "/api/v1/roles", a.listRoles},
		{"POST", "/api/v1/roles", a.grantRole},
		{"DELETE", "/api/v1/roles/{system}/{user}", a.revokeRole},

		{"GET", "/api/v1/federation/identity", a.identity},
		{"POST", "/api/v1/federation/identity/rotate", a.rotateKey},
		{"POST", "/api/v1/peers/invitations", a.invitePeer},
		{"POST", "/api/v1/peers/accept", a.acceptInvitation},
		{"GET", "/api/v1/peers", a.listPeers},
		{"DELETE", "/api/v1/peers/{name}", a.removePeer},
		{"POST", "/api/v1/grants", a.createGrant},
		{"GET", "/api/v1/grants", a.listGrants},
		{"GET", "/api/v1/grants/received", a.listReceivedGrants},
		{"POST", "/api/v1/grants/{id}/revoke", a.revokeGrant},
		// Other servers, not users: the invitation's secret is the credential.
		{"POST", "/federation/v1/join", a.join},
	}
	paths := http.NewServeMux() // the same paths, any method: to tell 405 from 404
	allowed := map[string][]string{}
	for _, rt := range a.routes {
		a.mux.HandleFunc(rt.Method+" "+rt.Pattern, a.wrap(rt.handle))
		if allowed[rt.Pattern] == nil {
			paths.HandleFunc(rt.Pattern, func(http.ResponseWriter, *http.Request) {})
		}
		allowed[rt.Pattern] = append(allowed[rt.Pattern], rt.Method)
	}
	fallback := func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := paths.Handler(r); pattern != "" {
			w.Header().Set("Allow", strings.Join(allowed[pattern], ", "))
			a.writeError(w, r, aramaki.Errorf(EMETHOD, "%s does not take %s; use %s", r.URL.Path, r.Method, strings.Join(allowed[pattern], " or ")))
			return
		}
		a.writeError(w, r, aramaki.Errorf(aramaki.ENOTFOUND, "no route %s %s", r.Method, r.URL.Path))
	}
	a.mux.HandleFunc("/api/", fallback)
	a.mux.HandleFunc("/federation/", fallback)
	return a
}

// Routes lists the routes, in the order they are declared.
func (a *API) Routes() []Route { return a.routes }

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	a.mux.ServeHTTP(w, r)
}

type principalKey struct{}

// Authenticate returns the principal of a request's bearer token; a request
// without one is anonymous, a request with a bad one is refused.
func (a *API) Authenticate(r *http.Request) (aramaki.Principal, error) {
	if p, ok := r.Context().Value(principalKey{}).(aramaki.Principal); ok {
		return p, nil
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return aramaki.Principal{}, nil
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return aramaki.Principal{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "use an Authorization: Bearer token")
	}
	return a.svc.AuthenticateToken(r.Context(), strings.TrimSpace(token))
}

// WithPrincipal lets another adapter (the web UI's session cookie) hand an
// already authenticated principal to the API.
func WithPrincipal(ctx context.Context, p aramaki.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func (a *API) wrap(h func(http.ResponseWriter, *http.Request, aramaki.Principal) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				a.log.Error("panic in API handler", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				a.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		p, err := a.Authenticate(r)
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			a.writeError(w, r, err)
		}
	}
}

// Status maps an error code to its HTTP status. This is the only place.
func Status(code string) int {
	switch code {
	case aramaki.EINVALID:
		return http.StatusBadRequest
	case aramaki.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case aramaki.EFORBIDDEN:
		return http.StatusForbidden
	case aramaki.ENOTFOUND:
		return http.StatusNotFound
	case aramaki.ECONFLICT:
		return http.StatusConflict
	case aramaki.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case aramaki.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case aramaki.ENOTIMPLEMENTED:
		return http.StatusNotImplemented
	case EMETHOD:
		return http.StatusMethodNotAllowed
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := aramaki.ErrorCode(err)
	if code == aramaki.EINTERNAL {
		a.log.Error("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if code == aramaki.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="aramaki"`)
	}
	var body ErrorBody
	body.Error.Code, body.Error.Message = code, aramaki.ErrorMessage(err)
	writeJSON(w, Status(code), body)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// decode reads a JSON request body strictly: JSON content type, bounded
// size, no unknown fields, one value only.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return aramaki.Errorf(aramaki.EINVALID, "send the body as application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodySize))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return aramaki.Errorf(aramaki.EINVALID, "the body must hold exactly one JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return aramaki.Errorf(aramaki.ETOOLARGE, "the body exceeds %d bytes", MaxBodySize)
	case errors.Is(err, io.EOF):
		return aramaki.Errorf(aramaki.EINVALID, "the body is empty; send a JSON object")
	case errors.As(err, &syntax):
		return aramaki.Errorf(aramaki.EINVALID, "malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return aramaki.Errorf(aramaki.EINVALID, "the body must be a JSON object")
	case errors.As(err, &typeErr):
		return aramaki.Errorf(aramaki.EINVALID, "field %q must be %s", typeErr.Field, typeErr.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return aramaki.Errorf(aramaki.EINVALID, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return aramaki.Errorf(aramaki.EINVALID, "malformed JSON body")
}

// parseTime reads a time parameter: RFC 3339, or a duration meaning that
// long ago ("24h", "90m").
func parseTime(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, aramaki.Errorf(aramaki.EINVALID, "%s must be an RFC 3339 time or a duration like 24h, not %q", name, v)
}
