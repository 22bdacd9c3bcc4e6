package aramaki_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
)

// summarise turns status changes (oldest first) into day summaries, the way
// the store keeps them.
func summarise(changes []aramaki.StatusChange) []aramaki.CheckDay {
	var days []aramaki.CheckDay
	for _, c := range changes {
		if n := len(days); n == 0 || !days[n-1].Day.Equal(aramaki.DayOf(c.At)) {
			days = append(days, aramaki.CheckDay{})
		}
		days[len(days)-1].Add(c)
	}
	return days
}

func TestTheThirtyDayStripShowsTheWorstOfEachDay(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	day := func(d int, h int) time.Time {
		return now.Truncate(24*time.Hour).AddDate(0, 0, -d).Add(time.Duration(h) * time.Hour)
	}
	changes := []aramaki.StatusChange{
		{From: aramaki.StatusOK, To: aramaki.StatusOK, At: day(5, 8), First: true},
		{From: aramaki.StatusOK, To: aramaki.StatusCritical, At: day(3, 10)},
		{From: aramaki.StatusCritical, To: aramaki.StatusOK, At: day(3, 11)},
		{From: aramaki.StatusOK, To: aramaki.StatusWarning, At: day(1, 23)},
	}
	strip := aramaki.DayStatuses(summarise(changes), aramaki.CheckState{Status: aramaki.StatusWarning, Since: day(1, 23)}, 7, now)
	want := []string{"-", "ok", "ok", "critical", "ok", "warning", "warning"}
	for i, d := range strip {
		got := "-"
		if d.Known {
			got = d.Status.String()
		}
		if got != want[i] {
			t.Errorf("day %d (%s): %s, want %s", i, d.Day.Format("01-02"), got, want[i])
		}
	}
}

func TestADayStartsInTheStatusThePreviousDayEndedIn(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	at := func(d, h int) time.Time {
		return aramaki.DayOf(now).AddDate(0, 0, -d).Add(time.Duration(h) * time.Hour)
	}
	// Critical since long before the strip, recovered this morning: every
	// day of the strip was critical at some time, and the 40 days ago
	// summary carries into the first day.
	changes := []aramaki.StatusChange{
		{From: aramaki.StatusOK, To: aramaki.StatusOK, At: at(60, 1), First: true},
		{From: aramaki.StatusOK, To: aramaki.StatusCritical, At: at(40, 1)},
		{From: aramaki.StatusCritical, To: aramaki.StatusOK, At: at(0, 6)},
	}
	days := summarise(changes)
	if days[2].Changes != 1 || days[0].Changes != 0 {
		t.Errorf("changes per day %+v: the first result is no change", days)
	}
	strip := aramaki.DayStatuses(days[1:], aramaki.CheckState{Status: aramaki.StatusOK, Since: at(0, 6)}, 30, now)
	for _, d := range strip {
		if !d.Known || d.Status != aramaki.StatusCritical {
			t.Fatalf("%s: %v known=%v, want critical", d.Day.Format("01-02"), d.Status, d.Known)
		}
	}
	// Without any summary, the current state draws the strip from its start.
	strip = aramaki.DayStatuses(nil, aramaki.CheckState{Status: aramaki.StatusWarning, Since: at(2, 3)}, 5, now)
	if strip[1].Known || !strip[2].Known || strip[4].Status != aramaki.StatusWarning {
		t.Errorf("strip from the current state alone: %+v", strip)
	}
}

func TestDaySummariesMergeInOrder(t *testing.T) {
	at := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	var a, b aramaki.CheckDay
	a.Add(aramaki.StatusChange{From: aramaki.StatusOK, To: aramaki.StatusWarning, At: at})
	b.Add(aramaki.StatusChange{From: aramaki.StatusWarning, To: aramaki.StatusCritical, At: at.Add(time.Hour)})
	b.Add(aramaki.StatusChange{From: aramaki.StatusCritical, To: aramaki.StatusUnknown, At: at.Add(2 * time.Hour)})
	a.Merge(b)
	if a.Worst != aramaki.StatusCritical || a.Last != aramaki.StatusUnknown || a.Changes != 3 {
		t.Errorf("merged day %+v: want worst critical, last unknown, 3 changes", a)
	}
}

// The strip drawn from day summaries is the strip of the hour-by-hour
// history: for random histories, each day shows the worst status that was
// in force during one of its hours.
func TestTheStripMatchesTheHourByHourHistory(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	statuses := []aramaki.Status{aramaki.StatusOK, aramaki.StatusWarning, aramaki.StatusCritical, aramaki.StatusUnknown}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		// Changes on distinct whole hours of the last 40 days.
		start := aramaki.DayOf(now).AddDate(0, 0, -40)
		var changes []aramaki.StatusChange
		cur := statuses[rng.IntN(4)]
		at := start.Add(time.Duration(rng.IntN(400)) * time.Hour)
		changes = append(changes, aramaki.StatusChange{From: cur, To: cur, At: at, First: true})
		for {
			at = at.Add(time.Duration(1+rng.IntN(60)) * time.Hour)
			if !at.Before(now) {
				break
			}
			next := statuses[rng.IntN(4)]
			if next == cur {
				continue
			}
			changes = append(changes, aramaki.StatusChange{From: cur, To: next, At: at})
			cur = next
		}
		// The store hands out the days of the strip and the one before.
		all := summarise(changes)
		first := aramaki.DayOf(now).AddDate(0, 0, -29)
		var read []aramaki.CheckDay
		for i, d := range all {
			if !d.Day.Before(first) || i+1 < len(all) && !all[i+1].Day.Before(first) || i+1 == len(all) {
				read = append(read, d)
			}
		}
		strip := aramaki.DayStatuses(read, aramaki.CheckState{Status: cur, Since: changes[len(changes)-1].At}, 30, now)
		for _, d := range strip {
			var want aramaki.Status
			known := false
			for h := d.Day; h.Before(d.Day.Add(24*time.Hour)) && !h.After(now); h = h.Add(time.Hour) {
				var in *aramaki.Status
				for _, c := range changes {
					if !c.At.After(h) {
						to := c.To
						in = &to
					}
				}
				if in != nil {
					want, known = want.Worse(*in), true // OK is the least of all
				}
			}
			if d.Known != known || known && d.Status != want {
				for _, c := range changes {
					t.Log(c.At.Format("01-02 15h"), c.From, c.To)
				}
				t.Fatalf("round %d, %s: %v known=%v, want %v known=%v", round, d.Day.Format("01-02"), d.Status, d.Known, want, known)
			}
		}
	}
}
