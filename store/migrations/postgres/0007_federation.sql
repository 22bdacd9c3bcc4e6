-- This server's identity among its peers: one row, made on first start.
CREATE TABLE server_identity (
	id         TEXT PRIMARY KEY,
	created_us BIGINT NOT NULL
);

-- Its Ed25519 keys, the current one without retired_us. The private key
-- is here: back the database up as carefully as the TLS keys.
CREATE TABLE server_keys (
	id          TEXT PRIMARY KEY,
	public_key  BYTEA NOT NULL,
	private_key BYTEA NOT NULL,
	created_us  BIGINT NOT NULL,
	retired_us  BIGINT
);

-- The servers this one federates with, by the name it gives them.
CREATE TABLE peers (
	name       TEXT PRIMARY KEY,
	server_id  TEXT NOT NULL UNIQUE,
	url        TEXT NOT NULL DEFAULT '',
	ca_sha256  TEXT NOT NULL DEFAULT '',
	added_us   BIGINT NOT NULL,
	added_by   TEXT NOT NULL,
	removed_us BIGINT
);

-- The keys each peer told this server, old ones kept.
CREATE TABLE peer_keys (
	server_id  TEXT NOT NULL,
	key_id     TEXT NOT NULL,
	public_key BYTEA NOT NULL,
	added_us   BIGINT NOT NULL,
	PRIMARY KEY (server_id, key_id)
);

-- Invitations to become a peer: single use, only the secret's hash kept.
CREATE TABLE peer_invitations (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	secret_hash BYTEA NOT NULL,
	created_us  BIGINT NOT NULL,
	created_by  TEXT NOT NULL,
	expires_us  BIGINT NOT NULL,
	used_us     BIGINT
);

-- What each peer may use of this server's systems, until when. systems,
-- kinds and actions are JSON arrays of text.
CREATE TABLE grants (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	peer       TEXT NOT NULL,
	systems    TEXT NOT NULL,
	kinds      TEXT NOT NULL,
	actions    TEXT NOT NULL,
	until_us   BIGINT NOT NULL,
	created_us BIGINT NOT NULL,
	created_by TEXT NOT NULL,
	revoked_us BIGINT,
	revoked_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX grants_peer ON grants (peer, id);
