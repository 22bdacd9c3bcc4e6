package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/aramaki/aramaki"
)

// drainGrace is how long the output pipes may stay open after the run's
// process group is gone: only a process that left the group (setsid) can
// hold them, and the agent does not wait for it.
const drainGrace = time.Second

// Status is where a run is, while it runs and once it has ended.
type Status struct {
	ID     string
	Action string
	State  aramaki.RunState // running, then succeeded, failed, cancelled or timed_out
	// ExitCode is the program's exit code, or -1 when there is none: while
	// it runs, when it could not start or was killed by a signal.
	ExitCode int
	Started  time.Time // when the program started (or failed to)
	Ended    time.Time // zero while it runs
	// Error says why a run did not succeed, beyond its exit code: it could
	// not start, was killed by a signal, timed out or was cancelled.
	Error string
	// Output is how many bytes of output were kept (at most
	// aramaki.MaxRunOutput), Dropped how many beyond that were not.
	Output  int
	Dropped int64
}

// Run is one run of an action on this host.
type Run struct {
	ID     string
	Action string
	Argv   []string // the command as run, values filled in
	User   string   // whom it runs as; empty for the agent's user

	timeout time.Duration
	out     func(Chunk)

	cancelOnce sync.Once
	cancel     chan struct{} // closed by Cancel
	done       chan struct{} // closed when the run has ended

	outMu  sync.Mutex // serializes out, in the order output is read
	mu     sync.Mutex
	status Status
	output []Chunk
	pid    int
}

// Cancel stops the run: its process group gets SIGTERM, then SIGKILL after
// the Runner's grace period, and the run ends cancelled. Cancelling a run
// that has ended does nothing.
func (r *Run) Cancel() {
	r.cancelOnce.Do(func() { close(r.cancel) })
}

// Done is closed when the run has ended.
func (r *Run) Done() <-chan struct{} { return r.done }

// Wait waits for the run to end and returns its final status.
func (r *Run) Wait() Status {
	<-r.done
	return r.Status()
}

// Status returns where the run is now.
func (r *Run) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Output returns the output kept so far, in the order it was read: what
// the agent sends again when the server missed some.
func (r *Run) Output() []Chunk {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Chunk, len(r.output))
	for i, c := range r.output {
		out[i] = Chunk{Seq: c.Seq, Stream: c.Stream, Data: slices.Clone(c.Data)}
	}
	return out
}

// PID is the process id of the program, which is also its process group
// id; 0 when it did not start.
func (r *Run) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pid
}

// execute runs the program to its end and records how it went, closing
// started once it started (or failed to).
func (r *Run) execute(ctx context.Context, cred *syscall.Credential, grace time.Duration, started chan<- struct{}) {
	fail := func(err error) {
		now := time.Now()
		r.finish(aramaki.RunFailed, -1, fmt.Sprintf("cannot start %s: %v", r.Argv[0], unwrapExec(err)), now, now)
		close(started)
	}

	// Own pipes rather than exec's copying goroutines: Wait then returns when
	// the process exits, even if something still holds the pipes.
	outR, outW, err := os.Pipe()
	if err != nil {
		fail(err)
		return
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		fail(err)
		return
	}
	defer outR.Close()
	defer errR.Close()

	cmd := &exec.Cmd{
		Path:   r.Argv[0],
		Args:   r.Argv,
		Env:    Env,
		Dir:    "/",
		Stdout: outW,
		Stderr: errW,
		// Stdin nil is /dev/null. A process group of its own, so that a
		// timeout or cancel reaches everything the program started.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Credential: cred},
	}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		fail(err)
		return
	}
	start := time.Now()
	pgid := cmd.Process.Pid
	r.mu.Lock()
	r.pid = pgid
	r.status.Started = start
	r.mu.Unlock()
	close(started)

	var readers sync.WaitGroup
	readers.Add(2)
	go r.read(outR, Stdout, &readers)
	go r.read(errR, Stderr, &readers)

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timer := time.NewTimer(r.timeout)
	defer timer.Stop()
	var stopped aramaki.RunState
	var why string
	select {
	case <-exited:
	case <-timer.C:
		stopped, why = aramaki.RunTimedOut, fmt.Sprintf("timed out after %s", r.timeout)
		terminate(pgid, exited, grace)
	case <-r.cancel:
		stopped, why = aramaki.RunCancelled, "cancelled"
		terminate(pgid, exited, grace)
	case <-ctx.Done():
		stopped, why = aramaki.RunCancelled, "cancelled: the agent is stopping"
		terminate(pgid, exited, grace)
	}
	end := time.Now()
	// Whatever the program left running in its group ends with it; a
	// process that should outlive its run starts a session of its own, as
	// daemons do.
	syscall.Kill(-pgid, syscall.SIGKILL)
	deadline := time.Now().Add(drainGrace)
	outR.SetReadDeadline(deadline)
	errR.SetReadDeadline(deadline)
	readers.Wait()

	code := cmd.ProcessState.ExitCode()
	switch {
	case stopped != "":
		r.finish(stopped, code, why, start, end)
	case code == 0:
		r.finish(aramaki.RunSucceeded, 0, "", start, end)
	case code < 0:
		msg := "killed"
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			msg = fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
		}
		r.finish(aramaki.RunFailed, -1, msg, start, end)
	default:
		r.finish(aramaki.RunFailed, code, fmt.Sprintf("exited with code %d", code), start, end)
	}
}

// terminate asks the process group to end, and makes it after grace.
func terminate(pgid int, exited <-chan error, grace time.Duration) {
	syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
}

func (r *Run) finish(state aramaki.RunState, code int, why string, start, end time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.State = state
	r.status.ExitCode = code
	r.status.Error = why
	r.status.Started = start
	r.status.Ended = end
}

// unwrapExec drops what the message repeats: the program's path.
func unwrapExec(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// read passes on what the program writes to one stream, as it comes, in
// valid UTF-8, reading on after the limit so that the program never blocks
// on a full pipe.
func (r *Run) read(f *os.File, stream string, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, MaxChunk)
	var pending []byte // the start of a character cut by the last read
	for {
		n, err := f.Read(buf)
		data := append(pending, buf[:n]...)
		pending = nil
		if err == nil {
			cut := incompleteTail(data)
			pending = slices.Clone(data[cut:])
			data = data[:cut]
		}
		r.emit(stream, data)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
				r.emit(stream, fmt.Appendf(nil, "\n[reading output: %v]\n", err))
			}
			return
		}
	}
}

// incompleteTail returns where a character that data cuts short starts, or
// len(data).
func incompleteTail(data []byte) int {
	for i := len(data) - 1; i >= 0 && i >= len(data)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(data[i]) {
			if !utf8.FullRune(data[i:]) {
				return i
			}
			break
		}
	}
	return len(data)
}

// emit keeps and passes on output, up to MaxRunOutput for the whole run,
// and counts the rest.
func (r *Run) emit(stream string, raw []byte) {
	if len(raw) == 0 {
		return
	}
	data := bytes.ToValidUTF8(raw, []byte("\uFFFD")) // a copy, whatever raw holds
	r.outMu.Lock()
	defer r.outMu.Unlock()
	for len(data) > 0 {
		r.mu.Lock()
		room := aramaki.MaxRunOutput - r.status.Output
		n := cutUTF8(data, min(room, MaxChunk))
		if n == 0 {
			r.status.Dropped += int64(len(data))
			r.mu.Unlock()
			return
		}
		c := Chunk{Seq: len(r.output), Stream: stream, Data: data[:n:n]}
		r.output = append(r.output, c)
		r.status.Output += n
		r.mu.Unlock()
		if r.out != nil {
			r.out(Chunk{Seq: c.Seq, Stream: stream, Data: slices.Clone(c.Data)})
		}
		data = data[n:]
	}
}

// cutUTF8 returns the length of the longest prefix of data of at most n
// bytes that does not split a character.
func cutUTF8(data []byte, n int) int {
	if n <= 0 {
		return 0
	}
	if len(data) <= n {
		return len(data)
	}
	for n > 0 && !utf8.RuneStart(data[n]) {
		n--
	}
	return n
}
