package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

// WorkflowCommand runs a workflow of a system, or lists, shows, cancels or
// approves workflow runs:
// aramaki workflow run NAME --system ID --reason TEXT [--input NAME=VALUE …]
// [--dry-run] [--wait 10m] | runs [--system ID] [--workflow NAME]
// [--state S,…] [--limit N] | show ID | cancel ID | approve ID.
type WorkflowCommand struct{ stdout, stderr io.Writer }

const workflowUsage = "aramaki workflow run NAME --system ID --reason TEXT [--input NAME=VALUE ...] [--dry-run] [--wait 10m] | runs [--system ID] [--workflow NAME] [--state running,failed] [--limit N] | show ID | cancel ID | approve ID"

// workflowFlags are the flags each verb takes, besides the client's, and
// how many arguments it takes after the verb.
var workflowFlags = map[string]struct {
	flags []string
	args  int
}{
	"run":     {[]string{"system", "reason", "input", "dry-run", "wait"}, 1},
	"runs":    {[]string{"system", "workflow", "state", "limit"}, 0},
	"show":    {nil, 1},
	"cancel":  {nil, 1},
	"approve": {nil, 1},
}

// plannedHostsShown is how many hosts of a step the plan names; -o json
// lists them all.
const plannedHostsShown = 50

// Run does the verb.
func (c *WorkflowCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	var inputs listFlag
	fs := flag.NewFlagSet("aramaki workflow", flag.ContinueOnError)
	system := fs.String("system", "", "run: the system whose workflow it is; runs: only workflow runs on this system and everything under it")
	reason := fs.String("reason", "", "why you run it: required (but for a dry run), and on the timeline")
	fs.Var(&inputs, "input", "an input's value, NAME=VALUE; may repeat")
	dryRun := fs.Bool("dry-run", false, "only show what would run where; nothing runs")
	wait := fs.Duration("wait", 0, "follow the workflow run this long, printing each step and host as it goes; exit 1 unless it succeeded")
	workflow := fs.String("workflow", "", "runs: only runs of this workflow")
	state := fs.String("state", "", "runs: only these states, comma-separated: awaiting_approval, running, succeeded, failed, cancelled")
	limit := fs.Int("limit", service.DefaultAlertLimit, "runs: at most this many workflow runs")
	pos, cl, err := parseClient(fs, args, &s, 1, 2, workflowUsage)
	if err != nil {
		return err
	}
	verb := pos[0]
	spec, ok := workflowFlags[verb]
	if !ok || len(pos)-1 != spec.args {
		return fmt.Errorf("usage: %s", workflowUsage)
	}
	var misplaced []string
	fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(spec.flags, f.Name) && !slices.Contains([]string{"server", "token", "token-file", "ca", "o"}, f.Name) {
			misplaced = append(misplaced, "--"+f.Name)
		}
	})
	if len(misplaced) > 0 {
		what := verb
		if verb == "run" {
			what = "running a workflow"
		}
		return fmt.Errorf("%s takes no %s", what, strings.Join(misplaced, ", "))
	}
	switch verb {
	case "runs":
		return c.list(ctx, cl, s, *system, *workflow, *state, *limit)
	case "show":
		return c.show(ctx, cl, s, pos[1])
	case "cancel":
		return c.cancel(ctx, cl, s, pos[1])
	case "approve":
		return c.approve(ctx, cl, s, pos[1])
	}
	values, err := parseInputs(inputs)
	if err != nil {
		return err
	}
	switch {
	case *system == "":
		return fmt.Errorf("on which system? Give --system ID")
	case !*dryRun && strings.TrimSpace(*reason) == "":
		return fmt.Errorf("say why: give --reason TEXT (or look first with --dry-run)")
	case *wait < 0:
		return fmt.Errorf("--wait must not be negative")
	case *dryRun && *wait > 0:
		return fmt.Errorf("a dry run runs nothing to wait for: give --dry-run or --wait, not both")
	}
	return c.run(ctx, cl, s, *system, pos[1], api.WorkflowRunRequest{Reason: *reason, Inputs: values, DryRun: *dryRun}, *wait)
}

// parseInputs reads --input NAME=VALUE flags.
func parseInputs(inputs []string) (map[string]string, error) {
	values := map[string]string{}
	for _, in := range inputs {
		name, value, ok := strings.Cut(in, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--input %q: give NAME=VALUE", in)
		}
		if _, twice := values[name]; twice {
			return nil, fmt.Errorf("--input %s is given twice", name)
		}
		values[name] = value
	}
	return values, nil
}

func workflowPath(system, workflow string) string {
	return "/api/v1/systems/" + url.PathEscape(system) + "/workflows/" + url.PathEscape(workflow) + "/runs"
}

func workflowRunPath(id string) string { return "/api/v1/workflow-runs/" + url.PathEscape(id) }

// run shows the plan (the dry run) and the workflow's rule, and whether it
// ran lately; then, unless only the plan was asked for, runs it and
// follows it if asked to.
func (c *WorkflowCommand) run(ctx context.Context, cl *client, s clientSettings, system, workflow string, req api.WorkflowRunRequest, wait time.Duration) error {
	var plan service.WorkflowPlan
	dry := api.WorkflowRunRequest{Inputs: req.Inputs, DryRun: true}
	if err := cl.do(ctx, "POST", workflowPath(system, workflow), nil, dry, &plan); err != nil {
		return err
	}
	if req.DryRun {
		if s.output == "json" {
			return printJSON(c.stdout, plan)
		}
		printPlan(c.stdout, plan)
		return nil
	}
	// What people should know before: in JSON mode on stderr, to keep
	// stdout one JSON value.
	note := c.stdout
	if s.output == "json" {
		note = c.stderr
	}
	printPlan(note, plan)
	var recent api.WorkflowRunsResponse
	q := url.Values{"system": {system}, "workflow": {workflow}, "limit": {"10"}}
	if err := cl.do(ctx, "GET", "/api/v1/workflow-runs", q, nil, &recent); err != nil {
		return err
	}
	for _, w := range recent.WorkflowRuns {
		if w.System == system && time.Since(w.Requested) < recentRuns { // not the systems under it
			fmt.Fprintln(note, lastWorkflowRun(w))
		}
	}
	fmt.Fprintln(note)

	var w aramaki.WorkflowRun
	if err := cl.do(ctx, "POST", workflowPath(system, workflow), nil, api.WorkflowRunRequest{Reason: req.Reason, Inputs: req.Inputs}, &w); err != nil {
		return err
	}
	if s.output == "json" && wait == 0 {
		return printJSON(c.stdout, w)
	}
	if s.output != "json" {
		fmt.Fprintf(c.stdout, "Workflow run %s of %s on %s: %s\n", clean(w.ID), clean(w.Workflow.Name), clean(w.System), stateWords(w.State))
		switch {
		case w.State == aramaki.RunAwaitingApproval:
			fmt.Fprintf(c.stdout, "It waits for a second person to approve it: aramaki workflow approve %s\n", clean(w.ID))
		case wait == 0:
			fmt.Fprintf(c.stdout, "Follow it with: aramaki workflow show %s\n", clean(w.ID))
		}
	}
	if wait == 0 {
		return nil
	}
	return c.follow(ctx, cl, s, w.ID, wait)
}

// printPlan says what a workflow would do: each step's action, system,
// hosts (marking those whose agent is not connected), values, how many at
// a time and when it stops; the workflow's rule and whether it needs a
// second person.
func printPlan(w io.Writer, p service.WorkflowPlan) {
	steps := "steps"
	if len(p.Steps) == 1 {
		steps = "step"
	}
	fmt.Fprintf(w, "Workflow %s on %s: %d %s\n", clean(p.Workflow), clean(p.System), len(p.Steps), steps)
	if p.Rule != "" {
		fmt.Fprintf(w, "Rule:     %s\n", clean(p.Rule))
	}
	if len(p.Inputs) > 0 {
		fmt.Fprintf(w, "Inputs:   %s\n", keyValues(p.Inputs))
	}
	if p.Approval {
		fmt.Fprintln(w, "Approval: a second person must approve it before it starts")
	}
	for i, st := range p.Steps {
		fmt.Fprintf(w, "%d. %s: %s on %s, %d at a time, %s\n", i+1, clean(st.Name), clean(st.Action), clean(st.System), st.Concurrency, stopsAfter(st.StopAfter))
		var names []string
		away := 0
		for j, h := range st.Hosts {
			if !h.Connected {
				away++
			}
			if j >= plannedHostsShown {
				continue
			}
			name := clean(h.Name)
			if !h.Connected {
				name += " (not connected)"
			}
			names = append(names, name)
		}
		if more := len(st.Hosts) - len(names); more > 0 {
			names = append(names, fmt.Sprintf("… and %d more", more))
		}
		fmt.Fprintf(w, "   Hosts:   %s\n", strings.Join(names, ", "))
		if away > 0 {
			fmt.Fprintf(w, "            %d of %d not connected: the step waits for them (up to an hour)\n", away, len(st.Hosts))
		}
		if len(st.Params) > 0 {
			fmt.Fprintf(w, "   Values:  %s\n", keyValues(st.Params))
		}
		if len(st.Outputs) > 0 {
			fmt.Fprintf(w, "   Outputs: %s\n", strings.Join(cleanAll(slices.Sorted(maps.Keys(st.Outputs))), ", "))
		}
	}
}

// stopsAfter says a step's breaker ("1", "3", "25%") in words.
func stopsAfter(breaker string) string {
	if share, ok := strings.CutSuffix(breaker, "%"); ok {
		return "stops once " + clean(share) + "% of its hosts failed"
	}
	if breaker == "" || breaker == "1" {
		return "stops at the first failure"
	}
	return "stops after " + clean(breaker) + " failures"
}

// keyValues writes a map as sorted NAME=VALUE pairs.
func keyValues(m map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kv = append(kv, clean(k)+"="+clean(m[k]))
	}
	return strings.Join(kv, " ")
}

func cleanAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}

// stateWords is a run state in words.
func stateWords(st aramaki.RunState) string {
	return strings.ReplaceAll(clean(string(st)), "_", " ")
}

// lastWorkflowRun says when a workflow ran before, who asked and how it
// went.
func lastWorkflowRun(w aramaki.WorkflowRun) string {
	what, where, who, when := clean(w.Workflow.Name), clean(w.System), clean(w.RequestedBy), age(w.Requested)
	var line string
	switch {
	case w.State.Final():
		line = fmt.Sprintf("%s ran on %s %s, asked by %s: %s", what, where, when, who, stateWords(w.State))
	case w.State == aramaki.RunAwaitingApproval:
		line = fmt.Sprintf("%s waits for approval on %s, asked by %s %s", what, where, who, when)
	default:
		line = fmt.Sprintf("%s is %s on %s, asked by %s %s", what, stateWords(w.State), where, who, when)
	}
	return line + " (" + clip(clean(w.Reason), 60) + ")"
}

// follow polls a workflow run until it ends, awaits approval or the time
// is up, printing each step's progress and each host's state as they
// change.
func (c *WorkflowCommand) follow(ctx context.Context, cl *client, s clientSettings, id string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	seen := map[string]aramaki.RunState{} // step, or step and host → the state printed last
	delay := 250 * time.Millisecond
	for {
		var w aramaki.WorkflowRun
		if err := cl.do(ctx, "GET", workflowRunPath(id), nil, nil, &w); err != nil {
			return err
		}
		over := w.State.Final()
		var stop error
		switch {
		case over && w.State != aramaki.RunSucceeded:
			stop = fmt.Errorf("workflow run %s %s: %s", clean(w.ID), stateWords(w.State), clean(w.Error))
		case w.State == aramaki.RunAwaitingApproval:
			stop = fmt.Errorf("workflow run %s has not started: it waits for a second person to approve it", clean(w.ID))
		case !over && !time.Now().Before(deadline):
			stop = fmt.Errorf("workflow run %s is still %s after %s: see aramaki workflow show %s", clean(w.ID), stateWords(w.State), wait, clean(w.ID))
		}
		if s.output == "json" {
			if over || stop != nil {
				if err := printJSON(c.stdout, w); err != nil {
					return err
				}
				return stop
			}
		} else {
			printProgress(c.stdout, w, seen)
			if over {
				fmt.Fprintf(c.stdout, "Workflow run %s %s after %s\n", clean(w.ID), stateWords(w.State), duration(w.Duration(time.Now())))
			}
			if over || stop != nil {
				return stop
			}
		}
		t := time.NewTimer(min(delay, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// printProgress prints what changed in a workflow run since seen: steps
// that started, the states of their hosts (those that started), steps
// that ended.
func printProgress(out io.Writer, w aramaki.WorkflowRun, seen map[string]aramaki.RunState) {
	for i, st := range w.Steps {
		key := strconv.Itoa(i)
		was := seen[key]
		if was == st.State {
			continue
		}
		label := fmt.Sprintf("Step %d/%d %s", i+1, len(w.Steps), clean(st.Name))
		if was == "" && st.Started != nil {
			hosts := "hosts"
			if len(st.Hosts) == 1 {
				hosts = "host"
			}
			line := fmt.Sprintf("%s: %s on %s, %d %s", label, clean(st.Action), clean(st.System), len(st.Hosts), hosts)
			if i < len(w.Workflow.Steps) {
				def := w.Workflow.Steps[i]
				n := def.Concurrency
				if n <= 0 || n > len(st.Hosts) {
					n = len(st.Hosts)
				}
				line += fmt.Sprintf(", %d at a time, %s", n, stopsAfter(def.StopAfter.String()))
			}
			if len(st.Params) > 0 {
				line += ": " + keyValues(st.Params)
			}
			fmt.Fprintln(out, line)
		}
		for _, h := range st.Hosts {
			hkey := key + "/" + h.Agent
			if h.Run == "" || seen[hkey] == h.State {
				continue
			}
			seen[hkey] = h.State
			fmt.Fprintf(out, "  %s: %s (run %s)\n", clean(h.Name), stateWords(h.State), clean(h.Run))
		}
		if st.State.Final() {
			line := label + ": " + stateWords(st.State)
			if len(st.Outputs) > 0 {
				line += ", outputs " + keyValues(st.Outputs)
			}
			if st.Error != "" {
				line += ": " + clean(st.Error)
			}
			fmt.Fprintln(out, line)
		}
		if st.State != aramaki.RunRequested {
			seen[key] = st.State
		}
	}
}

func (c *WorkflowCommand) show(ctx context.Context, cl *client, s clientSettings, id string) error {
	var w aramaki.WorkflowRun
	if err := cl.do(ctx, "GET", workflowRunPath(id), nil, nil, &w); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, w)
	}
	printWorkflowRun(c.stdout, w)
	return nil
}

// printWorkflowRun shows a workflow run: who asked and why, its state,
// and each step with its values, outputs, error, and hosts with their
// runs and states.
func printWorkflowRun(out io.Writer, w aramaki.WorkflowRun) {
	stamp := func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }
	fmt.Fprintf(out, "Workflow run %s of %s on %s: %s\n", clean(w.ID), clean(w.Workflow.Name), clean(w.System), stateWords(w.State))
	fmt.Fprintf(out, "Asked:     %s by %s (%s): %s\n", stamp(w.Requested), clean(w.RequestedBy), age(w.Requested), clean(w.Reason))
	if len(w.Inputs) > 0 {
		fmt.Fprintf(out, "Inputs:    %s\n", keyValues(w.Inputs))
	}
	if w.Approval && w.Approved != nil {
		fmt.Fprintf(out, "Approved:  %s by %s\n", stamp(*w.Approved), clean(w.ApprovedBy))
	} else if w.Approval && w.State == aramaki.RunAwaitingApproval {
		fmt.Fprintf(out, "Approval:  waiting for a second person: aramaki workflow approve %s\n", clean(w.ID))
	}
	if w.Started != nil {
		fmt.Fprintf(out, "Started:   %s\n", stamp(*w.Started))
	}
	if w.Ended != nil {
		fmt.Fprintf(out, "Ended:     %s, after %s\n", stamp(*w.Ended), duration(w.Duration(time.Now())))
	}
	if w.CancelledBy != "" {
		fmt.Fprintf(out, "Cancelled: by %s\n", clean(w.CancelledBy))
	}
	if w.Error != "" {
		fmt.Fprintf(out, "Error:     %s\n", clean(w.Error))
	}
	if w.Workflow.Rule != "" {
		fmt.Fprintf(out, "Rule:      %s\n", clean(w.Workflow.Rule))
	}
	for i, st := range w.Steps {
		line := fmt.Sprintf("\nStep %d/%d %s: %s on %s: %s", i+1, len(w.Steps), clean(st.Name), clean(st.Action), clean(st.System), stateWords(st.State))
		if st.Started != nil && st.Ended != nil {
			line += ", " + duration(st.Ended.Sub(*st.Started))
		}
		fmt.Fprintln(out, line)
		if len(st.Params) > 0 {
			fmt.Fprintf(out, "  Values:  %s\n", keyValues(st.Params))
		}
		if len(st.Outputs) > 0 {
			fmt.Fprintf(out, "  Outputs: %s\n", keyValues(st.Outputs))
		}
		if st.Error != "" {
			fmt.Fprintf(out, "  Error:   %s\n", clean(st.Error))
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, h := range st.Hosts {
			run := "-"
			if h.Run != "" {
				run = "run " + clean(h.Run)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", clean(h.Name), stateWords(h.State), run)
		}
		tw.Flush()
	}
	if len(w.Steps) > 0 {
		fmt.Fprintf(out, "\nWhat each host printed: aramaki run show RUN\n")
	}
}

func (c *WorkflowCommand) cancel(ctx context.Context, cl *client, s clientSettings, id string) error {
	var w aramaki.WorkflowRun
	if err := cl.do(ctx, "POST", workflowRunPath(id)+"/cancel", nil, nil, &w); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, w)
	}
	fmt.Fprintf(c.stdout, "Cancelled workflow run %s of %s on %s: no more hosts are started", clean(w.ID), clean(w.Workflow.Name), clean(w.System))
	var running []string
	for _, st := range w.Steps {
		for _, h := range st.Hosts {
			if h.Run != "" && !h.State.Final() {
				running = append(running, clean(h.Name))
			}
		}
	}
	if len(running) > 0 {
		fmt.Fprintf(c.stdout, "; the runs under way are stopped on %s", strings.Join(running, ", "))
	}
	fmt.Fprintln(c.stdout)
	return nil
}

func (c *WorkflowCommand) approve(ctx context.Context, cl *client, s clientSettings, id string) error {
	var w aramaki.WorkflowRun
	if err := cl.do(ctx, "POST", workflowRunPath(id)+"/approve", nil, nil, &w); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, w)
	}
	fmt.Fprintf(c.stdout, "Approved workflow run %s of %s on %s, asked by %s: %s\n", clean(w.ID), clean(w.Workflow.Name), clean(w.System), clean(w.RequestedBy), stateWords(w.State))
	return nil
}

// list prints workflow runs as a table, newest first.
func (c *WorkflowCommand) list(ctx context.Context, cl *client, s clientSettings, system, workflow, state string, limit int) error {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	for k, v := range map[string]string{"system": system, "workflow": workflow, "state": state} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var resp api.WorkflowRunsResponse
	if err := cl.do(ctx, "GET", "/api/v1/workflow-runs", q, nil, &resp); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, resp)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKFLOW\tSYSTEM\tSTATE\tSTEP\tASKED BY\tWHEN\tDURATION\tREASON")
	now := time.Now()
	for _, w := range resp.WorkflowRuns {
		took := "-"
		if w.Started != nil {
			took = duration(w.Duration(now))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(w.ID), clean(w.Workflow.Name), clean(w.System), stateWords(w.State),
			stepCell(w), clean(w.RequestedBy), age(w.Requested), took, clip(clean(w.Reason), 50))
	}
	return tw.Flush()
}

// stepCell says where a workflow run is: the step under way, or how many
// steps succeeded.
func stepCell(w aramaki.WorkflowRun) string {
	if w.State == aramaki.RunRunning && w.Step < len(w.Steps) {
		return fmt.Sprintf("%d/%d %s", w.Step+1, len(w.Steps), clean(w.Steps[w.Step].Name))
	}
	done := 0
	for _, st := range w.Steps {
		if st.State == aramaki.RunSucceeded {
			done++
		}
	}
	return fmt.Sprintf("%d/%d done", done, len(w.Steps))
}
