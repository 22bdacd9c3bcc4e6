-- Tokens that let one agent enroll, once, before they expire. secret_hash
-- is the hash of the secret shown once at creation; systems the JSON array
-- of the system ids the agent will report for. used_us and agent_id are
-- set when an agent spends the token.
CREATE TABLE enrollment_tokens (
	id          TEXT PRIMARY KEY,
	secret_hash BYTEA NOT NULL,
	systems     TEXT NOT NULL,
	created_by  TEXT NOT NULL,
	created_us  BIGINT NOT NULL,
	expires_us  BIGINT NOT NULL,
	used_us     BIGINT,
	agent_id    TEXT
);

-- Enrolled agents. last_seq is the highest result sequence stored from the
-- agent: results at or below it are duplicates. RecordResults locks the
-- rows of the agents it stores results of, which serialises the results of
-- one agent across replicas.
CREATE TABLE agents (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	systems      TEXT NOT NULL,
	public_key   BYTEA NOT NULL,
	version      TEXT NOT NULL,
	enrolled_us  BIGINT NOT NULL,
	last_seen_us BIGINT,
	revoked_us   BIGINT,
	last_seq     BIGINT NOT NULL DEFAULT 0
);

-- The latest facts of each agent; facts is the JSON the agent sent.
CREATE TABLE facts (
	agent_id     TEXT PRIMARY KEY REFERENCES agents (id),
	collected_us BIGINT NOT NULL,
	received_us  BIGINT NOT NULL,
	facts        TEXT NOT NULL
);

-- Raw check results, pruned by age. No foreign keys and no more indexes
-- than the two queries need: this is the table every result lands in.
-- metrics is the JSON array of aramaki.Metric, NULL when there are none.
CREATE TABLE results (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	agent_id    TEXT NOT NULL,
	seq         BIGINT NOT NULL,
	system_id   TEXT NOT NULL,
	check_name  TEXT NOT NULL,
	status      SMALLINT NOT NULL,
	output      TEXT NOT NULL,
	metrics     TEXT,
	started_us  BIGINT NOT NULL,
	duration_ns BIGINT NOT NULL,
	received_us BIGINT NOT NULL
);
CREATE INDEX results_check ON results (system_id, check_name, started_us, id);
CREATE INDEX results_received ON results (received_us);

-- The current status of each check on each system, as each agent reports
-- it. Every result updates its row; the free space left on each page lets
-- those updates stay on the page (HOT), as no indexed column changes.
CREATE TABLE check_states (
	system_id      TEXT NOT NULL,
	check_name     TEXT NOT NULL,
	agent_id       TEXT NOT NULL,
	status         SMALLINT NOT NULL,
	output         TEXT NOT NULL,
	metrics        TEXT,
	since_us       BIGINT NOT NULL,
	last_result_us BIGINT NOT NULL,
	PRIMARY KEY (system_id, check_name, agent_id)
) WITH (fillfactor = 70);
-- RecordResults reads the states of the agents whose results it stores.
CREATE INDEX check_states_agent ON check_states (agent_id);

-- The history of check statuses: one row per transition, and one for the
-- first result of a check (is_first, from_status = to_status). id orders
-- changes at the same instant.
CREATE TABLE status_changes (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	system_id   TEXT NOT NULL,
	check_name  TEXT NOT NULL,
	agent_id    TEXT NOT NULL,
	from_status SMALLINT NOT NULL,
	to_status   SMALLINT NOT NULL,
	at_us       BIGINT NOT NULL,
	output      TEXT NOT NULL,
	is_first    BOOLEAN NOT NULL
);
CREATE INDEX status_changes_check ON status_changes (system_id, check_name, at_us);
