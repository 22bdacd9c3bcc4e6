package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// SilenceRequest asks for a silence or maintenance window on a system.
type SilenceRequest struct {
	System        string        `json:"system"`
	Start         time.Time     `json:"start"`    // zero: now
	End           time.Time     `json:"end"`      // or Duration
	Duration      time.Duration `json:"duration"` // from Start
	Reason        string        `json:"reason"`
	Maintenance   bool          `json:"maintenance"`
	UntilResolved bool          `json:"until_resolved"`
}

// CreateSilence mutes the alerts of a system and everything under it from
// start to end; operators of the system may. Silenced alerts are still
// recorded, only nobody is notified.
func (s *Service) CreateSilence(ctx context.Context, p aramaki.Principal, r SilenceRequest) (aramaki.Silence, error) {
	g := s.Graph()
	if err := s.visible(g, p, r.System); err != nil {
		return aramaki.Silence{}, err
	}
	if err := s.require(p, r.System, aramaki.RoleOperator); err != nil {
		return aramaki.Silence{}, err
	}
	now := s.now()
	sl := aramaki.Silence{System: r.System, Start: r.Start, End: r.End, Reason: strings.TrimSpace(r.Reason),
		CreatedBy: p.User, Created: now, Maintenance: r.Maintenance, UntilResolved: r.UntilResolved}
	if sl.Start.IsZero() {
		sl.Start = now
	}
	if !r.End.IsZero() && r.Duration != 0 {
		return aramaki.Silence{}, aramaki.Errorf(aramaki.EINVALID, "give an end or a duration, not both")
	}
	if r.Duration < 0 {
		return aramaki.Silence{}, aramaki.Errorf(aramaki.EINVALID, "the duration %s is negative", r.Duration)
	}
	if r.Duration > 0 {
		sl.End = sl.Start.Add(r.Duration)
	}
	sl.Start, sl.End = sl.Start.UTC().Truncate(time.Microsecond), sl.End.UTC().Truncate(time.Microsecond)
	if err := sl.Validate(now); err != nil {
		return aramaki.Silence{}, err
	}
	what := "silenced"
	if sl.Maintenance {
		what = "planned maintenance of"
	}
	return s.store.CreateSilence(ctx, sl, func(sl aramaki.Silence) (aramaki.Event, error) {
		return s.event(aramaki.KindSilenceCreated, p.Actor(), []string{sl.System},
			fmt.Sprintf("%s %s %s from %s until %s: %s", p.User, what, sl.System,
				sl.Start.Format("2006-01-02 15:04 UTC"), sl.End.Format("2006-01-02 15:04 UTC"), sl.Reason), sl)
	})
}

// EndSilence ends a silence early; operators of its system may.
func (s *Service) EndSilence(ctx context.Context, p aramaki.Principal, id string) (aramaki.Silence, error) {
	g := s.Graph()
	return s.store.EndSilence(ctx, id, func(sl aramaki.Silence) (aramaki.Silence, aramaki.Event, error) {
		if !g.CanView(p, sl.System) && p.GlobalRole() == aramaki.RoleNone {
			return sl, aramaki.Event{}, aramaki.Errorf(aramaki.ENOTFOUND, "silence %s not found", id)
		}
		if err := s.require(p, sl.System, aramaki.RoleOperator); err != nil {
			return sl, aramaki.Event{}, err
		}
		now := s.now()
		if !now.Before(sl.End) || sl.Ended != nil {
			return sl, aramaki.Event{}, aramaki.Errorf(aramaki.ECONFLICT, "silence %s is over already", id)
		}
		sl.Ended, sl.EndedBy = &now, p.User
		ev, err := s.event(aramaki.KindSilenceEnded, p.Actor(), []string{sl.System},
			fmt.Sprintf("%s ended the silence of %s (%s)", p.User, sl.System, sl.Reason), sl)
		return sl, ev, err
	})
}

// Silences returns the silences not over on systems the principal can see.
func (s *Service) Silences(ctx context.Context, p aramaki.Principal) ([]aramaki.Silence, error) {
	g := s.Graph()
	all, err := s.store.Silences(ctx, s.now())
	if err != nil {
		return nil, err
	}
	out := slices.DeleteFunc(all, func(sl aramaki.Silence) bool { return !g.CanView(p, sl.System) })
	if out == nil {
		out = []aramaki.Silence{}
	}
	return out, nil
}

// SilencesOn returns the silences not over that cover a system: on it or
// on a system above it.
func (s *Service) SilencesOn(ctx context.Context, p aramaki.Principal, system string) ([]aramaki.Silence, error) {
	g := s.Graph()
	if err := s.visible(g, p, system); err != nil {
		return nil, err
	}
	all, err := s.store.Silences(ctx, s.now())
	if err != nil {
		return nil, err
	}
	above := append([]string{system}, g.Ancestors(system)...)
	out := []aramaki.Silence{}
	for _, sl := range all {
		if slices.Contains(above, sl.System) {
			out = append(out, redactSilence(g, p, sl))
		}
	}
	return out, nil
}

// redactSilence leaves out who silenced a system the principal cannot see,
// and why: that it is silenced from above is all they learn.
func redactSilence(g *aramaki.Graph, p aramaki.Principal, sl aramaki.Silence) aramaki.Silence {
	if g.CanView(p, sl.System) {
		return sl
	}
	return aramaki.Silence{ID: sl.ID, System: sl.System, Start: sl.Start, End: sl.End, Ended: sl.Ended,
		Maintenance: sl.Maintenance, Reason: "(on a system above, not visible to you)"}
}

// tendSilences ends silences that ran out or whose alerts all resolved,
// and reminds before a silence ends, on the timeline.
func (s *Service) tendSilences(ctx context.Context) error {
	now := s.now()
	due, err := s.store.DueSilences(ctx, now, now.Add(aramaki.SilenceReminding))
	if err != nil {
		return err
	}
	for _, sl := range due {
		if !now.Before(sl.End) {
			_, err := s.store.EndSilence(ctx, sl.ID, func(sl aramaki.Silence) (aramaki.Silence, aramaki.Event, error) {
				if sl.Ended != nil {
					return sl, aramaki.Event{}, errEndedAlready // by another replica, or by hand
				}
				end := sl.End
				sl.Ended = &end
				ev, err := s.event(aramaki.KindSilenceEnded, "server", []string{sl.System},
					fmt.Sprintf("the silence of %s by %s ran out (%s)", sl.System, sl.CreatedBy, sl.Reason), sl)
				return sl, ev, err
			})
			if err != nil && !errors.Is(err, errEndedAlready) {
				return fmt.Errorf("end silence %s: %w", sl.ID, err)
			}
			continue
		}
		if err := s.remind(ctx, sl); err != nil {
			return fmt.Errorf("remind of silence %s: %w", sl.ID, err)
		}
	}
	// Silences that end with their alerts.
	active, err := s.store.Silences(ctx, now)
	if err != nil {
		return err
	}
	g := s.Graph()
	for _, sl := range active {
		if !sl.UntilResolved || !sl.ActiveAt(now) {
			continue
		}
		under := append([]string{sl.System}, g.Descendants(sl.System)...)
		alerts, err := s.store.Alerts(ctx, aramaki.AlertFilter{Systems: under, Limit: 1000})
		if err != nil {
			return err
		}
		// It ends once the alerts that came have all resolved.
		seen, open := false, false
		for _, a := range alerts {
			open = open || a.Active()
			seen = seen || a.Resolved != nil && a.Resolved.After(sl.Start)
		}
		if !seen || open {
			continue
		}
		_, err = s.store.EndSilence(ctx, sl.ID, func(sl aramaki.Silence) (aramaki.Silence, aramaki.Event, error) {
			if sl.Ended != nil {
				return sl, aramaki.Event{}, errEndedAlready
			}
			sl.Ended = &now
			ev, err := s.event(aramaki.KindSilenceEnded, "server", []string{sl.System},
				fmt.Sprintf("the silence of %s ended: its alerts resolved (%s)", sl.System, sl.Reason), sl)
			return sl, ev, err
		})
		if err != nil && !errors.Is(err, errEndedAlready) {
			return fmt.Errorf("end silence %s: %w", sl.ID, err)
		}
	}
	return nil
}

// errEndedAlready stops ending a silence someone ended meanwhile.
var errEndedAlready = errors.New("the silence is over already")

// remind tells a silence's creator, on the timeline and by e-mail if they
// have an address, that it is about to end.
func (s *Service) remind(ctx context.Context, sl aramaki.Silence) error {
	now := s.now()
	if sl.End.Sub(sl.Start) <= 2*aramaki.SilenceReminding {
		// Too short to need a reminder: its creator just made it.
		_, err := s.store.RemindSilence(ctx, sl.ID, aramaki.Event{}, nil)
		return err
	}
	summary := fmt.Sprintf("%s: your silence of %s ends at %s (%s)", sl.CreatedBy, sl.System, sl.End.Format("15:04 UTC"), sl.Reason)
	ev, err := s.event(aramaki.KindSilenceExpiring, "server", []string{sl.System}, summary, sl)
	if err != nil {
		return err
	}
	var notifications []aramaki.Notification
	u, _, err := s.store.UserByName(ctx, sl.CreatedBy)
	if err != nil && aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
		return err
	}
	if u.Email != "" && !u.Disabled {
		m := aramaki.Message{ID: fmt.Sprintf("silence-%s-reminder", sl.ID), At: now, System: sl.System,
			Subject: fmt.Sprintf("Your silence of %s ends at %s", sl.System, sl.End.Format("15:04 UTC")),
			Text: fmt.Sprintf("The silence of %s you made (%s) ends at %s. Alerts under it still open will be notified then;\n"+
				"extend it with a new silence if the work is not done: aramaki silence create --system %s --for 1h --reason ...\n",
				sl.System, sl.Reason, sl.End.Format("2006-01-02 15:04 UTC"), sl.System)}
		if s.url != "" {
			m.URL = strings.TrimRight(s.url, "/") + "/systems/" + sl.System
		}
		notifications = append(notifications, aramaki.Notification{Recipient: aramaki.Recipient{Type: aramaki.NotifyEmail, Name: u.Name, Address: u.Email},
			Message: m, State: aramaki.NotificationPending, Next: now, Created: now})
	}
	_, err = s.store.RemindSilence(ctx, sl.ID, ev, notifications)
	return err
}
