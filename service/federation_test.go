package service_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
	"github.com/aramaki/aramaki/wire"
)

// fedServer is one server of a federation test, in process.
type fedServer struct {
	svc *service.Service
	ctx context.Context
}

func MustFedServer(t *testing.T, name string, systems ...aramaki.System) *fedServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := service.New(st, staticConfig{systems}, log, service.Options{ServerName: name, URL: "https://" + name + ".example:8443"})
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SyncConfig(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	return &fedServer{svc: svc, ctx: ctx}
}

// directJoin joins the inviting server in process, as the network adapter
// does over HTTPS: the token here is "invitation-id secret", and the
// inviter calls itself "a" and, as its invitations do, the joiner b.
type directJoin struct {
	inviter *fedServer
	joins   int // joins that reached the inviter
}

func (d *directJoin) Join(ctx context.Context, token string, self service.JoinSelf) (aramaki.Peer, string, error) {
	id, secret, _ := strings.Cut(token, " ")
	inviter, err := d.inviter.svc.Identity(ctx)
	if err != nil {
		return aramaki.Peer{}, "", err
	}
	if self.Check != nil {
		if err := self.Check(inviter.ID, "b"); err != nil {
			return aramaki.Peer{}, "", err
		}
	}
	d.joins++
	me, _, err := d.inviter.svc.PeerJoins(ctx, service.JoinAttempt{Invitation: id, Secret: secret, InviterKey: aramaki.KeyFingerprint(inviter.Current().Public), Server: self.Server, Name: self.Name,
		URL: self.URL, PublicKey: self.Key.Public})
	if err != nil {
		return aramaki.Peer{}, "", err
	}
	var keys []aramaki.PeerKey
	for _, k := range me.Keys {
		keys = append(keys, aramaki.PeerKey{ID: k.ID, Public: k.Public, Added: time.Now()})
	}
	return aramaki.Peer{Server: me.ID, URL: "https://a.example:8443", Keys: keys}, "a", nil
}

func TestTwoServersBecomePeersWithAnInvitationUsedOnce(t *testing.T) {
	a := MustFedServer(t, "a", aramaki.System{ID: "storage", Title: "Storage"})
	b := MustFedServer(t, "b")
	b.svc.SetJoiner(&directJoin{inviter: a})
	operator := aramaki.Principal{User: "olga", Bindings: []aramaki.RoleBinding{{User: "olga", System: "storage", Role: aramaki.RoleOperator}}}

	if _, err := a.svc.CreateInvitation(a.ctx, operator, "b", 0); aramaki.ErrorCode(err) != aramaki.EFORBIDDEN {
		t.Fatalf("an operator inviting: %v", err)
	}
	inv, err := a.svc.CreateInvitation(a.ctx, root, "b", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	aID, _ := a.svc.Identity(a.ctx)
	if inv.Server != aID.ID || inv.Key != aramaki.KeyFingerprint(aID.Current().Public) || inv.Secret == "" {
		t.Fatalf("invitation %+v", inv)
	}
	if _, err := b.svc.AcceptInvitation(b.ctx, root, inv.ID+" wrong-secret", ""); aramaki.ErrorCode(err) != aramaki.EUNAUTHORIZED {
		t.Fatalf("a wrong secret: %v", err)
	}
	peerA, err := b.svc.AcceptInvitation(b.ctx, root, inv.ID+" "+inv.Secret, "")
	if err != nil {
		t.Fatal(err)
	}
	bID, _ := b.svc.Identity(b.ctx)
	if peerA.Name != "a" || peerA.Server != aID.ID {
		t.Errorf("b knows a as %+v", peerA)
	}
	peersOfA, err := a.svc.Peers(a.ctx, root)
	if err != nil || len(peersOfA) != 1 || peersOfA[0].Name != "b" || peersOfA[0].Server != bID.ID || peersOfA[0].URL != "https://b.example:8443" ||
		peersOfA[0].Keys[0].ID != bID.Current().ID {
		t.Fatalf("a's peers: %+v, %v", peersOfA, err)
	}
	// Used once.
	c := MustFedServer(t, "c")
	c.svc.SetJoiner(&directJoin{inviter: a})
	if _, err := c.svc.AcceptInvitation(c.ctx, root, inv.ID+" "+inv.Secret, ""); aramaki.ErrorCode(err) != aramaki.EUNAUTHORIZED {
		t.Fatalf("the invitation used again: %v", err)
	}
	page, _ := a.svc.Timeline(a.ctx, root, service.TimelineRequest{Kinds: []aramaki.EventKind{aramaki.KindPeerInvited, aramaki.KindPeerJoined}})
	if len(page.Events) != 2 || !strings.Contains(page.Events[0].Summary, "became peer b") {
		t.Errorf("on a's timeline: %+v", page.Events)
	}
}

func TestAGrantIsScopedTimedAndRevokedAtOnce(t *testing.T) {
	a := MustFedServer(t, "a", aramaki.System{ID: "storage", Title: "Storage", Actions: []aramaki.ActionRef{{Name: "restart-unit"}}},
		aramaki.System{ID: "billing", Title: "Billing"})
	b := MustFedServer(t, "b")
	b.svc.SetJoiner(&directJoin{inviter: a})
	inv, _ := a.svc.CreateInvitation(a.ctx, root, "b", 0)
	if _, err := b.svc.AcceptInvitation(b.ctx, root, inv.ID+" "+inv.Secret, ""); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(24 * time.Hour)
	storageAdmin := aramaki.Principal{User: "sam", Bindings: []aramaki.RoleBinding{{User: "sam", System: "storage", Role: aramaki.RoleAdmin}}}
	storageOperator := aramaki.Principal{User: "olga", Bindings: []aramaki.RoleBinding{{User: "olga", System: "storage", Role: aramaki.RoleOperator}}}
	for _, c := range []struct {
		name string
		p    aramaki.Principal
		req  service.GrantRequest
		code string
	}{
		{"a system one cannot see", storageAdmin, service.GrantRequest{Peer: "b", Systems: []string{"billing"}, Kinds: []aramaki.GrantKind{aramaki.GrantEvents}, Until: until}, aramaki.ENOTFOUND},
		{"a system one only operates", storageOperator, service.GrantRequest{Peer: "b", Systems: []string{"storage"}, Kinds: []aramaki.GrantKind{aramaki.GrantEvents}, Until: until}, aramaki.EFORBIDDEN},
		{"an unknown peer", root, service.GrantRequest{Peer: "zed", Systems: []string{"storage"}, Kinds: []aramaki.GrantKind{aramaki.GrantEvents}, Until: until}, aramaki.ENOTFOUND},
		{"no end", root, service.GrantRequest{Peer: "b", Systems: []string{"storage"}, Kinds: []aramaki.GrantKind{aramaki.GrantEvents}}, aramaki.EINVALID},
		{"more than a year", root, service.GrantRequest{Peer: "b", Systems: []string{"storage"}, Kinds: []aramaki.GrantKind{aramaki.GrantEvents}, Until: time.Now().Add(400 * 24 * time.Hour)}, aramaki.EINVALID},
		{"an action the system lacks", root, service.GrantRequest{Peer: "b", Systems: []string{"storage"}, Actions: []string{"reboot"}, Until: until}, aramaki.EINVALID},
		{"nothing allowed", root, service.GrantRequest{Peer: "b", Systems: []string{"storage"}, Until: until}, aramaki.EINVALID},
	} {
		if _, err := a.svc.CreateGrant(a.ctx, c.p, c.req); aramaki.ErrorCode(err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	g, err := a.svc.CreateGrant(a.ctx, storageAdmin, service.GrantRequest{Peer: "b", Systems: []string{"storage"},
		Kinds: []aramaki.GrantKind{aramaki.GrantEvents, aramaki.GrantStatus}, Actions: []string{"restart-unit"}, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if !g.Allows(now, "storage", aramaki.GrantEvents) || g.Allows(now, "billing", aramaki.GrantEvents) || !g.AllowsAction(now, "storage", "restart-unit") ||
		g.Allows(until, "storage", aramaki.GrantEvents) {
		t.Errorf("grant %+v allows the wrong things", g)
	}
	if seen, _ := a.svc.Grants(a.ctx, storageAdmin, ""); len(seen) != 1 {
		t.Errorf("the storage admin sees %d grants", len(seen))
	}
	billing := aramaki.Principal{User: "bill", Bindings: []aramaki.RoleBinding{{User: "bill", System: "billing", Role: aramaki.RoleAdmin}}}
	if seen, _ := a.svc.Grants(a.ctx, billing, ""); len(seen) != 0 {
		t.Errorf("another system's admin sees %+v", seen)
	}
	if _, err := a.svc.RevokeGrant(a.ctx, billing, g.ID); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
		t.Errorf("another system's admin revoking: %v", err)
	}
	revoked, err := a.svc.RevokeGrant(a.ctx, storageAdmin, g.ID)
	if err != nil || revoked.Active(time.Now()) {
		t.Fatalf("revoked %+v, %v", revoked, err)
	}
}

func TestAServerKeyRotatesAndTheOldOneIsKept(t *testing.T) {
	a := MustFedServer(t, "a")
	before, _ := a.svc.Identity(a.ctx)
	after, err := a.svc.RotateServerKey(a.ctx, root)
	if err != nil || after.ID != before.ID || len(after.Keys) != 2 || after.Current().ID == before.Current().ID || after.Keys[1].ID != before.Current().ID {
		t.Fatalf("after rotating: %+v, %v", after, err)
	}
	if _, err := a.svc.RotateServerKey(a.ctx, aramaki.Principal{User: "olga"}); aramaki.ErrorCode(err) != aramaki.EFORBIDDEN {
		t.Errorf("an operator rotating: %v", err)
	}
	// Rotated once more, each key is endorsed by the one before it, as
	// the federation protocol checks it: a peer that knows only the first
	// key learns both others.
	again, err := a.svc.RotateServerKey(a.ctx, root)
	if err != nil || len(again.Keys) != 3 || again.Keys[2].Endorsement != nil {
		t.Fatalf("after rotating again: %+v, %v", again, err)
	}
	var chain []wire.PeerKeyLink
	for i := len(again.Keys) - 1; i >= 0; i-- {
		chain = append(chain, wire.PeerKeyLink{PublicKey: again.Keys[i].Public, Endorsement: again.Keys[i].Endorsement})
	}
	first := before.Current()
	learned, err := wire.VerifyKeyChain(again.ID, chain, func(id string) (ed25519.PublicKey, bool) { return first.Public, id == first.ID })
	if err != nil || len(learned) != 2 || !learned[1].Equal(again.Current().Public) {
		t.Fatalf("the chain from the first key: %d keys learned, %v", len(learned), err)
	}
}

// deliver carries a's outbox for b to b, as the link does: it returns
// what b acknowledged.
func deliver(t *testing.T, a, b *fedServer, bAtA, aAtB string) uint64 {
	t.Helper()
	if err := a.svc.FederateEvents(a.ctx); err != nil {
		t.Fatal(err)
	}
	out, _, err := a.svc.PeerOutbox(a.ctx, bAtA, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []service.PeerMessage
	for _, m := range out {
		var r aramaki.RemoteEvent
		if err := json.Unmarshal(m.Body, &r); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, service.PeerMessage{Seq: m.Seq, Events: []aramaki.RemoteEvent{r}})
	}
	peers, _ := b.svc.Peers(b.ctx, root)
	var peerA aramaki.Peer
	for _, p := range peers {
		if p.Name == aAtB {
			peerA = p
		}
	}
	acked, err := b.svc.PeerReceived(b.ctx, peerA, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if acked > 0 {
		if err := a.svc.PeerAcked(a.ctx, bAtA, acked); err != nil {
			t.Fatal(err)
		}
	}
	return acked
}

func TestAPeerReceivesExactlyTheEventsItsGrantsCover(t *testing.T) {
	a := MustFedServer(t, "a", aramaki.System{ID: "storage", Title: "Storage", Subsystems: []string{"disk"}},
		aramaki.System{ID: "disk", Title: "Disks"}, aramaki.System{ID: "billing", Title: "Billing"})
	b := MustFedServer(t, "b")
	b.svc.SetJoiner(&directJoin{inviter: a})
	inv, _ := a.svc.CreateInvitation(a.ctx, root, "b", 0)
	if _, err := b.svc.AcceptInvitation(b.ctx, root, inv.ID+" "+inv.Secret, ""); err != nil {
		t.Fatal(err)
	}
	note := func(system, text string) {
		t.Helper()
		if _, err := a.svc.PostNote(a.ctx, root, system, text); err != nil {
			t.Fatal(err)
		}
	}
	note("storage", "before any grant")
	g, err := a.svc.CreateGrant(a.ctx, root, service.GrantRequest{Peer: "b", Systems: []string{"storage"}, Kinds: []aramaki.GrantKind{aramaki.GrantEvents},
		Until: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	note("storage", "swapping a disk")
	note("disk", "disk 3 replaced")
	note("billing", "invoice run")
	if acked := deliver(t, a, b, "b", "a"); acked != 2 {
		t.Fatalf("acknowledged %d, want 2", acked)
	}
	// Delivered again (a lost ack): stored once.
	deliver(t, a, b, "b", "a")

	page, err := b.svc.Timeline(b.ctx, root, service.TimelineRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Events {
		if strings.HasPrefix(e.Actor, "peer:") {
			got = append(got, strings.Join(e.Systems, ",")+" "+e.Summary)
		}
		if strings.Contains(e.Summary, "billing") || strings.Contains(e.Summary, "invoice") || strings.Contains(e.Summary, "before any grant") ||
			strings.Contains(string(e.Data), "root") {
			t.Errorf("b learned what it was not granted: %+v", e)
		}
	}
	want := []string{"disk@a disk 3 replaced", "storage@a swapping a disk"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("b's timeline of a:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Revoked: what was queued and not yet sent is withheld.
	note("storage", "after the revocation")
	if err := a.svc.FederateEvents(a.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.RevokeGrant(a.ctx, root, g.ID); err != nil {
		t.Fatal(err)
	}
	if out, through, _ := a.svc.PeerOutbox(a.ctx, "b", 0, 100); len(out) != 0 || through != 3 {
		t.Errorf("sent after the grant was revoked: %+v (read through %d)", out, through)
	}
}

// A problem a peer shares of its system opens an alert here, on the
// remote system, routed through the systems that use it; it resolves
// when the peer says the system is fine again.
func TestAPeersProblemReachesThePeopleOfTheSystemsThatUseIt(t *testing.T) {
	a := MustFedServer(t, "a", aramaki.System{ID: "storage", Title: "Storage"})
	b := MustFedServer(t, "b", aramaki.System{ID: "shop", Title: "Shop", Subsystems: []string{"storage@a"},
		Contacts: []aramaki.Contact{{Name: "On-call", Email: "oncall@shop.example"}},
		Routing:  []aramaki.Route{{Contact: "On-call", Severities: []aramaki.Status{aramaki.StatusCritical}}}})
	b.svc.SetJoiner(&directJoin{inviter: a})
	inv, _ := a.svc.CreateInvitation(a.ctx, root, "b", 0)
	peerA, err := b.svc.AcceptInvitation(b.ctx, root, inv.ID+" "+inv.Secret, "")
	if err != nil {
		t.Fatal(err)
	}
	say := func(seq uint64, status aramaki.Status) {
		t.Helper()
		if _, err := b.svc.PeerReceived(b.ctx, peerA, []service.PeerMessage{{Seq: seq, Statuses: []aramaki.RemoteStatus{{System: "storage", Status: status, Since: time.Now()}}}}); err != nil {
			t.Fatal(err)
		}
		if err := b.svc.AlertRound(b.ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	say(1, aramaki.StatusCritical)
	open, err := b.svc.Alerts(b.ctx, root, service.AlertQuery{System: "shop"})
	if err != nil || len(open) != 1 || open[0].System != "storage@a" || open[0].Check != aramaki.RemoteStatusCheck || open[0].Status != aramaki.StatusCritical {
		t.Fatalf("alerts under the shop: %+v, %v", open, err)
	}
	say(2, aramaki.StatusOK)
	if got, _ := b.svc.Alerts(b.ctx, root, service.AlertQuery{System: "shop", States: []aramaki.AlertState{aramaki.AlertResolved}}); len(got) != 1 {
		t.Errorf("resolved alerts: %+v", got)
	}
}

// mailbox is a Sender keeping what it was given.
type mailbox struct{ sent []string }

func (m *mailbox) Send(_ context.Context, to aramaki.Recipient, msg aramaki.Message) error {
	m.sent = append(m.sent, to.Address+": "+msg.Subject)
	return nil
}

// Planned maintenance on a's storage reaches the owners of b's shop,
// which uses it, though b was only granted storage's status.
func TestAnAnnouncementReachesThePeopleOfEverySystemThatUsesIt(t *testing.T) {
	a := MustFedServer(t, "a", aramaki.System{ID: "storage", Title: "Storage", Owners: []aramaki.Contact{{Name: "Hoster", Email: "ops@hoster.example"}}})
	b := MustFedServer(t, "b", aramaki.System{ID: "shop", Title: "Shop", Subsystems: []string{"storage@a"}, Owners: []aramaki.Contact{{Name: "Shop owner", Email: "owner@shop.example"}}})
	b.svc.SetJoiner(&directJoin{inviter: a})
	inv, _ := a.svc.CreateInvitation(a.ctx, root, "b", 0)
	if _, err := b.svc.AcceptInvitation(b.ctx, root, inv.ID+" "+inv.Secret, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.CreateGrant(a.ctx, root, service.GrantRequest{Peer: "b", Systems: []string{"storage"}, Kinds: []aramaki.GrantKind{aramaki.GrantStatus},
		Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Announce(a.ctx, root, "storage", "launch", "x"); aramaki.ErrorCode(err) != aramaki.EINVALID {
		t.Fatalf("an unknown kind: %v", err)
	}
	if _, err := a.svc.Announce(a.ctx, root, "storage", aramaki.AnnounceMaintenance, "Firmware upgrade Tuesday 18:00-20:00 UTC; expect 5 minutes of read-only."); err != nil {
		t.Fatal(err)
	}
	here := &mailbox{}
	if err := a.svc.AlertRound(a.ctx, here); err != nil {
		t.Fatal(err)
	}
	if len(here.sent) != 1 || !strings.HasPrefix(here.sent[0], "ops@hoster.example: Planned maintenance on storage: Firmware upgrade") {
		t.Errorf("mailed on a: %q", here.sent)
	}
	deliver(t, a, b, "b", "a")
	there := &mailbox{}
	if err := b.svc.AlertRound(b.ctx, there); err != nil {
		t.Fatal(err)
	}
	if len(there.sent) != 1 || !strings.HasPrefix(there.sent[0], "owner@shop.example: Planned maintenance on storage: Firmware upgrade") {
		t.Errorf("mailed on b: %q", there.sent)
	}
	page, _ := b.svc.Timeline(b.ctx, root, service.TimelineRequest{System: "storage@a", Kinds: []aramaki.EventKind{aramaki.KindAnnouncement}})
	if len(page.Events) != 1 {
		t.Errorf("on b's timeline: %+v", page.Events)
	}
}

// MustActivePeers lists the peers of s that are not removed, by name.
func (s *fedServer) MustActivePeers(t *testing.T) []string {
	t.Helper()
	peers, err := s.svc.Peers(s.ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range peers {
		if p.Removed == nil {
			names = append(names, p.Name)
		}
	}
	return names
}

// MustInvitationToken has s invite a server to become its peer name, and
// returns the token directJoin takes.
func (s *fedServer) MustInvitationToken(t *testing.T, name string) string {
	t.Helper()
	inv, err := s.svc.CreateInvitation(s.ctx, root, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return inv.ID + " " + inv.Secret
}

func TestAJoinWhoseTokenPinsAnotherKeyIsRefusedBeforeTheInvitationIsUsed(t *testing.T) {
	a := MustFedServer(t, "a")
	b := MustFedServer(t, "b")
	inv, err := a.svc.CreateInvitation(a.ctx, root, "b", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bID, _ := b.svc.Identity(b.ctx)
	attempt := service.JoinAttempt{Invitation: inv.ID, Secret: inv.Secret, InviterKey: aramaki.KeyFingerprint(bID.Current().Public),
		Server: bID.ID, Name: "b", PublicKey: bID.Current().Public}

	_, _, err = a.svc.PeerJoins(a.ctx, attempt)
	if aramaki.ErrorCode(err) != aramaki.EFORBIDDEN || !strings.Contains(aramaki.ErrorMessage(err), "does not match any key of this server") {
		t.Fatalf("a join whose token pins another key: %v", err)
	}
	if peers := a.MustActivePeers(t); len(peers) != 0 {
		t.Fatalf("a took in a server whose token pins another key: %v", peers)
	}
	page, _ := a.svc.Timeline(a.ctx, root, service.TimelineRequest{Kinds: []aramaki.EventKind{aramaki.KindPeerJoined}})
	if len(page.Events) != 0 {
		t.Errorf("a recorded a join it refused: %+v", page.Events)
	}
	// Without the secret, the key is not even looked at.
	stranger := attempt
	stranger.Secret = strings.Repeat("x", 43)
	if _, _, err := a.svc.PeerJoins(a.ctx, stranger); aramaki.ErrorCode(err) != aramaki.EUNAUTHORIZED {
		t.Errorf("a wrong secret and a wrong key: %v", err)
	}
	// The invitation is unused, and good for the key a had when it made
	// it, after a rotation too.
	if _, err := a.svc.RotateServerKey(a.ctx, root); err != nil {
		t.Fatal(err)
	}
	attempt.InviterKey = inv.Key
	if _, peer, err := a.svc.PeerJoins(a.ctx, attempt); err != nil || peer.Name != "b" {
		t.Fatalf("the invitation after a refused join: %+v, %v", peer, err)
	}
}

func TestAcceptingUnderANameTakenHereIsRefusedBeforeAnythingIsUsedThere(t *testing.T) {
	a := MustFedServer(t, "a")
	b := MustFedServer(t, "b")
	c := MustFedServer(t, "c")
	b.svc.SetJoiner(&directJoin{inviter: c})
	if _, err := b.svc.AcceptInvitation(b.ctx, root, c.MustInvitationToken(t, "b"), "storage"); err != nil {
		t.Fatal(err)
	}
	toA := &directJoin{inviter: a}
	b.svc.SetJoiner(toA)
	token := a.MustInvitationToken(t, "b")

	_, err := b.svc.AcceptInvitation(b.ctx, root, token, "storage")
	if aramaki.ErrorCode(err) != aramaki.ECONFLICT || !strings.Contains(aramaki.ErrorMessage(err), "this server has a peer storage already") ||
		!strings.Contains(aramaki.ErrorMessage(err), "Nothing was sent to the inviting server") {
		t.Fatalf("accepting under a name taken here: %v", err)
	}
	if toA.joins != 0 {
		t.Errorf("the join reached a")
	}
	if peers := a.MustActivePeers(t); len(peers) != 0 {
		t.Fatalf("a took b in: %v", peers)
	}
	// The invitation is still good, under another name.
	if _, err := b.svc.AcceptInvitation(b.ctx, root, token, "hoster"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.MustActivePeers(t), ","); got != "hoster,storage" {
		t.Errorf("b's peers: %s", got)
	}
}

func TestAcceptingAServerThatIsAPeerHereAlreadyIsRefusedBeforeAnythingIsUsedThere(t *testing.T) {
	a := MustFedServer(t, "a")
	b := MustFedServer(t, "b")
	toA := &directJoin{inviter: a}
	b.svc.SetJoiner(toA)
	if _, err := b.svc.AcceptInvitation(b.ctx, root, a.MustInvitationToken(t, "b"), ""); err != nil {
		t.Fatal(err)
	}
	// a ends the peering; b does not hear of it, and a invites b again.
	if err := a.svc.RemovePeer(a.ctx, root, "b"); err != nil {
		t.Fatal(err)
	}
	token := a.MustInvitationToken(t, "b")
	toA.joins = 0

	_, err := b.svc.AcceptInvitation(b.ctx, root, token, "hoster")
	if aramaki.ErrorCode(err) != aramaki.ECONFLICT || !strings.Contains(aramaki.ErrorMessage(err), "is a peer of this server already, as a") ||
		!strings.Contains(aramaki.ErrorMessage(err), "aramaki peer remove a") {
		t.Fatalf("accepting a server that is a peer here: %v", err)
	}
	if toA.joins != 0 {
		t.Errorf("the join reached a")
	}
	if peers := a.MustActivePeers(t); len(peers) != 0 {
		t.Fatalf("a took b in: %v", peers)
	}
	// As the refusal says: the stale peer removed here, the same token
	// works.
	if err := b.svc.RemovePeer(b.ctx, root, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.AcceptInvitation(b.ctx, root, token, ""); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a.MustActivePeers(t), ","); got != "b" {
		t.Errorf("a's peers: %s", got)
	}
}

func TestWhenTheNameTheInviterGivesItselfIsTakenTheRefusalSaysWhatToUndoThere(t *testing.T) {
	a := MustFedServer(t, "a")
	b := MustFedServer(t, "b")
	c := MustFedServer(t, "c")
	// c calls itself a too (directJoin's inviters all do).
	b.svc.SetJoiner(&directJoin{inviter: c})
	if _, err := b.svc.AcceptInvitation(b.ctx, root, c.MustInvitationToken(t, "b"), ""); err != nil {
		t.Fatal(err)
	}
	b.svc.SetJoiner(&directJoin{inviter: a})

	// Only a's answer tells its name: a has taken b in by then.
	_, err := b.svc.AcceptInvitation(b.ctx, root, a.MustInvitationToken(t, "b"), "")
	if aramaki.ErrorCode(err) != aramaki.ECONFLICT || !strings.Contains(aramaki.ErrorMessage(err), "cannot call it a: it has a peer a already") ||
		!strings.Contains(aramaki.ErrorMessage(err), "remove this server there with aramaki peer remove b") ||
		!strings.Contains(aramaki.ErrorMessage(err), "with --name") {
		t.Fatalf("accepting a server whose name is taken here: %v", err)
	}
	if got := strings.Join(b.MustActivePeers(t), ","); got != "a" {
		t.Errorf("b's peers: %s", got)
	}
	if got := strings.Join(a.MustActivePeers(t), ","); got != "b" {
		t.Errorf("a's peers, which the refusal tells the operator to undo: %s", got)
	}
}
