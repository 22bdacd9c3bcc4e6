package main_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aramaki/aramaki/netfault"
	"github.com/aramaki/aramaki/pki"
)

// A hoster's server provides its storage to two customers' servers, a shop
// and a contractor, that do not know each other. Each customer invited the
// hoster, so the hoster dials them, each through a TCP fault proxy that
// cuts and delays the link again and again while the hoster's storage
// makes events as fast as notes can be posted. Afterwards each customer
// has every storage event exactly once, in the hoster's order, and
// nothing of the other customer's, of the hoster's billing, or of anything
// but what was granted. Then the contractor's grant runs out while events
// flow: from that moment on, nothing more reaches it.
//
// It takes 1.5-2 minutes on two cores: about 50 s to post 100,000 events,
// then 10-60 s for the customers to catch up, since their links spend
// much of the chaos waiting to be dialled again. It runs alone, not in
// parallel: with the other end-to-end tests on the same cores it would
// post fewer events in its minute.
func TestThreeServersShareOnlyTheGrantedSystemEveryEventOnceThroughFaultyLinks(t *testing.T) {
	a := MustStartServer(t, MustConfigRepo(t, map[string]string{
		"storage.yaml": "id: storage\ntitle: Storage\n---\nid: billing-a\ntitle: Billing\n",
	}), "--name", "hoster")
	b, toB := MustStartServerBehindFaults(t, MustConfigRepo(t, map[string]string{
		"shop.yaml": "id: shop\ntitle: Shop\nsubsystems: [storage@hoster]\n---\nid: ledger-b\ntitle: Ledger\n",
	}), "--name", "shopkeeper")
	c, toC := MustStartServerBehindFaults(t, MustConfigRepo(t, map[string]string{
		"site.yaml": "id: site-c\ntitle: Site\nsubsystems: [storage@hoster]\n---\nid: payroll-c\ntitle: Payroll\n",
	}), "--name", "contractor")
	aAPI, bAPI, cAPI := MustFedClient(t, a), MustFedClient(t, b), MustFedClient(t, c)

	// Each customer invites the hoster; the hoster accepts and so dials
	// the customer, through the proxy the customer's invitation points to.
	for _, customer := range []*server{b, c} {
		var inv struct{ Token string }
		mustJSON(t, customer.MustCLI("peer", "invite", "--name", "hoster", "-o", "json"), &inv)
		a.MustCLI("peer", "accept", inv.Token)
	}
	peers := map[string]string{}
	for _, p := range a.MustActivePeers() {
		peers[p.Name] = p.URL
	}
	if peers["shopkeeper"] != "https://"+toB.Addr() || peers["contractor"] != "https://"+toC.Addr() || len(peers) != 2 {
		t.Fatalf("a's peers are not reached through the fault proxies %s and %s: %v", toB.Addr(), toC.Addr(), peers)
	}
	for _, peer := range []string{"shopkeeper", "contractor"} {
		a.MustCLI("grant", "create", "--peer", peer, "--system", "storage", "--allow", "events,status", "--until", "24h")
	}
	aAPI.MustPostNote("storage", "link check")
	for name, s := range map[string]*fedClient{"b": bAPI, "c": cAPI} {
		Eventually(t, 30*time.Second, "the first storage note on "+name, func() bool { return len(s.MustTimeline("system=storage@hoster&kind=note")) == 1 })
	}

	// The flow under chaos. Each round a proxy waits 0.75-2.25 s, cuts
	// every connection and refuses new ones for up to 0.8 s, then delays
	// what passes by up to 80 ms. Eight writers post notes on a's storage
	// for flowFor or until flowTarget, each its own numbered sequence;
	// on a 2-core machine running all three servers and the proxies, the
	// 100,000 take some 50-55 s (about 1,900 a second). Meanwhile everyone
	// also writes what must stay home: a's billing, b's ledger, c's
	// payroll.
	const (
		writers    = 8
		flowFor    = 60 * time.Second
		flowTarget = 100_000
	)
	chaos, stopChaos := context.WithCancel(context.Background())
	defer stopChaos()
	healedB := toB.Chaos(chaos, rand.New(rand.NewPCG(3, 1)), 1500*time.Millisecond, 800*time.Millisecond, 80*time.Millisecond)
	healedC := toC.Chaos(chaos, rand.New(rand.NewPCG(3, 2)), 1500*time.Millisecond, 800*time.Millisecond, 80*time.Millisecond)
	started := time.Now()
	var posted atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(started) < flowFor; i++ {
				if posted.Add(1) > flowTarget {
					posted.Add(-1)
					return
				}
				if err := aAPI.PostNote("storage", fmt.Sprintf("w%d %06d", w, i)); err != nil {
					t.Errorf("writer %d, note %d: %v", w, i, err)
					return
				}
			}
		}()
	}
	for i := 0; time.Since(started) < flowFor && posted.Load() < flowTarget; i++ {
		aAPI.MustPostNote("billing-a", fmt.Sprintf("invoice run %d", i))
		bAPI.MustPostNote("ledger-b", fmt.Sprintf("shopkeeper's own %d", i))
		cAPI.MustPostNote("payroll-c", fmt.Sprintf("contractor's own %d", i))
		time.Sleep(time.Second)
	}
	wg.Wait()
	flowed := time.Since(started)
	stopChaos()
	<-healedB
	<-healedC
	if t.Failed() {
		t.FailNow()
	}
	n := int(posted.Load()) + 1 // and the link check
	t.Logf("%d storage events posted on a in %s (%.0f/s); meanwhile b stored a's messages up to %d, c up to %d; proxy to b: %+v; proxy to c: %+v",
		n, flowed.Round(time.Millisecond), float64(n)/flowed.Seconds(), b.MustReceivedSeq(), c.MustReceivedSeq(), toB.Stats(), toC.Stats())
	for name, p := range map[string]*netfault.Proxy{"b": toB, "c": toC} {
		if st := p.Stats(); st.Cuts < 10 || st.Broken < 3 {
			t.Errorf("the link to %s was hardly disturbed: %+v", name, st)
		}
	}

	want := aAPI.MustTimeline("system=storage&kind=note")
	if len(want) != n {
		t.Fatalf("a's storage has %d notes, %d were posted", len(want), n)
	}
	wantSummaries := summaries(want)
	mustBePerWriterOrdered(t, "a", wantSummaries)
	caughtUp := time.Now()
	for name, s := range map[string]*fedClient{"b": bAPI, "c": cAPI} {
		// The newest is the last to arrive; then the whole of it is compared.
		last := wantSummaries[n-1]
		Eventually(t, 120*time.Second, "a's last storage note on "+name, func() bool {
			newest := s.MustTimelinePage("system=storage@hoster&kind=note&limit=1")
			return len(newest) == 1 && newest[0].Summary == last
		})
		t.Logf("%s caught up %s after the chaos ended", name, time.Since(caughtUp).Round(time.Millisecond))
		got := s.MustTimeline("system=storage@hoster&kind=note")
		mustBePerWriterOrdered(t, name, summaries(got))
		if len(got) != n {
			t.Errorf("%s has %d of a's %d storage events", name, len(got), n)
		}
		for i := range min(len(got), n) {
			if got[i].Summary != want[i].Summary || !got[i].Time.Equal(want[i].Time) {
				t.Errorf("%s's storage event %d is %q at %s; a's is %q at %s", name, i, got[i].Summary, got[i].Time, want[i].Summary, want[i].Time)
				break
			}
		}
	}
	t.Logf("compared %d events on each of b and c with a's, in %s", n, time.Since(caughtUp).Round(time.Millisecond))

	// Nothing else crossed: each customer's whole timeline is its own or
	// a's storage, and nowhere in its database is the other customer, a's
	// billing, or a's other peer; nor is anything of the customers' own
	// systems on a, which they share with no one.
	aID, bID, cID := a.MustIdentity().ID, b.MustIdentity().ID, c.MustIdentity().ID
	for _, side := range []struct {
		name   string
		s      *server
		api    *fedClient
		own    []string
		absent []string
	}{
		{"b", b, bAPI, []string{"shop", "ledger-b"}, []string{"contractor", cID, "payroll-c", "site-c", "invoice run", "billing-a"}},
		{"c", c, cAPI, []string{"site-c", "payroll-c"}, []string{"shopkeeper", bID, "ledger-b", "invoice run", "billing-a"}},
	} {
		for _, e := range side.api.MustTimeline("") {
			for _, sys := range e.Systems {
				if sys != "storage@hoster" && !slices.Contains(side.own, sys) {
					t.Errorf("%s's timeline has %s %q of system %s", side.name, e.Kind, e.Summary, sys)
				}
			}
			if strings.HasPrefix(e.Actor, "peer:") && e.Actor != "peer:hoster" {
				t.Errorf("%s's timeline has %s %q by %s on %v", side.name, e.Kind, e.Summary, e.Actor, e.Systems)
			}
		}
		for _, found := range side.s.MustFindInDatabase(side.absent...) {
			t.Errorf("%s's database holds %q: %s", side.name, found.Text, found.Where)
		}
	}
	for _, found := range a.MustFindInDatabase("ledger-b", "shopkeeper's own", "site-c", "payroll-c", "contractor's own") {
		t.Errorf("a's database holds %q: %s", found.Text, found.Where)
	}
	if found := b.MustFindInDatabase(aID); len(found) == 0 {
		t.Errorf("the database scan finds nothing, not even a's server id on b")
	}

	// The contractor's grant runs out while events flow: everything made
	// after it is absent on c (200 ms are allowed for the clock's grain;
	// a checks the grant when it queues an event and again when it sends
	// it), while b, whose grant goes on, has it all.
	var grants struct {
		Grants []struct{ ID string }
	}
	mustJSON(t, a.MustCLI("grant", "list", "--peer", "contractor", "-o", "json"), &grants)
	for _, g := range grants.Grants {
		a.MustCLI("grant", "revoke", g.ID)
	}
	expiryStart := time.Now().UTC()
	until := time.Now().Add(3 * time.Second).UTC()
	a.MustCLI("grant", "create", "--peer", "contractor", "--system", "storage", "--allow", "events", "--until", until.Format(time.RFC3339Nano))
	made := map[string]time.Time{}
	var mu sync.Mutex
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(until.Add(2 * time.Second)); i++ {
				text := fmt.Sprintf("expiry w%d %05d", w, i)
				e, err := aAPI.PostNoteEvent("storage", text)
				if err != nil {
					t.Errorf("%s: %v", text, err)
					return
				}
				mu.Lock()
				made[text] = e.Time
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	var before, after int
	for _, at := range made {
		switch {
		case at.Before(until):
			before++
		case at.After(until.Add(200 * time.Millisecond)):
			after++
		}
	}
	if before == 0 || after == 0 {
		t.Fatalf("of %d notes, %d were made before the grant ran out and %d well after it", len(made), before, after)
	}
	onB := func() (got []fedEvent) {
		for _, e := range bAPI.MustTimeline("system=storage@hoster&kind=note&since=" + expiryStart.Format(time.RFC3339Nano)) {
			if strings.HasPrefix(e.Summary, "expiry ") {
				got = append(got, e)
			}
		}
		return got
	}
	Eventually(t, 30*time.Second, "every note of the expiry on b", func() bool { return len(onB()) == len(made) })
	time.Sleep(time.Second) // as long again for anything on its way to c
	var onC, late []string
	for _, e := range cAPI.MustTimeline("system=storage@hoster&kind=note&since=" + expiryStart.Format(time.RFC3339Nano)) {
		if !strings.HasPrefix(e.Summary, "expiry ") {
			continue
		}
		onC = append(onC, e.Summary)
		if at := made[e.Summary]; !at.Before(until.Add(200 * time.Millisecond)) {
			late = append(late, fmt.Sprintf("%s made %s after the grant ran out", e.Summary, at.Sub(until)))
		}
	}
	t.Logf("grant expiry: %d notes made before it, %d in the 200 ms after, %d later; c received %d", before, len(made)-before-after, after, len(onC))
	if len(late) > 0 {
		t.Errorf("c received %d notes made after its grant ran out:\n%s", len(late), strings.Join(late, "\n"))
	}
	if len(onC) == 0 {
		t.Errorf("c received none of the %d notes made while its grant was in force", before)
	}
}

// MustStartServerBehindFaults starts a server that tells its peers to
// reach it through a netfault proxy in front of it (--public-url). The
// test itself talks to the server directly.
func MustStartServerBehindFaults(t *testing.T, repo string, args ...string) (*server, *netfault.Proxy) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		port := mustFreePort(t)
		proxy := netfault.MustStart(t, "127.0.0.1:"+port)
		s := &server{t: t, data: filepath.Join(t.TempDir(), "data"), repo: repo,
			args: append([]string{"--public-url", "https://" + proxy.Addr()}, args...)}
		err := s.start("127.0.0.1:" + port)
		if err == nil {
			s.url = "https://127.0.0.1:" + port
			return s, proxy
		}
		// The port was free a moment ago; another may have taken it.
		if !strings.Contains(s.p.output(), "address already in use") || attempt == 5 {
			t.Fatal(err)
		}
		s.p.kill9()
		proxy.Close()
	}
}

func mustFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// fedClient calls a server's API as its admin over one kept-alive client:
// these tests make tens of thousands of calls.
type fedClient struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client
}

func MustFedClient(t *testing.T, s *server) *fedClient {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(s.data, "tls", pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	token, err := os.ReadFile(filepath.Join(s.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &fedClient{t: t, base: s.url, token: strings.TrimSpace(string(token)), http: &http.Client{Timeout: 30 * time.Second, Transport: tr}}
}

func (c *fedClient) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// fedEvent is an event as the timeline API shows it.
type fedEvent struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Actor   string    `json:"actor"`
	Systems []string  `json:"systems"`
	Summary string    `json:"summary"`
}

// PostNoteEvent posts a note on a system and returns its event; it may
// run outside the test's goroutine.
func (c *fedClient) PostNoteEvent(system, text string) (fedEvent, error) {
	var e fedEvent
	err := c.call("POST", "/api/v1/systems/"+url.PathEscape(system)+"/notes", map[string]string{"text": text}, &e)
	return e, err
}

func (c *fedClient) PostNote(system, text string) error {
	_, err := c.PostNoteEvent(system, text)
	return err
}

func (c *fedClient) MustPostNote(system, text string) {
	c.t.Helper()
	if err := c.PostNote(system, text); err != nil {
		c.t.Fatal(err)
	}
}

// MustTimelinePage returns the newest page of the timeline for a query.
func (c *fedClient) MustTimelinePage(query string) []fedEvent {
	c.t.Helper()
	var page struct{ Events []fedEvent }
	if err := c.call("GET", "/api/v1/timeline?"+query, nil, &page); err != nil {
		c.t.Fatal(err)
	}
	return page.Events
}

// MustTimeline returns the whole timeline for a query, every page of it,
// oldest first.
func (c *fedClient) MustTimeline(query string) []fedEvent {
	c.t.Helper()
	var all []fedEvent
	cursor := ""
	for {
		q := url.Values{}
		if query != "" {
			var err error
			if q, err = url.ParseQuery(query); err != nil {
				c.t.Fatal(err)
			}
		}
		q.Set("limit", "500")
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Events     []fedEvent
			NextCursor string `json:"next_cursor"`
		}
		if err := c.call("GET", "/api/v1/timeline?"+q.Encode(), nil, &page); err != nil {
			c.t.Fatal(err)
		}
		all = append(all, page.Events...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	slices.Reverse(all)
	return all
}

func summaries(events []fedEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Summary
	}
	return out
}

// mustBePerWriterOrdered checks that the notes "wN 000123" of each writer
// come in the order the writer posted them, each once, with none left out
// before its last.
func mustBePerWriterOrdered(t *testing.T, where string, notes []string) {
	t.Helper()
	next := map[string]int{}
	for i, s := range notes {
		w, num, ok := strings.Cut(s, " ")
		if !ok || !strings.HasPrefix(w, "w") {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		if n != next[w] {
			t.Errorf("on %s, note %d is %q: writer %s's next was %d", where, i, s, w, next[w])
			return
		}
		next[w]++
	}
}

// MustReceivedSeq is the last message of its one peer the server stored.
func (s *server) MustReceivedSeq() int64 {
	s.t.Helper()
	var seq int64
	s.mustReadDB(func(db *sql.DB) error { return db.QueryRow(`SELECT received_seq FROM peer_links`).Scan(&seq) })
	return seq
}

// dbFinding is where a scan of a server's database found a string.
type dbFinding struct {
	Text  string
	Where string
}

// MustFindInDatabase reads every value of every table of the server's
// SQLite database and says where any of texts occurs.
func (s *server) MustFindInDatabase(texts ...string) []dbFinding {
	s.t.Helper()
	var found []dbFinding
	s.mustReadDB(func(db *sql.DB) error {
		rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
		if err != nil {
			return err
		}
		var tables []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				return err
			}
			tables = append(tables, name)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, table := range tables {
			rows, err := db.Query(`SELECT * FROM "` + table + `"`)
			if err != nil {
				return err
			}
			cols, _ := rows.Columns()
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			for rows.Next() {
				if err := rows.Scan(ptrs...); err != nil {
					rows.Close()
					return err
				}
				for i, v := range vals {
					var text string
					switch v := v.(type) {
					case string:
						text = v
					case []byte:
						text = string(v)
					default:
						continue
					}
					for _, want := range texts {
						if strings.Contains(text, want) {
							found = append(found, dbFinding{Text: want, Where: fmt.Sprintf("%s.%s = %.200q", table, cols[i], text)})
						}
					}
				}
			}
			if err := rows.Close(); err != nil {
				return err
			}
		}
		return nil
	})
	return found
}
