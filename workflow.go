package aramaki

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Workflow is a change across many hosts, declared on a system in the
// config repository: ordered steps, each running an allowed action on the
// hosts of the system or of a system under it, so many at a time, stopping
// when too many fail. A step's outputs, read from what its hosts printed,
// can fill the parameters of later steps.
type Workflow struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Role is who may run it: operator (the default) or admin. Each step's
	// action asks for its own role on its system besides.
	Role Role `json:"role,omitempty"`
	// Approval asks a second person to approve each run of the workflow
	// before it starts. A workflow with a step whose action needs approval
	// needs it too: approving the workflow approves its steps.
	Approval bool            `json:"approval,omitempty"`
	Rule     string          `json:"rule,omitempty"`
	Inputs   []WorkflowInput `json:"inputs,omitempty"`
	Steps    []WorkflowStep  `json:"steps"`
}

// WorkflowInput is a value given when the workflow is run; without a
// default it is required.
type WorkflowInput struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	Default     *string `json:"default,omitempty"`
}

// WorkflowStep runs one action on a set of hosts.
type WorkflowStep struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	// System is where the action is exposed: the workflow's own system when
	// empty, else a system under it.
	System string `json:"system,omitempty"`
	// Agents narrows the hosts to these agent names.
	Agents []string `json:"agents,omitempty"`
	// Params fill the action's parameters: text in which ${inputs.NAME}
	// and ${steps.STEP.OUTPUT} are replaced. The result is checked against
	// each host's declaration like any value.
	Params map[string]string `json:"params,omitempty"`
	// Concurrency is how many hosts run at once; 0: all of them.
	Concurrency int `json:"concurrency,omitempty"`
	// StopAfter is the circuit breaker: no more hosts are started once
	// this many failed. Zero stops at the first failure.
	StopAfter Breaker `json:"stop_after,omitempty"`
	// Outputs are read from what the step's hosts printed: each a regular
	// expression with one group; the value is the group's text in the
	// output of the first host (by name) whose output matches.
	Outputs map[string]string `json:"outputs,omitempty"`
}

// Breaker stops a step once Failures hosts failed, or (when Percent is set)
// once that share of its hosts failed. The zero Breaker stops at the first
// failure.
type Breaker struct {
	Failures int `json:"failures,omitempty"`
	Percent  int `json:"percent,omitempty"`
}

// ParseBreaker reads "3" (failures) or "25%" (share of the hosts).
func ParseBreaker(s string) (Breaker, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 100 {
			return Breaker{}, Errorf(EINVALID, "stop_after %q: a share is 1%% to 100%%", s)
		}
		return Breaker{Percent: n}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxWorkflowHosts {
		return Breaker{}, Errorf(EINVALID, "stop_after %q: write a number of failures (1 to %d) or a share like 25%%", s, MaxWorkflowHosts)
	}
	return Breaker{Failures: n}, nil
}

// String is how the breaker is written in the config repository.
func (b Breaker) String() string {
	if b.Percent > 0 {
		return strconv.Itoa(b.Percent) + "%"
	}
	return strconv.Itoa(max(b.Failures, 1))
}

// Tripped reports whether failed hosts out of total stop the step. A
// step whose every host failed has failed, whatever the breaker says.
func (b Breaker) Tripped(failed, total int) bool {
	if failed == 0 {
		return false
	}
	if b.Percent > 0 {
		return failed*100 >= b.Percent*total
	}
	return failed >= min(max(b.Failures, 1), total)
}

// Workflow limits.
const (
	MaxWorkflowSteps   = 50
	MaxWorkflowHosts   = 10000
	MaxWorkflowInputs  = 32
	MaxWorkflowOutputs = 16
)

var (
	// reference is ${inputs.NAME} or ${steps.STEP.OUTPUT} in a step's
	// parameters.
	reference     = regexp.MustCompile(`\$\{([^}]*)\}`)
	workflowNames = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// ValidateWorkflowName reports whether name is a well-formed name of a
// workflow, step, input or output.
func ValidateWorkflowName(what, name string) error {
	if !workflowNames.MatchString(name) {
		return Errorf(EINVALID, "invalid %s name %q: lower-case letters, digits, - and _, at most 63", what, name)
	}
	return nil
}

// RunRole is the role needed to run the workflow: operator unless it says
// admin.
func (w Workflow) RunRole() Role {
	if w.Role == RoleAdmin {
		return RoleAdmin
	}
	return RoleOperator
}

// Validate checks a workflow on its own: names, steps, references to inputs
// and to the outputs of earlier steps, breakers and output expressions.
// That its steps' systems are under its system, and their actions exposed
// there, needs the graph.
func (w Workflow) Validate() error {
	if err := ValidateWorkflowName("workflow", w.Name); err != nil {
		return err
	}
	fail := func(format string, args ...any) error {
		return Errorf(EINVALID, "workflow %s: %s", w.Name, fmt.Sprintf(format, args...))
	}
	if len(w.Steps) == 0 {
		return fail("it needs at least one step")
	}
	if len(w.Steps) > MaxWorkflowSteps || len(w.Inputs) > MaxWorkflowInputs {
		return fail("at most %d steps and %d inputs", MaxWorkflowSteps, MaxWorkflowInputs)
	}
	inputs := map[string]bool{}
	for _, in := range w.Inputs {
		if err := ValidateWorkflowName("input", in.Name); err != nil {
			return fail("%s", ErrorMessage(err))
		}
		if inputs[in.Name] {
			return fail("input %s is declared twice", in.Name)
		}
		inputs[in.Name] = true
	}
	outputs := map[string]map[string]bool{} // of the steps so far
	for _, st := range w.Steps {
		if err := ValidateWorkflowName("step", st.Name); err != nil {
			return fail("%s", ErrorMessage(err))
		}
		if outputs[st.Name] != nil {
			return fail("step %s is declared twice", st.Name)
		}
		if err := ValidateActionName(st.Action); err != nil {
			return fail("step %s: %s", st.Name, ErrorMessage(err))
		}
		if st.System != "" {
			if err := ValidateSystemID(st.System); err != nil {
				return fail("step %s: %s", st.Name, ErrorMessage(err))
			}
		}
		if st.Concurrency < 0 || st.Concurrency > MaxWorkflowHosts {
			return fail("step %s: concurrency is 0 (all at once) to %d", st.Name, MaxWorkflowHosts)
		}
		if b := st.StopAfter; b.Failures < 0 || b.Percent < 0 || b.Percent > 100 || b.Failures > 0 && b.Percent > 0 {
			return fail("step %s: stop_after is a number of failures or a share, not both", st.Name)
		}
		if len(st.Params) > MaxParams {
			return fail("step %s: at most %d parameters", st.Name, MaxParams)
		}
		for name, value := range st.Params {
			if len(value) > MaxParamValue {
				return fail("step %s: parameter %s is longer than %d bytes", st.Name, name, MaxParamValue)
			}
			for _, m := range reference.FindAllStringSubmatch(value, -1) {
				if err := checkReference(m[1], inputs, outputs); err != nil {
					return fail("step %s: parameter %s: %s", st.Name, name, ErrorMessage(err))
				}
			}
		}
		if len(st.Outputs) > MaxWorkflowOutputs {
			return fail("step %s: at most %d outputs", st.Name, MaxWorkflowOutputs)
		}
		outputs[st.Name] = map[string]bool{}
		for name, expr := range st.Outputs {
			if err := ValidateWorkflowName("output", name); err != nil {
				return fail("step %s: %s", st.Name, ErrorMessage(err))
			}
			re, err := regexp.Compile(expr)
			if err != nil || re.NumSubexp() != 1 {
				return fail("step %s: output %s: %q must be a regular expression with exactly one group ( … ), whose text is the output", st.Name, name, expr)
			}
			outputs[st.Name][name] = true
		}
	}
	return nil
}

func checkReference(ref string, inputs map[string]bool, outputs map[string]map[string]bool) error {
	parts := strings.Split(ref, ".")
	switch {
	case len(parts) == 2 && parts[0] == "inputs":
		if !inputs[parts[1]] {
			return Errorf(EINVALID, "${%s}: the workflow has no input %s", ref, parts[1])
		}
	case len(parts) == 3 && parts[0] == "steps":
		outs, ok := outputs[parts[1]]
		if !ok {
			return Errorf(EINVALID, "${%s}: no step %s comes before this one", ref, parts[1])
		}
		if !outs[parts[2]] {
			return Errorf(EINVALID, "${%s}: step %s has no output %s", ref, parts[1], parts[2])
		}
	default:
		return Errorf(EINVALID, "${%s}: write ${inputs.NAME} or ${steps.STEP.OUTPUT}", ref)
	}
	return nil
}

// WorkflowInputs checks the values given for a workflow's inputs and fills
// in the defaults.
func (w Workflow) WorkflowInputs(given map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for name := range given {
		if !slices.ContainsFunc(w.Inputs, func(in WorkflowInput) bool { return in.Name == name }) {
			return nil, Errorf(EINVALID, "workflow %s has no input %q", w.Name, name)
		}
	}
	for _, in := range w.Inputs {
		v, ok := given[in.Name]
		switch {
		case ok:
		case in.Default != nil:
			v = *in.Default
		default:
			return nil, Errorf(EINVALID, "workflow %s needs the input %s", w.Name, in.Name)
		}
		if len(v) > MaxParamValue {
			return nil, Errorf(EINVALID, "input %s is longer than %d bytes", in.Name, MaxParamValue)
		}
		out[in.Name] = v
	}
	return out, nil
}

// StepParams fills a step's parameters from the inputs and the outputs of
// the steps before it (step name → output name → value). A reference to
// an output not known yet is left as written when partial is set (for a
// dry run), else it is an error.
func (st WorkflowStep) StepParams(inputs map[string]string, outputs map[string]map[string]string, partial bool) (map[string]string, error) {
	out := map[string]string{}
	for name, tmpl := range st.Params {
		var bad error
		out[name] = reference.ReplaceAllStringFunc(tmpl, func(m string) string {
			parts := strings.Split(m[2:len(m)-1], ".")
			switch {
			case len(parts) == 2 && parts[0] == "inputs":
				if v, ok := inputs[parts[1]]; ok {
					return v
				}
			case len(parts) == 3 && parts[0] == "steps":
				if v, ok := outputs[parts[1]][parts[2]]; ok {
					return v
				}
				if partial {
					return m
				}
			}
			if bad == nil {
				bad = Errorf(EINVALID, "step %s: parameter %s: %s has no value", st.Name, name, m)
			}
			return m
		})
		if bad != nil {
			return nil, bad
		}
	}
	return out, nil
}

// StepOutputs reads a step's outputs from what its hosts printed, in the
// order given (hosts by name): each output is the group of its expression
// in the first output that matches. An output no host printed is an error.
func (st WorkflowStep) StepOutputs(printed []string) (map[string]string, error) {
	out := map[string]string{}
	names := make([]string, 0, len(st.Outputs))
	for name := range st.Outputs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		re, err := regexp.Compile(st.Outputs[name])
		if err != nil {
			return nil, Errorf(EINVALID, "step %s: output %s: %v", st.Name, name, err)
		}
		found := false
		for _, text := range printed {
			if m := re.FindStringSubmatch(text); m != nil {
				out[name], found = m[1], true
				break
			}
		}
		if !found {
			return nil, Errorf(EINVALID, "step %s: no host printed its output %s (%s)", st.Name, name, st.Outputs[name])
		}
	}
	return out, nil
}

// WorkflowRun is one run of a workflow: an audited resource like a run,
// with the workflow as declared when it was asked for, and each step's
// hosts and progress. Each host of a step is a run of its own.
type WorkflowRun struct {
	ID          string            `json:"id"`
	System      string            `json:"system"`
	Workflow    Workflow          `json:"workflow"`
	Inputs      map[string]string `json:"inputs"`
	Reason      string            `json:"reason"`
	RequestedBy string            `json:"requested_by"`
	Requested   time.Time         `json:"requested"`
	Approval    bool              `json:"approval,omitempty"`
	ApprovedBy  string            `json:"approved_by,omitempty"`
	Approved    *time.Time        `json:"approved,omitempty"`
	// State is awaiting_approval, running, or how it ended: succeeded,
	// failed or cancelled.
	State       RunState   `json:"state"`
	Started     *time.Time `json:"started,omitempty"`
	Ended       *time.Time `json:"ended,omitempty"`
	CancelledBy string     `json:"cancelled_by,omitempty"`
	Error       string     `json:"error,omitempty"`
	// Step is the index of the step under way.
	Step  int         `json:"step"`
	Steps []StepState `json:"steps"`
}

// StepState is the progress of one step of a workflow run. Its hosts are
// fixed when the workflow is asked for, as the dry run showed them.
type StepState struct {
	Name   string `json:"name"`
	System string `json:"system"`
	Action string `json:"action"`
	// State is requested until the step starts, then running until it
	// succeeds, fails, or is cancelled (skipped, when the workflow stopped
	// before it).
	State   RunState          `json:"state"`
	Params  map[string]string `json:"params,omitempty"`
	Outputs map[string]string `json:"outputs,omitempty"`
	Hosts   []StepHost        `json:"hosts"`
	Started *time.Time        `json:"started,omitempty"`
	Ended   *time.Time        `json:"ended,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// StepHost is one host of a step and its run there.
type StepHost struct {
	Agent string   `json:"agent"`
	Name  string   `json:"name"`
	Run   string   `json:"run,omitempty"`
	State RunState `json:"state"`
}

// Duration is how long the workflow run took, or has been running.
func (w WorkflowRun) Duration(now time.Time) time.Duration {
	return Run{Started: w.Started, Ended: w.Ended}.Duration(now)
}

// WorkflowRunFilter selects workflow runs, newest first.
type WorkflowRunFilter struct {
	Systems  []string // nil: all
	Workflow string
	States   []RunState
	Limit    int
}

// WorkflowChange is what a change of a workflow run makes: the run
// changed, its events, and the runs (hosts' parts) to start, stored in the
// same transaction.
type WorkflowChange struct {
	Run    WorkflowRun
	Events []Event
	Start  []Run
}

// Workflow run event kinds on the timeline.
const (
	KindWorkflowRequested = EventKind("workflow.requested")
	KindWorkflowAwaiting  = EventKind("workflow.awaiting_approval")
	KindWorkflowApproved  = EventKind("workflow.approved")
	KindWorkflowStarted   = EventKind("workflow.started")
	KindWorkflowStep      = EventKind("workflow.step") // a step started or ended
	KindWorkflowFinished  = EventKind("workflow.finished")
	KindWorkflowCancel    = EventKind("workflow.cancel")
)

// WorkflowData is the detail of a workflow run's event.
type WorkflowData struct {
	WorkflowRun string   `json:"workflow_run"`
	Workflow    string   `json:"workflow"`
	Step        string   `json:"step,omitempty"`
	State       RunState `json:"state"`
	Actor       string   `json:"actor,omitempty"`
	// Inputs are the values it was asked for with, on the events of its
	// asking and approval.
	Inputs map[string]string `json:"inputs,omitempty"`
}
