package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aramaki/aramaki"
)

const workflowRunColumns = `id, system_id, workflow, definition, inputs, reason, requested_by, requested_us, approval,
	approved_by, approved_us, state, started_us, ended_us, cancelled_by, error, step, steps`

func scanWorkflowRun(r rowScanner) (aramaki.WorkflowRun, error) {
	var (
		w                            aramaki.WorkflowRun
		id, requestedUS              int64
		name, definition, inputs, st string
		steps                        string
		approved, started, ended     sql.NullInt64
	)
	if err := r.Scan(&id, &w.System, &name, &definition, &inputs, &w.Reason, &w.RequestedBy, &requestedUS, &w.Approval,
		&w.ApprovedBy, &approved, &st, &started, &ended, &w.CancelledBy, &w.Error, &w.Step, &steps); err != nil {
		return w, fmt.Errorf("scan workflow run: %w", err)
	}
	w.ID, w.State, w.Requested = strconv.FormatInt(id, 10), aramaki.RunState(st), fromMicros(requestedUS)
	w.Approved, w.Started, w.Ended = fromNullMicros(approved), fromNullMicros(started), fromNullMicros(ended)
	for _, part := range []struct {
		what string
		doc  string
		into any
	}{{"definition", definition, &w.Workflow}, {"inputs", inputs, &w.Inputs}, {"steps", steps, &w.Steps}} {
		if err := json.Unmarshal([]byte(part.doc), part.into); err != nil {
			return w, fmt.Errorf("decode %s of workflow run %d: %w", part.what, id, err)
		}
	}
	return w, nil
}

func workflowRunID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return 0, aramaki.Errorf(aramaki.ENOTFOUND, "workflow run %s not found", id)
	}
	return n, nil
}

// CreateWorkflowRun stores a new workflow run, with the events events makes
// of it once it has its id.
func (s *Store) CreateWorkflowRun(ctx context.Context, w aramaki.WorkflowRun, events func(aramaki.WorkflowRun) ([]aramaki.Event, []aramaki.Notification, error)) (aramaki.WorkflowRun, error) {
	definition, err1 := json.Marshal(w.Workflow)
	inputs, err2 := json.Marshal(w.Inputs)
	steps, err3 := json.Marshal(w.Steps)
	if err := errors.Join(err1, err2, err3); err != nil {
		return w, fmt.Errorf("marshal workflow run: %w", err)
	}
	err := s.write(ctx, func(tx *txn) error {
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO workflow_runs (system_id, workflow, definition, inputs, reason, requested_by, requested_us,
			approval, approved_by, approved_us, state, started_us, ended_us, cancelled_by, error, step, steps)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			w.System, w.Workflow.Name, string(definition), string(inputs), w.Reason, w.RequestedBy, micros(w.Requested),
			w.Approval, w.ApprovedBy, nullMicros(w.Approved), string(w.State), nullMicros(w.Started), nullMicros(w.Ended),
			w.CancelledBy, w.Error, w.Step, string(steps)).Scan(&id); err != nil {
			return fmt.Errorf("insert workflow run: %w", err)
		}
		w.ID = strconv.FormatInt(id, 10)
		evs, notifications, err := events(w)
		if err != nil {
			return err
		}
		if err := appendEvents(ctx, tx, evs); err != nil {
			return err
		}
		return insertNotifications(ctx, tx, notifications)
	})
	return w, err
}

// WorkflowRun returns a workflow run.
func (s *Store) WorkflowRun(ctx context.Context, id string) (aramaki.WorkflowRun, error) {
	n, err := workflowRunID(id)
	if err != nil {
		return aramaki.WorkflowRun{}, err
	}
	var w aramaki.WorkflowRun
	err = s.read(ctx, func(tx *txn) error {
		w, err = readWorkflowRun(ctx, tx, n, "")
		return err
	})
	return w, err
}

func readWorkflowRun(ctx context.Context, tx *txn, id int64, lock string) (aramaki.WorkflowRun, error) {
	w, err := scanWorkflowRun(tx.QueryRow(ctx, `SELECT `+workflowRunColumns+` FROM workflow_runs WHERE id = ?`+lock, id))
	if errors.Is(err, sql.ErrNoRows) {
		return w, aramaki.Errorf(aramaki.ENOTFOUND, "workflow run %d not found", id)
	}
	return w, err
}

// WorkflowRuns returns workflow runs, newest first.
func (s *Store) WorkflowRuns(ctx context.Context, f aramaki.WorkflowRunFilter) ([]aramaki.WorkflowRun, error) {
	var c conditions
	if f.Systems != nil {
		c.in(s, "system_id", f.Systems)
	}
	if f.Workflow != "" {
		c.add("workflow = ?", f.Workflow)
	}
	if len(f.States) > 0 {
		c.in(s, "state", strs(f.States))
	}
	return readAll(ctx, s, "workflow runs", scanWorkflowRun,
		`SELECT `+workflowRunColumns+` FROM workflow_runs`+c.sql()+` ORDER BY id DESC LIMIT ?`, append(c.args, max(f.Limit, 1))...)
}

// ChangeWorkflowRun moves a workflow run on in one transaction: change
// gets it as stored with the runs it started so far (their hosts without
// output), and returns what changes. The runs to start are stored with
// the events runEvents makes of each once it has its id. Concurrent
// changes of one workflow run wait for each other, so no host is started
// twice.
func (s *Store) ChangeWorkflowRun(ctx context.Context, id string, change func(aramaki.WorkflowRun, []aramaki.Run) (aramaki.WorkflowChange, error),
	runEvents func(aramaki.Run) ([]aramaki.Event, error)) (aramaki.WorkflowRun, error) {
	n, err := workflowRunID(id)
	if err != nil {
		return aramaki.WorkflowRun{}, err
	}
	var out aramaki.WorkflowRun
	err = s.write(ctx, func(tx *txn) error {
		before, err := readWorkflowRun(ctx, tx, n, s.forUpdate())
		if err != nil {
			return err
		}
		// The runs of the step under way: those of the steps before
		// have ended.
		runs, err := s.readRuns(ctx, tx, ` WHERE workflow_run_id = ? AND workflow_step = ? ORDER BY id`, n, before.Step)
		if err != nil {
			return err
		}
		// change may change before's steps in place: what they were is
		// kept to tell whether anything changed.
		stepsBefore, err := json.Marshal(before.Steps)
		if err != nil {
			return fmt.Errorf("marshal workflow steps: %w", err)
		}
		c, err := change(before, runs)
		if err != nil {
			return err
		}
		after := c.Run
		type stepHost struct {
			step  int
			agent string
		}
		hostAt := map[stepHost]int{} // → index of the host in its step
		for i, st := range after.Steps {
			if slices.ContainsFunc(c.Start, func(r aramaki.Run) bool { return r.WorkflowStep == i }) {
				for hi, h := range st.Hosts {
					hostAt[stepHost{i, h.Agent}] = hi
				}
			}
		}
		for _, r := range c.Start {
			r.WorkflowRun = before.ID
			if r, err = insertRun(ctx, tx, r); err != nil {
				return err
			}
			evs, err := runEvents(r)
			if err != nil {
				return err
			}
			if err := appendEvents(ctx, tx, evs); err != nil {
				return err
			}
			// The run's id goes to its host in the workflow run.
			if len(r.Targets) == 1 {
				if hi, ok := hostAt[stepHost{r.WorkflowStep, r.Targets[0].Agent}]; ok {
					after.Steps[r.WorkflowStep].Hosts[hi].Run = r.ID
				}
			}
		}
		steps, err := json.Marshal(after.Steps)
		if err != nil {
			return fmt.Errorf("marshal workflow steps: %w", err)
		}
		out = after
		if len(c.Start) == 0 && len(c.Events) == 0 && unchanged(before, after, stepsBefore, steps) {
			return nil // the engine looked and found nothing to do
		}
		if _, err := tx.Exec(ctx, `UPDATE workflow_runs SET approved_by = ?, approved_us = ?, state = ?, started_us = ?, ended_us = ?,
			cancelled_by = ?, error = ?, step = ?, steps = ? WHERE id = ?`,
			after.ApprovedBy, nullMicros(after.Approved), string(after.State), nullMicros(after.Started), nullMicros(after.Ended),
			after.CancelledBy, after.Error, after.Step, string(steps), n); err != nil {
			return fmt.Errorf("update workflow run: %w", err)
		}
		return appendEvents(ctx, tx, c.Events)
	})
	return out, err
}

// unchanged reports whether a change left a workflow run as it was.
func unchanged(before, after aramaki.WorkflowRun, stepsBefore, stepsAfter []byte) bool {
	return string(stepsBefore) == string(stepsAfter) && before.State == after.State && before.Step == after.Step &&
		before.Error == after.Error && before.ApprovedBy == after.ApprovedBy && before.CancelledBy == after.CancelledBy &&
		equalTime(before.Approved, after.Approved) && equalTime(before.Started, after.Started) && equalTime(before.Ended, after.Ended)
}

func equalTime(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}
