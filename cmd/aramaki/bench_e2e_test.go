package main_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// The load tool for runs, small: simulated agents allow the quickstart's
// action, every run asked for starts on its one agent and succeeds, and
// the figures of docs/performance.md are reported.
func TestBenchRunsRunsEveryRunOnItsAgentAndReports(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	p := MustStart(t, data, "Stop with Ctrl-C", "quickstart", "--data", data, "--listen", "127.0.0.1:0", "--log-level", "warn", "--no-agent")

	out := MustCLI(t, p, data, "bench", "runs", "--system", "compute", "--agents", "5", "--runs", "10", "--concurrency", "5",
		"--run-time", "300ms", "--before", "1s", "--rate", "500", "--state", filepath.Join(data, "bench"), "-o", "json")
	var r map[string]any
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	for k, want := range map[string]float64{"connected": 5, "runs_asked": 10, "runs_started": 10, "runs_succeeded": 10,
		"runs_failed": 0, "runs_unfinished": 0, "requests_failed": 0, "errors": 0, "start_duplicates": 0} {
		if r[k] != want {
			t.Errorf("%s = %v, want %v", k, r[k], want)
		}
	}
	for _, k := range []string{"request_to_start_p50_ms", "request_to_start_p99_ms", "api_request_p99_ms", "all_finished_seconds",
		"finished_to_run_ack_p99_ms", "ingest_before_results_per_second", "ingest_during_results_per_second",
		"ingest_before_ack_p99_ms", "ingest_during_ack_p99_ms"} {
		if v, ok := r[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a figure", k, r[k])
		}
	}
	if v, _ := r["all_finished_seconds"].(float64); v < 0.3 {
		t.Errorf("every run finished after %vs, before a run took", v)
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}

	// Flags and the action are checked before anything is enrolled.
	if out, err := cli(p, data, "bench", "runs", "--system", "compute", "--agents", "5", "--run-time", "1h", "--state", filepath.Join(data, "bench")); err == nil || !strings.Contains(out, "--run-time 1h0m0s is longer than disk-usage may take") {
		t.Errorf("a run time past the action's timeout: %v\n%s", err, out)
	}
	if out, err := cli(p, data, "bench", "runs", "--system", "compute", "--action", "reboot", "--state", filepath.Join(data, "bench")); err == nil || !strings.Contains(out, "offers no action reboot") {
		t.Errorf("an action the system does not offer: %v\n%s", err, out)
	}
}
