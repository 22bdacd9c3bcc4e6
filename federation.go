package aramaki

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// A server's identity among its peers: a stable id, and Ed25519 keys it
// signs every federation message with. Keys can be rotated; old ones are
// kept so that what they signed still verifies.

// ServerKey is one of this server's identity keys. The private half never
// leaves the store and the process that signs with it.
type ServerKey struct {
	ID      string             `json:"id"` // KeyID of the public key
	Public  ed25519.PublicKey  `json:"public_key"`
	Private ed25519.PrivateKey `json:"-"`
	Created time.Time          `json:"created"`
	// Retired is when a newer key took over; it still verifies.
	Retired *time.Time `json:"retired,omitempty"`
	// Endorsement is the signature of the key current before this one
	// over this one (see KeyEndorsement), made when it took over: with it
	// peers that know the old key trust the new one. Empty for a server's
	// first key.
	Endorsement []byte `json:"-"`
}

// KeyEndorsement is what a server's key signs to endorse the key that
// replaces it: the server's id and the new public key, under a prefix of
// their own (the federation protocol's, wire.KeyEndorsementBytes).
func KeyEndorsement(server string, next ed25519.PublicKey) []byte {
	return append([]byte("aramaki-key-endorse-v1\x00"+server), next...)
}

// ServerIdentity is this server as its peers know it.
type ServerIdentity struct {
	ID   string      `json:"id"`   // srv_ and 16 hex digits
	Keys []ServerKey `json:"keys"` // current first
}

// Current is the key the server signs with now.
func (s ServerIdentity) Current() ServerKey {
	if len(s.Keys) == 0 {
		return ServerKey{}
	}
	return s.Keys[0]
}

// KeyID names a public key: k_ and the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "k_" + hex.EncodeToString(sum[:8])
}

// KeyFingerprint is the hex SHA-256 of a public key: what an invitation
// carries, for the invitee to check the key it is shown.
func KeyFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

var (
	serverIDPattern = regexp.MustCompile(`^srv_[0-9a-f]{16}$`)
	peerNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
)

// ValidateServerID reports whether id is a server id.
func ValidateServerID(id string) error {
	if !serverIDPattern.MatchString(id) {
		return Errorf(EINVALID, "invalid server id %q: srv_ and 16 hex digits", id)
	}
	return nil
}

// ValidatePeerName reports whether name is a well-formed peer name: what
// this server calls another, in commands and in system references
// (storage@b).
func ValidatePeerName(name string) error {
	if !peerNamePattern.MatchString(name) {
		return Errorf(EINVALID, "invalid peer name %q: 1-63 lower-case letters, digits and '-', starting with a letter", name)
	}
	return nil
}

// Peer is another server this one federates with.
type Peer struct {
	Name   string `json:"name"`   // what this server calls it
	Server string `json:"server"` // its server id
	// URL is where to dial it; empty when it cannot be dialled (it dials
	// this server).
	URL      string     `json:"url,omitempty"`
	CASHA256 string     `json:"ca_sha256,omitempty"` // the pin of its TLS CA
	Keys     []PeerKey  `json:"keys"`
	Added    time.Time  `json:"added"`
	AddedBy  string     `json:"added_by"`
	Removed  *time.Time `json:"removed,omitempty"`
}

// PeerKey is one of a peer's identity keys, as it told this server.
type PeerKey struct {
	ID     string            `json:"id"`
	Public ed25519.PublicKey `json:"public_key"`
	Added  time.Time         `json:"added"`
}

// Key returns the peer's key with the id, if it has told it.
func (p Peer) Key(id string) (ed25519.PublicKey, bool) {
	for _, k := range p.Keys {
		if k.ID == id {
			return k.Public, true
		}
	}
	return nil, false
}

// Invitation lets one server become this one's peer: it is used once,
// before it expires. Only the hash of its secret is kept.
type Invitation struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"` // the name the invitee will have here
	SecretHash []byte     `json:"-"`
	Created    time.Time  `json:"created"`
	CreatedBy  string     `json:"created_by"`
	Expires    time.Time  `json:"expires"`
	Used       *time.Time `json:"used,omitempty"`
}

// Invitation lifetimes.
const (
	DefaultInvitationTTL = 24 * time.Hour
	MaxInvitationTTL     = 7 * 24 * time.Hour
)

// GrantKind is a kind of data a grant shares.
type GrantKind string

// What a grant can share: the events of the systems (their timeline), and
// their status.
const (
	GrantEvents GrantKind = "events"
	GrantStatus GrantKind = "status"
)

// Grant lets a peer use some of this server's systems, until a time: see
// their events or status, run some of their actions.
type Grant struct {
	ID        string      `json:"id"`
	Peer      string      `json:"peer"`
	Systems   []string    `json:"systems"`
	Kinds     []GrantKind `json:"kinds"`
	Actions   []string    `json:"actions,omitempty"`
	Until     time.Time   `json:"until"`
	Created   time.Time   `json:"created"`
	CreatedBy string      `json:"created_by"`
	Revoked   *time.Time  `json:"revoked,omitempty"`
	RevokedBy string      `json:"revoked_by,omitempty"`
}

// MaxGrantDuration bounds how long a grant may last: sharing is for a
// limited time, renewed on purpose.
const MaxGrantDuration = 366 * 24 * time.Hour

// Active reports whether the grant is in force at a time.
func (g Grant) Active(now time.Time) bool {
	return g.Revoked == nil && now.Before(g.Until)
}

// Allows reports whether the grant, in force at now, shares a kind of
// data of a system.
func (g Grant) Allows(now time.Time, system string, kind GrantKind) bool {
	return g.Active(now) && slices.Contains(g.Systems, system) && slices.Contains(g.Kinds, kind)
}

// AllowsAction reports whether the grant, in force at now, lets the peer
// run an action on a system.
func (g Grant) AllowsAction(now time.Time, system, action string) bool {
	return g.Active(now) && slices.Contains(g.Systems, system) && slices.Contains(g.Actions, action)
}

// ParseAllow reads what a grant allows, as written on the command line:
// "events,status,action:restart-unit".
func ParseAllow(s string) ([]GrantKind, []string, error) {
	var kinds []GrantKind
	var actions []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		switch {
		case part == string(GrantEvents) || part == string(GrantStatus):
			if !slices.Contains(kinds, GrantKind(part)) {
				kinds = append(kinds, GrantKind(part))
			}
		case strings.HasPrefix(part, "action:"):
			name := strings.TrimPrefix(part, "action:")
			if err := ValidateActionName(name); err != nil {
				return nil, nil, err
			}
			if !slices.Contains(actions, name) {
				actions = append(actions, name)
			}
		default:
			return nil, nil, Errorf(EINVALID, "a grant allows events, status or action:NAME, not %q", part)
		}
	}
	if len(kinds) == 0 && len(actions) == 0 {
		return nil, nil, Errorf(EINVALID, "a grant must allow something: events, status or action:NAME")
	}
	return kinds, actions, nil
}

// Validate checks a grant as asked for, at a time.
func (g Grant) Validate(now time.Time) error {
	if err := ValidatePeerName(g.Peer); err != nil {
		return err
	}
	if len(g.Systems) == 0 {
		return Errorf(EINVALID, "a grant names at least one system")
	}
	for _, s := range g.Systems {
		if err := ValidateSystemID(s); err != nil {
			return err
		}
	}
	for _, k := range g.Kinds {
		if k != GrantEvents && k != GrantStatus {
			return Errorf(EINVALID, "a grant shares events or status, not %q", k)
		}
	}
	for _, a := range g.Actions {
		if err := ValidateActionName(a); err != nil {
			return err
		}
	}
	if len(g.Kinds) == 0 && len(g.Actions) == 0 {
		return Errorf(EINVALID, "a grant must allow something: events, status or action:NAME")
	}
	switch {
	case !g.Until.After(now):
		return Errorf(EINVALID, "a grant must end in the future")
	case g.Until.Sub(now) > MaxGrantDuration:
		return Errorf(EINVALID, "a grant lasts at most %d days: renew it when it ends", int(MaxGrantDuration.Hours()/24))
	}
	return nil
}

// Federation event kinds on the timeline.
const (
	KindPeerInvited  EventKind = "peer.invited"
	KindPeerJoined   EventKind = "peer.joined"
	KindPeerRemoved  EventKind = "peer.removed"
	KindGrantCreated EventKind = "grant.created"
	KindGrantRevoked EventKind = "grant.revoked"
	KindServerKeyNew EventKind = "server.key_rotated"
	KindPeerKeyNew   EventKind = "peer.key_rotated"
)

// ---- What flows between peers ----

// RemoteSystemID is how this server names a peer's system: storage@a, the
// system storage of the peer it calls a.
func RemoteSystemID(system, peer string) string { return system + "@" + peer }

// SplitRemote splits a remote system id; ok is false for a local one.
func SplitRemote(id string) (system, peer string, ok bool) {
	system, peer, ok = strings.Cut(id, "@")
	return system, peer, ok
}

// ValidateSystemRef reports whether id names a local system (storage) or
// a peer's (storage@a).
func ValidateSystemRef(id string) error {
	system, peer, remote := SplitRemote(id)
	if !remote {
		return ValidateSystemID(id)
	}
	if err := ValidateSystemID(system); err != nil {
		return err
	}
	return ValidatePeerName(peer)
}

// RemoteEvent is an event of a granted system as it is shared with a
// peer: what happened, when, to which of the granted systems — not who
// did it (users of one server are not the other's business) nor its
// detail.
type RemoteEvent struct {
	ID      string    `json:"id"` // the event's id on its origin
	Time    time.Time `json:"time"`
	Kind    EventKind `json:"kind"`
	Systems []string  `json:"systems"` // the origin's ids
	Summary string    `json:"summary"`
}

// Validate checks a remote event as received.
func (r RemoteEvent) Validate() error {
	if !strings.HasPrefix(r.ID, "ev_") || len(r.ID) > 64 {
		return Errorf(EINVALID, "remote event has no valid id")
	}
	e := Event{Time: r.Time, Kind: r.Kind, Actor: "peer", Systems: r.Systems, Summary: r.Summary}
	if err := e.Validate(); err != nil {
		return err
	}
	if len(r.Systems) == 0 {
		return Errorf(EINVALID, "remote event concerns no system")
	}
	for _, s := range r.Systems {
		if _, _, remote := SplitRemote(s); remote {
			return Errorf(EINVALID, "remote event concerns a system of another server: %s", s)
		}
	}
	return nil
}

// remoteEventData is the detail of a peer's event stored here (its
// fields in the order a map of them was written before).
type remoteEventData struct {
	Origin      string `json:"origin"`
	OriginEvent string `json:"origin_event"`
	Peer        string `json:"peer"`
}

// Local is the remote event as this server stores it: on the remote
// systems (storage@a), by the peer, with an id of its own derived from the
// origin's server and event ids, so the same event received twice is
// stored once.
func (r RemoteEvent) Local(peer, origin string) (Event, error) {
	systems := make([]string, len(r.Systems))
	for i, s := range r.Systems {
		systems[i] = RemoteSystemID(s, peer)
	}
	slices.Sort(systems)
	data, err := json.Marshal(remoteEventData{Peer: peer, Origin: origin, OriginEvent: r.ID})
	if err != nil {
		return Event{}, fmt.Errorf("marshal event data: %w", err)
	}
	// Its id is the origin's event's, so that it is stored once however
	// often it arrives; not of its content, as NewEvent's are. It starts
	// with the event's time, so that a peer's events, which arrive in
	// order, go in at the end of the index on ids rather than all over it:
	// a catch-up of millions writes a page now and then, not a page an
	// event.
	at := r.Time.UTC().Truncate(time.Microsecond)
	sum := sha256.Sum256([]byte("aramaki-remote-event-v2\x00" + origin + "\x00" + r.ID))
	var id [16]byte
	binary.BigEndian.PutUint64(id[:8], uint64(max(at.UnixMicro(), 0)))
	copy(id[8:], sum[:8])
	// Not validated again here: the store does, as it does every event it
	// appends, and refuses the peer's batch if this is not a valid event.
	return Event{ID: "ev_" + hex.EncodeToString(id[:]), Time: at, Kind: r.Kind, Actor: "peer:" + peer,
		Systems: slices.Compact(systems), Summary: r.Summary, Data: data}, nil
}

// Shareable reports whether an event may be shared with a peer whose
// grants cover the systems in covered (granted systems and everything
// under them): it is of a kind peers are told of (see Share), and every
// system it concerns is this server's own and covered, so that what it
// says speaks of nothing else.
func Shareable(e Event, covered map[string]bool) bool {
	if len(e.Systems) == 0 || strings.HasPrefix(e.Actor, "peer:") {
		return false
	}
	if _, ok := e.Share(); !ok {
		return false
	}
	for _, s := range e.Systems {
		if _, _, remote := SplitRemote(s); remote || !covered[s] {
			return false
		}
	}
	return true
}

// Share is the event as a peer receives it, and whether peers are told of
// its kind at all. What it says is built from its detail, not from its
// summary, so that users, agents, hosts and check output stay on this
// server: a status change says which check of which system went from what
// to what; an alert that it opened or resolved and how bad; a run which
// action on which system ended how; a note and an announcement are what
// their author wrote for the system.
func (e Event) Share() (RemoteEvent, bool) {
	r := RemoteEvent{ID: e.ID, Time: e.Time, Kind: e.Kind, Systems: slices.Clone(e.Systems)}
	switch e.Kind {
	case KindNote, KindAnnouncement:
		r.Summary = e.Summary
	case KindStatusChanged:
		var d StatusChangedData
		if json.Unmarshal(e.Data, &d) != nil {
			return r, false
		}
		r.Summary = fmt.Sprintf("%s/%s: %s → %s", d.System, d.Check, d.From, d.To)
		if d.First {
			r.Summary = fmt.Sprintf("%s/%s: %s", d.System, d.Check, d.To)
		}
	case KindAlertOpened, KindAlertResolved:
		var d AlertData
		if json.Unmarshal(e.Data, &d) != nil {
			return r, false
		}
		verb := "opened"
		if e.Kind == KindAlertResolved {
			verb = "resolved"
		}
		r.Summary = fmt.Sprintf("alert on %s/%s %s: %s", d.Alert.System, d.Alert.Check, verb, d.Alert.Status)
	case KindRunFinished:
		var d RunData
		if json.Unmarshal(e.Data, &d) != nil {
			return r, false
		}
		r.Summary = fmt.Sprintf("%s on %s %s", d.Run.Action, d.Run.System, strings.ReplaceAll(string(d.Run.State), "_", " "))
	default:
		return r, false
	}
	r.Summary = clipSummary(r.Summary)
	return r, true
}

// OutboxMessage is a message waiting for a peer's acknowledgement,
// numbered per peer.
type OutboxMessage struct {
	Seq     uint64          `json:"seq"`
	Kind    string          `json:"kind"` // "event"
	Body    json.RawMessage `json:"body"`
	Created time.Time       `json:"created"`
}

// PeerLink is where the exchange with a peer stands.
type PeerLink struct {
	Peer string `json:"peer"`
	// EventSeq is the last of this server's events considered for the
	// peer's outbox.
	EventSeq int64 `json:"event_seq"`
	// NextSeq numbers the next outbox message; AckedSeq is the last the
	// peer acknowledged; ReceivedSeq the last of the peer's this server
	// stored.
	NextSeq     uint64 `json:"next_seq"`
	AckedSeq    uint64 `json:"acked_seq"`
	ReceivedSeq uint64 `json:"received_seq"`
}

// ReceivedMessage is a peer's message as this server stores it: its
// number, and the events it brings.
type ReceivedMessage struct {
	Seq      uint64
	Events   []Event
	Statuses []RemoteStatus // on this server's ids of the peer's systems
	// Notifications are queued with the message: announcements told to
	// the people of the systems that use the peer's.
	Notifications []Notification
	// Runs are runs of actions here the peer asked for and may run;
	// RunResults move on runs of the peer's systems this server asked it
	// for.
	Runs       []PeerRunRequest
	RunResults []PeerRunResult
	// Grants, when GrantsTold, are the grants the peer holds in force for
	// this server, replacing all it told before.
	Grants     []ReceivedGrant
	GrantsTold bool
}

// RemoteStatus is the rolled-up status of a peer's shared system, as the
// peer last told it.
type RemoteStatus struct {
	System string    `json:"system"` // storage@a here; storage on the wire
	Status Status    `json:"status"`
	Since  time.Time `json:"since"` // when it entered this status, by the peer's clock
}

// RemoteStatusCheck is the check a peer's system has here: the status the
// peer shares of it. Its alerts are routed like any other, through the
// systems that use it.
const RemoteStatusCheck = "status"

// RemoteStatusState is the status a peer shares of its system, as the
// state of that system's one check here.
func RemoteStatusState(system, status string, since time.Time) CheckState {
	st, _ := ParseStatus(status)
	_, peer, _ := SplitRemote(system)
	return CheckState{System: system, Check: RemoteStatusCheck, Agent: "peer:" + peer, Status: st, Count: 1, Since: since, LastResult: since,
		Output: "as peer " + peer + " reports it"}
}

// KindAnnouncement is an announcement on a system: an incident or planned
// maintenance, told to the people of the systems that use it, here and on
// every peer the system is shared with.
const KindAnnouncement EventKind = "announcement"

// Announcement kinds.
const (
	AnnounceIncident    = "incident"
	AnnounceMaintenance = "maintenance"
)

// AnnouncementData is the detail of an announcement.
type AnnouncementData struct {
	Kind string `json:"kind"` // incident or maintenance
	Text string `json:"text"`
}

// AnnouncementSummary is how an announcement reads on the timeline, and
// what peers receive of it.
func AnnouncementSummary(kind, system, text string) string {
	what := "Incident"
	if kind == AnnounceMaintenance {
		what = "Planned maintenance"
	}
	return clipSummary(what + " on " + system + ": " + strings.Join(strings.Fields(text), " "))
}

func clipSummary(s string) string {
	if r := []rune(s); len(r) > MaxSummaryLen {
		return string(r[:MaxSummaryLen-1]) + "…"
	}
	return s
}

// WithheldMessage is an outbox message no longer to be sent: the grant
// that covered it was revoked or ran out. StatusOf names the system of a
// status message, noted as never told so that it is told again when a
// grant covers it.
type WithheldMessage struct {
	Seq      uint64
	StatusOf string
}
