package main_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aramaki/aramaki/pki"
)

// binary and agentBinary are the real aramaki and aramaki-agent binaries,
// built once for these tests.
var binary, agentBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aramaki-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "aramaki")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build aramaki: %v\n%s", err, out)
		os.Exit(1)
	}
	agentBinary = filepath.Join(dir, "aramaki-agent")
	if out, err := exec.Command("go", "build", "-o", agentBinary, "../aramaki-agent").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build aramaki-agent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running aramaki server.
type process struct {
	cmd    *exec.Cmd
	url    string
	output strings.Builder // everything it printed on stdout until ready
}

var urlLine = regexp.MustCompile(`(?:running|serving) at (https?://[^\s,]+)`)

// MustQuickstart runs "aramaki quickstart" on a free port and waits until
// it has printed its banner.
func MustQuickstart(t *testing.T, data string) *process {
	t.Helper()
	return MustStart(t, data, "Stop with Ctrl-C", "quickstart", "--data", data, "--listen", "127.0.0.1:0", "--log-level", "warn")
}

// MustStart runs the aramaki binary with args and waits until it prints a
// line starting with last; data is where client settings must not leak to.
func MustStart(t *testing.T, data, last string, args ...string) *process {
	t.Helper()
	p, err := start(t, data, last, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// start is MustStart for use outside the test's goroutine.
func start(t *testing.T, data, last string, args ...string) (*process, error) {
	p := &process{cmd: exec.Command(binary, args...)}
	p.cmd.Stderr = os.Stderr
	p.cmd.Env = append(os.Environ(), "ARAMAKI_CLIENT_CONFIG="+filepath.Join(data, "no-client-config.json"))
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		// This goroutine owns p.output until it signals ready.
		sc := bufio.NewScanner(stdout)
		url := ""
		for sc.Scan() {
			line := sc.Text()
			p.output.WriteString(line + "\n")
			if m := urlLine.FindStringSubmatch(line); m != nil {
				url = m[1]
			}
			if strings.HasPrefix(line, last) {
				ready <- url
				break
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case p.url = <-ready:
		return p, nil
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("aramaki %v did not get ready in time", args)
	}
}

// MustCLI runs a client command against the quickstart server in data.
func MustCLI(t *testing.T, p *process, data string, args ...string) string {
	t.Helper()
	out, err := cli(p, data, args...)
	if err != nil {
		t.Fatalf("aramaki %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func cli(p *process, data string, args ...string) (string, error) {
	return cliWith(p.url, filepath.Join(data, "admin.token"), filepath.Join(data, "tls", pki.CACertFile), args...)
}

// cliWith runs a client command against a server URL with a token file and CA.
func cliWith(url, tokenFile, ca string, args ...string) (string, error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "ARAMAKI_SERVER="+url, "ARAMAKI_TOKEN_FILE="+tokenFile, "ARAMAKI_CA="+ca,
		"ARAMAKI_CLIENT_CONFIG="+filepath.Join(filepath.Dir(tokenFile), "no-client-config.json"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustGit(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Olga Operator", "-c", "user.email=olga@example.com"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestQuickstartRunsAServerTheCLIcanUse(t *testing.T) {
	data := t.TempDir()
	p := MustQuickstart(t, data)

	banner := p.output.String()
	for _, want := range []string{"password: ", "admin.token", "ca.crt", "config-repo"} {
		if !strings.Contains(banner, want) {
			t.Errorf("quickstart banner lacks %q:\n%s", want, banner)
		}
	}
	if !strings.HasPrefix(p.url, "https://") {
		t.Fatalf("quickstart serves %s, want TLS by default", p.url)
	}
	st, err := os.Stat(filepath.Join(data, "admin.token"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v %v, want mode 0600", st, err)
	}
	// Only the server's user may read the database and keys.
	for _, name := range []string{"aramaki.db", "tls/ca.key", "tls/server.key"} {
		if st, err := os.Stat(filepath.Join(data, name)); err != nil || st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v, want no access for group and others", name, err)
		}
	}
	if st, err := os.Stat(data); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v, want 0700", st.Mode().Perm())
	}

	// Only clients that trust the server's own CA get through.
	pool, err := pki.CertPool(filepath.Join(data, "tls", pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := trusting.Get(p.url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := http.Get(p.url + "/healthz"); err == nil {
		t.Fatal("a client that does not trust the CA got through")
	}

	// The sample models a hosting company: shared storage under several projects.
	var systems struct {
		Systems []struct {
			ID     string   `json:"id"`
			UsedBy []string `json:"used_by"`
		} `json:"systems"`
	}
	if err := json.Unmarshal([]byte(MustCLI(t, p, data, "systems", "-o", "json")), &systems); err != nil {
		t.Fatal(err)
	}
	usedBy := map[string][]string{}
	for _, s := range systems.Systems {
		usedBy[s.ID] = s.UsedBy
	}
	if _, ok := usedBy["webshop"]; !ok {
		t.Fatalf("the sample has no webshop: %v", usedBy)
	}
	if len(usedBy["storage"]) < 2 {
		t.Errorf("storage is used by %v, want several systems", usedBy["storage"])
	}

	// The quickstart's own agent is connected and checks the shared infrastructure.
	if out := MustCLI(t, p, data, "agent", "list"); !strings.Contains(out, "connected") || !strings.Contains(out, "compute") {
		t.Errorf("agent list does not show the local agent connected:\n%s", out)
	}
	if out := MustCLI(t, p, data, "status", "compute"); !strings.Contains(out, "keepalive") {
		t.Errorf("status of compute does not show the local agent's keepalive:\n%s", out)
	}

	out := MustCLI(t, p, data, "system", "show", "webshop")
	if !strings.Contains(out, "Rules:") || !strings.Contains(out, "Subsystems:") {
		t.Errorf("system show webshop:\n%s", out)
	}
	MustCLI(t, p, data, "note", "webshop", "Flushed", "the", "Varnish", "cache", "at", "3am")
	if out := MustCLI(t, p, data, "timeline", "--system", "webshop"); !strings.Contains(out, "Flushed the Varnish cache at 3am") || !strings.Contains(out, "config.applied") {
		t.Errorf("timeline of webshop lacks the note or the config commit:\n%s", out)
	}
	if out := MustCLI(t, p, data, "config", "status"); !strings.Contains(out, "In force:") {
		t.Errorf("config status:\n%s", out)
	}

	// A broken commit is refused with file:line, and the last good config stays.
	repo := filepath.Join(data, "config-repo")
	broken := filepath.Join(repo, "systems", "broken.yaml")
	if err := os.WriteFile(broken, []byte("id: broken\ntitle: Broken\nsubsystems: [does-not-exist]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustGit(t, repo, "add", "-A")
	mustGit(t, repo, "commit", "-q", "-m", "Add a broken system")
	out, err = cli(p, data, "config", "reload")
	if err == nil || !strings.Contains(out, "broken.yaml:3:") {
		t.Fatalf("config reload of a broken commit should fail with file:line:\n%s", out)
	}
	if out := MustCLI(t, p, data, "config", "status"); !strings.Contains(out, "Refused:") || !strings.Contains(out, "Add a broken system") {
		t.Errorf("config status does not show the refused commit:\n%s", out)
	}
	if out := MustCLI(t, p, data, "timeline", "--kind", "config.rejected"); !strings.Contains(out, "refused") {
		t.Errorf("the refusal is not on the timeline:\n%s", out)
	}
}

func TestQuickstartAgainReusesTheDataEvenAfterKill9(t *testing.T) {
	data := t.TempDir()
	p := MustQuickstart(t, data)
	MustCLI(t, p, data, "note", "storage", "Disk", "replaced", "in", "rack", "4")
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()

	again := MustQuickstart(t, data)
	if strings.Contains(again.output.String(), "password: ") {
		t.Errorf("a second start printed a new admin password:\n%s", again.output.String())
	}
	out := MustCLI(t, again, data, "timeline", "--system", "storage", "--kind", "note", "-o", "json")
	if !strings.Contains(out, "Disk replaced in rack 4") {
		t.Fatalf("the acknowledged note did not survive kill -9:\n%s", out)
	}
	// The token from the first start still works, and nothing was applied twice.
	applied := MustCLI(t, again, data, "timeline", "--kind", "config.applied", "-o", "json")
	var page struct{ Events []json.RawMessage }
	if err := json.Unmarshal([]byte(applied), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 {
		t.Errorf("the sample commit was applied %d times, want once", len(page.Events))
	}
}

func TestServerRefusesABadConfiguration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"server", "--listen", "127.0.0.1:0", "--config-repo", "/nonexistent"},
		{"server", "--data", t.TempDir(), "--listen", "127.0.0.1:0"},
		{"server", "--data", t.TempDir(), "--listen", "nonsense", "--config-repo", "x"},
		{"server", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--config-repo", "x", "--tls-cert", "a.crt"},
	} {
		out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
		if err == nil {
			t.Errorf("aramaki %v started; want a clear error", args)
		} else if !strings.Contains(string(out), "aramaki server:") {
			t.Errorf("aramaki %v: unclear error:\n%s", args, out)
		}
	}
}
