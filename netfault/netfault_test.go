package netfault

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestBytesPassBothWaysUnchanged(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(fmt.Sprintf("delay %v", delay), func(t *testing.T) {
			t.Parallel()
			up, down := mustRandom(t, 4<<20), mustRandom(t, 3<<20+17)
			received := make(chan [32]byte, 1)
			target := mustServe(t, func(c net.Conn) {
				go func() {
					c.Write(down)
					c.(*net.TCPConn).CloseWrite()
				}()
				h := sha256.New()
				io.Copy(h, c)
				received <- [32]byte(h.Sum(nil))
			})
			p := MustStart(t, target)
			p.Delay(delay)

			c := mustDial(t, p.Addr())
			go func() {
				c.Write(up)
				c.(*net.TCPConn).CloseWrite()
			}()
			h := sha256.New()
			if _, err := io.Copy(h, c); err != nil {
				t.Fatalf("read from the target: %v", err)
			}
			if [32]byte(h.Sum(nil)) != sha256.Sum256(down) {
				t.Errorf("the client received other bytes than the target sent")
			}
			select {
			case sum := <-received:
				if sum != sha256.Sum256(up) {
					t.Errorf("the target received other bytes than the client sent")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the target never saw the end of the client's bytes")
			}
			s := p.Stats()
			if s.Accepted != 1 || s.ToTarget != int64(len(up)) || s.FromTarget != int64(len(down)) {
				t.Errorf("stats %+v; want 1 accepted, %d bytes to the target and %d back", s, len(up), len(down))
			}
		})
	}
}

func TestTLSPassesThroughUntouched(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s", map[bool]string{true: "TLS", false: "clear text"}[r.TLS != nil])
	}))
	t.Cleanup(srv.Close)
	p := MustStart(t, srv.Listener.Addr().String())

	// The client checks the server's own certificate, for 127.0.0.1.
	res, err := srv.Client().Get("https://" + p.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || string(body) != "hello over TLS" {
		t.Fatalf("GET through the proxy: %q, %v; want hello over TLS", body, err)
	}
}

func TestCutResetsOpenConnectionsAndRefusesNewOnesUntilHeal(t *testing.T) {
	t.Parallel()
	e := mustEcho(t)
	p := MustStart(t, e.addr)
	c := mustDial(t, p.Addr())
	mustRoundTrip(t, c, "before the cut")

	p.Cut()
	if err := mustReadError(t, c); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the client's read after the cut: %v; want a reset", err)
	}
	select {
	case err := <-e.ended:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the target's read after the cut: %v; want a reset", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the target's connection outlived the cut")
	}

	// The reset may come before connect returns, or on the first read.
	refused, err := net.Dial("tcp", p.Addr())
	if err == nil {
		t.Cleanup(func() { refused.Close() })
		err = mustReadError(t, refused)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a connection made while cut: %v; want a reset", err)
	}
	if n := e.accepted.Load(); n != 1 {
		t.Errorf("the target accepted %d connections; want only the one before the cut", n)
	}

	p.Heal()
	mustRoundTrip(t, mustDial(t, p.Addr()), "after healing")
	want := Stats{Accepted: 2, Refused: 1, Cuts: 1, Broken: 1}
	if s := p.Stats(); s.Accepted != want.Accepted || s.Refused != want.Refused || s.Cuts != want.Cuts || s.Broken != want.Broken {
		t.Errorf("stats %+v; want %+v", s, want)
	}
}

func TestDelayAddsLatencyToARoundTrip(t *testing.T) {
	t.Parallel()
	p := MustStart(t, mustEcho(t).addr)
	c := mustDial(t, p.Addr())
	mustRoundTrip(t, c, "connected")

	const d = 50 * time.Millisecond
	p.Delay(d)
	start := time.Now()
	mustRoundTrip(t, c, "ping")
	// The delay applies on the way there and on the way back.
	if rtt := time.Since(start); rtt < 2*d {
		t.Errorf("round trip with a delay of %v each way: %v", d, rtt)
	}

	// Off, an hour's delay lets the next round trip finish in time.
	p.Delay(time.Hour)
	p.Delay(0)
	mustRoundTrip(t, c, "pong")
}

func TestDelayedChunksKeepTheirOrderAndDoNotWaitForEachOther(t *testing.T) {
	t.Parallel()
	p := MustStart(t, mustEcho(t).addr)
	c := mustDial(t, p.Addr())
	mustRoundTrip(t, c, "connected")

	// 100 messages sent 1 ms apart through 100 ms each way are all back
	// about 0.2 s after the last was sent; were each held behind the one
	// before, that would take 7 s or more. Three quarters of the way the
	// delay goes off, and the later messages still may not overtake the
	// earlier ones.
	const d, messages = 100 * time.Millisecond, 100
	p.Delay(d)
	start := time.Now()
	sent := make(chan time.Time, 1)
	go func() {
		for i := range uint32(messages) {
			if i == messages*3/4 {
				p.Delay(0)
			}
			c.Write(binary.BigEndian.AppendUint32(nil, i))
			time.Sleep(time.Millisecond)
		}
		sent <- time.Now()
	}()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, 4*messages)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read the echoes: %v", err)
	}
	back := time.Now()
	for i := range uint32(messages) {
		if n := binary.BigEndian.Uint32(got[4*i:]); n != i {
			t.Fatalf("echo %d is message %d", i, n)
		}
	}
	// At least the first message's way there; its echo may come back
	// when the delay is already off. The sender's own pace, slow on a
	// loaded machine, does not count against the proxy.
	lastSent := <-sent
	if back.Sub(start) < d || back.Sub(lastSent) > 3*time.Second {
		t.Errorf("%d messages through %v each way: back %v after the first was sent and %v after the last",
			messages, d, back.Sub(start), back.Sub(lastSent))
	}
}

func TestChaosCutsRepeatedlyWithinBoundsAndNeverCorrupts(t *testing.T) {
	t.Parallel()
	p := MustStart(t, mustEcho(t).addr)
	c := mustDial(t, p.Addr())
	mustRoundTrip(t, c, "before the chaos")

	const every, down, maxDelay, wantCuts = 40 * time.Millisecond, 20 * time.Millisecond, 10 * time.Millisecond, 5
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	stopped := p.Chaos(ctx, rand.New(rand.NewPCG(7, 11)), every, down, maxDelay)

	// Clients talk all along: whatever comes back before a reset is what
	// they sent, in order.
	var exchanges, resets atomic.Int64
	var clients sync.WaitGroup
	for range 4 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			r := rand.New(rand.NewPCG(rand.Uint64(), 0))
			for ctx.Err() == nil {
				conn, err := net.Dial("tcp", p.Addr())
				if err != nil {
					// Cut, the proxy may reset it before connect returns.
					if !errors.Is(err, syscall.ECONNRESET) {
						t.Errorf("dial the proxy: %v", err)
						return
					}
					resets.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				for ctx.Err() == nil {
					msg := make([]byte, 1+r.IntN(4<<10))
					for i := range msg {
						msg[i] = byte(r.Uint32())
					}
					conn.SetDeadline(time.Now().Add(5 * time.Second))
					_, err := conn.Write(msg)
					got := make([]byte, len(msg))
					n := 0
					if err == nil {
						n, err = io.ReadFull(conn, got)
					}
					if !bytes.Equal(got[:n], msg[:n]) {
						t.Errorf("an echo of %d bytes came back changed", n)
					}
					if err != nil {
						if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) && err != io.EOF && err != io.ErrUnexpectedEOF {
							t.Errorf("an exchange ended with %v; want a reset", err)
						}
						resets.Add(1)
						break
					}
					exchanges.Add(1)
				}
				conn.Close()
			}
		}()
	}

	if err := mustReadError(t, c); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the open connection's read during the chaos: %v; want a reset", err)
	}
	// About a quarter of a second; the deadline is for a loaded machine.
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Cuts < wantCuts; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("only %d cuts after 10 s with one about every %v", p.Stats().Cuts, every)
		}
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Chaos did not stop when its context ended")
	}
	elapsed := time.Since(start)
	clients.Wait()

	// Each round waits at least every/2 before its cut.
	s := p.Stats()
	if s.Cuts > int64(elapsed/(every/2)) {
		t.Errorf("%d cuts in %v with one about every %v", s.Cuts, elapsed, every)
	}
	if s.Broken < 1 {
		t.Errorf("no open connection was broken: %+v", s)
	}
	t.Logf("%+v; %d exchanges, %d ended by a reset", s, exchanges.Load(), resets.Load())

	// Stopped, it is healed and without delay.
	mustRoundTrip(t, mustDial(t, p.Addr()), "after the chaos")
	if d := p.delay.Load(); d != 0 {
		t.Errorf("delay after the chaos: %v", time.Duration(d))
	}
}

func TestChaosReplaysItsSeedWithinBounds(t *testing.T) {
	t.Parallel()
	const every, down, maxDelay = 100 * time.Millisecond, 30 * time.Millisecond, 20 * time.Millisecond
	a, b, other := rand.New(rand.NewPCG(1, 2)), rand.New(rand.NewPCG(1, 2)), rand.New(rand.NewPCG(3, 4))
	differs := false
	for i := range 1000 {
		f := nextFault(a, every, down, maxDelay)
		if g := nextFault(b, every, down, maxDelay); f != g {
			t.Fatalf("round %d: %+v and %+v from the same seed", i, f, g)
		}
		differs = differs || f != nextFault(other, every, down, maxDelay)
		if f.after < every/2 || f.after >= 3*every/2 || f.down < 0 || f.down > down || f.delay < 0 || f.delay > maxDelay {
			t.Fatalf("round %d: %+v out of bounds", i, f)
		}
	}
	if !differs {
		t.Error("another seed gave the same rounds")
	}
}

// Not parallel: it looks at every goroutine of the test binary.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	e := mustEcho(t)
	p := MustStart(t, e.addr)
	// Connections with chunks waiting in the delay, and chaos running.
	p.Delay(time.Hour)
	for range 3 {
		c := mustDial(t, p.Addr())
		c.Write([]byte("held back"))
	}
	p.Chaos(context.Background(), rand.New(rand.NewPCG(1, 1)), time.Hour, time.Hour, time.Hour)
	for deadline := time.Now().Add(5 * time.Second); e.accepted.Load() < 3; {
		if time.Now().After(deadline) {
			t.Fatal("the target never got the 3 connections")
		}
		time.Sleep(time.Millisecond)
	}

	p.Close()
	// Close has waited for them all to be done; the last may still be
	// on its way out.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		left := goroutinesOf("netfault.(*Proxy)", "netfault.(*link)", "netfault.(*queue)")
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Close:\n\n%s", strings.Join(left, "\n\n"))
		}
	}
	p.Close() // again, as the cleanup will
	// The target's goroutines end on the resets; then there are no more
	// goroutines than before, bar the target's listener.
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before+1; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before the test", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

// goroutinesOf returns the stacks of the goroutines running any of funcs.
func goroutinesOf(funcs ...string) []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range funcs {
			if strings.Contains(g, f) {
				found = append(found, g)
				break
			}
		}
	}
	return found
}

// echo is a target that sends back what it reads.
type echo struct {
	addr     string
	accepted atomic.Int64
	ended    chan error // how each connection ended: nil after an orderly end
}

func mustEcho(t testing.TB) *echo {
	t.Helper()
	e := &echo{ended: make(chan error, 100)}
	e.addr = mustServe(t, func(c net.Conn) {
		e.accepted.Add(1)
		// Plain reader and writer: no splice, and the error is the read's.
		_, err := io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c})
		if err == nil {
			c.(*net.TCPConn).CloseWrite()
		}
		select {
		case e.ended <- err:
		default:
		}
	})
	return e
}

// mustServe serves each connection to 127.0.0.1:0 with handle until the
// test ends, and returns the address.
func mustServe(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func mustDial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mustRoundTrip sends msg to an echo and reads it back.
func mustRoundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("send %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

// mustReadError reads from c, where nothing should come, and returns the
// error that ends the read.
func mustReadError(t testing.TB, c net.Conn) error {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n > 0 || err == nil {
		t.Fatalf("read %d bytes, %v; want nothing and an error", n, err)
	}
	return err
}

func mustRandom(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := crand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestABlackholeDropsEverythingAndClosesNothingUntilHeal(t *testing.T) {
	t.Parallel()
	e := mustEcho(t)
	p := MustStart(t, e.addr)
	c := mustDial(t, p.Addr())
	mustRoundTrip(t, c, "connected")

	p.Blackhole()
	if _, err := io.WriteString(c, "lost"); err != nil {
		t.Fatalf("send into the black hole: %v", err)
	}
	// Nothing comes back, and nothing ends: the read times out.
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Read(make([]byte, 16))
	if ne, ok := err.(net.Error); n != 0 || !ok || !ne.Timeout() {
		t.Fatalf("read through a black hole: %d bytes, %v; want a timeout", n, err)
	}
	// A new connection is taken in, and as silent.
	c2 := mustDial(t, p.Addr())
	io.WriteString(c2, "also lost")
	c2.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c2.Read(make([]byte, 16)); n != 0 || err == nil || !err.(net.Error).Timeout() {
		t.Fatalf("a new connection through a black hole: %d bytes, %v", n, err)
	}
	if s := p.Stats(); s.Dropped != int64(len("lost")+len("also lost")) || s.Broken != 0 {
		t.Errorf("stats %+v; want the 13 bytes sent dropped and nothing broken", s)
	}

	// An end is swallowed too: the target does not see the client go.
	c2.Close()
	select {
	case err := <-e.ended:
		t.Fatalf("the target saw a connection end through a black hole: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	// Healed, a new connection works; the old one is open still.
	p.Heal()
	mustRoundTrip(t, mustDial(t, p.Addr()), "healed")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "x"); err != nil {
		t.Errorf("the old connection after Heal: %v", err)
	}
}
