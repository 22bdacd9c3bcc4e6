package federation_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/federation"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
	"github.com/aramaki/aramaki/wire"
)

// joinServer is a real server (service over a real store, and the API)
// that serves joins over TLS with its own certificate, or plain HTTP.
type joinServer struct {
	svc   *service.Service
	srv   *httptest.Server
	pin   string       // the hex SHA-256 of the certificate it serves
	joins atomic.Int32 // join requests that reached it
}

// joinAdmin is the global admin who invites and accepts.
var joinAdmin = aramaki.Principal{User: "olga", Bindings: []aramaki.RoleBinding{{User: "olga", System: aramaki.GlobalScope, Role: aramaki.RoleAdmin}}}

// joinConfig is a config source with one system.
type joinConfig struct{}

func (joinConfig) Load(context.Context) (aramaki.ConfigSnapshot, []string, error) {
	return aramaki.ConfigSnapshot{Commit: aramaki.Commit{Hash: "c1", Author: "Olga <olga@example.com>", Message: "Storage", Time: time.Now()},
		Systems: []aramaki.System{{ID: "storage", Title: "Storage"}}}, nil, nil
}

// MustJoinServer starts a server calling itself name, over TLS unless
// plain is set.
func MustJoinServer(t *testing.T, name string, plain bool) *joinServer {
	t.Helper()
	s := &joinServer{}
	var h http.Handler
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == federation.JoinPath {
			s.joins.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	if plain {
		s.srv.Start()
	} else {
		s.srv.StartTLS()
		sum := sha256.Sum256(s.srv.Certificate().Raw)
		s.pin = hex.EncodeToString(sum[:])
	}
	t.Cleanup(s.srv.Close)
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "aramaki.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s.svc = service.New(st, joinConfig{}, log, service.Options{ServerName: name, URL: s.srv.URL, CASHA256: s.pin})
	if err := s.svc.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.SyncConfig(t.Context(), "config"); err != nil {
		t.Fatal(err)
	}
	s.svc.SetJoiner(federation.Joiner{Timeout: 5 * time.Second})
	h = api.New(s.svc, log, api.Options{PublicURL: s.srv.URL, CAFingerprint: s.pin, ServerName: name})
	return s
}

// MustInvite makes an invitation for a server to become peer name, as
// aramaki peer invite does.
func (s *joinServer) MustInvite(t *testing.T, name string) wire.PeerInvitation {
	t.Helper()
	inv, err := s.svc.CreateInvitation(t.Context(), joinAdmin, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return wire.PeerInvitation{URL: s.srv.URL, CASHA256: s.pin, Server: inv.Server, Key: inv.Key, Name: inv.Name, ID: inv.ID, Secret: inv.Secret, Expires: inv.Expires}
}

func (s *joinServer) MustIdentity(t *testing.T) aramaki.ServerIdentity {
	t.Helper()
	id, err := s.svc.Identity(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (s *joinServer) MustPeers(t *testing.T) []aramaki.Peer {
	t.Helper()
	peers, err := s.svc.Peers(t.Context(), joinAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return peers
}

// Accept has this server accept a token, as aramaki peer accept does.
func (s *joinServer) Accept(t *testing.T, token, name string) (aramaki.Peer, error) {
	return s.svc.AcceptInvitation(t.Context(), joinAdmin, token, name)
}

func TestAServerJoinsOverTLSPinnedToTheInvitingServersCA(t *testing.T) {
	a := MustJoinServer(t, "hoster", false)
	b := MustJoinServer(t, "shop", false)
	inv := a.MustInvite(t, "shop")

	peer, err := b.Accept(t, inv.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	aID, bID := a.MustIdentity(t), b.MustIdentity(t)
	if peer.Name != "hoster" || peer.Server != aID.ID || peer.URL != a.srv.URL || peer.CASHA256 != a.pin ||
		len(peer.Keys) != 1 || peer.Keys[0].ID != aID.Current().ID || !peer.Keys[0].Public.Equal(aID.Current().Public) {
		t.Fatalf("b knows a as %+v", peer)
	}
	theirs := a.MustPeers(t)
	if len(theirs) != 1 || theirs[0].Name != "shop" || theirs[0].Server != bID.ID || theirs[0].URL != b.srv.URL || theirs[0].CASHA256 != b.pin ||
		theirs[0].Keys[0].ID != bID.Current().ID {
		t.Fatalf("a knows b as %+v", theirs)
	}

	// b refuses to accept it again before it asks: a is its peer already.
	before := a.joins.Load()
	_, err = b.Accept(t, inv.String(), "again")
	if aramaki.ErrorCode(err) != aramaki.ECONFLICT || !strings.Contains(aramaki.ErrorMessage(err), "is a peer of this server already, as hoster") || a.joins.Load() != before {
		t.Errorf("the invitation accepted again by b: %v", err)
	}
	// And the secret is good once: another server with a copy is refused.
	c := MustJoinServer(t, "shop", false)
	_, err = c.Accept(t, inv.String(), "")
	if aramaki.ErrorCode(err) != aramaki.EFORBIDDEN || !strings.Contains(aramaki.ErrorMessage(err), "the inviting server refused (401): the invitation is unknown, used") {
		t.Errorf("the invitation accepted again: %v", err)
	}
}

func TestAJoinTrustsNothingButWhatTheInvitationPins(t *testing.T) {
	a := MustJoinServer(t, "hoster", false)
	other := MustJoinServer(t, "other", false) // its certificate is httptest's too, but its id and key are its own
	otherID := other.MustIdentity(t)

	wrongCA := a.MustInvite(t, "shop")
	wrongCA.CASHA256 = strings.Repeat("0", 64)
	wrongKey := a.MustInvite(t, "shop2")
	wrongKey.Key = aramaki.KeyFingerprint(otherID.Current().Public)
	wrongServer := a.MustInvite(t, "shop3")
	wrongServer.Server = otherID.ID
	expired := a.MustInvite(t, "shop4")
	expired.Expires = time.Now().Add(-time.Second)
	plainDowngrade := a.MustInvite(t, "shop5")
	plainDowngrade.URL, plainDowngrade.CASHA256 = strings.Replace(plainDowngrade.URL, "https:", "http:", 1), ""

	for _, c := range []struct {
		name    string
		token   string
		code    string
		message string
		reached bool // whether the join request reached a's handler
	}{
		{"another CA", wrongCA.String(), aramaki.EFORBIDDEN, "none of the server's certificates is the CA the invitation pins", false},
		// a refuses before it uses the invitation: b's token pins none of its keys.
		{"another key", wrongKey.String(), aramaki.EFORBIDDEN, "the inviting server refused (403): the key fingerprint in the joining server's token", true},
		// b's proof is for the server the invitation names: a refuses it.
		{"another server", wrongServer.String(), aramaki.EFORBIDDEN, "the proof does not verify", true},
		{"expired", expired.String(), aramaki.EINVALID, "the invitation expired at", false},
		{"http to a TLS server", plainDowngrade.String(), aramaki.EINVALID, "the inviting server refused (400)", false},
		{"no invitation", "ark_0123456789abcdef_secret", aramaki.EINVALID, "not a peer invitation", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := MustJoinServer(t, "shop", false)
			before := a.joins.Load()
			_, err := b.Accept(t, c.token, "")
			if aramaki.ErrorCode(err) != c.code || !strings.Contains(aramaki.ErrorMessage(err), c.message) {
				t.Errorf("got %v, want %s with %q", err, c.code, c.message)
			}
			if reached := a.joins.Load() > before; reached != c.reached {
				t.Errorf("the join reached the inviting server: %v, want %v", reached, c.reached)
			}
			if peers := b.MustPeers(t); len(peers) != 0 {
				t.Errorf("b took a peer from a refused join: %+v", peers)
			}
			if peers := a.MustPeers(t); len(peers) != 0 {
				t.Errorf("a took a peer from a refused join: %+v", peers)
			}
		})
	}
	// Nothing was used: every invitation but the expired one still works.
	for _, inv := range []wire.PeerInvitation{wrongCA, wrongKey, wrongServer, plainDowngrade} {
		fresh := a.MustInvite(t, "unused")
		inv.URL, inv.CASHA256, inv.Server, inv.Key = fresh.URL, fresh.CASHA256, fresh.Server, fresh.Key
		b := MustJoinServer(t, "shop", false)
		if _, err := b.Accept(t, inv.String(), ""); err != nil {
			t.Errorf("invitation %s after a refused join: %v", inv.Name, err)
		}
	}
}

// answerProxy is a proxy in front of the inviting server that changes its
// answers to joins, as a server in the way might.
func answerProxy(t *testing.T, to string, change func(*wire.JoinResponse)) *httptest.Server {
	t.Helper()
	target, err := url.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode != http.StatusCreated {
			return nil
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var jr wire.JoinResponse
		if err := json.Unmarshal(raw, &jr); err != nil {
			return err
		}
		change(&jr)
		if raw, err = json.Marshal(jr); err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		resp.ContentLength = int64(len(raw))
		resp.Header.Set("Content-Length", strconv.Itoa(len(raw)))
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv
}

func TestAJoinerRefusesAnAnswerTheInviterDidNotSignForThisJoin(t *testing.T) {
	a := MustJoinServer(t, "hoster", true)
	_, otherKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		change  func(*wire.JoinResponse)
		message string
	}{
		{"no proof", func(r *wire.JoinResponse) { r.Proof = nil }, "proof must be a 64-byte Ed25519 signature"},
		{"a proof by another key", func(r *wire.JoinResponse) {
			r.Proof = ed25519.Sign(otherKey, []byte("aramaki-join-answer-v1\x00"))
		}, "does not prove it holds its key"},
		{"another URL", func(r *wire.JoinResponse) { r.URL = "http://127.0.0.1:9" }, "does not prove it holds its key"},
		{"another key first", func(r *wire.JoinResponse) {
			r.PublicKeys = append([][]byte{otherKey.Public().(ed25519.PublicKey)}, r.PublicKeys...)
		}, "does not prove it holds its key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := MustJoinServer(t, "shop", true)
			inv := a.MustInvite(t, "shop-"+strings.ToLower(strings.ReplaceAll(c.name, " ", "-")))
			inv.URL = answerProxy(t, a.srv.URL, c.change).URL
			_, err := b.Accept(t, inv.String(), "")
			if err == nil || !strings.Contains(aramaki.ErrorMessage(err), c.message) ||
				!strings.Contains(aramaki.ErrorMessage(err), "its operator should undo that with aramaki peer remove "+inv.Name) {
				t.Errorf("got %v, want %q and what to undo", err, c.message)
			}
			if peers := b.MustPeers(t); len(peers) != 0 {
				t.Errorf("b took a peer from an answer it refused: %+v", peers)
			}
		})
	}
}

func TestAJoinToAPlainHTTPServerWorksForDevelopment(t *testing.T) {
	a := MustJoinServer(t, "devbox", true)
	b := MustJoinServer(t, "laptop", true)
	peer, err := b.Accept(t, a.MustInvite(t, "laptop").String(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	if peer.Name != "dev" || peer.URL != a.srv.URL || peer.CASHA256 != "" {
		t.Errorf("b knows a as %+v", peer)
	}
}

func TestAJoinGivesUpOnAnInviterThatMisbehaves(t *testing.T) {
	b := MustJoinServer(t, "shop", true)
	for _, c := range []struct {
		name    string
		handler http.HandlerFunc
		message string
	}{
		{"an endless answer", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"server": "` + strings.Repeat("x", 1<<20) + `"}`))
		}, "exceeds 16 KiB"},
		{"no answer", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // then the server sees the client hang up
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "no answer in time"},
		{"a redirect elsewhere", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://example.com/steal", http.StatusTemporaryRedirect)
		}, "refused (307)"},
		{"not a server", func(w http.ResponseWriter, r *http.Request) {
			http.NotFound(w, r)
		}, "it takes no joins at /federation/v1/join"},
		{"a long refusal", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error": {"code": "conflict", "message": "taken ` + strings.Repeat("\u00e9", 400) + `"}}`))
		}, "taken éé"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			b.svc.SetJoiner(federation.Joiner{Timeout: time.Second})
			tok := wire.PeerInvitation{URL: srv.URL, Server: "srv_00000000000000aa", Key: strings.Repeat("ab", 32), Name: "shop",
				ID: "0123456789abcdef", Secret: strings.Repeat("s", 43), Expires: time.Now().Add(time.Hour)}
			start := time.Now()
			_, err := b.Accept(t, tok.String(), "")
			if err == nil || !strings.Contains(aramaki.ErrorMessage(err), c.message) {
				t.Errorf("got %v, want %q", err, c.message)
			}
			if len([]rune(aramaki.ErrorMessage(err))) > 400 {
				t.Errorf("the message is %d characters long", len(aramaki.ErrorMessage(err)))
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("gave up after %s", d)
			}
		})
	}
}

// The joiner is the service's, as the server wires it.
var _ service.PeerJoiner = federation.Joiner{}
