package web

import (
	"net/http"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// reviewPeriods are the periods the review page offers.
var reviewPeriods = []struct {
	Name  string
	Label string
	D     time.Duration
}{{"24h", "the last day", 24 * time.Hour}, {"168h", "the last week", 7 * 24 * time.Hour}, {"720h", "the last 30 days", 30 * 24 * time.Hour}}

// reviewPage is the review digest of a system the user picks (the anchors
// by default): what is noisy, always broken, left unacknowledged, or about
// to be unsilenced. The owners' digest mails link here.
func (u *UI) reviewPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	ctx := r.Context()
	q := r.URL.Query()
	period := q.Get("period")
	if period == "" {
		period = "168h"
	}
	var d time.Duration
	for _, p := range reviewPeriods {
		if p.Name == period {
			d = p.D
		}
	}
	if d == 0 {
		return aramaki.Errorf(aramaki.EINVALID, "unknown period %q", period)
	}
	systems, err := u.svc.Systems(ctx, s.Principal, service.SystemFilter{})
	if err != nil {
		return err
	}
	anchors, err := u.svc.Systems(ctx, s.Principal, service.SystemFilter{Anchors: true})
	if err != nil {
		return err
	}
	chosen := []string{q.Get("system")}
	if chosen[0] == "" {
		chosen = chosen[:0]
		for _, a := range anchors {
			chosen = append(chosen, a.ID)
		}
	}
	digests := make([]aramaki.Digest, 0, len(chosen))
	for _, id := range chosen {
		dg, err := u.svc.Digest(ctx, s.Principal, id, d)
		if err != nil {
			return err
		}
		digests = append(digests, dg)
	}
	u.render(w, r, http.StatusOK, "review", s, map[string]any{
		"Systems": systems, "System": q.Get("system"), "Period": period, "Periods": reviewPeriods, "Digests": digests,
	})
	return nil
}
