package service

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// WorkflowRequest asks to run a workflow of a system.
type WorkflowRequest struct {
	System   string            `json:"system"`
	Workflow string            `json:"workflow"`
	Reason   string            `json:"reason"`
	Inputs   map[string]string `json:"inputs"`
}

// WorkflowPlan is what a workflow would do, step by step: which action on
// which hosts, with which values, so many at a time, stopping when. It is
// the dry run, and the plan a workflow run follows.
type WorkflowPlan struct {
	System   string            `json:"system"`
	Workflow string            `json:"workflow"`
	Rule     string            `json:"rule,omitempty"`
	Inputs   map[string]string `json:"inputs"`
	// Approval is set when a second person must approve the run first.
	Approval bool          `json:"approval"`
	Steps    []PlannedStep `json:"steps"`
}

// PlannedStep is one step of a plan.
type PlannedStep struct {
	Name   string `json:"name"`
	System string `json:"system"`
	Action string `json:"action"`
	// Params are the values as far as they are known before running:
	// references to outputs of earlier steps stay as written.
	Params      map[string]string `json:"params"`
	Concurrency int               `json:"concurrency"` // hosts at once
	StopAfter   string            `json:"stop_after"`  // "1", "25%"
	Outputs     map[string]string `json:"outputs,omitempty"`
	Hosts       []PlannedHost     `json:"hosts"`
}

// PlannedHost is a host a step runs on.
type PlannedHost struct {
	Agent string `json:"agent"`
	Name  string `json:"name"`
	// Connected is whether its agent is connected to this server now;
	// a step waits for a host that is not (up to an hour).
	Connected bool `json:"connected"`
}

// findWorkflow finds a workflow of a system.
func findWorkflow(g *aramaki.Graph, system, name string) (aramaki.Workflow, error) {
	if sys := g.System(system); sys != nil {
		if w, ok := sys.Workflow(name); ok {
			return w, nil
		}
	}
	return aramaki.Workflow{}, aramaki.Errorf(aramaki.ENOTFOUND, "system %s has no workflow %s", system, name)
}

// PlanWorkflow is the dry run of a workflow: exactly what would run where,
// as of now. It changes nothing.
func (s *Service) PlanWorkflow(ctx context.Context, p aramaki.Principal, req WorkflowRequest) (WorkflowPlan, error) {
	plan, _, err := s.planWorkflow(ctx, s.Graph(), p, req)
	return plan, err
}

func (s *Service) planWorkflow(ctx context.Context, g *aramaki.Graph, p aramaki.Principal, req WorkflowRequest) (WorkflowPlan, aramaki.Workflow, error) {
	if p.Anonymous() {
		return WorkflowPlan{}, aramaki.Workflow{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in to run workflows")
	}
	if err := s.visible(g, p, req.System); err != nil {
		return WorkflowPlan{}, aramaki.Workflow{}, err
	}
	if err := aramaki.ValidateWorkflowName("workflow", req.Workflow); err != nil {
		return WorkflowPlan{}, aramaki.Workflow{}, err
	}
	w, err := findWorkflow(g, req.System, req.Workflow)
	if err != nil {
		return WorkflowPlan{}, w, err
	}
	if err := s.require(p, req.System, w.RunRole()); err != nil {
		return WorkflowPlan{}, w, err
	}
	inputs, err := w.WorkflowInputs(req.Inputs)
	if err != nil {
		return WorkflowPlan{}, w, err
	}
	agents, err := s.store.Agents(ctx)
	if err != nil {
		return WorkflowPlan{}, w, err
	}
	connected := map[string]bool{}
	if hub, ok := s.hub.(RunHub); ok {
		for _, id := range hub.ConnectedAgents() {
			connected[id] = true
		}
	}
	plan := WorkflowPlan{System: req.System, Workflow: w.Name, Rule: w.Rule, Inputs: inputs, Approval: w.Approval, Steps: []PlannedStep{}}
	under := append([]string{req.System}, g.Descendants(req.System)...)
	for _, st := range w.Steps {
		sys := cmpOr(st.System, req.System)
		fail := func(format string, args ...any) error {
			return aramaki.Errorf(aramaki.EINVALID, "step %s: %s", st.Name, fmt.Sprintf(format, args...))
		}
		if !slices.Contains(under, sys) {
			return plan, w, fail("it runs on %s, which is not %s or under it", sys, req.System)
		}
		ref, err := actionRef(g, sys, st.Action)
		if err != nil {
			return plan, w, fail("%s", aramaki.ErrorMessage(err))
		}
		if err := s.require(p, sys, ref.RunRole()); err != nil {
			return plan, w, fail("%s", aramaki.ErrorMessage(err))
		}
		plan.Approval = plan.Approval || ref.Approval
		params, err := st.StepParams(inputs, nil, true)
		if err != nil {
			return plan, w, err
		}
		// Values that need an earlier step's output are checked when the
		// step starts; the others now.
		known := !slices.ContainsFunc(mapValues(st.Params), func(v string) bool { return strings.Contains(v, "${steps.") })
		ps := PlannedStep{Name: st.Name, System: sys, Action: st.Action, Params: params, Concurrency: st.Concurrency,
			StopAfter: st.StopAfter.String(), Outputs: st.Outputs, Hosts: []PlannedHost{}}
		for _, a := range agents {
			if a.Revoked != nil || !slices.Contains(a.Systems, sys) ||
				len(ref.Agents) > 0 && !slices.Contains(ref.Agents, a.Name) || len(st.Agents) > 0 && !slices.Contains(st.Agents, a.Name) {
				continue
			}
			spec, ok := a.Action(st.Action)
			if !ok {
				continue
			}
			if known {
				if _, err := spec.Values(params); err != nil {
					return plan, w, fail("%s (as %s declares it)", aramaki.ErrorMessage(err), a.Name)
				}
			}
			ps.Hosts = append(ps.Hosts, PlannedHost{Agent: a.ID, Name: a.Name, Connected: connected[a.ID]})
		}
		if len(ps.Hosts) == 0 {
			return plan, w, fail("no host of %s allows action %s: its agents' local configuration must declare it", sys, st.Action)
		}
		for _, name := range st.Agents {
			if !slices.ContainsFunc(ps.Hosts, func(h PlannedHost) bool { return h.Name == name }) {
				return plan, w, fail("%q does not run %s on %s: its agent is not in the system, is revoked, or does not declare it", clipRunes(name, 64), st.Action, sys)
			}
		}
		if len(ps.Hosts) > aramaki.MaxWorkflowHosts {
			return plan, w, fail("more than %d hosts", aramaki.MaxWorkflowHosts)
		}
		slices.SortFunc(ps.Hosts, func(a, b PlannedHost) int { return strings.Compare(a.Name+"\x00"+a.Agent, b.Name+"\x00"+b.Agent) })
		if ps.Concurrency == 0 || ps.Concurrency > len(ps.Hosts) {
			ps.Concurrency = len(ps.Hosts)
		}
		plan.Steps = append(plan.Steps, ps)
	}
	return plan, w, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// RequestWorkflow runs a workflow of a system on the hosts its dry run
// shows. Who may is the workflow's role, and each step's action's role on
// its system; a reason is required. A workflow that needs approval, or
// has a step whose action does, waits for a second person.
func (s *Service) RequestWorkflow(ctx context.Context, p aramaki.Principal, req WorkflowRequest) (aramaki.WorkflowRun, error) {
	g := s.Graph()
	if err := aramaki.ValidateReason(req.Reason); err != nil {
		if _, _, perr := s.planWorkflow(ctx, g, p, req); perr != nil {
			return aramaki.WorkflowRun{}, perr // who may not run it learns nothing more
		}
		return aramaki.WorkflowRun{}, err
	}
	plan, def, err := s.planWorkflow(ctx, g, p, req)
	if err != nil {
		return aramaki.WorkflowRun{}, err
	}
	now := s.now()
	w := aramaki.WorkflowRun{System: req.System, Workflow: def, Inputs: plan.Inputs, Reason: strings.TrimSpace(req.Reason),
		RequestedBy: p.User, Requested: now, Approval: plan.Approval, State: aramaki.RunRunning}
	for _, ps := range plan.Steps {
		st := aramaki.StepState{Name: ps.Name, System: ps.System, Action: ps.Action, State: aramaki.RunRequested, Hosts: []aramaki.StepHost{}}
		for _, h := range ps.Hosts {
			st.Hosts = append(st.Hosts, aramaki.StepHost{Agent: h.Agent, Name: h.Name, State: aramaki.RunRequested})
		}
		w.Steps = append(w.Steps, st)
	}
	if plan.Approval {
		w.State = aramaki.RunAwaitingApproval
	} else {
		w.Started = &now
	}
	created, err := s.store.CreateWorkflowRun(ctx, w, func(w aramaki.WorkflowRun) ([]aramaki.Event, []aramaki.Notification, error) {
		var steps []string
		for _, st := range w.Steps {
			steps = append(steps, fmt.Sprintf("%s (%s on %d hosts)", st.Name, st.Action, len(st.Hosts)))
		}
		asked, err := s.workflowEvent(aramaki.KindWorkflowRequested, p.Actor(), w, "",
			fmt.Sprintf("%s asked to run workflow %s on %s (workflow run %s: %s): %s", p.User, w.Workflow.Name, w.System, w.ID, strings.Join(steps, ", "), w.Reason))
		if err != nil {
			return nil, nil, err
		}
		next, err := s.workflowEvent(aramaki.KindWorkflowStarted, p.Actor(), w, "", fmt.Sprintf("workflow run %s of %s on %s started", w.ID, w.Workflow.Name, w.System))
		if w.State == aramaki.RunAwaitingApproval {
			next, err = s.workflowEvent(aramaki.KindWorkflowAwaiting, p.Actor(), w, "", fmt.Sprintf("workflow run %s of %s on %s waits for a second person to approve it", w.ID, w.Workflow.Name, w.System))
		}
		return []aramaki.Event{asked, next}, nil, err
	})
	if err != nil {
		return aramaki.WorkflowRun{}, err
	}
	s.wakeRuns()
	return created, nil
}

// workflowEvent makes the event of a workflow run's transition, on its
// system and, for a step, the step's system.
func (s *Service) workflowEvent(kind aramaki.EventKind, actor string, w aramaki.WorkflowRun, step, summary string) (aramaki.Event, error) {
	systems := []string{w.System}
	state := w.State
	for _, st := range w.Steps {
		// A step's events go to its system; the workflow run's own to
		// every system it runs on.
		if (step == "" || st.Name == step) && !slices.Contains(systems, st.System) {
			systems = append(systems, st.System)
		}
		if st.Name == step {
			state = st.State
		}
	}
	data := aramaki.WorkflowData{WorkflowRun: w.ID, Workflow: w.Workflow.Name, Step: step, State: state, Actor: strings.TrimPrefix(actor, "user:")}
	if kind == aramaki.KindWorkflowRequested || kind == aramaki.KindWorkflowApproved {
		data.Inputs = w.Inputs
	}
	return s.event(kind, actor, systems, summary, data)
}

// mayRunWorkflow checks that the principal may see the workflow run's
// system and holds the workflow's role there.
func (s *Service) mayRunWorkflow(g *aramaki.Graph, p aramaki.Principal, w aramaki.WorkflowRun) error {
	if !g.CanView(p, w.System) && p.GlobalRole() == aramaki.RoleNone {
		return aramaki.Errorf(aramaki.ENOTFOUND, "workflow run %s not found", w.ID)
	}
	return s.require(p, w.System, w.Workflow.RunRole())
}

// ApproveWorkflowRun lets a workflow run that waits for approval start.
// The approver must be another person than who asked, with the workflow's
// role.
func (s *Service) ApproveWorkflowRun(ctx context.Context, p aramaki.Principal, id string) (aramaki.WorkflowRun, error) {
	g := s.Graph()
	w, err := s.store.ChangeWorkflowRun(ctx, id, func(w aramaki.WorkflowRun, _ []aramaki.Run) (aramaki.WorkflowChange, error) {
		c := aramaki.WorkflowChange{Run: w}
		if err := s.mayRunWorkflow(g, p, w); err != nil {
			return c, err
		}
		if w.State != aramaki.RunAwaitingApproval {
			if w.State.Final() {
				return c, aramaki.Errorf(aramaki.ECONFLICT, "workflow run %s is %s already", w.ID, w.State)
			}
			return c, aramaki.Errorf(aramaki.ECONFLICT, "workflow run %s needs no approval: it is %s", w.ID, w.State)
		}
		if w.RequestedBy == p.User {
			return c, aramaki.Errorf(aramaki.EFORBIDDEN, "you asked for workflow run %s: another person must approve it", w.ID)
		}
		// The approver could have asked for it: each step's action's role
		// on its system too.
		for _, st := range w.Steps {
			ref, err := actionRef(g, st.System, st.Action)
			if err != nil {
				return c, aramaki.Errorf(aramaki.ECONFLICT, "step %s: system %s has no action %s any more: the config repository took it away", st.Name, st.System, st.Action)
			}
			if err := s.require(p, st.System, ref.RunRole()); err != nil {
				return c, err
			}
		}
		now := s.now()
		w.State, w.ApprovedBy, w.Approved, w.Started = aramaki.RunRunning, p.User, &now, &now
		c.Run = w
		approved, err := s.workflowEvent(aramaki.KindWorkflowApproved, p.Actor(), w, "",
			fmt.Sprintf("%s approved workflow run %s of %s on %s, asked by %s", p.User, w.ID, w.Workflow.Name, w.System, w.RequestedBy))
		if err != nil {
			return c, err
		}
		started, err := s.workflowEvent(aramaki.KindWorkflowStarted, p.Actor(), w, "", fmt.Sprintf("workflow run %s of %s on %s started", w.ID, w.Workflow.Name, w.System))
		c.Events = []aramaki.Event{approved, started}
		return c, err
	}, nil)
	if err == nil {
		s.wakeRuns()
	}
	return w, err
}

// CancelWorkflowRun stops a workflow run: no more hosts are started, and
// the runs under way are cancelled on their hosts.
func (s *Service) CancelWorkflowRun(ctx context.Context, p aramaki.Principal, id string) (aramaki.WorkflowRun, error) {
	g := s.Graph()
	var running []string // runs to cancel
	w, err := s.store.ChangeWorkflowRun(ctx, id, func(w aramaki.WorkflowRun, runs []aramaki.Run) (aramaki.WorkflowChange, error) {
		c := aramaki.WorkflowChange{Run: w}
		if err := s.mayRunWorkflow(g, p, w); err != nil {
			return c, err
		}
		if w.State.Final() {
			return c, aramaki.Errorf(aramaki.ECONFLICT, "workflow run %s is %s already", w.ID, w.State)
		}
		for _, r := range runs {
			if !r.State.Final() {
				running = append(running, r.ID)
			}
		}
		now := s.now()
		w.CancelledBy = p.User
		stop(&w, now, aramaki.RunCancelled, fmt.Sprintf("cancelled by %s", p.User))
		c.Run = w
		cancel, err := s.workflowEvent(aramaki.KindWorkflowCancel, p.Actor(), w, "", fmt.Sprintf("%s cancelled workflow run %s of %s on %s", p.User, w.ID, w.Workflow.Name, w.System))
		if err != nil {
			return c, err
		}
		finished, err := s.workflowEvent(aramaki.KindWorkflowFinished, p.Actor(), w, "", fmt.Sprintf("workflow run %s of %s on %s cancelled", w.ID, w.Workflow.Name, w.System))
		c.Events = []aramaki.Event{cancel, finished}
		return c, err
	}, nil)
	if err != nil {
		return w, err
	}
	for _, r := range running {
		if _, err := s.cancelRun(ctx, g, p.User, p.Actor(), r, p, false); err != nil && aramaki.ErrorCode(err) != aramaki.ECONFLICT {
			s.log.Warn("cannot cancel a run of a cancelled workflow run", "workflow_run", w.ID, "run", r, "err", err)
		}
	}
	return w, s.settle(ctx, []aramaki.WorkflowRun{w})
}

// stop ends a workflow run: the step under way and those after it that
// had not started end as cancelled (not started), with the hosts not
// started in them.
func stop(w *aramaki.WorkflowRun, now time.Time, state aramaki.RunState, why string) {
	w.State, w.Ended, w.Error = state, &now, why
	for i := range w.Steps {
		st := &w.Steps[i]
		for j := range st.Hosts {
			if st.Hosts[j].Run == "" {
				st.Hosts[j].State = aramaki.RunCancelled
			}
		}
		if st.State.Final() {
			continue
		}
		if st.State == aramaki.RunRequested {
			st.State = aramaki.RunCancelled
			st.Error = "not started: the workflow run stopped before it"
		} else if state == aramaki.RunCancelled {
			st.State, st.Error = aramaki.RunCancelled, why
		}
		if st.Ended == nil && st.State.Final() {
			st.Ended = &now
		}
	}
}

// WorkflowRun returns a workflow run.
func (s *Service) WorkflowRun(ctx context.Context, p aramaki.Principal, id string) (aramaki.WorkflowRun, error) {
	if p.Anonymous() {
		return aramaki.WorkflowRun{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in to see workflow runs")
	}
	w, err := s.store.WorkflowRun(ctx, id)
	if err != nil {
		return w, err
	}
	if !s.Graph().CanView(p, w.System) && p.GlobalRole() == aramaki.RoleNone {
		return aramaki.WorkflowRun{}, aramaki.Errorf(aramaki.ENOTFOUND, "workflow run %s not found", id)
	}
	if err := s.settle(ctx, []aramaki.WorkflowRun{w}); err != nil {
		return w, err
	}
	redactSteps(s.Graph(), p, &w)
	return w, nil
}

// settle shows the hosts of workflow runs that stopped while runs were
// under way as those runs stand now: they end after the workflow run,
// which the engine no longer looks at.
func (s *Service) settle(ctx context.Context, ws []aramaki.WorkflowRun) error {
	for _, w := range ws {
		if !w.State.Final() || !slices.ContainsFunc(w.Steps, func(st aramaki.StepState) bool {
			return slices.ContainsFunc(st.Hosts, func(h aramaki.StepHost) bool { return h.Run != "" && !h.State.Final() })
		}) {
			continue
		}
		runs, err := s.store.Runs(ctx, aramaki.RunFilter{WorkflowRun: w.ID, Limit: aramaki.MaxWorkflowHosts})
		if err != nil {
			return err
		}
		state := map[string]aramaki.RunState{}
		for _, r := range runs {
			state[r.ID] = r.State
		}
		for i := range w.Steps {
			for j, h := range w.Steps[i].Hosts {
				if st, ok := state[h.Run]; ok {
					w.Steps[i].Hosts[j].State = st
				}
			}
		}
	}
	return nil
}

// redactSteps hides, from who may see a workflow run's system but not the
// system of one of its steps, that step's hosts, values and outputs (a
// public project whose workflow restarts private infrastructure).
func redactSteps(g *aramaki.Graph, p aramaki.Principal, w *aramaki.WorkflowRun) {
	if p.GlobalRole() != aramaki.RoleNone {
		return
	}
	for i := range w.Steps {
		st := &w.Steps[i]
		if g.CanView(p, st.System) {
			continue
		}
		st.Hosts, st.Params, st.Outputs = []aramaki.StepHost{}, nil, nil
		if i < len(w.Workflow.Steps) {
			w.Workflow.Steps[i].Params, w.Workflow.Steps[i].Outputs, w.Workflow.Steps[i].Agents = nil, nil, nil
		}
	}
}

// WorkflowRunQuery selects workflow runs. Zero fields select all.
type WorkflowRunQuery struct {
	System   string // and everything under it
	Workflow string
	States   []aramaki.RunState
	Limit    int
}

// WorkflowRuns returns workflow runs on systems the principal can see,
// newest first.
func (s *Service) WorkflowRuns(ctx context.Context, p aramaki.Principal, q WorkflowRunQuery) ([]aramaki.WorkflowRun, error) {
	if p.Anonymous() {
		return nil, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in to see workflow runs")
	}
	g := s.Graph()
	for _, st := range q.States {
		if !st.Valid() {
			return nil, aramaki.Errorf(aramaki.EINVALID, "unknown run state %q", st)
		}
	}
	if q.Workflow != "" {
		if err := aramaki.ValidateWorkflowName("workflow", q.Workflow); err != nil {
			return nil, err
		}
	}
	if q.Limit == 0 {
		q.Limit = DefaultAlertLimit
	}
	if q.Limit < 0 || q.Limit > MaxAlertLimit {
		return nil, aramaki.Errorf(aramaki.EINVALID, "limit must be between 1 and %d", MaxAlertLimit)
	}
	f := aramaki.WorkflowRunFilter{Workflow: q.Workflow, States: q.States, Limit: q.Limit}
	if q.System != "" {
		if err := s.visible(g, p, q.System); err != nil {
			return nil, err
		}
		f.Systems = append([]string{q.System}, g.Descendants(q.System)...)
	} else if p.GlobalRole() == aramaki.RoleNone {
		f.Systems = g.Visible(p)
	}
	out, err := s.store.WorkflowRuns(ctx, f)
	if err != nil {
		return nil, err
	}
	out = slices.DeleteFunc(out, func(w aramaki.WorkflowRun) bool { return !g.CanView(p, w.System) && p.GlobalRole() == aramaki.RoleNone })
	if out == nil {
		out = []aramaki.WorkflowRun{}
	}
	for i := range out {
		redactSteps(g, p, &out[i])
	}
	return out, s.settle(ctx, out)
}

// ---- The engine ----

// AdvanceWorkflows moves every running workflow run on as far as it can:
// starts steps, starts hosts up to each step's concurrency, reads outputs,
// trips breakers, ends runs; and cancels those nobody approved within
// ApprovalTimeout. Everything it knows is stored, so it carries on where
// it was after a restart, on any replica.
func (s *Service) AdvanceWorkflows(ctx context.Context) error {
	open, err := s.store.WorkflowRuns(ctx, aramaki.WorkflowRunFilter{States: []aramaki.RunState{aramaki.RunAwaitingApproval, aramaki.RunRunning}, Limit: MaxAlertLimit})
	if err != nil {
		return err
	}
	var errs []error
	for _, w := range open {
		if err := s.advanceWorkflow(ctx, w); err != nil && ctx.Err() == nil {
			errs = append(errs, fmt.Errorf("workflow run %s: %w", w.ID, err))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func (s *Service) advanceWorkflow(ctx context.Context, w aramaki.WorkflowRun) error {
	now := s.now()
	if w.State == aramaki.RunAwaitingApproval {
		if now.Sub(w.Requested) <= ApprovalTimeout {
			return nil
		}
		_, err := s.store.ChangeWorkflowRun(ctx, w.ID, func(w aramaki.WorkflowRun, _ []aramaki.Run) (aramaki.WorkflowChange, error) {
			c := aramaki.WorkflowChange{Run: w}
			if w.State != aramaki.RunAwaitingApproval {
				return c, nil
			}
			stop(&c.Run, now, aramaki.RunCancelled, fmt.Sprintf("nobody approved it within %s", ApprovalTimeout))
			ev, err := s.workflowEvent(aramaki.KindWorkflowFinished, "server", c.Run, "",
				fmt.Sprintf("workflow run %s of %s on %s cancelled: nobody approved it within %s", w.ID, w.Workflow.Name, w.System, ApprovalTimeout))
			c.Events = []aramaki.Event{ev}
			return c, err
		}, nil)
		return err
	}
	// What is read before the transaction: for a step about to start, the
	// hosts' records (its values are checked against their declarations)
	// and whether who asked may still do it; for a step whose hosts all
	// ended, what they printed (its outputs).
	round := engineRound{now: now, printed: map[string]string{}}
	ended := w.Step < len(w.Steps) && !slices.ContainsFunc(w.Steps[w.Step].Hosts, func(h aramaki.StepHost) bool { return h.Run == "" || !h.State.Final() })
	if w.Step < len(w.Steps) && (w.Steps[w.Step].State == aramaki.RunRequested || ended && w.Step+1 < len(w.Steps)) {
		// Also for the next step, when this one may end in this round.
		all, err := s.store.Agents(ctx)
		if err != nil {
			return err
		}
		round.agents = map[string]aramaki.Agent{}
		for _, a := range all {
			round.agents[a.ID] = a
		}
		round.recheck = s.stepRecheck(ctx, w.RequestedBy, w.Approval)
	}
	if ended && len(w.Workflow.Steps[w.Step].Outputs) > 0 {
		for _, h := range w.Steps[w.Step].Hosts {
			if h.State != aramaki.RunSucceeded {
				continue
			}
			r, err := s.store.Run(ctx, h.Run)
			if err != nil {
				return err
			}
			if len(r.Targets) == 1 {
				round.printed[h.Run] = r.Targets[0].Output
			}
		}
	}
	again := false // something to do in another round at once
	_, err := s.store.ChangeWorkflowRun(ctx, w.ID, func(w aramaki.WorkflowRun, runs []aramaki.Run) (aramaki.WorkflowChange, error) {
		step := w.Step
		var before []aramaki.RunState
		if step < len(w.Steps) {
			before = hostStates(w.Steps[step]) // workflowStep changes w's steps in place
		}
		round.cancel = nil
		c, err := s.workflowStep(w, runs, &round)
		// Runs to dispatch, a new step whose hosts' declarations are read
		// before the transaction, or outputs of hosts that just ended.
		again = len(c.Start) > 0 || c.Run.Step != step || c.Run.State == aramaki.RunRunning && step < len(c.Run.Steps) &&
			!slices.Equal(before, hostStates(c.Run.Steps[step]))
		return c, err
	}, func(r aramaki.Run) ([]aramaki.Event, error) {
		asked, err := s.runEvent(aramaki.KindRunRequested, "workflow:"+r.WorkflowRun, r,
			fmt.Sprintf("workflow run %s asked to run %s on %s (run %s, on %s): %s", r.WorkflowRun, r.Action, r.System, r.ID, r.Targets[0].Name, r.Reason))
		if err != nil {
			return nil, err
		}
		ev, err := s.runEvent(aramaki.KindRunStarted, "workflow:"+r.WorkflowRun, r, fmt.Sprintf("run %s of %s on %s started", r.ID, r.Action, r.System))
		return []aramaki.Event{asked, ev}, err
	})
	if err != nil {
		return err
	}
	// Hosts that were waiting for their agent when the workflow run
	// stopped are not started (the dispatcher skips them too).
	g := s.Graph()
	for _, id := range round.cancel {
		if _, err := s.cancelRun(ctx, g, "workflow run "+w.ID, "workflow:"+w.ID, id, aramaki.Principal{}, false); err != nil && aramaki.ErrorCode(err) != aramaki.ECONFLICT {
			s.log.Warn("cannot cancel a waiting run of a stopped workflow run", "workflow_run", w.ID, "run", id, "err", err)
		}
	}
	if again {
		s.wakeRuns()
	}
	return nil
}

// engineRound is what one round of the engine on a workflow run knows
// from before its transaction, and what it leaves to do after.
type engineRound struct {
	now     time.Time
	agents  map[string]aramaki.Agent // for a step about to start
	recheck func(aramaki.StepState) error
	printed map[string]string // run id → output, once a step's hosts all ended
	cancel  []string          // runs not started when the workflow run stopped
}

// stepRecheck checks, when a step starts, that what allowed it when the
// workflow run was asked for still holds: the action is still exposed on
// the step's system, who asked still has its role there, and it needs no
// approval the workflow run did not get.
func (s *Service) stepRecheck(ctx context.Context, user string, approved bool) func(aramaki.StepState) error {
	g := s.Graph()
	var p aramaki.Principal
	u, _, err := s.store.UserByName(ctx, user)
	if err == nil {
		p, err = s.principal(ctx, u)
	}
	return func(st aramaki.StepState) error {
		if err != nil {
			return aramaki.Errorf(aramaki.EFORBIDDEN, "%s, who asked for it, cannot run it any more: %s", user, aramaki.ErrorMessage(err))
		}
		ref, rerr := actionRef(g, st.System, st.Action)
		if rerr != nil {
			return aramaki.Errorf(aramaki.ECONFLICT, "system %s has no action %s any more: the config repository took it away", st.System, st.Action)
		}
		if rerr := s.require(p, st.System, ref.RunRole()); rerr != nil {
			return aramaki.Errorf(aramaki.EFORBIDDEN, "%s, who asked for it, may no longer run %s on %s", user, st.Action, st.System)
		}
		if ref.Approval && !approved {
			return aramaki.Errorf(aramaki.ECONFLICT, "%s on %s needs a second person's approval now, which this workflow run did not get", st.Action, st.System)
		}
		for _, h := range st.Hosts {
			if len(ref.Agents) > 0 && !slices.Contains(ref.Agents, h.Name) {
				return aramaki.Errorf(aramaki.ECONFLICT, "%s no longer runs %s on %s", h.Name, st.Action, st.System)
			}
		}
		return nil
	}
}

func hostStates(st aramaki.StepState) []aramaki.RunState {
	out := make([]aramaki.RunState, len(st.Hosts))
	for i, h := range st.Hosts {
		out[i] = h.State
	}
	return out
}

// workflowStep works out how a running workflow run moves on, given the
// runs it started.
func (s *Service) workflowStep(w aramaki.WorkflowRun, runs []aramaki.Run, round *engineRound) (aramaki.WorkflowChange, error) {
	now, agents, printed := round.now, round.agents, round.printed
	c := aramaki.WorkflowChange{Run: w}
	add := func(step, summary string) error {
		ev, err := s.workflowEvent(aramaki.KindWorkflowStep, "server", w, step, summary)
		c.Events = append(c.Events, ev)
		return err
	}
	finish := func(state aramaki.RunState, why string) error {
		stop(&w, now, state, why)
		summary := fmt.Sprintf("workflow run %s of %s on %s %s", w.ID, w.Workflow.Name, w.System, state)
		if why != "" {
			summary += ": " + why
		}
		ev, err := s.workflowEvent(aramaki.KindWorkflowFinished, "server", w, "", summary)
		c.Events = append(c.Events, ev)
		return err
	}
	for w.State == aramaki.RunRunning {
		if w.Step >= len(w.Steps) {
			w.Error = ""
			if err := finish(aramaki.RunSucceeded, ""); err != nil {
				return c, err
			}
			break
		}
		st, def := &w.Steps[w.Step], w.Workflow.Steps[w.Step]
		if st.State == aramaki.RunRequested {
			if agents == nil {
				break // the hosts' declarations are read before the next round
			}
			params, err := def.StepParams(w.Inputs, outputsOf(w), false)
			if err == nil && round.recheck != nil {
				err = round.recheck(*st)
			}
			for _, h := range st.Hosts {
				if err != nil {
					break
				}
				a := agents[h.Agent]
				if a.Revoked != nil || !slices.Contains(a.Systems, st.System) {
					err = aramaki.Errorf(aramaki.ECONFLICT, "%s is no longer a host of %s (revoked or moved)", h.Name, st.System)
				} else if spec, ok := a.Action(st.Action); !ok {
					err = aramaki.Errorf(aramaki.ECONFLICT, "%s does not allow %s any more", h.Name, st.Action)
				} else if _, verr := spec.Values(params); verr != nil {
					err = aramaki.Errorf(aramaki.EINVALID, "%s (as %s declares it)", aramaki.ErrorMessage(verr), h.Name)
				}
			}
			st.Started = &now
			if err != nil {
				st.State, st.Ended, st.Error = aramaki.RunFailed, &now, aramaki.ErrorMessage(err)
				if aerr := add(st.Name, fmt.Sprintf("step %s of workflow run %s failed before it started: %s", st.Name, w.ID, st.Error)); aerr != nil {
					return c, aerr
				}
				if err := finish(aramaki.RunFailed, fmt.Sprintf("step %s: %s", st.Name, st.Error)); err != nil {
					return c, err
				}
				break
			}
			st.State, st.Params = aramaki.RunRunning, params
			if err := add(st.Name, fmt.Sprintf("step %s of workflow run %s started: %s on %d hosts of %s, %d at a time, stopping after %s failed",
				st.Name, w.ID, st.Action, len(st.Hosts), st.System, concurrency(def, len(st.Hosts)), def.StopAfter)); err != nil {
				return c, err
			}
		}
		byID := map[string]aramaki.Run{}
		for _, r := range runs {
			if r.WorkflowStep == w.Step {
				byID[r.ID] = r
			}
		}
		// Running hosts were started on their agent; waiting ones wait for
		// it to connect. Both take a place of the step's concurrency.
		running, waiting, failed, done := 0, 0, 0, 0
		var notStarted []string
		for i, h := range st.Hosts {
			r, ok := byID[h.Run]
			if !ok {
				continue
			}
			st.Hosts[i].State = r.State
			switch {
			case !r.State.Final() && len(r.Targets) == 1 && r.Targets[0].State == aramaki.RunRequested:
				waiting++
				notStarted = append(notStarted, r.ID)
			case !r.State.Final() || unsure(r, now):
				running++
			case r.State == aramaki.RunSucceeded:
				done++
			default:
				failed++
				done++
			}
		}
		if def.StopAfter.Tripped(failed, len(st.Hosts)) {
			if running > 0 {
				break // the breaker waits for what runs
			}
			round.cancel = append(round.cancel, notStarted...)
			why := fmt.Sprintf("stopped after %d of %d hosts failed (stop_after %s)", failed, len(st.Hosts), def.StopAfter)
			st.State, st.Ended, st.Error = aramaki.RunFailed, &now, why
			if err := add(st.Name, fmt.Sprintf("step %s of workflow run %s failed: %s", st.Name, w.ID, why)); err != nil {
				return c, err
			}
			if err := finish(aramaki.RunFailed, fmt.Sprintf("step %s %s", st.Name, why)); err != nil {
				return c, err
			}
			break
		}
		if done == len(st.Hosts) {
			if len(def.Outputs) > 0 {
				var texts []string
				for _, h := range st.Hosts {
					if text, ok := printed[h.Run]; ok {
						texts = append(texts, text)
					}
				}
				outs, err := def.StepOutputs(texts)
				if err != nil {
					if len(texts) < done-failed {
						break // the outputs are read before the next round
					}
					st.State, st.Ended, st.Error = aramaki.RunFailed, &now, aramaki.ErrorMessage(err)
					if aerr := add(st.Name, fmt.Sprintf("step %s of workflow run %s failed: %s", st.Name, w.ID, st.Error)); aerr != nil {
						return c, aerr
					}
					if err := finish(aramaki.RunFailed, st.Error); err != nil {
						return c, err
					}
					break
				}
				st.Outputs = outs
			}
			st.State, st.Ended = aramaki.RunSucceeded, &now
			if failed > 0 {
				st.Error = fmt.Sprintf("%d of %d hosts failed, below stop_after %s", failed, len(st.Hosts), def.StopAfter)
			}
			summary := fmt.Sprintf("step %s of workflow run %s succeeded on %d of %d hosts", st.Name, w.ID, done-failed, len(st.Hosts))
			if len(st.Outputs) > 0 {
				summary += ", read " + strings.Join(slices.Sorted(maps.Keys(st.Outputs)), ", ")
			}
			if err := add(st.Name, summary); err != nil {
				return c, err
			}
			w.Step++
			continue
		}
		busy := running + waiting
		for i := range st.Hosts {
			h := &st.Hosts[i]
			if h.Run != "" || busy >= concurrency(def, len(st.Hosts)) {
				continue
			}
			c.Start = append(c.Start, aramaki.Run{System: st.System, Action: st.Action, Params: st.Params,
				Reason:      clipRunes(fmt.Sprintf("workflow %s (run %s), step %s: %s", w.Workflow.Name, w.ID, st.Name, w.Reason), aramaki.MaxReasonLen),
				RequestedBy: w.RequestedBy, Requested: now, Approval: w.Approval, ApprovedBy: w.ApprovedBy, Approved: w.Approved,
				State: aramaki.RunRunning, Started: &now, WorkflowStep: w.Step,
				Targets: []aramaki.RunTarget{{Agent: h.Agent, Name: h.Name, State: aramaki.RunRequested}}})
			h.State = aramaki.RunRunning
			busy++
		}
		break
	}
	c.Run = w
	return c, nil
}

// unsure reports whether a host's run failed only because its agent went
// away moments ago: it may yet say how it ended, so a workflow waits a
// little before counting it failed.
func unsure(r aramaki.Run, now time.Time) bool {
	for _, t := range r.Targets {
		if t.State == aramaki.RunFailed && t.Error == disconnectedMidRun && t.Ended != nil && now.Sub(*t.Ended) < ReportGrace {
			return true
		}
	}
	return false
}

func concurrency(def aramaki.WorkflowStep, hosts int) int {
	if def.Concurrency <= 0 || def.Concurrency > hosts {
		return hosts
	}
	return def.Concurrency
}

// outputsOf collects the outputs of the steps that ended.
func outputsOf(w aramaki.WorkflowRun) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, st := range w.Steps {
		if st.Outputs != nil {
			out[st.Name] = st.Outputs
		}
	}
	return out
}
