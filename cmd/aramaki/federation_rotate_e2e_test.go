package main_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Two real servers: a (hoster) rotates its key with the CLI while b (shop)
// uses its storage. b learns the new key from a's next hello, endorsed by
// the old one, says so on its timeline, and a's events keep reaching it —
// with no new invitation, no step out of band.
func TestARotatedKeyReachesThePeerAndEventsKeepFlowing(t *testing.T) {
	t.Parallel()
	a := MustStartServer(t, MustConfigRepo(t, map[string]string{"storage.yaml": "id: storage\ntitle: Storage\n"}), "--name", "hoster")
	b := MustStartServer(t, MustConfigRepo(t, map[string]string{"shop.yaml": "id: shop\ntitle: Shop\nsubsystems: [storage@hoster]\n"}), "--name", "shop")
	var inv struct{ Token string }
	mustJSON(t, a.MustCLI("peer", "invite", "--name", "shop", "-o", "json"), &inv)
	b.MustCLI("peer", "accept", inv.Token)
	a.MustCLI("grant", "create", "--peer", "shop", "--system", "storage", "--allow", "events", "--until", "24h")

	remote := func() []string {
		var page struct{ Events []struct{ Summary string } }
		if code := b.MustAPI("GET", "/api/v1/timeline?system=storage@hoster&kind=note&limit=500", nil, &page); code != http.StatusOK {
			t.Fatalf("b's timeline of storage@hoster: %d", code)
		}
		var out []string
		for i := len(page.Events) - 1; i >= 0; i-- {
			out = append(out, page.Events[i].Summary)
		}
		return out
	}
	hosterKeys := func() []string {
		var ids []string
		for _, p := range b.MustActivePeers() {
			if p.Name == "hoster" {
				for _, k := range p.Keys {
					ids = append(ids, k.ID)
				}
			}
		}
		return ids
	}
	a.MustCLI("note", "storage", "before the rotation")
	Eventually(t, 20*time.Second, "a's note on b", func() bool { return len(remote()) == 1 })
	old := a.MustIdentity().Keys[0].ID

	a.MustCLI("federation", "rotate-key")
	current := a.MustIdentity().Keys[0].ID
	if current == old {
		t.Fatalf("rotate-key left the key %s", old)
	}
	Eventually(t, 20*time.Second, "b to learn a's new key", func() bool { return slices.Contains(hosterKeys(), current) })
	if keys := hosterKeys(); !slices.Contains(keys, old) {
		t.Errorf("b forgot a's old key: %v", keys)
	}
	a.MustCLI("note", "storage", "after the rotation")
	Eventually(t, 20*time.Second, "a's note after the rotation on b", func() bool { return len(remote()) == 2 })
	if got := strings.Join(remote(), "|"); got != "before the rotation|after the rotation" {
		t.Errorf("on b: %q", got)
	}
	if all := b.MustCLI("timeline", "--limit", "500"); !strings.Contains(all, "peer hoster rotated its key to "+current) {
		t.Errorf("b's timeline does not say hoster rotated its key:\n%s", all)
	}
}
