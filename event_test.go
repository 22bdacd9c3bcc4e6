package aramaki_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
)

func TestAnEventsIDIsDerivedFromItsContent(t *testing.T) {
	at := time.Date(2026, 11, 24, 3, 0, 0, 123456789, time.UTC)
	a, err := aramaki.NewEvent(at, aramaki.KindNote, "user:otto", []string{"webshop", "storage"}, "Flushed", aramaki.NoteData{Text: "Flushed"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := aramaki.NewEvent(at, aramaki.KindNote, "user:otto", []string{"storage", "webshop", "storage"}, "Flushed", aramaki.NoteData{Text: "Flushed"})
	if a.ID != b.ID || !strings.HasPrefix(a.ID, "ev_") {
		t.Fatalf("the same happening got ids %s and %s", a.ID, b.ID)
	}
	if len(b.Systems) != 2 {
		t.Errorf("systems not de-duplicated: %v", b.Systems)
	}
	c, _ := aramaki.NewEvent(at, aramaki.KindNote, "user:vera", []string{"webshop", "storage"}, "Flushed", aramaki.NoteData{Text: "Flushed"})
	if c.ID == a.ID {
		t.Error("a different actor gave the same id")
	}
	if a.Time.Nanosecond()%1000 != 0 {
		t.Error("time is not truncated to the microseconds the stores keep")
	}
}

func TestInvalidEventsAreRefused(t *testing.T) {
	at := time.Now()
	cases := map[string]func() (aramaki.Event, error){
		"bad kind":   func() (aramaki.Event, error) { return aramaki.NewEvent(at, "Note!", "x", nil, "s", nil) },
		"no actor":   func() (aramaki.Event, error) { return aramaki.NewEvent(at, "note", "", nil, "s", nil) },
		"no summary": func() (aramaki.Event, error) { return aramaki.NewEvent(at, "note", "x", nil, " ", nil) },
		"long summary": func() (aramaki.Event, error) {
			return aramaki.NewEvent(at, "note", "x", nil, strings.Repeat("s", 501), nil)
		},
		"bad system id": func() (aramaki.Event, error) { return aramaki.NewEvent(at, "note", "x", []string{"../etc"}, "s", nil) },
		"no time":       func() (aramaki.Event, error) { return aramaki.NewEvent(time.Time{}, "note", "x", nil, "s", nil) },
		"huge data": func() (aramaki.Event, error) {
			return aramaki.NewEvent(at, "note", "x", nil, "s", strings.Repeat("d", aramaki.MaxEventDataSize))
		},
	}
	for name, make := range cases {
		if _, err := make(); aramaki.ErrorCode(err) != aramaki.EINVALID && aramaki.ErrorCode(err) != aramaki.ETOOLARGE {
			t.Errorf("%s: error %v, want invalid or too large", name, err)
		}
	}
}

func TestNotesAreSummarisedByTheirFirstLine(t *testing.T) {
	if got := aramaki.NoteSummary("  Flushed varnish\nbecause product pages were stale"); got != "Flushed varnish" {
		t.Errorf("summary %q", got)
	}
	long := aramaki.NoteSummary(strings.Repeat("ä", 300))
	if n := len([]rune(long)); n != 120 || !strings.HasSuffix(long, "…") {
		t.Errorf("long summary has %d runes: %q", n, long)
	}
}

func TestCursorsRoundTripAndRefuseGarbage(t *testing.T) {
	c := aramaki.Cursor{TimeMicro: 1764000000123456, Seq: 42}
	got, err := aramaki.ParseCursor(c.String())
	if err != nil || *got != c {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "!!", "bm90LWEtY3Vyc29y", strings.Repeat("A", 100), "MS4tMQ"} {
		if _, err := aramaki.ParseCursor(bad); aramaki.ErrorCode(err) != aramaki.EINVALID {
			t.Errorf("ParseCursor(%q) = %v, want invalid", bad, err)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add(aramaki.Cursor{TimeMicro: 1, Seq: 2}.String())
	f.Add("")
	f.Add("MS4tMQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := aramaki.ParseCursor(s)
		if err != nil {
			if aramaki.ErrorCode(err) != aramaki.EINVALID {
				t.Fatalf("error without the invalid code: %v", err)
			}
			return
		}
		if c.Seq < 0 {
			t.Fatalf("accepted a negative sequence: %+v", c)
		}
		again, err := aramaki.ParseCursor(c.String())
		if err != nil || *again != *c {
			t.Fatalf("a parsed cursor does not round-trip: %+v", c)
		}
	})
}
