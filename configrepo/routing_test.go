package configrepo_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
)

// A repository with every kind of notifier and route parses into exactly
// what it says.
func TestParseRouting(t *testing.T) {
	snap := MustParse(t, map[string]string{
		"notifiers.yaml": `# Secrets live in the server's environment, never here.
notifiers:
  - name: ops-chat
    type: mattermost
    url: https://chat.example.com/hooks/xq7b3k9d
  - name: pager
    type: webhook
    url: https://pager.example.com/hooks/aramaki
    secret_env: ARAMAKI_NOTIFY_PAGER_WEBHOOK_KEY
  - {name: dev-slack, type: slack, url: "https://hooks.slack.com/services/T000/B000/XXXX"}
  # Better: the URL, the webhook's password, kept out of the repository.
  - {name: ops-slack, type: slack, secret_env: ARAMAKI_NOTIFY_OPS_SLACK_URL}
  - name: ops-matrix
    type: matrix
    url: https://matrix.example.org
    room: "!AbCdEfGh:example.org"
    secret_env: ARAMAKI_NOTIFY_MATRIX_TOKEN
  - name: ops-mail
    type: email
    to: [ops@example.com, "Hosting team <hosting@example.com>"]
  # Plain http is fine to this host itself.
  - {name: local-bridge, type: webhook, url: "http://127.0.0.1:9000/alerts", secret_env: ARAMAKI_NOTIFY__BRIDGE_KEY_2}
  - {name: local-chat, type: mattermost, url: "http://localhost:8065/hooks/x"}
  - {name: v6-chat, type: slack, url: "http://[::1]:8080/hooks/x"}
`,
		"systems/infrastructure.yaml": `id: infrastructure
title: Hosting infrastructure
owners:
  - {name: Hosting team, email: hosting@example.com}
contacts:
  - {name: Hosting on-call, email: oncall@example.com, phone: "+49 30 1234567"}
  - {name: Dana Infra, phone: "+49 30 1234568"}
subsystems: [storage]
routing:
  - {contact: Hosting on-call, severities: [critical], hours: "24/7"}
  - {contact: Hosting on-call, via: pager, severities: [critical, unknown]}
  - contact: Hosting team
    via: ops-chat
    severities: [warning, critical]
    hours: Mon-Fri 08:00-18:00 Europe/Berlin
  - {contact: Hosting team, via: email, after: 15m}
  - {contact: Dana Infra, via: ops-matrix, after: 1h30m, hours: "Sat,Sun 10-16"}
  - {contact: Dana Infra, via: ops-mail, after: 168h}
`,
		"systems/other.yaml": `id: storage
title: Storage
checks:
  - {name: disk, command: check_disk, alert_after: 3}
  - {name: raid, command: check_raid, alert_after: 1}
  - {name: smart, command: check_smart, alert_after: 100}
  - {name: load, command: check_load}
routing:
  # Up the graph is no loop: subsystems are not forwards.
  - {forward: infrastructure, severities: [critical]}
---
id: aramaki
title: This Aramaki server
owners:
  - {name: Alice, email: alice@example.com}
contacts:
  - {name: Alice, email: alice@example.com, phone: "+49 30 1234560"}
routing:
  - {forward: monitoring}
  - {contact: Alice, after: 0}
  - {contact: Alice, severities: []}
---
id: monitoring
title: Monitoring
routing:
  - {forward: infrastructure}
`,
	})

	wantNotifiers := []aramaki.Notifier{
		{Name: "dev-slack", Type: aramaki.NotifySlack, URL: "https://hooks.slack.com/services/T000/B000/XXXX"},
		{Name: "local-bridge", Type: aramaki.NotifyWebhook, URL: "http://127.0.0.1:9000/alerts", SecretEnv: "ARAMAKI_NOTIFY__BRIDGE_KEY_2"},
		{Name: "local-chat", Type: aramaki.NotifyMattermost, URL: "http://localhost:8065/hooks/x"},
		{Name: "ops-chat", Type: aramaki.NotifyMattermost, URL: "https://chat.example.com/hooks/xq7b3k9d"},
		{Name: "ops-mail", Type: aramaki.NotifyEmail, To: []string{"ops@example.com", "Hosting team <hosting@example.com>"}},
		{Name: "ops-matrix", Type: aramaki.NotifyMatrix, URL: "https://matrix.example.org", Room: "!AbCdEfGh:example.org", SecretEnv: "ARAMAKI_NOTIFY_MATRIX_TOKEN"},
		{Name: "ops-slack", Type: aramaki.NotifySlack, SecretEnv: "ARAMAKI_NOTIFY_OPS_SLACK_URL"},
		{Name: "pager", Type: aramaki.NotifyWebhook, URL: "https://pager.example.com/hooks/aramaki", SecretEnv: "ARAMAKI_NOTIFY_PAGER_WEBHOOK_KEY"},
		{Name: "v6-chat", Type: aramaki.NotifySlack, URL: "http://[::1]:8080/hooks/x"},
	}
	if !reflect.DeepEqual(snap.Notifiers, wantNotifiers) {
		t.Errorf("notifiers =\n%+v\nwant, ordered by name,\n%+v", snap.Notifiers, wantNotifiers)
	}

	const (
		critical = aramaki.StatusCritical
		warning  = aramaki.StatusWarning
		unknown  = aramaki.StatusUnknown
	)
	wantRoutes := map[string][]aramaki.Route{
		"infrastructure": {
			// Without via, a route sends e-mail: the snapshot says so.
			{Contact: "Hosting on-call", Via: "email", Severities: []aramaki.Status{critical}, Hours: "24/7"},
			{Contact: "Hosting on-call", Via: "pager", Severities: []aramaki.Status{critical, unknown}},
			{Contact: "Hosting team", Via: "ops-chat", Severities: []aramaki.Status{warning, critical}, Hours: "Mon-Fri 08:00-18:00 Europe/Berlin"},
			{Contact: "Hosting team", Via: "email", After: 15 * time.Minute},
			{Contact: "Dana Infra", Via: "ops-matrix", After: 90 * time.Minute, Hours: "Sat,Sun 10-16"},
			{Contact: "Dana Infra", Via: "ops-mail", After: 7 * 24 * time.Hour},
		},
		"storage":    {{Forward: "infrastructure", Severities: []aramaki.Status{critical}}},
		"monitoring": {{Forward: "infrastructure"}},
		"aramaki":    {{Forward: "monitoring"}, {Contact: "Alice", Via: "email"}, {Contact: "Alice", Via: "email"}},
	}
	for _, s := range snap.Systems {
		if !reflect.DeepEqual(s.Routing, wantRoutes[s.ID]) {
			t.Errorf("%s routes\n%+v\nwant\n%+v", s.ID, s.Routing, wantRoutes[s.ID])
		}
		if s.ID != "storage" {
			continue
		}
		var got []int
		for _, c := range s.Checks {
			got = append(got, c.AlertAfter)
		}
		if want := []int{3, 1, 100, 0}; !reflect.DeepEqual(got, want) {
			t.Errorf("alert_after %v, want %v (0: not given, which means 1)", got, want)
		}
	}
	if _, err := aramaki.NewGraph(snap.Systems); err != nil {
		t.Error(err)
	}
}

// routeSystem is a system with an owner who has an e-mail address and a
// contact who has none; routeCase adds its routing from line 7 on.
const routeSystem = `id: a
title: A
owners:
  - {name: Alice, email: alice@example.com}
contacts:
  - {name: On-call, phone: "+49 30 1234567"}
`

// routeCase is a commit with system a routed as given, a system b with its
// own contact, and a notifier chat.
func routeCase(name, routing string, want ...string) problemCase {
	return problemCase{name: "routing: " + name, want: want, files: map[string]string{
		"notifiers.yaml": "notifiers:\n  - {name: chat, type: mattermost, url: \"https://chat.example.com/hooks/x\"}\n",
		"systems/a.yaml": routeSystem + routing,
		"systems/b.yaml": "id: b\ntitle: B\ncontacts: [{name: Bob, email: bob@example.com}]\n",
	}}
}

// routingCases are the mistakes a system's routing and its checks'
// alert_after can hold, one a row.
var routingCases = []problemCase{
	routeCase("not a list", "routing: {contact: Alice}\n",
		"systems/a.yaml:7: routing must be a list, not a mapping"),
	routeCase("not a mapping", "routing:\n  - Alice\n",
		`systems/a.yaml:8: a route must be a mapping like {contact: …, severities: [critical]}, not "Alice"`),
	routeCase("unknown key", "routing:\n  - {contact: Alice, severites: [critical]}\n",
		`systems/a.yaml:8: unknown key "severites" in route (did you mean severities?)`),
	routeCase("unknown key far from any", "routing:\n  - {contact: Alice, channel: chat}\n",
		`systems/a.yaml:8: unknown key "channel" in route (known keys: contact, via, severities, hours, after, forward)`),
	routeCase("neither contact nor forward", "routing:\n  - {via: chat, severities: [critical]}\n",
		"systems/a.yaml:8: a route needs a contact (who hears of the alert) or a forward (the system whose routes take it)"),
	routeCase("an empty contact", "routing:\n  - contact:\n",
		"systems/a.yaml:8: a route needs a contact (who hears of the alert) or a forward (the system whose routes take it)"),
	routeCase("contact and forward", "routing:\n  - {contact: Alice, forward: b}\n",
		"systems/a.yaml:8: a route has a contact or a forward, not both: write two routes"),
	routeCase("contact not a text", "routing:\n  - {contact: [Alice]}\n",
		"systems/a.yaml:8: contact must be a text, not a list"),
	routeCase("unknown contact", "routing:\n  - {contact: Alicia}\n",
		`systems/a.yaml:8: no owner or contact of this system is named "Alicia"`),
	routeCase("contact of another system", "routing:\n  - {contact: Bob}\n",
		`systems/a.yaml:8: no owner or contact of this system is named "Bob"`),
	routeCase("no email for the default via", "routing:\n  - {contact: On-call, severities: [critical]}\n",
		`systems/a.yaml:8: contact "On-call" has no email, and routes send e-mail unless they say otherwise: add an email to the contact, or a via naming a notifier`),
	routeCase("via email without an email", "routing:\n  - contact: On-call\n    via: email\n",
		`systems/a.yaml:9: via email needs an email of "On-call": add one to the contact`),
	routeCase("unknown notifier", "routing:\n  - {contact: Alice, via: pager}\n",
		`systems/a.yaml:8: unknown notifier "pager": via is email or the name of a notifier in notifiers.yaml`),
	routeCase("via in capitals", "routing:\n  - {contact: Alice, via: Email}\n",
		`systems/a.yaml:8: unknown notifier "Email": via is email or the name of a notifier in notifiers.yaml`),
	routeCase("severities not a list", "routing:\n  - {contact: Alice, severities: critical}\n",
		`systems/a.yaml:8: severities must be a list, not "critical"`),
	routeCase("severity ok", "routing:\n  - {contact: Alice, severities: [critical, ok]}\n",
		"systems/a.yaml:8: severity ok is no problem and never alerts: use warning, critical or unknown"),
	routeCase("severity in capitals", "routing:\n  - {contact: Alice, severities: [Critical]}\n",
		`systems/a.yaml:8: severity "Critical": write it in lower case, critical`),
	routeCase("unknown severity", "routing:\n  - {contact: Alice, severities: [major]}\n",
		`systems/a.yaml:8: unknown severity "major" (use warning, critical or unknown)`),
	routeCase("severity twice", "routing:\n  - contact: Alice\n    severities:\n      - critical\n      - critical\n",
		"systems/a.yaml:11: severity critical is listed twice"),
	routeCase("hours out of range", "routing:\n  - {contact: Alice, hours: Mon-Fri 9-25 Europe/Berlin}\n",
		`systems/a.yaml:8: hours "Mon-Fri 9-25 Europe/Berlin": "25" is not a time of day like 08:00`),
	routeCase("hours in an unknown time zone", "routing:\n  - {contact: Alice, hours: Mon-Fri 08-18 Europe/Atlantis}\n",
		`systems/a.yaml:8: hours "Mon-Fri 08-18 Europe/Atlantis": unknown time zone "Europe/Atlantis"`),
	routeCase("hours with unknown days", "routing:\n  - {contact: Alice, hours: Mo-Fr 08-18}\n",
		`systems/a.yaml:8: hours "Mo-Fr 08-18": "mo-fr" is not a day or range of days (Mon, Tue, …, Sun)`),
	routeCase("hours in words", "routing:\n  - {contact: Alice, hours: weekdays}\n",
		`systems/a.yaml:8: hours "weekdays": want "24/7" or days, hours and a time zone, like "Mon-Fri 08:00-18:00 Europe/Berlin"`),
	routeCase("hours too long", "routing:\n  - {contact: Alice, hours: \""+strings.Repeat("Mon,", 30)+"Tue 08-18\"}\n",
		`systems/a.yaml:8: hours "`+strings.Repeat("Mon,", 16)+`…" is not a schedule like "Mon-Fri 08:00-18:00 Europe/Berlin" or "24/7"`),
	routeCase("after without a unit", "routing:\n  - {contact: Alice, after: 15}\n",
		`systems/a.yaml:8: after "15" is not a duration (write it like 15m or 1h30m)`),
	routeCase("after in days", "routing:\n  - {contact: Alice, after: 1d}\n",
		`systems/a.yaml:8: after "1d" is not a duration (write it like 15m or 1h30m)`),
	routeCase("after negative", "routing:\n  - {contact: Alice, after: -5m}\n",
		"systems/a.yaml:8: after must be 0 or more, not -5m"),
	routeCase("after longer than a week", "routing:\n  - {contact: Alice, after: 169h}\n",
		"systems/a.yaml:8: after must be at most 168h (7 days), not 169h"),
	routeCase("forward to an unknown system", "routing:\n  - {forward: c}\n",
		"systems/a.yaml:8: system a forwards to unknown system c"),
	routeCase("forward to itself", "routing:\n  - {forward: a}\n",
		"systems/a.yaml:8: a system cannot forward to itself: its routes take its alerts already"),
	routeCase("forward to an invalid id", "routing:\n  - {forward: System B}\n",
		`systems/a.yaml:8: invalid system id "System B": use 1-63 lower-case letters, digits, '.', '-' or '_', starting with a letter or digit`),
	routeCase("forward to a remote system", "routing:\n  - {forward: b@peer}\n",
		"systems/a.yaml:8: forward b@peer: remote systems (x@peer) need federation, which this server does not have yet"),
	routeCase("forward with via", "routing:\n  - {forward: b, via: chat}\n",
		"systems/a.yaml:8: a forward has no via: the routes of system b say how their contacts hear of the alert"),
	routeCase("forward with after", "routing:\n  - forward: b\n    after: 15m\n",
		"systems/a.yaml:9: a forward has no after: the routes of system b say when their contacts hear of the alert"),
	{
		name: "routing: an email that is no address",
		files: map[string]string{"systems/a.yaml": `id: a
title: A
contacts:
  - {name: Carol, email: carol at example.com}
routing:
  - {contact: Carol}
`},
		want: []string{`systems/a.yaml:6: the email of "Carol", "carol at example.com", is not an e-mail address`},
	},
	{
		name: "routing: an owner who is a contact too, without email",
		files: map[string]string{"systems/a.yaml": `id: a
title: A
owners:
  - {name: Alice}
contacts:
  - {name: Alice, email: alice@example.com}
routing:
  - {contact: Alice}
`},
		want: []string{`systems/a.yaml:8: not every owner and contact named "Alice" has an email: add it to each, or a via naming a notifier`},
	},
	{
		name:  "routing: via a notifier without notifiers.yaml",
		files: map[string]string{"systems/a.yaml": "id: a\ntitle: A\nowners: [{name: Alice}]\nrouting: [{contact: Alice, via: chat}]\n"},
		want:  []string{`systems/a.yaml:4: unknown notifier "chat": via is email or the name of a notifier in notifiers.yaml`},
	},
	{
		name: "routing: forward loop",
		files: map[string]string{
			"systems/a.yaml": "id: a\ntitle: A\nrouting:\n  - {forward: b}\n",
			"systems/b.yaml": "id: b\ntitle: B\nrouting:\n  - {forward: c}\n  - {forward: a}\n",
			"systems/c.yaml": "id: c\ntitle: C\n",
		},
		want: []string{"systems/b.yaml:5: forward loop: a → b → a"},
	},
	{
		name: "routing: longer forward loops, each found",
		files: map[string]string{"systems/all.yaml": `id: a
title: A
routing: [{forward: b}]
---
id: b
title: B
routing: [{forward: c}]
---
id: c
title: C
routing: [{forward: a, severities: [critical]}, {forward: d}]
---
id: d
title: D
routing: [{forward: e}]
---
id: e
title: E
routing: [{forward: d}]
`},
		want: []string{
			"systems/all.yaml:11: forward loop: a → b → c → a",
			"systems/all.yaml:19: forward loop: d → e → d",
		},
	},
	{
		// A broken file may declare what others forward to: only its
		// problem is reported.
		name: "routing: a broken file hides no problem but its own",
		files: map[string]string{
			"systems/a.yaml": "id: a\ntitle: A\nrouting: [{forward: b}]\n",
			"systems/b.yaml": "id: b\ntitle: \"B\n",
		},
		want: []string{"systems/b.yaml:2: invalid YAML: found unexpected end of stream"},
	},
	{
		name: "routing: alert_after",
		files: map[string]string{"systems/a.yaml": `id: a
title: A
checks:
  - {name: a, command: check_a, alert_after: 0}
  - {name: b, command: check_b, alert_after: 101}
  - {name: c, command: check_c, alert_after: three}
  - {name: d, command: check_d, alert_after: 2.5}
  - {name: e, command: check_e, alert_after: -1}
`},
		want: []string{
			"systems/a.yaml:4: alert_after must be from 1 to 100 results in a row, not 0",
			"systems/a.yaml:5: alert_after must be from 1 to 100 results in a row, not 101",
			`systems/a.yaml:6: alert_after must be a whole number, not "three"`,
			`systems/a.yaml:7: alert_after must be a whole number, not "2.5"`,
			"systems/a.yaml:8: alert_after must be from 1 to 100 results in a row, not -1",
		},
	},
}

// notifierCase is a commit with notifiers.yaml as given and no systems.
func notifierCase(name, notifiers string, want ...string) problemCase {
	return problemCase{name: "notifiers: " + name, want: want, files: map[string]string{"notifiers.yaml": notifiers}}
}

// notifierCases are the mistakes notifiers.yaml can hold, one a row.
var notifierCases = []problemCase{
	notifierCase("not a mapping", "- {name: chat, type: slack}\n",
		"notifiers.yaml:1: notifiers.yaml must be a mapping like {notifiers: [{name: …, type: …}]}, not a list"),
	notifierCase("unknown key", "notifier:\n  - {name: chat, type: slack}\n",
		`notifiers.yaml:1: unknown key "notifier" in notifiers.yaml (did you mean notifiers?)`),
	notifierCase("two documents", "notifiers: []\n---\nnotifiers: []\n",
		"notifiers.yaml:3: notifiers.yaml holds one document: put every notifier in the notifiers list of the first"),
	notifierCase("not a list", "notifiers: {name: chat, type: slack}\n",
		"notifiers.yaml:1: notifiers must be a list, not a mapping"),
	notifierCase("a notifier not a mapping", "notifiers:\n  - chat\n",
		`notifiers.yaml:2: a notifier must be a mapping like {name: …, type: webhook, url: https://…}, not "chat"`),
	notifierCase("unknown key in a notifier", "notifiers:\n  - {name: chat, type: slack, url: \"https://hooks.slack.com/services/x\", token: abc}\n",
		`notifiers.yaml:2: unknown key "token" in notifier (known keys: name, type, url, room, to, secret_env)`),
	notifierCase("no name", "notifiers:\n  - {type: slack, url: \"https://hooks.slack.com/services/x\"}\n",
		"notifiers.yaml:2: a notifier needs a name"),
	notifierCase("invalid name", "notifiers:\n  - {name: Ops Chat, type: slack, url: \"https://hooks.slack.com/services/x\"}\n",
		`notifiers.yaml:2: invalid notifier name "Ops Chat": use 1-63 lower-case letters, digits, '.', '-' or '_', starting with a letter or digit`),
	notifierCase("named email", "notifiers:\n  - {name: email, type: email, to: [ops@example.com]}\n",
		"notifiers.yaml:2: a notifier cannot be named email: via: email sends to the contact's own address"),
	notifierCase("declared twice", "notifiers:\n  - {name: chat, type: slack, url: \"https://hooks.slack.com/services/x\"}\n  - {name: chat, type: mattermost, url: \"https://chat.example.com/hooks/x\"}\n",
		"notifiers.yaml:3: notifier chat is declared twice (first at line 2)"),
	notifierCase("no type", "notifiers:\n  - {name: chat, url: \"https://hooks.slack.com/services/x\"}\n",
		"notifiers.yaml:2: a notifier needs a type: email, webhook, slack, mattermost or matrix"),
	notifierCase("unknown type", "notifiers:\n  - {name: chat, type: teams, url: \"https://teams.example.com/x\"}\n",
		`notifiers.yaml:2: unknown notifier type "teams" (use email, webhook, slack, mattermost or matrix)`),
	notifierCase("webhook without url", "notifiers:\n  - {name: pager, type: webhook, secret_env: ARAMAKI_NOTIFY_PAGER_KEY}\n",
		"notifiers.yaml:2: a webhook notifier needs url, where to send"),
	notifierCase("unsigned webhook", "notifiers:\n  - {name: pager, type: webhook, url: \"https://pager.example.com/x\"}\n",
		"notifiers.yaml:2: a webhook notifier needs secret_env, the environment variable holding the key its requests are signed with: unsigned webhooks are refused"),
	notifierCase("slack without url", "notifiers:\n  - {name: chat, type: slack}\n",
		"notifiers.yaml:2: a slack notifier needs url, its incoming webhook, or better secret_env, the environment variable holding that URL: the URL is the webhook's password"),
	notifierCase("mattermost without url", "notifiers:\n  - name: chat\n    type: mattermost\n    url:\n",
		"notifiers.yaml:2: a mattermost notifier needs url, its incoming webhook, or better secret_env, the environment variable holding that URL: the URL is the webhook's password"),
	notifierCase("chat with url and secret_env", "notifiers:\n  - name: chat\n    type: mattermost\n    url: https://chat.example.com/hooks/x\n    secret_env: ARAMAKI_NOTIFY_OPS_CHAT_URL\n",
		"notifiers.yaml:5: a mattermost notifier takes its URL from url or from the environment variable secret_env names, not both"),
	notifierCase("matrix without url", "notifiers:\n  - {name: chat, type: matrix, room: \"!abc:example.org\", secret_env: ARAMAKI_NOTIFY_MATRIX_TOKEN}\n",
		"notifiers.yaml:2: a matrix notifier needs url, where to send"),
	notifierCase("matrix without room", "notifiers:\n  - {name: chat, type: matrix, url: \"https://matrix.example.org\", secret_env: ARAMAKI_NOTIFY_MATRIX_TOKEN}\n",
		"notifiers.yaml:2: a matrix notifier needs room, the id of the room to post in"),
	notifierCase("matrix without secret_env", "notifiers:\n  - {name: chat, type: matrix, url: \"https://matrix.example.org\", room: \"!abc:example.org\"}\n",
		"notifiers.yaml:2: a matrix notifier needs secret_env, the environment variable holding its access token"),
	notifierCase("email without to", "notifiers:\n  - {name: mail, type: email, to: []}\n",
		"notifiers.yaml:2: an email notifier needs to, the addresses to send to"),
	notifierCase("plain http", "notifiers:\n  - {name: chat, type: mattermost, url: \"http://chat.example.com/hooks/x\"}\n",
		"notifiers.yaml:2: url must use https (secure by default): plain http is allowed only to localhost or a loopback address"),
	notifierCase("plain http to a look-alike of localhost", "notifiers:\n  - {name: chat, type: mattermost, url: \"http://localhost.example.com/hooks/x\"}\n",
		"notifiers.yaml:2: url must use https (secure by default): plain http is allowed only to localhost or a loopback address"),
	notifierCase("plain http to another host on the network", "notifiers:\n  - {name: chat, type: mattermost, url: \"http://10.0.0.1/hooks/x\"}\n",
		"notifiers.yaml:2: url must use https (secure by default): plain http is allowed only to localhost or a loopback address"),
	// The message does not repeat the URL, nor anything in it.
	notifierCase("credentials in the url", "notifiers:\n  - name: pager\n    type: webhook\n    url: https://bot:s3cret@pager.example.com/x\n    secret_env: ARAMAKI_NOTIFY_PAGER_KEY\n",
		"notifiers.yaml:4: url must not hold credentials (user:password@): put secrets in secret_env, an environment variable of the server"),
	notifierCase("url without a scheme", "notifiers:\n  - {name: chat, type: slack, url: hooks.slack.com/services/x}\n",
		"notifiers.yaml:2: url must be an absolute https:// URL"),
	notifierCase("url without a host", "notifiers:\n  - {name: chat, type: slack, url: \"https://:443/hooks/x\"}\n",
		"notifiers.yaml:2: url must be an absolute https:// URL"),
	notifierCase("url of another scheme", "notifiers:\n  - {name: chat, type: slack, url: \"ftp://hooks.example.com/x\"}\n",
		"notifiers.yaml:2: url must be an absolute https:// URL"),
	notifierCase("url not a text", "notifiers:\n  - {name: chat, type: slack, url: [https://hooks.slack.com/services/x]}\n",
		"notifiers.yaml:2: url must be a text, not a list"),
	notifierCase("email with url", "notifiers:\n  - {name: mail, type: email, url: \"https://mail.example.com\", to: [ops@example.com]}\n",
		"notifiers.yaml:2: an email notifier has no url: it sends through the server's SMTP settings to the addresses in to"),
	notifierCase("to not an address", "notifiers:\n  - name: mail\n    type: email\n    to:\n      - ops@example.com\n      - ops at example.com\n",
		`notifiers.yaml:6: "ops at example.com" is not an e-mail address`),
	notifierCase("to with a header in it", "notifiers:\n  - {name: mail, type: email, to: [\"ops@example.com\\r\\nBcc: all@example.com\"]}\n",
		`notifiers.yaml:2: "ops@example.com\r\nBcc: all@example.com" is not an e-mail address`),
	notifierCase("to not a list", "notifiers:\n  - {name: mail, type: email, to: ops@example.com}\n",
		`notifiers.yaml:2: to must be a list, not "ops@example.com"`),
	notifierCase("room alias", "notifiers:\n  - {name: chat, type: matrix, url: \"https://matrix.example.org\", room: \"#ops:example.org\", secret_env: ARAMAKI_NOTIFY_MATRIX_TOKEN}\n",
		`notifiers.yaml:2: room "#ops:example.org" is an alias: use the room id, like "!AbCdEfGh:example.org", shown in the room's settings`),
	notifierCase("room not an id", "notifiers:\n  - {name: chat, type: matrix, url: \"https://matrix.example.org\", room: ops, secret_env: ARAMAKI_NOTIFY_MATRIX_TOKEN}\n",
		`notifiers.yaml:2: room "ops" is not a Matrix room id like "!AbCdEfGh:example.org"`),
	notifierCase("room without a server", "notifiers:\n  - {name: chat, type: matrix, url: \"https://matrix.example.org\", room: \"!abc\", secret_env: ARAMAKI_NOTIFY_MATRIX_TOKEN}\n",
		`notifiers.yaml:2: room "!abc" is not a Matrix room id like "!AbCdEfGh:example.org"`),
	notifierCase("room unquoted", "notifiers:\n  - name: chat\n    type: matrix\n    url: https://matrix.example.org\n    room: !abc:example.org\n    secret_env: ARAMAKI_NOTIFY_MATRIX_TOKEN\n",
		`notifiers.yaml:5: quote the room id (room: "!abc:example.org"): unquoted, YAML reads the ! as the start of a tag`),
	notifierCase("room on a webhook", "notifiers:\n  - {name: pager, type: webhook, url: \"https://pager.example.com/x\", secret_env: ARAMAKI_NOTIFY_PAGER_KEY, room: \"!abc:example.org\"}\n",
		"notifiers.yaml:2: room is for matrix notifiers only"),
	notifierCase("to on slack", "notifiers:\n  - {name: chat, type: slack, url: \"https://hooks.slack.com/services/x\", to: [ops@example.com]}\n",
		"notifiers.yaml:2: to is for email notifiers only"),
	notifierCase("secret_env on email", "notifiers:\n  - {name: mail, type: email, to: [ops@example.com], secret_env: SMTP_PASSWORD}\n",
		"notifiers.yaml:2: an email notifier has no secret_env: it sends through the server's SMTP settings"),
	// The message does not repeat the value: it may be the secret itself.
	notifierCase("secret_env holding the secret", "notifiers:\n  - {name: pager, type: webhook, url: \"https://pager.example.com/x\", secret_env: hunter2-s3cret}\n",
		"notifiers.yaml:2: secret_env must name an environment variable of the server starting with ARAMAKI_NOTIFY_ (then upper-case letters, digits and _, like ARAMAKI_NOTIFY_OPS_CHAT_URL), not hold the secret itself: only those variables are handed to notifiers"),
	notifierCase("secret_env naming any variable of the server", "notifiers:\n  - {name: pager, type: webhook, url: \"https://pager.example.com/x\", secret_env: DATABASE_PASSWORD}\n",
		"notifiers.yaml:2: secret_env must name an environment variable of the server starting with ARAMAKI_NOTIFY_ (then upper-case letters, digits and _, like ARAMAKI_NOTIFY_OPS_CHAT_URL), not hold the secret itself: only those variables are handed to notifiers"),
	notifierCase("secret_env starting with a digit", "notifiers:\n  - {name: pager, type: webhook, url: \"https://pager.example.com/x\", secret_env: 1PAGER_KEY}\n",
		"notifiers.yaml:2: secret_env must name an environment variable of the server starting with ARAMAKI_NOTIFY_ (then upper-case letters, digits and _, like ARAMAKI_NOTIFY_OPS_CHAT_URL), not hold the secret itself: only those variables are handed to notifiers"),
	{
		// Routes through the notifiers of a broken notifiers.yaml are
		// not reported as unknown: that would bury the real problem.
		name: "notifiers: a broken file hides no problem but its own",
		files: map[string]string{
			"notifiers.yaml": "notifiers:\n  - {name: chat, type: slack\n",
			"systems/a.yaml": routeSystem + "routing:\n  - {contact: Alice, via: chat}\n",
		},
		want: []string{"notifiers.yaml:2: invalid YAML: did not find expected ',' or '}'"},
	},
	{
		// A notifier with a problem is still known by its name.
		name: "notifiers: a notifier with a problem is reported once",
		files: map[string]string{
			"notifiers.yaml": "notifiers:\n  - {name: chat, type: slack}\n",
			"systems/a.yaml": routeSystem + "routing:\n  - {contact: Alice, via: chat}\n",
		},
		want: []string{"notifiers.yaml:2: a slack notifier needs url, its incoming webhook, or better secret_env, the environment variable holding that URL: the URL is the webhook's password"},
	},
}
