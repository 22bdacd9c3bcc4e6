package service

import (
	"context"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
)

func TestTooManyFailedLoginsLockTheNameForAWhile(t *testing.T) {
	g := newLoginGuard()
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	for i := 0; i < maxLoginFailures; i++ {
		if err := g.enter(context.Background(), "alice", now); err != nil {
			t.Fatalf("attempt %d refused: %v", i, err)
		}
		g.leave("alice", false, now)
	}
	if err := g.enter(context.Background(), "alice", now.Add(time.Minute)); aramaki.ErrorCode(err) != aramaki.EUNAUTHORIZED {
		t.Fatalf("after %d failures: %v, want refused", maxLoginFailures, err)
	}
	if err := g.enter(context.Background(), "bob", now); err != nil {
		t.Fatalf("another name is refused too: %v", err)
	}
	g.leave("bob", true, now)
	if err := g.enter(context.Background(), "alice", now.Add(loginFailureWindow+time.Second)); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	g.leave("alice", true, now)
}

func TestPasswordChecksRunAFewAtATime(t *testing.T) {
	g := newLoginGuard()
	now := time.Now()
	for i := 0; i < maxConcurrentLogins; i++ {
		if err := g.enter(context.Background(), "x", now); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.enter(ctx, "x", now); aramaki.ErrorCode(err) != aramaki.EUNAVAILABLE {
		t.Fatalf("a check beyond the limit: %v, want unavailable", err)
	}
}
