package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// timeWindows are the time ranges the timeline offers, as the form names them.
var timeWindows = []struct {
	Name string
	D    time.Duration
}{{"1h", time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

// timelineFilter is the timeline page's query: what the form sends back.
type timelineFilter struct {
	System string
	Kind   string
	Since  string
	Cursor string
}

func (f timelineFilter) query(cursor string) string {
	q := url.Values{}
	for k, v := range map[string]string{"system": f.System, "kind": f.Kind, "since": f.Since, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

// timelinePage: the events the user may see, newest first, filtered by
// system (with everything under it), kind and time range, a page at a time.
func (u *UI) timelinePage(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	f := timelineFilter{System: q.Get("system"), Kind: strings.TrimSpace(q.Get("kind")), Since: q.Get("since"), Cursor: q.Get("cursor")}
	req := service.TimelineRequest{System: f.System, Cursor: f.Cursor, Limit: 50}
	for _, k := range strings.Split(f.Kind, ",") {
		if k = strings.TrimSpace(k); k != "" {
			req.Kinds = append(req.Kinds, aramaki.EventKind(k))
		}
	}
	if f.Since != "" {
		known := false
		for _, tw := range timeWindows {
			if tw.Name == f.Since {
				req.Since, known = u.opts.Now().Add(-tw.D), true
			}
		}
		if !known {
			return aramaki.Errorf(aramaki.EINVALID, "Unknown time range %q.", f.Since)
		}
	}
	page, err := u.svc.Timeline(r.Context(), s.Principal, req)
	if err != nil {
		return err
	}
	systems, err := u.svc.Systems(r.Context(), s.Principal, service.SystemFilter{})
	if err != nil {
		return err
	}
	older := ""
	if page.Next != nil {
		older = "/timeline?" + f.query(page.Next.String())
	}
	// The first page stays live: new events come in on top.
	live := ""
	if f.Cursor == "" {
		after := u.opts.Now()
		if len(page.Events) > 0 {
			after = page.Events[0].Time
		}
		lq := url.Values{"after": {strconv.FormatInt(after.UnixMicro(), 10)}}
		if f.System != "" {
			lq.Set("system", f.System)
		}
		if f.Kind != "" {
			lq.Set("kind", f.Kind)
		}
		live = "/timeline/stream?" + lq.Encode()
	}
	u.render(w, r, http.StatusOK, "timeline", s, map[string]any{
		"Events": page.Events, "Filter": f, "Systems": systems, "Windows": timeWindows, "Older": older,
		"Newest": "/timeline?" + f.query(""), "Live": live,
	})
	return nil
}
