package store_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

func TestRuns(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
		MustEnroll(t, s, "a1", "shop")
		MustEnroll(t, s, "a2", "shop")

		// The host says what it allows.
		flush := aramaki.ActionSpec{Name: "flush-varnish", Argv: []string{"/usr/bin/varnishadm", "ban", "req.url", "~", "."}, Timeout: time.Minute}
		var changes [][]aramaki.ActionSpec
		said := func(before []aramaki.ActionSpec) ([]aramaki.Event, error) {
			changes = append(changes, before)
			ev, err := aramaki.NewEvent(t0, aramaki.KindAgentActions, "agent:a1", []string{"shop"}, "a1 allows flush-varnish", nil)
			return []aramaki.Event{ev}, err
		}
		for range 2 { // said twice, changed once
			if err := s.SetAgentActions(ctx, "a1", []aramaki.ActionSpec{flush}, said); err != nil {
				t.Fatal(err)
			}
		}
		if len(changes) != 1 || len(changes[0]) != 0 {
			t.Fatalf("changes %+v, want one from nothing", changes)
		}
		if err := s.SetAgentActions(ctx, "nobody", nil, said); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Fatalf("an unknown agent: %v", err)
		}
		if a, err := s.Agent(ctx, "a1"); err != nil || !reflect.DeepEqual(a.Actions, []aramaki.ActionSpec{flush}) {
			t.Fatalf("agent actions %+v, %v", a.Actions, err)
		}

		requested := aramaki.Run{System: "shop", Action: "flush-varnish", Params: map[string]string{"pattern": "."}, Reason: "stale product pages",
			RequestedBy: "olga", Requested: at(0), State: aramaki.RunRunning, Started: &[]time.Time{at(0)}[0],
			Targets: []aramaki.RunTarget{{Agent: "a1", Name: "web1", State: aramaki.RunRequested}, {Agent: "a2", Name: "web2", State: aramaki.RunRequested}}}
		run, err := s.CreateRun(ctx, requested, func(r aramaki.Run) ([]aramaki.Event, []aramaki.Notification, error) {
			ev, err := aramaki.NewEvent(at(0), aramaki.KindRunRequested, "user:olga", []string{"shop"}, "olga ran flush-varnish ("+r.ID+")", nil)
			return []aramaki.Event{ev}, nil, err
		})
		if err != nil || run.ID == "" {
			t.Fatalf("create run: %+v, %v", run, err)
		}
		waiting, err := s.WaitingTargets(ctx, []string{"a1", "a3"})
		if err != nil || len(waiting) != 1 || waiting[0].Run != run.ID || waiting[0].Action != "flush-varnish" || waiting[0].Params["pattern"] != "." {
			t.Fatalf("waiting for a1: %+v, %v", waiting, err)
		}

		// Host 1 starts, prints, finishes; a frame sent twice counts once.
		_, err = s.ChangeRun(ctx, run.ID, func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
			r.Targets[0].State, r.Targets[0].Started = aramaki.RunRunning, &[]time.Time{at(0)}[0]
			return r, nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []struct {
			seq  uint64
			data string
		}{{1, "ban added\n"}, {2, "done\n"}, {2, "done\n"}} {
			if err := s.AppendRunOutput(ctx, run.ID, "a1", f.seq, f.data); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AppendRunOutput(ctx, run.ID, "a1", 3, strings.Repeat("é", aramaki.MaxRunOutput)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Run(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		out := got.Targets[0].Output
		if !strings.HasPrefix(out, "ban added\ndone\né") || len(out) > aramaki.MaxRunOutput || got.Targets[0].Dropped == 0 || !strings.HasSuffix(out, "é") {
			t.Errorf("output of web1: %d bytes, %d dropped, starts %q", len(out), got.Targets[0].Dropped, out[:min(len(out), 20)])
		}
		if len(got.Targets) != 2 || got.Targets[1].Name != "web2" || got.Targets[1].State != aramaki.RunRequested {
			t.Errorf("targets %+v", got.Targets)
		}

		finished, err := s.ChangeRun(ctx, run.ID, func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
			code := 0
			for i := range r.Targets {
				r.Targets[i].State, r.Targets[i].ExitCode, r.Targets[i].Ended = aramaki.RunSucceeded, &code, &[]time.Time{at(1)}[0]
			}
			r.State, r.Ended = aramaki.RunSucceeded, &[]time.Time{at(1)}[0]
			ev, err := aramaki.NewEvent(at(1), aramaki.KindRunFinished, "server", []string{"shop"}, "run "+r.ID+" succeeded", nil)
			return r, []aramaki.Event{ev}, err
		})
		if err != nil || finished.State != aramaki.RunSucceeded {
			t.Fatalf("finish: %+v, %v", finished, err)
		}
		if waiting, _ := s.WaitingTargets(ctx, []string{"a2"}); len(waiting) != 0 {
			t.Errorf("a finished run still waits: %+v", waiting)
		}
		runs, err := s.Runs(ctx, aramaki.RunFilter{Systems: []string{"shop"}, Action: "flush-varnish", Limit: 10})
		if err != nil || len(runs) != 1 || len(runs[0].Targets) != 2 || runs[0].Targets[0].Output != "" || *runs[0].Targets[0].ExitCode != 0 {
			t.Fatalf("runs: %+v, %v", runs, err)
		}
		if none, _ := s.Runs(ctx, aramaki.RunFilter{States: []aramaki.RunState{aramaki.RunRunning}, Limit: 10}); len(none) != 0 {
			t.Errorf("running runs: %+v", none)
		}
		points, err := s.RunPoints(ctx, "shop", "flush-varnish", at(-60))
		if err != nil || len(points) != 1 || points[0].Duration != time.Minute || points[0].State != aramaki.RunSucceeded {
			t.Errorf("points %+v, %v", points, err)
		}
		if _, err := s.Run(ctx, "999"); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("a missing run: %v", err)
		}
		if err := s.AppendRunOutput(ctx, run.ID, "a9", 1, "x"); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("output of a host not in the run: %v", err)
		}
	})
}
