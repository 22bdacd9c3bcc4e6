package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aramaki/aramaki"
)

// TellGrants puts a grant message in a peer's outbox, unless the peer was
// told the same (digest) last; body is the message. It reports whether it
// queued one.
func (s *Store) TellGrants(ctx context.Context, peer, digest string, body []byte, at time.Time) (bool, error) {
	queued := false
	err := s.write(ctx, func(tx *txn) error {
		l, err := readLink(ctx, tx, peer, s.forUpdate())
		if err != nil {
			return err
		}
		var last string
		err = tx.QueryRow(ctx, `SELECT digest FROM peer_grants_told WHERE peer = ?`, peer).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read grants told: %w", err)
		}
		if last == digest {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO peer_outbox (peer, seq, kind, body, created_us) VALUES (?, ?, 'grant', ?, ?)`,
			peer, l.NextSeq, string(body), micros(at)); err != nil {
			return fmt.Errorf("insert grant message: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE peer_links SET next_seq = ? WHERE peer = ?`, l.NextSeq+1, peer); err != nil {
			return fmt.Errorf("update link: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO peer_grants_told (peer, digest) VALUES (?, ?)
			ON CONFLICT (peer) DO UPDATE SET digest = excluded.digest`, peer, digest); err != nil {
			return fmt.Errorf("note grants told: %w", err)
		}
		queued = true
		return nil
	})
	return queued, err
}

// receiveGrants replaces what a peer told of its grants for this server
// with what message m tells, if it tells any.
func receiveGrants(ctx context.Context, tx *txn, peer string, m aramaki.ReceivedMessage) error {
	if !m.GrantsTold {
		return nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM peer_grants_received WHERE peer = ?`, peer); err != nil {
		return fmt.Errorf("forget peer grants: %w", err)
	}
	for _, g := range m.Grants {
		systems, _ := json.Marshal(g.Systems)
		kinds, _ := json.Marshal(g.Kinds)
		actions, _ := json.Marshal(append([]string{}, g.Actions...))
		if _, err := tx.Exec(ctx, `INSERT INTO peer_grants_received (peer, grant_id, systems, kinds, actions, until_us) VALUES (?, ?, ?, ?, ?, ?)`,
			peer, g.ID, string(systems), string(kinds), string(actions), micros(g.Until)); err != nil {
			return fmt.Errorf("store peer grant %s: %w", g.ID, err)
		}
	}
	return nil
}

// forgetPeerGrants forgets what a peer was told and told of grants, when
// it is peered anew.
func forgetPeerGrants(ctx context.Context, tx *txn, peer string) error {
	for _, table := range []string{"peer_grants_received", "peer_grants_told"} {
		if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE peer = ?`, peer); err != nil {
			return fmt.Errorf("clear %s: %w", table, err)
		}
	}
	return nil
}

// ReceivedGrants returns the grants peers told this server they hold for
// it, of one peer or ("") of all peers not removed, expired ones too.
func (s *Store) ReceivedGrants(ctx context.Context, peer string) ([]aramaki.ReceivedGrant, error) {
	var out []aramaki.ReceivedGrant
	err := s.read(ctx, func(tx *txn) error {
		rows, err := tx.Query(ctx, `SELECT g.peer, g.grant_id, g.systems, g.kinds, g.actions, g.until_us
			FROM peer_grants_received g JOIN peers p ON p.name = g.peer
			WHERE p.removed_us IS NULL AND (? = '' OR g.peer = ?)
			ORDER BY g.peer, g.until_us, g.grant_id`, peer, peer)
		if err != nil {
			return fmt.Errorf("read peer grants: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var g aramaki.ReceivedGrant
			var systems, kinds, actions string
			var until int64
			if err := rows.Scan(&g.Peer, &g.ID, &systems, &kinds, &actions, &until); err != nil {
				return err
			}
			if err := errors.Join(json.Unmarshal([]byte(systems), &g.Systems), json.Unmarshal([]byte(kinds), &g.Kinds),
				json.Unmarshal([]byte(actions), &g.Actions)); err != nil {
				return fmt.Errorf("peer grant %s of %s: %w", g.ID, g.Peer, err)
			}
			g.Until = fromMicros(until)
			out = append(out, g)
		}
		return rows.Err()
	})
	return out, err
}
