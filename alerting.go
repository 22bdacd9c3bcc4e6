package aramaki

import (
	"fmt"
	"time"
)

// CheckKey names a check of a system: what one alert is about.
type CheckKey struct {
	System string `json:"system"`
	Check  string `json:"check"`
}

// AlertGroup is a set of alerts that started together on related systems.
type AlertGroup struct {
	ID     string    `json:"id"`
	System string    `json:"system"` // of its first alert
	Opened time.Time `json:"opened"`
	// Systems are the systems of its alerts.
	Systems []string `json:"systems"`
}

// AlertInput is what the alert engine decides on: the checks that changed
// (or are waiting to be bad long enough), their states on every agent, the
// alerts open on them, and the groups new alerts may join.
type AlertInput struct {
	Now     time.Time
	Pending []CheckKey
	States  map[CheckKey][]CheckState
	Active  map[CheckKey]Alert
	Groups  []AlertGroup // not resolved, opened within GroupWindow
}

// AlertOutput is what the engine decided. New alerts name their group by
// its id, or by "new:N" for the N-th group in NewGroups. Events has the
// events of updated alerts; whoever stores a new alert appends its
// AlertOpenedEvent once it has an id.
type AlertOutput struct {
	Open      []Alert
	Update    []Alert // changed status or output, or resolved
	NewGroups []AlertGroup
	Done      []CheckKey // no longer pending
	Events    []Event
}

// NewGroupRef names the i-th new group of an AlertOutput.
func NewGroupRef(i int) string { return fmt.Sprintf("new:%d", i) }

// DecideAlerts opens, updates and resolves alerts for the pending checks.
// alertAfter says how many bad results in a row open an alert on a check.
// An alert opens with the worst status of the agents that have been bad
// long enough, stays open while any agent is bad, and resolves when every
// agent is OK (or none reports the check any more).
func DecideAlerts(in AlertInput, g *Graph, alertAfter func(CheckKey) int) (AlertOutput, error) {
	var out AlertOutput
	groups := newGrouper(in, g)
	for _, k := range in.Pending {
		after := max(alertAfter(k), 1)
		var (
			worst    *CheckState
			problems bool
		)
		for i, st := range in.States[k] {
			if !st.Status.Problem() {
				continue
			}
			problems = true
			if st.Count >= after && (worst == nil || st.Status.Worse(worst.Status) != worst.Status) {
				worst = &in.States[k][i]
			}
		}
		a, open := in.Active[k]
		switch {
		case open && !problems:
			a.State, a.Updated = AlertResolved, in.Now
			resolved := in.Now
			a.Resolved = &resolved
			out.Update = append(out.Update, a)
			ev, err := alertEvent(in.Now, KindAlertResolved, a, "", fmt.Sprintf("%s/%s recovered: alert %s resolved", a.System, a.Check, a.ID))
			if err != nil {
				return AlertOutput{}, err
			}
			out.Events = append(out.Events, ev)
		case open:
			// Still bad somewhere: keep the worst status and its output.
			if worst != nil && (worst.Status != a.Status || worst.Output != a.Output) {
				a.Status, a.Output, a.Updated = worst.Status, worst.Output, in.Now
				out.Update = append(out.Update, a)
			}
			if worst == nil {
				// Bad, but not long enough on any agent to say how bad:
				// look again with the next result.
				continue
			}
		case worst != nil:
			a = Alert{System: k.System, Check: k.Check, Status: worst.Status, State: AlertOpen,
				Output: worst.Output, Opened: in.Now, Updated: in.Now}
			a.Group = groups.place(k.System, in.Now, &out)
			out.Open = append(out.Open, a) // its event comes with its id: AlertOpenedEvent
		case problems:
			continue // bad, not long enough yet: stays pending
		}
		out.Done = append(out.Done, k)
	}
	return out, nil
}

// AlertOpenedEvent is the timeline event of a new alert.
func AlertOpenedEvent(a Alert) (Event, error) {
	return alertEvent(a.Opened, KindAlertOpened, a, "", fmt.Sprintf("%s/%s is %s: alert %s opened", a.System, a.Check, a.Status, a.ID))
}

// AlertEvent is the timeline event of a person doing something to an
// alert: acknowledging, assigning, commenting, resolving.
// actor is the principal's Actor().
func AlertEvent(at time.Time, kind EventKind, a Alert, actor, comment, summary string) (Event, error) {
	return NewEvent(at, kind, actor, []string{a.System}, summary, AlertData{Alert: a, Actor: actor, Comment: comment})
}

// alertEvent is the timeline event of something that happened to an alert.
// An alert not yet stored has no id: its event is made unique by its
// system, check and time.
func alertEvent(at time.Time, kind EventKind, a Alert, actor, summary string) (Event, error) {
	if actor == "" {
		actor = "server"
	}
	return NewEvent(at, kind, actor, []string{a.System}, summary, AlertData{Alert: a, Actor: actor})
}

// grouper puts new alerts into groups: an alert joins the newest group,
// opened within GroupWindow, that has an alert on the same system, on a
// system above or below it, or on a sibling (a system used by one of the
// systems that use it); otherwise it starts a group.
type grouper struct {
	g       *Graph
	groups  []*openGroup
	related map[string]map[string]bool // memo: a system, those above and below it
}

type openGroup struct {
	ref     string
	opened  time.Time
	systems map[string]bool
}

func newGrouper(in AlertInput, g *Graph) *grouper {
	gr := &grouper{g: g, related: map[string]map[string]bool{}}
	for _, ag := range in.Groups {
		og := &openGroup{ref: ag.ID, opened: ag.Opened, systems: map[string]bool{}}
		for _, s := range ag.Systems {
			og.systems[s] = true
		}
		gr.groups = append(gr.groups, og)
	}
	return gr
}

func (gr *grouper) relatives(system string) map[string]bool {
	if r, ok := gr.related[system]; ok {
		return r
	}
	r := map[string]bool{system: true}
	if gr.g != nil {
		for _, s := range gr.g.Ancestors(system) {
			r[s] = true
		}
		for _, s := range gr.g.Descendants(system) {
			r[s] = true
		}
		// Siblings: what the systems that use it directly also use (the
		// shop's app breaks when the storage under the shop does).
		for _, parent := range gr.g.UsedBy(system) {
			if sys := gr.g.System(parent); sys != nil {
				for _, s := range sys.Subsystems {
					r[s] = true
				}
			}
		}
	}
	gr.related[system] = r
	return r
}

func (gr *grouper) place(system string, now time.Time, out *AlertOutput) string {
	rel := gr.relatives(system)
	for i := len(gr.groups) - 1; i >= 0; i-- {
		og := gr.groups[i]
		if now.Sub(og.opened) > GroupWindow {
			continue
		}
		joins := og.systems[system]
		if !joins {
			// Walk the smaller side.
			if len(rel) < len(og.systems) {
				for s := range rel {
					if og.systems[s] {
						joins = true
						break
					}
				}
			} else {
				for s := range og.systems {
					if rel[s] {
						joins = true
						break
					}
				}
			}
		}
		if joins {
			og.systems[system] = true
			return og.ref
		}
	}
	ref := NewGroupRef(len(out.NewGroups))
	out.NewGroups = append(out.NewGroups, AlertGroup{ID: ref, System: system, Opened: now, Systems: []string{system}})
	gr.groups = append(gr.groups, &openGroup{ref: ref, opened: now, systems: map[string]bool{system: true}})
	return ref
}

// AlertFilter selects alerts from the store, newest first.
type AlertFilter struct {
	Systems []string // nil: all
	States  []AlertState
	Before  time.Time // opened before; zero: any time
	Group   string
	Limit   int
}

// CheckChanges is how often a check of a system changed status.
type CheckChanges struct {
	System  string `json:"system"`
	Check   string `json:"check"`
	Changes int    `json:"changes"`
}

// Digest is the periodic review of a system and everything under it: what
// makes noise, what is always broken, what nobody took up, and which
// silences are about to end.
type Digest struct {
	System         string         `json:"system"`
	Title          string         `json:"title"`
	Since          time.Time      `json:"since"`
	Until          time.Time      `json:"until"`
	Noisiest       []CheckChanges `json:"noisiest"`
	AlwaysBroken   []CheckState   `json:"always_broken"` // bad since before the period began
	Unacknowledged []Alert        `json:"unacknowledged"`
	Expiring       []Silence      `json:"expiring"` // silences ending within a day
}

// Empty reports whether the digest has nothing to say.
func (d Digest) Empty() bool {
	return len(d.Noisiest) == 0 && len(d.AlwaysBroken) == 0 && len(d.Unacknowledged) == 0 && len(d.Expiring) == 0
}

// KindDigestSent is the timeline kind of a review digest sent to owners.
const KindDigestSent EventKind = "review.digest"
