package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/agent/action"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/wire"
)

// benchRunsConfig is what aramaki bench runs takes on top of the agents.
type benchRunsConfig struct {
	benchConfig
	action      string
	runs        int
	concurrency int
	runTime     time.Duration
	before      time.Duration
	timeout     time.Duration
}

// Bounds of aramaki bench runs.
const (
	benchMaxRuns        = 100_000
	benchMaxConcurrency = 10_000
	// benchResend is how long a simulated agent waits for the run_ack of
	// a finished frame before it sends it again.
	benchResend = 10 * time.Second
)

// benchOutput is what a simulated run prints.
const benchOutput = "Filesystem      Size  Used Avail Use% Mounted on\n/dev/simulated  100G   42G   58G  42% /\n"

// runs measures action runs on simulated agents: from asking the API for
// a run to the agent getting its start frame, with the agents streaming
// results meanwhile to show whether ingestion stalls.
func (c *BenchCommand) runs(ctx context.Context, args []string) error {
	var s clientSettings
	var cfg benchRunsConfig
	fs := flag.NewFlagSet("aramaki bench runs", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cfg.flags(fs, 1000)
	fs.StringVar(&cfg.action, "action", "disk-usage", "action the agents allow and the runs run; the system must offer it without approval")
	fs.IntVar(&cfg.runs, "runs", 0, "runs to ask for, each on one agent, round robin (0: one per agent)")
	fs.IntVar(&cfg.concurrency, "concurrency", 100, "run requests in flight at once")
	fs.DurationVar(&cfg.runTime, "run-time", time.Second, "how long a simulated run takes, from its start frame to its finished frame")
	fs.DurationVar(&cfg.before, "before", 10*time.Second, "how long results stream before the first run is asked for, to compare ingestion with")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "how long to wait for every run to finish once they are asked for")
	_, cl, err := parseClient(fs, args, &s, 0, 0, "aramaki bench runs --system ID [flags]")
	if err != nil {
		return err
	}
	if cfg.runs == 0 {
		cfg.runs = cfg.agents
	}
	decl, err := cfg.validate()
	if err != nil {
		return err
	}
	// The API client keeps as many requests in flight as asked.
	if tr, ok := cl.http.Transport.(*http.Transport); ok {
		tr.MaxIdleConnsPerHost = cfg.concurrency
	}
	if err := benchOffers(ctx, cl, cfg); err != nil {
		return err
	}
	agents, err := benchIdentities(ctx, cl, cfg.benchConfig, c.stderr)
	if err != nil {
		return err
	}

	var st benchStats
	runs := &benchRuns{runTime: cfg.runTime, started: map[string]time.Time{}}
	srv := benchWatch(cfg.serverPID)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	perAgent := cfg.rate / float64(len(agents))
	fleet, err := benchConnectAll(ctx, s, agents, cfg.benchConfig, &st, func(ctx context.Context, i int, b *benchSession, rnd *rand.Rand) {
		// As the real agent: what the host allows, then the runs it
		// knows of (none), then results.
		if !b.write(ctx, &wire.Actions{Actions: []wire.ActionDeclaration{decl}}) || !b.write(ctx, &wire.Runs{Runs: []wire.RunStatus{}}) {
			return
		}
		b.stream(ctx, perAgent, rnd, runs.agent(ctx, b))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "%d of %d agents connected in %s\n", st.connected.Load(), len(agents), fleet.connectTime.Round(time.Millisecond))
	if err := benchReady(ctx, cl, cfg, agents); err != nil {
		return err
	}

	// Ingestion alone, then with the runs.
	fmt.Fprintf(c.stderr, "streaming %v results/s for %s, then asking for %d runs, %d at a time\n", cfg.rate, cfg.before, cfg.runs, cfg.concurrency)
	beforeStart := time.Now()
	select {
	case <-time.After(cfg.before):
	case <-ctx.Done():
		return ctx.Err()
	}
	runsStart := time.Now()
	cpuBefore, ownBefore := srv.cpu(), benchOwnCPU()
	asked := benchAsk(ctx, cl, cfg, agents)
	requestsDone := time.Now()
	finished, over := benchAwait(ctx, cl, cfg, asked, runsStart.Add(cfg.timeout))
	runsEnd := time.Now()
	cpuDuring, ownDuring := srv.cpu()-cpuBefore, benchOwnCPU()-ownBefore
	outcomes := benchOutcomes(ctx, cl, asked)
	cancel()
	fleet.wait()

	report := map[string]any{
		"agents":              len(agents),
		"connected":           st.connected.Load(),
		"connect_all_seconds": fleet.connectTime.Seconds(),
		"connect_retries":     st.retries.Load(),
		"errors":              st.errors.Load(),
		"runs_asked":          cfg.runs,
		"concurrency":         cfg.concurrency,
		"run_time_seconds":    cfg.runTime.Seconds(),
		"requests_seconds":    requestsDone.Sub(runsStart).Seconds(),
		"requests_failed":     asked.failed,
		"runs_succeeded":      outcomes.succeeded,
		"runs_failed":         outcomes.failed,
		"runs_unfinished":     outcomes.unfinished,
		"runs_peak_running":   runs.peak.Load(),
		"finished_resent":     runs.resent.Load(),
		"start_duplicates":    runs.duplicates.Load(),
		// The generator shares the machine with the server: what it took.
		"bench_cpu_cores_during": ownDuring / runsEnd.Sub(runsStart).Seconds(),
	}
	if over {
		report["all_finished_seconds"] = finished.Sub(runsStart).Seconds()
	}
	var requestLat, startLat []float64
	for _, r := range asked.runs {
		requestLat = append(requestLat, ms(r.took))
		if at, ok := runs.startedAt(r.id); ok {
			startLat = append(startLat, ms(at.Sub(r.sent)))
		}
	}
	slices.Sort(requestLat)
	slices.Sort(startLat)
	report["runs_started"] = len(startLat)
	for name, lat := range map[string][]float64{"api_request": requestLat, "request_to_start": startLat, "finished_to_run_ack": runs.ackLatencies()} {
		report[name+"_p50_ms"] = pctl(lat, 0.50)
		report[name+"_p99_ms"] = pctl(lat, 0.99)
		report[name+"_max_ms"] = pctl(lat, 1)
	}
	for name, w := range map[string][2]time.Time{"before": {beforeStart, runsStart}, "during": {runsStart, runsEnd}} {
		lat, acked := st.window(w[0], w[1])
		report["ingest_"+name+"_seconds"] = w[1].Sub(w[0]).Seconds()
		report["ingest_"+name+"_results_per_second"] = float64(acked) / w[1].Sub(w[0]).Seconds()
		report["ingest_"+name+"_ack_p50_ms"] = pctl(lat, 0.50)
		report["ingest_"+name+"_ack_p99_ms"] = pctl(lat, 0.99)
		report["ingest_"+name+"_ack_max_ms"] = pctl(lat, 1)
	}
	if cfg.serverPID != 0 {
		report["server_cpu_cores_before"] = cpuBefore / runsStart.Sub(fleet.start).Seconds()
		report["server_cpu_cores_during"] = cpuDuring / runsEnd.Sub(runsStart).Seconds()
		srv.report(report)
	}
	if e := st.firstError(); e != "" {
		report["first_error"] = e
	}
	if asked.firstErr != "" {
		report["first_request_error"] = asked.firstErr
	}
	if outcomes.firstFailure != "" {
		report["first_failed_run"] = outcomes.firstFailure
	}
	return printBenchReport(c.stdout, s.output, report)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchOwnCPU is the CPU time this process used so far.
func benchOwnCPU() float64 {
	cpu, _ := procCPU(os.Getpid())
	return cpu
}

// validate checks the flags and returns the declaration the simulated
// agents announce.
func (cfg *benchRunsConfig) validate() (wire.ActionDeclaration, error) {
	if err := cfg.benchConfig.validate(); err != nil {
		return wire.ActionDeclaration{}, err
	}
	switch {
	case cfg.runs < 1 || cfg.runs > benchMaxRuns:
		return wire.ActionDeclaration{}, fmt.Errorf("--runs %d: between 1 and %d", cfg.runs, benchMaxRuns)
	case cfg.concurrency < 1 || cfg.concurrency > benchMaxConcurrency:
		return wire.ActionDeclaration{}, fmt.Errorf("--concurrency %d: between 1 and %d", cfg.concurrency, benchMaxConcurrency)
	case cfg.runTime < 0:
		return wire.ActionDeclaration{}, fmt.Errorf("--run-time %s: 0 or more", cfg.runTime)
	case cfg.before < 0 || cfg.before > time.Hour:
		return wire.ActionDeclaration{}, fmt.Errorf("--before %s: between 0 and 1h", cfg.before)
	case cfg.timeout <= 0 || cfg.timeout > time.Hour:
		return wire.ActionDeclaration{}, fmt.Errorf("--timeout %s: between 1s and 1h", cfg.timeout)
	}
	cfg.concurrency = min(cfg.concurrency, cfg.runs)
	decl, err := benchDeclaration(cfg.action)
	if err != nil {
		return decl, err
	}
	if cfg.runTime > decl.Timeout.D() {
		return decl, fmt.Errorf("--run-time %s is longer than %s may take (%s)", cfg.runTime, cfg.action, decl.Timeout.D())
	}
	if cfg.runTime+benchResend > cfg.timeout {
		return decl, fmt.Errorf("--timeout %s leaves runs of %s no time to be told finished (at least %s)", cfg.timeout, cfg.runTime, cfg.runTime+benchResend)
	}
	return decl, nil
}

// benchDeclaration is the action as the simulated hosts declare it: as
// the quickstart's host does when it has it, so that the same values are
// valid; otherwise one without parameters.
func benchDeclaration(name string) (wire.ActionDeclaration, error) {
	specs, problems := action.Parse("quickstart.yaml", []byte(quickstartActions))
	if len(problems) > 0 {
		return wire.ActionDeclaration{}, fmt.Errorf("the quickstart's actions: %v", problems[0])
	}
	spec := aramaki.ActionSpec{Name: name, Description: "Simulated by aramaki bench runs", Argv: []string{"/bin/true"}, Timeout: 10 * time.Minute}
	if i := slices.IndexFunc(specs, func(s aramaki.ActionSpec) bool { return s.Name == name }); i >= 0 {
		spec = specs[i]
	}
	d := wire.ActionDeclaration{Name: spec.Name, Description: spec.Description, Argv: spec.Argv, Timeout: wire.Millis(spec.Timeout), User: spec.User}
	for _, p := range spec.Params {
		d.Params = append(d.Params, wire.ActionParam{Name: p.Name, Type: string(p.Type), Description: p.Description,
			Pattern: p.Pattern, Min: p.Min, Max: p.Max, Values: p.Values, Default: p.Default})
	}
	if d.Timeout == 0 {
		d.Timeout = wire.Millis(aramaki.DefaultRunTimeout)
	}
	if err := d.Validate(); err != nil {
		return d, fmt.Errorf("--action %q: %w", name, err)
	}
	return d, nil
}

// benchOffers checks that the system offers the action to be run without
// a second person's approval: the load tool approves nothing.
func benchOffers(ctx context.Context, cl *client, cfg benchRunsConfig) error {
	var sys aramaki.System
	if err := cl.do(ctx, "GET", "/api/v1/systems/"+url.PathEscape(cfg.system), nil, nil, &sys); err != nil {
		return fmt.Errorf("system %s: %w", cfg.system, err)
	}
	i := slices.IndexFunc(sys.Actions, func(a aramaki.ActionRef) bool { return a.Name == cfg.action })
	switch {
	case i < 0:
		return fmt.Errorf("system %s offers no action %s: its config must list it", cfg.system, cfg.action)
	case sys.Actions[i].Approval:
		return fmt.Errorf("action %s of %s needs approval: the load tool runs only actions that need none", cfg.action, cfg.system)
	}
	return nil
}

// benchReady waits until the server has every agent connected with the
// action, and fills in the agents' names, which runs are narrowed by. A
// name that picks more than one host is refused.
func benchReady(ctx context.Context, cl *client, cfg benchRunsConfig, agents []benchAgent) error {
	type view struct {
		ID        string     `json:"id"`
		Name      string     `json:"name"`
		Systems   []string   `json:"systems"`
		Revoked   *time.Time `json:"revoked"`
		Connected bool       `json:"connected"`
		Actions   []struct {
			Name string `json:"name"`
		} `json:"actions"`
	}
	declares := func(v view) bool {
		for _, a := range v.Actions {
			if a.Name == cfg.action {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var resp struct {
			Agents []view `json:"agents"`
		}
		if err := cl.do(ctx, "GET", "/api/v1/agents", nil, nil, &resp); err != nil {
			return fmt.Errorf("list agents: %w", err)
		}
		byID := map[string]view{}
		hosts := map[string]int{} // name → agents that would run the action
		for _, v := range resp.Agents {
			byID[v.ID] = v
			if v.Revoked == nil && slices.Contains(v.Systems, cfg.system) && declares(v) {
				hosts[v.Name]++
			}
		}
		ready := 0
		for i, a := range agents {
			v, ok := byID[a.ID]
			if !ok {
				return fmt.Errorf("agent %s of %s is unknown to the server: remove the state directory %s", a.ID, cfg.state, cfg.state)
			}
			agents[i].Name = v.Name
			if v.Connected && hosts[v.Name] > 0 {
				ready++
			}
			if hosts[v.Name] > 1 {
				return fmt.Errorf("%d agents of %s named %s declare %s: a run narrowed to the name would not pick one; use another --state", hosts[v.Name], cfg.system, v.Name, cfg.action)
			}
		}
		if ready == len(agents) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d agents are connected with action %s after a minute", ready, len(agents), cfg.action)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// benchAsked are the runs asked for.
type benchAsked struct {
	runs     []benchRequest
	failed   int
	firstErr string
}

type benchRequest struct {
	id   string
	sent time.Time     // just before the request
	took time.Duration // until the answer
}

// benchAsk asks for the runs, each on one agent in turn, concurrency at a
// time, as fast as the server answers.
func benchAsk(ctx context.Context, cl *client, cfg benchRunsConfig, agents []benchAgent) benchAsked {
	var (
		mu    sync.Mutex
		asked benchAsked
		wg    sync.WaitGroup
	)
	jobs := make(chan int)
	path := "/api/v1/systems/" + url.PathEscape(cfg.system) + "/actions/" + url.PathEscape(cfg.action) + "/runs"
	for range cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				a := agents[i%len(agents)]
				var run aramaki.Run
				sent := time.Now()
				err := cl.do(ctx, "POST", path, nil, api.RunRequest{Reason: "aramaki bench runs: load test", Agents: []string{a.Name}}, &run)
				took := time.Since(sent)
				mu.Lock()
				if err != nil {
					asked.failed++
					if asked.firstErr == "" {
						asked.firstErr = err.Error()
					}
				} else {
					asked.runs = append(asked.runs, benchRequest{id: run.ID, sent: sent, took: took})
				}
				mu.Unlock()
			}
		}()
	}
	for i := range cfg.runs {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	return asked
}

// benchAwait polls the runs still running until none of those asked for
// is, or until the deadline; it returns when it saw them all finished.
func benchAwait(ctx context.Context, cl *client, cfg benchRunsConfig, asked benchAsked, deadline time.Time) (time.Time, bool) {
	ours := map[string]bool{}
	lowest := int64(-1)
	for _, r := range asked.runs {
		ours[r.id] = true
		if n, err := strconv.ParseInt(r.id, 10, 64); err == nil && (lowest < 0 || n < lowest) {
			lowest = n
		}
	}
	q := url.Values{"state": {string(aramaki.RunRunning)}, "system": {cfg.system}, "action": {cfg.action},
		"limit": {strconv.Itoa(service.MaxAlertLimit)}}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var resp api.RunsResponse
		if err := cl.do(ctx, "GET", "/api/v1/runs", q, nil, &resp); err == nil {
			running := slices.ContainsFunc(resp.Runs, func(r aramaki.Run) bool { return ours[r.ID] })
			// Newest first: a full page covers every running run from
			// its oldest on.
			if n := len(resp.Runs); !running && n == service.MaxAlertLimit {
				oldest, _ := strconv.ParseInt(resp.Runs[n-1].ID, 10, 64)
				running = lowest < oldest
			}
			if !running {
				return time.Now(), true
			}
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return time.Time{}, false
}

// benchOutcome counts how the runs asked for ended.
type benchOutcome struct {
	succeeded, failed, unfinished int
	firstFailure                  string
}

// benchOutcomes reads every run asked for, a few at a time.
func benchOutcomes(ctx context.Context, cl *client, asked benchAsked) benchOutcome {
	var (
		mu  sync.Mutex
		out benchOutcome
		wg  sync.WaitGroup
	)
	jobs := make(chan string)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range jobs {
				var run aramaki.Run
				err := cl.do(ctx, "GET", "/api/v1/runs/"+id, nil, nil, &run)
				mu.Lock()
				switch {
				case err == nil && run.State == aramaki.RunSucceeded:
					out.succeeded++
				case err == nil && !run.State.Final():
					out.unfinished++
				default:
					out.failed++
					if out.firstFailure == "" {
						out.firstFailure = fmt.Sprintf("run %s: %s", id, benchFailure(run, err))
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, r := range asked.runs {
		jobs <- r.id
	}
	close(jobs)
	wg.Wait()
	return out
}

func benchFailure(run aramaki.Run, err error) string {
	if err != nil {
		return err.Error()
	}
	for _, t := range run.Targets {
		if t.Error != "" {
			return string(run.State) + ": " + t.Error
		}
	}
	return string(run.State)
}

// benchRuns is what the simulated agents know of runs, all together.
type benchRuns struct {
	runTime time.Duration

	mu      sync.Mutex
	started map[string]time.Time // run → when its start frame arrived
	acks    []float64            // ms from a finished frame to its run_ack

	running, peak, resent, duplicates atomic.Int64
}

// agent returns the handler of one simulated agent's frames: like the real
// agent, a start frame starts the run, which prints and, after the run
// time, says it succeeded, again until the server acknowledges that.
func (r *benchRuns) agent(ctx context.Context, b *benchSession) func(wire.Message) {
	var mu sync.Mutex
	acked := map[string]chan struct{}{} // runs told finished, until their run_ack
	return func(m wire.Message) {
		switch m := m.(type) {
		case *wire.StartRun:
			if !r.start(m.Run) {
				return // asked again: it runs once
			}
			ack := make(chan struct{})
			mu.Lock()
			acked[m.Run] = ack
			mu.Unlock()
			go r.simulate(ctx, b, m.Run, ack)
		case *wire.RunAck:
			mu.Lock()
			if ack, ok := acked[m.Run]; ok {
				close(ack)
				delete(acked, m.Run)
			}
			mu.Unlock()
		}
	}
}

// start notes a start frame's arrival; false when the run was started before.
func (r *benchRuns) start(run string) bool {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.started[run]; ok {
		r.duplicates.Add(1)
		return false
	}
	r.started[run] = now
	n := r.running.Add(1)
	for p := r.peak.Load(); n > p && !r.peak.CompareAndSwap(p, n); p = r.peak.Load() {
	}
	return true
}

func (r *benchRuns) simulate(ctx context.Context, b *benchSession, run string, acked <-chan struct{}) {
	started := time.Now()
	if !b.write(ctx, &wire.RunOutput{Run: run, Seq: 1, Stream: wire.StreamStdout, Data: benchOutput}) {
		return
	}
	select {
	case <-time.After(r.runTime):
	case <-ctx.Done():
		return
	}
	code := 0
	end := &wire.RunFinished{Run: run, State: string(aramaki.RunSucceeded), ExitCode: &code, Started: started, Ended: time.Now(), LastSeq: 1}
	told := time.Now()
	for {
		if !b.write(ctx, end) {
			return
		}
		select {
		case <-acked:
			r.running.Add(-1)
			r.mu.Lock()
			r.acks = append(r.acks, ms(time.Since(told)))
			r.mu.Unlock()
			return
		case <-ctx.Done():
			return
		case <-time.After(benchResend):
			r.resent.Add(1)
		}
	}
}

func (r *benchRuns) startedAt(run string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.started[run]
	return at, ok
}

func (r *benchRuns) ackLatencies() []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.acks)
	slices.Sort(out)
	return out
}
