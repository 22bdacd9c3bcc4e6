package api

import (
	"crypto/ed25519"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/wire"
)

// maxJoins bounds the joins of other servers handled at once; more are
// asked to try again. A join is cheap, but it is the one route that
// strangers may call with a body, so that is bounded too.
const maxJoins = 4

// defaultServerName is what a server calls itself to its peers when it
// was given no name.
const defaultServerName = "aramaki"

func (a *API) serverName() string {
	if wire.ValidPeerName(a.opts.ServerName) {
		return a.opts.ServerName
	}
	return defaultServerName
}

// ---- This server's identity ----

// IdentityView is this server's identity among its peers: its id, the
// name it gives itself, and its keys without their private halves.
type IdentityView struct {
	ID   string    `json:"id"`
	Name string    `json:"name"`
	Keys []KeyView `json:"keys"` // current first
}

// KeyView is one of this server's identity keys: what its peers know of it.
type KeyView struct {
	ID          string            `json:"id"`
	PublicKey   ed25519.PublicKey `json:"public_key"`
	Fingerprint string            `json:"fingerprint"` // what invitations pin and operators compare
	Created     time.Time         `json:"created"`
	Retired     *time.Time        `json:"retired,omitempty"`
}

func (a *API) identityView(id aramaki.ServerIdentity) IdentityView {
	v := IdentityView{ID: id.ID, Name: a.serverName(), Keys: []KeyView{}}
	for _, k := range id.Keys {
		v.Keys = append(v.Keys, KeyView{ID: k.ID, PublicKey: k.Public, Fingerprint: aramaki.KeyFingerprint(k.Public), Created: k.Created, Retired: k.Retired})
	}
	return v
}

// identity shows this server's identity to whoever is logged in: it holds
// nothing secret, and operators compare its fingerprint with what a peer
// was told.
func (a *API) identity(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if p.Anonymous() {
		return aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in to see this server's identity")
	}
	id, err := a.svc.Identity(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a.identityView(id))
}

func (a *API) rotateKey(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	id, err := a.svc.RotateServerKey(r.Context(), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a.identityView(id))
}

// ---- Peering ----

// InvitationRequest invites another server to become a peer, called Name
// here. TTL is how long the invitation is good for, like 24h (default
// 24h, at most 7 days).
type InvitationRequest struct {
	Name string `json:"name"`
	TTL  string `json:"ttl,omitempty"`
}

// InvitationResponse carries a new invitation: Token, for the other
// server's operator, is shown only now.
type InvitationResponse struct {
	aramaki.Invitation
	Token string `json:"token"`
	// Server and Key are this server's id and the fingerprint of its
	// current key, as the token pins them: for comparing out of band.
	Server string `json:"server"`
	Key    string `json:"key"`
}

func (a *API) invitePeer(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req InvitationRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return aramaki.Errorf(aramaki.EINVALID, "ttl must be a duration like 24h, not %q", clipText(req.TTL, 40))
		}
		ttl = d
	}
	// Checked before the invitation is made: one that no token can carry
	// would only be in the way.
	if err := a.canInvite(p); err != nil {
		return err
	}
	inv, err := a.svc.CreateInvitation(r.Context(), p, req.Name, ttl)
	if err != nil {
		return err
	}
	tok := wire.PeerInvitation{URL: a.opts.PublicURL, CASHA256: a.opts.CAFingerprint, Server: inv.Server, Key: inv.Key,
		Name: inv.Name, ID: inv.ID, Secret: inv.Secret, Expires: inv.Expires}
	return writeJSON(w, http.StatusCreated, InvitationResponse{Invitation: inv.Invitation, Token: tok.String(), Server: inv.Server, Key: inv.Key})
}

// canInvite reports whether this server's URL and CA can go into an
// invitation, by making one with made-up values. Only admins learn why
// not: others are refused by the service as usual.
func (a *API) canInvite(p aramaki.Principal) error {
	if !p.GlobalRole().AtLeast(aramaki.RoleAdmin) {
		return nil
	}
	if a.opts.PublicURL == "" {
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "this server does not know its public URL; start it with --public-url")
	}
	probe := wire.PeerInvitation{URL: a.opts.PublicURL, CASHA256: a.opts.CAFingerprint, Server: "srv_0000000000000000", Key: strings.Repeat("0", 64),
		Name: "probe", ID: "0000000000000000", Secret: strings.Repeat("A", 43), Expires: time.Now().Add(time.Hour)}
	if _, err := wire.ParsePeerInvitation(probe.String()); err != nil {
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "this server cannot invite peers with its public URL %s and CA: %s", a.opts.PublicURL, wireMessage(err))
	}
	return nil
}

// AcceptRequest makes this server a peer of the server whose invitation
// Token is. Name is what to call that server here; by default the name it
// gives itself.
type AcceptRequest struct {
	Token string `json:"token"`
	Name  string `json:"name,omitempty"`
}

func (a *API) acceptInvitation(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req AcceptRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Token) == "" {
		return aramaki.Errorf(aramaki.EINVALID, "give the invitation token the other server's operator made with aramaki peer invite")
	}
	peer, err := a.svc.AcceptInvitation(r.Context(), p, req.Token, req.Name)
	if err != nil {
		return err
	}
	a.log.Info("this server became a peer", "peer", peer.Name, "server", peer.Server, "url", peer.URL, "by", p.User)
	return writeJSON(w, http.StatusCreated, peer)
}

// PeersResponse lists the peers, removed ones too.
type PeersResponse struct {
	Peers []aramaki.Peer `json:"peers"`
}

func (a *API) listPeers(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	peers, err := a.svc.Peers(r.Context(), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, PeersResponse{Peers: peers})
}

func (a *API) removePeer(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := a.svc.RemovePeer(r.Context(), p, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- Grants ----

// GrantRequest lets a peer use systems of this server until a time. Allow
// says what, as on the command line: "events,status,action:restart-unit".
// Until is an RFC 3339 time.
type GrantRequest struct {
	Peer    string   `json:"peer"`
	Systems []string `json:"systems"`
	Allow   string   `json:"allow"`
	Until   string   `json:"until"`
}

func (a *API) createGrant(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req GrantRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if p.Anonymous() {
		return aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in to grant peers the use of systems")
	}
	kinds, actions, err := aramaki.ParseAllow(req.Allow)
	if err != nil {
		return err
	}
	if req.Until == "" {
		return aramaki.Errorf(aramaki.EINVALID, "a grant needs an end: until, an RFC 3339 time")
	}
	until, err := parseRFC3339("until", req.Until)
	if err != nil {
		return err
	}
	g, err := a.svc.CreateGrant(r.Context(), p, service.GrantRequest{Peer: req.Peer, Systems: req.Systems, Kinds: kinds, Actions: actions, Until: until})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, g)
}

// peerQuery is the one query parameter of a list of grants: the peer
// whose grants, if any.
func peerQuery(r *http.Request) (string, error) {
	if err := queryParams(r, "peer"); err != nil {
		return "", err
	}
	peer := r.URL.Query().Get("peer")
	if peer != "" {
		if err := aramaki.ValidatePeerName(peer); err != nil {
			return "", err
		}
	}
	return peer, nil
}

// GrantsResponse lists grants, newest first, revoked and expired ones too.
type GrantsResponse struct {
	Grants []aramaki.Grant `json:"grants"`
}

func (a *API) listGrants(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	peer, err := peerQuery(r)
	if err != nil {
		return err
	}
	gs, err := a.svc.Grants(r.Context(), p, peer)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, GrantsResponse{Grants: gs})
}

// ReceivedGrantsResponse lists the grants peers hold in force for this
// server, as they told them.
type ReceivedGrantsResponse struct {
	Grants []aramaki.ReceivedGrant `json:"grants"`
}

func (a *API) listReceivedGrants(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	peer, err := peerQuery(r)
	if err != nil {
		return err
	}
	gs, err := a.svc.ReceivedGrants(r.Context(), p, peer)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ReceivedGrantsResponse{Grants: gs})
}

func (a *API) revokeGrant(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	g, err := a.svc.RevokeGrant(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, g)
}

// ---- Joins of other servers ----

// join lets a server that holds an invitation of this one become its
// peer (wire.JoinRequest): it proves it holds the key it presents, and
// the invitation's secret, used once, is the credential. A token that pins
// none of this server's keys is refused with the invitation unused (see
// service.PeerJoins). The answer (wire.JoinResponse) tells it who this
// server is and where to reach it, signed with this server's current key
// for that join.
func (a *API) join(w http.ResponseWriter, r *http.Request, _ aramaki.Principal) error {
	select {
	case a.joins <- struct{}{}:
		defer func() { <-a.joins }()
	default:
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "too many servers are joining at once; try again in a moment")
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, wire.MaxJoinSize))
	if err != nil {
		return aramaki.Errorf(aramaki.ETOOLARGE, "a join request exceeds %d KiB", wire.MaxJoinSize>>10)
	}
	req, err := wire.DecodeJoinRequest(raw)
	if err != nil {
		return aramaki.Errorf(aramaki.EINVALID, "%s", wireMessage(err))
	}
	me, err := a.svc.Identity(r.Context())
	if err != nil {
		return err
	}
	if req.Server == me.ID {
		return aramaki.Errorf(aramaki.EINVALID, "a server cannot be its own peer")
	}
	if err := req.VerifyProof(me.ID); err != nil {
		return aramaki.Errorf(aramaki.EUNAUTHORIZED, "%s", wireMessage(err))
	}
	// The answer is made, and checked, before the invitation is used: an
	// answer the joining server would refuse must not cost the invitation.
	resp := wire.JoinResponse{Server: me.ID, Name: a.serverName(), URL: a.opts.PublicURL, CASHA256: a.opts.CAFingerprint}
	for _, k := range me.Keys {
		if len(resp.PublicKeys) == wire.MaxPeerKeys {
			break // the oldest retired keys: what they signed is long acknowledged
		}
		resp.PublicKeys = append(resp.PublicKeys, []byte(k.Public))
	}
	// Signed by the current key, the first of PublicKeys.
	key := me.Current().Private
	if len(key) != ed25519.PrivateKeySize {
		a.log.Error("cannot answer a join: this server's current key has no private half", "key", me.Current().ID)
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "this server cannot take peers now: it cannot sign with its key")
	}
	resp.Proof = ed25519.Sign(key, resp.ProofBytes(req.Invitation, req.Server, req.PublicKey))
	if err := resp.Validate(); err != nil {
		a.log.Error("cannot answer a join: this server's URL or CA is not one peers can use", "url", a.opts.PublicURL, "err", err)
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "this server cannot take peers: its public URL or CA is not set for it")
	}
	_, peer, err := a.svc.PeerJoins(r.Context(), service.JoinAttempt{Invitation: req.Invitation, Secret: req.Secret, InviterKey: req.InviterKey, Server: req.Server,
		Name: req.Name, URL: req.URL, CASHA256: req.CASHA256, PublicKey: ed25519.PublicKey(req.PublicKey)})
	if err != nil {
		if code := aramaki.ErrorCode(err); code != aramaki.EINTERNAL {
			a.log.Warn("join refused", "server", req.Server, "invitation", req.Invitation, "remote", r.RemoteAddr, "reason", aramaki.ErrorMessage(err))
		}
		return err
	}
	a.log.Info("a server joined as a peer", "peer", peer.Name, "server", peer.Server, "url", peer.URL, "remote", r.RemoteAddr)
	return writeJSON(w, http.StatusCreated, resp)
}

func wireMessage(err error) string {
	if werr, ok := err.(*wire.Error); ok {
		return werr.Msg
	}
	return err.Error()
}

func clipText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
