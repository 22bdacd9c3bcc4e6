package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aramaki/aramaki/agent"
	"github.com/aramaki/aramaki/agent/agenttest"
	"github.com/aramaki/aramaki/wire"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aramaki-agent-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "aramaki-agent")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// MustStartAgent starts the real binary; stop sends SIGTERM and waits.
func MustStartAgent(t *testing.T, stdin string, args ...string) (cmd *exec.Cmd, stderr *bytes.Buffer, stop func() int) {
	t.Helper()
	cmd = exec.Command(binary, args...)
	stderr = &bytes.Buffer{}
	cmd.Stderr = &syncWriter{buf: stderr}
	cmd.Stdin = strings.NewReader(stdin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	stop = func() int {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("the agent did not stop within 10s of SIGTERM\n%s", stderr)
			}
		}
		return cmd.ProcessState.ExitCode()
	}
	t.Cleanup(func() { stop() })
	return cmd, stderr, stop
}

type syncWriter struct {
	buf *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kib, _ := strconv.Atoi(strings.Fields(rest)[0])
			return kib
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func TestTheBinaryEnrollsRunsAndStopsCleanly(t *testing.T) {
	s := agenttest.New(t, agenttest.Options{})
	var checks []wire.CheckDefinition
	for i, name := range []string{"load", "disk", "http"} {
		checks = append(checks, wire.CheckDefinition{System: "webshop", Name: name,
			Command: []string{"echo", "OK - " + name + " | value=" + strconv.Itoa(i)}, Interval: wire.Millis(time.Second), Timeout: 5000})
	}
	s.SetChecks(checks)
	dir := filepath.Join(t.TempDir(), "data")
	tok := s.Token("webshop")
	cmd, stderr, stop := MustStartAgent(t, tok+"\n", "--data", dir, "--enroll", "-", "--log-format", "json", "--log-level", "debug")

	s.Wait(t, 15*time.Second, "enrollment", func() bool { _, err := agent.LoadIdentity(dir); return err == nil })
	id, _ := agent.LoadIdentity(dir)
	s.Wait(t, 15*time.Second, "results of all three checks", func() bool {
		seen := map[string]bool{}
		for _, r := range s.Agent(id.AgentID).Results {
			seen[r.Check] = true
		}
		return len(seen) == 3
	})
	time.Sleep(5 * time.Second) // idle, running its checks
	rss := rssKiB(t, cmd.Process.Pid)
	t.Logf("idle agent with 3 checks every second: VmRSS %d KiB (%.1f MiB)", rss, float64(rss)/1024)
	if os.Getenv("RSS_DEBUG") != "" {
		raw, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
		t.Logf("%s", raw)
	}
	if rss > 24<<10 {
		t.Errorf("the idle agent uses %d KiB", rss)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, stderr)
	}

	// The log is JSON, says it enrolled and stopped, and holds no secret.
	secret := strings.TrimPrefix(tok, wire.EnrollmentTokenPrefix)
	logText := stderr.String()
	if strings.Contains(logText, secret) || strings.Contains(logText, "PRIVATE KEY") {
		t.Fatal("the log shows a secret")
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(logText), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		msgs = append(msgs, rec["msg"].(string))
	}
	joined := strings.Join(msgs, "|")
	for _, want := range []string{"enrolled", "agent started", "connected", "agent stopped"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %q in the log: %s", want, joined)
		}
	}

	// Enrolling again is refused without --force.
	out, err := exec.Command(binary, "--data", dir, "--enroll", s.Token()).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "--force") || !strings.Contains(string(out), id.AgentID) {
		t.Fatalf("second enrollment: exit %d: %s", code, out)
	}

	// Later starts need no token, and go on numbering.
	last := s.Agent(id.AgentID).LastSeq
	_, stderr, stop = MustStartAgent(t, "", "--data", dir)
	s.Wait(t, 15*time.Second, "results after a restart", func() bool { return s.Agent(id.AgentID).LastSeq > last+2 })
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, stderr)
	}
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("violations: %v", v)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func TestTheBinaryExplainsItsUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"version"}, 0, "aramaki-agent dev"},
		{[]string{}, 2, "--data DIR is required"},
		{[]string{"--data", t.TempDir()}, 1, "not enrolled"},
		{[]string{"--data", t.TempDir(), "--force"}, 2, "--force goes with --enroll"},
		{[]string{"--data", t.TempDir(), "--enroll", "nonsense"}, 1, "not an enrollment token"},
		{[]string{"--data", t.TempDir(), "--log-format", "xml"}, 2, "use text or json"},
		{[]string{"--data", t.TempDir(), "extra"}, 2, "unexpected argument"},
	}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, binary, c.args...).CombinedOutput()
		cancel()
		if code := exitCode(err); code != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("aramaki-agent %v: exit %d, %q; want exit %d and %q", c.args, code, out, c.code, c.want)
		}
	}
}
