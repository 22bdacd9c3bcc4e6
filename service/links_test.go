package service_test

import (
	"errors"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// What the links report is kept per peer: up, then down with why, then up
// again without the old error; only global admins see it, with the
// messages waiting for the peer.
func TestPeerStatusesCarryWhatTheLinksReported(t *testing.T) {
	a := MustFedServer(t, "a", aramaki.System{ID: "storage", Title: "Storage"})
	b := MustFedServer(t, "b")
	b.svc.SetJoiner(&directJoin{inviter: a})
	inv, _ := a.svc.CreateInvitation(a.ctx, root, "b", 0)
	if _, err := b.svc.AcceptInvitation(b.ctx, root, inv.ID+" "+inv.Secret, ""); err != nil {
		t.Fatal(err)
	}
	peerOf := func() service.PeerStatus {
		t.Helper()
		ps, err := a.svc.PeerStatuses(a.ctx, root)
		if err != nil || len(ps) != 1 || ps[0].Name != "b" {
			t.Fatalf("peer statuses: %+v %v", ps, err)
		}
		return ps[0]
	}
	if st := peerOf(); st.Link.Connected || !st.Link.Since.IsZero() || st.Link.Error != "" || st.Waiting != 0 {
		t.Fatalf("before any link: %+v", st)
	}
	server := peerOf().Server
	a.svc.LinkUp(server)
	if st := peerOf(); !st.Link.Connected || time.Since(st.Link.Since) > time.Minute {
		t.Fatalf("after up: %+v", st.Link)
	}
	a.svc.LinkDown(server, errors.New("read: connection reset"))
	if st := peerOf(); st.Link.Connected || st.Link.Error != "read: connection reset" || st.Link.Since.IsZero() {
		t.Fatalf("after down: %+v", st.Link)
	}
	a.svc.LinkUp(server)
	if st := peerOf(); !st.Link.Connected || st.Link.Error != "" {
		t.Fatalf("after up again: %+v", st.Link)
	}

	// Two events of the granted system wait for the peer until it
	// acknowledges them.
	if _, err := a.svc.CreateGrant(a.ctx, root, service.GrantRequest{Peer: "b", Systems: []string{"storage"}, Kinds: []aramaki.GrantKind{aramaki.GrantEvents}, Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"one", "two"} {
		if _, err := a.svc.PostNote(a.ctx, root, "storage", text); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.svc.FederateEvents(a.ctx); err != nil {
		t.Fatal(err)
	}
	if st := peerOf(); st.Waiting != 2 {
		t.Fatalf("waiting: %d, want 2", st.Waiting)
	}
	if err := a.svc.PeerAcked(a.ctx, "b", 1); err != nil {
		t.Fatal(err)
	}
	if st := peerOf(); st.Waiting != 1 {
		t.Fatalf("waiting after an ack: %d, want 1", st.Waiting)
	}

	sam := aramaki.Principal{User: "sam", Bindings: []aramaki.RoleBinding{{User: "sam", System: "storage", Role: aramaki.RoleAdmin}}}
	if _, err := a.svc.PeerStatuses(a.ctx, sam); aramaki.ErrorCode(err) != aramaki.EFORBIDDEN {
		t.Fatalf("a system admin listing peers: %v", err)
	}
	if !a.svc.MayGrant(sam, "storage") || !a.svc.MayGrant(root, "storage") {
		t.Error("storage's admin or a global admin may not grant it")
	}
	olga := aramaki.Principal{User: "olga", Bindings: []aramaki.RoleBinding{{User: "olga", System: "storage", Role: aramaki.RoleOperator}}}
	if a.svc.MayGrant(olga, "storage") || a.svc.MayGrant(sam, "nothing-here") {
		t.Error("an operator, or a system that does not exist, may be granted")
	}
}
