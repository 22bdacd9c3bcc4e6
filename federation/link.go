package federation

import (
	"cmp"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/wire"
)

// LinkPath is where a server accepts links from its peers.
const LinkPath = "/federation/v1/link"

// Link tuning.
const (
	// FillEvery is how often the outboxes are filled from the timeline
	// and the links look for something to send.
	FillEvery = 20 * time.Millisecond
	// Window is how many messages a link sends ahead of the peer's
	// acknowledgement: sent and not yet acknowledged.
	Window = 5000
	// sendBatch is how many outbox messages are read at once; applyBatch
	// how many received messages are stored in one transaction.
	sendBatch  = 1000
	applyBatch = 2000
	// helloTimeout bounds the handshake.
	helloTimeout = 10 * time.Second
	// keysFresh is how long a session trusts its copy of the peer's keys
	// before it reads them again: a removed peer, or a key it no longer
	// has, is refused within that.
	keysFresh = time.Second
	// openBatch is how many received frames are opened together, spread
	// over the cores.
	openBatch = 64
	// StatusEvery is how often shared systems' statuses are compared with
	// what peers were told.
	StatusEvery = time.Second
	// MaxBackoff bounds the wait before dialling a peer again.
	MaxBackoff = 10 * time.Second
	// PingEvery is how often a session pings its peer, and PingTimeout how
	// long it waits for the answer before it ends the session: a peer gone
	// without closing TCP (a cut cable, a paused VM) is noticed within
	// their sum, not when TCP gives up, and the dialling side dials again.
	// Links.PingEvery and Links.PingTimeout override them.
	PingEvery   = 15 * time.Second
	PingTimeout = 10 * time.Second
)

// Links keeps this server's websocket links with its peers. It dials the
// peers it joined (whose invitation it accepted) and accepts links from
// any peer: either side may dial. One session runs per peer at a time;
// a newer connection replaces an older one.
//
// A session starts with a handshake of signed hellos: the accepting
// server sends a nonce, the dialling one signs it back, so a recorded
// hello opens nothing. Each hello carries the last of the other's
// messages the sender stored; each side then sends its outbox from there,
// up to Window ahead of the other's acknowledgements. Received messages
// are stored in batches and acknowledged after the commit.
type Links struct {
	Svc *service.Service
	Log *slog.Logger
	// Now is the clock messages are signed and checked by; time.Now when
	// nil. MaxSkew is the window for a message's sent time.
	Now     func() time.Time
	MaxSkew time.Duration
	// PingEvery and PingTimeout are the heartbeat of a session; PingEvery
	// and PingTimeout (the constants) when zero.
	PingEvery, PingTimeout time.Duration

	mu       sync.Mutex
	sessions map[string]*session // by peer server id
	wake     chan struct{}
}

func (l *Links) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Links) init() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions == nil {
		l.sessions = map[string]*session{}
		l.wake = make(chan struct{})
	}
}

// Run fills the outboxes and keeps the dialled links up until ctx ends.
// It fills them every FillEvery, and at once when the service says a
// status or a grant changed; statuses and grants are compared every
// StatusEvery, and at once on such a change.
func (l *Links) Run(ctx context.Context) {
	l.init()
	dialing := map[string]context.CancelFunc{}
	defer func() {
		for _, cancel := range dialing {
			cancel()
		}
	}()
	t := time.NewTicker(FillEvery)
	defer t.Stop()
	var statusShared, peersRead time.Time
	changed := false
	for {
		if err := l.Svc.FederateEvents(ctx); err != nil && ctx.Err() == nil {
			l.Log.Error("filling peer outboxes", "err", err)
		}
		if changed || time.Since(statusShared) >= StatusEvery {
			statusShared = time.Now()
			if err := l.Svc.FederateStatus(ctx); err != nil && ctx.Err() == nil {
				l.Log.Error("sharing statuses with peers", "err", err)
			}
			if err := l.Svc.FederateGrants(ctx); err != nil && ctx.Err() == nil {
				l.Log.Error("telling peers their grants", "err", err)
			}
		}
		l.poke()
		if time.Since(peersRead) >= StatusEvery {
			peersRead = time.Now()
			l.dialPeers(ctx, dialing)
			l.endOldKeySessions(ctx)
		}
		changed = false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.Svc.FederationWake():
			changed = true
		}
	}
}

// dialPeers keeps a dialling loop for each peer this server joined, and
// stops those of removed peers. Of several replicas, one at a time dials
// each peer (Svc.DialPeers): the others stop theirs.
func (l *Links) dialPeers(ctx context.Context, dialing map[string]context.CancelFunc) {
	peers, err := l.Svc.DialPeers(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.Log.Error("reading peers", "err", err)
		}
		return
	}
	want := map[string]bool{}
	for _, p := range peers {
		if p.URL != "" && !strings.HasPrefix(p.AddedBy, "invitation:") {
			want[p.Server] = true
			if dialing[p.Server] == nil {
				dctx, cancel := context.WithCancel(ctx)
				dialing[p.Server] = cancel
				go l.dialLoop(dctx, p.Server)
			}
		}
	}
	for id, cancel := range dialing {
		if !want[id] {
			cancel() // removed
			delete(dialing, id)
		}
	}
}

// endOldKeySessions ends the sessions that sign with a key this server no
// longer signs with: its key was rotated, and its peers learn the new one
// from the hello of the next session (the dialling side dials again at
// once).
func (l *Links) endOldKeySessions(ctx context.Context) {
	l.mu.Lock()
	n := len(l.sessions)
	l.mu.Unlock()
	if n == 0 {
		return
	}
	id, err := l.Svc.Identity(ctx)
	if err != nil {
		return
	}
	current := id.Current().ID
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.sessions {
		if s.key != current {
			s.cancel(fmt.Errorf("this server's key was rotated to %s: linking again to show peers the new key", current))
		}
	}
}

// poke wakes every session's sender: there may be more to send.
func (l *Links) poke() {
	l.mu.Lock()
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

func (l *Links) woken() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wake
}

// dialLoop keeps a link to one peer, dialling again with jittered backoff
// after it breaks.
func (l *Links) dialLoop(ctx context.Context, server string) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		linked, err := l.dial(ctx, server)
		if ctx.Err() != nil {
			return
		}
		if linked {
			backoff = 100 * time.Millisecond // the link was up: start over
		} else {
			l.Svc.LinkDown(server, err) // the session said so; a failed dial did not
		}
		l.Log.Info("peer link ended; dialling again", "peer", server, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(backoff*2, MaxBackoff)
	}
}

// dial links with a peer and serves the link until it breaks; linked says
// whether the handshake succeeded.
func (l *Links) dial(ctx context.Context, server string) (linked bool, err error) {
	peer, err := l.Svc.PeerByServer(ctx, server)
	if err != nil {
		return false, err
	}
	id, err := l.Svc.Identity(ctx)
	if err != nil {
		return false, err
	}
	client, err := pinnedClient(peer.URL, peer.CASHA256)
	if err != nil {
		return false, err
	}
	u := strings.TrimRight(peer.URL, "/") + LinkPath + "?server=" + id.ID
	if strings.HasPrefix(u, "http") {
		u = "ws" + strings.TrimPrefix(u, "http")
	}
	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	ws, _, err := websocket.Dial(hctx, u, &websocket.DialOptions{HTTPClient: client, Subprotocols: []string{wire.FederationSubprotocol}})
	cancel()
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", peer.URL, err)
	}
	ws.SetReadLimit(wire.MaxPeerFrameSize)
	if ws.Subprotocol() != wire.FederationSubprotocol {
		ws.Close(websocket.StatusProtocolError, "federation protocol not spoken")
		return false, errors.New("the peer does not speak the federation protocol")
	}
	// The peer speaks first: its hello with a nonce.
	hctx, cancel = context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	theirs, err := l.readHello(hctx, ws, id, peer, "")
	if err != nil {
		ws.Close(websocket.StatusPolicyViolation, "bad hello")
		return false, err
	}
	received, err := l.Svc.PeerLinkState(ctx, peer.Name)
	if err != nil {
		ws.Close(websocket.StatusInternalError, "")
		return false, err
	}
	if err := l.writeHello(hctx, ws, id, peer, received.ReceivedSeq, theirs.nonce); err != nil {
		return false, err
	}
	return true, l.serve(ctx, ws, id, peer, theirs.seq)
}

type hello struct {
	seq   uint64
	nonce string
}

func (l *Links) verifier(ctx context.Context, id aramaki.ServerIdentity) wire.PeerVerifier {
	return wire.PeerVerifier{Self: id.ID, Now: l.now(), MaxSkew: l.MaxSkew, Key: func(server, keyID string) (ed25519.PublicKey, bool) {
		p, err := l.Svc.PeerByServer(ctx, server)
		if err != nil {
			return nil, false
		}
		return p.Key(keyID)
	}}
}

// sessionKeys is a session's copy of its peer's keys, so that opening a
// message does not read the store: it is read again when a message names
// a key the copy lacks (the peer rotated) or the copy is older than
// keysFresh (the peer may have been removed, or lost a key).
type sessionKeys struct {
	svc    *service.Service
	server string

	mu     sync.Mutex
	peer   aramaki.Peer
	loaded time.Time
}

func newSessionKeys(svc *service.Service, peer aramaki.Peer) *sessionKeys {
	return &sessionKeys{svc: svc, server: peer.Server, peer: peer, loaded: time.Now()}
}

func (k *sessionKeys) key(ctx context.Context, server, keyID string) (ed25519.PublicKey, bool) {
	if server != k.server { // not this link's peer: refused further on
		p, err := k.svc.PeerByServer(ctx, server)
		if err != nil {
			return nil, false
		}
		return p.Key(keyID)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if pub, ok := k.peer.Key(keyID); ok && time.Since(k.loaded) < keysFresh {
		return pub, true
	}
	p, err := k.svc.PeerByServer(ctx, server)
	if err != nil {
		return nil, false
	}
	k.peer, k.loaded = p, time.Now()
	return p.Key(keyID)
}

// inParallel calls fn for every i below n, spread over the cores:
// signing and checking signatures is most of a busy link's work.
func inParallel(n int, fn func(i int)) {
	workers := min(n/8, runtime.GOMAXPROCS(0)) // a few frames are not worth a goroutine
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	per := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(func() {
			for i := w * per; i < min(n, (w+1)*per); i++ {
				fn(i)
			}
		})
	}
	for i := range per {
		fn(i)
	}
	wg.Wait()
}

// readHello reads the hello a peer must start with, and checks its nonce
// when nonce is not empty. A hello signed by a key of the peer's this
// server does not know opens only through the hello's key chain from a key
// it knows (wire.OpenPeerHello); the keys it makes known are stored, on
// the timeline, once the hello has checked out.
func (l *Links) readHello(ctx context.Context, ws *websocket.Conn, id aramaki.ServerIdentity, peer aramaki.Peer, nonce string) (hello, error) {
	_, frame, err := ws.Read(ctx)
	if err != nil {
		return hello{}, fmt.Errorf("read hello: %w", err)
	}
	m, h, learned, err := wire.OpenPeerHello(frame, l.verifier(ctx, id))
	if err != nil {
		return hello{}, err
	}
	if m.Origin != peer.Server {
		return hello{}, fmt.Errorf("expected a hello from %s, got one from %s", peer.Server, m.Origin)
	}
	if nonce != "" && h.Nonce != nonce {
		return hello{}, errors.New("the hello does not carry this connection's nonce: recorded from another")
	}
	if len(learned) > 0 {
		if err := l.Svc.PeerShowedKeys(ctx, peer, learned); err != nil {
			return hello{}, fmt.Errorf("store the keys the peer showed: %w", err)
		}
		l.Log.Info("peer rotated its key", "peer", peer.Name, "key", aramaki.KeyID(learned[len(learned)-1]))
	}
	return hello{seq: m.Seq, nonce: h.Nonce}, nil
}

// keyChain is this server's key chain as a hello shows it: its keys
// oldest first, the current one last, each after the first endorsed by
// the one before; it goes back as far as the endorsements do, and
// wire.MaxPeerKeys keys at most.
func keyChain(id aramaki.ServerIdentity) []wire.PeerKeyLink {
	n := 1 // id.Keys is current first, then by age
	for n < len(id.Keys) && n < wire.MaxPeerKeys && len(id.Keys[n-1].Endorsement) > 0 {
		n++
	}
	chain := make([]wire.PeerKeyLink, n)
	for i := range n {
		k := id.Keys[n-1-i]
		chain[i] = wire.PeerKeyLink{PublicKey: k.Public}
		if i > 0 {
			chain[i].Endorsement = k.Endorsement
		}
	}
	return chain
}

func (l *Links) writeHello(ctx context.Context, ws *websocket.Conn, id aramaki.ServerIdentity, peer aramaki.Peer, received uint64, nonce string) error {
	body, err := json.Marshal(wire.PeerHello{Nonce: nonce, Keys: keyChain(id)})
	if err != nil {
		return err
	}
	frame, err := wire.SignPeerMessage(wire.PeerMessage{ID: wire.PeerMessageID(id.ID, wire.KindHello, received), Origin: id.ID, Recipient: peer.Server,
		Seq: received, Sent: l.now(), Kind: wire.KindHello, Body: body}, id.Current().Private)
	if err != nil {
		return err
	}
	return ws.Write(ctx, websocket.MessageText, frame)
}

// Handler accepts links from peers.
func (l *Links) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.init()
		ctx := r.Context()
		claimed := r.URL.Query().Get("server")
		if !wire.ValidServerID(claimed) {
			http.Error(w, "name the dialling server: ?server=srv_…", http.StatusBadRequest)
			return
		}
		peer, err := l.Svc.PeerByServer(ctx, claimed)
		if err != nil {
			http.Error(w, "not a peer of this server", http.StatusForbidden)
			return
		}
		id, err := l.Svc.Identity(ctx)
		if err != nil {
			http.Error(w, "", http.StatusInternalServerError)
			return
		}
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{wire.FederationSubprotocol}})
		if err != nil {
			return
		}
		ws.SetReadLimit(wire.MaxPeerFrameSize)
		if ws.Subprotocol() != wire.FederationSubprotocol {
			ws.Close(websocket.StatusProtocolError, "speak "+wire.FederationSubprotocol)
			return
		}
		received, err := l.Svc.PeerLinkState(ctx, peer.Name)
		if err != nil {
			ws.Close(websocket.StatusInternalError, "")
			return
		}
		nonce := make([]byte, 24)
		if _, err := cryptoRead(nonce); err != nil {
			ws.Close(websocket.StatusInternalError, "")
			return
		}
		want := base64.RawURLEncoding.EncodeToString(nonce)
		hctx, cancel := context.WithTimeout(ctx, helloTimeout)
		defer cancel()
		if err := l.writeHello(hctx, ws, id, peer, received.ReceivedSeq, want); err != nil {
			return
		}
		theirs, err := l.readHello(hctx, ws, id, peer, want)
		if err != nil || theirs.nonce != want {
			l.Log.Warn("refused a peer link", "peer", peer.Name, "err", err)
			ws.Close(websocket.StatusPolicyViolation, "bad hello")
			return
		}
		if err := l.serve(ctx, ws, id, peer, theirs.seq); err != nil {
			l.Log.Info("peer link ended", "peer", peer.Name, "err", err)
		}
	})
}

var cryptoRead = crand.Read

// session is one live link with a peer.
type session struct {
	cancel context.CancelCauseFunc
	key    string // the id of the key it signs with
}

// opened is a message from the peer, opened: an ack, or a message to store.
type opened struct {
	ack bool
	msg service.PeerMessage
}

// openFrame checks a frame the peer sent and decodes what its messages
// bring. A frame is taken whole or not at all.
func openFrame(frame []byte, v wire.PeerVerifier, peer aramaki.Peer) ([]opened, error) {
	ms, err := wire.OpenPeerFrame(frame, v)
	if err == nil && ms[0].Origin != peer.Server {
		err = fmt.Errorf("a message from %s on the link of %s", ms[0].Origin, peer.Server)
	}
	if err != nil {
		return nil, fmt.Errorf("refused a message: %w", err)
	}
	out := make([]opened, len(ms))
	for i, m := range ms {
		if out[i], err = openMessage(m); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// openMessage decodes the body of one message of a running link.
func openMessage(m wire.PeerMessage) (opened, error) {
	pm := service.PeerMessage{Seq: m.Seq}
	switch {
	case m.Kind == wire.KindAck:
		return opened{ack: true, msg: pm}, nil
	case m.Kind == wire.KindEvent:
		e, err := wire.DecodePeerEvent(m.Body)
		if err != nil {
			return opened{}, fmt.Errorf("message %d: %w", m.Seq, err)
		}
		pm.Events = []aramaki.RemoteEvent{{ID: e.ID, Time: e.Time, Kind: aramaki.EventKind(e.Kind), Systems: e.Systems, Summary: e.Summary}}
	case m.Kind == wire.KindStatus:
		st, err := wire.DecodePeerStatus(m.Body)
		if err != nil {
			return opened{}, fmt.Errorf("message %d: %w", m.Seq, err)
		}
		status, _ := aramaki.ParseStatus(st.Status)
		pm.Statuses = []aramaki.RemoteStatus{{System: st.System, Status: status, Since: st.Since}}
	case m.Kind == wire.KindGrant:
		gs, err := wire.DecodePeerGrants(m.Body)
		if err != nil {
			return opened{}, fmt.Errorf("message %d: %w", m.Seq, err)
		}
		pm.GrantsTold, pm.Grants = true, make([]aramaki.ReceivedGrant, len(gs.Grants))
		for i, g := range gs.Grants {
			kinds := make([]aramaki.GrantKind, len(g.Kinds))
			for j, k := range g.Kinds {
				kinds[j] = aramaki.GrantKind(k)
			}
			pm.Grants[i] = aramaki.ReceivedGrant{ID: g.ID, Systems: g.Systems, Kinds: kinds, Actions: g.Actions, Until: g.Until}
		}
	case m.Kind == wire.KindAction || m.Kind == wire.KindActionResult:
		if err := openAction(m, &pm); err != nil {
			return opened{}, err
		}
	case !m.Kind.Outbox():
		return opened{}, fmt.Errorf("unexpected %s in a running link", m.Kind)
	}
	return opened{msg: pm}, nil
}

// inFlight is what a sender has sent and the peer not yet acknowledged:
// the window counts these, not the numbers between, since withheld
// messages are numbered but never sent.
type inFlight struct {
	mu    sync.Mutex
	acked uint64   // the peer's last acknowledgement
	seqs  []uint64 // sent after acked, in order
	moved chan struct{}
}

// ack moves the acknowledgement and forgets what it covers.
func (f *inFlight) ack(seq uint64) {
	f.mu.Lock()
	f.acked = max(f.acked, seq)
	n := 0
	for n < len(f.seqs) && f.seqs[n] <= f.acked {
		n++
	}
	f.seqs = f.seqs[n:]
	f.mu.Unlock()
	select {
	case f.moved <- struct{}{}:
	default:
	}
}

// sent records messages put on the wire; ahead says how many are waiting
// for an acknowledgement, and the last acknowledged.
func (f *inFlight) sent(seqs ...uint64) {
	f.mu.Lock()
	for _, s := range seqs {
		if s > f.acked {
			f.seqs = append(f.seqs, s)
		}
	}
	f.mu.Unlock()
}

func (f *inFlight) ahead() (int, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seqs), f.acked
}

// serve runs a link until it breaks: sends the outbox from after the
// peer's last stored message, stores what the peer sends, acknowledges.
func (l *Links) serve(ctx context.Context, ws *websocket.Conn, id aramaki.ServerIdentity, peer aramaki.Peer, theirReceived uint64) (err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer ws.CloseNow()
	l.mu.Lock()
	if old := l.sessions[peer.Server]; old != nil {
		old.cancel(errors.New("a newer connection with the peer replaced this one")) // the newer connection wins
	}
	me := &session{cancel: cancel, key: id.Current().ID}
	l.sessions[peer.Server] = me
	l.Svc.LinkUp(peer.Server) // under l.mu: up and down are told in order
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.sessions[peer.Server] == me {
			delete(l.sessions, peer.Server)
			l.Svc.LinkDown(peer.Server, err)
		}
		l.mu.Unlock()
	}()
	l.Log.Info("peer link up", "peer", peer.Name, "server", peer.Server)

	out := make(chan []byte, 64)
	frames := make(chan []byte, openBatch)
	incoming := make(chan service.PeerMessage, applyBatch)
	flight := &inFlight{acked: theirReceived, moved: make(chan struct{}, 1)}
	errs := make(chan error, 8) // one from each goroutine at most
	key := id.Current().Private
	keys := newSessionKeys(l.Svc, peer)

	// The writer: one goroutine writes frames.
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case frame := <-out:
				if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
					errs <- fmt.Errorf("write: %w", err)
					return
				}
			}
		}
	}()
	// The reader: one goroutine reads frames.
	go func() {
		for {
			_, frame, err := ws.Read(ctx)
			if err != nil {
				errs <- fmt.Errorf("read: %w", err)
				return
			}
			select {
			case frames <- frame:
			case <-ctx.Done():
				return
			}
		}
	}()
	// The heartbeat: a ping every PingEvery. A peer that does not answer
	// within PingTimeout is gone without closing TCP (a cut cable, a
	// paused VM): the session ends at once, with no close handshake it
	// would not answer either, and the dialling side dials again.
	go func() {
		every, wait := cmp.Or(l.PingEvery, PingEvery), cmp.Or(l.PingTimeout, PingTimeout)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(ctx, wait)
			err := ws.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("the peer did not answer a ping within %s: %w", wait, err) // before the reader's error that closing brings
				ws.CloseNow()
				return
			}
		}
	}()
	// The opener: opens what was read, several frames at once spread over
	// the cores, and hands it on in order: acks move the window, the rest
	// goes to the applier.
	go func() {
		batch := make([][]byte, 0, openBatch)
		got := make([][]opened, openBatch)
		failed := make([]error, openBatch)
		for {
			batch = batch[:0]
			select {
			case <-ctx.Done():
				return
			case f := <-frames:
				batch = append(batch, f)
			}
		more:
			for len(batch) < openBatch {
				select {
				case f := <-frames:
					batch = append(batch, f)
				default:
					break more
				}
			}
			v := wire.PeerVerifier{Self: id.ID, Now: l.now(), MaxSkew: l.MaxSkew, Key: func(server, keyID string) (ed25519.PublicKey, bool) {
				return keys.key(ctx, server, keyID)
			}}
			inParallel(len(batch), func(i int) { got[i], failed[i] = openFrame(batch[i], v, peer) })
			for i := range batch {
				if failed[i] != nil {
					errs <- failed[i]
					return
				}
				for _, o := range got[i] {
					if o.ack {
						if err := l.Svc.PeerAcked(ctx, peer.Name, o.msg.Seq); err != nil {
							errs <- fmt.Errorf("ack %d: %w", o.msg.Seq, err)
							return
						}
						flight.ack(o.msg.Seq)
						continue
					}
					select {
					case incoming <- o.msg:
					case <-ctx.Done():
						return
					}
				}
				got[i] = nil
			}
		}
	}()
	// The applier: stores what arrived in batches, then acknowledges.
	go func() {
		for {
			var batch []service.PeerMessage
			select {
			case <-ctx.Done():
				return
			case m := <-incoming:
				batch = append(batch, m)
			}
		more:
			for len(batch) < applyBatch {
				select {
				case m := <-incoming:
					batch = append(batch, m)
				default:
					break more
				}
			}
			last, err := l.Svc.PeerReceived(ctx, peer, batch)
			if err != nil {
				errs <- fmt.Errorf("store: %w", err)
				return
			}
			frame, err := wire.SignPeerMessage(wire.PeerMessage{ID: wire.PeerMessageID(id.ID, wire.KindAck, last), Origin: id.ID, Recipient: peer.Server,
				Seq: last, Sent: l.now(), Kind: wire.KindAck}, key)
			if err != nil {
				errs <- err
				return
			}
			select {
			case out <- frame:
			case <-ctx.Done():
				return
			}
		}
	}()
	// The sender: the outbox from after what the peer stored, up to
	// Window messages ahead of its acknowledgements, many messages to a
	// signed frame.
	go func() {
		next := theirReceived
		for {
			wake := l.woken()
			ahead, acked := flight.ahead()
			next = max(next, acked) // an acknowledgement is never behind what was read
			if ahead >= Window {
				select {
				case <-ctx.Done():
					return
				case <-flight.moved:
				}
				continue
			}
			msgs, through, err := l.Svc.PeerOutbox(ctx, peer.Name, next, min(sendBatch, Window-ahead))
			if err != nil {
				errs <- fmt.Errorf("outbox: %w", err)
				return
			}
			if len(msgs) > 0 {
				sent := l.now()
				batch := make([]wire.PeerMessage, len(msgs))
				seqs := make([]uint64, len(msgs))
				for i, m := range msgs {
					batch[i] = wire.PeerMessage{ID: wire.PeerMessageID(id.ID, wire.PeerKind(m.Kind), m.Seq), Origin: id.ID,
						Recipient: peer.Server, Seq: m.Seq, Sent: sent, Kind: wire.PeerKind(m.Kind), Body: m.Body}
					seqs[i] = m.Seq
				}
				signed, err := wire.SignPeerFrames(batch, key)
				if err != nil {
					errs <- err
					return
				}
				flight.sent(seqs...)
				for _, frame := range signed {
					select {
					case out <- frame:
					case <-ctx.Done():
						return
					}
				}
			}
			if through > next {
				next = through // withheld messages are passed over
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-wake:
			}
		}
	}()
	select {
	case <-ctx.Done():
		ws.Close(websocket.StatusGoingAway, "")
		return context.Cause(ctx)
	case err := <-errs:
		ws.Close(websocket.StatusPolicyViolation, clip(err.Error(), 100))
		return err
	}
}
