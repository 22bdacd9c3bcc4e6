package aramaki

import (
	"encoding/json"
	"regexp"
	"slices"

	"strings"
	"time"
)

// Status is the state of a check, as Nagios plugins exit: 0 OK, 1 WARNING,
// 2 CRITICAL, 3 UNKNOWN. It travels as its name in the API.
type Status int

const (
	StatusOK       Status = 0
	StatusWarning  Status = 1
	StatusCritical Status = 2
	StatusUnknown  Status = 3
)

// Statuses lists every status, mildest first.
var Statuses = []Status{StatusOK, StatusUnknown, StatusWarning, StatusCritical}

// StatusFromExit maps a plugin's exit code to a status: anything but 0-2 is
// UNKNOWN.
func StatusFromExit(code int) Status {
	if code >= 0 && code <= 2 {
		return Status(code)
	}
	return StatusUnknown
}

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusWarning:
		return "warning"
	case StatusCritical:
		return "critical"
	}
	return "unknown"
}

// ParseStatus reads a status name.
func ParseStatus(name string) (Status, error) {
	for _, s := range Statuses {
		if s.String() == strings.ToLower(name) {
			return s, nil
		}
	}
	return StatusUnknown, Errorf(EINVALID, "unknown status %q (use ok, warning, critical or unknown)", name)
}

// MarshalText writes the name.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the name.
func (s *Status) UnmarshalText(b []byte) error {
	v, err := ParseStatus(string(b))
	*s = v
	return err
}

// severity orders statuses for roll-up: a critical check outweighs a
// warning, a warning an unknown, an unknown OK.
func (s Status) severity() int {
	switch s {
	case StatusOK:
		return 0
	case StatusUnknown:
		return 1
	case StatusWarning:
		return 2
	}
	return 3
}

// Worse returns the more severe of two statuses.
func (s Status) Worse(o Status) Status {
	if o.severity() > s.severity() {
		return o
	}
	return s
}

// Problem reports whether the status needs attention.
func (s Status) Problem() bool { return s != StatusOK }

// Metric is a measurement from a check's perfdata or Prometheus output.
type Metric struct {
	Name   string            `json:"name"`
	Value  float64           `json:"value"`
	Unit   string            `json:"unit,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// KeepaliveCheck is the name of the check the server keeps for every agent
// on each of its systems: critical when the agent falls silent.
const KeepaliveCheck = "keepalive"

// CheckResult is one observation: a run of a check on an agent for a
// system. Seq numbers an agent's results; the server's own results (the
// keepalive check) have Seq 0.
type CheckResult struct {
	Agent    string        `json:"agent"`
	Seq      uint64        `json:"seq,omitempty"`
	System   string        `json:"system"`
	Check    string        `json:"check"`
	Status   Status        `json:"status"`
	Output   string        `json:"output"`
	Metrics  []Metric      `json:"metrics,omitempty"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Received time.Time     `json:"received"`
	// Request is set on a run someone asked for (aramaki check run); it is
	// not stored.
	Request string `json:"request,omitempty"`
}

// CheckState is the current status of a check on a system, as one agent
// reports it.
type CheckState struct {
	System     string    `json:"system"`
	Check      string    `json:"check"`
	Agent      string    `json:"agent"`
	Status     Status    `json:"status"`
	Output     string    `json:"output"`
	Metrics    []Metric  `json:"metrics,omitempty"`
	Since      time.Time `json:"since"`       // when it entered this status
	Count      int       `json:"count"`       // results in a row with this status
	LastResult time.Time `json:"last_result"` // when the last result came
}

// StatusChange is a transition of a check's status: the history that
// answers "is this always broken?".
type StatusChange struct {
	System string    `json:"system"`
	Check  string    `json:"check"`
	Agent  string    `json:"agent"`
	From   Status    `json:"from"`
	To     Status    `json:"to"`
	At     time.Time `json:"at"`
	Output string    `json:"output"`
	// First is set on the first result of a check: there was no status before.
	First bool `json:"first,omitempty"`
}

// StatusChangedData is the detail of a status.changed event.
type StatusChangedData struct {
	StatusChange
}

// KindStatusChanged is the timeline kind of a check's status change.
const KindStatusChanged EventKind = "status.changed"

// KindResultsLost is the timeline kind of an agent's report that its queue
// overflowed and results were dropped.
const KindResultsLost EventKind = "agent.results_lost"

// CheckStats says whether a check is always broken or just broke: time in
// each status over a window, how often it changed, when it last did.
type CheckStats struct {
	Window     string                   `json:"window"` // "24h", "7d", "30d"
	InStatus   map[string]time.Duration `json:"in_status_ns"`
	Share      map[string]float64       `json:"share"` // of the observed time in the window
	Changes    int                      `json:"changes"`
	LastChange *time.Time               `json:"last_change,omitempty"`
	// FirstProblem is when the current problem started, if it is one.
	FirstProblem *time.Time `json:"first_problem,omitempty"`
	Flapping     bool       `json:"flapping"`
}

// Flapping: a check that changed this often in the last hour flaps.
const (
	FlapWindow  = time.Hour
	FlapChanges = 6
)

// ComputeStats derives statistics for a window ending at now from the
// check's status changes (any order, may start before the window) and its
// current state. Time before the first known status is not counted.
func ComputeStats(window string, d time.Duration, changes []StatusChange, current CheckState, now time.Time) CheckStats {
	st := CheckStats{Window: window, InStatus: map[string]time.Duration{}, Share: map[string]float64{}}
	start := now.Add(-d)
	sorted := make([]StatusChange, len(changes))
	copy(sorted, changes)
	sortChanges(sorted)
	// Walk the timeline: the status in force from each change to the next.
	var cur *Status
	var curFrom time.Time
	account := func(until time.Time) {
		if cur == nil {
			return
		}
		from := curFrom
		if from.Before(start) {
			from = start
		}
		if until.After(from) {
			st.InStatus[cur.String()] += until.Sub(from)
		}
	}
	flaps := 0
	for _, c := range sorted {
		if c.At.After(now) {
			break
		}
		account(c.At)
		to := c.To
		cur, curFrom = &to, c.At
		if !c.At.Before(start) && !c.First {
			st.Changes++
			at := c.At
			st.LastChange = &at
		}
		if !c.First && c.At.After(now.Add(-FlapWindow)) {
			flaps++
		}
	}
	if cur == nil && !current.Since.IsZero() {
		s := current.Status
		cur, curFrom = &s, current.Since
	}
	account(now)
	var total time.Duration
	for _, v := range st.InStatus {
		total += v
	}
	for k, v := range st.InStatus {
		st.Share[k] = float64(v) / float64(total)
	}
	if current.Status.Problem() && !current.Since.IsZero() {
		since := current.Since
		st.FirstProblem = &since
	}
	st.Flapping = flaps >= FlapChanges
	return st
}

func sortChanges(cs []StatusChange) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].At.Before(cs[j-1].At); j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// Agent is a process on a host, enrolled to this server for some systems.
type Agent struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"` // the host name it enrolled with
	Systems   []string   `json:"systems"`
	PublicKey []byte     `json:"public_key"`
	Version   string     `json:"version,omitempty"`
	Enrolled  time.Time  `json:"enrolled"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	Revoked   *time.Time `json:"revoked,omitempty"`
	// LastSeq is the highest result sequence stored from this agent.
	LastSeq uint64 `json:"last_seq"`
	// Actions are what the host allows, as the agent last said.
	Actions []ActionSpec `json:"actions,omitempty"`
}

// Action returns the host's declaration of an action, if it allows it.
func (a Agent) Action(name string) (ActionSpec, bool) {
	for _, s := range a.Actions {
		if s.Name == name {
			return s, true
		}
	}
	return ActionSpec{}, false
}

var agentNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

// ValidateAgentName checks the host name an agent enrolls with: it is shown
// on pages and in terminals and picks hosts for checks, so it is a plain
// host name.
func ValidateAgentName(name string) error {
	if !agentNamePattern.MatchString(name) {
		return Errorf(EINVALID, "invalid agent name %q: use a host name (letters, digits, '.', '-', '_')", name)
	}
	return nil
}

// EnrollmentToken lets one new agent enroll for some systems, once, before
// it expires. The secret is shown once; the store keeps its hash.
type EnrollmentToken struct {
	ID        string     `json:"id"`
	Systems   []string   `json:"systems"`
	CreatedBy string     `json:"created_by"`
	Created   time.Time  `json:"created"`
	Expires   time.Time  `json:"expires"`
	Used      *time.Time `json:"used,omitempty"`
	AgentID   string     `json:"agent_id,omitempty"`
}

// Facts is what an agent found out about its host, as it reported it.
type Facts struct {
	Agent     string          `json:"agent"`
	Collected time.Time       `json:"collected"`
	Received  time.Time       `json:"received"`
	Facts     json.RawMessage `json:"facts"`
}

// Agent event kinds.
const (
	KindAgentEnrolled EventKind = "agent.enrolled"
	KindAgentRevoked  EventKind = "agent.revoked"
	// KindAgentActions: the actions a host allows changed (its agent's
	// local configuration), as the agent said on connecting.
	KindAgentActions EventKind = "agent.actions"
	KindTokenIssued  EventKind = "agent.token_created"
	KindCheckRun     EventKind = "check.run" // someone asked for a check to run now
)

// SplitCommand splits a check command into arguments the way a POSIX shell
// splits words, without any of its expansions: whitespace separates, single
// quotes keep everything, double quotes keep everything but \" and \\, a
// backslash outside quotes escapes the next character. Commands never run
// through a shell.
func SplitCommand(cmd string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	const (
		plain = iota
		single
		double
	)
	state := plain
	rs := []rune(cmd)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch state {
		case single:
			if r == '\'' {
				state = plain
			} else {
				cur.WriteRune(r)
			}
		case double:
			switch {
			case r == '"':
				state = plain
			case r == '\\' && i+1 < len(rs) && (rs[i+1] == '"' || rs[i+1] == '\\'):
				i++
				cur.WriteRune(rs[i])
			default:
				cur.WriteRune(r)
			}
		default:
			switch {
			case r == ' ' || r == '\t' || r == '\n':
				if inWord {
					args = append(args, cur.String())
					cur.Reset()
					inWord = false
				}
				continue
			case r == '\'':
				state = single
			case r == '"':
				state = double
			case r == '\\':
				if i+1 >= len(rs) {
					return nil, Errorf(EINVALID, "command ends with a backslash")
				}
				i++
				cur.WriteRune(rs[i])
			case r == 0:
				return nil, Errorf(EINVALID, "command contains a NUL character")
			default:
				cur.WriteRune(r)
			}
		}
		inWord = true
	}
	if state != plain {
		return nil, Errorf(EINVALID, "command has an unclosed quote")
	}
	if inWord {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, Errorf(EINVALID, "command is empty")
	}
	return args, nil
}

// CheckDefaults are the interval and timeout of a check that names none.
const (
	DefaultCheckInterval = time.Minute
	DefaultCheckTimeout  = 30 * time.Second
)

// Schedule returns the check's interval and timeout, with defaults.
func (c *Check) Schedule() (interval, timeout time.Duration, err error) {
	interval, timeout = DefaultCheckInterval, DefaultCheckTimeout
	if c.Interval != "" {
		if interval, err = time.ParseDuration(c.Interval); err != nil || interval < time.Second {
			return 0, 0, Errorf(EINVALID, "check %s: interval %q must be a duration of at least 1s", c.Name, c.Interval)
		}
	}
	if c.Timeout != "" {
		if timeout, err = time.ParseDuration(c.Timeout); err != nil || timeout <= 0 || timeout > time.Hour {
			return 0, 0, Errorf(EINVALID, "check %s: timeout %q must be a duration up to 1h", c.Name, c.Timeout)
		}
	}
	return interval, timeout, nil
}

// ResultBatch is results from one agent, in ascending Seq order.
type ResultBatch struct {
	Agent   string
	Results []CheckResult
	// Through, when above the highest Seq of Results, moves the agent's
	// LastSeq there too: the service dropped those results (checks the
	// agent does not run) and the agent must not send them again.
	Through uint64
	// Gap, when set, reports results the agent dropped; the store moves
	// LastSeq past it and appends the event.
	Gap *GapReport
}

// GapReport says results of an agent will never arrive: sequences From..To
// were lost (a full queue, a damaged disk) or would be refused.
type GapReport struct {
	From, To uint64
	Event    Event
}

// AgentSeen is when an agent was last heard from.
type AgentSeen struct {
	Agent   string
	At      time.Time
	Version string
}

// DayStatus is how a check fared on one day: the worst status in force at
// any time that day; Known is false for days before its first result.
type DayStatus struct {
	Day    time.Time `json:"day"`
	Status Status    `json:"status"`
	Known  bool      `json:"known"`
}

// CheckDay sums up one UTC day of a check on one agent: the worst status in
// force at any time that day (counting the status it started the day in),
// the status it ended the day in, and how many times it changed. The store
// keeps one per day with changes, so that the 30-day strip of a check is a
// read of at most 31 rows however often the check flapped.
type CheckDay struct {
	Check   string
	Agent   string
	Day     time.Time // midnight UTC
	Worst   Status
	Last    Status
	Changes int // not counting the first result
}

// DayOf is the UTC day t falls on.
func DayOf(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// Add counts a status change (of this check and agent, on this day, newer
// than the ones added before) into the day.
func (d *CheckDay) Add(c StatusChange) {
	if d.Day.IsZero() {
		d.Check, d.Agent, d.Day, d.Worst = c.Check, c.Agent, DayOf(c.At), c.To
	}
	if !c.First {
		// The status before a change was in force that day too, unless it
		// ended on the stroke of midnight.
		if c.At.After(d.Day) {
			d.Worst = d.Worst.Worse(c.From)
		}
		d.Changes++
	}
	d.Worst, d.Last = d.Worst.Worse(c.To), c.To
}

// Merge folds a later part of the same day into d.
func (d *CheckDay) Merge(later CheckDay) {
	d.Worst, d.Last, d.Changes = d.Worst.Worse(later.Worst), later.Last, d.Changes+later.Changes
}

// DayStatuses draws a check's last days (UTC days, oldest first, today
// last) from the summaries of its days (of one agent, any order, the newest
// one before the first day included) and its current state: the 30-day
// strip that shows at a glance whether it is always broken.
func DayStatuses(summaries []CheckDay, current CheckState, days int, now time.Time) []DayStatus {
	sorted := slices.Clone(summaries)
	slices.SortFunc(sorted, func(a, b CheckDay) int { return a.Day.Compare(b.Day) })
	if len(sorted) == 0 && !current.Since.IsZero() {
		sorted = []CheckDay{{Day: DayOf(current.Since), Worst: current.Status, Last: current.Status}}
	}
	today := DayOf(now)
	out := make([]DayStatus, days)
	next := 0 // the first summary not yet behind us
	var carry *Status
	for i := range out {
		out[i].Day = today.AddDate(0, 0, i-days+1)
		for next < len(sorted) && sorted[next].Day.Before(out[i].Day) {
			last := sorted[next].Last
			carry = &last
			next++
		}
		switch {
		case next < len(sorted) && sorted[next].Day.Equal(out[i].Day):
			out[i].Status, out[i].Known = sorted[next].Worst, true
		case carry != nil:
			out[i].Status, out[i].Known = *carry, true
		}
	}
	return out
}
