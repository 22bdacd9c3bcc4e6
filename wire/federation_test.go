package wire_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki/wire"
)

// Three servers: A invites B; C is a third server, a peer of both.
const (
	srvA = "srv_00000000000000aa"
	srvB = "srv_00000000000000bb"
	srvC = "srv_00000000000000cc"
)

// Keys are made from fixed seeds so that failures repeat.
var (
	keyA    = peerKey(1)
	keyAOld = peerKey(2) // A's key before it rotated to keyA
	keyB    = peerKey(3)
	keyC    = peerKey(4)
)

func peerKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// changed is v changed: a good value made bad in one way.
func changed[T any](v T, change func(*T)) T {
	change(&v)
	return v
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// keyring is what a server knows of its peers' keys, old ones included.
type keyring map[string][]ed25519.PublicKey

func (r keyring) key(server, keyID string) (ed25519.PublicKey, bool) {
	for _, k := range r[server] {
		if wire.KeyID(k) == keyID {
			return k, true
		}
	}
	return nil, false
}

// verifierOf is the verifier of server self, which knows A's keys, old and
// new, and those of B and C.
func verifierOf(self string) wire.PeerVerifier {
	ring := keyring{srvA: {pub(keyA), pub(keyAOld)}, srvB: {pub(keyB)}, srvC: {pub(keyC)}}
	return wire.PeerVerifier{Self: self, Now: now, MaxSkew: time.Minute, Key: ring.key}
}

// event is the event numbered seq from origin to recipient.
func event(origin, recipient string, seq uint64) wire.PeerMessage {
	return wire.PeerMessage{ID: wire.PeerMessageID(origin, wire.KindEvent, seq), Origin: origin, Recipient: recipient, Seq: seq,
		Sent: now, Kind: wire.KindEvent, Body: json.RawMessage(`{"system":"webshop","summary":"HTTP 503"}`)}
}

// MustSign signs a message the sender would send.
func MustSign(t testing.TB, m wire.PeerMessage, key ed25519.PrivateKey) []byte {
	t.Helper()
	frame, err := wire.SignPeerMessage(m, key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.ID, err)
	}
	return frame
}

// signedFrame is a frame of A carrying any batch bytes, valid or not,
// signed with key as a peer might send it: it signs by the protocol's
// rule, not through this package.
func signedFrame(batch []byte, key ed25519.PrivateKey) []byte {
	sig := ed25519.Sign(key, append([]byte("aramaki-fed-v3\x00"), batch...))
	frame := []byte(`{"origin":"` + srvA + `","key_id":"` + wire.KeyID(pub(key)) + `","batch":`)
	frame = append(frame, batch...)
	return append(frame, `,"signature":"`+base64.StdEncoding.EncodeToString(sig)+`"}`...)
}

// frameOf writes a frame as it is, its batch byte for byte (a JSON
// encoder would compact it).
func frameOf(f wire.SignedPeerFrame) []byte {
	frame := []byte(`{"origin":"` + f.Origin + `","key_id":"` + f.KeyID + `","batch":`)
	frame = append(frame, f.Batch...)
	return append(frame, `,"signature":"`+base64.StdEncoding.EncodeToString(f.Signature)+`"}`...)
}

// batchOf is the batch of messages as a sender writes it: what they share
// once (from the first), then each one's seq, kind and body.
func batchOf(t testing.TB, ms ...wire.PeerMessage) []byte {
	t.Helper()
	type item struct {
		Seq  uint64          `json:"seq"`
		Kind wire.PeerKind   `json:"kind"`
		Body json.RawMessage `json:"body,omitempty"`
	}
	b := struct {
		Origin    string    `json:"origin"`
		Recipient string    `json:"recipient"`
		Sent      time.Time `json:"sent"`
		Messages  []item    `json:"messages"`
	}{Origin: ms[0].Origin, Recipient: ms[0].Recipient, Sent: ms[0].Sent, Messages: []item{}}
	for _, m := range ms {
		b.Messages = append(b.Messages, item{m.Seq, m.Kind, m.Body})
	}
	return mustJSON(t, b)
}

func mustFail(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func TestKeysAreNamedAndPinnedByTheirHash(t *testing.T) {
	id, fp := wire.KeyID(pub(keyA)), wire.KeyFingerprint(pub(keyA))
	if !wire.ValidKeyID(id) || len(fp) != 64 || id != "k_"+fp[:16] {
		t.Fatalf("key id %s, fingerprint %s", id, fp)
	}
	if wire.KeyID(pub(keyB)) == id {
		t.Fatal("two keys share an id")
	}
	for _, s := range []string{srvA, "srv_0123456789abcdef"} {
		if !wire.ValidServerID(s) {
			t.Errorf("%s refused", s)
		}
	}
	for _, s := range []string{"", "srv_", "srv_0123456789ABCDEF", "srv_0123456789abcde", "srv_0123456789abcdef0", "ag_0123456789abcdef", " srv_0123456789abcdef"} {
		if wire.ValidServerID(s) {
			t.Errorf("%q accepted as a server id", s)
		}
	}
	for _, s := range []string{"a", "tokyo", "dc-2", strings.Repeat("a", 63)} {
		if !wire.ValidPeerName(s) {
			t.Errorf("peer name %q refused", s)
		}
	}
	for _, s := range []string{"", "2dc", "-a", "Tokyo", "a_b", "a.b", "a@b", strings.Repeat("a", 64)} {
		if wire.ValidPeerName(s) {
			t.Errorf("peer name %q accepted", s)
		}
	}
}

func goodInvitation() wire.PeerInvitation {
	return wire.PeerInvitation{URL: "https://aramaki.a.example:8443", CASHA256: strings.Repeat("ab", 32), Server: srvA,
		Key: wire.KeyFingerprint(pub(keyA)), Name: "tokyo", ID: "0123456789abcdef", Secret: strings.Repeat("s", 43),
		Expires: now.Add(24 * time.Hour)}
}

// invitationJSON is a token of any JSON, as a damaged or forged one might be.
func invitationJSON(raw string) string {
	return wire.PeerInvitationPrefix + base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func TestPeerInvitationsRoundTripAndRefuseDamage(t *testing.T) {
	inv := goodInvitation()
	got, err := wire.ParsePeerInvitation(" " + inv.String() + "\n")
	if err != nil || got != inv {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	plain := changed(goodInvitation(), func(i *wire.PeerInvitation) { i.URL, i.CASHA256 = "http://127.0.0.1:8080", "" })
	if _, err := wire.ParsePeerInvitation(plain.String()); err != nil {
		t.Fatalf("plain-HTTP development invitation: %v", err)
	}
	// The parser leaves expiry to the inviting server, which keeps the invitation.
	expired := changed(goodInvitation(), func(i *wire.PeerInvitation) { i.Expires = now.Add(-time.Hour) })
	if _, err := wire.ParsePeerInvitation(expired.String()); err != nil {
		t.Fatalf("expired invitation refused by the parser: %v", err)
	}
	bad := []struct {
		name   string
		change func(*wire.PeerInvitation)
		want   string
	}{
		{"https without a pin", func(i *wire.PeerInvitation) { i.CASHA256 = "" }, "no SHA-256 CA fingerprint"},
		{"pin not hex", func(i *wire.PeerInvitation) { i.CASHA256 = strings.Repeat("zz", 32) }, "no SHA-256 CA fingerprint"},
		{"pin upper-case", func(i *wire.PeerInvitation) { i.CASHA256 = strings.Repeat("AB", 32) }, "no SHA-256 CA fingerprint"},
		{"pin on plain HTTP", func(i *wire.PeerInvitation) { i.URL = "http://x" }, "pins a CA for a plain-HTTP URL"},
		{"not http", func(i *wire.PeerInvitation) { i.URL = "ftp://x" }, "not a server URL"},
		{"credentials in the URL", func(i *wire.PeerInvitation) { i.URL = "https://u:p@x" }, "not a server URL"},
		{"no host", func(i *wire.PeerInvitation) { i.URL = "https:///path" }, "not a server URL"},
		{"bad server id", func(i *wire.PeerInvitation) { i.Server = "ag_0123456789abcdef" }, "no valid server id"},
		{"short key fingerprint", func(i *wire.PeerInvitation) { i.Key = i.Key[:32] }, "no valid key fingerprint"},
		{"bad peer name", func(i *wire.PeerInvitation) { i.Name = "Tokyo DC" }, "no valid peer name"},
		{"bad id", func(i *wire.PeerInvitation) { i.ID = "short" }, "no valid id"},
		{"weak secret", func(i *wire.PeerInvitation) { i.Secret = "short" }, "no valid secret"},
		{"secret outside base64url", func(i *wire.PeerInvitation) { i.Secret = strings.Repeat("s", 40) + "+/" }, "no valid secret"},
		{"no expiry", func(i *wire.PeerInvitation) { i.Expires = time.Time{} }, "no expiry"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.ParsePeerInvitation(changed(goodInvitation(), c.change).String())
			mustFail(t, err, c.want)
		})
	}
	tok := inv.String()
	damaged := []struct{ name, token, want string }{
		{"empty", "", "not a peer invitation"},
		{"an enrollment token", "arke1.e30", "not a peer invitation"},
		{"prefix only", wire.PeerInvitationPrefix, "damaged"},
		{"cut short", tok[:len(tok)-10], "damaged"},
		{"a character changed", tok[:20] + "!" + tok[21:], "not base64url"},
		{"too long", wire.PeerInvitationPrefix + strings.Repeat("A", 4096), "exceeds 4096"},
		{"unknown field", invitationJSON(`{"u":"https://x","x":1}`), "unknown field"},
		{"trailing data", invitationJSON(`{} {}`), "trailing data"},
		{"expiry not a time", invitationJSON(`{"e":"tomorrow"}`), "damaged"},
	}
	for _, c := range damaged {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.ParsePeerInvitation(c.token)
			mustFail(t, err, c.want)
		})
	}
}

// joinOf is B's join request answering inv, its proof made for inviter.
func joinOf(inv wire.PeerInvitation, inviter string) wire.JoinRequest {
	return wire.JoinRequest{Invitation: inv.ID, Secret: inv.Secret, InviterKey: inv.Key, Server: srvB, Name: "osaka",
		URL: "https://aramaki.b.example", CASHA256: strings.Repeat("cd", 32), PublicKey: pub(keyB),
		Proof: ed25519.Sign(keyB, wire.JoinProofBytes(inv.ID, inviter, inv.Key, srvB))}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestAJoinRequestProvesTheJoinerHoldsItsKeyForThisInviter(t *testing.T) {
	inv := goodInvitation()
	r, err := wire.DecodeJoinRequest(mustJSON(t, joinOf(inv, srvA)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.VerifyProof(srvA); err != nil {
		t.Fatalf("A refused B's proof: %v", err)
	}
	// C, handed the same request, refuses it: the proof was made for A.
	if err := r.VerifyProof(srvC); err == nil || !strings.Contains(err.Error(), "proof does not verify") {
		t.Fatalf("C accepted a proof made for A: %v", err)
	}
	forC, err := wire.DecodeJoinRequest(mustJSON(t, joinOf(inv, srvC)))
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, forC.VerifyProof(srvA), "proof does not verify")

	other := changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.Invitation = "fedcba9876543210" })
	mustFail(t, other.VerifyProof(srvA), "proof does not verify")
	stolen := changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.PublicKey = pub(keyC) })
	mustFail(t, stolen.VerifyProof(srvA), "proof does not verify")
	posing := changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.Server = srvC })
	mustFail(t, posing.VerifyProof(srvA), "proof does not verify")
	self := changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.Server = srvA })
	mustFail(t, self.VerifyProof(srvA), "cannot join itself")
	// The inviter's key B expects is B's to say: changed on the way, the
	// proof no longer holds.
	otherKey := changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.InviterKey = wire.KeyFingerprint(pub(keyC)) })
	mustFail(t, otherKey.VerifyProof(srvA), "proof does not verify")

	dialOnly := changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.URL, r.CASHA256 = "", "" })
	if _, err := wire.DecodeJoinRequest(mustJSON(t, dialOnly)); err != nil {
		t.Fatalf("a server that cannot be dialled may join: %v", err)
	}
}

func TestBadJoinRequestsAreRefusedWithAClearError(t *testing.T) {
	inv := goodInvitation()
	cases := []struct {
		name   string
		change func(*wire.JoinRequest)
		want   string
	}{
		{"bad invitation id", func(r *wire.JoinRequest) { r.Invitation = "../../etc" }, "not an invitation id"},
		{"weak secret", func(r *wire.JoinRequest) { r.Secret = "s" }, "not an invitation secret"},
		{"no inviter key", func(r *wire.JoinRequest) { r.InviterKey = "" }, "inviter_key  is not a key fingerprint"},
		{"inviter key in upper case", func(r *wire.JoinRequest) { r.InviterKey = strings.ToUpper(r.InviterKey) }, "not a key fingerprint"},
		{"bad server id", func(r *wire.JoinRequest) { r.Server = "srv_x" }, "not a server id"},
		{"terminal escapes in the name", func(r *wire.JoinRequest) { r.Name = "\u001b[2Josaka" }, `name \x1b[2Josaka is not a peer name`},
		{"https without a pin", func(r *wire.JoinRequest) { r.CASHA256 = "" }, "no SHA-256 CA fingerprint"},
		{"pin without a URL", func(r *wire.JoinRequest) { r.URL = "" }, "pins a CA but gives no URL"},
		{"credentials in the URL", func(r *wire.JoinRequest) { r.URL = "https://u:p@b" }, "not a server URL"},
		{"short key", func(r *wire.JoinRequest) { r.PublicKey = r.PublicKey[:31] }, "32-byte Ed25519 key"},
		{"no proof", func(r *wire.JoinRequest) { r.Proof = nil }, "64-byte Ed25519 signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.DecodeJoinRequest(mustJSON(t, changed(joinOf(inv, srvA), c.change)))
			mustFail(t, err, c.want)
		})
	}
	good := string(mustJSON(t, joinOf(inv, srvA)))
	for _, c := range []struct{ name, raw, want string }{
		{"unknown field", strings.Replace(good, `{`, `{"admin":true,`, 1), "unknown field"},
		{"trailing data", good + `{}`, "trailing data"},
		{"not JSON", "invitation=1", "malformed JSON"},
		{"too big", good[:len(good)-1] + `,"x":"` + strings.Repeat("x", 16<<10) + `"}`, "exceeds 16 KiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.DecodeJoinRequest([]byte(c.raw))
			mustFail(t, err, c.want)
		})
	}
}

// goodJoinResponse is A's answer to B's join of goodInvitation, signed
// with A's current key.
func goodJoinResponse() wire.JoinResponse {
	r := wire.JoinResponse{Server: srvA, Name: "tokyo", PublicKeys: [][]byte{pub(keyA), pub(keyAOld)},
		URL: "https://aramaki.a.example:8443", CASHA256: strings.Repeat("ab", 32)}
	return signedAnswer(r, keyA)
}

// signedAnswer is r signed with key for B's join of goodInvitation.
func signedAnswer(r wire.JoinResponse, key ed25519.PrivateKey) wire.JoinResponse {
	r.Proof = ed25519.Sign(key, r.ProofBytes(goodInvitation().ID, srvB, pub(keyB)))
	return r
}

func TestAJoinAnswerIsSignedByTheInvitersCurrentKeyForThisJoin(t *testing.T) {
	inv := goodInvitation()
	r, err := wire.DecodeJoinResponse(mustJSON(t, goodJoinResponse()))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.VerifyProof(inv.ID, srvB, pub(keyB)); err != nil {
		t.Fatalf("B refused A's signed answer: %v", err)
	}
	// The answer is for B's join with its key under this invitation only.
	mustFail(t, r.VerifyProof("fedcba9876543210", srvB, pub(keyB)), "proof does not verify")
	mustFail(t, r.VerifyProof(inv.ID, srvC, pub(keyB)), "proof does not verify")
	mustFail(t, r.VerifyProof(inv.ID, srvB, pub(keyC)), "proof does not verify")
	mustFail(t, r.VerifyProof(inv.ID, srvB, pub(keyB)[:31]), "joining server's key is not a 32-byte")

	for _, c := range []struct {
		name   string
		answer wire.JoinResponse
	}{
		{"signed with an old key", signedAnswer(goodJoinResponse(), keyAOld)},
		{"signed by another server", signedAnswer(goodJoinResponse(), keyC)},
		{"another URL after signing", changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.URL = "https://evil.example" })},
		{"another CA after signing", changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.CASHA256 = strings.Repeat("ef", 32) })},
		{"another name after signing", changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.Name = "kyoto" })},
		{"a key added after signing", changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.PublicKeys = append(r.PublicKeys, pub(keyC)) })},
		{"the keys reordered", changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.PublicKeys[0], r.PublicKeys[1] = r.PublicKeys[1], r.PublicKeys[0] })},
		{"a flipped bit", changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.Proof[0] ^= 1 })},
	} {
		t.Run(c.name, func(t *testing.T) {
			mustFail(t, c.answer.VerifyProof(inv.ID, srvB, pub(keyB)), "proof does not verify")
		})
	}
	// An answer without a proof (an inviter of the first join) is refused
	// as it is decoded.
	_, err = wire.DecodeJoinResponse(mustJSON(t, changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.Proof = nil })))
	mustFail(t, err, "proof must be a 64-byte Ed25519 signature")
	unsigned := changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.Proof = nil })
	mustFail(t, unsigned.VerifyProof(inv.ID, srvB, pub(keyB)), "proof must be a 64-byte")
}

func TestAJoinResponseComesFromTheServerTheInvitationPins(t *testing.T) {
	inv := goodInvitation()
	r, err := wire.DecodeJoinResponse(mustJSON(t, goodJoinResponse()))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.VerifyInviter(inv); err != nil {
		t.Fatalf("B refused A's answer: %v", err)
	}
	// A rotated its key after it made the invitation: the pinned key is an old one.
	rotated := changed(inv, func(i *wire.PeerInvitation) { i.Key = wire.KeyFingerprint(pub(keyAOld)) })
	if err := r.VerifyInviter(rotated); err != nil {
		t.Fatalf("an invitation made before a rotation: %v", err)
	}
	impostor := changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.PublicKeys = [][]byte{pub(keyC)} })
	mustFail(t, impostor.VerifyInviter(inv), "none of the keys of "+srvA)
	other := changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.Server = srvC })
	mustFail(t, other.VerifyInviter(inv), "answered an invitation of "+srvA)

	many := make([][]byte, 17)
	for i := range many {
		many[i] = pub(peerKey(byte(10 + i)))
	}
	cases := []struct {
		name   string
		change func(*wire.JoinResponse)
		want   string
	}{
		{"no keys", func(r *wire.JoinResponse) { r.PublicKeys = nil }, "1 to 16 keys"},
		{"too many keys", func(r *wire.JoinResponse) { r.PublicKeys = many }, "1 to 16 keys"},
		{"short key", func(r *wire.JoinResponse) { r.PublicKeys[1] = r.PublicKeys[1][:16] }, "public key 2 is not a 32-byte"},
		{"a key twice", func(r *wire.JoinResponse) { r.PublicKeys[1] = r.PublicKeys[0] }, "public key 2 is listed twice"},
		{"bad server id", func(r *wire.JoinResponse) { r.Server = "" }, "not a server id"},
		{"bad name", func(r *wire.JoinResponse) { r.Name = "a b" }, "not a peer name"},
		{"pin on plain HTTP", func(r *wire.JoinResponse) { r.URL = "http://a" }, "plain-HTTP"},
		{"no proof", func(r *wire.JoinResponse) { r.Proof = nil }, "proof must be a 64-byte"},
		{"short proof", func(r *wire.JoinResponse) { r.Proof = r.Proof[:63] }, "proof must be a 64-byte"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.DecodeJoinResponse(mustJSON(t, changed(goodJoinResponse(), c.change)))
			mustFail(t, err, c.want)
		})
	}
}

func TestPeerMessagesOfEveryKindRoundTrip(t *testing.T) {
	msgs := []wire.PeerMessage{
		event(srvA, srvB, 1),
		{ID: srvA + "/2", Origin: srvA, Recipient: srvB, Seq: 2, Sent: now, Kind: wire.KindStatus, Body: json.RawMessage(`{"system":"webshop","status":2}`)},
		{ID: srvA + "/3", Origin: srvA, Recipient: srvB, Seq: 3, Sent: now, Kind: wire.KindAnnouncement, Body: json.RawMessage(`{"title":"<maintenance> & more"}`)},
		{ID: srvA + "/4", Origin: srvA, Recipient: srvB, Seq: 4, Sent: now, Kind: wire.KindGrant, Body: json.RawMessage(`{"revoked":["g1"]}`)},
		{ID: srvA + "/hello/0", Origin: srvA, Recipient: srvB, Seq: 0, Sent: now, Kind: wire.KindHello},
		{ID: srvA + "/ack/17", Origin: srvA, Recipient: srvB, Seq: 17, Sent: now.Add(-30 * time.Second), Kind: wire.KindAck},
		{ID: srvA + "/ack/18", Origin: srvA, Recipient: srvB, Seq: 18, Sent: now, Kind: wire.KindAck, Body: json.RawMessage(`{}`)},
	}
	for _, m := range msgs {
		got, err := wire.OpenPeerMessage(MustSign(t, m, keyA), verifierOf(srvB))
		if err != nil {
			t.Fatalf("%s: %v", m.ID, err)
		}
		if got.ID != m.ID || got.Kind != m.Kind || got.Seq != m.Seq || !got.Sent.Equal(m.Sent) || !bytes.Equal(got.Body, m.Body) {
			t.Fatalf("sent %+v, opened %+v", m, got)
		}
	}
}

func TestAForgedSignatureIsRefused(t *testing.T) {
	// C signs a message claiming to be A's, naming A's key.
	var f wire.SignedPeerFrame
	if err := json.Unmarshal(MustSign(t, event(srvA, srvB, 1), keyC), &f); err != nil {
		t.Fatal(err)
	}
	f.KeyID = wire.KeyID(pub(keyA))
	_, err := wire.OpenPeerMessage(mustJSON(t, f), verifierOf(srvB))
	mustFail(t, err, "signature does not verify with key "+wire.KeyID(pub(keyA))+" of "+srvA)

	// Naming its own key instead, C's key is not one of A's.
	_, err = wire.OpenPeerMessage(MustSign(t, event(srvA, srvB, 1), keyC), verifierOf(srvB))
	mustFail(t, err, wire.KeyID(pub(keyC))+" is not a key this server knows for "+srvA)
}

func TestAMessageReplayedToAnotherRecipientIsRefused(t *testing.T) {
	frame := MustSign(t, event(srvA, srvB, 1), keyA)
	if _, err := wire.OpenPeerMessage(frame, verifierOf(srvB)); err != nil {
		t.Fatal(err)
	}
	// B hands A's message on to C, a peer of A's too.
	_, err := wire.OpenPeerMessage(frame, verifierOf(srvC))
	mustFail(t, err, "sent to "+srvB+", not to this server ("+srvC+"): replayed or misrouted")
}

func TestAMessageClaimingToComeFromThisServerIsRefused(t *testing.T) {
	// B's own message to C, played back to B: B knows its own key, yet refuses it.
	_, err := wire.OpenPeerMessage(MustSign(t, event(srvB, srvC, 1), keyB), verifierOf(srvB))
	mustFail(t, err, "claims to come from this server: reflected or forged")
}

func TestMessagesFromTheFutureOrThePastAreRefused(t *testing.T) {
	cases := []struct {
		name string
		sent time.Time
		want string // empty: accepted
	}{
		{"now", now, ""},
		{"a little ahead", now.Add(59 * time.Second), ""},
		{"a little behind", now.Add(-time.Minute), ""},
		{"from the future", now.Add(2 * time.Minute), "2m0s ahead of this server's clock (more than 1m0s)"},
		{"from the past", now.Add(-time.Hour), "1h0m0s ago (more than 1m0s): replayed"},
		{"from year 1", time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), "ago (more than 1m0s)"},
		{"from year 9999", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), "ahead of this server's clock"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := event(srvA, srvB, 1)
			m.Sent = c.sent
			_, err := wire.OpenPeerMessage(MustSign(t, m, keyA), verifierOf(srvB))
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			mustFail(t, err, c.want)
		})
	}
	// Without a skew of its own the verifier allows MaxClockSkew.
	m := event(srvA, srvB, 1)
	m.Sent = now.Add(wire.MaxClockSkew - time.Second)
	v := verifierOf(srvB)
	v.MaxSkew = 0
	if _, err := wire.OpenPeerMessage(MustSign(t, m, keyA), v); err != nil {
		t.Fatalf("within the default skew: %v", err)
	}
}

func TestATamperedByteIsRefused(t *testing.T) {
	frame := MustSign(t, event(srvA, srvB, 1), keyA)
	var f wire.SignedPeerFrame
	if err := json.Unmarshal(frame, &f); err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(f.Batch, []byte("503"))
	if at < 0 {
		t.Fatalf("no body in %s", f.Batch)
	}
	body := bytes.Clone(f.Batch)
	body[at] = '2' // "HTTP 503" becomes "HTTP 203"
	sig := bytes.Clone(f.Signature)
	sig[10] ^= 1
	for name, tampered := range map[string]wire.SignedPeerFrame{
		"a body byte":     {Origin: f.Origin, Batch: body, KeyID: f.KeyID, Signature: f.Signature},
		"a signature bit": {Origin: f.Origin, Batch: f.Batch, KeyID: f.KeyID, Signature: sig},
		"the seq":         {Origin: f.Origin, Batch: bytes.ReplaceAll(f.Batch, []byte(`"seq":1,`), []byte(`"seq":2,`)), KeyID: f.KeyID, Signature: f.Signature},
		"a space within":  {Origin: f.Origin, Batch: append([]byte("{ "), f.Batch[1:]...), KeyID: f.KeyID, Signature: f.Signature},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := wire.OpenPeerMessage(frameOf(tampered), verifierOf(srvB))
			if err == nil || !strings.Contains(err.Error(), "signature does not verify") && !strings.Contains(err.Error(), "does not match") {
				t.Fatalf("error %v", err)
			}
		})
	}
}

func TestARotatedKeyStillVerifiesOldMessages(t *testing.T) {
	old := MustSign(t, event(srvA, srvB, 1), keyAOld)
	current := MustSign(t, event(srvA, srvB, 2), keyA)
	for _, frame := range [][]byte{old, current} {
		if _, err := wire.OpenPeerMessage(frame, verifierOf(srvB)); err != nil {
			t.Fatalf("B, which keeps A's old key: %v", err)
		}
	}
	// A server that has forgotten the old key (or never knew it) refuses
	// what it signed, and says which key it lacks.
	forgetful := verifierOf(srvB)
	forgetful.Key = keyring{srvA: {pub(keyA)}}.key
	if _, err := wire.OpenPeerMessage(current, forgetful); err != nil {
		t.Fatal(err)
	}
	_, err := wire.OpenPeerMessage(old, forgetful)
	mustFail(t, err, wire.KeyID(pub(keyAOld))+" is not a key this server knows for "+srvA)
}

func TestAKeyLookupThatReturnsAnotherKeyIsCaught(t *testing.T) {
	v := verifierOf(srvB)
	v.Key = func(string, string) (ed25519.PublicKey, bool) { return pub(keyC), true }
	_, err := wire.OpenPeerMessage(MustSign(t, event(srvA, srvB, 1), keyA), v)
	mustFail(t, err, "is not that key")
}

func TestBadPeerMessagesAreRefusedWithAClearError(t *testing.T) {
	good := string(batchOf(t, event(srvA, srvB, 7)))
	inner := func(old, new string) []byte { return []byte(strings.Replace(good, old, new, 1)) }
	cases := []struct {
		name  string
		inner []byte
		want  string
	}{
		{"seq 0", inner(`"seq":7`, `"seq":0`), "event with seq 0: messages are numbered from 1"},
		{"unknown kind", inner(`"kind":"event"`, `"kind":"shell"`), "unknown kind shell"},
		{"malformed origin", inner(`"origin":"`+srvA, `"origin":"`+srvA+`x`), "origin " + srvA + "x is not a server id"},
		{"malformed recipient", inner(`"recipient":"`+srvB, `"recipient":"B`), "recipient B is not a server id"},
		{"to itself", inner(`"recipient":"`+srvB, `"recipient":"`+srvA), "sends to itself"},
		{"body not an object", inner(`"body":{"system":"webshop","summary":"HTTP 503"}`, `"body":[1]`), "body is not a JSON object"},
		{"body null", inner(`"body":{"system":"webshop","summary":"HTTP 503"}`, `"body":null`), "body is not a JSON object"},
		{"event without a body", inner(`,"body":{"system":"webshop","summary":"HTTP 503"}`, ``), "event without a body"},
		{"no sent time", inner(`"sent":"2026-11-24T03:00:00Z",`, ``), "sent time is missing"},
		{"unknown field", inner(`"seq":7`, `"seq":7,"admin":true`), `unknown field "admin"`},
		{"not JSON", []byte("hello"), "malformed JSON"},
		{"a batch of no messages", inner(`"messages":[`, `"messages":[],"x":[`), `unknown field "x"`},
		{"batch unknown field", inner(`"origin":`, `"admin":true,"origin":`), `unknown field "admin"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.OpenPeerMessage(signedFrame(c.inner, keyA), verifierOf(srvB))
			mustFail(t, err, c.want)
		})
	}
	frame := string(MustSign(t, event(srvA, srvB, 7), keyA))
	var f wire.SignedPeerFrame
	if err := json.Unmarshal([]byte(frame), &f); err != nil {
		t.Fatal(err)
	}
	short := f
	short.Signature = f.Signature[:63]
	badKeyID := f
	badKeyID.KeyID = "k_../../etc"
	empty := f
	empty.Batch = nil
	for _, c := range []struct{ name, frame, want string }{
		{"frame unknown field", strings.Replace(frame, `{`, `{"x":1,`, 1), `unknown field "x"`},
		{"frame trailing data", frame + " []", "trailing data"},
		{"frame not JSON", "\x00", "malformed JSON"},
		{"short signature", string(mustJSON(t, short)), "64-byte Ed25519 signature"},
		{"bad key id", string(mustJSON(t, badKeyID)), "key_id k_../../etc is not a key id"},
		{"no message", string(mustJSON(t, empty)), "carries no message"},
		{"oversized frame", `{"batch":"` + strings.Repeat("A", wire.MaxPeerFrameSize) + `"}`, "exceeds 1048576"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.OpenPeerMessage([]byte(c.frame), verifierOf(srvB))
			mustFail(t, err, c.want)
		})
	}
}

func TestAVerifierWithoutAClockOrKeysRefusesEverything(t *testing.T) {
	frame := MustSign(t, event(srvA, srvB, 1), keyA)
	for name, change := range map[string]func(*wire.PeerVerifier){
		"no self":       func(v *wire.PeerVerifier) { v.Self = "" },
		"no clock":      func(v *wire.PeerVerifier) { v.Now = time.Time{} },
		"no keys":       func(v *wire.PeerVerifier) { v.Key = nil },
		"negative skew": func(v *wire.PeerVerifier) { v.MaxSkew = -time.Second },
	} {
		v := verifierOf(srvB)
		change(&v)
		_, err := wire.OpenPeerMessage(frame, v)
		if err == nil || !strings.Contains(err.Error(), "the verifier needs") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTheSenderRefusesWhatTheReceiverWould(t *testing.T) {
	for name, m := range map[string]wire.PeerMessage{
		"seq 0":        changed(event(srvA, srvB, 1), func(m *wire.PeerMessage) { m.Seq, m.ID = 0, srvA+"/0" }),
		"ack seq 0":    {ID: srvA + "/ack/0", Origin: srvA, Recipient: srvB, Sent: now, Kind: wire.KindAck},
		"hello as id":  {ID: srvA + "/1", Origin: srvA, Recipient: srvB, Seq: 1, Sent: now, Kind: wire.KindHello},
		"invalid body": changed(event(srvA, srvB, 1), func(m *wire.PeerMessage) { m.Body = json.RawMessage(`{"a":`) }),
		"oversize body": changed(event(srvA, srvB, 1), func(m *wire.PeerMessage) {
			m.Body = json.RawMessage(`{"a":"` + strings.Repeat("x", wire.MaxPeerBody) + `"}`)
		}),
		"no sent time": changed(event(srvA, srvB, 1), func(m *wire.PeerMessage) { m.Sent = time.Time{} }),
	} {
		if _, err := wire.SignPeerMessage(m, keyA); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	if _, err := wire.SignPeerMessage(event(srvA, srvB, 1), keyA[:32]); err == nil {
		t.Error("signed with half a key")
	}
	// A body at the limit, of characters JSON escapes, still fits a frame.
	big := changed(event(srvA, srvB, 1), func(m *wire.PeerMessage) {
		m.Body = json.RawMessage(`{"a":"` + strings.Repeat("<", wire.MaxPeerBody-8) + `"}`)
	})
	got, err := wire.OpenPeerMessage(MustSign(t, big, keyA), verifierOf(srvB))
	if err != nil || !bytes.Equal(got.Body, big.Body) {
		t.Fatalf("a body at the limit: %v", err)
	}
}

func TestPeerMessageIDsOfOutboxAndSessionMessagesNeverCollide(t *testing.T) {
	seen := map[string]wire.PeerKind{}
	for _, k := range []wire.PeerKind{wire.KindEvent, wire.KindStatus, wire.KindAnnouncement, wire.KindGrant, wire.KindHello, wire.KindAck} {
		for seq := uint64(1); seq < 4; seq++ {
			id := wire.PeerMessageID(srvA, k, seq)
			if prev, ok := seen[id]; ok && prev.Outbox() != k.Outbox() {
				t.Fatalf("%s is the id of a %s and of a %s", id, prev, k)
			}
			seen[id] = k
		}
	}
	if got := wire.PeerMessageID(srvA, wire.KindGrant, 42); got != srvA+"/"+strconv.Itoa(42) {
		t.Fatalf("grant id %s", got)
	}
}

func TestManyMessagesTravelUnderOneSignature(t *testing.T) {
	var ms []wire.PeerMessage
	for seq := uint64(1); seq <= 2*wire.MaxPeerBatch+5; seq++ {
		ms = append(ms, event(srvA, srvB, seq))
	}
	frames, err := wire.SignPeerFrames(ms, keyA)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 3 {
		t.Fatalf("%d messages in %d frames, want 3 of at most %d", len(ms), len(frames), wire.MaxPeerBatch)
	}
	var got []wire.PeerMessage
	for _, f := range frames {
		opened, err := wire.OpenPeerFrame(f, verifierOf(srvB))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, opened...)
	}
	if len(got) != len(ms) || got[0].ID != ms[0].ID || got[len(got)-1].ID != ms[len(ms)-1].ID {
		t.Fatalf("sent %d messages, opened %d", len(ms), len(got))
	}
	// Large bodies split frames by size, never past MaxPeerFrameSize.
	big := func(seq uint64) wire.PeerMessage {
		return changed(event(srvA, srvB, seq), func(m *wire.PeerMessage) {
			m.Body = json.RawMessage(`{"a":"` + strings.Repeat("x", wire.MaxPeerBody-8) + `"}`)
		})
	}
	frames, err = wire.SignPeerFrames([]wire.PeerMessage{big(1), big(2), big(3), big(4)}, keyA)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) < 2 {
		t.Fatalf("four bodies of 256 KiB in %d frame", len(frames))
	}
	for _, f := range frames {
		if len(f) > wire.MaxPeerFrameSize {
			t.Fatalf("a frame of %d bytes", len(f))
		}
	}
}

func TestAFrameIsOneOriginsMessagesToOneRecipientInOrder(t *testing.T) {
	ack := wire.PeerMessage{ID: srvA + "/ack/3", Origin: srvA, Recipient: srvB, Seq: 3, Sent: now, Kind: wire.KindAck}
	later := changed(event(srvA, srvB, 2), func(m *wire.PeerMessage) { m.Sent = now.Add(time.Second) })
	for name, c := range map[string]struct {
		ms       []wire.PeerMessage
		want     string
		sendable bool // a batch can say it at all
	}{
		"two recipients":   {[]wire.PeerMessage{event(srvA, srvB, 1), event(srvA, srvC, 2)}, "a frame is one origin's to one recipient", false},
		"two times":        {[]wire.PeerMessage{event(srvA, srvB, 1), later}, "a frame's messages are sent together", false},
		"out of order":     {[]wire.PeerMessage{event(srvA, srvB, 2), event(srvA, srvB, 1)}, "in increasing order", true},
		"twice":            {[]wire.PeerMessage{event(srvA, srvB, 1), event(srvA, srvB, 1)}, "in increasing order", true},
		"ack with another": {[]wire.PeerMessage{event(srvA, srvB, 1), ack}, "travels alone", true},
		"nothing":          {nil, "carries no message", false},
	} {
		t.Run(name, func(t *testing.T) {
			// The sender refuses to sign it …
			_, err := wire.SignPeerFrames(c.ms, keyA)
			mustFail(t, err, c.want)
			// … and the receiver refuses it signed by the rule.
			if c.sendable {
				_, err = wire.OpenPeerFrame(signedFrame(batchOf(t, c.ms...), keyA), verifierOf(srvB))
				mustFail(t, err, c.want)
			}
		})
	}
	empty := []byte(`{"origin":"` + srvA + `","recipient":"` + srvB + `","sent":"2026-11-24T03:00:00Z","messages":[]}`)
	_, err := wire.OpenPeerFrame(signedFrame(empty, keyA), verifierOf(srvB))
	mustFail(t, err, "carries no message")
	// C's batch in a frame A signed.
	_, err = wire.OpenPeerFrame(signedFrame(batchOf(t, event(srvC, srvB, 1)), keyA), verifierOf(srvB))
	mustFail(t, err, "a batch from "+srvC+" in a frame signed by "+srvA+": forged")
	// One bad message refuses the whole frame.
	bad := changed(event(srvA, srvB, 2), func(m *wire.PeerMessage) { m.Body = json.RawMessage(`[1]`) })
	ms, err := wire.OpenPeerFrame(signedFrame(batchOf(t, event(srvA, srvB, 1), bad), keyA), verifierOf(srvB))
	mustFail(t, err, "body is not a JSON object")
	if ms != nil {
		t.Fatalf("returned %d messages of a refused frame", len(ms))
	}
}
