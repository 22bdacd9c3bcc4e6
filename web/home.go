package web

import (
	"net/http"
	"slices"
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

// systemPage shows one system: what it is, its rules and people, its status
// with the problems and open alerts first, the silences on it, its actions
// with their rules, recent runs and durations (and for those who may, the
// form to run each), and the systems above and below it.
func (u *UI) systemPage(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.renderSystem(w, r, s, r.PathValue("id"), http.StatusOK, "")
}

// renderSystem draws the system page, with a message at the top when a
// form on it was refused.
func (u *UI) renderSystem(w http.ResponseWriter, r *http.Request, s *session, id string, status int, msg string) error {
	return u.renderSystemWith(w, r, s, id, status, msg, nil)
}

// renderSystemWith draws the system page, and an action's form filled
// again with why the run it asked for was refused.
func (u *UI) renderSystemWith(w http.ResponseWriter, r *http.Request, s *session, id string, status int, msg string, attempt *runAttempt) error {
	ctx := r.Context()
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
	checks, err := u.svc.CheckStrips(ctx, s.Principal, id, stripDays)
	if err != nil {
		return err
	}
	alerts, err := u.svc.Alerts(ctx, s.Principal, service.AlertQuery{System: id,
		States: []aramaki.AlertState{aramaki.AlertOpen, aramaki.AlertAcknowledged}, Limit: systemAlerts})
	if err != nil {
		return err
	}
	silences, err := u.svc.SilencesOn(ctx, s.Principal, id)
	if err != nil {
		return err
	}
	actions, err := u.actionCards(ctx, s, sys, attempt)
	if err != nil {
		return err
	}
	workflows, err := u.workflowCards(ctx, s, sys)
	if err != nil {
		return err
	}
	if attempt != nil && !slices.ContainsFunc(actions, func(c actionCard) bool { return c.Name == attempt.Action }) {
		msg = attempt.Error // no card to say it in
	}
	g, now := u.svc.Graph(), u.opts.Now()
	views := make([]silenceView, 0, len(silences))
	for _, sl := range silences {
		views = append(views, silenceView{Silence: sl, Active: sl.ActiveAt(now), CanEnd: canOperate(g, s.Principal, sl.System)})
	}
	operator := sys.Role.AtLeast(aramaki.RoleOperator)
	u.render(w, r, status, "system", s, map[string]any{
		"System": sys, "Status": st, "Events": tl.Events, "Checks": checks,
		"Alerts": alerts, "MoreAlerts": len(alerts) == systemAlerts, "Silences": views,
		"CanPost": operator, "CanSilence": operator, "Durations": silenceDurations, "Error": msg,
		"Actions": actions, "Workflows": workflows,
	})
	return nil
}

// agentCheck is a check on one agent: its statistics and its strip.
type agentCheck struct {
	service.AgentCheckHistory
	Days []aramaki.DayStatus
}

// checkPage answers "is this always broken?" for one check: per agent its
// strip, time in each status over 24 h, 7 d and 30 d, changes and whether it
// flaps; then its changes and latest results.
func (u *UI) checkPage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	id, check := r.PathValue("id"), r.PathValue("check")
	h, err := u.svc.CheckHistory(ctx, s.Principal, id, check)
	if err != nil {
		return err
	}
	strips, err := u.svc.CheckStrips(ctx, s.Principal, id, stripDays)
	if err != nil {
		return err
	}
	agents := make([]agentCheck, 0, len(h.Agents))
	for _, a := range h.Agents {
		ac := agentCheck{AgentCheckHistory: a}
		for _, st := range strips {
			if st.State.Check == check && st.State.Agent == a.Agent {
				ac.Days = st.Days
			}
		}
		agents = append(agents, ac)
	}
	u.render(w, r, http.StatusOK, "check", s, map[string]any{"History": h, "Agents": agents})
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
