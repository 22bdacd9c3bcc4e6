package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

// checker reports check results the way agents do, one agent per system,
// and runs the server's alert engine after each result.
type checker struct {
	ctx    context.Context
	agents map[string]aramaki.Agent // by system
	seq    uint64
}

// MustReport submits a result of a check and runs one round of alerting
// (deciding alerts, planning notifications; nothing is sent).
func (e *env) MustReport(system, check string, status aramaki.Status, output string) {
	e.t.Helper()
	c := e.checker
	a, ok := c.agents[system]
	if !ok {
		a = e.MustAgent("mon-"+system, system)
		c.agents[system] = a
	}
	c.seq++
	done, err := e.svc.SubmitResults(c.ctx, service.NewStream(), a, []aramaki.CheckResult{
		{Seq: c.seq, System: system, Check: check, Status: status, Output: output, Started: time.Now()},
	}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if r := <-done; r.Err != nil {
		e.t.Fatal(r.Err)
	}
	if err := e.svc.AlertRound(c.ctx, nil); err != nil {
		e.t.Fatal(err)
	}
}

// MustAlert opens a new alert on a check: it recovers (resolving an alert
// open on it) and fails again with output.
func (e *env) MustAlert(system, check, output string) aramaki.Alert {
	e.t.Helper()
	e.MustReport(system, check, aramaki.StatusOK, "OK")
	e.MustReport(system, check, aramaki.StatusCritical, output)
	var list api.AlertsResponse
	e.MustDo("GET", "/api/v1/alerts?state=open&system="+system, "admin", nil, http.StatusOK, &list)
	for _, a := range list.Alerts {
		if a.System == system && a.Check == check {
			return a
		}
	}
	e.t.Fatalf("no open alert on %s/%s after a CRITICAL result: %+v", system, check, list.Alerts)
	return aramaki.Alert{}
}

func (e *env) MustAlerts(role, query string) []aramaki.Alert {
	e.t.Helper()
	var list api.AlertsResponse
	e.MustDo("GET", "/api/v1/alerts?"+query, role, nil, http.StatusOK, &list)
	return list.Alerts
}

// where lists alerts as system/check.
func where(alerts []aramaki.Alert) []string {
	out := []string{}
	for _, a := range alerts {
		out = append(out, a.System+"/"+a.Check)
	}
	return out
}

func TestAnOperatorWorksAnAlertFromAcknowledgedToResolved(t *testing.T) {
	e := MustEnv(t)
	alert := e.MustAlert("webshop", "http", "CRITICAL - Socket timeout after 10 seconds")
	if alert.State != aramaki.AlertOpen || alert.Status != aramaki.StatusCritical || alert.Output != "CRITICAL - Socket timeout after 10 seconds" {
		t.Fatalf("new alert %+v, want open and critical with the check's output", alert)
	}
	path := "/api/v1/alerts/" + alert.ID

	var acked aramaki.Alert
	e.MustDo("POST", path+"/acknowledge", "operator", map[string]string{"text": "Looking into it"}, http.StatusOK, &acked)
	if acked.State != aramaki.AlertAcknowledged || acked.AcknowledgedBy != "otto" || acked.Acknowledged == nil {
		t.Fatalf("acknowledged alert %+v, want acknowledged by otto", acked)
	}
	status, raw := e.Do("POST", path+"/acknowledge", "admin", nil)
	if status != http.StatusConflict || !strings.Contains(string(raw), "acknowledged already, by otto") {
		t.Fatalf("acknowledging twice: %d %s, want 409 naming who did", status, raw)
	}
	e.MustDo("POST", path+"/assign", "operator", map[string]string{"user": "vera"}, http.StatusOK, nil)
	e.MustDo("POST", path+"/comment", "operator", map[string]string{"text": "Varnish is out of memory"}, http.StatusOK, nil)
	var escalated aramaki.Alert
	e.MustDo("POST", path+"/escalate", "operator", nil, http.StatusOK, &escalated)
	if escalated.Level != alert.Level+1 {
		t.Fatalf("escalated to level %d, want %d", escalated.Level, alert.Level+1)
	}
	e.MustDo("POST", path+"/resolve", "admin", map[string]string{"text": "Restarted varnish"}, http.StatusOK, nil)
	e.MustDo("POST", path+"/resolve", "admin", nil, http.StatusConflict, nil)
	// A resolved alert can still be commented on.
	e.MustDo("POST", path+"/comment", "operator", map[string]string{"text": "Post-mortem on Monday"}, http.StatusOK, nil)

	var view service.AlertView
	e.MustDo("GET", path, "viewer", nil, http.StatusOK, &view)
	if view.State != aramaki.AlertResolved || view.Assignee != "vera" || view.Resolved == nil {
		t.Fatalf("alert after it was worked: %+v, want resolved and assigned to vera", view.Alert)
	}
	var notes []string
	for _, n := range view.Notes {
		notes = append(notes, n.Actor+" "+n.Kind+" "+n.Text)
	}
	want := []string{"otto acknowledge Looking into it", "otto assign vera", "otto comment Varnish is out of memory",
		"otto escalate ", "admin resolve Restarted varnish", "otto comment Post-mortem on Monday"}
	if !slices.Equal(notes, want) {
		t.Fatalf("notes:\n got %q\nwant %q", notes, want)
	}

	// Every change is on the timeline, by whoever made it.
	var kinds []string
	for _, ev := range e.MustTimeline("admin", url.Values{"system": {"webshop"}, "kind": {"alert.acknowledged,alert.assigned,alert.commented,alert.escalated,alert.resolved"}}).Events {
		kinds = append(kinds, string(ev.Kind)+" by "+ev.Actor)
	}
	slices.Reverse(kinds)
	wantKinds := []string{"alert.acknowledged by user:otto", "alert.assigned by user:otto", "alert.commented by user:otto",
		"alert.escalated by user:otto", "alert.resolved by user:admin", "alert.commented by user:otto"}
	// The alert that MustAlert resolved first may show as a recovery before these.
	if len(kinds) < len(wantKinds) || !slices.Equal(kinds[len(kinds)-len(wantKinds):], wantKinds) {
		t.Fatalf("timeline:\n got %q\nwant it to end with %q", kinds, wantKinds)
	}
}

func TestTheReviewQueueShowsOnlyAlertsOnSystemsOneMaySee(t *testing.T) {
	e := MustEnv(t)
	e.MustAlert("webshop", "http", "CRITICAL - shop down")
	e.MustAlert("webshop-db", "postgres", "CRITICAL - too many connections")
	e.MustAlert("blog-db", "mysql", "CRITICAL - disk full")
	e.MustAlert("blog", "http", "CRITICAL - blog down")

	for _, c := range []struct {
		role, query string
		want        []string
	}{
		{"admin", "state=open", []string{"blog/http", "blog-db/mysql", "webshop-db/postgres", "webshop/http"}},
		// Vera views the webshop; the blog is public; its database is not.
		{"viewer", "state=open", []string{"blog/http", "webshop-db/postgres", "webshop/http"}},
		{"", "state=open", []string{"blog/http"}},
		{"viewer", "state=open&system=webshop", []string{"webshop-db/postgres", "webshop/http"}},
		{"admin", "state=open&category=customer+project", []string{"blog/http", "webshop/http"}},
		{"admin", "state=open&owner=Sam+Shop", []string{"webshop/http"}},
		{"admin", "state=open&limit=1", []string{"blog/http"}},
		{"admin", "state=open&older_than=1h", []string{}},
	} {
		if got := where(e.MustAlerts(c.role, c.query)); !slices.Equal(got, c.want) {
			t.Errorf("alerts as %q with %s: %q, want %q", c.role, c.query, got, c.want)
		}
	}
	// A private system's alert is not found by those who may not see it.
	blogDB := e.MustAlerts("admin", "state=open&system=blog-db")[0]
	e.MustDo("GET", "/api/v1/alerts/"+blogDB.ID, "viewer", nil, http.StatusNotFound, nil)
	e.MustDo("POST", "/api/v1/alerts/"+blogDB.ID+"/acknowledge", "operator", nil, http.StatusNotFound, nil)
	e.MustDo("GET", "/api/v1/systems/blog-db/silences", "viewer", nil, http.StatusNotFound, nil)
}

func TestTheReviewQueueFiltersByStateAndGroup(t *testing.T) {
	e := MustEnv(t)
	shop := e.MustAlert("webshop", "http", "CRITICAL - shop down")
	e.MustAlert("webshop-db", "postgres", "CRITICAL - too many connections")
	blog := e.MustAlert("blog", "http", "CRITICAL - blog down")
	e.MustDo("POST", "/api/v1/alerts/"+shop.ID+"/acknowledge", "operator", nil, http.StatusOK, nil)
	e.MustDo("POST", "/api/v1/alerts/"+blog.ID+"/resolve", "admin", nil, http.StatusOK, nil)

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"state=acknowledged", []string{"webshop/http"}},
		{"state=open", []string{"webshop-db/postgres"}},
		{"state=open,acknowledged", []string{"webshop-db/postgres", "webshop/http"}},
		{"state=open&state=acknowledged", []string{"webshop-db/postgres", "webshop/http"}},
		{"state=resolved", []string{"blog/http"}},
		{"", []string{"blog/http", "webshop-db/postgres", "webshop/http"}},
		// The shop's database failed right after the shop: one incident.
		// The blog shares only storage with it: another.
		{"group=" + url.QueryEscape(shop.Group), []string{"webshop-db/postgres", "webshop/http"}},
		{"group=" + url.QueryEscape(blog.Group), []string{"blog/http"}},
	} {
		if got := where(e.MustAlerts("viewer", c.query)); !slices.Equal(got, c.want) {
			t.Errorf("alerts with %q: %q, want %q", c.query, got, c.want)
		}
	}
}

func TestAcknowledgingInBulkReportsEachAlert(t *testing.T) {
	e := MustEnv(t)
	shop := e.MustAlert("webshop", "http", "CRITICAL - shop down")
	db := e.MustAlert("webshop-db", "postgres", "CRITICAL - too many connections")
	hidden := e.MustAlert("blog-db", "mysql", "CRITICAL - disk full")
	e.MustDo("POST", "/api/v1/alerts/"+db.ID+"/acknowledge", "admin", nil, http.StatusOK, nil)

	var resp api.BulkResponse
	e.MustDo("POST", "/api/v1/alerts/acknowledge", "operator",
		map[string]any{"ids": []string{shop.ID, db.ID, hidden.ID, "999999"}, "text": "Storage incident, on it"}, http.StatusOK, &resp)
	var got []string
	for _, r := range resp.Results {
		got = append(got, fmt.Sprintf("%s ok=%v %s", r.ID, r.OK, r.Code))
	}
	want := []string{shop.ID + " ok=true ", db.ID + " ok=false conflict", hidden.ID + " ok=false not_found", "999999 ok=false not_found"}
	if !slices.Equal(got, want) {
		t.Fatalf("bulk results:\n got %q\nwant %q", got, want)
	}
	if resp.Results[1].Error == "" {
		t.Errorf("a failed result says nothing: %+v", resp.Results[1])
	}
	var view service.AlertView
	e.MustDo("GET", "/api/v1/alerts/"+shop.ID, "viewer", nil, http.StatusOK, &view)
	if view.AcknowledgedBy != "otto" || len(view.Notes) != 1 || view.Notes[0].Text != "Storage incident, on it" {
		t.Fatalf("the shop's alert after the bulk acknowledgement: %+v", view)
	}
	// Viewers may look but not acknowledge: each alert says so.
	e.MustDo("POST", "/api/v1/alerts/acknowledge", "viewer", map[string]any{"ids": []string{db.ID}}, http.StatusOK, &resp)
	if resp.Results[0].OK || resp.Results[0].Code != aramaki.EFORBIDDEN {
		t.Fatalf("a viewer's bulk acknowledgement: %+v", resp.Results)
	}
}

func TestASilenceCoversASystemAndWhatIsUnderItUntilEnded(t *testing.T) {
	e := MustEnv(t)
	var sl aramaki.Silence
	e.MustDo("POST", "/api/v1/silences", "operator", map[string]any{"system": "webshop", "duration": "2h",
		"reason": "Database upgrade", "maintenance": true}, http.StatusCreated, &sl)
	if sl.CreatedBy != "otto" || !sl.Maintenance || sl.End.Sub(sl.Start) != 2*time.Hour {
		t.Fatalf("new silence %+v, want a 2h maintenance window by otto", sl)
	}
	start := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	var planned aramaki.Silence
	e.MustDo("POST", "/api/v1/silences", "admin", map[string]any{"system": "blog", "start": start.Format(time.RFC3339),
		"end": start.Add(time.Hour).Format(time.RFC3339), "reason": "Blog migration", "until_resolved": true}, http.StatusCreated, &planned)
	if !planned.Start.Equal(start) || !planned.UntilResolved {
		t.Fatalf("planned silence %+v, want it to start at %s", planned, start)
	}

	ids := func(role, path string) []string {
		t.Helper()
		var list api.SilencesResponse
		e.MustDo("GET", path, role, nil, http.StatusOK, &list)
		out := []string{}
		for _, s := range list.Silences {
			out = append(out, s.System)
		}
		return out
	}
	for _, c := range []struct {
		role, path string
		want       []string
	}{
		{"viewer", "/api/v1/silences", []string{"webshop", "blog"}}, // running and planned, by start
		{"", "/api/v1/silences", []string{"blog"}},
		{"viewer", "/api/v1/systems/webshop-db/silences", []string{"webshop"}}, // from above
		{"viewer", "/api/v1/systems/storage/silences", []string{"webshop", "blog"}},
		{"viewer", "/api/v1/systems/webshop/silences", []string{"webshop"}},
	} {
		if got := ids(c.role, c.path); !slices.Equal(got, c.want) {
			t.Errorf("%s as %q: %q, want %q", c.path, c.role, got, c.want)
		}
	}

	var ended aramaki.Silence
	e.MustDo("DELETE", "/api/v1/silences/"+sl.ID, "operator", nil, http.StatusOK, &ended)
	if ended.Ended == nil || ended.EndedBy != "otto" {
		t.Fatalf("ended silence %+v", ended)
	}
	e.MustDo("DELETE", "/api/v1/silences/"+sl.ID, "operator", nil, http.StatusConflict, nil)
	if got := ids("viewer", "/api/v1/silences"); !slices.Equal(got, []string{"blog"}) {
		t.Errorf("silences after ending the shop's: %q", got)
	}
	var kinds []string
	for _, ev := range e.MustTimeline("admin", url.Values{"kind": {"silence.created,silence.ended"}}).Events {
		kinds = append(kinds, string(ev.Kind)+" "+strings.Join(ev.Systems, ",")+" by "+ev.Actor)
	}
	want := []string{"silence.ended webshop by user:otto", "silence.created blog by user:admin", "silence.created webshop by user:otto"}
	if !slices.Equal(kinds, want) {
		t.Errorf("timeline %q, want %q", kinds, want)
	}
}
