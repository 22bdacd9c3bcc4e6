package wire_test

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aramaki/aramaki/wire"
)

// A's keys in the order it made them: keyAOld, then keyA, then keyANew,
// which B does not know yet (verifierOf knows keyAOld and keyA).
var (
	keyANew     = peerKey(5)
	keyANewer   = peerKey(6)
	keyMallory  = peerKey(7)
	nonceOfTest = strings.Repeat("n", 32)
)

// chainOf is server's key chain of keys, oldest first, each endorsed by
// the one before.
func chainOf(server string, keys ...ed25519.PrivateKey) []wire.PeerKeyLink {
	var chain []wire.PeerKeyLink
	for i, k := range keys {
		l := wire.PeerKeyLink{PublicKey: pub(k)}
		if i > 0 {
			l.Endorsement = wire.EndorseKey(keys[i-1], server, pub(k))
		}
		chain = append(chain, l)
	}
	return chain
}

// helloFrame is A's hello to B with chain, signed with key.
func helloFrame(t testing.TB, chain []wire.PeerKeyLink, key ed25519.PrivateKey) []byte {
	t.Helper()
	body, err := json.Marshal(wire.PeerHello{Nonce: nonceOfTest, Keys: chain})
	if err != nil {
		t.Fatal(err)
	}
	return MustSign(t, wire.PeerMessage{ID: srvA + "/hello/0", Origin: srvA, Recipient: srvB, Sent: now, Kind: wire.KindHello, Body: body}, key)
}

func TestAKeyEndorsementIsTheServerAndTheNewKeyUnderItsOwnPrefix(t *testing.T) {
	got := wire.KeyEndorsementBytes(srvA, pub(keyANew))
	want := append([]byte("aramaki-key-endorse-v1\x00"+srvA), pub(keyANew)...)
	if string(got) != string(want) {
		t.Fatalf("endorsement bytes %q, want %q", got, want)
	}
	if !ed25519.Verify(pub(keyA), want, wire.EndorseKey(keyA, srvA, pub(keyANew))) {
		t.Fatal("EndorseKey does not sign the endorsement bytes")
	}
}

func TestAHelloSignedByARotatedKeyOpensThroughItsChainFromAKnownKey(t *testing.T) {
	for _, c := range []struct {
		name  string
		chain []wire.PeerKeyLink
		key   ed25519.PrivateKey
		learn []ed25519.PrivateKey
	}{
		{"a known key, alone", chainOf(srvA, keyA), keyA, nil},
		{"a known key at the end of its chain", chainOf(srvA, keyAOld, keyA), keyA, nil},
		{"one rotation after a known key", chainOf(srvA, keyA, keyANew), keyANew, []ed25519.PrivateKey{keyANew}},
		{"two rotations after a known key", chainOf(srvA, keyA, keyANew, keyANewer), keyANewer, []ed25519.PrivateKey{keyANew, keyANewer}},
		{"from the older of two known keys", chainOf(srvA, keyAOld, keyA, keyANew), keyANew, []ed25519.PrivateKey{keyANew}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, h, learned, err := wire.OpenPeerHello(helloFrame(t, c.chain, c.key), verifierOf(srvB))
			if err != nil {
				t.Fatal(err)
			}
			if m.Kind != wire.KindHello || h.Nonce != nonceOfTest || len(h.Keys) != len(c.chain) {
				t.Fatalf("opened %+v with %+v", m, h)
			}
			if len(learned) != len(c.learn) {
				t.Fatalf("learned %d keys, want %d", len(learned), len(c.learn))
			}
			for i, k := range c.learn {
				if !learned[i].Equal(pub(k)) {
					t.Errorf("learned key %d is %s, want %s", i, wire.KeyID(learned[i]), wire.KeyID(pub(k)))
				}
			}
		})
	}
}

func TestAForgedOrBrokenKeyChainOpensNothing(t *testing.T) {
	good := chainOf(srvA, keyA, keyANew)
	for _, c := range []struct {
		name  string
		frame func(t *testing.T) []byte
		want  string
	}{
		{"a key of no one's, alone", func(t *testing.T) []byte { return helloFrame(t, chainOf(srvA, keyMallory), keyMallory) },
			"none of the 1 keys " + srvA + " shows is one this server knows"},
		{"a chain that reaches no known key", func(t *testing.T) []byte {
			return helloFrame(t, chainOf(srvA, keyMallory, keyANew), keyANew)
		}, "none of the 2 keys"},
		{"a known key endorsing a key it did not", func(t *testing.T) []byte {
			chain := chainOf(srvA, keyA, keyMallory)
			chain[1].Endorsement = wire.EndorseKey(keyMallory, srvA, pub(keyMallory))
			return helloFrame(t, chain, keyMallory)
		}, "the endorsement of " + wire.KeyID(pub(keyMallory)) + " by " + wire.KeyID(pub(keyA)) + " does not verify for " + srvA},
		{"an endorsement altered", func(t *testing.T) []byte {
			chain := chainOf(srvA, keyA, keyANew)
			chain[1].Endorsement = append([]byte(nil), chain[1].Endorsement...)
			chain[1].Endorsement[5] ^= 1
			return helloFrame(t, chain, keyANew)
		}, "does not verify for " + srvA},
		{"the chain of another server (C endorsing A's new key for itself)", func(t *testing.T) []byte {
			return helloFrame(t, chainOf(srvC, keyC, keyANew), keyANew)
		}, "none of the 2 keys"},
		{"C's endorsement of its key carried into A's chain", func(t *testing.T) []byte {
			chain := chainOf(srvA, keyA, keyANew)
			chain[1].Endorsement = wire.EndorseKey(keyA, srvC, pub(keyANew)) // A's key, but for C
			return helloFrame(t, chain, keyANew)
		}, "does not verify for " + srvA},
		{"a good chain, signed by a key not at its end", func(t *testing.T) []byte { return helloFrame(t, good, keyMallory) },
			"which is not the last key of its chain"},
		{"a good chain, signed by its first key", func(t *testing.T) []byte { return helloFrame(t, good, keyA) },
			"which is not the last key of its chain"},
		{"a good chain, the hello altered after signing", func(t *testing.T) []byte {
			f := helloFrame(t, good, keyANew)
			var sf wire.SignedPeerFrame
			json.Unmarshal(f, &sf)
			sf.Batch = json.RawMessage(strings.Replace(string(sf.Batch), srvB, srvC, 1))
			out, _ := json.Marshal(sf)
			return out
		}, "the signature does not verify"},
		{"a good chain, the hello to another server", func(t *testing.T) []byte {
			body, _ := json.Marshal(wire.PeerHello{Nonce: nonceOfTest, Keys: good})
			return MustSign(t, wire.PeerMessage{ID: srvA + "/hello/0", Origin: srvA, Recipient: srvC, Sent: now, Kind: wire.KindHello, Body: body}, keyANew)
		}, "not to this server"},
		{"a good chain, an event signed by the new key", func(t *testing.T) []byte { return MustSign(t, event(srvA, srvB, 1), keyANew) },
			"is not a key this server knows for " + srvA},
		{"an endorsement on the first key", func(t *testing.T) []byte {
			chain := chainOf(srvA, keyA, keyANew)
			chain[0].Endorsement = chain[1].Endorsement
			return helloFrame(t, chain, keyANew)
		}, "comes with an endorsement"},
		{"a key without an endorsement", func(t *testing.T) []byte {
			chain := chainOf(srvA, keyA, keyANew)
			chain[1].Endorsement = nil
			return helloFrame(t, chain, keyANew)
		}, "has no endorsement"},
		{"a key twice", func(t *testing.T) []byte {
			return helloFrame(t, chainOf(srvA, keyA, keyANew, keyA, keyANew), keyANew)
		}, "twice in the chain"},
		{"a chain too long", func(t *testing.T) []byte {
			keys := []ed25519.PrivateKey{keyA}
			for i := range wire.MaxPeerKeys {
				keys = append(keys, peerKey(byte(100+i)))
			}
			return helloFrame(t, chainOf(srvA, keys...), keys[len(keys)-1])
		}, "1 to 16 keys"},
		{"no chain", func(t *testing.T) []byte { return helloFrame(t, nil, keyA) }, "1 to 16 keys"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, learned, err := wire.OpenPeerHello(c.frame(t), verifierOf(srvB))
			mustFail(t, err, c.want)
			if learned != nil {
				t.Errorf("learned %d keys from a refused hello", len(learned))
			}
		})
	}
}

// A known key's id naming other bytes (a collision, or a store gone
// wrong) is refused rather than trusted.
func TestAChainKeyMustBeTheKnownKeyItsIDNames(t *testing.T) {
	_, err := wire.VerifyKeyChain(srvA, chainOf(srvA, keyMallory, keyANew), func(string) (ed25519.PublicKey, bool) { return pub(keyA), true })
	mustFail(t, err, "is not the key this server knows by that id")
}

// Whatever a hello frame holds, OpenPeerHello learns a key only through a
// chain of endorsements for the frame's origin from a key the verifier
// knows, ending with the key that signed the frame.
func FuzzOpenPeerHello(f *testing.F) {
	f.Add(helloFrame(f, chainOf(srvA, keyA), keyA))
	f.Add(helloFrame(f, chainOf(srvA, keyA, keyANew), keyANew))
	f.Add(helloFrame(f, chainOf(srvA, keyAOld, keyA, keyANew, keyANewer), keyANewer))
	f.Add(helloFrame(f, chainOf(srvA, keyMallory, keyANew), keyANew))
	f.Add(helloFrame(f, chainOf(srvC, keyC, keyANew), keyANew))
	f.Add(MustSign(f, event(srvA, srvB, 1), keyANew))
	f.Fuzz(func(t *testing.T, frame []byte) {
		v := verifierOf(srvB)
		m, h, learned, err := wire.OpenPeerHello(frame, v)
		if err != nil {
			if learned != nil {
				t.Fatal("learned keys from a refused hello")
			}
			return
		}
		var signed wire.SignedPeerFrame
		if err := json.Unmarshal(frame, &signed); err != nil {
			t.Fatalf("opened a frame that does not decode: %v", err)
		}
		if m.Kind != wire.KindHello || m.Origin != signed.Origin || m.Recipient != srvB || h == nil {
			t.Fatalf("opened %+v", m)
		}
		last := h.Keys[len(h.Keys)-1].PublicKey
		if wire.KeyID(last) != signed.KeyID || !ed25519.Verify(last, append([]byte("aramaki-fed-v3\x00"), signed.Batch...), signed.Signature) {
			t.Fatalf("opened a hello not signed by the last key of its chain")
		}
		if len(learned) == 0 {
			if _, ok := v.Key(signed.Origin, signed.KeyID); !ok {
				t.Fatalf("opened a hello signed by an unknown key and learned nothing")
			}
			return
		}
		// The learned keys are the end of the chain, each endorsed by
		// the one before, the first of them by a known key.
		at := len(h.Keys) - len(learned)
		if at < 1 {
			t.Fatalf("learned %d keys of a chain of %d", len(learned), len(h.Keys))
		}
		if _, ok := v.Key(signed.Origin, wire.KeyID(h.Keys[at-1].PublicKey)); !ok {
			t.Fatalf("learned keys through %s, which is not known", wire.KeyID(h.Keys[at-1].PublicKey))
		}
		for i, k := range learned {
			c := h.Keys[at+i]
			if !k.Equal(ed25519.PublicKey(c.PublicKey)) || !ed25519.Verify(h.Keys[at+i-1].PublicKey, wire.KeyEndorsementBytes(signed.Origin, k), c.Endorsement) {
				t.Fatalf("learned %s without a valid endorsement", wire.KeyID(k))
			}
		}
	})
}
