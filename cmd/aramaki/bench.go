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

// BenchCommand is the load generator: aramaki bench agents …. It simulates
// many agents speaking the real protocol over real websockets, without
// running check processes, and reports what the server sustains.
type BenchCommand struct{ stdout, stderr io.Writer }

type benchConfig struct {
	agents    int
	rate      float64 // results per second, all agents together
	batch     int
	window    int
	duration  time.Duration
	system    string
	state     string
	serverPID int
	connectP  int
}

// Run enrolls (or reuses) the simulated agents, connects them all at once,
// streams results for the duration and prints the figures.
func (c *BenchCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "agents" {
		return errors.New("usage: aramaki bench agents --system ID [--agents N] [--rate R] [--duration D] …")
	}
	var s clientSettings
	var cfg benchConfig
	fs := flag.NewFlagSet("aramaki bench agents", flag.ContinueOnError)
	fs.IntVar(&cfg.agents, "agents", 100, "simulated agents")
	fs.Float64Var(&cfg.rate, "rate", 10000, "check results per second, all agents together (0: keepalives only)")
	fs.IntVar(&cfg.batch, "batch", 50, "results per frame")
	fs.IntVar(&cfg.window, "window", 8, "frames an agent may have unacknowledged")
	fs.DurationVar(&cfg.duration, "duration", 30*time.Second, "how long to stream")
	fs.StringVar(&cfg.system, "system", "", "system the agents enroll for; it must declare checks")
	fs.StringVar(&cfg.state, "state", "aramaki-bench", "directory keeping the simulated agents' identities between runs")
	fs.IntVar(&cfg.serverPID, "server-pid", 0, "process id of the server, to report its CPU and memory")
	fs.IntVar(&cfg.connectP, "connect-parallel", 0, "connections opened at once (0: all)")
	if _, cl, err := parseClient(fs, args[1:], &s, 0, 0, "aramaki bench agents --system ID [flags]"); err != nil {
		return err
	} else if cfg.system == "" {
		return errors.New("--system is required")
	} else {
		return c.agents(ctx, s, cl, cfg)
	}
}

type benchAgent struct {
	ID  string             `json:"id"`
	Key ed25519.PrivateKey `json:"key"`
}

func (c *BenchCommand) agents(ctx context.Context, s clientSettings, cl *client, cfg benchConfig) error {
	agents, err := benchIdentities(ctx, cl, cfg, c.stderr)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.agents
	tr.TLSHandshakeTimeout = 15 * time.Second // as the agent
	if s.CA != "" {
		pool, err := pki.CertPool(s.CA)
		if err != nil {
			return err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	httpc := &http.Client{Transport: tr}
	wsURL := "ws" + strings.TrimPrefix(strings.TrimSuffix(s.Server, "/"), "http") + "/api/v1/agent/connect"

	var st benchStats
	cpu0, _ := procCPU(cfg.serverPID)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var connected sync.WaitGroup
	connected.Add(len(agents))
	sem := make(chan struct{}, max(cfg.connectP, 1))
	if cfg.connectP == 0 {
		sem = make(chan struct{}, len(agents))
	}
	perAgent := cfg.rate / float64(len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		rnd := rand.New(rand.NewPCG(uint64(i), 7))
		go func() {
			defer wg.Done()
			// Like a real agent: retry with doubling, jittered backoff.
			var conn *websocket.Conn
			var welcome *wire.Welcome
			var err error
			backoff := time.Second
			for {
				sem <- struct{}{}
				conn, welcome, err = benchConnect(ctx, httpc, wsURL, a)
				<-sem
				if err == nil || ctx.Err() != nil || time.Since(start) > time.Minute {
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
			defer conn.CloseNow()
			benchStream(ctx, conn, welcome, perAgent, cfg, &st, rnd)
		}()
	}
	connected.Wait()
	connectTime := time.Since(start)
	fmt.Fprintf(c.stderr, "%d of %d agents connected in %s; streaming for %s\n", st.connected.Load(), len(agents), connectTime.Round(time.Millisecond), cfg.duration)
	streamStart := time.Now()
	st.measureFrom.Store(streamStart.UnixNano())
	ackedAtStart := st.acked.Load()
	var peakRSS int64
	timer := time.NewTimer(cfg.duration)
	tick := time.NewTicker(time.Second)
wait:
	for {
		select {
		case <-timer.C:
			break wait
		case <-ctx.Done():
			break wait
		case <-tick.C:
			if _, rss, err := procMem(cfg.serverPID); err == nil {
				peakRSS = max(peakRSS, rss)
			}
		}
	}
	elapsed := time.Since(streamStart)
	acked := st.acked.Load() - ackedAtStart
	cpu1, _ := procCPU(cfg.serverPID)
	hwm, rss, _ := procMem(cfg.serverPID)
	cancel()
	wg.Wait()

	lat := st.latencies()
	report := map[string]any{
		"agents":              len(agents),
		"connected":           st.connected.Load(),
		"connect_all_seconds": connectTime.Seconds(),
		"errors":              st.errors.Load(),
		"connect_retries":     st.retries.Load(),
		"results_acked":       acked,
		"results_per_second":  float64(acked) / elapsed.Seconds(),
		"ack_p50_ms":          pctl(lat, 0.50),
		"ack_p99_ms":          pctl(lat, 0.99),
		"duration_seconds":    elapsed.Seconds(),
	}
	if cfg.serverPID != 0 {
		report["server_cpu_cores"] = (cpu1 - cpu0) / time.Since(start).Seconds()
		report["server_rss_mib"] = float64(max(rss, peakRSS)) / (1 << 20)
		report["server_peak_rss_mib"] = float64(hwm) / (1 << 20)
	}
	if e := st.firstError(); e != "" {
		report["first_error"] = e
	}
	if s.output == "json" {
		return printJSON(c.stdout, report)
	}
	keys := make([]string, 0, len(report))
	for k := range report {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(c.stdout, "%-22s %v\n", k, report[k])
	}
	return nil
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
	need := cfg.agents - len(agents)
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
		jobs <- len(agents) + i
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
	var er wire.EnrollResponse
	req := wire.EnrollRequest{Token: resp.Token, PublicKey: pub, Hostname: "bench-" + strconv.Itoa(i), AgentVersion: "bench"}
	if err := cl.do(ctx, "POST", "/api/v1/agent/enroll", nil, req, &er); err != nil {
		return benchAgent{}, err
	}
	return benchAgent{ID: er.AgentID, Key: key}, nil
}

func benchConnect(ctx context.Context, httpc *http.Client, url string, a benchAgent) (*websocket.Conn, *wire.Welcome, error) {
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: httpc, Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		return nil, nil, err
	}
	conn.SetReadLimit(wire.MaxFrameSize)
	_, raw, err := conn.Read(dctx)
	if err != nil {
		return nil, nil, err
	}
	m, err := wire.DecodeFromServer(raw, time.Now())
	if err != nil {
		return nil, nil, err
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		return nil, nil, fmt.Errorf("got %s, want hello", m.FrameType())
	}
	var binding []byte
	if resp.TLS != nil {
		binding, _ = resp.TLS.ExportKeyingMaterial(wire.ChannelBindingLabel, nil, 32)
	}
	auth, _ := wire.Encode(&wire.Auth{Version: wire.Version, AgentID: a.ID, AgentVersion: "bench", Time: time.Now(),
		Signature: ed25519.Sign(a.Key, wire.AuthPayload(hello.Nonce, a.ID, binding))}, time.Now())
	if err := conn.Write(dctx, websocket.MessageText, auth); err != nil {
		return nil, nil, err
	}
	if _, raw, err = conn.Read(dctx); err != nil {
		return nil, nil, err
	}
	if m, err = wire.DecodeFromServer(raw, time.Now()); err != nil {
		return nil, nil, err
	}
	w, ok := m.(*wire.Welcome)
	if !ok {
		return nil, nil, fmt.Errorf("refused: %+v", m)
	}
	return conn, w, nil
}

// benchStream sends results at rate per second, at most window frames
// unacknowledged, and keepalives; it measures the time to each ack.
func benchStream(ctx context.Context, conn *websocket.Conn, w *wire.Welcome, rate float64, cfg benchConfig, st *benchStats, rnd *rand.Rand) {
	type sent struct {
		last uint64
		at   time.Time
	}
	var mu sync.Mutex
	var queue []sent                          // frames sent, oldest first, not yet acknowledged
	window := make(chan struct{}, cfg.window) // a slot per unacknowledged frame
	seq := w.Acked
	go func() {
		for {
			_, raw, err := conn.Read(ctx)
			if err != nil {
				return
			}
			m, err := wire.DecodeFromServer(raw, time.Now())
			if err != nil {
				st.note(err)
				return
			}
			ack, ok := m.(*wire.Ack)
			if !ok {
				continue
			}
			mu.Lock()
			for len(queue) > 0 && queue[0].last <= ack.Seq {
				st.ack(queue[0].at, cfg.batch)
				queue = queue[1:]
				<-window
			}
			mu.Unlock()
		}
	}()
	write := func(m wire.Message) bool {
		raw, err := wire.Encode(m, time.Now())
		if err == nil {
			err = conn.Write(ctx, websocket.MessageText, raw)
		}
		if err != nil && ctx.Err() == nil {
			st.errors.Add(1)
			st.note(err)
		}
		return err == nil
	}
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
			if !write(&wire.Keepalive{Time: time.Now()}) {
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
			if !write(&wire.Results{Results: batch}) {
				return
			}
		}
	}
}

type benchStats struct {
	connected, errors, acked, retries atomic.Int64
	// measureFrom is when every agent is connected (unix ns): latencies of
	// frames sent before are not counted, the connect storm distorts them.
	measureFrom atomic.Int64
	mu          sync.Mutex
	lat         []float64 // ms
	first       string
}

func (s *benchStats) ack(sent time.Time, n int) {
	s.acked.Add(int64(n))
	if from := s.measureFrom.Load(); from == 0 || sent.UnixNano() < from {
		return
	}
	d := time.Since(sent)
	s.mu.Lock()
	if len(s.lat) < 1_000_000 {
		s.lat = append(s.lat, float64(d.Microseconds())/1000)
	}
	s.mu.Unlock()
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

func (s *benchStats) latencies() []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.lat)
	slices.Sort(out)
	return out
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
