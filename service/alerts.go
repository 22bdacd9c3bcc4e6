package service

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aramaki/aramaki"
)

// Alerting defaults.
const (
	// DefaultGroupWait is how long a new group waits for related alerts
	// before its first notification goes out.
	DefaultGroupWait = 10 * time.Second
	// alertBatch is how many pending checks the engine decides in one
	// transaction: small enough that ingestion waits little for it.
	alertBatch = 2000
	// MaxCommentLen bounds comments on alerts.
	MaxCommentLen = 4000
)

// processAlerts runs the alert engine until no check is pending: opens,
// updates and resolves alerts for the checks whose status changed.
func (s *Service) processAlerts(ctx context.Context) error {
	var after int64
	for {
		g := s.Graph()
		n, last, err := s.store.ProcessAlerts(ctx, after, alertBatch, s.now(), s.groupWait, func(in aramaki.AlertInput) (aramaki.AlertOutput, error) {
			return aramaki.DecideAlerts(in, g, func(k aramaki.CheckKey) int {
				if sys := g.System(k.System); sys != nil {
					for _, c := range sys.Checks {
						if c.Name == k.Check {
							return c.AlertAfter
						}
					}
				}
				return 1
			})
		})
		if err != nil {
			return fmt.Errorf("process alerts: %w", err)
		}
		if n < alertBatch {
			return nil
		}
		after = last
	}
}

// AlertQuery selects alerts for the review queue. Zero fields select all.
type AlertQuery struct {
	System    string // and everything under it
	Category  string
	Owner     string // a name among the system's owners
	States    []aramaki.AlertState
	OlderThan time.Duration
	Group     string
	Limit     int
}

// Alert limits.
const (
	DefaultAlertLimit = 100
	MaxAlertLimit     = 1000
)

// Alerts returns the alerts on systems the principal can see, newest first.
func (s *Service) Alerts(ctx context.Context, p aramaki.Principal, q AlertQuery) ([]aramaki.Alert, error) {
	g := s.Graph()
	for _, st := range q.States {
		if !st.Valid() {
			return nil, aramaki.Errorf(aramaki.EINVALID, "unknown alert state %q: use open, acknowledged or resolved", st)
		}
	}
	if q.Limit == 0 {
		q.Limit = DefaultAlertLimit
	}
	if q.Group != "" {
		if _, err := strconv.ParseInt(q.Group, 10, 64); err != nil {
			return nil, aramaki.Errorf(aramaki.EINVALID, "group must be a group number, not %q", q.Group)
		}
	}
	if q.Limit < 0 || q.Limit > MaxAlertLimit {
		return nil, aramaki.Errorf(aramaki.EINVALID, "limit must be between 1 and %d", MaxAlertLimit)
	}
	scope := g.Visible(p)
	if q.System != "" {
		if err := s.visible(g, p, q.System); err != nil {
			return nil, err
		}
		under := append([]string{q.System}, g.Descendants(q.System)...)
		scope = slices.DeleteFunc(under, func(id string) bool { return !g.CanView(p, id) })
	}
	scope = slices.DeleteFunc(scope, func(id string) bool {
		sys := g.System(id)
		if q.Category != "" && (sys == nil || !strings.EqualFold(sys.Category, q.Category)) {
			return true
		}
		if q.Owner != "" && (sys == nil || !slices.ContainsFunc(sys.Owners, func(c aramaki.Contact) bool { return strings.EqualFold(c.Name, q.Owner) })) {
			return true
		}
		return false
	})
	if len(scope) == 0 {
		return []aramaki.Alert{}, nil
	}
	f := aramaki.AlertFilter{States: q.States, Group: q.Group, Limit: q.Limit}
	if p.GlobalRole() == aramaki.RoleNone || q.System != "" || q.Category != "" || q.Owner != "" {
		f.Systems = scope
	}
	if q.OlderThan > 0 {
		f.Before = s.now().Add(-q.OlderThan)
	}
	alerts, err := s.store.Alerts(ctx, f)
	if err != nil {
		return nil, err
	}
	// Alerts of systems no longer in the config are seen by global roles only.
	alerts = slices.DeleteFunc(alerts, func(a aramaki.Alert) bool { return !g.CanView(p, a.System) && p.GlobalRole() == aramaki.RoleNone })
	if alerts == nil {
		alerts = []aramaki.Alert{}
	}
	return alerts, nil
}

// AlertView is an alert with what people did to it.
type AlertView struct {
	aramaki.Alert
	Notes []aramaki.AlertNote `json:"notes"`
	// Deliveries are the notifications that told of the alert, newest
	// first: to whom, how, and whether they got through.
	Deliveries []Delivery `json:"deliveries"`
}

// Delivery is a notification as people review it.
type Delivery struct {
	ID        string                    `json:"id"`
	To        string                    `json:"to"`
	Via       aramaki.NotifierType      `json:"via"`
	Subject   string                    `json:"subject"`
	State     aramaki.NotificationState `json:"state"`
	Attempts  int                       `json:"attempts"`
	LastError string                    `json:"last_error,omitempty"`
	Created   time.Time                 `json:"created"`
	Done      *time.Time                `json:"done,omitempty"`
}

// Alert returns one alert the principal can see.
func (s *Service) Alert(ctx context.Context, p aramaki.Principal, id string) (AlertView, error) {
	a, notes, err := s.store.Alert(ctx, id)
	if err != nil {
		return AlertView{}, err
	}
	if !s.Graph().CanView(p, a.System) && p.GlobalRole() == aramaki.RoleNone {
		return AlertView{}, aramaki.Errorf(aramaki.ENOTFOUND, "alert %s not found", id)
	}
	if notes == nil {
		notes = []aramaki.AlertNote{}
	}
	v := AlertView{Alert: a, Notes: notes, Deliveries: []Delivery{}}
	if p.Anonymous() {
		return v, nil // who is told where is for the team, not the public
	}
	sent, err := s.store.Notifications(ctx, a.Group, 500)
	if err != nil {
		return AlertView{}, err
	}
	for _, nt := range sent {
		if slices.ContainsFunc(nt.Message.Alerts, func(x aramaki.Alert) bool { return x.ID == a.ID }) {
			v.Deliveries = append(v.Deliveries, Delivery{ID: nt.ID, To: nt.Recipient.Name, Via: nt.Recipient.Type, Subject: nt.Message.Subject,
				State: nt.State, Attempts: nt.Attempts, LastError: nt.LastError, Created: nt.Created, Done: nt.Done})
		}
	}
	return v, nil
}

// AlertChange is what a person does to an alert.
type AlertChange string

// Alert changes.
const (
	AlertAck      AlertChange = "acknowledge"
	AlertAssign   AlertChange = "assign"
	AlertComment  AlertChange = "comment"
	AlertEscalate AlertChange = "escalate"
	AlertResolve  AlertChange = "resolve"
)

// ChangeAlert acknowledges, assigns, comments on, escalates or resolves an
// alert; operators of its system may. The change is noted on the alert and
// on the timeline.
func (s *Service) ChangeAlert(ctx context.Context, p aramaki.Principal, id string, change AlertChange, text string) (aramaki.Alert, error) {
	if len(text) > MaxCommentLen {
		return aramaki.Alert{}, aramaki.Errorf(aramaki.EINVALID, "the comment is longer than %d bytes", MaxCommentLen)
	}
	text = strings.TrimSpace(text)
	switch change {
	case AlertAck, AlertEscalate, AlertResolve:
	case AlertComment:
		if text == "" {
			return aramaki.Alert{}, aramaki.Errorf(aramaki.EINVALID, "a comment needs text")
		}
	case AlertAssign:
		if err := aramaki.ValidateUserName(text); err != nil {
			return aramaki.Alert{}, aramaki.Errorf(aramaki.EINVALID, "assign to whom? %s", aramaki.ErrorMessage(err))
		}
		// Only who may change the alert learns whether a user exists.
		a, _, err := s.store.Alert(ctx, id)
		if err != nil {
			return aramaki.Alert{}, err
		}
		if !s.Graph().CanView(p, a.System) && p.GlobalRole() == aramaki.RoleNone {
			return aramaki.Alert{}, aramaki.Errorf(aramaki.ENOTFOUND, "alert %s not found", id)
		}
		if err := s.require(p, a.System, aramaki.RoleOperator); err != nil {
			return aramaki.Alert{}, err
		}
		if _, _, err := s.store.UserByName(ctx, text); aramaki.ErrorCode(err) == aramaki.ENOTFOUND {
			return aramaki.Alert{}, aramaki.Errorf(aramaki.EINVALID, "there is no user %s to assign the alert to", text)
		} else if err != nil {
			return aramaki.Alert{}, err
		}
	default:
		return aramaki.Alert{}, aramaki.Errorf(aramaki.EINVALID, "unknown change %q: use acknowledge, assign, comment, escalate or resolve", change)
	}
	g := s.Graph()
	var notifiers []aramaki.Notifier
	if change == AlertEscalate {
		var err error
		if notifiers, err = s.store.Notifiers(ctx); err != nil {
			return aramaki.Alert{}, err
		}
	}
	return s.store.ChangeAlert(ctx, id, func(a aramaki.Alert) (aramaki.Alert, aramaki.AlertNote, aramaki.Event, error) {
		none := func(err error) (aramaki.Alert, aramaki.AlertNote, aramaki.Event, error) {
			return aramaki.Alert{}, aramaki.AlertNote{}, aramaki.Event{}, err
		}
		if !g.CanView(p, a.System) && p.GlobalRole() == aramaki.RoleNone {
			return none(aramaki.Errorf(aramaki.ENOTFOUND, "alert %s not found", id))
		}
		if err := s.require(p, a.System, aramaki.RoleOperator); err != nil {
			return none(err)
		}
		now := s.now()
		note := aramaki.AlertNote{At: now, Actor: p.User, Kind: string(change), Text: text}
		var (
			kind    aramaki.EventKind
			summary string
		)
		if !a.Active() && change != AlertComment {
			return none(aramaki.Errorf(aramaki.ECONFLICT, "alert %s is resolved already", a.ID))
		}
		switch change {
		case AlertAck:
			if a.State == aramaki.AlertAcknowledged {
				return none(aramaki.Errorf(aramaki.ECONFLICT, "alert %s is acknowledged already, by %s", a.ID, a.AcknowledgedBy))
			}
			a.State, a.Acknowledged, a.AcknowledgedBy = aramaki.AlertAcknowledged, &now, p.User
			kind, summary = aramaki.KindAlertAcknowledged, fmt.Sprintf("%s acknowledged alert %s (%s/%s)", p.User, a.ID, a.System, a.Check)
		case AlertAssign:
			a.Assignee = text
			kind, summary = aramaki.KindAlertAssigned, fmt.Sprintf("%s assigned alert %s (%s/%s) to %s", p.User, a.ID, a.System, a.Check, text)
			text = ""
		case AlertComment:
			kind, summary = aramaki.KindAlertCommented, fmt.Sprintf("%s commented on alert %s (%s/%s)", p.User, a.ID, a.System, a.Check)
		case AlertEscalate:
			// Only as far as the routes go: escalating past the last level
			// would page nobody.
			routes, _ := g.Route(notifiers, a.System, a.Status, time.Time{})
			var delays []time.Duration
			for _, r := range routes {
				if r.After > 0 && !slices.Contains(delays, r.After) {
					delays = append(delays, r.After)
				}
			}
			if a.Level >= len(delays) {
				return none(aramaki.Errorf(aramaki.ECONFLICT, "alert %s is at its last escalation level (%d): no route of %s or the systems above it escalates further", a.ID, a.Level, a.System))
			}
			a.Level++
			kind, summary = aramaki.KindAlertEscalated, fmt.Sprintf("%s escalated alert %s (%s/%s) to level %d", p.User, a.ID, a.System, a.Check, a.Level)
		case AlertResolve:
			a.State, a.Resolved = aramaki.AlertResolved, &now
			kind, summary = aramaki.KindAlertResolved, fmt.Sprintf("%s resolved alert %s (%s/%s)", p.User, a.ID, a.System, a.Check)
		}
		a.Updated = now
		ev, err := aramaki.AlertEvent(now, kind, a, p.Actor(), text, summary)
		if err != nil {
			return none(err)
		}
		return a, note, ev, nil
	})
}

// Sender delivers a notification to a recipient.
type Sender interface {
	Send(ctx context.Context, to aramaki.Recipient, m aramaki.Message) error
}

// Delivery defaults.
const (
	DefaultMaxAttempts = 8
	firstRetry         = 10 * time.Second
	maxRetry           = 10 * time.Minute
	deliveryLease      = 2 * time.Minute
	alertTick          = 500 * time.Millisecond
	planBatch          = 100
	sendBatch          = 50
)

// FailureCheck is the check name of the alert raised when a notification
// finally fails.
const FailureCheck = "notification"

// RunAlerts runs the alert engine, the notification planner and the
// sender until ctx ends: every tick, or at once after a status change.
func (s *Service) RunAlerts(ctx context.Context, sender Sender) {
	t := time.NewTicker(alertTick)
	defer t.Stop()
	for {
		if err := s.AlertRound(ctx, sender); err != nil && ctx.Err() == nil {
			s.log.Error("alerting", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.alertWake:
		}
	}
}

// wakeAlerts tells RunAlerts that statuses changed.
func (s *Service) wakeAlerts() {
	select {
	case s.alertWake <- struct{}{}:
	default:
	}
}

// AlertRound decides pending alerts, plans notifications for due groups
// and sends the due notifications, once.
func (s *Service) AlertRound(ctx context.Context, sender Sender) error {
	if err := s.processAlerts(ctx); err != nil {
		return err
	}
	if err := s.tendSilences(ctx); err != nil {
		return err
	}
	if err := s.sendDigests(ctx); err != nil {
		return err
	}
	if err := s.planNotifications(ctx); err != nil {
		return err
	}
	return s.sendNotifications(ctx, sender)
}

func (s *Service) planNotifications(ctx context.Context) error {
	for {
		notifiers, err := s.store.Notifiers(ctx)
		if err != nil {
			return err
		}
		p := aramaki.Planner{Graph: s.Graph(), Notifiers: notifiers, URL: s.url, Now: s.now()}
		n, err := s.store.PlanNotifications(ctx, p.Now, planBatch, func(groups []aramaki.PlanGroup, silences []aramaki.Silence) (aramaki.PlanOutput, error) {
			p.Silences = silences
			return p.Plan(groups)
		})
		if err != nil {
			return fmt.Errorf("plan notifications: %w", err)
		}
		if n < planBatch {
			return nil
		}
	}
}

// sendNotifications sends what is due, a few at a time in parallel, and
// records each attempt.
func (s *Service) sendNotifications(ctx context.Context, sender Sender) error {
	if sender == nil {
		return nil
	}
	due, err := s.store.ClaimNotifications(ctx, s.now(), sendBatch, deliveryLease)
	if err != nil {
		return fmt.Errorf("claim notifications: %w", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(due))
	for _, nt := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.deliver(ctx, sender, nt)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// deliver sends one notification and records the attempt: sent, retried
// later with backoff, or given up with an alert of its own.
func (s *Service) deliver(ctx context.Context, sender Sender, nt aramaki.Notification) error {
	start := s.now()
	err := sender.Send(ctx, nt.Recipient, nt.Message)
	if err != nil && ctx.Err() != nil {
		return nil // shutting down: the lease runs out and it is tried again
	}
	// What was sent is recorded even while shutting down.
	ctx = context.WithoutCancel(ctx)
	attempt := aramaki.DeliveryAttempt{At: start, Duration: s.now().Sub(start)}
	var failure *aramaki.Alert
	now := s.now()
	switch {
	case err == nil:
		nt.State, nt.Done = aramaki.NotificationSent, &now
		s.log.Info("notification sent", "id", nt.ID, "to", nt.Recipient.Name, "type", nt.Recipient.Type)
	default:
		attempt.Error = aramaki.ErrorMessage(err)
		if attempt.Error == "" || attempt.Error == "internal error" {
			attempt.Error = err.Error()
		}
		attempts := nt.Attempts + 1
		if attempts >= s.maxAttempts || s.permanent(err) {
			nt.State, nt.Done = aramaki.NotificationFailed, &now
			system := s.failureSystem(nt)
			failure = &aramaki.Alert{System: system, Check: FailureCheck, Status: aramaki.StatusCritical, State: aramaki.AlertOpen,
				Output: fmt.Sprintf("notification %s to %s (%s) failed after %d attempts: %s", nt.ID, nt.Recipient.Name, nt.Recipient.Type, attempts, attempt.Error),
				Opened: now, Updated: now}
			s.log.Warn("notification failed", "id", nt.ID, "to", nt.Recipient.Name, "attempts", attempts, "err", attempt.Error)
		} else {
			nt.Next = now.Add(min(firstRetry<<(attempts-1), maxRetry))
			s.log.Info("notification will be retried", "id", nt.ID, "to", nt.Recipient.Name, "attempt", attempts, "next", nt.Next, "err", attempt.Error)
		}
	}
	return s.store.FinishAttempt(ctx, nt, attempt, failure, func(a aramaki.Alert) (aramaki.Event, error) {
		return s.event(aramaki.KindNotificationFail, "server", []string{a.System},
			fmt.Sprintf("a notification to %s could not be delivered: %s", nt.Recipient.Name, attempt.Error),
			map[string]any{"notification": nt.ID, "recipient": nt.Recipient.Name, "type": nt.Recipient.Type, "error": attempt.Error, "alert": a.ID})
	})
}

// failureSystem is the system a failed notification's alert is raised on:
// the system the message is about.
func (s *Service) failureSystem(nt aramaki.Notification) string {
	if nt.Message.System != "" && s.Graph().System(nt.Message.System) != nil {
		return nt.Message.System
	}
	for _, a := range nt.Message.Alerts {
		return a.System
	}
	return nt.Message.System
}
