// Package check runs monitoring checks on an agent's host: one run of a
// Nagios-compatible plugin (Run), the metrics in its output (ParseMetrics:
// Nagios perfdata or Prometheus text format), and the Scheduler that runs
// every check at its interval with a stable splay and bounded concurrency.
package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/wire"
)

// drainGrace is how long the output pipes may stay open after the check's
// process group is gone: only a process that left the group (setsid) can
// hold them, and the agent does not wait for it.
const drainGrace = time.Second

// Run runs def's command once, as argv and never through a shell, and
// returns its result without a sequence number (the queue assigns it).
//
// The command runs in a process group of its own. When it times out, or ctx
// ends, the whole group is killed; when it exits, whatever it left running
// in its group is killed too, so a check leaves nothing behind. The status
// follows the Nagios rules: exit 0 OK, 1 WARNING, 2 CRITICAL, anything else,
// a failure to start or a timeout UNKNOWN.
func Run(ctx context.Context, def wire.CheckDefinition) wire.Result {
	res := wire.Result{System: def.System, Check: def.Name, Status: wire.Status(aramaki.StatusUnknown)}
	res.Started = time.Now()
	o := execute(ctx, def.Command, def.Timeout.D())
	res.Duration = wire.Millis(time.Since(res.Started))

	stdout := cleanOutput(o.stdout)
	output := stdout
	if stderr := cleanOutput(o.stderr); stderr != "" {
		if output != "" {
			output += "\n"
		}
		output += stderr
	}
	switch {
	case o.startErr != nil:
		output = fmt.Sprintf("cannot run %s: %s", def.Command[0], o.startErr)
	case o.timedOut:
		output = joinLines(fmt.Sprintf("timed out after %s", def.Timeout.D()), output)
	case o.cancelled:
		output = joinLines("stopped before it finished", output)
	default:
		res.Status = wire.Status(aramaki.StatusFromExit(o.exitCode))
		if o.signal != 0 {
			output = joinLines(fmt.Sprintf("killed by signal %d (%s)", int(o.signal), o.signal), output)
		} else if output == "" {
			output = fmt.Sprintf("exited with code %d and no output", o.exitCode)
		}
		res.Metrics = ParseMetrics(stdout)
	}
	res.Output = truncateUTF8(output, wire.MaxOutput)
	return res
}

func joinLines(first, rest string) string {
	if rest == "" {
		return first
	}
	return first + "\n" + rest
}

// cleanOutput makes output valid UTF-8 and drops trailing white space (a
// plugin's final newline).
func cleanOutput(b []byte) string {
	return strings.TrimRight(strings.ToValidUTF8(string(b), "\uFFFD"), " \t\r\n")
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

type outcome struct {
	stdout, stderr      []byte
	exitCode            int
	signal              syscall.Signal
	startErr            error
	timedOut, cancelled bool
}

func execute(ctx context.Context, argv []string, timeout time.Duration) (o outcome) {
	// Own pipes rather than exec's copying goroutines: Wait then returns when
	// the process exits, even if a grandchild still holds the pipes.
	outR, outW, err := os.Pipe()
	if err != nil {
		o.startErr = err
		return o
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		o.startErr = err
		return o
	}
	defer outR.Close()
	defer errR.Close()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		o.startErr = err
		return o
	}
	pgid := cmd.Process.Pid

	var wg sync.WaitGroup
	wg.Add(2)
	go capture(outR, &o.stdout, &wg)
	go capture(errR, &o.stderr, &wg)

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		o.timedOut = true
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	case <-ctx.Done():
		o.cancelled = true
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	// Whatever the check left running in its group ends with it.
	syscall.Kill(-pgid, syscall.SIGKILL)
	deadline := time.Now().Add(drainGrace)
	outR.SetReadDeadline(deadline)
	errR.SetReadDeadline(deadline)
	wg.Wait()

	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		o.signal = ws.Signal()
	}
	o.exitCode = cmd.ProcessState.ExitCode()
	return o
}

// capture keeps the first MaxOutput bytes of r and reads and drops the rest,
// so that a chatty child never blocks on a full pipe.
func capture(r io.Reader, dst *[]byte, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, 8<<10)
	for {
		n, err := r.Read(buf)
		if room := wire.MaxOutput - len(*dst); room > 0 {
			*dst = append(*dst, buf[:min(n, room)]...)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
				*dst = append(*dst, fmt.Sprintf("\n[reading output: %v]", err)...)
			}
			return
		}
	}
}
