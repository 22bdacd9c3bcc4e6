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

// sendDigests queues, once per digest period, one review digest for each
// owner with an e-mail address, covering every system they own (and what
// is under it). Owners whose systems have nothing to review get nothing.
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
	type owner struct {
		name    string
		systems []string
	}
	owners := map[string]*owner{}
	var addresses []string
	for _, sys := range g.Systems() {
		for _, o := range sys.Owners {
			if o.Email == "" {
				continue
			}
			key := strings.ToLower(o.Email)
			if owners[key] == nil {
				owners[key] = &owner{name: o.Name}
				addresses = append(addresses, key)
			}
			owners[key].systems = append(owners[key].systems, sys.ID)
		}
	}
	slices.Sort(addresses)
	everyone := aramaki.Principal{User: "server", Bindings: []aramaki.RoleBinding{{User: "server", System: aramaki.GlobalScope, Role: aramaki.RoleViewer}}}
	for _, address := range addresses {
		o, key := owners[address], "owner:"+address
		last, err := s.store.DigestSent(ctx, key)
		if err != nil {
			return err
		}
		if now.Sub(last) < s.digestEvery {
			continue
		}
		var digests []aramaki.Digest
		for _, id := range o.systems {
			d, err := s.Digest(ctx, everyone, id, s.digestEvery)
			if err != nil {
				return err
			}
			if !d.Empty() {
				digests = append(digests, d)
			}
		}
		var (
			notifications []aramaki.Notification
			ev            aramaki.Event
		)
		if len(digests) > 0 {
			m := s.digestMessage(digests)
			m.ID = fmt.Sprintf("digest-%s-%d", address, now.UnixMicro())
			notifications = append(notifications, aramaki.Notification{Recipient: aramaki.Recipient{Type: aramaki.NotifyEmail, Name: o.name, Address: address},
				Message: m, State: aramaki.NotificationPending, Next: now, Created: now})
			var systems []string
			for _, d := range digests {
				systems = append(systems, d.System)
			}
			if ev, err = s.event(aramaki.KindDigestSent, "server", systems,
				fmt.Sprintf("review digest sent to %s: %s", o.name, m.Subject), digests); err != nil {
				return err
			}
		}
		if _, err := s.store.QueueDigest(ctx, key, now.Add(-s.digestEvery), now, notifications, ev); err != nil {
			return fmt.Errorf("queue the digest of %s: %w", o.name, err)
		}
	}
	return nil
}

// digestMessage writes the digests of an owner's systems as one message.
func (s *Service) digestMessage(digests []aramaki.Digest) aramaki.Message {
	var noisy, broken, unacked, ending int
	for _, d := range digests {
		noisy, broken, unacked, ending = noisy+len(d.Noisiest), broken+len(d.AlwaysBroken), unacked+len(d.Unacknowledged), ending+len(d.Expiring)
	}
	var parts []string
	count := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	count(noisy, "noisy checks")
	count(broken, "always broken")
	count(unacked, "unacknowledged alerts")
	count(ending, "silences ending")
	first := digests[0]
	what := first.Title
	if len(digests) > 1 {
		what = fmt.Sprintf("%s and %d more", first.Title, len(digests)-1)
	}
	m := aramaki.Message{Subject: fmt.Sprintf("Review of %s: %s", what, strings.Join(parts, ", ")), At: first.Until, System: first.System}
	var b strings.Builder
	for i, d := range digests {
		if i > 0 {
			b.WriteString("\n\n")
		}
		writeDigest(&b, d, s.agentName)
	}
	m.Text = b.String()
	if s.url != "" {
		m.URL = strings.TrimRight(s.url, "/") + "/review"
		if len(digests) == 1 {
			m.URL += "?system=" + first.System
		}
	}
	return m
}

// writeDigest writes one system's digest as text.
func writeDigest(b *strings.Builder, d aramaki.Digest, agentName func(string) string) {
	fmt.Fprintf(b, "Review of %s (%s) from %s to %s.\n", d.Title, d.System, d.Since.Format("2006-01-02"), d.Until.Format("2006-01-02"))
	if len(d.Noisiest) > 0 {
		b.WriteString("\nNoisiest checks (status changes):\n")
		for _, c := range d.Noisiest {
			fmt.Fprintf(b, "  %s/%s: %d\n", c.System, c.Check, c.Changes)
		}
	}
	if len(d.AlwaysBroken) > 0 {
		b.WriteString("\nBroken since before the period began:\n")
		for _, st := range d.AlwaysBroken {
			fmt.Fprintf(b, "  %s/%s on %s: %s since %s\n", st.System, st.Check, agentName(st.Agent), strings.ToUpper(st.Status.String()), st.Since.Format("2006-01-02"))
		}
	}
	if len(d.Unacknowledged) > 0 {
		b.WriteString("\nAlerts nobody acknowledged:\n")
		for _, a := range d.Unacknowledged {
			fmt.Fprintf(b, "  alert %s: %s %s/%s since %s\n", a.ID, strings.ToUpper(a.Status.String()), a.System, a.Check, a.Opened.Format("2006-01-02 15:04 UTC"))
		}
	}
	if len(d.Expiring) > 0 {
		b.WriteString("\nSilences ending within a day:\n")
		for _, sl := range d.Expiring {
			fmt.Fprintf(b, "  %s by %s until %s: %s\n", sl.System, sl.CreatedBy, sl.End.Format("2006-01-02 15:04 UTC"), sl.Reason)
		}
	}
}
