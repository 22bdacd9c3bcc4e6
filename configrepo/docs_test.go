package configrepo_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
)

// The complete example of docs/config-repo.md is a valid repository and
// makes the graph the text describes.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/config-repo.md")
	if err != nil {
		t.Fatal(err)
	}
	section, _, _ := strings.Cut(string(doc)[strings.Index(string(doc), "## A complete example"):], "\n## Keys")
	files := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)`(systems/[^`]+|notifiers\\.yaml)`:\n\n```yaml\n(.*?)```").FindAllStringSubmatch(section, -1) {
		files[m[1]] = m[2]
	}
	if len(files) != 4 || files["notifiers.yaml"] == "" {
		t.Fatalf("found %d example files, want notifiers.yaml and 3 system files", len(files))
	}
	snap := MustParse(t, files)
	g, err := aramaki.NewGraph(snap.Systems)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := g.Anchors(), []string{"blog", "infrastructure", "webshop"}; !slices.Equal(got, want) {
		t.Errorf("anchors %v, want %v", got, want)
	}
	if got, want := g.UsedBy("storage"), []string{"blog-db", "infrastructure", "webshop-db"}; !slices.Equal(got, want) {
		t.Errorf("storage is used by %v, want %v", got, want)
	}
	// What the text says of roles and public systems.
	if got := g.RoleOn(aramaki.Principal{User: "bob"}, "compute"); got != aramaki.RoleOperator {
		t.Errorf("bob, operator on webshop, is %q on compute, want operator", got)
	}
	if anon := (aramaki.Principal{}); !g.CanView(anon, "blog") || g.CanView(anon, "blog-app") {
		t.Error("want the blog public and its parts not")
	}
	// What the text says of routing: the on-call is paged through the
	// infrastructure, Alice hears of the webshop in office hours, the blog
	// forwards to the infrastructure.
	if len(snap.Notifiers) != 2 || snap.Notifiers[1].Name != "pager" || snap.Notifiers[1].SecretEnv == "" {
		t.Errorf("notifiers %+v, want the chat and the signed pager", snap.Notifiers)
	}
	routes := func(id string) []aramaki.Route { return g.System(id).Routing }
	if r := routes("infrastructure"); len(r) != 3 || r[0].Via != "pager" || r[2].After != 15*time.Minute {
		t.Errorf("infrastructure routes %+v, want the pager, the chat and an escalation after 15m", r)
	}
	if r := routes("webshop"); len(r) != 1 || r[0].Contact != "Alice Example" || r[0].Via != "email" || r[0].Hours == "" {
		t.Errorf("webshop routes %+v, want Alice by e-mail in office hours", r)
	}
	if r := routes("blog"); len(r) != 1 || r[0].Forward != "infrastructure" {
		t.Errorf("blog routes %+v, want a forward to the infrastructure", r)
	}
	if c := g.System("compute").Checks; len(c) != 1 || c[0].AlertAfter != 3 {
		t.Errorf("compute checks %+v, want load with alert_after 3", c)
	}
}

// The examples of the sections on routing and notifiers are valid
// together: the system routes through the notifiers.
func TestDocsRoutingExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/config-repo.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)[strings.Index(string(doc), "\n## Routing alerts"):]
	section, _, _ = strings.Cut(section, "\n## When a commit is refused")
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) != 2 {
		t.Fatalf("found %d YAML examples, want the system and the notifiers", len(blocks))
	}
	snap := MustParse(t, map[string]string{
		"systems/infrastructure.yaml": blocks[0][1] + "---\nid: compute\ntitle: Compute\n---\nid: storage\ntitle: Storage\n",
		"notifiers.yaml":              blocks[1][1],
	})
	var types []aramaki.NotifierType
	for _, n := range snap.Notifiers {
		types = append(types, n.Type)
	}
	slices.Sort(types)
	if want := []aramaki.NotifierType{"email", "matrix", "mattermost", "slack", "webhook"}; !slices.Equal(types, want) {
		t.Errorf("notifier types %v, want one of each", types)
	}
	if snap.Systems[1].ID != "infrastructure" || len(snap.Systems[1].Routing) != 5 {
		t.Errorf("systems %+v, want the infrastructure with five routes", snap.Systems)
	}
}
