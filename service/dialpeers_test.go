package service_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
)

// replicatedLeases is a store whose dial leases another replica could
// take, as on PostgreSQL: letting one go lets it go.
type replicatedLeases struct{ *store.Store }

func (replicatedLeases) ReleaseDialLease(context.Context, string) bool { return true }

// A replica dials the peers this server joined while it holds their
// leases (one process on SQLite holds every one); one that cannot link
// with a peer for dialYield lets the lease go for a few seconds, for
// another replica to try, and then takes it again if none did. With one
// process, there is no other to try: it dials on.
func TestAReplicaThatCannotLinkWithAPeerLetsAnotherTry(t *testing.T) {
	t.Run("replicas", func(t *testing.T) { testDialYield(t, true) })
	t.Run("one process", func(t *testing.T) { testDialYield(t, false) })
}

func testDialYield(t *testing.T, replicated bool) {
	a := MustFedServer(t, "a")
	var (
		mu  sync.Mutex
		now = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var ports service.Store = st
	if replicated {
		ports = replicatedLeases{st}
	}
	b := service.New(ports, staticConfig{}, log, service.Options{ServerName: "b", URL: "https://b.example:8443", Now: clock})
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	b.SetJoiner(&directJoin{inviter: a})
	inv, _ := a.svc.CreateInvitation(a.ctx, root, "b", 0)
	if _, err := b.AcceptInvitation(ctx, root, inv.ID+" "+inv.Secret, ""); err != nil {
		t.Fatal(err)
	}
	dials := func() bool {
		t.Helper()
		peers, err := b.DialPeers(ctx)
		if err != nil || len(peers) > 1 {
			t.Fatalf("dial peers: %+v, %v", peers, err)
		}
		return len(peers) == 1
	}
	// a invited b: a does not dial b.
	if peers, err := a.svc.DialPeers(a.ctx); err != nil || len(peers) != 0 {
		t.Fatalf("the inviting server dials %+v, %v", peers, err)
	}
	if !dials() {
		t.Fatal("b does not dial the server it joined")
	}
	server := mustPeer(t, &fedServer{svc: b, ctx: ctx}, "a").Server
	b.LinkDown(server, errors.New("dial: connection refused"))
	advance(29 * time.Second)
	if !dials() {
		t.Fatal("b gave up after 29 s")
	}
	advance(time.Second)
	if !replicated {
		if !dials() {
			t.Fatal("b, the only process, stopped dialling after 30 s of failing to link")
		}
		return
	}
	if dials() {
		t.Fatal("b kept the lease after 30 s of failing to link")
	}
	advance(2 * time.Second)
	if dials() {
		t.Fatal("b took the lease back within 2 s")
	}
	advance(time.Second)
	if !dials() {
		t.Fatal("b did not take the lease back after 3 s, when no other replica did")
	}
	// Up: kept however long.
	b.LinkUp(server)
	advance(time.Hour)
	if !dials() {
		t.Fatal("b let go of a lease while linked")
	}
	// Down again: counted from then.
	b.LinkDown(server, errors.New("read: connection reset"))
	advance(29 * time.Second)
	if !dials() {
		t.Fatal("b gave up 29 s after the link went down")
	}
	advance(time.Second)
	if dials() {
		t.Fatal("b kept the lease 30 s after the link went down")
	}
}
