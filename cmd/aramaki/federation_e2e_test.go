package main_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki/pki"
	"github.com/aramaki/aramaki/wire"
)

// identityView is a server's identity as "aramaki federation identity -o
// json" shows it.
type identityView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Keys []struct {
		ID          string `json:"id"`
		Fingerprint string `json:"fingerprint"`
	} `json:"keys"`
}

// peerView is a peer as "aramaki peer list -o json" shows it.
type peerView struct {
	Name     string     `json:"name"`
	Server   string     `json:"server"`
	URL      string     `json:"url"`
	CASHA256 string     `json:"ca_sha256"`
	Removed  *time.Time `json:"removed"`
	Keys     []struct {
		ID string `json:"id"`
	} `json:"keys"`
}

func (s *server) MustIdentity() identityView {
	s.t.Helper()
	var id identityView
	mustJSON(s.t, s.MustCLI("federation", "identity", "-o", "json"), &id)
	return id
}

// MustActivePeers lists the server's peers that are not removed.
func (s *server) MustActivePeers() []peerView {
	s.t.Helper()
	var list struct{ Peers []peerView }
	mustJSON(s.t, s.MustCLI("peer", "list", "-o", "json"), &list)
	var active []peerView
	for _, p := range list.Peers {
		if p.Removed == nil {
			active = append(active, p)
		}
	}
	return active
}

// CLI runs a client command as the admin and returns its output, failing
// or not.
func (s *server) CLI(args ...string) (string, error) {
	return cliWith(s.url, filepath.Join(s.data, "admin.token"), filepath.Join(s.data, "tls", pki.CACertFile), args...)
}

func TestTwoServersPeerWithAnInvitationAndGrantTheUseOfASystem(t *testing.T) {
	a := MustStartServer(t, MustConfigRepo(t, map[string]string{
		"storage.yaml": "id: storage\ntitle: Storage\nactions:\n  - {name: restart-unit, description: Restart a storage unit}\n",
	}), "--name", "hoster")
	b := MustStartServer(t, MustConfigRepo(t, map[string]string{"shop.yaml": "id: shop\ntitle: Shop\n"}), "--name", "shop")
	aID, bID := a.MustIdentity(), b.MustIdentity()
	if aID.Name != "hoster" || bID.Name != "shop" || aID.ID == bID.ID {
		t.Fatalf("identities: %+v and %+v", aID, bID)
	}

	// A token whose key was altered on the way is refused: a sees that it
	// pins none of its keys, and takes nothing in.
	var inv struct {
		Token string `json:"token"`
		Key   string `json:"key"`
	}
	mustJSON(t, a.MustCLI("peer", "invite", "--name", "shop", "-o", "json"), &inv)
	if inv.Key != aID.Keys[0].Fingerprint {
		t.Errorf("the invitation pins key %s, not a's %s", inv.Key, aID.Keys[0].Fingerprint)
	}
	altered, err := wire.ParsePeerInvitation(inv.Token)
	if err != nil {
		t.Fatal(err)
	}
	altered.Key = bID.Keys[0].Fingerprint
	out, err := b.CLI("peer", "accept", altered.String())
	if err == nil || !strings.Contains(out, "does not match") {
		t.Fatalf("b accepted a token with another key: %v\n%s", err, out)
	}
	if peers := b.MustActivePeers(); len(peers) != 0 {
		t.Fatalf("b took a peer from the altered token: %+v", peers)
	}
	if peers := a.MustActivePeers(); len(peers) != 0 {
		t.Fatalf("a took a peer from the altered token: %+v", peers)
	}

	// The real invitation, handed over out of band.
	out = a.MustCLI("peer", "invite", "--name", "shop", "--ttl", "1h")
	token := ""
	for _, field := range strings.Fields(out) {
		if strings.HasPrefix(field, wire.PeerInvitationPrefix) {
			token = field
		}
	}
	if token == "" || !strings.Contains(out, "aramaki peer accept TOKEN") || !strings.Contains(out, aID.Keys[0].Fingerprint) {
		t.Fatalf("peer invite printed:\n%s", out)
	}
	out = b.MustCLI("peer", "accept", token)
	if !strings.Contains(out, "now a peer of hoster: server "+aID.ID+", key "+aID.Keys[0].ID) {
		t.Errorf("peer accept printed:\n%s", out)
	}

	// Both know each other by their ids and keys, and where to reach them.
	if peers := b.MustActivePeers(); len(peers) != 1 || peers[0].Name != "hoster" || peers[0].Server != aID.ID || peers[0].URL != a.url ||
		len(peers[0].Keys) != 1 || peers[0].Keys[0].ID != aID.Keys[0].ID || len(peers[0].CASHA256) != 64 {
		t.Errorf("b's peers: %+v", peers)
	}
	if peers := a.MustActivePeers(); len(peers) != 1 || peers[0].Name != "shop" || peers[0].Server != bID.ID || peers[0].URL != b.url ||
		len(peers[0].Keys) != 1 || peers[0].Keys[0].ID != bID.Keys[0].ID || len(peers[0].CASHA256) != 64 {
		t.Errorf("a's peers: %+v", peers)
	}
	if out := a.MustCLI("peer", "list"); !strings.Contains(out, "shop") || !strings.Contains(out, bID.ID) || !strings.Contains(out, "active") {
		t.Errorf("peer list on a:\n%s", out)
	}

	// Accepting it again is refused by b before it asks a: a is its peer
	// already. (That the invitation is good once is tested in the api and
	// federation packages.)
	if out, err := b.CLI("peer", "accept", token, "--name", "hoster-again"); err == nil || !strings.Contains(out, "is a peer of this server already, as hoster") {
		t.Errorf("the token accepted twice: %v\n%s", err, out)
	}

	// a grants b the use of its storage, lists and revokes the grant.
	until := time.Now().Add(30 * 24 * time.Hour).UTC().Format("2006-01-02T15:04Z")
	out = a.MustCLI("grant", "create", "--peer", "shop", "--system", "storage", "--allow", "events,status,action:restart-unit", "--until", until)
	if !strings.Contains(out, "Granted peer shop events,status,action:restart-unit on storage until") {
		t.Fatalf("grant create printed:\n%s", out)
	}
	var grants struct {
		Grants []struct {
			ID      string     `json:"id"`
			Peer    string     `json:"peer"`
			Until   time.Time  `json:"until"`
			Revoked *time.Time `json:"revoked"`
		}
	}
	mustJSON(t, a.MustCLI("grant", "list", "--peer", "shop", "-o", "json"), &grants)
	if len(grants.Grants) != 1 || grants.Grants[0].Peer != "shop" || grants.Grants[0].Until.Format("2006-01-02T15:04Z") != until {
		t.Fatalf("grant list: %+v", grants)
	}
	id := grants.Grants[0].ID
	if out := a.MustCLI("grant", "list"); !strings.Contains(out, "restart-unit") || !strings.Contains(out, "active") {
		t.Errorf("grant list:\n%s", out)
	}
	if out := a.MustCLI("grant", "revoke", id); !strings.Contains(out, "Revoked grant "+id+": peer shop no longer has") {
		t.Errorf("grant revoke printed:\n%s", out)
	}
	if out := a.MustCLI("grant", "list"); !strings.Contains(out, "revoked") {
		t.Errorf("grant list after the revocation:\n%s", out)
	}

	// All of it is on a's timeline, with who did it.
	var page struct {
		Events []struct{ Kind, Actor, Summary string }
	}
	mustJSON(t, a.MustCLI("timeline", "--kind", "peer.invited,peer.joined,peer.removed,grant.created,grant.revoked", "-o", "json"), &page)
	var kinds []string
	for i := len(page.Events) - 1; i >= 0; i-- {
		kinds = append(kinds, page.Events[i].Kind)
	}
	want := "peer.invited peer.invited peer.joined grant.created grant.revoked" // the altered token's join left nothing
	if strings.Join(kinds, " ") != want {
		t.Errorf("a's timeline: %s, want %s", strings.Join(kinds, " "), want)
	}
	mustJSON(t, b.MustCLI("timeline", "--kind", "peer.joined", "-o", "json"), &page)
	if len(page.Events) != 1 || !strings.Contains(page.Events[0].Summary, "made this server a peer of hoster") {
		t.Errorf("b's timeline: %+v", page.Events)
	}
}

func TestServerRefusesANameNoPeerCouldUse(t *testing.T) {
	out, err := exec.Command(binary, "server", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--config-repo", "x", "--name", "Hoster A").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `aramaki server: --name "Hoster A": 1-63 lower-case letters`) {
		t.Errorf("a server named \"Hoster A\": %v\n%s", err, out)
	}
}
