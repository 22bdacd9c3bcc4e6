package federation_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/wire"
)

// peerKeyIDs returns the ids of the keys s knows of its peer name.
func peerKeyIDs(t *testing.T, s *linkServer, name string) []string {
	t.Helper()
	peers, err := s.svc.Peers(s.ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range peers {
		if p.Name == name && p.Removed == nil {
			for _, k := range p.Keys {
				ids = append(ids, k.ID)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// eventsOfKind returns the summaries of s's events of a kind, newest first.
func eventsOfKind(t *testing.T, s *linkServer, kind aramaki.EventKind) []string {
	t.Helper()
	page, err := s.svc.Timeline(s.ctx, root, service.TimelineRequest{Limit: aramaki.MaxTimelineLimit})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range page.Events {
		if e.Kind == kind {
			out = append(out, e.Summary)
		}
	}
	return out
}

// A server that rotates its key keeps its links: its sessions end and
// start again with a hello signed by the new key, which carries the key
// endorsed by the old one; the peer trusts it through that, stores it
// with an event on its timeline, and events keep flowing — whichever side
// rotates, the one that accepted the link or the one that dialled.
func TestAServerThatRotatesItsKeyKeepsItsLinksAndItsPeerLearnsTheNewKey(t *testing.T) {
	a := MustLinkServer(t, "a", aramaki.System{ID: "storage", Title: "Storage"})
	b := MustLinkServer(t, "b")
	MustPeer(t, a, b, a.url, "storage") // b dials a
	post := func(text string) {
		t.Helper()
		if _, err := a.svc.PostNote(a.ctx, root, "storage", text); err != nil {
			t.Fatal(err)
		}
	}
	post("before any rotation")
	waitFor(t, 10*time.Second, "the first event on b", func() bool { return len(remoteNotes(t, b)) == 1 })
	aFirst, bFirst := mustIdentity(t, a).Current().ID, mustIdentity(t, b).Current().ID
	if got := peerKeyIDs(t, b, "a"); !slices.Equal(got, []string{aFirst}) {
		t.Fatalf("b knows a's keys %v, want %v", got, aFirst)
	}

	// a, which accepted the link, rotates; b learns the new key from a's
	// next hello, with no step out of band.
	rotated, err := a.svc.RotateServerKey(a.ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	aNew := rotated.Current().ID
	want := []string{aFirst, aNew}
	slices.Sort(want)
	waitFor(t, 10*time.Second, "b to learn a's new key", func() bool { return slices.Equal(peerKeyIDs(t, b, "a"), want) })
	post("after a rotated")
	waitFor(t, 10*time.Second, "a's event after its rotation on b", func() bool { return len(remoteNotes(t, b)) == 2 })
	if got := eventsOfKind(t, b, aramaki.KindPeerKeyNew); len(got) != 1 || got[0] != "peer a rotated its key to "+aNew+", endorsed by a key this server knew; the old ones still verify" {
		t.Errorf("b's timeline says of a's key: %q", got)
	}

	// b, which dialled, rotates twice; a learns both keys.
	if _, err := b.svc.RotateServerKey(b.ctx, root); err != nil {
		t.Fatal(err)
	}
	bRotated, err := b.svc.RotateServerKey(b.ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a to learn b's new keys", func() bool { return len(peerKeyIDs(t, a, "b")) == 3 })
	if got := peerKeyIDs(t, a, "b"); !slices.Contains(got, bFirst) || !slices.Contains(got, bRotated.Current().ID) {
		t.Errorf("a knows b's keys %v; want %s and %s among them", got, bFirst, bRotated.Current().ID)
	}
	post("after b rotated")
	waitFor(t, 10*time.Second, "a's event after b's rotation on b", func() bool { return len(remoteNotes(t, b)) == 3 })
	if got := strings.Join(remoteNotes(t, b), "|"); got != "before any rotation|after a rotated|after b rotated" {
		t.Errorf("on b: %q", got)
	}
	// The keys learned are kept: b's link with a is up and a's keys are
	// as they were, with no second event.
	if got := eventsOfKind(t, b, aramaki.KindPeerKeyNew); len(got) != 1 {
		t.Errorf("b's timeline has %d events of a's keys", len(got))
	}
}

// An adversary who claims to be a, b's peer, with a key b does not know
// presents a key chain meant to lead to it from a's real key: endorsed by
// its own key, by c's key for c, by a's key for another server, or from no
// key b knows. b refuses each hello and stores no key; a's genuine
// endorsement of a new key, though, is trusted, stored and on b's
// timeline.
func TestAHelloWithAForgedKeyChainIsRefusedAndNoKeyStored(t *testing.T) {
	b := MustLinkServer(t, "b")
	a := MustLinkServer(t, "a", aramaki.System{ID: "storage", Title: "Storage"})
	c := MustLinkServer(t, "c", aramaki.System{ID: "x", Title: "X"})
	mustJoinQuietly(t, b, a, "a")
	mustJoinQuietly(t, b, c, "c")
	adv := &adversary{t: t, b: b, bID: mustIdentity(t, b), aID: mustIdentity(t, a), cID: mustIdentity(t, c)}
	aKey, cKey := adv.aID.Current(), adv.cID.Current()
	newKey := func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	pubOf := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
	link := func(pub ed25519.PublicKey, endorsement []byte) wire.PeerKeyLink {
		return wire.PeerKeyLink{PublicKey: pub, Endorsement: endorsement}
	}
	// helloWith is a's hello to b with chain, signed by key.
	helloWith := func(nonce string, chain []wire.PeerKeyLink, key ed25519.PrivateKey) []byte {
		body, _ := json.Marshal(wire.PeerHello{Nonce: nonce, Keys: chain})
		m := adv.hello(adv.aID.ID, adv.bID.ID, nonce)
		m.Body = body
		return adv.signed(m, key)
	}
	before := peerKeyIDs(t, b, "a")

	for _, h := range []struct {
		name  string
		hello func(nonce string) []byte
	}{
		{"the new key endorsed by itself", func(nonce string) []byte {
			k := newKey()
			return helloWith(nonce, []wire.PeerKeyLink{link(aKey.Public, nil), link(pubOf(k), wire.EndorseKey(k, adv.aID.ID, pubOf(k)))}, k)
		}},
		{"the new key endorsed by c's key, for c", func(nonce string) []byte {
			k := newKey()
			return helloWith(nonce, []wire.PeerKeyLink{link(cKey.Public, nil), link(pubOf(k), wire.EndorseKey(cKey.Private, adv.cID.ID, pubOf(k)))}, k)
		}},
		{"c's key endorsing the new key for a", func(nonce string) []byte {
			k := newKey()
			return helloWith(nonce, []wire.PeerKeyLink{link(cKey.Public, nil), link(pubOf(k), wire.EndorseKey(cKey.Private, adv.aID.ID, pubOf(k)))}, k)
		}},
		{"a's key endorsing the new key for c, carried into a's chain", func(nonce string) []byte {
			k := newKey()
			return helloWith(nonce, []wire.PeerKeyLink{link(aKey.Public, nil), link(pubOf(k), wire.EndorseKey(aKey.Private, adv.cID.ID, pubOf(k)))}, k)
		}},
		{"a chain of keys b never saw", func(nonce string) []byte {
			k1, k2 := newKey(), newKey()
			return helloWith(nonce, []wire.PeerKeyLink{link(pubOf(k1), nil), link(pubOf(k2), wire.EndorseKey(k1, adv.aID.ID, pubOf(k2)))}, k2)
		}},
		{"a's genuine endorsement, the hello signed by another key", func(nonce string) []byte {
			k := newKey()
			return helloWith(nonce, []wire.PeerKeyLink{link(aKey.Public, nil), link(pubOf(k), wire.EndorseKey(aKey.Private, adv.aID.ID, pubOf(k)))}, newKey())
		}},
	} {
		t.Run(h.name, func(t *testing.T) {
			adv := adv.in(t)
			ws, theirs := adv.mustDial(adv.aID.ID)
			defer ws.CloseNow()
			adv.MustSend(ws, h.hello(mustNonce(t, theirs)))
			adv.MustSend(ws, adv.signed(adv.event(1, "storage", "evil: after "+h.name), aKey.Private))
			adv.MustBeRefused(ws, "bad hello")
			adv.MustHoldOnly(0)
			if got := peerKeyIDs(t, b, "a"); !slices.Equal(got, before) {
				t.Errorf("b knows a's keys %v, want %v", got, before)
			}
			if got := eventsOfKind(t, b, aramaki.KindPeerKeyNew); len(got) != 0 {
				t.Errorf("b's timeline: %q", got)
			}
		})
	}

	// a's own endorsement of its new key opens the link, and b keeps the
	// key: it verifies what a signs with it from then on.
	k := newKey()
	ws, theirs := adv.mustDial(adv.aID.ID)
	adv.MustSend(ws, helloWith(mustNonce(t, theirs), []wire.PeerKeyLink{link(aKey.Public, nil), link(pubOf(k), wire.EndorseKey(aKey.Private, adv.aID.ID, pubOf(k)))}, k))
	adv.MustSend(ws, adv.signed(adv.event(1, "storage", "a's first event with its new key"), k))
	adv.MustBeAcked(ws, 1)
	ws.CloseNow()
	adv.MustHoldOnly(1, "a's first event with its new key")
	want := append(slices.Clone(before), aramaki.KeyID(pubOf(k)))
	slices.Sort(want)
	if got := peerKeyIDs(t, b, "a"); !slices.Equal(got, want) {
		t.Errorf("b knows a's keys %v, want %v", got, want)
	}
	if got := eventsOfKind(t, b, aramaki.KindPeerKeyNew); len(got) != 1 || !strings.Contains(got[0], "peer a rotated its key to "+aramaki.KeyID(pubOf(k))) {
		t.Errorf("b's timeline: %q", got)
	}
}
