package web

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

// What the pages show of workflows.
const (
	recentWorkflowRuns = 3   // workflow runs listed per workflow on the system page
	systemWorkflowRuns = 100 // newest workflow runs of the system looked at for them
	workflowRunsLimit  = 100 // workflow runs the list shows
	inputPrefix        = "i."
)

// workflowCard is a workflow on the system page, and the form on its dry
// run's page: what it does step by step, its rule, who may run it, how its
// recent runs went, and for those who may, the form to run it.
type workflowCard struct {
	aramaki.Workflow
	System   string
	Role     aramaki.Role // who may run it
	Approval bool         // a second person approves each run: the workflow, or a step's action, says so
	CanRun   bool
	Steps    []string // each step in words
	Fields   []inputField
	Reason   string // what was sent, to fill the form again
	Recent   []aramaki.WorkflowRun
}

// inputField is a workflow's input as a form field.
type inputField struct {
	aramaki.WorkflowInput
	Field    string // the form field's name
	Value    string // what was sent, else the default
	Required bool
}

// workflowCards builds the system page's workflows, with one query for the
// system's recent workflow runs.
func (u *UI) workflowCards(ctx context.Context, s *session, sys service.SystemView) ([]workflowCard, error) {
	if len(sys.Workflows) == 0 || s.Anonymous() {
		return nil, nil
	}
	runs, err := u.svc.WorkflowRuns(ctx, s.Principal, service.WorkflowRunQuery{System: sys.ID, Limit: systemWorkflowRuns})
	if err != nil {
		return nil, err
	}
	g := u.svc.Graph()
	cards := make([]workflowCard, 0, len(sys.Workflows))
	for _, wf := range sys.Workflows {
		c := makeWorkflowCard(g, s.Principal, sys.ID, wf, nil)
		for _, r := range runs {
			if r.System == sys.ID && r.Workflow.Name == wf.Name && len(c.Recent) < recentWorkflowRuns {
				c.Recent = append(c.Recent, r)
			}
		}
		cards = append(cards, c)
	}
	return cards, nil
}

// makeWorkflowCard describes a workflow of a system to a user, its form
// filled with what was sent, else the defaults. The user may run it with
// the workflow's role on its system and each step's action's role on the
// step's system, as the service checks.
func makeWorkflowCard(g *aramaki.Graph, p aramaki.Principal, system string, wf aramaki.Workflow, form url.Values) workflowCard {
	c := workflowCard{Workflow: wf, System: system, Role: wf.RunRole(), Approval: wf.Approval,
		CanRun: g.RoleOn(p, system).AtLeast(wf.RunRole())}
	for _, st := range wf.Steps {
		on := cmp.Or(st.System, system)
		if ref, ok := systemAction(g, on, st.Action); ok {
			c.Approval = c.Approval || ref.Approval
			c.CanRun = c.CanRun && g.RoleOn(p, on).AtLeast(ref.RunRole())
		}
		c.Steps = append(c.Steps, stepWords(st, on))
	}
	for _, in := range wf.Inputs {
		f := inputField{WorkflowInput: in, Field: inputPrefix + in.Name, Required: in.Default == nil}
		if in.Default != nil {
			f.Value = *in.Default
		}
		if form != nil {
			f.Value = form.Get(f.Field)
		}
		c.Fields = append(c.Fields, f)
	}
	if form != nil {
		c.Reason = form.Get("reason")
	}
	return c
}

// stepWords says what a step does: "restart: restart-php-fpm on
// webshop-app, 1 at a time, stops after 1 failure".
func stepWords(st aramaki.WorkflowStep, system string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s on %s", st.Name, st.Action, system)
	if len(st.Agents) > 0 {
		fmt.Fprintf(&b, " (only %s)", strings.Join(st.Agents, ", "))
	}
	if len(st.Params) > 0 {
		fmt.Fprintf(&b, " with %s", pairs(st.Params))
	}
	if st.Concurrency > 0 {
		fmt.Fprintf(&b, ", %d at a time", st.Concurrency)
	} else {
		b.WriteString(", all hosts at once")
	}
	b.WriteString(", " + breakerWords(st.StopAfter))
	if len(st.Outputs) > 0 {
		names := make([]string, 0, len(st.Outputs))
		for name := range st.Outputs {
			names = append(names, name)
		}
		sort.Strings(names)
		fmt.Fprintf(&b, ", reads %s from the output", strings.Join(names, ", "))
	}
	return b.String()
}

// breakerWords says when a step stops starting hosts.
func breakerWords(b aramaki.Breaker) string {
	if b.Percent > 0 {
		return fmt.Sprintf("stops once %d%% of its hosts failed", b.Percent)
	}
	n := max(b.Failures, 1)
	if n == 1 {
		return "stops after 1 failure"
	}
	return fmt.Sprintf("stops after %d failures", n)
}

// pairs writes values as name=value, by name.
func pairs(m map[string]string) string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// inputValues reads a workflow's inputs from its form: an empty field is
// left out (its default applies, or the service says it is needed).
func inputValues(wf aramaki.Workflow, form url.Values) map[string]string {
	values := map[string]string{}
	for _, in := range wf.Inputs {
		if v := form.Get(inputPrefix + in.Name); v != "" {
			values[in.Name] = v
		}
	}
	return values
}

// plannedStep is a step of a dry run as its page shows it.
type plannedStep struct {
	service.PlannedStep
	Number  int
	AtOnce  string // how many hosts at once, in words
	Breaker string // when it stops, in words
	Later   bool   // some values come from earlier steps' outputs
	Offline int    // hosts not connected now
}

// atOnce says how many of a step's hosts run at once.
func atOnce(concurrency, hosts int) string {
	switch {
	case hosts == 1:
		return "its one host"
	case concurrency <= 0 || concurrency >= hosts:
		return fmt.Sprintf("all %d hosts at once", hosts)
	}
	return fmt.Sprintf("%d at a time, of %d hosts", concurrency, hosts)
}

// planWorkflow is the dry run: what the workflow would do with the values
// of the form, exactly, on its own page with the form again.
func (u *UI) planWorkflow(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.renderWorkflow(w, r, s, http.StatusOK, "")
}

// requestWorkflow runs a workflow from its form and goes to the workflow
// run's page; a refused run is said on the dry run's page, the form
// filled again.
func (u *UI) requestWorkflow(w http.ResponseWriter, r *http.Request, s *session) error {
	refuse := func(err error) error {
		switch code := aramaki.ErrorCode(err); code {
		case aramaki.EINVALID, aramaki.EFORBIDDEN, aramaki.ECONFLICT:
			return u.renderWorkflow(w, r, s, api.Status(code), aramaki.ErrorMessage(err))
		}
		return err
	}
	id, name := r.PathValue("id"), r.PathValue("workflow")
	var wf aramaki.Workflow
	if sys := u.svc.Graph().System(id); sys != nil {
		wf, _ = sys.Workflow(name)
	}
	if r.PostFormValue(confirmField) == "" {
		if wf.Rule == "" {
			return refuse(aramaki.Errorf(aramaki.EINVALID, "Tick “I have checked what it would do” first."))
		}
		return refuse(aramaki.Errorf(aramaki.EINVALID, "Tick “I have read the rule” first."))
	}
	inputs := inputValues(wf, r.PostForm)
	run, err := u.svc.RequestWorkflow(r.Context(), s.Principal, service.WorkflowRequest{
		System: id, Workflow: name, Reason: r.PostFormValue("reason"), Inputs: inputs,
	})
	if err != nil {
		return refuse(err)
	}
	http.Redirect(w, r, "/workflow-runs/"+url.PathEscape(run.ID), http.StatusSeeOther)
	return nil
}

// renderWorkflow draws a workflow's dry run with the values of the form,
// and the form again; msg says why a run was refused. A system the user
// cannot see, or a workflow it does not have, is an error page.
func (u *UI) renderWorkflow(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	ctx := r.Context()
	id, name := r.PathValue("id"), r.PathValue("workflow")
	sys, err := u.svc.System(ctx, s.Principal, id)
	if err != nil {
		return err
	}
	wf, ok := sys.Workflow(name)
	if !ok {
		return aramaki.Errorf(aramaki.ENOTFOUND, "system %s has no workflow %s", id, name)
	}
	card := makeWorkflowCard(u.svc.Graph(), s.Principal, id, wf, r.PostForm)
	data := map[string]any{"System": sys, "Workflow": card, "Error": msg}
	plan, err := u.svc.PlanWorkflow(ctx, s.Principal, service.WorkflowRequest{System: id, Workflow: name, Inputs: inputValues(wf, r.PostForm)})
	switch code := aramaki.ErrorCode(err); {
	case err == nil:
		steps := make([]plannedStep, 0, len(plan.Steps))
		for i, ps := range plan.Steps {
			v := plannedStep{PlannedStep: ps, Number: i + 1, Breaker: ps.StopAfter, AtOnce: atOnce(ps.Concurrency, len(ps.Hosts))}
			if b, err := aramaki.ParseBreaker(ps.StopAfter); err == nil {
				v.Breaker = breakerWords(b)
			}
			for _, p := range ps.Params {
				v.Later = v.Later || strings.Contains(p, "${steps.")
			}
			for _, h := range ps.Hosts {
				if !h.Connected {
					v.Offline++
				}
			}
			steps = append(steps, v)
		}
		data["Plan"], data["Steps"] = plan, steps
	case code == aramaki.EINVALID || code == aramaki.EFORBIDDEN || code == aramaki.ECONFLICT:
		data["PlanError"] = aramaki.ErrorMessage(err)
		if status == http.StatusOK {
			status = api.Status(code)
		}
	default:
		return err
	}
	u.render(w, r, status, "workflow", s, data)
	return nil
}

// workflowRunView is a workflow run on its page: its steps, and what the
// user may do about it.
type workflowRunView struct {
	aramaki.WorkflowRun
	Role       aramaki.Role // who may approve and cancel it
	Mine       bool         // the user asked for it
	CanApprove bool
	CanCancel  bool
	StepViews  []stepView
	// Live is the address the page polls for changes while the run is not
	// over; empty once it is.
	Live string
}

// stepView is a step of a workflow run: its progress and how it was
// declared.
type stepView struct {
	aramaki.StepState
	Number  int
	Current bool              // the step under way
	Words   string            // how many hosts at once, when it stops
	Values  string            // its values as declared, before it started
	Reads   map[string]string // the outputs it reads: name → expression
}

// loadWorkflowRun loads a workflow run and works out what the user may do
// about it. Each host's state is its run's own, as its run page says: the
// workflow run learns it a moment later, and not at all once it is over
// (the runs of a cancelled one end after it, when their hosts say so).
func (u *UI) loadWorkflowRun(r *http.Request, s *session, id string) (workflowRunView, error) {
	wr, err := u.svc.WorkflowRun(r.Context(), s.Principal, id)
	if err != nil {
		return workflowRunView{}, err
	}
	runs, err := u.svc.Runs(r.Context(), s.Principal, service.RunQuery{WorkflowRun: wr.ID, Limit: service.MaxAlertLimit})
	if err != nil {
		return workflowRunView{}, err
	}
	states := make(map[string]aramaki.RunState, len(runs))
	for _, run := range runs {
		states[run.ID] = run.State
	}
	// What runs still: the page follows it while anything does.
	going := !wr.State.Final()
	for i := range wr.Steps {
		for j := range wr.Steps[i].Hosts {
			h := &wr.Steps[i].Hosts[j]
			if st, ok := states[h.Run]; ok {
				h.State = st
				going = going || !st.Final()
			}
		}
	}
	v := workflowRunView{WorkflowRun: wr, Role: wr.Workflow.RunRole(), Mine: wr.RequestedBy == s.User}
	may := u.svc.Graph().RoleOn(s.Principal, wr.System).AtLeast(v.Role)
	v.CanApprove = may && wr.State == aramaki.RunAwaitingApproval && !v.Mine
	v.CanCancel = may && !wr.State.Final()
	for i, st := range wr.Steps {
		sv := stepView{StepState: st, Number: i + 1, Current: wr.State == aramaki.RunRunning && i == wr.Step}
		if i < len(wr.Workflow.Steps) {
			def := wr.Workflow.Steps[i]
			if def.Concurrency > 0 {
				sv.Words = fmt.Sprintf("%d at a time", def.Concurrency)
			} else {
				sv.Words = "all hosts at once"
			}
			sv.Words += ", " + breakerWords(def.StopAfter)
			if st.State == aramaki.RunRequested && len(def.Params) > 0 {
				sv.Values = pairs(def.Params)
			}
			sv.Reads = def.Outputs
		}
		v.StepViews = append(v.StepViews, sv)
	}
	if going {
		v.Live = "/workflow-runs/" + url.PathEscape(wr.ID) + "/live?v=" + v.version()
	}
	return v, nil
}

// version names what the page shows of a workflow run: the live part of
// the page is sent again only when it changed.
func (v workflowRunView) version() string {
	return hashOf(struct {
		Run                   aramaki.WorkflowRun
		CanApprove, CanCancel bool
	}{v.WorkflowRun, v.CanApprove, v.CanCancel})
}

// workflowRunPage shows one workflow run: who asked and why, its approval,
// and its steps in order with their hosts, each linking to its run; live
// while it runs.
func (u *UI) workflowRunPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	return u.renderWorkflowRun(w, r, s, r.PathValue("id"), http.StatusOK, "")
}

func (u *UI) renderWorkflowRun(w http.ResponseWriter, r *http.Request, s *session, id string, status int, msg string) error {
	v, err := u.loadWorkflowRun(r, s, id)
	if err != nil {
		return err
	}
	u.render(w, r, status, "workflow-run", s, map[string]any{"Run": v, "Error": msg})
	return nil
}

// workflowRunLive is what the workflow run page polls while the run is not
// over, like the run page's.
func (u *UI) workflowRunLive(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.live(w, r, s, "workflow-run", "workflow-run-live", func() (string, any, error) {
		v, err := u.loadWorkflowRun(r, s, r.PathValue("id"))
		return v.version(), map[string]any{"Run": v}, err
	})
}

// changeWorkflowRun returns the handler of approving or cancelling a
// workflow run from its page; a change that cannot be made is said on the
// page.
func (u *UI) changeWorkflowRun(change func(context.Context, aramaki.Principal, string) (aramaki.WorkflowRun, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		id := r.PathValue("id")
		if _, err := change(r.Context(), s.Principal, id); err != nil {
			if code := aramaki.ErrorCode(err); code == aramaki.ECONFLICT || code == aramaki.EFORBIDDEN || code == aramaki.EINVALID {
				return u.renderWorkflowRun(w, r, s, id, api.Status(code), aramaki.ErrorMessage(err))
			}
			return err
		}
		http.Redirect(w, r, "/workflow-runs/"+url.PathEscape(id), http.StatusSeeOther)
		return nil
	}
}

// workflowRunsFilter is the workflow runs list's query: what its form
// sends back.
type workflowRunsFilter struct {
	System, Workflow, State string
}

// workflowRunsPage lists the workflow runs on the systems the user can
// see, newest first, filtered by system (with everything under it),
// workflow and state.
func (u *UI) workflowRunsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	q := r.URL.Query()
	f := workflowRunsFilter{System: q.Get("system"), Workflow: q.Get("workflow"), State: q.Get("state")}
	wq := service.WorkflowRunQuery{System: f.System, Workflow: f.Workflow, Limit: workflowRunsLimit}
	known := false
	for _, st := range runStates {
		if st.Name == f.State {
			wq.States, known = st.States, true
		}
	}
	if !known {
		return aramaki.Errorf(aramaki.EINVALID, "Unknown run state %q.", f.State)
	}
	runs, err := u.svc.WorkflowRuns(r.Context(), s.Principal, wq)
	if err != nil {
		return err
	}
	systems, err := u.svc.Systems(r.Context(), s.Principal, service.SystemFilter{})
	if err != nil {
		return err
	}
	var workflows []string
	for _, sys := range systems {
		for _, wf := range sys.Workflows {
			workflows = append(workflows, wf.Name)
		}
	}
	sort.Strings(workflows)
	u.render(w, r, http.StatusOK, "workflow-runs", s, map[string]any{
		"Runs": runs, "Limited": len(runs) == workflowRunsLimit, "Filter": f, "Systems": systems,
		"Workflows": slices.Compact(workflows), "States": runStates,
	})
	return nil
}

// workflowRunOf is the workflow run a timeline event is about, if it is
// one of a workflow run's: the timeline links to its page.
func workflowRunOf(ev aramaki.Event) string {
	if !strings.HasPrefix(string(ev.Kind), "workflow.") {
		return ""
	}
	var d aramaki.WorkflowData
	if json.Unmarshal(ev.Data, &d) != nil {
		return ""
	}
	return d.WorkflowRun
}
