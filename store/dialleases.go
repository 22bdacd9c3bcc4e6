package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
)

// Replicas of one server take turns at dialling a peer: were each to
// dial, the peer would see several links from one server, each newer one
// replacing the one before on whichever of its processes they meet, and
// the replicas would take the link off each other every few hundred
// milliseconds. One replica at a time holds a peer's dial lease: on
// PostgreSQL a session-level advisory lock, on a connection kept for it,
// which PostgreSQL lets go when that connection ends — when the replica
// stops, dies or loses the database. On SQLite there is one process: it
// holds every lease.

// dialLeaseClass is the first key of the peers' dial leases' advisory
// locks, the second being the hash of the peer's name.
const dialLeaseClass = 7423317

type dialLeases struct {
	mu    sync.Mutex
	conns map[string]*sql.Conn // by peer name
}

// DialLeases returns which of the peers this replica is to dial: those
// whose lease it holds or takes now. It lets go of those it holds of
// peers not named.
func (s *Store) DialLeases(ctx context.Context, peers []string) (map[string]bool, error) {
	held := make(map[string]bool, len(peers))
	if s.dialect != Postgres {
		for _, p := range peers {
			held[p] = true
		}
		return held, nil
	}
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	if s.leases.conns == nil {
		s.leases.conns = map[string]*sql.Conn{}
	}
	want := make(map[string]bool, len(peers))
	for _, p := range peers {
		want[p] = true
	}
	for p := range s.leases.conns {
		if !want[p] {
			s.leases.release(ctx, p)
		}
	}
	for _, p := range peers {
		if c := s.leases.conns[p]; c != nil {
			if c.PingContext(ctx) == nil {
				held[p] = true
				continue
			}
			s.leases.release(ctx, p) // the lock went with the connection
		}
		c, err := s.db.Conn(ctx)
		if err != nil {
			return held, fmt.Errorf("dial lease of peer %s: %w", p, err)
		}
		var got bool
		if err := c.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, dialLeaseClass, p).Scan(&got); err != nil || !got {
			c.Close()
			if err != nil {
				return held, fmt.Errorf("dial lease of peer %s: %w", p, err)
			}
			continue // another replica's
		}
		s.leases.conns[p] = c
		held[p] = true
	}
	return held, nil
}

// ReleaseDialLease lets go of a peer's dial lease, if this replica holds
// it, for another to take, and reports whether it did: on SQLite there is
// no other to take it.
func (s *Store) ReleaseDialLease(ctx context.Context, peer string) bool {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	if s.leases.conns[peer] == nil {
		return false
	}
	s.leases.release(ctx, peer)
	return true
}

// release unlocks and gives the connection back; a connection that cannot
// unlock is broken, and its lock gone with it.
func (l *dialLeases) release(ctx context.Context, peer string) {
	c := l.conns[peer]
	if c == nil {
		return
	}
	delete(l.conns, peer)
	if _, err := c.ExecContext(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, dialLeaseClass, peer); err != nil {
		// Not back to the pool with the lock, maybe, still on it.
		c.Raw(func(any) error { return driver.ErrBadConn })
	}
	c.Close()
}

func (l *dialLeases) releaseAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p := range l.conns {
		l.release(context.Background(), p)
	}
}
