package main_test

// End-to-end tests of agents and server as real processes: the promise of
// docs/agents.md that results are neither lost nor doubled whatever
// happens to either side (kill -9, an outage, a restart with a queue full
// of results), that a revoked agent is cut off at once, and that results
// reach status, timeline and history. The proof of "exactly once" is read
// where it lives: the server's SQLite database (read-only) and the agent's
// disk queue, once both processes have stopped.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/aramaki/aramaki/agent"
	"github.com/aramaki/aramaki/agent/queue"
	"github.com/aramaki/aramaki/pki"
)

// fleet is a system whose every agent runs two checks each second: one OK
// and one CRITICAL (exit 2).
const fleet = `id: fleet
title: Hosts checked every second
checks:
  - name: echo
    command: /bin/echo OK - all fine
    interval: 1s
    timeout: 5s
  - name: failing
    command: /bin/sh -c 'echo CRITICAL - broken on purpose; exit 2'
    interval: 1s
    timeout: 5s
`

// Statuses as stored (the Nagios exit codes).
const (
	storedOK       = 0
	storedCritical = 2
)

func TestAgentResultsSurviveKill9ExactlyOnce(t *testing.T) {
	t.Parallel()
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"fleet.yaml": fleet}))
	agents := []*testAgent{MustEnrollAgent(t, srv, "fleet"), MustEnrollAgent(t, srv, "fleet"), MustEnrollAgent(t, srv, "fleet")}
	srv.MustWaitStored(agents, time.Now())

	// kill -9 of the server, twice, while three agents stream.
	var outages []window
	for range 2 {
		time.Sleep(2 * time.Second) // streaming
		down := time.Now()
		srv.Kill9()
		time.Sleep(3 * time.Second) // the agents go on checking, and queue
		up := srv.MustRestart()
		outages = append(outages, window{down, up})
		srv.MustWaitStored(agents, up)
	}
	// kill -9 of an agent while it streams.
	agents[0].Kill9()
	agents[0].MustStart()
	srv.MustWaitStored(agents[:1], time.Now())

	// Duplicates sent again after a kill would not change the status: the
	// failing check is on the timeline once per agent.
	failing := srv.MustStatusChanges("fleet")["failing"]
	for _, a := range agents {
		if got := failing[a.id]; len(got) != 1 {
			t.Errorf("agent %s: %d status.changed events for failing, want 1: %q", a.id, len(got), got)
		}
	}
	for _, a := range agents {
		a.MustStop()
	}
	srv.MustStop()

	for _, a := range agents {
		stored := MustAccountForEveryResult(t, srv, a)
		for i, w := range outages {
			// Two checks a second for 3 s: the queue had at least a few.
			if n := len(startedWithin(stored, w)); n < 3 {
				t.Errorf("agent %s: %d results from the time the server was down (kill -9 #%d), want at least 3", a.id, n, i+1)
			}
		}
	}
}

func TestAgentResultsFromAServerOutageArriveInOrderExactlyOnce(t *testing.T) {
	t.Parallel()
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"fleet.yaml": fleet}))
	a := MustEnrollAgent(t, srv, "fleet")
	srv.MustWaitStored([]*testAgent{a}, time.Now())

	srv.MustStop()
	gone := time.Now()
	time.Sleep(5 * time.Second)
	back := time.Now()
	up := srv.MustRestart()
	srv.MustWaitStored([]*testAgent{a}, up)
	a.MustStop()
	srv.MustStop()

	// In order of arrival, the database holds 1..N: they came in order.
	stored := MustAccountForEveryResult(t, srv, a)
	meanwhile := startedWithin(stored, window{gone, back})
	for _, status := range []int{storedOK, storedCritical} {
		var runs []storedResult
		for _, r := range stored {
			if r.status == status {
				runs = append(runs, r)
			}
		}
		// Each check kept its rhythm through the outage: numbered in the
		// order it ran, about every second, nothing missing.
		for i := 1; i < len(runs); i++ {
			prev, cur := runs[i-1], runs[i]
			if !cur.started.After(prev.started) {
				t.Errorf("status %d: seq %d started %s, not after seq %d at %s", status, cur.seq, cur.started, prev.seq, prev.started)
			}
			if gap := cur.started.Sub(prev.started); gap > 3*time.Second {
				t.Errorf("status %d: no result for %s between seq %d and %d", status, gap, prev.seq, cur.seq)
			}
		}
		n := 0
		for _, r := range meanwhile {
			if r.status == status {
				n++
			}
		}
		if n < 3 {
			t.Errorf("status %d: %d results from the 5 s the server was down, want about 5", status, n)
		}
	}
	for _, r := range meanwhile {
		if r.received.Before(back) {
			t.Errorf("seq %d, run while the server was down, was received at %s, before the server was back at %s", r.seq, r.received, back)
		}
	}
}

// Results queued while the server is away survive kill -9 of the agent:
// the restarted agent numbers on after them and sends them all.
func TestAgentRestartedWithAFullQueueLosesNothing(t *testing.T) {
	t.Parallel()
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"fleet.yaml": fleet}))
	a := MustEnrollAgent(t, srv, "fleet")
	srv.MustWaitStored([]*testAgent{a}, time.Now()) // it has its checks on disk now

	srv.MustStop()
	gone := time.Now()
	time.Sleep(3 * time.Second) // results pile up in the queue
	a.Kill9()
	killed := time.Now()
	a.MustStart()
	time.Sleep(2500 * time.Millisecond) // the new process runs the cached checks, queueing behind
	back := time.Now()
	up := srv.MustRestart()
	srv.MustWaitStored([]*testAgent{a}, up)
	a.MustStop()
	srv.MustStop()

	stored := MustAccountForEveryResult(t, srv, a)
	if n := len(startedWithin(stored, window{gone, killed})); n < 3 {
		t.Errorf("%d results queued before the agent's kill -9 arrived, want at least 3", n)
	}
	if n := len(startedWithin(stored, window{killed, back})); n < 2 {
		t.Errorf("%d results queued by the restarted agent before the server came back arrived, want at least 2", n)
	}
}

// A commit that fails (here: another process holds the database's write
// lock longer than the server waits for it) is answered with an error, and
// the agent sends those results again. Results the agent sent after them
// must not be stored meanwhile: last_seq would move past the failed ones,
// and they would never be sent again.
func TestAgentResultsSurviveAFailedCommitExactlyOnce(t *testing.T) {
	t.Parallel()
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"fleet.yaml": fleet}))
	a := MustEnrollAgent(t, srv, "fleet")
	srv.MustWaitStored([]*testAgent{a}, time.Now())

	unlock := srv.MustLockDatabase()
	srv.p.MustWaitOutput("storing check results failed", 30*time.Second)
	unlock()
	srv.MustWaitStored([]*testAgent{a}, time.Now())
	a.MustStop()
	srv.MustStop()
	MustAccountForEveryResult(t, srv, a)
}

// Results queued for checks that are gone from the config by the time
// they arrive are not stored; but the agent must be able to forget them,
// or it sends them again on every reconnect, for ever.
func TestAgentQueueDrainsWhenTheServerDropsResultsOfRemovedChecks(t *testing.T) {
	t.Parallel()
	repo := MustConfigRepo(t, map[string]string{"fleet.yaml": fleet})
	srv := MustStartServer(t, repo)
	a := MustEnrollAgent(t, srv, "fleet")
	srv.MustWaitStored([]*testAgent{a}, time.Now())

	srv.MustStop()
	before := len(srv.MustStoredResults(a))
	time.Sleep(2 * time.Second) // results pile up in the queue
	if err := os.WriteFile(filepath.Join(repo, "systems", "fleet.yaml"), []byte("id: fleet\ntitle: Hosts no longer checked\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustGit(t, repo, "commit", "-q", "-a", "-m", "No more checks")
	srv.MustRestart()
	srv.p.MustWaitOutput("dropped results for checks the agent does not run", 20*time.Second)
	time.Sleep(time.Second) // for the ack
	a.MustStop()
	srv.MustStop()

	if n := len(srv.MustStoredResults(a)); n != before {
		t.Errorf("%d results of removed checks were stored", n-before)
	}
	var lastSeq uint64
	srv.mustReadDB(func(db *sql.DB) error {
		return db.QueryRow(`SELECT last_seq FROM agents WHERE id = ?`, a.id).Scan(&lastSeq)
	})
	q, err := queue.Open(filepath.Join(a.dir, agent.QueueDir), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Last() != lastSeq {
		t.Errorf("the agent numbered results up to %d; the server stored 1..%d and dropped the rest (their checks are gone), "+
			"but its last_seq is %d: the agent sends %d..%d again on every reconnect, for ever", q.Last(), before, lastSeq, lastSeq+1, q.Last())
	}
}

func TestRevokedAgentIsCutOffAtOnceAndStaysRefused(t *testing.T) {
	t.Parallel()
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"fleet.yaml": fleet}))
	a := MustEnrollAgent(t, srv, "fleet")
	srv.MustWaitStored([]*testAgent{a}, time.Now())
	if v := srv.MustAgentView(a); !v.Connected {
		t.Fatalf("agent %s streams results but is not shown connected: %+v", a.id, v)
	}

	if out := srv.MustCLI("agent", "revoke", a.id); !strings.Contains(out, "revoked") {
		t.Fatalf("agent revoke: %s", out)
	}
	start := time.Now()
	storedAtRevoke := len(srv.MustStoredResults(a))
	Eventually(t, 10*time.Second, "the revoked agent disconnected", func() bool { return !srv.MustAgentView(a).Connected })
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the revoked agent was connected for %s more, want at most a couple of seconds", took.Round(time.Millisecond))
	}
	a.p.MustWaitOutput("THE SERVER HAS REVOKED THIS AGENT", 5*time.Second)

	// A fresh start of the agent is refused from the first attempt on.
	a.MustStop()
	a.MustStart()
	a.p.MustWaitOutput("THE SERVER HAS REVOKED THIS AGENT", 15*time.Second)
	time.Sleep(time.Second)
	if v := srv.MustAgentView(a); v.Connected || v.Revoked == nil {
		t.Errorf("after a new attempt: %+v, want revoked and not connected", v)
	}
	if n := len(srv.MustStoredResults(a)); n != storedAtRevoke {
		t.Errorf("%d results stored since the revocation, want none", n-storedAtRevoke)
	}
}

func TestAgentStatusChangesReachTheTimelineOnce(t *testing.T) {
	t.Parallel()
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"fleet.yaml": fleet}))
	a := MustEnrollAgent(t, srv, "fleet")
	Eventually(t, 20*time.Second, "three CRITICAL results", func() bool {
		n := 0
		for _, r := range srv.MustStoredResults(a) {
			if r.status == storedCritical {
				n++
			}
		}
		return n >= 3
	})

	var status struct {
		Status string
		Checks []struct{ Check, Agent, Status string }
	}
	mustJSON(t, srv.MustCLI("status", "fleet", "-o", "json"), &status)
	got := map[string]string{}
	for _, c := range status.Checks {
		if c.Agent == a.id {
			got[c.Check] = c.Status
		}
	}
	if status.Status != "critical" || got["failing"] != "critical" || got["echo"] != "ok" {
		t.Errorf("status of fleet: %s with checks %v; want critical, failing critical and echo ok", status.Status, got)
	}

	changes := srv.MustStatusChanges("fleet")
	if f := changes["failing"][a.id]; len(f) != 1 || !strings.Contains(f[0], "CRITICAL") {
		t.Errorf("status.changed events of failing: %q; want exactly one, saying CRITICAL", f)
	}
	if e := changes["echo"][a.id]; len(e) != 0 {
		t.Errorf("status.changed events of echo, which has always been OK: %q", e)
	}
}

func TestAgentRunsARealMonitoringPlugin(t *testing.T) {
	t.Parallel()
	const plugin = "/usr/lib/nagios/plugins/check_load"
	if _, err := os.Stat(plugin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing; CI must test a real plugin (apt-get install monitoring-plugins-basic)", plugin)
		}
		t.Skipf("%s is not installed (apt-get install monitoring-plugins-basic)", plugin)
	}
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"host.yaml": `id: host
title: A host with a real plugin
checks:
  - name: load
    command: ` + plugin + ` -w 99,99,99 -c 99,99,99
    interval: 1s
    timeout: 10s
`}))
	a := MustEnrollAgent(t, srv, "host")

	type result struct {
		Agent, Status, Output string
		Metrics               []struct {
			Name  string
			Value float64
		}
	}
	var history struct {
		Results []result
		Agents  []struct {
			Agent string
			State struct{ Status string }
		}
	}
	Eventually(t, 20*time.Second, "a result of check_load", func() bool {
		mustJSON(t, srv.MustCLI("check", "history", "host", "load", "-o", "json"), &history)
		return len(history.Results) > 0
	})
	r := history.Results[0]
	if r.Agent != a.id || r.Status != "ok" || !strings.HasPrefix(r.Output, "LOAD OK") {
		t.Errorf("check_load's result: %+v; want OK from agent %s", r, a.id)
	}
	metrics := map[string]bool{}
	for _, m := range r.Metrics {
		metrics[m.Name] = m.Value >= 0
	}
	for _, name := range []string{"load1", "load5", "load15"} {
		if !metrics[name] {
			t.Errorf("check_load's perfdata lacks %s: %+v", name, r.Metrics)
		}
	}
	if len(history.Agents) != 1 || history.Agents[0].Agent != a.id || history.Agents[0].State.Status != "ok" {
		t.Errorf("check history per agent: %+v; want %s OK", history.Agents, a.id)
	}
}

// ---- The server ----

// MustConfigRepo makes a config repository with the real git: one commit
// of files under systems/.
func MustConfigRepo(t *testing.T, systems map[string]string) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "config")
	if err := os.MkdirAll(filepath.Join(repo, "systems"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustGit(t, repo, "init", "-q")
	for name, content := range systems {
		if err := os.WriteFile(filepath.Join(repo, "systems", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustGit(t, repo, "add", "-A")
	mustGit(t, repo, "commit", "-q", "-m", "Checks every second")
	return repo
}

// server is an aramaki server that a test starts, kills and starts again
// on the same data directory and port.
type server struct {
	t          *testing.T
	data, repo string
	args       []string // more flags
	url        string   // of the first start, kept on restarts
	p          *proc
}

// MustStartServer runs "aramaki server" on a free port, with more flags
// if given.
func MustStartServer(t *testing.T, repo string, args ...string) *server {
	t.Helper()
	s := &server{t: t, data: filepath.Join(t.TempDir(), "data"), repo: repo, args: args}
	if err := s.start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return s
}

var servingAt = regexp.MustCompile(`Aramaki is serving at (https://\S+)`)

func (s *server) start(listen string) error {
	s.p = startProc(s.t, "aramaki server", binary, append([]string{"server", "--data", s.data, "--listen", listen,
		"--config-repo", s.repo, "--log-level", "warn"}, s.args...)...)
	if err := s.p.waitOutput("The admin API token is in", 60*time.Second); err != nil {
		return err
	}
	m := servingAt.FindStringSubmatch(s.p.output())
	if m == nil {
		return fmt.Errorf("aramaki server printed no URL:\n%s", s.p.output())
	}
	if s.url == "" {
		s.url = m[1]
	} else if m[1] != s.url {
		return fmt.Errorf("the restarted server serves at %s, not at %s", m[1], s.url)
	}
	return nil
}

// MustRestart starts the server again on its data directory and port, and
// returns when it serves.
func (s *server) MustRestart() time.Time {
	s.t.Helper()
	u, err := url.Parse(s.url)
	if err != nil {
		s.t.Fatal(err)
	}
	// The port was free a moment ago, but any connection made meanwhile
	// may have been given it as its local port: try again for a while.
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := s.start(u.Host)
		if err == nil {
			return time.Now()
		}
		if !strings.Contains(s.p.output(), "address already in use") || time.Now().After(deadline) {
			s.t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Kill9 kills the server with SIGKILL.
func (s *server) Kill9() { s.p.kill9() }

// MustStop stops the server with SIGTERM and wants exit code 0.
func (s *server) MustStop() {
	s.t.Helper()
	if code := s.p.stop(); code != 0 {
		s.t.Errorf("aramaki server exited with %d after SIGTERM", code)
	}
}

// MustCLI runs a client command as the admin.
func (s *server) MustCLI(args ...string) string {
	s.t.Helper()
	out, err := cliWith(s.url, filepath.Join(s.data, "admin.token"), filepath.Join(s.data, "tls", pki.CACertFile), args...)
	if err != nil {
		s.t.Fatalf("aramaki %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// MustStatusChanges returns the summaries of a system's status.changed
// events by check and agent.
func (s *server) MustStatusChanges(system string) map[string]map[string][]string {
	s.t.Helper()
	var page struct {
		Events []struct {
			Summary string
			Data    struct{ Check, Agent string }
		}
	}
	mustJSON(s.t, s.MustCLI("timeline", "--system", system, "--kind", "status.changed", "--limit", "500", "-o", "json"), &page)
	out := map[string]map[string][]string{}
	for _, ev := range page.Events {
		if out[ev.Data.Check] == nil {
			out[ev.Data.Check] = map[string][]string{}
		}
		out[ev.Data.Check][ev.Data.Agent] = append(out[ev.Data.Check][ev.Data.Agent], ev.Summary)
	}
	return out
}

// agentView is an agent as "aramaki agent list -o json" shows it.
type agentView struct {
	ID        string     `json:"id"`
	Connected bool       `json:"connected"`
	Revoked   *time.Time `json:"revoked"`
	LastSeq   uint64     `json:"last_seq"`
}

// MustAgentView returns what the server shows of an agent.
func (s *server) MustAgentView(a *testAgent) agentView {
	s.t.Helper()
	var list struct{ Agents []agentView }
	mustJSON(s.t, s.MustCLI("agent", "list", "-o", "json"), &list)
	for _, v := range list.Agents {
		if v.ID == a.id {
			return v
		}
	}
	s.t.Fatalf("agent list lacks %s", a.id)
	return agentView{}
}

// MustWaitStored waits until the server has stored, of every agent, a
// result that started after since: then everything those agents queued
// before since has arrived too, as results arrive in order.
func (s *server) MustWaitStored(agents []*testAgent, since time.Time) {
	s.t.Helper()
	Eventually(s.t, 30*time.Second, "results of every agent, started after "+since.Format("15:04:05.000"), func() bool {
		for _, a := range agents {
			rs := s.MustStoredResults(a)
			if len(rs) == 0 || !rs[len(rs)-1].started.After(since) {
				return false
			}
		}
		return true
	})
}

// storedResult is a row of the results table.
type storedResult struct {
	seq               uint64
	status            int
	started, received time.Time
}

// MustStoredResults reads an agent's results from the server's database
// (read-only, the server may be running), in the order they were stored.
// The server's own keepalive results (seq 0) are left out.
func (s *server) MustStoredResults(a *testAgent) []storedResult {
	s.t.Helper()
	var out []storedResult
	s.mustReadDB(func(db *sql.DB) error {
		rows, err := db.Query(`SELECT seq, status, started_us, received_us FROM results WHERE agent_id = ? AND seq > 0 ORDER BY id`, a.id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r storedResult
			var started, received int64
			if err := rows.Scan(&r.seq, &r.status, &started, &received); err != nil {
				return err
			}
			r.started, r.received = time.UnixMicro(started), time.UnixMicro(received)
			out = append(out, r)
		}
		return rows.Err()
	})
	return out
}

func (s *server) mustReadDB(f func(*sql.DB) error) {
	s.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.data, "aramaki.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	if err := f(db); err != nil {
		s.t.Fatalf("read the server's database: %v", err)
	}
}

// MustLockDatabase takes the database's write lock from another process
// (this one), as a backup tool might; the server's writes wait for it, and
// fail after its busy timeout. unlock releases it.
func (s *server) MustLockDatabase() (unlock func()) {
	s.t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(s.data, "aramaki.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		s.t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	}
	if err != nil {
		db.Close()
		s.t.Fatalf("lock the server's database: %v", err)
	}
	var once sync.Once
	unlock = func() {
		once.Do(func() {
			conn.ExecContext(ctx, "ROLLBACK")
			conn.Close()
			db.Close()
		})
	}
	s.t.Cleanup(unlock)
	return unlock
}

// ---- Agents ----

// testAgent is an enrolled aramaki-agent and its data directory.
type testAgent struct {
	t    *testing.T
	id   string
	dir  string
	args []string // more flags
	p    *proc
}

// MustEnrollAgent enrolls a new agent for systems with a token from the
// CLI, as an admin would, and leaves it running.
func MustEnrollAgent(t *testing.T, s *server, systems ...string) *testAgent {
	t.Helper()
	return MustEnrollAgentWith(t, s, nil, systems...)
}

// MustEnrollAgentWith is MustEnrollAgent with more flags for the agent.
func MustEnrollAgentWith(t *testing.T, s *server, flags []string, systems ...string) *testAgent {
	t.Helper()
	args := []string{"agent", "token", "-o", "json"}
	for _, sys := range systems {
		args = append(args, "--system", sys)
	}
	var tok struct{ Token string }
	mustJSON(t, s.MustCLI(args...), &tok)
	a := &testAgent{t: t, dir: filepath.Join(t.TempDir(), "agent"), args: flags}
	a.p = startProc(t, "aramaki-agent", agentBinary, append([]string{"--data", a.dir, "--enroll", tok.Token}, flags...)...)
	Eventually(t, 20*time.Second, "the agent's enrollment", func() bool {
		id, err := agent.LoadIdentity(a.dir)
		a.id = id.AgentID
		return err == nil
	})
	return a
}

// MustStart starts the enrolled agent (again).
func (a *testAgent) MustStart() {
	a.p = startProc(a.t, "aramaki-agent", agentBinary, append([]string{"--data", a.dir}, a.args...)...)
}

// MustStop stops the agent with SIGTERM and wants exit code 0.
func (a *testAgent) MustStop() {
	a.t.Helper()
	if code := a.p.stop(); code != 0 {
		a.t.Errorf("aramaki-agent %s exited with %d after SIGTERM", a.id, code)
	}
}

// Kill9 kills the agent with SIGKILL.
func (a *testAgent) Kill9() { a.p.kill9() }

// MustAccountForEveryResult proves "nothing lost, nothing doubled" once
// agent and server have stopped: the server stored the agent's results
// 1..N, each once and in order, its last_seq is N, and everything the
// agent numbered after N is still in its queue, waiting to be sent.
// It returns the stored results.
func MustAccountForEveryResult(t *testing.T, s *server, a *testAgent) []storedResult {
	t.Helper()
	stored := s.MustStoredResults(a)
	if len(stored) == 0 {
		t.Fatalf("agent %s: nothing stored", a.id)
	}
	for i, r := range stored {
		if r.seq != uint64(i+1) {
			t.Fatalf("agent %s: stored seqs %s; want 1..N, each once", a.id, seqRuns(stored))
		}
	}
	n := uint64(len(stored))
	var lastSeq uint64
	s.mustReadDB(func(db *sql.DB) error {
		return db.QueryRow(`SELECT last_seq FROM agents WHERE id = ?`, a.id).Scan(&lastSeq)
	})
	if lastSeq != n {
		t.Errorf("agent %s: the server's last_seq is %d, but it stored 1..%d", a.id, lastSeq, n)
	}

	q, err := queue.Open(filepath.Join(a.dir, agent.QueueDir), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if g := q.Gaps(); len(g) > 0 {
		t.Errorf("agent %s: its queue lost %+v", a.id, g)
	}
	if q.Acked() > n {
		t.Errorf("agent %s: its queue had %d acknowledged, but the server stored only 1..%d", a.id, q.Acked(), n)
	}
	var rest []uint64
	for after := n; ; {
		rs, err := q.Read(after, 1000, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
		for _, r := range rs {
			rest = append(rest, r.Seq)
		}
		after = rs[len(rs)-1].Seq
	}
	for i, seq := range rest {
		if seq != n+uint64(i)+1 {
			t.Fatalf("agent %s: the server stored 1..%d, the queue holds %v after it: some were lost", a.id, n, rest)
		}
	}
	if last := q.Last(); last != n+uint64(len(rest)) {
		t.Errorf("agent %s: numbered up to %d, but the server stored 1..%d and the queue holds %d more", a.id, last, n, len(rest))
	}
	t.Logf("agent %s: %d results stored exactly once, %d still queued at shutdown", a.id, n, len(rest))
	return stored
}

// seqRuns summarises seqs as runs, like "1-40 38-90", for error messages.
func seqRuns(rs []storedResult) string {
	var b strings.Builder
	for i := 0; i < len(rs); {
		j := i
		for j+1 < len(rs) && rs[j+1].seq == rs[j].seq+1 {
			j++
		}
		fmt.Fprintf(&b, " %d-%d", rs[i].seq, rs[j].seq)
		i = j + 1
	}
	return strings.TrimSpace(b.String())
}

// window is a span of time.
type window struct{ from, to time.Time }

// startedWithin returns the results that started within w.
func startedWithin(rs []storedResult, w window) []storedResult {
	var out []storedResult
	for _, r := range rs {
		if r.started.After(w.from) && r.started.Before(w.to) {
			out = append(out, r)
		}
	}
	return out
}

// ---- Processes ----

// proc is a running binary; what it prints is kept and shown when the
// test fails.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// startProc starts a binary; the test's cleanup kills it.
func startProc(t *testing.T, name, path string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: exec.Command(path, args...), out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	started := time.Now()
	t.Cleanup(func() {
		p.kill9()
		if t.Failed() {
			t.Logf("%s (pid %d, started %s) printed:\n%s", p.name, p.cmd.Process.Pid, started.Format("15:04:05.000"), p.output())
		}
	})
	return p
}

func (p *proc) output() string { return p.out.String() }

// waitOutput waits until the process printed want.
func (p *proc) waitOutput(want string, timeout time.Duration) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.output(), want) {
		select {
		case <-p.exited:
			if strings.Contains(p.output(), want) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) without printing %q:\n%s", p.name, p.cmd.ProcessState, want, p.output())
		case <-deadline:
			return fmt.Errorf("%s did not print %q within %s:\n%s", p.name, want, timeout, p.output())
		case <-tick.C:
		}
	}
	return nil
}

// MustWaitOutput is waitOutput for the test's goroutine.
func (p *proc) MustWaitOutput(want string, timeout time.Duration) {
	p.t.Helper()
	if err := p.waitOutput(want, timeout); err != nil {
		p.t.Fatal(err)
	}
}

func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and returns the exit code; after 15 s it kills.
func (p *proc) stop() int {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.kill9()
		p.t.Errorf("%s did not stop within 15 s of SIGTERM", p.name)
	}
	return p.cmd.ProcessState.ExitCode()
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ---- Helpers ----

// Eventually polls cond until it holds, failing the test after timeout.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustJSON(t *testing.T, raw string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
}
