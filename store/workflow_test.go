package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

func TestWorkflowRuns(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		start := t0
		def := aramaki.Workflow{Name: "rolling-restart", Steps: []aramaki.WorkflowStep{{Name: "restart", Action: "restart-php-fpm", Concurrency: 1}}}
		w, err := s.CreateWorkflowRun(ctx, aramaki.WorkflowRun{System: "shop", Workflow: def, Inputs: map[string]string{"unit": "php-fpm"},
			Reason: "memory leak", RequestedBy: "olga", Requested: start, State: aramaki.RunRunning, Started: &start,
			Steps: []aramaki.StepState{{Name: "restart", System: "shop-app", Action: "restart-php-fpm", State: aramaki.RunRequested,
				Hosts: []aramaki.StepHost{{Agent: "a1", Name: "app1", State: aramaki.RunRequested}, {Agent: "a2", Name: "app2", State: aramaki.RunRequested}}}}},
			func(w aramaki.WorkflowRun) ([]aramaki.Event, []aramaki.Notification, error) {
				ev, err := aramaki.NewEvent(start, aramaki.KindWorkflowRequested, "user:olga", []string{"shop"}, "asked for "+w.ID, nil)
				return []aramaki.Event{ev}, nil, err
			})
		if err != nil || w.ID == "" {
			t.Fatalf("create: %+v, %v", w, err)
		}

		// A change starts a host's run in the same transaction; the run
		// is the workflow run's, and its id goes to the host.
		changed, err := s.ChangeWorkflowRun(ctx, w.ID, func(w aramaki.WorkflowRun, runs []aramaki.Run) (aramaki.WorkflowChange, error) {
			if len(runs) != 0 {
				t.Errorf("runs before any started: %+v", runs)
			}
			w.Steps[0].State = aramaki.RunRunning
			return aramaki.WorkflowChange{Run: w, Start: []aramaki.Run{{System: "shop-app", Action: "restart-php-fpm", Params: map[string]string{},
				Reason: "workflow", RequestedBy: "olga", Requested: start, State: aramaki.RunRunning, Started: &start,
				Targets: []aramaki.RunTarget{{Agent: "a1", Name: "app1", State: aramaki.RunRequested}}}}}, nil
		}, func(r aramaki.Run) ([]aramaki.Event, error) {
			ev, err := aramaki.NewEvent(start, aramaki.KindRunStarted, "workflow:1", []string{"shop-app"}, "run "+r.ID, nil)
			return []aramaki.Event{ev}, err
		})
		if err != nil {
			t.Fatal(err)
		}
		run := changed.Steps[0].Hosts[0].Run
		if run == "" || changed.Steps[0].Hosts[1].Run != "" {
			t.Fatalf("hosts %+v", changed.Steps[0].Hosts)
		}
		got, err := s.WorkflowRun(ctx, w.ID)
		if err != nil || got.Steps[0].State != aramaki.RunRunning || got.Steps[0].Hosts[0].Run != run || got.Inputs["unit"] != "php-fpm" ||
			got.Workflow.Steps[0].Concurrency != 1 || got.Reason != "memory leak" || !got.Started.Equal(start) {
			t.Fatalf("read back %+v, %v", got, err)
		}
		runs, err := s.Runs(ctx, aramaki.RunFilter{WorkflowRun: w.ID, Limit: 10})
		if err != nil || len(runs) != 1 || runs[0].ID != run || runs[0].WorkflowRun != w.ID || runs[0].WorkflowStep != 0 || len(runs[0].Targets) != 1 {
			t.Fatalf("its runs %+v, %v", runs, err)
		}
		if waiting, err := s.WaitingTargets(ctx, []string{"a1"}); err != nil || len(waiting) != 1 || waiting[0].Run != run {
			t.Fatalf("waiting %+v, %v", waiting, err)
		}
		for agent, want := range map[string]int{"a1": 1, "a2": 0} {
			if got, err := s.Runs(ctx, aramaki.RunFilter{Agent: agent, Limit: 10}); err != nil || len(got) != want {
				t.Errorf("runs on %s: %d, %v; want %d", agent, len(got), err, want)
			}
		}
		// The next change sees the run it started.
		_, err = s.ChangeWorkflowRun(ctx, w.ID, func(w aramaki.WorkflowRun, runs []aramaki.Run) (aramaki.WorkflowChange, error) {
			if len(runs) != 1 || runs[0].ID != run {
				t.Errorf("runs seen %+v", runs)
			}
			end := start.Add(time.Minute)
			w.State, w.Ended = aramaki.RunSucceeded, &end
			return aramaki.WorkflowChange{Run: w}, nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if waiting, err := s.WaitingTargets(ctx, []string{"a1"}); err != nil || len(waiting) != 0 {
			t.Errorf("a part of an ended workflow run waits to start: %+v, %v", waiting, err)
		}
		for _, c := range []struct {
			f    aramaki.WorkflowRunFilter
			want int
		}{
			{aramaki.WorkflowRunFilter{Limit: 10}, 1},
			{aramaki.WorkflowRunFilter{States: []aramaki.RunState{aramaki.RunRunning}, Limit: 10}, 0},
			{aramaki.WorkflowRunFilter{States: []aramaki.RunState{aramaki.RunSucceeded}, Workflow: "rolling-restart", Systems: []string{"shop"}, Limit: 10}, 1},
			{aramaki.WorkflowRunFilter{Systems: []string{"other"}, Limit: 10}, 0},
		} {
			if got, err := s.WorkflowRuns(ctx, c.f); err != nil || len(got) != c.want {
				t.Errorf("%+v: %d, %v; want %d", c.f, len(got), err, c.want)
			}
		}
		if _, err := s.WorkflowRun(ctx, "999"); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("unknown: %v", err)
		}
		if _, err := s.WorkflowRun(ctx, "x'"); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("malformed: %v", err)
		}
	})
}
