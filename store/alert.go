package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aramaki/aramaki"
)

// markAlertsPending queues the checks whose status changed for the alert
// engine, in the transaction that recorded the changes.
func markAlertsPending(ctx context.Context, tx *txn, changes []aramaki.StatusChange) error {
	seen := map[aramaki.CheckKey]bool{}
	var args []any
	for _, c := range changes {
		k := aramaki.CheckKey{System: c.System, Check: c.Check}
		if !seen[k] {
			seen[k] = true
			args = append(args, k.System, k.Check)
		}
	}
	if err := insertRows(ctx, tx, "alert_pending", pendingColumns, pendingAgain, args); err != nil {
		return fmt.Errorf("mark alerts pending: %w", err)
	}
	return nil
}

var pendingColumns = []string{"system_id text", "check_name text"}

// pendingAgain keeps a check's place in the queue and counts the change.
const pendingAgain = ` ON CONFLICT (system_id, check_name) DO UPDATE SET gen = alert_pending.gen + 1`

// alertColumns are read into an aramaki.Alert by scanAlert.
const alertColumns = `id, system_id, check_name, status, state, output, group_id, opened_us, updated_us,
	resolved_us, acked_us, acked_by, assignee, level, silenced, quiet_us`

func scanAlert(r rowScanner) (aramaki.Alert, error) {
	var (
		a               aramaki.Alert
		id, group       int64
		status          int
		state           string
		opened, updated int64
		resolved, acked sql.NullInt64
		quiet           sql.NullInt64
	)
	if err := r.Scan(&id, &a.System, &a.Check, &status, &state, &a.Output, &group, &opened, &updated,
		&resolved, &acked, &a.AcknowledgedBy, &a.Assignee, &a.Level, &a.Silenced, &quiet); err != nil {
		return aramaki.Alert{}, fmt.Errorf("scan alert: %w", err)
	}
	a.ID, a.Group = strconv.FormatInt(id, 10), strconv.FormatInt(group, 10)
	a.Status, a.State = aramaki.Status(status), aramaki.AlertState(state)
	a.Opened, a.Updated = fromMicros(opened), fromMicros(updated)
	a.Resolved, a.Acknowledged, a.QuietUntil = fromNullMicros(resolved), fromNullMicros(acked), fromNullMicros(quiet)
	return a, nil
}

// lockAlerts serialises the alert engine, planner and people changing
// alerts across replicas sharing a PostgreSQL database; SQLite has one
// writer anyway.
func lockAlerts(ctx context.Context, tx *txn) error {
	if tx.dialect != Postgres {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7423316)`); err != nil {
		return fmt.Errorf("lock alerts: %w", err)
	}
	return nil
}

// ProcessAlerts takes up to limit pending checks, hands them with their
// states, open alerts and the groups open for joining to decide, and
// stores what it decided — all in one transaction, so that a crash leaves
// the checks pending. It takes the pending checks after the sequence after,
// in order, and returns how many it took and the last one's sequence: a
// caller pages through the queue, also past checks that stay pending (bad,
// but not for enough results yet). New alerts have their group looked at by
// the planner after groupWait, changed and resolved ones at once.
func (s *Store) ProcessAlerts(ctx context.Context, after int64, limit int, now time.Time, groupWait time.Duration,
	decide func(aramaki.AlertInput) (aramaki.AlertOutput, error)) (int, int64, error) {
	var (
		n    int
		last = after
	)
	gens := map[aramaki.CheckKey]int64{}
	err := s.write(ctx, func(tx *txn) error {
		if err := lockAlerts(ctx, tx); err != nil {
			return err
		}
		in := aramaki.AlertInput{Now: now, States: map[aramaki.CheckKey][]aramaki.CheckState{}, Active: map[aramaki.CheckKey]aramaki.Alert{}}
		rows, err := tx.Query(ctx, `SELECT seq, system_id, check_name, gen FROM alert_pending WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
		if err != nil {
			return fmt.Errorf("query pending alerts: %w", err)
		}
		for rows.Next() {
			var (
				k   aramaki.CheckKey
				gen int64
			)
			if err := rows.Scan(&last, &k.System, &k.Check, &gen); err != nil {
				rows.Close()
				return fmt.Errorf("scan pending alert: %w", err)
			}
			in.Pending = append(in.Pending, k)
			gens[k] = gen
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read pending alerts: %w", err)
		}
		n = len(in.Pending)
		if n == 0 {
			return nil
		}
		wanted := map[aramaki.CheckKey]bool{}
		systems := map[string]bool{}
		var systemList []string
		for _, k := range in.Pending {
			wanted[k] = true
			if !systems[k.System] {
				systems[k.System] = true
				systemList = append(systemList, k.System)
			}
		}
		// States and alerts of the pending checks' systems, filtered here:
		// one query per table however many checks are pending.
		in1, arg := s.inStrings("c.system_id", systemList)
		rows, err = tx.Query(ctx, `
			SELECT c.system_id, c.check_name, s.agent_id, s.status, s.count, s.output, s.since_us
			FROM check_states s JOIN checks c ON c.id = s.check_id WHERE `+in1, arg)
		if err != nil {
			return fmt.Errorf("query check states: %w", err)
		}
		for rows.Next() {
			var (
				st      aramaki.CheckState
				status  int
				sinceUS int64
			)
			if err := rows.Scan(&st.System, &st.Check, &st.Agent, &status, &st.Count, &st.Output, &sinceUS); err != nil {
				rows.Close()
				return fmt.Errorf("scan check state: %w", err)
			}
			st.Status, st.Since = aramaki.Status(status), fromMicros(sinceUS)
			if k := (aramaki.CheckKey{System: st.System, Check: st.Check}); wanted[k] {
				in.States[k] = append(in.States[k], st)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read check states: %w", err)
		}
		// A peer's system: the status the peer shares is its one check.
		var remote []string
		for _, id := range systemList {
			if _, _, ok := aramaki.SplitRemote(id); ok && wanted[aramaki.CheckKey{System: id, Check: aramaki.RemoteStatusCheck}] {
				remote = append(remote, id)
			}
		}
		if len(remote) > 0 {
			in3, arg := s.inStrings("system", remote)
			rows, err = tx.Query(ctx, `SELECT system, status, since_us FROM remote_status WHERE `+in3, arg)
			if err != nil {
				return fmt.Errorf("query remote statuses: %w", err)
			}
			for rows.Next() {
				var (
					system, status string
					sinceUS        int64
				)
				if err := rows.Scan(&system, &status, &sinceUS); err != nil {
					rows.Close()
					return fmt.Errorf("scan remote status: %w", err)
				}
				st := aramaki.RemoteStatusState(system, status, fromMicros(sinceUS))
				k := aramaki.CheckKey{System: system, Check: aramaki.RemoteStatusCheck}
				in.States[k] = append(in.States[k], st)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("read remote statuses: %w", err)
			}
		}
		in2, arg := s.inStrings("system_id", systemList)
		rows, err = tx.Query(ctx, `SELECT `+alertColumns+` FROM alerts WHERE state <> 'resolved' AND `+in2, arg)
		if err != nil {
			return fmt.Errorf("query alerts: %w", err)
		}
		for rows.Next() {
			a, err := scanAlert(rows)
			if err != nil {
				rows.Close()
				return err
			}
			if k := (aramaki.CheckKey{System: a.System, Check: a.Check}); wanted[k] {
				in.Active[k] = a
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read alerts: %w", err)
		}
		if in.Groups, err = openGroups(ctx, tx, now.Add(-aramaki.GroupWindow)); err != nil {
			return err
		}

		out, err := decide(in)
		if err != nil {
			return err
		}

		newGroups := map[string]int64{}
		for _, g := range out.NewGroups {
			var id int64
			if err := tx.QueryRow(ctx, `INSERT INTO alert_groups (system_id, opened_us, notify_at_us) VALUES (?, ?, ?) RETURNING id`,
				g.System, micros(g.Opened), micros(g.Opened.Add(groupWait))).Scan(&id); err != nil {
				return fmt.Errorf("insert alert group: %w", err)
			}
			newGroups[g.ID] = id
		}
		for _, a := range out.Open {
			group, ok := newGroups[a.Group]
			if !ok {
				if group, err = strconv.ParseInt(a.Group, 10, 64); err != nil {
					return fmt.Errorf("alert of %s/%s names no group: %q", a.System, a.Check, a.Group)
				}
				// A group already notified hears of its new alert soon.
				if _, err := tx.Exec(ctx, `UPDATE alert_groups SET notify_at_us = ?
					WHERE id = ? AND (notify_at_us IS NULL OR notify_at_us > ?)`,
					micros(now.Add(groupWait)), group, micros(now.Add(groupWait))); err != nil {
					return fmt.Errorf("update alert group: %w", err)
				}
			}
			var id int64
			if err := tx.QueryRow(ctx, `INSERT INTO alerts (system_id, check_name, status, state, output, group_id, opened_us, updated_us, silenced)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
				a.System, a.Check, int(a.Status), string(a.State), a.Output, group, micros(a.Opened), micros(a.Updated), a.Silenced).Scan(&id); err != nil {
				return fmt.Errorf("insert alert: %w", err)
			}
			a.ID, a.Group = strconv.FormatInt(id, 10), strconv.FormatInt(group, 10)
			ev, err := aramaki.AlertOpenedEvent(a)
			if err != nil {
				return err
			}
			if _, err := appendEvent(ctx, tx, ev); err != nil {
				return err
			}
		}
		for _, a := range out.Update {
			if err := updateAlert(ctx, tx, a); err != nil {
				return err
			}
			if !a.Active() {
				if _, err := tx.Exec(ctx, `UPDATE alert_groups SET notify_at_us = ? WHERE id = ?`, micros(now), a.Group); err != nil {
					return fmt.Errorf("update alert group: %w", err)
				}
			}
		}
		for _, ev := range out.Events {
			if _, err := appendEvent(ctx, tx, ev); err != nil {
				return err
			}
		}
		for _, g := range out.Replan {
			if _, err := tx.Exec(ctx, `UPDATE alert_groups SET notify_at_us = ? WHERE id = ?`, micros(now), g); err != nil {
				return fmt.Errorf("update alert group: %w", err)
			}
		}
		for _, k := range out.Done {
			// A change that came after the states were read stays.
			if _, err := tx.Exec(ctx, `DELETE FROM alert_pending WHERE system_id = ? AND check_name = ? AND gen = ?`, k.System, k.Check, gens[k]); err != nil {
				return fmt.Errorf("delete pending alert: %w", err)
			}
		}
		return nil
	})
	return n, last, err
}

// openGroups returns the groups not resolved and opened since, with the
// systems of their alerts.
func openGroups(ctx context.Context, tx *txn, since time.Time) ([]aramaki.AlertGroup, error) {
	rows, err := tx.Query(ctx, `
		SELECT g.id, g.system_id, g.opened_us, a.system_id FROM alert_groups g JOIN alerts a ON a.group_id = g.id
		WHERE g.resolved_us IS NULL AND g.opened_us >= ? ORDER BY g.id`, micros(since))
	if err != nil {
		return nil, fmt.Errorf("query alert groups: %w", err)
	}
	defer rows.Close()
	var groups []aramaki.AlertGroup
	seen := map[string]bool{}
	for rows.Next() {
		var (
			id       int64
			g        aramaki.AlertGroup
			openedUS int64
			system   string
		)
		if err := rows.Scan(&id, &g.System, &openedUS, &system); err != nil {
			return nil, fmt.Errorf("scan alert group: %w", err)
		}
		g.ID, g.Opened = strconv.FormatInt(id, 10), fromMicros(openedUS)
		if n := len(groups); n == 0 || groups[n-1].ID != g.ID {
			groups = append(groups, g)
			clear(seen)
		}
		if !seen[system] {
			seen[system] = true
			groups[len(groups)-1].Systems = append(groups[len(groups)-1].Systems, system)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alert groups: %w", err)
	}
	return groups, nil
}

// updateAlert writes what can change of an alert.
func updateAlert(ctx context.Context, tx *txn, a aramaki.Alert) error {
	res, err := tx.Exec(ctx, `UPDATE alerts SET status = ?, state = ?, output = ?, updated_us = ?, resolved_us = ?,
		acked_us = ?, acked_by = ?, assignee = ?, level = ?, silenced = ? WHERE id = ?`,
		int(a.Status), string(a.State), a.Output, micros(a.Updated), nullMicros(a.Resolved),
		nullMicros(a.Acknowledged), a.AcknowledgedBy, a.Assignee, a.Level, a.Silenced, a.ID)
	if err != nil {
		return fmt.Errorf("update alert %s: %w", a.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("update alert %s: %d rows, %v", a.ID, n, err)
	}
	return nil
}

// Alerts returns alerts, newest first.
func (s *Store) Alerts(ctx context.Context, f aramaki.AlertFilter) ([]aramaki.Alert, error) {
	var c conditions
	if f.Systems != nil {
		c.in(s, "system_id", f.Systems)
	}
	if len(f.States) > 0 {
		c.in(s, "state", strs(f.States))
	}
	if !f.Before.IsZero() {
		c.add("opened_us < ?", micros(f.Before))
	}
	if f.Group != "" {
		c.add("group_id = ?", f.Group)
	}
	q := `SELECT ` + alertColumns + ` FROM alerts` + c.sql() + ` ORDER BY id DESC LIMIT ?`
	args := append(c.args, max(f.Limit, 1))
	var alerts []aramaki.Alert
	err := s.read(ctx, func(tx *txn) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("query alerts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			a, err := scanAlert(rows)
			if err != nil {
				return err
			}
			alerts = append(alerts, a)
		}
		return rows.Err()
	})
	return alerts, err
}

// Alert returns one alert with its notes, oldest first.
func (s *Store) Alert(ctx context.Context, id string) (aramaki.Alert, []aramaki.AlertNote, error) {
	var (
		a     aramaki.Alert
		notes []aramaki.AlertNote
	)
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return a, nil, aramaki.Errorf(aramaki.ENOTFOUND, "alert %s not found", id)
	}
	err = s.read(ctx, func(tx *txn) error {
		a, err = scanAlert(tx.QueryRow(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = ?`, n))
		if err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return aramaki.Errorf(aramaki.ENOTFOUND, "alert %s not found", id)
			}
			return err
		}
		notes, err = alertNotes(ctx, tx, n)
		return err
	})
	return a, notes, err
}

func alertNotes(ctx context.Context, tx *txn, id int64) ([]aramaki.AlertNote, error) {
	rows, err := tx.Query(ctx, `SELECT at_us, actor, kind, text FROM alert_notes WHERE alert_id = ? ORDER BY at_us, id`, id)
	if err != nil {
		return nil, fmt.Errorf("query alert notes: %w", err)
	}
	defer rows.Close()
	var notes []aramaki.AlertNote
	for rows.Next() {
		var (
			n    aramaki.AlertNote
			atUS int64
		)
		if err := rows.Scan(&atUS, &n.Actor, &n.Kind, &n.Text); err != nil {
			return nil, fmt.Errorf("scan alert note: %w", err)
		}
		n.At = fromMicros(atUS)
		notes = append(notes, n)
	}
	return notes, rows.Err()
}

// ChangeAlert applies a person's change to an alert in one transaction:
// change gets the alert as stored and returns it changed, with the note
// and the event to record. ENOTFOUND when there is no such alert.
func (s *Store) ChangeAlert(ctx context.Context, id string, change func(aramaki.Alert) (aramaki.Alert, aramaki.AlertNote, aramaki.Event, error)) (aramaki.Alert, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return aramaki.Alert{}, aramaki.Errorf(aramaki.ENOTFOUND, "alert %s not found", id)
	}
	var a aramaki.Alert
	err = s.write(ctx, func(tx *txn) error {
		if err := lockAlerts(ctx, tx); err != nil {
			return err
		}
		before, err := scanAlert(tx.QueryRow(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = ?`, n))
		if err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return aramaki.Errorf(aramaki.ENOTFOUND, "alert %s not found", id)
			}
			return err
		}
		after, note, ev, err := change(before)
		if err != nil {
			return err
		}
		a = after
		if err := updateAlert(ctx, tx, after); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO alert_notes (alert_id, at_us, actor, kind, text) VALUES (?, ?, ?, ?, ?)`,
			n, micros(note.At), note.Actor, note.Kind, note.Text); err != nil {
			return fmt.Errorf("insert alert note: %w", err)
		}
		if before.Active() && !after.Active() || after.Level > before.Level {
			// Resolved or escalated by hand: the planner tells those who
			// heard of it, or the next level.
			if _, err := tx.Exec(ctx, `UPDATE alert_groups SET notify_at_us = ? WHERE id = ?`, micros(note.At), after.Group); err != nil {
				return fmt.Errorf("update alert group: %w", err)
			}
		}
		_, err = appendEvent(ctx, tx, ev)
		return err
	})
	return a, err
}

// PlanNotifications takes up to limit alert groups due for notification,
// with their alerts and who was told what, hands them and the silences not
// over to plan and stores
// the notifications, what was told, escalations and when to look at each
// group next — in one transaction. It returns how many groups it took.
func (s *Store) PlanNotifications(ctx context.Context, now time.Time, limit int, plan func([]aramaki.PlanGroup, []aramaki.Silence) (aramaki.PlanOutput, error)) (int, error) {
	var n int
	err := s.write(ctx, func(tx *txn) error {
		if err := lockAlerts(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, system_id, opened_us FROM alert_groups
			WHERE notify_at_us IS NOT NULL AND notify_at_us <= ? ORDER BY notify_at_us LIMIT ?`, micros(now), limit)
		if err != nil {
			return fmt.Errorf("query due alert groups: %w", err)
		}
		var groups []aramaki.PlanGroup
		byID := map[string]*aramaki.PlanGroup{}
		for rows.Next() {
			var (
				id       int64
				g        aramaki.AlertGroup
				openedUS int64
			)
			if err := rows.Scan(&id, &g.System, &openedUS); err != nil {
				rows.Close()
				return fmt.Errorf("scan alert group: %w", err)
			}
			g.ID, g.Opened = strconv.FormatInt(id, 10), fromMicros(openedUS)
			groups = append(groups, aramaki.PlanGroup{Group: g, Told: map[aramaki.Told]bool{}})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read alert groups: %w", err)
		}
		n = len(groups)
		if n == 0 {
			return nil
		}
		var ids []string
		for i := range groups {
			byID[groups[i].Group.ID] = &groups[i]
			ids = append(ids, groups[i].Group.ID)
		}
		// Group by group: each read is a range of an index.
		for _, id := range ids {
			pg := byID[id]
			rows, err := tx.Query(ctx, `SELECT `+alertColumns+` FROM alerts WHERE group_id = ? ORDER BY id`, id)
			if err != nil {
				return fmt.Errorf("query alerts of group %s: %w", id, err)
			}
			for rows.Next() {
				a, err := scanAlert(rows)
				if err != nil {
					rows.Close()
					return err
				}
				pg.Alerts = append(pg.Alerts, a)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("read alerts of group %s: %w", id, err)
			}
			pg.Recipients = map[string]aramaki.Recipient{}
			rows, err = tx.Query(ctx, `SELECT t.alert_id, t.recipient, t.kind, t.doc FROM alert_told t
				JOIN alerts a ON a.id = t.alert_id WHERE a.group_id = ?`, id)
			if err != nil {
				return fmt.Errorf("query told: %w", err)
			}
			for rows.Next() {
				var (
					alert int64
					t     aramaki.Told
					doc   string
				)
				if err := rows.Scan(&alert, &t.Recipient, &t.Kind, &doc); err != nil {
					rows.Close()
					return fmt.Errorf("scan told: %w", err)
				}
				t.Alert = strconv.FormatInt(alert, 10)
				pg.Told[t] = true
				if _, ok := pg.Recipients[t.Recipient]; !ok {
					var rc aramaki.Recipient
					if err := json.Unmarshal([]byte(doc), &rc); err != nil {
						rows.Close()
						return fmt.Errorf("decode recipient told of alert %d: %w", alert, err)
					}
					pg.Recipients[t.Recipient] = rc
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("read told: %w", err)
			}
		}

		// The silences as they are now, under the lock people who end one
		// take too: a silence ended meanwhile is not planned around.
		silences, err := readSilences(ctx, tx, now)
		if err != nil {
			return err
		}
		out, err := plan(groups, silences)
		if err != nil {
			return err
		}

		if err := insertNotifications(ctx, tx, out.Notifications); err != nil {
			return err
		}
		var told []any
		docs := map[string]string{}
		for _, t := range out.Told {
			doc, ok := docs[t.Recipient]
			if !ok {
				raw, err := json.Marshal(out.To[t.Recipient])
				if err != nil {
					return fmt.Errorf("marshal recipient: %w", err)
				}
				doc = string(raw)
				docs[t.Recipient] = doc
			}
			told = append(told, t.Alert, t.Recipient, t.Kind, doc, micros(now))
		}
		if err := insertRows(ctx, tx, "alert_told", toldColumns, ` ON CONFLICT DO NOTHING`, told); err != nil {
			return fmt.Errorf("insert told: %w", err)
		}
		for _, a := range out.Silenced {
			if _, err := tx.Exec(ctx, `UPDATE alerts SET silenced = ?, quiet_us = ? WHERE id = ?`, a.Silenced, nullMicros(a.QuietUntil), a.ID); err != nil {
				return fmt.Errorf("mark alert %s silenced: %w", a.ID, err)
			}
		}
		for _, a := range out.Escalated {
			if _, err := tx.Exec(ctx, `UPDATE alerts SET level = ?, updated_us = ? WHERE id = ? AND level < ?`, a.Level, micros(a.Updated), a.ID, a.Level); err != nil {
				return fmt.Errorf("escalate alert %s: %w", a.ID, err)
			}
		}
		for _, ev := range out.Events {
			if _, err := appendEvent(ctx, tx, ev); err != nil {
				return err
			}
		}
		resolved := map[string]bool{}
		for _, id := range out.Resolved {
			resolved[id] = true
		}
		for _, id := range ids {
			var next sql.NullInt64
			if t, ok := out.Next[id]; ok {
				next = sql.NullInt64{Int64: micros(t), Valid: true}
			}
			var done sql.NullInt64
			if resolved[id] {
				done = sql.NullInt64{Int64: micros(now), Valid: true}
			}
			if _, err := tx.Exec(ctx, `UPDATE alert_groups SET notify_at_us = ?, resolved_us = COALESCE(?, resolved_us) WHERE id = ?`, next, done, id); err != nil {
				return fmt.Errorf("update alert group %s: %w", id, err)
			}
		}
		return nil
	})
	return n, err
}

var toldColumns = []string{"alert_id bigint", "recipient text", "kind text", "doc text", "at_us bigint"}

// insertNotifications puts notifications in the outbox, many rows to a
// statement.
func insertNotifications(ctx context.Context, tx *txn, nts []aramaki.Notification) error {
	args := make([]any, 0, len(nts)*len(outboxColumns))
	for _, nt := range nts {
		recipient, err := json.Marshal(nt.Recipient)
		if err != nil {
			return fmt.Errorf("marshal recipient: %w", err)
		}
		message, err := json.Marshal(nt.Message)
		if err != nil {
			return fmt.Errorf("marshal message: %w", err)
		}
		var group sql.NullInt64
		if nt.Group != "" {
			id, err := strconv.ParseInt(nt.Group, 10, 64)
			if err != nil {
				return fmt.Errorf("notification names no group: %q", nt.Group)
			}
			group = sql.NullInt64{Int64: id, Valid: true}
		}
		args = append(args, group, string(recipient), string(message), string(aramaki.NotificationPending), micros(nt.Next), micros(nt.Created))
	}
	if err := insertRows(ctx, tx, "notifications", outboxColumns, ``, args); err != nil {
		return fmt.Errorf("insert notifications: %w", err)
	}
	return nil
}

var outboxColumns = []string{"group_id bigint", "recipient text", "message text", "state text", "next_us bigint", "created_us bigint"}

const notificationColumns = `id, group_id, recipient, message, state, attempts, next_us, last_error, created_us, done_us`

func scanNotification(r rowScanner) (aramaki.Notification, error) {
	var (
		nt                 aramaki.Notification
		id                 int64
		group              sql.NullInt64
		recipient, message string
		state              string
		nextUS, createdUS  int64
		done               sql.NullInt64
	)
	if err := r.Scan(&id, &group, &recipient, &message, &state, &nt.Attempts, &nextUS, &nt.LastError, &createdUS, &done); err != nil {
		return nt, fmt.Errorf("scan notification: %w", err)
	}
	nt.ID = strconv.FormatInt(id, 10)
	if group.Valid {
		nt.Group = strconv.FormatInt(group.Int64, 10)
	}
	if err := json.Unmarshal([]byte(recipient), &nt.Recipient); err != nil {
		return nt, fmt.Errorf("decode recipient of notification %d: %w", id, err)
	}
	if err := json.Unmarshal([]byte(message), &nt.Message); err != nil {
		return nt, fmt.Errorf("decode message of notification %d: %w", id, err)
	}
	nt.State, nt.Next, nt.Created, nt.Done = aramaki.NotificationState(state), fromMicros(nextUS), fromMicros(createdUS), fromNullMicros(done)
	return nt, nil
}

// ClaimNotifications leases up to limit pending notifications that are
// due, so that no other replica sends them until the lease ends.
func (s *Store) ClaimNotifications(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]aramaki.Notification, error) {
	var out []aramaki.Notification
	err := s.write(ctx, func(tx *txn) error {
		rows, err := tx.Query(ctx, `SELECT `+notificationColumns+` FROM notifications
			WHERE state = 'pending' AND next_us <= ? AND (lease_us IS NULL OR lease_us <= ?)
			ORDER BY next_us LIMIT ?`+s.forUpdate(), micros(now), micros(now), limit)
		if err != nil {
			return fmt.Errorf("query due notifications: %w", err)
		}
		for rows.Next() {
			nt, err := scanNotification(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, nt)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read notifications: %w", err)
		}
		for i, nt := range out {
			if _, err := tx.Exec(ctx, `UPDATE notifications SET lease_us = ? WHERE id = ?`, micros(now.Add(lease)), nt.ID); err != nil {
				return fmt.Errorf("lease notification: %w", err)
			}
			out[i].Lease = now.Add(lease)
		}
		return nil
	})
	return out, err
}

// FinishAttempt records a delivery attempt of a notification: sent, to be
// retried at next, or given up (failed) — unless the sender's lease ran out
// and another has it. On giving up, failure is an alert to open (unless one
// is open on that system already: people resolve it once they fixed the
// channel) and failed makes the event of the failure.
func (s *Store) FinishAttempt(ctx context.Context, nt aramaki.Notification, at aramaki.DeliveryAttempt, failure *aramaki.Alert, failed func(aramaki.Alert) (aramaki.Event, error)) error {
	return s.write(ctx, func(tx *txn) error {
		if _, err := tx.Exec(ctx, `INSERT INTO notification_attempts (notification_id, at_us, duration_us, error) VALUES (?, ?, ?, ?)`,
			nt.ID, micros(at.At), at.Duration.Microseconds(), at.Error); err != nil {
			return fmt.Errorf("insert delivery attempt: %w", err)
		}
		res, err := tx.Exec(ctx, `UPDATE notifications SET state = ?, attempts = attempts + 1, next_us = ?, lease_us = NULL,
			last_error = ?, done_us = ? WHERE id = ? AND lease_us = ?`,
			string(nt.State), micros(nt.Next), at.Error, nullMicros(nt.Done), nt.ID, micros(nt.Lease))
		if err != nil {
			return fmt.Errorf("update notification: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // the lease ran out: another sender has it now
		}
		if failure == nil {
			return nil
		}
		if err := lockAlerts(ctx, tx); err != nil {
			return err
		}
		var open int64
		err = tx.QueryRow(ctx, `SELECT id FROM alerts WHERE system_id = ? AND check_name = ? AND state <> 'resolved'`,
			failure.System, failure.Check).Scan(&open)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("query failure alert: %w", err)
		}
		if err == nil {
			// One failure alert at a time per system; each failure is still
			// on the timeline.
			a := *failure
			a.ID = strconv.FormatInt(open, 10)
			ev, err := failed(a)
			if err != nil {
				return err
			}
			_, err = appendEvent(ctx, tx, ev)
			return err
		}
		var group, id int64
		if err := tx.QueryRow(ctx, `INSERT INTO alert_groups (system_id, opened_us, notify_at_us) VALUES (?, ?, ?) RETURNING id`,
			failure.System, micros(failure.Opened), micros(failure.Opened)).Scan(&group); err != nil {
			return fmt.Errorf("insert alert group: %w", err)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO alerts (system_id, check_name, status, state, output, group_id, opened_us, updated_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			failure.System, failure.Check, int(failure.Status), string(failure.State), failure.Output, group, micros(failure.Opened), micros(failure.Opened)).Scan(&id); err != nil {
			return fmt.Errorf("insert failure alert: %w", err)
		}
		a := *failure
		a.ID, a.Group = strconv.FormatInt(id, 10), strconv.FormatInt(group, 10)
		ev, err := failed(a)
		if err != nil {
			return err
		}
		if _, err := appendEvent(ctx, tx, ev); err != nil {
			return err
		}
		ev, err = aramaki.AlertOpenedEvent(a)
		if err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, ev)
		return err
	})
}

// Notifications returns notifications, newest first: those of a group, or
// all when group is empty.
func (s *Store) Notifications(ctx context.Context, group string, limit int) ([]aramaki.Notification, error) {
	q, args := `SELECT `+notificationColumns+` FROM notifications`, []any{}
	if group != "" {
		q, args = q+` WHERE group_id = ?`, append(args, group)
	}
	return readAll(ctx, s, "notifications", scanNotification, q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
}

const silenceColumns = `id, system_id, start_us, end_us, reason, created_by, created_us, maintenance, until_resolved, ended_us, ended_by, reminded`

func scanSilence(r rowScanner) (aramaki.Silence, error) {
	var (
		sl                        aramaki.Silence
		id                        int64
		startUS, endUS, createdUS int64
		ended                     sql.NullInt64
	)
	if err := r.Scan(&id, &sl.System, &startUS, &endUS, &sl.Reason, &sl.CreatedBy, &createdUS, &sl.Maintenance, &sl.UntilResolved, &ended, &sl.EndedBy, &sl.Reminded); err != nil {
		return sl, fmt.Errorf("scan silence: %w", err)
	}
	sl.ID = strconv.FormatInt(id, 10)
	sl.Start, sl.End, sl.Created, sl.Ended = fromMicros(startUS), fromMicros(endUS), fromMicros(createdUS), fromNullMicros(ended)
	return sl, nil
}

// Silences returns the silences not over at now, by start.
func (s *Store) Silences(ctx context.Context, now time.Time) ([]aramaki.Silence, error) {
	var out []aramaki.Silence
	err := s.read(ctx, func(tx *txn) error {
		var err error
		out, err = readSilences(ctx, tx, now)
		return err
	})
	return out, err
}

func readSilences(ctx context.Context, tx *txn, now time.Time) ([]aramaki.Silence, error) {
	rows, err := tx.Query(ctx, `SELECT `+silenceColumns+` FROM silences
		WHERE end_us > ? AND (ended_us IS NULL OR ended_us > ?) ORDER BY start_us, id`, micros(now), micros(now))
	if err != nil {
		return nil, fmt.Errorf("query silences: %w", err)
	}
	defer rows.Close()
	var out []aramaki.Silence
	for rows.Next() {
		sl, err := scanSilence(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sl)
	}
	return out, rows.Err()
}

// RecentSilences returns the newest silences, over or not.
func (s *Store) RecentSilences(ctx context.Context, limit int) ([]aramaki.Silence, error) {
	return readAll(ctx, s, "silences", scanSilence, `SELECT `+silenceColumns+` FROM silences ORDER BY id DESC LIMIT ?`, limit)
}

// CreateSilence stores a new silence with its event and returns it with its
// id. The event is made by ev once the id is known. Groups with alerts
// are looked at again when it ends.
func (s *Store) CreateSilence(ctx context.Context, sl aramaki.Silence, ev func(aramaki.Silence) (aramaki.Event, error)) (aramaki.Silence, error) {
	err := s.write(ctx, func(tx *txn) error {
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO silences (system_id, start_us, end_us, reason, created_by, created_us, maintenance, until_resolved)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			sl.System, micros(sl.Start), micros(sl.End), sl.Reason, sl.CreatedBy, micros(sl.Created), sl.Maintenance, sl.UntilResolved).Scan(&id); err != nil {
			return fmt.Errorf("insert silence: %w", err)
		}
		sl.ID = strconv.FormatInt(id, 10)
		e, err := ev(sl)
		if err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, e)
		return err
	})
	return sl, err
}

// EndSilence ends a silence early: change gets it as stored and returns it
// ended, with the event. Unresolved alert groups are looked at again, so
// that what it muted is notified.
func (s *Store) EndSilence(ctx context.Context, id string, change func(aramaki.Silence) (aramaki.Silence, aramaki.Event, error)) (aramaki.Silence, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return aramaki.Silence{}, aramaki.Errorf(aramaki.ENOTFOUND, "silence %s not found", id)
	}
	var sl aramaki.Silence
	err = s.write(ctx, func(tx *txn) error {
		if err := lockAlerts(ctx, tx); err != nil {
			return err
		}
		before, err := scanSilence(tx.QueryRow(ctx, `SELECT `+silenceColumns+` FROM silences WHERE id = ?`, n))
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "silence %s not found", id)
		} else if err != nil {
			return err
		}
		after, ev, err := change(before)
		if err != nil {
			return err
		}
		sl = after
		if _, err := tx.Exec(ctx, `UPDATE silences SET ended_us = ?, ended_by = ?, reminded = ? WHERE id = ?`,
			nullMicros(after.Ended), after.EndedBy, after.Reminded, n); err != nil {
			return fmt.Errorf("update silence: %w", err)
		}
		if after.Ended != nil {
			if _, err := tx.Exec(ctx, `UPDATE alert_groups SET notify_at_us = ? WHERE resolved_us IS NULL`, micros(*after.Ended)); err != nil {
				return fmt.Errorf("update alert groups: %w", err)
			}
		}
		if ev.ID != "" {
			_, err = appendEvent(ctx, tx, ev)
		}
		return err
	})
	return sl, err
}

// DueSilences returns the silences that have run out but are not marked
// ended, and those ending before remindBy whose creator was not reminded.
func (s *Store) DueSilences(ctx context.Context, now, remindBy time.Time) ([]aramaki.Silence, error) {
	return readAll(ctx, s, "silences", scanSilence, `SELECT `+silenceColumns+` FROM silences
		WHERE ended_us IS NULL AND (end_us <= ? OR (end_us <= ? AND NOT reminded)) ORDER BY end_us, id`, micros(now), micros(remindBy))
}

// ChangeCounts returns the checks under systems that changed status most
// often since since (by day), the noisiest first, at most limit.
func (s *Store) ChangeCounts(ctx context.Context, systems []string, since time.Time, limit int) ([]aramaki.CheckChanges, error) {
	in, arg := s.inStrings("system_id", systems)
	return readAll(ctx, s, "change counts", func(r rowScanner) (aramaki.CheckChanges, error) {
		var c aramaki.CheckChanges
		err := r.Scan(&c.System, &c.Check, &c.Changes)
		return c, err
	}, `SELECT system_id, check_name, SUM(changes) AS n FROM check_days WHERE `+in+` AND day >= ?
		GROUP BY system_id, check_name HAVING SUM(changes) > 0 ORDER BY n DESC, system_id, check_name LIMIT ?`,
		arg, micros(since)/microsPerDay, limit)
}

// DigestSent returns when the review digest of a recipient was last
// queued; zero if never.
func (s *Store) DigestSent(ctx context.Context, recipient string) (time.Time, error) {
	var at time.Time
	err := s.read(ctx, func(tx *txn) error {
		var us int64
		err := tx.QueryRow(ctx, `SELECT sent_us FROM digests WHERE recipient = ?`, recipient).Scan(&us)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		} else if err != nil {
			return fmt.Errorf("query digest: %w", err)
		}
		at = fromMicros(us)
		return nil
	})
	return at, err
}

// QueueDigest puts a recipient's review digest in the outbox and notes
// when, unless it was queued at or after since already (by another
// replica). It reports whether it queued.
func (s *Store) QueueDigest(ctx context.Context, recipient string, since, at time.Time, notifications []aramaki.Notification, ev aramaki.Event) (bool, error) {
	var queued bool
	err := s.write(ctx, func(tx *txn) error {
		if err := lockAlerts(ctx, tx); err != nil {
			return err
		}
		var us int64
		err := tx.QueryRow(ctx, `SELECT sent_us FROM digests WHERE recipient = ?`, recipient).Scan(&us)
		if err == nil && us >= micros(since) {
			return nil
		} else if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("query digest: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO digests (recipient, sent_us) VALUES (?, ?)
			ON CONFLICT (recipient) DO UPDATE SET sent_us = excluded.sent_us`, recipient, micros(at)); err != nil {
			return fmt.Errorf("note digest: %w", err)
		}
		if err := insertNotifications(ctx, tx, notifications); err != nil {
			return err
		}
		if ev.ID != "" {
			if _, err := appendEvent(ctx, tx, ev); err != nil {
				return err
			}
		}
		queued = true
		return nil
	})
	return queued, err
}

// RemindSilence marks a silence's creator reminded, with the event and the
// notifications that remind them — unless someone did already. It reports
// whether it reminded.
func (s *Store) RemindSilence(ctx context.Context, id string, ev aramaki.Event, notifications []aramaki.Notification) (bool, error) {
	var reminded bool
	err := s.write(ctx, func(tx *txn) error {
		res, err := tx.Exec(ctx, `UPDATE silences SET reminded = ? WHERE id = ? AND NOT reminded AND ended_us IS NULL`, true, id)
		if err != nil {
			return fmt.Errorf("remind silence: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if err := insertNotifications(ctx, tx, notifications); err != nil {
			return err
		}
		reminded = true
		if ev.ID == "" {
			return nil // no event wanted
		}
		_, err = appendEvent(ctx, tx, ev)
		return err
	})
	return reminded, err
}

// PruneAlerts deletes what alerting keeps past its retention: alerts
// resolved before before with their notes and who was told, groups with
// no alert left, notifications done before it with their attempts, and
// silences over by then. Each goes in chunks of pruneChunk rows, so that
// writers never wait long.
func (s *Store) PruneAlerts(ctx context.Context, before time.Time) error {
	cut := micros(before)
	steps := []struct{ what, query string }{
		{"delivery attempts", `DELETE FROM notification_attempts WHERE id IN (
			SELECT a.id FROM notification_attempts a JOIN notifications n ON n.id = a.notification_id
			WHERE n.state <> 'pending' AND n.done_us < ? LIMIT ?)`},
		{"notifications", `DELETE FROM notifications WHERE id IN (
			SELECT id FROM notifications WHERE state <> 'pending' AND done_us < ? LIMIT ?)`},
		{"told", `DELETE FROM alert_told WHERE alert_id IN (
			SELECT id FROM alerts WHERE state = 'resolved' AND resolved_us < ? LIMIT ?)`},
		{"alert notes", `DELETE FROM alert_notes WHERE id IN (
			SELECT n.id FROM alert_notes n JOIN alerts a ON a.id = n.alert_id
			WHERE a.state = 'resolved' AND a.resolved_us < ? LIMIT ?)`},
		{"alerts", `DELETE FROM alerts WHERE id IN (
			SELECT id FROM alerts WHERE state = 'resolved' AND resolved_us < ? LIMIT ?)`},
		{"alert groups", `DELETE FROM alert_groups WHERE id IN (
			SELECT g.id FROM alert_groups g WHERE g.resolved_us < ?
			AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.group_id = g.id)
			AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.group_id = g.id) LIMIT ?)`},
		{"silences", `DELETE FROM silences WHERE id IN (
			SELECT id FROM silences WHERE end_us < ? AND (ended_us IS NULL OR ended_us < ?) LIMIT ?)`},
	}
	for _, st := range steps {
		for {
			args := []any{cut, pruneChunk}
			if st.what == "silences" {
				args = []any{cut, cut, pruneChunk}
			}
			var n int64
			err := s.write(ctx, func(tx *txn) error {
				res, err := tx.Exec(ctx, st.query, args...)
				if err != nil {
					return fmt.Errorf("prune %s: %w", st.what, err)
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return err
			}
			if n < pruneChunk {
				break
			}
		}
	}
	return nil
}
