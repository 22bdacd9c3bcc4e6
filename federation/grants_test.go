package federation_test

import (
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// b learns what a grants it — its own grants, at once, and that a revoked
// one is gone — and its people are told at once when they ask for an
// action no grant allows, without asking a.
func TestAPeerIsToldTheGrantsItHoldsAndTheirEnd(t *testing.T) {
	a := MustLinkServer(t, "a",
		aramaki.System{ID: "storage", Title: "Storage", Actions: []aramaki.ActionRef{{Name: "restart-unit"}}},
		aramaki.System{ID: "billing", Title: "Billing"})
	b := MustLinkServer(t, "b", aramaki.System{ID: "shop", Title: "Shop", Subsystems: []string{"storage@a"}})
	events := MustPeer(t, a, b, a.url, "storage")
	// A grant to another peer is none of b's business.
	c := MustLinkServer(t, "c")
	c.svc.SetJoiner(joinAs{a, "a"})
	inv, err := a.svc.CreateInvitation(a.ctx, root, "c", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.svc.AcceptInvitation(c.ctx, root, inv.ID+" "+inv.Secret, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.CreateGrant(a.ctx, root, service.GrantRequest{Peer: "c", Systems: []string{"billing"}, Kinds: []aramaki.GrantKind{aramaki.GrantEvents},
		Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	received := func() []aramaki.ReceivedGrant {
		gs, err := b.svc.ReceivedGrants(b.ctx, root, "")
		if err != nil {
			t.Fatal(err)
		}
		return gs
	}
	waitFor(t, 10*time.Second, "b told of its grant", func() bool { return len(received()) == 1 })
	if g := received()[0]; g.Peer != "a" || g.ID != events.ID || len(g.Systems) != 1 || g.Systems[0] != "storage@a" || g.Kinds[0] != aramaki.GrantEvents {
		t.Fatalf("b knows %+v", g)
	}

	// No grant allows restart-unit yet: refused here, nothing asked of a.
	_, err = b.svc.RequestRun(b.ctx, root, service.RunRequest{System: "storage@a", Action: "restart-unit", Reason: "nfs hangs"})
	if aramaki.ErrorCode(err) != aramaki.EFORBIDDEN {
		t.Fatalf("asking for an action no grant allows: %v", err)
	}
	if runs, _ := b.svc.Runs(b.ctx, root, service.RunQuery{}); len(runs) != 0 {
		t.Fatalf("a run was made: %+v", runs)
	}

	actions, err := a.svc.CreateGrant(a.ctx, root, service.GrantRequest{Peer: "b", Systems: []string{"storage"}, Actions: []string{"restart-unit"},
		Until: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b told of the action grant", func() bool { return len(received()) == 2 })
	if _, err := a.svc.RevokeGrant(a.ctx, root, events.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b told of the revocation", func() bool { gs := received(); return len(gs) == 1 && gs[0].ID == actions.ID })
}
