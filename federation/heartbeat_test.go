package federation_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/federation"
	"github.com/aramaki/aramaki/netfault"
	"github.com/aramaki/aramaki/service"
)

// linkError returns what s last heard of its link with the peer name:
// whether it is up, and why it went down.
func linkError(t *testing.T, s *linkServer, name string) service.LinkStatus {
	t.Helper()
	peers, err := s.svc.PeerStatuses(s.ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.Name == name {
			return p.Link
		}
	}
	t.Fatalf("no peer %s", name)
	return service.LinkStatus{}
}

// A peer that vanishes without closing TCP — the cable cut, the machine
// paused — stops answering pings: both ends give the session up within
// the ping interval and timeout, saying so, and once the network is back
// the dialling side links again and what waited is delivered.
func TestALinkWhosePeerStopsAnsweringEndsAndComesBack(t *testing.T) {
	fast := func(l *federation.Links) { l.PingEvery, l.PingTimeout = 100*time.Millisecond, 300*time.Millisecond }
	a := mustLinkServerWith(t, "a", fast, aramaki.System{ID: "storage", Title: "Storage"})
	b := mustLinkServerWith(t, "b", fast)
	proxy := netfault.MustStart(t, strings.TrimPrefix(a.url, "http://"))
	MustPeer(t, a, b, "http://"+proxy.Addr(), "storage")
	if _, err := a.svc.PostNote(a.ctx, root, "storage", "before the black hole"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first event on b", func() bool { return len(remoteNotes(t, b)) == 1 })

	proxy.Blackhole()
	start := time.Now()
	if _, err := a.svc.PostNote(a.ctx, root, "storage", "during the black hole"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		name, peer string
		server     *linkServer
	}{{"b", "a", b}, {"a", "b", a}} {
		waitFor(t, 5*time.Second, s.name+"'s link to end for want of a pong", func() bool {
			l := linkError(t, s.server, s.peer)
			return !l.Connected && strings.Contains(l.Error, "did not answer a ping within 300ms")
		})
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the sessions ended %v after the black hole; want within the ping interval and timeout", took)
	}
	if got := remoteNotes(t, b); len(got) != 1 {
		t.Fatalf("through a black hole, b holds %q", got)
	}

	proxy.Heal()
	waitFor(t, 30*time.Second, "the event of the black hole on b", func() bool { return len(remoteNotes(t, b)) == 2 })
	waitFor(t, 5*time.Second, "b's link up again", func() bool { return linkError(t, b, "a").Connected })
	if st := proxy.Stats(); st.Dropped == 0 || st.Broken != 0 {
		t.Errorf("proxy %+v: want bytes dropped and no connection reset", st)
	}
}
