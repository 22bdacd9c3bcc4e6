-- Runs of workflows: who asked and why, the inputs, the workflow as it was
-- declared then (definition, JSON of aramaki.Workflow) and each step's
-- hosts and progress (steps, JSON of []aramaki.StepState).
CREATE TABLE workflow_runs (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	system_id    TEXT NOT NULL,
	workflow     TEXT NOT NULL,
	definition   TEXT NOT NULL,
	inputs       TEXT NOT NULL,
	reason       TEXT NOT NULL,
	requested_by TEXT NOT NULL,
	requested_us INTEGER NOT NULL,
	approval     INTEGER NOT NULL,
	approved_by  TEXT NOT NULL DEFAULT '',
	approved_us  INTEGER,
	state        TEXT NOT NULL,
	started_us   INTEGER,
	ended_us     INTEGER,
	cancelled_by TEXT NOT NULL DEFAULT '',
	error        TEXT NOT NULL DEFAULT '',
	step         INTEGER NOT NULL DEFAULT 0,
	steps        TEXT NOT NULL
);
CREATE INDEX workflow_runs_system ON workflow_runs (system_id, workflow, id);
CREATE INDEX workflow_runs_open ON workflow_runs (state) WHERE state IN ('awaiting_approval', 'running');

-- The runs a workflow run started: each host of each step is one.
ALTER TABLE runs ADD COLUMN workflow_run_id INTEGER REFERENCES workflow_runs (id);
ALTER TABLE runs ADD COLUMN workflow_step INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_workflow ON runs (workflow_run_id, workflow_step) WHERE workflow_run_id IS NOT NULL;

-- Open runs and workflow runs are looked up by state every second; the
-- partial indexes above serve only queries that repeat their condition.
CREATE INDEX runs_state ON runs (state, id);
CREATE INDEX workflow_runs_state ON workflow_runs (state, id);
-- The runs of one agent: on disconnect and reconnect.
CREATE INDEX run_targets_agent ON run_targets (agent_id, run_id);
-- Hosts named in a run request.
CREATE INDEX agents_name ON agents (name);
