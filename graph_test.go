package aramaki_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/aramaki/aramaki"
)

// hosting is a small hosting company: two projects share storage.
func hosting() []aramaki.System {
	return []aramaki.System{
		{ID: "webshop", Title: "Webshop", Subsystems: []string{"webshop-app", "webshop-db"}},
		{ID: "webshop-app", Title: "App", Subsystems: []string{"compute"}},
		{ID: "webshop-db", Title: "DB", Subsystems: []string{"storage"}},
		{ID: "blog", Title: "Blog", Subsystems: []string{"blog-db"}, Public: true},
		{ID: "blog-db", Title: "Blog DB", Subsystems: []string{"storage"}},
		{ID: "infrastructure", Title: "Infrastructure", Subsystems: []string{"storage", "compute"}},
		{ID: "storage", Title: "Storage"},
		{ID: "compute", Title: "Compute"},
	}
}

func MustGraph(t *testing.T, systems []aramaki.System) *aramaki.Graph {
	t.Helper()
	g, err := aramaki.NewGraph(systems)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestASubsystemMayBeUsedByManySystems(t *testing.T) {
	g := MustGraph(t, hosting())
	if got, want := g.UsedBy("storage"), []string{"blog-db", "infrastructure", "webshop-db"}; !slices.Equal(got, want) {
		t.Errorf("UsedBy(storage) = %v, want %v", got, want)
	}
	if got, want := g.Anchors(), []string{"blog", "infrastructure", "webshop"}; !slices.Equal(got, want) {
		t.Errorf("Anchors = %v, want %v", got, want)
	}
	desc := g.Descendants("webshop")
	slices.Sort(desc)
	if want := []string{"compute", "storage", "webshop-app", "webshop-db"}; !slices.Equal(desc, want) {
		t.Errorf("Descendants(webshop) = %v, want %v", desc, want)
	}
	anc := g.Ancestors("storage")
	slices.Sort(anc)
	if want := []string{"blog", "blog-db", "infrastructure", "webshop", "webshop-db"}; !slices.Equal(anc, want) {
		t.Errorf("Ancestors(storage) = %v, want %v", anc, want)
	}
	if len(g.Descendants("storage")) != 0 || len(g.Ancestors("webshop")) != 0 {
		t.Error("a leaf has descendants or an anchor has ancestors")
	}
}

func TestTheGraphRefusesCyclesAndUnknownSubsystems(t *testing.T) {
	cases := []struct {
		name    string
		systems []aramaki.System
		want    string
	}{
		{"unknown subsystem", []aramaki.System{{ID: "a", Subsystems: []string{"ghost"}}}, "unknown subsystem ghost"},
		{"duplicate id", []aramaki.System{{ID: "a"}, {ID: "a"}}, "declared twice"},
		{"two-cycle", []aramaki.System{{ID: "a", Subsystems: []string{"b"}}, {ID: "b", Subsystems: []string{"a"}}}, "a → b → a"},
		{"long cycle", []aramaki.System{
			{ID: "a", Subsystems: []string{"b"}}, {ID: "b", Subsystems: []string{"c"}},
			{ID: "c", Subsystems: []string{"d"}}, {ID: "d", Subsystems: []string{"b"}},
		}, "b → c → d → b"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := aramaki.NewGraph(c.systems)
			if err == nil || !strings.Contains(aramaki.ErrorMessage(err), c.want) {
				t.Fatalf("NewGraph error = %v, want %q", err, c.want)
			}
		})
	}
	// A diamond is not a cycle.
	diamond := []aramaki.System{
		{ID: "top", Subsystems: []string{"left", "right"}},
		{ID: "left", Subsystems: []string{"bottom"}}, {ID: "right", Subsystems: []string{"bottom"}}, {ID: "bottom"},
	}
	if _, err := aramaki.NewGraph(diamond); err != nil {
		t.Fatalf("a diamond was refused: %v", err)
	}
}

func TestRolesAreInheritedDownTheGraph(t *testing.T) {
	systems := hosting()
	systems[0].Roles = map[aramaki.Role][]string{aramaki.RoleOperator: {"otto"}} // webshop
	g := MustGraph(t, systems)
	vera := aramaki.Principal{User: "vera", Bindings: []aramaki.RoleBinding{{User: "vera", System: "blog", Role: aramaki.RoleViewer}}}
	otto := aramaki.Principal{User: "otto"}
	root := aramaki.Principal{User: "root", Bindings: []aramaki.RoleBinding{{User: "root", System: aramaki.GlobalScope, Role: aramaki.RoleAdmin}}}
	nobody := aramaki.Principal{}

	cases := []struct {
		who    aramaki.Principal
		system string
		want   aramaki.Role
	}{
		{otto, "webshop", aramaki.RoleOperator},
		{otto, "webshop-db", aramaki.RoleOperator}, // inherited
		{otto, "storage", aramaki.RoleOperator},    // further down, shared
		{otto, "blog", aramaki.RoleNone},           // a sibling project
		{otto, "infrastructure", aramaki.RoleNone}, // never upwards
		{vera, "blog-db", aramaki.RoleViewer},
		{vera, "webshop", aramaki.RoleNone},
		{root, "compute", aramaki.RoleAdmin},
		{root, "no-such-system", aramaki.RoleNone},
		{nobody, "blog", aramaki.RoleNone},
	}
	for _, c := range cases {
		if got := g.RoleOn(c.who, c.system); got != c.want {
			t.Errorf("RoleOn(%q, %s) = %q, want %q", c.who.User, c.system, got, c.want)
		}
	}
	// Public is not inherited: the blog is public, its database is not.
	if !g.CanView(nobody, "blog") || g.CanView(nobody, "blog-db") {
		t.Error("anonymous must see the public blog and not its database")
	}
	if got, want := g.Visible(otto), []string{"compute", "storage", "webshop", "webshop-app", "webshop-db", "blog"}; len(got) != len(want) {
		t.Errorf("Visible(otto) = %v, want the webshop tree and the public blog", got)
	}
}

func TestRolesAreOrdered(t *testing.T) {
	if !aramaki.RoleAdmin.AtLeast(aramaki.RoleOperator) || !aramaki.RoleOperator.AtLeast(aramaki.RoleViewer) {
		t.Error("admin ≥ operator ≥ viewer")
	}
	if aramaki.RoleViewer.AtLeast(aramaki.RoleOperator) || aramaki.RoleNone.AtLeast(aramaki.RoleNone) || aramaki.Role("god").Valid() {
		t.Error("viewer < operator; no role allows nothing; unknown roles are invalid")
	}
}
