package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

// silenceDurations are the lengths the system page offers; the second is
// the default.
var silenceDurations = []struct {
	Name string
	D    time.Duration
}{{"30m", 30 * time.Minute}, {"1h", time.Hour}, {"2h", 2 * time.Hour}, {"4h", 4 * time.Hour}, {"1d", 24 * time.Hour}}

// silenceView is a silence covering the system on its page.
type silenceView struct {
	aramaki.Silence
	Active bool // muting now, not yet to come
	CanEnd bool
}

// endLayouts are what a datetime-local field sends, and what people type.
var endLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04"}

// createSilence silences a system (and everything under it) for a chosen
// duration or until a time given in UTC.
func (u *UI) createSilence(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	req := service.SilenceRequest{System: id, Reason: r.PostFormValue("reason"),
		Maintenance: r.PostFormValue("maintenance") != "", UntilResolved: r.PostFormValue("until_resolved") != ""}
	if start := strings.TrimSpace(r.PostFormValue("start")); start != "" {
		if req.Start = parseFormTime(start); req.Start.IsZero() {
			return u.renderSystem(w, r, s, id, http.StatusBadRequest, fmt.Sprintf("The start %q is not a time like 2030-01-31 06:00.", start))
		}
	}
	if end := strings.TrimSpace(r.PostFormValue("end")); end != "" {
		if req.End = parseFormTime(end); req.End.IsZero() {
			return u.renderSystem(w, r, s, id, http.StatusBadRequest, fmt.Sprintf("The end %q is not a time like 2030-01-31 18:00.", end))
		}
	} else {
		for _, d := range silenceDurations {
			if d.Name == r.PostFormValue("duration") {
				req.Duration = d.D
			}
		}
		if req.Duration == 0 {
			return u.renderSystem(w, r, s, id, http.StatusBadRequest, "Choose how long the silence lasts, or when it ends.")
		}
	}
	if _, err := u.svc.CreateSilence(r.Context(), s.Principal, req); err != nil {
		return u.formError(w, r, s, id, err)
	}
	http.Redirect(w, r, "/systems/"+url.PathEscape(id)+"#silences", http.StatusSeeOther)
	return nil
}

// parseFormTime reads a time in UTC from a form field; zero if it is none.
func parseFormTime(v string) time.Time {
	for _, layout := range endLayouts {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t
		}
	}
	return time.Time{}
}

// endSilence ends a silence now and goes back to the system page the
// button was on.
func (u *UI) endSilence(w http.ResponseWriter, r *http.Request, s *session) error {
	back := r.PostFormValue("system")
	if aramaki.ValidateSystemID(back) != nil {
		back = ""
	}
	if _, err := u.svc.EndSilence(r.Context(), s.Principal, r.PathValue("id")); err != nil {
		if back == "" {
			return err
		}
		return u.formError(w, r, s, back, err)
	}
	if back == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, "/systems/"+url.PathEscape(back)+"#silences", http.StatusSeeOther)
	return nil
}

// formError shows a refused change on the system page when people can do
// something about it (bad input, over already, not allowed); anything else
// is an error page.
func (u *UI) formError(w http.ResponseWriter, r *http.Request, s *session, system string, err error) error {
	if code := aramaki.ErrorCode(err); code == aramaki.ECONFLICT || code == aramaki.EFORBIDDEN || code == aramaki.EINVALID {
		return u.renderSystem(w, r, s, system, api.Status(code), aramaki.ErrorMessage(err))
	}
	return err
}
