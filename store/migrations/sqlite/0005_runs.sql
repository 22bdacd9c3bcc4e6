-- The actions each agent's host allows, as it last said: the JSON array of
-- aramaki.ActionSpec.
ALTER TABLE agents ADD COLUMN actions TEXT NOT NULL DEFAULT '[]';

-- Runs of actions: who asked and why, the values, the state, and when.
-- params is the JSON object of parameter values.
CREATE TABLE runs (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	system_id    TEXT NOT NULL,
	action       TEXT NOT NULL,
	params       TEXT NOT NULL,
	reason       TEXT NOT NULL,
	requested_by TEXT NOT NULL,
	requested_us INTEGER NOT NULL,
	approval     INTEGER NOT NULL,
	approved_by  TEXT NOT NULL DEFAULT '',
	approved_us  INTEGER,
	break_glass  INTEGER NOT NULL DEFAULT 0,
	state        TEXT NOT NULL,
	started_us   INTEGER,
	ended_us     INTEGER,
	cancelled_by TEXT NOT NULL DEFAULT '',
	error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_action ON runs (system_id, action, id);
CREATE INDEX runs_open ON runs (state) WHERE state IN ('requested', 'awaiting_approval', 'running');

-- A run on each of its hosts. output holds at most aramaki.MaxRunOutput
-- bytes; output_seq is the last output frame applied, so that a frame sent
-- again after a reconnect is not applied twice.
CREATE TABLE run_targets (
	run_id     INTEGER NOT NULL REFERENCES runs (id),
	agent_id   TEXT NOT NULL,
	name       TEXT NOT NULL,
	state      TEXT NOT NULL,
	started_us INTEGER,
	ended_us   INTEGER,
	exit_code  INTEGER,
	error      TEXT NOT NULL DEFAULT '',
	output     TEXT NOT NULL DEFAULT '',
	output_seq INTEGER NOT NULL DEFAULT 0,
	dropped    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (run_id, agent_id)
);
CREATE INDEX run_targets_waiting ON run_targets (agent_id) WHERE state = 'requested';
