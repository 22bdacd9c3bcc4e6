package configrepo_test

import (
	"cmp"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/configrepo"
)

// FuzzParse feeds two system files and a notifiers.yaml to the parser.
// Whatever they hold, it must not panic, and a commit it accepts must make a
// valid graph whose routes name what exists and whose notifiers are safe to
// send to.
func FuzzParse(f *testing.F) {
	// Each document of the sample on its own: seeds are kept small, as the
	// fuzzer minimizes what it finds in time quadratic in its size.
	sample := MustReadTree(f, "sample")
	for name, content := range sample {
		if configrepo.IsSystemFile(name) {
			for _, doc := range strings.Split(content, "\n---\n") {
				f.Add([]byte(doc), []byte(nil), []byte(sample["notifiers.yaml"]))
			}
		}
	}
	for _, tc := range slices.Concat(problemCases, routingCases, notifierCases, workflowCases) {
		var contents [][]byte
		for _, name := range slices.Sorted(maps.Keys(tc.files)) {
			if configrepo.IsSystemFile(name) {
				contents = append(contents, []byte(tc.files[name]))
			}
		}
		contents = append(contents, nil, nil)
		f.Add(contents[0], contents[1], []byte(tc.files["notifiers.yaml"]))
	}

	files := []string{"systems/a.yaml", "systems/b/b.yml", "notifiers.yaml"}
	f.Fuzz(func(t *testing.T, a, b, n []byte) {
		snap, problems := configrepo.Parse(map[string][]byte{files[0]: a, files[1]: b, files[2]: n})
		if len(problems) > 0 {
			if snap.Systems != nil || snap.Notifiers != nil {
				t.Fatalf("%d systems and %d notifiers returned along with problems", len(snap.Systems), len(snap.Notifiers))
			}
			for i, p := range problems {
				if !slices.Contains(files, p.File) {
					t.Errorf("problem in unknown file: %s", p)
				}
				if p.Message == "" || len(p.Message) > 1000 || !utf8.ValidString(p.Message) {
					t.Errorf("bad message: %q", p.Message)
				}
				if i > 0 && (problems[i-1].File > p.File || problems[i-1].File == p.File && problems[i-1].Line > p.Line) {
					t.Errorf("problems out of order: %s before %s", problems[i-1], p)
				}
			}
			return
		}
		systems := snap.Systems
		for i := range systems {
			if err := systems[i].Validate(); err != nil {
				t.Fatalf("accepted a system that does not validate: %v", err)
			}
			if i > 0 && systems[i-1].ID >= systems[i].ID {
				t.Fatalf("systems not ordered by id: %s, %s", systems[i-1].ID, systems[i].ID)
			}
		}
		g, err := aramaki.NewGraph(systems)
		if err != nil {
			t.Fatalf("accepted systems that make no graph: %v", err)
		}
		MustStepOnWhatIsBelow(t, g)
		notifiers := MustBeSafeNotifiers(t, snap.Notifiers)
		MustRouteToWhatExists(t, systems, notifiers)
	})
}

// MustBeSafeNotifiers checks accepted notifiers: unique names, a known type
// with what it needs, nothing sent in the clear or with credentials in the
// URL. It returns them by name.
func MustBeSafeNotifiers(t *testing.T, notifiers []aramaki.Notifier) map[string]aramaki.Notifier {
	t.Helper()
	byName := map[string]aramaki.Notifier{}
	for i, n := range notifiers {
		if _, dup := byName[n.Name]; dup || aramaki.ValidateSystemID(n.Name) != nil || n.Name == "email" {
			t.Fatalf("accepted notifier name %q", n.Name)
		}
		if i > 0 && notifiers[i-1].Name >= n.Name {
			t.Fatalf("notifiers not ordered by name: %s, %s", notifiers[i-1].Name, n.Name)
		}
		byName[n.Name] = n
		switch n.Type {
		case aramaki.NotifyEmail:
			if len(n.To) == 0 || n.URL != "" {
				t.Fatalf("accepted an email notifier with to %q and url %q", n.To, n.URL)
			}
		case aramaki.NotifyWebhook, aramaki.NotifyMatrix:
			if n.SecretEnv == "" {
				t.Fatalf("accepted a %s notifier without a secret", n.Type)
			}
			if n.Type == aramaki.NotifyMatrix && (!strings.HasPrefix(n.Room, "!") || !strings.Contains(n.Room, ":")) {
				t.Fatalf("accepted matrix room %q", n.Room)
			}
		case aramaki.NotifySlack, aramaki.NotifyMattermost:
			if (n.URL == "") == (n.SecretEnv == "") {
				t.Fatalf("accepted a %s notifier with url %q and secret_env %q: want one of them", n.Type, n.URL, n.SecretEnv)
			}
		default:
			t.Fatalf("accepted notifier type %q", n.Type)
		}
		if n.Type != aramaki.NotifyEmail && (n.URL != "" || n.SecretEnv == "") {
			u, err := url.Parse(n.URL)
			if err != nil || u.User != nil || u.Hostname() == "" {
				t.Fatalf("accepted url %q", n.URL)
			}
			ip := net.ParseIP(u.Hostname())
			if u.Scheme != "https" && !(u.Scheme == "http" && (strings.EqualFold(u.Hostname(), "localhost") || ip != nil && ip.IsLoopback())) {
				t.Fatalf("accepted url %q, neither https nor to a loopback address", n.URL)
			}
		}
		for _, c := range n.SecretEnv {
			if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
				t.Fatalf("accepted secret_env %q", n.SecretEnv)
			}
		}
	}
	return byName
}

// MustRouteToWhatExists checks accepted routes: each has a contact of its
// own system, reachable the way it says, or forwards to another system,
// without loops.
func MustRouteToWhatExists(t *testing.T, systems []aramaki.System, notifiers map[string]aramaki.Notifier) {
	t.Helper()
	ids := map[string]bool{}
	for _, s := range systems {
		ids[s.ID] = true
	}
	forwards := make([]aramaki.System, 0, len(systems))
	for _, s := range systems {
		fw := aramaki.System{ID: s.ID}
		for _, r := range s.Routing {
			if (r.Contact == "") == (r.Forward == "") {
				t.Fatalf("system %s: accepted route %+v with both or neither of contact and forward", s.ID, r)
			}
			if r.Forward != "" {
				if !ids[r.Forward] || r.Forward == s.ID || r.Via != "" || r.After != 0 {
					t.Fatalf("system %s: accepted forward to %q via %q", s.ID, r.Forward, r.Via)
				}
				fw.Subsystems = append(fw.Subsystems, r.Forward)
			}
			if r.Contact != "" {
				i := slices.IndexFunc(slices.Concat(s.Owners, s.Contacts), func(c aramaki.Contact) bool {
					return c.Name == r.Contact && (c.Email != "" || notifiers[r.Via].Name != "")
				})
				if i < 0 || r.Via != "email" && notifiers[r.Via].Name == "" {
					t.Fatalf("system %s: accepted route to %q via %q", s.ID, r.Contact, r.Via)
				}
			}
			for _, sev := range r.Severities {
				if !slices.Contains([]aramaki.Status{aramaki.StatusWarning, aramaki.StatusCritical, aramaki.StatusUnknown}, sev) {
					t.Fatalf("system %s: accepted severity %v", s.ID, sev)
				}
			}
			if _, err := aramaki.ParseHours(r.Hours); r.Hours != "" && err != nil {
				t.Fatalf("system %s: accepted hours %q: %v", s.ID, r.Hours, err)
			}
			if r.After < 0 || r.After > configrepo.MaxRouteAfter {
				t.Fatalf("system %s: accepted after %v", s.ID, r.After)
			}
		}
		for _, c := range s.Checks {
			if c.AlertAfter < 0 || c.AlertAfter > aramaki.MaxAlertAfter {
				t.Fatalf("system %s: accepted alert_after %d", s.ID, c.AlertAfter)
			}
		}
		forwards = append(forwards, fw)
	}
	if loop := aramaki.FindCycle(forwards); loop != nil {
		t.Fatalf("accepted a forward loop: %v", loop)
	}
}

// MustStepOnWhatIsBelow checks accepted workflows: every step runs an
// action exposed on the workflow's system or on one below it.
func MustStepOnWhatIsBelow(t *testing.T, g *aramaki.Graph) {
	t.Helper()
	for _, sys := range g.Systems() {
		below := append([]string{sys.ID}, g.Descendants(sys.ID)...)
		for _, w := range sys.Workflows {
			for _, st := range w.Steps {
				target := cmp.Or(st.System, sys.ID)
				if !slices.Contains(below, target) {
					t.Fatalf("workflow %s of %s steps on %s, not below it", w.Name, sys.ID, target)
				}
				if !slices.ContainsFunc(g.System(target).Actions, func(a aramaki.ActionRef) bool { return a.Name == st.Action }) {
					t.Fatalf("workflow %s of %s runs %s, which %s does not expose", w.Name, sys.ID, st.Action, target)
				}
			}
		}
	}
}
