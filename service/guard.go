package service

import (
	"context"
	"sync"
	"time"

	"github.com/aramaki/aramaki"
)

// Password checks are expensive on purpose (argon2id, 19 MiB each), which
// makes them a lever for whoever wants the server down or a password
// guessed. The guard bounds how many run at once and how many may fail for
// one user name.
const (
	maxConcurrentLogins = 2
	loginWait           = 5 * time.Second
	maxLoginFailures    = 10
	loginFailureWindow  = 15 * time.Minute
	maxTrackedNames     = 100000
)

type loginGuard struct {
	slots    chan struct{}
	mu       sync.Mutex
	failures map[string][]time.Time
}

func newLoginGuard() *loginGuard {
	return &loginGuard{slots: make(chan struct{}, maxConcurrentLogins), failures: map[string][]time.Time{}}
}

// enter waits for a slot to check a password of name; leave must follow.
func (g *loginGuard) enter(ctx context.Context, name string, now time.Time) error {
	g.mu.Lock()
	recent := g.recent(name, now)
	g.mu.Unlock()
	if len(recent) >= maxLoginFailures {
		wait := recent[0].Add(loginFailureWindow).Sub(now).Round(time.Minute)
		return aramaki.Errorf(aramaki.EUNAUTHORIZED, "too many failed logins for %s; try again in %s", name, max(wait, time.Minute))
	}
	ctx, cancel := context.WithTimeout(ctx, loginWait)
	defer cancel()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return aramaki.Errorf(aramaki.EUNAVAILABLE, "too many logins at once; try again in a moment")
	}
}

func (g *loginGuard) leave(name string, ok bool, now time.Time) {
	<-g.slots
	g.mu.Lock()
	defer g.mu.Unlock()
	if ok {
		delete(g.failures, name)
		return
	}
	if len(g.failures) >= maxTrackedNames {
		for n := range g.failures {
			if len(g.recent(n, now)) == 0 {
				delete(g.failures, n)
			}
		}
	}
	g.failures[name] = append(g.recent(name, now), now)
}

// recent returns the failures of name within the window; g.mu is held.
func (g *loginGuard) recent(name string, now time.Time) []time.Time {
	all := g.failures[name]
	i := 0
	for i < len(all) && now.Sub(all[i]) > loginFailureWindow {
		i++
	}
	if i == len(all) {
		delete(g.failures, name)
		return nil
	}
	g.failures[name] = all[i:]
	return all[i:]
}
