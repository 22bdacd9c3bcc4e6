package store_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
)

var _ service.Store = (*store.Store)(nil)

// The conformance suite: every test runs against SQLite, always, and
// against PostgreSQL when ARAMAKI_TEST_POSTGRES holds the URL of a server
// on which the tests may create databases (scripts/postgres.sh starts one).
// In CI (CI=true) a missing PostgreSQL fails the suite: CI tests both.

// forEachStore runs fn against a fresh, empty store of every dialect.
func forEachStore(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	forEachDSN(t, func(t *testing.T, dsn string) {
		fn(t, MustOpen(t, dsn))
	})
}

// forEachDSN runs fn with the DSN of a fresh, empty database of every
// dialect, for tests that open and close stores themselves.
func forEachDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, MustSQLiteDSN(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, MustPostgresDSN(t))
	})
}

// MustSQLiteDSN returns the path of a new SQLite database file.
func MustSQLiteDSN(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "aramaki.db")
}

// MustPostgresDSN creates a database aramaki_test_<random> on the server of
// ARAMAKI_TEST_POSTGRES, drops it when the test ends and returns its URL.
func MustPostgresDSN(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("ARAMAKI_TEST_POSTGRES")
	if admin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ARAMAKI_TEST_POSTGRES is not set, but CI must test PostgreSQL too (source scripts/postgres.sh)")
		}
		t.Skip("ARAMAKI_TEST_POSTGRES is not set; skipping PostgreSQL (source scripts/postgres.sh to run it)")
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse ARAMAKI_TEST_POSTGRES: %v", err)
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	name := "aramaki_test_" + hex.EncodeToString(randomBytes(6))
	if _, err := db.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	// Cleanups run last-registered first: the store is closed before this.
	t.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// MustOpen opens the store at dsn and closes it when the test ends.
func MustOpen(t testing.TB, dsn string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// t0 is a fixed point in time the tests count from.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

// MustEvent makes an event the way the service does.
func MustEvent(t testing.TB, at time.Time, kind aramaki.EventKind, systems []string, summary string) aramaki.Event {
	t.Helper()
	ev, err := aramaki.NewEvent(at, kind, "user:alice", systems, summary, nil)
	if err != nil {
		t.Fatalf("new event: %v", err)
	}
	return ev
}

// MustAppend stores an event and fails unless it is new.
func MustAppend(t testing.TB, s *store.Store, ev aramaki.Event) {
	t.Helper()
	added, err := s.AppendEvent(context.Background(), ev)
	if err != nil {
		t.Fatalf("append event: %v", err)
	} else if !added {
		t.Fatalf("append event %s: stored already", ev.ID)
	}
}

// MustTimeline fetches one page of the timeline.
func MustTimeline(t *testing.T, s *store.Store, q aramaki.TimelineQuery) aramaki.TimelinePage {
	t.Helper()
	page, err := s.Timeline(context.Background(), q)
	if err != nil {
		t.Fatalf("timeline: %v", err)
	}
	return page
}

// kindAudit is the kind of the audit events of these tests; the store does
// not care which kinds audit events have.
const kindAudit aramaki.EventKind = "test.audit"

// MustAudit makes an audit event with a summary unique to the test.
func MustAudit(t testing.TB, summary string) aramaki.Event {
	t.Helper()
	return MustEvent(t, time.Now(), kindAudit, nil, summary)
}

// wantCode fails unless err carries the aramaki error code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := aramaki.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func TestOpen(t *testing.T) {
	t.Run("reports its dialect", func(t *testing.T) {
		forEachDSN(t, func(t *testing.T, dsn string) {
			s := MustOpen(t, dsn)
			if want := t.Name()[len(t.Name())-len(s.Dialect()):]; s.Dialect() != want {
				t.Errorf("Dialect() = %q, want %q", s.Dialect(), want)
			}
		})
	})
	t.Run("a sqlite: prefix names a file", func(t *testing.T) {
		t.Parallel()
		path := MustSQLiteDSN(t)
		s := MustOpen(t, "sqlite:"+path)
		if s.Dialect() != store.SQLite {
			t.Errorf("Dialect() = %q", s.Dialect())
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("database file: %v", err)
		}
	})
	t.Run("an unreachable PostgreSQL is an error", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if s, err := store.Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", nil); err == nil {
			s.Close()
			t.Fatal("opened a store on a closed port")
		}
	})
}

func TestMigrationsAreIdempotentOnReopen(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		for range 3 {
			s, err := store.Open(ctx, dsn, nil)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
		}
		// The schema is usable after the reopening.
		s := MustOpen(t, dsn)
		MustAppend(t, s, MustEvent(t, t0, aramaki.KindNote, []string{"web"}, "still works"))
	})
}

func TestDataSurvivesCloseAndReopen(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, err := store.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		snap := aramaki.ConfigSnapshot{
			Commit:  aramaki.Commit{Hash: "c1", Author: "Alice <alice@example.com>", Message: "add web", Time: t0},
			Systems: []aramaki.System{{ID: "web", Title: "Web"}},
		}
		if _, err := s.ApplyConfig(ctx, snap, MustEvent(t, t0, aramaki.KindConfigApplied, []string{"web"}, "applied c1")); err != nil {
			t.Fatal(err)
		}
		note := MustEvent(t, t0.Add(time.Second), aramaki.KindNote, []string{"web"}, "hello")
		MustAppend(t, s, note)
		u, err := s.CreateUser(ctx, "alice", "hash", MustAudit(t, "created alice"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		s = MustOpen(t, dsn)
		if systems, err := s.Systems(ctx); err != nil || len(systems) != 1 || systems[0].ID != "web" {
			t.Errorf("systems after reopen = %v, %v", systems, err)
		}
		if got, err := s.Event(ctx, note.ID); err != nil || got.Summary != "hello" {
			t.Errorf("note after reopen = %+v, %v", got, err)
		}
		if got, err := s.UserByID(ctx, u.ID); err != nil || got.Name != "alice" {
			t.Errorf("user after reopen = %+v, %v", got, err)
		}
	})
}
