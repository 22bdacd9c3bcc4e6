package store_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

func snapshot(hash string, systems ...aramaki.System) aramaki.ConfigSnapshot {
	return aramaki.ConfigSnapshot{
		Commit:  aramaki.Commit{Hash: hash, Author: "Alice <alice@example.com>", Message: "change " + hash, Time: t0},
		Systems: systems,
	}
}

func appliedEvent(t *testing.T, snap aramaki.ConfigSnapshot, at time.Time) aramaki.Event {
	t.Helper()
	ev, err := aramaki.NewEvent(at, aramaki.KindConfigApplied, "config", nil, "applied "+snap.Commit.Hash,
		aramaki.ConfigAppliedData{Commit: snap.Commit})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func rejectedEvent(t *testing.T, c aramaki.Commit, at time.Time) aramaki.Event {
	t.Helper()
	ev, err := aramaki.NewEvent(at, aramaki.KindConfigRejected, "config", nil, "rejected "+c.Hash,
		aramaki.ConfigRejectedData{Commit: c})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// MustApply applies a snapshot and fails unless it changed something.
func MustApply(t *testing.T, s *store.Store, snap aramaki.ConfigSnapshot, at time.Time) {
	t.Helper()
	changed, err := s.ApplyConfig(context.Background(), snap, appliedEvent(t, snap, at))
	if err != nil {
		t.Fatalf("apply %s: %v", snap.Commit.Hash, err)
	} else if !changed {
		t.Fatalf("apply %s changed nothing", snap.Commit.Hash)
	}
}

// MustSystems returns the ids of the stored systems.
func MustSystems(t *testing.T, s *store.Store) []string {
	t.Helper()
	systems, err := s.Systems(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, sys := range systems {
		ids = append(ids, sys.ID)
	}
	return ids
}

// MustCountKind counts the events of a kind on the timeline.
func MustCountKind(t *testing.T, s *store.Store, kind aramaki.EventKind) int {
	t.Helper()
	return len(walk(t, s, aramaki.TimelineQuery{Kinds: []aramaki.EventKind{kind}, Limit: aramaki.MaxTimelineLimit}))
}

func TestConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	web := aramaki.System{
		ID: "web", Title: "Web shop", Category: "customer project", Description: "The shop.",
		Owners:     []aramaki.Contact{{Name: "Team Shop", Email: "shop@example.com", Escalation: 1}},
		Rules:      []aramaki.Rule{{Text: "Restart freely.", EscalateTo: "Team Shop"}},
		Links:      []aramaki.Link{{Title: "Dashboard", URL: "https://grafana.example.com/d/web", Kind: "dashboard"}},
		Labels:     map[string]string{"env": "prod"},
		Subsystems: []string{"db"},
		Public:     true,
		Roles:      map[aramaki.Role][]string{aramaki.RoleOperator: {"bob"}},
		Checks:     []aramaki.Check{{Name: "http", Command: "check_http -H web", Interval: "1m"}},
		Actions:    []aramaki.ActionRef{{Name: "flush-cache"}},
	}
	db := aramaki.System{ID: "db", Title: "Database"}

	t.Run("a fresh store has no config", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			state, err := s.ConfigState(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(state, aramaki.ConfigState{}) {
				t.Errorf("state = %+v, want empty", state)
			}
			if ids := MustSystems(t, s); len(ids) != 0 {
				t.Errorf("systems = %v", ids)
			}
		})
	})

	t.Run("applying a commit replaces the systems and records it", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustApply(t, s, snapshot("c1", aramaki.System{ID: "old", Title: "Old"}), t0)
			snap := snapshot("c2", web, db)
			MustApply(t, s, snap, t0.Add(time.Minute))

			systems, err := s.Systems(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(systems, []aramaki.System{db, web}) {
				t.Errorf("systems =\n%+v\nwant (ordered by id)\n%+v", systems, []aramaki.System{db, web})
			}
			state, err := s.ConfigState(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if state.Applied == nil || *state.Applied != snap.Commit {
				t.Errorf("applied = %+v, want %+v", state.Applied, snap.Commit)
			}
			if state.AppliedAt == nil || !state.AppliedAt.Equal(t0.Add(time.Minute)) {
				t.Errorf("applied at = %v", state.AppliedAt)
			}
			if n := MustCountKind(t, s, aramaki.KindConfigApplied); n != 2 {
				t.Errorf("%d config.applied events, want 2", n)
			}
		})
	})

	t.Run("applying the same commit twice changes nothing", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			snap := snapshot("c1", web, db)
			MustApply(t, s, snap, t0)
			changed, err := s.ApplyConfig(ctx, snapshot("c1", db), appliedEvent(t, snap, t0.Add(time.Hour)))
			if err != nil || changed {
				t.Fatalf("second apply = %v, %v; want false, nil", changed, err)
			}
			if ids := MustSystems(t, s); !reflect.DeepEqual(ids, []string{"db", "web"}) {
				t.Errorf("systems = %v", ids)
			}
			if n := MustCountKind(t, s, aramaki.KindConfigApplied); n != 1 {
				t.Errorf("%d config.applied events, want 1", n)
			}
		})
	})

	t.Run("a rejected commit keeps the last good systems", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			good := snapshot("c1", web, db)
			MustApply(t, s, good, t0)
			bad := aramaki.Commit{Hash: "c2", Author: "Bob", Message: "oops", Time: t0.Add(time.Minute)}
			problems := []string{"systems/web.yaml:3: unknown subsystem dbb", "systems/db.yaml:1: title is required"}
			changed, err := s.RejectConfig(ctx, bad, problems, rejectedEvent(t, bad, t0.Add(time.Minute)))
			if err != nil || !changed {
				t.Fatalf("reject = %v, %v", changed, err)
			}
			if ids := MustSystems(t, s); !reflect.DeepEqual(ids, []string{"db", "web"}) {
				t.Errorf("systems = %v", ids)
			}
			state, err := s.ConfigState(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if state.Applied == nil || *state.Applied != good.Commit {
				t.Errorf("applied = %+v", state.Applied)
			}
			if state.Rejected == nil || *state.Rejected != bad {
				t.Errorf("rejected = %+v, want %+v", state.Rejected, bad)
			}
			if !reflect.DeepEqual(state.Errors, problems) {
				t.Errorf("errors = %q", state.Errors)
			}

			// Seeing it again, or the applied commit, records nothing.
			for _, c := range []aramaki.Commit{bad, good.Commit} {
				changed, err = s.RejectConfig(ctx, c, problems, rejectedEvent(t, c, t0.Add(time.Hour)))
				if err != nil || changed {
					t.Fatalf("reject %s again = %v, %v; want false, nil", c.Hash, changed, err)
				}
			}
			if n := MustCountKind(t, s, aramaki.KindConfigRejected); n != 1 {
				t.Errorf("%d config.rejected events, want 1", n)
			}

			// A later good commit clears the rejection.
			MustApply(t, s, snapshot("c3", db), t0.Add(2*time.Minute))
			state, err = s.ConfigState(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if state.Rejected != nil || state.Errors != nil || state.Applied.Hash != "c3" {
				t.Errorf("state after c3 = %+v", state)
			}
		})
	})

	t.Run("the check time is kept", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			at := t0.Add(42 * time.Second)
			if err := s.MarkConfigChecked(ctx, at); err != nil {
				t.Fatal(err)
			}
			state, err := s.ConfigState(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if state.CheckedAt == nil || !state.CheckedAt.Equal(at) || state.CheckedAt.Location() != time.UTC {
				t.Errorf("checked at = %v, want %v in UTC", state.CheckedAt, at)
			}
		})
	})

	t.Run("a commit whose event is invalid changes nothing", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustApply(t, s, snapshot("c1", web), t0)
			_, err := s.ApplyConfig(ctx, snapshot("c2", db), aramaki.Event{ID: "ev_x", Kind: "Bad Kind"})
			wantCode(t, err, aramaki.EINVALID)
			if ids := MustSystems(t, s); !reflect.DeepEqual(ids, []string{"web"}) {
				t.Errorf("systems = %v", ids)
			}
		})
	})

	t.Run("two goroutines applying the same commit make one event", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			const n = 8
			snap := snapshot("c1", web, db)
			var wg sync.WaitGroup
			results := make(chan bool, n)
			for i := range n {
				wg.Go(func() {
					// Each replica stamps its own time, so the events differ.
					changed, err := s.ApplyConfig(ctx, snap, appliedEvent(t, snap, t0.Add(time.Duration(i)*time.Millisecond)))
					if err != nil {
						t.Errorf("apply: %v", err)
					}
					results <- changed
				})
			}
			wg.Wait()
			close(results)
			changes := 0
			for changed := range results {
				if changed {
					changes++
				}
			}
			if changes != 1 {
				t.Errorf("%d applies changed something, want 1", changes)
			}
			if n := MustCountKind(t, s, aramaki.KindConfigApplied); n != 1 {
				t.Errorf("%d config.applied events, want 1", n)
			}
		})
	})

	t.Run("two stores on one database applying the same commit make one event", func(t *testing.T) {
		forEachDSN(t, func(t *testing.T, dsn string) {
			replicas := []*store.Store{MustOpen(t, dsn), MustOpen(t, dsn)}
			snap := snapshot("c1", web, db)
			var wg sync.WaitGroup
			results := make(chan bool, 2*len(replicas))
			for i, s := range append(replicas, replicas...) {
				wg.Go(func() {
					changed, err := s.ApplyConfig(ctx, snap, appliedEvent(t, snap, t0.Add(time.Duration(i)*time.Millisecond)))
					if err != nil {
						t.Errorf("apply: %v", err)
					}
					results <- changed
				})
			}
			wg.Wait()
			close(results)
			changes := 0
			for changed := range results {
				if changed {
					changes++
				}
			}
			if changes != 1 {
				t.Errorf("%d applies changed something, want 1", changes)
			}
			if n := MustCountKind(t, replicas[0], aramaki.KindConfigApplied); n != 1 {
				t.Errorf("%d config.applied events, want 1", n)
			}
		})
	})
}
