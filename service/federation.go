package service

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// ---- This server's identity ----

// Identity returns this server's identity among its peers, made on first
// use: a server id and an Ed25519 key.
func (s *Service) Identity(ctx context.Context) (aramaki.ServerIdentity, error) {
	return s.store.ServerIdentity(ctx, func() (string, aramaki.ServerKey, error) {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return "", aramaki.ServerKey{}, fmt.Errorf("read random server id: %w", err)
		}
		key, err := s.newServerKey()
		return "srv_" + hex.EncodeToString(b), key, err
	})
}

func (s *Service) newServerKey() (aramaki.ServerKey, error) {
	pub, prv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return aramaki.ServerKey{}, fmt.Errorf("generate server key: %w", err)
	}
	return aramaki.ServerKey{ID: aramaki.KeyID(pub), Public: pub, Private: prv, Created: s.now().UTC()}, nil
}

// RotateServerKey gives this server a new identity key; the old one is
// kept to verify what it signed, and endorses the new one: peers learn the
// new key from this server's next hello, through that endorsement. Links
// running when it rotates keep the key they started with until they end.
func (s *Service) RotateServerKey(ctx context.Context, p aramaki.Principal) (aramaki.ServerIdentity, error) {
	if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
		return aramaki.ServerIdentity{}, err
	}
	id, err := s.Identity(ctx)
	if err != nil {
		return id, err
	}
	key, err := s.newServerKey()
	if err != nil {
		return id, err
	}
	keys, err := s.store.RotateServerKey(ctx, key, func(prev aramaki.ServerKey) ([]byte, aramaki.Event, error) {
		ev, err := s.event(aramaki.KindServerKeyNew, p.Actor(), nil, fmt.Sprintf("%s gave this server a new identity key %s, endorsed by the old one, %s, which still verifies",
			p.User, key.ID, prev.ID), map[string]string{"key": key.ID, "previous": prev.ID})
		return ed25519.Sign(prev.Private, aramaki.KeyEndorsement(id.ID, key.Public)), ev, err
	})
	if err != nil {
		return id, err
	}
	id.Keys = keys
	return id, nil
}

// PeerShowedKeys records keys of a peer that it showed in a hello, each
// endorsed by the one before from a key this server knew (the link checked
// the endorsements), with an event on the timeline for those it did not
// know yet. Old keys stay known.
func (s *Service) PeerShowedKeys(ctx context.Context, peer aramaki.Peer, keys []ed25519.PublicKey) error {
	if len(keys) == 0 {
		return nil
	}
	now := s.now().UTC()
	add := make([]aramaki.PeerKey, len(keys))
	for i, k := range keys {
		add[i] = aramaki.PeerKey{ID: aramaki.KeyID(k), Public: k, Added: now}
	}
	_, err := s.store.AddPeerKeys(ctx, peer.Server, add, func(added []aramaki.PeerKey) (aramaki.Event, error) {
		ids := make([]string, len(added))
		for i, k := range added {
			ids[i] = k.ID
		}
		newest := ids[len(ids)-1]
		return s.event(aramaki.KindPeerKeyNew, "peer:"+peer.Name, nil, fmt.Sprintf("peer %s rotated its key to %s, endorsed by a key this server knew; the old ones still verify", peer.Name, newest),
			map[string]any{"peer": peer.Name, "server": peer.Server, "key": newest, "keys": ids})
	})
	return err
}

// ---- Peering ----

// NewInvitation is an invitation with its secret, shown once.
type NewInvitation struct {
	aramaki.Invitation
	Secret string `json:"secret"`
	// Server and Key are this server's id and the fingerprint of its
	// current key, for the token.
	Server string `json:"server"`
	Key    string `json:"key"`
}

// CreateInvitation invites another server to become a peer under a name.
// The token made of it (see wire.PeerInvitation) is handed over out of
// band; it is used once, within its lifetime.
func (s *Service) CreateInvitation(ctx context.Context, p aramaki.Principal, name string, ttl time.Duration) (NewInvitation, error) {
	if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
		return NewInvitation{}, err
	}
	if err := aramaki.ValidatePeerName(name); err != nil {
		return NewInvitation{}, err
	}
	if ttl == 0 {
		ttl = aramaki.DefaultInvitationTTL
	}
	if ttl < time.Minute || ttl > aramaki.MaxInvitationTTL {
		return NewInvitation{}, aramaki.Errorf(aramaki.EINVALID, "an invitation lives between 1m and %d days", int(aramaki.MaxInvitationTTL.Hours()/24))
	}
	id, err := s.Identity(ctx)
	if err != nil {
		return NewInvitation{}, err
	}
	b := make([]byte, 8+32)
	if _, err := rand.Read(b); err != nil {
		return NewInvitation{}, fmt.Errorf("read random invitation: %w", err)
	}
	now := s.now().UTC()
	secret := base64.RawURLEncoding.EncodeToString(b[8:])
	inv := aramaki.Invitation{ID: hex.EncodeToString(b[:8]), Name: name, SecretHash: hashSecret(secret), Created: now, CreatedBy: p.User, Expires: now.Add(ttl)}
	ev, err := s.event(aramaki.KindPeerInvited, p.Actor(), nil, fmt.Sprintf("%s invited a server to become peer %s, until %s", p.User, name, inv.Expires.Format(time.RFC3339)),
		map[string]any{"invitation": inv.ID, "peer": name, "expires": inv.Expires})
	if err != nil {
		return NewInvitation{}, err
	}
	if err := s.store.CreateInvitation(ctx, inv, ev); err != nil {
		return NewInvitation{}, err
	}
	return NewInvitation{Invitation: inv, Secret: secret, Server: id.ID, Key: aramaki.KeyFingerprint(id.Current().Public)}, nil
}

// JoinAttempt is a server presenting an invitation of this one: who it
// is, where to reach it, and its key. Its proof of holding that key was
// checked where it was decoded.
type JoinAttempt struct {
	Invitation string
	Secret     string
	// InviterKey is the fingerprint of this server's key that the joining
	// server's token pins, as it expects to see it in the answer: a join
	// naming none of this server's keys is refused before the invitation
	// is used.
	InviterKey string
	Server     string
	Name       string // what it calls itself
	URL        string
	CASHA256   string
	PublicKey  ed25519.PublicKey
}

// PeerJoins lets a server that holds an invitation become a peer, under
// the name the invitation gave it. It returns this server's identity for
// the answer. A join whose token pins none of this server's keys is
// refused once its secret is checked, with the invitation left unused: the
// joining server would refuse the answer, and this server would list a
// peer that does not list it.
func (s *Service) PeerJoins(ctx context.Context, a JoinAttempt) (aramaki.ServerIdentity, aramaki.Peer, error) {
	id, err := s.Identity(ctx)
	if err != nil {
		return id, aramaki.Peer{}, err
	}
	if a.Server == id.ID {
		return id, aramaki.Peer{}, aramaki.Errorf(aramaki.EINVALID, "a server cannot be its own peer")
	}
	pinsOurs := slices.ContainsFunc(id.Keys, func(k aramaki.ServerKey) bool { return aramaki.KeyFingerprint(k.Public) == a.InviterKey })
	now := s.now().UTC()
	peer := aramaki.Peer{Server: a.Server, URL: a.URL, CASHA256: a.CASHA256, Added: now, AddedBy: "invitation:" + a.Invitation,
		Keys: []aramaki.PeerKey{{ID: aramaki.KeyID(a.PublicKey), Public: a.PublicKey, Added: now}}}
	// The key is checked in the invitation's transaction, after its
	// secret: a stranger learns no more than that the invitation is
	// unknown, and the holder of the secret learns why.
	altered := false
	peer, err = s.store.UseInvitation(ctx, a.Invitation, now, func(hash []byte) bool {
		altered = false
		if subtle.ConstantTimeCompare(hash, hashSecret(a.Secret)) != 1 {
			return false
		}
		altered = !pinsOurs
		return pinsOurs
	}, peer, func(p aramaki.Peer) ([]aramaki.Event, error) {
		ev, err := s.event(aramaki.KindPeerJoined, "peer:"+p.Name, nil, fmt.Sprintf("server %s (calling itself %s) became peer %s with invitation %s",
			p.Server, clipRunes(a.Name, 63), p.Name, a.Invitation), map[string]any{"peer": p.Name, "server": p.Server, "key": p.Keys[0].ID, "url": p.URL})
		return []aramaki.Event{ev}, err
	})
	if altered {
		return id, aramaki.Peer{}, aramaki.Errorf(aramaki.EFORBIDDEN, "the key fingerprint in the joining server's token (%s…) does not match any key of this server: "+
			"the token was altered on the way. The invitation is not used and nothing is stored: accept the token exactly as it was handed over",
			clipRunes(a.InviterKey, 16))
	}
	return id, peer, err
}

// PeerJoiner presents this server to a server that invited it, over the
// network: it checks the inviter's key against the token and returns the
// inviter as a peer (without its name here).
type PeerJoiner interface {
	Join(ctx context.Context, token string, self JoinSelf) (aramaki.Peer, string, error)
}

// JoinSelf is this server, as it presents itself when joining.
type JoinSelf struct {
	Server   string
	Name     string
	URL      string
	CASHA256 string
	Key      aramaki.ServerKey
	// Check, when set, is called by the joiner once it has read the
	// token, before it sends anything: with the inviting server's id and
	// the name that server gives this one. An error stops the join while
	// nothing is used or stored on either side.
	Check func(inviter, nameThere string) error
}

// SetJoiner sets how this server joins others.
func (s *Service) SetJoiner(j PeerJoiner) { s.joiner = j }

// AcceptInvitation makes this server a peer of the server whose
// invitation token it is given. The peer is called by the name it gives
// itself, unless name says otherwise.
//
// The inviting server takes this one in as it answers; this server
// records it after. So that the two agree, what would stop this server
// from recording it is checked before the join wherever it can be: the
// name, when given, and the inviting server, once the joiner has read the
// token. What only the answer tells (the name the inviting server gives
// itself) is checked after it, and a clash then tells the operator what to
// undo on the other side.
func (s *Service) AcceptInvitation(ctx context.Context, p aramaki.Principal, token, name string) (aramaki.Peer, error) {
	if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
		return aramaki.Peer{}, err
	}
	if name != "" {
		if err := aramaki.ValidatePeerName(name); err != nil {
			return aramaki.Peer{}, err
		}
		if other, taken, err := found(s.store.Peer(ctx, name)); err != nil {
			return aramaki.Peer{}, err
		} else if taken {
			return aramaki.Peer{}, aramaki.Errorf(aramaki.ECONFLICT, "this server has a peer %s already (server %s): accept under another --name, or remove that peer first with aramaki peer remove %s. "+
				"Nothing was sent to the inviting server, so this attempt used nothing there", name, other.Server, name)
		}
	}
	if s.joiner == nil {
		return aramaki.Peer{}, aramaki.Errorf(aramaki.EUNAVAILABLE, "this server cannot reach others")
	}
	id, err := s.Identity(ctx)
	if err != nil {
		return aramaki.Peer{}, err
	}
	nameThere := "" // what the inviting server calls this one, once the joiner read the token
	check := func(inviter, asName string) error {
		nameThere = asName
		if other, known, err := found(s.store.PeerByServer(ctx, inviter)); err != nil {
			return err
		} else if known {
			return aramaki.Errorf(aramaki.ECONFLICT, "the inviting server %s is a peer of this server already, as %s. Nothing was sent to it, so this attempt used nothing there. "+
				"If that peering ended on its side, remove it here first with aramaki peer remove %s, then accept again", inviter, other.Name, other.Name)
		}
		return nil
	}
	peer, theirName, err := s.joiner.Join(ctx, token, JoinSelf{Server: id.ID, Name: s.serverName, URL: s.url, CASHA256: s.caSHA256, Key: id.Current(), Check: check})
	if err != nil {
		return aramaki.Peer{}, err
	}
	if peer.Server == id.ID {
		return aramaki.Peer{}, aramaki.Errorf(aramaki.EINVALID, "that invitation is this server's own")
	}
	// From here the inviting server lists this one as its peer.
	undo := "its operator should remove this server there with aramaki peer remove " + cmp.Or(nameThere, "NAME (the name its invitation gave this server)")
	peer.Name = name
	if peer.Name == "" {
		if aramaki.ValidatePeerName(theirName) != nil {
			return aramaki.Peer{}, aramaki.Errorf(aramaki.EINVALID, "the inviting server calls itself %q, which is no peer name here, but has taken this one in as its peer: %s, "+
				"then accept a new invitation here with --name", clipRunes(theirName, 63), undo)
		}
		peer.Name = theirName
	}
	if other, taken, err := found(s.store.Peer(ctx, peer.Name)); err != nil {
		return aramaki.Peer{}, err
	} else if taken {
		return aramaki.Peer{}, aramaki.Errorf(aramaki.ECONFLICT, "the inviting server (%s) has taken this one in as its peer, but this server cannot call it %s: it has a peer %s already (server %s). "+
			"So that the two agree, %s; then accept a new invitation here with --name and another name", peer.Server, peer.Name, peer.Name, other.Server, undo)
	}
	if other, known, err := found(s.store.PeerByServer(ctx, peer.Server)); err != nil {
		return aramaki.Peer{}, err
	} else if known {
		return aramaki.Peer{}, aramaki.Errorf(aramaki.ECONFLICT, "the inviting server (%s) has taken this one in as its peer, but it is a peer of this server already, as %s. "+
			"So that the two agree, %s, or remove %s here with aramaki peer remove %s and accept a new invitation", peer.Server, other.Name, undo, other.Name, other.Name)
	}
	peer.Added, peer.AddedBy = s.now().UTC(), p.User
	ev, err := s.event(aramaki.KindPeerJoined, p.Actor(), nil, fmt.Sprintf("%s made this server a peer of %s (server %s)", p.User, peer.Name, peer.Server),
		map[string]any{"peer": peer.Name, "server": peer.Server, "url": peer.URL})
	if err != nil {
		return aramaki.Peer{}, err
	}
	if err := s.store.AddPeer(ctx, peer, ev); err != nil {
		if aramaki.ErrorCode(err) == aramaki.ECONFLICT {
			// Taken between the check and now, by another accept.
			return aramaki.Peer{}, aramaki.Errorf(aramaki.ECONFLICT, "the inviting server (%s) has taken this one in as its peer, but this server cannot record it: %s. So that the two agree, %s",
				peer.Server, aramaki.ErrorMessage(err), undo)
		}
		return aramaki.Peer{}, err
	}
	return peer, nil
}

// found is the result of a look-up of one peer, with ENOTFOUND as false.
func found(p aramaki.Peer, err error) (aramaki.Peer, bool, error) {
	if aramaki.ErrorCode(err) == aramaki.ENOTFOUND {
		return aramaki.Peer{}, false, nil
	}
	return p, err == nil, err
}

// Peers lists the peers, removed ones too. Only global admins see them:
// who federates with whom is for the operators of the server.
func (s *Service) Peers(ctx context.Context, p aramaki.Principal) ([]aramaki.Peer, error) {
	if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
		return nil, err
	}
	peers, err := s.store.Peers(ctx)
	if peers == nil {
		peers = []aramaki.Peer{}
	}
	return peers, err
}

// RemovePeer ends a peering: its grants are revoked at once.
func (s *Service) RemovePeer(ctx context.Context, p aramaki.Principal, name string) error {
	if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
		return err
	}
	if err := aramaki.ValidatePeerName(name); err != nil {
		return aramaki.Errorf(aramaki.ENOTFOUND, "no peer %s", clipRunes(name, 63))
	}
	ev, err := s.event(aramaki.KindPeerRemoved, p.Actor(), nil, fmt.Sprintf("%s removed peer %s; its grants are revoked", p.User, name), map[string]string{"peer": name})
	if err != nil {
		return err
	}
	return s.store.RemovePeer(ctx, name, p.User, ev)
}

// ---- Grants ----

// GrantRequest asks to let a peer use systems of this server.
type GrantRequest struct {
	Peer    string              `json:"peer"`
	Systems []string            `json:"systems"`
	Kinds   []aramaki.GrantKind `json:"kinds"`
	Actions []string            `json:"actions"`
	Until   time.Time           `json:"until"`
}

// CreateGrant lets a peer use systems of this server until a time. Who
// grants must be able to hand each system out (its owner's admin), as for
// enrolling agents: sharing a system with another organisation is power
// over it.
func (s *Service) CreateGrant(ctx context.Context, p aramaki.Principal, req GrantRequest) (aramaki.Grant, error) {
	g := s.Graph()
	now := s.now().UTC()
	slices.Sort(req.Systems)
	req.Systems = slices.Compact(req.Systems)
	grant := aramaki.Grant{Peer: req.Peer, Systems: req.Systems, Kinds: req.Kinds, Actions: req.Actions, Until: req.Until.UTC(), Created: now, CreatedBy: p.User}
	if err := grant.Validate(now); err != nil {
		return aramaki.Grant{}, err
	}
	for _, id := range grant.Systems {
		if err := s.visible(g, p, id); err != nil {
			return aramaki.Grant{}, err
		}
		if err := s.requireOwner(p, id); err != nil {
			return aramaki.Grant{}, err
		}
	}
	for _, a := range grant.Actions {
		if !slices.ContainsFunc(grant.Systems, func(id string) bool { _, err := actionRef(g, id, a); return err == nil }) {
			return aramaki.Grant{}, aramaki.Errorf(aramaki.EINVALID, "none of %s has an action %s", strings.Join(grant.Systems, ", "), a)
		}
	}
	made, err := s.store.CreateGrant(ctx, grant, func(gr aramaki.Grant) (aramaki.Event, error) {
		return s.event(aramaki.KindGrantCreated, p.Actor(), gr.Systems, fmt.Sprintf("%s granted peer %s %s on %s until %s (grant %s)",
			p.User, gr.Peer, allowText(gr), strings.Join(gr.Systems, ", "), gr.Until.Format(time.RFC3339), gr.ID), gr)
	})
	if err == nil {
		s.wakeFederation() // the peer is told at once
	}
	return made, err
}

func allowText(g aramaki.Grant) string {
	var parts []string
	for _, k := range g.Kinds {
		parts = append(parts, string(k))
	}
	for _, a := range g.Actions {
		parts = append(parts, "action:"+a)
	}
	return strings.Join(parts, ",")
}

// Grants lists grants (to one peer, or all), for global admins and for
// whoever may hand out every system of a grant.
func (s *Service) Grants(ctx context.Context, p aramaki.Principal, peer string) ([]aramaki.Grant, error) {
	if p.Anonymous() {
		return nil, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
	}
	gs, err := s.store.Grants(ctx, peer)
	if err != nil {
		return nil, err
	}
	out := []aramaki.Grant{}
	for _, gr := range gs {
		if s.mayHandOut(p, gr) {
			out = append(out, gr)
		}
	}
	return out, nil
}

func (s *Service) mayHandOut(p aramaki.Principal, gr aramaki.Grant) bool {
	if p.GlobalRole().AtLeast(aramaki.RoleAdmin) {
		return true
	}
	g := s.Graph()
	for _, id := range gr.Systems {
		if g.System(id) == nil || s.requireOwner(p, id) != nil {
			return false
		}
	}
	return true
}

// RevokeGrant ends a grant at once.
func (s *Service) RevokeGrant(ctx context.Context, p aramaki.Principal, id string) (aramaki.Grant, error) {
	gr, err := s.store.Grant(ctx, id)
	if err != nil {
		return gr, err
	}
	if !s.mayHandOut(p, gr) {
		if p.Anonymous() {
			return aramaki.Grant{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
		}
		return aramaki.Grant{}, aramaki.Errorf(aramaki.ENOTFOUND, "grant %s not found", id)
	}
	now := s.now().UTC()
	ev, err := s.event(aramaki.KindGrantRevoked, p.Actor(), gr.Systems, fmt.Sprintf("%s revoked grant %s: peer %s no longer has %s on %s",
		p.User, gr.ID, gr.Peer, allowText(gr), strings.Join(gr.Systems, ", ")), map[string]string{"grant": gr.ID, "peer": gr.Peer})
	if err != nil {
		return gr, err
	}
	if err := s.store.RevokeGrant(ctx, id, p.User, ev); err != nil {
		return gr, err
	}
	gr.Revoked, gr.RevokedBy = &now, p.User
	s.wakeFederation() // the peer is told at once
	return gr, nil
}
