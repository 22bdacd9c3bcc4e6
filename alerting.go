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
	// Replan are groups to look at again now: an alert in them changed
	// status.
	Replan []string
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
				if worst.Status != a.Status {
					// Routes for the new status may not have heard of it.
					out.Replan = append(out.Replan, a.Group)
				}
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
			out.Open = append(out.Open, a) // its event comes with its id: AlertOpenedEvent
		case problems:
			continue // bad, not long enough yet: stays pending
		}
		out.Done = append(out.Done, k)
	}
	groupAlerts(in, g, &out)
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

// groupAlerts puts the new alerts into groups. Alerts are related when
// their systems are the same, one is above the other, or they are siblings
// (used directly by the same system: the shop's app breaks when the
// storage under the shop does). Related new alerts share a group, however
// many there are and in whatever order they come; a set of them related to
// an open group opened within GroupWindow joins the newest such group, and
// otherwise starts one.
func groupAlerts(in AlertInput, g *Graph, out *AlertOutput) {
	if len(out.Open) == 0 {
		return
	}
	// Union-find over the systems of new alerts and of open groups.
	parent := map[string]string{}
	find := func(x string) string {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	union := func(a, b string) { parent[find(a)] = find(b) }
	node := func(system string) string {
		n := "system:" + system
		if _, ok := parent[n]; !ok {
			parent[n] = n
		}
		return n
	}
	// Open groups: each a node joined with the systems of its alerts.
	opened := map[string]time.Time{}
	for _, ag := range in.Groups {
		if in.Now.Sub(ag.Opened) > GroupWindow {
			continue
		}
		gn := "group:" + ag.ID
		parent[gn], opened[gn] = gn, ag.Opened
		for _, s := range ag.Systems {
			union(node(s), gn)
		}
	}
	relatives := map[string][]string{}
	for _, a := range out.Open {
		if _, done := relatives[a.System]; !done {
			relatives[a.System] = relativesOf(g, a.System)
		}
	}
	// Systems seen so far, by name: a new alert joins every seen relative.
	for _, a := range out.Open {
		n := node(a.System)
		for _, r := range relatives[a.System] {
			if _, seen := parent["system:"+r]; seen {
				union(n, "system:"+r)
			}
		}
	}
	// Each set takes the newest open group in it, or a new one.
	chosen := map[string]string{} // root -> group ref
	for gn, t := range opened {
		r := find(gn)
		if cur, ok := chosen[r]; !ok || t.After(opened["group:"+cur]) {
			chosen[r] = gn[len("group:"):]
		}
	}
	for i, a := range out.Open {
		r := find("system:" + a.System)
		ref, ok := chosen[r]
		if !ok {
			ref = NewGroupRef(len(out.NewGroups))
			out.NewGroups = append(out.NewGroups, AlertGroup{ID: ref, System: a.System, Opened: in.Now, Systems: []string{a.System}})
			chosen[r] = ref
		}
		out.Open[i].Group = ref
	}
}

// relativesOf lists the systems an alert on system is related to: itself,
// those above and below it, and its siblings.
func relativesOf(g *Graph, system string) []string {
	out := []string{system}
	if g == nil {
		return out
	}
	out = append(out, g.Ancestors(system)...)
	out = append(out, g.Descendants(system)...)
	for _, p := range g.UsedBy(system) {
		if sys := g.System(p); sys != nil {
			out = append(out, sys.Subsystems...)
		}
	}
	return out
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
