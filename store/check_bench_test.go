package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

// The ingestion benchmark: 1,000 agents run 10 checks each; the service's
// writer groups their batches into calls of 2,000 results (200 agents × 10)
// and about 1% of results change their check's status. The target on
// SQLite is at least 50,000 results/s stored on a 2-core machine.

const (
	benchAgents       = 1000
	benchChecks       = 10
	benchAgentsInCall = 200
)

func BenchmarkRecordResults(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchRecord(b, MustOpen(b, MustSQLiteDSN(b)))
	})
	b.Run("postgres", func(b *testing.B) {
		benchRecord(b, MustOpen(b, MustPostgresDSN(b)))
	})
}

// benchSystem is the system of an agent: ten agents to a system.
func benchSystem(agent int) string { return fmt.Sprintf("sys%03d", agent/10) }

func benchRecord(b *testing.B, s *store.Store) {
	ctx := context.Background()
	for i := range benchAgents {
		MustEnroll(b, s, fmt.Sprintf("agent%04d", i), benchSystem(i))
	}
	var (
		rng    = rand.New(rand.NewPCG(1, 2))
		seqs   = make([]uint64, benchAgents)
		status = make([]aramaki.Status, benchAgents*benchChecks)
		now    = t0
		call   = 0
	)
	// nextCall makes the results of the next 200 agents, one per check.
	nextCall := func() []aramaki.ResultBatch {
		now = now.Add(time.Second)
		batches := make([]aramaki.ResultBatch, 0, benchAgentsInCall)
		first := call * benchAgentsInCall % benchAgents
		call++
		for a := first; a < first+benchAgentsInCall; a++ {
			id := fmt.Sprintf("agent%04d", a)
			results := make([]aramaki.CheckResult, benchChecks)
			for c := range benchChecks {
				k := a*benchChecks + c
				if rng.IntN(100) == 0 {
					status[k] = aramaki.StatusWarning - status[k] // OK ↔ WARNING
				}
				seqs[a]++
				results[c] = aramaki.CheckResult{
					Agent: id, Seq: seqs[a], System: benchSystem(a), Check: fmt.Sprintf("check%d", c),
					Status:   status[k],
					Output:   fmt.Sprintf("%s - load average: 0.%02d, 0.10, 0.05", status[k], rng.IntN(100)),
					Metrics:  []aramaki.Metric{{Name: "load1", Value: rng.Float64()}, {Name: "load5", Value: 0.1}},
					Started:  now.Add(-time.Second),
					Duration: 15 * time.Millisecond,
					Received: now,
				}
			}
			batches = append(batches, aramaki.ResultBatch{Agent: id, Results: results})
		}
		return batches
	}
	// Every check has its first result before the clock starts.
	for range benchAgents / benchAgentsInCall {
		MustRecord(b, s, nextCall()...)
	}

	var (
		stored  int
		elapsed time.Duration
	)
	for b.Loop() {
		batches := nextCall()
		start := time.Now()
		if _, err := s.RecordResults(ctx, batches, changeEvent); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		stored += benchAgentsInCall * benchChecks
	}
	b.ReportMetric(float64(stored)/elapsed.Seconds(), "results/s")
}
