package api

import (
	"net/http"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/wire"
)

func (a *API) systemStatus(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	v, err := a.svc.SystemStatus(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (a *API) checkHistory(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	h, err := a.svc.CheckHistory(r.Context(), p, r.PathValue("id"), r.PathValue("check"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h)
}

type runCheckRequest struct {
	Wait string `json:"wait"`
}

// RunCheckResponse holds the results of an ad hoc run that arrived in time.
type RunCheckResponse struct {
	Results []aramaki.CheckResult `json:"results"`
}

func (a *API) runCheck(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req runCheckRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			return err
		}
	}
	wait, err := parseTTL(req.Wait, 0)
	if err != nil || wait > 5*time.Minute {
		return aramaki.Errorf(aramaki.EINVALID, "wait must be a duration up to 5m")
	}
	results, err := a.svc.RunCheck(r.Context(), p, r.PathValue("id"), r.PathValue("check"), wait)
	if err != nil {
		return err
	}
	if results == nil {
		results = []aramaki.CheckResult{}
	}
	return writeJSON(w, http.StatusOK, RunCheckResponse{Results: results})
}

func (a *API) listAgents(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	agents, err := a.svc.Agents(r.Context(), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"agents": agents})
}

func (a *API) getAgent(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	d, err := a.svc.Agent(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

func (a *API) revokeAgent(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := a.svc.RevokeAgent(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listEnrollmentTokens(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	tokens, err := a.svc.EnrollmentTokens(r.Context(), p)
	if err != nil {
		return err
	}
	if tokens == nil {
		tokens = []aramaki.EnrollmentToken{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"tokens": tokens})
}

type enrollmentRequest struct {
	Systems   []string `json:"systems"`
	ExpiresIn string   `json:"expires_in"`
}

// EnrollmentResponse carries a new enrollment token: shown only now.
type EnrollmentResponse struct {
	aramaki.EnrollmentToken
	Token string `json:"token"`
}

func (a *API) createEnrollmentToken(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req enrollmentRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ttl, err := parseTTL(req.ExpiresIn, 0)
	if err != nil {
		return err
	}
	if a.opts.PublicURL == "" {
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "this server does not know its public URL; start it with --public-url")
	}
	t, err := a.svc.CreateEnrollmentToken(r.Context(), p, req.Systems, ttl)
	if err != nil {
		return err
	}
	tok := wire.EnrollmentToken{URL: a.opts.PublicURL, CASHA256: a.opts.CAFingerprint, ID: t.ID, Secret: t.Secret}
	return writeJSON(w, http.StatusCreated, EnrollmentResponse{EnrollmentToken: t.EnrollmentToken, Token: tok.String()})
}
