// Package netfault puts a TCP proxy with faults between a test's client and
// its server, on loopback: it forwards every byte unchanged in both
// directions, TLS included, and on the test's word cuts every connection
// with a reset, refuses new ones until healed, delays what passes, drops
// everything without closing anything (a black hole), or does all of that
// at random while the test runs.
package netfault

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A Proxy forwards the connections it accepts on loopback to one target
// address, and breaks or slows them when told. It is safe for concurrent
// use; it is closed when its test ends.
type Proxy struct {
	target  string
	ln      net.Listener
	closing chan struct{} // closed by Close
	once    sync.Once
	wg      sync.WaitGroup // every goroutine of the proxy's

	delay atomic.Int64 // a time.Duration added to every chunk
	hole  atomic.Bool  // drop every chunk

	mu     sync.Mutex
	cut    bool
	closed bool
	links  map[*link]struct{}

	accepted, refused, cuts, broken, toTarget, fromTarget, dropped atomic.Int64
}

// Stats counts what a proxy did since it started.
type Stats struct {
	Accepted   int64 // connections taken in and forwarded to the target
	Refused    int64 // connections reset at once because the proxy was cut
	Cuts       int64 // calls to Cut, the test's and Chaos's
	Broken     int64 // open connections a cut reset
	ToTarget   int64 // bytes written to the target
	FromTarget int64 // bytes written back to the clients
	Dropped    int64 // bytes a black hole swallowed
}

// At most this many bytes wait in each direction of a connection; beyond
// that the sender is held back, as a real link's buffers would hold it.
// It bounds memory, not throughput: a delay of 100 ms still lets 80 MB/s
// through.
const maxQueued = 8 << 20

// MustStart starts a proxy on 127.0.0.1 in front of target, a
// "host:port" on loopback. Dial Addr instead of target.
func MustStart(t testing.TB, target string) *Proxy {
	t.Helper()
	host, _, err := net.SplitHostPort(target)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		t.Fatalf("netfault: target %q is not a host:port on loopback", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{
		target:  target,
		ln:      ln,
		closing: make(chan struct{}),
		links:   map[*link]struct{}{},
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut resets every open connection, on both sides at once (linger 0: the
// peers read "connection reset", not an orderly end), and resets every new
// one as soon as it is accepted, until Heal. The listener stays open, so
// a client dialing while cut sees the reset either from connect or from
// its first read, depending on which comes first.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	p.cuts.Add(1)
	for _, l := range links {
		if l.abort() {
			p.broken.Add(1)
		}
	}
}

// Heal lets new connections through again after Cut, and bytes after
// Blackhole.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	p.hole.Store(false)
}

// Blackhole drops every byte read from now on, in both directions, of open
// connections and new ones alike, and passes on no end or reset either,
// until Heal: as a cut cable or a paused machine looks to both ends, which
// learn of it only by a timeout of their own. A connection whose end was
// swallowed stays open on the other side until Cut or Close. New connections are still accepted. Bytes lost
// stay lost after Heal: a stream that carried some is broken for good.
func (p *Proxy) Blackhole() {
	p.hole.Store(true)
}

// Delay holds every chunk read from now on for d before writing it on,
// in each direction, in the order the chunks came. Chunks do not wait for
// each other: the delay adds latency, not a limit on throughput. Zero
// turns it off.
func (p *Proxy) Delay(d time.Duration) {
	p.delay.Store(int64(max(d, 0)))
}

// Chaos breaks the proxy at random until ctx ends or the proxy closes:
// each round it waits between every/2 and 3*every/2, cuts, stays cut for
// up to down, heals and sets a delay of up to maxDelay. The rounds follow
// from r alone, so a seed replays them; Chaos owns r from now on. When it
// stops it heals the proxy and turns the delay off, then closes the
// channel it returned.
func (p *Proxy) Chaos(ctx context.Context, r *rand.Rand, every, down, maxDelay time.Duration) <-chan struct{} {
	if every <= 0 || down < 0 || maxDelay < 0 {
		panic("netfault: Chaos needs every > 0, down >= 0 and maxDelay >= 0")
	}
	stopped := make(chan struct{})
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		close(stopped)
		return stopped
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(stopped)
		defer func() {
			p.Heal()
			p.Delay(0)
		}()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		sleep := func(d time.Duration) bool {
			timer.Reset(d)
			select {
			case <-timer.C:
				return true
			case <-ctx.Done():
			case <-p.closing:
			}
			return false
		}
		for {
			f := nextFault(r, every, down, maxDelay)
			if !sleep(f.after) {
				return
			}
			p.Cut()
			if !sleep(f.down) {
				return
			}
			p.Heal()
			p.Delay(f.delay)
		}
	}()
	return stopped
}

// A fault is one round of Chaos.
type fault struct {
	after, down, delay time.Duration
}

// nextFault draws a round's three numbers up front, so that when the
// rounds end does not change which numbers the next seed gives.
func nextFault(r *rand.Rand, every, down, maxDelay time.Duration) fault {
	return fault{
		after: every/2 + time.Duration(r.Int64N(int64(every))),
		down:  time.Duration(r.Int64N(int64(down) + 1)),
		delay: time.Duration(r.Int64N(int64(maxDelay) + 1)),
	}
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Accepted:   p.accepted.Load(),
		Refused:    p.refused.Load(),
		Cuts:       p.cuts.Load(),
		Broken:     p.broken.Load(),
		ToTarget:   p.toTarget.Load(),
		FromTarget: p.fromTarget.Load(),
		Dropped:    p.dropped.Load(),
	}
}

// Close stops listening, resets every open connection and stops Chaos; it
// returns once every goroutine of the proxy's has ended.
func (p *Proxy) Close() {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		links := make([]*link, 0, len(p.links))
		for l := range p.links {
			links = append(links, l)
		}
		p.mu.Unlock()
		close(p.closing)
		p.ln.Close()
		for _, l := range links {
			l.abort()
		}
		p.wg.Wait()
	})
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.closing:
				return
			case <-time.After(10 * time.Millisecond): // out of file descriptors, say: try again
				continue
			}
		}
		l := p.admit(c)
		if l == nil {
			p.refused.Add(1)
			reset(c)
			continue
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.serve(l)
	}
}

// admit registers a new connection, unless the proxy is cut or closed.
func (p *Proxy) admit(c net.Conn) *link {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &link{client: c, ctx: ctx, cancel: cancel}
	p.links[l] = struct{}{}
	return l
}

// serve dials the target for one client and pumps both directions until
// both have ended or the link is aborted.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
		l.cancel()
	}()
	var d net.Dialer
	server, err := d.DialContext(l.ctx, "tcp", p.target)
	if err != nil {
		l.abort()
		return
	}
	if !l.connected(server) {
		reset(server)
		return
	}
	up, down := newQueue(), newQueue()
	var pumps sync.WaitGroup
	pumps.Add(4)
	go func() { defer pumps.Done(); p.read(l, l.client, up) }()
	go func() { defer pumps.Done(); p.write(l, up, server, &p.toTarget) }()
	go func() { defer pumps.Done(); p.read(l, server, down) }()
	go func() { defer pumps.Done(); p.write(l, down, l.client, &p.fromTarget) }()
	pumps.Wait()
	if l.finish() {
		l.client.Close()
		server.Close()
	}
}

// read queues what src sends, each chunk stamped with when it is due.
func (p *Proxy) read(l *link, src net.Conn, q *queue) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.hole.Load() {
			p.dropped.Add(int64(n))
			if err != nil {
				return // nor does an end or a reset pass: the other side is left waiting
			}
			continue
		}
		if n > 0 {
			due := time.Now().Add(time.Duration(p.delay.Load()))
			if !q.push(l.ctx.Done(), chunk{data: bytes.Clone(buf[:n]), due: due}) {
				return
			}
		}
		if err == io.EOF {
			q.end()
			return
		}
		if err != nil {
			l.abort()
			return
		}
	}
}

// write writes the queued chunks to dst, each when it is due, and passes
// the end of the stream on as a half close.
func (p *Proxy) write(l *link, q *queue, dst net.Conn, written *atomic.Int64) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		c, ok := q.pop(l.ctx.Done())
		if !ok {
			if l.ctx.Err() == nil {
				dst.(*net.TCPConn).CloseWrite()
			}
			return
		}
		if wait := time.Until(c.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-l.ctx.Done():
				return
			}
		}
		n, err := dst.Write(c.data)
		written.Add(int64(n))
		if err != nil {
			l.abort()
			return
		}
	}
}

// A link is one client's connection and the proxy's own to the target.
type link struct {
	client net.Conn
	ctx    context.Context // ends when the link is aborted
	cancel context.CancelFunc

	mu     sync.Mutex
	server net.Conn // nil while dialing
	over   bool     // aborted or finished
}

// connected records the connection to the target, unless the link was
// aborted while dialing.
func (l *link) connected(server net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over {
		return false
	}
	l.server = server
	return true
}

// abort resets both connections and says whether they were still open.
func (l *link) abort() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over {
		return false
	}
	l.over = true
	l.cancel()
	reset(l.client)
	if l.server != nil {
		reset(l.server)
	}
	return true
}

// finish marks a link whose both directions ended in order, and says
// whether it was not aborted meanwhile.
func (l *link) finish() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over {
		return false
	}
	l.over = true
	return true
}

// reset closes c so that its peer reads a reset rather than an end.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

type chunk struct {
	data []byte
	due  time.Time
}

// A queue holds one direction's chunks between its reader and its writer.
type queue struct {
	mu     sync.Mutex
	chunks []chunk
	size   int           // bytes in chunks
	ended  bool          // the reader saw the end of the stream
	ready  chan struct{} // a chunk or the end came
	room   chan struct{} // a chunk left
}

func newQueue() *queue {
	return &queue{ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// push adds c once there is room, or gives up when done closes.
func (q *queue) push(done <-chan struct{}, c chunk) bool {
	for {
		q.mu.Lock()
		if q.size < maxQueued {
			q.chunks = append(q.chunks, c)
			q.size += len(c.data)
			q.mu.Unlock()
			signal(q.ready)
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-done:
			return false
		}
	}
}

func (q *queue) end() {
	q.mu.Lock()
	q.ended = true
	q.mu.Unlock()
	signal(q.ready)
}

// pop takes the oldest chunk, waiting for one; false means the stream
// ended and every chunk was taken, or done closed.
func (q *queue) pop(done <-chan struct{}) (chunk, bool) {
	for {
		q.mu.Lock()
		if len(q.chunks) > 0 {
			c := q.chunks[0]
			q.chunks[0] = chunk{}
			q.chunks = q.chunks[1:]
			q.size -= len(c.data)
			q.mu.Unlock()
			signal(q.room)
			return c, true
		}
		ended := q.ended
		q.mu.Unlock()
		if ended {
			return chunk{}, false
		}
		select {
		case <-q.ready:
		case <-done:
			return chunk{}, false
		}
	}
}

// signal wakes the one goroutine that may wait on ch, now or when it next
// waits.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
