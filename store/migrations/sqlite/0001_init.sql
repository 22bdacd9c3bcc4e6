-- Systems of the config in force; doc is the JSON of aramaki.System.
CREATE TABLE systems (
	id  TEXT PRIMARY KEY,
	doc TEXT NOT NULL
);

-- What the server knows about its config repository: one row.
CREATE TABLE config_state (
	id               INTEGER PRIMARY KEY CHECK (id = 1),
	applied_hash     TEXT,
	applied_author   TEXT,
	applied_message  TEXT,
	applied_time_us  INTEGER,
	applied_at_us    INTEGER,
	rejected_hash    TEXT,
	rejected_author  TEXT,
	rejected_message TEXT,
	rejected_time_us INTEGER,
	problems         TEXT,
	checked_at_us    INTEGER
);
INSERT INTO config_state (id) VALUES (1);

-- The timeline. seq is the order of arrival; AUTOINCREMENT so that a seq is
-- never handed out twice, even should old events one day be pruned.
-- systems is the sorted JSON array of the system ids the event concerns.
CREATE TABLE events (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	id      TEXT NOT NULL UNIQUE,
	time_us INTEGER NOT NULL,
	kind    TEXT NOT NULL,
	actor   TEXT NOT NULL,
	systems TEXT NOT NULL,
	summary TEXT NOT NULL,
	data    TEXT
);
CREATE INDEX events_time ON events (time_us, seq);

-- One row per system an event concerns, clustered so that "newest events of
-- system X before a position" is one range scan. No foreign key to systems:
-- a system may leave the config, its events stay.
CREATE TABLE event_systems (
	system_id TEXT NOT NULL,
	time_us   INTEGER NOT NULL,
	seq       INTEGER NOT NULL REFERENCES events (seq),
	kind      TEXT NOT NULL,
	PRIMARY KEY (system_id, time_us, seq)
) WITHOUT ROWID;

CREATE TABLE users (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	name          TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	created_us    INTEGER NOT NULL,
	disabled      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE tokens (
	id           TEXT PRIMARY KEY,
	user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	secret_hash  BLOB NOT NULL,
	created_us   INTEGER NOT NULL,
	expires_us   INTEGER,
	last_used_us INTEGER
);
CREATE INDEX tokens_user ON tokens (user_id);

-- Roles granted through the API; system_id '*' is the global scope.
CREATE TABLE role_bindings (
	user_name  TEXT NOT NULL,
	system_id  TEXT NOT NULL,
	role       TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_us INTEGER NOT NULL,
	PRIMARY KEY (user_name, system_id)
);
