-- Where the exchange with each peer stands: the last of this server's
-- events considered for its outbox (events.seq), the number of the next
-- outbox message, the last the peer acknowledged, the last of the peer's
-- this server stored.
CREATE TABLE peer_links (
	peer         TEXT PRIMARY KEY,
	event_seq    BIGINT NOT NULL,
	next_seq     BIGINT NOT NULL DEFAULT 1,
	acked_seq    BIGINT NOT NULL DEFAULT 0,
	received_seq BIGINT NOT NULL DEFAULT 0
);

-- Messages for each peer until it acknowledges them; body is JSON.
CREATE TABLE peer_outbox (
	peer       TEXT NOT NULL,
	seq        BIGINT NOT NULL,
	kind       TEXT NOT NULL,
	body       TEXT NOT NULL,
	created_us BIGINT NOT NULL,
	PRIMARY KEY (peer, seq)
);

-- The status of each shared system as last sent to each peer: a status is
-- sent when it changes.
CREATE TABLE peer_shared_status (
	peer   TEXT NOT NULL,
	system TEXT NOT NULL,
	status TEXT NOT NULL,
	PRIMARY KEY (peer, system)
);

-- The status of each peer's system used here (storage@a), as the peer
-- last told it.
CREATE TABLE remote_status (
	system     TEXT PRIMARY KEY,
	status     TEXT NOT NULL,
	since_us   BIGINT NOT NULL,
	updated_us BIGINT NOT NULL
);
