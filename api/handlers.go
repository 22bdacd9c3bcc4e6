package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

func (a *API) healthz(w http.ResponseWriter, r *http.Request, _ aramaki.Principal) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) openAPI(w http.ResponseWriter, r *http.Request, _ aramaki.Principal) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openAPIDocument)
	return err
}

type loginRequest struct {
	User      string `json:"user"`
	Password  string `json:"password"`
	TokenName string `json:"token_name"`
	ExpiresIn string `json:"expires_in"`
}

func (a *API) login(w http.ResponseWriter, r *http.Request, _ aramaki.Principal) error {
	var req loginRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ttl, err := parseTTL(req.ExpiresIn, 30*24*time.Hour)
	if err != nil {
		return err
	}
	tok, err := a.svc.Login(r.Context(), req.User, req.Password, req.TokenName, ttl)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, tok)
}

func (a *API) me(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	me, err := a.svc.WhoAmI(p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, me)
}

type passwordRequest struct {
	Current string `json:"current"`
	New     string `json:"new"`
}

func (a *API) changePassword(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req passwordRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := a.svc.ChangePassword(r.Context(), p, req.Current, req.New); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listSystems(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := queryParams(r, "anchors", "category"); err != nil {
		return err
	}
	q := r.URL.Query()
	anchors, err := parseBool("anchors", q.Get("anchors"))
	if err != nil {
		return err
	}
	systems, err := a.svc.Systems(r.Context(), p, service.SystemFilter{Anchors: anchors, Category: q.Get("category")})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"systems": systems})
}

func (a *API) getSystem(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	sys, err := a.svc.System(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sys)
}

func (a *API) descendants(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	systems, err := a.svc.Descendants(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"systems": systems})
}

func (a *API) ancestors(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	systems, err := a.svc.Ancestors(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"systems": systems})
}

type noteRequest struct {
	Text string `json:"text"`
}

func (a *API) postNote(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req noteRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ev, err := a.svc.PostNote(r.Context(), p, r.PathValue("id"), req.Text)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ev)
}

// AnnouncementRequest announces an incident or planned maintenance.
type AnnouncementRequest struct {
	Kind string `json:"kind"` // incident or maintenance
	Text string `json:"text"`
}

func (a *API) announce(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req AnnouncementRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ev, err := a.svc.Announce(r.Context(), p, r.PathValue("id"), req.Kind, req.Text)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ev)
}

// TimelineResponse is a page of the timeline.
type TimelineResponse struct {
	Events     []aramaki.Event `json:"events"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

func (a *API) timeline(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := queryParams(r, "system", "kind", "since", "until", "cursor", "limit"); err != nil {
		return err
	}
	q := r.URL.Query()
	now := time.Now()
	req := service.TimelineRequest{System: q.Get("system"), Cursor: q.Get("cursor")}
	var err error
	if req.Since, err = parseTime("since", q.Get("since"), now); err != nil {
		return err
	}
	if req.Until, err = parseTime("until", q.Get("until"), now); err != nil {
		return err
	}
	for _, k := range q["kind"] {
		for _, kind := range strings.Split(k, ",") {
			if kind = strings.TrimSpace(kind); kind != "" {
				req.Kinds = append(req.Kinds, aramaki.EventKind(kind))
			}
		}
	}
	if v := q.Get("limit"); v != "" {
		if req.Limit, err = strconv.Atoi(v); err != nil || req.Limit < 1 {
			return aramaki.Errorf(aramaki.EINVALID, "limit must be a number between 1 and %d", aramaki.MaxTimelineLimit)
		}
	}
	page, err := a.svc.Timeline(r.Context(), p, req)
	if err != nil {
		return err
	}
	resp := TimelineResponse{Events: page.Events}
	if page.Next != nil {
		resp.NextCursor = page.Next.String()
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	ev, err := a.svc.Event(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ev)
}

func (a *API) configState(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	st, err := a.svc.ConfigState(r.Context(), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (a *API) configReload(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	res, err := a.svc.ReloadConfig(r.Context(), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	users, err := a.svc.Users(r.Context(), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"users": users})
}

type userRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req userRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	u, err := a.svc.CreateUser(r.Context(), p, req.Name, req.Password)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, u)
}

func (a *API) disableUser(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := a.svc.SetUserDisabled(r.Context(), p, r.PathValue("name"), true); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) enableUser(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := a.svc.SetUserDisabled(r.Context(), p, r.PathValue("name"), false); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// UserEmailRequest sets (or, empty, clears) a user's e-mail address.
type UserEmailRequest struct {
	Email string `json:"email"`
}

func (a *API) setUserEmail(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req UserEmailRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := a.svc.SetUserEmail(r.Context(), p, r.PathValue("name"), req.Email); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	tokens, err := a.svc.Tokens(r.Context(), p)
	if err != nil {
		return err
	}
	if tokens == nil {
		tokens = []aramaki.Token{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"tokens": tokens})
}

type tokenRequest struct {
	Name      string `json:"name"`
	ExpiresIn string `json:"expires_in"`
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req tokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ttl, err := parseTTL(req.ExpiresIn, 0)
	if err != nil {
		return err
	}
	tok, err := a.svc.CreateToken(r.Context(), p, req.Name, ttl)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, tok)
}

func (a *API) deleteToken(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := a.svc.DeleteToken(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listRoles(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	bindings, err := a.svc.RoleBindings(r.Context(), p, r.URL.Query().Get("system"))
	if err != nil {
		return err
	}
	if bindings == nil {
		bindings = []aramaki.RoleBinding{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"roles": bindings})
}

type roleRequest struct {
	User   string       `json:"user"`
	System string       `json:"system"`
	Role   aramaki.Role `json:"role"`
}

func (a *API) grantRole(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req roleRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	b, err := a.svc.GrantRole(r.Context(), p, req.User, req.System, req.Role)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, b)
}

func (a *API) revokeRole(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := a.svc.RevokeRole(r.Context(), p, r.PathValue("user"), r.PathValue("system")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func parseBool(name, v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, aramaki.Errorf(aramaki.EINVALID, "%s must be true or false", name)
	}
	return b, nil
}

// parseTTL reads a lifetime like "720h"; empty means def, "0" no expiry.
func parseTTL(v string, def time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, aramaki.Errorf(aramaki.EINVALID, "expires_in must be a duration like 720h, not %q", v)
	}
	return d, nil
}
