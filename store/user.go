package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/aramaki/aramaki"
)

// Bootstrap creates the first user as a global admin with an API token and
// appends the audit event, all in one transaction. It fails with ECONFLICT
// when any user exists.
func (s *Store) Bootstrap(ctx context.Context, name, passwordHash string, tok aramaki.Token, secretHash []byte, audit aramaki.Event) (aramaki.User, error) {
	var u aramaki.User
	err := s.write(ctx, func(tx *txn) error {
		if s.dialect == Postgres {
			// Two replicas bootstrapping at once must not both find no
			// users; SQLite's immediate transactions serialise already.
			if _, err := tx.Exec(ctx, `LOCK TABLE users IN EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("lock users: %w", err)
			}
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
			return fmt.Errorf("count users: %w", err)
		} else if n > 0 {
			return aramaki.Errorf(aramaki.ECONFLICT, "the server is bootstrapped already: users exist")
		}
		var err error
		if u, err = createUser(ctx, tx, name, passwordHash, audit.Time); err != nil {
			return err
		}
		if err := grantRole(ctx, tx, aramaki.RoleBinding{
			User: u.Name, System: aramaki.GlobalScope, Role: aramaki.RoleAdmin, CreatedBy: "server", Created: u.Created,
		}); err != nil {
			return err
		}
		tok.UserID = u.ID
		if err := createToken(ctx, tx, tok, secretHash); err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, audit)
		return err
	})
	if err != nil {
		return aramaki.User{}, err
	}
	return u, nil
}

// CreateUser creates a user and appends the audit event. The user's
// creation time is the time of the event, so that both agree. A taken name
// is ECONFLICT.
func (s *Store) CreateUser(ctx context.Context, name, passwordHash string, audit aramaki.Event) (aramaki.User, error) {
	var u aramaki.User
	err := s.write(ctx, func(tx *txn) error {
		var err error
		if u, err = createUser(ctx, tx, name, passwordHash, audit.Time); err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, audit)
		return err
	})
	if err != nil {
		return aramaki.User{}, err
	}
	return u, nil
}

func createUser(ctx context.Context, tx *txn, name, passwordHash string, created time.Time) (aramaki.User, error) {
	if err := aramaki.ValidateUserName(name); err != nil {
		return aramaki.User{}, err
	}
	if created.IsZero() {
		created = time.Now()
	}
	u := aramaki.User{Name: name, Created: fromMicros(micros(created))}
	err := tx.QueryRow(ctx, `
		INSERT INTO users (name, password_hash, created_us, disabled) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING
		RETURNING id`,
		name, passwordHash, micros(u.Created), false,
	).Scan(&u.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return aramaki.User{}, aramaki.Errorf(aramaki.ECONFLICT, "user %s exists already", name)
	} else if err != nil {
		return aramaki.User{}, fmt.Errorf("insert user: %w", err)
	}
	return u, nil
}

const userColumns = `id, name, created_us, disabled, email`

func scanUser(row rowScanner, extra ...any) (aramaki.User, error) {
	var (
		u         aramaki.User
		createdUS int64
	)
	if err := row.Scan(append([]any{&u.ID, &u.Name, &createdUS, &u.Disabled, &u.Email}, extra...)...); err != nil {
		return aramaki.User{}, err
	}
	u.Created = fromMicros(createdUS)
	return u, nil
}

// UserByName returns the user and the hash of the password.
func (s *Store) UserByName(ctx context.Context, name string) (aramaki.User, string, error) {
	var (
		u    aramaki.User
		hash string
	)
	err := s.read(ctx, func(tx *txn) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE name = ?`, name), &hash)
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "user %s not found", name)
		} else if err != nil {
			return fmt.Errorf("query user: %w", err)
		}
		return nil
	})
	if err != nil {
		return aramaki.User{}, "", err
	}
	return u, hash, nil
}

// UserByID returns the user with the given id.
func (s *Store) UserByID(ctx context.Context, id int64) (aramaki.User, error) {
	var u aramaki.User
	err := s.read(ctx, func(tx *txn) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "user %d not found", id)
		} else if err != nil {
			return fmt.Errorf("query user: %w", err)
		}
		return nil
	})
	return u, err
}

// Users returns all users, ordered by name.
func (s *Store) Users(ctx context.Context) ([]aramaki.User, error) {
	return readAll(ctx, s, "users", func(r rowScanner) (aramaki.User, error) { return scanUser(r) },
		`SELECT `+userColumns+` FROM users ORDER BY name`)
}

// SetPassword replaces the password hash of a user and appends the audit
// event.
func (s *Store) SetPassword(ctx context.Context, userID int64, passwordHash string, audit aramaki.Event) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.Exec(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, passwordHash, userID)
		if err != nil {
			return fmt.Errorf("update password: %w", err)
		}
		if err := mustAffect(res, "user %d not found", userID); err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, audit)
		return err
	})
}

// SetUserDisabled disables or enables a user and appends the audit event.
// Disabling also deletes every API token of the user, so that nothing the
// user holds works any more. ENOTFOUND for unknown users.
func (s *Store) SetUserDisabled(ctx context.Context, name string, disabled bool, audit aramaki.Event) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.Exec(ctx, `UPDATE users SET disabled = ? WHERE name = ?`, disabled, name)
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		if err := mustAffect(res, "no user %s", name); err != nil {
			return err
		}
		if disabled {
			if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE user_id = (SELECT id FROM users WHERE name = ?)`, name); err != nil {
				return fmt.Errorf("delete tokens: %w", err)
			}
		}
		_, err = appendEvent(ctx, tx, audit)
		return err
	})
}

// SetUserEmail sets (or, empty, clears) a user's e-mail address and
// appends the audit event. ENOTFOUND for unknown users.
func (s *Store) SetUserEmail(ctx context.Context, name, email string, audit aramaki.Event) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.Exec(ctx, `UPDATE users SET email = ? WHERE name = ?`, email, name)
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		if err := mustAffect(res, "no user %s", name); err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, audit)
		return err
	})
}

// CreateToken stores a token with the hash of its secret and appends the
// audit event. The user must exist; a taken token id is ECONFLICT.
func (s *Store) CreateToken(ctx context.Context, t aramaki.Token, secretHash []byte, audit aramaki.Event) error {
	return s.write(ctx, func(tx *txn) error {
		if err := createToken(ctx, tx, t, secretHash); err != nil {
			return err
		}
		_, err := appendEvent(ctx, tx, audit)
		return err
	})
}

func createToken(ctx context.Context, tx *txn, t aramaki.Token, secretHash []byte) error {
	if t.ID == "" || len(secretHash) == 0 {
		return aramaki.Errorf(aramaki.EINVALID, "a token needs an id and a secret")
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE id = ?`, t.UserID).Scan(&n); err != nil {
		return fmt.Errorf("query user: %w", err)
	} else if n == 0 {
		return aramaki.Errorf(aramaki.ENOTFOUND, "user %d not found", t.UserID)
	}
	created := t.Created
	if created.IsZero() {
		created = time.Now()
	}
	var id string
	err := tx.QueryRow(ctx, `
		INSERT INTO tokens (id, user_id, name, secret_hash, created_us, expires_us, last_used_us)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING
		RETURNING id`,
		t.ID, t.UserID, t.Name, secretHash, micros(created), nullMicros(t.Expires), nullMicros(t.LastUsed),
	).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return aramaki.Errorf(aramaki.ECONFLICT, "token %s exists already", t.ID)
	} else if err != nil {
		return fmt.Errorf("insert token: %w", err)
	}
	return nil
}

const tokenColumns = `id, user_id, name, created_us, expires_us, last_used_us`

func scanToken(row rowScanner, extra ...any) (aramaki.Token, error) {
	var (
		t                 aramaki.Token
		createdUS         int64
		expires, lastUsed sql.NullInt64
	)
	if err := row.Scan(append([]any{&t.ID, &t.UserID, &t.Name, &createdUS, &expires, &lastUsed}, extra...)...); err != nil {
		return aramaki.Token{}, err
	}
	t.Created = fromMicros(createdUS)
	t.Expires = fromNullMicros(expires)
	t.LastUsed = fromNullMicros(lastUsed)
	return t, nil
}

// TokenByID returns the token and the hash of its secret.
func (s *Store) TokenByID(ctx context.Context, id string) (aramaki.Token, []byte, error) {
	var (
		t    aramaki.Token
		hash []byte
	)
	err := s.read(ctx, func(tx *txn) error {
		var err error
		t, err = scanToken(tx.QueryRow(ctx, `SELECT `+tokenColumns+`, secret_hash FROM tokens WHERE id = ?`, id), &hash)
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "token %s not found", id)
		} else if err != nil {
			return fmt.Errorf("query token: %w", err)
		}
		return nil
	})
	if err != nil {
		return aramaki.Token{}, nil, err
	}
	return t, hash, nil
}

// Tokens returns the tokens of a user, oldest first.
func (s *Store) Tokens(ctx context.Context, userID int64) ([]aramaki.Token, error) {
	return readAll(ctx, s, "tokens", func(r rowScanner) (aramaki.Token, error) { return scanToken(r) },
		`SELECT `+tokenColumns+` FROM tokens WHERE user_id = ? ORDER BY created_us, id`, userID)
}

// DeleteToken deletes a token of the user and appends the audit event. A
// token of another user is not found.
func (s *Store) DeleteToken(ctx context.Context, userID int64, id string, audit aramaki.Event) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.Exec(ctx, `DELETE FROM tokens WHERE id = ? AND user_id = ?`, id, userID)
		if err != nil {
			return fmt.Errorf("delete token: %w", err)
		}
		if err := mustAffect(res, "token %s not found", id); err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, audit)
		return err
	})
}

// GrantRole adds or replaces the role of b.User on b.System and appends the
// audit event.
func (s *Store) GrantRole(ctx context.Context, b aramaki.RoleBinding, audit aramaki.Event) error {
	if !b.Role.Valid() {
		return aramaki.Errorf(aramaki.EINVALID, "unknown role %q (use viewer, operator or admin)", b.Role)
	}
	if b.User == "" || b.System == "" {
		return aramaki.Errorf(aramaki.EINVALID, "a role binding needs a user and a system")
	}
	return s.write(ctx, func(tx *txn) error {
		if b.Created.IsZero() {
			b.Created = audit.Time
		}
		if err := grantRole(ctx, tx, b); err != nil {
			return err
		}
		_, err := appendEvent(ctx, tx, audit)
		return err
	})
}

func grantRole(ctx context.Context, tx *txn, b aramaki.RoleBinding) error {
	if _, err := tx.Exec(ctx, `
		INSERT INTO role_bindings (user_name, system_id, role, created_by, created_us) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_name, system_id) DO UPDATE
		SET role = excluded.role, created_by = excluded.created_by, created_us = excluded.created_us`,
		b.User, b.System, string(b.Role), b.CreatedBy, micros(b.Created),
	); err != nil {
		return fmt.Errorf("upsert role binding: %w", err)
	}
	return nil
}

// RevokeRole removes the role of user on system and appends the audit
// event. A binding that does not exist is not found.
func (s *Store) RevokeRole(ctx context.Context, user, system string, audit aramaki.Event) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.Exec(ctx, `DELETE FROM role_bindings WHERE user_name = ? AND system_id = ?`, user, system)
		if err != nil {
			return fmt.Errorf("delete role binding: %w", err)
		}
		if err := mustAffect(res, "user %s has no role on %s", user, system); err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, audit)
		return err
	})
}

// RoleBindings returns the API-granted roles of a user, or of everyone when
// user is empty, ordered by user and system.
func (s *Store) RoleBindings(ctx context.Context, user string) ([]aramaki.RoleBinding, error) {
	var bindings []aramaki.RoleBinding
	err := s.read(ctx, func(tx *txn) error {
		var err error
		bindings, err = roleBindings(ctx, tx, user)
		return err
	})
	return bindings, err
}

func roleBindings(ctx context.Context, tx *txn, user string) ([]aramaki.RoleBinding, error) {
	query := `SELECT user_name, system_id, role, created_by, created_us FROM role_bindings`
	var args []any
	if user != "" {
		query += ` WHERE user_name = ?`
		args = append(args, user)
	}
	rows, err := tx.Query(ctx, query+` ORDER BY user_name, system_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("query role bindings: %w", err)
	}
	defer rows.Close()
	var bindings []aramaki.RoleBinding
	for rows.Next() {
		var (
			b         aramaki.RoleBinding
			role      string
			createdUS int64
		)
		if err := rows.Scan(&b.User, &b.System, &role, &b.CreatedBy, &createdUS); err != nil {
			return nil, fmt.Errorf("scan role binding: %w", err)
		}
		b.Role = aramaki.Role(role)
		b.Created = fromMicros(createdUS)
		bindings = append(bindings, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read role bindings: %w", err)
	}
	return bindings, nil
}

// TokenPrincipal returns, in one read, what authenticating a request with
// a token needs: the token with the hash of its secret, its user and the
// user's role bindings. ENOTFOUND when there is no such token.
func (s *Store) TokenPrincipal(ctx context.Context, id string) (aramaki.Token, []byte, aramaki.User, []aramaki.RoleBinding, error) {
	var (
		t        aramaki.Token
		hash     []byte
		u        aramaki.User
		bindings []aramaki.RoleBinding
	)
	err := s.read(ctx, func(tx *txn) error {
		var err error
		t, err = scanToken(tx.QueryRow(ctx, `SELECT `+tokenColumns+`, secret_hash FROM tokens WHERE id = ?`, id), &hash)
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "token %s not found", id)
		} else if err != nil {
			return fmt.Errorf("query token: %w", err)
		}
		if u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, t.UserID)); err != nil {
			return fmt.Errorf("query token's user: %w", err)
		}
		bindings, err = roleBindings(ctx, tx, u.Name)
		return err
	})
	return t, hash, u, bindings, err
}

// mustAffect returns ENOTFOUND with the message when res touched no row.
func mustAffect(res sql.Result, format string, args ...any) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("rows affected: %w", err)
	} else if n == 0 {
		return aramaki.Errorf(aramaki.ENOTFOUND, format, args...)
	}
	return nil
}
