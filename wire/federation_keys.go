package wire

import (
	"bytes"
	"crypto/ed25519"
)

// A server that rotates its key tells its peers in its hellos: the new key
// is endorsed by the one it replaces, and a peer that knows the old key
// trusts the new one through that endorsement, with no step out of band.

// keyEndorsementPrefix separates key endorsements from every other
// signature a server key makes.
const keyEndorsementPrefix = "aramaki-key-endorse-v1\x00"

// KeyEndorsementBytes is what a server's key signs to endorse the key that
// replaces it: the server's id and the new public key. The id has a fixed
// form and the key a fixed length, so the two cannot run into each other;
// the id keeps one server's endorsement from serving as another's.
func KeyEndorsementBytes(server string, next ed25519.PublicKey) []byte {
	p := append([]byte(keyEndorsementPrefix), server...)
	return append(p, next...)
}

// EndorseKey is prev's endorsement of next as server's key.
func EndorseKey(prev ed25519.PrivateKey, server string, next ed25519.PublicKey) []byte {
	return ed25519.Sign(prev, KeyEndorsementBytes(server, next))
}

// VerifyKeyChain checks that chain (a hello's, see PeerHello) leads from a
// key the receiver knows of server to the chain's last key. known returns
// the key of server that a key id names, if the receiver knows it. The
// chain is followed from the newest of its keys the receiver knows, and
// every endorsement after it must verify for server. It returns the keys
// after that one, oldest first: those the receiver learns, none when it
// knows the last key already.
func VerifyKeyChain(server string, chain []PeerKeyLink, known func(keyID string) (ed25519.PublicKey, bool)) ([]ed25519.PublicKey, error) {
	if !ValidServerID(server) {
		return nil, errorf("key chain: %s is not a server id", clip(server))
	}
	if len(chain) == 0 || len(chain) > MaxPeerKeys {
		return nil, errorf("key chain: must hold 1 to %d keys", MaxPeerKeys)
	}
	from := -1
	for i := len(chain) - 1; i >= 0; i-- {
		k := chain[i].PublicKey
		if len(k) != ed25519.PublicKeySize {
			return nil, errorf("key chain: key %d is not a %d-byte Ed25519 key", i+1, ed25519.PublicKeySize)
		}
		if pub, ok := known(KeyID(k)); ok {
			if !bytes.Equal(pub, k) {
				return nil, errorf("key chain: key %s of %s is not the key this server knows by that id", KeyID(k), server)
			}
			from = i
			break
		}
	}
	if from < 0 {
		return nil, errorf("key chain: none of the %d keys %s shows is one this server knows for it (newest %s): it rotated further than its chain reaches, or it is not that server; peer with it again",
			len(chain), server, KeyID(chain[len(chain)-1].PublicKey))
	}
	var learned []ed25519.PublicKey
	for i := from + 1; i < len(chain); i++ {
		prev, next := ed25519.PublicKey(chain[i-1].PublicKey), ed25519.PublicKey(chain[i].PublicKey)
		if len(next) != ed25519.PublicKeySize || len(chain[i].Endorsement) != ed25519.SignatureSize ||
			!ed25519.Verify(prev, KeyEndorsementBytes(server, next), chain[i].Endorsement) {
			return nil, errorf("key chain: the endorsement of %s by %s does not verify for %s: forged, or the chain of another server", KeyID(next), KeyID(prev), server)
		}
		learned = append(learned, next)
	}
	return learned, nil
}

// OpenPeerHello opens a frame that must carry one hello, and returns it
// with its body and the keys of its origin it makes known.
//
// A hello signed by a key v knows for its origin opens as any frame does,
// and makes no key known. One signed by a key v does not know opens only
// when the hello's key chain ends with that key and leads to it from a key
// v knows, every endorsement verifying (VerifyKeyChain): only then is the
// signature checked, with the new key, and the frame opened as any other.
// The keys returned are the origin's that v did not know, oldest first,
// the signing key last; storing them is the caller's, once it has checked
// what else it needs of the hello (its nonce, say).
func OpenPeerHello(frame []byte, v PeerVerifier) (PeerMessage, *PeerHello, []ed25519.PublicKey, error) {
	if v.Key == nil {
		return PeerMessage{}, nil, nil, errorf("peer frame: the verifier needs a key lookup")
	}
	if len(frame) > MaxPeerFrameSize {
		return PeerMessage{}, nil, nil, errorf("peer frame: %d bytes exceeds %d", len(frame), MaxPeerFrameSize)
	}
	var f SignedPeerFrame
	if err := decodeStrict(frame, &f); err != nil {
		return PeerMessage{}, nil, nil, errorf("peer frame: %s", err.(*Error).Msg)
	}
	var learned []ed25519.PublicKey
	if _, ok := v.Key(f.Origin, f.KeyID); !ok && ValidServerID(f.Origin) && ValidKeyID(f.KeyID) && f.Origin != v.Self {
		// Not signed by a key known for its origin: the hello's own chain
		// must lead to it. What is read here is not verified yet, and is
		// trusted no further than the endorsements that check out.
		_, ms, err := decodeBatch(f.Batch)
		if err != nil || len(ms) != 1 || ms[0].Kind != KindHello || ms[0].Origin != f.Origin {
			return PeerMessage{}, nil, nil, errorf("peer frame: %s is not a key this server knows for %s, and the frame is not a hello of %s that could show it", f.KeyID, f.Origin, f.Origin)
		}
		h, err := DecodePeerHello(ms[0].Body)
		if err != nil {
			return PeerMessage{}, nil, nil, err
		}
		if last := h.Keys[len(h.Keys)-1].PublicKey; KeyID(last) != f.KeyID {
			return PeerMessage{}, nil, nil, errorf("peer hello: signed by %s, which is not the last key of its chain (%s)", f.KeyID, KeyID(last))
		}
		learned, err = VerifyKeyChain(f.Origin, h.Keys, func(keyID string) (ed25519.PublicKey, bool) { return v.Key(f.Origin, keyID) })
		if err != nil {
			return PeerMessage{}, nil, nil, errorf("peer hello: signed by %s, a key this server does not know for %s: %s", f.KeyID, f.Origin, err.(*Error).Msg)
		}
		known := v.Key
		v.Key = func(server, keyID string) (ed25519.PublicKey, bool) {
			if server == f.Origin {
				for _, k := range learned {
					if KeyID(k) == keyID {
						return k, true
					}
				}
			}
			return known(server, keyID)
		}
	}
	m, err := OpenPeerMessage(frame, v)
	if err != nil {
		return PeerMessage{}, nil, nil, err
	}
	if m.Kind != KindHello {
		return PeerMessage{}, nil, nil, errorf("peer frame: a %s where a hello was expected", m.Kind)
	}
	h, err := DecodePeerHello(m.Body)
	if err != nil {
		return PeerMessage{}, nil, nil, err
	}
	if last := h.Keys[len(h.Keys)-1].PublicKey; KeyID(last) != f.KeyID {
		return PeerMessage{}, nil, nil, errorf("peer hello: signed by %s, which is not the last key of its chain (%s)", f.KeyID, KeyID(last))
	}
	return m, h, learned, nil
}
