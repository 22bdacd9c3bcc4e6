package service

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// Digest limits.
const (
	DefaultDigestPeriod = 7 * 24 * time.Hour
	digestNoisiest      = 10
	digestCheckEvery    = time.Minute
	unackedAfter        = time.Hour // an alert nobody took up for this long is news
)

// Digest reviews a system and everything under it over the period that
// ends now: the noisiest checks, the checks broken since before the period
// began, alerts nobody acknowledged for an hour, silences ending within a
// day. Whoever may see the system may read it.
func (s *Service) Digest(ctx context.Context, p aramaki.Principal, system string, period time.Duration) (aramaki.Digest, error) {
	g := s.Graph()
	if err := s.visible(g, p, system); err != nil {
		return aramaki.Digest{}, err
	}
	if period <= 0 || period > 90*24*time.Hour {
		return aramaki.Digest{}, aramaki.Errorf(aramaki.EINVALID, "the period must be between 1s and 90 days")
	}
	now := s.now()
	d := aramaki.Digest{System: system, Title: g.System(system).Title, Since: now.Add(-period), Until: now,
		Noisiest: []aramaki.CheckChanges{}, AlwaysBroken: []aramaki.CheckState{}, Unacknowledged: []aramaki.Alert{}, Expiring: []aramaki.Silence{}}
	scope := []string{system}
	for _, sub := range g.Descendants(system) {
		if g.CanView(p, sub) {
			scope = append(scope, sub)
		}
	}
	noisy, err := s.store.ChangeCounts(ctx, scope, d.Since, digestNoisiest)
	if err != nil {
		return aramaki.Digest{}, err
	}
	d.Noisiest = append(d.Noisiest, noisy...)
	states, err := s.store.CheckStates(ctx, scope)
	if err != nil {
		return aramaki.Digest{}, err
	}
	for _, st := range states {
		if st.Status.Problem() && st.Since.Before(d.Since) {
			d.AlwaysBroken = append(d.AlwaysBroken, st)
		}
	}
	slices.SortStableFunc(d.AlwaysBroken, func(a, b aramaki.CheckState) int { return a.Since.Compare(b.Since) })
	unacked, err := s.store.Alerts(ctx, aramaki.AlertFilter{Systems: scope, States: []aramaki.AlertState{aramaki.AlertOpen}, Before: now.Add(-unackedAfter), Limit: 100})
	if err != nil {
		return aramaki.Digest{}, err
	}
	d.Unacknowledged = append(d.Unacknowledged, unacked...)
	silences, err := s.store.Silences(ctx, now)
	if err != nil {
		return aramaki.Digest{}, err
	}
	above := append(slices.Clone(scope), g.Ancestors(system)...)
	for _, sl := range silences {
		if slices.Contains(above, sl.System) && sl.End.Before(now.Add(24*time.Hour)) && g.CanView(p, sl.System) {
			d.Expiring = append(d.Expiring, sl)
		}
	}
	return d, nil
}

// sendDigests queues the review digest of every system with owners who
// have an e-mail address, once per digest period.
func (s *Service) sendDigests(ctx context.Context) error {
	if s.digestEvery <= 0 {
		return nil
	}
	now := s.now()
	if now.Sub(s.digestChecked) < digestCheckEvery {
		return nil
	}
	s.digestChecked = now
	g := s.Graph()
	everyone := aramaki.Principal{User: "server", Bindings: []aramaki.RoleBinding{{User: "server", System: aramaki.GlobalScope, Role: aramaki.RoleViewer}}}
	for _, sys := range g.Systems() {
		var to []aramaki.Recipient
		for _, o := range sys.Owners {
			if o.Email != "" {
				to = append(to, aramaki.Recipient{Type: aramaki.NotifyEmail, Name: o.Name, Address: o.Email})
			}
		}
		if len(to) == 0 {
			continue
		}
		last, err := s.store.DigestSent(ctx, sys.ID)
		if err != nil {
			return err
		}
		if now.Sub(last) < s.digestEvery {
			continue
		}
		d, err := s.Digest(ctx, everyone, sys.ID, s.digestEvery)
		if err != nil {
			return err
		}
		var (
			notifications []aramaki.Notification
			ev            aramaki.Event
		)
		if !d.Empty() {
			m := s.digestMessage(d)
			var names []string
			for i, r := range to {
				m.ID = fmt.Sprintf("digest-%s-%d-%d", sys.ID, now.UnixMicro(), i)
				notifications = append(notifications, aramaki.Notification{Recipient: r, Message: m, State: aramaki.NotificationPending, Next: now, Created: now})
				names = append(names, r.Name)
			}
			if ev, err = s.event(aramaki.KindDigestSent, "server", []string{sys.ID},
				fmt.Sprintf("review digest of %s sent to %s: %s", sys.ID, strings.Join(names, ", "), m.Subject), d); err != nil {
				return err
			}
		}
		if _, err := s.store.QueueDigest(ctx, sys.ID, now.Add(-s.digestEvery), now, notifications, ev); err != nil {
			return fmt.Errorf("queue digest of %s: %w", sys.ID, err)
		}
	}
	return nil
}

// digestMessage writes a digest as a message.
func (s *Service) digestMessage(d aramaki.Digest) aramaki.Message {
	var parts []string
	count := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	count(len(d.Noisiest), "noisy checks")
	count(len(d.AlwaysBroken), "always broken")
	count(len(d.Unacknowledged), "unacknowledged alerts")
	count(len(d.Expiring), "silences ending")
	m := aramaki.Message{Subject: fmt.Sprintf("Review of %s: %s", d.Title, strings.Join(parts, ", ")), At: d.Until, System: d.System}
	var b strings.Builder
	fmt.Fprintf(&b, "Review of %s (%s) from %s to %s.\n", d.Title, d.System, d.Since.Format("2006-01-02"), d.Until.Format("2006-01-02"))
	if len(d.Noisiest) > 0 {
		b.WriteString("\nNoisiest checks (status changes):\n")
		for _, c := range d.Noisiest {
			fmt.Fprintf(&b, "  %s/%s: %d\n", c.System, c.Check, c.Changes)
		}
	}
	if len(d.AlwaysBroken) > 0 {
		b.WriteString("\nBroken since before the period began:\n")
		for _, st := range d.AlwaysBroken {
			fmt.Fprintf(&b, "  %s/%s on %s: %s since %s\n", st.System, st.Check, s.agentName(st.Agent), strings.ToUpper(st.Status.String()), st.Since.Format("2006-01-02"))
		}
	}
	if len(d.Unacknowledged) > 0 {
		b.WriteString("\nAlerts nobody acknowledged:\n")
		for _, a := range d.Unacknowledged {
			fmt.Fprintf(&b, "  alert %s: %s %s/%s since %s\n", a.ID, strings.ToUpper(a.Status.String()), a.System, a.Check, a.Opened.Format("2006-01-02 15:04 UTC"))
		}
	}
	if len(d.Expiring) > 0 {
		b.WriteString("\nSilences ending within a day:\n")
		for _, sl := range d.Expiring {
			fmt.Fprintf(&b, "  %s by %s until %s: %s\n", sl.System, sl.CreatedBy, sl.End.Format("2006-01-02 15:04 UTC"), sl.Reason)
		}
	}
	m.Text = b.String()
	if s.url != "" {
		m.URL = strings.TrimRight(s.url, "/") + "/review?system=" + d.System
	}
	return m
}
