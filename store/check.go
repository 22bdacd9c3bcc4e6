package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aramaki/aramaki"
)

// RecordResults stores batches of results, from one or many agents, in one
// transaction, and returns the LastSeq of each batch's agent after the
// commit, in batch order.
//
// Per agent, a result whose Seq is not above the agent's LastSeq (nor
// above the Seq of an earlier result of the call) is a duplicate and
// ignored; LastSeq becomes the highest Seq stored. Results with Seq 0, the
// server's own, are always stored. Through moves LastSeq to at least
// Through. A Gap moves LastSeq to at least Gap.To (after the batch's
// results, so that results below the gap are stored) and appends
// Gap.Event, unless it is the zero Event or the gap moves nothing (it was
// reported before).
//
// A batch of an unknown or revoked agent is skipped, results and gap, and
// its LastSeq returned as 0: one agent revoked while its results were on
// the way must not lose the results of the others grouped into the call.
// A result naming another agent than its batch is EINVALID and fails the
// call: that is a bug of the caller.
//
// Results are applied in the order of the call, batch after batch: each
// updates its check's state (system, check, agent); when its status
// differs from the state's, or there was no state, the change is stored in
// the history and the event changeEvent makes of it appended, unless that
// is the zero Event (no id): changeEvent may decide a change is not worth
// an event, such as the first result of a check when it is OK. A change
// happens at the Started time of the result that brings it (its Received
// time when Started is zero); LastResult is the time the result was
// received (now, when Received is zero).
//
// On PostgreSQL the rows of the call's agents are locked, in id order, for
// the transaction: the results of one agent are stored by one replica at a
// time, and two replicas never deadlock.
//
// This is the hot path (BenchmarkRecordResults): a call runs a handful of
// statements however many results it carries — one query for the agents,
// one for their states, one insert each for results, states and changes
// (a few of 256, 128, … rows on SQLite), and two per event — all prepared
// once for the store; validation and encoding happen before the write lock
// is taken.
func (s *Store) RecordResults(ctx context.Context, batches []aramaki.ResultBatch, changeEvent func(aramaki.StatusChange) (aramaki.Event, error)) ([]uint64, error) {
	// Everything that needs no database is done before the write lock is
	// taken: validation and encoding of metrics.
	rows, err := encodeResults(batches, time.Now())
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, b := range batches {
		ids = append(ids, b.Agent)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)

	var (
		agents    map[string]*agentSeq
		newChecks map[checkName]int64
	)
	err = s.write(ctx, func(tx *txn) error {
		var err error
		if agents, err = s.lockAgents(ctx, tx, ids); err != nil {
			return err
		}
		var (
			live    []string     // the agents that may store results
			pending []*resultRow // their results
		)
		for _, id := range ids {
			if agents[id] != nil {
				live = append(live, id)
			}
		}
		if len(live) == 0 {
			return nil
		}
		for i, b := range batches {
			if agents[b.Agent] != nil {
				for j := range rows[i] {
					pending = append(pending, &rows[i][j])
				}
			}
		}
		if newChecks, err = s.numberChecks(ctx, tx, pending); err != nil {
			return err
		}
		states, err := s.agentStates(ctx, tx, live, agents)
		if err != nil {
			return err
		}

		// Apply the results in memory, in order.
		var (
			stored  []any // the arguments of the rows of results to insert
			changes []aramaki.StatusChange
			dirty   []stateKey      // states to write, each once
			events  []aramaki.Event // of gaps, then of changes
		)
		for i, b := range batches {
			a := agents[b.Agent]
			if a == nil {
				continue
			}
			before := a.lastSeq
			for j := range rows[i] {
				r := &rows[i][j]
				if r.seq != 0 {
					if r.seq <= a.lastSeq {
						continue
					}
					a.lastSeq = r.seq
				}
				stored = append(stored, r.checkID, a.id, r.seq, r.status, r.output, r.metrics, r.startedUS, r.durationNS, r.receivedUS)

				key := stateKey{a.id, r.checkID}
				st := states[key]
				if st == nil {
					st = &checkState{status: r.status, sinceUS: r.atUS}
					states[key] = st
					changes = append(changes, change(a.id, r, r.status, true))
				} else if st.status != r.status {
					changes = append(changes, change(a.id, r, st.status, false))
					st.status, st.sinceUS, st.count = r.status, r.atUS, 0
				}
				st.count++
				st.output, st.metrics, st.lastResultUS = r.output, r.metrics, r.receivedUS
				if !st.dirty {
					st.dirty = true
					dirty = append(dirty, key)
				}
			}
			// Results the service dropped (checks the agent does not run)
			// are done with too.
			if b.Through <= math.MaxInt64 && int64(b.Through) > a.lastSeq {
				a.lastSeq = int64(b.Through)
			}
			// A gap is news only for what is not stored already: it may
			// be reported again after a lost ack.
			if g := b.Gap; g != nil && int64(g.To) > before {
				a.lastSeq = max(a.lastSeq, int64(g.To))
				events = append(events, g.Event)
			}
		}

		// Write it all, many rows to a statement.
		if err := insertRows(ctx, tx, "results", resultColumns, ``, stored); err != nil {
			return fmt.Errorf("insert results: %w", err)
		}
		stateArgs := make([]any, 0, len(dirty)*7)
		for _, k := range dirty {
			st := states[k]
			stateArgs = append(stateArgs, k.agent, k.check, st.status, st.count, st.output, st.metrics, st.sinceUS, st.lastResultUS)
		}
		if err := insertRows(ctx, tx, "check_states", stateColumns, `
			ON CONFLICT (agent_id, check_id) DO UPDATE SET
				status = excluded.status, count = excluded.count, output = excluded.output, metrics = excluded.metrics,
				since_us = excluded.since_us, last_result_us = excluded.last_result_us`, stateArgs); err != nil {
			return fmt.Errorf("update check states: %w", err)
		}
		changeArgs := make([]any, 0, len(changes)*8)
		for _, c := range changes {
			changeArgs = append(changeArgs, c.System, c.Check, c.Agent, int(c.From), int(c.To), micros(c.At), c.Output, c.First)
		}
		if err := insertRows(ctx, tx, "status_changes", changeColumns, ``, changeArgs); err != nil {
			return fmt.Errorf("insert status changes: %w", err)
		}
		if err := addCheckDays(ctx, tx, changes); err != nil {
			return err
		}
		if err := markAlertsPending(ctx, tx, changes); err != nil {
			return err
		}
		for _, c := range changes {
			ev, err := changeEvent(c)
			if err != nil {
				return err
			}
			events = append(events, ev)
		}
		for _, ev := range events {
			if ev.ID == "" {
				continue // no event wanted
			}
			if _, err := appendEvent(ctx, tx, ev); err != nil {
				return err
			}
		}
		return updateLastSeqs(ctx, tx, live, agents)
	})
	if err != nil {
		return nil, err
	}
	s.checks.add(newChecks)
	last := make([]uint64, len(batches))
	for i, b := range batches {
		if a := agents[b.Agent]; a != nil {
			last[i] = uint64(a.lastSeq)
		}
	}
	return last, nil
}

// resultRow is a result ready to be stored.
type resultRow struct {
	seq                               int64
	system, check                     string
	checkID                           int64 // set in the transaction
	status                            int
	output                            string
	metrics                           sql.NullString
	startedUS, durationNS, receivedUS int64
	atUS                              int64 // when a change it brings happens
}

// encodeResults validates the batches and encodes their results, now
// standing in for missing receive times.
func encodeResults(batches []aramaki.ResultBatch, now time.Time) ([][]resultRow, error) {
	rows := make([][]resultRow, len(batches))
	for i, b := range batches {
		if b.Agent == "" {
			return nil, aramaki.Errorf(aramaki.EINVALID, "a batch of results names no agent")
		}
		if g := b.Gap; g != nil && (g.To > math.MaxInt64 || g.From > g.To) {
			return nil, aramaki.Errorf(aramaki.EINVALID, "agent %s: invalid gap %d..%d", b.Agent, g.From, g.To)
		}
		rows[i] = make([]resultRow, len(b.Results))
		for j, r := range b.Results {
			switch {
			case r.Agent != "" && r.Agent != b.Agent:
				return nil, aramaki.Errorf(aramaki.EINVALID, "a result of agent %s is in the batch of agent %s", r.Agent, b.Agent)
			case r.Seq > math.MaxInt64:
				return nil, aramaki.Errorf(aramaki.EINVALID, "agent %s: result sequence %d is too large", b.Agent, r.Seq)
			case r.System == "" || r.Check == "":
				return nil, aramaki.Errorf(aramaki.EINVALID, "agent %s: a result needs a system and a check", b.Agent)
			case r.Status < aramaki.StatusOK || r.Status > aramaki.StatusUnknown:
				return nil, aramaki.Errorf(aramaki.EINVALID, "agent %s: invalid status %d", b.Agent, int(r.Status))
			}
			row := resultRow{
				seq:        int64(r.Seq),
				system:     r.System,
				check:      r.Check,
				status:     int(r.Status),
				output:     r.Output,
				startedUS:  micros(r.Started),
				durationNS: int64(r.Duration),
				receivedUS: micros(r.Received),
			}
			if r.Received.IsZero() {
				row.receivedUS = micros(now)
			}
			row.atUS = row.startedUS
			if r.Started.IsZero() {
				row.atUS = row.receivedUS
			}
			if len(r.Metrics) > 0 {
				m, err := json.Marshal(r.Metrics)
				if err != nil {
					return nil, fmt.Errorf("marshal metrics: %w", err)
				}
				row.metrics = sql.NullString{String: string(m), Valid: true}
			}
			rows[i][j] = row
		}
	}
	return rows, nil
}

func change(agent string, r *resultRow, from int, first bool) aramaki.StatusChange {
	return aramaki.StatusChange{
		System: r.system, Check: r.check, Agent: agent,
		From: aramaki.Status(from), To: aramaki.Status(r.status),
		At: fromMicros(r.atUS), Output: r.output, First: first,
	}
}

// checkName names a check of a system.
type checkName struct{ system, check string }

// checkNumbers caches the numbers of checks (the checks table). A number
// never changes once given, so a cached one is right for good; a number
// given in a transaction is only cached once it is committed.
type checkNumbers struct {
	mu sync.Mutex
	m  map[checkName]int64
}

func (c *checkNumbers) add(ids map[checkName]int64) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, id := range ids {
		c.m[k] = id
	}
}

// numberChecks sets the check number of each result, giving new checks
// one, and returns the numbers that were not cached.
func (s *Store) numberChecks(ctx context.Context, tx *txn, rows []*resultRow) (map[checkName]int64, error) {
	var missing map[checkName]int64
	s.checks.mu.Lock()
	for _, r := range rows {
		k := checkName{r.system, r.check}
		if id, ok := s.checks.m[k]; ok {
			r.checkID = id
		} else {
			if missing == nil {
				missing = map[checkName]int64{}
			}
			missing[k] = 0
		}
	}
	s.checks.mu.Unlock()
	if len(missing) == 0 {
		return nil, nil
	}
	// In order, so that two replicas numbering the same new checks wait for
	// each other rather than deadlock.
	names := slices.SortedFunc(maps.Keys(missing), func(a, b checkName) int {
		return cmp.Or(strings.Compare(a.system, b.system), strings.Compare(a.check, b.check))
	})
	for _, k := range names {
		id, err := checkID(ctx, tx, k)
		if err != nil {
			return nil, err
		}
		missing[k] = id
	}
	for _, r := range rows {
		if r.checkID == 0 {
			r.checkID = missing[checkName{r.system, r.check}]
		}
	}
	return missing, nil
}

// checkID returns the number of a check, giving it one when it has none.
func checkID(ctx context.Context, tx *txn, k checkName) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM checks WHERE system_id = ? AND check_name = ?`, k.system, k.check).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		// On PostgreSQL a replica numbering the same check at the same time
		// makes this insert wait for its commit and then do nothing; the
		// number is then read again.
		err = tx.QueryRow(ctx, `INSERT INTO checks (system_id, check_name) VALUES (?, ?)
			ON CONFLICT (system_id, check_name) DO NOTHING RETURNING id`, k.system, k.check).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			err = tx.QueryRow(ctx, `SELECT id FROM checks WHERE system_id = ? AND check_name = ?`, k.system, k.check).Scan(&id)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("number check %s of %s: %w", k.check, k.system, err)
	}
	return id, nil
}

// stateKey names a check state: an agent's view of a check.
type stateKey struct {
	agent string
	check int64
}

// checkState is what RecordResults knows and changes of a check state.
type checkState struct {
	status                int
	count                 int // results in a row with this status
	sinceUS, lastResultUS int64
	output                string
	metrics               sql.NullString
	dirty                 bool // to be written
}

// agentSeq is the sequence of an agent that may store results.
type agentSeq struct {
	id                 string
	lastSeq, storedSeq int64
}

// lockAgents returns the last sequence of each agent of ids that exists and
// is not revoked, locking its row on PostgreSQL.
func (s *Store) lockAgents(ctx context.Context, tx *txn, ids []string) (map[string]*agentSeq, error) {
	in, arg := s.inStrings("id", ids)
	rows, err := tx.Query(ctx, `SELECT id, last_seq, revoked_us FROM agents WHERE `+in+` ORDER BY id`+s.forUpdate(), arg)
	if err != nil {
		return nil, fmt.Errorf("query agents: %w", err)
	}
	defer rows.Close()
	agents := make(map[string]*agentSeq, len(ids))
	for rows.Next() {
		var (
			id      string
			seq     int64
			revoked sql.NullInt64
		)
		if err := rows.Scan(&id, &seq, &revoked); err != nil {
			return nil, fmt.Errorf("scan agent: %w", err)
		}
		if !revoked.Valid {
			agents[id] = &agentSeq{id: id, lastSeq: seq, storedSeq: seq}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read agents: %w", err)
	}
	return agents, nil
}

// agentStates returns the check states of the agents, with what a result
// needs to know of them: status and since.
func (s *Store) agentStates(ctx context.Context, tx *txn, ids []string, agents map[string]*agentSeq) (map[stateKey]*checkState, error) {
	in, arg := s.inStrings("agent_id", ids)
	rows, err := tx.Query(ctx, `SELECT agent_id, check_id, status, count, since_us FROM check_states WHERE `+in, arg)
	if err != nil {
		return nil, fmt.Errorf("query check states: %w", err)
	}
	defer rows.Close()
	states := make(map[stateKey]*checkState, len(ids)*16)
	var agent sql.RawBytes // one of ids: read into a reused buffer, not a new string
	for rows.Next() {
		var (
			checkID int64
			st      checkState
		)
		if err := rows.Scan(&agent, &checkID, &st.status, &st.count, &st.sinceUS); err != nil {
			return nil, fmt.Errorf("scan check state: %w", err)
		}
		if a := agents[string(agent)]; a != nil {
			states[stateKey{a.id, checkID}] = &st
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read check states: %w", err)
	}
	return states, nil
}

// updateLastSeqs writes the sequences of the agents that moved.
func updateLastSeqs(ctx context.Context, tx *txn, ids []string, agents map[string]*agentSeq) error {
	var moved []string
	var seqs []int64
	for _, id := range ids {
		if a := agents[id]; a.lastSeq != a.storedSeq {
			moved = append(moved, id)
			seqs = append(seqs, a.lastSeq)
		}
	}
	if len(moved) == 0 {
		return nil
	}
	if tx.dialect == Postgres {
		// One statement, not a round trip per agent.
		if _, err := tx.Exec(ctx, `
			UPDATE agents SET last_seq = v.seq FROM unnest(?::text[], ?::bigint[]) AS v (id, seq)
			WHERE agents.id = v.id`, moved, seqs); err != nil {
			return fmt.Errorf("update last seqs: %w", err)
		}
		return nil
	}
	stmt, err := tx.Stmt(ctx, `UPDATE agents SET last_seq = ? WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("prepare last seq update: %w", err)
	}
	for i, id := range moved {
		if _, err := stmt.ExecContext(ctx, seqs[i], id); err != nil {
			return fmt.Errorf("update last seq of agent %s: %w", id, err)
		}
	}
	return nil
}

// The columns RecordResults writes, each with its type in PostgreSQL.
var (
	resultColumns = []string{"check_id bigint", "agent_id text", "seq bigint", "status smallint", "output text",
		"metrics text", "started_us bigint", "duration_ns bigint", "received_us bigint"}
	stateColumns = []string{"agent_id text", "check_id bigint", "status smallint", "count integer", "output text", "metrics text",
		"since_us bigint", "last_result_us bigint"}
	changeColumns = []string{"system_id text", "check_name text", "agent_id text", "from_status smallint",
		"to_status smallint", "at_us bigint", "output text", "is_first boolean"}
)

// dayKey names the summary of a check on an agent on a day.
type dayKey struct {
	system, check, agent string
	day                  int64
}

// microsPerDay turns at_us into days since 1970-01-01.
const microsPerDay = int64(24 * time.Hour / time.Microsecond)

// severitySQL ranks a status column the way aramaki.Status.Worse does.
func severitySQL(col string) string {
	return `CASE ` + col + ` WHEN 0 THEN 0 WHEN 3 THEN 1 WHEN 1 THEN 2 ELSE 3 END`
}

// addCheckDays counts status changes (in the order they happened) into the
// summaries of their days.
func addCheckDays(ctx context.Context, tx *txn, changes []aramaki.StatusChange) error {
	days := map[dayKey]*aramaki.CheckDay{}
	var order []dayKey
	for _, c := range changes {
		k := dayKey{c.System, c.Check, c.Agent, micros(c.At) / microsPerDay}
		d := days[k]
		if d == nil {
			d = &aramaki.CheckDay{}
			days[k] = d
			order = append(order, k)
		}
		d.Add(c)
	}
	args := make([]any, 0, len(order)*len(dayColumns))
	for _, k := range order {
		d := days[k]
		args = append(args, k.system, k.check, k.agent, k.day, int(d.Worst), int(d.Last), d.Changes)
	}
	err := insertRows(ctx, tx, "check_days", dayColumns, `
		ON CONFLICT (system_id, check_name, agent_id, day) DO UPDATE SET
			worst = CASE WHEN `+severitySQL("excluded.worst")+` > `+severitySQL("check_days.worst")+`
				THEN excluded.worst ELSE check_days.worst END,
			last = excluded.last, changes = check_days.changes + excluded.changes`, args)
	if err != nil {
		return fmt.Errorf("update check days: %w", err)
	}
	return nil
}

var dayColumns = []string{"system_id text", "check_name text", "agent_id text", "day bigint",
	"worst smallint", "last smallint", "changes integer"}

// CheckDays returns the day summaries of every check of a system from the
// day of since on, with the newest summary before it of each check and
// agent: what the 30-day strips of its checks are drawn from.
func (s *Store) CheckDays(ctx context.Context, system string, since time.Time) ([]aramaki.CheckDay, error) {
	var days []aramaki.CheckDay
	first := micros(since) / microsPerDay
	err := s.read(ctx, func(tx *txn) error {
		rows, err := tx.Query(ctx, `
			SELECT check_name, agent_id, day, worst, last, changes FROM (
				SELECT check_name, agent_id, day, worst, last, changes,
					ROW_NUMBER() OVER (PARTITION BY check_name, agent_id ORDER BY day DESC) AS n
				FROM check_days WHERE system_id = ? AND day < ?
			) AS earlier WHERE n = 1
			UNION ALL
			SELECT check_name, agent_id, day, worst, last, changes
			FROM check_days WHERE system_id = ? AND day >= ?`,
			system, first, system, first)
		if err != nil {
			return fmt.Errorf("query check days: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				day         int64
				worst, last int
			)
			d := aramaki.CheckDay{}
			if err := rows.Scan(&d.Check, &d.Agent, &day, &worst, &last, &d.Changes); err != nil {
				return fmt.Errorf("scan check day: %w", err)
			}
			d.Day, d.Worst, d.Last = fromMicros(day*microsPerDay), aramaki.Status(worst), aramaki.Status(last)
			days = append(days, d)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read check days: %w", err)
		}
		return nil
	})
	return days, err
}

// maxRowsPerInsert bounds the rows of one multi-row statement on SQLite:
// 256 rows of 10 columns stay far below its limit of 32766 parameters, and
// the statement is still cheap to prepare.
const maxRowsPerInsert = 256

// insertRows inserts rows into table, args holding their values row after
// row in the order of columns ("name type"), and suffix (ON CONFLICT …)
// following the rows. In a hot path the cost is in the statements, not in
// the rows, so there are few: on PostgreSQL one, whose parameters are the
// columns, as arrays (unnest); on SQLite, which has no arrays, statements
// of 256, 128, 64, … rows of parameters, a handful of statements that are
// prepared once for the store and insert any number of rows.
func insertRows(ctx context.Context, tx *txn, table string, columns []string, suffix string, args []any) error {
	return insertRowsReturning(ctx, tx, table, columns, suffix, args, nil)
}

// insertRowsReturning is insertRows whose suffix ends in RETURNING: scan
// reads each row returned. Rows go in in the order of args.
func insertRowsReturning(ctx context.Context, tx *txn, table string, columns []string, suffix string, args []any, scan func(*sql.Rows) error) error {
	cols := len(columns)
	n := len(args) / cols
	if n == 0 {
		return nil
	}
	names := make([]string, cols)
	for i, c := range columns {
		names[i], _, _ = strings.Cut(c, " ")
	}
	insert := `INSERT INTO ` + table + ` (` + strings.Join(names, ", ") + `) `
	run := func(st *sql.Stmt, args []any) error {
		if scan == nil {
			_, err := st.ExecContext(ctx, args...)
			return err
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}

	if tx.dialect == Postgres {
		arrays := make([]any, cols)
		unnest := make([]string, cols)
		for i, c := range columns {
			_, typ, _ := strings.Cut(c, " ")
			unnest[i] = "?::" + typ + "[]"
			column := make([]any, n)
			for r := range n {
				column[r] = args[r*cols+i]
			}
			arrays[i] = column
		}
		st, err := tx.Stmt(ctx, insert+`SELECT * FROM unnest(`+strings.Join(unnest, ", ")+`)`+suffix)
		if err != nil {
			return err
		}
		return run(st, arrays)
	}

	row := "(?" + strings.Repeat(", ?", cols-1) + ")"
	for done := 0; done < n; {
		k := maxRowsPerInsert
		for k > n-done {
			k /= 2
		}
		st, err := tx.Stmt(ctx, insert+`VALUES `+row+strings.Repeat(", "+row, k-1)+suffix)
		if err != nil {
			return err
		}
		if err := run(st, args[done*cols:(done+k)*cols]); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// inStrings is a condition that column is one of values, and its one
// argument: a JSON array on SQLite, a text[] on PostgreSQL. One argument
// however many values, so that no statement outgrows the limits on
// parameters.
func (s *Store) inStrings(column string, values []string) (string, any) {
	if s.dialect == Postgres {
		return column + ` = ANY (?::text[])`, values
	}
	if values == nil {
		values = []string{}
	}
	b, _ := json.Marshal(values) // strings always marshal
	return column + ` IN (SELECT value FROM json_each(?))`, string(b)
}

// inIDs is inStrings for integer ids written in decimal, keeping the
// column's index usable.
func (s *Store) inIDs(column string, ids []string) (string, any) {
	list := "[" + strings.Join(ids, ",") + "]"
	if s.dialect == Postgres {
		return column + ` = ANY (?::bigint[])`, "{" + strings.Join(ids, ",") + "}"
	}
	return column + ` IN (SELECT value FROM json_each(?))`, list
}

// CheckStates returns the current states of the checks on the systems (of
// all systems when systems is nil), ordered by system, check and agent.
func (s *Store) CheckStates(ctx context.Context, systems []string) ([]aramaki.CheckState, error) {
	query := `
		SELECT c.system_id, c.check_name, s.agent_id, s.status, s.count, s.output, s.metrics, s.since_us, s.last_result_us
		FROM check_states s JOIN checks c ON c.id = s.check_id`
	var args []any
	if systems != nil {
		in, arg := s.inStrings("c.system_id", systems)
		query, args = query+` WHERE `+in, []any{arg}
	}
	var states []aramaki.CheckState
	err := s.read(ctx, func(tx *txn) error {
		rows, err := tx.Query(ctx, query+` ORDER BY c.system_id, c.check_name, s.agent_id`, args...)
		if err != nil {
			return fmt.Errorf("query check states: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				st                    aramaki.CheckState
				status                int
				metrics               sql.NullString
				sinceUS, lastResultUS int64
			)
			if err := rows.Scan(&st.System, &st.Check, &st.Agent, &status, &st.Count, &st.Output, &metrics, &sinceUS, &lastResultUS); err != nil {
				return fmt.Errorf("scan check state: %w", err)
			}
			st.Status = aramaki.Status(status)
			st.Since = fromMicros(sinceUS)
			st.LastResult = fromMicros(lastResultUS)
			if st.Metrics, err = decodeMetrics(metrics); err != nil {
				return fmt.Errorf("check %s on %s: %w", st.Check, st.System, err)
			}
			states = append(states, st)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read check states: %w", err)
		}
		return nil
	})
	return states, err
}

func decodeMetrics(v sql.NullString) ([]aramaki.Metric, error) {
	if !v.Valid {
		return nil, nil
	}
	var m []aramaki.Metric
	if err := json.Unmarshal([]byte(v.String), &m); err != nil {
		return nil, fmt.Errorf("decode metrics: %w", err)
	}
	return m, nil
}

// StatusChanges returns the history of one check on a system, of every
// agent, oldest first: the changes from since on and, for each agent, the
// last change before since, so that the status in force at since is known.
func (s *Store) StatusChanges(ctx context.Context, system, check string, since time.Time) ([]aramaki.StatusChange, error) {
	var changes []aramaki.StatusChange
	err := s.read(ctx, func(tx *txn) error {
		rows, err := tx.Query(ctx, `
			SELECT id, agent_id, from_status, to_status, at_us, output, is_first FROM (
				SELECT id, agent_id, from_status, to_status, at_us, output, is_first,
					ROW_NUMBER() OVER (PARTITION BY agent_id ORDER BY at_us DESC, id DESC) AS n
				FROM status_changes WHERE system_id = ? AND check_name = ? AND at_us < ?
			) AS earlier WHERE n = 1
			UNION ALL
			SELECT id, agent_id, from_status, to_status, at_us, output, is_first
			FROM status_changes WHERE system_id = ? AND check_name = ? AND at_us >= ?
			ORDER BY at_us, id`,
			system, check, micros(since), system, check, micros(since))
		if err != nil {
			return fmt.Errorf("query status changes: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id       int64
				from, to int
				atUS     int64
			)
			c := aramaki.StatusChange{System: system, Check: check}
			if err := rows.Scan(&id, &c.Agent, &from, &to, &atUS, &c.Output, &c.First); err != nil {
				return fmt.Errorf("scan status change: %w", err)
			}
			c.From, c.To, c.At = aramaki.Status(from), aramaki.Status(to), fromMicros(atUS)
			changes = append(changes, c)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read status changes: %w", err)
		}
		return nil
	})
	return changes, err
}

// Results page sizes.
const (
	defaultResultsLimit = 50
	maxResultsLimit     = 1000
)

// Results returns the newest results of a check on a system, of every
// agent, newest first by the time they started. limit is 50 when not
// positive, and at most 1000.
func (s *Store) Results(ctx context.Context, system, check string, limit int) ([]aramaki.CheckResult, error) {
	if limit <= 0 {
		limit = defaultResultsLimit
	}
	limit = min(limit, maxResultsLimit)
	var results []aramaki.CheckResult
	err := s.read(ctx, func(tx *txn) error {
		rows, err := tx.Query(ctx, `
			SELECT agent_id, seq, status, output, metrics, started_us, duration_ns, received_us
			FROM results WHERE check_id = (SELECT id FROM checks WHERE system_id = ? AND check_name = ?)
			ORDER BY started_us DESC, id DESC LIMIT ?`, system, check, limit)
		if err != nil {
			return fmt.Errorf("query results: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				r                     aramaki.CheckResult
				seq                   int64
				status                int
				metrics               sql.NullString
				startedUS, receivedUS int64
				durationNS            int64
			)
			if err := rows.Scan(&r.Agent, &seq, &status, &r.Output, &metrics, &startedUS, &durationNS, &receivedUS); err != nil {
				return fmt.Errorf("scan result: %w", err)
			}
			r.System, r.Check, r.Seq, r.Status = system, check, uint64(seq), aramaki.Status(status)
			r.Started, r.Duration, r.Received = fromMicros(startedUS), time.Duration(durationNS), fromMicros(receivedUS)
			if r.Metrics, err = decodeMetrics(metrics); err != nil {
				return fmt.Errorf("result %d of agent %s: %w", seq, r.Agent, err)
			}
			results = append(results, r)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read results: %w", err)
		}
		return nil
	})
	return results, err
}

// DeleteCheckStates forgets the states of checks that are no longer
// declared: those of the systems not in keep, or whose check is not in
// keep[system]. The keepalive check is never forgotten this way. Their
// history stays, until pruned.
func (s *Store) DeleteCheckStates(ctx context.Context, keep map[string][]string) error {
	return s.write(ctx, func(tx *txn) error {
		rows, err := tx.Query(ctx, `
			SELECT id, system_id, check_name FROM checks
			WHERE check_name <> ? AND id IN (SELECT check_id FROM check_states)`, aramaki.KeepaliveCheck)
		if err != nil {
			return fmt.Errorf("query checks: %w", err)
		}
		var gone []int64
		for rows.Next() {
			var (
				id            int64
				system, check string
			)
			if err := rows.Scan(&id, &system, &check); err != nil {
				rows.Close()
				return fmt.Errorf("scan check: %w", err)
			}
			if !slices.Contains(keep[system], check) {
				gone = append(gone, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read checks: %w", err)
		}
		for _, id := range gone {
			if _, err := tx.Exec(ctx, `INSERT INTO alert_pending (system_id, check_name)
				SELECT system_id, check_name FROM checks WHERE id = ? `+pendingAgain, id); err != nil {
				return fmt.Errorf("mark alerts pending: %w", err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM check_states WHERE check_id = ?`, id); err != nil {
				return fmt.Errorf("delete check states: %w", err)
			}
		}
		return nil
	})
}

// pruneChunk is how many results one pruning transaction deletes.
const pruneChunk = 10000

// Prune deletes the results received before resultsBefore, and the status
// changes before historyBefore but the last of each check and agent
// before it, which tells the status in force at historyBefore. Results go
// in transactions of pruneChunk rows, so that on SQLite the writers of new
// results never wait for more than one chunk.
func (s *Store) Prune(ctx context.Context, resultsBefore, historyBefore time.Time) error {
	// Results go in small transactions, so that the writers of new results
	// wait for one chunk at most, never for the whole prune.
	for {
		var n int64
		err := s.write(ctx, func(tx *txn) error {
			res, err := tx.Exec(ctx, `DELETE FROM results WHERE id IN (
				SELECT id FROM results WHERE received_us < ? ORDER BY received_us LIMIT ?)`, micros(resultsBefore), pruneChunk)
			if err != nil {
				return fmt.Errorf("prune results: %w", err)
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
	return s.write(ctx, func(tx *txn) error {
		if _, err := tx.Exec(ctx, `
			DELETE FROM status_changes WHERE id IN (
				SELECT id FROM (
					SELECT id, ROW_NUMBER() OVER (PARTITION BY system_id, check_name, agent_id ORDER BY at_us DESC, id DESC) AS n
					FROM status_changes WHERE at_us < ?
				) AS old WHERE n > 1
			)`, micros(historyBefore)); err != nil {
			return fmt.Errorf("prune status changes: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			DELETE FROM check_days WHERE (system_id, check_name, agent_id, day) IN (
				SELECT system_id, check_name, agent_id, day FROM (
					SELECT system_id, check_name, agent_id, day,
						ROW_NUMBER() OVER (PARTITION BY system_id, check_name, agent_id ORDER BY day DESC) AS n
					FROM check_days WHERE day < ?
				) AS old WHERE n > 1
			)`, micros(historyBefore)/microsPerDay); err != nil {
			return fmt.Errorf("prune check days: %w", err)
		}
		return nil
	})
}
