package aramaki_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
)

// weekAt is a time in UTC in the week of Monday 2026-11-23, by weekday and
// clock: weekAt(t, "Fri", "23:30").
func weekAt(t *testing.T, day, clock string) time.Time {
	t.Helper()
	days := map[string]int{"Mon": 23, "Tue": 24, "Wed": 25, "Thu": 26, "Fri": 27, "Sat": 28, "Sun": 29}
	c, err := time.Parse("15:04", clock)
	if err != nil || days[day] == 0 {
		t.Fatalf("weekAt(%q, %q): %v", day, clock, err)
	}
	return time.Date(2026, 11, days[day], c.Hour(), c.Minute(), 0, 0, time.UTC)
}

// MustParseHours parses a schedule that must be good.
func MustParseHours(t *testing.T, s string) aramaki.Hours {
	t.Helper()
	h, err := aramaki.ParseHours(s)
	if err != nil {
		t.Fatalf("ParseHours(%q): %v", s, err)
	}
	return h
}

// Schedules as people write them: day ranges (wrapping over the week's
// end), day lists, ranges of hours that may go past midnight, a time zone.
func TestHoursContains(t *testing.T) {
	for _, tc := range []struct {
		hours string
		in    [][2]string // weekday and UTC clock within the schedule
		out   [][2]string // and outside it
	}{
		{"24/7", [][2]string{{"Mon", "00:00"}, {"Wed", "12:34"}, {"Sun", "23:59"}}, nil},
		{" 24/7 ", [][2]string{{"Sat", "03:00"}}, nil},
		{"Mon-Fri 08:00-18:00 UTC",
			[][2]string{{"Mon", "08:00"}, {"Wed", "12:00"}, {"Fri", "17:59"}},
			[][2]string{{"Mon", "07:59"}, {"Fri", "18:00"}, {"Sat", "12:00"}, {"Sun", "12:00"}}},
		// Without a zone, hours are UTC; hours without minutes are fine.
		{"Mon-Fri 8-18",
			[][2]string{{"Tue", "08:00"}},
			[][2]string{{"Tue", "18:00"}, {"Sat", "10:00"}}},
		{"Sat,Sun 10-16 UTC",
			[][2]string{{"Sat", "10:00"}, {"Sun", "15:59"}},
			[][2]string{{"Fri", "12:00"}, {"Mon", "12:00"}, {"Sat", "16:00"}, {"Sun", "09:59"}}},
		{"mon,WED,Fri 09:30-10:15",
			[][2]string{{"Mon", "09:30"}, {"Wed", "10:14"}, {"Fri", "10:00"}},
			[][2]string{{"Tue", "10:00"}, {"Mon", "09:29"}, {"Fri", "10:15"}}},
		// A range of days over the week's end.
		{"Fri-Mon 00-24",
			[][2]string{{"Fri", "00:00"}, {"Sat", "12:00"}, {"Sun", "23:59"}, {"Mon", "23:59"}},
			[][2]string{{"Tue", "00:00"}, {"Thu", "23:59"}}},
		{"Mon-Mon 12-13", [][2]string{{"Mon", "12:00"}}, [][2]string{{"Tue", "12:00"}, {"Sun", "12:00"}}},
		// Overnight: the range belongs to the day it starts on.
		{"Fri 22-06",
			[][2]string{{"Fri", "22:00"}, {"Fri", "23:59"}, {"Sat", "00:00"}, {"Sat", "05:59"}},
			[][2]string{{"Fri", "21:59"}, {"Sat", "06:00"}, {"Sat", "22:30"}, {"Thu", "23:00"}, {"Fri", "03:00"}}},
		{"Sun 22:00-06:00",
			[][2]string{{"Sun", "23:00"}, {"Mon", "03:00"}},
			[][2]string{{"Sat", "23:00"}, {"Sun", "03:00"}, {"Tue", "03:00"}}},
		{"Mon-Fri 22-00",
			[][2]string{{"Mon", "22:00"}, {"Fri", "23:59"}},
			[][2]string{{"Tue", "00:00"}, {"Sat", "23:00"}}},
		// Europe/Berlin is UTC+1 in November: 08-18 there is 07-17 UTC.
		{"Mon-Fri 08-18 Europe/Berlin",
			[][2]string{{"Mon", "07:00"}, {"Fri", "16:59"}},
			[][2]string{{"Mon", "06:59"}, {"Fri", "17:00"}, {"Sat", "10:00"}}},
		// America/New_York is UTC-5: Friday 20:00 there is Saturday 01:00 UTC.
		{"Fri 18-22 America/New_York",
			[][2]string{{"Fri", "23:00"}, {"Sat", "02:59"}},
			[][2]string{{"Fri", "18:00"}, {"Sat", "03:00"}}},
	} {
		h := MustParseHours(t, tc.hours)
		for _, c := range tc.in {
			if !h.Contains(weekAt(t, c[0], c[1])) {
				t.Errorf("%q does not contain %s %s UTC", tc.hours, c[0], c[1])
			}
		}
		for _, c := range tc.out {
			if h.Contains(weekAt(t, c[0], c[1])) {
				t.Errorf("%q contains %s %s UTC", tc.hours, c[0], c[1])
			}
		}
	}
}

// A schedule follows its zone's clock over daylight saving time.
func TestHoursDaylightSaving(t *testing.T) {
	h := MustParseHours(t, "Mon-Fri 08-18 Europe/Berlin")
	summer := time.Date(2026, 7, 1, 6, 30, 0, 0, time.UTC) // Wednesday 08:30 CEST
	winter := time.Date(2026, 1, 7, 6, 30, 0, 0, time.UTC) // Wednesday 07:30 CET
	if !h.Contains(summer) || h.Contains(winter) {
		t.Errorf("06:30 UTC: in summer %v, in winter %v; want in summer only", h.Contains(summer), h.Contains(winter))
	}
}

func TestParseHoursErrors(t *testing.T) {
	for _, tc := range []struct{ hours, want string }{
		{"", `hours "": want "24/7" or days, hours and a time zone, like "Mon-Fri 08:00-18:00 Europe/Berlin"`},
		{"always", `hours "always": want "24/7" or days, hours and a time zone`},
		{"Mon-Fri", `hours "Mon-Fri": want "24/7" or days`},
		{"Mon-Fri 08-18 Europe/Berlin now", `hours "Mon-Fri 08-18 Europe/Berlin now": want "24/7"`},
		{"24/7 UTC", `hours "24/7 UTC": "24/7" is not a day or range of days (Mon, Tue, …, Sun)`},
		{"Mo-Fr 08-18", `hours "Mo-Fr 08-18": "mo-fr" is not a day or range of days (Mon, Tue, …, Sun)`},
		{"Monday 08-18", `"monday" is not a day or range of days`},
		{"Mon,,Fri 08-18", `"" is not a day or range of days`},
		{"Mon- 08-18", `"mon-" is not a day or range of days`},
		{"Mon-Fri 08", `hours "Mon-Fri 08": "08" is not a range of hours like 08:00-18:00`},
		{"Mon-Fri 9-25", `hours "Mon-Fri 9-25": "25" is not a time of day like 08:00`},
		{"Mon-Fri 24:30-06", `"24:30" is not a time of day like 08:00`},
		{"Mon-Fri 08:60-18", `"08:60" is not a time of day like 08:00`},
		{"Mon-Fri 08:5-18", `"08:5" is not a time of day like 08:00`},
		{"Mon-Fri 8am-6pm", `"8am" is not a time of day like 08:00`},
		{"Mon-Fri -1-18", `"" is not a time of day like 08:00`},
		{"Mon-Fri +8-18", `"+8" is not a time of day like 08:00`},
		{"Mon-Fri 008-18", `"008" is not a time of day like 08:00`},
		{"Mon-Fri 08:+5-18", `"08:+5" is not a time of day like 08:00`},
		{"Mon-Fri 08-08", `hours "Mon-Fri 08-08": the range 08-08 is empty`},
		{"Mon-Fri 00:00-00", `the range 00:00-00 is empty`},
		{"Mon-Fri 24-06", `hours "Mon-Fri 24-06": a range cannot start at 24:00; start it at 00`},
		{"Mon-Fri 08-18 Europe/Atlantis", `hours "Mon-Fri 08-18 Europe/Atlantis": unknown time zone "Europe/Atlantis"`},
		{"Mon-Fri 08-18 +02:00", `unknown time zone "+02:00"`},
		{"Mon-Fri 08-18 ../../etc/passwd", `unknown time zone "../../etc/passwd"`},
		// The server's own zone would make the schedule depend on where it runs.
		{"Mon-Fri 08-18 Local", `unknown time zone "Local"`},
	} {
		_, err := aramaki.ParseHours(tc.hours)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseHours(%q) = %v, want an error with %q", tc.hours, err, tc.want)
		}
	}
}

// The zero Hours, never parsed, contains no time, and does not panic.
func TestHoursZero(t *testing.T) {
	if (aramaki.Hours{}).Contains(time.Now()) {
		t.Error("the zero Hours contains now")
	}
}

func TestRouteMatches(t *testing.T) {
	const (
		ok       = aramaki.StatusOK
		warning  = aramaki.StatusWarning
		critical = aramaki.StatusCritical
		unknown  = aramaki.StatusUnknown
	)
	weekday, weekend := weekAt(t, "Wed", "10:00"), weekAt(t, "Sat", "10:00")
	for _, tc := range []struct {
		name  string
		route aramaki.Route
		s     aramaki.Status
		t     time.Time
		want  bool
	}{
		{"any status, any time", aramaki.Route{Contact: "a"}, warning, weekend, true},
		{"every status, ok too", aramaki.Route{Contact: "a"}, ok, weekend, true},
		{"its severity", aramaki.Route{Severities: []aramaki.Status{critical}}, critical, weekday, true},
		{"another severity", aramaki.Route{Severities: []aramaki.Status{critical}}, warning, weekday, false},
		{"one of its severities", aramaki.Route{Severities: []aramaki.Status{warning, unknown}}, unknown, weekday, true},
		{"ok is no severity of a route", aramaki.Route{Severities: []aramaki.Status{warning, critical, unknown}}, ok, weekday, false},
		{"within its hours", aramaki.Route{Hours: "Mon-Fri 08-18"}, warning, weekday, true},
		{"outside its hours", aramaki.Route{Hours: "Mon-Fri 08-18"}, warning, weekend, false},
		{"24/7", aramaki.Route{Hours: "24/7"}, warning, weekend, true},
		{"severity and hours both", aramaki.Route{Severities: []aramaki.Status{critical}, Hours: "Sat,Sun 08-18"}, critical, weekend, true},
		{"severity but not hours", aramaki.Route{Severities: []aramaki.Status{critical}, Hours: "Sat,Sun 08-18"}, critical, weekday, false},
		{"hours but not severity", aramaki.Route{Severities: []aramaki.Status{critical}, Hours: "Sat,Sun 08-18"}, warning, weekend, false},
		// Refused with the commit; should one slip through, better to
		// notify too often than never.
		{"invalid hours", aramaki.Route{Hours: "whenever"}, warning, weekend, true},
	} {
		if got := tc.route.Matches(tc.s, tc.t); got != tc.want {
			t.Errorf("%s: %+v.Matches(%v, %v) = %v, want %v", tc.name, tc.route, tc.s, tc.t, got, tc.want)
		}
	}
}

func TestSilenceValidate(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	good := aramaki.Silence{System: "storage", Start: now, End: now.Add(2 * time.Hour), Reason: "Disk replacement"}
	for _, tc := range []struct {
		name   string
		change func(*aramaki.Silence)
		want   string // "" when valid
	}{
		{"good", func(*aramaki.Silence) {}, ""},
		{"started before now", func(s *aramaki.Silence) { s.Start = now.Add(-time.Hour) }, ""},
		{"planned ahead", func(s *aramaki.Silence) { s.Start, s.End = now.Add(24*time.Hour), now.Add(26*time.Hour) }, ""},
		{"the longest", func(s *aramaki.Silence) { s.End = now.Add(aramaki.MaxSilence) }, ""},
		{"invalid system", func(s *aramaki.Silence) { s.System = "Storage Cluster" }, `invalid system id "Storage Cluster"`},
		{"no system", func(s *aramaki.Silence) { s.System = "" }, `invalid system id ""`},
		{"no end", func(s *aramaki.Silence) { s.End = time.Time{} }, "a silence needs an end"},
		{"end before start", func(s *aramaki.Silence) { s.End = now.Add(-time.Minute) },
			"the end 2026-11-24T11:59:00Z is not after the start 2026-11-24T12:00:00Z"},
		{"end at the start", func(s *aramaki.Silence) { s.End = now }, "is not after the start"},
		{"end in the past", func(s *aramaki.Silence) { s.Start, s.End = now.Add(-2*time.Hour), now.Add(-time.Hour) },
			"the end 2026-11-24T11:00:00Z is in the past"},
		{"end now", func(s *aramaki.Silence) { s.Start, s.End = now.Add(-time.Hour), now }, "is in the past"},
		{"too long", func(s *aramaki.Silence) { s.End = now.Add(aramaki.MaxSilence + time.Second) }, "a silence lasts at most 90 days"},
		{"no reason", func(s *aramaki.Silence) { s.Reason = "" }, "a silence needs a reason"},
		{"a blank reason", func(s *aramaki.Silence) { s.Reason = " \n\t" }, "a silence needs a reason"},
		{"the longest reason", func(s *aramaki.Silence) { s.Reason = strings.Repeat("x", aramaki.MaxReasonLen) }, ""},
		{"too long a reason", func(s *aramaki.Silence) { s.Reason = strings.Repeat("x", aramaki.MaxReasonLen+1) }, "the reason is longer than 1000 bytes"},
	} {
		s := good
		tc.change(&s)
		err := s.Validate(now)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want valid", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(aramaki.ErrorMessage(err), tc.want)):
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		case tc.want != "" && aramaki.ErrorCode(err) != aramaki.EINVALID:
			t.Errorf("%s: code %q, want invalid", tc.name, aramaki.ErrorCode(err))
		}
	}
}

func TestSilenceActiveAt(t *testing.T) {
	start := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	end := start.Add(2 * time.Hour)
	ended := start.Add(30 * time.Minute)
	s := aramaki.Silence{System: "storage", Start: start, End: end, Reason: "Disk replacement"}
	early := s
	early.Ended = &ended
	for _, tc := range []struct {
		name string
		s    aramaki.Silence
		t    time.Time
		want bool
	}{
		{"before the start", s, start.Add(-time.Nanosecond), false},
		{"at the start", s, start, true},
		{"within", s, start.Add(time.Hour), true},
		{"just before the end", s, end.Add(-time.Nanosecond), true},
		{"at the end", s, end, false},
		{"after the end", s, end.Add(time.Hour), false},
		{"ended early, before that", early, ended.Add(-time.Nanosecond), true},
		{"ended early, at that", early, ended, false},
		{"ended early, later", early, start.Add(time.Hour), false},
	} {
		if got := tc.s.ActiveAt(tc.t); got != tc.want {
			t.Errorf("%s: ActiveAt(%s) = %v, want %v", tc.name, tc.t.Format(time.RFC3339Nano), got, tc.want)
		}
	}
}
