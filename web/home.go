package web

import (
	"net/http"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// anchorStatus is an anchor system with its rolled-up status.
type anchorStatus struct {
	System service.SystemView
	Status service.StatusView
}

// homePage: the anchor systems the user can see with their rolled-up status
// and the layer below one click away, and what changed in the last 24 h.
func (u *UI) homePage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	systems, err := u.svc.Systems(ctx, s.Principal, service.SystemFilter{Anchors: true})
	if err != nil {
		return err
	}
	anchors := make([]anchorStatus, 0, len(systems))
	for _, sys := range systems {
		st, err := u.svc.SystemStatus(ctx, s.Principal, sys.ID)
		if err != nil {
			return err
		}
		anchors = append(anchors, anchorStatus{System: sys, Status: st})
	}
	tl, err := u.svc.Timeline(ctx, s.Principal, service.TimelineRequest{Since: u.opts.Now().Add(-24 * time.Hour), Limit: 20})
	if err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "home", s, map[string]any{
		"Anchors": anchors, "Events": tl.Events,
	})
	return nil
}

// stripDays is how many days the strip of each check shows.
const stripDays = 30

// checkStrip is a check's state with its last days, for the strip.
type checkStrip struct {
	State aramaki.CheckState
	Days  []aramaki.DayStatus
}

// systemPage shows one system: what it is, its rules and people, its status
// with the problems first, and the systems above and below it.
func (u *UI) systemPage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	id := r.PathValue("id")
	sys, err := u.svc.System(ctx, s.Principal, id)
	if err != nil {
		return err
	}
	st, err := u.svc.SystemStatus(ctx, s.Principal, id)
	if err != nil {
		return err
	}
	tl, err := u.svc.Timeline(ctx, s.Principal, service.TimelineRequest{System: id, Limit: 20})
	if err != nil {
		return err
	}
	// Each own check with its 30-day strip: always broken, or just broke?
	var checks []checkStrip
	histories := map[string]service.CheckHistory{}
	for _, c := range st.Checks {
		h, ok := histories[c.Check]
		if !ok {
			if h, err = u.svc.CheckHistory(ctx, s.Principal, id, c.Check); err != nil {
				return err
			}
			histories[c.Check] = h
		}
		var mine []aramaki.StatusChange
		for _, ch := range h.Changes {
			if ch.Agent == c.Agent {
				mine = append(mine, ch)
			}
		}
		checks = append(checks, checkStrip{State: c, Days: aramaki.DailyStatuses(mine, c, stripDays, u.opts.Now())})
	}
	u.render(w, r, http.StatusOK, "system", s, map[string]any{
		"System": sys, "Status": st, "Events": tl.Events, "Checks": checks,
		"CanPost": !s.Anonymous() && (sys.Role == aramaki.RoleOperator || sys.Role == aramaki.RoleAdmin || s.GlobalRole() == aramaki.RoleAdmin),
	})
	return nil
}

// postNote puts a note on the system's timeline and goes back to the page.
func (u *UI) postNote(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	id := r.PathValue("id")
	if _, err := u.svc.PostNote(r.Context(), s.Principal, id, r.PostFormValue("text")); err != nil {
		return err
	}
	http.Redirect(w, r, "/systems/"+id, http.StatusSeeOther)
	return nil
}
