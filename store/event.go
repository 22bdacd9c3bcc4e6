package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/aramaki/aramaki"
)

// AppendEvent stores an event. An event whose id is stored already is
// ignored and false returned: the same happening recorded by two replicas,
// or replayed, is kept once.
func (s *Store) AppendEvent(ctx context.Context, ev aramaki.Event) (bool, error) {
	var added bool
	err := s.write(ctx, func(tx *txn) error {
		var err error
		added, err = appendEvent(ctx, tx, ev)
		return err
	})
	return added, err
}

// appendEvent inserts ev and the rows that index it by system, unless an
// event with its id exists. Events are append-only: nothing in this package
// updates or deletes them.
func appendEvent(ctx context.Context, tx *txn, ev aramaki.Event) (bool, error) {
	if ev.ID == "" {
		return false, aramaki.Errorf(aramaki.EINVALID, "event has no id")
	}
	if err := ev.Validate(); err != nil {
		return false, err
	}
	systems := slices.Clone(ev.Systems)
	slices.Sort(systems)
	systems = slices.Compact(systems)
	if systems == nil {
		systems = []string{}
	}
	systemsJSON, err := json.Marshal(systems)
	if err != nil {
		return false, fmt.Errorf("marshal event systems: %w", err)
	}
	var data sql.NullString
	if len(ev.Data) > 0 {
		data = sql.NullString{String: string(ev.Data), Valid: true}
	}
	timeUS := micros(ev.Time)

	// Prepared once: status changes append events in the hot path.
	insert, err := tx.Stmt(ctx, `
		INSERT INTO events (id, time_us, kind, actor, systems, summary, data)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING
		RETURNING seq`)
	if err != nil {
		return false, fmt.Errorf("prepare event insert: %w", err)
	}
	insertSystem, err := tx.Stmt(ctx, `INSERT INTO event_systems (system_id, time_us, seq, kind) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return false, fmt.Errorf("prepare event system insert: %w", err)
	}
	var seq int64
	err = insert.QueryRowContext(ctx,
		ev.ID, timeUS, string(ev.Kind), ev.Actor, string(systemsJSON), ev.Summary, data,
	).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // stored already
	} else if err != nil {
		return false, fmt.Errorf("insert event: %w", err)
	}
	for _, id := range systems {
		if _, err := insertSystem.ExecContext(ctx, id, timeUS, seq, string(ev.Kind)); err != nil {
			return false, fmt.Errorf("insert event system: %w", err)
		}
	}
	return true, nil
}

// eventRow and eventSystemRow are the rows appendEvents writes.
var (
	eventRow       = []string{"id text", "time_us bigint", "kind text", "actor text", "systems text", "summary text", "data text"}
	eventSystemRow = []string{"system_id text", "time_us bigint", "seq bigint", "kind text"}
)

// appendEvents appends events in order, many to a statement: a peer's
// batch brings thousands. Events stored already are passed over, as by
// appendEvent.
func appendEvents(ctx context.Context, tx *txn, evs []aramaki.Event) error {
	args := make([]any, 0, len(evs)*len(eventRow))
	systems := make([][]string, len(evs))
	for i, ev := range evs {
		if ev.ID == "" {
			return aramaki.Errorf(aramaki.EINVALID, "event has no id")
		}
		if err := ev.Validate(); err != nil {
			return err
		}
		sys := slices.Clone(ev.Systems)
		slices.Sort(sys)
		sys = slices.Compact(sys)
		if sys == nil {
			sys = []string{}
		}
		systems[i] = sys
		systemsJSON, err := json.Marshal(sys)
		if err != nil {
			return fmt.Errorf("marshal event systems: %w", err)
		}
		var data *string
		if len(ev.Data) > 0 {
			d := string(ev.Data)
			data = &d
		}
		args = append(args, ev.ID, micros(ev.Time), string(ev.Kind), ev.Actor, string(systemsJSON), ev.Summary, data)
	}
	seqs := make(map[string]int64, len(evs))
	err := insertRowsReturning(ctx, tx, "events", eventRow, ` ON CONFLICT (id) DO NOTHING RETURNING id, seq`, args, func(rows *sql.Rows) error {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		seqs[id] = seq
		return nil
	})
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	var sysArgs []any
	for i, ev := range evs {
		seq, ok := seqs[ev.ID]
		if !ok {
			continue // stored already, or twice in this batch
		}
		delete(seqs, ev.ID)
		for _, id := range systems[i] {
			sysArgs = append(sysArgs, id, micros(ev.Time), seq, string(ev.Kind))
		}
	}
	if err := insertRows(ctx, tx, "event_systems", eventSystemRow, ``, sysArgs); err != nil {
		return fmt.Errorf("insert event systems: %w", err)
	}
	return nil
}

// AppendEventNotifying appends an event and queues the notifications it
// makes, in one transaction.
func (s *Store) AppendEventNotifying(ctx context.Context, ev aramaki.Event, nts []aramaki.Notification) error {
	return s.write(ctx, func(tx *txn) error {
		if _, err := appendEvent(ctx, tx, ev); err != nil {
			return err
		}
		return insertNotifications(ctx, tx, nts)
	})
}

// Event returns the event with the given id.
func (s *Store) Event(ctx context.Context, id string) (aramaki.Event, error) {
	var ev aramaki.Event
	err := s.read(ctx, func(tx *txn) error {
		rows, err := tx.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("query event: %w", err)
		}
		events, err := scanEvents(rows)
		if err != nil {
			return err
		} else if len(events) == 0 {
			return aramaki.Errorf(aramaki.ENOTFOUND, "event %s not found", id)
		}
		ev = events[0]
		return nil
	})
	return ev, err
}

const eventColumns = `seq, id, time_us, kind, actor, systems, summary, data`

func scanEvents(rows *sql.Rows) ([]aramaki.Event, error) {
	defer rows.Close()
	var events []aramaki.Event
	for rows.Next() {
		var (
			ev      aramaki.Event
			timeUS  int64
			kind    string
			systems string
			data    sql.NullString
		)
		if err := rows.Scan(&ev.Seq, &ev.ID, &timeUS, &kind, &ev.Actor, &systems, &ev.Summary, &data); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		ev.Time = fromMicros(timeUS)
		ev.Kind = aramaki.EventKind(kind)
		if systems != "[]" { // none: what filling an outbox reads of a peer's events
			if err := json.Unmarshal([]byte(systems), &ev.Systems); err != nil {
				return nil, fmt.Errorf("decode systems of event %s: %w", ev.ID, err)
			}
		}
		if len(ev.Systems) == 0 {
			ev.Systems = nil
		}
		if data.Valid {
			ev.Data = json.RawMessage(data.String)
		}
		events = append(events, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return events, nil
}

// position is a place on the timeline. Events are ordered by (time, seq);
// the timeline runs from the newest backwards.
type position struct{ timeUS, seq int64 }

func (p position) before(o position) bool {
	return p.timeUS < o.timeUS || p.timeUS == o.timeUS && p.seq < o.seq
}

// systemsPerQuery bounds the systems asked for in one statement (SQLite
// allows 32766 parameters); more are asked in chunks.
const systemsPerQuery = 500

// Timeline returns one page of events, newest first.
//
// With no systems it walks the events_time index. With systems, the rows of
// event_systems, keyed by (system_id, time_us, seq), give each system's
// events newest first, so the newest events of a set of systems are found by
// reading at most limit index entries per system, however long the
// timeline is, and only the events on the page are read. Many systems are
// asked in chunks; once a page is full, later chunks only look for events
// newer than its oldest.
func (s *Store) Timeline(ctx context.Context, q aramaki.TimelineQuery) (aramaki.TimelinePage, error) {
	w := windowOf(q)
	var page aramaki.TimelinePage
	err := s.read(ctx, func(tx *txn) error {
		if !w.lower.before(w.upper) {
			return nil
		}
		if len(q.Systems) == 0 {
			var err error
			page.Events, err = queryEvents(ctx, tx, allEventsQuery(w))
			return err
		}
		systems := slices.Clone(q.Systems)
		slices.Sort(systems)
		systems = slices.Compact(systems)
		for chunk := range slices.Chunk(systems, systemsPerQuery) {
			events, err := queryEvents(ctx, tx, systemEventsQuery(s.dialect, chunk, w))
			if err != nil {
				return err
			}
			page.Events = mergeEvents(page.Events, events, w.limit)
			if len(page.Events) == w.limit {
				last := page.Events[w.limit-1]
				w.lower = position{micros(last.Time), last.Seq}
			}
		}
		return nil
	})
	if err != nil {
		return aramaki.TimelinePage{}, err
	}
	if len(page.Events) == w.limit {
		last := page.Events[w.limit-1]
		page.Next = &aramaki.Cursor{TimeMicro: micros(last.Time), Seq: last.Seq}
	}
	return page, nil
}

// window is what a timeline query asks for: events at positions in
// [lower, upper), of the kinds (any, when empty), at most limit of them.
type window struct {
	lower, upper position
	kinds        []any
	limit        int
}

func windowOf(q aramaki.TimelineQuery) window {
	// Since is inclusive, Until exclusive, the cursor is the last event
	// seen. Seqs start at 1, so (t, 0) lies before every event at time t.
	w := window{
		lower: position{math.MinInt64, 0},
		upper: position{math.MaxInt64, math.MaxInt64},
		limit: q.Limit,
	}
	if w.limit <= 0 {
		w.limit = aramaki.DefaultTimelineLimit
	}
	w.limit = min(w.limit, aramaki.MaxTimelineLimit)
	if !q.Since.IsZero() {
		w.lower = position{micros(q.Since), 0}
	}
	if !q.Until.IsZero() {
		w.upper = position{micros(q.Until), 0}
	}
	if c := q.Cursor; c != nil && (position{c.TimeMicro, c.Seq}).before(w.upper) {
		w.upper = position{c.TimeMicro, c.Seq}
	}
	for _, k := range q.Kinds {
		w.kinds = append(w.kinds, string(k))
	}
	return w
}

// statement is a query with its arguments.
type statement struct {
	query string
	args  []any
}

func queryEvents(ctx context.Context, tx *txn, st statement) ([]aramaki.Event, error) {
	rows, err := tx.Query(ctx, st.query, st.args...)
	if err != nil {
		return nil, fmt.Errorf("query timeline: %w", err)
	}
	return scanEvents(rows)
}

// allEventsQuery is the timeline of every system: a range scan of
// events_time.
func allEventsQuery(w window) statement {
	args := []any{w.lower.timeUS, w.lower.seq, w.upper.timeUS, w.upper.seq}
	args = append(args, w.kinds...)
	args = append(args, w.limit)
	return statement{`
		SELECT ` + eventColumns + ` FROM events
		WHERE (time_us, seq) >= (?, ?) AND (time_us, seq) < (?, ?)` + kindFilter(len(w.kinds)) + `
		ORDER BY time_us DESC, seq DESC
		LIMIT ?`, args}
}

// systemEventsQuery is the timeline of some systems, newest first, each
// event once.
func systemEventsQuery(dialect string, systems []string, w window) statement {
	if dialect == Postgres {
		// For each system, its newest events in the window from one
		// backward index range scan (LIMIT ends it); of those the newest,
		// each once.
		args := []any{systems, w.lower.timeUS, w.lower.seq, w.upper.timeUS, w.upper.seq}
		kinds := ""
		if len(w.kinds) > 0 {
			kinds = ` AND kind = ANY (?::text[])`
			args = append(args, w.kinds)
		}
		args = append(args, w.limit, w.limit)
		return statement{`
			SELECT ` + prefixed("e.", eventColumns) + ` FROM (
				SELECT c.time_us, c.seq FROM unnest(?::text[]) AS s (id) CROSS JOIN LATERAL (
					SELECT time_us, seq FROM event_systems
					WHERE system_id = s.id AND (time_us, seq) >= (?, ?) AND (time_us, seq) < (?, ?)` + kinds + `
					ORDER BY time_us DESC, seq DESC LIMIT ?) AS c
				GROUP BY c.time_us, c.seq
				ORDER BY c.time_us DESC, c.seq DESC LIMIT ?
			) AS page JOIN events e ON e.seq = page.seq
			ORDER BY page.time_us DESC, page.seq DESC`, args}
	}

	// SQLite runs the subquery as one backward range scan per system
	// (system_id IN …) into a sorter that keeps the newest limit rows, and
	// moves on to the next system as soon as a row is older than all of
	// those: its ORDER BY LIMIT optimisation. DISTINCT seq keeps that;
	// DISTINCT time_us, seq or GROUP BY would turn it into reading every
	// event of every system (see BenchmarkTimelineQuery).
	args := make([]any, 0, len(systems)+4+len(w.kinds)+1)
	for _, id := range systems {
		args = append(args, id)
	}
	args = append(args, w.lower.timeUS, w.lower.seq, w.upper.timeUS, w.upper.seq)
	args = append(args, w.kinds...)
	args = append(args, w.limit)
	return statement{`
		SELECT ` + prefixed("e.", eventColumns) + ` FROM events e WHERE e.seq IN (
			SELECT DISTINCT seq FROM event_systems
			WHERE system_id IN (?` + strings.Repeat(", ?", len(systems)-1) + `)
				AND (time_us, seq) >= (?, ?) AND (time_us, seq) < (?, ?)` + kindFilter(len(w.kinds)) + `
			ORDER BY time_us DESC, seq DESC LIMIT ?)
		ORDER BY e.time_us DESC, e.seq DESC`, args}
}

func kindFilter(n int) string {
	if n == 0 {
		return ""
	}
	return " AND kind IN (?" + strings.Repeat(", ?", n-1) + ")"
}

// prefixed qualifies each of a comma-separated list of columns.
func prefixed(prefix, columns string) string {
	cols := strings.Split(columns, ", ")
	for i := range cols {
		cols[i] = prefix + cols[i]
	}
	return strings.Join(cols, ", ")
}

// mergeEvents merges two newest-first lists of events into the newest limit
// of both, each event once.
func mergeEvents(a, b []aramaki.Event, limit int) []aramaki.Event {
	if len(a) == 0 {
		return b
	}
	out := make([]aramaki.Event, 0, min(len(a)+len(b), limit))
	for len(out) < limit && (len(a) > 0 || len(b) > 0) {
		var next aramaki.Event
		switch {
		case len(b) == 0:
			next, a = a[0], a[1:]
		case len(a) == 0:
			next, b = b[0], b[1:]
		case eventPos(b[0]).before(eventPos(a[0])):
			next, a = a[0], a[1:]
		default:
			next, b = b[0], b[1:]
		}
		if len(out) > 0 && out[len(out)-1].Seq == next.Seq {
			continue
		}
		out = append(out, next)
	}
	return out
}

func eventPos(ev aramaki.Event) position { return position{micros(ev.Time), ev.Seq} }
