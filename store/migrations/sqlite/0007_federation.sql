-- This server's identity among its peers: one row, made on first start.
CREATE TABLE server_identity (
	id         TEXT PRIMARY KEY,
	created_us INTEGER NOT NULL
);

-- Its Ed25519 keys, the current one without retired_us. The private key
-- is here: back the database up as carefully as the TLS keys.
CREATE TABLE server_keys (
	id          TEXT PRIMARY KEY,
	public_key  BLOB NOT NULL,
	private_key BLOB NOT NULL,
	created_us  INTEGER NOT NULL,
	retired_us  INTEGER
);

-- The servers this one federates with, by the name it gives them.
CREATE TABLE peers (
	name       TEXT PRIMARY KEY,
	server_id  TEXT NOT NULL UNIQUE,
	url        TEXT NOT NULL DEFAULT '',
	ca_sha256  TEXT NOT NULL DEFAULT '',
	added_us   INTEGER NOT NULL,
	added_by   TEXT NOT NULL,
	removed_us INTEGER
);

-- The keys each peer told this server, old ones kept.
CREATE TABLE peer_keys (
	server_id  TEXT NOT NULL,
	key_id     TEXT NOT NULL,
	public_key BLOB NOT NULL,
	added_us   INTEGER NOT NULL,
	PRIMARY KEY (server_id, key_id)
);

-- Invitations to become a peer: single use, only the secret's hash kept.
CREATE TABLE peer_invitations (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	secret_hash BLOB NOT NULL,
	created_us  INTEGER NOT NULL,
	created_by  TEXT NOT NULL,
	expires_us  INTEGER NOT NULL,
	used_us     INTEGER
);

-- What each peer may use of this server's systems, until when. systems,
-- kinds and actions are JSON arrays of text.
CREATE TABLE grants (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	peer       TEXT NOT NULL,
	systems    TEXT NOT NULL,
	kinds      TEXT NOT NULL,
	actions    TEXT NOT NULL,
	until_us   INTEGER NOT NULL,
	created_us INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	revoked_us INTEGER,
	revoked_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX grants_peer ON grants (peer, id);
