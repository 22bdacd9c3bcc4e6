package store_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

// result makes a result of a check run by an agent that started at the
// given time, took a second and arrived a second later.
func result(agent string, seq uint64, system, check string, status aramaki.Status, started time.Time) aramaki.CheckResult {
	return aramaki.CheckResult{
		Agent: agent, Seq: seq, System: system, Check: check, Status: status,
		Output:   fmt.Sprintf("%s - result %d", status, seq),
		Metrics:  []aramaki.Metric{{Name: "time", Value: 0.012, Unit: "s"}},
		Started:  started,
		Duration: time.Second,
		Received: started.Add(2 * time.Second),
	}
}

func batch(agent string, results ...aramaki.CheckResult) aramaki.ResultBatch {
	return aramaki.ResultBatch{Agent: agent, Results: results}
}

// changeEvent makes the event of a status change as the service does.
func changeEvent(c aramaki.StatusChange) (aramaki.Event, error) {
	summary := fmt.Sprintf("%s/%s %s → %s on %s", c.System, c.Check, c.From, c.To, c.Agent)
	if c.First {
		summary = fmt.Sprintf("%s/%s is %s on %s", c.System, c.Check, c.To, c.Agent)
	}
	return aramaki.NewEvent(c.At, aramaki.KindStatusChanged, "agent:"+c.Agent, []string{c.System}, summary, aramaki.StatusChangedData{StatusChange: c})
}

// MustRecord stores the batches and returns the agents' last sequences.
func MustRecord(t testing.TB, s *store.Store, batches ...aramaki.ResultBatch) []uint64 {
	t.Helper()
	seqs, err := s.RecordResults(context.Background(), batches, changeEvent)
	if err != nil {
		t.Fatalf("record results: %v", err)
	}
	return seqs
}

// MustChanges returns the history of a check from since on.
func MustChanges(t *testing.T, s *store.Store, system, check string, since time.Time) []aramaki.StatusChange {
	t.Helper()
	changes, err := s.StatusChanges(context.Background(), system, check, since)
	if err != nil {
		t.Fatalf("status changes: %v", err)
	}
	return changes
}

// MustStates returns the check states of the systems.
func MustStates(t *testing.T, s *store.Store, systems ...string) []aramaki.CheckState {
	t.Helper()
	states, err := s.CheckStates(context.Background(), systems)
	if err != nil {
		t.Fatalf("check states: %v", err)
	}
	return states
}

// MustResults returns the newest results of a check.
func MustResults(t *testing.T, s *store.Store, system, check string) []aramaki.CheckResult {
	t.Helper()
	results, err := s.Results(context.Background(), system, check, 1000)
	if err != nil {
		t.Fatalf("results: %v", err)
	}
	return results
}

// statusEvents returns the status change events on the timeline, oldest
// first.
func statusEvents(t *testing.T, s *store.Store) []aramaki.Event {
	t.Helper()
	page := MustTimeline(t, s, aramaki.TimelineQuery{Kinds: []aramaki.EventKind{aramaki.KindStatusChanged}, Limit: aramaki.MaxTimelineLimit})
	events := page.Events
	for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
		events[i], events[j] = events[j], events[i]
	}
	return events
}

func seqsOf(results []aramaki.CheckResult) []uint64 {
	var seqs []uint64
	for _, r := range results {
		seqs = append(seqs, r.Seq)
	}
	return seqs
}

func TestRecordResults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ok, warn, crit := aramaki.StatusOK, aramaki.StatusWarning, aramaki.StatusCritical
	at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

	t.Run("a result reads back as it was sent", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			r := result("a1", 1, "web", "http", warn, at(1))
			r.Metrics = []aramaki.Metric{{Name: "time", Value: 0.5, Unit: "s", Labels: map[string]string{"url": "/"}}, {Name: "size", Value: 1234}}
			r.Duration = 1234567 * time.Nanosecond
			bare := result("a1", 2, "web", "ping", ok, at(1))
			bare.Metrics, bare.Output = nil, ""
			MustRecord(t, s, batch("a1", r, bare))
			if got := MustResults(t, s, "web", "http"); len(got) != 1 || !reflect.DeepEqual(got[0], r) {
				t.Errorf("results = %+v\nwant %+v", got, r)
			}
			if got := MustResults(t, s, "web", "ping"); len(got) != 1 || !reflect.DeepEqual(got[0], bare) {
				t.Errorf("results = %+v\nwant %+v", got, bare)
			}
			want := aramaki.CheckState{System: "web", Check: "http", Agent: "a1", Status: warn, Output: r.Output, Metrics: r.Metrics, Since: at(1), Count: 1, LastResult: r.Received}
			if got := MustStates(t, s); len(got) != 2 || !reflect.DeepEqual(got[0], want) || got[1].Metrics != nil {
				t.Errorf("states = %+v\nwant %+v and ping without metrics", got, want)
			}
			// The state counts results in a row with its status.
			MustRecord(t, s, batch("a1", result("a1", 3, "web", "http", warn, at(2))), batch("a1", result("a1", 4, "web", "http", warn, at(3))))
			if got := MustStates(t, s, "web"); got[0].Count != 3 {
				t.Errorf("after 3 warnings in a row the count is %d", got[0].Count)
			}
			MustRecord(t, s, batch("a1", result("a1", 5, "web", "http", crit, at(4))))
			if got := MustStates(t, s, "web"); got[0].Count != 1 || got[0].Status != crit {
				t.Errorf("after turning critical the count is %d", got[0].Count)
			}
		})
	})

	t.Run("results are stored once however often they are sent", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			first := batch("a1", result("a1", 1, "web", "http", ok, at(1)), result("a1", 2, "web", "http", ok, at(2)), result("a1", 3, "web", "http", crit, at(3)))
			if seqs := MustRecord(t, s, first); seqs[0] != 3 {
				t.Errorf("last seq = %v, want 3", seqs)
			}
			if seqs := MustRecord(t, s, first); seqs[0] != 3 {
				t.Errorf("last seq after resending = %v, want 3", seqs)
			}
			overlapping := batch("a1", result("a1", 2, "web", "http", ok, at(2)), result("a1", 3, "web", "http", crit, at(3)), result("a1", 4, "web", "http", crit, at(4)))
			if seqs := MustRecord(t, s, overlapping, overlapping); seqs[0] != 4 || seqs[1] != 4 {
				t.Errorf("last seqs after overlapping batches = %v, want [4 4]", seqs)
			}
			if got := seqsOf(MustResults(t, s, "web", "http")); !reflect.DeepEqual(got, []uint64{4, 3, 2, 1}) {
				t.Errorf("stored results %v, want 4 3 2 1", got)
			}
			if changes := MustChanges(t, s, "web", "http", time.Time{}); len(changes) != 2 {
				t.Errorf("%d changes, want 2 (first, ok → critical): %+v", len(changes), changes)
			}
			if events := statusEvents(t, s); len(events) != 2 {
				t.Errorf("%d status events, want 2", len(events))
			}
			if a, _ := s.Agent(ctx, "a1"); a.LastSeq != 4 {
				t.Errorf("agent's last seq = %d, want 4", a.LastSeq)
			}
		})
	})

	t.Run("the agent's last seq survives reopening the store", func(t *testing.T) {
		forEachDSN(t, func(t *testing.T, dsn string) {
			s, err := store.Open(ctx, dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			MustEnroll(t, s, "a1", "web")
			MustRecord(t, s, batch("a1", result("a1", 7, "web", "http", ok, at(1))))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = MustOpen(t, dsn)
			if a, err := s.Agent(ctx, "a1"); err != nil || a.LastSeq != 7 {
				t.Errorf("after reopening, last seq = %d, %v; want 7", a.LastSeq, err)
			}
			if seqs := MustRecord(t, s, batch("a1", result("a1", 7, "web", "http", ok, at(1)))); seqs[0] != 7 {
				t.Errorf("last seq = %v", seqs)
			}
			if n := len(MustResults(t, s, "web", "http")); n != 1 {
				t.Errorf("%d results after resending to the reopened store, want 1", n)
			}
		})
	})

	t.Run("the first result of a check is a change with First", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			r := result("a1", 1, "web", "disk", crit, at(1))
			MustRecord(t, s, batch("a1", r))
			want := aramaki.StatusChange{System: "web", Check: "disk", Agent: "a1", From: crit, To: crit, At: at(1), Output: r.Output, First: true}
			changes := MustChanges(t, s, "web", "disk", time.Time{})
			if len(changes) != 1 || changes[0] != want {
				t.Errorf("changes = %+v\nwant %+v", changes, want)
			}
			events := statusEvents(t, s)
			if len(events) != 1 || events[0].Time != at(1) || !reflect.DeepEqual(events[0].Systems, []string{"web"}) {
				t.Errorf("events = %+v", events)
			}
		})
	})

	t.Run("a status change is recorded once with its event; an unchanged status records nothing", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustRecord(t, s, batch("a1", result("a1", 1, "web", "http", ok, at(1))))
			MustRecord(t, s, batch("a1", result("a1", 2, "web", "http", ok, at(2))))
			if n := len(MustChanges(t, s, "web", "http", time.Time{})); n != 1 {
				t.Fatalf("%d changes after an unchanged status, want the first only", n)
			}
			if n := len(statusEvents(t, s)); n != 1 {
				t.Fatalf("%d events after an unchanged status, want 1", n)
			}

			r := result("a1", 3, "web", "http", warn, at(3))
			MustRecord(t, s, batch("a1", r))
			MustRecord(t, s, batch("a1", r)) // sent again
			MustRecord(t, s, batch("a1", result("a1", 4, "web", "http", warn, at(4))))
			changes := MustChanges(t, s, "web", "http", time.Time{})
			want := aramaki.StatusChange{System: "web", Check: "http", Agent: "a1", From: ok, To: warn, At: at(3), Output: r.Output}
			if len(changes) != 2 || changes[1] != want {
				t.Fatalf("changes = %+v\nwant the first and %+v", changes, want)
			}
			events := statusEvents(t, s)
			if len(events) != 2 {
				t.Fatalf("%d events, want 2", len(events))
			}
			wantEvent, _ := changeEvent(want)
			if got, err := s.Event(ctx, wantEvent.ID); err != nil || got.Summary != "web/http ok → warning on a1" {
				t.Errorf("change event = %+v, %v", got, err)
			}
			states := MustStates(t, s, "web")
			if len(states) != 1 || states[0].Status != warn || !states[0].Since.Equal(at(3)) || !states[0].LastResult.Equal(at(4).Add(2*time.Second)) {
				t.Errorf("state = %+v; want warning since %v, last result %v", states, at(3), at(4).Add(2*time.Second))
			}
		})
	})

	t.Run("several results of one check in one call are applied in order", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustRecord(t, s,
				batch("a1", result("a1", 1, "web", "http", ok, at(1)), result("a1", 2, "web", "http", crit, at(2))),
				batch("a1", result("a1", 3, "web", "http", crit, at(3)), result("a1", 4, "web", "http", ok, at(4)), result("a1", 5, "web", "http", warn, at(5))),
			)
			var got []string
			for _, c := range MustChanges(t, s, "web", "http", time.Time{}) {
				got = append(got, fmt.Sprintf("%s→%s@%d first=%v", c.From, c.To, int(c.At.Sub(t0).Minutes()), c.First))
			}
			want := []string{"ok→ok@1 first=true", "ok→critical@2 first=false", "critical→ok@4 first=false", "ok→warning@5 first=false"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("changes = %q\nwant %q", got, want)
			}
			if n := len(statusEvents(t, s)); n != 4 {
				t.Errorf("%d events, want 4", n)
			}
			states := MustStates(t, s)
			if len(states) != 1 || states[0].Status != warn || !states[0].Since.Equal(at(5)) || states[0].Output != "warning - result 5" {
				t.Errorf("states = %+v; want the last result's", states)
			}
		})
	})

	t.Run("results of several agents in one call", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustEnroll(t, s, "a2", "web", "db")
			MustRecord(t, s, batch("a2", result("a2", 10, "db", "pg", ok, at(1))))
			seqs := MustRecord(t, s,
				batch("a1", result("a1", 1, "web", "http", ok, at(2)), result("a1", 2, "web", "disk", crit, at(2))),
				batch("a2", result("a2", 10, "db", "pg", ok, at(1)), result("a2", 11, "web", "http", warn, at(2)), result("a2", 12, "db", "pg", crit, at(2))),
			)
			if !reflect.DeepEqual(seqs, []uint64{2, 12}) {
				t.Errorf("last seqs = %v, want [2 12]", seqs)
			}
			var got []string
			for _, st := range MustStates(t, s) {
				got = append(got, fmt.Sprintf("%s/%s/%s=%s", st.System, st.Check, st.Agent, st.Status))
			}
			want := []string{"db/pg/a2=critical", "web/disk/a1=critical", "web/http/a1=ok", "web/http/a2=warning"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("states = %q\nwant %q", got, want)
			}
			got = nil
			for _, st := range MustStates(t, s, "db") {
				got = append(got, st.System+"/"+st.Check)
			}
			if !reflect.DeepEqual(got, []string{"db/pg"}) {
				t.Errorf("states of db = %q", got)
			}
			if states := MustStates(t, s, []string{}...); len(states) != 0 {
				t.Errorf("states of no systems = %+v", states)
			}
			if results := MustResults(t, s, "web", "http"); len(results) != 2 {
				t.Errorf("web/http has %d results, want one of each agent", len(results))
			}
			// The first results of each check are changes, and pg moved to
			// critical: 5.
			if n := len(statusEvents(t, s)); n != 5 {
				t.Errorf("%d status events, want 5", n)
			}
		})
	})

	t.Run("a batch of an unknown or revoked agent is skipped", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustEnroll(t, s, "a2", "web")
			if err := s.RevokeAgent(ctx, "a2", MustAudit(t, "revoked a2")); err != nil {
				t.Fatal(err)
			}
			seqs := MustRecord(t, s,
				batch("ghost", result("ghost", 5, "web", "http", ok, at(1))),
				batch("a2", result("a2", 5, "web", "http", ok, at(1))),
				batch("a1", result("a1", 5, "web", "http", ok, at(1))),
			)
			if !reflect.DeepEqual(seqs, []uint64{0, 0, 5}) {
				t.Errorf("last seqs = %v, want [0 0 5]", seqs)
			}
			if results := MustResults(t, s, "web", "http"); len(results) != 1 || results[0].Agent != "a1" {
				t.Errorf("results = %+v, want a1's only", results)
			}
			if a, _ := s.Agent(ctx, "a2"); a.LastSeq != 0 {
				t.Errorf("the revoked agent's last seq moved to %d", a.LastSeq)
			}
		})
	})

	t.Run("a result in the batch of another agent is refused", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustEnroll(t, s, "a2", "web")
			_, err := s.RecordResults(ctx, []aramaki.ResultBatch{batch("a1", result("a2", 1, "web", "http", ok, at(1)))}, changeEvent)
			wantCode(t, err, aramaki.EINVALID)
		})
	})

	t.Run("the server's own results have no sequence", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustRecord(t, s, batch("a1", result("a1", 3, "web", "http", ok, at(1))))
			keepalive := func(st aramaki.Status, minute int) aramaki.ResultBatch {
				return batch("a1", result("a1", 0, "web", aramaki.KeepaliveCheck, st, at(minute)))
			}
			if seqs := MustRecord(t, s, keepalive(ok, 2)); seqs[0] != 3 {
				t.Errorf("last seq = %v, want 3", seqs)
			}
			MustRecord(t, s, keepalive(crit, 3), keepalive(crit, 4))
			if n := len(MustResults(t, s, "web", aramaki.KeepaliveCheck)); n != 3 {
				t.Errorf("%d keepalive results, want 3", n)
			}
			if n := len(MustChanges(t, s, "web", aramaki.KeepaliveCheck, time.Time{})); n != 2 {
				t.Errorf("%d keepalive changes, want 2", n)
			}
		})
	})

	t.Run("an empty batch tells the last seq", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustRecord(t, s, batch("a1", result("a1", 9, "web", "http", ok, at(1))))
			if seqs := MustRecord(t, s, batch("a1")); seqs[0] != 9 {
				t.Errorf("last seq = %v, want 9", seqs)
			}
		})
	})

	t.Run("a change may have no event", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			// As the service does: no event for a first result that is OK.
			quiet := func(c aramaki.StatusChange) (aramaki.Event, error) {
				if c.First && !c.To.Problem() {
					return aramaki.Event{}, nil
				}
				return changeEvent(c)
			}
			if _, err := s.RecordResults(ctx, []aramaki.ResultBatch{batch("a1", result("a1", 1, "web", "http", ok, at(1)), result("a1", 2, "web", "http", crit, at(2)))}, quiet); err != nil {
				t.Fatal(err)
			}
			if n := len(MustChanges(t, s, "web", "http", time.Time{})); n != 2 {
				t.Errorf("%d changes, want 2", n)
			}
			if n := len(statusEvents(t, s)); n != 1 {
				t.Errorf("%d events, want 1", n)
			}
		})
	})

	t.Run("a failing change event stores nothing", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			_, err := s.RecordResults(ctx, []aramaki.ResultBatch{batch("a1", result("a1", 1, "web", "http", ok, at(1)))},
				func(aramaki.StatusChange) (aramaki.Event, error) {
					return aramaki.Event{}, aramaki.Errorf(aramaki.EINTERNAL, "no")
				})
			wantCode(t, err, aramaki.EINTERNAL)
			if a, _ := s.Agent(ctx, "a1"); a.LastSeq != 0 {
				t.Errorf("last seq = %d after a failed call", a.LastSeq)
			}
			if n := len(MustResults(t, s, "web", "http")); n != 0 {
				t.Errorf("%d results after a failed call", n)
			}
			// The check numbered in the failed call is numbered again.
			MustRecord(t, s, batch("a1", result("a1", 1, "web", "http", ok, at(1))))
			if n := len(MustResults(t, s, "web", "http")); n != 1 {
				t.Errorf("%d results after storing one", n)
			}
			if states := MustStates(t, s, "web"); len(states) != 1 || states[0].Check != "http" {
				t.Errorf("states = %+v", states)
			}
		})
	})

	t.Run("two replicas storing the same results store them once", func(t *testing.T) {
		forEachDSN(t, func(t *testing.T, dsn string) {
			replicas := []*store.Store{MustOpen(t, dsn), MustOpen(t, dsn)}
			agents := []string{"a1", "a2", "a3"}
			for _, id := range agents {
				MustEnroll(t, replicas[0], id, "web")
			}
			// Each replica receives every agent's results, in overlapping
			// batches of new checks, at the same time.
			const n = 60
			var wg sync.WaitGroup
			errs := make(chan error, len(replicas))
			for _, s := range replicas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for seq := 1; seq <= n; seq += 5 {
						var batches []aramaki.ResultBatch
						for _, id := range agents {
							var rs []aramaki.CheckResult
							for k := seq; k < seq+10 && k <= n; k++ {
								rs = append(rs, result(id, uint64(k), "web", fmt.Sprintf("check%d", k%7), aramaki.Status(k%3), at(k)))
							}
							batches = append(batches, batch(id, rs...))
						}
						if _, err := s.RecordResults(ctx, batches, changeEvent); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			stored := map[string]int{}
			for c := range 7 {
				for _, r := range MustResults(t, replicas[1], "web", fmt.Sprintf("check%d", c)) {
					stored[fmt.Sprintf("%s/%d", r.Agent, r.Seq)]++
				}
			}
			if len(stored) != n*len(agents) {
				t.Errorf("%d distinct results stored, want %d", len(stored), n*len(agents))
			}
			for k, times := range stored {
				if times != 1 {
					t.Errorf("result %s stored %d times", k, times)
				}
			}
			for _, id := range agents {
				if a, _ := replicas[1].Agent(ctx, id); a.LastSeq != n {
					t.Errorf("last seq of %s = %d, want %d", id, a.LastSeq, n)
				}
			}
			if states := MustStates(t, replicas[1]); len(states) != 7*len(agents) {
				t.Errorf("%d states, want %d", len(states), 7*len(agents))
			}
			// Each transition is in the history once.
			for c := range 7 {
				want := 0
				prev := -1
				for k := 1; k <= n; k++ {
					if k%7 == c {
						if k%3 != prev {
							want++
						}
						prev = k % 3
					}
				}
				want *= len(agents)
				if got := len(MustChanges(t, replicas[0], "web", fmt.Sprintf("check%d", c), time.Time{})); got != want {
					t.Errorf("check%d has %d changes, want %d", c, got, want)
				}
			}
		})
	})

	t.Run("a gap moves last seq and is on the timeline", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustRecord(t, s, batch("a1", result("a1", 1, "web", "http", ok, at(1))))
			ev := MustEvent(t, at(5), aramaki.KindResultsLost, []string{"web"}, "agent a1 lost results 5 to 100")
			b := batch("a1", result("a1", 2, "web", "http", ok, at(2)), result("a1", 101, "web", "http", ok, at(6)))
			b.Gap = &aramaki.GapReport{From: 5, To: 100, Event: ev}
			if seqs := MustRecord(t, s, b); seqs[0] != 101 {
				t.Errorf("last seq = %v, want 101", seqs)
			}
			if got := seqsOf(MustResults(t, s, "web", "http")); !reflect.DeepEqual(got, []uint64{101, 2, 1}) {
				t.Errorf("results %v, want 101 2 1", got)
			}
			if _, err := s.Event(ctx, ev.ID); err != nil {
				t.Errorf("gap event: %v", err)
			}

			// A gap past everything stored moves last seq to its end.
			ev2 := MustEvent(t, at(7), aramaki.KindResultsLost, []string{"web"}, "agent a1 lost results 102 to 200")
			b = batch("a1")
			b.Gap = &aramaki.GapReport{From: 102, To: 200, Event: ev2}
			if seqs := MustRecord(t, s, b); seqs[0] != 200 {
				t.Errorf("last seq = %v, want 200", seqs)
			}
			MustRecord(t, s, b) // reported again: one event
			page := MustTimeline(t, s, aramaki.TimelineQuery{Kinds: []aramaki.EventKind{aramaki.KindResultsLost}})
			if len(page.Events) != 2 {
				t.Errorf("%d gap events, want 2", len(page.Events))
			}
		})
	})

	t.Run("invalid results are refused", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			for name, r := range map[string]aramaki.CheckResult{
				"no system":  result("a1", 1, "", "http", ok, at(1)),
				"no check":   result("a1", 1, "web", "", ok, at(1)),
				"bad status": result("a1", 1, "web", "http", aramaki.Status(7), at(1)),
				"huge seq":   result("a1", 1<<63, "web", "http", ok, at(1)),
			} {
				_, err := s.RecordResults(ctx, []aramaki.ResultBatch{batch("a1", r)}, changeEvent)
				if aramaki.ErrorCode(err) != aramaki.EINVALID {
					t.Errorf("%s: error %v, want invalid", name, err)
				}
			}
		})
	})
}

func TestCheckHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ok, warn, crit := aramaki.StatusOK, aramaki.StatusWarning, aramaki.StatusCritical
	at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

	t.Run("StatusChanges includes the change in force at since", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustEnroll(t, s, "a2", "web")
			MustRecord(t, s, batch("a1",
				result("a1", 1, "web", "http", ok, at(1)),
				result("a1", 2, "web", "http", warn, at(2)),
				result("a1", 3, "web", "http", crit, at(3)),
				result("a1", 4, "web", "http", ok, at(10)),
			), batch("a2",
				result("a2", 1, "web", "http", crit, at(1)),
			))
			var got []string
			for _, c := range MustChanges(t, s, "web", "http", at(5)) {
				got = append(got, fmt.Sprintf("%s %s@%d", c.Agent, c.To, int(c.At.Sub(t0).Minutes())))
			}
			want := []string{"a2 critical@1", "a1 critical@3", "a1 ok@10"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("changes since minute 5 = %q\nwant %q", got, want)
			}
			if n := len(MustChanges(t, s, "web", "http", at(3))); n != 4 {
				t.Errorf("since minute 3: %d changes, want 4 (a2's first, a1's at 2, 3 and 10)", n)
			}
			if n := len(MustChanges(t, s, "web", "other", at(3))); n != 0 {
				t.Errorf("another check has %d changes", n)
			}
		})
	})

	t.Run("results are newest first", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			var rs []aramaki.CheckResult
			for i := range 5 {
				rs = append(rs, result("a1", uint64(i+1), "web", "http", ok, at(i)))
			}
			MustRecord(t, s, batch("a1", rs...))
			got, err := s.Results(ctx, "web", "http", 3)
			if err != nil || !reflect.DeepEqual(seqsOf(got), []uint64{5, 4, 3}) {
				t.Errorf("newest 3 results = %v, %v", seqsOf(got), err)
			}
		})
	})

	t.Run("states of checks no longer declared are deleted but keepalive stays", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web", "db", "old")
			MustRecord(t, s, batch("a1",
				result("a1", 1, "web", "http", ok, at(1)),
				result("a1", 2, "web", "disk", ok, at(1)),
				result("a1", 3, "db", "pg", ok, at(1)),
				result("a1", 4, "old", "ftp", ok, at(1)),
				result("a1", 0, "web", aramaki.KeepaliveCheck, ok, at(1)),
				result("a1", 0, "old", aramaki.KeepaliveCheck, ok, at(1)),
			))
			if err := s.DeleteCheckStates(ctx, map[string][]string{"web": {"http"}, "db": {"pg"}}); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, st := range MustStates(t, s) {
				got = append(got, st.System+"/"+st.Check)
			}
			want := []string{"db/pg", "old/keepalive", "web/http", "web/keepalive"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("states = %q\nwant %q", got, want)
			}
			// The history stays; a check that comes back starts afresh.
			if n := len(MustChanges(t, s, "web", "disk", time.Time{})); n != 1 {
				t.Errorf("%d changes of the forgotten check, want 1", n)
			}
			MustRecord(t, s, batch("a1", result("a1", 5, "web", "disk", ok, at(2))))
			changes := MustChanges(t, s, "web", "disk", time.Time{})
			if len(changes) != 2 || !changes[1].First {
				t.Errorf("changes = %+v; want a new first", changes)
			}
		})
	})

	t.Run("each day of a check is summed up for its strip", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			day := func(d, h int) time.Time { return aramaki.DayOf(t0).AddDate(0, 0, d).Add(time.Duration(h) * time.Hour) }
			// Day 0: first OK, critical for an hour; day 1 nothing; day 2
			// warning from midnight (critical ended on the stroke of it
			// does not count), in two batches; another check on day 2.
			MustRecord(t, s, batch("a1",
				result("a1", 1, "web", "http", ok, day(0, 1)),
				result("a1", 2, "web", "http", crit, day(0, 2)),
				result("a1", 3, "web", "http", ok, day(0, 3)),
				result("a1", 4, "web", "http", crit, day(0, 23)),
				result("a1", 5, "web", "http", warn, day(2, 0)),
			))
			MustRecord(t, s, batch("a1",
				result("a1", 6, "web", "http", ok, day(2, 5)),
				result("a1", 7, "web", "disk", warn, day(2, 6)),
			))
			describe := func(days []aramaki.CheckDay) []string {
				var got []string
				for _, d := range days {
					got = append(got, fmt.Sprintf("%s %s +%d: worst %s, last %s, %d changes",
						d.Check, d.Agent, int(d.Day.Sub(aramaki.DayOf(t0)).Hours()/24), d.Worst, d.Last, d.Changes))
				}
				slices.Sort(got)
				return got
			}
			days, err := s.CheckDays(ctx, "web", day(1, 12))
			if err != nil {
				t.Fatal(err)
			}
			want := []string{
				"disk a1 +2: worst warning, last warning, 0 changes",
				"http a1 +0: worst critical, last critical, 3 changes",
				"http a1 +2: worst warning, last ok, 2 changes",
			}
			if got := describe(days); !reflect.DeepEqual(got, want) {
				t.Errorf("days since day 1 = %q\nwant %q", got, want)
			}
			// The migration that brought the summaries sums up the history
			// kept before it the same way.
			sqlText, err := s.Migration("0003_check_days.sql")
			if err != nil {
				t.Fatal(err)
			}
			_, backfill, _ := strings.Cut(sqlText, ");\n")
			if _, err := s.DB().ExecContext(ctx, "DELETE FROM check_days"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.DB().ExecContext(ctx, backfill); err != nil {
				t.Fatal(err)
			}
			again, err := s.CheckDays(ctx, "web", day(1, 12))
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(again); !reflect.DeepEqual(got, want) {
				t.Errorf("days summed up by the migration = %q\nwant %q", got, want)
			}
			// Pruning keeps the newest summary before the cut.
			if err := s.Prune(ctx, day(3, 0), day(2, 1)); err != nil {
				t.Fatal(err)
			}
			days, err = s.CheckDays(ctx, "web", day(5, 0))
			if err != nil {
				t.Fatal(err)
			}
			want = []string{
				"disk a1 +2: worst warning, last warning, 0 changes",
				"http a1 +2: worst warning, last ok, 2 changes",
			}
			if got := describe(days); !reflect.DeepEqual(got, want) {
				t.Errorf("days after pruning = %q\nwant %q", got, want)
			}
		})
	})

	t.Run("prune keeps the last change of each check", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustRecord(t, s, batch("a1",
				result("a1", 1, "web", "http", ok, at(1)),
				result("a1", 2, "web", "http", crit, at(2)),
				result("a1", 3, "web", "http", ok, at(3)),
				result("a1", 4, "web", "http", warn, at(20)),
				result("a1", 5, "web", "disk", ok, at(1)),
				result("a1", 6, "web", "disk", crit, at(2)),
			))
			// Results arrive two seconds after they start.
			if err := s.Prune(ctx, at(3), at(10)); err != nil {
				t.Fatal(err)
			}
			if got := seqsOf(MustResults(t, s, "web", "http")); !reflect.DeepEqual(got, []uint64{4, 3}) {
				t.Errorf("results of http after pruning %v, want 4 3", got)
			}
			var got []string
			for _, check := range []string{"http", "disk"} {
				for _, c := range MustChanges(t, s, "web", check, time.Time{}) {
					got = append(got, fmt.Sprintf("%s %s@%d", check, c.To, int(c.At.Sub(t0).Minutes())))
				}
			}
			want := []string{"http ok@3", "http warning@20", "disk critical@2"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("changes after pruning = %q\nwant %q", got, want)
			}
			if n := len(MustStates(t, s)); n != 2 {
				t.Errorf("%d states after pruning, want 2", n)
			}
		})
	})
}
