package wire

import (
	"crypto/ed25519"
	"regexp"
	"time"
	"unicode/utf8"
)

// The bodies of peer messages, by kind. Each is decoded strictly and
// checked before anything of it is stored.

// Limits on what a peer event carries.
const (
	MaxPeerEventSummary = 500  // characters, as on the timeline
	MaxPeerEventSystems = 1000 // systems one event concerns
)

var (
	peerEventIDPattern = regexp.MustCompile(`^ev_[0-9a-f]{32}$`)
	eventKindPattern   = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)
	localSystemPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
)

// PeerEvent is the body of an event message: something that happened on
// one or more of the origin's shared systems, named by the origin's own
// system ids. Who did it and its detail stay on the origin.
type PeerEvent struct {
	ID      string    `json:"id"` // the event's id on the origin
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Systems []string  `json:"systems"`
	Summary string    `json:"summary"`
}

// DecodePeerEvent decodes and checks the body of an event message.
func DecodePeerEvent(body []byte) (*PeerEvent, error) {
	var e PeerEvent
	if len(body) > MaxPeerBody {
		return nil, errorf("peer event exceeds %d KiB", MaxPeerBody>>10)
	}
	if err := decodeStrict(body, &e); err != nil {
		return nil, err
	}
	switch {
	case !peerEventIDPattern.MatchString(e.ID):
		return nil, errorf("peer event: id %s is not an event id", clip(e.ID))
	case e.Time.IsZero() || e.Time.Year() < 2000 || e.Time.Year() > 9999:
		return nil, errorf("peer event %s: no valid time", e.ID)
	case !eventKindPattern.MatchString(e.Kind):
		return nil, errorf("peer event %s: kind %s is not an event kind", e.ID, clip(e.Kind))
	case len(e.Systems) == 0 || len(e.Systems) > MaxPeerEventSystems:
		return nil, errorf("peer event %s: it must concern 1 to %d systems", e.ID, MaxPeerEventSystems)
	case !utf8.ValidString(e.Summary) || utf8.RuneCountInString(e.Summary) > MaxPeerEventSummary || len(e.Summary) == 0:
		return nil, errorf("peer event %s: the summary must be 1-%d characters of UTF-8", e.ID, MaxPeerEventSummary)
	}
	for _, s := range e.Systems {
		if !localSystemPattern.MatchString(s) {
			return nil, errorf("peer event %s: %s is not a system id of the origin", e.ID, clip(s))
		}
	}
	return &e, nil
}

// PeerHello is the body of a hello: the nonce the accepting server chose
// for this connection, and the sender's key chain. The accepting server's
// hello carries a fresh nonce; the dialling server's hello must carry it
// back, signed, so that a hello recorded from another connection opens
// nothing.
//
// Keys is the sender's key chain, oldest first, ending with the key that
// signs the hello: each key after the first comes with its endorsement by
// the key before it (KeyEndorsementBytes). A receiver that does not know
// the signing key trusts it only through a chain from a key it knows
// (OpenPeerHello). A server sends its newest keys only, at most
// MaxPeerKeys of them, back to its first key or to the first one made
// without an endorsement.
type PeerHello struct {
	Nonce string        `json:"nonce"`
	Keys  []PeerKeyLink `json:"keys"`
}

// PeerKeyLink is one key of a hello's key chain.
type PeerKeyLink struct {
	PublicKey []byte `json:"public_key"`
	// Endorsement is the signature of the key before this one in the
	// chain over KeyEndorsementBytes of the sender and this key; absent
	// for the first key of the chain.
	Endorsement []byte `json:"endorsement,omitempty"`
}

// maxPeerHello bounds a hello's body: a nonce and MaxPeerKeys keys with
// their endorsements, in base64.
const maxPeerHello = 8 << 10

var noncePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22,64}$`)

// DecodePeerHello decodes and checks the body of a hello: its nonce, and
// the form of its key chain (one to MaxPeerKeys distinct Ed25519 keys, each
// after the first with an endorsement). Whether the endorsements verify
// is VerifyKeyChain's business, which needs the sender's id.
func DecodePeerHello(body []byte) (*PeerHello, error) {
	var h PeerHello
	if len(body) > maxPeerHello {
		return nil, errorf("peer hello exceeds %d KiB", maxPeerHello>>10)
	}
	if err := decodeStrict(body, &h); err != nil {
		return nil, err
	}
	if !noncePattern.MatchString(h.Nonce) {
		return nil, errorf("peer hello: the nonce is not 22-64 base64url characters")
	}
	if len(h.Keys) == 0 || len(h.Keys) > MaxPeerKeys {
		return nil, errorf("peer hello: the key chain must hold 1 to %d keys, the signing key last", MaxPeerKeys)
	}
	seen := map[string]bool{}
	for i, k := range h.Keys {
		if len(k.PublicKey) != ed25519.PublicKeySize {
			return nil, errorf("peer hello: key %d of the chain is not a %d-byte Ed25519 key", i+1, ed25519.PublicKeySize)
		}
		id := KeyID(k.PublicKey)
		if seen[id] {
			return nil, errorf("peer hello: key %s is twice in the chain", id)
		}
		seen[id] = true
		switch {
		case i == 0 && len(k.Endorsement) > 0:
			return nil, errorf("peer hello: the first key of the chain, %s, comes with an endorsement: by no key of the chain", id)
		case i > 0 && len(k.Endorsement) != ed25519.SignatureSize:
			return nil, errorf("peer hello: key %s of the chain has no endorsement (a %d-byte Ed25519 signature by the key before it)", id, ed25519.SignatureSize)
		}
	}
	return &h, nil
}

// PeerStatus is the body of a status message: the rolled-up status of one
// of the origin's shared systems, sent when it changes.
type PeerStatus struct {
	System string    `json:"system"`
	Status string    `json:"status"` // ok, warning, critical or unknown
	Since  time.Time `json:"since"`
}

// DecodePeerStatus decodes and checks the body of a status message.
func DecodePeerStatus(body []byte) (*PeerStatus, error) {
	var s PeerStatus
	if len(body) > 4096 {
		return nil, errorf("peer status exceeds 4 KiB")
	}
	if err := decodeStrict(body, &s); err != nil {
		return nil, err
	}
	switch {
	case !localSystemPattern.MatchString(s.System):
		return nil, errorf("peer status: %s is not a system id of the origin", clip(s.System))
	case s.Status != "ok" && s.Status != "warning" && s.Status != "critical" && s.Status != "unknown":
		return nil, errorf("peer status of %s: %s is not ok, warning, critical or unknown", s.System, clip(s.Status))
	case s.Since.IsZero() || s.Since.Year() < 2000 || s.Since.Year() > 9999:
		return nil, errorf("peer status of %s: no valid time", s.System)
	}
	return &s, nil
}
