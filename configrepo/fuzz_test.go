package configrepo_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/configrepo"
)

// FuzzParse feeds two system files to the parser. Whatever they hold, it
// must not panic, and a commit it accepts must make a valid graph.
func FuzzParse(f *testing.F) {
	// Each document of the sample on its own: seeds are kept small, as the
	// fuzzer minimizes what it finds in time quadratic in its size.
	for name, content := range MustReadTree(f, "sample") {
		if configrepo.IsSystemFile(name) {
			for _, doc := range strings.Split(content, "\n---\n") {
				f.Add([]byte(doc), []byte(nil))
			}
		}
	}
	for _, tc := range problemCases {
		var contents [][]byte
		for _, name := range slices.Sorted(maps.Keys(tc.files)) {
			contents = append(contents, []byte(tc.files[name]))
		}
		contents = append(contents, nil, nil)
		f.Add(contents[0], contents[1])
	}

	f.Fuzz(func(t *testing.T, a, b []byte) {
		files := map[string][]byte{"systems/a.yaml": a, "systems/b/b.yml": b}
		systems, problems := configrepo.Parse(files)
		if len(problems) > 0 {
			if systems != nil {
				t.Fatalf("%d systems returned along with problems", len(systems))
			}
			for i, p := range problems {
				if p.File != "systems/a.yaml" && p.File != "systems/b/b.yml" {
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
		for i := range systems {
			if err := systems[i].Validate(); err != nil {
				t.Fatalf("accepted a system that does not validate: %v", err)
			}
			if i > 0 && systems[i-1].ID >= systems[i].ID {
				t.Fatalf("systems not ordered by id: %s, %s", systems[i-1].ID, systems[i].ID)
			}
		}
		if _, err := aramaki.NewGraph(systems); err != nil {
			t.Fatalf("accepted systems that make no graph: %v", err)
		}
	})
}
