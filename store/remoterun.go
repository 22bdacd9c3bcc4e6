package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aramaki/aramaki"
)

// Runs across peers: a run of a peer's system is stored here with the
// request to the peer queued in the same transaction; a run a peer asked
// for is created with the peer's message that asked, once.

// CreatePeerRun stores a run of a peer's system and, in the same
// transaction, the events events makes of it once it has its id and the
// message asking the peer to run it, queued in the peer's outbox.
func (s *Store) CreatePeerRun(ctx context.Context, run aramaki.Run, at time.Time, events func(aramaki.Run) ([]aramaki.Event, aramaki.OutboxMessage, error)) (aramaki.Run, error) {
	err := s.write(ctx, func(tx *txn) error {
		var peers int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM peers WHERE name = ? AND removed_us IS NULL`, run.Peer).Scan(&peers); err != nil {
			return fmt.Errorf("query peer: %w", err)
		}
		if peers == 0 {
			return aramaki.Errorf(aramaki.ENOTFOUND, "no peer %s", run.Peer)
		}
		l, err := readLink(ctx, tx, run.Peer, s.forUpdate())
		if err != nil {
			return err
		}
		if run, err = insertRun(ctx, tx, run); err != nil {
			return err
		}
		evs, msg, err := events(run)
		if err != nil {
			return err
		}
		if err := appendEvents(ctx, tx, evs); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO peer_outbox (peer, seq, kind, body, created_us) VALUES (?, ?, ?, ?, ?)`,
			run.Peer, l.NextSeq, msg.Kind, string(msg.Body), micros(at)); err != nil {
			return fmt.Errorf("insert outbox message: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE peer_links SET next_seq = ? WHERE peer = ?`, l.NextSeq+1, run.Peer); err != nil {
			return fmt.Errorf("update link: %w", err)
		}
		return nil
	})
	return run, err
}

// receiveRuns creates the runs a peer's message asks for and moves on the
// runs it answers for.
func (s *Store) receiveRuns(ctx context.Context, tx *txn, m aramaki.ReceivedMessage) error {
	// A message is received once (ReceiveFromPeer skips those at or below
	// the last stored, in this transaction): so is each run it asks for.
	for _, req := range m.Runs {
		// A revocation committed since the grants were read counts: it
		// takes effect at once.
		inForce, err := s.anyGrantInForce(ctx, tx, req.Grants)
		if err != nil {
			return err
		}
		if !inForce {
			evs, err := req.Refused()
			if err != nil {
				return err
			}
			if err := appendEvents(ctx, tx, evs); err != nil {
				return err
			}
			continue
		}
		run, err := insertRun(ctx, tx, req.Run)
		if err != nil {
			return err
		}
		evs, notifications, err := req.Events(run)
		if err != nil {
			return err
		}
		if err := appendEvents(ctx, tx, evs); err != nil {
			return err
		}
		if err := insertNotifications(ctx, tx, notifications); err != nil {
			return err
		}
	}
	for _, res := range m.RunResults {
		n, err := runID(res.Run)
		if err != nil {
			continue // no run of this server: nothing to move on
		}
		before, err := readRun(ctx, tx, n, s.forUpdate(), false)
		if aramaki.ErrorCode(err) == aramaki.ENOTFOUND {
			continue
		} else if err != nil {
			return err
		}
		after, evs, err := res.Change(before)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			continue
		}
		if err := updateRun(ctx, tx, n, after, evs); err != nil {
			return err
		}
	}
	return nil
}

// anyGrantInForce reports whether one of the grants is not revoked; the
// rows are locked, so that a revocation waits for the run it would have
// refused, or the run for the revocation.
func (s *Store) anyGrantInForce(ctx context.Context, tx *txn, ids []string) (bool, error) {
	inForce := false
	for _, id := range ids {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			continue
		}
		var revoked sql.NullInt64
		err = tx.QueryRow(ctx, `SELECT revoked_us FROM grants WHERE id = ?`+s.forUpdate(), n).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		} else if err != nil {
			return false, fmt.Errorf("read grant: %w", err)
		}
		inForce = inForce || !revoked.Valid
	}
	return inForce, nil
}
