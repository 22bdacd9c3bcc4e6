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
