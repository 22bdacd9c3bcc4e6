package federation_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/federation"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/wire"
)

// An adversary speaks the federation protocol to b by hand, over b's
// real link endpoint: as a, b's peer, with a's own key (stolen, say) or
// with keys that are not a's; as c, another peer of b's, over a's link;
// with messages recorded from other connections, addressed to another
// server, altered after signing, too old, or about another server's
// systems. b refuses each one, closes the link, and stores nothing of it:
// only a's genuine messages are on b's timeline.
func TestForgedReplayedAndMisaddressedMessagesAreRefusedAndNothingOfThemStored(t *testing.T) {
	b := MustLinkServer(t, "b")
	a := MustLinkServer(t, "a", aramaki.System{ID: "storage", Title: "Storage"})
	c := MustLinkServer(t, "c", aramaki.System{ID: "x", Title: "X"})
	// a and c join b and are given no URL of b's: no real link is made,
	// the test speaks for a alone.
	mustJoinQuietly(t, b, a, "a")
	mustJoinQuietly(t, b, c, "c")
	adv := &adversary{t: t, b: b, bID: mustIdentity(t, b), aID: mustIdentity(t, a), cID: mustIdentity(t, c)}
	aKey, cKey := adv.aID.Current().Private, adv.cID.Current().Private
	_, mallory, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	// The genuine article first: a's event is stored and acknowledged.
	ws, _ := adv.MustHandshake()
	first := adv.signed(adv.event(1, "storage", "a's genuine first event"), aKey)
	adv.MustSend(ws, first)
	adv.MustBeAcked(ws, 1)
	ws.CloseNow()
	adv.MustHoldOnly(1, "a's genuine first event")

	// Replayed on a new connection, it is recognised and not stored again.
	ws, _ = adv.MustHandshake()
	adv.MustSend(ws, first)
	adv.MustBeAcked(ws, 1)
	ws.CloseNow()
	adv.MustHoldOnly(1, "a's genuine first event")

	t.Run("no peer of b's cannot open a link at all", func(t *testing.T) {
		_, resp, err := websocket.Dial(context.Background(), adv.linkURL("srv_00000000000000ff"), &websocket.DialOptions{Subprotocols: []string{wire.FederationSubprotocol}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("a link as an unknown server: %v (%v)", err, resp)
		}
	})

	// Handshakes that must fail. In each, a genuine event of a's follows
	// the hello at once: with the hello refused, not even that is stored.
	var recorded []byte // a genuine hello of an earlier connection
	ws, recorded = adv.MustHandshake()
	ws.CloseNow()
	for _, h := range []struct {
		name    string
		claimed string // the server the dialler names in the URL
		hello   func(adv *adversary, nonce string) []byte
	}{
		{"a hello signed by a key of no one's, claiming to be a", adv.aID.ID, func(adv *adversary, nonce string) []byte {
			return adv.signed(adv.hello(adv.aID.ID, adv.bID.ID, nonce), mallory)
		}},
		{"a hello signed by a key of no one's, named as a's key", adv.aID.ID, func(adv *adversary, nonce string) []byte {
			return withKeyID(adv.t, adv.signed(adv.hello(adv.aID.ID, adv.bID.ID, nonce), mallory), adv.aID.Current().ID)
		}},
		{"a hello as a signed with c's key", adv.aID.ID, func(adv *adversary, nonce string) []byte {
			return adv.signed(adv.hello(adv.aID.ID, adv.bID.ID, nonce), cKey)
		}},
		{"c's own hello on a link opened as a", adv.aID.ID, func(adv *adversary, nonce string) []byte {
			return adv.signed(adv.hello(adv.cID.ID, adv.bID.ID, nonce), cKey)
		}},
		{"a's hello addressed to c", adv.aID.ID, func(adv *adversary, nonce string) []byte {
			return adv.signed(adv.hello(adv.aID.ID, adv.cID.ID, nonce), aKey)
		}},
		{"a's hello recorded from another connection", adv.aID.ID, func(*adversary, string) []byte { return recorded }},
		{"a's hello with the nonce altered after signing", adv.aID.ID, func(adv *adversary, nonce string) []byte {
			f := adv.signed(adv.hello(adv.aID.ID, adv.bID.ID, strings.Repeat("A", len(nonce))), aKey)
			return alter(adv.t, f, strings.Repeat("A", len(nonce)), nonce)
		}},
		{"a's hello sent an hour ago", adv.aID.ID, func(adv *adversary, nonce string) []byte {
			m := adv.hello(adv.aID.ID, adv.bID.ID, nonce)
			m.Sent = time.Now().Add(-time.Hour)
			return adv.signed(m, aKey)
		}},
	} {
		t.Run(h.name, func(t *testing.T) {
			adv := adv.in(t)
			ws, theirs := adv.mustDial(h.claimed)
			defer ws.CloseNow()
			adv.MustSend(ws, h.hello(adv, mustNonce(t, theirs)))
			adv.MustSend(ws, adv.signed(adv.event(2, "storage", "evil: after a "+h.name), aKey))
			adv.MustBeRefused(ws, "bad hello")
			adv.MustHoldOnly(1, "a's genuine first event")
		})
	}
	t.Run("b's own hello reflected back to it", func(t *testing.T) {
		adv := adv.in(t)
		ws, _ := adv.mustDial(adv.aID.ID)
		defer ws.CloseNow()
		adv.MustSend(ws, adv.theirHello)
		adv.MustBeRefused(ws, "bad hello")
		adv.MustHoldOnly(1, "a's genuine first event")
	})

	// Messages on a link that was opened properly, with a's key: each is
	// refused, the link closed, and nothing of it stored.
	for _, m := range []struct {
		name  string
		frame func(adv *adversary) []byte
		want  string // in the reason b closes the link with
	}{
		{"an event addressed to c", func(adv *adversary) []byte {
			m := adv.event(2, "storage", "evil: addressed to c")
			m.Recipient = adv.cID.ID
			return adv.signed(m, aKey)
		}, "sent to " + adv.cID.ID},
		{"an event as a signed with c's key", func(adv *adversary) []byte {
			return adv.signed(adv.event(2, "storage", "evil: signed by c"), cKey)
		}, "is not a key"},
		{"an event signed by a key of no one's, named as a's key", func(adv *adversary) []byte {
			return withKeyID(adv.t, adv.signed(adv.event(2, "storage", "evil: signed by no one"), mallory), adv.aID.Current().ID)
		}, "the signature does not verify"},
		{"an event altered after a signed it", func(adv *adversary) []byte {
			return alter(adv.t, adv.signed(adv.event(2, "storage", "a's genuine second event"), aKey), "a's genuine", "evil: altered")
		}, "the signature does not verify"},
		{"an event sent an hour ago", func(adv *adversary) []byte {
			m := adv.event(2, "storage", "evil: an hour old")
			m.Sent = time.Now().Add(-time.Hour)
			return adv.signed(m, aKey)
		}, "/2: sent "}, // the reason is clipped before "ago"
		{"an event sent an hour ahead", func(adv *adversary) []byte {
			m := adv.event(2, "storage", "evil: an hour ahead")
			m.Sent = time.Now().Add(time.Hour)
			return adv.signed(m, aKey)
		}, "/2: sent "}, // and before "ahead"
		{"c's event over a's link", func(adv *adversary) []byte {
			m := adv.event(2, "x", "evil: c's over a's link")
			m.Origin, m.ID = adv.cID.ID, wire.PeerMessageID(adv.cID.ID, wire.KindEvent, 2)
			return adv.signed(m, cKey)
		}, "a message from " + adv.cID.ID + " on the link of " + adv.aID.ID},
		{"an event claiming to come from b itself", func(adv *adversary) []byte {
			m := adv.event(2, "storage", "evil: b's own")
			m.Origin, m.Recipient, m.ID = adv.bID.ID, adv.aID.ID, wire.PeerMessageID(adv.bID.ID, wire.KindEvent, 2)
			return adv.signed(m, aKey)
		}, "claims to come from this server"},
		{"an event of a system of c's", func(adv *adversary) []byte {
			return adv.signed(adv.event(2, "x@c", "evil: c's system through a"), aKey)
		}, "x@c is not a system id"},
		{"a hello in a running link", func(adv *adversary) []byte {
			return adv.signed(adv.hello(adv.aID.ID, adv.bID.ID, strings.Repeat("n", 32)), aKey)
		}, "unexpected hello"},
	} {
		t.Run(m.name, func(t *testing.T) {
			adv := adv.in(t)
			ws, _ := adv.MustHandshake()
			defer ws.CloseNow()
			adv.MustSend(ws, m.frame(adv))
			adv.MustBeRefused(ws, m.want)
			adv.MustHoldOnly(1, "a's genuine first event")
		})
	}

	// After all that, a's genuine messages still get through.
	ws, _ = adv.MustHandshake()
	adv.MustSend(ws, adv.signed(adv.event(2, "storage", "a's genuine second event"), aKey))
	adv.MustBeAcked(ws, 2)
	ws.CloseNow()
	adv.MustHoldOnly(2, "a's genuine first event", "a's genuine second event")
}

// adversary speaks to b's link endpoint by hand.
type adversary struct {
	t             *testing.T
	b             *linkServer
	bID, aID, cID aramaki.ServerIdentity
	theirHello    []byte // the last hello b sent
}

// in is the adversary reporting to a subtest.
func (adv *adversary) in(t *testing.T) *adversary {
	c := *adv
	c.t = t
	return &c
}

func (adv *adversary) linkURL(claimed string) string {
	return "ws" + strings.TrimPrefix(adv.b.url, "http") + federation.LinkPath + "?server=" + claimed
}

// mustDial opens a link to b naming claimed as the dialling server, and
// reads b's hello.
func (adv *adversary) mustDial(claimed string) (*websocket.Conn, wire.PeerMessage) {
	adv.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, adv.linkURL(claimed), &websocket.DialOptions{Subprotocols: []string{wire.FederationSubprotocol}})
	if err != nil {
		adv.t.Fatal(err)
	}
	ws.SetReadLimit(wire.MaxPeerFrameSize)
	_, frame, err := ws.Read(ctx)
	if err != nil {
		adv.t.Fatalf("b's hello: %v", err)
	}
	adv.theirHello = frame
	m := adv.open(frame)
	if m.Kind != wire.KindHello {
		adv.t.Fatalf("b started with a %s", m.Kind)
	}
	return ws, m
}

// MustHandshake opens a link to b as a, with a's key, and returns it with
// the hello a sent.
func (adv *adversary) MustHandshake() (*websocket.Conn, []byte) {
	adv.t.Helper()
	ws, theirs := adv.mustDial(adv.aID.ID)
	hello := adv.signed(adv.hello(adv.aID.ID, adv.bID.ID, mustNonce(adv.t, theirs)), adv.aID.Current().Private)
	adv.MustSend(ws, hello)
	return ws, hello
}

// open checks a frame from b as a would.
func (adv *adversary) open(frame []byte) wire.PeerMessage {
	adv.t.Helper()
	m, err := wire.OpenPeerMessage(frame, wire.PeerVerifier{Self: adv.aID.ID, Now: time.Now(), Key: func(server, keyID string) (ed25519.PublicKey, bool) {
		k := adv.bID.Current()
		return k.Public, server == adv.bID.ID && keyID == k.ID
	}})
	if err != nil {
		adv.t.Fatalf("b's message: %v", err)
	}
	return m
}

// hello is from's hello to to, with from's current key as its chain.
func (adv *adversary) hello(from, to, nonce string) wire.PeerMessage {
	var chain []wire.PeerKeyLink
	for _, id := range []aramaki.ServerIdentity{adv.aID, adv.bID, adv.cID} {
		if id.ID == from {
			chain = []wire.PeerKeyLink{{PublicKey: id.Current().Public}}
		}
	}
	body, _ := json.Marshal(wire.PeerHello{Nonce: nonce, Keys: chain})
	return wire.PeerMessage{ID: wire.PeerMessageID(from, wire.KindHello, 0), Origin: from, Recipient: to, Sent: time.Now(), Kind: wire.KindHello, Body: body}
}

// event is a's event message numbered seq about one of its systems.
func (adv *adversary) event(seq uint64, system, summary string) wire.PeerMessage {
	id := make([]byte, 16)
	rand.Read(id)
	body, _ := json.Marshal(wire.PeerEvent{ID: "ev_" + hex.EncodeToString(id), Time: time.Now().UTC(), Kind: "note", Systems: []string{system}, Summary: summary})
	return wire.PeerMessage{ID: wire.PeerMessageID(adv.aID.ID, wire.KindEvent, seq), Origin: adv.aID.ID, Recipient: adv.bID.ID, Seq: seq, Sent: time.Now(),
		Kind: wire.KindEvent, Body: body}
}

func (adv *adversary) signed(m wire.PeerMessage, key ed25519.PrivateKey) []byte {
	adv.t.Helper()
	frame, err := wire.SignPeerMessage(m, key)
	if err != nil {
		adv.t.Fatal(err)
	}
	return frame
}

func (adv *adversary) MustSend(ws *websocket.Conn, frame []byte) {
	adv.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
		adv.t.Fatalf("send: %v", err)
	}
}

// MustBeAcked reads b's acknowledgement of a's messages up to seq.
func (adv *adversary) MustBeAcked(ws *websocket.Conn, seq uint64) {
	adv.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, frame, err := ws.Read(ctx)
		if err != nil {
			adv.t.Fatalf("no acknowledgement of %d: %v", seq, err)
		}
		if m := adv.open(frame); m.Kind == wire.KindAck {
			if m.Seq != seq {
				adv.t.Fatalf("b acknowledged %d, want %d", m.Seq, seq)
			}
			return
		}
	}
}

// MustBeRefused reads until b closes the link, which it must do as a
// policy violation, saying why.
func (adv *adversary) MustBeRefused(ws *websocket.Conn, want string) {
	adv.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, frame, err := ws.Read(ctx)
		if err == nil {
			if m := adv.open(frame); m.Kind == wire.KindAck {
				adv.t.Errorf("b acknowledged %d", m.Seq)
			}
			continue
		}
		var closed websocket.CloseError
		if !errors.As(err, &closed) || closed.Code != websocket.StatusPolicyViolation || !strings.Contains(closed.Reason, want) {
			adv.t.Errorf("b ended the link with %v, want a policy violation saying %q", err, want)
		}
		return
	}
}

// MustHoldOnly checks what b stored of a: the last message it stored,
// and the events of a on b's whole timeline, oldest first. Nothing marked
// evil is anywhere on it.
func (adv *adversary) MustHoldOnly(seq uint64, summaries ...string) {
	adv.t.Helper()
	b := adv.b
	for _, peer := range []string{"a", "c"} {
		want := map[string]uint64{"a": seq, "c": 0}[peer]
		l, err := b.svc.PeerLinkState(b.ctx, peer)
		if err != nil {
			adv.t.Fatal(err)
		}
		if l.ReceivedSeq != want {
			adv.t.Errorf("b stored %s's messages up to %d, want %d", peer, l.ReceivedSeq, want)
		}
	}
	var fromA []string
	cursor := ""
	for {
		page, err := b.svc.Timeline(b.ctx, root, service.TimelineRequest{Limit: aramaki.MaxTimelineLimit, Cursor: cursor})
		if err != nil {
			adv.t.Fatal(err)
		}
		for _, e := range page.Events {
			if strings.Contains(e.Summary, "evil") {
				adv.t.Errorf("b stored %s %q by %s on %v", e.Kind, e.Summary, e.Actor, e.Systems)
			}
			for _, s := range e.Systems {
				if strings.Contains(s, "@") && s != "storage@a" {
					adv.t.Errorf("b stored %s %q by %s on %s", e.Kind, e.Summary, e.Actor, s)
				}
			}
			if e.Actor == "peer:a" && e.Kind == "note" {
				fromA = append([]string{e.Summary}, fromA...)
				if len(e.Systems) != 1 || e.Systems[0] != "storage@a" {
					adv.t.Errorf("a's event %q is on %v", e.Summary, e.Systems)
				}
			}
		}
		if page.Next == nil {
			break
		}
		cursor = page.Next.String()
	}
	if strings.Join(fromA, "|") != strings.Join(summaries, "|") {
		adv.t.Errorf("b holds of a: %q, want %q", fromA, summaries)
	}
}

// mustJoinQuietly makes joiner a peer of inviter, which calls it name;
// the joiner is given no URL of the inviter's, so neither dials the other.
func mustJoinQuietly(t *testing.T, inviter, joiner *linkServer, name string) {
	t.Helper()
	joiner.svc.SetJoiner(joinDirect{inviter, ""})
	inv, err := inviter.svc.CreateInvitation(inviter.ctx, root, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := joiner.svc.AcceptInvitation(joiner.ctx, root, inv.ID+" "+inv.Secret, ""); err != nil {
		t.Fatal(err)
	}
}

func mustIdentity(t *testing.T, s *linkServer) aramaki.ServerIdentity {
	t.Helper()
	id, err := s.svc.Identity(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustNonce(t *testing.T, hello wire.PeerMessage) string {
	t.Helper()
	h, err := wire.DecodePeerHello(hello.Body)
	if err != nil {
		t.Fatal(err)
	}
	return h.Nonce
}

// withKeyID rewrites the key id a frame names, leaving its signature.
func withKeyID(t *testing.T, frame []byte, keyID string) []byte {
	t.Helper()
	var f wire.SignedPeerFrame
	if err := json.Unmarshal(frame, &f); err != nil {
		t.Fatal(err)
	}
	f.KeyID = keyID
	out, _ := json.Marshal(f)
	return out
}

// alter replaces old with new in the signed message of a frame, leaving
// its signature.
func alter(t *testing.T, frame []byte, old, new string) []byte {
	t.Helper()
	var f wire.SignedPeerFrame
	if err := json.Unmarshal(frame, &f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(f.Batch, []byte(old)) {
		t.Fatalf("%q is not in %s", old, f.Batch)
	}
	f.Batch = bytes.Replace(f.Batch, []byte(old), []byte(new), 1)
	out, _ := json.Marshal(f)
	return out
}
