package api

import (
	"net/http"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// MaxBulkAlerts bounds the alerts one bulk request may change.
const MaxBulkAlerts = 1000

// AlertsResponse is the review queue, newest first.
type AlertsResponse struct {
	Alerts []aramaki.Alert `json:"alerts"`
}

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := queryParams(r, "system", "category", "owner", "state", "older_than", "group", "limit"); err != nil {
		return err
	}
	q := r.URL.Query()
	aq := service.AlertQuery{System: q.Get("system"), Category: q.Get("category"), Owner: q.Get("owner"), Group: q.Get("group")}
	for _, st := range listParam(q, "state") {
		aq.States = append(aq.States, aramaki.AlertState(st))
	}
	var err error
	if aq.OlderThan, err = durationParam(q, "older_than", "1h", 0); err != nil {
		return err
	}
	if aq.Limit, err = limitParam(q, service.MaxAlertLimit); err != nil {
		return err
	}
	alerts, err := a.svc.Alerts(r.Context(), p, aq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, AlertsResponse{Alerts: alerts})
}

func (a *API) getAlert(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	v, err := a.svc.Alert(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// AlertChangeRequest is the body of acknowledge, comment, escalate and
// resolve: an optional text (required for a comment) noted on the alert.
type AlertChangeRequest struct {
	Text string `json:"text"`
}

// changeAlert returns the handler of one change. The body may be left out
// where the text is optional.
func (a *API) changeAlert(change service.AlertChange) func(http.ResponseWriter, *http.Request, aramaki.Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
		var req AlertChangeRequest
		if r.ContentLength != 0 {
			if err := decode(w, r, &req); err != nil {
				return err
			}
		}
		alert, err := a.svc.ChangeAlert(r.Context(), p, r.PathValue("id"), change, req.Text)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, alert)
	}
}

// AssignRequest names the user an alert is assigned to.
type AssignRequest struct {
	User string `json:"user"`
}

func (a *API) assignAlert(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req AssignRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	alert, err := a.svc.ChangeAlert(r.Context(), p, r.PathValue("id"), service.AlertAssign, req.User)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, alert)
}

// BulkAckRequest acknowledges several alerts with one text.
type BulkAckRequest struct {
	IDs  []string `json:"ids"`
	Text string   `json:"text"`
}

// BulkResult is what became of one alert of a bulk request: OK, or the
// error's code and message.
type BulkResult struct {
	ID    string `json:"id"`
	OK    bool   `json:"ok"`
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// BulkResponse has one result per id, in the order of the request.
type BulkResponse struct {
	Results []BulkResult `json:"results"`
}

// acknowledgeAlerts acknowledges each alert on its own: one that cannot be
// (gone, not visible, acknowledged already) does not hold up the others.
func (a *API) acknowledgeAlerts(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if p.Anonymous() {
		// One answer for nobody logged in, rather than one per alert.
		return aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
	}
	var req BulkAckRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	switch {
	case len(req.IDs) == 0:
		return aramaki.Errorf(aramaki.EINVALID, "give the ids of the alerts to acknowledge")
	case len(req.IDs) > MaxBulkAlerts:
		return aramaki.Errorf(aramaki.EINVALID, "at most %d alerts at once, not %d", MaxBulkAlerts, len(req.IDs))
	case len(req.Text) > service.MaxCommentLen:
		// Checked once here rather than failing every alert alike.
		return aramaki.Errorf(aramaki.EINVALID, "the comment is longer than %d bytes", service.MaxCommentLen)
	}
	resp := BulkResponse{Results: make([]BulkResult, 0, len(req.IDs))}
	for _, id := range req.IDs {
		if err := r.Context().Err(); err != nil {
			return err
		}
		res := BulkResult{ID: id, OK: true}
		if _, err := a.svc.ChangeAlert(r.Context(), p, id, service.AlertAck, req.Text); err != nil {
			res = BulkResult{ID: id, Code: aramaki.ErrorCode(err), Error: aramaki.ErrorMessage(err)}
			if res.Code == aramaki.EINTERNAL {
				a.log.Error("acknowledge alert", "id", id, "err", err)
			}
		}
		resp.Results = append(resp.Results, res)
	}
	return writeJSON(w, http.StatusOK, resp)
}

// SilencesResponse lists silences by start.
type SilencesResponse struct {
	Silences []aramaki.Silence `json:"silences"`
}

func (a *API) listSilences(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	silences, err := a.svc.Silences(r.Context(), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, SilencesResponse{Silences: silences})
}

func (a *API) systemSilences(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	silences, err := a.svc.SilencesOn(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, SilencesResponse{Silences: silences})
}

// SilenceRequest asks for a silence: from start (RFC 3339; empty: now)
// until end (RFC 3339) or for a duration (like 2h), one of the two.
type SilenceRequest struct {
	System        string `json:"system"`
	Start         string `json:"start,omitempty"`
	End           string `json:"end,omitempty"`
	Duration      string `json:"duration,omitempty"`
	Reason        string `json:"reason"`
	Maintenance   bool   `json:"maintenance,omitempty"`
	UntilResolved bool   `json:"until_resolved,omitempty"`
}

func (a *API) createSilence(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req SilenceRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	sr := service.SilenceRequest{System: req.System, Reason: req.Reason, Maintenance: req.Maintenance, UntilResolved: req.UntilResolved}
	var err error
	if sr.Start, err = parseRFC3339("start", req.Start); err != nil {
		return err
	}
	if sr.End, err = parseRFC3339("end", req.End); err != nil {
		return err
	}
	if req.Duration != "" {
		if sr.Duration, err = time.ParseDuration(req.Duration); err != nil || sr.Duration <= 0 {
			return aramaki.Errorf(aramaki.EINVALID, "duration must be a positive duration like 2h or 90m, not %q", req.Duration)
		}
	}
	sl, err := a.svc.CreateSilence(r.Context(), p, sr)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, sl)
}

// endSilence ends a silence early; it stays in the history, ended.
func (a *API) endSilence(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	sl, err := a.svc.EndSilence(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sl)
}

// parseRFC3339 reads an optional time field of a body.
func parseRFC3339(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, aramaki.Errorf(aramaki.EINVALID, "%s must be an RFC 3339 time like 2026-11-24T03:00:00Z, not %q", name, v)
	}
	return t, nil
}

// digest reviews a system and everything under it over a period (default
// a week): the noisiest checks, the always broken, the unacknowledged
// alerts and the silences about to end.
func (a *API) digest(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := queryParams(r, "period"); err != nil {
		return err
	}
	period, err := durationParam(r.URL.Query(), "period", "168h", service.DefaultDigestPeriod)
	if err != nil {
		return err
	}
	d, err := a.svc.Digest(r.Context(), p, r.PathValue("id"), period)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}
