package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/aramaki/aramaki"
)

// startLink begins the exchange with a new peer: its outbox considers the
// events from now on.
func startLink(ctx context.Context, tx *txn, peer string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM peer_outbox WHERE peer = ?`, peer); err != nil {
		return fmt.Errorf("clear outbox: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM peer_links WHERE peer = ?`, peer); err != nil {
		return fmt.Errorf("clear link: %w", err)
	}
	// What a peer of this name was told before, it was not: told again.
	if _, err := tx.Exec(ctx, `DELETE FROM peer_shared_status WHERE peer = ?`, peer); err != nil {
		return fmt.Errorf("clear shared statuses: %w", err)
	}
	if err := forgetPeerGrants(ctx, tx, peer); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO peer_links (peer, event_seq) SELECT ?, COALESCE(MAX(seq), 0) FROM events`, peer); err != nil {
		return fmt.Errorf("start link: %w", err)
	}
	return nil
}

func readLink(ctx context.Context, tx *txn, peer, lock string) (aramaki.PeerLink, error) {
	l := aramaki.PeerLink{Peer: peer}
	err := tx.QueryRow(ctx, `SELECT event_seq, next_seq, acked_seq, received_seq FROM peer_links WHERE peer = ?`+lock, peer).
		Scan(&l.EventSeq, &l.NextSeq, &l.AckedSeq, &l.ReceivedSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return l, aramaki.Errorf(aramaki.ENOTFOUND, "no link with peer %s", peer)
	} else if err != nil {
		return l, fmt.Errorf("read link: %w", err)
	}
	return l, nil
}

// PeerLink returns where the exchange with a peer stands.
func (s *Store) PeerLink(ctx context.Context, peer string) (aramaki.PeerLink, error) {
	var l aramaki.PeerLink
	err := s.read(ctx, func(tx *txn) (err error) {
		l, err = readLink(ctx, tx, peer, "")
		return err
	})
	return l, err
}

// outboxEventColumns are the events' columns FillOutbox reads: those of
// an event a peer made here (its events, by peer:…) but of a run come
// without systems, summary and data — nothing of them is passed on, so
// what is a server's bulk when it catches up with a peer costs little to
// pass over, for every other peer.
const outboxEventColumns = `seq, id, time_us, kind, actor,
	CASE WHEN actor LIKE 'peer:%' AND kind NOT LIKE 'run.%' THEN '[]' ELSE systems END,
	CASE WHEN actor LIKE 'peer:%' AND kind NOT LIKE 'run.%' THEN '' ELSE summary END,
	CASE WHEN actor LIKE 'peer:%' AND kind NOT LIKE 'run.%' THEN NULL ELSE data END`

// outboxRow is a row of peer_outbox as FillOutbox writes it.
var outboxRow = []string{"peer text", "seq bigint", "kind text", "body text", "created_us bigint"}

// FillOutbox moves a peer's outbox on over this server's events: in one
// transaction it reads up to limit events after those considered before,
// puts what pick makes of them in the outbox, numbered on, and notes them
// considered. It returns how many events it read: fewer than limit when
// it caught up. pick gets the events of peers but runs' bare: seq, id,
// time, kind and actor (see outboxEventColumns).
func (s *Store) FillOutbox(ctx context.Context, peer string, limit int, at time.Time, pick func([]aramaki.Event) ([]aramaki.OutboxMessage, error)) (int, error) {
	// Most of the time there is nothing new: found out without taking the
	// write lock, which ingestion needs.
	behind := false
	if err := s.read(ctx, func(tx *txn) error {
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE seq > (SELECT event_seq FROM peer_links WHERE peer = ?))`, peer).Scan(&behind)
	}); err != nil {
		return 0, fmt.Errorf("look for new events: %w", err)
	}
	if !behind {
		return 0, nil
	}
	read := 0
	err := s.write(ctx, func(tx *txn) error {
		l, err := readLink(ctx, tx, peer, s.forUpdate())
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+outboxEventColumns+` FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, l.EventSeq, limit)
		if err != nil {
			return fmt.Errorf("query events: %w", err)
		}
		evs, err := scanEvents(rows)
		if err != nil {
			return err
		}
		if s.dialect == Postgres {
			evs = s.gaps.beforeGap(evs, l.EventSeq, at)
		}
		read = len(evs)
		if read == 0 {
			return nil
		}
		msgs, err := pick(evs)
		if err != nil {
			return err
		}
		args := make([]any, 0, len(msgs)*len(outboxRow))
		for _, m := range msgs {
			args = append(args, peer, int64(l.NextSeq), m.Kind, string(m.Body), micros(at))
			l.NextSeq++
		}
		if err := insertRows(ctx, tx, "peer_outbox", outboxRow, ``, args); err != nil {
			return fmt.Errorf("insert outbox messages: %w", err)
		}
		_, err = tx.Exec(ctx, `UPDATE peer_links SET event_seq = ?, next_seq = ? WHERE peer = ?`, evs[len(evs)-1].Seq, l.NextSeq, peer)
		if err != nil {
			return fmt.Errorf("update link: %w", err)
		}
		return nil
	})
	return read, err
}

// Outbox returns up to limit of a peer's messages after a seq, in order.
func (s *Store) Outbox(ctx context.Context, peer string, after uint64, limit int) ([]aramaki.OutboxMessage, error) {
	return readAll(ctx, s, "outbox", func(r rowScanner) (aramaki.OutboxMessage, error) {
		var (
			m       aramaki.OutboxMessage
			body    string
			created int64
		)
		if err := r.Scan(&m.Seq, &m.Kind, &body, &created); err != nil {
			return m, err
		}
		m.Body, m.Created = []byte(body), fromMicros(created)
		return m, nil
	}, `SELECT seq, kind, body, created_us FROM peer_outbox WHERE peer = ? AND seq > ? ORDER BY seq LIMIT ?`, peer, int64(after), limit)
}

// AckOutbox forgets a peer's messages up to the seq it acknowledged.
func (s *Store) AckOutbox(ctx context.Context, peer string, seq uint64) error {
	return s.write(ctx, func(tx *txn) error {
		l, err := readLink(ctx, tx, peer, s.forUpdate())
		if err != nil {
			return err
		}
		if seq >= l.NextSeq {
			return aramaki.Errorf(aramaki.EINVALID, "peer %s acknowledges message %d, but only %d were sent", peer, seq, l.NextSeq-1)
		}
		if seq <= l.AckedSeq {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM peer_outbox WHERE peer = ? AND seq <= ?`, peer, int64(seq)); err != nil {
			return fmt.Errorf("delete acknowledged: %w", err)
		}
		_, err = tx.Exec(ctx, `UPDATE peer_links SET acked_seq = ? WHERE peer = ?`, int64(seq), peer)
		return err
	})
}

// ReceiveFromPeer stores a peer's messages in one transaction: those at or
// below what was stored before are duplicates and skipped; the others, in
// increasing order (a peer may have withheld some), have their events
// appended, the runs the peer asked for created and those it answered
// moved on. It returns the last seq stored, to acknowledge.
func (s *Store) ReceiveFromPeer(ctx context.Context, peer string, msgs []aramaki.ReceivedMessage) (uint64, error) {
	var last uint64
	err := s.write(ctx, func(tx *txn) error {
		l, err := readLink(ctx, tx, peer, s.forUpdate())
		if err != nil {
			return err
		}
		last = l.ReceivedSeq
		// Events first, all of the batch's in a few statements: they are
		// most of what peers send. Nothing else in a message depends on
		// its events being stored before it.
		var evs []aramaki.Event
		for _, m := range msgs {
			if m.Seq > last {
				evs = append(evs, m.Events...)
			}
		}
		if err := appendEvents(ctx, tx, evs); err != nil {
			return fmt.Errorf("events of peer %s: %w", peer, err)
		}
		for _, m := range msgs {
			if m.Seq <= last {
				continue // seen already
			}
			if err := insertNotifications(ctx, tx, m.Notifications); err != nil {
				return err
			}
			for _, st := range m.Statuses {
				if _, err := tx.Exec(ctx, `INSERT INTO remote_status (system, status, since_us, updated_us) VALUES (?, ?, ?, ?)
					ON CONFLICT (system) DO UPDATE SET status = excluded.status, since_us = excluded.since_us, updated_us = excluded.updated_us`,
					st.System, st.Status.String(), micros(st.Since), micros(time.Now())); err != nil {
					return fmt.Errorf("store remote status: %w", err)
				}
				// The alert engine looks at it as at a check's change: the
				// remote system's check "status".
				if _, err := tx.Exec(ctx, `INSERT INTO alert_pending (system_id, check_name) VALUES (?, ?)`+pendingAgain, st.System, aramaki.RemoteStatusCheck); err != nil {
					return fmt.Errorf("mark alert pending: %w", err)
				}
			}
			if err := receiveGrants(ctx, tx, peer, m); err != nil {
				return fmt.Errorf("message %d of peer %s: %w", m.Seq, peer, err)
			}
			if err := s.receiveRuns(ctx, tx, m); err != nil {
				return fmt.Errorf("message %d of peer %s: %w", m.Seq, peer, err)
			}
			last = m.Seq
		}
		if last == l.ReceivedSeq {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE peer_links SET received_seq = ? WHERE peer = ?`, int64(last), peer)
		return err
	})
	return last, err
}

// ShareStatus puts a shared system's status in a peer's outbox, unless it
// is what the peer was told last; body is the message. It reports whether
// it queued one.
func (s *Store) ShareStatus(ctx context.Context, peer, system string, status aramaki.Status, body []byte, at time.Time) (bool, error) {
	queued := false
	err := s.write(ctx, func(tx *txn) error {
		l, err := readLink(ctx, tx, peer, s.forUpdate())
		if err != nil {
			return err
		}
		var last string
		err = tx.QueryRow(ctx, `SELECT status FROM peer_shared_status WHERE peer = ? AND system = ?`, peer, system).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read shared status: %w", err)
		}
		if last == status.String() {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO peer_outbox (peer, seq, kind, body, created_us) VALUES (?, ?, 'status', ?, ?)`,
			peer, l.NextSeq, string(body), micros(at)); err != nil {
			return fmt.Errorf("insert status message: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE peer_links SET next_seq = ? WHERE peer = ?`, l.NextSeq+1, peer); err != nil {
			return fmt.Errorf("update link: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO peer_shared_status (peer, system, status) VALUES (?, ?, ?)
			ON CONFLICT (peer, system) DO UPDATE SET status = excluded.status`, peer, system, status.String()); err != nil {
			return fmt.Errorf("note shared status: %w", err)
		}
		queued = true
		return nil
	})
	return queued, err
}

// RemoteStatuses returns what peers last told of their systems used here,
// by id (storage@a).
func (s *Store) RemoteStatuses(ctx context.Context, systems []string) (map[string]aramaki.RemoteStatus, error) {
	out := map[string]aramaki.RemoteStatus{}
	if len(systems) == 0 {
		return out, nil
	}
	in, arg := s.inStrings("system", systems)
	list, err := readAll(ctx, s, "remote statuses", func(r rowScanner) (aramaki.RemoteStatus, error) {
		var (
			st     aramaki.RemoteStatus
			status string
			since  int64
		)
		if err := r.Scan(&st.System, &status, &since); err != nil {
			return st, err
		}
		st.Status, _ = aramaki.ParseStatus(status)
		st.Since = fromMicros(since)
		return st, nil
	}, `SELECT system, status, since_us FROM remote_status WHERE `+in, arg)
	for _, st := range list {
		out[st.System] = st
	}
	return out, err
}

// WithholdOutbox deletes messages from a peer's outbox for good.
func (s *Store) WithholdOutbox(ctx context.Context, peer string, msgs []aramaki.WithheldMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *txn) error {
		for _, m := range msgs {
			if _, err := tx.Exec(ctx, `DELETE FROM peer_outbox WHERE peer = ? AND seq = ?`, peer, int64(m.Seq)); err != nil {
				return fmt.Errorf("withhold message: %w", err)
			}
			if m.StatusOf != "" {
				if _, err := tx.Exec(ctx, `DELETE FROM peer_shared_status WHERE peer = ? AND system = ?`, peer, m.StatusOf); err != nil {
					return fmt.Errorf("forget shared status: %w", err)
				}
			}
		}
		return nil
	})
}
