package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/aramaki/aramaki"
)

// peerGrantsBody is a grant message as peers read it (wire.PeerGrants):
// every grant in force for the peer, whole.
type peerGrantsBody struct {
	Grants []peerGrantBody `json:"grants"`
}

type peerGrantBody struct {
	ID      string    `json:"id"`
	Systems []string  `json:"systems"`
	Kinds   []string  `json:"kinds,omitempty"`
	Actions []string  `json:"actions,omitempty"`
	Until   time.Time `json:"until"`
}

// FederateGrants tells each peer the grants in force for it, when they
// changed since it was told: given, revoked or run out. A peer learns
// of its own grants only.
func (s *Service) FederateGrants(ctx context.Context) error {
	peers, err := s.store.Peers(ctx)
	if err != nil {
		return err
	}
	grants, err := s.store.Grants(ctx, "")
	if err != nil {
		return err
	}
	now := s.now()
	for _, p := range peers {
		if p.Removed != nil {
			continue
		}
		body := peerGrantsBody{Grants: []peerGrantBody{}}
		for _, g := range grants {
			if g.Peer != p.Name || !g.Active(now) {
				continue
			}
			kinds := make([]string, len(g.Kinds))
			for i, k := range g.Kinds {
				kinds[i] = string(k)
			}
			body.Grants = append(body.Grants, peerGrantBody{ID: g.ID, Systems: g.Systems, Kinds: kinds, Actions: g.Actions, Until: g.Until.UTC()})
		}
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(raw)
		// Keyed by when it became a peer: a peer removed and added again
		// is told anew.
		digest, key := hex.EncodeToString(sum[:]), "grants\x00"+p.Name+"\x00"+p.Added.String()
		if s.toldAlready(key, digest, now) {
			continue // no write
		}
		if _, err := s.store.TellGrants(ctx, p.Name, digest, raw, now); err != nil {
			return fmt.Errorf("grants for peer %s: %w", p.Name, err)
		}
		s.noteTold(key, digest, now)
	}
	return nil
}

// ReceivedGrants lists the grants peers hold in force for this server, as
// they told them: of one peer, or ("") of all, those that ran out too. A
// user sees those of peers' systems they may see here.
func (s *Service) ReceivedGrants(ctx context.Context, p aramaki.Principal, peer string) ([]aramaki.ReceivedGrant, error) {
	if p.Anonymous() {
		return nil, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
	}
	all, err := s.store.ReceivedGrants(ctx, peer)
	if err != nil {
		return nil, err
	}
	g := s.Graph()
	out := []aramaki.ReceivedGrant{}
	for _, gr := range all {
		var seen []string
		for _, id := range gr.Systems {
			if g.System(id) != nil && g.CanView(p, id) || p.GlobalRole().AtLeast(aramaki.RoleAdmin) {
				seen = append(seen, id)
			}
		}
		if len(seen) > 0 {
			gr.Systems = seen
			out = append(out, gr)
		}
	}
	return out, nil
}

// receivedGrants turns what a peer told of its grants into what is
// stored: on this server's ids of the peer's systems.
func receivedGrants(peer string, told []aramaki.ReceivedGrant) []aramaki.ReceivedGrant {
	out := make([]aramaki.ReceivedGrant, len(told))
	for i, g := range told {
		g.Peer = peer
		g.Systems = slices.Clone(g.Systems)
		for j, id := range g.Systems {
			g.Systems[j] = aramaki.RemoteSystemID(id, peer)
		}
		out[i] = g
	}
	return out
}

// peerGrantsRefuse says why no grant a peer told of allows an action on
// its system, or nothing when one does, or when the peer has told none at
// all (its own check then decides, as it always does in the end).
func (s *Service) peerGrantsRefuse(ctx context.Context, peer, system, action string) error {
	told, err := s.store.ReceivedGrants(ctx, peer)
	if err != nil || len(told) == 0 {
		return err
	}
	now := s.now()
	for _, g := range told {
		if g.AllowsAction(now, system, action) {
			return nil
		}
	}
	return aramaki.Errorf(aramaki.EFORBIDDEN, "peer %s grants this server no %s on %s (aramaki grant received --peer %s shows what it grants); nothing was asked", peer, action, system, peer)
}
