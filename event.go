package aramaki

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// EventKind names what happened. Kinds are dotted, the first part is the
// area: "note", "config.applied", "audit.user.created".
type EventKind string

const (
	KindNote           EventKind = "note"            // a person wrote something on a system
	KindConfigApplied  EventKind = "config.applied"  // a config repository commit is now in force
	KindConfigRejected EventKind = "config.rejected" // a config repository commit was refused
	KindConfigReload   EventKind = "config.reload"   // someone asked to re-read the config repository
	KindUserCreated    EventKind = "user.created"
	KindPasswordSet    EventKind = "user.password"
	KindUserDisabled   EventKind = "user.disabled"
	KindUserEnabled    EventKind = "user.enabled"
	KindUserEmail      EventKind = "user.email"
	KindTokenCreated   EventKind = "token.created"
	KindTokenDeleted   EventKind = "token.deleted"
	KindRoleGranted    EventKind = "role.granted"
	KindRoleRevoked    EventKind = "role.revoked"
)

// ValidateKind reports whether k is a well-formed kind.
func ValidateKind(k EventKind) error {
	s := string(k)
	if s == "" || len(s) > 64 {
		return Errorf(EINVALID, "invalid event kind %q", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return Errorf(EINVALID, "invalid event kind %q: use lower-case letters, digits, '.', '_' and '-'", s)
		}
	}
	return nil
}

// Event is an entry on the timeline. Events are append-only; the id is
// derived from the content, so the same happening recorded twice (by two
// server replicas, or replayed after a reconnect) is stored once.
type Event struct {
	ID      string          `json:"id"`
	Time    time.Time       `json:"time"`
	Kind    EventKind       `json:"kind"`
	Actor   string          `json:"actor"`             // "user:alice", "config", "server"
	Systems []string        `json:"systems,omitempty"` // the systems it concerns
	Summary string          `json:"summary"`           // one line for people
	Data    json.RawMessage `json:"data,omitempty"`    // kind-specific detail

	// Seq is the store's order of arrival, used with Time for paging.
	Seq int64 `json:"-"`
}

// Limits on events, so that one entry cannot swamp the timeline.
const (
	MaxSummaryLen    = 500
	MaxNoteLen       = 10000
	MaxEventDataSize = 64 << 10
	MaxEventSystems  = 1000
)

// NewEvent makes an event with its content-derived id. Time is truncated to
// microseconds, the precision the stores keep.
func NewEvent(t time.Time, kind EventKind, actor string, systems []string, summary string, data any) (Event, error) {
	e := Event{Time: t.UTC().Truncate(time.Microsecond), Kind: kind, Actor: actor, Summary: summary}
	e.Systems = slices.Clone(systems)
	slices.Sort(e.Systems)
	e.Systems = slices.Compact(e.Systems)
	if data != nil {
		raw, err := json.Marshal(data)
		if err != nil {
			return Event{}, fmt.Errorf("marshal event data: %w", err)
		}
		e.Data = raw
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	e.ID = e.ContentID()
	return e, nil
}

// ContentID derives the stable id of the event from its content: time,
// kind, actor, systems, summary and data.
func (e *Event) ContentID() string {
	h := sha256.New()
	fmt.Fprintf(h, "aramaki-event-v1\n%d\n%s\n%s\n%s\n%s\n", e.Time.UnixMicro(), e.Kind, e.Actor, strings.Join(e.Systems, ","), e.Summary)
	h.Write(e.Data)
	return "ev_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Validate checks an event before it is stored.
func (e *Event) Validate() error {
	if err := ValidateKind(e.Kind); err != nil {
		return err
	}
	if e.Time.IsZero() {
		return Errorf(EINVALID, "event has no time")
	}
	if e.Actor == "" || len(e.Actor) > 200 {
		return Errorf(EINVALID, "event needs an actor of at most 200 bytes")
	}
	if strings.TrimSpace(e.Summary) == "" || utf8.RuneCountInString(e.Summary) > MaxSummaryLen || !utf8.ValidString(e.Summary) {
		return Errorf(EINVALID, "event summary must be 1-%d characters of UTF-8", MaxSummaryLen)
	}
	if len(e.Data) > MaxEventDataSize {
		return Errorf(ETOOLARGE, "event data exceeds %d bytes", MaxEventDataSize)
	}
	if len(e.Data) > 0 && !json.Valid(e.Data) {
		return Errorf(EINVALID, "event data is not valid JSON")
	}
	if len(e.Systems) > MaxEventSystems {
		return Errorf(ETOOLARGE, "event concerns more than %d systems", MaxEventSystems)
	}
	for _, id := range e.Systems {
		if err := ValidateSystemRef(id); err != nil {
			return err
		}
	}
	return nil
}

// NoteData is the detail of a note event.
type NoteData struct {
	Text string `json:"text"`
}

// ValidateNote checks the text of a note: not blank, valid UTF-8, bounded.
func ValidateNote(text string) error {
	if strings.TrimSpace(text) == "" {
		return Errorf(EINVALID, "a note needs a text")
	}
	if !utf8.ValidString(text) {
		return Errorf(EINVALID, "a note must be UTF-8 text")
	}
	if n := utf8.RuneCountInString(text); n > MaxNoteLen {
		return Errorf(ETOOLARGE, "a note may have at most %d characters, this one has %d", MaxNoteLen, n)
	}
	return nil
}

// NoteSummary is the one-line summary of a note: its first line, shortened.
func NoteSummary(text string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	if utf8.RuneCountInString(line) > 120 {
		r := []rune(line)
		line = string(r[:119]) + "…"
	}
	return line
}

// TimelineQuery selects events, newest first. Systems, when set, are the
// systems whose events are wanted (the caller expands a system to its
// descendants); Kinds, when set, the kinds. Since is inclusive, Until
// exclusive. Cursor continues a previous page.
type TimelineQuery struct {
	Systems []string
	Kinds   []EventKind
	Since   time.Time
	Until   time.Time
	Cursor  *Cursor
	Limit   int
}

// Timeline page sizes.
const (
	DefaultTimelineLimit = 50
	MaxTimelineLimit     = 500
)

// TimelinePage is one page of events, newest first. Next is set when there
// may be older events.
type TimelinePage struct {
	Events []Event `json:"events"`
	Next   *Cursor `json:"-"`
}

// Cursor marks a position on the timeline: the last event of a page.
type Cursor struct {
	TimeMicro int64
	Seq       int64
}

// String encodes the cursor opaquely for URLs.
func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.TimeMicro, 10) + "." + strconv.FormatInt(c.Seq, 10)))
}

// ParseCursor decodes a cursor made by Cursor.String.
func ParseCursor(s string) (*Cursor, error) {
	bad := Errorf(EINVALID, "invalid cursor %q", s)
	if len(s) > 64 {
		return nil, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	t, seq, ok := strings.Cut(string(raw), ".")
	if !ok {
		return nil, bad
	}
	tm, err1 := strconv.ParseInt(t, 10, 64)
	sq, err2 := strconv.ParseInt(seq, 10, 64)
	if err1 != nil || err2 != nil || sq < 0 {
		return nil, bad
	}
	return &Cursor{TimeMicro: tm, Seq: sq}, nil
}
