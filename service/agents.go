package service

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// Enrollment token lifetimes.
const (
	DefaultEnrollmentTTL = time.Hour
	MaxEnrollmentTTL     = 30 * 24 * time.Hour
)

// NewEnrollment is an enrollment token just made: the only time its
// secret is known.
type NewEnrollment struct {
	aramaki.EnrollmentToken
	Secret string `json:"-"`
}

// CreateEnrollmentToken makes a single-use token that lets one new agent
// enroll for the systems. Admins of every one of the systems may.
func (s *Service) CreateEnrollmentToken(ctx context.Context, p aramaki.Principal, systems []string, ttl time.Duration) (NewEnrollment, error) {
	g := s.Graph()
	if len(systems) == 0 {
		return NewEnrollment{}, aramaki.Errorf(aramaki.EINVALID, "name at least one system the agent is for")
	}
	slices.Sort(systems)
	systems = slices.Compact(systems)
	for _, id := range systems {
		if err := s.visible(g, p, id); err != nil {
			return NewEnrollment{}, err
		}
		if err := s.requireOwner(p, id); err != nil {
			return NewEnrollment{}, err
		}
	}
	if ttl == 0 {
		ttl = DefaultEnrollmentTTL
	}
	if ttl < time.Minute || ttl > MaxEnrollmentTTL {
		return NewEnrollment{}, aramaki.Errorf(aramaki.EINVALID, "an enrollment token lives between 1m and %d days", int(MaxEnrollmentTTL.Hours()/24))
	}
	b := make([]byte, 8+32)
	if _, err := rand.Read(b); err != nil {
		return NewEnrollment{}, fmt.Errorf("read random token: %w", err)
	}
	now := s.now().UTC()
	t := aramaki.EnrollmentToken{ID: hex.EncodeToString(b[:8]), Systems: systems, CreatedBy: p.User, Created: now, Expires: now.Add(ttl)}
	secret := base64.RawURLEncoding.EncodeToString(b[8:])
	ev, err := s.event(aramaki.KindTokenIssued, p.Actor(), systems,
		fmt.Sprintf("%s created an agent enrollment token for %s, valid until %s", p.User, strings.Join(systems, ", "), t.Expires.Format(time.RFC3339)),
		map[string]any{"token": t.ID, "systems": systems, "expires": t.Expires})
	if err != nil {
		return NewEnrollment{}, err
	}
	if err := s.store.CreateEnrollmentToken(ctx, t, hashSecret(secret), ev); err != nil {
		return NewEnrollment{}, err
	}
	return NewEnrollment{EnrollmentToken: t, Secret: secret}, nil
}

func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// EnrollmentTokens lists the enrollment tokens (never their secrets).
// Admins of the whole server may.
func (s *Service) EnrollmentTokens(ctx context.Context, p aramaki.Principal) ([]aramaki.EnrollmentToken, error) {
	if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
		return nil, err
	}
	return s.store.EnrollmentTokens(ctx)
}

// Enroll spends an enrollment token for a new agent with the public key.
// Anything wrong with the token gets the same answer.
func (s *Service) Enroll(ctx context.Context, tokenID, secret string, publicKey ed25519.PublicKey, hostname, version string) (aramaki.Agent, error) {
	if len(publicKey) != ed25519.PublicKeySize {
		return aramaki.Agent{}, aramaki.Errorf(aramaki.EINVALID, "the public key must be an Ed25519 key")
	}
	if err := aramaki.ValidateAgentName(hostname); err != nil {
		return aramaki.Agent{}, err
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return aramaki.Agent{}, err
	}
	a := aramaki.Agent{ID: "ag_" + hex.EncodeToString(b), Name: hostname, PublicKey: publicKey, Version: version, Enrolled: s.now().UTC()}
	s.names.Store(a.ID, hostname)
	return s.store.Enroll(ctx, tokenID, hashSecret(secret), a, func(t aramaki.EnrollmentToken) (aramaki.Event, error) {
		return s.event(aramaki.KindAgentEnrolled, "agent:"+a.ID, t.Systems,
			fmt.Sprintf("Agent %s on %s enrolled for %s (token by %s)", a.ID, hostname, strings.Join(t.Systems, ", "), t.CreatedBy),
			map[string]any{"agent": a.ID, "name": hostname, "token": t.ID, "version": version})
	})
}

// AuthenticateAgent checks an agent's proof of its key: a signature of
// payload (made by the caller from the nonce and channel binding).
// Revoked and unknown agents are refused.
func (s *Service) AuthenticateAgent(ctx context.Context, agentID string, payload, signature []byte) (aramaki.Agent, error) {
	a, err := s.store.Agent(ctx, agentID)
	if aramaki.ErrorCode(err) == aramaki.ENOTFOUND {
		return aramaki.Agent{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "unknown agent %s", agentID)
	} else if err != nil {
		return aramaki.Agent{}, err
	}
	if a.Revoked != nil {
		return aramaki.Agent{}, aramaki.Errorf(aramaki.EFORBIDDEN, "agent %s was revoked at %s", agentID, a.Revoked.Format(time.RFC3339))
	}
	if len(a.PublicKey) != ed25519.PublicKeySize || !ed25519.Verify(a.PublicKey, payload, signature) {
		return aramaki.Agent{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "agent %s: the signature does not match its key", agentID)
	}
	return a, nil
}

// AgentView is an agent as the API shows it.
type AgentView struct {
	aramaki.Agent
	Connected bool `json:"connected"`
}

// Agents lists the agents of the systems the principal may see.
func (s *Service) Agents(ctx context.Context, p aramaki.Principal) ([]AgentView, error) {
	if p.Anonymous() {
		return nil, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
	}
	all, err := s.store.Agents(ctx)
	if err != nil {
		return nil, err
	}
	g := s.Graph()
	out := []AgentView{}
	for _, a := range all {
		if s.canSeeAgent(g, p, a) {
			out = append(out, s.agentView(a))
		}
	}
	return out, nil
}

func (s *Service) agentView(a aramaki.Agent) AgentView {
	// Keepalives reach the store in bulk every few seconds; the newest is
	// still here.
	s.seenMu.Lock()
	if seen, ok := s.seen[a.ID]; ok && (a.LastSeen == nil || seen.At.After(*a.LastSeen)) {
		at := seen.At
		a.LastSeen = &at
	}
	s.seenMu.Unlock()
	return AgentView{Agent: a, Connected: s.hub != nil && s.hub.Connected(a.ID)}
}

// canSeeAgent: an agent is visible to whoever may see one of its systems.
func (s *Service) canSeeAgent(g *aramaki.Graph, p aramaki.Principal, a aramaki.Agent) bool {
	if p.GlobalRole().AtLeast(aramaki.RoleViewer) {
		return true
	}
	for _, id := range a.Systems {
		if g.RoleOn(p, id).AtLeast(aramaki.RoleViewer) {
			return true
		}
	}
	return false
}

// AgentDetail is one agent with its facts.
type AgentDetail struct {
	AgentView
	Facts *aramaki.Facts `json:"facts,omitempty"`
}

// Agent returns one agent with its latest inventory facts.
func (s *Service) Agent(ctx context.Context, p aramaki.Principal, id string) (AgentDetail, error) {
	if p.Anonymous() {
		return AgentDetail{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
	}
	a, err := s.store.Agent(ctx, id)
	if err != nil || !s.canSeeAgent(s.Graph(), p, a) {
		return AgentDetail{}, aramaki.Errorf(aramaki.ENOTFOUND, "no agent %s", id)
	}
	d := AgentDetail{AgentView: s.agentView(a)}
	if f, err := s.store.Facts(ctx, id); err == nil {
		d.Facts = &f
	} else if aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
		return AgentDetail{}, err
	}
	return d, nil
}

// RevokeAgent refuses an agent from now on, and disconnects it at once.
// Admins of all its systems may.
func (s *Service) RevokeAgent(ctx context.Context, p aramaki.Principal, id string) error {
	a, err := s.store.Agent(ctx, id)
	if err != nil || !s.canSeeAgent(s.Graph(), p, a) {
		if p.Anonymous() {
			return aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
		}
		return aramaki.Errorf(aramaki.ENOTFOUND, "no agent %s", id)
	}
	for _, sys := range a.Systems {
		if s.Graph().System(sys) == nil {
			if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
				return err
			}
			continue
		}
		if err := s.requireOwner(p, sys); err != nil {
			return err
		}
	}
	ev, err := s.event(aramaki.KindAgentRevoked, p.Actor(), a.Systems, fmt.Sprintf("%s revoked agent %s on %s", p.User, a.ID, a.Name), map[string]string{"agent": a.ID, "name": a.Name})
	if err != nil {
		return err
	}
	if err := s.store.RevokeAgent(ctx, id, ev); err != nil {
		return err
	}
	if s.hub != nil {
		s.hub.Revoked(id, "this agent was revoked by "+p.User)
	}
	return nil
}

// RecordFacts keeps an agent's latest inventory facts (already validated
// at the edge) as JSON.
func (s *Service) RecordFacts(ctx context.Context, a aramaki.Agent, collected time.Time, facts []byte) error {
	return s.store.SetFacts(ctx, aramaki.Facts{Agent: a.ID, Collected: collected.UTC(), Received: s.now().UTC(), Facts: facts})
}
