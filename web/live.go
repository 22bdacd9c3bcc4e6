package web

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// How often the stream looks for new events, and sends a comment to keep
// proxies from closing a quiet stream. Looking in the store, rather than
// being told, sees the events of every server replica alike.
const (
	livePoll      = 2 * time.Second
	liveHeartbeat = 20 * time.Second
)

// timelineStream sends the timeline's new events, newest first as they
// come, as server-sent events: each an HTML fragment of the page's own
// template. after (unix microseconds) is where the page left off.
func (u *UI) timelineStream(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	req := service.TimelineRequest{System: q.Get("system"), Limit: 100}
	for _, k := range strings.Split(q.Get("kind"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			req.Kinds = append(req.Kinds, aramaki.EventKind(k))
		}
	}
	since := u.opts.Now()
	if us, err := strconv.ParseInt(q.Get("after"), 10, 64); err == nil && us > 0 {
		since = time.UnixMicro(us)
	}
	// Refuse before the stream starts, with a proper status.
	req.Since = since
	if _, err := u.svc.Timeline(r.Context(), s.Principal, req); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	rc.Flush()

	seen := map[string]bool{}
	poll := time.NewTicker(livePoll)
	defer poll.Stop()
	heartbeat := time.NewTicker(liveHeartbeat)
	defer heartbeat.Stop()
	t := u.pages["timeline"]
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": still here\n\n"); err != nil {
				return nil
			}
			rc.Flush()
			continue
		case <-poll.C:
		}
		req.Since = since
		page, err := u.svc.Timeline(r.Context(), s.Principal, req)
		if err != nil {
			return nil // the stream ends; the browser reconnects
		}
		events := page.Events
		slices.Reverse(events) // oldest first, each goes on top
		for _, ev := range events {
			if seen[ev.ID] {
				continue
			}
			if ev.Time.After(since) {
				since = ev.Time
				clear(seen) // only events at since can come again
			}
			seen[ev.ID] = true
			var buf bytes.Buffer
			if err := t.ExecuteTemplate(&buf, "event", ev); err != nil {
				return nil
			}
			fmt.Fprint(w, "event: event\n")
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				fmt.Fprintf(w, "data: %s\n", line)
			}
			if _, err := fmt.Fprint(w, "\n"); err != nil {
				return nil
			}
		}
		rc.Flush()
	}
}
