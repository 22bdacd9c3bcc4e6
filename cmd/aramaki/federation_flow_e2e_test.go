package main_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A real pair of servers: b uses a's storage as a subsystem of its shop.
// Once a grants b the events and status of storage, what happens on a's
// storage is on b's timeline and b's shop rolls up storage's status; what
// a did not grant never reaches b. b is killed with -9 while a goes on;
// once b is back, it catches up with everything, each event once.
func TestAPeersSharedSystemIsLiveOnTheOtherServerAndSurvivesKill9(t *testing.T) {
	t.Parallel()
	a := MustStartServer(t, MustConfigRepo(t, map[string]string{
		"storage.yaml": "id: storage\ntitle: Storage\n---\nid: billing\ntitle: Billing\n",
	}), "--name", "hoster")
	b := MustStartServer(t, MustConfigRepo(t, map[string]string{"shop.yaml": "id: shop\ntitle: Shop\nsubsystems: [storage@hoster]\n"}), "--name", "shop")
	var inv struct{ Token string }
	mustJSON(t, a.MustCLI("peer", "invite", "--name", "shop", "-o", "json"), &inv)
	b.MustCLI("peer", "accept", inv.Token)
	a.MustCLI("grant", "create", "--peer", "shop", "--system", "storage", "--allow", "events,status", "--until", "24h")

	remote := func() []string {
		var page struct {
			Events []struct {
				Summary string
				Systems []string
			}
		}
		if code := b.MustAPI("GET", "/api/v1/timeline?system=storage@hoster&kind=note&limit=500", nil, &page); code != http.StatusOK {
			t.Fatalf("b's timeline of storage@hoster: %d", code)
		}
		var out []string
		for i := len(page.Events) - 1; i >= 0; i-- {
			out = append(out, page.Events[i].Summary)
		}
		return out
	}
	a.MustCLI("note", "storage", "swapping disk 3")
	a.MustCLI("note", "billing", "invoice run")
	Eventually(t, 20*time.Second, "a's storage note on b", func() bool { return len(remote()) == 1 })
	if got := remote(); got[0] != "swapping disk 3" {
		t.Errorf("on b: %q", got)
	}
	var status struct {
		Status     string
		Subsystems []struct {
			ID     string
			Status string
		}
	}
	Eventually(t, 20*time.Second, "storage@hoster's status on b", func() bool {
		b.MustAPI("GET", "/api/v1/systems/shop/status", nil, &status)
		return len(status.Subsystems) == 1 && status.Subsystems[0].Status == "ok"
	})

	// b goes down hard; a goes on; b comes back and catches up.
	b.Kill9()
	for _, n := range []string{"one", "two", "three"} {
		a.MustCLI("note", "storage", "while b was down: "+n)
	}
	time.Sleep(500 * time.Millisecond)
	b.MustRestart()
	Eventually(t, 30*time.Second, "b catching up", func() bool { return len(remote()) >= 4 })
	time.Sleep(300 * time.Millisecond)
	if got := strings.Join(remote(), "|"); got != "swapping disk 3|while b was down: one|while b was down: two|while b was down: three" {
		t.Errorf("on b after its restart: %q", got)
	}
	if all := b.MustCLI("timeline", "--limit", "500"); strings.Contains(all, "invoice") {
		t.Errorf("b learned of billing:\n%s", all)
	}
}
