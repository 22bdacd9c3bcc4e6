package federation_test

import (
	"context"
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// joinAs joins the inviter in process; the joiner calls it name.
type joinAs struct {
	inviter *linkServer
	name    string
}

func (d joinAs) Join(ctx context.Context, token string, self service.JoinSelf) (aramaki.Peer, string, error) {
	p, _, err := joinDirect{d.inviter, d.inviter.url}.Join(ctx, token, self)
	return p, d.name, err
}

// mustShareStatus makes joiner a peer of inviter, each calling the other
// by the names given, and grants joiner the status of system.
func mustShareStatus(t testing.TB, inviter, joiner *linkServer, inviterName, joinerName, system string) {
	t.Helper()
	joiner.svc.SetJoiner(joinAs{inviter, inviterName})
	inv, err := inviter.svc.CreateInvitation(inviter.ctx, root, joinerName, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := joiner.svc.AcceptInvitation(joiner.ctx, root, inv.ID+" "+inv.Secret, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := inviter.svc.CreateGrant(inviter.ctx, root, service.GrantRequest{Peer: joinerName, Systems: []string{system},
		Kinds: []aramaki.GrantKind{aramaki.GrantStatus}, Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
}

// chain is three servers: a hoster's storage, used by a customer's shop
// on b, used by a contractor's site on c. c was granted b's shop, and b
// a's storage; c has no grant of a's.
type chain struct {
	a, b, c *linkServer
	agent   aramaki.Agent
	seq     uint64
}

func mustChain(t testing.TB) *chain {
	t.Helper()
	a := MustLinkServer(t, "a", aramaki.System{ID: "storage", Title: "Storage", Checks: []aramaki.Check{{Name: "disk", Command: "check_disk"}}})
	b := MustLinkServer(t, "b", aramaki.System{ID: "shop", Title: "Shop", Subsystems: []string{"storage@a"}})
	c := MustLinkServer(t, "c", aramaki.System{ID: "site", Title: "Site", Subsystems: []string{"shop@b"}})
	mustShareStatus(t, a, b, "a", "b", "storage")
	mustShareStatus(t, b, c, "b", "c", "shop")
	go a.svc.RunIngest(a.ctx)
	tok, err := a.svc.CreateEnrollmentToken(a.ctx, root, []string{"storage"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	agent, err := a.svc.Enroll(a.ctx, tok.ID, tok.Secret, pub, "st1", "test")
	if err != nil {
		t.Fatal(err)
	}
	return &chain{a: a, b: b, c: c, agent: agent}
}

// report stores a result of storage's disk check on a, as its agent
// would, and waits for the commit.
func (ch *chain) report(t testing.TB, status aramaki.Status) {
	t.Helper()
	ch.seq++
	done, err := ch.a.svc.SubmitResults(ch.a.ctx, service.NewStream(), ch.agent, []aramaki.CheckResult{{
		System: "storage", Check: "disk", Status: status, Output: "DISK " + strings.ToUpper(status.String()), Seq: ch.seq, Started: time.Now()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Err != nil {
		t.Fatal(r.Err)
	}
}

// siteStatus is the status of c's site, which rolls up b's shop.
func (ch *chain) siteStatus(t testing.TB) aramaki.Status {
	v, err := ch.c.svc.SystemStatus(ch.c.ctx, root, "site")
	if err != nil {
		t.Fatal(err)
	}
	return v.Status
}

// A disk going critical on the hoster's storage shows on the contractor's
// site two servers away, through the customer's shop: each server tells
// the next the status of its own system, never whence it came.
func TestAStatusChangePassesAlongAChainOfServers(t *testing.T) {
	ch := mustChain(t)
	ch.report(t, aramaki.StatusOK)
	waitFor(t, 10*time.Second, "site OK on c", func() bool { return ch.siteStatus(t) == aramaki.StatusOK })
	ch.report(t, aramaki.StatusCritical)
	waitFor(t, 10*time.Second, "site CRITICAL on c", func() bool { return ch.siteStatus(t) == aramaki.StatusCritical })
	v, err := ch.c.svc.SystemStatus(ch.c.ctx, root, "shop@b")
	if err != nil {
		t.Fatal(err)
	}
	// c knows b's shop is critical, and nothing of a: no system of a's,
	// no check, no host.
	for _, st := range v.Checks {
		if strings.Contains(st.Output, "DISK") || strings.Contains(st.Output, "st1") || strings.Contains(st.System, "@a") {
			t.Errorf("c learnt of a: %+v", st)
		}
	}
	if g := ch.c.svc.Graph(); g.System("storage@a") != nil {
		t.Error("c's graph has a's storage")
	}
	ch.report(t, aramaki.StatusOK)
	waitFor(t, 10*time.Second, "site OK again on c", func() bool { return ch.siteStatus(t) == aramaki.StatusOK })
}

// From a result stored on a to c's site showing it, through b: the
// status chain of three servers. Each iteration flips the disk between
// OK and CRITICAL.
//
//	go test ./federation -run '^$' -bench ChainLatency -benchtime 200x
func BenchmarkChainLatency(b *testing.B) {
	serverGC(b)
	ch := mustChain(b)
	ch.report(b, aramaki.StatusOK)
	deadline := time.Now().Add(10 * time.Second)
	for ch.siteStatus(b) != aramaki.StatusOK {
		if time.Now().After(deadline) {
			b.Fatal("the chain never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var took []time.Duration
	status := aramaki.StatusOK
	b.ResetTimer()
	for range b.N {
		if status == aramaki.StatusOK {
			status = aramaki.StatusCritical
		} else {
			status = aramaki.StatusOK
		}
		start := time.Now()
		ch.report(b, status)
		for ch.siteStatus(b) != status {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("c never saw %s", status)
			}
			time.Sleep(250 * time.Microsecond)
		}
		took = append(took, time.Since(start))
		// Apart, as changes are: each starts from a quiet chain, at a
		// random phase of the servers' tickers.
		time.Sleep(time.Duration(50+ch.seq*37%50) * time.Millisecond)
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
}
