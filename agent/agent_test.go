package agent_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki/agent"
	"github.com/aramaki/aramaki/agent/agenttest"
	"github.com/aramaki/aramaki/wire"
)

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func MustEnroll(t *testing.T, s *agenttest.Server, dir string) agent.Identity {
	t.Helper()
	id, err := agent.Enroll(context.Background(), dir, s.Token("webshop"), agent.EnrollOptions{Hostname: "web1", Version: "test"})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	return id
}

// MustRun runs an agent until the returned stop is called (or the test ends).
func MustRun(t *testing.T, cfg agent.Config) (stop func()) {
	t.Helper()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	}
	a, err := agent.New(cfg, testLog(t))
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the agent did not stop within 10s")
		}
	}
	t.Cleanup(stop)
	return stop
}

func checkEvery(name string, interval time.Duration, argv ...string) wire.CheckDefinition {
	return wire.CheckDefinition{System: "webshop", Name: name, Command: argv, Interval: wire.Millis(interval), Timeout: wire.Millis(10 * time.Second)}
}

// mustBeInOrder fails unless results are numbered 1, 2, 3, … apart from
// reported gaps.
func mustBeInOrder(t *testing.T, a agenttest.Agent, s *agenttest.Server) {
	t.Helper()
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("protocol violations:\n%s", strings.Join(v, "\n"))
	}
	for i := 1; i < len(a.Results); i++ {
		if a.Results[i].Seq <= a.Results[i-1].Seq {
			t.Fatalf("result %d stored after %d", a.Results[i].Seq, a.Results[i-1].Seq)
		}
	}
}

func TestEnrollmentPinsTheServersCA(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	dir := filepath.Join(t.TempDir(), "agent")
	id := MustEnroll(t, s, dir)
	if !wire.ValidAgentID(id.AgentID) || id.Name != "web1" || id.ServerURL != s.URL || id.CASHA256 != s.CAFingerprint {
		t.Fatalf("identity %+v", id)
	}
	block, _ := pem.Decode([]byte(id.CACert))
	sum := sha256.Sum256(block.Bytes)
	if hex.EncodeToString(sum[:]) != s.CAFingerprint {
		t.Fatal("the saved CA certificate is not the pinned one")
	}
	if saved, err := agent.LoadIdentity(dir); err != nil || saved.AgentID != id.AgentID || saved.CACert != id.CACert {
		t.Fatalf("saved identity %+v, %v", saved, err)
	}
	// The server holds the public key of the private key on disk.
	info, err := os.Stat(filepath.Join(dir, agent.KeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, agent.KeyFile))
	block, _ = pem.Decode(raw)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(ed25519.PrivateKey).Public().(ed25519.PublicKey).Equal(s.Agent(id.AgentID).PublicKey) {
		t.Fatal("the server knows another public key")
	}
	if info, _ := os.Stat(dir); info.Mode().Perm() != 0o700 {
		t.Fatalf("data directory mode %v", info.Mode().Perm())
	}
}

func TestEnrollmentNeverSendsTheTokenToAServerWithAnotherCA(t *testing.T) {
	ours := agenttest.New(t, agenttest.Options{})
	impostor := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	_, err := agent.Enroll(context.Background(), dir, impostor.TokenWithPin(ours.CAFingerprint), agent.EnrollOptions{})
	if err == nil || !strings.Contains(err.Error(), "pinned fingerprint") {
		t.Fatalf("enrolled with a server of another CA: %v", err)
	}
	if n := impostor.EnrollRequests(); n != 0 {
		t.Fatalf("the token reached the impostor %d times", n)
	}
	if _, err := agent.LoadIdentity(dir); !errors.Is(err, agent.ErrNotEnrolled) {
		t.Fatalf("identity after a refused enrollment: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, agent.KeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a key was left behind")
	}
}

func TestEnrollmentChecksTheCertificateIsForTheHost(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{Hosts: []string{"elsewhere.example"}})
	_, err := agent.Enroll(context.Background(), t.TempDir(), s.Token(), agent.EnrollOptions{})
	if err == nil || !strings.Contains(err.Error(), "does not verify against the pinned CA") {
		t.Fatalf("enrolled with a certificate for another host: %v", err)
	}
	if s.EnrollRequests() != 0 {
		t.Fatal("the token was sent")
	}
}

func TestEnrollmentNeedsTheCAInTheChain(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{LeafOnly: true})
	_, err := agent.Enroll(context.Background(), t.TempDir(), s.Token(), agent.EnrollOptions{})
	if err == nil || s.EnrollRequests() != 0 {
		t.Fatalf("enrolled with a server that does not present its CA: %v", err)
	}
}

func TestEnrollingAgainNeedsForce(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	first := MustEnroll(t, s, dir)
	_, err := agent.Enroll(context.Background(), dir, s.Token(), agent.EnrollOptions{})
	if !errors.Is(err, agent.ErrAlreadyEnrolled) || !strings.Contains(err.Error(), first.AgentID) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("enrolled twice: %v", err)
	}
	second, err := agent.Enroll(context.Background(), dir, s.Token(), agent.EnrollOptions{Force: true})
	if err != nil || second.AgentID == first.AgentID {
		t.Fatalf("forced enrollment: %+v %v", second, err)
	}
	if saved, _ := agent.LoadIdentity(dir); saved.AgentID != second.AgentID {
		t.Fatalf("saved identity is %s", saved.AgentID)
	}
}

func TestAUsedTokenIsRefusedWithTheServersMessage(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	tok := s.Token()
	if _, err := agent.Enroll(context.Background(), t.TempDir(), tok, agent.EnrollOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := agent.Enroll(context.Background(), t.TempDir(), tok, agent.EnrollOptions{})
	var refused *agent.ServerError
	if !errors.As(err, &refused) || refused.Code != "invalid_token" || refused.HTTPStatus != 401 {
		t.Fatalf("reused token: %v", err)
	}
	if strings.Contains(err.Error(), tok[len(wire.EnrollmentTokenPrefix):]) {
		t.Fatal("the error shows the token")
	}
}

func TestAnAgentReportsResultsKeepalivesAndFacts(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	id := MustEnroll(t, s, dir)
	s.SetChecks([]wire.CheckDefinition{checkEvery("load", time.Second, "echo", "OK - load 0.15 | load1=0.15;4;8;0;")})
	MustRun(t, agent.Config{Dir: dir, Version: "1.2.3"})
	s.Wait(t, 10*time.Second, "3 results, 2 keepalives and facts", func() bool {
		a := s.Agent(id.AgentID)
		return len(a.Results) >= 3 && a.Keepalives >= 2 && len(a.Facts) >= 1
	})
	a := s.Agent(id.AgentID)
	mustBeInOrder(t, a, s)
	r := a.Results[0]
	if r.Seq != 1 || r.System != "webshop" || r.Check != "load" || r.Status != 0 || len(r.Metrics) != 1 || r.Metrics[0].Name != "load1" {
		t.Fatalf("first result %+v", r)
	}
	if a.Version != "1.2.3" || a.Connects != 1 {
		t.Fatalf("version %q, %d connects", a.Version, a.Connects)
	}
	f := a.Facts[0]
	if f.Hostname == "" || f.Arch == "" || f.CPUs < 1 {
		t.Fatalf("facts %+v", f)
	}
	// The definitions are cached for a start without the server.
	if raw, err := os.ReadFile(filepath.Join(dir, agent.ChecksFile)); err != nil || !strings.Contains(string(raw), "load1") {
		t.Fatalf("checks cache: %s %v", raw, err)
	}
}

func TestResultsTheServerDidNotAcknowledgeAreSentAgainInOrder(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	id := MustEnroll(t, s, dir)
	var defs []wire.CheckDefinition
	for _, name := range []string{"a", "b", "c", "d"} {
		defs = append(defs, checkEvery(name, time.Second, "echo", "OK "+name))
	}
	s.SetChecks(defs)
	MustRun(t, agent.Config{Dir: dir})
	s.Wait(t, 10*time.Second, "4 results", func() bool { return len(s.Agent(id.AgentID).Results) >= 4 })

	// The server loses what arrives now, then the connection.
	s.Hold(true)
	before := s.Agent(id.AgentID).LastSeq
	time.Sleep(2500 * time.Millisecond)
	s.Drop(id.AgentID)
	s.Hold(false)
	s.Wait(t, 10*time.Second, "the lost results again, and more", func() bool {
		a := s.Agent(id.AgentID)
		return a.Connects >= 2 && a.LastSeq >= before+12
	})
	a := s.Agent(id.AgentID)
	mustBeInOrder(t, a, s)
	for i, r := range a.Results {
		if r.Seq != uint64(i+1) {
			t.Fatalf("stored result %d has sequence %d", i, r.Seq)
		}
	}
	if a.Duplicates != 0 {
		t.Fatalf("%d results were sent again after they were acknowledged", a.Duplicates)
	}
}

func TestChecksKeepRunningWhileTheServerIsAway(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	id := MustEnroll(t, s, dir)
	s.SetChecks([]wire.CheckDefinition{checkEvery("disk", time.Second, "echo", "OK")})
	stop := MustRun(t, agent.Config{Dir: dir})
	s.Wait(t, 10*time.Second, "a result", func() bool { return len(s.Agent(id.AgentID).Results) >= 1 })
	stop()

	// The server is down when the agent starts again: it runs the cached
	// checks anyway and delivers the results once the server is back.
	s.Refuse(true)
	s.SetChecks(nil)
	last := s.Agent(id.AgentID).LastSeq
	outage := time.Now()
	MustRun(t, agent.Config{Dir: dir})
	time.Sleep(3 * time.Second)
	if a := s.Agent(id.AgentID); a.LastSeq != last {
		t.Fatalf("results arrived at a server that refuses connections")
	}
	s.Refuse(false)
	s.Wait(t, 10*time.Second, "the results of the outage", func() bool { return s.Agent(id.AgentID).LastSeq >= last+2 })
	a := s.Agent(id.AgentID)
	mustBeInOrder(t, a, s)
	during := 0
	for _, r := range a.Results {
		if r.Started.After(outage) && r.Started.Before(outage.Add(3*time.Second)) {
			during++
		}
	}
	if during < 2 {
		t.Fatalf("%d results from the outage", during)
	}
	// Back online, the server's empty definitions apply and are cached.
	time.Sleep(200 * time.Millisecond)
	if raw, _ := os.ReadFile(filepath.Join(dir, agent.ChecksFile)); strings.Contains(string(raw), "disk") {
		t.Fatalf("checks cache still holds the old check: %s", raw)
	}
}

func TestAFullQueueReportsTheGap(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	id := MustEnroll(t, s, dir)
	s.Refuse(true)
	var defs []wire.CheckDefinition
	for i := range 10 {
		defs = append(defs, checkEvery(fmt.Sprintf("c%d", i), time.Second, "true"))
	}
	s.SetChecks(defs)
	// Enroll, then seed the cache by a first connection... simpler: write it.
	raw := fmt.Sprintf(`{"checks":[%s]}`, strings.Join(func() []string {
		var out []string
		for _, d := range defs {
			out = append(out, fmt.Sprintf(`{"system":"webshop","name":%q,"command":["true"],"interval_ms":1000,"timeout_ms":5000}`, d.Name))
		}
		return out
	}(), ","))
	os.WriteFile(filepath.Join(dir, agent.ChecksFile), []byte(raw), 0o600)
	MustRun(t, agent.Config{Dir: dir, QueueMaxRecords: 8, Concurrency: 10})
	time.Sleep(2500 * time.Millisecond) // ~20 results for a queue of 8
	s.Refuse(false)
	s.Wait(t, 10*time.Second, "a gap and the results after it", func() bool {
		a := s.Agent(id.AgentID)
		return len(a.Gaps) > 0 && len(a.Results) > 0
	})
	a := s.Agent(id.AgentID)
	mustBeInOrder(t, a, s)
	g := a.Gaps[0]
	if g.From != 1 || g.To+1 != a.Results[0].Seq {
		t.Fatalf("gap %+v, first result %d", g, a.Results[0].Seq)
	}
}

func TestARunFrameRunsTheCheckNow(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	id := MustEnroll(t, s, dir)
	s.SetChecks([]wire.CheckDefinition{checkEvery("backup", 24*time.Hour, "echo", "WARNING - old backup")})
	MustRun(t, agent.Config{Dir: dir})
	s.Wait(t, 10*time.Second, "a connection", func() bool { return s.Connected(id.AgentID) })
	if err := s.RunCheck(id.AgentID, "webshop", "nothing", "req-0"); err != nil {
		t.Fatal(err)
	}
	if err := s.RunCheck(id.AgentID, "webshop", "backup", "req-1"); err != nil {
		t.Fatal(err)
	}
	s.Wait(t, 10*time.Second, "the result of the run", func() bool { return len(s.Agent(id.AgentID).Results) >= 1 })
	time.Sleep(200 * time.Millisecond)
	a := s.Agent(id.AgentID)
	if len(a.Results) != 1 || a.Results[0].Request != "req-1" || a.Results[0].Output != "WARNING - old backup" {
		t.Fatalf("results %+v", a.Results)
	}
}

func TestNewChecksApplyAtOnce(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	id := MustEnroll(t, s, dir)
	MustRun(t, agent.Config{Dir: dir})
	s.Wait(t, 10*time.Second, "a connection", func() bool { return s.Connected(id.AgentID) })
	s.SetChecks([]wire.CheckDefinition{checkEvery("new", time.Second, "echo", "OK")})
	s.Wait(t, 10*time.Second, "a result of the new check", func() bool { return len(s.Agent(id.AgentID).Results) >= 1 })
}

func TestARevokedAgentStopsRetrying(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	id := MustEnroll(t, s, dir)
	MustRun(t, agent.Config{Dir: dir, RevokedBackoff: time.Hour})
	s.Wait(t, 10*time.Second, "a connection", func() bool { return s.Connected(id.AgentID) })
	s.Revoke(id.AgentID)
	attempts := s.Attempts()
	s.Wait(t, 10*time.Second, "the attempt that learns of the revocation", func() bool { return s.Attempts() > attempts })
	time.Sleep(time.Second) // 10 attempts at the normal backoff
	if n := s.Attempts() - attempts; n != 1 {
		t.Fatalf("%d attempts after the revocation", n)
	}
}

func TestAPlainHTTPServerWorksForDevelopment(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{PlainHTTP: true})
	dir := t.TempDir()
	id := MustEnroll(t, s, dir)
	if id.CASHA256 != "" || id.CACert != "" {
		t.Fatalf("identity %+v", id)
	}
	s.SetChecks([]wire.CheckDefinition{checkEvery("http", time.Second, "echo", "OK")})
	MustRun(t, agent.Config{Dir: dir})
	s.Wait(t, 10*time.Second, "a result", func() bool { return len(s.Agent(id.AgentID).Results) >= 1 })
}

// MustMoveTo points an enrolled agent at another server URL.
func MustMoveTo(t *testing.T, dir, url string) {
	t.Helper()
	id, err := agent.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	id.ServerURL = url
	raw, _ := json.Marshal(id)
	if err := os.WriteFile(filepath.Join(dir, agent.IdentityFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAfterEnrollmentTheSavedCAServesForAServerPresentingOnlyItsLeaf(t *testing.T) {
	ca := agenttest.MustMakeCA(t)
	s := agenttest.New(t, agenttest.Options{CA: ca})
	dir := t.TempDir()
	MustEnroll(t, s, dir)

	// Same CA, leaf only: the TLS handshake succeeds with the saved CA.
	sameCA := agenttest.New(t, agenttest.Options{CA: ca, LeafOnly: true})
	MustMoveTo(t, dir, sameCA.URL)
	stop := MustRun(t, agent.Config{Dir: dir})
	sameCA.Wait(t, 10*time.Second, "a websocket through TLS", func() bool { return sameCA.Attempts() > 0 })
	stop()

	// Another CA, leaf only: nothing gets through.
	otherCA := agenttest.New(t, agenttest.Options{LeafOnly: true})
	MustMoveTo(t, dir, otherCA.URL)
	MustRun(t, agent.Config{Dir: dir})
	time.Sleep(500 * time.Millisecond)
	if otherCA.Attempts() != 0 {
		t.Fatal("the agent connected to a server of another CA")
	}
}

func TestTwoAgentsCannotShareADirectory(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	MustEnroll(t, s, dir)
	MustRun(t, agent.Config{Dir: dir})
	time.Sleep(100 * time.Millisecond)
	a, err := agent.New(agent.Config{Dir: dir}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "another aramaki-agent") {
		t.Fatalf("second agent: %v", err)
	}
}

func TestNewNeedsAnEnrollment(t *testing.T) {
	if _, err := agent.New(agent.Config{Dir: t.TempDir()}, nil); !errors.Is(err, agent.ErrNotEnrolled) {
		t.Fatalf("got %v", err)
	}
}

func TestAnAgentWithAWrongClockStillDelivers(t *testing.T) {
	// The host's clock is 10 minutes ahead of the server's: uncorrected, its
	// results would be "from the future" and refused.
	s := agenttest.New(t, agenttest.Options{ClockSkew: -10 * time.Minute})
	dir := t.TempDir()
	id := MustEnroll(t, s, dir)
	s.SetChecks([]wire.CheckDefinition{checkEvery("ntp", time.Second, "echo", "OK")})
	MustRun(t, agent.Config{Dir: dir})
	s.Wait(t, 10*time.Second, "results and a keepalive", func() bool {
		a := s.Agent(id.AgentID)
		return len(a.Results) >= 2 && a.Keepalives >= 1 && len(a.Facts) >= 1
	})
	a := s.Agent(id.AgentID)
	mustBeInOrder(t, a, s)
	if d := time.Until(a.Results[0].Started); d > -9*time.Minute {
		t.Fatalf("result started %s from now by this host's clock; corrected it is 10 minutes earlier", d)
	}
}
