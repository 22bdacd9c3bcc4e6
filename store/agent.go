package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// CreateEnrollmentToken stores a new enrollment token with the hash of its
// secret and appends the audit event. A taken id is ECONFLICT.
func (s *Store) CreateEnrollmentToken(ctx context.Context, t aramaki.EnrollmentToken, secretHash []byte, audit aramaki.Event) error {
	if t.ID == "" || len(secretHash) == 0 {
		return aramaki.Errorf(aramaki.EINVALID, "an enrollment token needs an id and a secret")
	}
	if t.Expires.IsZero() {
		return aramaki.Errorf(aramaki.EINVALID, "an enrollment token needs an expiry time")
	}
	systems, err := systemsJSON(t.Systems)
	if err != nil {
		return err
	}
	if t.Created.IsZero() {
		t.Created = audit.Time
	}
	return s.write(ctx, func(tx *txn) error {
		var id string
		err := tx.QueryRow(ctx, `
			INSERT INTO enrollment_tokens (id, secret_hash, systems, created_by, created_us, expires_us, used_us, agent_id)
			VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)
			ON CONFLICT (id) DO NOTHING
			RETURNING id`,
			t.ID, secretHash, systems, t.CreatedBy, micros(t.Created), micros(t.Expires),
		).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ECONFLICT, "enrollment token %s exists already", t.ID)
		} else if err != nil {
			return fmt.Errorf("insert enrollment token: %w", err)
		}
		_, err = appendEvent(ctx, tx, audit)
		return err
	})
}

// errEnrollment is the one answer to every failed enrollment: whether the
// token is unknown, the secret wrong, the token spent or expired, whoever
// probes learns nothing.
var errEnrollment = aramaki.Errorf(aramaki.EUNAUTHORIZED, "invalid or expired enrollment token")

// Enroll spends an enrollment token and creates the agent with the token's
// systems, in one transaction. The token must exist, its secret hash match
// secretHash, and it must be unused and not expired at a.Enrolled (now
// when zero); otherwise the error is EUNAUTHORIZED, the same for every
// reason. An agent id that is taken already is ECONFLICT, and the token
// stays unspent. The audit event that audit makes of the token is
// appended.
func (s *Store) Enroll(ctx context.Context, tokenID string, secretHash []byte, a aramaki.Agent, audit func(aramaki.EnrollmentToken) (aramaki.Event, error)) (aramaki.Agent, error) {
	if a.ID == "" {
		return aramaki.Agent{}, aramaki.Errorf(aramaki.EINVALID, "an agent needs an id")
	}
	if a.Enrolled.IsZero() {
		a.Enrolled = time.Now()
	}
	a.Enrolled = fromMicros(micros(a.Enrolled))
	err := s.write(ctx, func(tx *txn) error {
		var hash []byte
		t, err := scanEnrollmentToken(tx.QueryRow(ctx,
			`SELECT `+enrollmentTokenColumns+`, secret_hash FROM enrollment_tokens WHERE id = ?`+s.forUpdate(), tokenID), &hash)
		if errors.Is(err, sql.ErrNoRows) {
			return errEnrollment
		} else if err != nil {
			return fmt.Errorf("query enrollment token: %w", err)
		}
		if subtle.ConstantTimeCompare(hash, secretHash) != 1 || t.Used != nil || !a.Enrolled.Before(t.Expires) {
			return errEnrollment
		}

		a.Systems = t.Systems
		a.LastSeen, a.Revoked, a.LastSeq = nil, nil, 0
		if a.PublicKey == nil {
			a.PublicKey = []byte{}
		}
		systems, err := systemsJSON(a.Systems)
		if err != nil {
			return err
		}
		var id string
		err = tx.QueryRow(ctx, `
			INSERT INTO agents (id, name, systems, public_key, version, enrolled_us, last_seen_us, revoked_us, last_seq)
			VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, 0)
			ON CONFLICT (id) DO NOTHING
			RETURNING id`,
			a.ID, a.Name, systems, a.PublicKey, a.Version, micros(a.Enrolled),
		).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ECONFLICT, "agent %s exists already", a.ID)
		} else if err != nil {
			return fmt.Errorf("insert agent: %w", err)
		}

		if _, err := tx.Exec(ctx, `UPDATE enrollment_tokens SET used_us = ?, agent_id = ? WHERE id = ?`,
			micros(a.Enrolled), a.ID, tokenID); err != nil {
			return fmt.Errorf("spend enrollment token: %w", err)
		}
		used := a.Enrolled
		t.Used, t.AgentID = &used, a.ID
		ev, err := audit(t)
		if err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, ev)
		return err
	})
	if err != nil {
		return aramaki.Agent{}, err
	}
	return a, nil
}

const enrollmentTokenColumns = `id, systems, created_by, created_us, expires_us, used_us, agent_id`

func scanEnrollmentToken(row rowScanner, extra ...any) (aramaki.EnrollmentToken, error) {
	var (
		t                    aramaki.EnrollmentToken
		systems              string
		createdUS, expiresUS int64
		used                 sql.NullInt64
		agentID              sql.NullString
	)
	if err := row.Scan(append([]any{&t.ID, &systems, &t.CreatedBy, &createdUS, &expiresUS, &used, &agentID}, extra...)...); err != nil {
		return aramaki.EnrollmentToken{}, err
	}
	if err := json.Unmarshal([]byte(systems), &t.Systems); err != nil {
		return aramaki.EnrollmentToken{}, fmt.Errorf("decode systems of enrollment token %s: %w", t.ID, err)
	}
	t.Created = fromMicros(createdUS)
	t.Expires = fromMicros(expiresUS)
	t.Used = fromNullMicros(used)
	t.AgentID = agentID.String
	return t, nil
}

// EnrollmentTokens returns every enrollment token, spent or not, oldest
// first.
func (s *Store) EnrollmentTokens(ctx context.Context) ([]aramaki.EnrollmentToken, error) {
	return readAll(ctx, s, "enrollment tokens", func(r rowScanner) (aramaki.EnrollmentToken, error) { return scanEnrollmentToken(r) },
		`SELECT `+enrollmentTokenColumns+` FROM enrollment_tokens ORDER BY created_us, id`)
}

const agentColumns = `id, name, systems, public_key, version, enrolled_us, last_seen_us, revoked_us, last_seq, actions`

func scanAgent(row rowScanner) (aramaki.Agent, error) {
	var (
		a                 aramaki.Agent
		systems           string
		enrolledUS        int64
		lastSeen, revoked sql.NullInt64
		lastSeq           int64
		actions           string
	)
	if err := row.Scan(&a.ID, &a.Name, &systems, &a.PublicKey, &a.Version, &enrolledUS, &lastSeen, &revoked, &lastSeq, &actions); err != nil {
		return aramaki.Agent{}, err
	}
	if err := json.Unmarshal([]byte(systems), &a.Systems); err != nil {
		return aramaki.Agent{}, fmt.Errorf("decode systems of agent %s: %w", a.ID, err)
	}
	if actions != "[]" {
		if err := json.Unmarshal([]byte(actions), &a.Actions); err != nil {
			return aramaki.Agent{}, fmt.Errorf("decode actions of agent %s: %w", a.ID, err)
		}
	}
	a.Enrolled = fromMicros(enrolledUS)
	a.LastSeen = fromNullMicros(lastSeen)
	a.Revoked = fromNullMicros(revoked)
	a.LastSeq = uint64(lastSeq)
	return a, nil
}

// Agent returns the agent with the given id, revoked or not.
func (s *Store) Agent(ctx context.Context, id string) (aramaki.Agent, error) {
	var a aramaki.Agent
	err := s.read(ctx, func(tx *txn) error {
		var err error
		a, err = scanAgent(tx.QueryRow(ctx, `SELECT `+agentColumns+` FROM agents WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "agent %s not found", id)
		} else if err != nil {
			return fmt.Errorf("query agent: %w", err)
		}
		return nil
	})
	return a, err
}

// Agents returns every agent, revoked ones too, ordered by name and id.
func (s *Store) Agents(ctx context.Context) ([]aramaki.Agent, error) {
	return readAll(ctx, s, "agents", func(r rowScanner) (aramaki.Agent, error) { return scanAgent(r) },
		`SELECT `+agentColumns+` FROM agents ORDER BY name, id`)
}

// AgentsNamed returns the agents with the names given.
func (s *Store) AgentsNamed(ctx context.Context, names []string) ([]aramaki.Agent, error) {
	in, arg := s.inStrings("name", names)
	return readAll(ctx, s, "agents", func(r rowScanner) (aramaki.Agent, error) { return scanAgent(r) },
		`SELECT `+agentColumns+` FROM agents WHERE `+in+` ORDER BY name, id`, arg)
}

// RevokeAgent marks an agent revoked at the time of the audit event and
// appends the event. An unknown agent is ENOTFOUND, one revoked already
// ECONFLICT. The states of its checks are deleted with it: a revoked
// agent's results no longer count towards any status.
func (s *Store) RevokeAgent(ctx context.Context, id string, audit aramaki.Event) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.Exec(ctx, `UPDATE agents SET revoked_us = ? WHERE id = ? AND revoked_us IS NULL`, micros(audit.Time), id)
		if err != nil {
			return fmt.Errorf("revoke agent: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("rows affected: %w", err)
		} else if n == 0 {
			var exists int
			err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM agents WHERE id = ?`, id).Scan(&exists)
			if err != nil {
				return fmt.Errorf("query agent: %w", err)
			} else if exists == 0 {
				return aramaki.Errorf(aramaki.ENOTFOUND, "agent %s not found", id)
			}
			return aramaki.Errorf(aramaki.ECONFLICT, "agent %s is revoked already", id)
		}
		// What a revoked agent said no longer counts: its checks' states go
		// (their history stays).
		if _, err := tx.Exec(ctx, `INSERT INTO alert_pending (system_id, check_name)
			SELECT DISTINCT c.system_id, c.check_name FROM check_states s JOIN checks c ON c.id = s.check_id
			WHERE s.agent_id = ? `+pendingAgain, id); err != nil {
			return fmt.Errorf("mark alerts pending: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM check_states WHERE agent_id = ?`, id); err != nil {
			return fmt.Errorf("delete check states: %w", err)
		}
		_, err = appendEvent(ctx, tx, audit)
		return err
	})
}

// TouchAgents records when agents were last heard from, and the version
// they run when it is not empty. Last seen only moves forward, so that two
// replicas touching one agent in either order agree. Unknown agents are
// ignored.
func (s *Store) TouchAgents(ctx context.Context, seen []aramaki.AgentSeen) error {
	if len(seen) == 0 {
		return nil
	}
	// In id order, so that two replicas touching the same agents lock their
	// rows in the same order and never deadlock.
	seen = slices.Clone(seen)
	slices.SortStableFunc(seen, func(a, b aramaki.AgentSeen) int { return strings.Compare(a.Agent, b.Agent) })
	return s.write(ctx, func(tx *txn) error {
		stmt, err := tx.Prepare(ctx, `
			UPDATE agents SET
				last_seen_us = CASE WHEN last_seen_us IS NULL OR last_seen_us < ? THEN ? ELSE last_seen_us END,
				version = CASE WHEN ? = '' THEN version ELSE ? END
			WHERE id = ?`)
		if err != nil {
			return fmt.Errorf("prepare touch agent: %w", err)
		}
		defer stmt.Close()
		for _, a := range seen {
			at := micros(a.At)
			if _, err := stmt.ExecContext(ctx, at, at, a.Version, a.Version, a.Agent); err != nil {
				return fmt.Errorf("touch agent %s: %w", a.Agent, err)
			}
		}
		return nil
	})
}

// SetFacts replaces the facts of an agent with f. The agent must exist
// (else ENOTFOUND) and the facts must be JSON (else EINVALID).
func (s *Store) SetFacts(ctx context.Context, f aramaki.Facts) error {
	if !json.Valid(f.Facts) {
		return aramaki.Errorf(aramaki.EINVALID, "the facts of agent %s are not valid JSON", f.Agent)
	}
	return s.write(ctx, func(tx *txn) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM agents WHERE id = ?`, f.Agent).Scan(&n); err != nil {
			return fmt.Errorf("query agent: %w", err)
		} else if n == 0 {
			return aramaki.Errorf(aramaki.ENOTFOUND, "agent %s not found", f.Agent)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO facts (agent_id, collected_us, received_us, facts) VALUES (?, ?, ?, ?)
			ON CONFLICT (agent_id) DO UPDATE
			SET collected_us = excluded.collected_us, received_us = excluded.received_us, facts = excluded.facts`,
			f.Agent, micros(f.Collected), micros(f.Received), string(f.Facts),
		); err != nil {
			return fmt.Errorf("upsert facts: %w", err)
		}
		return nil
	})
}

// Facts returns the latest facts of an agent; ENOTFOUND when it sent none.
func (s *Store) Facts(ctx context.Context, agentID string) (aramaki.Facts, error) {
	f := aramaki.Facts{Agent: agentID}
	err := s.read(ctx, func(tx *txn) error {
		var (
			collectedUS, receivedUS int64
			facts                   string
		)
		err := tx.QueryRow(ctx, `SELECT collected_us, received_us, facts FROM facts WHERE agent_id = ?`, agentID).
			Scan(&collectedUS, &receivedUS, &facts)
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "agent %s sent no facts", agentID)
		} else if err != nil {
			return fmt.Errorf("query facts: %w", err)
		}
		f.Collected = fromMicros(collectedUS)
		f.Received = fromMicros(receivedUS)
		f.Facts = json.RawMessage(facts)
		return nil
	})
	if err != nil {
		return aramaki.Facts{}, err
	}
	return f, nil
}

// systemsJSON encodes a list of system ids, [] when empty.
func systemsJSON(systems []string) (string, error) {
	if systems == nil {
		systems = []string{}
	}
	b, err := json.Marshal(systems)
	if err != nil {
		return "", fmt.Errorf("marshal systems: %w", err)
	}
	return string(b), nil
}
