package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

func TestGrantsArePutInAPeersOutboxWhenTheyChangeAndThePeersAreKeptWhole(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		joined, _ := aramaki.NewEvent(t0, aramaki.KindPeerJoined, "user:root", nil, "b joined", nil)
		if err := s.AddPeer(ctx, aramaki.Peer{Name: "b", Server: "srv_bbbbbbbbbbbbbbbb", Added: t0, AddedBy: "root"}, joined); err != nil {
			t.Fatal(err)
		}
		// Told once per change: the same digest queues nothing.
		for i, c := range []struct {
			digest string
			queued bool
		}{{"d1", true}, {"d1", false}, {"d2", true}, {"d2", false}} {
			queued, err := s.TellGrants(ctx, "b", c.digest, []byte(`{"grants":[]}`), t0)
			if err != nil || queued != c.queued {
				t.Fatalf("telling %d (%s): queued %v, %v", i, c.digest, queued, err)
			}
		}
		out, err := s.Outbox(ctx, "b", 0, 10)
		if err != nil || len(out) != 2 || out[0].Kind != "grant" || out[1].Seq != out[0].Seq+1 {
			t.Fatalf("b's outbox: %+v, %v", out, err)
		}

		// What b told: replaced whole by each telling; a message that tells
		// no grants leaves them be.
		until := t0.Add(time.Hour).Truncate(time.Microsecond)
		two := []aramaki.ReceivedGrant{
			{Peer: "b", ID: "7", Systems: []string{"shop@b"}, Kinds: []aramaki.GrantKind{aramaki.GrantStatus}, Until: until},
			{Peer: "b", ID: "8", Systems: []string{"db@b"}, Actions: []string{"flush"}, Until: until.Add(time.Minute)},
		}
		if _, err := s.ReceiveFromPeer(ctx, "b", []aramaki.ReceivedMessage{{Seq: 1, Grants: two, GrantsTold: true}, {Seq: 2}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.ReceivedGrants(ctx, "b")
		if err != nil || len(got) != 2 || got[0].ID != "7" || got[1].Actions[0] != "flush" || !got[1].Until.Equal(two[1].Until) || got[0].Systems[0] != "shop@b" {
			t.Fatalf("b's grants here: %+v, %v", got, err)
		}
		if !got[1].AllowsAction(t0, "db@b", "flush") || got[1].AllowsAction(t0, "shop@b", "flush") || got[1].AllowsAction(until.Add(time.Hour), "db@b", "flush") {
			t.Errorf("what grant 8 allows: %+v", got[1])
		}
		if _, err := s.ReceiveFromPeer(ctx, "b", []aramaki.ReceivedMessage{{Seq: 3, Grants: two[1:], GrantsTold: true}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ReceivedGrants(ctx, ""); len(got) != 1 || got[0].ID != "8" {
			t.Fatalf("after b revoked grant 7: %+v", got)
		}
		// A replayed message changes nothing.
		if _, err := s.ReceiveFromPeer(ctx, "b", []aramaki.ReceivedMessage{{Seq: 1, Grants: two, GrantsTold: true}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ReceivedGrants(ctx, "b"); len(got) != 1 {
			t.Fatalf("after a replay: %+v", got)
		}
		// A removed peer's grants are gone.
		removed, _ := aramaki.NewEvent(t0, aramaki.KindPeerRemoved, "user:root", nil, "b removed", nil)
		if err := s.RemovePeer(ctx, "b", "root", removed); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ReceivedGrants(ctx, ""); len(got) != 0 {
			t.Fatalf("a removed peer's grants: %+v", got)
		}
	})
}
