package federation_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/federation"
	"github.com/aramaki/aramaki/netfault"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
)

var root = aramaki.Principal{User: "root", Bindings: []aramaki.RoleBinding{{User: "root", System: aramaki.GlobalScope, Role: aramaki.RoleAdmin}}}

type staticConfig struct{ systems []aramaki.System }

func (c staticConfig) Load(context.Context) (aramaki.ConfigSnapshot, []string, error) {
	return aramaki.ConfigSnapshot{Commit: aramaki.Commit{Hash: "c1", Author: "T <t@example.com>", Message: "systems", Time: time.Now()}, Systems: c.systems}, nil, nil
}

// linkServer is a server in process with its links served over plain
// HTTP on loopback.
type linkServer struct {
	svc   *service.Service
	links *federation.Links
	url   string
	ctx   context.Context
}

func MustLinkServer(t testing.TB, name string, systems ...aramaki.System) *linkServer {
	t.Helper()
	return mustLinkServerWith(t, name, nil, systems...)
}

// mustLinkServerWith is MustLinkServer with its links tuned by tune
// before they run.
func mustLinkServerWith(t testing.TB, name string, tune func(*federation.Links), systems ...aramaki.System) *linkServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &linkServer{ctx: ctx}
	links := &federation.Links{Log: log}
	if tune != nil {
		tune(links)
	}
	srv := httptest.NewServer(links.Handler())
	t.Cleanup(srv.Close)
	s.url = srv.URL
	s.svc = service.New(st, staticConfig{systems}, log, service.Options{ServerName: name, URL: srv.URL})
	if err := s.svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.SyncConfig(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	links.Svc = s.svc
	s.links = links
	go links.Run(ctx)
	return s
}

// joinDirect joins the inviter in process, with the inviter's URL as
// given (a fault proxy in front of it, say).
type joinDirect struct {
	inviter *linkServer
	url     string
}

func (d joinDirect) Join(ctx context.Context, token string, self service.JoinSelf) (aramaki.Peer, string, error) {
	id, secret, _ := strings.Cut(token, " ")
	inviter, _ := d.inviter.svc.Identity(ctx)
	me, _, err := d.inviter.svc.PeerJoins(ctx, service.JoinAttempt{Invitation: id, Secret: secret, InviterKey: aramaki.KeyFingerprint(inviter.Current().Public),
		Server: self.Server, Name: self.Name, URL: self.URL, PublicKey: self.Key.Public})
	if err != nil {
		return aramaki.Peer{}, "", err
	}
	var keys []aramaki.PeerKey
	for _, k := range me.Keys {
		keys = append(keys, aramaki.PeerKey{ID: k.ID, Public: k.Public, Added: time.Now()})
	}
	return aramaki.Peer{Server: me.ID, URL: d.url, Keys: keys}, "a", nil
}

// MustPeer makes b a peer of a (b joins a, reaching it at url) and grants
// b the events of system on a.
func MustPeer(t testing.TB, a, b *linkServer, url, system string) aramaki.Grant {
	t.Helper()
	b.svc.SetJoiner(joinDirect{a, url})
	inv, err := a.svc.CreateInvitation(a.ctx, root, "b", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.AcceptInvitation(b.ctx, root, inv.ID+" "+inv.Secret, ""); err != nil {
		t.Fatal(err)
	}
	g, err := a.svc.CreateGrant(a.ctx, root, service.GrantRequest{Peer: "b", Systems: []string{system}, Kinds: []aramaki.GrantKind{aramaki.GrantEvents},
		Until: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// remoteNotes returns the summaries of a's events on b, oldest first.
func remoteNotes(t *testing.T, b *linkServer) []string {
	t.Helper()
	var out []string
	var cursor string
	for {
		page, err := b.svc.Timeline(b.ctx, root, service.TimelineRequest{Limit: aramaki.MaxTimelineLimit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			if e.Actor == "peer:a" && len(e.Systems) == 1 && e.Systems[0] == "storage@a" {
				out = append(out, e.Summary)
			}
		}
		if page.Next == nil {
			break
		}
		cursor = page.Next.String()
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEventsFlowToThePeerThatWasGrantedThemAndStopWhenTheGrantIsRevoked(t *testing.T) {
	a := MustLinkServer(t, "a", aramaki.System{ID: "storage", Title: "Storage"}, aramaki.System{ID: "billing", Title: "Billing"})
	b := MustLinkServer(t, "b")
	g := MustPeer(t, a, b, a.url, "storage")
	for _, n := range []struct{ system, text string }{{"storage", "disk 3 swapped"}, {"billing", "invoices"}, {"storage", "rebalanced"}} {
		if _, err := a.svc.PostNote(a.ctx, root, n.system, n.text); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "a's storage events on b", func() bool { return len(remoteNotes(t, b)) == 2 })
	if got := strings.Join(remoteNotes(t, b), "|"); got != "disk 3 swapped|rebalanced" {
		t.Errorf("on b: %q", got)
	}
	if _, err := a.svc.RevokeGrant(a.ctx, root, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.PostNote(a.ctx, root, "storage", "after the revocation"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := remoteNotes(t, b); len(got) != 2 {
		t.Errorf("b received after the grant was revoked: %q", got)
	}
}

// While the link is cut and delayed again and again, every event reaches
// the peer exactly once, in order.
func TestEveryEventArrivesOnceAndInOrderThroughAFaultyLink(t *testing.T) {
	a := MustLinkServer(t, "a", aramaki.System{ID: "storage", Title: "Storage"})
	b := MustLinkServer(t, "b")
	proxy := netfault.MustStart(t, strings.TrimPrefix(a.url, "http://"))
	MustPeer(t, a, b, "http://"+proxy.Addr(), "storage")
	ctx, stop := context.WithCancel(context.Background())
	healed := proxy.Chaos(ctx, rand.New(rand.NewPCG(1, 2)), 150*time.Millisecond, 200*time.Millisecond, 30*time.Millisecond)
	const n = 2000
	for i := range n {
		if _, err := a.svc.PostNote(a.ctx, root, "storage", fmt.Sprintf("event %04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	stop()
	<-healed
	waitFor(t, 60*time.Second, "every event on b", func() bool { return len(remoteNotes(t, b)) >= n })
	got := remoteNotes(t, b)
	if len(got) != n {
		t.Fatalf("%d events on b, want %d", len(got), n)
	}
	for i, s := range got {
		if want := fmt.Sprintf("event %04d", i); s != want {
			t.Fatalf("event %d on b is %q, want %q", i, s, want)
		}
	}
	if st := proxy.Stats(); st.Cuts == 0 {
		t.Errorf("the link was never cut: %+v", st)
	}
}

// A peer's system used here takes the status the peer shares: unknown
// until a grant shares it.
func TestAPeersSystemHereHasTheStatusThePeerShares(t *testing.T) {
	a := MustLinkServer(t, "a", aramaki.System{ID: "storage", Title: "Storage"})
	b := MustLinkServer(t, "b", aramaki.System{ID: "shop", Title: "Shop", Subsystems: []string{"storage@a"}})
	MustPeer(t, a, b, a.url, "storage")
	status := func() aramaki.Status {
		v, err := b.svc.SystemStatus(b.ctx, root, "shop")
		if err != nil {
			t.Fatal(err)
		}
		return v.Status
	}
	if got := status(); got != aramaki.StatusUnknown {
		t.Fatalf("before the status is shared: %s", got)
	}
	if _, err := a.svc.CreateGrant(a.ctx, root, service.GrantRequest{Peer: "b", Systems: []string{"storage"}, Kinds: []aramaki.GrantKind{aramaki.GrantStatus},
		Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "storage@a's status on b", func() bool { return status() == aramaki.StatusOK })
}
