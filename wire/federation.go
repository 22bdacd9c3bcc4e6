package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// FederationVersion is the version of the protocol servers speak to each
// other, negotiated as FederationSubprotocol on the federation websocket.
// It is versioned apart from the agent protocol: the two evolve at their
// own pace.
//
//   - 1 (2026-11-24): peering by an invitation token exchanged out of band
//     (PeerInvitation) and a join request over HTTPS in which the invitee
//     proves it holds its key (JoinRequest, JoinResponse); messages signed
//     by their origin server's Ed25519 key (SignPeerMessage,
//     OpenPeerMessage), numbered per origin→recipient link, of kinds event,
//     status, announcement, grant, hello and ack.
//   - 1, join revised (2026-11-24): the join request names the inviter's
//     key its token pins (JoinRequest.InviterKey), inside the joiner's
//     proof (JoinProofBytes, now aramaki-join-v2), so that the inviter
//     refuses an altered token before it uses the invitation; and the
//     inviter signs its answer for that joiner and key (JoinResponse.Proof,
//     aramaki-join-answer-v1), so that the joiner knows at the join that
//     the inviter holds its key. Only the join changed: the messages of a
//     link did not, so FederationVersion and FederationSubprotocol keep
//     their value and peers already joined are unaffected. A server of the
//     first join and one of the revised join cannot join each other: each
//     refuses the other's join body for a field it does not know or lacks.
//   - 2 (2026-11-24): a frame carries up to MaxPeerBatch messages of one
//     origin to one recipient under one signature (SignedPeerFrame,
//     SignPeerFrames, OpenPeerFrame), instead of one message per
//     signature; a hello or an ack still travels alone. The frame's batch
//     is raw JSON, signed byte for byte (aramaki-fed-v3): what its
//     messages share — origin, recipient, sent time — once, then each
//     one's seq, kind and body; ids follow from them (PeerMessageID).
//     Version 1 was never released, so a server speaks only version 2.
//   - 2, hello revised (2026-11-24): a hello carries its sender's key
//     chain (PeerHello.Keys), each key endorsed by the one before it
//     (KeyEndorsementBytes, aramaki-key-endorse-v1), so that a server
//     that rotated its key is trusted by peers that know an older one
//     (OpenPeerHello, VerifyKeyChain). Version 2 was not released yet, so
//     no compatibility is kept: a hello without keys is refused.
//   - 2, grants told (2026-11-24): a message of kind grant carries
//     PeerGrants, every grant the origin holds in force for the recipient,
//     whole, sent when they change (DecodePeerGrants).
//
// # Identities
//
// A server has a stable id (srv_ and 16 lower-case hex digits) and one or
// more Ed25519 keys: it signs with its current key and keeps old ones so
// its peers can still verify what it signed before a rotation. A key is
// named by KeyID and pinned by KeyFingerprint.
const FederationVersion = 2

// FederationSubprotocol is the websocket subprotocol of FederationVersion.
const FederationSubprotocol = "aramaki-federation.v2"

// PeerInvitationPrefix starts every peer invitation token.
const PeerInvitationPrefix = "arpeer1."

// Limits of federation. Senders keep within them; receivers refuse what
// exceeds them.
const (
	MaxPeerInvitation = 4096      // characters of an invitation token
	MaxJoinSize       = 16 << 10  // a join request or response body
	MaxPeerKeys       = 16        // keys a server presents when it joins, or in a hello's key chain
	MaxPeerFrameSize  = 1 << 20   // one federation websocket message
	MaxPeerBody       = 256 << 10 // the body of one peer message
	maxPeerURL        = 2048
)

var (
	serverIDPattern    = regexp.MustCompile(`^srv_[0-9a-f]{16}$`)
	keyIDPattern       = regexp.MustCompile(`^k_[0-9a-f]{16}$`)
	peerNamePattern    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	fingerprintPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
	invitationIDRegexp = regexp.MustCompile(`^[0-9a-f]{16}$`)
	peerSecretPattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{32,100}$`)
)

// ValidServerID reports whether s is a well-formed server id: srv_ and 16
// lower-case hex digits.
func ValidServerID(s string) bool { return serverIDPattern.MatchString(s) }

// ValidKeyID reports whether s is a well-formed key id, as KeyID makes them.
func ValidKeyID(s string) bool { return keyIDPattern.MatchString(s) }

// ValidPeerName reports whether s is a well-formed peer name: 1 to 63
// lower-case letters, digits and '-', starting with a letter. Peer names
// appear in references to remote systems (system@peer).
func ValidPeerName(s string) bool { return peerNamePattern.MatchString(s) }

// KeyID names an Ed25519 public key in signed messages: k_ and the first
// 16 hex digits of the SHA-256 of its 32 bytes. It is a name, not a pin:
// the receiver looks the key up by it, then checks the signature.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "k_" + hex.EncodeToString(sum[:8])
}

// KeyFingerprint pins an Ed25519 public key: the lower-case hex SHA-256 of
// its 32 bytes, as invitations carry it and operators compare it.
func KeyFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// checkBaseURL holds a server's base URL to the enrollment token's rules:
// http or https, a host, no credentials. An https URL must come with a pin
// of the CA (64 lower-case hex digits), a plain-HTTP one without.
func checkBaseURL(what, raw, pin string) error {
	if len(raw) > maxPeerURL {
		return errorf("%s URL exceeds %d bytes", what, maxPeerURL)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errorf("%s URL %s is not a server URL (http or https, a host, no credentials)", what, clip(raw))
	}
	if u.Scheme == "https" && !fingerprintPattern.MatchString(pin) {
		return errorf("%s URL is https but no SHA-256 CA fingerprint (64 lower-case hex digits) pins its CA", what)
	}
	if u.Scheme == "http" && pin != "" {
		return errorf("%s pins a CA for a plain-HTTP URL", what)
	}
	return nil
}

// PeerInvitation is what the operator of server A hands to the operator of
// server B to peer them: where A is, the CA it presents and the key it
// signs with (so B trusts nothing else), the name A will know B by, and a
// single-use secret. It travels as a string: PeerInvitationPrefix and the
// base64url of its compact JSON.
type PeerInvitation struct {
	URL      string    `json:"u"`
	CASHA256 string    `json:"f"` // hex SHA-256 of A's CA certificate's DER; empty only for plain-HTTP development servers
	Server   string    `json:"v"` // A's server id
	Key      string    `json:"k"` // KeyFingerprint of A's current key
	Name     string    `json:"n"` // the peer name A gives B
	ID       string    `json:"i"`
	Secret   string    `json:"s"`
	Expires  time.Time `json:"e"`
}

// String encodes the invitation for copy and paste.
func (t PeerInvitation) String() string {
	raw, _ := json.Marshal(t)
	return PeerInvitationPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// ParsePeerInvitation decodes and checks an invitation. It does not check
// that the invitation is still valid: the inviting server, which keeps it,
// knows when it expires and whether it was used.
func ParsePeerInvitation(s string) (PeerInvitation, error) {
	var t PeerInvitation
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, PeerInvitationPrefix)
	if !ok {
		return t, errorf("not a peer invitation (they start with %s)", PeerInvitationPrefix)
	}
	if len(s) > MaxPeerInvitation {
		return t, errorf("peer invitation of %d characters exceeds %d", len(s), MaxPeerInvitation)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return t, errorf("peer invitation is damaged: not base64url")
	}
	if err := decodeStrict(raw, &t); err != nil {
		return PeerInvitation{}, errorf("peer invitation is damaged: %s", err.(*Error).Msg)
	}
	if err := t.validate(); err != nil {
		return PeerInvitation{}, err
	}
	t.Expires = t.Expires.UTC()
	return t, nil
}

func (t *PeerInvitation) validate() error {
	if err := checkBaseURL("peer invitation: server", t.URL, t.CASHA256); err != nil {
		return err
	}
	if !ValidServerID(t.Server) {
		return errorf("peer invitation names no valid server id")
	}
	if !fingerprintPattern.MatchString(t.Key) {
		return errorf("peer invitation pins no valid key fingerprint (64 lower-case hex digits)")
	}
	if !ValidPeerName(t.Name) {
		return errorf("peer invitation gives no valid peer name (lower-case letters, digits and '-', starting with a letter, at most 63)")
	}
	if !invitationIDRegexp.MatchString(t.ID) {
		return errorf("peer invitation has no valid id")
	}
	if !peerSecretPattern.MatchString(t.Secret) {
		return errorf("peer invitation has no valid secret")
	}
	if t.Expires.IsZero() {
		return errorf("peer invitation has no expiry")
	}
	return nil
}

// JoinProofBytes is what a joining server signs with its key to prove it
// holds it: the invitation it answers, the inviting server, the
// fingerprint of the inviter's key its token pins, and itself, so that the
// proof is good for that one join only, and the inviter knows which key
// the joiner expects of it. Every field has a fixed form without NUL (the
// request's Validate), so the NULs between them keep them apart.
func JoinProofBytes(invitation, inviter, inviterKey, joiner string) []byte {
	p := []byte("aramaki-join-v2\x00")
	for _, f := range []string{invitation, inviter, inviterKey} {
		p = append(p, f...)
		p = append(p, 0)
	}
	return append(p, joiner...)
}

// JoinRequest is what server B posts to server A, over HTTPS to the URL
// and CA of A's invitation, to accept it: the invitation's id and secret,
// the key of A it expects, who B is, where A can reach it (nowhere when
// URL is empty: then B always dials), and B's current key with proof that
// B holds it.
type JoinRequest struct {
	Invitation string `json:"invitation"` // the invitation's ID
	Secret     string `json:"secret"`
	// InviterKey is the KeyFingerprint of A's key that B's token pins. A
	// refuses the join, before it uses the invitation, when it is none of
	// A's keys: B would refuse A's answer, and A would list a peer that
	// does not list it.
	InviterKey string `json:"inviter_key"`
	Server     string `json:"server"` // B's server id
	Name       string `json:"name"`   // B's name for itself
	URL        string `json:"url"`
	CASHA256   string `json:"ca_sha256"`
	PublicKey  []byte `json:"public_key"`
	// Proof is B's signature with PublicKey over
	// JoinProofBytes(Invitation, A's server id, InviterKey, Server).
	Proof []byte `json:"proof"`
}

// DecodeJoinRequest decodes and validates a join request body. It does not
// check the proof, which needs the inviter's id: see VerifyProof.
func DecodeJoinRequest(raw []byte) (*JoinRequest, error) {
	if len(raw) > MaxJoinSize {
		return nil, errorf("join request exceeds %d KiB", MaxJoinSize>>10)
	}
	var r JoinRequest
	if err := decodeStrict(raw, &r); err != nil {
		return nil, errorf("join request: %s", err.(*Error).Msg)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks the form of a join request.
func (r *JoinRequest) Validate() error {
	if !invitationIDRegexp.MatchString(r.Invitation) {
		return errorf("join request: invitation %s is not an invitation id (16 lower-case hex digits)", clip(r.Invitation))
	}
	if !peerSecretPattern.MatchString(r.Secret) {
		return errorf("join request: secret is not an invitation secret (32 to 100 base64url characters)")
	}
	if !ValidServerID(r.Server) {
		return errorf("join request: server %s is not a server id (srv_ and 16 lower-case hex digits)", clip(r.Server))
	}
	if !ValidPeerName(r.Name) {
		return errorf("join request: name %s is not a peer name (lower-case letters, digits and '-', starting with a letter, at most 63)", clip(r.Name))
	}
	if r.URL == "" {
		if r.CASHA256 != "" {
			return errorf("join request: pins a CA but gives no URL")
		}
	} else if err := checkBaseURL("join request:", r.URL, r.CASHA256); err != nil {
		return err
	}
	if len(r.PublicKey) != ed25519.PublicKeySize {
		return errorf("join request: public_key must be a %d-byte Ed25519 key", ed25519.PublicKeySize)
	}
	if len(r.Proof) != ed25519.SignatureSize {
		return errorf("join request: proof must be a %d-byte Ed25519 signature", ed25519.SignatureSize)
	}
	if !fingerprintPattern.MatchString(r.InviterKey) {
		return errorf("join request: inviter_key %s is not a key fingerprint (64 lower-case hex digits)", clip(r.InviterKey))
	}
	return nil
}

// VerifyProof checks that the joining server signed this join to inviter
// (the receiving server's own id), expecting the key InviterKey names,
// with the key it presents. Whether InviterKey is one of the inviter's
// keys is the inviter's to check.
func (r *JoinRequest) VerifyProof(inviter string) error {
	if len(r.PublicKey) != ed25519.PublicKeySize || len(r.Proof) != ed25519.SignatureSize {
		return errorf("join request: no Ed25519 key or proof")
	}
	if r.Server == inviter {
		return errorf("join request: server %s cannot join itself", inviter)
	}
	if !ed25519.Verify(r.PublicKey, JoinProofBytes(r.Invitation, inviter, r.InviterKey, r.Server), r.Proof) {
		return errorf("join request: the proof does not verify: it was made for another invitation, inviting server, inviter's key or joining server, or with another key")
	}
	return nil
}

// JoinResponse is server A's answer to an accepted join: who A is, its
// keys (current first, then those it still verifies with), where B can
// reach it, and A's signature over all that for this join.
type JoinResponse struct {
	Server     string   `json:"server"` // A's server id
	Name       string   `json:"name"`   // A's name for itself
	PublicKeys [][]byte `json:"public_keys"`
	URL        string   `json:"url"`
	CASHA256   string   `json:"ca_sha256"`
	// Proof is A's signature with its current key (the first of
	// PublicKeys) over ProofBytes of the join it answers.
	Proof []byte `json:"proof"`
}

// joinAnswerPrefix separates an inviter's signature of its answer from
// every other signature a server key makes.
const joinAnswerPrefix = "aramaki-join-answer-v1\x00"

// ProofBytes is what the inviting server signs to answer a join: the
// invitation, itself, the joining server and the key that server
// presented, then the answer (its name, URL, CA pin and keys). With it the
// joiner knows, at the join, that the server holding the inviter's current
// key took it in under this invitation, and that what it stores of the
// inviter is what the inviter said. The strings have fixed forms without
// NUL (Validate), the keys a fixed length.
func (r *JoinResponse) ProofBytes(invitation, joiner string, joinerKey ed25519.PublicKey) []byte {
	p := []byte(joinAnswerPrefix)
	for _, f := range []string{invitation, r.Server, joiner} {
		p = append(p, f...)
		p = append(p, 0)
	}
	p = append(p, joinerKey...)
	for _, f := range []string{r.Name, r.URL, r.CASHA256} {
		p = append(p, 0)
		p = append(p, f...)
	}
	p = append(p, 0)
	for _, k := range r.PublicKeys {
		p = append(p, k...)
	}
	return p
}

// DecodeJoinResponse decodes and validates a join response body. The
// joining server then checks it against its invitation and its own join:
// see VerifyInviter and VerifyProof.
func DecodeJoinResponse(raw []byte) (*JoinResponse, error) {
	if len(raw) > MaxJoinSize {
		return nil, errorf("join response exceeds %d KiB", MaxJoinSize>>10)
	}
	var r JoinResponse
	if err := decodeStrict(raw, &r); err != nil {
		return nil, errorf("join response: %s", err.(*Error).Msg)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks the form of a join response.
func (r *JoinResponse) Validate() error {
	if !ValidServerID(r.Server) {
		return errorf("join response: server %s is not a server id (srv_ and 16 lower-case hex digits)", clip(r.Server))
	}
	if !ValidPeerName(r.Name) {
		return errorf("join response: name %s is not a peer name (lower-case letters, digits and '-', starting with a letter, at most 63)", clip(r.Name))
	}
	if len(r.PublicKeys) == 0 || len(r.PublicKeys) > MaxPeerKeys {
		return errorf("join response: public_keys needs 1 to %d keys", MaxPeerKeys)
	}
	for i, k := range r.PublicKeys {
		if len(k) != ed25519.PublicKeySize {
			return errorf("join response: public key %d is not a %d-byte Ed25519 key", i+1, ed25519.PublicKeySize)
		}
		for _, earlier := range r.PublicKeys[:i] {
			if bytes.Equal(k, earlier) {
				return errorf("join response: public key %d is listed twice", i+1)
			}
		}
	}
	if r.URL == "" {
		if r.CASHA256 != "" {
			return errorf("join response: pins a CA but gives no URL")
		}
	} else if err := checkBaseURL("join response:", r.URL, r.CASHA256); err != nil {
		return err
	}
	if len(r.Proof) != ed25519.SignatureSize {
		return errorf("join response: proof must be a %d-byte Ed25519 signature (an inviting server of the first join signs none)", ed25519.SignatureSize)
	}
	return nil
}

// VerifyInviter checks that the response comes from the server inv
// invited us to: its id, and the key the invitation pins among its keys
// (A may have rotated its key since it made the invitation).
func (r *JoinResponse) VerifyInviter(inv PeerInvitation) error {
	if r.Server != inv.Server {
		return errorf("join response: server %s answered an invitation of %s", clip(r.Server), inv.Server)
	}
	for _, k := range r.PublicKeys {
		if KeyFingerprint(k) == inv.Key {
			return nil
		}
	}
	return errorf("join response: none of the keys of %s is the one the invitation pins (%s)", inv.Server, inv.Key)
}

// VerifyProof checks that the inviter signed this answer with its current
// key (the first of PublicKeys) for the join of joiner, presenting
// joinerKey, with invitation. With VerifyInviter it tells the joiner that
// the server the invitation pins answered, and holds its key.
func (r *JoinResponse) VerifyProof(invitation, joiner string, joinerKey ed25519.PublicKey) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if len(joinerKey) != ed25519.PublicKeySize {
		return errorf("join response: the joining server's key is not a %d-byte Ed25519 key", ed25519.PublicKeySize)
	}
	if !ed25519.Verify(r.PublicKeys[0], r.ProofBytes(invitation, joiner, joinerKey), r.Proof) {
		return errorf("join response: the proof does not verify with the inviting server's current key: the answer is for another join, or was altered on the way")
	}
	return nil
}

// PeerKind says what a peer message is.
type PeerKind string

// Kinds of peer message. Outbox kinds are durable: numbered, stored until
// acknowledged and replayed after a disconnect. Hello and ack belong to
// one connection and are neither stored nor replayed.
const (
	KindEvent        PeerKind = "event"         // something happened on a shared system
	KindStatus       PeerKind = "status"        // the status of a shared system
	KindAnnouncement PeerKind = "announcement"  // an incident or planned maintenance
	KindGrant        PeerKind = "grant"         // a grant given or revoked: what the recipient may use
	KindAction       PeerKind = "action"        // run an action a grant allows (PeerAction)
	KindActionResult PeerKind = "action_result" // how a run asked for goes (PeerActionResult)
	KindHello        PeerKind = "hello"         // the start of a session
	KindAck          PeerKind = "ack"           // the origin stored the recipient's messages up to Seq
)

// Outbox reports whether messages of kind k are numbered in the origin's
// outbox to the recipient; false for hello, ack and unknown kinds.
func (k PeerKind) Outbox() bool {
	switch k {
	case KindEvent, KindStatus, KindAnnouncement, KindGrant, KindAction, KindActionResult:
		return true
	}
	return false
}

func (k PeerKind) known() bool { return k.Outbox() || k == KindHello || k == KindAck }

// PeerMessage is one message from an origin server to a recipient server.
//
// Messages of outbox kinds are numbered per origin→recipient link from 1,
// in the order the origin made them, and their ID is PeerMessageID of
// origin, kind and seq: the recipient recognises a duplicate by its id
// and ignores it. For a hello or an ack, Seq is the last of the
// recipient's messages the origin has stored (the recipient sends what
// follows; 0 in a hello when there is none), and the id names the kind.
//
// Sent is when this copy was signed, not when the message was made: a
// message replayed from the outbox is signed again, so that receivers can
// keep their window for Sent narrow. Times that matter belong in the body.
type PeerMessage struct {
	ID        string          `json:"id"`
	Origin    string          `json:"origin"`    // server id of the sender
	Recipient string          `json:"recipient"` // server id of the receiver
	Seq       uint64          `json:"seq"`
	Sent      time.Time       `json:"sent"`
	Kind      PeerKind        `json:"kind"`
	Body      json.RawMessage `json:"body,omitempty"` // a JSON object; may be left out of a hello or ack
}

// PeerMessageID is the id of the message of kind from origin numbered seq:
// origin/seq for outbox kinds, origin/kind/seq for hello and ack, so that
// the two never collide.
func PeerMessageID(origin string, kind PeerKind, seq uint64) string {
	if kind.Outbox() {
		return origin + "/" + strconv.FormatUint(seq, 10)
	}
	return origin + "/" + string(kind) + "/" + strconv.FormatUint(seq, 10)
}

// Validate checks the form of a message: ids, kind, numbering and body.
// Who may send it to whom and when is OpenPeerMessage's business.
func (m *PeerMessage) Validate() error { return m.validate(false, false) }

// validate is Validate, leaving out what is known already of a message in
// a batch: its origin and recipient are those of a message checked before
// it (idsChecked), and its body is well-formed JSON, as one decoded from a
// frame is (bodyValid).
func (m *PeerMessage) validate(idsChecked, bodyValid bool) error {
	if !idsChecked && !ValidServerID(m.Origin) {
		return errorf("peer message: origin %s is not a server id", clip(m.Origin))
	}
	if !idsChecked && !ValidServerID(m.Recipient) {
		return errorf("peer message: recipient %s is not a server id", clip(m.Recipient))
	}
	if m.Origin == m.Recipient {
		return errorf("peer message: %s sends to itself", m.Origin)
	}
	if !m.Kind.known() {
		return errorf("peer message: unknown kind %s", clip(string(m.Kind)))
	}
	if m.Seq == 0 && m.Kind != KindHello {
		return errorf("peer message: %s with seq 0: messages are numbered from 1", m.Kind)
	}
	if want := PeerMessageID(m.Origin, m.Kind, m.Seq); m.ID != want {
		return errorf("peer message: id %s does not match its origin, kind and seq (want %s)", clip(m.ID), want)
	}
	if m.Sent.IsZero() {
		return errorf("peer message %s: sent time is missing", m.ID)
	}
	if len(m.Body) > MaxPeerBody {
		return errorf("peer message %s: body of %d bytes exceeds %d KiB", m.ID, len(m.Body), MaxPeerBody>>10)
	}
	if len(m.Body) == 0 {
		if m.Kind.Outbox() {
			return errorf("peer message %s: %s without a body", m.ID, m.Kind)
		}
		return nil
	}
	if b := bytes.TrimLeft(m.Body, " \t\r\n"); len(b) == 0 || b[0] != '{' || !bodyValid && !json.Valid(m.Body) {
		return errorf("peer message %s: body is not a JSON object", m.ID)
	}
	return nil
}

// SignedPeerFrame is a frame on the federation websocket: one or more
// messages of one origin to one recipient, sent at one time, as the exact
// bytes of a JSON batch object (peerBatch), signed once by the origin.
// The batch travels as raw JSON, not re-encoded, so that what is verified
// is what was signed. Origin names whose key to check before anything
// else in the frame is read; the batch must name the same origin.
//
// One signature covers a batch: Ed25519 costs tens of microseconds a
// signature, which would bound a link to a few thousand messages a second
// if every message were signed alone. What the messages of a batch share —
// origin, recipient, sent time — is said once, and each message's id
// follows from its origin, kind and seq (PeerMessageID).
type SignedPeerFrame struct {
	Origin    string          `json:"origin"`
	KeyID     string          `json:"key_id"`
	Batch     json.RawMessage `json:"batch"`
	Signature []byte          `json:"signature"`
}

// peerBatch is what a frame signs: messages of one origin to one
// recipient, sent at one time.
type peerBatch struct {
	Origin    string     `json:"origin"`
	Recipient string     `json:"recipient"`
	Sent      time.Time  `json:"sent"`
	Messages  []peerItem `json:"messages"`
}

// peerItem is one message of a batch.
type peerItem struct {
	Seq  uint64          `json:"seq"`
	Kind PeerKind        `json:"kind"`
	Body json.RawMessage `json:"body,omitempty"`
}

// decodeBatch decodes a batch strictly into its messages, each with its
// id, origin, recipient and sent time; it does not check them.
func decodeBatch(raw []byte) (peerBatch, []PeerMessage, error) {
	var b peerBatch
	if err := decodeStrict(raw, &b); err != nil {
		return b, nil, errorf("peer frame: the signed batch: %s", err.(*Error).Msg)
	}
	if len(b.Messages) > MaxPeerBatch {
		return b, nil, errorf("peer frame: %d messages, more than %d", len(b.Messages), MaxPeerBatch)
	}
	ms := make([]PeerMessage, len(b.Messages))
	for i, it := range b.Messages {
		ms[i] = PeerMessage{ID: PeerMessageID(b.Origin, it.Kind, it.Seq), Origin: b.Origin, Recipient: b.Recipient, Seq: it.Seq, Sent: b.Sent, Kind: it.Kind, Body: it.Body}
	}
	return b, ms, nil
}

// MaxPeerBatch is how many messages one frame carries at most.
const MaxPeerBatch = 1024

// maxPeerBatchBytes bounds the batch of a frame so that, with the
// envelope, the frame stays within MaxPeerFrameSize.
const maxPeerBatchBytes = MaxPeerFrameSize - 1024

// peerSignaturePrefix separates peer frame signatures from every other
// signature a server key makes, and from earlier versions'.
const peerSignaturePrefix = "aramaki-fed-v3\x00"

func peerSignedBytes(batch []byte) []byte {
	return append([]byte(peerSignaturePrefix), batch...)
}

// checkBatch checks what holds for the messages of one frame, beyond each
// message's own form: one origin, one recipient, one sent time; a hello
// or an ack alone; outbox messages in increasing order.
//
// bodyValid says the bodies are well-formed JSON already (decoded from a
// frame), so that they are not scanned again.
func checkBatch(ms []PeerMessage, bodyValid bool) error {
	if len(ms) == 0 {
		return errorf("peer frame: carries no message")
	}
	var last uint64
	for i := range ms {
		m := &ms[i]
		if i > 0 && (m.Origin != ms[0].Origin || m.Recipient != ms[0].Recipient) {
			return errorf("peer message %s: from %s to %s in a frame from %s to %s: a frame is one origin's to one recipient", clip(m.ID), clip(m.Origin), clip(m.Recipient), ms[0].Origin, ms[0].Recipient)
		}
		if i > 0 && !m.Sent.Equal(ms[0].Sent) {
			return errorf("peer message %s: sent at another time than the frame's first: a frame's messages are sent together", clip(m.ID))
		}
		if err := m.validate(i > 0, bodyValid); err != nil {
			return err
		}
		if !m.Kind.Outbox() {
			if len(ms) > 1 {
				return errorf("peer message %s: a %s travels alone in its frame", m.ID, m.Kind)
			}
			continue
		}
		if m.Seq <= last {
			return errorf("peer message %s: after message %d in its frame: a frame's messages are in increasing order", m.ID, last)
		}
		last = m.Seq
	}
	return nil
}

// SignPeerFrames signs ms, one origin's messages to one recipient sent at
// one time, in order, into as few frames as fit within MaxPeerBatch and
// MaxPeerFrameSize. It checks them first, so a sender never sends what
// the receiver would refuse for its form.
func SignPeerFrames(ms []PeerMessage, key ed25519.PrivateKey) ([][]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errorf("sign peer messages: not an Ed25519 private key")
	}
	if err := checkBatch(ms, false); err != nil {
		return nil, err
	}
	keyID := KeyID(key.Public().(ed25519.PublicKey))
	sent, err := json.Marshal(ms[0].Sent)
	if err != nil {
		return nil, fmt.Errorf("sign peer messages: %w", err)
	}
	// The ids are known to be of the server id form: written as they are.
	head := `{"origin":"` + ms[0].Origin + `","recipient":"` + ms[0].Recipient + `","sent":` + string(sent) + `,"messages":[`
	var frames [][]byte
	batch := []byte(head)
	n := 0
	flush := func() {
		batch = append(batch, "]}"...)
		sig := ed25519.Sign(key, peerSignedBytes(batch))
		frame := make([]byte, 0, len(batch)+200)
		frame = append(frame, `{"origin":"`+ms[0].Origin+`","key_id":"`+keyID+`","batch":`...)
		frame = append(frame, batch...)
		frame = append(frame, `,"signature":"`...)
		frame = base64.StdEncoding.AppendEncode(frame, sig)
		frame = append(frame, `"}`...)
		frames = append(frames, frame)
		batch, n = []byte(head), 0
	}
	var one []byte
	for i := range ms {
		// Written by hand: checkBatch found the kind known (letters and
		// '_' only) and the body a JSON object, which goes as it is.
		one = append(one[:0], `{"seq":`...)
		one = strconv.AppendUint(one, ms[i].Seq, 10)
		one = append(one, `,"kind":"`...)
		one = append(one, ms[i].Kind...)
		one = append(one, '"')
		if len(ms[i].Body) > 0 {
			one = append(one, `,"body":`...)
			one = append(one, ms[i].Body...)
		}
		one = append(one, '}')
		if len(head)+len(one)+2 > maxPeerBatchBytes {
			return nil, errorf("peer message %s: %d bytes do not fit a frame", ms[i].ID, len(one))
		}
		if n > 0 && (n == MaxPeerBatch || len(batch)+1+len(one)+2 > maxPeerBatchBytes) {
			flush()
		}
		if n > 0 {
			batch = append(batch, ',')
		}
		batch = append(batch, one...)
		n++
	}
	flush()
	return frames, nil
}

// SignPeerMessage makes the frame of m alone, signed with key.
func SignPeerMessage(m PeerMessage, key ed25519.PrivateKey) ([]byte, error) {
	frames, err := SignPeerFrames([]PeerMessage{m}, key)
	if err != nil {
		return nil, err
	}
	return frames[0], nil
}

// PeerVerifier is what a server needs to open the messages of its peers.
type PeerVerifier struct {
	Self    string        // this server's id: the only recipient accepted
	Now     time.Time     // this server's clock
	MaxSkew time.Duration // how far Sent may be from Now either way; MaxClockSkew when 0
	// Key returns the key of server that keyID names, old keys included;
	// false when this server knows no such key of that server (it is not a
	// peer, or the key is not one of the peer's).
	Key func(server, keyID string) (ed25519.PublicKey, bool)
}

// OpenPeerFrame decodes a frame, checks it was signed by a key of its
// origin that v knows, and that every message in it was sent to v.Self by
// that origin within v.MaxSkew of v.Now and is well formed, and returns
// the messages in order. Nothing of a frame is returned unless all of it
// holds. It does not know what was received before: recognising
// duplicates by id and keeping order by seq across frames is the
// receiver's.
func OpenPeerFrame(frame []byte, v PeerVerifier) ([]PeerMessage, error) {
	if !ValidServerID(v.Self) || v.Now.IsZero() || v.Key == nil || v.MaxSkew < 0 {
		return nil, errorf("peer frame: the verifier needs this server's id, a clock and a key lookup")
	}
	skew := v.MaxSkew
	if skew == 0 {
		skew = MaxClockSkew
	}
	if len(frame) > MaxPeerFrameSize {
		return nil, errorf("peer frame: %d bytes exceeds %d", len(frame), MaxPeerFrameSize)
	}
	var f SignedPeerFrame
	if err := decodeStrict(frame, &f); err != nil {
		return nil, errorf("peer frame: %s", err.(*Error).Msg)
	}
	if !ValidServerID(f.Origin) {
		return nil, errorf("peer frame: origin %s is not a server id", clip(f.Origin))
	}
	if f.Origin == v.Self {
		return nil, errorf("peer frame: claims to come from this server: reflected or forged")
	}
	if !ValidKeyID(f.KeyID) {
		return nil, errorf("peer frame: key_id %s is not a key id", clip(f.KeyID))
	}
	if len(f.Signature) != ed25519.SignatureSize {
		return nil, errorf("peer frame: signature must be a %d-byte Ed25519 signature", ed25519.SignatureSize)
	}
	if len(f.Batch) == 0 || string(f.Batch) == "null" {
		return nil, errorf("peer frame: carries no message")
	}
	pub, ok := v.Key(f.Origin, f.KeyID)
	if !ok {
		return nil, errorf("peer frame: %s is not a key this server knows for %s", f.KeyID, f.Origin)
	}
	if len(pub) != ed25519.PublicKeySize || KeyID(pub) != f.KeyID {
		return nil, errorf("peer frame: the key this server has for %s %s is not that key", f.Origin, f.KeyID)
	}
	if !ed25519.Verify(pub, peerSignedBytes(f.Batch), f.Signature) {
		return nil, errorf("peer frame: the signature does not verify with key %s of %s: forged or altered on the way", f.KeyID, f.Origin)
	}
	// Signed by the origin; what it signed must still be well formed.
	b, ms, err := decodeBatch(f.Batch)
	if err != nil {
		return nil, err
	}
	if err := checkBatch(ms, true); err != nil {
		return nil, err
	}
	if b.Origin != f.Origin {
		return nil, errorf("peer frame: a batch from %s in a frame signed by %s: forged", clip(b.Origin), f.Origin)
	}
	if b.Recipient != v.Self {
		return nil, errorf("peer message %s: sent to %s, not to this server (%s): replayed or misrouted", ms[0].ID, b.Recipient, v.Self)
	}
	// Compared as times: a duration between them saturates for times
	// centuries apart.
	if b.Sent.After(v.Now.Add(skew)) {
		return nil, errorf("peer message %s: sent %s, %s ahead of this server's clock (more than %s): a clock is wrong", ms[0].ID, b.Sent.Format(time.RFC3339), b.Sent.Sub(v.Now).Round(time.Second), skew)
	}
	if b.Sent.Before(v.Now.Add(-skew)) {
		return nil, errorf("peer message %s: sent %s, %s ago (more than %s): replayed, or a clock is wrong", ms[0].ID, b.Sent.Format(time.RFC3339), v.Now.Sub(b.Sent).Round(time.Second), skew)
	}
	return ms, nil
}

// OpenPeerMessage opens a frame that must carry exactly one message, as a
// hello does.
func OpenPeerMessage(frame []byte, v PeerVerifier) (PeerMessage, error) {
	ms, err := OpenPeerFrame(frame, v)
	if err != nil {
		return PeerMessage{}, err
	}
	if len(ms) != 1 {
		return PeerMessage{}, errorf("peer frame: %d messages where one was expected", len(ms))
	}
	return ms[0], nil
}
