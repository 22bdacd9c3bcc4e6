package action_test

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/agent/action"
)

// MustRunner returns a Runner allowing the actions of an action file.
func MustRunner(t *testing.T, cfg action.Config, file string) *action.Runner {
	t.Helper()
	specs, problems := action.Parse("test.yaml", []byte(file))
	if problems != nil {
		t.Fatalf("the test's actions have problems: %v", problems)
	}
	r := action.NewRunner(cfg)
	if err := r.Set(specs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range r.Runs() {
			r.Cancel(s.ID)
		}
		r.Wait()
	})
	return r
}

// recorder keeps the output a run streams.
type recorder struct {
	mu     sync.Mutex
	chunks []action.Chunk
	seen   chan action.Chunk
}

func newRecorder() *recorder { return &recorder{seen: make(chan action.Chunk, 1000)} }

func (rec *recorder) out(c action.Chunk) {
	rec.mu.Lock()
	rec.chunks = append(rec.chunks, c)
	rec.mu.Unlock()
	rec.seen <- c
}

func (rec *recorder) text() string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var b strings.Builder
	for _, c := range rec.chunks {
		b.Write(c.Data)
	}
	return b.String()
}

// MustRun runs an action to its end and returns its final status and
// output.
func MustRun(t *testing.T, r *action.Runner, id, name string, values map[string]string) (action.Status, string) {
	t.Helper()
	rec := newRecorder()
	run, err := r.Start(context.Background(), id, name, values, rec.out)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return run.Wait(), rec.text()
}

// MustRefuse checks that Start refuses with the given code and message and
// starts nothing.
func MustRefuse(t *testing.T, r *action.Runner, id, name string, values map[string]string, code, message string) {
	t.Helper()
	_, known := r.Lookup(id)
	runs := len(r.Runs())
	run, err := r.Start(context.Background(), id, name, values, nil)
	if err == nil {
		run.Wait()
		t.Fatalf("%s %v was started, want %q", name, values, message)
	}
	if aramaki.ErrorCode(err) != code || aramaki.ErrorMessage(err) != message {
		t.Fatalf("%s %v refused with %s %q, want %s %q", name, values, aramaki.ErrorCode(err), aramaki.ErrorMessage(err), code, message)
	}
	if _, ok := r.Lookup(id); ok != known || len(r.Runs()) != runs {
		t.Fatalf("the refused run %s was recorded", id)
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

// groupMembers returns the live processes of a process group.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		fields := strings.Fields(string(stat[i+1:])) // state, ppid, pgrp, …
		if len(fields) > 2 && fields[0] != "Z" && fields[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// MustLeaveNothingRunning fails when a process of the run's group, or the
// one named in pidFile, is still alive shortly after the run ended.
func MustLeaveNothingRunning(t *testing.T, run *action.Run, pidFile string) {
	t.Helper()
	pgid := run.PID()
	if pgid == 0 {
		t.Fatal("the run has no process group")
	}
	raw, err := os.ReadFile(pidFile)
	child, perr := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || perr != nil {
		t.Fatalf("the action did not write its child's pid: %v %v", err, perr)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		members := groupMembers(pgid)
		if len(members) == 0 && !alive(child) {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range append(members, child) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("processes %v of group %d and child %d survived the run", members, pgid, child)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestARunPassesValuesAsArguments(t *testing.T) {
	r := MustRunner(t, action.Config{}, `
actions:
  - name: greet
    argv: [/bin/echo, "{greeting},", "{name}"]
    params:
      - {name: greeting, type: enum, values: [hello, goodbye]}
      - {name: name, default: world}
`)
	before := time.Now()
	st, out := MustRun(t, r, "run-1", "greet", map[string]string{"greeting": "hello"})
	if out != "hello, world\n" {
		t.Fatalf("output %q", out)
	}
	if st.ID != "run-1" || st.Action != "greet" || st.State != aramaki.RunSucceeded || st.ExitCode != 0 || st.Error != "" ||
		st.Started.Before(before) || st.Ended.Before(st.Started) || st.Output != len(out) || st.Dropped != 0 {
		t.Fatalf("status %+v", st)
	}
	if _, out := MustRun(t, r, "run-2", "greet", map[string]string{"greeting": "goodbye", "name": "Dave"}); out != "goodbye, Dave\n" {
		t.Fatalf("output %q", out)
	}
}

func TestAValueWithShellCharactersIsOneLiteralArgument(t *testing.T) {
	r := MustRunner(t, action.Config{}, `
actions:
  - name: say
    argv: [/usr/bin/printf, "[%s]", "{text}"]
    params:
      - {name: text, pattern: '[a-z ;$()|&>*/]+'}
`)
	for _, text := range []string{"a;b$(id)", "a b", "x | cat > /tmp/pwned &", "*"} {
		st, out := MustRun(t, r, "say "+text, "say", map[string]string{"text": text})
		if st.State != aramaki.RunSucceeded || out != "["+text+"]" {
			t.Errorf("%q printed %q (%s)", text, out, st.State)
		}
	}
}

func TestValuesThatDoNotFitAreRefusedBeforeAnythingStarts(t *testing.T) {
	r := MustRunner(t, action.Config{}, `
actions:
  - name: purge
    argv: [/bin/echo, "{path}", "{max_age}", "{scope}"]
    params:
      - {name: path}
      - {name: max_age, type: int, min: 1, max: 3600, default: 60}
      - {name: scope, type: enum, values: [local, all], default: local}
`)
	cases := []struct {
		values  map[string]string
		message string
	}{
		{map[string]string{"path": "-rf"}, `value "-rf" of path does not match its pattern ` + aramaki.DefaultParamPattern},
		{map[string]string{"path": "--help"}, `value "--help" of path does not match its pattern ` + aramaki.DefaultParamPattern},
		{map[string]string{"path": "a b"}, `value "a b" of path does not match its pattern ` + aramaki.DefaultParamPattern},
		{map[string]string{"path": "/var\n/tmp"}, "value of path is too long or holds control characters"},
		{map[string]string{"path": "/var/cache"}, `value "/var/cache" of path does not match its pattern ` + aramaki.DefaultParamPattern},
		{map[string]string{"path": "cache/../../etc"}, `value "cache/../../etc" of path climbs out of its directory (..)`},
		{map[string]string{}, "action purge needs a value for path"},
		{map[string]string{"path": "var/cache", "max_age": "0"}, "value 0 of max_age is out of range"},
		{map[string]string{"path": "var/cache", "max_age": "1e3"}, `value "1e3" of max_age is not a whole number`},
		{map[string]string{"path": "var/cache", "scope": "everything"}, `value "everything" of scope is not one of local, all`},
		{map[string]string{"path": "var/cache", "force": "true"}, `action purge has no parameter "force"`},
	}
	for i, c := range cases {
		MustRefuse(t, r, fmt.Sprint("run-", i), "purge", c.values, aramaki.EINVALID, c.message)
	}
	if runs := r.Runs(); len(runs) != 0 {
		t.Fatalf("refused values started runs: %+v", runs)
	}
}

func TestAnActionTheHostDoesNotDeclareIsRefused(t *testing.T) {
	r := MustRunner(t, action.Config{}, "actions:\n  - {name: uptime, argv: [/usr/bin/uptime]}\n")
	MustRefuse(t, r, "run-1", "reboot", nil, aramaki.ENOTFOUND, "action reboot is not allowed on this host")
}

func TestARunReportsHowTheProgramEnded(t *testing.T) {
	r := MustRunner(t, action.Config{}, `
actions:
  - {name: ok, argv: [/bin/sh, -c, "echo fine"]}
  - {name: fails, argv: [/bin/sh, -c, "echo broken >&2; exit 3"]}
  - {name: crashes, argv: [/bin/sh, -c, "kill -9 $$"]}
  - {name: missing, argv: [/nonexistent/flush-cache]}
`)
	cases := []struct {
		action   string
		state    aramaki.RunState
		exitCode int
		error    string
		output   string
	}{
		{"ok", aramaki.RunSucceeded, 0, "", "fine\n"},
		{"fails", aramaki.RunFailed, 3, "exited with code 3", "broken\n"},
		{"crashes", aramaki.RunFailed, -1, "killed by signal 9 (killed)", ""},
		{"missing", aramaki.RunFailed, -1, "cannot start /nonexistent/flush-cache: no such file or directory", ""},
	}
	for _, c := range cases {
		st, out := MustRun(t, r, c.action, c.action, nil)
		if st.State != c.state || st.ExitCode != c.exitCode || st.Error != c.error || out != c.output {
			t.Errorf("%s: got %s, exit %d, %q, output %q; want %s, exit %d, %q, output %q",
				c.action, st.State, st.ExitCode, st.Error, out, c.state, c.exitCode, c.error, c.output)
		}
		if st.Started.IsZero() || st.Ended.Before(st.Started) {
			t.Errorf("%s: started %s, ended %s", c.action, st.Started, st.Ended)
		}
	}
}

func TestARunStreamsItsOutputAsItComesInOrder(t *testing.T) {
	r := MustRunner(t, action.Config{}, `
actions:
  - name: deploy
    argv: [/bin/sh, -c, "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; sleep 100"]
`)
	rec := newRecorder()
	run, err := r.Start(context.Background(), "run-1", "deploy", nil, rec.out)
	if err != nil {
		t.Fatal(err)
	}
	want := []action.Chunk{{Seq: 0, Stream: "stdout", Data: []byte("one\n")}, {Seq: 1, Stream: "stderr", Data: []byte("two\n")}, {Seq: 2, Stream: "stdout", Data: []byte("three\n")}}
	for _, w := range want {
		select {
		case c := <-rec.seen:
			if c.Seq != w.Seq || c.Stream != w.Stream || string(c.Data) != string(w.Data) {
				t.Fatalf("got chunk %d %s %q, want %d %s %q", c.Seq, c.Stream, c.Data, w.Seq, w.Stream, w.Data)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no chunk %q while the run goes on", w.Data)
		}
		if st := run.Status(); st.State != aramaki.RunRunning || !st.Ended.IsZero() || st.ExitCode != -1 {
			t.Fatalf("status while it runs: %+v", st)
		}
	}
	// What the run keeps is what it streamed, to send again after a
	// reconnect.
	kept := run.Output()
	if len(kept) != len(want) {
		t.Fatalf("kept %d chunks, want %d", len(kept), len(want))
	}
	for i := range kept {
		if kept[i].Seq != want[i].Seq || kept[i].Stream != want[i].Stream || string(kept[i].Data) != string(want[i].Data) {
			t.Fatalf("kept %+v, want %+v", kept[i], want[i])
		}
	}
	run.Cancel()
	if st := run.Wait(); st.State != aramaki.RunCancelled || st.Output != len("one\ntwo\nthree\n") {
		t.Fatalf("status %+v", st)
	}
}

func TestATimeoutKillsEverythingTheActionStarted(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	r := MustRunner(t, action.Config{}, `
actions:
  - name: hang
    argv: [/bin/sh, -c, "sleep 100 & echo $! > `+pidFile+`; echo started; sleep 100"]
    timeout: 300ms
`)
	start := time.Now()
	run, err := r.Start(context.Background(), "run-1", "hang", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := run.Wait()
	if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
		t.Fatalf("a run with a 300ms timeout took %s", took)
	}
	if st.State != aramaki.RunTimedOut || st.Error != "timed out after 300ms" || st.Output != len("started\n") {
		t.Fatalf("status %+v", st)
	}
	MustLeaveNothingRunning(t, run, pidFile)
}

func TestAnActionThatIgnoresSIGTERMIsKilledAfterTheGrace(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	r := MustRunner(t, action.Config{KillGrace: 500 * time.Millisecond}, `
actions:
  - name: stubborn
    argv: [/bin/sh, -c, "trap '' TERM; sleep 100 & echo $! > `+pidFile+`; sleep 100"]
    timeout: 200ms
`)
	start := time.Now()
	run, err := r.Start(context.Background(), "run-1", "stubborn", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := run.Wait()
	if took := time.Since(start); took < 700*time.Millisecond || took > 4*time.Second {
		t.Fatalf("took %s, want the timeout and the grace (700ms)", took)
	}
	if st.State != aramaki.RunTimedOut || st.ExitCode != -1 {
		t.Fatalf("status %+v", st)
	}
	MustLeaveNothingRunning(t, run, pidFile)
}

func TestCancelStopsARunAndEverythingItStarted(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	r := MustRunner(t, action.Config{}, `
actions:
  - name: reindex
    argv: [/bin/sh, -c, "sleep 100 & echo $! > `+pidFile+`; echo started; wait"]
`)
	rec := newRecorder()
	run, err := r.Start(context.Background(), "run-1", "reindex", nil, rec.out)
	if err != nil {
		t.Fatal(err)
	}
	<-rec.seen // it has started its child
	if err := r.Cancel("run-1"); err != nil {
		t.Fatal(err)
	}
	st := run.Wait()
	if st.State != aramaki.RunCancelled || st.Error != "cancelled" || st.Ended.Sub(st.Started) > 3*time.Second {
		t.Fatalf("status %+v", st)
	}
	MustLeaveNothingRunning(t, run, pidFile)

	run.Cancel() // cancelling again does nothing
	if again := run.Status(); again != st {
		t.Fatalf("a second cancel changed the status to %+v", again)
	}
	if err := r.Cancel("run-1"); aramaki.ErrorCode(err) != aramaki.ENOTFOUND || aramaki.ErrorMessage(err) != "run run-1 is not running on this host" {
		t.Fatalf("cancel of an ended run: %v", err)
	}
}

func TestRunsAreCancelledWhenTheAgentStops(t *testing.T) {
	r := MustRunner(t, action.Config{}, "actions:\n  - {name: wait, argv: [/bin/sleep, '100']}\n")
	ctx, stop := context.WithCancel(context.Background())
	run, err := r.Start(ctx, "run-1", "wait", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	r.Wait()
	if st := run.Status(); st.State != aramaki.RunCancelled || st.Error != "cancelled: the agent is stopping" {
		t.Fatalf("status %+v", st)
	}
	if _, err := r.Start(ctx, "run-2", "wait", nil, nil); aramaki.ErrorMessage(err) != "the agent is stopping" {
		t.Fatalf("a stopping agent started a run: %v", err)
	}
}

func TestARunIDRunsOnce(t *testing.T) {
	r := MustRunner(t, action.Config{}, "actions:\n  - {name: wait, argv: [/bin/sleep, '0.3']}\n")
	run, err := r.Start(context.Background(), "run-1", "wait", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	MustRefuse(t, r, "run-1", "wait", nil, aramaki.ECONFLICT, "run run-1 is running already")
	run.Wait()
	// A request repeated after a reconnect must not run the action twice.
	MustRefuse(t, r, "run-1", "wait", nil, aramaki.ECONFLICT, "run run-1 has run already: a run id is run once")
	if got, ok := r.Lookup("run-1"); !ok || got != run {
		t.Fatal("the ended run is not found by its id")
	}
}

func TestAHostRunsALimitedNumberOfActionsAtOnce(t *testing.T) {
	r := MustRunner(t, action.Config{MaxRuns: 2}, "actions:\n  - {name: wait, argv: [/bin/sleep, '100']}\n")
	first, err := r.Start(context.Background(), "run-1", "wait", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(context.Background(), "run-2", "wait", nil, nil); err != nil {
		t.Fatal(err)
	}
	MustRefuse(t, r, "run-3", "wait", nil, aramaki.EUNAVAILABLE,
		"2 actions are running on this host already, the most it runs at once: try again when one has ended")
	first.Cancel()
	first.Wait()
	if _, err := r.Start(context.Background(), "run-3", "wait", nil, nil); err != nil {
		t.Fatalf("no room after a run ended: %v", err)
	}
}

func TestRunsListsRunsInProgressAndJustEnded(t *testing.T) {
	r := MustRunner(t, action.Config{}, "actions:\n  - {name: wait, argv: [/bin/sleep, '100']}\n  - {name: ok, argv: [/bin/true]}\n")
	MustRun(t, r, "run-1", "ok", nil)
	if _, err := r.Start(context.Background(), "run-2", "wait", nil, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range r.Runs() {
		got = append(got, s.ID+" "+s.Action+" "+string(s.State))
	}
	if !slices.Equal(got, []string{"run-1 ok succeeded", "run-2 wait running"}) {
		t.Fatalf("runs %q", got)
	}
}

func TestARunKeepsABoundedAmountOfOutput(t *testing.T) {
	r := MustRunner(t, action.Config{}, `
actions:
  - name: chatty
    argv: [/bin/sh, -c, "head -c 200000 /dev/zero | tr '\\0' x; echo done >&2"]
`)
	rec := newRecorder()
	run, err := r.Start(context.Background(), "run-1", "chatty", nil, rec.out)
	if err != nil {
		t.Fatal(err)
	}
	st := run.Wait()
	out := rec.text()
	if st.State != aramaki.RunSucceeded || st.Output != aramaki.MaxRunOutput || st.Dropped != 200000+5-aramaki.MaxRunOutput {
		t.Fatalf("status %+v", st)
	}
	if len(out) != aramaki.MaxRunOutput || strings.Trim(out, "x") != "" {
		t.Fatalf("streamed %d bytes, want the first %d", len(out), aramaki.MaxRunOutput)
	}
	for _, c := range rec.chunks {
		if len(c.Data) > action.MaxChunk || len(c.Data) == 0 {
			t.Fatalf("chunk %d has %d bytes", c.Seq, len(c.Data))
		}
	}
}

func TestARunStreamsValidUTF8(t *testing.T) {
	r := MustRunner(t, action.Config{}, `
actions:
  - name: bytes
    argv: [/bin/sh, -c, "printf 'OK \\377\\376 caf'; printf '\\303'; sleep 0.2; printf '\\251'"]
`)
	rec := newRecorder()
	run, err := r.Start(context.Background(), "run-1", "bytes", nil, rec.out)
	if err != nil {
		t.Fatal(err)
	}
	run.Wait()
	// A character cut between two writes arrives whole.
	if out := rec.text(); out != "OK \uFFFD caf\u00e9" {
		t.Fatalf("streamed %q", out)
	}
	for _, c := range rec.chunks {
		if !utf8.Valid(c.Data) {
			t.Fatalf("chunk %d is not valid UTF-8: %q", c.Seq, c.Data)
		}
	}
}

func TestAnActionRunsInAMinimalEnvironment(t *testing.T) {
	t.Setenv("SECRET_TOKEN", "do-not-leak")
	r := MustRunner(t, action.Config{}, `
actions:
  - {name: env, argv: [/usr/bin/env]}
  - {name: pwd, argv: [/bin/pwd]}
  - {name: stdin, argv: [/bin/cat]}
`)
	if _, out := MustRun(t, r, "run-1", "env", nil); out != "PATH=/usr/sbin:/usr/bin:/sbin:/bin\nLANG=C.UTF-8\n" {
		t.Errorf("environment %q", out)
	}
	if _, out := MustRun(t, r, "run-2", "pwd", nil); out != "/\n" {
		t.Errorf("working directory %q", out)
	}
	if st, out := MustRun(t, r, "run-3", "stdin", nil); st.State != aramaki.RunSucceeded || out != "" {
		t.Errorf("reading stdin: %s %q", st.State, out)
	}
}

func TestAnActionRunsAsItsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can run an action as another user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	groups, err := nobody.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	r := MustRunner(t, action.Config{}, `
actions:
  - {name: uid, argv: [/usr/bin/id, -u], user: nobody}
  - {name: groups, argv: [/usr/bin/id, -G], user: nobody}
  - {name: ghost, argv: [/usr/bin/id, -u], user: no-such-user}
`)
	if _, out := MustRun(t, r, "run-1", "uid", nil); out != nobody.Uid+"\n" {
		t.Errorf("ran as uid %q, want nobody's %s", out, nobody.Uid)
	}
	_, out := MustRun(t, r, "run-2", "groups", nil)
	got := strings.Fields(out)
	slices.Sort(got)
	slices.Sort(groups)
	if !slices.Equal(slices.Compact(got), slices.Compact(groups)) {
		t.Errorf("ran with groups %q, want nobody's %q", got, groups)
	}
	MustRefuse(t, r, "run-3", "ghost", nil, aramaki.EINVALID, "action ghost runs as user no-such-user, who does not exist on this host")
}

func TestSetReplacesTheActionsButNotTheRunsInProgress(t *testing.T) {
	r := MustRunner(t, action.Config{}, "actions:\n  - {name: wait, argv: [/bin/sleep, '0.3']}\n")
	run, err := r.Start(context.Background(), "run-1", "wait", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	specs, _ := action.Parse("new.yaml", []byte("actions:\n  - {name: uptime, argv: [/usr/bin/uptime]}\n"))
	if err := r.Set(specs); err != nil {
		t.Fatal(err)
	}
	MustRefuse(t, r, "run-2", "wait", nil, aramaki.ENOTFOUND, "action wait is not allowed on this host")
	if st := run.Wait(); st.State != aramaki.RunSucceeded {
		t.Fatalf("the run in progress ended %+v", st)
	}
	if got := names(r.Actions()); !slices.Equal(got, []string{"uptime"}) {
		t.Fatalf("actions %q", got)
	}
	bad := append(specs, aramaki.ActionSpec{Name: "shell", Argv: []string{"sh", "-c", "id"}})
	if err := r.Set(bad); err == nil {
		t.Fatal("Set took an invalid action")
	}
	if got := names(r.Actions()); !slices.Equal(got, []string{"uptime"}) {
		t.Fatalf("a refused Set changed the actions to %q", got)
	}
}

func TestAnAgentThatIsNotRootDoesNotRunActionsOfOtherUsers(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("the agent is root here; TestAnAgentThatIsNotRootRefusesActionsOfOtherUsers asks the rule directly")
	}
	r := MustRunner(t, action.Config{}, "actions:\n  - {name: uid, argv: [/usr/bin/id, -u], user: root}\n")
	MustRefuse(t, r, "run-1", "uid", nil, aramaki.EFORBIDDEN,
		fmt.Sprintf("action uid runs as user root, and the agent (uid %d) is not root and cannot become another user", os.Geteuid()))
}
