package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

func TestARunOfAPeersSystemIsStoredWithItsRequestAndMovedOnByThePeersAnswer(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ev := func(kind aramaki.EventKind, r aramaki.Run) aramaki.Event {
			e, err := aramaki.NewEvent(t0, kind, "user:olga", []string{r.System}, string(kind)+" "+r.ID, aramaki.RunData{Run: r})
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		joined, _ := aramaki.NewEvent(t0, aramaki.KindPeerJoined, "user:root", nil, "a joined", nil)
		if err := s.AddPeer(ctx, aramaki.Peer{Name: "a", Server: "srv_aaaaaaaaaaaaaaaa", Added: t0, AddedBy: "root"}, joined); err != nil {
			t.Fatal(err)
		}
		run := aramaki.Run{System: "storage@a", Action: "restart-unit", Params: map[string]string{"unit": "nfs"}, Reason: "nfs hangs", RequestedBy: "olga",
			Requested: t0, State: aramaki.RunRequested, Targets: []aramaki.RunTarget{}, Peer: "a"}
		ask := func(r aramaki.Run) ([]aramaki.Event, aramaki.OutboxMessage, error) {
			return []aramaki.Event{ev(aramaki.KindRunRequested, r)}, aramaki.OutboxMessage{Kind: "action", Body: []byte(`{"run":"` + r.ID + `"}`)}, nil
		}

		// No such peer, or the request cannot be made: nothing is stored.
		if _, err := s.CreatePeerRun(ctx, aramaki.Run{System: "storage@x", Peer: "x", Params: map[string]string{}}, t0, ask); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("a run of an unknown peer: %v", err)
		}
		boom := errors.New("boom")
		if _, err := s.CreatePeerRun(ctx, run, t0, func(aramaki.Run) ([]aramaki.Event, aramaki.OutboxMessage, error) {
			return nil, aramaki.OutboxMessage{}, boom
		}); !errors.Is(err, boom) {
			t.Errorf("a failed request: %v", err)
		}
		if runs, _ := s.Runs(ctx, aramaki.RunFilter{Limit: 10}); len(runs) != 0 {
			t.Fatalf("runs left by failed requests: %+v", runs)
		}
		if out, _ := s.Outbox(ctx, "a", 0, 10); len(out) != 0 {
			t.Fatalf("messages left by failed requests: %+v", out)
		}

		stored, err := s.CreatePeerRun(ctx, run, t0, ask)
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Outbox(ctx, "a", 0, 10)
		if err != nil || len(out) != 1 || out[0].Kind != "action" || string(out[0].Body) != `{"run":"`+stored.ID+`"}` {
			t.Fatalf("outbox %+v, %v", out, err)
		}
		got, err := s.Run(ctx, stored.ID)
		if err != nil || got.Peer != "a" || got.System != "storage@a" || got.State != aramaki.RunRequested || got.PeerRun != "" {
			t.Fatalf("stored %+v, %v", got, err)
		}

		// The peer answers: the run moves on with the message, once.
		finish := aramaki.PeerRunResult{Run: stored.ID, Change: func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
			if r.State.Final() {
				return r, nil, nil
			}
			end := t0.Add(time.Minute)
			r.State, r.PeerRun, r.HostsOK, r.HostsFailed, r.Ended = aramaki.RunFailed, "41", 2, 1, &end
			return r, []aramaki.Event{ev(aramaki.KindRunFinished, r)}, nil
		}}
		untouched := aramaki.PeerRunResult{Run: stored.ID, Change: func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
			r.State = aramaki.RunSucceeded
			return r, nil, nil // no events: no change
		}}
		nobodys := aramaki.PeerRunResult{Run: "999", Change: func(r aramaki.Run) (aramaki.Run, []aramaki.Event, error) {
			t.Errorf("asked to change run %s, which does not exist", r.ID)
			return r, nil, nil
		}}
		msgs := []aramaki.ReceivedMessage{{Seq: 1, RunResults: []aramaki.PeerRunResult{untouched, nobodys}}, {Seq: 2, RunResults: []aramaki.PeerRunResult{finish}}}
		if last, err := s.ReceiveFromPeer(ctx, "a", msgs); err != nil || last != 2 {
			t.Fatalf("received up to %d, %v", last, err)
		}
		got, _ = s.Run(ctx, stored.ID)
		if got.State != aramaki.RunFailed || got.PeerRun != "41" || got.HostsOK != 2 || got.HostsFailed != 1 || got.Ended == nil || !got.Ended.Equal(t0.Add(time.Minute)) {
			t.Errorf("after the answer: %+v", got)
		}
		page, _ := s.Timeline(ctx, aramaki.TimelineQuery{Systems: []string{"storage@a"}, Kinds: []aramaki.EventKind{aramaki.KindRunFinished}, Limit: 10})
		if len(page.Events) != 1 {
			t.Errorf("run.finished on the timeline %d times", len(page.Events))
		}

		// A run the peer asks for here is created with its message, once,
		// while a grant that allowed it is not revoked.
		created := func(g aramaki.Grant) (aramaki.Event, error) {
			return ev(aramaki.KindGrantCreated, aramaki.Run{System: "storage"}), nil
		}
		grant, err := s.CreateGrant(ctx, aramaki.Grant{Peer: "a", Systems: []string{"storage"}, Actions: []string{"restart-unit"}, Until: t0.Add(time.Hour), Created: t0, CreatedBy: "root"}, created)
		if err != nil {
			t.Fatal(err)
		}
		revoked, err := s.CreateGrant(ctx, aramaki.Grant{Peer: "a", Systems: []string{"storage"}, Actions: []string{"restart-unit"}, Until: t0.Add(time.Hour), Created: t0, CreatedBy: "root"}, created)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeGrant(ctx, revoked.ID, "root", ev(aramaki.KindGrantRevoked, aramaki.Run{System: "storage"})); err != nil {
			t.Fatal(err)
		}
		made := 0
		local := aramaki.Run{System: "storage", Action: "restart-unit", Params: map[string]string{}, Reason: "asked", RequestedBy: "olga@a", Requested: t0,
			State: aramaki.RunRunning, Peer: "a", PeerRun: "7", Targets: []aramaki.RunTarget{{Agent: "ag_1", Name: "st1", State: aramaki.RunRequested}}}
		refusals := 0
		req := aramaki.PeerRunRequest{Run: local, Events: func(r aramaki.Run) ([]aramaki.Event, []aramaki.Notification, error) {
			made++
			return []aramaki.Event{ev(aramaki.KindRunRequested, r)}, nil, nil
		}, Grants: []string{revoked.ID, grant.ID}, Refused: func() ([]aramaki.Event, error) {
			refusals++
			return []aramaki.Event{ev(aramaki.KindRunRefused, aramaki.Run{System: "storage"})}, nil
		}}
		for range 2 {
			if last, err := s.ReceiveFromPeer(ctx, "a", []aramaki.ReceivedMessage{{Seq: 3, Runs: []aramaki.PeerRunRequest{req}}}); err != nil || last != 3 {
				t.Fatalf("received up to %d, %v", last, err)
			}
		}
		runs, err := s.Runs(ctx, aramaki.RunFilter{Systems: []string{"storage"}, Limit: 10})
		if err != nil || len(runs) != 1 || made != 1 || runs[0].Peer != "a" || runs[0].PeerRun != "7" || runs[0].RequestedBy != "olga@a" || len(runs[0].Targets) != 1 {
			t.Fatalf("runs asked for by a: %+v (events made %d times), %v", runs, made, err)
		}
		if waiting, _ := s.WaitingTargets(ctx, []string{"ag_1"}); len(waiting) != 1 || waiting[0].Run != runs[0].ID {
			t.Errorf("waiting to start: %+v", waiting)
		}
		// Every grant that allowed it revoked by the time it is stored:
		// refused after all.
		req.Grants, req.Run.PeerRun = []string{revoked.ID, "404"}, "8"
		if _, err := s.ReceiveFromPeer(ctx, "a", []aramaki.ReceivedMessage{{Seq: 4, Runs: []aramaki.PeerRunRequest{req}}}); err != nil {
			t.Fatal(err)
		}
		if runs, _ := s.Runs(ctx, aramaki.RunFilter{Systems: []string{"storage"}, Limit: 10}); len(runs) != 1 || made != 1 || refusals != 1 {
			t.Errorf("after the revocation: %d runs, events made %d times, refused %d times", len(runs), made, refusals)
		}
		if page, _ := s.Timeline(ctx, aramaki.TimelineQuery{Kinds: []aramaki.EventKind{aramaki.KindRunRefused}, Limit: 10}); len(page.Events) != 1 {
			t.Errorf("refusals on the timeline: %d", len(page.Events))
		}
	})
}
