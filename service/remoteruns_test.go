package service_test

import (
	"crypto/ed25519"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/wire"
)

// carry takes what from has for to across, as the link does: every kind
// of message, each body through the wire's strict decoder. It returns the
// messages, to deliver again.
func carry(t *testing.T, from, to *fedServer, toAtFrom, fromAtTo string) []service.PeerMessage {
	t.Helper()
	if err := from.svc.FederateEvents(from.ctx); err != nil {
		t.Fatal(err)
	}
	out, _, err := from.svc.PeerOutbox(from.ctx, toAtFrom, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []service.PeerMessage
	for _, m := range out {
		pm := service.PeerMessage{Seq: m.Seq}
		switch wire.PeerKind(m.Kind) {
		case wire.KindEvent:
			e, err := wire.DecodePeerEvent(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			pm.Events = []aramaki.RemoteEvent{{ID: e.ID, Time: e.Time, Kind: aramaki.EventKind(e.Kind), Systems: e.Systems, Summary: e.Summary}}
		case wire.KindStatus:
		case wire.KindAction:
			a, err := wire.DecodePeerAction(m.Body)
			if err != nil {
				t.Fatalf("%s: %v", m.Body, err)
			}
			pm.Actions = []service.PeerAction{{Run: a.Run, System: a.System, Action: a.Action, Params: a.Params, Reason: a.Reason, Requester: a.Requester, Requested: a.Requested}}
		case wire.KindActionResult:
			r, err := wire.DecodePeerActionResult(m.Body)
			if err != nil {
				t.Fatalf("%s: %v", m.Body, err)
			}
			pm.ActionResults = []service.PeerActionResult{{Run: r.Run, PeerRun: r.PeerRun, State: aramaki.RunState(r.State), HostsOK: r.HostsOK,
				HostsFailed: r.HostsFailed, Started: r.Started, Ended: r.Ended, Message: r.Message}}
		default:
			t.Fatalf("unexpected %s", m.Kind)
		}
		msgs = append(msgs, pm)
	}
	deliverAgain(t, to, fromAtTo, msgs)
	if len(out) > 0 {
		if err := from.svc.PeerAcked(from.ctx, toAtFrom, out[len(out)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	return msgs
}

func deliverAgain(t *testing.T, to *fedServer, fromAtTo string, msgs []service.PeerMessage) {
	t.Helper()
	peers, _ := to.svc.Peers(to.ctx, root)
	for _, p := range peers {
		if p.Name == fromAtTo && p.Removed == nil {
			if _, err := to.svc.PeerReceived(to.ctx, p, msgs); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no peer %s", fromAtTo)
}

// remoteActions: a hosts storage, whose host st1 allows restarting a
// unit and wiping a cache (which needs a second person on a); b's shop
// uses a's storage, olga is the shop's operator and vera can only look.
type remoteActions struct {
	a, b       *fedServer
	hub        *hosts
	st1        aramaki.Agent
	olga, vera aramaki.Principal
	grant      aramaki.Grant
}

func MustRemoteActions(t *testing.T) *remoteActions {
	t.Helper()
	a := MustFedServer(t, "a", aramaki.System{ID: "storage", Title: "Storage", Actions: []aramaki.ActionRef{{Name: "restart-unit"}, {Name: "wipe-cache", Approval: true}, {Name: "reformat"}}},
		aramaki.System{ID: "billing", Title: "Billing", Actions: []aramaki.ActionRef{{Name: "restart-unit"}}})
	b := MustFedServer(t, "b", aramaki.System{ID: "shop", Title: "Shop", Subsystems: []string{"storage@a"}})
	h := &hosts{}
	a.svc.SetHub(h)
	tok, err := a.svc.CreateEnrollmentToken(a.ctx, root, []string{"storage"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	st1, err := a.svc.Enroll(a.ctx, tok.ID, tok.Secret, pub, "st1", "test")
	if err != nil {
		t.Fatal(err)
	}
	unit := aramaki.Param{Name: "unit", Type: aramaki.ParamString, Pattern: `[a-z]{1,20}`}
	if err := a.svc.SetAgentActions(a.ctx, st1, []aramaki.ActionSpec{
		{Name: "restart-unit", Argv: []string{"/usr/bin/systemctl", "restart", "{unit}"}, Params: []aramaki.Param{unit}},
		{Name: "wipe-cache", Argv: []string{"/usr/bin/true"}}, {Name: "reformat", Argv: []string{"/usr/bin/true"}},
	}); err != nil {
		t.Fatal(err)
	}
	h.connected = append(h.connected, st1.ID)
	b.svc.SetJoiner(&directJoin{inviter: a})
	inv, _ := a.svc.CreateInvitation(a.ctx, root, "b", 0)
	if _, err := b.svc.AcceptInvitation(b.ctx, root, inv.ID+" "+inv.Secret, ""); err != nil {
		t.Fatal(err)
	}
	g, err := a.svc.CreateGrant(a.ctx, root, service.GrantRequest{Peer: "b", Systems: []string{"storage"}, Actions: []string{"restart-unit", "wipe-cache"},
		Until: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	e := &remoteActions{a: a, b: b, hub: h, st1: st1, grant: g}
	for user, role := range map[string]aramaki.Role{"olga": aramaki.RoleOperator, "vera": aramaki.RoleViewer} {
		if _, err := b.svc.CreateUser(b.ctx, root, user, "a long enough password"); err != nil {
			t.Fatal(err)
		}
		rb, err := b.svc.GrantRole(b.ctx, root, user, "shop", role)
		if err != nil {
			t.Fatal(err)
		}
		p := aramaki.Principal{User: user, Bindings: []aramaki.RoleBinding{rb}}
		if user == "olga" {
			e.olga = p
		} else {
			e.vera = p
		}
	}
	return e
}

func (e *remoteActions) MustRun(t *testing.T, system, action string, params map[string]string) aramaki.Run {
	t.Helper()
	r, err := e.b.svc.RequestRun(e.b.ctx, e.olga, service.RunRequest{System: system, Action: action, Reason: "nfs hangs on the shop", Params: params})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustRunOn(t *testing.T, s *fedServer, id string) aramaki.Run {
	t.Helper()
	v, err := s.svc.Run(s.ctx, root, id)
	if err != nil {
		t.Fatal(err)
	}
	return v.Run
}

func timelineOf(t *testing.T, s *fedServer, system string, kinds ...aramaki.EventKind) []aramaki.Event {
	t.Helper()
	page, err := s.svc.Timeline(s.ctx, root, service.TimelineRequest{System: system, Kinds: kinds, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return page.Events
}

func TestAPeersOperatorRunsAnActionItsGrantAllowsAuditedOnBothServers(t *testing.T) {
	e := MustRemoteActions(t)
	a, b := e.a, e.b

	if _, err := b.svc.RequestRun(b.ctx, e.vera, service.RunRequest{System: "storage@a", Action: "restart-unit", Reason: "just looking"}); aramaki.ErrorCode(err) != aramaki.EFORBIDDEN {
		t.Errorf("a viewer of the shop ran a's action: %v", err)
	}
	for _, bad := range []service.RunRequest{
		{System: "storage@a", Action: "restart-unit", Reason: " "},
		{System: "storage@a", Action: "restart-unit", Reason: "x", BreakGlass: true},
		{System: "storage@a", Action: "restart-unit", Reason: "x", Agents: []string{"st1"}},
		{System: "storage@a", Action: "restart-unit", Reason: "x", Params: map[string]string{"Bad Name": "x"}},
		{System: "storage@nobody", Action: "restart-unit", Reason: "x"},
	} {
		if _, err := b.svc.RequestRun(b.ctx, e.olga, bad); aramaki.ErrorCode(err) != aramaki.EINVALID && aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if runs, _ := b.svc.Runs(b.ctx, root, service.RunQuery{}); len(runs) != 0 {
		t.Fatalf("refused requests left runs: %+v", runs)
	}

	run := e.MustRun(t, "storage@a", "restart-unit", map[string]string{"unit": "nfs"})
	if run.State != aramaki.RunRequested || run.Peer != "a" || run.RequestedBy != "olga" || len(run.Targets) != 0 {
		t.Fatalf("on b: %+v", run)
	}
	if _, err := b.svc.CancelRun(b.ctx, e.olga, run.ID); aramaki.ErrorCode(err) != aramaki.ECONFLICT {
		t.Errorf("cancelling on b a run that runs on a: %v", err)
	}

	// a takes it on: an ordinary run of its own, by olga of b.
	asked := carry(t, b, a, "a", "b")
	deliverAgain(t, a, "b", asked) // a replay runs nothing twice
	runsA, err := a.svc.Runs(a.ctx, root, service.RunQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runsA) != 1 {
		t.Fatalf("a has %d runs, want 1: %+v", len(runsA), runsA)
	}
	ra := runsA[0]
	if ra.System != "storage" || ra.Action != "restart-unit" || ra.RequestedBy != "olga@b" || ra.Reason != "nfs hangs on the shop" ||
		ra.Peer != "b" || ra.PeerRun != run.ID || ra.State != aramaki.RunRunning || len(ra.Targets) != 1 || ra.Params["unit"] != "nfs" {
		t.Fatalf("on a: %+v", ra)
	}
	if started, _ := e.hub.take(); len(started) != 1 || started[0].Agent != e.st1.ID || started[0].Run != ra.ID {
		t.Fatalf("st1 was asked: %+v", started)
	}
	requested := timelineOf(t, a, "storage", aramaki.KindRunRequested)
	if len(requested) != 1 || requested[0].Actor != "peer:b" || !strings.Contains(requested[0].Summary, "olga@b of peer b asked to run restart-unit on storage") {
		t.Errorf("a's timeline: %+v", requested)
	}

	carry(t, a, b, "b", "a")
	if got := mustRunOn(t, b, run.ID); got.State != aramaki.RunRunning || got.PeerRun != ra.ID || got.Started == nil {
		t.Errorf("on b once a took it on: %+v", got)
	}

	// It ends on a's host; b learns how, and how many hosts, not which.
	code := 0
	if err := a.svc.RunFinished(a.ctx, e.st1, ra.ID, service.RunEnd{State: aramaki.RunSucceeded, ExitCode: &code, Started: time.Now(), Ended: time.Now()}); err != nil {
		t.Fatal(err)
	}
	results := carry(t, a, b, "b", "a")
	deliverAgain(t, b, "a", results)
	got := mustRunOn(t, b, run.ID)
	if got.State != aramaki.RunSucceeded || got.HostsOK != 1 || got.HostsFailed != 0 || got.Ended == nil {
		t.Errorf("on b once it ended on a: %+v", got)
	}
	finished := timelineOf(t, b, "shop", aramaki.KindRunFinished)
	if len(finished) != 1 || finished[0].Actor != "peer:a" || !strings.Contains(finished[0].Summary, "succeeded on peer a") ||
		!slices.Equal(finished[0].Systems, []string{"storage@a"}) {
		t.Errorf("b's timeline of the shop: %+v", finished)
	}
	all, _ := json.Marshal(timelineOf(t, b, ""))
	if view, _ := json.Marshal(got); strings.Contains(string(view)+string(all), "st1") || strings.Contains(string(view)+string(all), e.st1.ID) {
		t.Errorf("b learned a's host:\n%s\n%s", view, all)
	}
}

func TestAPeerRefusesWhatNoGrantAllowsAndSaysSoWithoutTellingWhatItHas(t *testing.T) {
	e := MustRemoteActions(t)
	a, b := e.a, e.b
	notGranted := e.MustRun(t, "storage@a", "reformat", nil)
	badValues, err := b.svc.RequestRun(b.ctx, e.olga, service.RunRequest{System: "storage@a", Action: "restart-unit", Reason: "x", Params: map[string]string{"unit": "NFS!"}})
	if err != nil {
		t.Fatal(err)
	}
	carry(t, b, a, "a", "b")
	if runs, _ := a.svc.Runs(a.ctx, root, service.RunQuery{}); len(runs) != 0 {
		t.Fatalf("a ran what it should have refused: %+v", runs)
	}
	refused := timelineOf(t, a, "storage", aramaki.KindRunRefused)
	if len(refused) != 2 || refused[0].Actor != "peer:b" {
		t.Fatalf("a's timeline: %+v", refused)
	}
	carry(t, a, b, "b", "a")
	r1, r2 := mustRunOn(t, b, notGranted.ID), mustRunOn(t, b, badValues.ID)
	if r1.State != aramaki.RunRefused || r1.Error != "no grant of this server allows action reformat on storage" || r1.Ended == nil {
		t.Errorf("not granted, on b: %+v", r1)
	}
	// Values that do not fit a host's declaration: b is not told which.
	if r2.State != aramaki.RunRefused || r2.Error != "the parameters do not fit action restart-unit on storage" {
		t.Errorf("bad values, on b: %+v", r2)
	}
	if finished := timelineOf(t, b, "shop", aramaki.KindRunFinished); len(finished) != 2 || !strings.Contains(finished[0].Summary, "peer a refused it") {
		t.Errorf("b's timeline: %+v", finished)
	}

	// Revoked: refused at once, as if never granted.
	if _, err := a.svc.RevokeGrant(a.ctx, root, e.grant.ID); err != nil {
		t.Fatal(err)
	}
	after := e.MustRun(t, "storage@a", "restart-unit", map[string]string{"unit": "nfs"})
	carry(t, b, a, "a", "b")
	carry(t, a, b, "b", "a")
	if r := mustRunOn(t, b, after.ID); r.State != aramaki.RunRefused || r.Error != "no grant of this server allows action restart-unit on storage" {
		t.Errorf("after the revocation, on b: %+v", r)
	}
	if runs, _ := a.svc.Runs(a.ctx, root, service.RunQuery{}); len(runs) != 0 {
		t.Fatalf("a ran after the revocation: %+v", runs)
	}
}

// A system a has but did not grant, and one it does not have: b is told
// the same of both.
func TestWhatAPeerIsToldOfASystemNotGrantedIsTheSameWhetherItExistsOrNot(t *testing.T) {
	e := MustRemoteActions(t)
	a, b := e.a, e.b
	_, err := a.svc.PeerReceived(a.ctx, mustPeer(t, a, "b"), []service.PeerMessage{
		{Seq: 1, Actions: []service.PeerAction{{Run: "101", System: "billing", Action: "restart-unit", Reason: "x", Requester: "olga", Requested: time.Now()}}},
		{Seq: 2, Actions: []service.PeerAction{{Run: "102", System: "nosuch", Action: "restart-unit", Reason: "x", Requester: "olga", Requested: time.Now()}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := carry(t, a, b, "b", "a")
	var told []string
	for _, m := range msgs {
		for _, r := range m.ActionResults {
			told = append(told, strings.Replace(strings.Replace(r.Message, "billing", "S", 1), "nosuch", "S", 1))
		}
	}
	if len(told) != 2 || told[0] != told[1] {
		t.Errorf("told %q", told)
	}
}

func TestAnActionThatNeedsApprovalOnThePeerWaitsForAPersonThere(t *testing.T) {
	e := MustRemoteActions(t)
	a, b := e.a, e.b
	run := e.MustRun(t, "storage@a", "wipe-cache", nil)
	carry(t, b, a, "a", "b")
	runsA, _ := a.svc.Runs(a.ctx, root, service.RunQuery{})
	if len(runsA) != 1 || runsA[0].State != aramaki.RunAwaitingApproval {
		t.Fatalf("on a: %+v", runsA)
	}
	carry(t, a, b, "b", "a")
	if r := mustRunOn(t, b, run.ID); r.State != aramaki.RunAwaitingApproval || r.PeerRun != runsA[0].ID {
		t.Errorf("on b: %+v", r)
	}
	if _, err := b.svc.ApproveRun(b.ctx, root, run.ID); aramaki.ErrorCode(err) != aramaki.ECONFLICT {
		t.Errorf("approved on b: %v", err)
	}
	if _, err := a.svc.ApproveRun(a.ctx, root, runsA[0].ID); err != nil {
		t.Fatal(err)
	}
	carry(t, a, b, "b", "a")
	if r := mustRunOn(t, b, run.ID); r.State != aramaki.RunRunning {
		t.Errorf("on b once approved on a: %+v", r)
	}
	if _, err := a.svc.CancelRun(a.ctx, root, runsA[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := a.svc.RunFinished(a.ctx, e.st1, runsA[0].ID, service.RunEnd{State: aramaki.RunCancelled, Started: time.Now(), Ended: time.Now()}); err != nil {
		t.Fatal(err)
	}
	carry(t, a, b, "b", "a")
	if r := mustRunOn(t, b, run.ID); r.State != aramaki.RunCancelled || r.HostsFailed != 1 {
		t.Errorf("on b once cancelled on a: %+v", r)
	}
}

func mustPeer(t *testing.T, s *fedServer, name string) aramaki.Peer {
	t.Helper()
	peers, err := s.svc.Peers(s.ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.Name == name && p.Removed == nil {
			return p
		}
	}
	t.Fatalf("no peer %s", name)
	return aramaki.Peer{}
}

// A run asked of a peer that is removed before it answers would wait
// forever: it fails, saying why.
func TestARunAskedOfAPeerThatIsRemovedFailsSayingWhy(t *testing.T) {
	e := MustRemoteActions(t)
	run := e.MustRun(t, "storage@a", "restart-unit", map[string]string{"unit": "nfs"})
	if err := e.b.svc.ExpireRuns(e.b.ctx); err != nil {
		t.Fatal(err)
	}
	if r := mustRunOn(t, e.b, run.ID); r.State != aramaki.RunRequested {
		t.Fatalf("ended while a is a peer: %+v", r)
	}
	if err := e.b.svc.RemovePeer(e.b.ctx, root, "a"); err != nil {
		t.Fatal(err)
	}
	if err := e.b.svc.ExpireRuns(e.b.ctx); err != nil {
		t.Fatal(err)
	}
	if r := mustRunOn(t, e.b, run.ID); r.State != aramaki.RunFailed || !strings.Contains(r.Error, "a is no longer a peer of this server") {
		t.Errorf("after a was removed: %+v", r)
	}
	if finished := timelineOf(t, e.b, "shop", aramaki.KindRunFinished); len(finished) != 1 {
		t.Errorf("b's timeline: %+v", finished)
	}
}
