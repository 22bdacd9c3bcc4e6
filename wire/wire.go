// Package wire is every message that crosses a process boundary between an
// agent and its server: the enrollment request, and the frames of the agent
// websocket. Each message is validated here, at the edge, with a clear
// error; nothing that fails validation reaches the service.
//
// # Protocol versions
//
// The version is negotiated in the websocket handshake (Subprotocol) and
// repeated in the hello and auth frames. A server speaks every version
// listed here; an agent speaks one.
//
//   - 1 (2026-11-24): enrollment with a one-time token that pins the server's
//     CA; hello/auth/welcome handshake where the agent signs the server's
//     nonce and the TLS channel binding with its Ed25519 key; check
//     definitions pushed by the server; results with per-agent sequence
//     numbers acknowledged after commit; keepalives; inventory facts; ad hoc
//     check runs; gap reports when the agent's queue overflowed.
//
// # Frames
//
// Every websocket message is one JSON object {"type": T, "body": {...}}
// with T one of the Type constants. Agent to server: auth, results,
// keepalive, facts, gap. Server to agent: hello, welcome, checks, ack, run,
// error. Unknown types, unknown fields and oversized frames are refused.
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

// Version is the protocol version of this package.
const Version = 1

// Subprotocol is the websocket subprotocol of Version.
const Subprotocol = "aramaki-agent.v1"

// Limits of the protocol. The agent keeps within them; the server refuses
// what exceeds them.
const (
	MaxFrameSize  = 4 << 20  // one websocket message
	MaxBatch      = 1000     // results per results frame
	MaxOutput     = 16 << 10 // bytes of check output kept per result
	MaxMetrics    = 64       // metrics per result
	MaxChecks     = 10000    // check definitions per checks frame
	MaxArgs       = 64       // arguments of a check command
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
)

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
// sends what the receiver would refuse.
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

// decodeFrame decodes the envelope and checks the type is one allowed.
func decodeFrame(raw []byte, allowed ...Type) (Frame, error) {
	if len(raw) > MaxFrameSize {
		return Frame{}, errorf("frame of %d bytes exceeds %d", len(raw), MaxFrameSize)
	}
	var f Frame
	if err := decodeStrict(raw, &f); err != nil {
		return Frame{}, err
	}
	for _, t := range allowed {
		if f.Type == t {
			if len(f.Body) == 0 || string(f.Body) == "null" {
				return Frame{}, errorf("%s frame has no body", f.Type)
			}
			return f, nil
		}
	}
	return Frame{}, errorf("unexpected frame type %q", clip(string(f.Type)))
}

func decodeBody[M Message](f Frame, m M, now time.Time) (Message, error) {
	if err := decodeStrict(f.Body, m); err != nil {
		return nil, errorf("%s: %s", f.Type, err.(*Error).Msg)
	}
	if err := m.Validate(now); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Type, err)
	}
	return m, nil
}

// DecodeFromAgent decodes and validates a frame an agent sent after the
// handshake: results, keepalive, facts or gap.
func DecodeFromAgent(raw []byte, now time.Time) (Message, error) {
	f, err := decodeFrame(raw, TypeResults, TypeKeepalive, TypeFacts, TypeGap)
	if err != nil {
		return nil, err
	}
	switch f.Type {
	case TypeResults:
		return decodeBody(f, &Results{}, now)
	case TypeKeepalive:
		return decodeBody(f, &Keepalive{}, now)
	case TypeFacts:
		return decodeBody(f, &Facts{}, now)
	default:
		return decodeBody(f, &Gap{}, now)
	}
}

// DecodeAuth decodes the agent's first frame.
func DecodeAuth(raw []byte, now time.Time) (*Auth, error) {
	f, err := decodeFrame(raw, TypeAuth)
	if err != nil {
		return nil, err
	}
	m, err := decodeBody(f, &Auth{}, now)
	if err != nil {
		return nil, err
	}
	return m.(*Auth), nil
}

// DecodeFromServer decodes and validates a frame the server sent.
func DecodeFromServer(raw []byte, now time.Time) (Message, error) {
	f, err := decodeFrame(raw, TypeHello, TypeWelcome, TypeChecks, TypeAck, TypeRun, TypeError)
	if err != nil {
		return nil, err
	}
	switch f.Type {
	case TypeHello:
		return decodeBody(f, &Hello{}, now)
	case TypeWelcome:
		return decodeBody(f, &Welcome{}, now)
	case TypeChecks:
		return decodeBody(f, &Checks{}, now)
	case TypeAck:
		return decodeBody(f, &Ack{}, now)
	case TypeRun:
		return decodeBody(f, &Run{}, now)
	default:
		return decodeBody(f, &ErrorMessage{}, now)
	}
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
