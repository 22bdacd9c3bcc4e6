package api_test

import (
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/servicetest"
	"github.com/aramaki/aramaki/wire"
)

// ---- Fixtures of federation ----

// MustServerID returns the test server's id among its peers.
func (e *env) MustServerID() string {
	e.t.Helper()
	var id api.IdentityView
	e.MustDo("GET", "/api/v1/federation/identity", "admin", nil, http.StatusOK, &id)
	return id.ID
}

// MustInvitation has the test server invite a server to become peer name,
// and returns the token.
func (e *env) MustInvitation(name string) wire.PeerInvitation {
	e.t.Helper()
	var resp api.InvitationResponse
	e.MustDo("POST", "/api/v1/peers/invitations", "admin", api.InvitationRequest{Name: name, TTL: "1h"}, http.StatusCreated, &resp)
	inv, err := wire.ParsePeerInvitation(resp.Token)
	if err != nil {
		e.t.Fatalf("the invitation's token: %v", err)
	}
	return inv
}

// joiner is a made-up server that joins the test server: an id and a key.
type joiner struct {
	server string
	key    ed25519.PrivateKey
}

func newJoiner(t testing.TB) joiner {
	b := make([]byte, 8)
	rand.Read(b)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return joiner{server: "srv_" + hex.EncodeToString(b), key: key}
}

// request is the join request of j for an invitation of the server
// inviter. An invitation made up without a key pins a key of no server.
func (j joiner) request(inv wire.PeerInvitation, inviter string) wire.JoinRequest {
	key := cmp.Or(inv.Key, strings.Repeat("0", 64))
	return wire.JoinRequest{Invitation: inv.ID, Secret: inv.Secret, InviterKey: key, Server: j.server, Name: "joiner", URL: "https://joiner.example:8443",
		CASHA256: strings.Repeat("cd", 32), PublicKey: j.public(),
		Proof: ed25519.Sign(j.key, wire.JoinProofBytes(inv.ID, inviter, key, j.server))}
}

func (j joiner) public() ed25519.PublicKey { return j.key.Public().(ed25519.PublicKey) }

// MustJoinRequest returns the join request of a new server for a new
// invitation of the test server to become peer name.
func (e *env) MustJoinRequest(name string) wire.JoinRequest {
	e.t.Helper()
	return newJoiner(e.t).request(e.MustInvitation(name), e.MustServerID())
}

// MustPeer makes a new server a peer of the test server, called name, by
// the join route, and returns the answer.
func (e *env) MustPeer(name string) wire.JoinResponse {
	e.t.Helper()
	var resp wire.JoinResponse
	e.MustDo("POST", "/federation/v1/join", "", e.MustJoinRequest(name), http.StatusCreated, &resp)
	return resp
}

// MustPeerOnce is MustPeer for a peer that tests share: it is made once.
func (e *env) MustPeerOnce(name string) {
	e.t.Helper()
	if !e.peers[name] {
		e.MustPeer(name)
		e.peers[name] = true
	}
}

// MustGrant grants the peer events and status of a system for a day.
func (e *env) MustGrant(peer, system string) aramaki.Grant {
	e.t.Helper()
	e.MustPeerOnce(peer)
	var g aramaki.Grant
	e.MustDo("POST", "/api/v1/grants", "admin", api.GrantRequest{Peer: peer, Systems: []string{system}, Allow: "events,status",
		Until: time.Now().Add(24 * time.Hour).Format(time.RFC3339)}, http.StatusCreated, &g)
	return g
}

// inviter is another server, serving the API over plain HTTP on loopback,
// that invites the test server.
type inviter struct {
	env  *servicetest.Env
	srv  *httptest.Server
	name string
}

// MustInviter starts another server that calls itself name.
func MustInviter(t testing.TB, name string) *inviter {
	t.Helper()
	se := servicetest.MustService(t, map[string]string{"systems/storage.yaml": "id: storage\ntitle: Storage\n"})
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.Handler = api.New(se.Service, se.Log, api.Options{PublicURL: "http://" + srv.Listener.Addr().String(), ServerName: name})
	srv.Start()
	t.Cleanup(srv.Close)
	return &inviter{env: se, srv: srv, name: name}
}

// MustInvite has the inviter invite a server to become its peer name.
func (i *inviter) MustInvite(t testing.TB, name string) string {
	t.Helper()
	p, err := i.env.Service.AuthenticateToken(t.Context(), i.env.Admin.Token)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := i.env.Service.CreateInvitation(t.Context(), p, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return wire.PeerInvitation{URL: i.srv.URL, Server: inv.Server, Key: inv.Key, Name: inv.Name, ID: inv.ID, Secret: inv.Secret, Expires: inv.Expires}.String()
}

// MustPeers lists the inviter's peers.
func (i *inviter) MustPeers(t testing.TB) []aramaki.Peer {
	t.Helper()
	p, _ := i.env.Service.AuthenticateToken(t.Context(), i.env.Admin.Token)
	peers, err := i.env.Service.Peers(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	return peers
}

// ---- Behaviour ----

func TestAServerAcceptsAnInvitationAndBothKnowEachOther(t *testing.T) {
	e := MustEnv(t)
	a := MustInviter(t, "hoster")
	token := a.MustInvite(t, "shop")

	var peer aramaki.Peer
	e.MustDo("POST", "/api/v1/peers/accept", "admin", api.AcceptRequest{Token: token}, http.StatusCreated, &peer)
	aID, _ := a.env.Service.Identity(t.Context())
	if peer.Name != "hoster" || peer.Server != aID.ID || peer.URL != a.srv.URL || len(peer.Keys) != 1 || peer.Keys[0].ID != aID.Current().ID {
		t.Fatalf("the test server knows its new peer as %+v; want hoster, %s with key %s", peer, aID.ID, aID.Current().ID)
	}
	var list api.PeersResponse
	e.MustDo("GET", "/api/v1/peers", "admin", nil, http.StatusOK, &list)
	if len(list.Peers) != 1 || list.Peers[0].Server != aID.ID || list.Peers[0].AddedBy != "admin" {
		t.Errorf("peers here: %+v", list.Peers)
	}
	var me api.IdentityView
	e.MustDo("GET", "/api/v1/federation/identity", "viewer", nil, http.StatusOK, &me)
	theirs := a.MustPeers(t)
	if len(theirs) != 1 || theirs[0].Name != "shop" || theirs[0].Server != me.ID || theirs[0].Keys[0].ID != me.Keys[0].ID {
		t.Errorf("the inviter's peers: %+v; want shop, %s with key %s", theirs, me.ID, me.Keys[0].ID)
	}

	// Accepting it again is refused here before anything is sent: the
	// inviter is a peer already.
	status, raw := e.Do("POST", "/api/v1/peers/accept", "admin", api.AcceptRequest{Token: token, Name: "again"})
	if status != http.StatusConflict || !strings.Contains(string(raw), "is a peer of this server already, as hoster") {
		t.Errorf("the inviter's invitation accepted again: %d %s", status, raw)
	}
	// With that peer removed here, the invitation is used: accepting it
	// again is refused there, and the refusal does not read as a bad
	// login here.
	e.MustDo("DELETE", "/api/v1/peers/hoster", "admin", nil, http.StatusNoContent, nil)
	status, raw = e.Do("POST", "/api/v1/peers/accept", "admin", api.AcceptRequest{Token: token, Name: "again"})
	if status != http.StatusForbidden || !strings.Contains(string(raw), "the inviting server refused") || !strings.Contains(string(raw), "used") {
		t.Errorf("the invitation accepted again: %d %s", status, raw)
	}
	joined := e.MustTimeline("admin", url.Values{"kind": {string(aramaki.KindPeerJoined)}}).Events
	if len(joined) != 1 || !strings.Contains(joined[0].Summary, "admin made this server a peer of hoster") {
		t.Errorf("peer.joined on the timeline: %q", summaries(joined))
	}
}

func TestAJoinIsAnsweredWithWhoThisServerIsAndUsesTheInvitationOnce(t *testing.T) {
	e := MustEnv(t)
	j := newJoiner(t)
	inv := e.MustInvitation("customer")
	req := j.request(inv, e.MustServerID())

	var resp wire.JoinResponse
	e.MustDo("POST", "/federation/v1/join", "", req, http.StatusCreated, &resp)
	var me api.IdentityView
	e.MustDo("GET", "/api/v1/federation/identity", "admin", nil, http.StatusOK, &me)
	if err := resp.VerifyInviter(inv); err != nil || resp.Name != "aramaki" || resp.URL != "https://aramaki.test:8443" || resp.CASHA256 != strings.Repeat("ab", 32) {
		t.Errorf("the answer %+v: %v", resp, err)
	}
	if len(resp.PublicKeys) != 1 || wire.KeyFingerprint(resp.PublicKeys[0]) != me.Keys[0].Fingerprint {
		t.Errorf("the answer's keys are not this server's")
	}
	if err := resp.VerifyProof(inv.ID, j.server, j.public()); err != nil {
		t.Errorf("the answer is not signed for this join: %v", err)
	}
	var list api.PeersResponse
	e.MustDo("GET", "/api/v1/peers", "admin", nil, http.StatusOK, &list)
	if len(list.Peers) != 1 || list.Peers[0].Name != "customer" || list.Peers[0].Server != j.server || list.Peers[0].URL != req.URL {
		t.Fatalf("peers: %+v", list.Peers)
	}

	// Used once; and another server with a copy gets nowhere either.
	for _, again := range []wire.JoinRequest{req, newJoiner(t).request(inv, e.MustServerID())} {
		status, raw := e.Do("POST", "/federation/v1/join", "", again)
		if status != http.StatusUnauthorized || !strings.Contains(string(raw), "unknown, used, expired") {
			t.Errorf("the invitation used again: %d %s", status, raw)
		}
	}
}

func TestAfterARotationJoinsAreAnsweredWithTheNewKeyFirst(t *testing.T) {
	e := MustEnv(t)
	inv := e.MustInvitation("customer") // pins the key before the rotation
	var rotated api.IdentityView
	e.MustDo("POST", "/api/v1/federation/identity/rotate", "admin", nil, http.StatusOK, &rotated)
	if len(rotated.Keys) != 2 || rotated.Keys[1].Retired == nil || rotated.Keys[0].Retired != nil {
		t.Fatalf("after the rotation: %+v", rotated.Keys)
	}
	j := newJoiner(t)
	var resp wire.JoinResponse
	e.MustDo("POST", "/federation/v1/join", "", j.request(inv, rotated.ID), http.StatusCreated, &resp)
	if len(resp.PublicKeys) != 2 || wire.KeyFingerprint(resp.PublicKeys[0]) != rotated.Keys[0].Fingerprint {
		t.Errorf("the answer's keys are not the new one first")
	}
	if err := resp.VerifyInviter(inv); err != nil {
		t.Errorf("an invitation made before the rotation no longer verifies: %v", err)
	}
	if err := resp.VerifyProof(inv.ID, j.server, j.public()); err != nil {
		t.Errorf("the answer is not signed with the new key: %v", err)
	}
}

func TestAJoinWithATokenWhoseKeyWasAlteredIsRefusedAndNothingIsUsedOrStored(t *testing.T) {
	e := MustEnv(t)
	j := newJoiner(t)
	inv := e.MustInvitation("customer")
	altered := inv
	altered.Key = wire.KeyFingerprint(j.public())

	status, raw := e.Do("POST", "/federation/v1/join", "", j.request(altered, e.MustServerID()))
	if status != http.StatusForbidden || !strings.Contains(string(raw), "does not match any key of this server") || !strings.Contains(string(raw), "not used") {
		t.Fatalf("a join with another key: %d %s", status, raw)
	}
	var list api.PeersResponse
	e.MustDo("GET", "/api/v1/peers", "admin", nil, http.StatusOK, &list)
	if len(list.Peers) != 0 {
		t.Fatalf("a join refused for its key left peers: %+v", list.Peers)
	}
	if joined := e.MustTimeline("admin", url.Values{"kind": {string(aramaki.KindPeerJoined)}}).Events; len(joined) != 0 {
		t.Errorf("a join refused for its key is on the timeline: %q", summaries(joined))
	}
	// Without the secret, a wrong key tells a stranger nothing more.
	stranger := altered
	stranger.Secret = strings.Repeat("x", 43)
	if status, raw := e.Do("POST", "/federation/v1/join", "", j.request(stranger, e.MustServerID())); status != http.StatusUnauthorized ||
		!strings.Contains(string(raw), "unknown, used, expired or its secret is wrong") {
		t.Errorf("a wrong secret and a wrong key: %d %s", status, raw)
	}
	// The invitation is as good as before.
	var resp wire.JoinResponse
	e.MustDo("POST", "/federation/v1/join", "", j.request(inv, e.MustServerID()), http.StatusCreated, &resp)
}

func TestAGrantIsListedForItsPeerAndRevokedAtOnce(t *testing.T) {
	e := MustEnv(t)
	e.MustPeerOnce("customer")
	e.MustPeerOnce("contractor")
	until := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	var g aramaki.Grant
	e.MustDo("POST", "/api/v1/grants", "admin", api.GrantRequest{Peer: "customer", Systems: []string{"webshop-app", "webshop-db"},
		Allow: "events, status,action:flush-varnish", Until: until.Format(time.RFC3339)}, http.StatusCreated, &g)
	if !g.Allows(time.Now(), "webshop-db", aramaki.GrantStatus) || !g.AllowsAction(time.Now(), "webshop-app", "flush-varnish") || !g.Until.Equal(until) {
		t.Fatalf("grant %+v", g)
	}
	e.MustGrant("contractor", "blog")

	var list api.GrantsResponse
	e.MustDo("GET", "/api/v1/grants?peer=customer", "admin", nil, http.StatusOK, &list)
	if len(list.Grants) != 1 || list.Grants[0].ID != g.ID {
		t.Fatalf("grants to customer: %+v", list.Grants)
	}
	e.MustDo("GET", "/api/v1/grants", "viewer", nil, http.StatusOK, &list)
	if len(list.Grants) != 0 {
		t.Errorf("a viewer sees grants: %+v", list.Grants)
	}
	var revoked aramaki.Grant
	e.MustDo("POST", "/api/v1/grants/"+g.ID+"/revoke", "admin", nil, http.StatusOK, &revoked)
	if revoked.Revoked == nil || revoked.Active(time.Now()) || revoked.RevokedBy != "admin" {
		t.Errorf("revoked: %+v", revoked)
	}
	status, raw := e.Do("POST", "/api/v1/grants/"+g.ID+"/revoke", "admin", nil)
	if status < 400 {
		t.Errorf("revoked twice: %d %s", status, raw)
	}
	evs := e.MustTimeline("admin", url.Values{"kind": {string(aramaki.KindGrantCreated), string(aramaki.KindGrantRevoked)}, "system": {"webshop"}}).Events
	if len(evs) != 2 || !strings.Contains(evs[0].Summary, "revoked grant "+g.ID) {
		t.Errorf("the grant on the webshop's timeline: %q", summaries(evs))
	}
}

func TestRemovingAPeerRevokesItsGrants(t *testing.T) {
	e := MustEnv(t)
	g := e.MustGrant("customer", "webshop")
	e.MustDo("DELETE", "/api/v1/peers/customer", "admin", nil, http.StatusNoContent, nil)
	var list api.GrantsResponse
	e.MustDo("GET", "/api/v1/grants?peer=customer", "admin", nil, http.StatusOK, &list)
	if len(list.Grants) != 1 || list.Grants[0].ID != g.ID || list.Grants[0].Revoked == nil {
		t.Errorf("the removed peer's grants: %+v", list.Grants)
	}
	var peers api.PeersResponse
	e.MustDo("GET", "/api/v1/peers", "admin", nil, http.StatusOK, &peers)
	if len(peers.Peers) != 1 || peers.Peers[0].Removed == nil {
		t.Errorf("peers: %+v", peers.Peers)
	}
}

func TestAServerWithoutAUsableURLCannotInvite(t *testing.T) {
	se := servicetest.MustService(t, fixtureFiles)
	for _, opts := range []api.Options{
		{},
		{PublicURL: "https://behind.a.proxy.example"}, // no CA to pin
	} {
		srv := httptest.NewServer(api.New(se.Service, se.Log, opts))
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/peers/invitations", strings.NewReader(`{"name": "b"}`))
		req.Header.Set("Authorization", "Bearer "+se.Admin.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("inviting with %+v: %s", opts, resp.Status)
		}
	}
	p, _ := se.Service.AuthenticateToken(t.Context(), se.Admin.Token)
	if page, _ := se.Service.Timeline(t.Context(), p, service.TimelineRequest{Kinds: []aramaki.EventKind{aramaki.KindPeerInvited}}); len(page.Events) != 0 {
		t.Errorf("invitations were made that no token can carry: %q", summaries(page.Events))
	}
}
