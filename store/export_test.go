package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/aramaki/aramaki"
)

// DB exposes the connection pool to the tests and benchmarks of package
// store_test, which fill databases faster than event by event.
func (s *Store) DB() *sql.DB { return s.db }

// ExplainTimeline returns the query plan of the first statement Timeline
// runs for q: EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL. On
// PostgreSQL, setup (such as "SET LOCAL enable_seqscan = off") runs first
// in the same transaction.
func (s *Store) ExplainTimeline(ctx context.Context, q aramaki.TimelineQuery, setup ...string) (string, error) {
	w := windowOf(q)
	st := allEventsQuery(w)
	if len(q.Systems) > 0 {
		systems := slices.Clone(q.Systems)
		slices.Sort(systems)
		st = systemEventsQuery(s.dialect, systems[:min(len(systems), systemsPerQuery)], w)
	}
	explain := "EXPLAIN QUERY PLAN "
	if s.dialect == Postgres {
		explain = "EXPLAIN "
	}
	var plan []string
	err := s.read(ctx, func(tx *txn) error {
		for _, q := range setup {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, explain+st.query, st.args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return err
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			plan = append(plan, fmt.Sprint(vals[len(vals)-1]))
		}
		return rows.Err()
	})
	return strings.Join(plan, "\n"), err
}

// Migration returns the text of a migration of the store's dialect.
func (s *Store) Migration(name string) (string, error) {
	b, err := migrations.ReadFile("migrations/" + s.dialect + "/" + name)
	return string(b), err
}

// OpenAppend is a transaction appending events, left open by a test.
type OpenAppend struct{ tx *txn }

// BeginRawForTest opens a write transaction outside the store's usual
// path, so that a test can hold it open while others commit.
func (s *Store) BeginRawForTest(ctx context.Context) (*OpenAppend, error) {
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &OpenAppend{tx: &txn{tx: sqlTx, dialect: s.dialect, stmts: s.stmts}}, nil
}

// Append appends an event in the open transaction.
func (o *OpenAppend) Append(ctx context.Context, ev aramaki.Event) error {
	_, err := appendEvent(ctx, o.tx, ev)
	return err
}

// Commit commits it.
func (o *OpenAppend) Commit() error { return o.tx.tx.Commit() }
