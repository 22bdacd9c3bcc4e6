package service_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
)

// snapshotConfig serves a fixed snapshot.
type snapshotConfig struct{ snap aramaki.ConfigSnapshot }

func (c snapshotConfig) Load(context.Context) (aramaki.ConfigSnapshot, []string, error) {
	return c.snap, nil, nil
}

// outbox is a Sender that keeps what it was asked to send; fail makes it
// refuse recipients by name.
type outbox struct {
	mu   sync.Mutex
	sent []sent
	fail map[string]error
}

type sent struct {
	to aramaki.Recipient
	m  aramaki.Message
}

func (o *outbox) Send(_ context.Context, to aramaki.Recipient, m aramaki.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.fail[to.Name]; err != nil {
		return err
	}
	o.sent = append(o.sent, sent{to, m})
	return nil
}

// take returns what was sent since the last take, by recipient name.
func (o *outbox) take() map[string][]aramaki.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string][]aramaki.Message{}
	for _, s := range o.sent {
		out[s.to.Name] = append(out[s.to.Name], s.m)
	}
	o.sent = nil
	return out
}

// alerting is a hosting company with routes: storage is used by the shop
// and the blog; infrastructure above storage pages its on-call at once
// and the hosting team after 15 minutes; the shop's owner hears about
// everything under the shop; the blog forwards to the agency.
type alerting struct {
	t     *testing.T
	ctx   context.Context
	svc   *service.Service
	st    *store.Store
	clk   *clock
	out   *outbox
	agent aramaki.Agent
	seq   uint64
}

func MustAlerting(t *testing.T, tune ...func(*service.Options)) *alerting {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	contact := func(name string) aramaki.Contact {
		return aramaki.Contact{Name: name, Email: strings.ReplaceAll(strings.ToLower(name), " ", ".") + "@example.com"}
	}
	systems := []aramaki.System{
		{ID: "infrastructure", Title: "Infrastructure", Subsystems: []string{"storage"},
			Contacts: []aramaki.Contact{contact("Infra oncall"), contact("Hosting team")},
			Routing:  []aramaki.Route{{Contact: "Infra oncall"}, {Contact: "Hosting team", After: 15 * time.Minute}}},
		{ID: "storage", Title: "Storage", Checks: []aramaki.Check{{Name: "disk", Command: "check_disk"}, {Name: "io", Command: "check_io", AlertAfter: 3}}},
		{ID: "shop", Title: "Shop", Subsystems: []string{"shop-app", "storage"},
			Owners:  []aramaki.Contact{contact("Shop owner")},
			Routing: []aramaki.Route{{Contact: "Shop owner"}, {Forward: "agency", Severities: []aramaki.Status{aramaki.StatusCritical}}}},
		{ID: "shop-app", Title: "Shop app", Checks: []aramaki.Check{{Name: "http", Command: "check_http"}}},
		{ID: "blog", Title: "Blog", Subsystems: []string{"storage"}, Owners: []aramaki.Contact{contact("Shop owner")},
			Contacts: []aramaki.Contact{contact("Blogger")}, Routing: []aramaki.Route{{Contact: "Blogger", Via: "blog-chat"}}},
		{ID: "agency", Title: "Agency", Contacts: []aramaki.Contact{contact("Agency")}, Routing: []aramaki.Route{{Contact: "Agency"}}},
	}
	notifiers := []aramaki.Notifier{{Name: "blog-chat", Type: aramaki.NotifyMattermost, URL: "https://chat.example.com/hooks/x"}}
	clk := &clock{now: time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)}
	out := &outbox{fail: map[string]error{}}
	opts := service.Options{Now: clk.Now, GroupWait: 30 * time.Second, URL: "https://aramaki.example.com", MaxAttempts: 3}
	for _, f := range tune {
		f(&opts)
	}
	svc := service.New(st, snapshotConfig{aramaki.ConfigSnapshot{Commit: aramaki.Commit{Hash: "c1", Author: "T <t@example.com>", Message: "systems", Time: clk.Now()},
		Systems: systems, Notifiers: notifiers}}, log, opts)
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SyncConfig(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	go svc.RunIngest(ctx)
	tok, err := svc.CreateEnrollmentToken(ctx, root, []string{"storage", "shop-app"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	a, err := svc.Enroll(ctx, tok.ID, tok.Secret, pub, "host1", "test")
	if err != nil {
		t.Fatal(err)
	}
	return &alerting{t: t, ctx: ctx, svc: svc, st: st, clk: clk, out: out, agent: a}
}

// report submits a result of a check and runs one round of alerting.
func (e *alerting) report(system, check string, status aramaki.Status) {
	e.t.Helper()
	e.seq++
	done, err := e.svc.SubmitResults(e.ctx, service.NewStream(), e.agent, []aramaki.CheckResult{
		{Seq: e.seq, System: system, Check: check, Status: status, Output: strings.ToUpper(status.String()) + " - " + check, Started: e.clk.Now()},
	}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if r := <-done; r.Err != nil {
		e.t.Fatal(r.Err)
	}
	e.round()
}

// round runs the alert engine, planner and sender once.
func (e *alerting) round() {
	e.t.Helper()
	if err := e.svc.AlertRound(e.ctx, e.out); err != nil {
		e.t.Fatal(err)
	}
}

// later moves the clock and runs a round.
func (e *alerting) later(d time.Duration) {
	e.t.Helper()
	e.clk.Add(d)
	e.round()
}

func (e *alerting) alerts(states ...aramaki.AlertState) []aramaki.Alert {
	e.t.Helper()
	alerts, err := e.svc.Alerts(e.ctx, root, service.AlertQuery{States: states})
	if err != nil {
		e.t.Fatal(err)
	}
	return alerts
}

func names(m map[string][]aramaki.Message) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestAStorageOutageIsOnePageForEveryoneWhoUsesIt(t *testing.T) {
	e := MustAlerting(t)
	e.report("storage", "disk", aramaki.StatusOK)
	e.report("shop-app", "http", aramaki.StatusOK)
	if got := e.alerts(); len(got) != 0 {
		t.Fatalf("alerts while all is well: %+v", got)
	}

	// The disk fills up; a moment later the shop breaks because of it.
	e.report("storage", "disk", aramaki.StatusCritical)
	e.clk.Add(5 * time.Second)
	e.report("shop-app", "http", aramaki.StatusCritical)
	open := e.alerts(aramaki.AlertOpen)
	if len(open) != 2 || open[0].Group != open[1].Group {
		t.Fatalf("open alerts %+v: want two in one group", open)
	}
	if sent := e.out.take(); len(sent) != 0 {
		t.Fatalf("notified before the group waited for related alerts: %v", names(sent))
	}

	// After the group wait: one message per person, with what concerns them.
	e.later(30 * time.Second)
	sent := e.out.take()
	want := []string{"Agency", "Blogger via blog-chat", "Infra oncall", "Shop owner"}
	if got := names(sent); !slices.Equal(got, want) {
		t.Fatalf("notified %q, want %q", got, want)
	}
	for name, msgs := range sent {
		if len(msgs) != 1 {
			t.Errorf("%s got %d messages, want 1", name, len(msgs))
		}
	}
	if m := sent["Shop owner"][0]; len(m.Alerts) != 2 || !strings.HasPrefix(m.Subject, "2 alerts: CRITICAL") || !strings.Contains(m.URL, "/alerts?group=") {
		t.Errorf("the shop owner's message: %q %q with %d alerts", m.Subject, m.URL, len(m.Alerts))
	}
	if m := sent["Blogger via blog-chat"][0]; len(m.Alerts) != 1 || m.Alerts[0].System != "storage" {
		t.Errorf("the blogger hears of %+v, want the storage alert only", m.Alerts)
	}
	if m := sent["Infra oncall"][0]; len(m.Alerts) != 1 || m.Alerts[0].Check != "disk" {
		t.Errorf("infrastructure hears of %+v, want its storage only", m.Alerts)
	}

	// Nobody acknowledges: after 15 minutes the hosting team is paged.
	e.later(10 * time.Minute)
	if sent := e.out.take(); len(sent) != 0 {
		t.Fatalf("messages before the escalation is due: %v", names(sent))
	}
	e.later(5 * time.Minute)
	if got := names(e.out.take()); !slices.Equal(got, []string{"Hosting team"}) {
		t.Fatalf("escalation reached %q, want the hosting team", got)
	}
	if a := e.alerts(aramaki.AlertOpen); a[len(a)-1].Level != 1 {
		t.Errorf("the storage alert's level is %d after escalation, want 1", a[len(a)-1].Level)
	}

	// Storage recovers: its alert resolves and those who heard of it
	// hear that; the shop's own alert stays.
	e.report("storage", "disk", aramaki.StatusOK)
	sent = e.out.take()
	if got := names(sent); !slices.Equal(got, []string{"Agency", "Blogger via blog-chat", "Hosting team", "Infra oncall", "Shop owner"}) {
		t.Fatalf("resolution told to %q", got)
	}
	if m := sent["Infra oncall"][0]; !strings.HasPrefix(m.Subject, "RESOLVED storage/disk") {
		t.Errorf("resolution subject %q", m.Subject)
	}
	if open := e.alerts(aramaki.AlertOpen); len(open) != 1 || open[0].System != "shop-app" {
		t.Fatalf("open alerts after storage recovered: %+v", open)
	}

	// On the timeline: opened, escalated, resolved.
	page, err := e.svc.Timeline(e.ctx, root, service.TimelineRequest{System: "storage",
		Kinds: []aramaki.EventKind{aramaki.KindAlertOpened, aramaki.KindAlertEscalated, aramaki.KindAlertResolved}})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range page.Events {
		kinds = append(kinds, string(ev.Kind))
	}
	if !slices.Equal(kinds, []string{"alert.resolved", "alert.escalated", "alert.opened"}) {
		t.Errorf("storage's alert events %q", kinds)
	}
}

func TestAnAlertOpensAfterEnoughBadResultsInARow(t *testing.T) {
	e := MustAlerting(t)
	e.report("storage", "io", aramaki.StatusWarning)
	e.report("storage", "io", aramaki.StatusWarning)
	if got := e.alerts(); len(got) != 0 {
		t.Fatalf("alert after 2 of 3 bad results: %+v", got)
	}
	e.report("storage", "io", aramaki.StatusWarning)
	if got := e.alerts(aramaki.AlertOpen); len(got) != 1 || got[0].Status != aramaki.StatusWarning {
		t.Fatalf("after 3 bad results: %+v, want one warning alert", got)
	}
	// Worse keeps the one alert, worse.
	e.report("storage", "io", aramaki.StatusCritical)
	e.report("storage", "io", aramaki.StatusCritical)
	e.report("storage", "io", aramaki.StatusCritical)
	if got := e.alerts(); len(got) != 1 || got[0].Status != aramaki.StatusCritical {
		t.Fatalf("after turning critical: %+v, want the same alert, critical", got)
	}
	// A blip that recovers before the third result opens nothing.
	e.report("storage", "io", aramaki.StatusOK)
	e.report("storage", "io", aramaki.StatusCritical)
	e.report("storage", "io", aramaki.StatusOK)
	if got := e.alerts(); len(got) != 1 || got[0].State != aramaki.AlertResolved {
		t.Fatalf("after a blip: %+v, want only the first alert, resolved", got)
	}
}

func TestAcknowledgingStopsEscalationAndEveryChangeIsAudited(t *testing.T) {
	e := MustAlerting(t)
	e.report("storage", "disk", aramaki.StatusCritical)
	e.later(30 * time.Second)
	e.out.take()
	a := e.alerts()[0]
	if _, err := e.svc.CreateUser(e.ctx, root, "dave", "a long enough password"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ChangeAlert(e.ctx, root, a.ID, service.AlertAssign, "nobody"); aramaki.ErrorCode(err) != aramaki.EINVALID {
		t.Errorf("assigning to a user who does not exist: %v", err)
	}
	for _, c := range []struct {
		change service.AlertChange
		text   string
	}{{service.AlertAck, "looking"}, {service.AlertAssign, "dave"}, {service.AlertComment, "disk full of logs"}} {
		if _, err := e.svc.ChangeAlert(e.ctx, root, a.ID, c.change, c.text); err != nil {
			t.Fatalf("%s: %v", c.change, err)
		}
	}
	if _, err := e.svc.ChangeAlert(e.ctx, root, a.ID, service.AlertAck, ""); aramaki.ErrorCode(err) != aramaki.ECONFLICT {
		t.Errorf("acknowledging twice: %v, want a conflict", err)
	}
	e.later(20 * time.Minute)
	if sent := e.out.take(); len(sent) != 0 {
		t.Fatalf("an acknowledged alert escalated to %v", names(sent))
	}
	view, err := e.svc.Alert(e.ctx, root, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if view.State != aramaki.AlertAcknowledged || view.AcknowledgedBy != "root" || view.Assignee != "dave" || len(view.Notes) != 3 {
		t.Fatalf("alert after ack, assign, comment: %+v", view)
	}
	if _, err := e.svc.ChangeAlert(e.ctx, root, a.ID, service.AlertResolve, "cleaned up"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ChangeAlert(e.ctx, root, a.ID, service.AlertResolve, ""); aramaki.ErrorCode(err) != aramaki.ECONFLICT {
		t.Errorf("resolving twice: %v, want a conflict", err)
	}
	// A viewer may look but not touch.
	viewer := aramaki.Principal{User: "vic", Bindings: []aramaki.RoleBinding{{User: "vic", System: aramaki.GlobalScope, Role: aramaki.RoleViewer}}}
	if _, err := e.svc.ChangeAlert(e.ctx, viewer, a.ID, service.AlertComment, "hi"); aramaki.ErrorCode(err) != aramaki.EFORBIDDEN {
		t.Errorf("a viewer commenting: %v, want forbidden", err)
	}
	page, err := e.svc.Timeline(e.ctx, root, service.TimelineRequest{System: "storage"})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range page.Events {
		if strings.HasPrefix(string(ev.Kind), "alert.") {
			kinds = append(kinds, string(ev.Kind))
		}
	}
	if !slices.Equal(kinds, []string{"alert.resolved", "alert.commented", "alert.assigned", "alert.acknowledged", "alert.opened"}) {
		t.Errorf("alert events on the timeline: %q", kinds)
	}
}

func TestASilenceMutesEverythingUnderItButAlertsAreStillRecorded(t *testing.T) {
	e := MustAlerting(t)
	// root wants reminders by e-mail.
	if _, err := e.svc.CreateUser(e.ctx, root, "root", "a long enough password"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetUserEmail(e.ctx, root, "root", "not an address"); aramaki.ErrorCode(err) != aramaki.EINVALID {
		t.Errorf("a bad address: %v", err)
	}
	if err := e.svc.SetUserEmail(e.ctx, root, "root", "root@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateSilence(e.ctx, root, service.SilenceRequest{System: "infrastructure", Duration: time.Hour, Reason: "disk swap", Maintenance: true}); err != nil {
		t.Fatal(err)
	}
	e.report("storage", "disk", aramaki.StatusCritical)
	e.later(time.Minute)
	if got := e.alerts(aramaki.AlertOpen); len(got) != 1 || got[0].Silenced == "" {
		t.Fatalf("silenced alert not recorded as silenced: %+v", got)
	}
	if sent := e.out.take(); len(sent) != 0 {
		t.Fatalf("a silenced alert was notified to %v", names(sent))
	}
	// The creator is reminded before it ends; when it runs out, the alert
	// still open is notified.
	e.later(50 * time.Minute)
	page, _ := e.svc.Timeline(e.ctx, root, service.TimelineRequest{System: "infrastructure", Kinds: []aramaki.EventKind{aramaki.KindSilenceExpiring}})
	if len(page.Events) != 1 || !strings.Contains(page.Events[0].Summary, "root") {
		t.Errorf("reminders before the silence ends: %+v", page.Events)
	}
	if got := e.out.take()["root"]; len(got) != 1 || !strings.HasPrefix(got[0].Subject, "Your silence of infrastructure ends") {
		t.Errorf("reminders to root by e-mail: %+v", got)
	}
	e.later(10 * time.Minute)
	e.round()
	if got := names(e.out.take()); len(got) == 0 {
		t.Fatal("the alert still open was not notified when the silence ran out")
	}
	page, _ = e.svc.Timeline(e.ctx, root, service.TimelineRequest{System: "infrastructure", Kinds: []aramaki.EventKind{aramaki.KindSilenceCreated, aramaki.KindSilenceEnded}})
	if len(page.Events) != 2 {
		t.Errorf("silence events on the timeline: %+v", page.Events)
	}

	for _, bad := range []service.SilenceRequest{
		{System: "storage", Reason: "no end"},
		{System: "storage", Start: e.clk.Now().Add(time.Hour), End: e.clk.Now(), Reason: "end before start"},
		{System: "storage", Duration: time.Hour},
		{System: "nope", Duration: time.Hour, Reason: "unknown system"},
	} {
		if _, err := e.svc.CreateSilence(e.ctx, root, bad); aramaki.ErrorCode(err) != aramaki.EINVALID && aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
			t.Errorf("silence %+v: %v, want a clear refusal", bad, err)
		}
	}
}

func TestADeliveryThatFinallyFailsRaisesAnAlertOfItsOwn(t *testing.T) {
	e := MustAlerting(t)
	e.out.fail["Infra oncall"] = errors.New("connection refused")
	e.report("storage", "disk", aramaki.StatusCritical)
	e.later(30 * time.Second)
	delete(e.out.take(), "Infra oncall")
	// Retried with backoff: 10 s, then 20 s; the third attempt is the last.
	e.later(10 * time.Second)
	e.later(20 * time.Second)
	notes, err := e.st.Notifications(e.ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var failed *aramaki.Notification
	for i, n := range notes {
		if n.Recipient.Name == "Infra oncall" {
			failed = &notes[i]
		}
	}
	if failed == nil || failed.State != aramaki.NotificationFailed || failed.Attempts != 3 || !strings.Contains(failed.LastError, "connection refused") {
		t.Fatalf("the failing notification: %+v", failed)
	}
	// The alert tells whom it reached and whom not.
	view, err := e.svc.Alert(e.ctx, root, e.alerts()[len(e.alerts())-1].ID)
	if err != nil {
		t.Fatal(err)
	}
	deliveries := map[string]service.Delivery{}
	for _, d := range view.Deliveries {
		deliveries[d.To] = d
	}
	if d := deliveries["Infra oncall"]; d.State != aramaki.NotificationFailed || d.Attempts != 3 || d.Via != aramaki.NotifyEmail {
		t.Errorf("the failed delivery on the alert: %+v", d)
	}
	if d := deliveries["Shop owner"]; d.State != aramaki.NotificationSent || d.Attempts != 1 {
		t.Errorf("the delivery to the shop owner: %+v", d)
	}
	var raised *aramaki.Alert
	for _, a := range e.alerts(aramaki.AlertOpen) {
		if a.Check == service.FailureCheck {
			raised = &a
		}
	}
	if raised == nil || raised.System != "storage" || !strings.Contains(raised.Output, "Infra oncall") {
		t.Fatalf("no alert for the failed delivery: %+v", e.alerts())
	}
	// That alert is routed like any other: the people who can be reached
	// hear that someone could not be.
	e.later(30 * time.Second)
	if sent := e.out.take(); len(sent["Shop owner"]) != 1 || !strings.Contains(sent["Shop owner"][0].Subject, "notification") {
		t.Errorf("the failure alert reached %v", names(sent))
	}
}

func TestOwnersGetAWeeklyReviewOfWhatIsNoisyBrokenAndIgnored(t *testing.T) {
	e := MustAlerting(t, func(o *service.Options) { o.DigestEvery = 7 * 24 * time.Hour })
	// Nothing to say yet: no digest, but the week starts now.
	e.round()
	if sent := e.out.take(); len(sent) != 0 {
		t.Fatalf("an empty digest went to %v", names(sent))
	}
	// The shop app is broken from the start and nobody acknowledges its
	// alert; the disk flaps every day (its first result is no change).
	e.report("shop-app", "http", aramaki.StatusCritical)
	for range 6 {
		e.later(24 * time.Hour)
		e.report("storage", "disk", aramaki.StatusCritical)
		e.later(time.Hour)
		e.report("storage", "disk", aramaki.StatusOK)
	}
	e.out.take()
	e.later(18*time.Hour + time.Minute) // a week after the last digest
	sent := e.out.take()["Shop owner"]
	if len(sent) != 1 {
		t.Fatalf("the shop owner got %d digests", len(sent))
	}
	m := sent[0]
	for _, want := range []string{"storage/disk: 11", "shop-app/http on host1: CRITICAL since", "shop-app/http since"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("the digest lacks %q:\n%s", want, m.Text)
		}
	}
	// The shop's owner owns the blog too: one mail for both.
	if !strings.HasPrefix(m.Subject, "Review of Blog and 1 more: 2 noisy checks") || !strings.HasSuffix(m.URL, "/review") ||
		!strings.Contains(m.Text, "Review of Shop (shop)") {
		t.Errorf("digest subject %q, url %q:\n%s", m.Subject, m.URL, m.Text)
	}
	// Once a week only.
	e.later(24 * time.Hour)
	if got := e.out.take()["Shop owner"]; len(got) != 0 {
		t.Errorf("a second digest within the week: %d", len(got))
	}
	d, err := e.svc.Digest(e.ctx, root, "storage", 7*24*time.Hour)
	if err != nil || len(d.Noisiest) != 1 || len(d.AlwaysBroken) != 0 {
		t.Errorf("storage's digest: %+v, %v", d, err)
	}
}

func TestAnAlertThatWorsensReachesTheRoutesForItsNewStatus(t *testing.T) {
	e := MustAlerting(t)
	e.report("storage", "disk", aramaki.StatusWarning)
	e.later(30 * time.Second)
	if got := names(e.out.take()); !slices.Equal(got, []string{"Blogger via blog-chat", "Infra oncall", "Shop owner"}) {
		t.Fatalf("a warning reached %q; the agency hears of critical alerts only", got)
	}
	e.report("storage", "disk", aramaki.StatusCritical)
	if got := names(e.out.take()); !slices.Equal(got, []string{"Agency"}) {
		t.Fatalf("turning critical reached %q, want the agency alone", got)
	}
	e.report("storage", "disk", aramaki.StatusOK)
	if got := names(e.out.take()); !slices.Equal(got, []string{"Agency", "Blogger via blog-chat", "Infra oncall", "Shop owner"}) {
		t.Fatalf("the resolution reached %q, want everyone who heard of it", got)
	}
}

func TestEscalationCountsFromTheEndOfTheSilenceThatKeptAnAlertQuiet(t *testing.T) {
	e := MustAlerting(t)
	if _, err := e.svc.CreateSilence(e.ctx, root, service.SilenceRequest{System: "infrastructure", Duration: time.Hour, Reason: "disk swap"}); err != nil {
		t.Fatal(err)
	}
	e.report("storage", "disk", aramaki.StatusCritical)
	e.later(30 * time.Second)
	e.later(59 * time.Minute)
	if sent := e.out.take(); len(sent) != 0 {
		t.Fatalf("notified during the silence: %v", names(sent))
	}
	// The silence runs out: the first level hears now, the hosting team
	// (after 15 minutes) only 15 minutes later, not at once.
	e.later(time.Minute)
	if got := names(e.out.take()); slices.Contains(got, "Hosting team") || !slices.Contains(got, "Infra oncall") {
		t.Fatalf("when the silence ended: %q; want the first level only", got)
	}
	e.later(14 * time.Minute)
	if got := names(e.out.take()); len(got) != 0 {
		t.Fatalf("escalated too early: %q", got)
	}
	e.later(time.Minute + time.Second)
	if got := names(e.out.take()); !slices.Equal(got, []string{"Hosting team"}) {
		t.Fatalf("15 minutes after the silence: %q, want the hosting team", got)
	}
}
