// Package wire is every message that crosses a process boundary between an
// agent and its server: the enrollment request, and the frames of the agent
// websocket. Each message is validated here, at the edge, with a clear
// error; nothing that fails validation reaches the service.
//
// # Protocol versions
//
// The version is negotiated in the websocket handshake: the agent offers
// the subprotocols it speaks, the server picks the newest it shares
// (Subprotocols lists them newest first; VersionOf maps the one chosen to
// its version), and the hello and auth frames repeat it. Frames added in a
// version are sent to and accepted from peers of that version or later
// only: see Type.Since, EncodeVersion, DecodeFromAgentVersion and
// DecodeFromServerVersion. A server speaks every version listed here.
//
//   - 1 (2026-11-24): enrollment with a one-time token that pins the server's
//     CA; hello/auth/welcome handshake where the agent signs the server's
//     nonce and the TLS channel binding with its Ed25519 key; check
//     definitions pushed by the server; results with per-agent sequence
//     numbers acknowledged after commit; keepalives; inventory facts; ad hoc
//     check runs; gap reports when the agent's queue overflowed.
//   - 2 (2026-11-24): action runs. The agent declares the actions its host
//     allows (actions: after the welcome and whenever its configuration
//     changes); the server starts a run of one of them by name with values
//     for its parameters (start) and may cancel it (cancel); the agent
//     streams the run's output live (output, numbered per run) and says how
//     it ended (finished) until the server acknowledges that (run_ack); after
//     a reconnect it lists the runs it still knows of (runs).
//
// # Frames
//
// Every websocket message is one JSON object {"type": T, "body": {...}}
// with T one of the Type constants. Agent to server: auth, results,
// keepalive, facts, gap; since 2 also actions, output, finished, runs.
// Server to agent: hello, welcome, checks, ack, run, error; since 2 also
// start, cancel, run_ack. Unknown types, types newer than the connection's
// version, unknown fields and oversized frames are refused.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Protocol versions this package speaks: MinVersion to Version.
const (
	MinVersion = 1
	Version    = 2
)

// Websocket subprotocols, one a version. Subprotocol is Version's.
const (
	Subprotocol   = SubprotocolV2
	SubprotocolV1 = "aramaki-agent.v1"
	SubprotocolV2 = "aramaki-agent.v2"
)

// Subprotocols are the subprotocols of every version this package speaks,
// newest first: what a server accepts and an agent offers, so that the
// newest version both sides speak is chosen.
func Subprotocols() []string { return []string{SubprotocolV2, SubprotocolV1} }

// VersionOf is the protocol version of a negotiated subprotocol; false for
// one this package does not speak, the empty one included.
func VersionOf(subprotocol string) (int, bool) {
	// The websocket library matches subprotocols without regard to case.
	switch {
	case strings.EqualFold(subprotocol, SubprotocolV1):
		return 1, true
	case strings.EqualFold(subprotocol, SubprotocolV2):
		return 2, true
	}
	return 0, false
}

func checkVersion(version int) error {
	if version < MinVersion || version > Version {
		return errorf("protocol version %d is not spoken here (this side speaks %d to %d)", version, MinVersion, Version)
	}
	return nil
}

// Limits of the protocol. The agent keeps within them; the server refuses
// what exceeds them.
const (
	MaxFrameSize  = 4 << 20  // one websocket message
	MaxBatch      = 1000     // results per results frame
	MaxOutput     = 16 << 10 // bytes of check output kept per result
	MaxMetrics    = 64       // metrics per result
	MaxChecks     = 10000    // check definitions per checks frame
	MaxArgs       = 64       // arguments of a check command or an action
	MaxFactsSize  = 1 << 20  // encoded inventory facts
	MaxClockSkew  = 5 * time.Minute
	MaxResultAge  = 31 * 24 * time.Hour // older results are refused: beyond history retention
	MinInterval   = time.Second
	MaxInterval   = 24 * time.Hour
	MaxTimeout    = time.Hour
	NonceSize     = 32
	PublicKeySize = 32 // Ed25519
	SignatureSize = 64 // Ed25519
)

// Type names a frame.
type Type string

// Frame types.
const (
	TypeHello     Type = "hello"     // server → agent: first frame, with the nonce to sign
	TypeAuth      Type = "auth"      // agent → server: who I am, proven by a signature
	TypeWelcome   Type = "welcome"   // server → agent: accepted; the checks to run
	TypeChecks    Type = "checks"    // server → agent: new check definitions
	TypeResults   Type = "results"   // agent → server: a batch of results, in sequence order
	TypeAck       Type = "ack"       // server → agent: results up to a sequence are stored
	TypeKeepalive Type = "keepalive" // agent → server: still here
	TypeFacts     Type = "facts"     // agent → server: inventory facts
	TypeRun       Type = "run"       // server → agent: run a check now
	TypeGap       Type = "gap"       // agent → server: results were dropped from a full queue
	TypeError     Type = "error"     // server → agent: why the connection ends

	// Since version 2.
	TypeActions  Type = "actions"  // agent → server: the actions this host allows
	TypeStart    Type = "start"    // server → agent: start a run of an action
	TypeCancel   Type = "cancel"   // server → agent: cancel a run
	TypeOutput   Type = "output"   // agent → server: a piece of a run's output
	TypeFinished Type = "finished" // agent → server: how a run ended
	TypeRuns     Type = "runs"     // agent → server: the runs the agent knows of
	TypeRunAck   Type = "run_ack"  // server → agent: how a run ended is stored
)

// Since is the protocol version that introduced frames of type t, 0 for no
// frame type: a peer that negotiated an older version never sees them.
func (t Type) Since() int {
	switch t {
	case TypeHello, TypeAuth, TypeWelcome, TypeChecks, TypeResults, TypeAck, TypeKeepalive, TypeFacts, TypeRun, TypeGap, TypeError:
		return 1
	case TypeActions, TypeStart, TypeCancel, TypeOutput, TypeFinished, TypeRuns, TypeRunAck:
		return 2
	}
	return 0
}

// The frames each side sends; the agent's auth is decoded on its own.
var (
	fromAgent  = []Type{TypeResults, TypeKeepalive, TypeFacts, TypeGap, TypeActions, TypeOutput, TypeFinished, TypeRuns}
	fromServer = []Type{TypeHello, TypeWelcome, TypeChecks, TypeAck, TypeRun, TypeError, TypeStart, TypeCancel, TypeRunAck}
)

// newMessage is an empty message of type t, nil for no frame type.
func newMessage(t Type) Message {
	switch t {
	case TypeHello:
		return &Hello{}
	case TypeAuth:
		return &Auth{}
	case TypeWelcome:
		return &Welcome{}
	case TypeChecks:
		return &Checks{}
	case TypeResults:
		return &Results{}
	case TypeAck:
		return &Ack{}
	case TypeKeepalive:
		return &Keepalive{}
	case TypeFacts:
		return &Facts{}
	case TypeRun:
		return &Run{}
	case TypeGap:
		return &Gap{}
	case TypeError:
		return &ErrorMessage{}
	case TypeActions:
		return &Actions{}
	case TypeStart:
		return &StartRun{}
	case TypeCancel:
		return &CancelRun{}
	case TypeOutput:
		return &RunOutput{}
	case TypeFinished:
		return &RunFinished{}
	case TypeRuns:
		return &Runs{}
	case TypeRunAck:
		return &RunAck{}
	}
	return nil
}

// Error is a protocol violation: the peer sent something this package refuses.
type Error struct{ Msg string }

func (e *Error) Error() string { return "wire: " + e.Msg }

func errorf(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// Frame is one websocket message.
type Frame struct {
	Type Type            `json:"type"`
	Body json.RawMessage `json:"body"`
}

// Message is a frame body.
type Message interface {
	// FrameType is the type of frame the message travels in.
	FrameType() Type
	// Validate checks the message; now is the receiver's clock.
	Validate(now time.Time) error
}

// Encode makes a frame of a message. It validates first, so a sender never
// sends what the receiver would refuse. It does not know the peer's
// version: EncodeVersion does.
func Encode(m Message, now time.Time) ([]byte, error) {
	if err := m.Validate(now); err != nil {
		return nil, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.FrameType(), err)
	}
	raw, err := json.Marshal(Frame{Type: m.FrameType(), Body: body})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.FrameType(), err)
	}
	if len(raw) > MaxFrameSize {
		return nil, errorf("%s frame of %d bytes exceeds %d", m.FrameType(), len(raw), MaxFrameSize)
	}
	return raw, nil
}

// EncodeVersion makes a frame of a message for a peer that negotiated
// version: a frame that version does not have is refused, and so is a
// hello or auth naming another version.
func EncodeVersion(m Message, version int, now time.Time) ([]byte, error) {
	if err := checkVersion(version); err != nil {
		return nil, err
	}
	if since := m.FrameType().Since(); since > version {
		return nil, errorf("%s frames need protocol version %d; the peer speaks %d", m.FrameType(), since, version)
	}
	if err := sameVersion(m, version); err != nil {
		return nil, err
	}
	return Encode(m, now)
}

// sameVersion checks that a hello or auth names the negotiated version.
func sameVersion(m Message, version int) error {
	v := version
	switch m := m.(type) {
	case *Hello:
		v = m.Version
	case *Auth:
		v = m.Version
	}
	if v != version {
		return errorf("%s: version %d on a connection that negotiated %d", m.FrameType(), v, version)
	}
	return nil
}

// decodeStrict decodes one JSON value with no unknown fields and nothing after it.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf("malformed JSON: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf("trailing data after the JSON value")
	}
	return nil
}

func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be %s", typ.Field, typ.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// decodeFrame decodes the envelope and checks the type is one allowed and
// one version has.
func decodeFrame(raw []byte, version int, allowed ...Type) (Frame, error) {
	if err := checkVersion(version); err != nil {
		return Frame{}, err
	}
	if len(raw) > MaxFrameSize {
		return Frame{}, errorf("frame of %d bytes exceeds %d", len(raw), MaxFrameSize)
	}
	var f Frame
	if err := decodeStrict(raw, &f); err != nil {
		return Frame{}, err
	}
	for _, t := range allowed {
		if f.Type == t {
			if since := t.Since(); since > version {
				return Frame{}, errorf("%s frames need protocol version %d; this connection speaks %d", t, since, version)
			}
			if len(f.Body) == 0 || string(f.Body) == "null" {
				return Frame{}, errorf("%s frame has no body", f.Type)
			}
			return f, nil
		}
	}
	return Frame{}, errorf("unexpected frame type %q", clip(string(f.Type)))
}

func decodeBody(f Frame, now time.Time) (Message, error) {
	m := newMessage(f.Type)
	if err := decodeStrict(f.Body, m); err != nil {
		return nil, errorf("%s: %s", f.Type, err.(*Error).Msg)
	}
	if err := m.Validate(now); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Type, err)
	}
	return m, nil
}

// decode decodes a frame of one of the allowed types on a connection that
// negotiated version.
func decode(raw []byte, version int, now time.Time, allowed ...Type) (Message, error) {
	f, err := decodeFrame(raw, version, allowed...)
	if err != nil {
		return nil, err
	}
	m, err := decodeBody(f, now)
	if err != nil {
		return nil, err
	}
	if err := sameVersion(m, version); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeFromAgentVersion decodes and validates a frame an agent sent after
// the handshake on a connection that negotiated version: results,
// keepalive, facts or gap; since version 2 also actions, output, finished
// or runs.
func DecodeFromAgentVersion(raw []byte, version int, now time.Time) (Message, error) {
	return decode(raw, version, now, fromAgent...)
}

// DecodeFromAgent decodes the frames every agent speaks, those of version
// 1: it is DecodeFromAgentVersion(raw, 1, now).
func DecodeFromAgent(raw []byte, now time.Time) (Message, error) {
	return DecodeFromAgentVersion(raw, 1, now)
}

// DecodeAuthVersion decodes the agent's first frame on a connection that
// negotiated version, which the auth must name.
func DecodeAuthVersion(raw []byte, version int, now time.Time) (*Auth, error) {
	m, err := decode(raw, version, now, TypeAuth)
	if err != nil {
		return nil, err
	}
	return m.(*Auth), nil
}

// DecodeAuth decodes the agent's first frame, naming any version this
// package speaks; DecodeAuthVersion also checks it is the one negotiated.
func DecodeAuth(raw []byte, now time.Time) (*Auth, error) {
	f, err := decodeFrame(raw, Version, TypeAuth)
	if err != nil {
		return nil, err
	}
	m, err := decodeBody(f, now)
	if err != nil {
		return nil, err
	}
	return m.(*Auth), nil
}

// DecodeFromServerVersion decodes and validates a frame the server sent on
// a connection that negotiated version: hello, welcome, checks, ack, run
// or error; since version 2 also start, cancel or run_ack. A hello must
// name the version negotiated.
func DecodeFromServerVersion(raw []byte, version int, now time.Time) (Message, error) {
	return decode(raw, version, now, fromServer...)
}

// DecodeFromServer decodes the frames of version 1 as version 1 agents
// did, a hello naming any version.
func DecodeFromServer(raw []byte, now time.Time) (Message, error) {
	f, err := decodeFrame(raw, 1, fromServer...)
	if err != nil {
		return nil, err
	}
	return decodeBody(f, now)
}

var (
	namePattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	agentIDPattern = regexp.MustCompile(`^ag_[0-9a-f]{16}$`)
)

// ValidName reports whether s is a well-formed check name or system id.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// ValidAgentID reports whether s is a well-formed agent id.
func ValidAgentID(s string) bool { return agentIDPattern.MatchString(s) }

func validText(field, s string, max int) error {
	if len(s) > max {
		return errorf("%s exceeds %d bytes", field, max)
	}
	if !utf8.ValidString(s) {
		return errorf("%s is not UTF-8", field)
	}
	return nil
}

func validTime(field string, t, now time.Time) error {
	if t.IsZero() {
		return errorf("%s is missing", field)
	}
	if t.After(now.Add(MaxClockSkew)) {
		return errorf("%s %s is %s ahead of the receiver's clock (more than %s): fix the clock", field, t.Format(time.RFC3339), t.Sub(now).Round(time.Second), MaxClockSkew)
	}
	if t.Before(now.Add(-MaxResultAge)) {
		return errorf("%s %s is older than %s", field, t.Format(time.RFC3339), MaxResultAge)
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// clip quotes peer-supplied text for an error message, shortened and with
// control characters escaped.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
