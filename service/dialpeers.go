package service

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/aramaki/aramaki"
)

// Only one replica of a server dials each peer at a time (see the store's
// dial leases): the peer then sees one link from this server, on
// whichever of its processes it lands, rather than several that take
// over from each other.

// dialYield is how long a replica holding a peer's dial lease may fail to
// link with it before it lets the lease go, for another replica — which
// may reach the peer when this one cannot — to try; dialPause is how long
// it then leaves the lease alone.
const (
	dialYield = 30 * time.Second
	dialPause = 3 * time.Second
)

// dialTurns is what this replica remembers of the leases it held.
type dialTurns struct {
	mu      sync.Mutex
	taken   map[string]time.Time // by peer name: when this replica took its lease
	yielded map[string]time.Time // when it let the lease go
}

// DialPeers returns the peers this replica dials: those this server
// joined (it accepted their invitation; the others dial it) whose dial
// lease it holds or takes now.
func (s *Service) DialPeers(ctx context.Context) ([]aramaki.Peer, error) {
	peers, err := s.LinkPeers(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	t := &s.dialTurns
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.taken == nil {
		t.taken, t.yielded = map[string]time.Time{}, map[string]time.Time{}
	}
	var joined []aramaki.Peer
	var names []string
	for _, p := range peers {
		if p.URL == "" || strings.HasPrefix(p.AddedBy, "invitation:") {
			continue
		}
		if y, ok := t.yielded[p.Name]; ok && now.Sub(y) < dialPause {
			continue
		}
		joined, names = append(joined, p), append(names, p.Name)
	}
	held, err := s.store.DialLeases(ctx, names)
	if err != nil {
		return nil, err
	}
	s.links.mu.Lock()
	links := make(map[string]LinkStatus, len(s.links.m))
	for k, v := range s.links.m {
		links[k] = v
	}
	s.links.mu.Unlock()
	var out []aramaki.Peer
	for _, p := range joined {
		if !held[p.Name] {
			delete(t.taken, p.Name)
			continue
		}
		taken, ok := t.taken[p.Name]
		if !ok {
			taken = now
			t.taken[p.Name] = now
		}
		st := links[p.Server]
		down := taken // or since the link went down, if later
		if st.Since.After(down) {
			down = st.Since
		}
		if !st.Connected && now.Sub(down) >= dialYield {
			// With one process (SQLite) there is no other replica: it
			// dials on, without a pause.
			if s.store.ReleaseDialLease(ctx, p.Name) {
				s.log.Warn("cannot link with a peer; letting another replica try", "peer", p.Name, "down_since", down, "err", st.Error)
				delete(t.taken, p.Name)
				t.yielded[p.Name] = now
				continue
			}
			t.taken[p.Name] = now
		}
		out = append(out, p)
	}
	return out, nil
}
