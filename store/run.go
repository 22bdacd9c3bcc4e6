package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/aramaki/aramaki"
)

// SetAgentActions records the actions an agent's host allows. When they
// differ from those stored, events makes the events of the change from
// what was allowed before; when they are the same nothing is written.
func (s *Store) SetAgentActions(ctx context.Context, agentID string, actions []aramaki.ActionSpec, events func(before []aramaki.ActionSpec) ([]aramaki.Event, error)) error {
	if actions == nil {
		actions = []aramaki.ActionSpec{}
	}
	doc, err := json.Marshal(actions)
	if err != nil {
		return fmt.Errorf("marshal actions: %w", err)
	}
	return s.write(ctx, func(tx *txn) error {
		var have string
		err := tx.QueryRow(ctx, `SELECT actions FROM agents WHERE id = ?`+s.forUpdate(), agentID).Scan(&have)
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "no agent %s", agentID)
		} else if err != nil {
			return fmt.Errorf("read agent actions: %w", err)
		}
		if have == string(doc) {
			return nil
		}
		var before []aramaki.ActionSpec
		if err := json.Unmarshal([]byte(have), &before); err != nil {
			return fmt.Errorf("decode agent actions: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE agents SET actions = ? WHERE id = ?`, string(doc), agentID); err != nil {
			return fmt.Errorf("update agent actions: %w", err)
		}
		evs, err := events(before)
		if err != nil {
			return err
		}
		return appendEvents(ctx, tx, evs)
	})
}

const runColumns = `id, system_id, action, params, reason, requested_by, requested_us, approval, approved_by, approved_us,
	break_glass, state, started_us, ended_us, cancelled_by, error, workflow_run_id, workflow_step, peer, peer_run, hosts_ok, hosts_failed`

func scanRun(r rowScanner) (aramaki.Run, error) {
	var (
		run               aramaki.Run
		id                int64
		params, state     string
		requestedUS       int64
		approved, started sql.NullInt64
		ended, workflow   sql.NullInt64
	)
	if err := r.Scan(&id, &run.System, &run.Action, &params, &run.Reason, &run.RequestedBy, &requestedUS, &run.Approval,
		&run.ApprovedBy, &approved, &run.BreakGlass, &state, &started, &ended, &run.CancelledBy, &run.Error, &workflow, &run.WorkflowStep,
		&run.Peer, &run.PeerRun, &run.HostsOK, &run.HostsFailed); err != nil {
		return aramaki.Run{}, fmt.Errorf("scan run: %w", err)
	}
	if workflow.Valid {
		run.WorkflowRun = strconv.FormatInt(workflow.Int64, 10)
	}
	run.ID, run.State, run.Requested = strconv.FormatInt(id, 10), aramaki.RunState(state), fromMicros(requestedUS)
	run.Approved, run.Started, run.Ended = fromNullMicros(approved), fromNullMicros(started), fromNullMicros(ended)
	if err := json.Unmarshal([]byte(params), &run.Params); err != nil {
		return aramaki.Run{}, fmt.Errorf("decode parameters of run %d: %w", id, err)
	}
	run.Targets = []aramaki.RunTarget{}
	return run, nil
}

// targetColumns and targetColumnsNoOutput read a run's hosts, with or
// without what they printed.
const (
	targetColumns         = `run_id, agent_id, name, state, started_us, ended_us, exit_code, error, dropped, output`
	targetColumnsNoOutput = `run_id, agent_id, name, state, started_us, ended_us, exit_code, error, dropped, ''`
)

func scanTarget(r rowScanner) (int64, aramaki.RunTarget, error) {
	var (
		runID          int64
		t              aramaki.RunTarget
		state          string
		started, ended sql.NullInt64
		exit           sql.NullInt64
	)
	if err := r.Scan(&runID, &t.Agent, &t.Name, &state, &started, &ended, &exit, &t.Error, &t.Dropped, &t.Output); err != nil {
		return 0, t, fmt.Errorf("scan run target: %w", err)
	}
	t.State, t.Started, t.Ended = aramaki.RunState(state), fromNullMicros(started), fromNullMicros(ended)
	if exit.Valid {
		code := int(exit.Int64)
		t.ExitCode = &code
	}
	return runID, t, nil
}

func runID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return 0, aramaki.Errorf(aramaki.ENOTFOUND, "run %s not found", id)
	}
	return n, nil
}

// CreateRun stores a new run and its hosts, and the events and
// notifications events makes of it once it has its id.
func (s *Store) CreateRun(ctx context.Context, run aramaki.Run, events func(aramaki.Run) ([]aramaki.Event, []aramaki.Notification, error)) (aramaki.Run, error) {
	err := s.write(ctx, func(tx *txn) error {
		var err error
		if run, err = insertRun(ctx, tx, run); err != nil {
			return err
		}
		evs, notifications, err := events(run)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if _, err := appendEvent(ctx, tx, ev); err != nil {
				return err
			}
		}
		return insertNotifications(ctx, tx, notifications)
	})
	return run, err
}

// insertRun stores a new run with its hosts and returns it with its id.
func insertRun(ctx context.Context, tx *txn, run aramaki.Run) (aramaki.Run, error) {
	params, err := json.Marshal(run.Params)
	if err != nil {
		return run, fmt.Errorf("marshal parameters: %w", err)
	}
	var workflow sql.NullInt64
	if run.WorkflowRun != "" {
		n, err := strconv.ParseInt(run.WorkflowRun, 10, 64)
		if err != nil {
			return run, fmt.Errorf("workflow run id %q: %w", run.WorkflowRun, err)
		}
		workflow = sql.NullInt64{Int64: n, Valid: true}
	}
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO runs (system_id, action, params, reason, requested_by, requested_us, approval, approved_by,
		approved_us, break_glass, state, started_us, ended_us, cancelled_by, error, workflow_run_id, workflow_step, peer, peer_run, hosts_ok, hosts_failed)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		run.System, run.Action, string(params), run.Reason, run.RequestedBy, micros(run.Requested), run.Approval, run.ApprovedBy,
		nullMicros(run.Approved), run.BreakGlass, string(run.State), nullMicros(run.Started), nullMicros(run.Ended), run.CancelledBy, run.Error,
		workflow, run.WorkflowStep, run.Peer, run.PeerRun, run.HostsOK, run.HostsFailed,
	).Scan(&id); err != nil {
		return run, fmt.Errorf("insert run: %w", err)
	}
	run.ID = strconv.FormatInt(id, 10)
	return run, writeTargets(ctx, tx, id, run.Targets, true)
}

// writeTargets inserts (fresh) or updates the hosts of a run; output is
// written by AppendRunOutput alone.
func writeTargets(ctx context.Context, tx *txn, id int64, targets []aramaki.RunTarget, fresh bool) error {
	for _, t := range targets {
		var exit sql.NullInt64
		if t.ExitCode != nil {
			exit = sql.NullInt64{Int64: int64(*t.ExitCode), Valid: true}
		}
		var err error
		if fresh {
			_, err = tx.Exec(ctx, `INSERT INTO run_targets (run_id, agent_id, name, state, started_us, ended_us, exit_code, error)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, t.Agent, t.Name, string(t.State), nullMicros(t.Started), nullMicros(t.Ended), exit, t.Error)
		} else {
			_, err = tx.Exec(ctx, `UPDATE run_targets SET state = ?, started_us = ?, ended_us = ?, exit_code = ?, error = ?, dropped = ?
				WHERE run_id = ? AND agent_id = ?`, string(t.State), nullMicros(t.Started), nullMicros(t.Ended), exit, t.Error, t.Dropped, id, t.Agent)
		}
		if err != nil {
			return fmt.Errorf("write run target %s: %w", t.Agent, err)
		}
	}
	return nil
}

func readRun(ctx context.Context, tx *txn, id int64, lock string, withOutput bool) (aramaki.Run, error) {
	run, err := scanRun(tx.QueryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`+lock, id))
	if errors.Is(err, sql.ErrNoRows) {
		return aramaki.Run{}, aramaki.Errorf(aramaki.ENOTFOUND, "run %d not found", id)
	} else if err != nil {
		return aramaki.Run{}, err
	}
	cols := targetColumnsNoOutput
	if withOutput {
		cols = targetColumns
	}
	rows, err := tx.Query(ctx, `SELECT `+cols+` FROM run_targets WHERE run_id = ? ORDER BY name, agent_id`, id)
	if err != nil {
		return aramaki.Run{}, fmt.Errorf("query run targets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		_, t, err := scanTarget(rows)
		if err != nil {
			return aramaki.Run{}, err
		}
		run.Targets = append(run.Targets, t)
	}
	return run, rows.Err()
}

// Run returns a run with its hosts and what they printed.
func (s *Store) Run(ctx context.Context, id string) (aramaki.Run, error) {
	n, err := runID(id)
	if err != nil {
		return aramaki.Run{}, err
	}
	var run aramaki.Run
	err = s.read(ctx, func(tx *txn) error {
		run, err = readRun(ctx, tx, n, "", true)
		return err
	})
	return run, err
}

// ChangeRun moves a run on in one transaction: change gets it as stored
// (its hosts without output) and returns it changed, with the events of the
// change. Concurrent changes of one run wait for each other.
func (s *Store) ChangeRun(ctx context.Context, id string, change func(aramaki.Run) (aramaki.Run, []aramaki.Event, error)) (aramaki.Run, error) {
	n, err := runID(id)
	if err != nil {
		return aramaki.Run{}, err
	}
	var run aramaki.Run
	err = s.write(ctx, func(tx *txn) error {
		before, err := readRun(ctx, tx, n, s.forUpdate(), false)
		if err != nil {
			return err
		}
		after, evs, err := change(before)
		if err != nil {
			return err
		}
		run = after
		return updateRun(ctx, tx, n, after, evs)
	})
	return run, err
}

// updateRun writes what changes of a run, with the events of the change.
func updateRun(ctx context.Context, tx *txn, n int64, after aramaki.Run, evs []aramaki.Event) error {
	if _, err := tx.Exec(ctx, `UPDATE runs SET approved_by = ?, approved_us = ?, break_glass = ?, state = ?, started_us = ?,
		ended_us = ?, cancelled_by = ?, error = ?, peer_run = ?, hosts_ok = ?, hosts_failed = ? WHERE id = ?`,
		after.ApprovedBy, nullMicros(after.Approved), after.BreakGlass, string(after.State), nullMicros(after.Started),
		nullMicros(after.Ended), after.CancelledBy, after.Error, after.PeerRun, after.HostsOK, after.HostsFailed, n); err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	if err := writeTargets(ctx, tx, n, after.Targets, false); err != nil {
		return err
	}
	for _, ev := range evs {
		if _, err := appendEvent(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// AppendRunOutput adds what a host printed to its run: frames are numbered
// from 1, and one seen already (sent again after a reconnect) is skipped.
// At most aramaki.MaxRunOutput bytes are kept; the rest is counted.
func (s *Store) AppendRunOutput(ctx context.Context, id, agentID string, seq uint64, data string) error {
	n, err := runID(id)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *txn) error {
		// The run's row first, as ChangeRun takes it: one change of a run
		// at a time.
		var locked int64
		if err := tx.QueryRow(ctx, `SELECT id FROM runs WHERE id = ?`+s.forUpdate(), n).Scan(&locked); errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "run %s not found", id)
		} else if err != nil {
			return fmt.Errorf("lock run: %w", err)
		}
		var (
			have    string
			lastSeq int64
		)
		// Output of a part that was not started is nobody's.
		err := tx.QueryRow(ctx, `SELECT output, output_seq FROM run_targets WHERE run_id = ? AND agent_id = ? AND state <> 'requested'`+s.forUpdate(), n, agentID).Scan(&have, &lastSeq)
		if errors.Is(err, sql.ErrNoRows) {
			return aramaki.Errorf(aramaki.ENOTFOUND, "run %s has no host %s", id, agentID)
		} else if err != nil {
			return fmt.Errorf("query run output: %w", err)
		}
		if int64(seq) <= lastSeq {
			return nil // seen already
		}
		keep, dropped := data, 0
		if room := aramaki.MaxRunOutput - len(have); len(keep) > room {
			room = max(room, 0)
			for room > 0 && !utf8.RuneStart(keep[room]) {
				room-- // do not cut a character in two
			}
			keep, dropped = keep[:room], len(data)-room
		}
		if _, err := tx.Exec(ctx, `UPDATE run_targets SET output = output || ?, output_seq = ?, dropped = dropped + ?
			WHERE run_id = ? AND agent_id = ?`, keep, int64(seq), dropped, n, agentID); err != nil {
			return fmt.Errorf("append run output: %w", err)
		}
		return nil
	})
}

// Runs returns runs, newest first, with their hosts but not their output.
func (s *Store) Runs(ctx context.Context, f aramaki.RunFilter) ([]aramaki.Run, error) {
	var c conditions
	if f.Systems != nil {
		c.in(s, "system_id", f.Systems)
	}
	if f.Action != "" {
		c.add("action = ?", f.Action)
	}
	if len(f.States) > 0 {
		c.in(s, "state", strs(f.States))
	}
	if !f.Since.IsZero() {
		c.add("requested_us >= ?", micros(f.Since))
	}
	if f.Agent != "" {
		c.add("id IN (SELECT run_id FROM run_targets WHERE agent_id = ?)", f.Agent)
	}
	if f.WorkflowRun != "" {
		n, err := strconv.ParseInt(f.WorkflowRun, 10, 64)
		if err != nil {
			return nil, aramaki.Errorf(aramaki.ENOTFOUND, "workflow run %s not found", f.WorkflowRun)
		}
		c.add("workflow_run_id = ?", n)
	}
	var runs []aramaki.Run
	err := s.read(ctx, func(tx *txn) (err error) {
		runs, err = s.readRuns(ctx, tx, c.sql()+` ORDER BY id DESC LIMIT ?`, append(c.args, max(f.Limit, 1))...)
		return err
	})
	return runs, err
}

// readRuns reads the runs the clause (WHERE … ORDER BY …) selects, with
// their hosts but not their output.
func (s *Store) readRuns(ctx context.Context, tx *txn, clause string, args ...any) ([]aramaki.Run, error) {
	rows, err := tx.Query(ctx, `SELECT `+runColumns+` FROM runs`+clause, args...)
	if err != nil {
		return nil, fmt.Errorf("query runs: %w", err)
	}
	var runs []aramaki.Run
	byID := map[string]int{}
	var ids []string
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		byID[r.ID] = len(runs)
		ids = append(ids, r.ID)
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	if len(ids) == 0 {
		return runs, nil
	}
	in, arg := s.inIDs("run_id", ids)
	rows, err = tx.Query(ctx, `SELECT `+targetColumnsNoOutput+` FROM run_targets WHERE `+in+` ORDER BY name, agent_id`, arg)
	if err != nil {
		return nil, fmt.Errorf("query run targets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		id, t, err := scanTarget(rows)
		if err != nil {
			return nil, err
		}
		i := byID[strconv.FormatInt(id, 10)]
		runs[i].Targets = append(runs[i].Targets, t)
	}
	return runs, rows.Err()
}

// WaitingTargets returns the hosts, among agents, whose runs are running
// but that were not asked to start yet: what the replica the agents are
// connected to sends them, also after a restart.
func (s *Store) WaitingTargets(ctx context.Context, agents []string) ([]aramaki.RunStart, error) {
	if len(agents) == 0 {
		return nil, nil
	}
	in, arg := s.inStrings("t.agent_id", agents)
	return readAll(ctx, s, "waiting runs", func(r rowScanner) (aramaki.RunStart, error) {
		var (
			rs     aramaki.RunStart
			id     int64
			params string
		)
		if err := r.Scan(&id, &rs.Agent, &rs.Action, &params); err != nil {
			return rs, err
		}
		rs.Run = strconv.FormatInt(id, 10)
		return rs, json.Unmarshal([]byte(params), &rs.Params)
	}, `SELECT r.id, t.agent_id, r.action, r.params FROM run_targets t JOIN runs r ON r.id = t.run_id
		LEFT JOIN workflow_runs w ON w.id = r.workflow_run_id
		WHERE t.state = 'requested' AND r.state = 'running' AND (w.id IS NULL OR w.state = 'running') AND `+in+` ORDER BY r.id`, arg)
}

// StartTargets marks the parts of runs given as started at a time, in one
// transaction, and returns those that were still waiting to start in a
// running run: the others were started, cancelled or ended meanwhile.
func (s *Store) StartTargets(ctx context.Context, starts []aramaki.RunStart, at time.Time) ([]aramaki.RunStart, error) {
	var out []aramaki.RunStart
	err := s.write(ctx, func(tx *txn) error {
		out = out[:0]
		for _, st := range starts {
			n, err := runID(st.Run)
			if err != nil {
				continue
			}
			res, err := tx.Exec(ctx, `UPDATE run_targets SET state = 'running', started_us = ?
				WHERE run_id = ? AND agent_id = ? AND state = 'requested'
				AND EXISTS (SELECT 1 FROM runs WHERE id = ? AND state = 'running')`, micros(at), n, st.Agent, n)
			if err != nil {
				return fmt.Errorf("start run target: %w", err)
			}
			if k, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("rows affected: %w", err)
			} else if k == 1 {
				out = append(out, st)
			}
		}
		return nil
	})
	return out, err
}

// RunPoints returns the finished runs of an action on a system since a
// time: when each ended, how long it took and how it ended.
func (s *Store) RunPoints(ctx context.Context, system, action string, since time.Time) ([]aramaki.RunPoint, error) {
	return readAll(ctx, s, "run points", func(r rowScanner) (aramaki.RunPoint, error) {
		var (
			p              aramaki.RunPoint
			started, ended int64
			state          string
		)
		if err := r.Scan(&started, &ended, &state); err != nil {
			return p, err
		}
		p.Ended, p.Duration, p.State = fromMicros(ended), time.Duration(ended-started)*time.Microsecond, aramaki.RunState(state)
		return p, nil
	}, `SELECT started_us, ended_us, state FROM runs
		WHERE system_id = ? AND action = ? AND ended_us >= ? AND started_us IS NOT NULL AND ended_us IS NOT NULL
		ORDER BY ended_us`, system, action, micros(since))
}
