-- One row per check, agent and UTC day with status changes: the worst
-- status in force that day (as a status code), the status the day ended in,
-- and the number of changes (not counting the first result). The 30-day
-- strip of a check reads at most 31 of them, however often it flapped.
CREATE TABLE check_days (
	system_id   TEXT NOT NULL,
	check_name  TEXT NOT NULL,
	agent_id    TEXT NOT NULL,
	day         INTEGER NOT NULL, -- days since 1970-01-01 UTC
	worst       INTEGER NOT NULL,
	last        INTEGER NOT NULL,
	changes     INTEGER NOT NULL,
	PRIMARY KEY (system_id, check_name, agent_id, day)
);

-- From the history kept so far. Severity: OK 0, UNKNOWN 1, WARNING 2,
-- CRITICAL 3; a status before a change counts unless it ended at midnight.
INSERT INTO check_days (system_id, check_name, agent_id, day, worst, last, changes)
SELECT system_id, check_name, agent_id, day,
	CASE MAX(rank) WHEN 0 THEN 0 WHEN 1 THEN 3 WHEN 2 THEN 1 ELSE 2 END,
	MAX(last), SUM(CASE WHEN is_first THEN 0 ELSE 1 END)
FROM (
	SELECT system_id, check_name, agent_id, at_us / 86400000000 AS day, is_first,
		MAX(CASE to_status WHEN 0 THEN 0 WHEN 3 THEN 1 WHEN 1 THEN 2 ELSE 3 END,
			CASE WHEN is_first OR at_us % 86400000000 = 0 THEN 0
				ELSE CASE from_status WHEN 0 THEN 0 WHEN 3 THEN 1 WHEN 1 THEN 2 ELSE 3 END END) AS rank,
		FIRST_VALUE(to_status) OVER (PARTITION BY system_id, check_name, agent_id, at_us / 86400000000
			ORDER BY at_us DESC, id DESC) AS last
	FROM status_changes
) AS c
GROUP BY system_id, check_name, agent_id, day;
