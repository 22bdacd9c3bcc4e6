package main

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

// The server trades memory for CPU unless the operator's environment
// says otherwise, and refuses a memory limit it cannot mean.
func TestTheServerTunesItsGarbageCollectorUnlessTheEnvironmentSays(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	tuneGC(512)
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GC percent %d, want %d", got, gcPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != 512<<20 {
		t.Errorf("memory limit %d, want 512 MiB", got)
	}

	// The operator's GOGC and GOMEMLIMIT win.
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOGC", "50")
	t.Setenv("GOMEMLIMIT", "100MiB")
	tuneGC(512)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent %d under GOGC=50 from the environment: changed", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit %d under GOMEMLIMIT from the environment: changed", got)
	}

	cfg := Config{DataDir: "d", Listen: "127.0.0.1:0", ConfigRepo: "r", PollInterval: 30e9, KeepaliveTimeout: 120e9, ResultsRetention: 48 * 3600e9,
		HistoryRetention: 30 * 24 * 3600e9, NotifyAttempts: 3, Name: "hoster", MemoryLimitMiB: -1}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
		t.Errorf("a negative memory limit: %v", err)
	}
	cfg.MemoryLimitMiB = 0
	if err := cfg.Validate(); err != nil {
		t.Errorf("no memory limit: %v", err)
	}
}
