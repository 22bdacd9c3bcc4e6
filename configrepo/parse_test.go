package configrepo_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/configrepo"
)

// The example of a system from the format's description parses into exactly
// the system it describes.
func TestParseExample(t *testing.T) {
	systems := MustParse(t, map[string]string{
		"systems/webshop.yaml": `id: webshop
title: Webshop of Example Corp
category: customer project
description: |
  The shop at shop.example.com …
owners:
  - {name: Alice Example, email: alice@example.com, role: project owner}
contacts:
  - {name: Hosting on-call, phone: "+49 …", role: on-call, hours: "24/7", escalation: 1}
rules:
  - text: Flushing the Varnish cache is always fine.
  - text: Never restart the database during business hours.
    escalate_to: DBA team
links:
  - {title: Grafana, url: "https://grafana.example.com/d/webshop", kind: dashboard}
labels: {customer: example-corp, env: production}
subsystems: [webshop-varnish, webshop-app, webshop-db, storage]
public: false
roles:
  operator: [bob]
  viewer: [carol]
checks:
  - {name: http, command: "check_http -H shop.example.com", interval: 1m, timeout: 10s}
actions:
  - {name: flush-varnish, description: Flush the Varnish cache}
  - name: restart-php
    role: admin
    approval: true
    rule: "Restart one host at a time; tell #shop first."
    agents: [app1, app2]
`,
		"systems/parts.yml": `
id: webshop-varnish
title: Varnish
---
id: webshop-app
title: App
---
id: webshop-db
title: DB
subsystems: [storage]
`,
		"systems/infrastructure/storage.yaml": "id: storage\ntitle: Storage\n",
	}).Systems

	want := aramaki.System{
		ID:          "webshop",
		Title:       "Webshop of Example Corp",
		Category:    "customer project",
		Description: "The shop at shop.example.com …\n",
		Owners:      []aramaki.Contact{{Name: "Alice Example", Email: "alice@example.com", Role: "project owner"}},
		Contacts:    []aramaki.Contact{{Name: "Hosting on-call", Phone: "+49 …", Role: "on-call", Hours: "24/7", Escalation: 1}},
		Rules: []aramaki.Rule{
			{Text: "Flushing the Varnish cache is always fine."},
			{Text: "Never restart the database during business hours.", EscalateTo: "DBA team"},
		},
		Links:      []aramaki.Link{{Title: "Grafana", URL: "https://grafana.example.com/d/webshop", Kind: "dashboard"}},
		Labels:     map[string]string{"customer": "example-corp", "env": "production"},
		Subsystems: []string{"webshop-varnish", "webshop-app", "webshop-db", "storage"},
		Roles:      map[aramaki.Role][]string{aramaki.RoleOperator: {"bob"}, aramaki.RoleViewer: {"carol"}},
		Checks:     []aramaki.Check{{Name: "http", Command: "check_http -H shop.example.com", Interval: "1m", Timeout: "10s"}},
		Actions: []aramaki.ActionRef{{Name: "flush-varnish", Description: "Flush the Varnish cache"},
			{Name: "restart-php", Role: aramaki.RoleAdmin, Approval: true, Rule: "Restart one host at a time; tell #shop first.", Agents: []string{"app1", "app2"}}},
	}
	if got := ids(systems); !slices.Equal(got, []string{"storage", "webshop", "webshop-app", "webshop-db", "webshop-varnish"}) {
		t.Fatalf("systems = %v, want all five ordered by id", got)
	}
	if !reflect.DeepEqual(systems[1], want) {
		t.Errorf("webshop =\n%#v\nwant\n%#v", systems[1], want)
	}
}

// The quickstart's sample parses without problems into a graph where shared
// infrastructure has many parents and roles flow down to it.
func TestParseSample(t *testing.T) {
	snap := MustParse(t, MustReadTree(t, "sample"))
	systems := snap.Systems
	g, err := aramaki.NewGraph(systems)
	if err != nil {
		t.Fatal(err)
	}
	if g.Len() < 10 {
		t.Errorf("the sample has %d systems, want at least 10", g.Len())
	}
	for id, want := range map[string][]string{
		"storage": {"blog-db", "infrastructure", "webshop-db"},
		"compute": {"blog-app", "infrastructure", "webshop-app", "webshop-varnish"},
	} {
		if got := g.UsedBy(id); !slices.Equal(got, want) {
			t.Errorf("%s is used by %v, want %v", id, got, want)
		}
	}
	if got, want := g.Anchors(), []string{"aramaki", "blog", "infrastructure", "webshop"}; !slices.Equal(got, want) {
		t.Errorf("anchors = %v, want %v", got, want)
	}
	if s := g.System("infrastructure"); s.Title != "Hosting infrastructure" || s.Category != "infrastructure" {
		t.Errorf("infrastructure = %q (%q), want the hosting infrastructure anchor", s.Title, s.Category)
	}
	bob := aramaki.Principal{User: "bob"}
	if got := g.RoleOn(bob, "webshop-db"); got != aramaki.RoleOperator {
		t.Errorf("bob, operator on webshop, is %q on webshop-db, want operator", got)
	}
	if !g.CanView(aramaki.Principal{}, "blog") || g.CanView(aramaki.Principal{}, "webshop") {
		t.Error("want the blog public and the webshop not")
	}
	var checks, actions int
	for _, s := range systems {
		checks += len(s.Checks)
		actions += len(s.Actions)
	}
	if checks < 3 || actions < 2 {
		t.Errorf("the sample has %d checks and %d actions, want a few of each", checks, actions)
	}

	// Alerts: a chat and a signed webhook, routes on the infrastructure
	// with an escalation, and the control plane forwarding to it.
	var types []aramaki.NotifierType
	for _, n := range snap.Notifiers {
		types = append(types, n.Type)
		if !strings.HasPrefix(n.URL, "https://") {
			t.Errorf("notifier %s sends to %s, want https", n.Name, n.URL)
		}
	}
	if want := []aramaki.NotifierType{aramaki.NotifyMattermost, aramaki.NotifyWebhook}; !slices.Equal(types, want) {
		t.Errorf("notifier types %v, want %v", types, want)
	}
	var escalations, forwards int
	for _, r := range g.System("infrastructure").Routing {
		if r.After > 0 {
			escalations++
		}
	}
	for _, r := range g.System("aramaki").Routing {
		if r.Forward == "infrastructure" {
			forwards++
		}
	}
	if escalations == 0 || forwards != 1 {
		t.Errorf("the infrastructure has %d escalations and aramaki %d forwards to it, want some and one", escalations, forwards)
	}
	if r := g.System("webshop").Routing; len(r) == 0 || !slices.ContainsFunc(r, func(r aramaki.Route) bool { return r.Contact == "Alice Example" && r.Hours != "" }) {
		t.Errorf("webshop routes %+v, want Alice Example in office hours", r)
	}
}

// problemCases are commits with something wrong, and the problems Parse must
// report for them, exactly. The fuzz test starts from them too.
var problemCases = []problemCase{
	{
		name:  "YAML syntax",
		files: map[string]string{"systems/a.yaml": "id: a\ntitle: [A\n"},
		want:  []string{"systems/a.yaml:2: invalid YAML: did not find expected ',' or ']'"},
	},
	{
		name:  "YAML syntax after a good document",
		files: map[string]string{"systems/a.yaml": "id: a\ntitle: A\n---\nid: b\ntitle: B\n  bad: indent\n"},
		want:  []string{"systems/a.yaml:6: invalid YAML: mapping values are not allowed in this context"},
	},
	{
		name:  "indentation",
		files: map[string]string{"systems/a.yaml": "id: a\ntitle: A\nlabels:\n  env: production\n team: hosting\n"},
		want:  []string{"systems/a.yaml:5: invalid YAML: did not find expected key"},
	},
	{
		name:  "not UTF-8",
		files: map[string]string{"systems/a.yaml": "id: a\ntitle: Caf\xe9\n"},
		want:  []string{"systems/a.yaml:2: invalid YAML: the text is not valid UTF-8"},
	},
	{
		name:  "tabs",
		files: map[string]string{"systems/a.yaml": "id: a\ntitle: A\nlabels:\n\tenv: production\n"},
		want:  []string{"systems/a.yaml:4: invalid YAML: found character that cannot start any token"},
	},
	{
		name:  "unknown key with a suggestion",
		files: map[string]string{"systems/a.yaml": "id: a\ntitel: A\n"},
		want: []string{
			"systems/a.yaml:1: a system needs a title",
			`systems/a.yaml:2: unknown key "titel" in system (did you mean title?)`,
		},
	},
	{
		name:  "unknown key",
		files: map[string]string{"systems/a.yaml": "id: a\ntitle: A\nparents: [b]\n"},
		want:  []string{`systems/a.yaml:3: unknown key "parents" in system (known keys: id, title, category, description, owners, contacts, rules, links, labels, subsystems, public, roles, checks, actions, workflows, routing)`},
	},
	{
		name: "unknown keys nested",
		files: map[string]string{"systems/a.yaml": `id: a
title: A
owners:
  - {name: Alice, mail: alice@example.com}
rules:
  - text: Fine.
    escalate: Bob
links:
  - {title: Docs, url: "https://docs.example.com", type: docs}
checks:
  - {name: load, command: check_load, every: 1m}
actions:
  - {name: flush, label: Flush}
`},
		want: []string{
			`systems/a.yaml:4: unknown key "mail" in owner (did you mean email?)`,
			`systems/a.yaml:7: unknown key "escalate" in rule (known keys: text, escalate_to)`,
			`systems/a.yaml:9: unknown key "type" in link (known keys: title, url, kind)`,
			`systems/a.yaml:11: unknown key "every" in check (known keys: name, command, interval, timeout, agents, alert_after)`,
			`systems/a.yaml:13: unknown key "label" in action (known keys: name, description, role, approval, rule, agents)`,
		},
	},
	{
		name: "actions on a system",
		files: map[string]string{"systems/a.yaml": `id: a
title: A
actions:
  - {name: Flush Varnish}
  - {name: flush-varnish, role: viewer}
  - {name: restart, approval: maybe}
  - {name: purge, agents: web1}
`},
		want: []string{
			`systems/a.yaml:4: action name "Flush Varnish" must be lower-case letters, digits, - and _ (at most 63), as the hosts declare it`,
			`systems/a.yaml:5: role "viewer": actions are run by operator (the default) or admin`,
			`systems/a.yaml:6: approval must be true or false, not "maybe"`,
			`systems/a.yaml:7: agents must be a list, not "web1"`,
		},
	},
	{
		name:  "key given twice",
		files: map[string]string{"systems/a.yaml": "id: a\ntitle: A\ntitle: B\n"},
		want:  []string{`systems/a.yaml:3: key "title" is given twice (first at line 2)`},
	},
	{
		name: "wrong types",
		files: map[string]string{"systems/a.yaml": `id: a
title: [A]
public: yes
owners: Alice
contacts:
  - Alice
  - {name: Bob, escalation: first}
subsystems: b
labels: [env]
roles: {viewer: bob}
`},
		want: []string{
			"systems/a.yaml:2: title must be a text, not a list",
			`systems/a.yaml:3: public must be true or false, not "yes"`,
			`systems/a.yaml:4: owners must be a list, not "Alice"`,
			`systems/a.yaml:6: a contact must be a mapping like {name: …, phone: …}, not "Alice"`,
			`systems/a.yaml:7: escalation must be a whole number, not "first"`,
			`systems/a.yaml:8: subsystems must be a list, not "b"`,
			"systems/a.yaml:9: labels must be a mapping like {customer: example-corp, env: production}, not a list",
			`systems/a.yaml:10: the users of role viewer must be a list, not "bob"`,
		},
	},
	{
		name:  "not a system",
		files: map[string]string{"systems/a.yaml": "- id: a\n  title: A\n"},
		want:  []string{"systems/a.yaml:1: a system must be a mapping with at least id and title, like {id: …, title: …}, not a list"},
	},
	{
		name: "missing id and title",
		files: map[string]string{"systems/a.yaml": `title: A
---
id: b
---
id: c
title: "  "
---
id:
title: D
`},
		want: []string{
			"systems/a.yaml:1: a system needs an id",
			"systems/a.yaml:3: a system needs a title",
			"systems/a.yaml:6: a system needs a title",
			"systems/a.yaml:8: a system needs an id",
		},
	},
	{
		name:  "invalid id",
		files: map[string]string{"systems/a.yaml": "title: A\nid: Web Shop\n"},
		want:  []string{`systems/a.yaml:2: invalid system id "Web Shop": use 1-63 lower-case letters, digits, '.', '-' or '_', starting with a letter or digit`},
	},
	{
		name: "what a system needs",
		files: map[string]string{"systems/a.yaml": `id: a
title: A
owners:
  - {email: alice@example.com}
contacts:
  - {name: " ", phone: "+49 30 1234567", escalation: -1}
rules:
  - escalate_to: Bob
links:
  - {url: "https://grafana.example.com"}
  - {title: Docs}
  - {title: Script, url: "javascript:alert(1)"}
  - {title: Nowhere, url: "https://"}
roles:
  owner: [alice]
  operator: [bob, ""]
checks:
  - {name: load}
  - {name: disk, command: check_disk}
  - {name: disk, command: check_disk -p /}
actions:
  - {description: Flush}
  - {name: flush}
  - {name: flush}
`},
		want: []string{
			"systems/a.yaml:4: an owner needs a name",
			"systems/a.yaml:6: a contact needs a name",
			"systems/a.yaml:6: escalation must be 0 or more, not -1",
			"systems/a.yaml:8: a rule needs a text",
			"systems/a.yaml:10: a link needs a title",
			"systems/a.yaml:11: a link needs a url",
			`systems/a.yaml:12: url "javascript:alert(1)" is not an http:// or https:// URL`,
			`systems/a.yaml:13: url "https://" is not an http:// or https:// URL`,
			`systems/a.yaml:15: unknown role "owner" (use viewer, operator or admin)`,
			"systems/a.yaml:16: a user name must not be empty",
			"systems/a.yaml:18: a check needs a name and a command",
			"systems/a.yaml:20: check disk is declared twice (first at line 19)",
			"systems/a.yaml:22: an action needs a name",
			"systems/a.yaml:24: action flush is declared twice (first at line 23)",
		},
	},
	{
		name: "durations",
		files: map[string]string{"systems/a.yaml": `id: a
title: A
checks:
  - name: load
    command: check_load
    interval: 1 minute
    timeout: 0s
  - {name: disk, command: check_disk, interval: 60}
`},
		want: []string{
			`systems/a.yaml:6: interval "1 minute" is not a duration (write it like 30s, 5m or 1h30m)`,
			"systems/a.yaml:7: timeout must be longer than 0",
			`systems/a.yaml:8: interval "60" is not a duration (write it like 30s, 5m or 1h30m)`,
		},
	},
	{
		name: "duplicate ids",
		files: map[string]string{
			"systems/a.yaml": "id: webshop\ntitle: Webshop\n",
			"systems/b.yaml": "id: webshop\ntitle: Webshop again\n---\nid: webshop\ntitle: And again\n",
		},
		want: []string{
			"systems/b.yaml:1: duplicate system id webshop (first declared at systems/a.yaml:1)",
			"systems/b.yaml:4: duplicate system id webshop (first declared at systems/a.yaml:1)",
		},
	},
	{
		name: "subsystem references",
		files: map[string]string{
			"systems/a.yaml": `id: a
title: A
subsystems:
  - b
  - c
  - storage@Peer
  - Not An Id
  - b
  - a
  - ""
`,
			"systems/b.yaml": "id: b\ntitle: B\nsubsystems: [gone]\n",
		},
		want: []string{
			"systems/a.yaml:5: system a uses unknown subsystem c",
			`systems/a.yaml:6: subsystem storage@Peer: a peer's system is written system@peer: invalid peer name "Peer": 1-63 lower-case letters, digits and '-', starting with a letter`,
			`systems/a.yaml:7: invalid system id "Not An Id": use 1-63 lower-case letters, digits, '.', '-' or '_', starting with a letter or digit`,
			"systems/a.yaml:8: subsystem b is listed twice (first at line 4)",
			"systems/a.yaml:9: a system cannot be its own subsystem",
			"systems/a.yaml:10: a subsystem needs an id",
			"systems/b.yaml:3: system b uses unknown subsystem gone",
		},
	},
	{
		name: "cycle",
		files: map[string]string{
			"systems/a.yaml": "id: a\ntitle: A\nsubsystems: [b]\n",
			"systems/b.yaml": "id: b\ntitle: B\nsubsystems:\n  - x\n  - c\n",
			"systems/c.yaml": "id: c\ntitle: C\nsubsystems:\n  - a\n",
			"systems/x.yaml": "id: x\ntitle: X\n",
		},
		want: []string{"systems/c.yaml:4: subsystem cycle: a → b → c → a"},
	},
	{
		name: "two cycles",
		files: map[string]string{"systems/all.yaml": `id: a
title: A
subsystems: [b]
---
id: b
title: B
subsystems: [a, c]
---
id: c
title: C
subsystems: [d]
---
id: d
title: D
subsystems: [c]
`},
		want: []string{
			"systems/all.yaml:7: subsystem cycle: a → b → a",
			"systems/all.yaml:15: subsystem cycle: c → d → c",
		},
	},
	{
		name:  "aliases and merge keys",
		files: map[string]string{"systems/a.yaml": "id: a\ntitle: &t A\ncategory: *t\nlabels:\n  <<: {env: production}\n"},
		want: []string{
			"systems/a.yaml:3: aliases (*t) are not supported: write the value out",
			"systems/a.yaml:5: merge keys (<<) are not supported: write the keys out",
		},
	},
	{
		name:  "NUL",
		files: map[string]string{"systems/a.yaml": "id: a\ntitle: \"A\\0B\"\n"},
		want:  []string{"systems/a.yaml:2: title must not contain NUL characters"},
	},
	{
		name: "all problems of a commit, ordered by file and line",
		files: map[string]string{
			"systems/z.yaml":        "id: z\ntitle: Z\nsubsystems: [a, q]\n",
			"systems/a.yaml":        "id: a\ntitle: A\npublic: maybe\n---\nid: a\ntitle: A\n",
			"systems/sub/m.yml":     "id: m\n",
			"systems/notes.txt":     "not: [yaml",
			"README.md":             "# not: [yaml",
			"other/ignored.yaml":    "not: [yaml",
			"systems/sub/dir/e.yml": "",
		},
		want: []string{
			`systems/a.yaml:3: public must be true or false, not "maybe"`,
			"systems/a.yaml:5: duplicate system id a (first declared at systems/a.yaml:1)",
			"systems/sub/m.yml:1: a system needs a title",
			"systems/z.yaml:3: system z uses unknown subsystem q",
		},
	},
	{
		// The broken file may declare what the others use: only its
		// problem is reported, not a cascade of unknown subsystems.
		name: "a broken file hides no problem but its own",
		files: map[string]string{
			"systems/a.yaml": "id: a\ntitle: A\nsubsystems: [b]\n",
			"systems/b.yaml": "id: b\ntitle: \"B\n",
		},
		want: []string{"systems/b.yaml:2: invalid YAML: found unexpected end of stream"},
	},
}

type problemCase struct {
	name  string
	files map[string]string
	want  []string
}

func TestParseProblems(t *testing.T) {
	for _, tc := range slices.Concat(problemCases, routingCases, notifierCases) {
		t.Run(tc.name, func(t *testing.T) {
			snap, problems := configrepo.Parse(bytesOf(tc.files))
			if got := strs(problems); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if snap.Systems != nil || snap.Notifiers != nil {
				t.Errorf("got %d systems and %d notifiers along with problems, want none", len(snap.Systems), len(snap.Notifiers))
			}
		})
	}
}

// Files that declare nothing are fine, and so is a commit without systems.
func TestParseNothing(t *testing.T) {
	snap, problems := configrepo.Parse(map[string][]byte{
		"systems/empty.yaml":    nil,
		"systems/comments.yaml": []byte("# nothing yet\n"),
		"systems/dashes.yaml":   []byte("---\n---\n"),
		"notifiers.yaml":        []byte("# none yet\n---\n"),
		"README.md":             []byte("hello"),
		// Only notifiers.yaml at the root declares notifiers.
		"notifiers.yml":           []byte("notifiers: [yaml"),
		"systems/notifiers.txt":   []byte("notifiers: [yaml"),
		"other/notifiers.yaml":    []byte("notifiers: [yaml"),
		"docs/notifiers.yaml.bak": []byte("notifiers: [yaml"),
	})
	if len(snap.Systems) != 0 || len(snap.Notifiers) != 0 || len(problems) != 0 {
		t.Errorf("got %v and %v, want nothing", snap, problems)
	}
	snap, problems = configrepo.Parse(map[string][]byte{"notifiers.yaml": []byte("notifiers:\n")})
	if len(snap.Systems) != 0 || len(snap.Notifiers) != 0 || len(problems) != 0 {
		t.Errorf("an empty list of notifiers: got %v and %v, want nothing", snap, problems)
	}
}

func TestParseLimits(t *testing.T) {
	big := strings.Repeat("# padding\n", configrepo.MaxFileSize/10+1)
	_, problems := configrepo.Parse(map[string][]byte{
		"systems/big.yaml":   []byte(big),
		"systems/small.yaml": []byte("id: a\ntitle: A\nsubsystems: [declared-in-big]\n"),
	})
	want := []string{"systems/big.yaml: the file is larger than 1 MiB, the limit for one file"}
	if got := strs(problems); !slices.Equal(got, want) {
		t.Errorf("one big file: %q, want %q", got, want)
	}

	// A notifiers.yaml too large to read hides nothing but itself: the
	// notifiers it may declare are not reported as unknown.
	_, problems = configrepo.Parse(map[string][]byte{
		"notifiers.yaml": []byte(big),
		"systems/a.yaml": []byte("id: a\ntitle: A\nowners: [{name: Alice}]\nrouting: [{contact: Alice, via: chat}]\n"),
	})
	want = []string{"notifiers.yaml: the file is larger than 1 MiB, the limit for one file"}
	if got := strs(problems); !slices.Equal(got, want) {
		t.Errorf("a big notifiers.yaml: %q, want %q", got, want)
	}

	many := map[string][]byte{}
	for i := range configrepo.MaxFiles + 1 {
		many[fmt.Sprintf("systems/s%d.yaml", i)] = []byte(fmt.Sprintf("id: s%d\ntitle: S\n", i))
	}
	_, problems = configrepo.Parse(many)
	want = []string{"systems/: 10001 system files are too many: a commit may hold at most 10000"}
	if got := strs(problems); !slices.Equal(got, want) {
		t.Errorf("many files: %q, want %q", got, want)
	}
	delete(many, "systems/s0.yaml")
	if snap, problems := configrepo.Parse(many); len(problems) != 0 || len(snap.Systems) != configrepo.MaxFiles {
		t.Errorf("%d files: %d systems, problems %v; want all systems", configrepo.MaxFiles, len(snap.Systems), problems)
	}

	total := map[string][]byte{}
	for i := range configrepo.MaxTotalSize/(configrepo.MaxFileSize-1) + 1 {
		total[fmt.Sprintf("systems/s%d.yaml", i)] = []byte(big[:configrepo.MaxFileSize-1])
	}
	_, problems = configrepo.Parse(total)
	if len(problems) != 1 || !strings.HasPrefix(problems[0].String(), "systems/: the system files hold ") {
		t.Errorf("too much in all: %q, want one problem for the whole commit", strs(problems))
	}
}

// Text from the input is clipped in messages, so that problems stay small
// whatever a file holds.
func TestParseClipsMessages(t *testing.T) {
	long := strings.Repeat("x", 10000)
	_, problems := configrepo.Parse(map[string][]byte{"systems/a.yaml": []byte("id: a\ntitle: A\n" + long + ": 1\n")})
	if len(problems) != 1 || len(problems[0].Message) > 300 {
		t.Errorf("problems %q, want one short one", strs(problems))
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    configrepo.Problem
		want string
	}{
		{configrepo.Problem{File: "systems/a.yaml", Line: 3, Message: "m"}, "systems/a.yaml:3: m"},
		{configrepo.Problem{File: "systems/a.yaml", Message: "m"}, "systems/a.yaml: m"},
		{configrepo.Problem{Message: "m"}, "m"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestIsSystemFile(t *testing.T) {
	for name, want := range map[string]bool{
		"systems/a.yaml":         true,
		"systems/a/b/c.yml":      true,
		"systems/UPPER.YAML":     true,
		"systems/notes.md":       false,
		"systems.yaml":           false,
		"README.md":              false,
		"other/systems/a.yaml":   false,
		"systemsx/a.yaml":        false,
		"systems/a.yaml.orig":    false,
		"systems/.hidden.yaml":   true,
		"systems/dir.yaml/x.txt": false,
	} {
		if got := configrepo.IsSystemFile(name); got != want {
			t.Errorf("IsSystemFile(%q) = %v, want %v", name, got, want)
		}
	}
}

// MustParse parses files that must have no problems.
func MustParse(t testing.TB, files map[string]string) aramaki.ConfigSnapshot {
	t.Helper()
	snap, problems := configrepo.Parse(bytesOf(files))
	if len(problems) > 0 {
		t.Fatalf("problems:\n%s", strings.Join(strs(problems), "\n"))
	}
	return snap
}

// MustReadTree reads the files under dir, keyed by their slash-separated path
// relative to dir.
func MustReadTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		files[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func bytesOf(files map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(files))
	for name, s := range files {
		out[name] = []byte(s)
	}
	return out
}

func strs(problems []configrepo.Problem) []string {
	var out []string
	for _, p := range problems {
		out = append(out, p.String())
	}
	return out
}

func ids(systems []aramaki.System) []string {
	var out []string
	for _, s := range systems {
		out = append(out, s.ID)
	}
	return out
}
