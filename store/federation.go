package store

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// ServerIdentity returns this server's identity, made with fresh when the
// database has none yet. Replicas starting together agree on one.
func (s *Store) ServerIdentity(ctx context.Context, fresh func() (string, aramaki.ServerKey, error)) (aramaki.ServerIdentity, error) {
	var id aramaki.ServerIdentity
	// Once made, it is read without the write lock: links and the join
	// ask for it often.
	err := s.read(ctx, func(tx *txn) error {
		err := tx.QueryRow(ctx, `SELECT id FROM server_identity`).Scan(&id.ID)
		if err != nil {
			return err
		}
		id.Keys, err = readServerKeys(ctx, tx)
		return err
	})
	if err == nil {
		return id, nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return id, fmt.Errorf("read server identity: %w", err)
	}
	err = s.write(ctx, func(tx *txn) error {
		// Replicas asking at once on PostgreSQL would each find none and
		// make one: they take turns (SQLite has one writer anyway).
		if s.dialect == Postgres {
			if _, err := tx.Exec(ctx, `LOCK TABLE server_identity IN EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("lock server identity: %w", err)
			}
		}
		err := tx.QueryRow(ctx, `SELECT id FROM server_identity`).Scan(&id.ID)
		if errors.Is(err, sql.ErrNoRows) {
			serverID, key, ferr := fresh()
			if ferr != nil {
				return ferr
			}
			if _, err := tx.Exec(ctx, `INSERT INTO server_identity (id, created_us) VALUES (?, ?)`, serverID, micros(key.Created)); err != nil {
				return fmt.Errorf("insert server identity: %w", err)
			}
			if err := insertServerKey(ctx, tx, key); err != nil {
				return err
			}
			id.ID = serverID
		} else if err != nil {
			return fmt.Errorf("read server identity: %w", err)
		}
		id.Keys, err = readServerKeys(ctx, tx)
		return err
	})
	return id, err
}

func insertServerKey(ctx context.Context, tx *txn, k aramaki.ServerKey) error {
	var endorsement any // NULL for a first key
	if len(k.Endorsement) > 0 {
		endorsement = k.Endorsement
	}
	if _, err := tx.Exec(ctx, `INSERT INTO server_keys (id, public_key, private_key, created_us, endorsement) VALUES (?, ?, ?, ?, ?)`,
		k.ID, []byte(k.Public), []byte(k.Private), micros(k.Created), endorsement); err != nil {
		return fmt.Errorf("insert server key: %w", err)
	}
	return nil
}

func readServerKeys(ctx context.Context, tx *txn) ([]aramaki.ServerKey, error) {
	rows, err := tx.Query(ctx, `SELECT id, public_key, private_key, created_us, retired_us, endorsement FROM server_keys
		ORDER BY retired_us IS NOT NULL, created_us DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("query server keys: %w", err)
	}
	defer rows.Close()
	var keys []aramaki.ServerKey
	for rows.Next() {
		var (
			k                     aramaki.ServerKey
			pub, prv, endorsement []byte
			created               int64
			retired               sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &pub, &prv, &created, &retired, &endorsement); err != nil {
			return nil, fmt.Errorf("scan server key: %w", err)
		}
		k.Public, k.Private, k.Created, k.Retired = ed25519.PublicKey(pub), ed25519.PrivateKey(prv), fromMicros(created), fromNullMicros(retired)
		if len(endorsement) > 0 {
			k.Endorsement = endorsement
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// RotateServerKey makes key the current one, retiring the one before (it
// still verifies). In the same transaction, with rotations one at a time,
// endorse is given the key that was current and returns its endorsement
// of the new key and the audit event.
func (s *Store) RotateServerKey(ctx context.Context, key aramaki.ServerKey, endorse func(prev aramaki.ServerKey) ([]byte, aramaki.Event, error)) ([]aramaki.ServerKey, error) {
	var keys []aramaki.ServerKey
	err := s.write(ctx, func(tx *txn) error {
		var server string
		if err := tx.QueryRow(ctx, `SELECT id FROM server_identity`+s.forUpdate()).Scan(&server); err != nil {
			return fmt.Errorf("read server identity: %w", err)
		}
		before, err := readServerKeys(ctx, tx)
		if err != nil {
			return err
		}
		if len(before) == 0 || before[0].Retired != nil {
			return fmt.Errorf("rotate server key: there is no current key")
		}
		endorsement, ev, err := endorse(before[0])
		if err != nil {
			return err
		}
		key.Endorsement = endorsement
		if _, err := tx.Exec(ctx, `UPDATE server_keys SET retired_us = ? WHERE retired_us IS NULL`, micros(key.Created)); err != nil {
			return fmt.Errorf("retire server key: %w", err)
		}
		if err := insertServerKey(ctx, tx, key); err != nil {
			return err
		}
		if _, err := appendEvent(ctx, tx, ev); err != nil {
			return err
		}
		keys, err = readServerKeys(ctx, tx)
		return err
	})
	return keys, err
}

// CreateInvitation stores an invitation with its audit event.
func (s *Store) CreateInvitation(ctx context.Context, inv aramaki.Invitation, ev aramaki.Event) error {
	return s.write(ctx, func(tx *txn) error {
		var taken int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM peers WHERE name = ? AND removed_us IS NULL`, inv.Name).Scan(&taken); err != nil {
			return fmt.Errorf("query peers: %w", err)
		}
		if taken > 0 {
			return aramaki.Errorf(aramaki.ECONFLICT, "there is a peer called %s already", inv.Name)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO peer_invitations (id, name, secret_hash, created_us, created_by, expires_us) VALUES (?, ?, ?, ?, ?, ?)`,
			inv.ID, inv.Name, inv.SecretHash, micros(inv.Created), inv.CreatedBy, micros(inv.Expires)); err != nil {
			return fmt.Errorf("insert invitation: %w", err)
		}
		_, err := appendEvent(ctx, tx, ev)
		return err
	})
}

// UseInvitation lets the server that holds an invitation become a peer:
// in one transaction the invitation is checked (it exists, is unused and
// unexpired at now, and check accepts its secret's hash), marked used,
// and the peer is stored under the invitation's name with the events
// events makes of it. The same refusal is given for every way the
// invitation can be wrong.
func (s *Store) UseInvitation(ctx context.Context, id string, now time.Time, check func(secretHash []byte) bool, peer aramaki.Peer,
	events func(aramaki.Peer) ([]aramaki.Event, error)) (aramaki.Peer, error) {
	refused := aramaki.Errorf(aramaki.EUNAUTHORIZED, "the invitation is unknown, used, expired or its secret is wrong")
	err := s.write(ctx, func(tx *txn) error {
		var (
			name    string
			hash    []byte
			expires int64
			used    sql.NullInt64
		)
		err := tx.QueryRow(ctx, `SELECT name, secret_hash, expires_us, used_us FROM peer_invitations WHERE id = ?`+s.forUpdate(), id).
			Scan(&name, &hash, &expires, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return refused
		} else if err != nil {
			return fmt.Errorf("read invitation: %w", err)
		}
		if used.Valid || !now.Before(fromMicros(expires)) || !check(hash) {
			return refused
		}
		if _, err := tx.Exec(ctx, `UPDATE peer_invitations SET used_us = ? WHERE id = ?`, micros(now), id); err != nil {
			return fmt.Errorf("use invitation: %w", err)
		}
		peer.Name = name
		if err := insertPeer(ctx, tx, peer); err != nil {
			return err
		}
		evs, err := events(peer)
		if err != nil {
			return err
		}
		return appendEvents(ctx, tx, evs)
	})
	return peer, err
}

func insertPeer(ctx context.Context, tx *txn, p aramaki.Peer) error {
	var taken string
	err := tx.QueryRow(ctx, `SELECT name FROM peers WHERE (name = ? OR server_id = ?) AND removed_us IS NULL`, p.Name, p.Server).Scan(&taken)
	if err == nil {
		return aramaki.Errorf(aramaki.ECONFLICT, "that server is a peer already, or the name %s is taken (by %s)", p.Name, taken)
	} else if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("query peers: %w", err)
	}
	// A peer removed before may come back: its old row makes way.
	if _, err := tx.Exec(ctx, `DELETE FROM peers WHERE (name = ? OR server_id = ?) AND removed_us IS NOT NULL`, p.Name, p.Server); err != nil {
		return fmt.Errorf("delete removed peer: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO peers (name, server_id, url, ca_sha256, added_us, added_by) VALUES (?, ?, ?, ?, ?, ?)`,
		p.Name, p.Server, p.URL, p.CASHA256, micros(p.Added), p.AddedBy); err != nil {
		return fmt.Errorf("insert peer: %w", err)
	}
	for _, k := range p.Keys {
		if err := insertPeerKey(ctx, tx, p.Server, k); err != nil {
			return err
		}
	}
	return startLink(ctx, tx, p.Name)
}

func insertPeerKey(ctx context.Context, tx *txn, server string, k aramaki.PeerKey) error {
	if _, err := tx.Exec(ctx, `INSERT INTO peer_keys (server_id, key_id, public_key, added_us) VALUES (?, ?, ?, ?)
		ON CONFLICT (server_id, key_id) DO NOTHING`, server, k.ID, []byte(k.Public), micros(k.Added)); err != nil {
		return fmt.Errorf("insert peer key: %w", err)
	}
	return nil
}

// AddPeer stores a peer this server joined, with its audit event.
func (s *Store) AddPeer(ctx context.Context, p aramaki.Peer, ev aramaki.Event) error {
	return s.write(ctx, func(tx *txn) error {
		if err := insertPeer(ctx, tx, p); err != nil {
			return err
		}
		_, err := appendEvent(ctx, tx, ev)
		return err
	})
}

// AddPeerKeys records keys a peer showed this server after it rotated
// (those not known yet), while it is a peer, with the audit event ev makes
// of the keys added; no event when every key was known. It returns the
// keys added.
func (s *Store) AddPeerKeys(ctx context.Context, server string, keys []aramaki.PeerKey, ev func(added []aramaki.PeerKey) (aramaki.Event, error)) ([]aramaki.PeerKey, error) {
	var added []aramaki.PeerKey
	err := s.write(ctx, func(tx *txn) error {
		added = nil
		var name string
		err := tx.QueryRow(ctx, `SELECT name FROM peers WHERE server_id = ? AND removed_us IS NULL`+s.forUpdate(), server).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "no peer is server %s", server)
		} else if err != nil {
			return fmt.Errorf("read peer: %w", err)
		}
		for _, k := range keys {
			res, err := tx.Exec(ctx, `INSERT INTO peer_keys (server_id, key_id, public_key, added_us) VALUES (?, ?, ?, ?)
				ON CONFLICT (server_id, key_id) DO NOTHING`, server, k.ID, []byte(k.Public), micros(k.Added))
			if err != nil {
				return fmt.Errorf("insert peer key: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("insert peer key: %w", err)
			} else if n > 0 {
				added = append(added, k)
			}
		}
		if len(added) == 0 {
			return nil
		}
		e, err := ev(added)
		if err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, e)
		return err
	})
	return added, err
}

const peerColumns = `name, server_id, url, ca_sha256, added_us, added_by, removed_us`

func (s *Store) readPeers(ctx context.Context, tx *txn, where string, args ...any) ([]aramaki.Peer, error) {
	rows, err := tx.Query(ctx, `SELECT `+peerColumns+` FROM peers`+where+` ORDER BY name`, args...)
	if err != nil {
		return nil, fmt.Errorf("query peers: %w", err)
	}
	var peers []aramaki.Peer
	for rows.Next() {
		var (
			p       aramaki.Peer
			added   int64
			removed sql.NullInt64
		)
		if err := rows.Scan(&p.Name, &p.Server, &p.URL, &p.CASHA256, &added, &p.AddedBy, &removed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan peer: %w", err)
		}
		p.Added, p.Removed, p.Keys = fromMicros(added), fromNullMicros(removed), []aramaki.PeerKey{}
		peers = append(peers, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read peers: %w", err)
	}
	for i := range peers {
		keys, err := tx.Query(ctx, `SELECT key_id, public_key, added_us FROM peer_keys WHERE server_id = ? ORDER BY added_us DESC, key_id`, peers[i].Server)
		if err != nil {
			return nil, fmt.Errorf("query peer keys: %w", err)
		}
		for keys.Next() {
			var (
				k     aramaki.PeerKey
				pub   []byte
				added int64
			)
			if err := keys.Scan(&k.ID, &pub, &added); err != nil {
				keys.Close()
				return nil, fmt.Errorf("scan peer key: %w", err)
			}
			k.Public, k.Added = ed25519.PublicKey(pub), fromMicros(added)
			peers[i].Keys = append(peers[i].Keys, k)
		}
		keys.Close()
		if err := keys.Err(); err != nil {
			return nil, fmt.Errorf("read peer keys: %w", err)
		}
	}
	return peers, nil
}

// Peers returns the peers, removed ones too, by name.
func (s *Store) Peers(ctx context.Context) ([]aramaki.Peer, error) {
	var peers []aramaki.Peer
	err := s.read(ctx, func(tx *txn) (err error) {
		peers, err = s.readPeers(ctx, tx, "")
		return err
	})
	return peers, err
}

// Peer returns the peer (not removed) with the name; ENOTFOUND if none.
func (s *Store) Peer(ctx context.Context, name string) (aramaki.Peer, error) {
	var peers []aramaki.Peer
	err := s.read(ctx, func(tx *txn) (err error) {
		peers, err = s.readPeers(ctx, tx, ` WHERE name = ? AND removed_us IS NULL`, name)
		return err
	})
	if err == nil && len(peers) == 0 {
		return aramaki.Peer{}, aramaki.Errorf(aramaki.ENOTFOUND, "no peer %s", name)
	}
	if err != nil {
		return aramaki.Peer{}, err
	}
	return peers[0], nil
}

// PeerByServer returns the peer (not removed) with the server id;
// ENOTFOUND if none.
func (s *Store) PeerByServer(ctx context.Context, server string) (aramaki.Peer, error) {
	var peers []aramaki.Peer
	err := s.read(ctx, func(tx *txn) (err error) {
		peers, err = s.readPeers(ctx, tx, ` WHERE server_id = ? AND removed_us IS NULL`, server)
		return err
	})
	if err == nil && len(peers) == 0 {
		return aramaki.Peer{}, aramaki.Errorf(aramaki.ENOTFOUND, "no peer is server %s", server)
	}
	if err != nil {
		return aramaki.Peer{}, err
	}
	return peers[0], nil
}

// RemovePeer ends a peering: the peer is marked removed, its grants are
// revoked, with the audit event.
func (s *Store) RemovePeer(ctx context.Context, name, by string, ev aramaki.Event) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.Exec(ctx, `UPDATE peers SET removed_us = ? WHERE name = ? AND removed_us IS NULL`, micros(ev.Time), name)
		if err != nil {
			return fmt.Errorf("remove peer: %w", err)
		}
		if err := mustAffect(res, "no peer %s", name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE grants SET revoked_us = ?, revoked_by = ? WHERE peer = ? AND revoked_us IS NULL`, micros(ev.Time), by, name); err != nil {
			return fmt.Errorf("revoke grants: %w", err)
		}
		// What it told of its systems is no longer known; what was
		// waiting for it is not sent.
		for _, q := range []string{`DELETE FROM remote_status WHERE system LIKE ?`, `DELETE FROM peer_outbox WHERE peer = ?`, `DELETE FROM peer_shared_status WHERE peer = ?`} {
			arg := name
			if strings.Contains(q, "LIKE") {
				arg = "%@" + name
			}
			if _, err := tx.Exec(ctx, q, arg); err != nil {
				return fmt.Errorf("forget peer %s: %w", name, err)
			}
		}
		_, err = appendEvent(ctx, tx, ev)
		return err
	})
}

const grantColumns = `id, peer, systems, kinds, actions, until_us, created_us, created_by, revoked_us, revoked_by`

func scanGrant(r rowScanner) (aramaki.Grant, error) {
	var (
		g                       aramaki.Grant
		id, until, created      int64
		systems, kinds, actions string
		revoked                 sql.NullInt64
	)
	if err := r.Scan(&id, &g.Peer, &systems, &kinds, &actions, &until, &created, &g.CreatedBy, &revoked, &g.RevokedBy); err != nil {
		return g, fmt.Errorf("scan grant: %w", err)
	}
	g.ID, g.Until, g.Created, g.Revoked = strconv.FormatInt(id, 10), fromMicros(until), fromMicros(created), fromNullMicros(revoked)
	for _, part := range []struct {
		doc  string
		into any
	}{{systems, &g.Systems}, {kinds, &g.Kinds}, {actions, &g.Actions}} {
		if err := json.Unmarshal([]byte(part.doc), part.into); err != nil {
			return g, fmt.Errorf("decode grant %d: %w", id, err)
		}
	}
	return g, nil
}

// CreateGrant stores a grant to a peer with its audit event.
func (s *Store) CreateGrant(ctx context.Context, g aramaki.Grant, ev func(aramaki.Grant) (aramaki.Event, error)) (aramaki.Grant, error) {
	systems, _ := json.Marshal(g.Systems)
	kinds, _ := json.Marshal(g.Kinds)
	actions, _ := json.Marshal(g.Actions)
	if g.Actions == nil {
		actions = []byte("[]")
	}
	err := s.write(ctx, func(tx *txn) error {
		var peers int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM peers WHERE name = ? AND removed_us IS NULL`, g.Peer).Scan(&peers); err != nil {
			return fmt.Errorf("query peer: %w", err)
		}
		if peers == 0 {
			return aramaki.Errorf(aramaki.ENOTFOUND, "no peer %s", g.Peer)
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO grants (peer, systems, kinds, actions, until_us, created_us, created_by)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, g.Peer, string(systems), string(kinds), string(actions),
			micros(g.Until), micros(g.Created), g.CreatedBy).Scan(&id); err != nil {
			return fmt.Errorf("insert grant: %w", err)
		}
		g.ID = strconv.FormatInt(id, 10)
		e, err := ev(g)
		if err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, e)
		return err
	})
	return g, err
}

// Grants returns the grants to a peer (all peers when empty), newest first.
func (s *Store) Grants(ctx context.Context, peer string) ([]aramaki.Grant, error) {
	var c conditions
	if peer != "" {
		c.add("peer = ?", peer)
	}
	return readAll(ctx, s, "grants", scanGrant, `SELECT `+grantColumns+` FROM grants`+c.sql()+` ORDER BY id DESC`, c.args...)
}

// Grant returns a grant; ENOTFOUND if there is none.
func (s *Store) Grant(ctx context.Context, id string) (aramaki.Grant, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return aramaki.Grant{}, aramaki.Errorf(aramaki.ENOTFOUND, "grant %s not found", id)
	}
	gs, err := readAll(ctx, s, "grant", scanGrant, `SELECT `+grantColumns+` FROM grants WHERE id = ?`, n)
	if err != nil {
		return aramaki.Grant{}, err
	}
	if len(gs) == 0 {
		return aramaki.Grant{}, aramaki.Errorf(aramaki.ENOTFOUND, "grant %s not found", id)
	}
	return gs[0], nil
}

// RevokeGrant ends a grant at the time of its audit event; ECONFLICT when
// it was revoked already.
func (s *Store) RevokeGrant(ctx context.Context, id, by string, ev aramaki.Event) error {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return aramaki.Errorf(aramaki.ENOTFOUND, "grant %s not found", id)
	}
	return s.write(ctx, func(tx *txn) error {
		var revoked sql.NullInt64
		err := tx.QueryRow(ctx, `SELECT revoked_us FROM grants WHERE id = ?`+s.forUpdate(), n).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "grant %s not found", id)
		} else if err != nil {
			return fmt.Errorf("read grant: %w", err)
		}
		if revoked.Valid {
			return aramaki.Errorf(aramaki.ECONFLICT, "grant %s is revoked already", id)
		}
		if _, err := tx.Exec(ctx, `UPDATE grants SET revoked_us = ?, revoked_by = ? WHERE id = ?`, micros(ev.Time), by, n); err != nil {
			return fmt.Errorf("revoke grant: %w", err)
		}
		_, err = appendEvent(ctx, tx, ev)
		return err
	})
}
