// Package store keeps Aramaki's state in SQL: the systems of the config in
// force, the timeline, users, tokens and role bindings, agents with their
// enrollment tokens and facts, and check results with the states and status
// history they make. It is the only place in the project where SQL lives.
// One Store speaks either SQLite (embedded, the default: one server, zero
// setup) or PostgreSQL (several server replicas sharing one database); the
// same conformance tests run against both.
//
// Every method is one transaction. Queries are written once with ?
// placeholders and rebound for PostgreSQL; where the dialects differ the
// difference is spelled out next to the query.
package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// Dialects.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

//go:embed migrations
var migrations embed.FS

// Store is a connection pool to the database. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect string
	log     *slog.Logger

	// writeSem serialises write transactions within this process on SQLite,
	// which has one writer at a time anyway: waiting here is fair and wakes
	// at once, where waiting in SQLite's busy handler sleeps and polls.
	// Other processes on the same file still wait through busy_timeout.
	writeSem chan struct{}

	stmts  *stmtCache
	checks *checkNumbers
	gaps   eventGaps  // in the events' numbering, for the peers' outboxes
	leases dialLeases // of the peers this replica dials

	// The SQLite checkpointer: see checkpoints.
	stopCheckpoints chan struct{}
	checkpointsDone chan struct{}
}

// checkpointEvery is how often the SQLite checkpointer copies the WAL into
// the database.
const checkpointEvery = time.Second

// Open connects to the database named by dsn and brings its schema up to
// date. dsn is a PostgreSQL URL (postgres://… or postgresql://…), or a
// SQLite file path, optionally written sqlite:PATH.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		log:    log,
		stmts:  &stmtCache{m: map[string]*sql.Stmt{}},
		checks: &checkNumbers{m: map[checkName]int64{}},
	}
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.dialect = Postgres
		s.db, err = sql.Open("pgx", dsn)
	} else {
		s.dialect = SQLite
		s.writeSem = make(chan struct{}, 1)
		var name string
		if name, err = sqliteDSN(dsn); err == nil {
			s.db, err = sql.Open("sqlite", name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	s.stmts.db = s.db
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", s.dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if s.dialect == SQLite {
		s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
		go s.checkpoints()
	}
	return s, nil
}

// checkpoints copies the WAL into the database in the background, so that
// no commit waits for it: left to SQLite, the commit that fills the WAL
// does the checkpoint, and a writer that happens to be an alert or a batch
// of results waits tens of milliseconds. PASSIVE never blocks writers or
// readers. wal_autocheckpoint stays as the backstop if this falls behind.
func (s *Store) checkpoints() {
	defer close(s.checkpointsDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopCheckpoints:
			return
		case <-t.C:
			if _, err := s.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				s.log.Warn("checkpoint", "err", err)
			}
		}
	}
}

// sqliteDSN turns a file path into a modernc.org/sqlite DSN with the
// settings every connection needs:
//   - WAL, so readers do not block the writer;
//   - synchronous=NORMAL, which in WAL mode keeps every committed
//     transaction through a crash of the process (kill -9); only a power
//     loss may take the last few back;
//   - foreign keys on, and a busy timeout for other processes' writes;
//   - BEGIN IMMEDIATE for read-write transactions, so two writers never
//     both read under a shared lock and then deadlock upgrading it.
//     Read-only transactions stay deferred;
//   - temp_store=MEMORY: the statement journals of the multi-row inserts
//     of RecordResults stay in memory instead of going to a temporary
//     file, a write system call per page;
//   - wal_autocheckpoint=65536 pages (256 MiB): checkpoints run in the
//     background every second (see checkpoints), and a commit checkpoints
//     only when those fell far behind.
func sqliteDSN(dsn string) (string, error) {
	p := strings.TrimPrefix(dsn, "sqlite:")
	if p == "" || strings.ContainsAny(p, "?#") || p == ":memory:" {
		return "", fmt.Errorf("invalid SQLite database path %q", p)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "wal_autocheckpoint(65536)")
	q.Set("_txlock", "immediate")
	return p + "?" + q.Encode(), nil
}

// Close closes the database.
func (s *Store) Close() error {
	if s.stopCheckpoints != nil {
		close(s.stopCheckpoints)
		<-s.checkpointsDone
	}
	s.leases.releaseAll()
	s.stmts.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// Dialect returns "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// migrate applies the embedded migrations of the dialect that the database
// has not seen yet, in order, each in its own transaction together with its
// row in schema_migrations. Migrations are append-only: a released file is
// never edited, a change is a new file.
func (s *Store) migrate(ctx context.Context) error {
	dir := path.Join("migrations", s.dialect)
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	known := map[int]bool{}
	for _, e := range entries { // ReadDir sorts by name; names start with a zero-padded number
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return fmt.Errorf("migration %s: name must be NNNN_what.sql", e.Name())
		}
		known[version] = true
		body, err := migrations.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		if err := s.migrateOne(ctx, version, e.Name(), string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", e.Name(), err)
		}
	}

	// A newer binary may have migrated the database already (a rolling
	// upgrade of replicas). Say so; the schema only ever grows.
	rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return fmt.Errorf("list migrations: %w", err)
		}
		if !known[v] {
			s.log.Warn("database has a migration this binary does not know; is a newer version running?", "version", v)
		}
	}
	return rows.Err()
}

func (s *Store) migrateOne(ctx context.Context, version int, name, body string) error {
	return s.write(ctx, func(tx *txn) error {
		if s.dialect == Postgres {
			// Two replicas starting at once: the second waits here until the
			// first has committed, then finds the migration recorded.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(4283946183200)`); err != nil {
				return fmt.Errorf("lock migrations: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_us BIGINT NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
			return fmt.Errorf("check migration: %w", err)
		} else if n > 0 {
			return nil
		}
		// Without arguments both drivers run the text as a script of
		// several statements.
		if _, err := tx.tx.ExecContext(ctx, body); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_us) VALUES (?, ?, ?)`,
			version, name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("record migration: %w", err)
		}
		s.log.Info("applied database migration", "dialect", s.dialect, "migration", name)
		return nil
	})
}

// txn is a transaction that rebinds ? placeholders for the dialect.
type txn struct {
	tx      *sql.Tx
	dialect string
	stmts   *stmtCache
}

// Exec runs a statement.
func (tx *txn) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return tx.tx.ExecContext(ctx, rebind(tx.dialect, query), args...)
}

// Query runs a query.
func (tx *txn) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return tx.tx.QueryContext(ctx, rebind(tx.dialect, query), args...)
}

// QueryRow runs a query that returns at most one row.
func (tx *txn) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(ctx, rebind(tx.dialect, query), args...)
}

// Prepare prepares a statement for repeated use within the transaction.
func (tx *txn) Prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	return tx.tx.PrepareContext(ctx, rebind(tx.dialect, query))
}

// Stmt returns the statement of query, prepared once for the store and
// kept: for the queries of the hot paths, which run many times a second
// with the same text. database/sql prepares it on each connection the first
// time it is used there.
func (tx *txn) Stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	st, err := tx.stmts.get(ctx, rebind(tx.dialect, query))
	if err != nil {
		return nil, err
	}
	return tx.tx.StmtContext(ctx, st), nil
}

// stmtCache keeps prepared statements by their text, for the life of the
// store.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.m[query]; st != nil {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
}

// rebind turns the ? placeholders of query into $1, $2, … for PostgreSQL.
// Our queries have no ? inside string literals, so a plain scan will do.
func rebind(dialect, query string) string {
	if dialect != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		} else {
			b.WriteByte(query[i])
		}
	}
	return b.String()
}

// forUpdate is the locking clause for a row that a read-write transaction
// reads before changing. SQLite has none and needs none: its write
// transactions begin immediate and so run one at a time.
func (s *Store) forUpdate() string {
	if s.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// write runs fn in a read-write transaction and commits when it returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *txn) error) error {
	if s.writeSem != nil {
		select {
		case s.writeSem <- struct{}{}:
			defer func() { <-s.writeSem }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.run(ctx, nil, fn)
}

// read runs fn in a read-only transaction, which sees one snapshot of the
// database in all its statements: SQLite's read transactions always do, on
// PostgreSQL that takes REPEATABLE READ.
func (s *Store) read(ctx context.Context, fn func(tx *txn) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	return s.run(ctx, opts, fn)
}

func (s *Store) run(ctx context.Context, opts *sql.TxOptions, fn func(tx *txn) error) error {
	sqlTx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer sqlTx.Rollback()
	if err := fn(&txn{tx: sqlTx, dialect: s.dialect, stmts: s.stmts}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// Times are stored as unix microseconds: exact and the same on both
// dialects.

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// rowScanner is a row or rows: what the scan functions read from.
type rowScanner interface{ Scan(...any) error }

// readAll runs a query in a read transaction and scans every row: the
// plain "list of things" read.
func readAll[T any](ctx context.Context, s *Store, what string, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := s.read(ctx, func(tx *txn) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("query %s: %w", what, err)
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return fmt.Errorf("scan %s: %w", what, err)
			}
			out = append(out, v)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read %s: %w", what, err)
		}
		return nil
	})
	return out, err
}

// conditions collects the WHERE clause of a filtered read.
type conditions struct {
	where []string
	args  []any
}

// add adds a condition with its argument.
func (c *conditions) add(cond string, arg any) {
	c.where, c.args = append(c.where, cond), append(c.args, arg)
}

// in adds "column is one of values" (see inStrings).
func (c *conditions) in(s *Store, column string, values []string) {
	cond, arg := s.inStrings(column, values)
	c.add(cond, arg)
}

// sql is the WHERE clause, empty when there is no condition.
func (c *conditions) sql() string {
	if len(c.where) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(c.where, " AND ")
}

// strs turns a list of string-like values into strings.
func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}
