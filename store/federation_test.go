package store_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

func TestFederationRecords(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ev := func(kind aramaki.EventKind) aramaki.Event {
			e, err := aramaki.NewEvent(t0, kind, "user:root", nil, string(kind), nil)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		key := func(at time.Time) aramaki.ServerKey {
			pub, prv, _ := ed25519.GenerateKey(nil)
			return aramaki.ServerKey{ID: aramaki.KeyID(pub), Public: pub, Private: prv, Created: at}
		}

		// The identity is made once, whoever asks first.
		first := key(t0)
		made := 0
		fresh := func() (string, aramaki.ServerKey, error) { made++; return "srv_0123456789abcdef", first, nil }
		id, err := s.ServerIdentity(ctx, fresh)
		if err != nil || id.ID != "srv_0123456789abcdef" || len(id.Keys) != 1 || !bytes.Equal(id.Current().Private, first.Private) {
			t.Fatalf("identity %+v, %v", id, err)
		}
		if again, err := s.ServerIdentity(ctx, fresh); err != nil || made != 1 || again.ID != id.ID {
			t.Fatalf("asked again: %+v, made %d times, %v", again, made, err)
		}
		// A new key takes over, endorsed by the one before, which is kept,
		// retired.
		second := key(t0.Add(time.Hour))
		var endorser string
		keys, err := s.RotateServerKey(ctx, second, func(prev aramaki.ServerKey) ([]byte, aramaki.Event, error) {
			endorser = prev.ID
			return []byte("endorsed by " + prev.ID), ev(aramaki.KindServerKeyNew), nil
		})
		if err != nil || len(keys) != 2 || keys[0].ID != second.ID || keys[0].Retired != nil || keys[1].ID != first.ID || keys[1].Retired == nil {
			t.Fatalf("keys after rotating %+v, %v", keys, err)
		}
		if endorser != first.ID || string(keys[0].Endorsement) != "endorsed by "+first.ID || keys[1].Endorsement != nil {
			t.Errorf("endorsed by %s: %q, the first key %q", endorser, keys[0].Endorsement, keys[1].Endorsement)
		}
		if again, err := s.ServerIdentity(ctx, fresh); err != nil || string(again.Current().Endorsement) != "endorsed by "+first.ID {
			t.Errorf("the endorsement read back: %q, %v", again.Current().Endorsement, err)
		}

		// An invitation is used once, before it expires, with its secret.
		inv := aramaki.Invitation{ID: "0011223344556677", Name: "b", SecretHash: []byte("hash"), Created: t0, CreatedBy: "root", Expires: t0.Add(time.Hour)}
		if err := s.CreateInvitation(ctx, inv, ev(aramaki.KindPeerInvited)); err != nil {
			t.Fatal(err)
		}
		bKey := key(t0)
		peer := aramaki.Peer{Server: "srv_bbbbbbbbbbbbbbbb", URL: "https://b.example:8443", Added: t0, AddedBy: "invitation:" + inv.ID,
			Keys: []aramaki.PeerKey{{ID: bKey.ID, Public: bKey.Public, Added: t0}}}
		joined := func(p aramaki.Peer) ([]aramaki.Event, error) { return []aramaki.Event{ev(aramaki.KindPeerJoined)}, nil }
		good := func(h []byte) bool { return string(h) == "hash" }
		for _, c := range []struct {
			name  string
			id    string
			now   time.Time
			check func([]byte) bool
		}{
			{"an unknown invitation", "ffffffffffffffff", t0, good},
			{"a wrong secret", inv.ID, t0, func([]byte) bool { return false }},
			{"an expired invitation", inv.ID, t0.Add(time.Hour), good},
		} {
			if _, err := s.UseInvitation(ctx, c.id, c.now, c.check, peer, joined); aramaki.ErrorCode(err) != aramaki.EUNAUTHORIZED {
				t.Errorf("%s: %v", c.name, err)
			}
		}
		got, err := s.UseInvitation(ctx, inv.ID, t0.Add(time.Minute), good, peer, joined)
		if err != nil || got.Name != "b" {
			t.Fatalf("joining: %+v, %v", got, err)
		}
		if _, err := s.UseInvitation(ctx, inv.ID, t0.Add(time.Minute), good, peer, joined); aramaki.ErrorCode(err) != aramaki.EUNAUTHORIZED {
			t.Errorf("using an invitation twice: %v", err)
		}
		b, err := s.Peer(ctx, "b")
		if err != nil || b.Server != peer.Server || b.URL != peer.URL || len(b.Keys) != 1 || !bytes.Equal(b.Keys[0].Public, bKey.Public) {
			t.Fatalf("peer b: %+v, %v", b, err)
		}
		if k, ok := b.Key(bKey.ID); !ok || !bytes.Equal(k, bKey.Public) {
			t.Error("b's key not found by its id")
		}
		// A key b showed after it rotated is added once, with its event;
		// its old key stays.
		bNew := key(t0)
		events := 0
		told := func(added []aramaki.PeerKey) (aramaki.Event, error) { events++; return ev(aramaki.KindPeerKeyNew), nil }
		for i, want := range []int{2, 0} {
			added, err := s.AddPeerKeys(ctx, peer.Server, []aramaki.PeerKey{{ID: bKey.ID, Public: bKey.Public, Added: t0}, {ID: bNew.ID, Public: bNew.Public, Added: t0}, {ID: second.ID, Public: second.Public, Added: t0}}, told)
			if err != nil || len(added) != want || events != 1 {
				t.Fatalf("adding b's keys, time %d: %d added, %d events, %v", i+1, len(added), events, err)
			}
		}
		if b, _ := s.Peer(ctx, "b"); len(b.Keys) != 3 {
			t.Errorf("b has %d keys, want 3", len(b.Keys))
		} else if k, ok := b.Key(bNew.ID); !ok || !bytes.Equal(k, bNew.Public) {
			t.Error("b's new key not found by its id")
		}
		if _, err := s.AddPeerKeys(ctx, "srv_cccccccccccccccc", []aramaki.PeerKey{{ID: bNew.ID, Public: bNew.Public, Added: t0}}, told); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("keys of no peer: %v", err)
		}
		// The same server or name cannot be added twice.
		if err := s.AddPeer(ctx, aramaki.Peer{Name: "b2", Server: peer.Server, Added: t0, AddedBy: "root"}, ev(aramaki.KindPeerJoined)); aramaki.ErrorCode(err) != aramaki.ECONFLICT {
			t.Errorf("the same server again: %v", err)
		}
		if err := s.CreateInvitation(ctx, aramaki.Invitation{ID: "1111111111111111", Name: "b", SecretHash: []byte("x"), Created: t0, CreatedBy: "root",
			Expires: t0.Add(time.Hour)}, ev(aramaki.KindPeerInvited)); aramaki.ErrorCode(err) != aramaki.ECONFLICT {
			t.Errorf("inviting under a name taken: %v", err)
		}

		// Grants: made, listed, revoked once; removing the peer revokes
		// the rest.
		g, err := s.CreateGrant(ctx, aramaki.Grant{Peer: "b", Systems: []string{"storage"}, Kinds: []aramaki.GrantKind{aramaki.GrantEvents},
			Actions: []string{"restart-unit"}, Until: t0.Add(24 * time.Hour), Created: t0, CreatedBy: "root"},
			func(aramaki.Grant) (aramaki.Event, error) { return ev(aramaki.KindGrantCreated), nil })
		if err != nil || g.ID == "" {
			t.Fatalf("grant: %+v, %v", g, err)
		}
		if _, err := s.CreateGrant(ctx, aramaki.Grant{Peer: "zed", Systems: []string{"storage"}, Until: t0.Add(time.Hour), Created: t0},
			func(aramaki.Grant) (aramaki.Event, error) { return ev(aramaki.KindGrantCreated), nil }); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("a grant to no peer: %v", err)
		}
		second2, _ := s.CreateGrant(ctx, aramaki.Grant{Peer: "b", Systems: []string{"db"}, Kinds: []aramaki.GrantKind{aramaki.GrantStatus},
			Until: t0.Add(time.Hour), Created: t0, CreatedBy: "root"}, func(aramaki.Grant) (aramaki.Event, error) { return ev(aramaki.KindGrantCreated), nil })
		read, err := s.Grant(ctx, g.ID)
		if err != nil || read.Systems[0] != "storage" || read.Kinds[0] != aramaki.GrantEvents || read.Actions[0] != "restart-unit" || !read.Until.Equal(g.Until) {
			t.Fatalf("grant read back %+v, %v", read, err)
		}
		if err := s.RevokeGrant(ctx, g.ID, "root", ev(aramaki.KindGrantRevoked)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeGrant(ctx, g.ID, "root", ev(aramaki.KindGrantRevoked)); aramaki.ErrorCode(err) != aramaki.ECONFLICT {
			t.Errorf("revoking twice: %v", err)
		}
		if err := s.RemovePeer(ctx, "b", "root", ev(aramaki.KindPeerRemoved)); err != nil {
			t.Fatal(err)
		}
		if gr, _ := s.Grant(ctx, second2.ID); gr.Revoked == nil || gr.RevokedBy != "root" {
			t.Errorf("a grant of a removed peer: %+v", gr)
		}
		if _, err := s.Peer(ctx, "b"); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("a removed peer: %v", err)
		}
		if all, err := s.Grants(ctx, "b"); err != nil || len(all) != 2 {
			t.Errorf("grants of b: %d, %v", len(all), err)
		}
	})
}

func TestAPeerLinkNumbersItsOutboxAndStoresWhatArrivesOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ev := func(summary string, systems ...string) aramaki.Event {
			e, err := aramaki.NewEvent(t0, aramaki.KindNote, "user:olga", systems, summary, nil)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		appendAll := func(evs ...aramaki.Event) {
			t.Helper()
			for _, e := range evs {
				if _, err := s.AppendEvent(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
		}
		appendAll(ev("before the peer", "storage"))
		joined, _ := aramaki.NewEvent(t0, aramaki.KindPeerJoined, "user:root", nil, "b joined", nil)
		if err := s.AddPeer(ctx, aramaki.Peer{Name: "b", Server: "srv_bbbbbbbbbbbbbbbb", Added: t0, AddedBy: "root"}, joined); err != nil {
			t.Fatal(err)
		}
		appendAll(ev("one", "storage"), ev("not shared", "billing"), ev("two", "storage"))
		// Only storage's events, and only from when b became a peer (the
		// peer.joined event itself is not storage's).
		var considered []string
		pick := func(evs []aramaki.Event) ([]aramaki.OutboxMessage, error) {
			var out []aramaki.OutboxMessage
			for _, e := range evs {
				considered = append(considered, e.Summary)
				if e.Systems != nil && e.Systems[0] == "storage" {
					out = append(out, aramaki.OutboxMessage{Kind: "event", Body: []byte(`{"summary":"` + e.Summary + `"}`)})
				}
			}
			return out, nil
		}
		n, err := s.FillOutbox(ctx, "b", 2, t0, pick)
		if err != nil || n != 2 {
			t.Fatalf("first fill: %d, %v", n, err)
		}
		if n, err = s.FillOutbox(ctx, "b", 2, t0, pick); err != nil || n != 2 {
			t.Fatalf("second fill: %d, %v", n, err)
		}
		if n, err = s.FillOutbox(ctx, "b", 2, t0, pick); err != nil || n != 0 {
			t.Fatalf("caught up: %d, %v", n, err)
		}
		if want := "b joined,one,not shared,two"; strings.Join(considered, ",") != want {
			t.Errorf("considered %q, want %q", considered, want)
		}
		out, err := s.Outbox(ctx, "b", 0, 10)
		if err != nil || len(out) != 2 || out[0].Seq != 1 || out[1].Seq != 2 || string(out[1].Body) != `{"summary":"two"}` {
			t.Fatalf("outbox %+v, %v", out, err)
		}
		if err := s.AckOutbox(ctx, "b", 3); aramaki.ErrorCode(err) != aramaki.EINVALID {
			t.Errorf("acknowledging what was never sent: %v", err)
		}
		if err := s.AckOutbox(ctx, "b", 1); err != nil {
			t.Fatal(err)
		}
		if rest, _ := s.Outbox(ctx, "b", 0, 10); len(rest) != 1 || rest[0].Seq != 2 {
			t.Errorf("after the ack: %+v", rest)
		}

		// What b sends: stored once, in order, gaps allowed.
		remote := func(summary string) aramaki.Event {
			e, _ := aramaki.RemoteEvent{ID: "ev_" + summary, Time: t0, Kind: aramaki.KindNote, Systems: []string{"db"}, Summary: summary}.Local("b", "srv_bbbbbbbbbbbbbbbb")
			return e
		}
		last, err := s.ReceiveFromPeer(ctx, "b", []aramaki.ReceivedMessage{{Seq: 1, Events: []aramaki.Event{remote("r1")}}, {Seq: 3, Events: []aramaki.Event{remote("r3")}}})
		if err != nil || last != 3 {
			t.Fatalf("received up to %d, %v", last, err)
		}
		if last, err = s.ReceiveFromPeer(ctx, "b", []aramaki.ReceivedMessage{{Seq: 3, Events: []aramaki.Event{remote("r3 again")}}}); err != nil || last != 3 {
			t.Fatalf("a duplicate: %d, %v", last, err)
		}
		if l, _ := s.PeerLink(ctx, "b"); l.ReceivedSeq != 3 || l.AckedSeq != 1 || l.NextSeq != 3 {
			t.Errorf("link %+v", l)
		}
		// Statuses: queued when they change, stored here on b's ids.
		for i, status := range []aramaki.Status{aramaki.StatusCritical, aramaki.StatusCritical, aramaki.StatusOK} {
			queued, err := s.ShareStatus(ctx, "b", "storage", status, []byte(`{"status":"`+status.String()+`"}`), t0)
			if err != nil || queued != (i != 1) {
				t.Errorf("sharing %s (%d): queued %v, %v", status, i, queued, err)
			}
		}
		if l, _ := s.PeerLink(ctx, "b"); l.NextSeq != 5 {
			t.Errorf("after two statuses the next message is %d, want 5", l.NextSeq)
		}
		if _, err := s.ReceiveFromPeer(ctx, "b", []aramaki.ReceivedMessage{{Seq: 4, Statuses: []aramaki.RemoteStatus{{System: "db@b", Status: aramaki.StatusWarning, Since: t0}}}}); err != nil {
			t.Fatal(err)
		}
		told, err := s.RemoteStatuses(ctx, []string{"db@b", "other@b"})
		if err != nil || len(told) != 1 || told["db@b"].Status != aramaki.StatusWarning || !told["db@b"].Since.Equal(t0) {
			t.Errorf("remote statuses %+v, %v", told, err)
		}
		page, err := s.Timeline(ctx, aramaki.TimelineQuery{Systems: []string{"db@b"}, Limit: 10})
		if err != nil || len(page.Events) != 2 {
			t.Fatalf("b's events here: %+v, %v", page, err)
		}
	})
}

func TestAnEventNumberedBeforeOneCommittedIsNotPassedOver(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		if s.Dialect() != store.Postgres {
			t.Skip("SQLite commits in the order it numbers")
		}
		ctx := context.Background()
		joined, _ := aramaki.NewEvent(time.Now(), aramaki.KindPeerJoined, "user:root", nil, "b joined", nil)
		if err := s.AddPeer(ctx, aramaki.Peer{Name: "b", Server: "srv_bbbbbbbbbbbbbbbb", Added: time.Now(), AddedBy: "root"}, joined); err != nil {
			t.Fatal(err)
		}
		// seq n is taken by a transaction still open when n+1 commits.
		open, err := s.BeginRawForTest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := aramaki.NewEvent(time.Now(), aramaki.KindNote, "user:olga", []string{"storage"}, "first", nil)
		if err := open.Append(ctx, first); err != nil {
			t.Fatal(err)
		}
		second, _ := aramaki.NewEvent(time.Now(), aramaki.KindNote, "user:olga", []string{"storage"}, "second", nil)
		if _, err := s.AppendEvent(ctx, second); err != nil {
			t.Fatal(err)
		}
		var seen []string
		pick := func(evs []aramaki.Event) ([]aramaki.OutboxMessage, error) {
			for _, e := range evs {
				seen = append(seen, e.Summary)
			}
			return nil, nil
		}
		if _, err := s.FillOutbox(ctx, "b", 100, time.Now(), pick); err != nil {
			t.Fatal(err)
		}
		if err := open.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FillOutbox(ctx, "b", 100, time.Now(), pick); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(seen, ","); got != "b joined,first,second" {
			t.Errorf("considered %q", got)
		}
	})
}
