package configrepo

import (
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"gopkg.in/yaml.v3"
)

// MaxRouteAfter bounds a route's after: an escalation that waits longer
// than a week is not an escalation.
const MaxRouteAfter = 7 * 24 * time.Hour

// viaEmail is the via that sends to the contact's own e-mail address. It is
// the default for a route with a contact, and no notifier may take the name.
const viaEmail = "email"

// maxHoursLen bounds the hours checked by aramaki.ParseHours, whose
// messages quote them: a schedule is a few words.
const maxHoursLen = 80

// routeDecl is a route as written, with the nodes of what it names, which
// are checked once the whole system is read.
type routeDecl struct {
	route                       aramaki.Route
	node, contact, via, forward *yaml.Node
	after                       *yaml.Node
	// wrong is set when contact or forward is not a text: reported
	// already, so the route is not reported for lacking both.
	wrong bool
}

func (f *fileParser) routes(v *yaml.Node) []routeDecl {
	var out []routeDecl
	f.list(v, "routing", func(item *yaml.Node) {
		rd := routeDecl{node: item}
		r := &rd.route
		if !f.object(item, routeShape, func(k, v *yaml.Node) {
			var ok bool
			switch k.Value {
			case "contact":
				if r.Contact, ok = f.text(v, "contact"); ok {
					rd.contact = v
				} else {
					rd.wrong = true
				}
			case "via":
				if r.Via, ok = f.text(v, "via"); ok {
					rd.via = v
				}
			case "severities":
				r.Severities = f.severities(v)
			case "hours":
				if r.Hours, ok = f.text(v, "hours"); ok {
					f.hours(v, r.Hours)
				}
			case "after":
				r.After = f.after(v)
				rd.after = v
			case "forward":
				if r.Forward, ok = f.text(v, "forward"); ok {
					rd.forward = v
				} else {
					rd.wrong = true
				}
			}
		}) {
			return
		}
		out = append(out, rd)
	})
	return out
}

// severities reads the statuses a route is limited to. They are written as
// aramaki.Status prints them; ok is no problem and never alerts.
func (f *fileParser) severities(v *yaml.Node) []aramaki.Status {
	var out []aramaki.Status
	f.list(v, "severities", func(item *yaml.Node) {
		name, ok := f.text(item, "a severity")
		if !ok {
			return
		}
		st, err := aramaki.ParseStatus(name)
		switch {
		case err != nil || strings.TrimSpace(name) == "":
			f.add(item, "unknown severity %q (use warning, critical or unknown)", clip(name))
		case st == aramaki.StatusOK:
			f.add(item, "severity ok is no problem and never alerts: use warning, critical or unknown")
		case name != st.String():
			f.add(item, "severity %q: write it in lower case, %s", clip(name), st)
		case slices.Contains(out, st):
			f.add(item, "severity %s is listed twice", st)
		default:
			out = append(out, st)
		}
	})
	return out
}

func (f *fileParser) hours(v *yaml.Node, s string) {
	switch {
	case s == "":
	case len(s) > maxHoursLen:
		f.add(v, "hours %q is not a schedule like \"Mon-Fri 08:00-18:00 Europe/Berlin\" or \"24/7\"", clip(s))
	default:
		if _, err := aramaki.ParseHours(s); err != nil {
			f.add(v, "%s", err)
		}
	}
}

func (f *fileParser) after(v *yaml.Node) time.Duration {
	s, ok := f.text(v, "after")
	if !ok || s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		f.add(v, "after %q is not a duration (write it like 15m or 1h30m)", clip(s))
	case d < 0:
		f.add(v, "after must be 0 or more, not %s", clip(s))
	case d > MaxRouteAfter:
		f.add(v, "after must be at most 168h (7 days), not %s", clip(s))
	default:
		return d
	}
	return 0
}

// checkRoutes checks what the routes of system s name: its own owners and
// contacts, and the notifiers. It returns the routes and the well-formed
// local forwards, whose targets are checked across systems.
func (f *fileParser) checkRoutes(s *aramaki.System, routes []routeDecl) ([]aramaki.Route, []ref) {
	var out []aramaki.Route
	var forwards []ref
	if len(routes) == 0 {
		return nil, nil
	}
	// A name may be given more than once: an owner who is also a contact.
	people := map[string][]aramaki.Contact{}
	for _, c := range slices.Concat(s.Owners, s.Contacts) {
		people[c.Name] = append(people[c.Name], c)
	}
	for _, rd := range routes {
		r := rd.route
		if r.Contact != "" && r.Via == "" {
			rd.route.Via = viaEmail // the default, written out for who sends
		}
		out = append(out, rd.route)
		contact, forward := strings.TrimSpace(r.Contact) != "", strings.TrimSpace(r.Forward) != ""
		switch {
		case rd.wrong:
			continue
		case !contact && !forward:
			f.add(rd.node, "a route needs a contact (who hears of the alert) or a forward (the system whose routes take it)")
			continue
		case contact && forward:
			f.add(rd.node, "a route has a contact or a forward, not both: write two routes")
			continue
		case forward:
			if rd.via != nil && r.Via != "" {
				f.add(rd.via, "a forward has no via: the routes of system %s say how their contacts hear of the alert", clip(r.Forward))
			}
			if rd.after != nil && !isNull(rd.after) {
				f.add(rd.after, "a forward has no after: the routes of system %s say when their contacts hear of the alert", clip(r.Forward))
			}
			if id, ok := f.forward(rd.forward, r.Forward, s.ID); ok {
				forwards = append(forwards, ref{id: id, line: rd.forward.Line})
			}
			continue
		}

		named := people[r.Contact]
		if len(named) == 0 {
			f.add(rd.contact, "no owner or contact of this system is named %q", clip(r.Contact))
			continue
		}
		switch r.Via {
		case "", viaEmail:
			// Whichever of the same name is written to, each needs an
			// address.
			var with, without int
			for _, c := range named {
				if c.Email == "" {
					without++
					continue
				}
				with++
				if _, err := mail.ParseAddress(c.Email); err != nil {
					f.add(rd.contact, "the email of %q, %q, is not an e-mail address", clip(r.Contact), clip(c.Email))
				}
			}
			switch {
			case without == 0:
			case with > 0:
				f.add(rd.contact, "not every owner and contact named %q has an email: add it to each, or a via naming a notifier", clip(r.Contact))
			case r.Via == "":
				f.add(rd.contact, "contact %q has no email, and routes send e-mail unless they say otherwise: add an email to the contact, or a via naming a notifier", clip(r.Contact))
			default:
				f.add(rd.via, "via email needs an email of %q: add one to the contact", clip(r.Contact))
			}
		default:
			if !f.p.notifierNames[r.Via] && !f.p.notifiersIncomplete {
				f.add(rd.via, "unknown notifier %q: via is email or the name of a notifier in %s", clip(r.Via), notifiersFile)
			}
		}
	}
	return out, forwards
}

// forward checks the system a route forwards to, as far as it can be
// checked without the other systems.
func (f *fileParser) forward(v *yaml.Node, id, self string) (string, bool) {
	switch {
	case strings.Contains(id, "@"):
		f.add(v, "forward %s: remote systems (x@peer) need federation, which this server does not have yet", clip(id))
	case aramaki.ValidateSystemID(id) != nil:
		f.add(v, "%s", aramaki.ErrorMessage(aramaki.ValidateSystemID(clip(id))))
	case id == self:
		f.add(v, "a system cannot forward to itself: its routes take its alerts already")
	default:
		return id, true
	}
	return "", false
}
