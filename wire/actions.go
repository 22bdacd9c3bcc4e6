package wire

import (
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Action runs, since version 2. The agent declares the actions its host's
// local configuration allows; the server may only start one of those, by
// name, with values for its parameters, and the agent checks them again
// before it runs anything.
//
// A declaration is checked here by the rules of aramaki.ActionSpec.Validate,
// repeated because this package imports nothing of ours (the layout test
// keeps it so); a test holds the two together. Conversion to and from the
// domain's types belongs to the adapters, as for check results.

// Limits of action runs. MaxParams, MaxParamValue and MaxActionTimeout are
// the domain's.
const (
	MaxActions       = 256       // declarations per actions frame
	MaxParams        = 32        // parameters of an action; values in a start frame
	MaxParamValue    = 1024      // bytes of a parameter value
	MaxActionTimeout = time.Hour // longest run
	MaxActionText    = 1024      // bytes of a description or a pattern
	MaxEnumValues    = 256       // choices of an enum parameter
	MaxOutputChunk   = 16 << 10  // bytes of output per output frame
	MaxRunError      = 1 << 10   // bytes of the error of a finished frame
	MaxRuns          = 1000      // runs per runs frame
)

// Output streams of a run.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// Names and patterns as the domain has them.
var (
	actionNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	placeholder       = regexp.MustCompile(`\{([a-z0-9_-]+)\}`)
	userPattern       = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	runIDPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// defaultParamPattern is aramaki.DefaultParamPattern: a plain word, path or
// host name, never an option.
const defaultParamPattern = `[A-Za-z0-9_][A-Za-z0-9_./=,-]{0,255}`

// ValidRunID reports whether s is a well-formed run id: letters, digits,
// '.', '_' and '-', starting with a letter or digit, at most 64 bytes.
func ValidRunID(s string) bool { return runIDPattern.MatchString(s) }

// plainText is text without NUL, which neither a program's arguments nor
// PostgreSQL's text can hold.
func plainText(field, s string, max int) error {
	if err := validText(field, s, max); err != nil {
		return err
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errorf("%s holds a NUL byte", field)
	}
	return nil
}

// ActionParam declares a parameter of an action, as aramaki.Param does.
type ActionParam struct {
	Name        string `json:"name"`
	Type        string `json:"type"` // string, int, bool or enum
	Description string `json:"description,omitempty"`
	// Pattern a string must match, whole; without one, a plain word.
	Pattern string `json:"pattern,omitempty"`
	// Min and Max bound an int.
	Min *int64 `json:"min,omitempty"`
	Max *int64 `json:"max,omitempty"`
	// Values are the choices of an enum.
	Values []string `json:"values,omitempty"`
	// Default is used when no value is given; without one the parameter
	// is required.
	Default *string `json:"default,omitempty"`
}

func (p *ActionParam) validate() error {
	if !actionNamePattern.MatchString(p.Name) {
		return errorf("invalid parameter name %q", clip(p.Name))
	}
	if err := plainText("parameter "+p.Name+" description", p.Description, MaxActionText); err != nil {
		return err
	}
	if err := plainText("parameter "+p.Name+" pattern", p.Pattern, MaxActionText); err != nil {
		return err
	}
	if len(p.Values) > MaxEnumValues {
		return errorf("parameter %s: more than %d values", p.Name, MaxEnumValues)
	}
	for _, v := range p.Values {
		if err := plainText("parameter "+p.Name+" value", v, MaxParamValue); err != nil {
			return err
		}
	}
	switch p.Type {
	case "string":
		if _, err := p.pattern(); err != nil {
			return errorf("parameter %s: pattern does not compile", p.Name)
		}
	case "int":
		if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
			return errorf("parameter %s: min is above max", p.Name)
		}
	case "bool":
	case "enum":
		if len(p.Values) == 0 {
			return errorf("parameter %s: an enum needs values", p.Name)
		}
		for _, v := range p.Values {
			if v == "" || strings.HasPrefix(v, "-") {
				return errorf("parameter %s: enum value %q must be non-empty and not start with -", p.Name, clip(v))
			}
		}
	default:
		return errorf("parameter %s: unknown type %q (string, int, bool or enum)", p.Name, clip(p.Type))
	}
	if p.Default != nil {
		if err := plainText("parameter "+p.Name+" default", *p.Default, MaxParamValue); err != nil {
			return err
		}
		if err := p.check(*p.Default); err != nil {
			return errorf("parameter %s: the default %s", p.Name, err.(*Error).Msg)
		}
	}
	return nil
}

func (p *ActionParam) pattern() (*regexp.Regexp, error) {
	pat := p.Pattern
	if pat == "" {
		pat = defaultParamPattern
	}
	return regexp.Compile(`^(?:` + pat + `)$`)
}

// check validates a value as aramaki.Param does.
func (p *ActionParam) check(v string) error {
	if len(v) > MaxParamValue || strings.ContainsRune(v, 0) || strings.ContainsAny(v, "\n\r") {
		return errorf("value is too long or holds control characters")
	}
	switch p.Type {
	case "string":
		re, err := p.pattern()
		if err != nil || !re.MatchString(v) {
			return errorf("value %q does not match the pattern", clip(v))
		}
		if p.Pattern == "" && slices.Contains(strings.Split(v, "/"), "..") {
			return errorf("value %q climbs out of its directory", clip(v))
		}
	case "int":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errorf("value %q is not a whole number", clip(v))
		}
		if p.Min != nil && n < *p.Min || p.Max != nil && n > *p.Max {
			return errorf("value %d is out of range", n)
		}
		if n < 0 && p.Min == nil {
			return errorf("value %d is negative without a negative min", n)
		}
	case "bool":
		if _, err := strconv.ParseBool(v); err != nil {
			return errorf("value %q is not true or false", clip(v))
		}
	case "enum":
		if !slices.Contains(p.Values, v) {
			return errorf("value %q is not one of the choices", clip(v))
		}
	}
	return nil
}

// ActionDeclaration is an action the host allows, as its agent's local
// configuration declares it (aramaki.ActionSpec).
type ActionDeclaration struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Params      []ActionParam `json:"params,omitempty"`
	// Timeout is the action's own limit on a run; 0 for the default.
	Timeout Duration `json:"timeout_ms"`
	// Argv is the command, with "{param}" placeholders, for people to
	// read: the server only ever names the action.
	Argv []string `json:"argv"`
	// User is who the command runs as, when not the agent's user.
	User string `json:"user,omitempty"`
}

// Validate checks a declaration by the rules of aramaki.ActionSpec.Validate
// and the limits of this package. An agent may use it to leave out of its
// actions frame a declaration the server would refuse.
func (d *ActionDeclaration) Validate() error {
	if !actionNamePattern.MatchString(d.Name) {
		return errorf("invalid action name %q: lower-case letters, digits, - and _, at most 63", clip(d.Name))
	}
	if err := plainText("action "+d.Name+" description", d.Description, MaxActionText); err != nil {
		return err
	}
	if len(d.Argv) == 0 || len(d.Argv) > MaxArgs {
		return errorf("action %s: argv needs 1 to %d arguments", d.Name, MaxArgs)
	}
	for _, a := range d.Argv {
		if err := plainText("action "+d.Name+" argv", a, 4096); err != nil {
			return err
		}
	}
	if !path.IsAbs(d.Argv[0]) || strings.Contains(d.Argv[0], "{") {
		return errorf("action %s: argv must start with the absolute path of a program, without placeholders", d.Name)
	}
	// Compared in milliseconds: D() of a huge value would overflow.
	if d.Timeout < 0 || d.Timeout > Millis(MaxActionTimeout) {
		return errorf("action %s: timeout must be between 0 (the default) and %s", d.Name, MaxActionTimeout)
	}
	if d.User != "" && !userPattern.MatchString(d.User) {
		return errorf("action %s: invalid user %q", d.Name, clip(d.User))
	}
	if len(d.Params) > MaxParams {
		return errorf("action %s: at most %d parameters", d.Name, MaxParams)
	}
	declared := make(map[string]bool, len(d.Params))
	for i := range d.Params {
		p := &d.Params[i]
		if err := p.validate(); err != nil {
			return errorf("action %s: %s", d.Name, err.(*Error).Msg)
		}
		if declared[p.Name] {
			return errorf("action %s: parameter %s is declared twice", d.Name, p.Name)
		}
		declared[p.Name] = true
	}
	for _, arg := range d.Argv[1:] {
		for _, m := range placeholder.FindAllStringSubmatch(arg, -1) {
			if !declared[m[1]] {
				return errorf("action %s: argv uses {%s}, which is not a declared parameter", d.Name, m[1])
			}
		}
	}
	return nil
}

// Actions are all the actions the host allows, replacing what the agent
// declared before: sent after the welcome and whenever the agent's
// configuration changes. An empty list allows nothing.
type Actions struct {
	Actions []ActionDeclaration `json:"actions"`
}

func (*Actions) FrameType() Type { return TypeActions }

func (m *Actions) Validate(time.Time) error {
	if len(m.Actions) > MaxActions {
		return errorf("actions: more than %d", MaxActions)
	}
	seen := make(map[string]bool, len(m.Actions))
	for i := range m.Actions {
		if err := m.Actions[i].Validate(); err != nil {
			return err
		}
		if seen[m.Actions[i].Name] {
			return errorf("action %s is declared twice", m.Actions[i].Name)
		}
		seen[m.Actions[i].Name] = true
	}
	return nil
}

// StartRun asks the agent to run one of its actions. The agent checks the
// values against its own declaration, and answers with output frames and
// a finished frame; a run it refuses finishes failed at once.
type StartRun struct {
	Run    string            `json:"run"`
	Action string            `json:"action"`
	Params map[string]string `json:"params,omitempty"`
	// Timeout is how long the run may take: the agent stops it then, or
	// at the action's own timeout when that is shorter.
	Timeout Duration `json:"timeout_ms"`
}

func (*StartRun) FrameType() Type { return TypeStart }

func (m *StartRun) Validate(time.Time) error {
	if !ValidRunID(m.Run) {
		return errorf("start: invalid run id %q", clip(m.Run))
	}
	if !actionNamePattern.MatchString(m.Action) {
		return errorf("start %s: invalid action name %q", m.Run, clip(m.Action))
	}
	if len(m.Params) > MaxParams {
		return errorf("start %s: more than %d parameters", m.Run, MaxParams)
	}
	for _, k := range slices.Sorted(maps.Keys(m.Params)) {
		if !actionNamePattern.MatchString(k) {
			return errorf("start %s: invalid parameter name %q", m.Run, clip(k))
		}
		if err := plainText("start "+m.Run+" parameter "+k, m.Params[k], MaxParamValue); err != nil {
			return err
		}
	}
	if m.Timeout <= 0 || m.Timeout > Millis(MaxActionTimeout) {
		return errorf("start %s: timeout must be between 1ms and %s", m.Run, MaxActionTimeout)
	}
	return nil
}

// CancelRun asks the agent to stop a run. A run the agent does not know,
// or that is over, is left as it is.
type CancelRun struct {
	Run string `json:"run"`
}

func (*CancelRun) FrameType() Type { return TypeCancel }

func (m *CancelRun) Validate(time.Time) error {
	if !ValidRunID(m.Run) {
		return errorf("cancel: invalid run id %q", clip(m.Run))
	}
	return nil
}

// RunOutput is a piece of a run's output, as it comes. Seq numbers the
// output frames of a run: 1, 2, 3, … The agent sends at most
// aramaki.MaxRunOutput bytes of a run's output and counts the rest in the
// finished frame.
type RunOutput struct {
	Run    string `json:"run"`
	Seq    uint64 `json:"seq"`
	Stream string `json:"stream"` // StreamStdout or StreamStderr
	// Data is text: CleanOutput makes it of what the program wrote.
	Data string `json:"data"`
}

func (*RunOutput) FrameType() Type { return TypeOutput }

func (m *RunOutput) Validate(time.Time) error {
	if !ValidRunID(m.Run) {
		return errorf("output: invalid run id %q", clip(m.Run))
	}
	if m.Seq == 0 {
		return errorf("output %s: seq must be positive", m.Run)
	}
	if m.Stream != StreamStdout && m.Stream != StreamStderr {
		return errorf("output %s: stream %q is not stdout or stderr", m.Run, clip(m.Stream))
	}
	if m.Data == "" {
		return errorf("output %s: no data", m.Run)
	}
	return plainText("output "+m.Run+" data", m.Data, MaxOutputChunk)
}

// CleanOutput is what a program wrote, made text for an output frame:
// invalid UTF-8 and NUL bytes become U+FFFD. A multi-byte character split
// between two reads becomes two of them, so an agent holds back an
// incomplete one until the next read; the result may be up to three times
// as long as b.
func CleanOutput(b []byte) string {
	s := strings.ToValidUTF8(string(b), string(utf8.RuneError))
	return strings.ReplaceAll(s, "\x00", string(utf8.RuneError))
}

// Final states of a run, as aramaki.RunState has them, and the state of a
// run still going.
const (
	stateRunning   = "running"
	stateSucceeded = "succeeded"
	stateFailed    = "failed"
	stateCancelled = "cancelled"
	stateTimedOut  = "timed_out"
)

func finalState(s string) bool {
	return s == stateSucceeded || s == stateFailed || s == stateCancelled || s == stateTimedOut
}

// RunFinished says how a run ended. A run the agent refused (an action it
// does not have, a value its declaration rejects) or lost (the agent
// restarted) ended failed, without an exit code, with Started the moment
// it was refused or lost, and Error saying why.
type RunFinished struct {
	Run string `json:"run"`
	// State is succeeded, failed, cancelled or timed_out (aramaki.RunState).
	State string `json:"state"`
	// ExitCode is the program's: 0 to 255, -1 when a signal ended it;
	// absent when it never ran. A run that succeeded exited 0.
	ExitCode *int      `json:"exit_code,omitempty"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	Error    string    `json:"error,omitempty"`
	// LastSeq is the seq of the run's last output frame, 0 when it wrote
	// nothing: the server knows whether it missed some.
	LastSeq uint64 `json:"last_seq"`
	// Dropped is how many bytes of output beyond aramaki.MaxRunOutput
	// were never sent.
	Dropped uint64 `json:"dropped"`
}

func (*RunFinished) FrameType() Type { return TypeFinished }

func (m *RunFinished) Validate(now time.Time) error {
	if !ValidRunID(m.Run) {
		return errorf("finished: invalid run id %q", clip(m.Run))
	}
	if !finalState(m.State) {
		return errorf("finished %s: state %q is not succeeded, failed, cancelled or timed_out", m.Run, clip(m.State))
	}
	if m.ExitCode != nil && (*m.ExitCode < -1 || *m.ExitCode > 255) {
		return errorf("finished %s: exit code %d is not -1 to 255", m.Run, *m.ExitCode)
	}
	if m.State == stateSucceeded && (m.ExitCode == nil || *m.ExitCode != 0) {
		return errorf("finished %s: a run that succeeded exited 0", m.Run)
	}
	if err := validTime("finished "+m.Run+" started", m.Started, now); err != nil {
		return err
	}
	if err := validTime("finished "+m.Run+" ended", m.Ended, now); err != nil {
		return err
	}
	if m.Ended.Before(m.Started) {
		return errorf("finished %s: ended %s before it started %s", m.Run, m.Ended.Format(time.RFC3339), m.Started.Format(time.RFC3339))
	}
	return plainText("finished "+m.Run+" error", m.Error, MaxRunError)
}

// RunStatus is where a run the agent knows of is.
type RunStatus struct {
	Run string `json:"run"`
	// State is running, or how the run ended (see RunFinished).
	State string `json:"state"`
}

// Runs lists the runs the agent knows of: those still running and those
// that ended without a run_ack yet. The agent sends it after the welcome,
// then again the finished frames of the runs listed as ended; a run the
// server thinks is going and the agent does not list is lost.
type Runs struct {
	Runs []RunStatus `json:"runs"`
}

func (*Runs) FrameType() Type { return TypeRuns }

func (m *Runs) Validate(time.Time) error {
	if len(m.Runs) > MaxRuns {
		return errorf("runs: more than %d", MaxRuns)
	}
	seen := make(map[string]bool, len(m.Runs))
	for _, r := range m.Runs {
		if !ValidRunID(r.Run) {
			return errorf("runs: invalid run id %q", clip(r.Run))
		}
		if r.State != stateRunning && !finalState(r.State) {
			return errorf("runs: run %s: state %q is not running, succeeded, failed, cancelled or timed_out", r.Run, clip(r.State))
		}
		if seen[r.Run] {
			return errorf("runs: run %s is listed twice", r.Run)
		}
		seen[r.Run] = true
	}
	return nil
}

// RunAck says how a run ended is stored: the agent may forget the run.
// The server acknowledges every finished frame it gets, again when it gets
// one again; the agent sends it again on every connection until then.
type RunAck struct {
	Run string `json:"run"`
}

func (*RunAck) FrameType() Type { return TypeRunAck }

func (m *RunAck) Validate(time.Time) error {
	if !ValidRunID(m.Run) {
		return errorf("run_ack: invalid run id %q", clip(m.Run))
	}
	return nil
}
