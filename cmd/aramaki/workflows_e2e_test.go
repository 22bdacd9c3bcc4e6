package main_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type workflowRunView struct {
	ID    string
	State string
	Error string
	Step  int
	Steps []struct {
		Name    string
		State   string
		Error   string
		Outputs map[string]string
		Hosts   []struct {
			Agent string
			Run   string
			State string
		}
	}
}

// A rolling restart on real agents: a first step reads the release every
// host prints, the restart goes one host at a time, the last step uses
// what the first read. The server is killed with -9 in the middle of the
// restart and started again: the workflow carries on where it was, and
// every host restarted exactly once, one after the other.
func TestAWorkflowRollsAcrossRealAgentsOneAtATimeAndSurvivesKill9(t *testing.T) {
	t.Parallel()
	actions := t.TempDir()
	if err := os.WriteFile(filepath.Join(actions, "app.yaml"), []byte(`actions:
  - name: say
    argv: [/usr/bin/printf, "release=%s\n", "{word}"]
    params:
      - {name: word, type: string, pattern: "[a-z0-9.-]{1,40}"}
    timeout: 10s
  - name: restart-app
    argv: [/bin/sleep, "{seconds}"]
    params:
      - {name: seconds, type: int, min: 1, max: 10}
    timeout: 30s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"project.yaml": `id: project
title: A customer project
subsystems: [app]
workflows:
  - name: rolling-restart
    inputs:
      - {name: seconds, default: "2"}
    steps:
      - name: release
        system: app
        action: say
        params: {word: "2.4"}
        outputs: {release: 'release=(\S+)'}
      - name: restart
        system: app
        action: restart-app
        params: {seconds: "${inputs.seconds}"}
        concurrency: 1
        stop_after: 1
      - name: announce
        system: app
        action: say
        params: {word: "${steps.release.release}-done"}
---
id: app
title: The project's app hosts
actions: [{name: say}, {name: restart-app}]
`}))
	MustEnrollAgentWith(t, srv, []string{"--actions", actions}, "app")
	MustEnrollAgentWith(t, srv, []string{"--actions", actions}, "app")

	// The dry run shows both hosts in every step once they said what they
	// allow; nothing runs.
	var plan struct {
		Steps []struct {
			Name        string
			Params      map[string]string
			Concurrency int
			Hosts       []struct{ Agent string }
		}
	}
	Eventually(t, 20*time.Second, "both hosts in the dry run", func() bool {
		code := srv.MustAPI("POST", "/api/v1/systems/project/workflows/rolling-restart/runs", map[string]any{"dry_run": true}, &plan)
		return code == http.StatusOK && len(plan.Steps) == 3 && len(plan.Steps[1].Hosts) == 2
	})
	if plan.Steps[1].Concurrency != 1 || plan.Steps[1].Params["seconds"] != "2" || plan.Steps[2].Params["word"] != "${steps.release.release}-done" {
		t.Fatalf("plan %+v", plan)
	}

	var w workflowRunView
	if code := srv.MustAPI("POST", "/api/v1/systems/project/workflows/rolling-restart/runs", map[string]any{"reason": "memory leak in 2.4"}, &w); code != http.StatusCreated {
		t.Fatalf("asking for the workflow: %d", code)
	}
	Eventually(t, 30*time.Second, "the first host to restart", func() bool {
		srv.MustAPI("GET", "/api/v1/workflow-runs/"+w.ID, nil, &w)
		return w.Step == 1 && w.Steps[1].Hosts[0].Run != ""
	})
	srv.Kill9()
	srv.MustRestart()
	Eventually(t, 60*time.Second, "the workflow to end", func() bool {
		srv.MustAPI("GET", "/api/v1/workflow-runs/"+w.ID, nil, &w)
		return w.State != "running"
	})
	if w.State != "succeeded" || w.Steps[0].Outputs["release"] != "2.4" {
		t.Fatalf("workflow run %+v", w)
	}

	// Every host ran each step once; the restarts one after the other.
	var runs struct{ Runs []runView }
	srv.MustAPI("GET", "/api/v1/runs?workflow_run="+w.ID+"&limit=100", nil, &runs)
	if len(runs.Runs) != 6 {
		t.Fatalf("%d runs, want 2 hosts × 3 steps", len(runs.Runs))
	}
	byID := map[string]runView{}
	for _, r := range runs.Runs {
		byID[r.ID] = r
		if r.State != "succeeded" || !strings.Contains(r.Reason, "memory leak in 2.4") {
			t.Errorf("run %+v", r)
		}
	}
	restart := w.Steps[1].Hosts
	first, second := byID[restart[0].Run], byID[restart[1].Run]
	if first.Ended == nil || second.Started == nil || second.Started.Before(*first.Ended) {
		t.Errorf("the restarts overlapped: %+v then %+v", first, second)
	}
	for _, h := range w.Steps[2].Hosts {
		if out := runOutput(srv, h.Run); out != "release=2.4-done\n" {
			t.Errorf("the last step printed %q", out)
		}
	}
}

// A restart that fails on the first host stops the workflow there: the
// second host is never touched, and the reason is on the workflow run.
func TestAWorkflowStopsAtTheFirstFailureOnRealAgents(t *testing.T) {
	t.Parallel()
	actions := t.TempDir()
	// The "restart" cannot finish in time on this host: timeout kills it.
	if err := os.WriteFile(filepath.Join(actions, "app.yaml"), []byte(`actions:
  - name: restart-app
    argv: [/usr/bin/timeout, "0.1", /bin/sleep, "{seconds}"]
    params:
      - {name: seconds, type: int, min: 1, max: 10}
    timeout: 30s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := MustStartServer(t, MustConfigRepo(t, map[string]string{"app.yaml": `id: app
title: App hosts
actions: [{name: restart-app}]
workflows:
  - name: rolling-restart
    steps:
      - {name: restart, action: restart-app, params: {seconds: "2"}, concurrency: 1, stop_after: 1}
`}))
	MustEnrollAgentWith(t, srv, []string{"--actions", actions}, "app")
	MustEnrollAgentWith(t, srv, []string{"--actions", actions}, "app")
	var w workflowRunView
	Eventually(t, 20*time.Second, "both hosts to say what they allow", func() bool {
		var plan struct{ Steps []struct{ Hosts []struct{} } }
		return srv.MustAPI("POST", "/api/v1/systems/app/workflows/rolling-restart/runs", map[string]any{"dry_run": true}, &plan) == http.StatusOK &&
			len(plan.Steps[0].Hosts) == 2
	})
	if code := srv.MustAPI("POST", "/api/v1/systems/app/workflows/rolling-restart/runs", map[string]any{"reason": "testing the breaker"}, &w); code != http.StatusCreated {
		t.Fatalf("asking for the workflow: %d", code)
	}
	Eventually(t, 30*time.Second, "the workflow to end", func() bool {
		srv.MustAPI("GET", "/api/v1/workflow-runs/"+w.ID, nil, &w)
		return w.State != "running"
	})
	hosts := w.Steps[0].Hosts
	if w.State != "failed" || !strings.Contains(w.Error, "stopped after 1 of 2 hosts failed") ||
		hosts[0].State != "failed" || hosts[1].Run != "" || hosts[1].State != "cancelled" {
		t.Fatalf("workflow run %+v", w)
	}
}

func runOutput(srv *server, id string) string {
	var r runView
	srv.MustAPI("GET", "/api/v1/runs/"+id, nil, &r)
	if len(r.Targets) != 1 {
		return ""
	}
	return r.Targets[0].Output
}
