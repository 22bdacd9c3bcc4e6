-- The grants each peer holds in force for this server, as the peer last
-- told them: replaced whole by each of its grant messages.
CREATE TABLE peer_grants_received (
	peer     TEXT NOT NULL,
	grant_id TEXT NOT NULL,
	systems  TEXT NOT NULL, -- JSON array of the systems as used here (storage@hoster)
	kinds    TEXT NOT NULL, -- JSON array
	actions  TEXT NOT NULL, -- JSON array
	until_us BIGINT NOT NULL,
	PRIMARY KEY (peer, grant_id)
);

-- What this server last told each peer of the grants it holds for it: a
-- digest of the message, so that an unchanged list is not told again.
CREATE TABLE peer_grants_told (
	peer   TEXT PRIMARY KEY,
	digest TEXT NOT NULL
);
