package main

import (
	"os"
	"runtime/debug"
)

// gcPercent and defaultMemoryLimitMiB are how the server's garbage
// collector trades memory for CPU: the heap may grow to five times what is
// live before a collection, instead of Go's twice (GOGC=100), up to the
// memory limit, near which the collector works as hard as it must. A busy
// server — a peer link catching up, a burst of check results — spends
// about a fifth less CPU (docs/performance.md, Federation).
const (
	gcPercent             = 400
	defaultMemoryLimitMiB = 2048
)

// tuneGC applies gcPercent and a memory limit of limitMiB (none when 0),
// unless GOGC or GOMEMLIMIT in the environment say otherwise: an operator's
// setting wins.
func tuneGC(limitMiB int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" && limitMiB > 0 {
		debug.SetMemoryLimit(int64(limitMiB) << 20)
	}
}
