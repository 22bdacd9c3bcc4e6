package wire_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aramaki/aramaki/wire"
)

func seedFrames(f *testing.F) {
	for _, m := range []wire.Message{
		&wire.Results{Results: []wire.Result{result(1), result(2)}},
		&wire.Keepalive{Time: now},
		&wire.Facts{Collected: now, Hostname: "web1", Ports: []wire.Port{{Proto: "tcp", Address: "0.0.0.0", Port: 80}}},
		&wire.Gap{From: 1, To: 1, Dropped: 1},
		&wire.Ack{Seq: 7},
		&wire.Run{Request: "r1", System: "webshop", Check: "http"},
		&wire.ErrorMessage{Code: "revoked", Message: "agent revoked"},
		&wire.Hello{Version: 1, Nonce: make([]byte, wire.NonceSize), ServerTime: now},
		&wire.Hello{Version: 2, Nonce: make([]byte, wire.NonceSize), ServerTime: now},
	} {
		raw, err := wire.Encode(m, now)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, m := range v2Messages() {
		raw, err := wire.Encode(m, now)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"type":"auth","body":{"version":1,"agent_id":"ag_0123456789abcdef","agent_version":"1","time":"2026-11-24T03:00:00Z","signature":"AAAA","acked":0}}`))
	f.Add([]byte(`{"type":"auth","body":{"version":2,"agent_id":"ag_0123456789abcdef","agent_version":"1","time":"2026-11-24T03:00:00Z","signature":"` + strings.Repeat("A", 86) + `==","acked":0}}`))
	f.Add([]byte(`{"type":"finished","body":{"run":"r1","state":"failed","exit_code":null,"started":"2026-11-24T02:59:00Z","ended":"2026-11-24T02:59:00Z","error":"agent restarted","last_seq":0,"dropped":0}}`))
	f.Add([]byte(`{}`))
}

// checkDecoded holds what a decoder accepted on a connection of version v
// to account: it is valid, of a type v has, and re-encodes for v.
func checkDecoded(t *testing.T, m wire.Message, v int) {
	t.Helper()
	if err := m.Validate(now); err != nil {
		t.Fatalf("accepted an invalid %s: %v", m.FrameType(), err)
	}
	if since := m.FrameType().Since(); since < 1 || since > v {
		t.Fatalf("accepted a %s frame (since %d) on a v%d connection", m.FrameType(), since, v)
	}
	if _, err := wire.EncodeVersion(m, v, now); err != nil {
		t.Fatalf("accepted %s does not re-encode for v%d: %v", m.FrameType(), v, err)
	}
}

// Decoders never panic, and what they accept is valid and re-encodes;
// what version 1 accepts, every later version accepts the same.
func FuzzDecodeFromAgent(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		legacy, lerr := wire.DecodeFromAgent(raw, now)
		var first wire.Message
		for v := wire.MinVersion; v <= wire.Version; v++ {
			m, err := wire.DecodeFromAgentVersion(raw, v, now)
			if v == 1 && (err == nil) != (lerr == nil) {
				t.Fatalf("DecodeFromAgent says %v, at version 1 %v", lerr, err)
			}
			if err != nil {
				if first != nil {
					t.Fatalf("accepted on v1, refused on v%d: %v", v, err)
				}
				continue
			}
			checkDecoded(t, m, v)
			if first == nil && v == 1 {
				first = m
			} else if first != nil && !reflect.DeepEqual(first, m) {
				t.Fatalf("v1 decoded %+v, v%d %+v", first, v, m)
			}
			if a, ok := m.(*wire.Actions); ok {
				// What the wire lets through, the domain allows.
				for _, d := range a.Actions {
					if err := specOf(d).Validate(); err != nil {
						t.Fatalf("accepted action %s the domain refuses: %v", d.Name, err)
					}
				}
			}
		}
		if legacy != nil {
			checkDecoded(t, legacy, 1)
		}
	})
}

func FuzzDecodeFromServer(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if m, err := wire.DecodeFromServer(raw, now); err == nil {
			if err := m.Validate(now); err != nil {
				t.Fatalf("accepted an invalid %s: %v", m.FrameType(), err)
			}
			if m.FrameType().Since() != 1 {
				t.Fatalf("the version 1 decoder accepted a %s frame", m.FrameType())
			}
		}
		accepted := false
		for v := wire.MinVersion; v <= wire.Version; v++ {
			m, err := wire.DecodeFromServerVersion(raw, v, now)
			if err != nil {
				// A hello names one version; anything else of v1 is fine on v2.
				if accepted && !strings.Contains(err.Error(), "hello: version") {
					t.Fatalf("accepted on an earlier version, refused on v%d: %v", v, err)
				}
				continue
			}
			checkDecoded(t, m, v)
			accepted = true
		}
	})
}

func FuzzDecodeAuth(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := wire.DecodeAuth(raw, now)
		if err == nil {
			if !wire.ValidAgentID(m.AgentID) || len(m.Signature) != wire.SignatureSize || m.Version < wire.MinVersion || m.Version > wire.Version {
				t.Fatalf("accepted invalid auth %+v", m)
			}
		}
		for v := wire.MinVersion; v <= wire.Version; v++ {
			a, verr := wire.DecodeAuthVersion(raw, v, now)
			if verr == nil && (err != nil || a.Version != v || m.Version != v) {
				t.Fatalf("accepted on v%d an auth of version %d (%v)", v, a.Version, err)
			}
			if err == nil && m.Version == v && verr != nil {
				t.Fatalf("refused on v%d an auth of that version: %v", v, verr)
			}
		}
	})
}

// This package repeats the domain's rules for action declarations: the two
// agree on every declaration within the wire's limits.
func FuzzActionDeclaration(f *testing.F) {
	for _, d := range goodActions().Actions {
		raw, err := json.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"name":"x","argv":["/bin/x","{p}"],"timeout_ms":1000,"params":[{"name":"p","type":"string","pattern":"a|-b","default":"-b"}]}`))
	f.Add([]byte(`{"name":"y","argv":["/y","-n{n}"],"timeout_ms":0,"params":[{"name":"n","type":"int","min":-3,"max":3,"default":"+1"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d wire.ActionDeclaration
		if json.Unmarshal(raw, &d) != nil {
			return
		}
		werr := d.Validate()
		if !withinLimits(d) {
			if werr == nil {
				t.Fatalf("accepted %+v beyond the limits", d)
			}
			return
		}
		if derr := specOf(d).Validate(); (derr == nil) != (werr == nil) {
			t.Fatalf("the domain says %v, the wire %v, of %+v", derr, werr, d)
		}
	})
}

// withinLimits reports whether d keeps to the limits the wire adds to the
// domain's rules: sizes, counts and no NUL bytes.
func withinLimits(d wire.ActionDeclaration) bool {
	text := func(s string, max int) bool { return len(s) <= max && !strings.ContainsRune(s, 0) }
	if !text(d.Description, wire.MaxActionText) || len(d.Argv) > wire.MaxArgs ||
		d.Timeout < 0 || d.Timeout > wire.Millis(wire.MaxActionTimeout)+1 {
		return false
	}
	for _, a := range d.Argv {
		if !text(a, 4096) {
			return false
		}
	}
	for _, p := range d.Params {
		if !text(p.Description, wire.MaxActionText) || !text(p.Pattern, wire.MaxActionText) || len(p.Values) > wire.MaxEnumValues {
			return false
		}
		for _, v := range p.Values {
			if !text(v, wire.MaxParamValue) {
				return false
			}
		}
		if p.Default != nil && !text(*p.Default, wire.MaxParamValue) {
			return false
		}
	}
	return true
}

func FuzzEnrollment(f *testing.F) {
	tok := wire.EnrollmentToken{URL: "https://127.0.0.1:8443", CASHA256: strings.Repeat("cd", 32), ID: "0123456789abcdef", Secret: "0123456789012345678901234567890123456789"}
	f.Add([]byte(`{"token":"` + tok.String() + `","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","hostname":"web1","agent_version":"1"}`))
	f.Add([]byte(`{"token":"arke1.e30","public_key":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, tok, err := wire.DecodeEnrollRequest(raw)
		if err != nil {
			return
		}
		if len(req.PublicKey) != wire.PublicKeySize || req.Hostname == "" || tok.ID == "" {
			t.Fatalf("accepted invalid enrollment %+v", req)
		}
		if again, err := wire.ParseEnrollmentToken(tok.String()); err != nil || again != tok {
			t.Fatalf("accepted token does not round-trip: %v", err)
		}
	})
}

func FuzzDecodeEnrollResponse(f *testing.F) {
	f.Add([]byte(`{"agent_id":"ag_0123456789abcdef","name":"web1","systems":["webshop"]}`))
	f.Add([]byte(`{"agent_id":"x"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if r, err := wire.DecodeEnrollResponse(raw); err == nil && !wire.ValidAgentID(r.AgentID) {
			t.Fatalf("accepted %+v", r)
		}
	})
}

// An invitation the parser accepts is whole and survives being passed on.
func FuzzParsePeerInvitation(f *testing.F) {
	inv := goodInvitation()
	f.Add(inv.String())
	f.Add(changed(inv, func(i *wire.PeerInvitation) { i.URL, i.CASHA256 = "http://127.0.0.1:8080", "" }).String())
	f.Add(changed(inv, func(i *wire.PeerInvitation) { i.Expires = time.Time{} }).String())
	f.Add(changed(inv, func(i *wire.PeerInvitation) { i.CASHA256 = strings.ToUpper(i.CASHA256) }).String())
	f.Add(invitationJSON(`{"u":"https://x","f":"` + strings.Repeat("ab", 32) + `","v":"srv_0123456789abcdef","k":"` + strings.Repeat("cd", 32) + `","n":"a","i":"0123456789abcdef","s":"` + strings.Repeat("s", 32) + `","e":"2026-11-24T03:00:00+09:00"}`))
	f.Add("arke1.e30")
	f.Add(wire.PeerInvitationPrefix)
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := wire.ParsePeerInvitation(s)
		if err != nil {
			return
		}
		if !wire.ValidServerID(inv.Server) || !wire.ValidPeerName(inv.Name) || len(inv.Key) != 64 || inv.ID == "" || len(inv.Secret) < 32 || inv.Expires.IsZero() {
			t.Fatalf("accepted invalid invitation %+v", inv)
		}
		if again, err := wire.ParsePeerInvitation(inv.String()); err != nil || again != inv {
			t.Fatalf("accepted invitation does not round-trip: %+v %v", again, err)
		}
	})
}

func FuzzDecodeJoinRequest(f *testing.F) {
	inv := goodInvitation()
	for _, r := range []wire.JoinRequest{
		joinOf(inv, srvA),
		joinOf(inv, srvC),
		changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.URL, r.CASHA256 = "", "" }),
		changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.URL, r.CASHA256 = "http://b", "" }),
		changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.Server = srvA }),
		changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.PublicKey = r.PublicKey[:31] }),
		changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.InviterKey = wire.KeyFingerprint(pub(keyC)) }),
		changed(joinOf(inv, srvA), func(r *wire.JoinRequest) { r.InviterKey = "" }),
	} {
		raw, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"invitation":"0123456789abcdef","secret":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := wire.DecodeJoinRequest(raw)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted an invalid join request: %v", err)
		}
		proved := r.VerifyProof(srvA) == nil
		if proved && !ed25519.Verify(r.PublicKey, wire.JoinProofBytes(r.Invitation, srvA, r.InviterKey, r.Server), r.Proof) {
			t.Fatal("accepted a proof that does not verify")
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if r2, err := wire.DecodeJoinRequest(again); err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("accepted join request does not round-trip: %+v %v", r2, err)
		}
	})
}

func FuzzDecodeJoinResponse(f *testing.F) {
	for _, r := range []wire.JoinResponse{
		goodJoinResponse(),
		changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.URL, r.CASHA256 = "", "" }),
		changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.PublicKeys = r.PublicKeys[:1] }),
		changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.PublicKeys[1] = r.PublicKeys[0] }),
		changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.PublicKeys = nil }),
		changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.Proof = nil }),
		signedAnswer(goodJoinResponse(), keyAOld),
		signedAnswer(changed(goodJoinResponse(), func(r *wire.JoinResponse) { r.URL, r.CASHA256 = "", "" }), keyA),
	} {
		raw, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := wire.DecodeJoinResponse(raw)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted an invalid join response: %v", err)
		}
		if len(r.PublicKeys) < 1 || len(r.PublicKeys) > wire.MaxPeerKeys {
			t.Fatalf("accepted %d keys", len(r.PublicKeys))
		}
		inv := goodInvitation()
		if r.VerifyInviter(inv) == nil && r.Server != srvA {
			t.Fatalf("%s passed for %s", r.Server, srvA)
		}
		if r.VerifyProof(inv.ID, srvB, pub(keyB)) == nil && !ed25519.Verify(r.PublicKeys[0], r.ProofBytes(inv.ID, srvB, pub(keyB)), r.Proof) {
			t.Fatal("accepted an answer whose proof does not verify")
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if r2, err := wire.DecodeJoinResponse(again); err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("accepted join response does not round-trip: %+v %v", r2, err)
		}
	})
}

// What OpenPeerFrame accepts was signed by a key of its origin that the
// verifier knows, over the exact bytes it carries, is addressed to the
// verifier, and can be signed again and opened to the same message. The
// fuzzer cannot forge signatures, so each input is two: a frame opened as
// it is, and a batch's bytes signed with A's key before they are opened,
// which reaches every check a signed message meets.
func FuzzOpenPeerFrame(f *testing.F) {
	hello := wire.PeerMessage{ID: srvA + "/hello/0", Origin: srvA, Recipient: srvB, Sent: now, Kind: wire.KindHello}
	ack := wire.PeerMessage{ID: srvC + "/ack/3", Origin: srvC, Recipient: srvB, Seq: 3, Sent: now, Kind: wire.KindAck, Body: json.RawMessage(`{}`)}
	for _, s := range []struct {
		m   wire.PeerMessage
		key ed25519.PrivateKey
	}{
		{event(srvA, srvB, 1), keyA},
		{event(srvA, srvB, 2), keyAOld},
		{hello, keyA},
		{ack, keyC},
		{event(srvA, srvC, 1), keyA}, // to another recipient
		{event(srvA, srvB, 1), keyC}, // an unknown key
		{changed(event(srvA, srvB, 1), func(m *wire.PeerMessage) { m.Sent = now.Add(time.Hour) }), keyA}, // from the future
		{event(srvB, srvC, 1), keyB}, // from the verifier itself
	} {
		f.Add(MustSign(f, s.m, s.key), batchOf(f, s.m))
	}
	head := `{"origin":"` + srvA + `","recipient":"` + srvB + `",`
	for _, batch := range []string{
		head + `"sent":"2026-11-24T03:00:00Z","messages":[{"seq":0,"kind":"event","body":{}}]}`,
		head + `"sent":"2026-11-24T12:00:30+09:00","messages":[{"seq":1,"kind":"status","body": { "a" : [1, "<"] } },{"seq":2,"kind":"event","body":{}}]}`,
		head + `"sent":"2026-11-24T03:00:59.999999999Z","messages":[{"seq":1,"kind":"ack","body":null}]}`,
		head + `"Sent":"2026-11-24T03:00:00Z","messages":[{"Seq":1,"kind":"hello"}]}`,
	} {
		f.Add(signedFrame([]byte(batch), keyA), []byte(batch))
	}
	f.Add([]byte(`{"origin":"`+srvA+`","batch":{},"key_id":"k_0000000000000000","signature":null}`), []byte(`{}`))
	private := map[string]ed25519.PrivateKey{}
	for _, k := range []ed25519.PrivateKey{keyA, keyAOld, keyB, keyC} {
		private[wire.KeyID(pub(k))] = k
	}
	check := func(t *testing.T, frame []byte) {
		v := verifierOf(srvB)
		ms, err := wire.OpenPeerFrame(frame, v)
		if err != nil {
			return
		}
		var signed wire.SignedPeerFrame
		if err := json.Unmarshal(frame, &signed); err != nil {
			t.Fatalf("accepted a frame that does not decode: %v", err)
		}
		key, ok := v.Key(signed.Origin, signed.KeyID)
		if !ok || !ed25519.Verify(key, append([]byte("aramaki-fed-v3\x00"), signed.Batch...), signed.Signature) {
			t.Fatalf("accepted a frame without a valid signature of %s", signed.Origin)
		}
		if len(ms) == 0 || len(ms) > wire.MaxPeerBatch {
			t.Fatalf("accepted a frame of %d messages", len(ms))
		}
		for i, m := range ms {
			if err := m.Validate(); err != nil {
				t.Fatalf("accepted an invalid message: %v", err)
			}
			if m.Origin != signed.Origin || m.Recipient != srvB || m.Origin == srvB || m.Sent.Before(now.Add(-time.Minute)) || m.Sent.After(now.Add(time.Minute)) {
				t.Fatalf("accepted %s from %s to %s sent %s in a frame of %s", m.ID, m.Origin, m.Recipient, m.Sent, signed.Origin)
			}
			if i > 0 && (!m.Kind.Outbox() || m.Seq <= ms[i-1].Seq) {
				t.Fatalf("accepted %s after %s in one frame", m.ID, ms[i-1].ID)
			}
		}
		frames, err := wire.SignPeerFrames(ms, private[signed.KeyID])
		if err != nil {
			t.Fatalf("signing again what was accepted: %v", err)
		}
		var again []wire.PeerMessage
		for _, f := range frames {
			got, err := wire.OpenPeerFrame(f, v)
			if err != nil {
				t.Fatalf("signed again, refused: %v", err)
			}
			again = append(again, got...)
		}
		if len(again) != len(ms) {
			t.Fatalf("signed and opened again, %d messages became %d", len(ms), len(again))
		}
		for i, m := range ms {
			var body, bodyAgain bytes.Buffer
			_ = json.Compact(&body, m.Body)
			_ = json.Compact(&bodyAgain, again[i].Body)
			a := again[i]
			if a.ID != m.ID || a.Origin != m.Origin || a.Recipient != m.Recipient || a.Seq != m.Seq ||
				a.Kind != m.Kind || !a.Sent.Equal(m.Sent) || body.String() != bodyAgain.String() {
				t.Fatalf("signed and opened again, %+v became %+v", m, a)
			}
		}
	}
	f.Fuzz(func(t *testing.T, frame, batch []byte) {
		check(t, frame)
		check(t, signedFrame(batch, keyA))
	})
}

func FuzzDecodePeerEvent(f *testing.F) {
	for _, s := range []string{
		`{"id":"ev_0123456789abcdef0123456789abcdef","time":"2026-11-24T03:00:00Z","kind":"status.changed","systems":["storage"],"summary":"disk on st1 went critical"}`,
		`{"id":"ev_0123456789abcdef0123456789abcdef","time":"2026-11-24T03:00:00Z","kind":"note","systems":["storage","disk"],"summary":"swapping"}`,
		`{"id":"ev_x","time":"2026-11-24T03:00:00Z","kind":"note","systems":["storage@b"],"summary":"forwarded?"}`,
		`{"id":"ev_0123456789abcdef0123456789abcdef","time":"0001-01-01T00:00:00Z","kind":"NOTE","systems":[],"summary":""}`,
		`{"id":"ev_0123456789abcdef0123456789abcdef","time":"2026-11-24T03:00:00Z","kind":"note","systems":["s"],"summary":"x","actor":"user:root"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := wire.DecodePeerEvent(raw)
		if err != nil {
			return
		}
		if len(e.Systems) == 0 || !utf8.ValidString(e.Summary) || e.Summary == "" || e.Time.IsZero() {
			t.Fatalf("accepted %+v", e)
		}
		for _, s := range e.Systems {
			if strings.ContainsAny(s, "@/ ") || s == "" {
				t.Fatalf("accepted a system id %q", s)
			}
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wire.DecodePeerEvent(again); err != nil {
			t.Fatalf("what was accepted does not decode again: %v", err)
		}
	})
}

func FuzzDecodePeerHello(f *testing.F) {
	for _, s := range []string{`{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAA"}`, `{"nonce":""}`, `{"nonce":"a b"}`, `{}`, `{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAA","x":1}`} {
		f.Add([]byte(s))
	}
	for _, chain := range [][]wire.PeerKeyLink{chainOf(srvA, keyA), chainOf(srvA, keyAOld, keyA, keyANew), {{PublicKey: pub(keyA), Endorsement: []byte{1}}}} {
		raw, _ := json.Marshal(wire.PeerHello{Nonce: "AAAAAAAAAAAAAAAAAAAAAAAA", Keys: chain})
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := wire.DecodePeerHello(raw)
		if err != nil {
			return
		}
		if len(h.Nonce) < 22 || len(h.Nonce) > 64 || strings.ContainsAny(h.Nonce, " \"\\/+=") {
			t.Fatalf("accepted nonce %q", h.Nonce)
		}
		if len(h.Keys) == 0 || len(h.Keys) > wire.MaxPeerKeys {
			t.Fatalf("accepted a chain of %d keys", len(h.Keys))
		}
		seen := map[string]bool{}
		for i, k := range h.Keys {
			if len(k.PublicKey) != ed25519.PublicKeySize || seen[wire.KeyID(k.PublicKey)] || (i == 0) != (len(k.Endorsement) == 0) || (i > 0 && len(k.Endorsement) != ed25519.SignatureSize) {
				t.Fatalf("accepted key %d of the chain: %+v", i, k)
			}
			seen[wire.KeyID(k.PublicKey)] = true
		}
		again, _ := json.Marshal(h)
		if _, err := wire.DecodePeerHello(again); err != nil {
			t.Fatalf("what was accepted does not decode again: %v", err)
		}
	})
}

func FuzzDecodePeerStatus(f *testing.F) {
	for _, s := range []string{`{"system":"storage","status":"critical","since":"2026-11-24T03:00:00Z"}`, `{"system":"storage@b","status":"ok","since":"2026-11-24T03:00:00Z"}`,
		`{"system":"storage","status":"fine","since":"2026-11-24T03:00:00Z"}`, `{"system":"storage","status":"ok"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := wire.DecodePeerStatus(raw)
		if err != nil {
			return
		}
		if strings.ContainsAny(s.System, "@/ ") || s.System == "" || s.Since.IsZero() {
			t.Fatalf("accepted %+v", s)
		}
	})
}
