package main_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Two real servers and a real agent: hoster (a) lets shop (b) restart a
// unit of its storage. shop's operator runs it with the ordinary run
// command; it runs on a's agent, as an ordinary run of a's by that user of
// shop; both timelines show it, and shop learns how many hosts succeeded,
// never which nor what they printed. What no grant allows, and what a
// revoked grant allowed, a refuses, and shop's run ends refused.
func TestAPeersOperatorRunsAnActionTheGrantAllowsOnTheRealAgentAuditedOnBothServers(t *testing.T) {
	t.Parallel()
	actions := t.TempDir()
	if err := os.WriteFile(filepath.Join(actions, "storage.yaml"), []byte(`actions:
  - name: restart-unit
    argv: [/usr/bin/printf, "restarted %s on the secret host\n", "{unit}"]
    params:
      - {name: unit, type: string, pattern: "[a-z]{1,20}"}
    timeout: 10s
  - name: reformat
    argv: [/usr/bin/printf, "reformatted\n"]
    timeout: 10s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	a := MustStartServer(t, MustConfigRepo(t, map[string]string{
		"storage.yaml": "id: storage\ntitle: Storage\nactions:\n  - {name: restart-unit}\n  - {name: reformat}\n",
	}), "--name", "hoster")
	b := MustStartServer(t, MustConfigRepo(t, map[string]string{"shop.yaml": "id: shop\ntitle: Shop\nsubsystems: [storage@hoster]\n"}), "--name", "shop")
	agent := MustEnrollAgentWith(t, a, []string{"--actions", actions}, "storage")
	var inv struct{ Token string }
	mustJSON(t, a.MustCLI("peer", "invite", "--name", "shop", "-o", "json"), &inv)
	b.MustCLI("peer", "accept", inv.Token)
	var grant struct{ ID string }
	mustJSON(t, a.MustCLI("grant", "create", "--peer", "shop", "--system", "storage", "--allow", "events,action:restart-unit", "--until", "24h", "-o", "json"), &grant)
	Eventually(t, 20*time.Second, "the agent's actions on a", func() bool {
		var page struct{ Events []struct{ Summary string } }
		a.MustAPI("GET", "/api/v1/timeline?system=storage&kind=agent.actions", nil, &page)
		return len(page.Events) > 0 && strings.Contains(page.Events[0].Summary, "restart-unit")
	})
	// b knows what hoster granted it.
	Eventually(t, 20*time.Second, "hoster's grant known on b", func() bool {
		return strings.Contains(b.MustCLI("grant", "received", "--peer", "hoster"), "storage@hoster  events,action:restart-unit")
	})

	out := b.MustCLI("run", "restart-unit", "--system", "storage@hoster", "--reason", "nfs hangs on the shop", "--param", "unit=nfs", "--wait", "60s")
	if !strings.Contains(out, "is a system of peer hoster") || !strings.Contains(out, "(at peer hoster)") ||
		!strings.Contains(out, "At peer hoster: 1 of the peer's hosts succeeded, 0 did not") || !strings.Contains(out, "succeeded after") {
		t.Errorf("aramaki run on b printed:\n%s", out)
	}

	// On a: an ordinary run on its agent, by that user of shop.
	var runsA struct{ Runs []runView }
	a.MustAPI("GET", "/api/v1/runs", nil, &runsA)
	if len(runsA.Runs) != 1 {
		t.Fatalf("a's runs: %+v", runsA.Runs)
	}
	ra := runsA.Runs[0]
	a.MustAPI("GET", "/api/v1/runs/"+ra.ID, nil, &ra)
	host := ra.Targets[0].Name
	if ra.State != "succeeded" || !strings.HasSuffix(ra.RequestedBy, "@shop") || ra.Reason != "nfs hangs on the shop" || len(ra.Targets) != 1 ||
		ra.Targets[0].Output != "restarted nfs on the secret host\n" {
		t.Fatalf("the run on a: %+v", ra)
	}
	type event struct {
		Kind    string
		Actor   string
		Summary string
		Systems []string
	}
	var pageA struct{ Events []event }
	a.MustAPI("GET", "/api/v1/timeline?system=storage&kind=run.requested,run.finished", nil, &pageA)
	if len(pageA.Events) != 2 || pageA.Events[1].Actor != "peer:shop" || !strings.Contains(pageA.Events[1].Summary, ra.RequestedBy+" of peer shop asked to run restart-unit on storage") ||
		!strings.Contains(pageA.Events[1].Summary, "nfs hangs on the shop") {
		t.Errorf("a's timeline: %+v", pageA.Events)
	}

	// On b: the run, its end on the timeline of the shop, and nothing of
	// a's host.
	var runsB struct{ Runs []runView }
	b.MustAPI("GET", "/api/v1/runs?system=shop", nil, &runsB)
	if len(runsB.Runs) != 1 || runsB.Runs[0].State != "succeeded" {
		t.Fatalf("b's runs: %+v", runsB.Runs)
	}
	idB := runsB.Runs[0].ID
	var pageB struct{ Events []event }
	b.MustAPI("GET", "/api/v1/timeline?system=shop&kind=run.requested,run.started,run.finished", nil, &pageB)
	var kinds []string
	var ours []event
	for _, e := range pageB.Events {
		if e.Summary == "restart-unit on storage succeeded" {
			continue // a's own run.finished, shared as any of its events
		}
		kinds = append(kinds, e.Kind+" "+e.Actor)
		ours = append(ours, e)
	}
	if strings.Join(kinds, ", ") != "run.finished peer:hoster, run.started peer:hoster, run.requested user:admin" ||
		!strings.Contains(ours[0].Summary, "succeeded on peer hoster (run "+ra.ID+" there): 1 host succeeded, 0 hosts did not") {
		t.Errorf("b's timeline of the shop: %q %+v", kinds, pageB.Events)
	}
	if show := b.MustCLI("run", "show", idB); !strings.Contains(show, "Peer:      hoster runs it (run "+ra.ID+" there)") || !strings.Contains(show, "Hosts:     1 of the peer's hosts succeeded") {
		t.Errorf("run show on b:\n%s", show)
	}
	if list := b.MustCLI("runs"); !strings.Contains(list, "storage@hoster") || !strings.Contains(list, "succeeded") {
		t.Errorf("runs on b:\n%s", list)
	}
	if onA := a.MustCLI("run", "show", ra.ID, "-o", "json"); !strings.Contains(onA, `"`+host+`"`) || !strings.Contains(onA, agent.id) {
		t.Fatalf("a's own view of the run names no host, so the check below proves nothing:\n%s", onA)
	}
	everything := b.MustCLI("timeline", "--limit", "500", "-o", "json") + b.MustCLI("run", "show", idB, "-o", "json") + b.MustCLI("runs", "-o", "json")
	if strings.Contains(everything, `"`+host+`"`) || strings.Contains(everything, agent.id) || strings.Contains(everything, "secret host") {
		t.Errorf("b learned a's host %s (%s) or its output:\n%s", host, agent.id, everything)
	}

	// Not granted: b knows a's grants, and refuses at once without asking.
	// Revoked: a refuses, and says so (b, told of no grant at all, asks).
	refused := func(action, param string) string {
		t.Helper()
		args := []string{"run", action, "--system", "storage@hoster", "--reason", "try it", "--wait", "60s"}
		if param != "" {
			args = append(args, "--param", param)
		}
		out, err := b.CLI(args...)
		if err == nil {
			t.Fatalf("aramaki %s on b succeeded:\n%s", strings.Join(args, " "), out)
		}
		return out
	}
	if out := refused("reformat", ""); !strings.Contains(out, "peer hoster grants this server no reformat on storage@hoster") {
		t.Errorf("not granted:\n%s", out)
	}
	a.MustCLI("grant", "revoke", grant.ID)
	if out := refused("restart-unit", "unit=nfs"); !strings.Contains(out, "refused: no grant of this server allows action restart-unit on storage") {
		t.Errorf("revoked:\n%s", out)
	}
	a.MustAPI("GET", "/api/v1/runs", nil, &runsA)
	if len(runsA.Runs) != 1 {
		t.Errorf("a ran what it refused: %+v", runsA.Runs)
	}
	a.MustAPI("GET", "/api/v1/timeline?system=storage&kind=run.refused", nil, &pageA)
	if len(pageA.Events) != 1 || pageA.Events[0].Actor != "peer:shop" || !strings.Contains(pageA.Events[0].Summary, "refused, no grant to the peer in force allows it") {
		t.Errorf("a's refusals: %+v", pageA.Events)
	}
	var stateB struct{ Runs []runView }
	b.MustAPI("GET", "/api/v1/runs?state=refused", nil, &stateB)
	if len(stateB.Runs) != 1 {
		t.Errorf("b's refused runs: %+v", stateB.Runs)
	}
	raw, _ := json.Marshal(stateB)
	if code := b.MustAPI("POST", "/api/v1/runs/"+idB+"/cancel", nil, nil); code != http.StatusConflict {
		t.Errorf("cancelling on b a run of a's that ended: %d (%s)", code, raw)
	}
}

// The request is durable: asked while hoster is down hard, it runs once
// when hoster is back, and shop's run ends with hoster's answer; shop,
// killed in turn before the answer, gets it when it is back.
func TestARemoteActionAskedWhileThePeerIsDownRunsOnceWhenItIsBack(t *testing.T) {
	t.Parallel()
	actions := t.TempDir()
	if err := os.WriteFile(filepath.Join(actions, "storage.yaml"), []byte("actions:\n  - {name: restart-unit, argv: [/usr/bin/sleep, \"1\"], timeout: 10s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := MustStartServer(t, MustConfigRepo(t, map[string]string{"storage.yaml": "id: storage\ntitle: Storage\nactions:\n  - {name: restart-unit}\n"}), "--name", "hoster")
	b := MustStartServer(t, MustConfigRepo(t, map[string]string{"shop.yaml": "id: shop\ntitle: Shop\nsubsystems: [storage@hoster]\n"}), "--name", "shop")
	MustEnrollAgentWith(t, a, []string{"--actions", actions}, "storage")
	var inv struct{ Token string }
	mustJSON(t, a.MustCLI("peer", "invite", "--name", "shop", "-o", "json"), &inv)
	b.MustCLI("peer", "accept", inv.Token)
	a.MustCLI("grant", "create", "--peer", "shop", "--system", "storage", "--allow", "action:restart-unit", "--until", "24h")
	Eventually(t, 20*time.Second, "the agent's actions on a", func() bool {
		var page struct{ Events []struct{ Summary string } }
		a.MustAPI("GET", "/api/v1/timeline?system=storage&kind=agent.actions", nil, &page)
		return len(page.Events) > 0
	})

	a.Kill9()
	var run runView
	if code := b.MustAPI("POST", "/api/v1/systems/storage@hoster/actions/restart-unit/runs", map[string]any{"reason": "while hoster is down"}, &run); code != http.StatusCreated || run.State != "requested" {
		t.Fatalf("asked while hoster is down: %+v", run)
	}
	time.Sleep(300 * time.Millisecond)
	a.MustRestart()
	var runsA struct{ Runs []runView }
	Eventually(t, 30*time.Second, "the run on hoster", func() bool {
		a.MustAPI("GET", "/api/v1/runs", nil, &runsA)
		return len(runsA.Runs) == 1 && runsA.Runs[0].State == "running"
	})
	b.Kill9()
	Eventually(t, 30*time.Second, "the run to end on hoster", func() bool {
		a.MustAPI("GET", "/api/v1/runs", nil, &runsA)
		return len(runsA.Runs) == 1 && runsA.Runs[0].State == "succeeded"
	})
	b.MustRestart()
	Eventually(t, 30*time.Second, "hoster's answer on shop", func() bool {
		b.MustAPI("GET", "/api/v1/runs/"+run.ID, nil, &run)
		return run.State == "succeeded"
	})
	time.Sleep(500 * time.Millisecond)
	if a.MustAPI("GET", "/api/v1/runs", nil, &runsA); len(runsA.Runs) != 1 {
		t.Errorf("hoster ran it %d times", len(runsA.Runs))
	}
	var page struct{ Events []struct{ Kind string } }
	b.MustAPI("GET", "/api/v1/timeline?system=shop&kind=run.finished", nil, &page)
	if len(page.Events) != 1 {
		t.Errorf("shop's timeline has the end %d times", len(page.Events))
	}
}
