package store_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

// Several replicas of one server share its database: each fills its peers'
// outboxes, shares statuses, may hold a link with a peer and so send the
// outbox and take acknowledgements, and stores what peers send. Two stores
// on one database stand for two replicas here.

func mustReplicas(t *testing.T, dsn string) (*store.Store, *store.Store) {
	t.Helper()
	a, b := MustOpen(t, dsn), MustOpen(t, dsn)
	joined, _ := aramaki.NewEvent(time.Now(), aramaki.KindPeerJoined, "user:root", nil, "b joined", nil)
	if err := a.AddPeer(context.Background(), aramaki.Peer{Name: "b", Server: "srv_bbbbbbbbbbbbbbbb", Added: time.Now(), AddedBy: "root"}, joined); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestTwoReplicasFillOnePeersOutboxWithEachEventOnceInOrder(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a, b := mustReplicas(t, dsn)
		// Both write events and fill the outbox at once, as replicas do
		// while people and agents use both.
		const perReplica = 300
		var writing sync.WaitGroup
		for r, s := range []*store.Store{a, b} {
			writing.Go(func() {
				for i := range perReplica {
					ev, err := aramaki.NewEvent(time.Now(), aramaki.KindNote, "user:olga", []string{"storage"}, fmt.Sprintf("r%d %04d", r, i), nil)
					if err == nil {
						_, err = s.AppendEvent(ctx, ev)
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		pick := func(evs []aramaki.Event) ([]aramaki.OutboxMessage, error) {
			var out []aramaki.OutboxMessage
			for _, e := range evs {
				if e.Kind == aramaki.KindNote {
					out = append(out, aramaki.OutboxMessage{Kind: "event", Body: fmt.Appendf(nil, "%d %s", e.Seq, e.Summary)})
				}
			}
			return out, nil
		}
		written := make(chan struct{})
		go func() { writing.Wait(); close(written) }()
		var filling sync.WaitGroup
		for _, s := range []*store.Store{a, b} {
			filling.Go(func() {
				for {
					select {
					case <-written:
						return
					default:
					}
					if _, err := s.FillOutbox(ctx, "b", 50, time.Now(), pick); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		filling.Wait()
		for _, s := range []*store.Store{a, b, a} {
			if _, err := s.FillOutbox(ctx, "b", 1000, time.Now(), pick); err != nil {
				t.Fatal(err)
			}
		}
		out, err := b.Outbox(ctx, "b", 0, 10*perReplica)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 2*perReplica {
			t.Errorf("the outbox holds %d messages, %d events were written", len(out), 2*perReplica)
		}
		seen := map[string]bool{}
		var lastEvent int64
		for i, m := range out {
			if m.Seq != uint64(i+1) {
				t.Fatalf("message %d is numbered %d", i+1, m.Seq)
			}
			var seq int64
			var summary, second string
			fmt.Sscanf(string(m.Body), "%d %s %s", &seq, &summary, &second)
			summary += " " + second
			if seen[summary] {
				t.Errorf("%q is in the outbox twice", summary)
			}
			seen[summary] = true
			if seq <= lastEvent {
				t.Errorf("message %d is of event %d, after event %d", m.Seq, seq, lastEvent)
			}
			lastEvent = seq
		}
		if l, _ := a.PeerLink(ctx, "b"); l.NextSeq != uint64(len(out)+1) {
			t.Errorf("the link's next message is %d after %d", l.NextSeq, len(out))
		}
	})
}

func TestTwoReplicasShareAStatusOnce(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a, b := mustReplicas(t, dsn)
		for _, status := range []aramaki.Status{aramaki.StatusCritical, aramaki.StatusOK} {
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				queued int
			)
			for range 10 {
				for _, s := range []*store.Store{a, b} {
					wg.Go(func() {
						q, err := s.ShareStatus(ctx, "b", "storage", status, []byte(`{"status":"`+status.String()+`"}`), time.Now())
						if err != nil {
							t.Error(err)
						}
						mu.Lock()
						if q {
							queued++
						}
						mu.Unlock()
					})
				}
			}
			wg.Wait()
			if queued != 1 {
				t.Errorf("%s was queued %d times by two replicas", status, queued)
			}
		}
		if out, _ := a.Outbox(ctx, "b", 0, 10); len(out) != 2 {
			t.Errorf("the outbox holds %d statuses, want critical then ok", len(out))
		}
	})
}

func TestAcknowledgementsThroughEitherReplicaNeverMoveBack(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a, b := mustReplicas(t, dsn)
		for i := range 6 {
			if _, err := a.ShareStatus(ctx, "b", fmt.Sprintf("s%d", i), aramaki.StatusOK, []byte(`{}`), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		// The peer's session on a acknowledges 5; an older one on b, late,
		// 3 — and 5 again.
		for _, ack := range []struct {
			s   *store.Store
			seq uint64
		}{{a, 5}, {b, 3}, {b, 5}} {
			if err := ack.s.AckOutbox(ctx, "b", ack.seq); err != nil {
				t.Fatal(err)
			}
		}
		if l, _ := b.PeerLink(ctx, "b"); l.AckedSeq != 5 {
			t.Errorf("acknowledged %d, want 5", l.AckedSeq)
		}
		if out, _ := b.Outbox(ctx, "b", 0, 10); len(out) != 1 || out[0].Seq != 6 {
			t.Errorf("the outbox after the acknowledgements: %+v", out)
		}
	})
}

func TestTwoReplicasReceivingOnePeerStoreEachMessageOnceInOrder(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a, b := mustReplicas(t, dsn)
		// The peer has a session with each replica; each sends the same
		// messages in order, in batches of its own, from where the
		// replica's hello said.
		const n = 400
		msgs := make([]aramaki.ReceivedMessage, n)
		for i := range msgs {
			e, err := aramaki.RemoteEvent{ID: fmt.Sprintf("ev_%04d", i+1), Time: t0, Kind: aramaki.KindNote, Systems: []string{"db"}, Summary: fmt.Sprintf("m%04d", i+1)}.Local("b", "srv_bbbbbbbbbbbbbbbb")
			if err != nil {
				t.Fatal(err)
			}
			msgs[i] = aramaki.ReceivedMessage{Seq: uint64(i + 1), Events: []aramaki.Event{e}}
		}
		var wg sync.WaitGroup
		for r, s := range []*store.Store{a, b} {
			wg.Go(func() {
				batch := 37 + 20*r
				for from := 0; from < n; from += batch {
					last, err := s.ReceiveFromPeer(ctx, "b", msgs[from:min(n, from+batch)])
					if err != nil {
						t.Error(err)
						return
					}
					if last < uint64(min(n, from+batch)) {
						t.Errorf("replica %d stored through %d, then said %d", r, min(n, from+batch), last)
					}
				}
			})
		}
		wg.Wait()
		if l, _ := a.PeerLink(ctx, "b"); l.ReceivedSeq != n {
			t.Errorf("received through %d, want %d", l.ReceivedSeq, n)
		}
		rows, err := a.DB().QueryContext(ctx, `SELECT summary FROM events WHERE actor = 'peer:b' ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var s string
			rows.Scan(&s)
			got = append(got, s)
		}
		if len(got) != n {
			t.Fatalf("stored %d of the peer's events, want %d", len(got), n)
		}
		for i, s := range got {
			if s != fmt.Sprintf("m%04d", i+1) {
				t.Fatalf("event %d stored is %q: %s", i+1, s, strings.Join(got[max(0, i-2):i+1], ","))
			}
		}
	})
}

// An event's time is its writer's clock, or its origin's for a peer's
// event, or an agent's: a replica whose clock is behind, or a peer's event
// from yesterday, numbered after one still on its way, must not make the
// one on its way look given up.
func TestAnEventOnItsWayIsNotPassedOverForAnOldEventAfterIt(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		a, b := mustReplicas(t, dsn)
		if a.Dialect() != store.Postgres {
			t.Skip("SQLite commits in the order it numbers")
		}
		ctx := context.Background()
		open, err := a.BeginRawForTest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := aramaki.NewEvent(time.Now(), aramaki.KindNote, "user:olga", []string{"storage"}, "on its way", nil)
		if err := open.Append(ctx, first); err != nil {
			t.Fatal(err)
		}
		old, _ := aramaki.NewEvent(time.Now().Add(-time.Hour), aramaki.KindNote, "user:olga", []string{"storage"}, "an hour old", nil)
		if _, err := b.AppendEvent(ctx, old); err != nil {
			t.Fatal(err)
		}
		var seen []string
		pick := func(evs []aramaki.Event) ([]aramaki.OutboxMessage, error) {
			for _, e := range evs {
				seen = append(seen, e.Summary)
			}
			return nil, nil
		}
		for _, s := range []*store.Store{a, b} {
			if _, err := s.FillOutbox(ctx, "b", 100, time.Now(), pick); err != nil {
				t.Fatal(err)
			}
		}
		if err := open.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.FillOutbox(ctx, "b", 100, time.Now(), pick); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(seen, ","); got != "b joined,on its way,an hour old" {
			t.Errorf("considered %q", got)
		}
	})
}

func TestOneReplicaAtATimeHoldsAPeersDialLease(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a, b := mustReplicas(t, dsn)
		lease := func(s *store.Store, peers ...string) map[string]bool {
			t.Helper()
			held, err := s.DialLeases(ctx, peers)
			if err != nil {
				t.Fatal(err)
			}
			return held
		}
		if held := lease(a, "b", "c"); !held["b"] || !held["c"] {
			t.Fatalf("the first replica holds %v", held)
		}
		if a.Dialect() != store.Postgres {
			return // one process: it holds every lease
		}
		if held := lease(b, "b", "c"); held["b"] || held["c"] {
			t.Fatalf("the second replica holds %v too", held)
		}
		if held := lease(a, "b", "c"); !held["b"] || !held["c"] {
			t.Fatalf("the first replica lost its leases: %v", held)
		}
		a.ReleaseDialLease(ctx, "b")
		if held := lease(b, "b", "c"); !held["b"] || held["c"] {
			t.Fatalf("after the first let b go, the second holds %v", held)
		}
		// Leases of peers no longer named are let go; a replica that stops
		// lets go of all.
		if held := lease(b); len(held) != 0 {
			t.Fatal(held)
		}
		if held := lease(a, "b"); !held["b"] {
			t.Fatalf("b's lease was not let go: %v", held)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if held := lease(b, "b", "c"); !held["b"] || !held["c"] {
			t.Fatalf("after the first stopped, the second holds %v", held)
		}
	})
}

func TestReplicasAskingForTheServersIdentityAtOnceAgreeOnOne(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		for round := range 5 {
			replicas := []*store.Store{MustOpen(t, dsn), MustOpen(t, dsn), MustOpen(t, dsn)}
			if round > 0 {
				if _, err := replicas[0].DB().ExecContext(ctx, `DELETE FROM server_keys`); err != nil {
					t.Fatal(err)
				}
				if _, err := replicas[0].DB().ExecContext(ctx, `DELETE FROM server_identity`); err != nil {
					t.Fatal(err)
				}
			}
			ids := make([]string, len(replicas))
			var wg sync.WaitGroup
			startGun := make(chan struct{})
			for i, s := range replicas {
				wg.Go(func() {
					<-startGun
					id, err := s.ServerIdentity(ctx, func() (string, aramaki.ServerKey, error) {
						pub, prv, err := ed25519.GenerateKey(nil)
						return fmt.Sprintf("srv_%016d", i), aramaki.ServerKey{ID: aramaki.KeyID(pub), Public: pub, Private: prv, Created: time.Now()}, err
					})
					if err != nil {
						t.Error(err)
					}
					ids[i] = id.ID
				})
			}
			close(startGun)
			wg.Wait()
			var n int
			replicas[0].DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM server_identity`).Scan(&n)
			if ids[0] != ids[1] || ids[1] != ids[2] || n != 1 {
				t.Fatalf("round %d: the replicas have identities %v; the database %d", round, ids, n)
			}
		}
	})
}
