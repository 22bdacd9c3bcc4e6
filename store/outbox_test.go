package store_test

import (
	"context"
	"testing"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

// Filling an outbox reads a peer's events bare — nothing of them is passed
// on — but this server's own whole, and runs' whole whoever asked for them
// (a peer is told how the runs it asked for go).
func TestAnOutboxIsFilledFromThisServersEventsAndPassesOverPeersBare(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		joined, _ := aramaki.NewEvent(t0, aramaki.KindPeerJoined, "user:root", nil, "b joined", nil)
		if err := s.AddPeer(ctx, aramaki.Peer{Name: "b", Server: "srv_bbbbbbbbbbbbbbbb", Added: t0, AddedBy: "root"}, joined); err != nil {
			t.Fatal(err)
		}
		for _, e := range []struct {
			kind           aramaki.EventKind
			actor, summary string
			system         string
		}{
			{aramaki.KindNote, "user:olga", "ours", "storage"},
			{aramaki.KindNote, "peer:c", "c's", "db@c"},
			{aramaki.KindRunFinished, "peer:c", "a run c asked for", "storage"},
		} {
			ev, err := aramaki.NewEvent(t0, e.kind, e.actor, []string{e.system}, e.summary, map[string]string{"x": "y"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.AppendEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		var seen []aramaki.Event
		if _, err := s.FillOutbox(ctx, "b", 100, t0, func(evs []aramaki.Event) ([]aramaki.OutboxMessage, error) {
			seen = append(seen, evs...)
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(seen) < 3 {
			t.Fatalf("read %d events, want the 3 appended", len(seen))
		}
		seen = seen[len(seen)-3:]
		for i, want := range []struct {
			summary string
			whole   bool
		}{{"ours", true}, {"", false}, {"a run c asked for", true}} {
			e := seen[i]
			if e.Summary != want.summary || (len(e.Systems) == 1 && len(e.Data) > 0) != want.whole || e.Kind == "" || e.Actor == "" || e.Seq == 0 {
				t.Errorf("event %d read as %+v", i, e)
			}
		}
	})
}
