// Package varnishtest runs a real varnishd on loopback for tests: Debian's
// Varnish, started in the foreground as a child of the test with a private
// working directory, its HTTP port and its admin CLI on 127.0.0.1, in front
// of a backend the test serves, and driven with the real varnishadm.
package varnishtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A Varnish is a running varnishd, stopped and removed when its test ends.
type Varnish struct {
	Addr       string // http://127.0.0.1:PORT, the cache
	AdminAddr  string // 127.0.0.1:PORT, the admin CLI: varnishadm -T AdminAddr -S SecretFile
	SecretFile string // the admin CLI's shared secret
	WorkDir    string // varnishd -n: varnishadm -n WorkDir finds the CLI and secret by itself
	Backend    string // 127.0.0.1:PORT, where misses go

	log *output
}

// MustStart starts varnishd caching backend ("127.0.0.1:PORT", an HTTP
// server of the test's) and waits until it answers HTTP. Without Varnish
// installed the test is skipped, or fails under CI (CI=true), which must test
// the real thing.
func MustStart(t testing.TB, backend string) *Varnish {
	t.Helper()
	varnishd := mustFind(t, "varnishd", "/usr/sbin/varnishd")
	root := t.TempDir()
	v := &Varnish{
		SecretFile: filepath.Join(root, "secret"),
		WorkDir:    filepath.Join(root, "varnish"),
		Backend:    backend,
	}
	if err := os.WriteFile(v.SecretFile, []byte(rand.Text()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The ports are picked free and then given to varnishd, so that the
	// test knows them; should another process take one in between,
	// varnishd says so and exits, and the next try picks others.
	for try := 1; ; try++ {
		httpAddr, adminAddr := mustFreePort(t), mustFreePort(t)
		err := v.start(t, varnishd, httpAddr, adminAddr)
		if err == nil {
			return v
		}
		if !errors.Is(err, errPortTaken) || try == 5 {
			t.Fatalf("start varnishd: %v\n%s", err, v.log)
		}
	}
}

var errPortTaken = errors.New("a port was taken")

func (v *Varnish) start(t testing.TB, varnishd, httpAddr, adminAddr string) error {
	v.log = &output{}
	cmd := exec.Command(varnishd,
		// In the foreground: a child of the test, which stops it.
		"-F",
		// No privilege separation: every process runs as the test's user,
		// root or not, and the working directory stays the test's.
		"-j", "none",
		// A working directory of its own, not the system instance's.
		"-n", v.WorkDir,
		// HTTP and the admin CLI on loopback only, the CLI behind a secret
		// of this instance's.
		"-a", httpAddr,
		"-T", adminAddr,
		"-S", v.SecretFile,
		// The builtin VCL in front of the test's backend.
		"-b", v.Backend,
		// A small cache in memory and a small shared memory log (80 MB by
		// default, for each instance).
		"-s", "malloc,16m",
		"-l", "4m",
		// Not two pools of a hundred idle threads each.
		"-p", "thread_pools=1", "-p", "thread_pool_min=10",
	)
	cmd.Stdout, cmd.Stderr = v.log, v.log
	// Its own process group, so that the manager's child (the cache
	// process) goes too when the manager must be killed; and a SIGTERM
	// should the test binary die without cleaning up (a test timeout).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}

	deadline := time.Now().Add(60 * time.Second) // it compiles its VCL with cc first
	for !answersHTTP(httpAddr) {
		select {
		case <-exited:
			if out := v.log.String(); strings.Contains(out, "Address already in use") || strings.Contains(out, "could not be listened on") {
				return errPortTaken
			}
			return fmt.Errorf("varnishd exited: %v", cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return errors.New("varnishd does not answer HTTP")
		}
	}
	v.Addr, v.AdminAddr = "http://"+httpAddr, adminAddr
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("varnishd said:\n%s", v.log)
		}
	})
	return nil
}

// answersHTTP says whether varnishd answers an HTTP request by itself: the
// builtin VCL refuses an HTTP/1.1 request without a Host header with a 400,
// so the probe never reaches the backend nor counts as a miss.
func answersHTTP(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")); err != nil {
		return false
	}
	status, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(status, "HTTP/1.1 ")
}

// MustAdmin runs the real varnishadm against v's admin CLI (-T and -S) with
// args as the command, e.g. "ban", "req.url", "~", ".", and returns its
// answer; a command Varnish refuses fails the test.
func (v *Varnish) MustAdmin(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, MustVarnishadm(t), append([]string{"-T", v.AdminAddr, "-S", v.SecretFile, "-t", "10"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("varnishadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// MustBans lists the bans Varnish still holds, newest first, as their specs
// ("req.url ~ ."). Varnish drops a ban once every object it could match has
// been checked against it, but always keeps the newest.
func (v *Varnish) MustBans(t testing.TB) []string {
	t.Helper()
	out := v.MustAdmin(t, "ban.list", "-j")
	// [version, [command...], time, {ban}, {ban}...]
	var list []json.RawMessage
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) < 3 {
		t.Fatalf("ban.list -j: %v\n%s", err, out)
	}
	var specs []string
	for _, raw := range list[3:] {
		var ban struct{ Spec string }
		if err := json.Unmarshal(raw, &ban); err != nil {
			t.Fatalf("ban.list -j: %v\n%s", err, out)
		}
		specs = append(specs, ban.Spec)
	}
	return specs
}

// MustVarnishadm returns the path of the real varnishadm (/usr/bin/varnishadm
// on Debian), for tests that run it themselves or have Aramaki run it.
func MustVarnishadm(t testing.TB) string {
	t.Helper()
	return mustFind(t, "varnishadm", "/usr/bin/varnishadm")
}

// mustFind finds a Varnish program on PATH or where Debian puts it (varnishd
// is in /usr/sbin, often not on a user's PATH).
func mustFind(t testing.TB, name, debianPath string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	if _, err := os.Stat(debianPath); err == nil {
		return debianPath
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing; CI must test a real Varnish (apt-get install varnish)", name)
	}
	t.Skipf("%s is not installed (apt-get install varnish)", name)
	return ""
}

func mustFreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// output is what varnishd writes, kept for when a test fails.
type output struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
