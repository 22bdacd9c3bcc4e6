package aramaki

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Actions: the allowed things that may be done on a host, such as "flush
// the Varnish cache". The agent's local configuration on the host declares
// them — a fixed argument vector with typed, validated parameters — and the
// server can only ask for one of those by name, with values for its
// parameters. Never a command line, never a shell: a value fills exactly one
// argument and is checked against its type and pattern first.

// ParamType is the type of an action parameter.
type ParamType string

// Parameter types.
const (
	ParamString ParamType = "string"
	ParamInt    ParamType = "int"
	ParamBool   ParamType = "bool"
	ParamEnum   ParamType = "enum"
)

// Param is a parameter of an action.
type Param struct {
	Name        string    `json:"name"`
	Type        ParamType `json:"type"`
	Description string    `json:"description,omitempty"`
	// Pattern a string must match, whole (it is anchored); strings without
	// one must be plain words (DefaultParamPattern).
	Pattern string `json:"pattern,omitempty"`
	// Min and Max bound an int.
	Min *int64 `json:"min,omitempty"`
	Max *int64 `json:"max,omitempty"`
	// Values are the choices of an enum.
	Values []string `json:"values,omitempty"`
	// Default is used when no value is given; without one the parameter is
	// required.
	Default *string `json:"default,omitempty"`
}

// ActionSpec is an allow-listed action as an agent's local configuration
// declares it.
type ActionSpec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Argv is the command: an absolute program path and fixed arguments, in
	// which "{param}" stands for a parameter's value. Each element is one
	// argument, whatever the values hold.
	Argv    []string      `json:"argv"`
	Params  []Param       `json:"params,omitempty"`
	Timeout time.Duration `json:"timeout"`
	// User runs the command as another user (the agent must be root).
	User string `json:"user,omitempty"`
}

// Action limits.
const (
	MaxActionTimeout  = time.Hour
	MaxParams         = 32
	MaxParamValue     = 1024
	MaxRunOutput      = 64 << 10 // bytes of output kept per agent of a run
	DefaultRunTimeout = time.Minute
)

// DefaultParamPattern is what a string parameter without a pattern of its
// own may hold: a plain word or relative path, never an option, never
// absolute, never a host:path or @file; ".." is refused besides.
const DefaultParamPattern = `[A-Za-z0-9_][A-Za-z0-9_./=,-]{0,255}`

var (
	actionNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	placeholder       = regexp.MustCompile(`\{([a-z0-9_-]+)\}`)
	userPattern       = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// ValidateActionName reports whether name is a well-formed action name.
func ValidateActionName(name string) error {
	if !actionNamePattern.MatchString(name) {
		return Errorf(EINVALID, "invalid action name %q: lower-case letters, digits, - and _, at most 63", name)
	}
	return nil
}

// Validate checks an action declaration.
func (a ActionSpec) Validate() error {
	if err := ValidateActionName(a.Name); err != nil {
		return err
	}
	if len(a.Argv) == 0 || !path.IsAbs(a.Argv[0]) || strings.Contains(a.Argv[0], "{") {
		return Errorf(EINVALID, "action %s: argv must start with the absolute path of a program, without placeholders", a.Name)
	}
	if a.Timeout < 0 || a.Timeout > MaxActionTimeout {
		return Errorf(EINVALID, "action %s: timeout must be between 0 (default %s) and %s", a.Name, DefaultRunTimeout, MaxActionTimeout)
	}
	if a.User != "" && !userPattern.MatchString(a.User) {
		return Errorf(EINVALID, "action %s: invalid user %q", a.Name, a.User)
	}
	if len(a.Params) > MaxParams {
		return Errorf(EINVALID, "action %s: at most %d parameters", a.Name, MaxParams)
	}
	declared := map[string]bool{}
	for _, p := range a.Params {
		if err := p.validate(); err != nil {
			return Errorf(EINVALID, "action %s: %s", a.Name, ErrorMessage(err))
		}
		if declared[p.Name] {
			return Errorf(EINVALID, "action %s: parameter %s is declared twice", a.Name, p.Name)
		}
		declared[p.Name] = true
	}
	for _, arg := range a.Argv[1:] {
		for _, m := range placeholder.FindAllStringSubmatch(arg, -1) {
			if !declared[m[1]] {
				return Errorf(EINVALID, "action %s: argv uses {%s}, which is not a declared parameter", a.Name, m[1])
			}
		}
	}
	return nil
}

func (p Param) validate() error {
	if !actionNamePattern.MatchString(p.Name) {
		return Errorf(EINVALID, "invalid parameter name %q", p.Name)
	}
	switch p.Type {
	case ParamString:
		if _, err := p.pattern(); err != nil {
			return Errorf(EINVALID, "parameter %s: pattern does not compile: %v", p.Name, err)
		}
	case ParamInt:
		if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
			return Errorf(EINVALID, "parameter %s: min is above max", p.Name)
		}
	case ParamBool:
	case ParamEnum:
		if len(p.Values) == 0 {
			return Errorf(EINVALID, "parameter %s: an enum needs values", p.Name)
		}
		for _, v := range p.Values {
			if v == "" || strings.HasPrefix(v, "-") || len(v) > MaxParamValue {
				return Errorf(EINVALID, "parameter %s: enum value %q must be non-empty and not start with -", p.Name, v)
			}
		}
	default:
		return Errorf(EINVALID, "parameter %s: unknown type %q (string, int, bool or enum)", p.Name, p.Type)
	}
	if p.Default != nil {
		if _, err := p.check(*p.Default); err != nil {
			return Errorf(EINVALID, "parameter %s: the default %s", p.Name, ErrorMessage(err))
		}
	}
	return nil
}

func (p Param) pattern() (*regexp.Regexp, error) {
	pat := p.Pattern
	if pat == "" {
		pat = DefaultParamPattern
	}
	return regexp.Compile(`^(?:` + pat + `)$`)
}

// check validates a value and returns it in its canonical form.
func (p Param) check(v string) (string, error) {
	if len(v) > MaxParamValue || strings.ContainsRune(v, 0) || strings.ContainsAny(v, "\n\r") {
		return "", Errorf(EINVALID, "value of %s is too long or holds control characters", p.Name)
	}
	switch p.Type {
	case ParamString:
		re, err := p.pattern()
		if err != nil || !re.MatchString(v) {
			return "", Errorf(EINVALID, "value %q of %s does not match its pattern %s", v, p.Name, cmp.Or(p.Pattern, DefaultParamPattern))
		}
		if p.Pattern == "" && slices.Contains(strings.Split(v, "/"), "..") {
			return "", Errorf(EINVALID, "value %q of %s climbs out of its directory (..)", v, p.Name)
		}
		return v, nil
	case ParamInt:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "", Errorf(EINVALID, "value %q of %s is not a whole number", v, p.Name)
		}
		if p.Min != nil && n < *p.Min || p.Max != nil && n > *p.Max {
			return "", Errorf(EINVALID, "value %d of %s is out of range", n, p.Name)
		}
		if n < 0 && p.Min == nil {
			// "-1" is an option to many programs (kill -1): negative
			// values only where a negative min says they are meant.
			return "", Errorf(EINVALID, "value %d of %s is negative; the action declares no negative min", n, p.Name)
		}
		return strconv.FormatInt(n, 10), nil
	case ParamBool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", Errorf(EINVALID, "value %q of %s is not true or false", v, p.Name)
		}
		return strconv.FormatBool(b), nil
	case ParamEnum:
		if !slices.Contains(p.Values, v) {
			return "", Errorf(EINVALID, "value %q of %s is not one of %s", v, p.Name, strings.Join(p.Values, ", "))
		}
		return v, nil
	}
	return "", Errorf(EINVALID, "parameter %s has an unknown type", p.Name)
}

// Values checks the values asked for against the declared parameters:
// unknown parameters are refused, defaults fill in, required ones must be
// there. It returns the values in canonical form.
func (a ActionSpec) Values(given map[string]string) (map[string]string, error) {
	out := map[string]string{}
	known := map[string]bool{}
	for _, p := range a.Params {
		known[p.Name] = true
		v, ok := given[p.Name]
		if !ok {
			if p.Default == nil {
				return nil, Errorf(EINVALID, "action %s needs a value for %s", a.Name, p.Name)
			}
			v = *p.Default
		}
		canon, err := p.check(v)
		if err != nil {
			return nil, err
		}
		out[p.Name] = canon
	}
	for _, name := range slices.Sorted(maps.Keys(given)) {
		if !known[name] {
			return nil, Errorf(EINVALID, "action %s has no parameter %q", a.Name, name)
		}
	}
	return out, nil
}

// Command returns the argument vector for the given values: each argv
// element with its placeholders replaced, one argument each.
func (a ActionSpec) Command(given map[string]string) ([]string, error) {
	values, err := a.Values(given)
	if err != nil {
		return nil, err
	}
	argv := make([]string, len(a.Argv))
	for i, arg := range a.Argv {
		argv[i] = placeholder.ReplaceAllStringFunc(arg, func(m string) string {
			return values[m[1:len(m)-1]]
		})
	}
	return argv, nil
}

// RunState is where a run of an action is.
type RunState string

// Run states.
const (
	RunRequested        RunState = "requested"
	RunAwaitingApproval RunState = "awaiting_approval"
	RunRunning          RunState = "running"
	RunSucceeded        RunState = "succeeded"
	RunFailed           RunState = "failed"
	RunCancelled        RunState = "cancelled"
	RunTimedOut         RunState = "timed_out"
	// RunRefused ends a run of a peer's system that the peer would not
	// run: no grant allows it, or it cannot run there.
	RunRefused RunState = "refused"
)

// runTransitions are the moves a run may make.
var runTransitions = map[RunState][]RunState{
	RunRequested:        {RunAwaitingApproval, RunRunning, RunCancelled, RunFailed, RunRefused},
	RunAwaitingApproval: {RunRunning, RunCancelled, RunFailed},
	RunRunning:          {RunSucceeded, RunFailed, RunCancelled, RunTimedOut},
}

// Valid reports whether s is a known state.
func (s RunState) Valid() bool {
	switch s {
	case RunRequested, RunAwaitingApproval, RunRunning, RunSucceeded, RunFailed, RunCancelled, RunTimedOut, RunRefused:
		return true
	}
	return false
}

// Final reports whether a run in s is over.
func (s RunState) Final() bool {
	return s == RunSucceeded || s == RunFailed || s == RunCancelled || s == RunTimedOut || s == RunRefused
}

// CanBecome reports whether a run may move from s to next.
func (s RunState) CanBecome(next RunState) bool {
	return slices.Contains(runTransitions[s], next)
}

// Transition moves a run to next, or says why it may not.
func (s RunState) Transition(next RunState) error {
	if !s.CanBecome(next) {
		if s.Final() {
			return Errorf(ECONFLICT, "the run is %s already", s)
		}
		return Errorf(ECONFLICT, "a run that is %s cannot become %s", s, next)
	}
	return nil
}

// ValidateReason checks the reason someone gives for running an action.
func ValidateReason(reason string) error {
	switch {
	case strings.TrimSpace(reason) == "":
		return Errorf(EINVALID, "say why: a run needs a reason")
	case len(reason) > MaxReasonLen:
		return Errorf(EINVALID, "the reason is longer than %d bytes", MaxReasonLen)
	}
	return nil
}

// Quote writes an argument vector for people to read, quoted the way a
// shell would need; it is never run through one.
func Quote(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`;&|<>(){}*?[]!#~") {
			b.WriteString(a)
			continue
		}
		fmt.Fprintf(&b, "'%s'", strings.ReplaceAll(a, "'", `'\''`))
	}
	return b.String()
}
