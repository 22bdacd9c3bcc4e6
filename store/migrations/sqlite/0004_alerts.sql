-- How many results in a row a check has had in its current status: an
-- alert opens when a bad status has lasted the check's alert_after results.
ALTER TABLE check_states ADD COLUMN count INTEGER NOT NULL DEFAULT 1;

-- Checks whose alert may have to open, change or resolve: every status
-- change, revoked agent and forgotten check puts its (system, check) here,
-- in the transaction that made the change; the alert engine takes them out
-- once it has decided. A bad check not yet bad long enough stays. seq
-- keeps the order in which they came: the engine decides the first first,
-- so that the cause of an outage opens the group the rest join. gen counts
-- the changes since the row came: the engine takes out only the
-- generation it decided on, never a change that came meanwhile.
CREATE TABLE alert_pending (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	system_id  TEXT NOT NULL,
	check_name TEXT NOT NULL,
	gen        INTEGER NOT NULL DEFAULT 0,
	UNIQUE (system_id, check_name)
);

-- Alerts that start together on related systems form a group; people are
-- notified per group. notify_at_us is when the planner looks at the group
-- next (NULL: nothing to do until one of its alerts changes).
CREATE TABLE alert_groups (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	system_id    TEXT NOT NULL,
	opened_us    INTEGER NOT NULL,
	resolved_us  INTEGER,
	notify_at_us INTEGER
);
CREATE INDEX alert_groups_notify ON alert_groups (notify_at_us) WHERE notify_at_us IS NOT NULL;
CREATE INDEX alert_groups_active ON alert_groups (opened_us) WHERE resolved_us IS NULL;

-- One alert per (system, check) problem: at most one that is not resolved.
CREATE TABLE alerts (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	system_id   TEXT NOT NULL,
	check_name  TEXT NOT NULL,
	status      INTEGER NOT NULL,
	state       TEXT NOT NULL,
	output      TEXT NOT NULL,
	group_id    INTEGER NOT NULL REFERENCES alert_groups (id),
	opened_us   INTEGER NOT NULL,
	updated_us  INTEGER NOT NULL,
	resolved_us INTEGER,
	acked_us    INTEGER,
	acked_by    TEXT NOT NULL DEFAULT '',
	assignee    TEXT NOT NULL DEFAULT '',
	level       INTEGER NOT NULL DEFAULT 0,
	silenced    TEXT NOT NULL DEFAULT '',
	quiet_us    INTEGER
);
CREATE UNIQUE INDEX alerts_active ON alerts (system_id, check_name) WHERE state <> 'resolved';
CREATE INDEX alerts_group ON alerts (group_id);
CREATE INDEX alerts_opened ON alerts (opened_us);

-- What happened to an alert, person by person: acknowledgements,
-- assignments, comments, escalations (also on the timeline).
CREATE TABLE alert_notes (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	alert_id INTEGER NOT NULL REFERENCES alerts (id),
	at_us    INTEGER NOT NULL,
	actor    TEXT NOT NULL,
	kind     TEXT NOT NULL,
	text     TEXT NOT NULL
);
CREATE INDEX alert_notes_alert ON alert_notes (alert_id, at_us);

-- Which recipient was told what about which alert, so that nobody hears
-- the same thing twice: kind is opened or resolved; doc is the JSON of the
-- aramaki.Recipient, so that whoever heard of an alert hears it resolved
-- even when the routes changed since.
CREATE TABLE alert_told (
	alert_id  INTEGER NOT NULL,
	recipient TEXT NOT NULL,
	kind      TEXT NOT NULL,
	doc       TEXT NOT NULL,
	at_us     INTEGER NOT NULL,
	PRIMARY KEY (alert_id, recipient, kind)
) WITHOUT ROWID;

-- The outbox of notifications: written in the transaction that decided
-- them, sent by a worker, retried with backoff until sent or given up.
-- recipient and message are the JSON of aramaki.Recipient and
-- aramaki.Message. lease_us keeps two replicas from sending one at once.
CREATE TABLE notifications (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	group_id   INTEGER,
	recipient  TEXT NOT NULL,
	message    TEXT NOT NULL,
	state      TEXT NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0,
	next_us    INTEGER NOT NULL,
	lease_us   INTEGER,
	last_error TEXT NOT NULL DEFAULT '',
	created_us INTEGER NOT NULL,
	done_us    INTEGER
);
CREATE INDEX notifications_due ON notifications (next_us) WHERE state = 'pending';
CREATE INDEX notifications_created ON notifications (created_us);
CREATE INDEX notifications_group ON notifications (group_id);

-- Every delivery attempt: error is empty when it went through.
CREATE TABLE notification_attempts (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	notification_id INTEGER NOT NULL REFERENCES notifications (id),
	at_us           INTEGER NOT NULL,
	duration_us     INTEGER NOT NULL,
	error           TEXT NOT NULL
);
CREATE INDEX notification_attempts_notification ON notification_attempts (notification_id);

-- Silences and maintenance windows: they mute the alerts of a system and
-- everything under it from start to end, or until ended.
CREATE TABLE silences (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	system_id      TEXT NOT NULL,
	start_us       INTEGER NOT NULL,
	end_us         INTEGER NOT NULL,
	reason         TEXT NOT NULL,
	created_by     TEXT NOT NULL,
	created_us     INTEGER NOT NULL,
	maintenance    INTEGER NOT NULL,
	until_resolved INTEGER NOT NULL,
	ended_us       INTEGER,
	ended_by       TEXT NOT NULL DEFAULT '',
	reminded       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX silences_end ON silences (end_us);

-- The notifiers of the config commit in force: the JSON array of
-- aramaki.Notifier.
ALTER TABLE config_state ADD COLUMN notifiers TEXT NOT NULL DEFAULT '[]';

-- When each owner's review digest was last queued: recipient is
-- owner:ADDRESS.
CREATE TABLE digests (
	recipient TEXT PRIMARY KEY,
	sent_us   INTEGER NOT NULL
);

-- Where a user is told things meant for them (a silence they made is about
-- to end): an e-mail address, or empty.
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
