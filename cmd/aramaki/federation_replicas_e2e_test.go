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
	"slices"
	"strconv"
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
// timeline, share statuses and may send; B (shop) stores each message
// once. B is one server on SQLite, then two replicas on PostgreSQL too.
//
// Writers post a few thousand notes on A's storage through both replicas
// at once; meanwhile the replica of A that carries B's link
// is killed with -9. B's link comes back through the balancer to the
// survivor, and in the end B holds every note of A's storage exactly
// once, in the order A numbered them — whichever replica wrote it, and
// whether or not the killed one answered its writer. When B has two
// replicas, one at a time dials A; it is killed next, and the other takes
// over.
//
// Were there no balancer, B's operator would have to peer again with the
// surviving replica's address: a balancer (or a DNS name of every
// replica) is what the URL of a server with replicas should be.
func TestFederationWithTwoReplicasOfOneServerSurvivesKill9OfTheOneLinked(t *testing.T) {
	for _, bReplicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("peer of %d", bReplicas), func(t *testing.T) {
			t.Parallel()
			testFederationWithReplicas(t, bReplicas)
		})
	}
}

func testFederationWithReplicas(t *testing.T, bReplicas int) {
	lb := MustStartBalancer(t)
	a := MustStartReplicas(t, MustConfigRepo(t, map[string]string{"storage.yaml": "id: storage\ntitle: Storage\n---\nid: billing\ntitle: Billing\n"}),
		"https://"+lb.Addr(), "--name", "hoster")
	lb.SetBackends(a.addrs...)

	var shop peerUnderTest
	repoB := MustConfigRepo(t, map[string]string{"shop.yaml": "id: shop\ntitle: Shop\nsubsystems: [storage@hoster]\n"})
	if bReplicas == 1 {
		shop = sqlitePeer{MustStartServer(t, repoB, "--name", "shop")}
	} else {
		lbB := MustStartBalancer(t)
		b := MustStartReplicas(t, repoB, "https://"+lbB.Addr(), "--name", "shop")
		lbB.SetBackends(b.addrs...)
		shop = b
	}
	// Invited through one replica, joined through the balancer (either),
	// granted through the other.
	var inv struct{ Token string }
	mustJSON(t, a.MustCLI(0, "peer", "invite", "--name", "shop", "-o", "json"), &inv)
	shop.MustCLI(0, "peer", "accept", inv.Token)
	a.MustCLI(1, "grant", "create", "--peer", "shop", "--system", "storage", "--allow", "events,status", "--until", "24h")
	a.api[0].MustPostNote("storage", "first")
	Eventually(t, 20*time.Second, "the first note on b", func() bool { return len(shop.MustNotes(t)) == 1 })
	Eventually(t, 20*time.Second, "storage@hoster's status on b", func() bool {
		var status struct {
			Subsystems []struct{ ID, Status string }
		}
		mustJSON(t, shop.MustCLI(bReplicas-1, "status", "shop", "-o", "json"), &status)
		return len(status.Subsystems) == 1 && status.Subsystems[0].Status == "ok"
	})

	// Four writers on each replica; the one most of B's links are on dies
	// with -9 after a third of the notes.
	const writers, perWriter = 4, 400
	var (
		posted    atomic.Int64
		killed    = make(chan int, 1)
		answered  sync.Map // summaries A answered for
		wg        sync.WaitGroup
		killedOne atomic.Int64
	)
	killedOne.Store(-1)
	for r := range a.procs {
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					text := fmt.Sprintf("w%d %06d", r*writers+w, i)
					if err := a.api[r].PostNote("storage", text); err != nil {
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
	a.procs[victim].cmd.Process.Signal(syscall.SIGKILL)
	a.procs[victim].cmd.Wait()
	var acked, next int64
	mustQueryRow(t, a.db, `SELECT acked_seq, next_seq FROM peer_links WHERE peer = 'shop'`, &acked, &next)
	t.Logf("killed replica %d after %d notes, with %d messages for b not acknowledged", victim, posted.Load(), next-1-acked)
	wg.Wait()
	a.api[1-victim].MustPostNote("storage", "after the kill")
	Eventually(t, 20*time.Second, "b's link through the surviving replica", func() bool { return lb.Open(1-victim) > 0 })

	// A's storage notes in the order A numbered them, from the database
	// both replicas share.
	want := mustSummaries(t, a.db, `kind = 'note' AND systems = '["storage"]'`)
	answered.Range(func(k, _ any) bool {
		if !slices.Contains(want, k.(string)) {
			t.Errorf("A answered for note %q but does not have it", k)
		}
		return true
	})
	if want[len(want)-1] != "after the kill" {
		t.Fatalf("A's last storage note is %q", want[len(want)-1])
	}
	Eventually(t, 40*time.Second, fmt.Sprintf("all %d notes on b", len(want)), func() bool { return len(shop.MustNotes(t)) >= len(want) })
	time.Sleep(500 * time.Millisecond) // anything doubled would be here by now
	got := shop.MustNotes(t)
	if len(got) != len(want) {
		t.Errorf("b has %d notes of storage@hoster, a has %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("b's note %d is %q, a's is %q (b: …%q, a: …%q)", i, got[i], want[i], got[max(0, i-3):min(len(got), i+3)], want[max(0, i-3):min(len(want), i+3)])
		}
	}
	mustBePerWriterOrdered(t, "b", got)
	// One replica of B dials A at a time: two would take the link off
	// each other on the replica of A they both land on, over and over.
	passed := lb.Passed()
	t.Logf("the balancer handed each replica of a %v connections", passed)
	if total := passed[0] + passed[1]; total > 8 {
		t.Errorf("b's links came %d times through the balancer: they took over from each other", total)
	}
	if all := shop.MustCLI(0, "timeline", "--limit", "500"); strings.Contains(all, "invoice") {
		t.Errorf("b learned of billing:\n%s", all)
	}
	// Everything B stored was acknowledged: nothing waits in the outbox.
	Eventually(t, 10*time.Second, "the outbox acknowledged", func() bool {
		mustQueryRow(t, a.db, `SELECT acked_seq, next_seq FROM peer_links WHERE peer = 'shop'`, &acked, &next)
		return acked == next-1
	})

	// Of B's replicas, the one that dials A dies too: the other takes the
	// dial lease over and links, and what A writes meanwhile arrives once.
	b, ok := shop.(*replicaSet)
	if !ok {
		return
	}
	dialer := -1
	for i, p := range b.procs {
		if mustConnectedTo(t, p.cmd.Process.Pid, lb.Addr()) {
			dialer = i
		}
	}
	if dialer < 0 {
		t.Fatal("no replica of b has a link with a")
	}
	b.procs[dialer].cmd.Process.Signal(syscall.SIGKILL)
	b.procs[dialer].cmd.Wait()
	for i := range 200 {
		a.api[1-victim].MustPostNote("storage", fmt.Sprintf("w9 %06d", i))
	}
	want = mustSummaries(t, a.db, `kind = 'note' AND systems = '["storage"]'`)
	Eventually(t, 20*time.Second, "the notes after b's dialler died on b", func() bool { return len(shop.MustNotes(t)) >= len(want) })
	time.Sleep(500 * time.Millisecond)
	if got := shop.MustNotes(t); !slices.Equal(got, want) {
		t.Errorf("after b's dialler died, b has %d notes, a %d, or in another order", len(got), len(want))
	}
	if !mustConnectedTo(t, b.procs[1-dialer].cmd.Process.Pid, lb.Addr()) {
		t.Errorf("b's other replica has no link with a")
	}
}

// mustConnectedTo reports whether a process has a TCP connection
// established to addr (Linux: from /proc).
func mustConnectedTo(t *testing.T, pid int, addr string) bool {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	sockets := map[string]bool{}
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(target, "socket:[") {
			sockets[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	for _, table := range []string{"tcp", "tcp6"} {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			f := strings.Fields(line)
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) < 10 || f[3] != "01" || !sockets[f[9]] {
				continue
			}
			if _, remPort, ok := strings.Cut(f[2], ":"); ok {
				if n, err := strconv.ParseInt(remPort, 16, 32); err == nil && int(n) == p {
					return true
				}
			}
		}
	}
	return false
}

// peerUnderTest is server B, one process or several replicas.
type peerUnderTest interface {
	// MustCLI runs a command as the admin against a replica.
	MustCLI(replica int, args ...string) string
	// MustNotes returns A's storage notes B stored, in the order it
	// stored them.
	MustNotes(t *testing.T) []string
}

type sqlitePeer struct{ *server }

func (s sqlitePeer) MustCLI(_ int, args ...string) string { return s.server.MustCLI(args...) }
func (s sqlitePeer) MustNotes(*testing.T) []string        { return mustRemoteNotes(s.server) }

// replicaSet is a server run as replicas on one PostgreSQL database.
type replicaSet struct {
	t         *testing.T
	db        string
	procs     []*process
	addrs     []string // each replica's host:port
	token, ca string
	api       []*fedClient
}

// MustStartReplicas starts two replicas of a server on a new PostgreSQL
// database, at once, each on a port of its own, serving with one
// certificate of one CA and known to others by publicURL.
func MustStartReplicas(t *testing.T, repo, publicURL string, args ...string) *replicaSet {
	t.Helper()
	rs := &replicaSet{t: t, db: MustPostgresDatabase(t)}
	tlsDir := filepath.Join(t.TempDir(), "tls")
	if err := pki.Ensure(tlsDir, nil); err != nil {
		t.Fatal(err)
	}
	rs.ca = filepath.Join(tlsDir, pki.CACertFile)
	data := []string{t.TempDir(), t.TempDir()}
	type started struct {
		i   int
		p   *process
		err error
	}
	done := make(chan started, len(data))
	for i := range data {
		rs.addrs = append(rs.addrs, "127.0.0.1:"+mustFreePort(t))
		go func() {
			p, err := start(t, data[i], "The admin API token is in", append([]string{"server", "--data", data[i], "--listen", rs.addrs[i],
				"--config-repo", repo, "--database", rs.db, "--public-url", publicURL,
				"--tls-cert", filepath.Join(tlsDir, pki.ServerCertFile), "--tls-key", filepath.Join(tlsDir, pki.ServerKeyFile), "--log-level", "warn"}, args...)...)
			done <- started{i, p, err}
		}()
	}
	rs.procs = make([]*process, len(data))
	for range data {
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		rs.procs[r.i] = r.p
	}
	for _, d := range data {
		if _, err := os.Stat(filepath.Join(d, "admin.token")); err == nil {
			rs.token = filepath.Join(d, "admin.token")
		}
	}
	if rs.token == "" {
		t.Fatal("neither replica wrote the admin token")
	}
	for _, addr := range rs.addrs {
		rs.api = append(rs.api, MustReplicaClient(t, "https://"+addr, rs.token, rs.ca))
	}
	return rs
}

func (rs *replicaSet) MustCLI(replica int, args ...string) string {
	rs.t.Helper()
	out, err := cliWith("https://"+rs.addrs[replica], rs.token, rs.ca, args...)
	if err != nil {
		rs.t.Fatalf("aramaki %s on replica %d: %v\n%s", strings.Join(args, " "), replica, err, out)
	}
	return out
}

func (rs *replicaSet) MustNotes(t *testing.T) []string {
	return mustSummaries(t, rs.db, `kind = 'note' AND actor = 'peer:hoster'`)
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

// mustSummaries returns the summaries of the events in a server's
// PostgreSQL database that match where, in the order they were numbered.
func mustSummaries(t *testing.T, db, where string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT summary FROM events WHERE `+where+` ORDER BY seq`)
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
	passed   []int                  // connections handed to each backend
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
	for len(b.passed) <= which {
		b.passed = append(b.passed, 0)
	}
	b.passed[which]++
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

// Passed returns how many connections each backend was handed.
func (b *balancer) Passed() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.passed)
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
