package main_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aramaki/aramaki/pki"
)

// Server A (hoster) runs as two replicas on one PostgreSQL database, behind
// a load balancer: the address its peers know it by, as in a real
// deployment, where a peer's link may land on either replica and must move
// to the other when one dies. Both replicas fill B's outbox from the one
// timeline, share statuses and may send; B (shop, SQLite) stores each
// message once.
//
// Writers post a few thousand notes on A's storage through both replicas
// at once; meanwhile the replica B's link is on is killed with -9. B's link
// comes back through the balancer to the survivor, and in the end B holds
// every note of A's storage exactly once, in the order A numbered them —
// whichever replica wrote it, and whether or not the killed one answered
// its writer.
//
// Were there no balancer, B's operator would point B at the surviving
// replica instead (peering again); a balancer (or a DNS name of every
// replica) is what the peer URL of a server with replicas should be.
func TestFederationWithTwoReplicasOfOneServerSurvivesKill9OfTheOneLinked(t *testing.T) {
	db := MustPostgresDatabase(t)
	lb := MustStartBalancer(t)
	repoA := MustConfigRepo(t, map[string]string{"storage.yaml": "id: storage\ntitle: Storage\n---\nid: billing\ntitle: Billing\n"})
	tlsDir := filepath.Join(t.TempDir(), "tls")
	if err := pki.Ensure(tlsDir, nil); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(tlsDir, pki.CACertFile)
	dataA := []string{t.TempDir(), t.TempDir()}
	type started struct {
		i   int
		p   *process
		err error
	}
	done := make(chan started, 2)
	// The replicas listen on ports of their own; the test talks to each
	// directly, the peer only through the balancer.
	ports := []string{mustFreePort(t), mustFreePort(t)}
	for i, data := range dataA {
		go func() {
			p, err := start(t, data, "The admin API token is in", "server", "--data", data, "--listen", "127.0.0.1:"+ports[i],
				"--config-repo", repoA, "--database", db, "--name", "hoster", "--public-url", "https://"+lb.Addr(),
				"--tls-cert", filepath.Join(tlsDir, pki.ServerCertFile), "--tls-key", filepath.Join(tlsDir, pki.ServerKeyFile), "--log-level", "warn")
			done <- started{i, p, err}
		}()
	}
	replicas := make([]*process, 2)
	for range 2 {
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		replicas[r.i] = r.p
		r.p.url = "https://127.0.0.1:" + ports[r.i]
	}
	token := ""
	for _, data := range dataA {
		if _, err := os.Stat(filepath.Join(data, "admin.token")); err == nil {
			token = filepath.Join(data, "admin.token")
		}
	}
	if token == "" {
		t.Fatal("neither replica wrote the admin token")
	}
	lb.SetBackends("127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1])
	api := []*fedClient{MustReplicaClient(t, replicas[0].url, token, ca), MustReplicaClient(t, replicas[1].url, token, ca)}

	b := MustStartServer(t, MustConfigRepo(t, map[string]string{"shop.yaml": "id: shop\ntitle: Shop\nsubsystems: [storage@hoster]\n"}), "--name", "shop")
	// Invited through one replica, joined through the balancer (either),
	// granted through the other.
	out, err := cliWith(replicas[0].url, token, ca, "peer", "invite", "--name", "shop", "-o", "json")
	if err != nil {
		t.Fatalf("invite: %v\n%s", err, out)
	}
	var inv struct{ Token string }
	mustJSON(t, out, &inv)
	b.MustCLI("peer", "accept", inv.Token)
	if out, err := cliWith(replicas[1].url, token, ca, "grant", "create", "--peer", "shop", "--system", "storage", "--allow", "events,status", "--until", "24h"); err != nil {
		t.Fatalf("grant: %v\n%s", err, out)
	}
	api[0].MustPostNote("storage", "first")
	Eventually(t, 20*time.Second, "the first note on b", func() bool { return len(mustRemoteNotes(b)) == 1 })
	Eventually(t, 20*time.Second, "storage@hoster's status on b", func() bool {
		var status struct {
			Subsystems []struct{ ID, Status string }
		}
		b.MustAPI("GET", "/api/v1/systems/shop/status", nil, &status)
		return len(status.Subsystems) == 1 && status.Subsystems[0].Status == "ok"
	})

	// Four writers on each replica; the one B's link is on dies with -9
	// after a third of the notes.
	const writers, perWriter = 4, 400
	var (
		posted    atomic.Int64
		killed    = make(chan int, 1)
		answered  sync.Map // summaries A answered for
		wg        sync.WaitGroup
		killedOne atomic.Int64
	)
	killedOne.Store(-1)
	for r := range replicas {
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					text := fmt.Sprintf("w%d %06d", r*writers+w, i)
					if err := api[r].PostNote("storage", text); err != nil {
						if int(killedOne.Load()) == r {
							return // its replica is gone: whether this one is stored, A's database says
						}
						t.Errorf("writer %d on replica %d: %v", w, r, err)
						return
					}
					answered.Store(text, true)
					if posted.Add(1) == writers*perWriter*2/3 {
						killed <- lb.Busiest()
					}
				}
			})
		}
	}
	victim := <-killed
	killedOne.Store(int64(victim))
	replicas[victim].cmd.Process.Signal(syscall.SIGKILL)
	replicas[victim].cmd.Wait()
	t.Logf("killed replica %d after %d notes", victim, posted.Load())
	wg.Wait()
	survivor := api[1-victim]
	survivor.MustPostNote("storage", "after the kill")
	Eventually(t, 20*time.Second, "b's link through the surviving replica", func() bool { return lb.Open(1-victim) > 0 })

	// A's storage notes in the order A numbered them, from the database
	// both replicas share.
	want := mustNotesInOrder(t, db)
	answered.Range(func(k, _ any) bool {
		if !containsString(want, k.(string)) {
			t.Errorf("A answered for note %q but does not have it", k)
		}
		return true
	})
	if want[len(want)-1] != "after the kill" {
		t.Fatalf("A's last storage note is %q", want[len(want)-1])
	}
	Eventually(t, 40*time.Second, fmt.Sprintf("all %d notes on b", len(want)), func() bool { return len(mustRemoteNotes(b)) >= len(want) })
	time.Sleep(500 * time.Millisecond) // anything doubled would be here by now
	got := mustRemoteNotes(b)
	if len(got) != len(want) {
		t.Errorf("b has %d notes of storage@hoster, a has %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("b's note %d is %q, a's is %q (b: …%q, a: …%q)", i, got[i], want[i], got[max(0, i-3):min(len(got), i+3)], want[max(0, i-3):min(len(want), i+3)])
		}
	}
	mustBePerWriterOrdered(t, "b", got)
	if all := b.MustCLI("timeline", "--limit", "500"); strings.Contains(all, "invoice") {
		t.Errorf("b learned of billing:\n%s", all)
	}
	// Everything B stored was acknowledged: nothing waits in the outbox.
	Eventually(t, 10*time.Second, "the outbox acknowledged", func() bool {
		var acked, next int64
		mustQueryRow(t, db, `SELECT acked_seq, next_seq FROM peer_links WHERE peer = 'shop'`, &acked, &next)
		return acked == next-1
	})
}

// mustRemoteNotes returns the notes of storage@hoster b stored, in the
// order it stored them.
func mustRemoteNotes(b *server) []string {
	var out []string
	b.mustReadDB(func(db *sql.DB) error {
		rows, err := db.Query(`SELECT summary FROM events WHERE kind = 'note' AND actor = 'peer:hoster' ORDER BY seq`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	return out
}

// mustNotesInOrder returns the storage notes in a PostgreSQL database of
// a server, in the order they were numbered.
func mustNotesInOrder(t *testing.T, db string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT summary FROM events WHERE kind = 'note' AND systems = '["storage"]' ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustQueryRow(t *testing.T, db, query string, dest ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, query).Scan(dest...); err != nil {
		t.Fatal(err)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// MustReplicaClient calls one replica's API as the admin.
func MustReplicaClient(t *testing.T, base, tokenFile, caFile string) *fedClient {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &fedClient{t: t, base: strings.TrimSuffix(base, "/"), token: strings.TrimSpace(string(token)), http: &http.Client{Timeout: 30 * time.Second, Transport: tr}}
}

// balancer is the TCP load balancer an operator puts in front of a
// server's replicas: it hands each connection to the next replica in
// turn, and to another when that one does not take it.
type balancer struct {
	ln net.Listener

	mu       sync.Mutex
	backends []string
	next     int
	conns    map[net.Conn]*balanced // open connections, by client side
}

type balanced struct {
	backend int
	bytes   atomic.Int64
}

// MustStartBalancer listens on 127.0.0.1; SetBackends says where to.
func MustStartBalancer(t *testing.T) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln, conns: map[net.Conn]*balanced{}}
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serve(c)
		}
	}()
	return b
}

func (b *balancer) Addr() string { return b.ln.Addr().String() }

func (b *balancer) SetBackends(addrs ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = addrs
}

func (b *balancer) serve(c net.Conn) {
	defer c.Close()
	b.mu.Lock()
	backends, first := b.backends, b.next
	b.next++
	b.mu.Unlock()
	var (
		target net.Conn
		which  int
		err    error = errors.New("no backends")
	)
	for i := range backends {
		which = (first + i) % len(backends)
		if target, err = net.DialTimeout("tcp", backends[which], time.Second); err == nil {
			break
		}
	}
	if err != nil {
		return
	}
	defer target.Close()
	conn := &balanced{backend: which}
	b.mu.Lock()
	b.conns[c] = conn
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
	}()
	copied := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				conn.bytes.Add(int64(n))
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		copied <- struct{}{}
	}
	go pipe(target, c)
	go pipe(c, target)
	<-copied // either side ended: so does the connection
}

// Open returns how many connections are open to a backend.
func (b *balancer) Open(backend int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.conns {
		if c.backend == backend {
			n++
		}
	}
	return n
}

// Busiest returns the backend whose open connections carried the most:
// the one a peer's link is on.
func (b *balancer) Busiest() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	per := map[int]int64{}
	for _, c := range b.conns {
		per[c.backend] += c.bytes.Load()
	}
	best := 0
	for i, n := range per {
		if n > per[best] {
			best = i
		}
	}
	return best
}
