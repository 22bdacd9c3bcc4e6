package configrepo_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

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
	for _, m := range regexp.MustCompile("(?s)`(systems/[^`]+)`:\n\n```yaml\n(.*?)```").FindAllStringSubmatch(section, -1) {
		files[m[1]] = m[2]
	}
	if len(files) != 3 {
		t.Fatalf("found %d example files, want 3", len(files))
	}
	g, err := aramaki.NewGraph(MustParse(t, files))
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
}
