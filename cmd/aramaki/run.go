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

// RunCommand runs an allowed action on a system, or shows, cancels or
// sums up runs:
// aramaki run ACTION --system ID --reason TEXT [--param NAME=VALUE …]
// [--break-glass] [--wait 2m] | show ID | cancel ID | stats ACTION --system ID
// [--period 168h].
type RunCommand struct{ stdout, stderr io.Writer }

const runUsage = "aramaki run ACTION --system ID --reason TEXT [--param NAME=VALUE ...] [--break-glass] [--wait 2m] | show ID | cancel ID | stats ACTION --system ID [--period 168h]"

// recentRuns is how far back runs of the same action are shown before
// running it again, so that nobody does it twice by accident.
const recentRuns = time.Hour

// runFlags are the flags each verb takes, besides the client's.
var runFlags = map[string][]string{
	"":       {"system", "reason", "param", "break-glass", "wait"},
	"show":   {},
	"cancel": {},
	"stats":  {"system", "period"},
}

// Run does the verb, or runs the action.
func (c *RunCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	var params listFlag
	fs := flag.NewFlagSet("aramaki run", flag.ContinueOnError)
	system := fs.String("system", "", "the system to run the action on")
	reason := fs.String("reason", "", "why you run it: required, and on the timeline")
	fs.Var(&params, "param", "a parameter's value, NAME=VALUE; may repeat")
	breakGlass := fs.Bool("break-glass", false, "run an action that needs approval without it: loudly, and the system's owners are told")
	wait := fs.Duration("wait", 0, "wait this long for the run to end, printing what the hosts say; exit 1 unless it succeeded")
	period := fs.Duration("period", api.DefaultStatsPeriod, "with stats: the period summed up")
	pos, cl, err := parseClient(fs, args, &s, 1, 2, runUsage)
	if err != nil {
		return err
	}
	verb := pos[0]
	if verb != "show" && verb != "cancel" && verb != "stats" {
		verb = "" // an action's name
	}
	if (verb == "") != (len(pos) == 1) {
		return fmt.Errorf("usage: %s", runUsage)
	}
	var misplaced []string
	fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(runFlags[verb], f.Name) && !slices.Contains([]string{"server", "token", "token-file", "ca", "o"}, f.Name) {
			misplaced = append(misplaced, "--"+f.Name)
		}
	})
	if len(misplaced) > 0 {
		what := verb
		if what == "" {
			what = "running an action"
		}
		return fmt.Errorf("%s takes no %s", what, strings.Join(misplaced, ", "))
	}
	switch verb {
	case "show":
		return c.show(ctx, cl, s, pos[1])
	case "cancel":
		return c.cancel(ctx, cl, s, pos[1])
	case "stats":
		return c.stats(ctx, cl, s, pos[1], *system, *period)
	}
	values := map[string]string{}
	for _, p := range params {
		name, value, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return fmt.Errorf("--param %q: give NAME=VALUE", p)
		}
		if _, twice := values[name]; twice {
			return fmt.Errorf("--param %s is given twice", name)
		}
		values[name] = value
	}
	switch {
	case *system == "":
		return fmt.Errorf("on which system? Give --system ID")
	case strings.TrimSpace(*reason) == "":
		return fmt.Errorf("say why: give --reason TEXT")
	case *wait < 0:
		return fmt.Errorf("--wait must not be negative")
	}
	return c.request(ctx, cl, s, pos[0], *system, api.RunRequest{Reason: *reason, Params: values, BreakGlass: *breakGlass}, *wait)
}

// request says what the action's rule is and whether it ran lately, asks
// for the run, and waits for it if asked to.
func (c *RunCommand) request(ctx context.Context, cl *client, s clientSettings, action, system string, req api.RunRequest, wait time.Duration) error {
	// What people should know before: in JSON mode on stderr, to keep
	// stdout one JSON value.
	note := c.stdout
	if s.output == "json" {
		note = c.stderr
	}
	var sys service.SystemView
	if err := cl.do(ctx, "GET", "/api/v1/systems/"+url.PathEscape(system), nil, nil, &sys); err != nil {
		return err
	}
	i := slices.IndexFunc(sys.Actions, func(a aramaki.ActionRef) bool { return a.Name == action })
	if sys.Peer != "" {
		// What the peer's system has, and lets this server run, is the
		// peer's to say when it gets the request.
		fmt.Fprintf(note, "%s is a system of peer %s: it runs %s if one of its grants allows, under its own rules.\n", clean(system), clean(sys.Peer), clean(action))
	} else if i < 0 {
		names := make([]string, len(sys.Actions))
		for j, a := range sys.Actions {
			names[j] = a.Name
		}
		has := "it has none"
		if len(names) > 0 {
			has = "its actions: " + strings.Join(names, ", ")
		}
		return aramaki.Errorf(aramaki.ENOTFOUND, "system %s has no action %s (%s)", system, action, has)
	}
	if i >= 0 && sys.Actions[i].Rule != "" {
		fmt.Fprintf(note, "Rule: %s\n", clean(sys.Actions[i].Rule))
	}
	q := url.Values{"system": {system}, "action": {action}, "since": {recentRuns.String()}}
	var recent api.RunsResponse
	if err := cl.do(ctx, "GET", "/api/v1/runs", q, nil, &recent); err != nil {
		return err
	}
	for _, r := range recent.Runs {
		if r.System == system { // not the systems under it
			fmt.Fprintln(note, lastTime(r))
		}
	}

	var run aramaki.Run
	path := "/api/v1/systems/" + url.PathEscape(system) + "/actions/" + url.PathEscape(action) + "/runs"
	if err := cl.do(ctx, "POST", path, nil, req, &run); err != nil {
		return err
	}
	if s.output == "json" && wait == 0 {
		return printJSON(c.stdout, run)
	}
	if s.output != "json" {
		hosts := make([]string, len(run.Targets))
		for j, t := range run.Targets {
			hosts[j] = clean(t.Name)
		}
		where := strings.Join(hosts, ", ")
		if run.Remote() {
			where = "at peer " + clean(run.Peer)
		}
		fmt.Fprintf(c.stdout, "Run %s of %s on %s (%s): %s\n", clean(run.ID), clean(run.Action), clean(run.System), where, runState(run))
		if run.State == aramaki.RunAwaitingApproval {
			fmt.Fprintf(c.stdout, "It waits for a second person to approve it: aramaki approve %s\n", clean(run.ID))
		}
	}
	if wait == 0 {
		return nil
	}
	return c.wait(ctx, cl, s, run.ID, wait)
}

// lastTime says when an action ran on a system before, who asked and how
// it ended.
func lastTime(r aramaki.Run) string {
	what, where, who, when := clean(r.Action), clean(r.System), clean(r.RequestedBy), age(r.Requested)
	var line string
	switch {
	case r.State.Final():
		line = fmt.Sprintf("%s ran on %s %s, asked by %s: %s", what, where, when, who, runState(r))
	case r.State == aramaki.RunAwaitingApproval:
		line = fmt.Sprintf("%s waits for approval on %s, asked by %s %s", what, where, who, when)
	default:
		line = fmt.Sprintf("%s is %s on %s, asked by %s %s", what, runState(r), where, who, when)
	}
	return line + " (" + clip(clean(r.Reason), 60) + ")"
}

// wait polls a run until it ends, awaits approval or the time is up,
// printing what each host says as it arrives.
func (c *RunCommand) wait(ctx context.Context, cl *client, s clientSettings, id string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	printed := map[string]int{} // bytes of each host's output printed
	delay := 250 * time.Millisecond
	path := "/api/v1/runs/" + url.PathEscape(id)
	for {
		var v service.RunView
		if err := cl.do(ctx, "GET", path, nil, nil, &v); err != nil {
			return err
		}
		over := v.State.Final()
		var stop error
		switch {
		case over && v.State != aramaki.RunSucceeded:
			stop = fmt.Errorf("run %s %s%s", clean(v.ID), runState(v.Run), hostTrouble(v.Run))
		case v.State == aramaki.RunAwaitingApproval && v.Remote():
			stop = fmt.Errorf("run %s has not started: it waits for a person of peer %s to approve it", clean(v.ID), clean(v.Peer))
		case v.State == aramaki.RunAwaitingApproval:
			stop = fmt.Errorf("run %s has not started: it waits for a second person to approve it", clean(v.ID))
		case !over && !time.Now().Before(deadline):
			stop = fmt.Errorf("run %s is still %s after %s: see aramaki run show %s", clean(v.ID), runState(v.Run), wait, clean(v.ID))
		}
		if s.output == "json" {
			if over || stop != nil {
				if err := printJSON(c.stdout, v); err != nil {
					return err
				}
				return stop
			}
		} else {
			printOutput(c.stdout, v.Run, printed, over)
			if over && v.Remote() && v.State == aramaki.RunSucceeded {
				fmt.Fprintf(c.stdout, "At peer %s: %s\n", clean(v.Peer), remoteHosts(v.Run))
			}
			if over {
				fmt.Fprintf(c.stdout, "Run %s %s after %s\n", clean(v.ID), runState(v.Run), duration(v.Duration(time.Now())))
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

// printOutput prints the complete lines each host printed since last time,
// prefixed with the host's name; once the run is over, the rest too.
func printOutput(w io.Writer, r aramaki.Run, printed map[string]int, over bool) {
	for _, t := range r.Targets {
		out := t.Output[min(printed[t.Agent], len(t.Output)):]
		end := strings.LastIndexByte(out, '\n') + 1
		if over || t.State.Final() {
			end = len(out)
		}
		for _, line := range strings.SplitAfter(out[:end], "\n") {
			if line != "" {
				fmt.Fprintf(w, "%s: %s\n", clean(t.Name), clean(strings.TrimSuffix(line, "\n")))
			}
		}
		printed[t.Agent] += end
		if over && t.Dropped > 0 {
			fmt.Fprintf(w, "%s: (%d more bytes of output were not kept)\n", clean(t.Name), t.Dropped)
		}
	}
}

// hostTrouble says which hosts did not succeed, and how; of a run on a
// peer, how many and why, as the peer told.
func hostTrouble(r aramaki.Run) string {
	if r.Remote() {
		switch {
		case r.State == aramaki.RunRefused:
			return ": " + clip(clean(r.Error), 200)
		case r.Error != "":
			return fmt.Sprintf(": %s (%s)", remoteHosts(r), clip(clean(r.Error), 200))
		}
		return ": " + remoteHosts(r)
	}
	var parts []string
	for _, t := range r.Targets {
		if t.State == aramaki.RunSucceeded {
			continue
		}
		part := clean(t.Name) + " " + strings.ReplaceAll(string(t.State), "_", " ")
		if t.ExitCode != nil {
			part += fmt.Sprintf(" (exit %d)", *t.ExitCode)
		}
		if t.Error != "" {
			part += ": " + clip(clean(t.Error), 100)
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, "; ")
}

func (c *RunCommand) show(ctx context.Context, cl *client, s clientSettings, id string) error {
	var v service.RunView
	if err := cl.do(ctx, "GET", "/api/v1/runs/"+url.PathEscape(id), nil, nil, &v); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, v)
	}
	printRun(c.stdout, v)
	return nil
}

func printRun(w io.Writer, v service.RunView) {
	r := v.Run
	stamp := func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }
	fmt.Fprintf(w, "Run %s of %s on %s: %s\n", clean(r.ID), clean(r.Action), clean(r.System), runState(r))
	fmt.Fprintf(w, "Asked:     %s by %s (%s): %s\n", stamp(r.Requested), clean(r.RequestedBy), age(r.Requested), clean(r.Reason))
	if len(r.Params) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(r.Params)) {
			kv = append(kv, clean(k)+"="+clean(r.Params[k]))
		}
		fmt.Fprintf(w, "Params:    %s\n", strings.Join(kv, " "))
	}
	if r.BreakGlass {
		fmt.Fprintln(w, "Approval:  skipped: glass was broken")
	} else if r.Approval && r.Approved != nil {
		fmt.Fprintf(w, "Approved:  %s by %s\n", stamp(*r.Approved), clean(r.ApprovedBy))
	} else if r.Approval {
		fmt.Fprintln(w, "Approval:  waiting for a second person")
	}
	if r.Started != nil {
		fmt.Fprintf(w, "Started:   %s\n", stamp(*r.Started))
	}
	if r.Ended != nil {
		fmt.Fprintf(w, "Ended:     %s, after %s\n", stamp(*r.Ended), duration(r.Duration(time.Now())))
	}
	if r.CancelledBy != "" {
		fmt.Fprintf(w, "Cancelled: by %s\n", clean(r.CancelledBy))
	}
	if r.Error != "" {
		fmt.Fprintf(w, "Error:     %s\n", clean(r.Error))
	}
	if v.Rule != "" {
		fmt.Fprintf(w, "Rule:      %s\n", clean(v.Rule))
	}
	if r.Remote() {
		there := "not yet known"
		if r.PeerRun != "" {
			there = "run " + clean(r.PeerRun) + " there"
		}
		fmt.Fprintf(w, "Peer:      %s runs it (%s)\n", clean(r.Peer), there)
		if r.State.Final() && r.State != aramaki.RunRefused {
			fmt.Fprintf(w, "Hosts:     %s\n", remoteHosts(r))
		}
	} else if r.ForPeer() {
		fmt.Fprintf(w, "Peer:      asked by peer %s (run %s there)\n", clean(r.Peer), clean(r.PeerRun))
	}
	for _, t := range r.Targets {
		line := fmt.Sprintf("\nOn %s: %s", clean(t.Name), strings.ReplaceAll(string(t.State), "_", " "))
		if t.ExitCode != nil {
			line += fmt.Sprintf(", exit %d", *t.ExitCode)
		}
		if t.Started != nil && t.Ended != nil {
			line += ", " + duration(t.Ended.Sub(*t.Started))
		}
		if t.Error != "" {
			line += ": " + clean(t.Error)
		}
		fmt.Fprintln(w, line)
		if out := strings.TrimRight(t.Output, "\n"); out != "" {
			fmt.Fprintln(w, "  "+strings.ReplaceAll(cleanBlock(out), "\n", "\n  "))
		}
		if t.Dropped > 0 {
			fmt.Fprintf(w, "  (%d more bytes of output were not kept)\n", t.Dropped)
		}
	}
}

func (c *RunCommand) cancel(ctx context.Context, cl *client, s clientSettings, id string) error {
	var r aramaki.Run
	if err := cl.do(ctx, "POST", "/api/v1/runs/"+url.PathEscape(id)+"/cancel", nil, nil, &r); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, r)
	}
	if r.State.Final() {
		fmt.Fprintf(c.stdout, "Cancelled run %s of %s on %s: %s\n", clean(r.ID), clean(r.Action), clean(r.System), runState(r))
		return nil
	}
	fmt.Fprintf(c.stdout, "Asked the hosts to stop run %s of %s on %s: it ends when they say so (aramaki run show %s)\n", clean(r.ID), clean(r.Action), clean(r.System), clean(r.ID))
	return nil
}

func (c *RunCommand) stats(ctx context.Context, cl *client, s clientSettings, action, system string, period time.Duration) error {
	if system == "" {
		return fmt.Errorf("on which system? Give --system ID")
	}
	if period <= 0 {
		return fmt.Errorf("--period must be a positive duration like 168h")
	}
	var st aramaki.RunStats
	path := "/api/v1/systems/" + url.PathEscape(system) + "/actions/" + url.PathEscape(action) + "/stats"
	if err := cl.do(ctx, "GET", path, url.Values{"period": {period.String()}}, nil, &st); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, st)
	}
	fmt.Fprintf(c.stdout, "%s on %s over the last %s\n", clean(st.Action), clean(st.System), span(period))
	fmt.Fprintf(c.stdout, "Runs:     %d\n", st.Runs)
	if st.Runs == 0 {
		return nil
	}
	fmt.Fprintf(c.stdout, "Failed:   %d (%.1f%%)\n", st.Failed, 100*float64(st.Failed)/float64(st.Runs))
	fmt.Fprintf(c.stdout, "Average:  %s\n", duration(st.Average))
	fmt.Fprintf(c.stdout, "p95:      %s\n", duration(st.P95))
	return nil
}

// RunsCommand lists runs, newest first:
// aramaki runs [--system S] [--action A] [--state S,…] [--since D] [--limit N].
type RunsCommand struct{ stdout io.Writer }

// Run prints the runs as a table.
func (c *RunsCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki runs", flag.ContinueOnError)
	system := fs.String("system", "", "only runs on this system and everything under it")
	action := fs.String("action", "", "only runs of this action")
	state := fs.String("state", "", "only these states, comma-separated: requested, awaiting_approval, running, succeeded, failed, cancelled, timed_out, refused")
	since := fs.Duration("since", 0, "only runs asked for within this long, like 24h")
	limit := fs.Int("limit", service.DefaultAlertLimit, "at most this many runs")
	_, cl, err := parseClient(fs, args, &s, 0, 0, "aramaki runs [--system S] [--action A] [--state running,failed] [--since 24h] [--limit N]")
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	for k, v := range map[string]string{"system": *system, "action": *action, "state": *state} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *since != 0 {
		q.Set("since", since.String())
	}
	var resp api.RunsResponse
	if err := cl.do(ctx, "GET", "/api/v1/runs", q, nil, &resp); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, resp)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTION\tSYSTEM\tSTATE\tASKED BY\tWHEN\tDURATION\tREASON")
	now := time.Now()
	for _, r := range resp.Runs {
		took := "-"
		if r.Started != nil {
			took = duration(r.Duration(now))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(r.ID), clean(r.Action), clean(r.System), runState(r),
			clean(r.RequestedBy), age(r.Requested), took, clip(clean(r.Reason), 50))
	}
	return tw.Flush()
}

// ApproveCommand lets a run that waits for a second person start:
// aramaki approve ID.
type ApproveCommand struct{ stdout io.Writer }

// Run approves the run.
func (c *ApproveCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki approve", flag.ContinueOnError)
	pos, cl, err := parseClient(fs, args, &s, 1, 1, "aramaki approve ID")
	if err != nil {
		return err
	}
	var r aramaki.Run
	if err := cl.do(ctx, "POST", "/api/v1/runs/"+url.PathEscape(pos[0])+"/approve", nil, nil, &r); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, r)
	}
	fmt.Fprintf(c.stdout, "Approved run %s of %s on %s, asked by %s: %s\n", clean(r.ID), clean(r.Action), clean(r.System), clean(r.RequestedBy), runState(r))
	return nil
}

// remoteHosts says how many of a peer's hosts succeeded and failed.
func remoteHosts(r aramaki.Run) string {
	return fmt.Sprintf("%d of the peer's hosts succeeded, %d did not", r.HostsOK, r.HostsFailed)
}

// runState is a run's state in words, marked when glass was broken.
func runState(r aramaki.Run) string {
	st := strings.ReplaceAll(clean(string(r.State)), "_", " ")
	if r.BreakGlass {
		st += " (break glass)"
	}
	return st
}

// age says how long ago, in words a person reads at a glance.
func age(t time.Time) string {
	d := time.Since(t)
	switch {
	case t.IsZero():
		return "-"
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// duration rounds a run's duration to what matters.
func duration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// span says a period in days or hours.
func span(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}
