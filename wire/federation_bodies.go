package wire

import (
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
// for this connection. The accepting server's hello carries a fresh one;
// the dialling server's hello must carry it back, signed, so that a hello
// recorded from another connection opens nothing.
type PeerHello struct {
	Nonce string `json:"nonce"`
}

var noncePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22,64}$`)

// DecodePeerHello decodes and checks the body of a hello.
func DecodePeerHello(body []byte) (*PeerHello, error) {
	var h PeerHello
	if len(body) > 1024 {
		return nil, errorf("peer hello exceeds 1 KiB")
	}
	if err := decodeStrict(body, &h); err != nil {
		return nil, err
	}
	if !noncePattern.MatchString(h.Nonce) {
		return nil, errorf("peer hello: the nonce is not 22-64 base64url characters")
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
