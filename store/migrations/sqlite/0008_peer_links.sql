-- Where the exchange with each peer stands: the last of this server's
-- events considered for its outbox (events.seq), the number of the next
-- outbox message, the last the peer acknowledged, the last of the peer's
-- this server stored.
CREATE TABLE peer_links (
	peer         TEXT PRIMARY KEY,
	event_seq    INTEGER NOT NULL,
	next_seq     INTEGER NOT NULL DEFAULT 1,
	acked_seq    INTEGER NOT NULL DEFAULT 0,
	received_seq INTEGER NOT NULL DEFAULT 0
);

-- Messages for each peer until it acknowledges them; body is JSON.
CREATE TABLE peer_outbox (
	peer       TEXT NOT NULL,
	seq        INTEGER NOT NULL,
	kind       TEXT NOT NULL,
	body       TEXT NOT NULL,
	created_us INTEGER NOT NULL,
	PRIMARY KEY (peer, seq)
);
