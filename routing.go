package aramaki

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Routing: an alert on a system is routed by the routes of that system and
// of every system above it (the people of every project that uses the
// storage hear that it broke), plus the routes of the systems they forward
// to. Each recipient hears once per alert that it opened and once that it
// resolved; escalation routes (with After) only while nobody acknowledged.

// Routed is a recipient an alert reaches through a route.
type Routed struct {
	Recipient Recipient
	System    string        // whose route it is
	After     time.Duration // escalation delay of the route
}

// Route returns where an alert of status s on system goes at t: every
// recipient of a matching route, each once (the earliest route wins); and
// when the first route now outside its hours begins (zero: none is). A zero
// t asks for the routes at any hour.
func (g *Graph) Route(notifiers []Notifier, system string, s Status, t time.Time) ([]Routed, time.Time) {
	byName := map[string]Notifier{}
	for _, n := range notifiers {
		byName[n.Name] = n
	}
	var (
		out  []Routed
		wake time.Time
	)
	seen := map[string]int{} // recipient key -> index in out
	add := func(r Routed) {
		if i, ok := seen[r.Recipient.Key()]; ok {
			if r.After < out[i].After {
				out[i] = r
			}
			return
		}
		seen[r.Recipient.Key()] = len(out)
		out = append(out, r)
	}
	visited := map[string]bool{}
	var walk func(id string)
	walk = func(id string) {
		if visited[id] {
			return // forwards never loop (the config repository refuses it), but be sure
		}
		visited[id] = true
		sys := g.System(id)
		if sys == nil {
			return
		}
		for _, r := range sys.Routing {
			if !r.Wants(s) {
				continue
			}
			if from := r.From(t); !t.IsZero() && from.After(t) {
				if wake.IsZero() || from.Before(wake) {
					wake = from
				}
				continue
			}
			if r.Forward != "" {
				walk(r.Forward)
				continue
			}
			for _, rc := range recipientsOf(sys, r, byName) {
				add(Routed{Recipient: rc, System: id, After: r.After})
			}
		}
	}
	walk(system)
	for _, a := range g.Ancestors(system) {
		walk(a)
	}
	return out, wake
}

// recipientsOf resolves a route of sys to recipients.
func recipientsOf(sys *System, r Route, notifiers map[string]Notifier) []Recipient {
	var contact *Contact
	for _, list := range [][]Contact{sys.Contacts, sys.Owners} {
		for i := range list {
			if list[i].Name == r.Contact {
				contact = &list[i]
			}
		}
	}
	via := r.Via
	if via == "" {
		via = "email"
	}
	if via == "email" {
		if contact == nil || contact.Email == "" {
			return nil
		}
		return []Recipient{{Type: NotifyEmail, Name: contact.Name, Address: contact.Email}}
	}
	n, ok := notifiers[via]
	if !ok {
		return nil
	}
	name := n.Name
	if contact != nil {
		name = contact.Name + " via " + n.Name
	}
	if n.Type == NotifyEmail {
		var out []Recipient
		for _, to := range n.To {
			out = append(out, Recipient{Type: NotifyEmail, Name: name, Address: to})
		}
		return out
	}
	return []Recipient{{Type: n.Type, Name: name, Address: n.URL, Room: n.Room, SecretEnv: n.SecretEnv}}
}

// Notification is one message to one recipient, in the outbox until it is
// sent or given up.
type Notification struct {
	ID        string            `json:"id"`
	Group     string            `json:"group,omitempty"`
	Recipient Recipient         `json:"recipient"`
	Message   Message           `json:"message"`
	State     NotificationState `json:"state"`
	Attempts  int               `json:"attempts"`
	Next      time.Time         `json:"next"`
	LastError string            `json:"last_error,omitempty"`
	Created   time.Time         `json:"created"`
	Done      *time.Time        `json:"done,omitempty"`
	// Lease is until when the sender that claimed it may send it; a
	// sender whose lease ran out records nothing over another's.
	Lease time.Time `json:"-"`
}

// NotificationState is where a notification is.
type NotificationState string

// Notification states.
const (
	NotificationPending NotificationState = "pending"
	NotificationSent    NotificationState = "sent"
	NotificationFailed  NotificationState = "failed"
)

// DeliveryAttempt is the outcome of one try to send a notification; Error
// is empty when it went through.
type DeliveryAttempt struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration"`
	Error    string        `json:"error,omitempty"`
}

// Told records that a recipient heard something about an alert.
type Told struct {
	Alert     string
	Recipient string // Recipient.Key()
	Kind      string // "opened" or "resolved"
}

// PlanGroup is a group due for notifications: its alerts and who was told
// what already.
type PlanGroup struct {
	Group  AlertGroup
	Alerts []Alert
	Told   map[Told]bool
	// Recipients are those told anything, by Recipient.Key(): whoever heard
	// of an alert hears it resolved, even when the routes changed since.
	Recipients map[string]Recipient
}

// PlanOutput is what the planner decided for the due groups.
type PlanOutput struct {
	Notifications []Notification
	Told          []Told
	// To are the recipients of Told, by Recipient.Key().
	To map[string]Recipient
	// Next is when each group is to be looked at again; a group missing
	// from Next has nothing more to do.
	Next map[string]time.Time
	// Resolved are the groups whose alerts are all resolved.
	Resolved []string
	// Escalated are alerts that reached a new escalation level.
	Escalated []Alert
	// Silenced are alerts a silence kept quiet, with its id and when it
	// ends (or ended early).
	Silenced []Alert
	Events   []Event
}

// Planner decides who to notify of what for due alert groups.
type Planner struct {
	Graph     *Graph
	Notifiers []Notifier
	Silences  []Silence // active or future
	URL       string    // the server's address, for links
	Now       time.Time
}

// silencedBy returns the silence muting alerts of system now, if any.
func (p Planner) silencedBy(system string) *Silence {
	above := map[string]bool{system: true}
	if p.Graph != nil {
		for _, a := range p.Graph.Ancestors(system) {
			above[a] = true
		}
	}
	for i, s := range p.Silences {
		if above[s.System] && s.ActiveAt(p.Now) {
			return &p.Silences[i]
		}
	}
	return nil
}

// Plan decides the notifications of the due groups.
func (p Planner) Plan(groups []PlanGroup) (PlanOutput, error) {
	out := PlanOutput{Next: map[string]time.Time{}, To: map[string]Recipient{}}
	for _, pg := range groups {
		if err := p.planGroup(pg, &out); err != nil {
			return PlanOutput{}, err
		}
	}
	return out, nil
}

func (p Planner) planGroup(pg PlanGroup, out *PlanOutput) error {
	type news struct {
		recipient        Recipient
		opened, resolved []Alert
	}
	var (
		order []string
		byKey = map[string]*news{}
		next  time.Time
	)
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	tell := func(rc Recipient) *news {
		out.To[rc.Key()] = rc
		n := byKey[rc.Key()]
		if n == nil {
			n = &news{recipient: rc}
			byKey[rc.Key()] = n
			order = append(order, rc.Key())
		}
		return n
	}
	heard := map[string][]string{} // alert id -> recipients told it opened
	for t := range pg.Told {
		if t.Kind == "opened" {
			heard[t.Alert] = append(heard[t.Alert], t.Recipient)
		}
	}
	for _, keys := range heard {
		slices.Sort(keys)
	}
	allResolved := true
	for _, a := range pg.Alerts {
		if !a.Active() {
			// Whoever heard it opened hears it resolved, at any hour.
			for _, k := range heard[a.ID] {
				if !pg.Told[Told{a.ID, k, "resolved"}] {
					rc, ok := pg.Recipients[k]
					if !ok {
						continue
					}
					n := tell(rc)
					n.resolved = append(n.resolved, a)
					out.Told = append(out.Told, Told{a.ID, k, "resolved"})
				}
			}
			continue
		}
		allResolved = false
		if a.State == AlertAcknowledged {
			continue // someone is on it: no more pages, no escalation
		}
		if s := p.silencedBy(a.System); s != nil {
			end := s.End
			if s.Ended != nil && s.Ended.Before(end) {
				end = *s.Ended
			}
			if a.Silenced != s.ID || a.QuietUntil == nil || !a.QuietUntil.Equal(end) {
				muted := a
				muted.Silenced, muted.QuietUntil = s.ID, &end
				out.Silenced = append(out.Silenced, muted)
			}
			later(end)
			continue
		}
		// Escalation counts from when it could first be heard: its opening,
		// or the end of the silence that kept it quiet.
		clock := a.Opened
		if q := a.QuietUntil; q != nil {
			if q.After(p.Now) {
				// The silence ended early.
				now := p.Now
				muted := a
				muted.QuietUntil = &now
				out.Silenced = append(out.Silenced, muted)
				q = &now
			}
			if q.After(clock) {
				clock = *q
			}
		}
		routes, wake := p.Graph.Route(p.Notifiers, a.System, a.Status, p.Now)
		if !wake.IsZero() {
			later(wake) // a route whose hours begin then hears of it then
		}
		// Escalation levels: the distinct delays of the routes, in order.
		// An alert escalated by hand counts as that many delays passed.
		var delays []time.Duration
		for _, r := range routes {
			if r.After > 0 && !slices.Contains(delays, r.After) {
				delays = append(delays, r.After)
			}
		}
		slices.Sort(delays)
		elapsed := p.Now.Sub(clock)
		if a.Level > 0 && a.Level <= len(delays) {
			elapsed = max(elapsed, delays[a.Level-1])
		}
		level := 0
		for i, d := range delays {
			if d <= elapsed {
				level = i + 1
			} else {
				later(clock.Add(d))
				break
			}
		}
		if level > a.Level {
			esc := a
			esc.Level, esc.Updated = level, p.Now
			out.Escalated = append(out.Escalated, esc)
			ev, err := alertEvent(p.Now, KindAlertEscalated, esc, "",
				fmt.Sprintf("alert %s (%s/%s) unacknowledged for %s: escalated to level %d", a.ID, a.System, a.Check, roundDuration(p.Now.Sub(a.Opened)), level))
			if err != nil {
				return err
			}
			out.Events = append(out.Events, ev)
		}
		for _, r := range routes {
			if r.After > elapsed {
				continue
			}
			k := r.Recipient.Key()
			if !pg.Told[Told{a.ID, k, "opened"}] {
				n := tell(r.Recipient)
				n.opened = append(n.opened, a)
				out.Told = append(out.Told, Told{a.ID, k, "opened"})
			}
		}
	}
	for i, k := range order {
		n := byKey[k]
		m := p.message(pg.Group, n.opened, n.resolved)
		m.ID = fmt.Sprintf("g%s-%d-%d", pg.Group.ID, p.Now.UnixMicro(), i)
		out.Notifications = append(out.Notifications, Notification{Group: pg.Group.ID, Recipient: n.recipient, Message: m,
			State: NotificationPending, Next: p.Now, Created: p.Now})
	}
	if allResolved {
		out.Resolved = append(out.Resolved, pg.Group.ID)
	} else if !next.IsZero() {
		out.Next[pg.Group.ID] = next
	}
	return nil
}

// message says what a recipient needs to know: the alerts that opened,
// worst first, and those that resolved.
func (p Planner) message(g AlertGroup, opened, resolved []Alert) Message {
	slices.SortStableFunc(opened, func(a, b Alert) int {
		if a.Status.Worse(b.Status) != b.Status.Worse(a.Status) {
			if a.Status.Worse(b.Status) == a.Status {
				return -1
			}
			return 1
		}
		return strings.Compare(a.System+"/"+a.Check, b.System+"/"+b.Check)
	})
	m := Message{At: p.Now, System: g.System}
	var b strings.Builder
	switch {
	case len(opened) > 0:
		first := opened[0]
		m.Subject = fmt.Sprintf("%s %s/%s", strings.ToUpper(first.Status.String()), first.System, first.Check)
		if len(opened) > 1 {
			m.Subject = fmt.Sprintf("%d alerts: %s and %d more", len(opened), m.Subject, len(opened)-1)
		}
		m.Alerts = append(m.Alerts, opened...)
	default:
		first := resolved[0]
		m.Subject = fmt.Sprintf("RESOLVED %s/%s", first.System, first.Check)
		if len(resolved) > 1 {
			m.Subject = fmt.Sprintf("RESOLVED %d alerts: %s/%s and %d more", len(resolved), first.System, first.Check, len(resolved)-1)
		}
	}
	const maxLines = 50
	lines := 0
	line := func(format string, args ...any) {
		if lines < maxLines {
			fmt.Fprintf(&b, format+"\n", args...)
		} else if lines == maxLines {
			b.WriteString("…\n")
		}
		lines++
	}
	for _, a := range opened {
		line("%s %s/%s (alert %s, since %s): %s", strings.ToUpper(a.Status.String()), a.System, a.Check, a.ID,
			a.Opened.UTC().Format("2006-01-02 15:04 UTC"), firstLineOf(a.Output))
	}
	for _, a := range resolved {
		line("RESOLVED %s/%s (alert %s)", a.System, a.Check, a.ID)
	}
	m.Alerts = append(m.Alerts, resolved...)
	m.Text = b.String()
	if p.URL != "" {
		m.URL = strings.TrimRight(p.URL, "/") + "/alerts?group=" + g.ID
	}
	return m
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func roundDuration(d time.Duration) string {
	if d >= time.Minute {
		return d.Round(time.Minute).String()
	}
	return d.Round(time.Second).String()
}
