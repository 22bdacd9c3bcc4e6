package service

import (
	"context"
	"sync"
	"time"

	"github.com/aramaki/aramaki"
)

// The links with peers live in the federation adapter; the service only
// hears from it when one comes up or goes down, so that people can see
// whether a peer is connected without the UI knowing of websockets. It is
// kept in memory: after a restart every link is "not connected since this
// server started" until it comes up again.

// LinkStatus is what this server last heard of its link with a peer.
type LinkStatus struct {
	// Connected is true while a session with the peer runs.
	Connected bool
	// Since is when it came up or went down; zero when it has not done
	// either since this server started.
	Since time.Time
	// Error is why the last session ended, when it ended with one.
	Error string
}

// linkStates are the link statuses by peer server id.
type linkStates struct {
	mu sync.Mutex
	m  map[string]LinkStatus
}

// LinkUp records that a session with a peer (by its server id) started.
func (s *Service) LinkUp(server string) {
	s.setLink(server, LinkStatus{Connected: true, Since: s.now().UTC()})
}

// LinkDown records that the session with a peer ended, or a dial of it
// failed, and why when err says: the link calls it for the session that
// was current only, not for one a newer connection replaced. A link down
// already stays down since when it went down.
func (s *Service) LinkDown(server string, err error) {
	st := LinkStatus{Since: s.now().UTC()}
	if err != nil {
		st.Error = clipRunes(err.Error(), 300)
	}
	s.setLink(server, st)
}

func (s *Service) setLink(server string, st LinkStatus) {
	s.links.mu.Lock()
	defer s.links.mu.Unlock()
	if s.links.m == nil {
		s.links.m = map[string]LinkStatus{}
	}
	if was, ok := s.links.m[server]; ok && !was.Connected && !st.Connected && !was.Since.IsZero() {
		st.Since = was.Since // down since the first failure, with the latest error
	}
	s.links.m[server] = st
}

// PeerStatus is a peer as its page shows it: who it is, whether the link
// is up, and where the exchange stands.
type PeerStatus struct {
	aramaki.Peer
	Link LinkStatus
	// Waiting is how many messages the peer has not acknowledged yet;
	// Received is the number of the last of its messages stored here.
	Waiting  uint64
	Received uint64
}

// PeerStatuses lists the peers, removed ones too, with their links, for
// global admins (like Peers).
func (s *Service) PeerStatuses(ctx context.Context, p aramaki.Principal) ([]PeerStatus, error) {
	peers, err := s.Peers(ctx, p)
	if err != nil {
		return nil, err
	}
	s.links.mu.Lock()
	links := make(map[string]LinkStatus, len(s.links.m))
	for k, v := range s.links.m {
		links[k] = v
	}
	s.links.mu.Unlock()
	out := make([]PeerStatus, 0, len(peers))
	for _, peer := range peers {
		ps := PeerStatus{Peer: peer, Link: links[peer.Server]}
		if peer.Removed == nil {
			st, err := s.store.PeerLink(ctx, peer.Name)
			if err != nil && aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
				return nil, err
			}
			if st.NextSeq > st.AckedSeq+1 {
				ps.Waiting = st.NextSeq - 1 - st.AckedSeq
			}
			ps.Received = st.ReceivedSeq
		}
		out = append(out, ps)
	}
	return out, nil
}

// MayGrant reports whether the principal may hand a system out to peers
// (see CreateGrant), for offering only such systems in forms. CreateGrant
// checks again.
func (s *Service) MayGrant(p aramaki.Principal, system string) bool {
	return s.visible(s.Graph(), p, system) == nil && s.requireOwner(p, system) == nil
}
