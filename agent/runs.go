package agent

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/agent/action"
	"github.com/aramaki/aramaki/wire"
)

// runs are the action runs the server has not acknowledged yet: running,
// or finished with a result to tell. They outlive connections: after a
// reconnect what the server may have missed is sent again, and it drops
// what it has by run id and output sequence.
type runs struct {
	mu     sync.Mutex
	runner *action.Runner
	open   map[string]*tracked
	notify chan struct{} // something to send
}

type tracked struct {
	id      string
	run     *action.Run       // nil when the start was refused
	done    *wire.RunFinished // set once it finished (or was refused)
	sent    int               // output chunks sent on this connection
	toldEnd bool              // done sent on this connection
}

func newRuns(runner *action.Runner) *runs {
	return &runs{runner: runner, open: map[string]*tracked{}, notify: make(chan struct{}, 1)}
}

func (r *runs) poke() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// start starts a run the server asked for; a refusal becomes a failed run
// with the reason, told like any other.
func (r *runs) start(ctx context.Context, m *wire.StartRun, skew time.Duration) {
	r.mu.Lock()
	if _, ok := r.open[m.Run]; ok {
		r.mu.Unlock()
		return // asked again after a reconnect: it runs, or ran, once
	}
	t := &tracked{id: m.Run}
	r.open[m.Run] = t
	r.mu.Unlock()
	run, err := r.runner.Start(ctx, m.Run, m.Action, m.Params, func(action.Chunk) { r.poke() })
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		now := time.Now().Add(skew)
		t.done = &wire.RunFinished{Run: m.Run, State: string(aramaki.RunFailed), Started: now, Ended: now, Error: clipText(aramaki.ErrorMessage(err), wire.MaxRunError)}
		r.poke()
		return
	}
	t.run = run
	go func() {
		<-run.Done()
		r.poke()
	}()
}

// cancel stops a run the server asked to stop.
func (r *runs) cancel(id string) {
	if err := r.runner.Cancel(id); err != nil {
		r.poke() // nothing to stop: what there is to say is said anyway
	}
}

// acked forgets a run the server has stored the end of.
func (r *runs) acked(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.open[id]; t != nil && t.done != nil {
		delete(r.open, id)
	}
}

// reconnected starts the telling over: everything not acknowledged is sent
// again on the new connection.
func (r *runs) reconnected() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.open {
		t.sent, t.toldEnd = 0, false
	}
}

// statuses says which runs the agent knows, for the server to reconcile.
func (r *runs) statuses() []wire.RunStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []wire.RunStatus{}
	for _, t := range r.open {
		state := string(aramaki.RunRunning)
		if t.done != nil {
			state = t.done.State
		} else if t.run != nil {
			state = string(t.run.Status().State)
		}
		out = append(out, wire.RunStatus{Run: t.id, State: state})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Run < out[j].Run })
	return out
}

// pending returns the frames to send now: new output of each run, then
// how it ended.
func (r *runs) pending(skew time.Duration) []wire.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []wire.Message
	ids := make([]string, 0, len(r.open))
	for id := range r.open {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := r.open[id]
		if t.run != nil {
			// Whether it is over first: then the output read next is all
			// of it, and its end goes after its last words.
			over := false
			select {
			case <-t.run.Done():
				over = true
			default:
			}
			chunks := t.run.Output()
			for _, c := range chunks[min(t.sent, len(chunks)):] {
				out = append(out, &wire.RunOutput{Run: id, Seq: uint64(c.Seq + 1), Stream: c.Stream, Data: wire.CleanOutput(c.Data)})
			}
			t.sent = len(chunks)
			switch {
			case over:
				if t.done == nil {
					st := t.run.Status()
					f := &wire.RunFinished{Run: id, State: string(st.State), Started: st.Started.Add(skew), Ended: st.Ended.Add(skew),
						Error: clipText(st.Error, wire.MaxRunError), LastSeq: uint64(len(chunks)), Dropped: uint64(st.Dropped)}
					if st.ExitCode >= 0 {
						code := st.ExitCode
						f.ExitCode = &code
					}
					t.done = f
				}
			default:
				continue // still running
			}
		}
		if t.done != nil && !t.toldEnd {
			out = append(out, t.done)
			t.toldEnd = true
		}
	}
	return out
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n]
}
