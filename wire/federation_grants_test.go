package wire_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki/wire"
)

func TestPeerGrantsDecodeAndBadOnesAreRefusedWithAClearError(t *testing.T) {
	good := `{"grants":[{"id":"7","systems":["storage"],"kinds":["events","status"],"actions":["restart-unit"],"until":"2026-12-01T18:00:00Z"}]}`
	g, err := wire.DecodePeerGrants([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Grants) != 1 || g.Grants[0].Actions[0] != "restart-unit" || !g.Grants[0].Until.Equal(time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)) {
		t.Fatalf("decoded %+v", g)
	}
	if g, err := wire.DecodePeerGrants([]byte(`{"grants":[]}`)); err != nil || len(g.Grants) != 0 {
		t.Fatalf("no grants in force: %+v %v", g, err)
	}
	edit := func(old, new string) string { return strings.Replace(good, old, new, 1) }
	for _, c := range []struct{ name, body, want string }{
		{"no list", `{}`, "list of grants is missing"},
		{"unknown field", edit(`"id":"7"`, `"id":"7","by":"root"`), `unknown field "by"`},
		{"bad id", edit(`"id":"7"`, `"id":"../7"`), "is not a grant id"},
		{"twice", `{"grants":[` + good[11:len(good)-2] + `,` + good[11:len(good)-2] + `]}`, "listed twice"},
		{"no systems", edit(`"systems":["storage"]`, `"systems":[]`), "1 to 1000 systems"},
		{"a peer's system", edit(`"storage"`, `"storage@c"`), "storage@c is not a system id of the origin"},
		{"unknown kind", edit(`"events"`, `"secrets"`), "secrets is not a kind"},
		{"bad action", edit(`"restart-unit"`, `"rm -rf"`), "is not an action name"},
		{"allows nothing", edit(`"kinds":["events","status"],"actions":["restart-unit"],`, ``), "allows nothing"},
		{"no end", edit(`"until":"2026-12-01T18:00:00Z"`, `"until":"0001-01-01T00:00:00Z"`), "no valid end time"},
		{"not JSON", `{"grants":`, "malformed JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.DecodePeerGrants([]byte(c.body))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// What DecodePeerGrants accepts is within its limits and encodes to what
// decodes the same.
func FuzzDecodePeerGrants(f *testing.F) {
	f.Add([]byte(`{"grants":[{"id":"7","systems":["storage"],"kinds":["events"],"until":"2026-12-01T18:00:00Z"}]}`))
	f.Add([]byte(`{"grants":[{"id":"a_1","systems":["s","t"],"actions":["flush"],"until":"2030-01-01T00:00:00+09:00"}]}`))
	f.Add([]byte(`{"grants":[]}`))
	f.Add([]byte(`{"grants":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		g, err := wire.DecodePeerGrants(body)
		if err != nil {
			return
		}
		if len(g.Grants) > wire.MaxPeerGrants {
			t.Fatalf("accepted %d grants", len(g.Grants))
		}
		for _, gr := range g.Grants {
			if len(gr.Systems) == 0 || len(gr.Kinds)+len(gr.Actions) == 0 || gr.Until.IsZero() {
				t.Fatalf("accepted %+v", gr)
			}
			for _, s := range gr.Systems {
				if strings.Contains(s, "@") {
					t.Fatalf("accepted a peer's system %s", s)
				}
			}
		}
		again, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wire.DecodePeerGrants(again); err != nil {
			t.Fatalf("re-encoded, refused: %v\n%s", err, again)
		}
	})
}
