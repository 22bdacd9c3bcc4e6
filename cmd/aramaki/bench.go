package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/pki"
	"github.com/aramaki/aramaki/wire"
)

// BenchCommand is the load generator: aramaki bench agents … and aramaki
// bench runs …. It simulates many agents speaking the real protocol over
// real websockets, without running check processes or commands, and
// reports what the server sustains.
type BenchCommand struct{ stdout, stderr io.Writer }

const benchUsage = "usage: aramaki bench agents|runs --system ID [flags]"

// Run runs one of the load generators.
func (c *BenchCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(benchUsage)
	}
	switch args[0] {
	case "agents":
		return c.agents(ctx, args[1:])
	case "runs":
		return c.runs(ctx, args[1:])
	}
	return fmt.Errorf("unknown load %q; %s", args[0], benchUsage)
}

// benchConfig is what every load generator takes: the simulated agents
// and the results they stream.
type benchConfig struct {
	agents    int
	rate      float64 // results per second, all agents together
	batch     int
	window    int
	system    string
	state     string
	serverPID int
	connectP  int
}

// Bounds of the load generators' flags: enough for the figures of
// docs/performance.md, not so much that a typo runs for hours.
const (
	benchMaxAgents = 100_000
	benchMaxWindow = 1000
)

func (cfg *benchConfig) flags(fs *flag.FlagSet, rate float64) {
	fs.IntVar(&cfg.agents, "agents", 100, "simulated agents")
	fs.Float64Var(&cfg.rate, "rate", rate, "check results per second, all agents together (0: keepalives only)")
	fs.IntVar(&cfg.batch, "batch", 50, "results per frame")
	fs.IntVar(&cfg.window, "window", 8, "frames an agent may have unacknowledged")
	fs.StringVar(&cfg.system, "system", "", "system the agents enroll for; it must declare checks to stream results")
	fs.StringVar(&cfg.state, "state", "aramaki-bench", "directory keeping the simulated agents' identities between runs")
	fs.IntVar(&cfg.serverPID, "server-pid", 0, "process id of the server, to report its CPU and memory")
	fs.IntVar(&cfg.connectP, "connect-parallel", 0, "connections opened at once (0: all)")
}

func (cfg *benchConfig) validate() error {
	switch {
	case cfg.system == "":
		return errors.New("--system is required")
	case !wire.ValidName(cfg.system):
		return fmt.Errorf("--system %q is not a system id", cfg.system)
	case cfg.agents < 1 || cfg.agents > benchMaxAgents:
		return fmt.Errorf("--agents %d: between 1 and %d", cfg.agents, benchMaxAgents)
	case !(cfg.rate >= 0) || math.IsInf(cfg.rate, 0):
		return fmt.Errorf("--rate %v: a number of results per second, 0 or more", cfg.rate)
	case cfg.batch < 1 || cfg.batch > wire.MaxBatch:
		return fmt.Errorf("--batch %d: between 1 and %d", cfg.batch, wire.MaxBatch)
	case cfg.window < 1 || cfg.window > benchMaxWindow:
		return fmt.Errorf("--window %d: between 1 and %d", cfg.window, benchMaxWindow)
	case cfg.state == "":
		return errors.New("--state: a directory is needed")
	case cfg.serverPID < 0:
		return fmt.Errorf("--server-pid %d is not a process id", cfg.serverPID)
	case cfg.connectP < 0:
		return fmt.Errorf("--connect-parallel %d: 0 (all) or more", cfg.connectP)
	}
	if cfg.serverPID != 0 {
		if _, err := procCPU(cfg.serverPID); err != nil {
			return fmt.Errorf("--server-pid %d: %w", cfg.serverPID, err)
		}
	}
	return nil
}

// agents enrolls (or reuses) the simulated agents, connects them all at
// once, streams results for the duration and prints the figures.
func (c *BenchCommand) agents(ctx context.Context, args []string) error {
	var s clientSettings
	var cfg benchConfig
	fs := flag.NewFlagSet("aramaki bench agents", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cfg.flags(fs, 10000)
	duration := fs.Duration("duration", 30*time.Second, "how long to stream")
	_, cl, err := parseClient(fs, args, &s, 0, 0, "aramaki bench agents --system ID [flags]")
	if err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if *duration <= 0 || *duration > 24*time.Hour {
		return fmt.Errorf("--duration %s: between 1s and 24h", *duration)
	}
	agents, err := benchIdentities(ctx, cl, cfg, c.stderr)
	if err != nil {
		return err
	}
	var st benchStats
	srv := benchWatch(cfg.serverPID)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	perAgent := cfg.rate / float64(len(agents))
	fleet, err := benchConnectAll(ctx, s, agents, cfg, &st, func(ctx context.Context, i int, b *benchSession, rnd *rand.Rand) {
		b.stream(ctx, perAgent, rnd, nil)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "%d of %d agents connected in %s; streaming for %s\n", st.connected.Load(), len(agents), fleet.connectTime.Round(time.Millisecond), *duration)
	streamStart := time.Now()
	select {
	case <-time.After(*duration):
	case <-ctx.Done():
	}
	end := time.Now()
	cpu := srv.cpu()
	cancel()
	fleet.wait()

	lat, acked := st.window(streamStart, end)
	report := map[string]any{
		"agents":              len(agents),
		"connected":           st.connected.Load(),
		"connect_all_seconds": fleet.connectTime.Seconds(),
		"errors":              st.errors.Load(),
		"connect_retries":     st.retries.Load(),
		"results_acked":       acked,
		"results_per_second":  float64(acked) / end.Sub(streamStart).Seconds(),
		"ack_p50_ms":          pctl(lat, 0.50),
		"ack_p99_ms":          pctl(lat, 0.99),
		"duration_seconds":    end.Sub(streamStart).Seconds(),
	}
	if cfg.serverPID != 0 {
		report["server_cpu_cores"] = cpu / end.Sub(fleet.start).Seconds()
		srv.report(report)
	}
	if e := st.firstError(); e != "" {
		report["first_error"] = e
	}
	return printBenchReport(c.stdout, s.output, report)
}

// printBenchReport prints the figures, one a line in the order of their
// names, or as a JSON object.
func printBenchReport(w io.Writer, output string, report map[string]any) error {
	if output == "json" {
		return printJSON(w, report)
	}
	keys := slices.Sorted(maps.Keys(report))
	width := 0
	for _, k := range keys {
		width = max(width, len(k))
	}
	for _, k := range keys {
		fmt.Fprintf(w, "%-*s  %v\n", width, k, report[k])
	}
	return nil
}

// benchServer follows the server's CPU time and memory, when its process
// id is given.
type benchServer struct {
	pid     int
	cpu0    float64
	peakRSS atomic.Int64
	stop    chan struct{}
}

// benchWatch starts sampling the server's resident memory every second.
func benchWatch(pid int) *benchServer {
	b := &benchServer{pid: pid, stop: make(chan struct{})}
	if pid == 0 {
		return b
	}
	b.cpu0, _ = procCPU(pid)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-tick.C:
				if _, rss, err := procMem(pid); err == nil && rss > b.peakRSS.Load() {
					b.peakRSS.Store(rss)
				}
			}
		}
	}()
	return b
}

// cpu is the CPU time (seconds) the server used since benchWatch.
func (b *benchServer) cpu() float64 {
	if b.pid == 0 {
		return 0
	}
	now, _ := procCPU(b.pid)
	return now - b.cpu0
}

// report adds the server's memory to a report and stops sampling.
func (b *benchServer) report(r map[string]any) {
	if b.pid == 0 {
		return
	}
	close(b.stop)
	hwm, rss, _ := procMem(b.pid)
	r["server_rss_mib"] = float64(max(rss, b.peakRSS.Load())) / (1 << 20)
	r["server_peak_rss_mib"] = float64(hwm) / (1 << 20)
}

type benchAgent struct {
	ID   string             `json:"id"`
	Name string             `json:"name,omitempty"` // missing in state files of older versions
	Key  ed25519.PrivateKey `json:"key"`
}

// benchFleet is the simulated agents, connected.
type benchFleet struct {
	start       time.Time
	connectTime time.Duration // until every agent was connected or gave up
	wg          sync.WaitGroup
}

// wait waits until every connection is over (after ctx ended).
func (f *benchFleet) wait() { f.wg.Wait() }

// benchConnectAll connects the agents all at once (or connect-parallel at
// a time), each retrying failed attempts like the real agent, and serves
// each connection with serve until ctx ends. It returns once every agent
// is connected or gave up.
func benchConnectAll(ctx context.Context, s clientSettings, agents []benchAgent, cfg benchConfig, st *benchStats,
	serve func(ctx context.Context, i int, b *benchSession, rnd *rand.Rand)) (*benchFleet, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = len(agents)
	tr.TLSHandshakeTimeout = 15 * time.Second // as the agent
	if s.CA != "" {
		pool, err := pki.CertPool(s.CA)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	httpc := &http.Client{Transport: tr}
	wsURL := "ws" + strings.TrimPrefix(strings.TrimSuffix(s.Server, "/"), "http") + "/api/v1/agent/connect"

	f := &benchFleet{start: time.Now()}
	var connected sync.WaitGroup
	connected.Add(len(agents))
	sem := make(chan struct{}, max(cfg.connectP, 1))
	if cfg.connectP == 0 {
		sem = make(chan struct{}, len(agents))
	}
	for i, a := range agents {
		f.wg.Add(1)
		rnd := rand.New(rand.NewPCG(uint64(i), 7))
		go func() {
			defer f.wg.Done()
			// Like a real agent: retry with doubling, jittered backoff.
			var b *benchSession
			var err error
			backoff := time.Second
			for {
				sem <- struct{}{}
				b, err = benchConnect(ctx, httpc, wsURL, a)
				<-sem
				if err == nil || ctx.Err() != nil || time.Since(f.start) > time.Minute {
					break
				}
				st.retries.Add(1)
				st.note(err)
				time.Sleep(backoff/2 + time.Duration(rnd.Int64N(int64(backoff))))
				backoff = min(2*backoff, 60*time.Second)
			}
			connected.Done()
			if err != nil {
				st.errors.Add(1)
				st.note(err)
				return
			}
			st.connected.Add(1)
			defer b.conn.CloseNow()
			b.st = st
			b.cfg = cfg
			serve(ctx, i, b, rnd)
		}()
	}
	connected.Wait()
	f.connectTime = time.Since(f.start)
	return f, nil
}

// benchIdentities enrolls the simulated agents, or reuses those of an
// earlier run kept in the state directory.
func benchIdentities(ctx context.Context, cl *client, cfg benchConfig, log io.Writer) ([]benchAgent, error) {
	path := filepath.Join(cfg.state, "agents-"+cfg.system+".json")
	var agents []benchAgent
	if raw, err := os.ReadFile(path); err == nil {
		json.Unmarshal(raw, &agents)
	}
	if len(agents) >= cfg.agents {
		return agents[:cfg.agents], nil
	}
	have, need := len(agents), cfg.agents-len(agents)
	fmt.Fprintf(log, "enrolling %d simulated agents for %s…\n", need, cfg.system)
	var mu sync.Mutex
	var firstErr error
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				a, err := benchEnroll(ctx, cl, cfg.system, i)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				} else if err == nil {
					agents = append(agents, a)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < need; i++ {
		jobs <- have + i
	}
	close(jobs)
	wg.Wait()
	if err := os.MkdirAll(cfg.state, 0o700); err == nil {
		raw, _ := json.Marshal(agents)
		os.WriteFile(path, raw, 0o600)
	}
	if firstErr != nil {
		return nil, fmt.Errorf("enroll simulated agents: %w", firstErr)
	}
	return agents, nil
}

func benchEnroll(ctx context.Context, cl *client, system string, i int) (benchAgent, error) {
	var resp api.EnrollmentResponse
	if err := cl.do(ctx, "POST", "/api/v1/enrollment-tokens", nil, map[string]any{"systems": []string{system}, "expires_in": "1h"}, &resp); err != nil {
		return benchAgent{}, err
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	// Names are how a run is narrowed to a host: bits of the key keep
	// them apart from the agents of another state directory.
	name := fmt.Sprintf("bench-%d-%x", i, pub[:3])
	var er wire.EnrollResponse
	req := wire.EnrollRequest{Token: resp.Token, PublicKey: pub, Hostname: name, AgentVersion: "bench"}
	if err := cl.do(ctx, "POST", "/api/v1/agent/enroll", nil, req, &er); err != nil {
		return benchAgent{}, err
	}
	return benchAgent{ID: er.AgentID, Name: er.Name, Key: key}, nil
}

// benchSession is one simulated agent's connection.
type benchSession struct {
	conn    *websocket.Conn
	version int
	welcome *wire.Welcome
	st      *benchStats
	cfg     benchConfig
}

func benchConnect(ctx context.Context, httpc *http.Client, url string, a benchAgent) (*benchSession, error) {
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: httpc, Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		return nil, err
	}
	version, ok := wire.VersionOf(conn.Subprotocol())
	if !ok {
		conn.CloseNow()
		return nil, fmt.Errorf("the server does not speak %s", wire.Subprotocol)
	}
	conn.SetReadLimit(wire.MaxFrameSize)
	b := &benchSession{conn: conn, version: version}
	fail := func(err error) (*benchSession, error) {
		conn.CloseNow()
		return nil, err
	}
	_, raw, err := conn.Read(dctx)
	if err != nil {
		return fail(err)
	}
	m, err := wire.DecodeFromServerVersion(raw, version, time.Now())
	if err != nil {
		return fail(err)
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		return fail(fmt.Errorf("got %s, want hello", m.FrameType()))
	}
	var binding []byte
	if resp.TLS != nil {
		binding, _ = resp.TLS.ExportKeyingMaterial(wire.ChannelBindingLabel, nil, 32)
	}
	auth, _ := wire.EncodeVersion(&wire.Auth{Version: version, AgentID: a.ID, AgentVersion: "bench", Time: time.Now(),
		Signature: ed25519.Sign(a.Key, wire.AuthPayload(hello.Nonce, a.ID, binding))}, version, time.Now())
	if err := conn.Write(dctx, websocket.MessageText, auth); err != nil {
		return fail(err)
	}
	if _, raw, err = conn.Read(dctx); err != nil {
		return fail(err)
	}
	if m, err = wire.DecodeFromServerVersion(raw, version, time.Now()); err != nil {
		return fail(err)
	}
	if b.welcome, ok = m.(*wire.Welcome); !ok {
		return fail(fmt.Errorf("refused: %+v", m))
	}
	return b, nil
}

// write sends a frame; a failure while the load runs is counted.
func (b *benchSession) write(ctx context.Context, m wire.Message) bool {
	raw, err := wire.EncodeVersion(m, b.version, time.Now())
	if err == nil {
		err = b.conn.Write(ctx, websocket.MessageText, raw)
	}
	if err != nil && ctx.Err() == nil {
		b.st.errors.Add(1)
		b.st.note(err)
	}
	return err == nil
}

// stream sends results at rate per second, at most window frames
// unacknowledged, and keepalives; it measures the time to each ack. Frames
// from the server other than acks go to handle, when not nil, in the
// order they came.
func (b *benchSession) stream(ctx context.Context, rate float64, rnd *rand.Rand, handle func(wire.Message)) {
	type sent struct {
		last uint64
		at   time.Time
	}
	cfg, st, w := b.cfg, b.st, b.welcome
	var mu sync.Mutex
	var queue []sent                          // frames sent, oldest first, not yet acknowledged
	window := make(chan struct{}, cfg.window) // a slot per unacknowledged frame
	seq := w.Acked
	go func() {
		for {
			_, raw, err := b.conn.Read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					st.errors.Add(1)
					st.note(err)
				}
				return
			}
			m, err := wire.DecodeFromServerVersion(raw, b.version, time.Now())
			if err != nil {
				st.note(err)
				return
			}
			ack, ok := m.(*wire.Ack)
			if !ok {
				if handle != nil {
					handle(m)
				}
				continue
			}
			now := time.Now()
			mu.Lock()
			for len(queue) > 0 && queue[0].last <= ack.Seq {
				st.ack(queue[0].at, now, cfg.batch)
				queue = queue[1:]
				<-window
			}
			mu.Unlock()
		}
	}()
	keepalive := time.NewTicker(w.Keepalive.D())
	defer keepalive.Stop()
	var interval time.Duration
	if rate > 0 && len(w.Checks) > 0 {
		interval = time.Duration(float64(cfg.batch) / rate * float64(time.Second))
	}
	next := time.Now().Add(time.Duration(rnd.Int64N(int64(max(interval, time.Millisecond)))))
	for {
		var due <-chan time.Time
		if interval > 0 {
			due = time.After(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-keepalive.C:
			if !b.write(ctx, &wire.Keepalive{Time: time.Now()}) {
				return
			}
		case <-due:
			next = next.Add(interval)
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			batch := make([]wire.Result, cfg.batch)
			now := time.Now()
			for i := range batch {
				seq++
				c := w.Checks[rnd.IntN(len(w.Checks))]
				status := wire.Status(0)
				if rnd.IntN(100) == 0 {
					status = 1
				}
				batch[i] = wire.Result{Seq: seq, System: c.System, Check: c.Name, Status: status, Output: "OK - simulated", Started: now, Duration: 3}
			}
			mu.Lock()
			queue = append(queue, sent{last: seq, at: now})
			mu.Unlock()
			if !b.write(ctx, &wire.Results{Results: batch}) {
				return
			}
		}
	}
}

type benchStats struct {
	connected, errors, retries atomic.Int64
	mu                         sync.Mutex
	acks                       []benchAck // in the order acknowledged
	first                      string
}

// benchAck is a results frame acknowledged: when it was sent and
// acknowledged (unix ns), and how many results it held.
type benchAck struct {
	sent, acked int64
	n           int32
}

// benchMaxAcks bounds the frames remembered: at the default batch, 50
// million results.
const benchMaxAcks = 1_000_000

func (s *benchStats) ack(sent, now time.Time, n int) {
	s.mu.Lock()
	if len(s.acks) < benchMaxAcks {
		s.acks = append(s.acks, benchAck{sent: sent.UnixNano(), acked: now.UnixNano(), n: int32(n)})
	}
	s.mu.Unlock()
}

// window returns the ack latencies (ms, sorted) of the frames sent in
// [from, to), and the results acknowledged in that time. A window starts
// once every agent is connected: the connect storm distorts latencies.
func (s *benchStats) window(from, to time.Time) (lat []float64, acked int64) {
	f, t := from.UnixNano(), to.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.acks {
		if a.sent >= f && a.sent < t {
			lat = append(lat, float64(a.acked-a.sent)/1e6)
		}
		if a.acked >= f && a.acked < t {
			acked += int64(a.n)
		}
	}
	slices.Sort(lat)
	return lat, acked
}

func (s *benchStats) note(err error) {
	s.mu.Lock()
	if s.first == "" {
		s.first = err.Error()
	}
	s.mu.Unlock()
}

func (s *benchStats) firstError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

func pctl(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// procCPU is the CPU time a process used so far.
func procCPU(pid int) (float64, error) {
	if pid == 0 {
		return 0, errors.New("no pid")
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}

// procMem returns a process's peak and current resident memory in bytes.
func procMem(pid int) (hwm, rss int64, err error) {
	if pid == 0 {
		return 0, 0, errors.New("no pid")
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
			hwm = kb << 10
		}
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			rss = kb << 10
		}
	}
	return hwm, rss, nil
}
