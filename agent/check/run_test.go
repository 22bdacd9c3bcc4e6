package check_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aramaki/aramaki/agent/check"
	"github.com/aramaki/aramaki/wire"
)

func def(timeout time.Duration, argv ...string) wire.CheckDefinition {
	return wire.CheckDefinition{System: "webshop", Name: "probe", Command: argv, Interval: wire.Millis(time.Minute), Timeout: wire.Millis(timeout)}
}

func TestRunMapsExitCodesToStatusesTheNagiosWay(t *testing.T) {
	cases := []struct {
		script string
		status wire.Status
		output string
	}{
		{"echo 'OK - fine'; exit 0", 0, "OK - fine"},
		{"echo 'WARNING - slow'; exit 1", 1, "WARNING - slow"},
		{"echo 'CRITICAL - down'; exit 2", 2, "CRITICAL - down"},
		{"echo 'UNKNOWN - what'; exit 3", 3, "UNKNOWN - what"},
		{"echo odd; exit 42", 3, "odd"},
		{"exit 42", 3, "exited with code 42 and no output"},
		{"echo out; echo err >&2; exit 1", 1, "out\nerr"},
		{"kill -9 $$", 3, "killed by signal 9 (killed)"},
	}
	for _, c := range cases {
		res := check.Run(context.Background(), def(5*time.Second, "sh", "-c", c.script))
		if res.Status != c.status || res.Output != c.output {
			t.Errorf("%q: got %d %q, want %d %q", c.script, res.Status, res.Output, c.status, c.output)
		}
		if res.System != "webshop" || res.Check != "probe" || res.Started.IsZero() {
			t.Errorf("%q: result does not name its check: %+v", c.script, res)
		}
	}
}

func TestRunReportsAProgramThatCannotStartAsUnknown(t *testing.T) {
	res := check.Run(context.Background(), def(time.Second, "/nonexistent/check_nothing"))
	if res.Status != 3 || !strings.HasPrefix(res.Output, "cannot run /nonexistent/check_nothing:") {
		t.Fatalf("got %d %q", res.Status, res.Output)
	}
}

func TestRunTakesArgvWithoutAShell(t *testing.T) {
	res := check.Run(context.Background(), def(time.Second, "echo", "$HOME", "a;b", "*"))
	if res.Output != "$HOME a;b *" {
		t.Fatalf("arguments were interpreted: %q", res.Output)
	}
}

// alive reports whether a process exists and is not a zombie (in a
// container without an init that reaps, killed orphans stay zombies).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func MustReadPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		raw, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && perr == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunKillsTheWholeProcessGroupOnTimeout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild")
	start := time.Now()
	res := check.Run(context.Background(), def(300*time.Millisecond, "sh", "-c", "sleep 100 & echo $! > "+pidFile+"; echo partial; sleep 100"))
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("a check with a 300ms timeout took %s", took)
	}
	if res.Status != 3 || res.Output != "timed out after 300ms\npartial" {
		t.Fatalf("got %d %q", res.Status, res.Output)
	}
	if res.Duration.D() < 300*time.Millisecond {
		t.Fatalf("duration %s is shorter than the timeout", res.Duration.D())
	}
	grandchild := MustReadPID(t, pidFile)
	deadline := time.Now().Add(2 * time.Second)
	for alive(grandchild) {
		if time.Now().After(deadline) {
			syscall.Kill(grandchild, syscall.SIGKILL)
			t.Fatalf("grandchild %d survived the timeout", grandchild)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunLeavesNothingBehindWhenTheCheckExits(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild")
	start := time.Now()
	res := check.Run(context.Background(), def(10*time.Second, "sh", "-c", "sleep 100 & echo $! > "+pidFile+"; echo 'OK - done'"))
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("waited %s for a background process holding the output pipe", took)
	}
	if res.Status != 0 || res.Output != "OK - done" {
		t.Fatalf("got %d %q", res.Status, res.Output)
	}
	grandchild := MustReadPID(t, pidFile)
	deadline := time.Now().Add(2 * time.Second)
	for alive(grandchild) {
		if time.Now().After(deadline) {
			syscall.Kill(grandchild, syscall.SIGKILL)
			t.Fatalf("background process %d outlived its check", grandchild)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := check.Run(ctx, def(time.Minute, "sleep", "100"))
	if time.Since(start) > 3*time.Second || res.Status != 3 || res.Output != "stopped before it finished" {
		t.Fatalf("got %d %q after %s", res.Status, res.Output, time.Since(start))
	}
}

func TestRunKeepsTheFirstBytesOfHugeOutputWithoutBlockingTheChild(t *testing.T) {
	start := time.Now()
	res := check.Run(context.Background(), def(20*time.Second, "sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' x; echo done >&2; exit 1"))
	if res.Status != 1 {
		t.Fatalf("status %d, output starts %q (after %s)", res.Status, res.Output[:min(80, len(res.Output))], time.Since(start))
	}
	if len(res.Output) != wire.MaxOutput || strings.Trim(res.Output, "x") != "" {
		t.Fatalf("output of %d bytes, want the first %d", len(res.Output), wire.MaxOutput)
	}
}

func TestRunMakesOutputValidUTF8(t *testing.T) {
	res := check.Run(context.Background(), def(5*time.Second, "printf", "OK \\377\\376 caf\\303\\251"))
	if !utf8.ValidString(res.Output) || res.Output != "OK \uFFFD café" {
		t.Fatalf("got %q", res.Output)
	}
	// A multi-byte character cut at the limit is not split.
	res = check.Run(context.Background(), def(5*time.Second, "sh", "-c", "head -c 16383 /dev/zero | tr '\\0' x; printf '\\303\\251\\303\\251'"))
	if !utf8.ValidString(res.Output) || len(res.Output) > wire.MaxOutput {
		t.Fatalf("output of %d bytes, valid %v", len(res.Output), utf8.ValidString(res.Output))
	}
}

func TestRunParsesPerfdataIntoMetrics(t *testing.T) {
	res := check.Run(context.Background(), def(5*time.Second, "echo", "OK - load average: 0.15, 0.10, 0.05|load1=0.150;4.000;8.000;0; load5=0.100;3.000;6.000;0;"))
	if res.Output != "OK - load average: 0.15, 0.10, 0.05|load1=0.150;4.000;8.000;0; load5=0.100;3.000;6.000;0;" {
		t.Fatalf("output %q", res.Output)
	}
	if len(res.Metrics) != 2 || res.Metrics[0].Name != "load1" || res.Metrics[0].Value != 0.15 || res.Metrics[1].Name != "load5" {
		t.Fatalf("metrics %+v", res.Metrics)
	}
	res.Seq = 1
	if err := (&wire.Results{Results: []wire.Result{res}}).Validate(time.Now()); err != nil {
		t.Fatalf("the wire refuses a result of Run: %v", err)
	}
}
