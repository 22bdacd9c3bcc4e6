package aramaki_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
)

func ptr[T any](v T) *T { return &v }

// flushVarnish is the action the quickstart's hosts declare.
func flushVarnish() aramaki.ActionSpec {
	return aramaki.ActionSpec{
		Name: "flush-varnish", Description: "Ban every cached object matching a URL pattern",
		Argv: []string{"/usr/bin/varnishadm", "-n", "/var/lib/varnish/shop", "ban", "req.url", "~", "{pattern}"},
		Params: []aramaki.Param{
			{Name: "pattern", Type: aramaki.ParamString, Pattern: `[A-Za-z0-9/._^$*-]{1,200}`, Default: ptr(".")},
		},
		Timeout: 30 * time.Second,
	}
}

func restartUnit() aramaki.ActionSpec {
	return aramaki.ActionSpec{
		Name: "restart-unit", Argv: []string{"/usr/bin/systemctl", "restart", "{unit}.service"},
		Params: []aramaki.Param{
			{Name: "unit", Type: aramaki.ParamEnum, Values: []string{"php8.2-fpm", "nginx"}},
			{Name: "wait", Type: aramaki.ParamInt, Min: ptr[int64](0), Max: ptr[int64](300), Default: ptr("10")},
			{Name: "force", Type: aramaki.ParamBool, Default: ptr("false")},
			{Name: "host", Type: aramaki.ParamString, Default: ptr("localhost")},
		},
	}
}

func TestAnActionBecomesAFixedArgumentVector(t *testing.T) {
	for _, a := range []aramaki.ActionSpec{flushVarnish(), restartUnit()} {
		if err := a.Validate(); err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
	}
	argv, err := flushVarnish().Command(map[string]string{"pattern": "^/products/"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/usr/bin/varnishadm", "-n", "/var/lib/varnish/shop", "ban", "req.url", "~", "^/products/"}; !slices.Equal(argv, want) {
		t.Errorf("argv %q, want %q", argv, want)
	}
	argv, err = restartUnit().Command(map[string]string{"unit": "nginx", "wait": "007", "force": "1"})
	if err != nil || !slices.Equal(argv, []string{"/usr/bin/systemctl", "restart", "nginx.service"}) {
		t.Errorf("restart-unit: %q, %v", argv, err)
	}
	values, _ := restartUnit().Values(map[string]string{"unit": "nginx", "wait": "007", "force": "1"})
	if values["wait"] != "7" || values["force"] != "true" || values["host"] != "localhost" {
		t.Errorf("values in canonical form, defaults filled in: %v", values)
	}
	if got := aramaki.Quote([]string{"/bin/echo", "a b", "it's", "$HOME"}); got != `/bin/echo 'a b' 'it'\''s' '$HOME'` {
		t.Errorf("quoted %s", got)
	}
}

func TestValuesThatTryToBreakOutAreRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		action aramaki.ActionSpec
		values map[string]string
		want   string
	}{
		{"shell metacharacters", restartUnit(), map[string]string{"unit": "nginx", "host": "a; rm -rf /"}, "does not match"},
		{"command substitution", restartUnit(), map[string]string{"unit": "nginx", "host": "$(reboot)"}, "does not match"},
		{"an option for the program", restartUnit(), map[string]string{"unit": "nginx", "host": "--help"}, "does not match"},
		{"a value beyond the choices", restartUnit(), map[string]string{"unit": "sshd"}, "is not one of"},
		{"an int out of range", restartUnit(), map[string]string{"unit": "nginx", "wait": "301"}, "out of range"},
		{"an int that is not one", restartUnit(), map[string]string{"unit": "nginx", "wait": "10s"}, "not a whole number"},
		{"a bool that is not one", restartUnit(), map[string]string{"unit": "nginx", "force": "yes please"}, "not true or false"},
		{"a missing required value", restartUnit(), map[string]string{}, "needs a value for unit"},
		{"an unknown parameter", restartUnit(), map[string]string{"unit": "nginx", "argv": "/bin/sh"}, `no parameter "argv"`},
		{"a newline", flushVarnish(), map[string]string{"pattern": "a\nb"}, "control characters"},
		{"outside the action's own pattern", flushVarnish(), map[string]string{"pattern": "a b"}, "does not match"},
		{"too long", flushVarnish(), map[string]string{"pattern": strings.Repeat("a", 2000)}, "too long"},
		{"climbing out of a directory", restartUnit(), map[string]string{"unit": "nginx", "host": "logs/../../etc"}, "climbs out"},
		{"an absolute path", restartUnit(), map[string]string{"unit": "nginx", "host": "/etc/shadow"}, "does not match"},
		{"a response file", restartUnit(), map[string]string{"unit": "nginx", "host": "@/etc/shadow"}, "does not match"},
		{"a remote path", restartUnit(), map[string]string{"unit": "nginx", "host": "evil.example.com:/tmp"}, "does not match"},
		{"a negative number as an option", aramaki.ActionSpec{Name: "kill", Argv: []string{"/bin/kill", "{pid}"},
			Params: []aramaki.Param{{Name: "pid", Type: aramaki.ParamInt}}}, map[string]string{"pid": "-1"}, "negative"},
	} {
		_, err := c.action.Command(c.values)
		if aramaki.ErrorCode(err) != aramaki.EINVALID || !strings.Contains(aramaki.ErrorMessage(err), c.want) {
			t.Errorf("%s: %v, want an invalid-input error saying %q", c.name, err, c.want)
		}
	}
}

func TestBadActionDeclarationsAreRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*aramaki.ActionSpec)
		want string
	}{
		{"a relative program", func(a *aramaki.ActionSpec) { a.Argv[0] = "varnishadm" }, "absolute path"},
		{"a placeholder as the program", func(a *aramaki.ActionSpec) { a.Argv[0] = "/usr/bin/{pattern}" }, "without placeholders"},
		{"an undeclared placeholder", func(a *aramaki.ActionSpec) { a.Argv = append(a.Argv, "{url}") }, "{url}, which is not a declared parameter"},
		{"a bad name", func(a *aramaki.ActionSpec) { a.Name = "Flush Varnish" }, "invalid action name"},
		{"a pattern that does not compile", func(a *aramaki.ActionSpec) { a.Params[0].Pattern = "([" }, "does not compile"},
		{"a default outside the pattern", func(a *aramaki.ActionSpec) { a.Params[0].Default = ptr("a b") }, "the default"},
		{"an unknown type", func(a *aramaki.ActionSpec) { a.Params[0].Type = "float" }, "unknown type"},
		{"a parameter twice", func(a *aramaki.ActionSpec) { a.Params = append(a.Params, a.Params[0]) }, "declared twice"},
		{"a timeout too long", func(a *aramaki.ActionSpec) { a.Timeout = 2 * time.Hour }, "timeout"},
		{"a bad user", func(a *aramaki.ActionSpec) { a.User = "root; id" }, "invalid user"},
	} {
		a := flushVarnish()
		a.Argv, a.Params = slices.Clone(a.Argv), slices.Clone(a.Params)
		c.edit(&a)
		if err := a.Validate(); err == nil || !strings.Contains(aramaki.ErrorMessage(err), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

func TestARunMovesOnlyForward(t *testing.T) {
	ok := [][2]aramaki.RunState{
		{aramaki.RunRequested, aramaki.RunAwaitingApproval}, {aramaki.RunRequested, aramaki.RunRunning},
		{aramaki.RunAwaitingApproval, aramaki.RunRunning}, {aramaki.RunAwaitingApproval, aramaki.RunCancelled},
		{aramaki.RunRunning, aramaki.RunSucceeded}, {aramaki.RunRunning, aramaki.RunFailed},
		{aramaki.RunRunning, aramaki.RunCancelled}, {aramaki.RunRunning, aramaki.RunTimedOut},
	}
	for _, c := range ok {
		if err := c[0].Transition(c[1]); err != nil {
			t.Errorf("%s → %s: %v", c[0], c[1], err)
		}
	}
	for _, c := range [][2]aramaki.RunState{
		{aramaki.RunSucceeded, aramaki.RunCancelled}, {aramaki.RunCancelled, aramaki.RunRunning},
		{aramaki.RunRunning, aramaki.RunAwaitingApproval}, {aramaki.RunRequested, aramaki.RunSucceeded},
	} {
		if err := c[0].Transition(c[1]); aramaki.ErrorCode(err) != aramaki.ECONFLICT {
			t.Errorf("%s → %s: %v, want a conflict", c[0], c[1], err)
		}
	}
	if err := aramaki.RunSucceeded.Transition(aramaki.RunCancelled); !strings.Contains(aramaki.ErrorMessage(err), "succeeded already") {
		t.Errorf("cancelling a finished run: %v", err)
	}
	if aramaki.ValidateReason("  ") == nil || aramaki.ValidateReason("product pages stale") != nil {
		t.Error("a run needs a reason")
	}
}

func TestARunEndsAsTheWorstOfItsHosts(t *testing.T) {
	done := func(states ...aramaki.RunState) []aramaki.RunTarget {
		var ts []aramaki.RunTarget
		for _, s := range states {
			ts = append(ts, aramaki.RunTarget{State: s})
		}
		return ts
	}
	for _, c := range []struct {
		targets []aramaki.RunTarget
		want    aramaki.RunState
		over    bool
	}{
		{done(aramaki.RunSucceeded, aramaki.RunSucceeded), aramaki.RunSucceeded, true},
		{done(aramaki.RunSucceeded, aramaki.RunFailed), aramaki.RunFailed, true},
		{done(aramaki.RunCancelled, aramaki.RunTimedOut), aramaki.RunTimedOut, true},
		{done(aramaki.RunCancelled, aramaki.RunSucceeded), aramaki.RunCancelled, true},
		{done(aramaki.RunSucceeded, aramaki.RunRunning), "", false},
		{nil, aramaki.RunSucceeded, false},
	} {
		got, over := aramaki.Outcome(c.targets)
		if over != c.over || over && got != c.want {
			t.Errorf("%+v: %s %v, want %s %v", c.targets, got, over, c.want, c.over)
		}
	}
}

func TestRunStatsSayHowOftenAndHowLong(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	var points []aramaki.RunPoint
	for i := range 20 {
		state := aramaki.RunSucceeded
		if i%5 == 0 {
			state = aramaki.RunFailed
		}
		points = append(points, aramaki.RunPoint{Ended: t0.Add(time.Duration(20-i) * time.Minute), Duration: time.Duration(i+1) * time.Second, State: state})
	}
	st := aramaki.ComputeRunStats("shop", "flush-varnish", points)
	if st.Runs != 20 || st.Failed != 4 || st.Average != 10500*time.Millisecond || st.P95 != 19*time.Second {
		t.Errorf("stats %+v: want 20 runs, 4 failed, average 10.5s, p95 19s", st)
	}
	if !st.Durations[0].Ended.Before(st.Durations[19].Ended) {
		t.Error("the chart's points are not oldest first")
	}
	if empty := aramaki.ComputeRunStats("shop", "x", nil); empty.Runs != 0 || empty.Durations == nil {
		t.Errorf("no runs: %+v", empty)
	}
}
