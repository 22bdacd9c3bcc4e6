package aramaki_test

import (
	"testing"
	"time"

	"github.com/aramaki/aramaki"
)

// A route limited to office hours hears of an alert still open when its
// hours begin, and hears it resolved at any hour.
func TestARouteOutsideItsHoursHearsWhenTheyBegin(t *testing.T) {
	g, err := aramaki.NewGraph([]aramaki.System{{ID: "shop", Title: "Shop",
		Owners:  []aramaki.Contact{{Name: "Alice", Email: "alice@example.com"}},
		Routing: []aramaki.Route{{Contact: "Alice", Via: "email", Hours: "Mon-Fri 09:00-17:00 UTC"}}}})
	if err != nil {
		t.Fatal(err)
	}
	night := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC) // a Tuesday
	alert := aramaki.Alert{ID: "1", System: "shop", Check: "http", Status: aramaki.StatusWarning, State: aramaki.AlertOpen, Group: "1", Opened: night}
	group := aramaki.PlanGroup{Group: aramaki.AlertGroup{ID: "1", System: "shop", Opened: night}, Alerts: []aramaki.Alert{alert}, Told: map[aramaki.Told]bool{}}

	out, err := aramaki.Planner{Graph: g, Now: night}.Plan([]aramaki.PlanGroup{group})
	if err != nil {
		t.Fatal(err)
	}
	nine := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	if len(out.Notifications) != 0 || !out.Next["1"].Equal(nine) {
		t.Fatalf("at night: %d notifications, next look at %v; want none, and a look at 09:00", len(out.Notifications), out.Next["1"])
	}
	out, err = aramaki.Planner{Graph: g, Now: nine}.Plan([]aramaki.PlanGroup{group})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Notifications) != 1 || out.Notifications[0].Recipient.Address != "alice@example.com" {
		t.Fatalf("at nine: %+v, want Alice told", out.Notifications)
	}
	for _, told := range out.Told {
		group.Told[told] = true
	}
	group.Recipients = out.To
	// It resolves in the evening: Alice hears it although her hours are over.
	evening := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC)
	resolved := alert
	resolved.State, resolved.Resolved = aramaki.AlertResolved, &evening
	group.Alerts = []aramaki.Alert{resolved}
	out, err = aramaki.Planner{Graph: g, Now: evening}.Plan([]aramaki.PlanGroup{group})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Notifications) != 1 || out.Notifications[0].Message.Subject != "RESOLVED shop/http" || len(out.Resolved) != 1 {
		t.Fatalf("in the evening: %+v, want Alice told it resolved", out.Notifications)
	}
}

func TestTheNextHoursOfASchedule(t *testing.T) {
	h, err := aramaki.ParseHours("Mon-Fri 09:00-17:00 Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, c := range []struct{ at, want time.Time }{
		{time.Date(2026, 11, 24, 10, 0, 0, 0, berlin), time.Date(2026, 11, 24, 10, 0, 0, 0, berlin)}, // within
		{time.Date(2026, 11, 24, 3, 0, 0, 0, berlin), time.Date(2026, 11, 24, 9, 0, 0, 0, berlin)},   // before
		{time.Date(2026, 11, 24, 18, 0, 0, 0, berlin), time.Date(2026, 11, 25, 9, 0, 0, 0, berlin)},  // after
		{time.Date(2026, 11, 27, 18, 0, 0, 0, berlin), time.Date(2026, 11, 30, 9, 0, 0, 0, berlin)},  // Friday evening: Monday
	} {
		if got := h.Next(c.at); !got.Equal(c.want) {
			t.Errorf("Next(%s) = %s, want %s", c.at, got, c.want)
		}
	}
}
