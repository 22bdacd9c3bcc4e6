package service

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// RunHub reaches the agents connected to this server for action runs.
type RunHub interface {
	// StartRun asks a connected agent to start its part of a run;
	// ENOTFOUND when the agent is not connected here.
	StartRun(start aramaki.RunStart, timeout time.Duration) error
	// CancelRun asks a connected agent to stop its part of a run.
	CancelRun(agentID, run string) error
	// ConnectedAgents lists the agents connected here.
	ConnectedAgents() []string
}

// RunRequest asks to run an action on a system.
type RunRequest struct {
	System string            `json:"system"`
	Action string            `json:"action"`
	Reason string            `json:"reason"`
	Params map[string]string `json:"params"`
	// BreakGlass runs an action that needs approval without it: the reason
	// is required as always, and the run is highlighted on the timeline
	// and told to the system's owners.
	BreakGlass bool `json:"break_glass"`
	// Agents narrows the run to some of the hosts it would run on (agent
	// names); empty: all of them.
	Agents []string `json:"agents,omitempty"`
}

// MaxRunAgents bounds the hosts a run request may name.
const MaxRunAgents = 1000

// RunView is a run with what people need before and after: the rule of
// the action and its recent runs on the system.
type RunView struct {
	aramaki.Run
	Rule string `json:"rule,omitempty"`
}

// actionRef finds an action on a system.
func actionRef(g *aramaki.Graph, system, action string) (aramaki.ActionRef, error) {
	sys := g.System(system)
	if sys != nil {
		for _, a := range sys.Actions {
			if a.Name == action {
				return a, nil
			}
		}
	}
	return aramaki.ActionRef{}, aramaki.Errorf(aramaki.ENOTFOUND, "system %s has no action %s", system, action)
}

// RequestRun runs an allowed action on a system, on every host of the
// system that allows it (or those the config names). Who may is the
// action's role; a reason is required. Actions that need approval wait
// for a second person, unless broken glass. An action of a peer's system
// (storage@a) is asked of the peer, which runs it if a grant allows.
func (s *Service) RequestRun(ctx context.Context, p aramaki.Principal, req RunRequest) (aramaki.Run, error) {
	g := s.Graph()
	if err := s.visible(g, p, req.System); err != nil {
		return aramaki.Run{}, err
	}
	if err := aramaki.ValidateActionName(req.Action); err != nil {
		return aramaki.Run{}, err
	}
	if _, _, remote := aramaki.SplitRemote(req.System); remote {
		return s.requestPeerRun(ctx, g, p, req)
	}
	ref, err := actionRef(g, req.System, req.Action)
	if err != nil {
		return aramaki.Run{}, err
	}
	if err := s.require(p, req.System, ref.RunRole()); err != nil {
		return aramaki.Run{}, err
	}
	if err := aramaki.ValidateReason(req.Reason); err != nil {
		return aramaki.Run{}, err
	}
	if req.BreakGlass && !ref.Approval {
		return aramaki.Run{}, aramaki.Errorf(aramaki.EINVALID, "action %s needs no approval: run it without breaking glass", req.Action)
	}
	run, timeouts, err := s.planRun(ctx, ref, req, p.User)
	if err != nil {
		return aramaki.Run{}, err
	}
	now := run.Requested
	hub, _ := s.hub.(RunHub)
	var startNow []aramaki.RunStart
	// The hosts whose agent is connected here are started at once: marked
	// started in the run's own transaction, asked right after it. Should
	// this server die in between, the agent does not know the run when it
	// reconnects, and its part fails saying so.
	if run.State == aramaki.RunRunning && hub != nil {
		here := map[string]bool{}
		for _, id := range hub.ConnectedAgents() {
			here[id] = true
		}
		for i, t := range run.Targets {
			if here[t.Agent] {
				run.Targets[i].State, run.Targets[i].Started = aramaki.RunRunning, &now
				startNow = append(startNow, aramaki.RunStart{Agent: t.Agent, Action: run.Action, Params: run.Params})
			}
		}
	}
	created, err := s.store.CreateRun(ctx, run, func(r aramaki.Run) ([]aramaki.Event, []aramaki.Notification, error) {
		return s.runCreated(g, r, p.User, p.Actor())
	})
	if err != nil {
		return aramaki.Run{}, err
	}
	for _, st := range startNow {
		st.Run = created.ID
		if err := s.startOn(ctx, hub, st, timeouts[st.Agent], now); err != nil {
			return created, err
		}
	}
	s.wakeRuns()
	return created, nil
}

// planRun makes the run of an action as asked by who, before it is
// stored: on every host of the system that allows the action (or those
// the config or the request names), the values checked against each
// host's own declaration; waiting for approval when the action needs it
// and glass is not broken, running otherwise. It returns each host's
// timeout for the action with it.
func (s *Service) planRun(ctx context.Context, ref aramaki.ActionRef, req RunRequest, who string) (aramaki.Run, map[string]time.Duration, error) {
	if len(req.Agents) > MaxRunAgents {
		return aramaki.Run{}, nil, aramaki.Errorf(aramaki.EINVALID, "at most %d agents", MaxRunAgents)
	}
	var (
		agents []aramaki.Agent
		err    error
	)
	if len(req.Agents) > 0 {
		agents, err = s.store.AgentsNamed(ctx, req.Agents) // not every agent for a few
	} else {
		agents, err = s.store.Agents(ctx)
	}
	if err != nil {
		return aramaki.Run{}, nil, err
	}
	if req.Params == nil {
		req.Params = map[string]string{}
	}
	run := aramaki.Run{System: req.System, Action: req.Action, Reason: strings.TrimSpace(req.Reason), RequestedBy: who,
		Requested: s.now(), Approval: ref.Approval, BreakGlass: req.BreakGlass, Targets: []aramaki.RunTarget{}}
	timeouts := map[string]time.Duration{} // agent → the action's timeout there
	for _, a := range agents {
		if a.Revoked != nil || !slices.Contains(a.Systems, req.System) || len(ref.Agents) > 0 && !slices.Contains(ref.Agents, a.Name) {
			continue
		}
		spec, ok := a.Action(req.Action)
		if !ok {
			continue
		}
		// Checked against each host's own declaration; the values given
		// are what is sent and recorded: each host fills in its defaults.
		if _, err := spec.Values(req.Params); err != nil {
			return aramaki.Run{}, nil, aramaki.Errorf(aramaki.EINVALID, "%s (as %s declares it)", aramaki.ErrorMessage(err), a.Name)
		}
		run.Params = req.Params
		run.Targets = append(run.Targets, aramaki.RunTarget{Agent: a.ID, Name: a.Name, State: aramaki.RunRequested})
		timeouts[a.ID] = cmp.Or(spec.Timeout, aramaki.DefaultRunTimeout)
	}
	if len(req.Agents) > 0 {
		if run.Targets, err = narrowTargets(run.Targets, req.Agents, req.System, req.Action); err != nil {
			return aramaki.Run{}, nil, err
		}
	}
	if len(run.Targets) == 0 {
		return aramaki.Run{}, nil, aramaki.Errorf(aramaki.ENOTFOUND, "no host of %s allows action %s: its agents' local configuration must declare it", req.System, req.Action)
	}
	if ref.Approval && !req.BreakGlass {
		run.State = aramaki.RunAwaitingApproval
	} else {
		started := run.Requested
		run.State, run.Started = aramaki.RunRunning, &started
	}
	return run, timeouts, nil
}

// runCreated makes the events of a new run, asked by who (actor on the
// timeline), and the notifications of a broken glass.
func (s *Service) runCreated(g *aramaki.Graph, r aramaki.Run, who, actor string) ([]aramaki.Event, []aramaki.Notification, error) {
	var hosts []string
	for _, t := range r.Targets {
		hosts = append(hosts, t.Name)
	}
	what := fmt.Sprintf("%s asked to run %s on %s (run %s, on %s): %s", who, r.Action, r.System, r.ID, strings.Join(hosts, ", "), r.Reason)
	if r.ForPeer() {
		what = fmt.Sprintf("%s of peer %s asked to run %s on %s (run %s, on %s; run %s there): %s", who, r.Peer, r.Action, r.System, r.ID,
			strings.Join(hosts, ", "), r.PeerRun, r.Reason)
	}
	evs := []aramaki.Event{}
	add := func(kind aramaki.EventKind, summary string) error {
		ev, err := s.event(kind, actor, []string{r.System}, summary, aramaki.RunData{Run: r, Actor: who})
		evs = append(evs, ev)
		return err
	}
	if err := add(aramaki.KindRunRequested, what); err != nil {
		return nil, nil, err
	}
	var notifications []aramaki.Notification
	switch {
	case r.State == aramaki.RunAwaitingApproval:
		if err := add(aramaki.KindRunAwaiting, fmt.Sprintf("run %s of %s on %s waits for a second person to approve it", r.ID, r.Action, r.System)); err != nil {
			return nil, nil, err
		}
	case r.BreakGlass:
		summary := fmt.Sprintf("BREAK GLASS: %s ran %s on %s without the approval it needs (run %s): %s", who, r.Action, r.System, r.ID, r.Reason)
		if err := add(aramaki.KindRunBreakGlass, summary); err != nil {
			return nil, nil, err
		}
		notifications = s.tellOwners(g, r.System, "Break glass: "+r.Action+" on "+r.System, summary+"\n", "/runs/"+r.ID)
		fallthrough
	default:
		if err := add(aramaki.KindRunStarted, fmt.Sprintf("run %s of %s on %s started", r.ID, r.Action, r.System)); err != nil {
			return nil, nil, err
		}
	}
	return evs, notifications, nil
}

// narrowTargets keeps the hosts named, each of which must be one the
// action runs on.
func narrowTargets(targets []aramaki.RunTarget, names []string, system, action string) ([]aramaki.RunTarget, error) {
	if len(names) > MaxRunAgents {
		return nil, aramaki.Errorf(aramaki.EINVALID, "at most %d agents", MaxRunAgents)
	}
	var out []aramaki.RunTarget
	for _, name := range names {
		i := slices.IndexFunc(targets, func(t aramaki.RunTarget) bool { return t.Name == name })
		if i < 0 {
			return nil, aramaki.Errorf(aramaki.EINVALID, "%q does not run %s on %s: its agent is not in the system, is revoked, or does not declare it", clipRunes(name, 64), action, system)
		}
		if !slices.ContainsFunc(out, func(t aramaki.RunTarget) bool { return t.Name == name }) {
			out = append(out, targets[i])
		}
	}
	return out, nil
}

// tellOwners makes notifications to the e-mail addresses of the owners of
// a system and of the systems above it, each once.
func (s *Service) tellOwners(g *aramaki.Graph, system, subject, text, page string) []aramaki.Notification {
	now := s.now()
	var out []aramaki.Notification
	seen := map[string]bool{}
	var owners []aramaki.Contact
	for _, id := range append([]string{system}, g.Ancestors(system)...) {
		if sys := g.System(id); sys != nil {
			owners = append(owners, sys.Owners...)
		}
	}
	for i, o := range owners {
		if o.Email == "" || seen[strings.ToLower(o.Email)] {
			continue
		}
		seen[strings.ToLower(o.Email)] = true
		m := aramaki.Message{ID: fmt.Sprintf("%s-%d-%d", strings.ReplaceAll(page, "/", ""), now.UnixMicro(), i), Subject: subject, Text: text, At: now, System: system}
		if s.url != "" {
			m.URL = strings.TrimRight(s.url, "/") + page
		}
		out = append(out, aramaki.Notification{Recipient: aramaki.Recipient{Type: aramaki.NotifyEmail, Name: o.Name, Address: o.Email},
			Message: m, State: aramaki.NotificationPending, Next: now, Created: now})
	}
	return out
}

// runEvent makes the event of a run's transition.
func (s *Service) runEvent(kind aramaki.EventKind, actor string, r aramaki.Run, summary string) (aramaki.Event, error) {
	return s.event(kind, actor, []string{r.System}, summary, aramaki.RunData{Run: r, Actor: strings.TrimPrefix(actor, "user:")})
}

// ApproveRun lets a run that waits for approval start. The approver must
// be another person than who asked, with the action's role.
func (s *Service) ApproveRun(ctx context.Context, p aramaki.Principal, id string) (aramaki.Run, error) {
	g := s.Graph()
	run, err := s.store.ChangeRun(ctx, id, func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
		if err := s.mayRun(g, p, r); err != nil {
			return r, nil, err
		}
		if r.State != aramaki.RunAwaitingApproval {
			if r.State.Final() {
				return r, nil, aramaki.Errorf(aramaki.ECONFLICT, "run %s is %s already", r.ID, r.State)
			}
			return r, nil, aramaki.Errorf(aramaki.ECONFLICT, "run %s needs no approval: it is %s", r.ID, r.State)
		}
		if r.RequestedBy == p.User {
			return r, nil, aramaki.Errorf(aramaki.EFORBIDDEN, "you asked for run %s: another person must approve it", r.ID)
		}
		now := s.now()
		r.State, r.ApprovedBy, r.Approved, r.Started = aramaki.RunRunning, p.User, &now, &now
		approved, err := s.runEvent(aramaki.KindRunApproved, p.Actor(), r, fmt.Sprintf("%s approved run %s of %s on %s, asked by %s", p.User, r.ID, r.Action, r.System, r.RequestedBy))
		if err != nil {
			return r, nil, err
		}
		started, err := s.runEvent(aramaki.KindRunStarted, p.Actor(), r, fmt.Sprintf("run %s of %s on %s started", r.ID, r.Action, r.System))
		return r, []aramaki.Event{approved, started}, err
	})
	if err == nil {
		s.wakeRuns()
	}
	return run, err
}

// mayRun checks that the principal may see the run's system and holds the
// action's role there.
func (s *Service) mayRun(g *aramaki.Graph, p aramaki.Principal, r aramaki.Run) error {
	if !g.CanView(p, r.System) && p.GlobalRole() == aramaki.RoleNone {
		return aramaki.Errorf(aramaki.ENOTFOUND, "run %s not found", r.ID)
	}
	if r.Remote() {
		return aramaki.Errorf(aramaki.ECONFLICT, "run %s runs on peer %s: its people approve or cancel it there", r.ID, r.Peer)
	}
	ref, err := actionRef(g, r.System, r.Action)
	if err != nil {
		return aramaki.Errorf(aramaki.ECONFLICT, "system %s has no action %s any more: the config repository took it away", r.System, r.Action)
	}
	return s.require(p, r.System, ref.RunRole())
}

// CancelRun stops a run: one waiting for approval ends at once; a running
// one is stopped on every host (the agents kill the process groups) and
// ends when they say so.
func (s *Service) CancelRun(ctx context.Context, p aramaki.Principal, id string) (aramaki.Run, error) {
	return s.cancelRun(ctx, s.Graph(), p.User, p.Actor(), id, p, true)
}

// cancelRun is CancelRun by who (an actor on the timeline), checking that
// p may (or not: for the runs of a workflow run that stopped).
func (s *Service) cancelRun(ctx context.Context, g *aramaki.Graph, who, actor, id string, p aramaki.Principal, check bool) (aramaki.Run, error) {
	var stop []string // agents to tell
	run, err := s.store.ChangeRun(ctx, id, func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
		if check {
			if err := s.mayRun(g, p, r); err != nil {
				return r, nil, err
			}
		}
		if r.State.Final() {
			return r, nil, aramaki.Errorf(aramaki.ECONFLICT, "run %s is %s already", r.ID, r.State)
		}
		if r.CancelledBy != "" {
			return r, nil, aramaki.Errorf(aramaki.ECONFLICT, "run %s is being cancelled already, by %s", r.ID, r.CancelledBy)
		}
		now := s.now()
		r.CancelledBy = who
		for i, t := range r.Targets {
			switch t.State {
			case aramaki.RunRequested:
				r.Targets[i].State, r.Targets[i].Ended, r.Targets[i].Error = aramaki.RunCancelled, &now, "cancelled before it started"
			case aramaki.RunRunning:
				stop = append(stop, t.Agent)
			}
		}
		cancel, err := s.runEvent(aramaki.KindRunCancel, actor, r, fmt.Sprintf("%s cancelled run %s of %s on %s", who, r.ID, r.Action, r.System))
		if err != nil {
			return r, nil, err
		}
		evs := []aramaki.Event{cancel}
		if outcome, over := aramaki.Outcome(r.Targets); over {
			r.State, r.Ended = outcome, &now
			ev, err := s.runEvent(aramaki.KindRunFinished, actor, r, fmt.Sprintf("run %s of %s on %s %s", r.ID, r.Action, r.System, outcome))
			if err != nil {
				return r, nil, err
			}
			evs = append(evs, ev)
		}
		return r, evs, nil
	})
	if err != nil {
		return run, err
	}
	if hub, ok := s.hub.(RunHub); ok {
		for _, a := range stop {
			if err := hub.CancelRun(a, run.ID); err != nil {
				s.log.Info("cannot tell the agent to cancel; it stops when it reconnects or its timeout ends", "run", run.ID, "agent", a, "err", err)
			}
		}
	}
	return run, nil
}

// Run returns a run with what its hosts printed, and the action's rule.
func (s *Service) Run(ctx context.Context, p aramaki.Principal, id string) (RunView, error) {
	if p.Anonymous() {
		// What commands printed on hosts is for the team, also on public
		// systems.
		return RunView{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in to see runs")
	}
	r, err := s.store.Run(ctx, id)
	if err != nil {
		return RunView{}, err
	}
	g := s.Graph()
	if !g.CanView(p, r.System) && p.GlobalRole() == aramaki.RoleNone {
		return RunView{}, aramaki.Errorf(aramaki.ENOTFOUND, "run %s not found", id)
	}
	v := RunView{Run: r}
	if ref, err := actionRef(g, r.System, r.Action); err == nil {
		v.Rule = ref.Rule
	}
	return v, nil
}

// RunQuery selects runs. Zero fields select all.
type RunQuery struct {
	System string // and everything under it
	Action string
	States []aramaki.RunState
	Since  time.Duration // requested within
	Limit  int
	// WorkflowRun selects the runs (hosts' parts) of a workflow run.
	WorkflowRun string
}

// Runs returns runs on systems the principal can see, newest first: also
// "was this done just now, and by whom?" before running an action again.
func (s *Service) Runs(ctx context.Context, p aramaki.Principal, q RunQuery) ([]aramaki.Run, error) {
	if p.Anonymous() {
		return nil, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in to see runs")
	}
	g := s.Graph()
	for _, st := range q.States {
		if !st.Valid() {
			return nil, aramaki.Errorf(aramaki.EINVALID, "unknown run state %q", st)
		}
	}
	if q.Action != "" {
		if err := aramaki.ValidateActionName(q.Action); err != nil {
			return nil, err
		}
	}
	if q.Limit == 0 {
		q.Limit = DefaultAlertLimit
	}
	if q.Limit < 0 || q.Limit > MaxAlertLimit {
		return nil, aramaki.Errorf(aramaki.EINVALID, "limit must be between 1 and %d", MaxAlertLimit)
	}
	f := aramaki.RunFilter{Action: q.Action, States: q.States, Limit: q.Limit, WorkflowRun: q.WorkflowRun}
	if q.System != "" {
		if err := s.visible(g, p, q.System); err != nil {
			return nil, err
		}
		f.Systems = append([]string{q.System}, g.Descendants(q.System)...)
	} else if p.GlobalRole() == aramaki.RoleNone {
		f.Systems = g.Visible(p)
	}
	if q.Since > 0 {
		f.Since = s.now().Add(-q.Since)
	}
	runs, err := s.store.Runs(ctx, f)
	if err != nil {
		return nil, err
	}
	runs = slices.DeleteFunc(runs, func(r aramaki.Run) bool { return !g.CanView(p, r.System) && p.GlobalRole() == aramaki.RoleNone })
	if runs == nil {
		runs = []aramaki.Run{}
	}
	return runs, nil
}

// RunStats sums up the runs of an action on a system over a period: how
// many, how many failed, how long they took on average and at the 95th
// percentile, and each for the chart.
func (s *Service) RunStats(ctx context.Context, p aramaki.Principal, system, action string, period time.Duration) (aramaki.RunStats, error) {
	g := s.Graph()
	if err := s.visible(g, p, system); err != nil {
		return aramaki.RunStats{}, err
	}
	if err := aramaki.ValidateActionName(action); err != nil {
		return aramaki.RunStats{}, err
	}
	if period <= 0 || period > 366*24*time.Hour {
		return aramaki.RunStats{}, aramaki.Errorf(aramaki.EINVALID, "the period must be between 1s and a year")
	}
	points, err := s.store.RunPoints(ctx, system, action, s.now().Add(-period))
	if err != nil {
		return aramaki.RunStats{}, err
	}
	return aramaki.ComputeRunStats(system, action, points), nil
}

// ---- What agents say ----

// SetAgentActions records what an agent's host allows, as it said on
// connecting or after its configuration changed.
func (s *Service) SetAgentActions(ctx context.Context, a aramaki.Agent, actions []aramaki.ActionSpec) error {
	for _, spec := range actions {
		if err := spec.Validate(); err != nil {
			return err
		}
	}
	return s.store.SetAgentActions(ctx, a.ID, actions, func(before []aramaki.ActionSpec) ([]aramaki.Event, error) {
		ev, err := s.event(aramaki.KindAgentActions, "agent:"+a.ID, a.Systems, actionsChange(a.Name, before, actions),
			AgentActionsData{Agent: a.ID, Name: a.Name, Before: before, After: actions})
		return []aramaki.Event{ev}, err
	})
}

// AgentActionsData is the detail of an agent.actions event: what the host
// allowed before and after, in full.
type AgentActionsData struct {
	Agent  string               `json:"agent"`
	Name   string               `json:"name"`
	Before []aramaki.ActionSpec `json:"before"`
	After  []aramaki.ActionSpec `json:"after"`
}

// actionsChange says in words how what a host allows changed.
func actionsChange(host string, before, after []aramaki.ActionSpec) string {
	var added, changed, removed []string
	for _, b := range before {
		i := slices.IndexFunc(after, func(a aramaki.ActionSpec) bool { return a.Name == b.Name })
		switch {
		case i < 0:
			removed = append(removed, b.Name)
		case !reflect.DeepEqual(b, after[i]):
			changed = append(changed, b.Name)
		}
	}
	for _, a := range after {
		if !slices.ContainsFunc(before, func(b aramaki.ActionSpec) bool { return a.Name == b.Name }) {
			added = append(added, a.Name)
		}
	}
	parts := []string{}
	for _, p := range []struct {
		what  string
		names []string
	}{{"now allows", added}, {"changed", changed}, {"no longer allows", removed}} {
		if len(p.names) > 0 {
			parts = append(parts, p.what+" "+strings.Join(p.names, ", "))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "declared its actions again, in another order")
	}
	return "host " + host + " " + strings.Join(parts, "; ") + " (its agent's local configuration)"
}

// RunOutput records what an agent's part of a run printed.
func (s *Service) RunOutput(ctx context.Context, a aramaki.Agent, run string, seq uint64, data string) error {
	return s.store.AppendRunOutput(ctx, run, a.ID, seq, data)
}

// RunEnd is how an agent's part of a run ended.
type RunEnd struct {
	State    aramaki.RunState
	ExitCode *int
	Started  time.Time
	Ended    time.Time
	Error    string
	Dropped  int64
}

// RunFinished records how an agent's part of a run ended, and ends the run
// when every host has. An agent that disconnected mid-run had its part
// marked failed (outcome unknown); what it says when it is back replaces
// that.
func (s *Service) RunFinished(ctx context.Context, a aramaki.Agent, run string, end RunEnd) error {
	if !end.State.Final() {
		return aramaki.Errorf(aramaki.EINVALID, "a run does not end %s", end.State)
	}
	_, err := s.store.ChangeRun(ctx, run, func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
		i := slices.IndexFunc(r.Targets, func(t aramaki.RunTarget) bool { return t.Agent == a.ID })
		if i < 0 {
			return r, nil, aramaki.Errorf(aramaki.ENOTFOUND, "run %s has no part on agent %s", r.ID, a.ID)
		}
		t := &r.Targets[i]
		reconciled := t.State == aramaki.RunFailed && (t.Error == disconnectedMidRun || t.Error == lostByAgent)
		if t.State == aramaki.RunRequested {
			return r, nil, aramaki.Errorf(aramaki.ENOTFOUND, "run %s was not started on agent %s", r.ID, a.ID)
		}
		if t.State.Final() && !reconciled {
			return r, nil, nil // said already
		}
		started, ended := end.Started, end.Ended
		t.State, t.ExitCode, t.Error, t.Dropped = end.State, end.ExitCode, end.Error, t.Dropped+end.Dropped
		if t.Started == nil && !started.IsZero() {
			t.Started = &started
		}
		t.Ended = &ended
		outcome, over := aramaki.Outcome(r.Targets)
		if !over {
			return r, nil, nil
		}
		r.State = outcome
		if r.Ended == nil || r.Ended.Before(ended) {
			r.Ended = &ended
		}
		summary := fmt.Sprintf("run %s of %s on %s %s", r.ID, r.Action, r.System, strings.ReplaceAll(string(outcome), "_", " "))
		if reconciled {
			summary += fmt.Sprintf(" (%s said how it ended when it came back)", t.Name)
		}
		ev, err := s.runEvent(aramaki.KindRunFinished, "agent:"+a.ID, r, summary)
		return r, []aramaki.Event{ev}, err
	})
	if err == nil {
		s.wakeRuns() // a workflow run may go on
	}
	return err
}

// disconnectedMidRun is the error of a host's part of a run whose agent
// went away while it ran.
const disconnectedMidRun = "the agent disconnected while it ran: its outcome is unknown until it reconnects"

// AgentGone marks the running parts of runs on an agent that disconnected
// as failed, outcome unknown; the agent's report when it is back replaces
// that.
func (s *Service) AgentGone(ctx context.Context, agentID string) error {
	runs, err := s.store.Runs(ctx, aramaki.RunFilter{States: []aramaki.RunState{aramaki.RunRunning}, Agent: agentID, Limit: MaxAlertLimit})
	if err != nil {
		return err
	}
	now := s.now()
	for _, run := range runs {
		if !slices.ContainsFunc(run.Targets, func(t aramaki.RunTarget) bool { return t.Agent == agentID && t.State == aramaki.RunRunning }) {
			continue
		}
		_, err := s.store.ChangeRun(ctx, run.ID, func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
			for i, t := range r.Targets {
				if t.Agent == agentID && t.State == aramaki.RunRunning {
					r.Targets[i].State, r.Targets[i].Ended, r.Targets[i].Error = aramaki.RunFailed, &now, disconnectedMidRun
				}
			}
			outcome, over := aramaki.Outcome(r.Targets)
			if !over || r.State.Final() {
				return r, nil, nil
			}
			r.State, r.Ended = outcome, &now
			ev, err := s.runEvent(aramaki.KindRunFinished, "server", r, fmt.Sprintf("run %s of %s on %s failed: an agent disconnected while it ran", r.ID, r.Action, r.System))
			return r, []aramaki.Event{ev}, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- Dispatch ----

// wakeRuns tells the dispatcher that a run may be waiting to start.
func (s *Service) wakeRuns() {
	select {
	case s.runWake <- struct{}{}:
	default:
	}
}

// RunDispatch moves workflow runs on and starts the parts of runs waiting
// for agents connected here, at once when a run is asked for or ends and
// every second (for runs asked on other replicas, and after a restart),
// until ctx ends.
func (s *Service) RunDispatch(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var expired time.Time
	for {
		// Starts first: they are what someone waits for.
		if err := s.DispatchRuns(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("dispatching runs", "err", err)
		}
		if err := s.AdvanceWorkflows(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("advancing workflow runs", "err", err)
		}
		// Deadlines are seconds apart: once a second is enough, however
		// often runs wake the loop.
		if time.Since(expired) >= time.Second {
			expired = time.Now()
			if err := s.ExpireRuns(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("expiring runs", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.runWake:
		}
	}
}

// DispatchRuns asks the connected agents to start their waiting parts of
// runs, once.
func (s *Service) DispatchRuns(ctx context.Context) error {
	hub, ok := s.hub.(RunHub)
	if !ok {
		return nil
	}
	waiting, err := s.store.WaitingTargets(ctx, hub.ConnectedAgents())
	if err != nil || len(waiting) == 0 {
		return err
	}
	now := s.now()
	// Marked running first, all in one transaction: a start sent twice
	// would run twice.
	started, err := s.store.StartTargets(ctx, waiting, now)
	if err != nil {
		return err
	}
	timeouts := map[string]time.Duration{}
	for _, w := range started {
		timeout, ok := timeouts[w.Agent+"/"+w.Action]
		if !ok {
			timeout = aramaki.DefaultRunTimeout
			if a, err := s.store.Agent(ctx, w.Agent); err == nil {
				if spec, ok := a.Action(w.Action); ok && spec.Timeout > 0 {
					timeout = spec.Timeout
				}
			}
			timeouts[w.Agent+"/"+w.Action] = timeout
		}
		if err := s.startOn(ctx, hub, w, timeout, now); err != nil {
			return err
		}
	}
	return nil
}

// startOn asks a connected agent to start its part of a run, marked
// started already. An agent gone meanwhile fails its part, outcome known:
// it never began.
func (s *Service) startOn(ctx context.Context, hub RunHub, w aramaki.RunStart, timeout time.Duration, started time.Time) error {
	err := hub.StartRun(w, timeout)
	if err == nil {
		return nil
	}
	s.log.Info("cannot start a run on an agent", "run", w.Run, "agent", w.Agent, "err", err)
	return s.RunFinished(ctx, aramaki.Agent{ID: w.Agent}, w.Run, RunEnd{State: aramaki.RunFailed, Started: started, Ended: s.now(),
		Error: "the agent could not be asked to start it: " + aramaki.ErrorMessage(err)})
}

// lostByAgent is the error of a host's part of a run its agent does not
// know of when it reconnects: it restarted and lost it.
const lostByAgent = "the agent does not know this run any more (it restarted while it ran): its outcome is unknown"

// ReconcileRuns compares what a reconnected agent says it knows of runs
// (run id → state) with what the server thinks runs there: a part started
// before the connection that the agent does not know was lost, and fails
// with the reason.
func (s *Service) ReconcileRuns(ctx context.Context, a aramaki.Agent, known map[string]string, connected time.Time) error {
	// Running here, or failed when it went away: a week back is plenty.
	now := s.now()
	runs, err := s.store.Runs(ctx, aramaki.RunFilter{States: []aramaki.RunState{aramaki.RunRunning, aramaki.RunFailed},
		Since: now.Add(-7 * 24 * time.Hour), Agent: a.ID, Limit: MaxAlertLimit})
	if err != nil {
		return err
	}
	// Parts started on this connection are not in the agent's list yet.
	unsure := func(t aramaki.RunTarget) bool {
		return t.Agent == a.ID && t.Started != nil && t.Started.Before(connected) &&
			(t.State == aramaki.RunRunning || t.State == aramaki.RunFailed && t.Error == disconnectedMidRun)
	}
	for _, run := range runs {
		if _, ok := known[run.ID]; ok || !slices.ContainsFunc(run.Targets, unsure) {
			continue
		}
		_, err := s.store.ChangeRun(ctx, run.ID, func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
			for i, t := range r.Targets {
				if unsure(t) {
					r.Targets[i].State, r.Targets[i].Error = aramaki.RunFailed, lostByAgent
					if r.Targets[i].Ended == nil {
						r.Targets[i].Ended = &now
					}
				}
			}
			outcome, over := aramaki.Outcome(r.Targets)
			if !over || r.State.Final() {
				return r, nil, nil
			}
			r.State, r.Ended = outcome, &now
			ev, err := s.runEvent(aramaki.KindRunFinished, "server", r, fmt.Sprintf("run %s of %s on %s failed: %s lost it", r.ID, r.Action, r.System, a.Name))
			return r, []aramaki.Event{ev}, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// CancelResend is how often a replica tells an agent connected to it
// again to stop its part of a cancelled run, until the agent says it
// ended: the cancel may have been asked on another replica, or lost with
// a connection.
const CancelResend = 10 * time.Second

// resendCancels tells the agents connected here that still run parts of
// cancelled runs to stop them.
func (s *Service) resendCancels(runs []aramaki.Run, now time.Time) {
	hub, ok := s.hub.(RunHub)
	if !ok {
		return
	}
	var here map[string]bool
	sent := map[string]time.Time{}
	for _, r := range runs {
		if r.CancelledBy == "" || r.State != aramaki.RunRunning {
			continue
		}
		if here == nil {
			here = map[string]bool{}
			for _, id := range hub.ConnectedAgents() {
				here[id] = true
			}
		}
		for _, t := range r.Targets {
			key := r.ID + "/" + t.Agent
			if t.State != aramaki.RunRunning || !here[t.Agent] {
				continue
			}
			last, ok := s.cancelsSent[key]
			if ok && now.Sub(last) < CancelResend {
				sent[key] = last
				continue
			}
			if err := hub.CancelRun(t.Agent, r.ID); err != nil {
				s.log.Info("cannot tell the agent again to cancel", "run", r.ID, "agent", t.Agent, "err", err)
			}
			sent[key] = now
		}
	}
	s.cancelsSent = sent // what is no longer running is forgotten
}

// Run deadlines.
const (
	// ApprovalTimeout is how long a run waits for a second person.
	ApprovalTimeout = 24 * time.Hour
	// StartTimeout is how long a part waits for its agent to connect.
	StartTimeout = time.Hour
	// ReportGrace is how long past the action's timeout the server waits
	// for a connected agent to say how its part ended.
	ReportGrace = 2 * time.Minute
)

// ExpireRuns ends what would otherwise wait forever: runs nobody approved
// within ApprovalTimeout (cancelled), parts whose agent did not connect
// within StartTimeout (failed), and parts that ran past their action's
// timeout and ReportGrace without a word from the agent (timed out). Each
// with the reason, on the timeline.
func (s *Service) ExpireRuns(ctx context.Context) error {
	runs, err := s.store.Runs(ctx, aramaki.RunFilter{States: []aramaki.RunState{aramaki.RunRequested, aramaki.RunAwaitingApproval, aramaki.RunRunning}, Limit: MaxAlertLimit})
	if err != nil {
		return err
	}
	now := s.now()
	s.resendCancels(runs, now)
	if err := s.endOrphanedPeerRuns(ctx, runs, now); err != nil {
		return err
	}
	timeouts := map[string]time.Duration{} // agent/action -> timeout
	timeoutOf := func(agent, action string) time.Duration {
		key := agent + "/" + action
		if d, ok := timeouts[key]; ok {
			return d
		}
		d := aramaki.DefaultRunTimeout
		if a, err := s.store.Agent(ctx, agent); err == nil {
			if spec, ok := a.Action(action); ok && spec.Timeout > 0 {
				d = spec.Timeout
			}
		}
		timeouts[key] = d
		return d
	}
	for _, run := range runs {
		if run.Remote() {
			continue // the peer that runs it ends it, and says so
		}
		due := run.State == aramaki.RunAwaitingApproval && now.Sub(run.Requested) > ApprovalTimeout
		for _, t := range run.Targets {
			due = due || t.State == aramaki.RunRequested && run.Started != nil && now.Sub(*run.Started) > StartTimeout ||
				t.State == aramaki.RunRunning && t.Started != nil && now.Sub(*t.Started) > ReportGrace && now.Sub(*t.Started) > timeoutOf(t.Agent, run.Action)+ReportGrace
		}
		if !due {
			continue
		}
		_, err := s.store.ChangeRun(ctx, run.ID, func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
			var why string
			switch {
			case r.State == aramaki.RunAwaitingApproval && now.Sub(r.Requested) > ApprovalTimeout:
				r.State, r.Ended, r.Error = aramaki.RunCancelled, &now, fmt.Sprintf("nobody approved it within %s", ApprovalTimeout)
				for i := range r.Targets {
					r.Targets[i].State, r.Targets[i].Ended, r.Targets[i].Error = aramaki.RunCancelled, &now, r.Error
				}
				why = r.Error
			case r.State == aramaki.RunRunning:
				for i, t := range r.Targets {
					switch {
					case t.State == aramaki.RunRequested && r.Started != nil && now.Sub(*r.Started) > StartTimeout:
						r.Targets[i].State, r.Targets[i].Ended = aramaki.RunFailed, &now
						r.Targets[i].Error = fmt.Sprintf("its agent did not connect within %s to start it", StartTimeout)
						why = r.Targets[i].Error
					case t.State == aramaki.RunRunning && t.Started != nil && now.Sub(*t.Started) > timeoutOf(t.Agent, r.Action)+ReportGrace:
						r.Targets[i].State, r.Targets[i].Ended = aramaki.RunTimedOut, &now
						r.Targets[i].Error = "no word from the agent past the action's timeout"
						why = r.Targets[i].Error
					}
				}
				outcome, over := aramaki.Outcome(r.Targets)
				if !over {
					return r, nil, nil
				}
				r.State, r.Ended = outcome, &now
			default:
				return r, nil, nil // changed meanwhile
			}
			ev, err := s.runEvent(aramaki.KindRunFinished, "server", r, fmt.Sprintf("run %s of %s on %s %s: %s", r.ID, r.Action, r.System,
				strings.ReplaceAll(string(r.State), "_", " "), why))
			return r, []aramaki.Event{ev}, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}
