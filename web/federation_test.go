package web_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/federation"
	"github.com/aramaki/aramaki/netfault"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/servicetest"
	"github.com/aramaki/aramaki/web"
	"github.com/aramaki/aramaki/wire"
)

// MustPeer makes a server join this one as a peer under a name, the way
// the join route does: an invitation, then the join with it.
func (e *env) MustPeer(name, url string) aramaki.Peer {
	e.t.Helper()
	ctx := context.Background()
	inv, err := e.svc.CreateInvitation(ctx, e.admin, name, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	server := "srv_" + strings.Repeat(string("0123456789abcdef"[len(name)%16]), 16)
	_, peer, err := e.svc.PeerJoins(ctx, service.JoinAttempt{Invitation: inv.ID, Secret: inv.Secret, InviterKey: inv.Key,
		Server: server, Name: name, URL: url, PublicKey: pub})
	if err != nil {
		e.t.Fatal(err)
	}
	return peer
}

// Grants are the grants to a peer, as an admin sees them.
func (e *env) Grants(peer string) []aramaki.Grant {
	e.t.Helper()
	gs, err := e.svc.Grants(context.Background(), e.admin, peer)
	if err != nil {
		e.t.Fatal(err)
	}
	return gs
}

func TestFederationPageShowsThisServerItsPeersAndTheirLinks(t *testing.T) {
	e := MustEnv(t)
	ctx := context.Background()
	peer := e.MustPeer("shop", "https://shop.example/"+xss)
	admin := e.MustLogin("admin")

	status, body, _ := e.Get(admin, "/peers")
	if status != http.StatusOK {
		t.Fatalf("the federation page: %d\n%s", status, body)
	}
	id, err := e.svc.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "the federation page", body, `href="/peers">Federation</a>`, id.ID, id.Current().ID, aramaki.KeyFingerprint(id.Current().Public),
		`id="peer-shop"`, peer.Server, aramaki.KeyFingerprint(peer.Keys[0].Public), "invitation:",
		"not connected", "Not connected since this server started.", "It dials this server.",
		"0 messages waiting", "last of its messages stored here: none yet", "Grants to shop", "None: it sees nothing")
	// What the peer told about itself is escaped.
	mustNotContain(t, "the federation page", body, xss)
	mustContain(t, "the federation page", body, html.EscapeString(xss))

	// The link reports in: connected, then down with why.
	e.svc.LinkUp(peer.Server)
	_, body, _ = e.Get(admin, "/peers")
	mustContain(t, "a connected peer", body, `<span class="status status-ok">connected</span>`, "Connected since")
	e.svc.LinkDown(peer.Server, errors.New("read: <b>connection reset</b>"))
	_, body, _ = e.Get(admin, "/peers")
	mustContain(t, "a peer whose link broke", body, "not connected", "Not connected since", "Last error:", "read: &lt;b&gt;connection reset&lt;/b&gt;")
	mustNotContain(t, "a peer whose link broke", body, "<b>connection reset")

	// A note on a granted system waits in the peer's outbox until it
	// acknowledges it.
	if _, err := e.svc.CreateGrant(ctx, e.admin, service.GrantRequest{Peer: "shop", Systems: []string{"webshop"}, Kinds: []aramaki.GrantKind{aramaki.GrantEvents}, Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.PostNote(ctx, e.admin, "webshop", "Deploying"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.FederateEvents(ctx); err != nil {
		t.Fatal(err)
	}
	_, body, _ = e.Get(admin, "/peers")
	mustContain(t, "a peer with a message waiting", body, "1 message waiting")

	// Others see this server's identity, not its peers.
	vera := e.MustLogin("vera")
	status, body, _ = e.Get(vera, "/peers")
	if status != http.StatusOK {
		t.Fatalf("the federation page as vera: %d", status)
	}
	mustContain(t, "the federation page as vera", body, id.ID, "Only the server's admins see its peers", "You administer no system")
	mustNotContain(t, "the federation page as vera", body, peer.Server, `action="/grants"`, `action="/peers/invitations"`, `action="/peers/accept"`)

	// Nobody logged in is sent to log in.
	if status, _, resp := e.Get(e.Client(), "/peers"); status != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("anonymous: %d %s", status, resp.Header.Get("Location"))
	}
}

func TestAGrantMadeAndRevokedThroughTheForms(t *testing.T) {
	e := MustEnv(t)
	e.MustPeer("shop", "")
	admin := e.MustLogin("admin")
	_, body, _ := e.Get(admin, "/peers")
	csrf := CSRF(t, body)
	mustContain(t, "the grant form", body, `action="/grants"`, `<option>shop</option>`, `value="webshop"`)

	// Refused: the service's words, and nothing granted.
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"peer": {"shop"}, "system": {"webshop"}, "duration": {"7 days"}}, "a grant must allow something"},
		{url.Values{"peer": {"shop"}, "system": {"webshop"}, "events": {"1"}, "actions": {"flush-cache"}, "duration": {"7 days"}}, "none of webshop has an action flush-cache"},
		{url.Values{"peer": {"nobody"}, "system": {"webshop"}, "events": {"1"}, "duration": {"7 days"}}, "nobody"},
		{url.Values{"peer": {"shop"}, "system": {"webshop"}, "events": {"1"}, "until": {"2001-01-01T00:00"}}, "a grant must end in the future"},
		{url.Values{"peer": {"shop"}, "system": {"webshop"}, "events": {"1"}, "until": {"soon"}}, "is not a time like"},
	} {
		c.form.Set("csrf", csrf)
		status, body, _ := e.Post(admin, "/grants", c.form)
		if status < 400 || status >= 500 {
			t.Errorf("%v: status %d", c.form, status)
		}
		mustContain(t, "a refused grant", body, "Not granted:", html.EscapeString(c.want), "Nothing was changed.")
	}
	if gs := e.Grants(""); len(gs) != 0 {
		t.Fatalf("refused forms granted %v", gs)
	}

	status, _, resp := e.Post(admin, "/grants", url.Values{"csrf": {csrf}, "peer": {"shop"}, "system": {"webshop"}, "events": {"1"}, "status": {"1"}, "duration": {"7 days"}})
	if status != http.StatusSeeOther {
		t.Fatalf("grant: %d", status)
	}
	gs := e.Grants("shop")
	if len(gs) != 1 || gs[0].Systems[0] != "webshop" || len(gs[0].Kinds) != 2 || gs[0].CreatedBy != "admin" {
		t.Fatalf("grants after the form: %+v", gs)
	}
	if d := time.Until(gs[0].Until); d < 7*24*time.Hour-time.Minute || d > 7*24*time.Hour {
		t.Errorf("granted until %s, want in 7 days", gs[0].Until)
	}
	if want := "/peers#grant-" + gs[0].ID; resp.Header.Get("Location") != want {
		t.Errorf("redirected to %q, want %q", resp.Header.Get("Location"), want)
	}
	_, body, _ = e.Get(admin, "/peers")
	mustContain(t, "the page with the grant", body, `id="grant-`+gs[0].ID+`"`, "allows events, status", "in force", "granted by admin",
		`action="/grants/`+gs[0].ID+`/revoke"`)

	// A grant until a time given in UTC.
	until := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Minute)
	if status, _, _ := e.Post(admin, "/grants", url.Values{"csrf": {csrf}, "peer": {"shop"}, "system": {"blog"}, "status": {"1"}, "until": {until.Format("2006-01-02T15:04")}}); status != http.StatusSeeOther {
		t.Fatalf("grant until a time: %d", status)
	}
	if all := e.Grants("shop"); len(all) != 2 || !slicesHas(all, func(g aramaki.Grant) bool {
		return g.Systems[0] == "blog" && g.Until.Equal(until) && len(g.Kinds) == 1 && g.Kinds[0] == aramaki.GrantStatus
	}) {
		t.Fatalf("grants after one until %s: %+v", until, all)
	}

	status, _, _ = e.Post(admin, "/grants/"+gs[0].ID+"/revoke", url.Values{"csrf": {csrf}})
	if status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", status)
	}
	for _, g := range e.Grants("shop") {
		if g.ID == gs[0].ID && (g.Revoked == nil || g.RevokedBy != "admin") {
			t.Fatalf("not revoked: %+v", g)
		}
	}
	_, body, _ = e.Get(admin, "/peers")
	mustContain(t, "the page with the revoked grant", body, "revoked by admin")
	mustNotContain(t, "the page with the revoked grant", body, `action="/grants/`+gs[0].ID+`/revoke"`)

	// Without the session's CSRF token nothing is granted.
	if status, _, _ := e.Post(admin, "/grants", url.Values{"peer": {"shop"}, "system": {"webshop"}, "events": {"1"}, "duration": {"7 days"}}); status != http.StatusForbidden {
		t.Fatalf("grant without csrf: %d", status)
	}
	if n := len(e.Grants("shop")); n != 2 {
		t.Fatalf("%d grants after a POST without csrf, want 2", n)
	}
}

func slicesHas(gs []aramaki.Grant, f func(aramaki.Grant) bool) bool {
	for _, g := range gs {
		if f(g) {
			return true
		}
	}
	return false
}

func TestWhoMayNotIsToldSoAndNothingChanges(t *testing.T) {
	e := MustEnv(t)
	e.MustPeer("shop", "")
	if _, err := e.svc.CreateGrant(context.Background(), e.admin, service.GrantRequest{Peer: "shop", Systems: []string{"webshop"}, Kinds: []aramaki.GrantKind{aramaki.GrantStatus}, Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	granted := e.Grants("shop")[0]
	vera := e.MustLogin("vera") // a viewer on webshop
	_, body, _ := e.Get(vera, "/peers")
	csrf := CSRF(t, body)
	for _, c := range []struct {
		path         string
		form         url.Values
		refused, why string
	}{
		{"/grants", url.Values{"peer": {"shop"}, "system": {"webshop"}, "events": {"1"}, "duration": {"7 days"}}, "Not granted:", "this needs the admin role on system webshop"},
		{"/grants", url.Values{"peer": {"shop"}, "system": {"infrastructure"}, "events": {"1"}, "duration": {"7 days"}}, "Not granted:", "no system infrastructure"},
		{"/grants/" + granted.ID + "/revoke", url.Values{}, "Not revoked:", "grant " + granted.ID + " not found"},
		{"/peers/invitations", url.Values{"name": {"evil"}, "ttl": {"24 hours"}}, "No invitation made:", "this needs the admin role on the whole server"},
		{"/peers/accept", url.Values{"token": {"arpeer1.x"}}, "Not accepted:", "this needs the admin role on the whole server"},
		{"/peers/shop/remove", url.Values{"confirm": {"1"}}, "Peer not removed:", "this needs the admin role on the whole server"},
	} {
		c.form.Set("csrf", csrf)
		status, body, _ := e.Post(vera, c.path, c.form)
		if status != http.StatusForbidden && status != http.StatusNotFound {
			t.Errorf("%s as vera: status %d", c.path, status)
		}
		mustContain(t, c.path+" as vera", body, "<strong>"+c.refused+"</strong> "+html.EscapeString(c.why), "Nothing was changed.")
	}
	gs := e.Grants("")
	if len(gs) != 1 || gs[0].Revoked != nil {
		t.Fatalf("grants after vera's attempts: %+v", gs)
	}
	peers, err := e.svc.Peers(context.Background(), e.admin)
	if err != nil || len(peers) != 1 || peers[0].Removed != nil {
		t.Fatalf("peers after vera's attempts: %+v %v", peers, err)
	}
}

func TestRemovingAPeerNeedsTheBoxTicked(t *testing.T) {
	e := MustEnv(t)
	e.MustPeer("shop", "")
	admin := e.MustLogin("admin")
	_, body, _ := e.Get(admin, "/peers")
	csrf := CSRF(t, body)
	mustContain(t, "the peer card", body, `action="/peers/shop/remove"`, `name="confirm" value="1" required`)
	status, body, _ := e.Post(admin, "/peers/shop/remove", url.Values{"csrf": {csrf}})
	if status != http.StatusBadRequest {
		t.Fatalf("remove without the box: %d", status)
	}
	mustContain(t, "remove without the box", body, "Tick the box to confirm that the peering with shop ends.")
	if peers, _ := e.svc.Peers(context.Background(), e.admin); len(peers) != 1 || peers[0].Removed != nil {
		t.Fatalf("removed without the box: %+v", peers)
	}
	if status, _, _ := e.Post(admin, "/peers/shop/remove", url.Values{"csrf": {csrf}, "confirm": {"1"}}); status != http.StatusSeeOther {
		t.Fatalf("remove: %d", status)
	}
	if peers, _ := e.svc.Peers(context.Background(), e.admin); len(peers) != 1 || peers[0].Removed == nil {
		t.Fatalf("not removed: %+v", peers)
	}
	_, body, _ = e.Get(admin, "/peers")
	mustContain(t, "the page after removing", body, "No peers yet", "Removed peers (1)")
	mustNotContain(t, "the page after removing", body, `action="/peers/shop/remove"`)
}

var tokenBox = regexp.MustCompile(`(?s)<textarea id="invitation-token"[^>]*>([^<]*)</textarea>`)

func TestAnInvitationTokenIsShownOnce(t *testing.T) {
	e := MustEnvOptions(t, fixtureFiles, web.Options{PublicURL: "http://hoster.example:8080", ServerName: "hoster"})
	admin := e.MustLogin("admin")
	_, body, _ := e.Get(admin, "/peers")
	csrf := CSRF(t, body)
	mustContain(t, "the page", body, "hoster", "http://hoster.example:8080")

	status, body, _ := e.Post(admin, "/peers/invitations", url.Values{"csrf": {csrf}, "name": {"shop"}, "ttl": {"1 hour"}})
	if status != http.StatusCreated {
		t.Fatalf("invite: %d\n%s", status, body)
	}
	m := tokenBox.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no token box:\n%s", body)
	}
	tok, err := wire.ParsePeerInvitation(html.UnescapeString(strings.TrimSpace(m[1])))
	if err != nil {
		t.Fatalf("the token shown does not parse: %v", err)
	}
	id, _ := e.svc.Identity(context.Background())
	if tok.Name != "shop" || tok.URL != "http://hoster.example:8080" || tok.Server != id.ID || tok.Key != aramaki.KeyFingerprint(id.Current().Public) ||
		time.Until(tok.Expires) > time.Hour || time.Until(tok.Expires) < 59*time.Minute {
		t.Fatalf("token: %+v", tok)
	}
	mustContain(t, "the invitation", body, "This token is a secret, shown only now.", `data-copy="invitation-token"`, tok.Key)
	// Shown once: not on the page again.
	_, body, _ = e.Get(admin, "/peers")
	mustNotContain(t, "the page afterwards", body, tok.Secret, "invitation-token")

	// A bad name: the service's words.
	status, body, _ = e.Post(admin, "/peers/invitations", url.Values{"csrf": {csrf}, "name": {"Tokyo DC"}, "ttl": {"1 hour"}})
	if status != http.StatusBadRequest {
		t.Fatalf("bad name: %d", status)
	}
	mustContain(t, "bad name", body, "No invitation made:", "invalid peer name")

	// A server that does not know its URL says so and invites nobody.
	e2 := MustEnv(t)
	admin2 := e2.MustLogin("admin")
	_, body, _ = e2.Get(admin2, "/peers")
	status, body, _ = e2.Post(admin2, "/peers/invitations", url.Values{"csrf": {CSRF(t, body)}, "name": {"shop"}, "ttl": {"1 hour"}})
	if status != http.StatusServiceUnavailable {
		t.Fatalf("invite without a URL: %d", status)
	}
	mustContain(t, "invite without a URL", body, "does not know its public URL")
	tl, err := e2.svc.Timeline(context.Background(), e2.admin, service.TimelineRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range tl.Events {
		if ev.Kind == aramaki.KindPeerInvited {
			t.Fatalf("an invitation was made without a URL: %s", ev.Summary)
		}
	}
}

// hoster is another real server, over plain HTTP behind a proxy that can
// cut the network: its API takes joins and its links accept sessions.
type hoster struct {
	srv   *httptest.Server
	net   *netfault.Proxy
	url   string
	svc   *service.Service
	token string // its first admin's API token
}

func MustHoster(t *testing.T) *hoster {
	t.Helper()
	se := servicetest.MustService(t, map[string]string{"systems/storage.yaml": "id: storage\ntitle: Storage\n"})
	h := &hoster{svc: se.Service, token: se.Admin.Token}
	var handler http.Handler
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(h.srv.Close)
	h.net = netfault.MustStart(t, h.srv.Listener.Addr().String())
	h.url = "http://" + h.net.Addr()
	links := &federation.Links{Svc: h.svc, Log: se.Log}
	go links.Run(t.Context())
	mux := http.NewServeMux()
	mux.Handle(federation.LinkPath, links.Handler())
	mux.Handle("/", api.New(h.svc, se.Log, api.Options{PublicURL: h.url, ServerName: "hoster"}))
	handler = mux
	return h
}

// MustInvite invites a server through the hoster's API.
func (h *hoster) MustInvite(t *testing.T, name string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/peers/invitations", bytes.NewReader([]byte(`{"name":"`+name+`"}`)))
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("invite: %d %v", resp.StatusCode, err)
	}
	return out.Token
}

func TestAcceptingAnInvitationOfARealServerAndSeeingTheLink(t *testing.T) {
	a := MustHoster(t)
	e := MustEnv(t)
	e.svc.SetJoiner(federation.Joiner{Timeout: 5 * time.Second})
	admin := e.MustLogin("admin")
	_, body, _ := e.Get(admin, "/peers")
	csrf := CSRF(t, body)

	status, body, _ := e.Post(admin, "/peers/accept", url.Values{"csrf": {csrf}, "token": {"arpeer1.not-a-token"}})
	if status != http.StatusBadRequest {
		t.Fatalf("accept a broken token: %d\n%s", status, body)
	}
	mustContain(t, "a broken token", body, "Not accepted:")

	token := a.MustInvite(t, "shop")
	status, _, resp := e.Post(admin, "/peers/accept", url.Values{"csrf": {csrf}, "token": {" " + token + "\n"}})
	if status != http.StatusSeeOther || resp.Header.Get("Location") != "/peers#peer-hoster" {
		t.Fatalf("accept: %d %s", status, resp.Header.Get("Location"))
	}
	aID, _ := a.svc.Identity(context.Background())
	_, body, _ = e.Get(admin, "/peers")
	mustContain(t, "the page after accepting", body, `id="peer-hoster"`, aID.ID, aramaki.KeyFingerprint(aID.Current().Public), a.url,
		"This server dials it.", "Not connected since this server started.")
	theirs, err := a.svc.Peers(context.Background(), mustPrincipal(t, a.svc, a.token))
	if err != nil || len(theirs) != 1 || theirs[0].Name != "shop" {
		t.Fatalf("the hoster's peers: %+v %v", theirs, err)
	}
	// The same token again: used.
	status, body, _ = e.Post(admin, "/peers/accept", url.Values{"csrf": {csrf}, "token": {token}})
	if status < 400 || status >= 500 {
		t.Fatalf("accept twice: %d", status)
	}
	mustContain(t, "accept twice", body, "Not accepted:", "is a peer of this server already")

	// The link comes up: this server dials the hoster.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	links := &federation.Links{Svc: e.svc, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go links.Run(ctx)
	waitFor(t, e, admin, "the link to come up", `<span class="status status-ok">connected</span>`)
	// The hoster grants this server the use of its storage: the page says
	// so, with the name the hoster's storage has here.
	if _, err := a.svc.CreateGrant(ctx, mustPrincipal(t, a.svc, a.token), service.GrantRequest{Peer: "shop", Systems: []string{"storage"},
		Kinds: []aramaki.GrantKind{aramaki.GrantStatus}, Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	body = waitFor(t, e, admin, "the hoster's grant", "What it grants this server")
	mustContain(t, "the hoster's grant", body, `<a href="/systems/storage@hoster">storage@hoster</a>`, "allows status")
	// The network between them is cut: the link is down, with why.
	a.net.Cut()
	body = waitFor(t, e, admin, "the link to go down", "Not connected since")
	mustContain(t, "the link down", body, `<span class="status status-unknown">not connected</span>`, "Last error:")
	mustNotContain(t, "the link down", body, `<span class="status status-ok">connected</span>`)
	// And healed: it comes up again.
	a.net.Heal()
	waitFor(t, e, admin, "the link to come up again", `<span class="status status-ok">connected</span>`)
}

func waitFor(t *testing.T, e *env, c *http.Client, what, want string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body, _ := e.Get(c, "/peers")
		if strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: the page lacks %q:\n%s", what, want, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustPrincipal(t *testing.T, svc *service.Service, token string) aramaki.Principal {
	t.Helper()
	p, err := svc.AuthenticateToken(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
