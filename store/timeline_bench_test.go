package store_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

// The timeline benchmark: 1,000,000 events over a graph of 1,000 systems,
// 10 customers × 9 apps × 10 components. Each event concerns 1-3 systems of
// one customer. The query that must stay fast (≤ 5 ms on SQLite) is the
// newest 50 events of one customer's system and its 99 descendants.

const (
	benchEvents = 1_000_000

	// benchDataVersion names the generated data; change it when
	// benchData changes, so that no stale cached database is used.
	benchDataVersion = "d2"
)

// benchSystems returns the ids of the 1,000 systems, and of the 100 that
// are one customer and everything under it.
func benchSystems() (all, customer0 []string) {
	for c := range 10 {
		all = append(all, fmt.Sprintf("c%d", c))
		for a := range 9 {
			all = append(all, fmt.Sprintf("c%d-a%d", c, a))
			for k := range 10 {
				all = append(all, fmt.Sprintf("c%d-a%d-k%d", c, a, k))
			}
		}
	}
	for _, id := range all {
		if id == "c0" || strings.HasPrefix(id, "c0-") {
			customer0 = append(customer0, id)
		}
	}
	return all, customer0
}

var benchStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type benchEvent struct {
	seq     int64
	id      string
	timeUS  int64
	kind    string
	systems []string // sorted
	summary string
	data    string
}

// benchData generates the events in order of arrival (seq 1, 2, …): about
// one every 30 seconds over a year, arriving up to a minute out of order.
func benchData() []benchEvent {
	all, _ := benchSystems()
	byCustomer := map[byte][]string{}
	for _, id := range all {
		byCustomer[id[1]] = append(byCustomer[id[1]], id)
	}
	kinds := []string{"check.status", "check.status", "check.status", "note", "alert.opened", "config.applied"}
	rng := rand.New(rand.NewPCG(7, 11))
	events := make([]benchEvent, benchEvents)
	for i := range events {
		primary := all[rng.IntN(len(all))]
		systems := []string{primary}
		for range rng.IntN(3) {
			// A related system: its app or customer, or a sibling.
			if rng.IntN(2) == 0 {
				if j := strings.LastIndexByte(primary, '-'); j > 0 {
					systems = append(systems, primary[:j])
					continue
				}
			}
			same := byCustomer[primary[1]]
			systems = append(systems, same[rng.IntN(len(same))])
		}
		slices.Sort(systems)
		systems = slices.Compact(systems)
		t := benchStart.Add(time.Duration(i)*30*time.Second + time.Duration(rng.IntN(60_000_000))*time.Microsecond)
		id := sha256.Sum256(fmt.Appendf(nil, "bench-%d", i))
		events[i] = benchEvent{
			seq:     int64(i + 1),
			id:      "ev_" + hex.EncodeToString(id[:16]),
			timeUS:  t.UnixMicro(),
			kind:    kinds[rng.IntN(len(kinds))],
			systems: systems,
			summary: fmt.Sprintf("%s changed state: event %d", primary, i),
			data:    fmt.Sprintf(`{"n":%d,"output":"OK - 12 ms response time"}`, i),
		}
	}
	return events
}

// MustBenchSQLite opens the SQLite benchmark database, building it first
// when it is not cached under os.TempDir() yet. The cache key covers the
// SQLite migrations and the data version.
func MustBenchSQLite(b *testing.B) *store.Store {
	b.Helper()
	h := sha256.New()
	files, err := filepath.Glob("migrations/sqlite/*.sql")
	if err != nil || len(files) == 0 {
		b.Fatalf("find migrations: %v", err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		h.Write(body)
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("aramaki-bench-timeline-%s-%x.db", benchDataVersion, h.Sum(nil)[:6]))
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		building := path + ".building"
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(building + suffix)
		}
		s, err := store.Open(context.Background(), building, nil)
		if err != nil {
			b.Fatal(err)
		}
		MustFillBench(b, s)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(building, path); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %s in %v", path, time.Since(start).Round(time.Millisecond))
	}
	return MustOpen(b, path)
}

// MustFillBench stores the benchmark events, fast: straight into the
// tables, in one transaction, many rows per statement on SQLite and with
// COPY on PostgreSQL. SQLite is not analysed, as in production, where
// nothing runs ANALYZE; PostgreSQL is vacuumed and analysed, as autovacuum
// would.
func MustFillBench(b *testing.B, s *store.Store) {
	b.Helper()
	ctx := context.Background()
	events := benchData()
	type systemRow struct {
		system string
		ev     *benchEvent
	}
	var rows []systemRow
	for i := range events {
		for _, id := range events[i].systems {
			rows = append(rows, systemRow{id, &events[i]})
		}
	}
	// In key order the rows append to the end of the index.
	slices.SortFunc(rows, func(x, y systemRow) int {
		return cmp.Or(strings.Compare(x.system, y.system), cmp.Compare(x.ev.timeUS, y.ev.timeUS), cmp.Compare(x.ev.seq, y.ev.seq))
	})
	systemsJSON := func(ev *benchEvent) string {
		j, _ := json.Marshal(ev.systems)
		return string(j)
	}

	conn, err := s.DB().Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()

	if s.Dialect() == store.Postgres {
		err := conn.Raw(func(driverConn any) error {
			c := driverConn.(*stdlib.Conn).Conn()
			i := 0
			if _, err := c.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"seq", "id", "time_us", "kind", "actor", "systems", "summary", "data"},
				pgx.CopyFromFunc(func() ([]any, error) {
					if i == len(events) {
						return nil, nil
					}
					ev := &events[i]
					i++
					return []any{ev.seq, ev.id, ev.timeUS, ev.kind, "agent:bench", systemsJSON(ev), ev.summary, ev.data}, nil
				})); err != nil {
				return fmt.Errorf("copy events: %w", err)
			}
			j := 0
			if _, err := c.CopyFrom(ctx, pgx.Identifier{"event_systems"}, []string{"system_id", "time_us", "seq", "kind"},
				pgx.CopyFromFunc(func() ([]any, error) {
					if j == len(rows) {
						return nil, nil
					}
					r := rows[j]
					j++
					return []any{r.system, r.ev.timeUS, r.ev.seq, r.ev.kind}, nil
				})); err != nil {
				return fmt.Errorf("copy event systems: %w", err)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		for _, q := range []string{
			`SELECT setval(pg_get_serial_sequence('events', 'seq'), (SELECT max(seq) FROM events))`,
			`VACUUM ANALYZE events`,
			`VACUUM ANALYZE event_systems`,
		} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				b.Fatalf("%s: %v", q, err)
			}
		}
		return
	}

	for _, q := range []string{`PRAGMA synchronous = OFF`, `PRAGMA cache_size = -262144`} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	insertMany(b, tx, `INSERT INTO events (seq, id, time_us, kind, actor, systems, summary, data) VALUES `, 8, len(events), func(i int) []any {
		ev := &events[i]
		return []any{ev.seq, ev.id, ev.timeUS, ev.kind, "agent:bench", systemsJSON(ev), ev.summary, ev.data}
	})
	insertMany(b, tx, `INSERT INTO event_systems (system_id, time_us, seq, kind) VALUES `, 4, len(rows), func(i int) []any {
		r := rows[i]
		return []any{r.system, r.ev.timeUS, r.ev.seq, r.ev.kind}
	})
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// insertMany inserts n rows of cols columns, 500 to a statement.
func insertMany(b *testing.B, tx *sql.Tx, insert string, cols, n int, row func(i int) []any) {
	b.Helper()
	const batch = 500
	values := "(?" + strings.Repeat(", ?", cols-1) + ")"
	full, err := tx.Prepare(insert + values + strings.Repeat(", "+values, batch-1))
	if err != nil {
		b.Fatal(err)
	}
	defer full.Close()
	args := make([]any, 0, batch*cols)
	for i := 0; i < n; i += batch {
		args = args[:0]
		for j := i; j < min(i+batch, n); j++ {
			args = append(args, row(j)...)
		}
		if len(args) == batch*cols {
			_, err = full.Exec(args...)
		} else {
			rows := len(args) / cols
			_, err = tx.Exec(insert+values+strings.Repeat(", "+values, rows-1), args...)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTimelineQuery(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchTimeline(b, MustBenchSQLite(b))
	})
	b.Run("postgres", func(b *testing.B) {
		s := MustOpen(b, MustPostgresDSN(b))
		start := time.Now()
		MustFillBench(b, s)
		b.Logf("built the PostgreSQL database in %v", time.Since(start).Round(time.Millisecond))
		benchTimeline(b, s)
	})
}

func benchTimeline(b *testing.B, s *store.Store) {
	ctx := context.Background()
	all, customer0 := benchSystems()
	// A cursor into the middle of the year.
	middle := &aramaki.Cursor{TimeMicro: benchStart.Add(benchEvents / 2 * 30 * time.Second).UnixMicro(), Seq: benchEvents / 2}
	for _, c := range []struct {
		name string
		q    aramaki.TimelineQuery
	}{
		{"newest-50-of-100-systems", aramaki.TimelineQuery{Systems: customer0, Limit: 50}},
		{"cursor-middle-50-of-100-systems", aramaki.TimelineQuery{Systems: customer0, Limit: 50, Cursor: middle}},
		{"newest-50-of-1-system", aramaki.TimelineQuery{Systems: []string{"c0-a3-k7"}, Limit: 50}},
		{"newest-50-of-1000-systems", aramaki.TimelineQuery{Systems: all, Limit: 50}},
		{"newest-50-of-all", aramaki.TimelineQuery{Limit: 50}},
		{"newest-50-notes-of-100-systems", aramaki.TimelineQuery{Systems: customer0, Limit: 50, Kinds: []aramaki.EventKind{aramaki.KindNote}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if plan, err := s.ExplainTimeline(ctx, c.q); err != nil {
				b.Fatal(err)
			} else if b.N == 1 || testing.Verbose() {
				b.Logf("plan:\n%s", summarisePlan(plan))
			}
			page, err := s.Timeline(ctx, c.q)
			if err != nil {
				b.Fatal(err)
			} else if len(page.Events) != 50 || page.Next == nil {
				b.Fatalf("page has %d events", len(page.Events))
			}
			for b.Loop() {
				if _, err := s.Timeline(ctx, c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// summarisePlan keeps the distinct lines of a plan, which for a hundred
// systems repeats itself a hundred times.
func summarisePlan(plan string) string {
	var out []string
	seen := map[string]int{}
	for _, line := range strings.Split(plan, "\n") {
		key := strings.TrimSpace(line)
		if i := strings.Index(key, "(cost="); i > 0 {
			key = key[:i]
		}
		if seen[key]++; seen[key] == 1 {
			out = append(out, line)
		}
	}
	for i, line := range out {
		key := strings.TrimSpace(line)
		if j := strings.Index(key, "(cost="); j > 0 {
			key = key[:j]
		}
		if n := seen[key]; n > 1 {
			out[i] = fmt.Sprintf("%s   [×%d]", line, n)
		}
	}
	return strings.Join(out, "\n")
}
