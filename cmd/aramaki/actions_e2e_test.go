package main_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki/pki"
)

// MustAPI calls the server's JSON API as the admin and decodes the answer.
func (s *server) MustAPI(method, path string, body, out any) int {
	s.t.Helper()
	pem, err := os.ReadFile(filepath.Join(s.data, "tls", pki.CACertFile))
	if err != nil {
		s.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	token, err := os.ReadFile(filepath.Join(s.data, "admin.token"))
	if err != nil {
		s.t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

type runView struct {
	ID          string
	State       string
	Reason      string
	RequestedBy string     `json:"requested_by"`
	Started     *time.Time `json:"started"`
	Ended       *time.Time `json:"ended"`
	Targets     []struct {
		Name     string
		State    string
		ExitCode *int `json:"exit_code"`
		Output   string
		Error    string
	}
}

// The host allows one action, echoing a word; the server asks for it by
// name with a value; the value arrives as one argument, the run ends with
// the host's output and is on the timeline with its reason.
func TestAnActionRunsOnTheRealAgentWithItsOutputAndReason(t *testing.T) {
	t.Parallel()
	actions := t.TempDir()
	if err := os.WriteFile(filepath.Join(actions, "demo.yaml"), []byte(`actions:
  - name: say
    description: Print a word
    argv: [/usr/bin/printf, "said %s\n", "{word}"]
    params:
      - {name: word, type: string, pattern: "[a-z;$() ]{1,40}"}
    timeout: 10s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"host.yaml": `id: host
title: A host with an action
actions:
  - {name: say, rule: "Say only nice things."}
`}))
	MustEnrollAgentWith(t, srv, []string{"--actions", actions}, "host")

	// The host says what it allows once it is connected.
	var run runView
	Eventually(t, 20*time.Second, "the agent's actions", func() bool {
		return srv.MustAPI("POST", "/api/v1/systems/host/actions/say/runs", map[string]any{
			"reason": "testing the pipeline", "params": map[string]string{"word": "a; $(reboot)"}}, &run) == http.StatusCreated
	})
	Eventually(t, 20*time.Second, "the run to finish", func() bool {
		srv.MustAPI("GET", "/api/v1/runs/"+run.ID, nil, &run)
		return run.State != "running"
	})
	if run.State != "succeeded" || len(run.Targets) != 1 || run.Targets[0].Output != "said a; $(reboot)\n" || run.Targets[0].ExitCode == nil || *run.Targets[0].ExitCode != 0 {
		t.Fatalf("run %+v", run)
	}
	var page struct {
		Events []struct {
			Kind    string
			Summary string
		}
	}
	srv.MustAPI("GET", "/api/v1/timeline?system=host&kind=run.requested,run.started,run.finished", nil, &page)
	var got []string
	for _, e := range page.Events {
		got = append(got, e.Kind)
	}
	if strings.Join(got, " ") != "run.finished run.started run.requested" || !strings.Contains(page.Events[2].Summary, "testing the pipeline") {
		t.Errorf("the run on the timeline: %q %+v", got, page.Events)
	}
	// A value outside the host's pattern is refused before anything runs.
	if code := srv.MustAPI("POST", "/api/v1/systems/host/actions/say/runs", map[string]any{
		"reason": "x", "params": map[string]string{"word": "UPPER"}}, nil); code != http.StatusBadRequest {
		t.Errorf("a value outside the pattern: %d", code)
	}
}

// A run outlives a crash of the server: the host finishes it meanwhile and
// says so when the server is back. An agent killed mid-run restarts
// without it: the run fails, saying why, instead of running forever.
func TestARunSurvivesKill9OfTheServerAndALostOneFailsSayingWhy(t *testing.T) {
	t.Parallel()
	actions := t.TempDir()
	if err := os.WriteFile(filepath.Join(actions, "slow.yaml"), []byte(`actions:
  - name: slow
    argv: [/bin/sleep, "{seconds}"]
    params:
      - {name: seconds, type: int, min: 1, max: 30}
    timeout: 1m
`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"host.yaml": "id: host\ntitle: Host\nactions:\n  - {name: slow}\n"}))
	agent := MustEnrollAgentWith(t, srv, []string{"--actions", actions}, "host")
	start := func(seconds string) runView {
		t.Helper()
		var run runView
		Eventually(t, 20*time.Second, "a run to be taken", func() bool {
			return srv.MustAPI("POST", "/api/v1/systems/host/actions/slow/runs", map[string]any{
				"reason": "crash test", "params": map[string]string{"seconds": seconds}}, &run) == http.StatusCreated
		})
		Eventually(t, 20*time.Second, "the host to start it", func() bool {
			srv.MustAPI("GET", "/api/v1/runs/"+run.ID, nil, &run)
			return len(run.Targets) == 1 && run.Targets[0].State == "running"
		})
		return run
	}
	wait := func(run runView) runView {
		t.Helper()
		Eventually(t, 60*time.Second, "the run to end", func() bool {
			srv.MustAPI("GET", "/api/v1/runs/"+run.ID, nil, &run)
			return run.State != "running"
		})
		return run
	}

	run := start("3")
	srv.Kill9()
	time.Sleep(4 * time.Second) // the host finishes while the server is down
	srv.MustRestart()
	if run = wait(run); run.State != "succeeded" || run.Targets[0].ExitCode == nil || *run.Targets[0].ExitCode != 0 {
		t.Fatalf("the run across the server's crash: %+v", run)
	}

	run = start("20")
	agent.Kill9()
	agent.MustStart()
	Eventually(t, 30*time.Second, "the restarted agent to say it lost the run", func() bool {
		srv.MustAPI("GET", "/api/v1/runs/"+run.ID, nil, &run)
		return run.State == "failed" && strings.Contains(run.Targets[0].Error, "does not know this run")
	})
}
