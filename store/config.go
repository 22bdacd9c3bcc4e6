package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aramaki/aramaki"
)

// Systems returns the systems of the config in force, ordered by id.
func (s *Store) Systems(ctx context.Context) ([]aramaki.System, error) {
	var systems []aramaki.System
	err := s.read(ctx, func(tx *txn) error {
		rows, err := tx.Query(ctx, `SELECT id, doc FROM systems ORDER BY id`)
		if err != nil {
			return fmt.Errorf("query systems: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, doc string
			if err := rows.Scan(&id, &doc); err != nil {
				return fmt.Errorf("scan system: %w", err)
			}
			var sys aramaki.System
			if err := json.Unmarshal([]byte(doc), &sys); err != nil {
				return fmt.Errorf("decode system %s: %w", id, err)
			}
			systems = append(systems, sys)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read systems: %w", err)
		}
		return nil
	})
	return systems, err
}

// configState is the config_state row as stored.
type configState struct {
	appliedHash, appliedAuthor, appliedMessage    sql.NullString
	appliedTime, appliedAt                        sql.NullInt64
	rejectedHash, rejectedAuthor, rejectedMessage sql.NullString
	rejectedTime                                  sql.NullInt64
	problems                                      sql.NullString
	checkedAt                                     sql.NullInt64
}

func loadConfigState(ctx context.Context, tx *txn, lock string) (configState, error) {
	var c configState
	err := tx.QueryRow(ctx, `
		SELECT applied_hash, applied_author, applied_message, applied_time_us, applied_at_us,
			rejected_hash, rejected_author, rejected_message, rejected_time_us, problems, checked_at_us
		FROM config_state WHERE id = 1`+lock,
	).Scan(&c.appliedHash, &c.appliedAuthor, &c.appliedMessage, &c.appliedTime, &c.appliedAt,
		&c.rejectedHash, &c.rejectedAuthor, &c.rejectedMessage, &c.rejectedTime, &c.problems, &c.checkedAt)
	if err != nil {
		return configState{}, fmt.Errorf("query config state: %w", err)
	}
	return c, nil
}

func commitOf(hash, author, message sql.NullString, t sql.NullInt64) *aramaki.Commit {
	if !hash.Valid {
		return nil
	}
	c := &aramaki.Commit{Hash: hash.String, Author: author.String, Message: message.String}
	if t.Valid {
		c.Time = fromMicros(t.Int64)
	}
	return c
}

// Notifiers returns the notifiers of the config commit in force.
func (s *Store) Notifiers(ctx context.Context) ([]aramaki.Notifier, error) {
	var notifiers []aramaki.Notifier
	err := s.read(ctx, func(tx *txn) error {
		var doc string
		if err := tx.QueryRow(ctx, `SELECT notifiers FROM config_state WHERE id = 1`).Scan(&doc); err != nil {
			return fmt.Errorf("query notifiers: %w", err)
		}
		if err := json.Unmarshal([]byte(doc), &notifiers); err != nil {
			return fmt.Errorf("decode notifiers: %w", err)
		}
		return nil
	})
	return notifiers, err
}

// ConfigState returns the commit in force and the last refused one.
func (s *Store) ConfigState(ctx context.Context) (aramaki.ConfigState, error) {
	var state aramaki.ConfigState
	err := s.read(ctx, func(tx *txn) error {
		c, err := loadConfigState(ctx, tx, "")
		if err != nil {
			return err
		}
		state.Applied = commitOf(c.appliedHash, c.appliedAuthor, c.appliedMessage, c.appliedTime)
		state.AppliedAt = fromNullMicros(c.appliedAt)
		state.Rejected = commitOf(c.rejectedHash, c.rejectedAuthor, c.rejectedMessage, c.rejectedTime)
		state.CheckedAt = fromNullMicros(c.checkedAt)
		if c.problems.Valid {
			if err := json.Unmarshal([]byte(c.problems.String), &state.Errors); err != nil {
				return fmt.Errorf("decode config problems: %w", err)
			}
		}
		return nil
	})
	return state, err
}

// ApplyConfig replaces all systems with the snapshot's, records its commit
// as applied at the time of ev (clearing a rejection) and appends ev. When
// the commit is the applied one already it changes nothing and returns
// false; on PostgreSQL the config_state row is locked first, so two replicas
// applying the same commit at once make one change and one event.
func (s *Store) ApplyConfig(ctx context.Context, snap aramaki.ConfigSnapshot, ev aramaki.Event) (bool, error) {
	if snap.Commit.Hash == "" {
		return false, aramaki.Errorf(aramaki.EINVALID, "config snapshot has no commit")
	}
	var changed bool
	err := s.write(ctx, func(tx *txn) error {
		c, err := loadConfigState(ctx, tx, s.forUpdate())
		if err != nil {
			return err
		}
		if c.appliedHash.Valid && c.appliedHash.String == snap.Commit.Hash {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM systems`); err != nil {
			return fmt.Errorf("delete systems: %w", err)
		}
		for _, sys := range snap.Systems {
			doc, err := json.Marshal(sys)
			if err != nil {
				return fmt.Errorf("marshal system %s: %w", sys.ID, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO systems (id, doc) VALUES (?, ?)`, sys.ID, string(doc)); err != nil {
				return fmt.Errorf("insert system %s: %w", sys.ID, err)
			}
		}
		notifiers := snap.Notifiers
		if notifiers == nil {
			notifiers = []aramaki.Notifier{}
		}
		notifiersJSON, err := json.Marshal(notifiers)
		if err != nil {
			return fmt.Errorf("marshal notifiers: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE config_state SET notifiers = ? WHERE id = 1`, string(notifiersJSON)); err != nil {
			return fmt.Errorf("update notifiers: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			UPDATE config_state SET
				applied_hash = ?, applied_author = ?, applied_message = ?, applied_time_us = ?, applied_at_us = ?,
				rejected_hash = NULL, rejected_author = NULL, rejected_message = NULL, rejected_time_us = NULL,
				problems = NULL
			WHERE id = 1`,
			snap.Commit.Hash, snap.Commit.Author, snap.Commit.Message, commitTime(snap.Commit), micros(ev.Time),
		); err != nil {
			return fmt.Errorf("update config state: %w", err)
		}
		// Routes and notifiers may have changed: the planner looks at every
		// group not resolved again, so that new routes hear of open alerts.
		if _, err := tx.Exec(ctx, `UPDATE alert_groups SET notify_at_us = ? WHERE resolved_us IS NULL`, micros(ev.Time)); err != nil {
			return fmt.Errorf("replan alert groups: %w", err)
		}
		if _, err := appendEvent(ctx, tx, ev); err != nil {
			return err
		}
		changed = true
		return nil
	})
	return changed, err
}

// RejectConfig records a refused commit with its problems and appends ev.
// When the commit is already recorded as rejected, or is the applied one,
// it changes nothing and returns false.
func (s *Store) RejectConfig(ctx context.Context, commit aramaki.Commit, problems []string, ev aramaki.Event) (bool, error) {
	if commit.Hash == "" {
		return false, aramaki.Errorf(aramaki.EINVALID, "rejected config has no commit")
	}
	if problems == nil {
		problems = []string{}
	}
	problemsJSON, err := json.Marshal(problems)
	if err != nil {
		return false, fmt.Errorf("marshal config problems: %w", err)
	}
	var changed bool
	err = s.write(ctx, func(tx *txn) error {
		c, err := loadConfigState(ctx, tx, s.forUpdate())
		if err != nil {
			return err
		}
		if c.appliedHash.Valid && c.appliedHash.String == commit.Hash ||
			c.rejectedHash.Valid && c.rejectedHash.String == commit.Hash {
			return nil
		}
		if _, err := tx.Exec(ctx, `
			UPDATE config_state SET
				rejected_hash = ?, rejected_author = ?, rejected_message = ?, rejected_time_us = ?, problems = ?
			WHERE id = 1`,
			commit.Hash, commit.Author, commit.Message, commitTime(commit), string(problemsJSON),
		); err != nil {
			return fmt.Errorf("update config state: %w", err)
		}
		if _, err := appendEvent(ctx, tx, ev); err != nil {
			return err
		}
		changed = true
		return nil
	})
	return changed, err
}

func commitTime(c aramaki.Commit) sql.NullInt64 {
	if c.Time.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(c.Time), Valid: true}
}

// MarkConfigChecked records when the repository was last read.
func (s *Store) MarkConfigChecked(ctx context.Context, at time.Time) error {
	return s.write(ctx, func(tx *txn) error {
		if _, err := tx.Exec(ctx, `UPDATE config_state SET checked_at_us = ? WHERE id = 1`, micros(at)); err != nil {
			return fmt.Errorf("update config state: %w", err)
		}
		return nil
	})
}
