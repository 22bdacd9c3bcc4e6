package store

import (
	"testing"
	"time"

	"github.com/aramaki/aramaki"
)

func TestGapsInTheEventsNumberingAreWaitedForOnceFromWhenFirstSeen(t *testing.T) {
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	evs := func(seqs ...int64) []aramaki.Event {
		out := make([]aramaki.Event, len(seqs))
		for i, s := range seqs {
			out[i] = aramaki.Event{Seq: s, Time: at.Add(-24 * time.Hour)} // old: it does not matter
		}
		return out
	}
	var g eventGaps
	for _, step := range []struct {
		after time.Duration
		evs   []aramaki.Event
		want  int
	}{
		{0, evs(1, 2, 4, 5, 7), 2},                          // 3 and 6 missing, both new
		{GapWait - time.Millisecond, evs(1, 2, 4, 5, 7), 2}, // still waiting
		{GapWait, evs(1, 2, 4, 5, 7, 9), 5},                 // both waited for together; 8 is new
		{2 * GapWait, evs(1, 2, 4, 5, 7, 9), 6},
		{2 * GapWait, evs(1, 2, 3, 4, 5, 6, 7), 7}, // no gap
	} {
		if got := g.beforeGap(step.evs, 0, at.Add(step.after)); len(got) != step.want {
			t.Errorf("at +%s: %d events before the gap, want %d", step.after, len(got), step.want)
		}
	}
}
