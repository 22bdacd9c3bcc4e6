package store

import (
	"sync"
	"time"

	"github.com/aramaki/aramaki"
)

// GapWait is how long a gap in the events' numbering holds a peer's
// outbox back on PostgreSQL, where transactions commit in another order
// than they took their numbers: an event numbered before one already
// committed may still be on its way — from this replica or another. A gap
// this replica has seen for longer was a transaction rolled back (a
// replica killed in the middle of one, say), or an event stored already
// (its number is taken and left unused), which therefore delays peers by
// this much.
//
// The wait counts from when the gap was first seen, not from the time of
// the event after it: that is the clock of whoever wrote it — another
// replica's, which may be behind, a peer's or an agent's, which may be
// hours old — and would have an event still on its way passed over.
const GapWait = 5 * time.Second

// eventGaps remembers when this store first saw each gap in the events'
// numbering, by the first number missing.
type eventGaps struct {
	mu   sync.Mutex
	seen map[int64]time.Time
}

// forgetGapsAfter is how long a gap is remembered: long after every
// outbox passed it. One seen again later is waited for again.
const forgetGapsAfter = time.Minute

// beforeGap returns the events up to the first gap in their numbering
// after seq that was first seen less than GapWait before now. Every gap
// among them starts to count from now when it is new, so that a backlog
// with several gaps waits for them once, not one after another.
func (g *eventGaps) beforeGap(evs []aramaki.Event, seq int64, now time.Time) []aramaki.Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[int64]time.Time{}
	}
	cut := len(evs)
	next := seq + 1
	for i, e := range evs {
		if e.Seq != next {
			first, ok := g.seen[next]
			if !ok {
				first = now
				g.seen[next] = now
			}
			if cut == len(evs) && now.Sub(first) < GapWait {
				cut = i
			}
		}
		next = e.Seq + 1
	}
	for missing, first := range g.seen {
		if now.Sub(first) > forgetGapsAfter || first.After(now.Add(forgetGapsAfter)) {
			delete(g.seen, missing)
		}
	}
	return evs[:cut]
}
