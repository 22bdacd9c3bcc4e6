package aramaki

import (
	"slices"
	"time"
)

// Run is one run of an action on a system: an audited resource with a
// state machine, who asked and why, the values, the hosts it runs on and
// what each of them said.
type Run struct {
	ID          string            `json:"id"`
	System      string            `json:"system"`
	Action      string            `json:"action"`
	Params      map[string]string `json:"params"`
	Reason      string            `json:"reason"`
	RequestedBy string            `json:"requested_by"`
	Requested   time.Time         `json:"requested"`
	// Approval is set when a second person must approve it first.
	Approval   bool       `json:"approval,omitempty"`
	ApprovedBy string     `json:"approved_by,omitempty"`
	Approved   *time.Time `json:"approved,omitempty"`
	// BreakGlass runs skipped the approval they needed, with a reason.
	BreakGlass bool       `json:"break_glass,omitempty"`
	State      RunState   `json:"state"`
	Started    *time.Time `json:"started,omitempty"`
	Ended      *time.Time `json:"ended,omitempty"`
	// CancelledBy is who cancelled it, if someone did.
	CancelledBy string      `json:"cancelled_by,omitempty"`
	Error       string      `json:"error,omitempty"`
	Targets     []RunTarget `json:"targets"`
	// WorkflowRun is the workflow run this run is a host's part of, in
	// its step WorkflowStep (0-based).
	WorkflowRun  string `json:"workflow_run,omitempty"`
	WorkflowStep int    `json:"workflow_step,omitempty"`
	// Peer is, for a run of a peer's system (storage@a), the peer that
	// runs it; for a run a peer asked for here, the peer that asked.
	// PeerRun is the run's id on that peer, once known.
	Peer    string `json:"peer,omitempty"`
	PeerRun string `json:"peer_run,omitempty"`
	// HostsOK and HostsFailed count, for a run of a peer's system, the
	// peer's hosts that succeeded and those that did not, as the peer
	// told: which hosts they are stays with the peer.
	HostsOK     int `json:"hosts_ok,omitempty"`
	HostsFailed int `json:"hosts_failed,omitempty"`
}

// Remote reports whether the run is of a peer's system, run there.
func (r Run) Remote() bool {
	_, _, remote := SplitRemote(r.System)
	return remote
}

// ForPeer reports whether a peer asked for the run, which runs here.
func (r Run) ForPeer() bool { return r.Peer != "" && !r.Remote() }

// RunTarget is a run on one host.
type RunTarget struct {
	Agent string `json:"agent"`
	Name  string `json:"name"` // the host's name
	// State is requested until the agent is asked to start, then running
	// until it says how it ended.
	State    RunState   `json:"state"`
	Started  *time.Time `json:"started,omitempty"`
	Ended    *time.Time `json:"ended,omitempty"`
	ExitCode *int       `json:"exit_code,omitempty"`
	Error    string     `json:"error,omitempty"`
	Output   string     `json:"output,omitempty"`
	// Dropped counts output bytes beyond MaxRunOutput.
	Dropped int64 `json:"dropped,omitempty"`
}

// Duration is how long the run took, or has been running.
func (r Run) Duration(now time.Time) time.Duration {
	if r.Started == nil {
		return 0
	}
	if r.Ended != nil {
		return r.Ended.Sub(*r.Started)
	}
	return now.Sub(*r.Started)
}

// Outcome is the state of a run whose hosts have all finished: succeeded
// when every host did, else the worst: failed, then timed out, then
// cancelled. ok is false while a host has not finished.
func Outcome(targets []RunTarget) (state RunState, ok bool) {
	rank := map[RunState]int{RunSucceeded: 0, RunCancelled: 1, RunTimedOut: 2, RunFailed: 3}
	state = RunSucceeded
	for _, t := range targets {
		if !t.State.Final() {
			return "", false
		}
		if rank[t.State] > rank[state] {
			state = t.State
		}
	}
	return state, len(targets) > 0
}

// Run event kinds on the timeline: one per transition.
const (
	KindRunRequested  = EventKind("run.requested")
	KindRunAwaiting   = EventKind("run.awaiting_approval")
	KindRunApproved   = EventKind("run.approved")
	KindRunStarted    = EventKind("run.started")
	KindRunFinished   = EventKind("run.finished") // succeeded, failed, cancelled or timed out: see the data
	KindRunCancel     = EventKind("run.cancel")   // someone asked to stop it
	KindRunBreakGlass = EventKind("run.break_glass")
	// KindRunRefused is a peer's request to run an action here that was
	// refused: no grant allowed it, or it could not run (see RunRefusal).
	KindRunRefused = EventKind("run.refused")
)

// RunRefusal is the detail of a run.refused event: what a peer asked for,
// and why it was refused. Why is this server's own account; Told is what
// the peer was told, which says nothing of what it was not granted.
type RunRefusal struct {
	Peer      string            `json:"peer"`
	PeerRun   string            `json:"peer_run"` // the run's id on the peer
	System    string            `json:"system"`
	Action    string            `json:"action"`
	Params    map[string]string `json:"params,omitempty"`
	Reason    string            `json:"reason"`
	Requester string            `json:"requester"` // user@peer
	Why       string            `json:"why"`
	Told      string            `json:"told"`
}

// PeerRunRequest is a run a peer asked for, allowed: it is created with
// the message that asked, once, with the events and notifications Events
// makes of it once it has its id.
type PeerRunRequest struct {
	Run    Run
	Events func(Run) ([]Event, []Notification, error)
	// Grants are the grants that allowed it when it was decided: should
	// they all be revoked by the time it is stored, it is refused after
	// all, with the events Refused makes.
	Grants  []string
	Refused func() ([]Event, error)
}

// PeerRunResult is what a peer said of a run of its system that this
// server asked for: Change gets the run as stored and returns it changed,
// with the events of the change; no events, no change.
type PeerRunResult struct {
	Run    string // this server's id of the run
	Change func(Run) (Run, []Event, error)
}

// PeerUser is how a user of a peer is shown here: alice@shop, alice of the
// peer this server calls shop.
func PeerUser(user, peer string) string { return user + "@" + peer }

// RunData is the detail of a run event.
type RunData struct {
	Run   Run    `json:"run"`
	Actor string `json:"actor,omitempty"`
}

// RunStats sums up the runs of an action on a system over a period.
type RunStats struct {
	System    string        `json:"system"`
	Action    string        `json:"action"`
	Runs      int           `json:"runs"`
	Failed    int           `json:"failed"` // failed or timed out
	Average   time.Duration `json:"average_ns"`
	P95       time.Duration `json:"p95_ns"`
	Durations []RunPoint    `json:"points"` // oldest first, for the chart
}

// RunPoint is one finished run for the duration chart.
type RunPoint struct {
	Ended    time.Time     `json:"ended"`
	Duration time.Duration `json:"duration_ns"`
	State    RunState      `json:"state"`
}

// ComputeRunStats sums up finished runs (any order): how many, how many
// failed or timed out, the average and 95th percentile of their durations.
func ComputeRunStats(system, action string, points []RunPoint) RunStats {
	st := RunStats{System: system, Action: action, Runs: len(points), Durations: slices.Clone(points)}
	slices.SortFunc(st.Durations, func(a, b RunPoint) int { return a.Ended.Compare(b.Ended) })
	if len(points) == 0 {
		st.Durations = []RunPoint{}
		return st
	}
	ds := make([]time.Duration, 0, len(points))
	var sum time.Duration
	for _, p := range points {
		if p.State == RunFailed || p.State == RunTimedOut {
			st.Failed++
		}
		ds = append(ds, p.Duration)
		sum += p.Duration
	}
	slices.Sort(ds)
	st.Average = sum / time.Duration(len(ds))
	// Nearest rank: the smallest duration at least 95% of runs took no
	// longer than.
	st.P95 = ds[(len(ds)*95+99)/100-1]
	return st
}

// RunFilter selects runs, newest first.
type RunFilter struct {
	Systems []string // nil: all
	Action  string
	States  []RunState
	Since   time.Time // requested since; zero: any time
	// WorkflowRun selects the runs of a workflow run.
	WorkflowRun string
	// Agent selects the runs with a part on the agent.
	Agent string
	Limit int
}

// RunStart is a host's part of a run to start: what its agent is asked.
type RunStart struct {
	Run    string            `json:"run"`
	Agent  string            `json:"agent"`
	Action string            `json:"action"`
	Params map[string]string `json:"params"`
}
