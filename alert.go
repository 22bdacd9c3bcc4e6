package aramaki

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Alerts: a problem that needs a person. One alert per (system, check)
// problem, opened when the check has been bad for enough results in a row,
// resolved when it is OK again on every agent. Alerts that start together
// on related systems form a group, and people are paged per group: a
// storage outage that breaks 40 projects is one page, not 40.

// AlertState is where an alert is in its life.
type AlertState string

// Alert states.
const (
	AlertOpen         AlertState = "open"
	AlertAcknowledged AlertState = "acknowledged"
	AlertResolved     AlertState = "resolved"
)

// Valid reports whether s is a known alert state.
func (s AlertState) Valid() bool {
	return s == AlertOpen || s == AlertAcknowledged || s == AlertResolved
}

// Alert is one problem of a check on a system.
type Alert struct {
	ID     string `json:"id"`
	System string `json:"system"`
	Check  string `json:"check"`
	// Status is the worst status of the check over its agents while the
	// alert is open; the status it had when it resolved afterwards.
	Status  Status     `json:"status"`
	State   AlertState `json:"state"`
	Output  string     `json:"output"` // of the worst agent, as it opened or worsened
	Group   string     `json:"group"`
	Opened  time.Time  `json:"opened"`
	Updated time.Time  `json:"updated"`
	// Resolved is when the check recovered, or a person resolved it.
	Resolved       *time.Time `json:"resolved,omitempty"`
	Acknowledged   *time.Time `json:"acknowledged,omitempty"`
	AcknowledgedBy string     `json:"acknowledged_by,omitempty"`
	Assignee       string     `json:"assignee,omitempty"`
	// Level is the escalation step reached: routes with a delay are
	// notified when an open alert is still unacknowledged after it.
	Level int `json:"level"`
	// Silenced names the silence that kept the alert quiet when it was due
	// to be notified: it is recorded, but nobody was told while it lasted.
	Silenced string `json:"silenced,omitempty"`
	// QuietUntil is when the silence that kept it quiet ended: escalation
	// counts from then, not from when it opened.
	QuietUntil *time.Time `json:"quiet_until,omitempty"`
}

// AlertNote is something a person did to an alert: acknowledged,
// assigned, commented, escalated, resolved.
type AlertNote struct {
	At    time.Time `json:"at"`
	Actor string    `json:"actor"`
	Kind  string    `json:"kind"`
	Text  string    `json:"text,omitempty"`
}

// Active reports whether the alert still needs attention.
func (a Alert) Active() bool { return a.State != AlertResolved }

// Alert event kinds on the timeline.
const (
	KindAlertOpened       EventKind = "alert.opened"
	KindAlertResolved     EventKind = "alert.resolved"
	KindAlertAcknowledged EventKind = "alert.acknowledged"
	KindAlertAssigned     EventKind = "alert.assigned"
	KindAlertCommented    EventKind = "alert.commented"
	KindAlertEscalated    EventKind = "alert.escalated"
	KindNotificationFail  EventKind = "notification.failed"
	KindSilenceCreated    EventKind = "silence.created"
	KindSilenceEnded      EventKind = "silence.ended"
	KindSilenceExpiring   EventKind = "silence.expiring"
)

// AlertData is the detail of an alert event.
type AlertData struct {
	Alert   Alert  `json:"alert"`
	Actor   string `json:"actor,omitempty"`
	Comment string `json:"comment,omitempty"`
}

// GroupWindow is how long after a group opened a related alert still
// joins it.
const GroupWindow = 5 * time.Minute

// Route says who hears about a system's alerts, when and how. Routes are
// declared per system in the config repository; an alert is routed by the
// routes of its system and of every system that uses it, directly or
// further up.
type Route struct {
	// Contact names one of the system's contacts or owners.
	Contact string `json:"contact,omitempty"`
	// Via is "email" (the contact's address) or the name of a notifier.
	Via string `json:"via,omitempty"`
	// Severities limits the route to alerts of these statuses; empty means
	// every problem.
	Severities []Status `json:"severities,omitempty"`
	// Hours limits the route to a weekly schedule; empty means always.
	Hours string `json:"hours,omitempty"`
	// After makes the route an escalation: it is notified only when the
	// alert is still unacknowledged this long after it opened.
	After time.Duration `json:"after,omitempty"`
	// Forward hands the alert also to another system's routes (not to the
	// systems above that one).
	Forward string `json:"forward,omitempty"`
}

// Matches reports whether the route wants an alert of status s at t.
func (r Route) Matches(s Status, t time.Time) bool {
	return r.Wants(s) && !r.From(t).After(t)
}

// Wants reports whether the route is for alerts of status s at all.
func (r Route) Wants(s Status) bool {
	return len(r.Severities) == 0 || slices.Contains(r.Severities, s)
}

// From returns when, at or after t, the route's hours let it notify.
func (r Route) From(t time.Time) time.Time {
	if r.Hours == "" {
		return t
	}
	h, err := parsedHours(r.Hours)
	if err != nil {
		return t // invalid hours were refused with the commit
	}
	return h.Next(t)
}

// hoursCache keeps parsed schedules: parsing loads the time zone from disk,
// and routing asks for every route of every alert.
var hoursCache sync.Map // string -> Hours

func parsedHours(s string) (Hours, error) {
	if h, ok := hoursCache.Load(s); ok {
		return h.(Hours), nil
	}
	h, err := ParseHours(s)
	if err == nil {
		hoursCache.Store(s, h)
	}
	return h, err
}

// NotifierType is how a notifier delivers.
type NotifierType string

// Notifier types.
const (
	NotifyEmail      NotifierType = "email"
	NotifyWebhook    NotifierType = "webhook"
	NotifySlack      NotifierType = "slack"
	NotifyMattermost NotifierType = "mattermost"
	NotifyMatrix     NotifierType = "matrix"
)

// Notifier is a named channel declared in the config repository. Secrets
// never live in the repository: SecretEnv names the server's environment
// variable holding the webhook's HMAC key or the Matrix access token.
type Notifier struct {
	Name      string       `json:"name"`
	Type      NotifierType `json:"type"`
	URL       string       `json:"url,omitempty"`  // webhook, slack, mattermost; matrix: the homeserver
	Room      string       `json:"room,omitempty"` // matrix room id
	To        []string     `json:"to,omitempty"`   // email addresses
	SecretEnv string       `json:"secret_env,omitempty"`
}

// Recipient is where one notification goes: a notifier, or an e-mail
// address.
type Recipient struct {
	Type    NotifierType `json:"type"`
	Name    string       `json:"name"` // the notifier's name, or the contact's
	Address string       `json:"address"`
	Room    string       `json:"room,omitempty"`
	// SecretEnv names the environment variable with the key or token.
	SecretEnv string `json:"secret_env,omitempty"`
}

// Key identifies the recipient: one notification per recipient and group.
func (r Recipient) Key() string {
	return string(r.Type) + " " + r.Address + " " + r.Room
}

// Message is what a notification says, whatever the channel.
type Message struct {
	// ID is unique per delivery and stays the same over retries: receivers
	// use it to drop duplicates.
	ID      string    `json:"id"`
	Subject string    `json:"subject"`
	Text    string    `json:"text"`
	Alerts  []Alert   `json:"alerts"`
	URL     string    `json:"url,omitempty"` // the page to open
	At      time.Time `json:"at"`
	// System is what the message is about: where a delivery that finally
	// fails raises its alert.
	System string `json:"system,omitempty"`
}

// Hours is a weekly schedule in a time zone: "24/7", or days and hours,
// "Mon-Fri 08:00-18:00 Europe/Berlin", "Sat,Sun 10-16 UTC".
type Hours struct {
	always   bool
	days     [7]bool // by time.Weekday
	from, to int     // minutes after midnight; to may be below from (overnight)
	loc      *time.Location
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseHours parses a weekly schedule.
func ParseHours(s string) (Hours, error) {
	fields := strings.Fields(s)
	if len(fields) == 1 && fields[0] == "24/7" {
		return Hours{always: true, loc: time.UTC}, nil
	}
	if len(fields) < 2 || len(fields) > 3 {
		return Hours{}, fmt.Errorf("hours %q: want \"24/7\" or days, hours and a time zone, like \"Mon-Fri 08:00-18:00 Europe/Berlin\"", s)
	}
	var h Hours
	for _, part := range strings.Split(strings.ToLower(fields[0]), ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, ok1 := weekdays[from]
		b, ok2 := weekdays[to]
		if !isRange {
			b, ok2 = a, ok1
		}
		if !ok1 || !ok2 {
			return Hours{}, fmt.Errorf("hours %q: %q is not a day or range of days (Mon, Tue, …, Sun)", s, part)
		}
		for d := a; ; d = (d + 1) % 7 {
			h.days[d] = true
			if d == b {
				break
			}
		}
	}
	from, to, ok := strings.Cut(fields[1], "-")
	if !ok {
		return Hours{}, fmt.Errorf("hours %q: %q is not a range of hours like 08:00-18:00", s, fields[1])
	}
	var err error
	if h.from, err = clock(from); err != nil {
		return Hours{}, fmt.Errorf("hours %q: %w", s, err)
	}
	if h.to, err = clock(to); err != nil {
		return Hours{}, fmt.Errorf("hours %q: %w", s, err)
	}
	if h.from == h.to {
		return Hours{}, fmt.Errorf("hours %q: the range %s is empty", s, fields[1])
	}
	if h.from == 24*60 {
		// It would match no minute at all, or mean the next day.
		return Hours{}, fmt.Errorf("hours %q: a range cannot start at 24:00; start it at 00", s)
	}
	h.loc = time.UTC
	if len(fields) == 3 {
		// "Local" is whatever zone the server runs in: schedules in the
		// config repository must not depend on that.
		if h.loc, err = time.LoadLocation(fields[2]); err != nil || fields[2] == "Local" {
			return Hours{}, fmt.Errorf("hours %q: unknown time zone %q", s, fields[2])
		}
	}
	return h, nil
}

// clock parses "8", "08", "08:30" or "24" into minutes after midnight.
func clock(s string) (int, error) {
	hh, mm, hasMinutes := strings.Cut(s, ":")
	h, err := strconv.Atoi(hh)
	m := 0
	if err == nil && hasMinutes {
		if len(mm) != 2 {
			err = fmt.Errorf("minutes")
		} else {
			m, err = strconv.Atoi(mm)
		}
	}
	// Atoi takes signs and any number of digits: "+8" and "008" are no
	// times of day.
	digits := len(hh) >= 1 && len(hh) <= 2 && strings.Trim(hh+mm, "0123456789") == ""
	if err != nil || !digits || h < 0 || h > 24 || m < 0 || m > 59 || h == 24 && m != 0 {
		return 0, fmt.Errorf("%q is not a time of day like 08:00", s)
	}
	return h*60 + m, nil
}

// Next returns the first moment at or after t within the schedule: t
// itself when it is within, else the next start of a range.
func (h Hours) Next(t time.Time) time.Time {
	if h.Contains(t) || h.always || h.loc == nil {
		return t
	}
	local := t.In(h.loc)
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, h.loc)
	for d := 0; d <= 7; d++ {
		day := midnight.AddDate(0, 0, d)
		if !h.days[day.Weekday()] {
			continue
		}
		start := time.Date(day.Year(), day.Month(), day.Day(), h.from/60, h.from%60, 0, 0, h.loc)
		if start.After(t) {
			return start
		}
	}
	return t // no day in the schedule: cannot happen for parsed hours
}

// Contains reports whether t falls within the schedule. An overnight range
// ("Mon-Fri 22-06") belongs to the day it starts on.
func (h Hours) Contains(t time.Time) bool {
	if h.always {
		return true
	}
	if h.loc == nil {
		return false // the zero Hours, never parsed: no day is in it
	}
	t = t.In(h.loc)
	m := t.Hour()*60 + t.Minute()
	if h.from < h.to {
		return h.days[t.Weekday()] && m >= h.from && m < h.to
	}
	if m >= h.from {
		return h.days[t.Weekday()]
	}
	return m < h.to && h.days[(t.Weekday()+6)%7]
}

// Silence mutes the alerts of a system and everything under it for a
// while. A maintenance window is a silence planned ahead and announced.
type Silence struct {
	ID        string    `json:"id"`
	System    string    `json:"system"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Reason    string    `json:"reason"`
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
	// Maintenance marks a planned maintenance window.
	Maintenance bool `json:"maintenance,omitempty"`
	// UntilResolved ends the silence early when the alerts it covers have
	// all resolved (and at least one was there).
	UntilResolved bool `json:"until_resolved,omitempty"`
	// Ended is set when the silence was ended early, by a person or by the
	// alerts resolving; Reminded when its creator was reminded.
	Ended    *time.Time `json:"ended,omitempty"`
	EndedBy  string     `json:"ended_by,omitempty"`
	Reminded bool       `json:"reminded,omitempty"`
}

// Limits of silences.
const (
	MaxSilence       = 90 * 24 * time.Hour
	MaxReasonLen     = 1000
	SilenceReminding = 15 * time.Minute // before the end, the creator is reminded
)

// Validate checks a new silence.
func (s Silence) Validate(now time.Time) error {
	switch {
	case ValidateSystemID(s.System) != nil:
		return Errorf(EINVALID, "invalid system id %q", s.System)
	case s.End.IsZero():
		return Errorf(EINVALID, "a silence needs an end")
	case !s.End.After(s.Start):
		return Errorf(EINVALID, "the end %s is not after the start %s", s.End.Format(time.RFC3339), s.Start.Format(time.RFC3339))
	case !s.End.After(now):
		return Errorf(EINVALID, "the end %s is in the past", s.End.Format(time.RFC3339))
	case s.End.Sub(s.Start) > MaxSilence:
		return Errorf(EINVALID, "a silence lasts at most %d days", int(MaxSilence.Hours()/24))
	case strings.TrimSpace(s.Reason) == "":
		return Errorf(EINVALID, "a silence needs a reason")
	case len(s.Reason) > MaxReasonLen:
		return Errorf(EINVALID, "the reason is longer than %d bytes", MaxReasonLen)
	}
	return nil
}

// ActiveAt reports whether the silence mutes alerts at t.
func (s Silence) ActiveAt(t time.Time) bool {
	return !t.Before(s.Start) && t.Before(s.End) && (s.Ended == nil || t.Before(*s.Ended))
}
