package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

// What the system page shows of each action.
const (
	recentRuns   = 3                   // runs listed per action
	systemRuns   = 200                 // newest runs of the system looked at for them
	chartPeriod  = 30 * 24 * time.Hour // the duration chart's span
	paramPrefix  = "p."                // form fields of parameters: p.NAME
	confirmField = "confirm"
)

// actionCard is an action on the system page: what it does, its rule,
// who may run it, on which hosts, how its recent runs went, and for those
// who may, the form to run it.
type actionCard struct {
	aramaki.ActionRef
	Role   aramaki.Role // who may run it
	CanRun bool
	Hosts  []service.AgentView // the hosts a run would run on
	Fields []paramField
	Recent []aramaki.Run // newest first
	Stats  aramaki.RunStats
	Chart  durationChart
	// A refused attempt: why, and what was sent, to fill the form again.
	Error  string
	Reason string
}

// runAttempt is a run the system page's form asked for and the service
// refused.
type runAttempt struct {
	Action string
	Form   url.Values
	Error  string
}

// paramField is a parameter as a form field.
type paramField struct {
	aramaki.Param
	Field    string // the form field's name
	Value    string // filled in: what was sent, else the default
	Checked  bool   // a bool's checkbox
	Required bool
	Pattern  string // the pattern as the browser checks it; empty when it cannot
	Hint     string // the pattern in words, for people and for the cases the browser cannot check
}

// actionCards builds the system page's actions: one query for the
// system's recent runs, one for its agents, and each action's statistics.
func (u *UI) actionCards(ctx context.Context, s *session, sys service.SystemView, attempt *runAttempt) ([]actionCard, error) {
	if len(sys.Actions) == 0 || s.Anonymous() {
		return nil, nil
	}
	runs, err := u.svc.Runs(ctx, s.Principal, service.RunQuery{System: sys.ID, Since: chartPeriod, Limit: systemRuns})
	if err != nil {
		return nil, err
	}
	agents, err := u.svc.Agents(ctx, s.Principal)
	if err != nil {
		return nil, err
	}
	now := u.opts.Now()
	cards := make([]actionCard, 0, len(sys.Actions))
	for _, ref := range sys.Actions {
		c := actionCard{ActionRef: ref, Role: ref.RunRole(), CanRun: sys.Role.AtLeast(ref.RunRole())}
		for _, r := range runs {
			if r.System == sys.ID && r.Action == ref.Name && len(c.Recent) < recentRuns {
				c.Recent = append(c.Recent, r)
			}
		}
		spec, hosts := actionHosts(agents, sys.ID, ref)
		c.Hosts = hosts
		var form url.Values
		if attempt != nil && attempt.Action == ref.Name {
			c.Error, form = attempt.Error, attempt.Form
			c.Reason = form.Get("reason")
		}
		c.Fields = paramFields(spec, form)
		if c.Stats, err = u.svc.RunStats(ctx, s.Principal, sys.ID, ref.Name, chartPeriod); err != nil {
			return nil, err
		}
		c.Chart = makeChart(c.Stats.Durations, now.Add(-chartPeriod), now)
		cards = append(cards, c)
	}
	return cards, nil
}

// actionHosts are the hosts a run of an action on a system runs on, as
// the service picks them: not revoked, of the system, named by the action
// if it names any, allowing it. The form's fields come from the first
// one's declaration (each host checks the values against its own).
func actionHosts(agents []service.AgentView, system string, ref aramaki.ActionRef) (aramaki.ActionSpec, []service.AgentView) {
	var (
		spec  aramaki.ActionSpec
		hosts []service.AgentView
	)
	for _, a := range agents {
		if a.Revoked != nil || !slices.Contains(a.Systems, system) || len(ref.Agents) > 0 && !slices.Contains(ref.Agents, a.Name) {
			continue
		}
		s, ok := a.Action(ref.Name)
		if !ok {
			continue
		}
		if len(hosts) == 0 {
			spec = s
		}
		hosts = append(hosts, a)
	}
	return spec, hosts
}

// paramFields makes the form fields of an action's parameters, filled with
// what was sent or else the defaults.
func paramFields(spec aramaki.ActionSpec, form url.Values) []paramField {
	fields := make([]paramField, 0, len(spec.Params))
	for _, p := range spec.Params {
		f := paramField{Param: p, Field: paramPrefix + p.Name, Required: p.Default == nil}
		if p.Default != nil {
			f.Value = *p.Default
		}
		if form != nil {
			f.Value = form.Get(f.Field)
		}
		switch p.Type {
		case aramaki.ParamBool:
			f.Checked, _ = strconv.ParseBool(f.Value)
			f.Required = false // unticked is false
		case aramaki.ParamString:
			pat := p.Pattern
			if pat == "" {
				pat = aramaki.DefaultParamPattern
				f.Hint = "a plain word, path or host name"
			} else {
				f.Hint = "must match " + p.Pattern
			}
			f.Pattern, _ = jsPattern(pat)
		}
		fields = append(fields, f)
	}
	return fields
}

// paramValues reads the parameters from a run form: a bool is its
// checkbox, an empty field is left out (its default applies, or the
// service says it is needed).
func paramValues(spec aramaki.ActionSpec, form url.Values) map[string]string {
	values := map[string]string{}
	for _, p := range spec.Params {
		v := form.Get(paramPrefix + p.Name)
		switch {
		case p.Type == aramaki.ParamBool:
			values[p.Name] = strconv.FormatBool(v != "")
		case v != "":
			values[p.Name] = v
		}
	}
	return values
}

// requestRun runs an action from the system page's form and goes to the
// run's page; a refused run is said in the action's card, the form filled
// again.
func (u *UI) requestRun(w http.ResponseWriter, r *http.Request, s *session) error {
	id, action := r.PathValue("id"), r.PathValue("action")
	refuse := func(err error) error {
		switch aramaki.ErrorCode(err) {
		case aramaki.EINVALID, aramaki.EFORBIDDEN, aramaki.ECONFLICT, aramaki.ENOTFOUND:
			// A hidden system stays an error page: drawing it fails.
			return u.renderSystemWith(w, r, s, id, api.Status(aramaki.ErrorCode(err)), "",
				&runAttempt{Action: action, Form: r.PostForm, Error: aramaki.ErrorMessage(err)})
		}
		return err
	}
	if r.PostFormValue(confirmField) == "" {
		return refuse(aramaki.Errorf(aramaki.EINVALID, "Tick “I have read the rule” first."))
	}
	var spec aramaki.ActionSpec
	if ref, ok := systemAction(u.svc.Graph(), id, action); ok {
		agents, err := u.svc.Agents(r.Context(), s.Principal)
		if err != nil {
			return err
		}
		spec, _ = actionHosts(agents, id, ref)
	}
	run, err := u.svc.RequestRun(r.Context(), s.Principal, service.RunRequest{
		System: id, Action: action, Reason: r.PostFormValue("reason"),
		Params: paramValues(spec, r.PostForm), BreakGlass: r.PostFormValue("break_glass") != "",
	})
	if err != nil {
		return refuse(err)
	}
	http.Redirect(w, r, "/runs/"+url.PathEscape(run.ID), http.StatusSeeOther)
	return nil
}

// systemAction finds an action on a system.
func systemAction(g *aramaki.Graph, system, action string) (aramaki.ActionRef, bool) {
	if sys := g.System(system); sys != nil {
		for _, a := range sys.Actions {
			if a.Name == action {
				return a, true
			}
		}
	}
	return aramaki.ActionRef{}, false
}

// Chart geometry, in the SVG's own units; it is stretched to the width.
const (
	chartWidth  = 300.0
	chartHeight = 60.0
	barWidth    = 3.0
)

// durationChart is how long an action's runs took: one bar per finished
// run, placed at when it ended over the period, as tall as it took,
// coloured by how it ended. Drawn on the server as SVG: no script.
type durationChart struct {
	Bars    []durationBar
	Longest time.Duration
	From    time.Time
}

type durationBar struct {
	X, Y, W, H string
	Class      string
	Title      string
}

func makeChart(points []aramaki.RunPoint, from, to time.Time) durationChart {
	c := durationChart{From: from}
	for _, p := range points {
		c.Longest = max(c.Longest, p.Duration)
	}
	span := to.Sub(from)
	for _, p := range points {
		x := 0.0
		if span > 0 {
			x = float64(p.Ended.Sub(from)) / float64(span) * (chartWidth - barWidth)
		}
		x = min(max(x, 0), chartWidth-barWidth)
		h := chartHeight
		if c.Longest > 0 {
			h = float64(p.Duration) / float64(c.Longest) * chartHeight
		}
		h = max(h, 1) // an instant run still shows
		class := "d-succeeded"
		switch p.State {
		case aramaki.RunFailed, aramaki.RunTimedOut:
			class = "d-failed"
		case aramaki.RunCancelled:
			class = "d-cancelled"
		}
		c.Bars = append(c.Bars, durationBar{
			X: fmt.Sprintf("%.1f", x), Y: fmt.Sprintf("%.1f", chartHeight-h),
			W: fmt.Sprintf("%.0f", barWidth), H: fmt.Sprintf("%.1f", h), Class: class,
			Title: fmt.Sprintf("%s: %s, %s", p.Ended.UTC().Format("Mon 2 Jan 15:04"), formatDuration(p.Duration), stateWord(p.State)),
		})
	}
	return c
}

// failureRate is the share of runs that failed or timed out, in words.
func failureRate(st aramaki.RunStats) string {
	if st.Runs == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", float64(st.Failed)/float64(st.Runs)*100)
}

// formatDuration says how long something took, as precisely as matters.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Round(time.Second).Seconds()))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
}

// stateWord is a run state for people: "timed out", not "timed_out".
func stateWord(st aramaki.RunState) string {
	return strings.ReplaceAll(string(st), "_", " ")
}
