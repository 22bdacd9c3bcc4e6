-- Tokens that let one agent enroll, once, before they expire. secret_hash
-- is the hash of the secret shown once at creation; systems the JSON array
-- of the system ids the agent will report for. used_us and agent_id are
-- set when an agent spends the token.
CREATE TABLE enrollment_tokens (
	id          TEXT PRIMARY KEY,
	secret_hash BLOB NOT NULL,
	systems     TEXT NOT NULL,
	created_by  TEXT NOT NULL,
	created_us  INTEGER NOT NULL,
	expires_us  INTEGER NOT NULL,
	used_us     INTEGER,
	agent_id    TEXT
);

-- Enrolled agents. last_seq is the highest result sequence stored from the
-- agent: results at or below it are duplicates.
CREATE TABLE agents (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	systems      TEXT NOT NULL,
	public_key   BLOB NOT NULL,
	version      TEXT NOT NULL,
	enrolled_us  INTEGER NOT NULL,
	last_seen_us INTEGER,
	revoked_us   INTEGER,
	last_seq     INTEGER NOT NULL DEFAULT 0
);

-- The latest facts of each agent; facts is the JSON the agent sent.
CREATE TABLE facts (
	agent_id     TEXT PRIMARY KEY REFERENCES agents (id),
	collected_us INTEGER NOT NULL,
	received_us  INTEGER NOT NULL,
	facts        TEXT NOT NULL
);

-- Every check of a system that ever had a result, numbered: results and
-- check states name their check by this small integer, which keeps the
-- structures the hot path writes to small. Never deleted, so that a
-- number, once read, stays right.
CREATE TABLE checks (
	id         INTEGER PRIMARY KEY,
	system_id  TEXT NOT NULL,
	check_name TEXT NOT NULL,
	UNIQUE (system_id, check_name)
);

-- Raw check results, pruned by age. No foreign keys and no more indexes
-- than the two queries need: this is the table every result lands in.
-- metrics is the JSON array of aramaki.Metric, NULL when there are none.
CREATE TABLE results (
	id          INTEGER PRIMARY KEY,
	check_id    INTEGER NOT NULL,
	agent_id    TEXT NOT NULL,
	seq         INTEGER NOT NULL,
	status      INTEGER NOT NULL,
	output      TEXT NOT NULL,
	metrics     TEXT,
	started_us  INTEGER NOT NULL,
	duration_ns INTEGER NOT NULL,
	received_us INTEGER NOT NULL
);
-- The newest results of a check: the rowid ends every index entry, so
-- ORDER BY started_us DESC, id DESC is a backward range scan.
CREATE INDEX results_check ON results (check_id, started_us);
CREATE INDEX results_received ON results (received_us);

-- The current status of each check on each system, as each agent reports
-- it. Every result updates its row: clustered by agent, so that the states
-- of one agent's batch are next to each other, read in one range scan and
-- written back to few pages.
CREATE TABLE check_states (
	agent_id       TEXT NOT NULL,
	check_id       INTEGER NOT NULL,
	status         INTEGER NOT NULL,
	output         TEXT NOT NULL,
	metrics        TEXT,
	since_us       INTEGER NOT NULL,
	last_result_us INTEGER NOT NULL,
	PRIMARY KEY (agent_id, check_id)
) WITHOUT ROWID;
-- The states of some checks, for CheckStates and DeleteCheckStates.
CREATE INDEX check_states_check ON check_states (check_id, agent_id);

-- The history of check statuses: one row per transition, and one for the
-- first result of a check (is_first, from_status = to_status).
-- AUTOINCREMENT keeps id in order of arrival even after pruning, so that
-- it orders changes at the same instant.
CREATE TABLE status_changes (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	system_id   TEXT NOT NULL,
	check_name  TEXT NOT NULL,
	agent_id    TEXT NOT NULL,
	from_status INTEGER NOT NULL,
	to_status   INTEGER NOT NULL,
	at_us       INTEGER NOT NULL,
	output      TEXT NOT NULL,
	is_first    INTEGER NOT NULL
);
CREATE INDEX status_changes_check ON status_changes (system_id, check_name, at_us);
