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
}

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
)

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
