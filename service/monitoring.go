package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aramaki/aramaki"
)

// AgentHub is the live connections to agents, kept by the agent API.
type AgentHub interface {
	Connected(agentID string) bool
	// Revoked ends a revoked agent's connection, telling it why.
	Revoked(agentID, message string)
	// Run asks a connected agent to run one of its checks now; ENOTFOUND
	// when the agent is not connected here.
	Run(agentID, request, system, check string) error
}

// SetHub connects the service to the agent connections.
func (s *Service) SetHub(h AgentHub) { s.hub = h }

// CheckSpec is a check as an agent runs it.
type CheckSpec struct {
	System   string
	Name     string
	Command  []string
	Interval time.Duration
	Timeout  time.Duration
}

// ChecksFor returns the checks an agent runs: those declared on its systems
// that name no agents or name this agent's host.
func (s *Service) ChecksFor(a aramaki.Agent) []CheckSpec {
	g := s.Graph()
	var out []CheckSpec
	for _, id := range a.Systems {
		sys := g.System(id)
		if sys == nil {
			continue
		}
		for _, c := range sys.Checks {
			if len(c.Agents) > 0 && !slices.Contains(c.Agents, a.Name) {
				continue
			}
			argv, err1 := aramaki.SplitCommand(c.Command)
			interval, timeout, err2 := c.Schedule()
			if err1 != nil || err2 != nil {
				continue // validated with the config; never here
			}
			out = append(out, CheckSpec{System: id, Name: c.Name, Command: argv, Interval: interval, Timeout: timeout})
		}
	}
	return out
}

// StatusView is the status of a system as one principal sees it: rolled up
// from its own checks and everything under it, with the layers in between.
type StatusView struct {
	System string         `json:"system"`
	Title  string         `json:"title"`
	Status aramaki.Status `json:"status"`     // the worst of Own and the subsystems'
	Own    aramaki.Status `json:"own_status"` // the worst of this system's own checks
	// Checks are the states of this system's own checks, one per agent.
	Checks []aramaki.CheckState `json:"checks"`
	// Pending are declared checks no agent has reported yet.
	Pending    []string          `json:"pending,omitempty"`
	Subsystems []SubsystemStatus `json:"subsystems"`
	// Problems are the checks not OK here and anywhere below, worst first.
	Problems []aramaki.CheckState `json:"problems"`
}

// SubsystemStatus is one layer down: a subsystem and its rolled-up status.
type SubsystemStatus struct {
	ID       string         `json:"id"`
	Title    string         `json:"title"`
	Status   aramaki.Status `json:"status"`
	Problems int            `json:"problems"`
}

// SystemStatus rolls up a system's status.
func (s *Service) SystemStatus(ctx context.Context, p aramaki.Principal, id string) (StatusView, error) {
	g := s.Graph()
	if err := s.visible(g, p, id); err != nil {
		return StatusView{}, err
	}
	scope := []string{id}
	for _, d := range g.Descendants(id) {
		if g.CanView(p, d) {
			scope = append(scope, d)
		}
	}
	states, err := s.store.CheckStates(ctx, scope)
	if err != nil {
		return StatusView{}, err
	}
	if states, err = s.withRemote(ctx, g, scope, states); err != nil {
		return StatusView{}, err
	}
	r := newRollup(g, states)
	sys := g.System(id)
	v := StatusView{System: id, Title: sys.Title, Status: r.status(id), Own: r.own[id], Checks: r.bySystem[id], Subsystems: []SubsystemStatus{}, Problems: []aramaki.CheckState{}}
	if v.Checks == nil {
		v.Checks = []aramaki.CheckState{}
	}
	reported := map[string]bool{}
	for _, st := range v.Checks {
		reported[st.Check] = true
	}
	for _, c := range sys.Checks {
		if !reported[c.Name] {
			v.Pending = append(v.Pending, c.Name)
		}
	}
	for _, sub := range sys.Subsystems {
		if !g.CanView(p, sub) {
			continue
		}
		v.Subsystems = append(v.Subsystems, SubsystemStatus{ID: sub, Title: g.System(sub).Title, Status: r.status(sub), Problems: len(r.problems(sub))})
	}
	v.Problems = r.problems(id)
	return v, nil
}

// withRemote adds to check states the status of each peer's system in
// scope, as the peer last told it: one state "status" of the peer. A
// peer's system it never told of is unknown.
func (s *Service) withRemote(ctx context.Context, g *aramaki.Graph, scope []string, states []aramaki.CheckState) ([]aramaki.CheckState, error) {
	var remote []string
	for _, id := range scope {
		if sys := g.System(id); sys != nil && sys.Peer != "" {
			remote = append(remote, id)
		}
	}
	if len(remote) == 0 {
		return states, nil
	}
	told, err := s.store.RemoteStatuses(ctx, remote)
	if err != nil {
		return nil, err
	}
	for _, id := range remote {
		peer := g.System(id).Peer
		st, ok := told[id]
		state := aramaki.CheckState{System: id, Check: aramaki.RemoteStatusCheck, Agent: "peer:" + peer, Status: aramaki.StatusUnknown,
			Output: "peer " + peer + " has not told this server its status: is it shared with a grant?"}
		if ok {
			state = aramaki.RemoteStatusState(id, st.Status.String(), st.Since)
		}
		states = append(states, state)
	}
	return states, nil
}

// rollup computes rolled-up statuses over a set of check states.
type rollup struct {
	g        *aramaki.Graph
	bySystem map[string][]aramaki.CheckState
	own      map[string]aramaki.Status
	memo     map[string]aramaki.Status
}

func newRollup(g *aramaki.Graph, states []aramaki.CheckState) *rollup {
	r := &rollup{g: g, bySystem: map[string][]aramaki.CheckState{}, own: map[string]aramaki.Status{}, memo: map[string]aramaki.Status{}}
	for _, st := range states {
		r.bySystem[st.System] = append(r.bySystem[st.System], st)
		r.own[st.System] = r.own[st.System].Worse(st.Status)
	}
	return r
}

// status is the worst of the system's own checks and of everything under it
// (within the states given).
func (r *rollup) status(id string) aramaki.Status {
	if st, ok := r.memo[id]; ok {
		return st
	}
	st := r.own[id]
	for _, sub := range r.g.Subsystems(id) {
		st = st.Worse(r.status(sub))
	}
	r.memo[id] = st
	return st
}

// problems lists the not-OK states at id and below, each once, worst first.
func (r *rollup) problems(id string) []aramaki.CheckState {
	out := []aramaki.CheckState{}
	for _, sys := range append([]string{id}, r.g.Descendants(id)...) {
		for _, st := range r.bySystem[sys] {
			if st.Status.Problem() {
				out = append(out, st)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Status, out[j].Status
		if a.Worse(b) != b.Worse(a) {
			return a.Worse(b) == a
		}
		return out[i].Since.Before(out[j].Since)
	})
	return out
}

// CheckHistory answers "is this always broken?" for one check on a system.
type CheckHistory struct {
	System  string                 `json:"system"`
	Check   string                 `json:"check"`
	Agents  []AgentCheckHistory    `json:"agents"`
	Changes []aramaki.StatusChange `json:"changes"` // newest first, last 30 days
	Results []aramaki.CheckResult  `json:"results"` // newest first
}

// AgentCheckHistory is the history of a check as one agent runs it.
type AgentCheckHistory struct {
	Agent string               `json:"agent"`
	State aramaki.CheckState   `json:"state"`
	Stats []aramaki.CheckStats `json:"stats"` // 24h, 7d, 30d
}

// History windows.
var historyWindows = []struct {
	name string
	d    time.Duration
}{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

// CheckHistory returns the statistics, changes and recent results of a check.
func (s *Service) CheckHistory(ctx context.Context, p aramaki.Principal, system, check string) (CheckHistory, error) {
	g := s.Graph()
	if err := s.visible(g, p, system); err != nil {
		return CheckHistory{}, err
	}
	if err := aramaki.ValidateSystemID(check); err != nil {
		return CheckHistory{}, aramaki.Errorf(aramaki.EINVALID, "invalid check name %q", check)
	}
	states, err := s.store.CheckStates(ctx, []string{system})
	if err != nil {
		return CheckHistory{}, err
	}
	now := s.now()
	changes, err := s.store.StatusChanges(ctx, system, check, now.Add(-historyWindows[len(historyWindows)-1].d))
	if err != nil {
		return CheckHistory{}, err
	}
	results, err := s.store.Results(ctx, system, check, 20)
	if err != nil {
		return CheckHistory{}, err
	}
	h := CheckHistory{System: system, Check: check, Agents: []AgentCheckHistory{}, Changes: []aramaki.StatusChange{}, Results: results}
	if h.Results == nil {
		h.Results = []aramaki.CheckResult{}
	}
	for _, st := range states {
		if st.Check != check {
			continue
		}
		var mine []aramaki.StatusChange
		for _, c := range changes {
			if c.Agent == st.Agent {
				mine = append(mine, c)
			}
		}
		ah := AgentCheckHistory{Agent: st.Agent, State: st}
		for _, w := range historyWindows {
			ah.Stats = append(ah.Stats, aramaki.ComputeStats(w.name, w.d, mine, st, now))
		}
		h.Agents = append(h.Agents, ah)
	}
	declared := false
	if sys := g.System(system); sys != nil {
		for _, c := range sys.Checks {
			declared = declared || c.Name == check
		}
	}
	if len(h.Agents) == 0 && !declared && check != aramaki.KeepaliveCheck {
		return CheckHistory{}, aramaki.Errorf(aramaki.ENOTFOUND, "system %s has no check %s", system, check)
	}
	for i := len(changes) - 1; i >= 0 && len(h.Changes) < 200; i-- {
		h.Changes = append(h.Changes, changes[i])
	}
	return h, nil
}

// CheckStrip is a check on one agent with its last days: the picture of
// whether it is always broken or just broke.
type CheckStrip struct {
	State   aramaki.CheckState  `json:"state"`
	Days    []aramaki.DayStatus `json:"days"`    // oldest first, today last
	Changes int                 `json:"changes"` // in those days
}

// CheckStrips returns the strips of a system's own checks over the last
// days, the worst first, then by check and agent. It reads one summary
// per check and day, however often the checks changed.
func (s *Service) CheckStrips(ctx context.Context, p aramaki.Principal, system string, days int) ([]CheckStrip, error) {
	if err := s.visible(s.Graph(), p, system); err != nil {
		return nil, err
	}
	states, err := s.store.CheckStates(ctx, []string{system})
	if err != nil {
		return nil, err
	}
	now := s.now()
	first := aramaki.DayOf(now).AddDate(0, 0, 1-days)
	summaries, err := s.store.CheckDays(ctx, system, first)
	if err != nil {
		return nil, err
	}
	type key struct{ check, agent string }
	byKey := map[key][]aramaki.CheckDay{}
	for _, d := range summaries {
		byKey[key{d.Check, d.Agent}] = append(byKey[key{d.Check, d.Agent}], d)
	}
	sort.SliceStable(states, func(i, j int) bool {
		a, b := states[i].Status, states[j].Status
		return a.Worse(b) != b.Worse(a) && a.Worse(b) == a
	})
	out := make([]CheckStrip, 0, len(states))
	for _, st := range states {
		mine := byKey[key{st.Check, st.Agent}]
		strip := CheckStrip{State: st, Days: aramaki.DayStatuses(mine, st, days, now)}
		for _, d := range mine {
			if !d.Day.Before(first) {
				strip.Changes += d.Changes
			}
		}
		out = append(out, strip)
	}
	return out, nil
}

// runWaiters deliver ad hoc results to whoever asked for them.
type runWaiters struct {
	mu      sync.Mutex
	waiting map[string]*runWaiter
}

// runWaiter waits for the results of one ad hoc run.
type runWaiter struct {
	system, check string
	agents        map[string]bool
	results       chan aramaki.CheckResult
}

func (w *runWaiters) add(request, system, check string, agents []aramaki.Agent) chan aramaki.CheckResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiting == nil {
		w.waiting = map[string]*runWaiter{}
	}
	rw := &runWaiter{system: system, check: check, agents: map[string]bool{}, results: make(chan aramaki.CheckResult, len(agents))}
	for _, a := range agents {
		rw.agents[a.ID] = true
	}
	w.waiting[request] = rw
	return rw.results
}

func (w *runWaiters) remove(request string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.waiting, request)
}

func (w *runWaiters) deliver(r aramaki.CheckResult) {
	if r.Request == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Only the asked agents' results of the asked check answer a request.
	if rw, ok := w.waiting[r.Request]; ok && rw.agents[r.Agent] && r.System == rw.system && r.Check == rw.check {
		delete(rw.agents, r.Agent)
		rw.results <- r
	}
}

// RunCheck asks every connected agent that runs the check to run it now and
// waits for their results, at most wait. Operators may.
func (s *Service) RunCheck(ctx context.Context, p aramaki.Principal, system, check string, wait time.Duration) ([]aramaki.CheckResult, error) {
	g := s.Graph()
	if err := s.visible(g, p, system); err != nil {
		return nil, err
	}
	if err := s.require(p, system, aramaki.RoleOperator); err != nil {
		return nil, err
	}
	agents, err := s.store.Agents(ctx)
	if err != nil {
		return nil, err
	}
	var targets []aramaki.Agent
	var timeout time.Duration
	for _, a := range agents {
		if a.Revoked != nil || !slices.Contains(a.Systems, system) {
			continue
		}
		for _, c := range s.ChecksFor(a) {
			if c.System == system && c.Name == check {
				targets = append(targets, a)
				timeout = max(timeout, c.Timeout)
			}
		}
	}
	if len(targets) == 0 {
		return nil, aramaki.Errorf(aramaki.ENOTFOUND, "no agent runs check %s on system %s", check, system)
	}
	if s.hub == nil {
		return nil, aramaki.Errorf(aramaki.EUNAVAILABLE, "this server takes no agent connections")
	}
	b := make([]byte, 8)
	rand.Read(b)
	request := "run_" + hex.EncodeToString(b)
	ch := s.waiters.add(request, system, check, targets)
	defer s.waiters.remove(request)
	var asked []string
	for _, a := range targets {
		if err := s.hub.Run(a.ID, request, system, check); err == nil {
			asked = append(asked, a.Name)
		}
	}
	if len(asked) == 0 {
		return nil, aramaki.Errorf(aramaki.EUNAVAILABLE, "no agent that runs check %s on %s is connected", check, system)
	}
	ev, err := s.event(aramaki.KindCheckRun, p.Actor(), []string{system}, fmt.Sprintf("%s ran check %s on %s now (%s)", p.User, check, system, strings.Join(asked, ", ")),
		map[string]any{"check": check, "request": request, "agents": asked})
	if err != nil {
		return nil, err
	}
	if _, err := s.store.AppendEvent(ctx, ev); err != nil {
		return nil, err
	}
	if wait <= 0 || wait > timeout+10*time.Second {
		wait = timeout + 10*time.Second
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var out []aramaki.CheckResult
	for len(out) < len(asked) {
		select {
		case r := <-ch:
			out = append(out, r)
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}
