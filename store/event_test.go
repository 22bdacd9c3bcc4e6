package store_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

func TestEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("a duplicate event is stored once", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			ev := MustEvent(t, t0, aramaki.KindNote, []string{"web", "db"}, "deployed")
			MustAppend(t, s, ev)
			added, err := s.AppendEvent(ctx, ev)
			if err != nil || added {
				t.Fatalf("second append = %v, %v; want false, nil", added, err)
			}
			page := MustTimeline(t, s, aramaki.TimelineQuery{})
			if len(page.Events) != 1 {
				t.Fatalf("timeline has %d events, want 1", len(page.Events))
			}
			page = MustTimeline(t, s, aramaki.TimelineQuery{Systems: []string{"web", "db"}})
			if len(page.Events) != 1 {
				t.Fatalf("timeline of web and db has %d events, want 1", len(page.Events))
			}
		})
	})

	t.Run("an event reads back as it was stored", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			ev, err := aramaki.NewEvent(t0.In(time.FixedZone("CET", 3600)), aramaki.KindNote, "user:alice",
				[]string{"web", "db", "api"}, "restarted the api", aramaki.NoteData{Text: "restarted the api\nit was stuck"})
			if err != nil {
				t.Fatal(err)
			}
			MustAppend(t, s, ev)
			got, err := s.Event(ctx, ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Seq <= 0 {
				t.Errorf("Seq = %d, want > 0", got.Seq)
			}
			if got.Time.Location() != time.UTC {
				t.Errorf("time is in %v, want UTC", got.Time.Location())
			}
			got.Seq = 0
			if !reflect.DeepEqual(got, ev) {
				t.Errorf("read back\n%+v\nwant\n%+v", got, ev)
			}
			if got.ContentID() != ev.ID {
				t.Errorf("content id changed on the way through the store")
			}
		})
	})

	t.Run("an event without systems or data", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			ev := MustEvent(t, t0, kindAudit, nil, "created user bob")
			MustAppend(t, s, ev)
			got, err := s.Event(ctx, ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Systems != nil || got.Data != nil {
				t.Errorf("systems = %#v, data = %#v, want nil", got.Systems, got.Data)
			}
		})
	})

	t.Run("an unknown event is not found", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			_, err := s.Event(ctx, "ev_nope")
			wantCode(t, err, aramaki.ENOTFOUND)
		})
	})

	t.Run("an invalid event is refused", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			ev := MustEvent(t, t0, aramaki.KindNote, []string{"web"}, "x")
			noID := ev
			noID.ID = ""
			_, err := s.AppendEvent(ctx, noID)
			wantCode(t, err, aramaki.EINVALID)
			badSystem := ev
			badSystem.Systems = []string{"Not A System"}
			_, err = s.AppendEvent(ctx, badSystem)
			wantCode(t, err, aramaki.EINVALID)
			if page := MustTimeline(t, s, aramaki.TimelineQuery{}); len(page.Events) != 0 {
				t.Errorf("stored %d events", len(page.Events))
			}
		})
	})
}

// timelineFixture stores n events over the systems s00…s(m-1): each
// concerns 1-3 of them (a few none), several share a time, some are
// config events. It returns them in timeline order, newest first, as read
// back by Event (with Seq).
func timelineFixture(t *testing.T, s *store.Store, n, m int) []aramaki.Event {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var events []aramaki.Event
	for i := range n {
		var systems []string
		for range rng.IntN(4) {
			systems = append(systems, fmt.Sprintf("s%02d", rng.IntN(m)))
		}
		kind := aramaki.KindNote
		if i%5 == 0 {
			kind = aramaki.KindConfigApplied
		}
		// Times go back and forth and collide, as events from agents and
		// peers arrive late.
		at := t0.Add(time.Duration(rng.IntN(n/3+1)) * time.Second)
		ev := MustEvent(t, at, kind, systems, fmt.Sprintf("event %d", i))
		MustAppend(t, s, ev)
		got, err := s.Event(ctx, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, got)
	}
	slices.SortFunc(events, func(a, b aramaki.Event) int {
		return -cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Seq, b.Seq))
	})
	return events
}

// expect filters the events as a timeline query should.
func expect(events []aramaki.Event, q aramaki.TimelineQuery) []aramaki.Event {
	var out []aramaki.Event
	for _, ev := range events {
		if len(q.Systems) > 0 && !slices.ContainsFunc(ev.Systems, func(id string) bool { return slices.Contains(q.Systems, id) }) {
			continue
		}
		if len(q.Kinds) > 0 && !slices.Contains(q.Kinds, ev.Kind) {
			continue
		}
		if !q.Since.IsZero() && ev.Time.Before(q.Since) || !q.Until.IsZero() && !ev.Time.Before(q.Until) {
			continue
		}
		out = append(out, ev)
	}
	return out
}

// walk reads every page of the query and checks that each page but the
// last is full and has a cursor.
func walk(t *testing.T, s *store.Store, q aramaki.TimelineQuery) []aramaki.Event {
	t.Helper()
	var all []aramaki.Event
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("the pages do not end")
		}
		page := MustTimeline(t, s, q)
		all = append(all, page.Events...)
		if page.Next == nil {
			if len(page.Events) >= q.Limit {
				t.Fatalf("a full page of %d without a cursor", len(page.Events))
			}
			return all
		}
		if len(page.Events) != q.Limit {
			t.Fatalf("page of %d events with a cursor, want %d", len(page.Events), q.Limit)
		}
		last := page.Events[len(page.Events)-1]
		if *page.Next != (aramaki.Cursor{TimeMicro: last.Time.UnixMicro(), Seq: last.Seq}) {
			t.Fatalf("cursor %+v is not the last event of the page", *page.Next)
		}
		q.Cursor = page.Next
	}
}

func sameEvents(t *testing.T, got, want []aramaki.Event) {
	t.Helper()
	ids := func(events []aramaki.Event) []string {
		var out []string
		for _, ev := range events {
			out = append(out, fmt.Sprintf("%s@%d#%d", ev.Summary, ev.Time.UnixMicro(), ev.Seq))
		}
		return out
	}
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("got %d events\n%v\nwant %d\n%v", len(got), ids(got), len(want), ids(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("event %d:\n%+v\nwant\n%+v", i, got[i], want[i])
		}
	}
}

func TestTimeline(t *testing.T) {
	t.Parallel()

	t.Run("timeline of a system set returns each event once, newest first, pages without gaps or repeats", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			events := timelineFixture(t, s, 300, 12)
			for _, q := range []aramaki.TimelineQuery{
				{Limit: 7},
				{Limit: 7, Systems: []string{"s03"}},
				{Limit: 10, Systems: []string{"s01", "s02", "s05", "s07"}},
				{Limit: 1, Systems: []string{"s00", "s11"}},
				{Limit: 500, Systems: []string{"s04", "s08"}},
				{Limit: 13, Systems: []string{"s09", "nothing-here"}},
			} {
				sameEvents(t, walk(t, s, q), expect(events, q))
			}
		})
	})

	t.Run("a system set larger than one statement", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			events := timelineFixture(t, s, 500, 1200)
			var systems []string
			for i := 0; i < 1200; i += 2 {
				systems = append(systems, fmt.Sprintf("s%02d", i))
			}
			q := aramaki.TimelineQuery{Systems: systems, Limit: 9}
			sameEvents(t, walk(t, s, q), expect(events, q))
		})
	})

	t.Run("kind and time filters", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			events := timelineFixture(t, s, 200, 6)
			since, until := t0.Add(10*time.Second), t0.Add(50*time.Second)
			for _, q := range []aramaki.TimelineQuery{
				{Limit: 5, Kinds: []aramaki.EventKind{aramaki.KindConfigApplied}},
				{Limit: 5, Kinds: []aramaki.EventKind{aramaki.KindConfigApplied, aramaki.KindNote}, Systems: []string{"s01", "s02"}},
				{Limit: 5, Kinds: []aramaki.EventKind{"nothing.like.this"}},
				{Limit: 5, Since: since},
				{Limit: 5, Until: until},
				{Limit: 4, Since: since, Until: until, Systems: []string{"s00", "s03"}},
				{Limit: 4, Since: since, Until: until, Systems: []string{"s02"}, Kinds: []aramaki.EventKind{aramaki.KindNote}},
				{Limit: 4, Since: until, Until: since},
			} {
				got := walk(t, s, q)
				sameEvents(t, got, expect(events, q))
			}
			// Since is inclusive, Until exclusive.
			atSince := expect(events, aramaki.TimelineQuery{Since: since, Until: since.Add(time.Microsecond)})
			if len(atSince) == 0 {
				t.Fatal("fixture has no event at since")
			}
			got := walk(t, s, aramaki.TimelineQuery{Limit: 50, Since: since, Until: since.Add(time.Microsecond)})
			sameEvents(t, got, atSince)
			if got := walk(t, s, aramaki.TimelineQuery{Limit: 50, Since: since, Until: since}); len(got) != 0 {
				t.Errorf("empty window returned %d events", len(got))
			}
		})
	})

	t.Run("limit defaults and is capped", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			ctx := context.Background()
			for i := range aramaki.MaxTimelineLimit + 10 {
				ev := MustEvent(t, t0.Add(time.Duration(i)*time.Millisecond), aramaki.KindNote, []string{"web"}, fmt.Sprintf("n%d", i))
				if _, err := s.AppendEvent(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			for _, q := range []aramaki.TimelineQuery{{}, {Systems: []string{"web"}}} {
				if page := MustTimeline(t, s, q); len(page.Events) != aramaki.DefaultTimelineLimit || page.Next == nil {
					t.Errorf("default page has %d events, next %v", len(page.Events), page.Next)
				}
				q.Limit = 100000
				if page := MustTimeline(t, s, q); len(page.Events) != aramaki.MaxTimelineLimit || page.Next == nil {
					t.Errorf("capped page has %d events, next %v", len(page.Events), page.Next)
				}
			}
		})
	})

	t.Run("an event concerning many systems lists them sorted", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			ev := MustEvent(t, t0, aramaki.KindNote, []string{"web", "api", "db", "api"}, "maintenance")
			MustAppend(t, s, ev)
			page := MustTimeline(t, s, aramaki.TimelineQuery{Systems: []string{"db", "web", "api"}})
			if len(page.Events) != 1 || !slices.Equal(page.Events[0].Systems, []string{"api", "db", "web"}) {
				t.Fatalf("events = %+v", page.Events)
			}
			if page.Events[0].Seq == 0 {
				t.Error("Seq is not set")
			}
			if page.Events[0].Data != nil {
				t.Errorf("data = %s, want none", page.Events[0].Data)
			}
		})
	})
}

func TestTimelineUsesTheIndexes(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		timelineFixture(t, s, 50, 10)
		cursor := &aramaki.Cursor{TimeMicro: t0.Add(10 * time.Second).UnixMicro(), Seq: 20}
		for _, c := range []struct {
			q          aramaki.TimelineQuery
			want, deny []string
			pgWant     []string
			pgSetup    []string
		}{
			{
				q:      aramaki.TimelineQuery{Systems: []string{"s01", "s02", "s03"}, Cursor: cursor, Kinds: []aramaki.EventKind{aramaki.KindNote}},
				want:   []string{"event_systems USING PRIMARY KEY (system_id=? AND (time_us,seq)>(?,?) AND (time_us,seq)<(?,?))", "SEARCH e USING INTEGER PRIMARY KEY"},
				deny:   []string{"SCAN event_systems", "SCAN e", "SCAN events"},
				pgWant: []string{"Index Only Scan Backward using event_systems_pkey", "Index Scan using events_pkey"},
			},
			{
				q:       aramaki.TimelineQuery{Cursor: cursor},
				want:    []string{"SEARCH events USING INDEX events_time"},
				deny:    []string{"SCAN events", "TEMP B-TREE"},
				pgWant:  []string{"Index Scan Backward using events_time"},
				pgSetup: []string{"SET LOCAL enable_sort = off"},
			},
		} {
			want, deny, setup := c.want, c.deny, []string(nil)
			if s.Dialect() == store.Postgres {
				// The tables are tiny; ask whether the indexes can serve, as
				// they must when the tables are not.
				want, deny = c.pgWant, []string{"Seq Scan", "Bitmap"}
				setup = append([]string{"SET LOCAL enable_seqscan = off", "SET LOCAL enable_bitmapscan = off"}, c.pgSetup...)
			}
			plan, err := s.ExplainTimeline(ctx, c.q, setup...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range want {
				if !strings.Contains(plan, w) {
					t.Errorf("plan for %+v lacks %q:\n%s", c.q, w, plan)
				}
			}
			for _, d := range deny {
				if strings.Contains(plan, d) {
					t.Errorf("plan for %+v has %q:\n%s", c.q, d, plan)
				}
			}
		}
	})
}
