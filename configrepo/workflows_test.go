package configrepo_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/configrepo"
)

// shopSystems are a shop whose app and cache expose actions; a workflow
// case adds the shop's workflows after them.
const shopSystems = `id: shop-app
title: App
actions: [{name: restart-php-fpm}]
---
id: shop-cache
title: Cache
actions: [{name: flush-varnish}]
---
id: elsewhere
title: Not the shop's
actions: [{name: restart-php-fpm}]
---
id: shop
title: Shop
subsystems: [shop-app, shop-cache]
`

func workflowCase(name, workflows string, want ...string) problemCase {
	return problemCase{name: "workflows: " + name, want: want, files: map[string]string{"systems/shop.yaml": shopSystems + workflows}}
}

var workflowCases = []problemCase{
	workflowCase("not a list", "workflows: {name: x}\n",
		"systems/shop.yaml:16: workflows must be a list, not a mapping"),
	workflowCase("no steps", "workflows:\n  - {name: empty}\n",
		"systems/shop.yaml:17: a workflow needs steps"),
	workflowCase("a misspelt key", "workflows:\n  - name: x\n    step: []\n",
		`systems/shop.yaml:18: unknown key "step" in workflow (did you mean steps?)`),
	workflowCase("a step without an action", "workflows:\n  - name: x\n    steps: [{name: a}]\n",
		"systems/shop.yaml:18: step a needs an action"),
	workflowCase("bad concurrency and breaker", `workflows:
  - name: x
    steps:
      - {name: a, system: shop-app, action: restart-php-fpm, concurrency: -1, stop_after: 120%}
      - {name: b, system: shop-app, action: restart-php-fpm, stop_after: lots}
`,
		"systems/shop.yaml:19: concurrency is 0 (all hosts at once) to 10000",
		`systems/shop.yaml:19: stop_after "120%": a share is 1% to 100%`,
		`systems/shop.yaml:20: stop_after "lots": write a number of failures (1 to 10000) or a share like 25%`),
	workflowCase("an unknown input", `workflows:
  - name: x
    steps:
      - {name: a, system: shop-cache, action: flush-varnish, params: {pattern: "${inputs.pattern}"}}
`,
		"systems/shop.yaml:17: workflow x: step a: parameter pattern: ${inputs.pattern}: the workflow has no input pattern"),
	workflowCase("an output of a later step", `workflows:
  - name: x
    steps:
      - {name: a, system: shop-cache, action: flush-varnish, params: {pattern: "${steps.b.url}"}}
      - {name: b, system: shop-app, action: restart-php-fpm, outputs: {url: 'url=(\S+)'}}
`,
		"systems/shop.yaml:17: workflow x: step a: parameter pattern: ${steps.b.url}: no step b comes before this one"),
	workflowCase("an output without a group", `workflows:
  - name: x
    steps:
      - {name: a, system: shop-app, action: restart-php-fpm, outputs: {version: 'version \S+'}}
`,
		`systems/shop.yaml:17: workflow x: step a: output version: "version \\S+" must be a regular expression with exactly one group ( … ), whose text is the output`),
	workflowCase("a system not under it, an unknown one, an action not there", `workflows:
  - name: x
    steps:
      - {name: a, system: elsewhere, action: restart-php-fpm}
      - {name: b, system: nowhere, action: restart-php-fpm}
      - {name: c, system: shop-cache, action: restart-php-fpm}
`,
		"systems/shop.yaml:19: step a runs on elsewhere, which is not shop or under it",
		"systems/shop.yaml:20: step b runs on unknown system nowhere",
		"systems/shop.yaml:21: step c: system shop-cache has no action restart-php-fpm (add it to the actions of shop-cache)"),
	workflowCase("declared twice", `workflows:
  - {name: x, steps: [{name: a, system: shop-app, action: restart-php-fpm}]}
  - {name: x, steps: [{name: a, system: shop-app, action: restart-php-fpm}, {name: a, system: shop-app, action: restart-php-fpm}]}
`,
		"systems/shop.yaml:18: workflow x is declared twice (first at line 17)"),
}

func TestWorkflowProblems(t *testing.T) {
	for _, tc := range workflowCases {
		t.Run(tc.name, func(t *testing.T) {
			snap, problems := configrepo.Parse(bytesOf(tc.files))
			if got := strs(problems); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if snap.Systems != nil {
				t.Errorf("got %d systems along with problems, want none", len(snap.Systems))
			}
		})
	}
}

func TestAWorkflowIsReadWithEverythingItSays(t *testing.T) {
	snap, problems := configrepo.Parse(bytesOf(map[string]string{"systems/shop.yaml": shopSystems + `workflows:
  - name: rolling-restart
    description: One host at a time
    role: admin
    approval: true
    rule: Not at the evening peak.
    inputs:
      - {name: pattern, default: "."}
      - {name: ticket}
    steps:
      - name: restart
        system: shop-app
        action: restart-php-fpm
        agents: [app1, app2]
        concurrency: 1
        stop_after: 25%
        outputs: {version: 'version=(\S+)'}
      - name: flush
        system: shop-cache
        action: flush-varnish
        params: {pattern: "/${steps.restart.version}/${inputs.pattern}"}
`}))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	i := slices.IndexFunc(snap.Systems, func(s aramaki.System) bool { return s.ID == "shop" })
	w, ok := snap.Systems[i].Workflow("rolling-restart")
	if !ok {
		t.Fatal("no workflow")
	}
	restart, flush := w.Steps[0], w.Steps[1]
	if w.Role != aramaki.RoleAdmin || !w.Approval || w.Rule != "Not at the evening peak." || len(w.Inputs) != 2 || *w.Inputs[0].Default != "." || w.Inputs[1].Default != nil ||
		restart.System != "shop-app" || restart.Concurrency != 1 || restart.StopAfter != (aramaki.Breaker{Percent: 25}) || !slices.Equal(restart.Agents, []string{"app1", "app2"}) ||
		restart.Outputs["version"] != `version=(\S+)` || flush.Params["pattern"] != "/${steps.restart.version}/${inputs.pattern}" || flush.StopAfter != (aramaki.Breaker{}) {
		t.Errorf("workflow %+v", w)
	}
}

func TestAPeersSystemIsUsedAsASubsystem(t *testing.T) {
	snap, problems := configrepo.Parse(bytesOf(map[string]string{"systems/shop.yaml": "id: shop\ntitle: Shop\nsubsystems: [storage@hoster, app]\n---\nid: app\ntitle: App\n"}))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	g, err := aramaki.NewGraph(snap.Systems)
	if err != nil {
		t.Fatal(err)
	}
	remote := g.System("storage@hoster")
	if remote == nil || remote.Peer != "hoster" || remote.Title != "storage at hoster" || !slices.Equal(g.UsedBy("storage@hoster"), []string{"shop"}) {
		t.Fatalf("the peer's system in the graph: %+v", remote)
	}
	if anchors := g.Anchors(); !slices.Equal(anchors, []string{"shop"}) {
		t.Errorf("anchors %v", anchors)
	}
}
