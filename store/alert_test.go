package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

// decideAll opens an alert on every pending check with a bad state, in one
// new group, and resolves the others: enough decisions to exercise the
// store's side of the alert engine.
func decideAll(in aramaki.AlertInput) (aramaki.AlertOutput, error) {
	g, err := aramaki.NewGraph(nil)
	if err != nil {
		return aramaki.AlertOutput{}, err
	}
	return aramaki.DecideAlerts(in, g, func(aramaki.CheckKey) int { return 1 })
}

func TestAlertsFromStatusChangesToNotifications(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		MustEnroll(t, s, "a1", "web", "db")
		at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
		MustRecord(t, s, batch("a1",
			result("a1", 1, "web", "http", aramaki.StatusCritical, at(0)),
			result("a1", 2, "db", "pg", aramaki.StatusOK, at(0)),
		))
		// Both changed checks are pending; one opens an alert.
		n, _, err := s.ProcessAlerts(ctx, 0, 100, at(1), 30*time.Second, decideAll)
		if err != nil || n != 2 {
			t.Fatalf("process alerts: %d, %v; want 2 pending checks", n, err)
		}
		if n, _, err := s.ProcessAlerts(ctx, 0, 100, at(1), 30*time.Second, decideAll); err != nil || n != 0 {
			t.Fatalf("pending checks after deciding: %d, %v", n, err)
		}
		alerts, err := s.Alerts(ctx, aramaki.AlertFilter{Limit: 10})
		if err != nil || len(alerts) != 1 || alerts[0].System != "web" || alerts[0].State != aramaki.AlertOpen {
			t.Fatalf("alerts %+v, %v", alerts, err)
		}
		a := alerts[0]
		if got, err := s.Alerts(ctx, aramaki.AlertFilter{Systems: []string{"db"}, Limit: 10}); err != nil || len(got) != 0 {
			t.Errorf("alerts of db: %+v, %v", got, err)
		}

		// The group is due after the wait; the planner's notifications and
		// what it told land in the outbox.
		plan := func(groups []aramaki.PlanGroup, _ []aramaki.Silence) (aramaki.PlanOutput, error) {
			out := aramaki.PlanOutput{Next: map[string]time.Time{}}
			for _, g := range groups {
				for _, a := range g.Alerts {
					if g.Told[aramaki.Told{Alert: a.ID, Recipient: "email ops@example.com ", Kind: "opened"}] {
						continue
					}
					out.Told = append(out.Told, aramaki.Told{Alert: a.ID, Recipient: "email ops@example.com ", Kind: "opened"})
					out.Notifications = append(out.Notifications, aramaki.Notification{Group: g.Group.ID,
						Recipient: aramaki.Recipient{Type: aramaki.NotifyEmail, Name: "Ops", Address: "ops@example.com"},
						Message:   aramaki.Message{ID: "m1", Subject: "CRITICAL web/http", Alerts: g.Alerts, At: at(2)},
						State:     aramaki.NotificationPending, Next: at(2), Created: at(2)})
				}
			}
			return out, nil
		}
		if n, err := s.PlanNotifications(ctx, at(1), 10, plan); err != nil || n != 0 {
			t.Fatalf("groups due before the wait: %d, %v", n, err)
		}
		if n, err := s.PlanNotifications(ctx, at(2), 10, plan); err != nil || n != 1 {
			t.Fatalf("groups due after the wait: %d, %v", n, err)
		}
		if n, err := s.PlanNotifications(ctx, at(3), 10, plan); err != nil || n != 0 {
			t.Fatalf("a group with nothing more to do is due again: %d, %v", n, err)
		}
		// A new config commit may route differently: open groups are due.
		MustApply(t, s, snapshot("c-routes"), at(3))
		if n, err := s.PlanNotifications(ctx, at(3), 10, plan); err != nil || n != 1 {
			t.Fatalf("groups due after a config commit: %d, %v", n, err)
		}
		due, err := s.ClaimNotifications(ctx, at(2), 10, time.Minute)
		if err != nil || len(due) != 1 || due[0].Recipient.Address != "ops@example.com" || due[0].Message.Subject != "CRITICAL web/http" {
			t.Fatalf("claimed %+v, %v", due, err)
		}
		if again, err := s.ClaimNotifications(ctx, at(2), 10, time.Minute); err != nil || len(again) != 0 {
			t.Fatalf("claimed twice within the lease: %+v, %v", again, err)
		}
		// It fails for good: recorded, and an alert of its own opens, once.
		nt := due[0]
		nt.State, nt.Done = aramaki.NotificationFailed, &[]time.Time{at(3)}[0]
		failure := &aramaki.Alert{System: "web", Check: "notification", Status: aramaki.StatusCritical, State: aramaki.AlertOpen, Output: "gave up", Opened: at(3), Updated: at(3)}
		failed := func(a aramaki.Alert) (aramaki.Event, error) {
			return aramaki.NewEvent(at(3), aramaki.KindNotificationFail, "server", []string{a.System}, "failed "+a.ID, nil)
		}
		// The second time is a sender whose lease is gone: it changes nothing.
		for range 2 {
			if err := s.FinishAttempt(ctx, nt, aramaki.DeliveryAttempt{At: at(3), Duration: time.Second, Error: "550 no such user"}, failure, failed); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.Notifications(ctx, nt.Group, 10)
		if err != nil || len(list) != 1 || list[0].State != aramaki.NotificationFailed || list[0].Attempts != 1 || list[0].LastError != "550 no such user" {
			t.Fatalf("notifications after failing: %+v, %v", list, err)
		}
		open, err := s.Alerts(ctx, aramaki.AlertFilter{States: []aramaki.AlertState{aramaki.AlertOpen}, Limit: 10})
		if err != nil || len(open) != 2 || open[0].Check != "notification" {
			t.Fatalf("open alerts after the failure: %+v, %v", open, err)
		}

		// People change alerts, with notes.
		changed, err := s.ChangeAlert(ctx, a.ID, func(a aramaki.Alert) (aramaki.Alert, aramaki.AlertNote, aramaki.Event, error) {
			now := at(4)
			a.State, a.Acknowledged, a.AcknowledgedBy, a.Updated = aramaki.AlertAcknowledged, &now, "dave", now
			ev, err := aramaki.AlertEvent(now, aramaki.KindAlertAcknowledged, a, "user:dave", "", "dave acknowledged")
			return a, aramaki.AlertNote{At: now, Actor: "dave", Kind: "acknowledge", Text: "on it"}, ev, err
		})
		if err != nil || changed.State != aramaki.AlertAcknowledged {
			t.Fatalf("acknowledge: %+v, %v", changed, err)
		}
		got, notes, err := s.Alert(ctx, a.ID)
		if err != nil || got.AcknowledgedBy != "dave" || !reflect.DeepEqual(notes, []aramaki.AlertNote{{At: at(4), Actor: "dave", Kind: "acknowledge", Text: "on it"}}) {
			t.Fatalf("alert %+v notes %+v, %v", got, notes, err)
		}
		if _, _, err := s.Alert(ctx, "999"); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("a missing alert: %v", err)
		}

		// The check recovers: pending again, resolved.
		MustRecord(t, s, batch("a1", result("a1", 3, "web", "http", aramaki.StatusOK, at(5))))
		if _, _, err := s.ProcessAlerts(ctx, 0, 100, at(5), 30*time.Second, decideAll); err != nil {
			t.Fatal(err)
		}
		got, _, err = s.Alert(ctx, a.ID)
		if err != nil || got.State != aramaki.AlertResolved || got.Resolved == nil {
			t.Fatalf("alert after recovery %+v, %v", got, err)
		}

		// Past the retention, resolved alerts and done notifications go;
		// the failure alert, still open, stays.
		if err := s.PruneAlerts(ctx, at(4)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Alert(ctx, a.ID); err != nil {
			t.Fatalf("an alert resolved after the cut was pruned: %v", err)
		}
		if err := s.PruneAlerts(ctx, at(6)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Alert(ctx, a.ID); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("the alert resolved before the cut: %v, want it gone", err)
		}
		if list, err := s.Notifications(ctx, "", 10); err != nil || len(list) != 0 {
			t.Errorf("notifications after pruning: %+v, %v", list, err)
		}
		if open, err := s.Alerts(ctx, aramaki.AlertFilter{Limit: 10}); err != nil || len(open) != 1 || open[0].Check != "notification" {
			t.Errorf("alerts after pruning: %+v, %v; want the open failure alert", open, err)
		}
	})
}

func TestSilences(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
		ev := func(sl aramaki.Silence) (aramaki.Event, error) {
			return aramaki.NewEvent(sl.Created, aramaki.KindSilenceCreated, "user:dave", []string{sl.System}, "silenced "+sl.ID, nil)
		}
		sl, err := s.CreateSilence(ctx, aramaki.Silence{System: "web", Start: at(0), End: at(60), Reason: "deploy", CreatedBy: "dave", Created: at(0), UntilResolved: true}, ev)
		if err != nil || sl.ID == "" {
			t.Fatalf("create: %+v, %v", sl, err)
		}
		if got, err := s.Silences(ctx, at(30)); err != nil || len(got) != 1 || !got[0].UntilResolved || got[0].Reason != "deploy" {
			t.Fatalf("silences at 30: %+v, %v", got, err)
		}
		if got, err := s.DueSilences(ctx, at(30), at(45)); err != nil || len(got) != 0 {
			t.Fatalf("due at 30: %+v, %v", got, err)
		}
		if got, err := s.DueSilences(ctx, at(50), at(65)); err != nil || len(got) != 1 {
			t.Fatalf("due for a reminder at 50: %+v, %v", got, err)
		}
		ended, err := s.EndSilence(ctx, sl.ID, func(sl aramaki.Silence) (aramaki.Silence, aramaki.Event, error) {
			now := at(40)
			sl.Ended, sl.EndedBy = &now, "erin"
			e, err := aramaki.NewEvent(now, aramaki.KindSilenceEnded, "user:erin", []string{sl.System}, "ended", nil)
			return sl, e, err
		})
		if err != nil || ended.EndedBy != "erin" {
			t.Fatalf("end: %+v, %v", ended, err)
		}
		if got, err := s.Silences(ctx, at(41)); err != nil || len(got) != 0 {
			t.Fatalf("silences after it ended: %+v, %v", got, err)
		}
		if recent, err := s.RecentSilences(ctx, 10); err != nil || len(recent) != 1 || recent[0].Ended == nil {
			t.Fatalf("recent silences: %+v, %v", recent, err)
		}
		if _, err := s.EndSilence(ctx, "12345", nil); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("ending a missing silence: %v", err)
		}
	})
}

func TestReviewDigests(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		MustEnroll(t, s, "a1", "web", "db")
		day := func(d int) time.Time { return t0.Add(time.Duration(d) * 24 * time.Hour) }
		var rs []aramaki.CheckResult
		for i := range 6 {
			st := aramaki.StatusOK
			if i%2 == 1 {
				st = aramaki.StatusCritical
			}
			rs = append(rs, result("a1", uint64(i+1), "web", "http", st, day(i)))
		}
		rs = append(rs, result("a1", 7, "db", "pg", aramaki.StatusOK, day(0)), result("a1", 8, "db", "pg", aramaki.StatusWarning, day(5)))
		MustRecord(t, s, batch("a1", rs...))
		got, err := s.ChangeCounts(ctx, []string{"web", "db"}, day(2), 10)
		want := []aramaki.CheckChanges{{System: "web", Check: "http", Changes: 4}, {System: "db", Check: "pg", Changes: 1}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("change counts since day 2: %+v, %v\nwant %+v", got, err, want)
		}
		if at, err := s.DigestSent(ctx, "web"); err != nil || !at.IsZero() {
			t.Fatalf("a digest never sent: %v, %v", at, err)
		}
		nt := aramaki.Notification{Recipient: aramaki.Recipient{Type: aramaki.NotifyEmail, Name: "Owner", Address: "owner@example.com"},
			Message: aramaki.Message{ID: "d1", Subject: "Review of web"}, State: aramaki.NotificationPending, Next: day(7), Created: day(7)}
		ev, _ := aramaki.NewEvent(day(7), aramaki.KindDigestSent, "server", []string{"web"}, "review digest", nil)
		if ok, err := s.QueueDigest(ctx, "web", day(0), day(7), []aramaki.Notification{nt}, ev); err != nil || !ok {
			t.Fatalf("queue digest: %v, %v", ok, err)
		}
		// Another replica, a moment later, finds it queued.
		if ok, err := s.QueueDigest(ctx, "web", day(0), day(7).Add(time.Second), []aramaki.Notification{nt}, ev); err != nil || ok {
			t.Fatalf("queued twice: %v, %v", ok, err)
		}
		if at, err := s.DigestSent(ctx, "web"); err != nil || !at.Equal(day(7)) {
			t.Errorf("digest sent at %v, %v", at, err)
		}
		if list, err := s.Notifications(ctx, "", 10); err != nil || len(list) != 1 || list[0].Group != "" || list[0].Message.Subject != "Review of web" {
			t.Errorf("outbox after the digest: %+v, %v", list, err)
		}
	})
}

func TestAChangeThatComesWhileTheEngineDecidesStaysPending(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		if s.Dialect() != store.Postgres {
			t.Skip("SQLite has one writer: nothing comes in while the engine decides")
		}
		ctx := context.Background()
		MustEnroll(t, s, "a1", "web")
		at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
		MustRecord(t, s, batch("a1", result("a1", 1, "web", "http", aramaki.StatusOK, at(0))))
		// While the engine decides on the OK state, the check breaks.
		_, _, err := s.ProcessAlerts(ctx, 0, 100, at(1), 0, func(in aramaki.AlertInput) (aramaki.AlertOutput, error) {
			MustRecord(t, s, batch("a1", result("a1", 2, "web", "http", aramaki.StatusCritical, at(1))))
			return decideAll(in)
		})
		if err != nil {
			t.Fatal(err)
		}
		n, _, err := s.ProcessAlerts(ctx, 0, 100, at(2), 0, decideAll)
		if err != nil || n != 1 {
			t.Fatalf("the change that came meanwhile: %d pending, %v; want it still pending", n, err)
		}
		if open, _ := s.Alerts(ctx, aramaki.AlertFilter{States: []aramaki.AlertState{aramaki.AlertOpen}, Limit: 10}); len(open) != 1 {
			t.Errorf("open alerts: %+v, want the critical check's", open)
		}
	})
}
