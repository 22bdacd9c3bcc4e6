package action_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/agent/action"
)

// FuzzParse feeds an action file to the parser. Whatever it holds, it must
// not panic; an action it accepts must be one the domain accepts, with a
// timeout; a problem must say where, briefly, in valid UTF-8.
func FuzzParse(f *testing.F) {
	f.Add([]byte(varnishFile))
	f.Add([]byte(systemdFile))
	for _, c := range problemCases {
		f.Add([]byte(c.content))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, problems := action.Parse("a.yaml", data)
		if len(problems) > 0 {
			if specs != nil {
				t.Fatalf("%d actions returned along with problems", len(specs))
			}
			// YAML breaks lines at \n, \r, \r\n, NEL, LS and PS.
			lines := 1 + strings.Count(string(data), "\n") + strings.Count(string(data), "\r") +
				strings.Count(string(data), "\u0085") + strings.Count(string(data), "\u2028") + strings.Count(string(data), "\u2029")
			for i, p := range problems {
				if p.File != "a.yaml" || p.Line < 0 || p.Line > lines {
					t.Errorf("problem at %s:%d in a file of %d lines", p.File, p.Line, lines)
				}
				if p.Message == "" || len(p.Message) > 1000 || !utf8.ValidString(p.Message) {
					t.Errorf("bad message: %q", p.Message)
				}
				if i > 0 && problems[i-1].Line > p.Line {
					t.Errorf("problems out of order: %s before %s", problems[i-1], p)
				}
			}
			return
		}
		seen := map[string]bool{}
		for _, s := range specs {
			if err := s.Validate(); err != nil {
				t.Fatalf("accepted an action the domain refuses: %v", err)
			}
			if s.Timeout <= 0 || s.Timeout > aramaki.MaxActionTimeout {
				t.Fatalf("accepted timeout %s", s.Timeout)
			}
			if seen[s.Name] {
				t.Fatalf("accepted action %s twice", s.Name)
			}
			seen[s.Name] = true
			for _, p := range s.Params {
				if p.Default != nil {
					if _, err := s.Values(map[string]string{p.Name: *p.Default}); err != nil && !strings.Contains(aramaki.ErrorMessage(err), "needs a value") {
						t.Fatalf("accepted default %q of %s: %v", *p.Default, p.Name, err)
					}
				}
			}
		}
	})
}
