package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/wire"
)

func (e *env) MustTimeline(role string, query url.Values) api.TimelineResponse {
	e.t.Helper()
	var page api.TimelineResponse
	e.MustDo("GET", "/api/v1/timeline?"+query.Encode(), role, nil, http.StatusOK, &page)
	return page
}

func summaries(evs []aramaki.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Summary)
	}
	return out
}

func TestASystemsTimelineIncludesEverythingUnderIt(t *testing.T) {
	e := MustEnv(t)
	e.MustDo("POST", "/api/v1/systems/storage/notes", "admin", map[string]string{"text": "Storage is slow"}, 201, nil)
	e.MustDo("POST", "/api/v1/systems/webshop-db/notes", "admin", map[string]string{"text": "Vacuumed the shop database"}, 201, nil)
	e.MustDo("POST", "/api/v1/systems/blog/notes", "admin", map[string]string{"text": "New blog theme"}, 201, nil)

	shop := summaries(e.MustTimeline("admin", url.Values{"system": {"webshop"}, "kind": {"note"}}).Events)
	if want := []string{"Vacuumed the shop database", "Storage is slow"}; !slices.Equal(shop, want) {
		t.Errorf("webshop timeline = %q, want %q (newest first, storage is under webshop)", shop, want)
	}
	blog := summaries(e.MustTimeline("admin", url.Values{"system": {"blog"}, "kind": {"note"}}).Events)
	if want := []string{"New blog theme", "Storage is slow"}; !slices.Equal(blog, want) {
		t.Errorf("blog timeline = %q, want %q", blog, want)
	}
	// Storage is used by both; its own timeline does not see upwards.
	storage := summaries(e.MustTimeline("admin", url.Values{"system": {"storage"}, "kind": {"note"}}).Events)
	if want := []string{"Storage is slow"}; !slices.Equal(storage, want) {
		t.Errorf("storage timeline = %q, want %q", storage, want)
	}
}

func TestTheTimelinePagesWithoutGapsOrRepeats(t *testing.T) {
	e := MustEnv(t)
	var want []string
	for i := 0; i < 23; i++ {
		text := "note " + strconv.Itoa(i)
		e.MustDo("POST", "/api/v1/systems/webshop/notes", "operator", map[string]string{"text": text}, 201, nil)
		want = append([]string{text}, want...)
	}
	var got []string
	q := url.Values{"system": {"webshop"}, "kind": {"note"}, "limit": {"5"}}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		page := e.MustTimeline("viewer", q)
		got = append(got, summaries(page.Events)...)
		if page.NextCursor == "" {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged timeline:\n got %q\nwant %q", got, want)
	}
}

func TestAViewerSeesOnlyWhatIsUnderTheirSystems(t *testing.T) {
	e := MustEnv(t)
	e.MustDo("POST", "/api/v1/systems/blog-db/notes", "admin", map[string]string{"text": "blog-only note"}, 201, nil)
	e.MustDo("POST", "/api/v1/systems/compute/notes", "admin", map[string]string{"text": "compute note"}, 201, nil)

	var list struct{ Systems []service.SystemView }
	e.MustDo("GET", "/api/v1/systems", "viewer", nil, 200, &list)
	var ids []string
	for _, s := range list.Systems {
		ids = append(ids, s.ID)
	}
	// webshop and everything under it, plus the public blog.
	if want := []string{"blog", "compute", "storage", "webshop", "webshop-app", "webshop-db"}; !slices.Equal(ids, want) {
		t.Errorf("viewer sees systems %q, want %q", ids, want)
	}
	e.MustDo("GET", "/api/v1/systems/blog-db", "viewer", nil, http.StatusNotFound, nil)
	notes := summaries(e.MustTimeline("viewer", url.Values{"kind": {"note"}}).Events)
	if slices.Contains(notes, "blog-only note") || !slices.Contains(notes, "compute note") {
		t.Errorf("viewer's timeline = %q: must hold the compute note and not the blog-db note", notes)
	}
}

func TestAnonymousVisitorsSeeOnlyPublicSystems(t *testing.T) {
	e := MustEnv(t)
	var list struct{ Systems []service.SystemView }
	e.MustDo("GET", "/api/v1/systems", "", nil, 200, &list)
	if len(list.Systems) != 1 || list.Systems[0].ID != "blog" {
		t.Fatalf("anonymous sees %+v, want only the public blog", list.Systems)
	}
	e.MustDo("GET", "/api/v1/systems/blog", "", nil, 200, nil)
	e.MustDo("GET", "/api/v1/systems/webshop", "", nil, http.StatusUnauthorized, nil)
	// Whether a private system exists is not told to anonymous visitors.
	e.MustDo("GET", "/api/v1/systems/no-such-system", "", nil, http.StatusUnauthorized, nil)
}

func TestConfigCommitsShowViewersOnlyWhatTheyMaySee(t *testing.T) {
	e := MustEnv(t)
	page := e.MustTimeline("", url.Values{"kind": {"config.applied"}})
	if len(page.Events) != 1 {
		t.Fatalf("anonymous sees %d config commits, want the one that touched the public blog", len(page.Events))
	}
	raw := string(page.Events[0].Data) + page.Events[0].Summary + strings.Join(page.Events[0].Systems, ",")
	for _, secret := range []string{"webshop", "storage", "infrastructure", "alice@example.com", "blog-db"} {
		if strings.Contains(raw, secret) {
			t.Errorf("anonymous learns %q from the config commit: %s", secret, raw)
		}
	}
}

func TestSystemsShowTheirPlaceInTheGraph(t *testing.T) {
	e := MustEnv(t)
	var storage service.SystemView
	e.MustDo("GET", "/api/v1/systems/storage", "admin", nil, 200, &storage)
	if want := []string{"blog-db", "infrastructure", "webshop-db"}; !slices.Equal(storage.UsedBy, want) {
		t.Errorf("storage used by %q, want %q", storage.UsedBy, want)
	}
	var anchors struct{ Systems []service.SystemView }
	e.MustDo("GET", "/api/v1/systems?anchors=true", "admin", nil, 200, &anchors)
	var ids []string
	for _, s := range anchors.Systems {
		ids = append(ids, s.ID)
	}
	if want := []string{"blog", "infrastructure", "webshop"}; !slices.Equal(ids, want) {
		t.Errorf("anchors %q, want %q", ids, want)
	}
	var up struct{ Systems []service.SystemView }
	e.MustDo("GET", "/api/v1/systems/storage/ancestors", "admin", nil, 200, &up)
	ids = nil
	for _, s := range up.Systems {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	if want := []string{"blog", "blog-db", "infrastructure", "webshop", "webshop-db"}; !slices.Equal(ids, want) {
		t.Errorf("ancestors of storage %q, want %q", ids, want)
	}
}

func TestBadInputGetsAClearErrorAndChangesNothing(t *testing.T) {
	e := MustEnv(t)
	alert := "/api/v1/alerts/" + e.MustAlert("webshop", "http", "CRITICAL - shop down").ID
	tooMany := make([]string, api.MaxBulkAlerts+1)
	for i := range tooMany {
		tooMany[i] = strconv.Itoa(i + 1)
	}
	ownRun := "/api/v1/runs/" + e.MustRun("admin", "webshop-db", "restart-db", "Vacuum is stuck").ID
	finishedRun := "/api/v1/runs/" + e.MustRun("admin", "webshop-app", "flush-varnish", "Stale pages").ID
	e.MustDo("POST", finishedRun+"/cancel", "admin", nil, 200, nil)
	flush := "/api/v1/systems/webshop-app/actions/flush-varnish"
	workflows := "/api/v1/systems/webshop/workflows"
	ownWorkflowRun := "/api/v1/workflow-runs/" + e.MustWorkflowRun("admin", "webshop", "restart-and-flush", "Slow queries").ID
	runningWorkflowRun := "/api/v1/workflow-runs/" + e.MustWorkflowRun("admin", "webshop", "flush-web", "Stale pages").ID
	finishedWorkflowRun := "/api/v1/workflow-runs/" + e.MustWorkflowRun("admin", "webshop", "flush-web", "Stale pages again").ID
	e.MustDo("POST", finishedWorkflowRun+"/cancel", "admin", nil, 200, nil)
	tooManyInputs := map[string]string{}
	for i := range aramaki.MaxWorkflowInputs + 1 {
		tooManyInputs[fmt.Sprintf("input-%d", i)] = "x"
	}
	serverID := e.MustServerID()
	expired := wire.PeerInvitation{URL: "https://a.example:8443", CASHA256: strings.Repeat("ab", 32), Server: "srv_00000000000000aa", Key: strings.Repeat("cd", 32),
		Name: "b", ID: "0123456789abcdef", Secret: strings.Repeat("s", 43), Expires: time.Now().Add(-time.Minute)}
	stranger := newJoiner(t)
	unknownInvitation := stranger.request(wire.PeerInvitation{ID: "0123456789abcdef", Secret: strings.Repeat("s", 43)}, serverID)
	wrongProof := stranger.request(wire.PeerInvitation{ID: "0123456789abcdef", Secret: strings.Repeat("s", 43)}, "srv_00000000000000aa")
	tooBigJoin := `{"invitation": "` + strings.Repeat("a", wire.MaxJoinSize) + `"}`
	inFuture := time.Now().Add(time.Hour).Format(time.RFC3339)
	e.MustPeerOnce("customer")
	before := len(e.MustTimeline("admin", url.Values{"limit": {"500"}}).Events)
	cases := []struct {
		name, method, path string
		body               any
		status             int
		message            string
	}{
		{"malformed JSON", "POST", "/api/v1/systems/webshop/notes", `{"text": `, 400, "malformed JSON"},
		{"unknown field", "POST", "/api/v1/systems/webshop/notes", `{"text": "hi", "colour": "red"}`, 400, `unknown field "colour"`},
		{"wrong type", "POST", "/api/v1/systems/webshop/notes", `{"text": 42}`, 400, `field "text" must be string`},
		{"two objects", "POST", "/api/v1/systems/webshop/notes", `{"text": "a"}{"text": "b"}`, 400, "exactly one JSON object"},
		{"empty body", "POST", "/api/v1/systems/webshop/notes", ``, 400, "body is empty"},
		{"oversized body", "POST", "/api/v1/systems/webshop/notes", `{"text": "` + strings.Repeat("a", api.MaxBodySize) + `"}`, 413, "exceeds"},
		{"blank note", "POST", "/api/v1/systems/webshop/notes", `{"text": "   "}`, 400, "needs a text"},
		{"too long note", "POST", "/api/v1/systems/webshop/notes", `{"text": "` + strings.Repeat("a", aramaki.MaxNoteLen+1) + `"}`, 413, "at most"},
		{"invalid system id", "POST", "/api/v1/systems/Web%20Shop/notes", `{"text": "hi"}`, 400, "invalid system id"},
		{"unknown system", "POST", "/api/v1/systems/nope/notes", `{"text": "hi"}`, 404, "no system nope"},
		{"an announcement of no known kind", "POST", "/api/v1/systems/webshop/announcements", `{"kind": "party", "text": "hi"}`, 400, "incident or maintenance"},
		{"an announcement without text", "POST", "/api/v1/systems/webshop/announcements", `{"kind": "incident", "text": " "}`, 400, "needs a text"},
		{"invalid time", "GET", "/api/v1/timeline?since=yesterday", nil, 400, "RFC 3339"},
		{"until before since", "GET", "/api/v1/timeline?since=1h&until=2h", nil, 400, "until must be after since"},
		{"invalid cursor", "GET", "/api/v1/timeline?cursor=!!", nil, 400, "invalid cursor"},
		{"invalid kind", "GET", "/api/v1/timeline?kind=NOTE", nil, 400, "invalid event kind"},
		{"limit too high", "GET", "/api/v1/timeline?limit=100000", nil, 400, "limit"},
		{"short password", "POST", "/api/v1/users", `{"name": "bob", "password": "short"}`, 400, "password needs"},
		{"bad user name", "POST", "/api/v1/users", `{"name": "Bob Smith", "password": "long-enough-password"}`, 400, "invalid user name"},
		{"existing user", "POST", "/api/v1/users", `{"name": "vera", "password": "long-enough-password"}`, 409, "exists"},
		{"unknown role", "POST", "/api/v1/roles", `{"user": "vera", "system": "webshop", "role": "god"}`, 400, "unknown role"},
		{"role for unknown user", "POST", "/api/v1/roles", `{"user": "nobody", "system": "webshop", "role": "viewer"}`, 404, "nobody"},
		{"unknown route", "GET", "/api/v1/nothing-here", nil, 404, "no route"},
		{"wrong method", "DELETE", "/api/v1/systems", nil, 405, "does not take DELETE"},
		{"array body", "POST", "/api/v1/systems/webshop/notes", `[]`, 400, "must be a JSON object"},
		{"misspelt filter", "GET", "/api/v1/timeline?sytem=webshop", nil, 400, `unknown query parameter "sytem"`},
		{"blank password", "POST", "/api/v1/users", `{"name": "bob", "password": "              "}`, 400, "password needs"},
		{"not an e-mail address", "PUT", "/api/v1/users/vera/email", `{"email": "vera at example"}`, 400, "not an e-mail address"},
		{"e-mail of an unknown user", "PUT", "/api/v1/users/nobody/email", `{"email": "nobody@example.com"}`, 404, "nobody"},
		{"a group that is no number", "GET", "/api/v1/alerts?group=x", nil, 400, "group must be a group number"},
		{"digest over a bad period", "GET", "/api/v1/systems/webshop/digest?period=forever", nil, 400, "period must be a duration"},
		{"silence without end", "POST", "/api/v1/silences", `{"system": "webshop", "reason": "upgrade"}`, 400, "needs an end"},
		{"silence ending before it starts", "POST", "/api/v1/silences", `{"system": "webshop", "start": "2099-01-02T10:00:00Z", "end": "2099-01-02T09:00:00Z", "reason": "upgrade"}`, 400, "is not after the start"},
		{"silence with end and duration", "POST", "/api/v1/silences", `{"system": "webshop", "end": "2099-01-02T09:00:00Z", "duration": "1h", "reason": "upgrade"}`, 400, "not both"},
		{"silence over", "POST", "/api/v1/silences", `{"system": "webshop", "start": "2020-01-01T09:00:00Z", "duration": "1h", "reason": "upgrade"}`, 400, "in the past"},
		{"silence too long", "POST", "/api/v1/silences", `{"system": "webshop", "duration": "2400h", "reason": "upgrade"}`, 400, "at most 90 days"},
		{"silence of an unknown system", "POST", "/api/v1/silences", `{"system": "nope", "duration": "1h", "reason": "upgrade"}`, 404, "no system nope"},
		{"silence with a bad duration", "POST", "/api/v1/silences", `{"system": "webshop", "duration": "2 hours", "reason": "upgrade"}`, 400, "duration must be"},
		{"silence with a bad start", "POST", "/api/v1/silences", `{"system": "webshop", "start": "tomorrow", "duration": "1h", "reason": "upgrade"}`, 400, "RFC 3339"},
		{"silence without reason", "POST", "/api/v1/silences", `{"system": "webshop", "duration": "1h", "reason": " "}`, 400, "needs a reason"},
		{"silence with a time as a number", "POST", "/api/v1/silences", `{"system": "webshop", "end": 1700000000, "reason": "x"}`, 400, `field "end" must be string`},
		{"ending an unknown silence", "DELETE", "/api/v1/silences/999999", nil, 404, "silence 999999 not found"},
		{"unknown state filter", "GET", "/api/v1/alerts?state=open,sleeping", nil, 400, `unknown alert state "sleeping"`},
		{"bad older_than", "GET", "/api/v1/alerts?older_than=yesterday", nil, 400, "older_than must be a duration"},
		{"alert limit too high", "GET", "/api/v1/alerts?limit=5000", nil, 400, "limit must be between 1 and 1000"},
		{"misspelt alert filter", "GET", "/api/v1/alerts?sytem=webshop", nil, 400, `unknown query parameter "sytem"`},
		{"alerts of an unknown system", "GET", "/api/v1/alerts?system=nope", nil, 404, "no system nope"},
		{"unknown alert", "GET", "/api/v1/alerts/999999", nil, 404, "alert 999999 not found"},
		{"change of an unknown alert", "POST", "/api/v1/alerts/999999/acknowledge", nil, 404, "alert 999999 not found"},
		{"comment without text", "POST", alert + "/comment", `{"text": "  "}`, 400, "a comment needs text"},
		{"comment too long", "POST", alert + "/comment", `{"text": "` + strings.Repeat("a", service.MaxCommentLen+1) + `"}`, 400, "longer than"},
		{"assign to nobody", "POST", alert + "/assign", `{"user": ""}`, 400, "assign to whom?"},
		{"assign with a text", "POST", alert + "/assign", `{"text": "otto"}`, 400, `unknown field "text"`},
		{"acknowledge with an unknown field", "POST", alert + "/acknowledge", `{"comment": "on it"}`, 400, `unknown field "comment"`},
		{"acknowledge nothing", "POST", "/api/v1/alerts/acknowledge", `{"ids": []}`, 400, "give the ids"},
		{"acknowledge too many", "POST", "/api/v1/alerts/acknowledge", map[string]any{"ids": tooMany}, 400, "at most 1000 alerts at once"},
		{"acknowledge with ids as a string", "POST", "/api/v1/alerts/acknowledge", `{"ids": "1,2"}`, 400, `field "ids" must be []string`},
		{"wrong method on bulk acknowledge", "DELETE", "/api/v1/alerts/acknowledge", nil, 405, "use POST"},
		{"wrong method on silences", "PUT", "/api/v1/silences", nil, 405, "does not take PUT"},
		{"run without reason", "POST", flush + "/runs", `{"params": {"pattern": "^/"}}`, 400, "a run needs a reason"},
		{"run of an unknown action", "POST", "/api/v1/systems/webshop-app/actions/flush-everything/runs", `{"reason": "stale"}`, 404, "system webshop-app has no action flush-everything"},
		{"run of an action of another system", "POST", "/api/v1/systems/webshop/actions/flush-varnish/runs", `{"reason": "stale"}`, 404, "has no action flush-varnish"},
		{"run of a malformed action", "POST", "/api/v1/systems/webshop-app/actions/Flush%20All/runs", `{"reason": "stale"}`, 400, "invalid action name"},
		{"run with shell metacharacters", "POST", flush + "/runs", `{"reason": "stale", "params": {"pattern": "/; rm -rf / #"}}`, 400, "does not match its pattern " + banPattern + " (as web-a declares it)"},
		{"run with an unknown parameter", "POST", flush + "/runs", `{"reason": "stale", "params": {"colour": "red"}}`, 400, `has no parameter "colour"`},
		{"run with parameters as a list", "POST", flush + "/runs", `{"reason": "stale", "params": ["pattern=/"]}`, 400, `field "params" must be map[string]string`},
		{"run with a number as a value", "POST", flush + "/runs", `{"reason": "stale", "params": {"pattern": 1}}`, 400, `must be string`},
		{"run with an unknown field", "POST", flush + "/runs", `{"reason": "stale", "force": true}`, 400, `unknown field "force"`},
		{"breaking glass for no reason", "POST", flush + "/runs", `{"reason": "stale", "break_glass": true}`, 400, "needs no approval"},
		{"approving one's own run", "POST", ownRun + "/approve", nil, 403, "another person must approve it"},
		{"approving with a comment", "POST", ownRun + "/approve", `{"text": "ok"}`, 400, `unknown field "text"`},
		{"cancelling a finished run", "POST", finishedRun + "/cancel", nil, 409, "is cancelled already"},
		{"approving a finished run", "POST", finishedRun + "/approve", nil, 409, "is cancelled already"},
		{"an unknown run", "GET", "/api/v1/runs/999999", nil, 404, "run 999999 not found"},
		{"cancelling an unknown run", "POST", "/api/v1/runs/999999/cancel", nil, 404, "run 999999 not found"},
		{"a run id that is no number", "GET", "/api/v1/runs/abc", nil, 404, "not found"},
		{"unknown run state filter", "GET", "/api/v1/runs?state=running,sleeping", nil, 400, `unknown run state "sleeping"`},
		{"runs since a bad duration", "GET", "/api/v1/runs?since=yesterday", nil, 400, "since must be a duration"},
		{"run limit too high", "GET", "/api/v1/runs?limit=5000", nil, 400, "limit must be between 1 and 1000"},
		{"misspelt run filter", "GET", "/api/v1/runs?sytem=webshop", nil, 400, `unknown query parameter "sytem"`},
		{"runs of an unknown system", "GET", "/api/v1/runs?system=nope", nil, 404, "no system nope"},
		{"stats over a bad period", "GET", flush + "/stats?period=forever", nil, 400, "period must be a duration"},
		{"stats over too long a period", "GET", flush + "/stats?period=10000h", nil, 400, "between 1s and a year"},
		{"misspelt stats parameter", "GET", flush + "/stats?since=1h", nil, 400, `unknown query parameter "since"`},
		{"wrong method on runs", "POST", "/api/v1/runs", nil, 405, "does not take POST"},
		{"runs of a workflow run that is no number", "GET", "/api/v1/runs?workflow_run=abc", nil, 404, "workflow run abc not found"},
		{"workflow run of an unknown workflow", "POST", workflows + "/nope/runs", `{"reason": "stale"}`, 404, "system webshop has no workflow nope"},
		{"dry run of an unknown workflow", "POST", workflows + "/nope/runs", `{"dry_run": true}`, 404, "system webshop has no workflow nope"},
		{"workflow of another system", "POST", "/api/v1/systems/blog/workflows/flush-web/runs", `{"reason": "stale"}`, 404, "system blog has no workflow flush-web"},
		{"workflow with a malformed name", "POST", workflows + "/Flush%20All/runs", `{"reason": "stale"}`, 400, "invalid workflow name"},
		{"workflow run without reason", "POST", workflows + "/flush-web/runs", `{"inputs": {"pattern": "^/"}}`, 400, "a run needs a reason"},
		{"workflow run with an unknown input", "POST", workflows + "/flush-web/runs", `{"reason": "stale", "inputs": {"colour": "red"}}`, 400, `workflow flush-web has no input "colour"`},
		{"workflow run with a malformed input name", "POST", workflows + "/flush-web/runs", `{"reason": "stale", "inputs": {"Pattern": "/"}}`, 400, "invalid input name"},
		{"workflow run with too many inputs", "POST", workflows + "/flush-web/runs", map[string]any{"reason": "stale", "inputs": tooManyInputs}, 400, "at most 32 inputs"},
		{"workflow run with too long an input", "POST", workflows + "/flush-web/runs", map[string]any{"reason": "stale", "inputs": map[string]string{"pattern": strings.Repeat("a", aramaki.MaxParamValue+1)}}, 400, "input pattern is longer than 1024 bytes"},
		{"workflow run with a value the hosts refuse", "POST", workflows + "/flush-web/runs", `{"reason": "stale", "inputs": {"pattern": "/; rm -rf /"}}`, 400, "does not match its pattern"},
		{"workflow run with inputs as a list", "POST", workflows + "/flush-web/runs", `{"reason": "stale", "inputs": ["pattern=/"]}`, 400, `field "inputs" must be map[string]string`},
		{"workflow run with params", "POST", workflows + "/flush-web/runs", `{"reason": "stale", "params": {"pattern": "/"}}`, 400, `unknown field "params"`},
		{"dry run as a string", "POST", workflows + "/flush-web/runs", `{"dry_run": "yes"}`, 400, `field "dry_run" must be bool`},
		{"approving one's own workflow run", "POST", ownWorkflowRun + "/approve", nil, 403, "another person must approve it"},
		{"approving a workflow run with a comment", "POST", ownWorkflowRun + "/approve", `{"text": "ok"}`, 400, `unknown field "text"`},
		{"approving a workflow run that needs none", "POST", runningWorkflowRun + "/approve", nil, 409, "needs no approval: it is running"},
		{"cancelling a finished workflow run", "POST", finishedWorkflowRun + "/cancel", nil, 409, "is cancelled already"},
		{"approving a finished workflow run", "POST", finishedWorkflowRun + "/approve", nil, 409, "is cancelled already"},
		{"an unknown workflow run", "GET", "/api/v1/workflow-runs/999999", nil, 404, "workflow run 999999 not found"},
		{"cancelling an unknown workflow run", "POST", "/api/v1/workflow-runs/999999/cancel", nil, 404, "workflow run 999999 not found"},
		{"a workflow run id that is no number", "GET", "/api/v1/workflow-runs/abc", nil, 404, "not found"},
		{"unknown workflow run state filter", "GET", "/api/v1/workflow-runs?state=running,sleeping", nil, 400, `unknown run state "sleeping"`},
		{"workflow run limit too high", "GET", "/api/v1/workflow-runs?limit=5000", nil, 400, "limit must be between 1 and 1000"},
		{"workflow run limit no number", "GET", "/api/v1/workflow-runs?limit=ten", nil, 400, "limit must be a number"},
		{"misspelt workflow run filter", "GET", "/api/v1/workflow-runs?sytem=webshop", nil, 400, `unknown query parameter "sytem"`},
		{"workflow runs of an unknown system", "GET", "/api/v1/workflow-runs?system=nope", nil, 404, "no system nope"},
		{"workflow runs of a malformed workflow", "GET", "/api/v1/workflow-runs?workflow=Flush%20Web", nil, 400, "invalid workflow name"},
		{"wrong method on workflow runs", "POST", "/api/v1/workflow-runs", nil, 405, "does not take POST"},
		{"wrong method on a workflow", "GET", workflows + "/flush-web/runs", nil, 405, "does not take GET"},
		{"invitation of a malformed peer", "POST", "/api/v1/peers/invitations", `{"name": "Customer B"}`, 400, "invalid peer name"},
		{"invitation for an existing peer", "POST", "/api/v1/peers/invitations", `{"name": "customer"}`, 409, "there is a peer called customer already"},
		{"invitation with a bad ttl", "POST", "/api/v1/peers/invitations", `{"name": "b", "ttl": "a week"}`, 400, "ttl must be a duration like 24h"},
		{"invitation for too long", "POST", "/api/v1/peers/invitations", `{"name": "b", "ttl": "200h"}`, 400, "an invitation lives between 1m and 7 days"},
		{"invitation with an unknown field", "POST", "/api/v1/peers/invitations", `{"name": "b", "expires_in": "1h"}`, 400, `unknown field "expires_in"`},
		{"accepting no token", "POST", "/api/v1/peers/accept", `{"token": " "}`, 400, "give the invitation token"},
		{"accepting what is no invitation", "POST", "/api/v1/peers/accept", `{"token": "ark_0123"}`, 400, "not a peer invitation"},
		{"accepting a damaged invitation", "POST", "/api/v1/peers/accept", `{"token": "arpeer1.!!"}`, 400, "damaged"},
		{"accepting an expired invitation", "POST", "/api/v1/peers/accept", map[string]string{"token": expired.String()}, 400, "the invitation expired"},
		{"accepting under a malformed name", "POST", "/api/v1/peers/accept", map[string]string{"token": expired.String(), "name": "A!"}, 400, "invalid peer name"},
		{"removing an unknown peer", "DELETE", "/api/v1/peers/nobody", nil, 404, "no peer nobody"},
		{"removing a malformed peer", "DELETE", "/api/v1/peers/No%20Body", nil, 404, "no peer No Body"},
		{"grant of nothing", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["webshop"], "allow": "", "until": "` + inFuture + `"}`, 400, "a grant allows events, status or action:NAME"},
		{"grant of logs", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["webshop"], "allow": "events,logs", "until": "` + inFuture + `"}`, 400, `not "logs"`},
		{"grant of a malformed action", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["webshop"], "allow": "action:Reboot All", "until": "` + inFuture + `"}`, 400, "invalid action name"},
		{"grant of an action the system lacks", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["webshop"], "allow": "action:reboot", "until": "` + inFuture + `"}`, 400, "none of webshop has an action reboot"},
		{"grant without end", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["webshop"], "allow": "events"}`, 400, "a grant needs an end"},
		{"grant ending in the past", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["webshop"], "allow": "events", "until": "2020-01-01T00:00:00Z"}`, 400, "must end in the future"},
		{"grant for two years", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["webshop"], "allow": "events", "until": "` + time.Now().AddDate(2, 0, 0).Format(time.RFC3339) + `"}`, 400, "at most 366 days"},
		{"grant with a bad end", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["webshop"], "allow": "events", "until": "next week"}`, 400, "RFC 3339"},
		{"grant of no system", "POST", "/api/v1/grants", `{"peer": "customer", "systems": [], "allow": "events", "until": "` + inFuture + `"}`, 400, "at least one system"},
		{"grant of an unknown system", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["nope"], "allow": "events", "until": "` + inFuture + `"}`, 404, "no system nope"},
		{"grant to an unknown peer", "POST", "/api/v1/grants", `{"peer": "zed", "systems": ["webshop"], "allow": "events", "until": "` + inFuture + `"}`, 404, "no peer zed"},
		{"grant with kinds", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["webshop"], "kinds": ["events"], "until": "` + inFuture + `"}`, 400, `unknown field "kinds"`},
		{"grants of a malformed peer", "GET", "/api/v1/grants?peer=Customer", nil, 400, "invalid peer name"},
		{"misspelt grants filter", "GET", "/api/v1/grants?per=customer", nil, 400, `unknown query parameter "per"`},
		{"revoking an unknown grant", "POST", "/api/v1/grants/999999/revoke", nil, 404, "grant 999999 not found"},
		{"revoking a grant that is no number", "POST", "/api/v1/grants/abc/revoke", nil, 404, "grant abc not found"},
		{"wrong method on grants", "DELETE", "/api/v1/grants", nil, 405, "does not take DELETE"},
		{"wrong method on identity", "POST", "/api/v1/federation/identity", nil, 405, "does not take POST"},
		{"join with malformed JSON", "POST", "/federation/v1/join", `{"invitation": `, 400, "join request"},
		{"join with an unknown field", "POST", "/federation/v1/join", `{"invitation": "0123456789abcdef", "token": "x"}`, 400, `unknown field "token"`},
		{"join without a key", "POST", "/federation/v1/join", `{"invitation": "0123456789abcdef", "secret": "` + strings.Repeat("s", 43) + `", "server": "srv_0123456789abcdef", "name": "b", "url": ""}`, 400, "public_key must be a 32-byte Ed25519 key"},
		{"oversized join", "POST", "/federation/v1/join", tooBigJoin, 413, "exceeds 16 KiB"},
		{"join with a proof for another server", "POST", "/federation/v1/join", wrongProof, 401, "the proof does not verify"},
		{"join of an unknown invitation", "POST", "/federation/v1/join", unknownInvitation, 401, "the invitation is unknown, used, expired or its secret is wrong"},
		{"wrong method on join", "GET", "/federation/v1/join", nil, 405, "does not take GET"},
		{"unknown federation route", "GET", "/federation/v1/nothing", nil, 404, "no route"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			status, raw := e.Do(c.method, c.path, "admin", c.body)
			var eb api.ErrorBody
			json.Unmarshal(raw, &eb)
			if status != c.status || !strings.Contains(eb.Error.Message, c.message) {
				t.Fatalf("status %d %s, want %d with %q", status, raw, c.status, c.message)
			}
		})
	}
	// What another role may not do.
	for _, c := range []struct {
		role, name, method, path string
		body                     any
		status                   int
		message                  string
	}{
		{"viewer", "a viewer running a workflow", "POST", workflows + "/flush-web/runs", `{"reason": "stale"}`, 403, "this needs the operator role on system webshop"},
		{"viewer", "a viewer's dry run", "POST", workflows + "/flush-web/runs", `{"dry_run": true}`, 403, "this needs the operator role on system webshop"},
		{"viewer", "a viewer cancelling a workflow run", "POST", runningWorkflowRun + "/cancel", nil, 403, "this needs the operator role"},
		{"viewer", "a viewer approving a workflow run", "POST", ownWorkflowRun + "/approve", nil, 403, "this needs the operator role"},
		{"operator", "an operator running an admin's workflow elsewhere", "POST", "/api/v1/systems/infrastructure/workflows/rebalance/runs", `{"reason": "disks"}`, 404, "no system infrastructure"},
		{"", "nobody logged in running a workflow", "POST", workflows + "/flush-web/runs", `{"reason": "stale"}`, 401, "log in to run workflows"},
		{"", "nobody logged in listing workflow runs", "GET", "/api/v1/workflow-runs", nil, 401, "log in to see workflow runs"},
		{"", "nobody logged in cancelling a workflow run", "POST", runningWorkflowRun + "/cancel", nil, 404, "not found"},
		{"operator", "an operator inviting a server", "POST", "/api/v1/peers/invitations", `{"name": "b"}`, 403, "this needs the admin role"},
		{"operator", "an operator sharing the webshop", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["webshop"], "allow": "events", "until": "` + inFuture + `"}`, 403, "admin"},
		{"", "nobody logged in granting", "POST", "/api/v1/grants", `{"peer": "customer", "systems": ["blog"], "allow": "events", "until": "` + inFuture + `"}`, 401, "log in"},
		{"", "nobody logged in seeing the identity", "GET", "/api/v1/federation/identity", nil, 401, "log in"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			status, raw := e.Do(c.method, c.path, c.role, c.body)
			var eb api.ErrorBody
			json.Unmarshal(raw, &eb)
			if status != c.status || !strings.Contains(eb.Error.Message, c.message) {
				t.Fatalf("status %d %s, want %d with %q", status, raw, c.status, c.message)
			}
		})
	}
	e.t = t
	if after := len(e.MustTimeline("admin", url.Values{"limit": {"500"}}).Events); after != before {
		t.Fatalf("bad requests changed the timeline: %d events before, %d after", before, after)
	}
}

func TestABadTokenIsRefusedNotTreatedAsAnonymous(t *testing.T) {
	e := MustEnv(t)
	for _, token := range []string{"ark_0123456789abcdef_wrong", "garbage", e.tokens["viewer"] + "x"} {
		e.tokens["forged"] = token
		status, raw := e.Do("GET", "/api/v1/systems", "forged", nil)
		if status != http.StatusUnauthorized {
			t.Errorf("token %q: status %d %s, want 401", token, status, raw)
		}
	}
}

func TestMutationsAreOnTheTimelineWithWhoDidThem(t *testing.T) {
	e := MustEnv(t)
	e.MustDo("POST", "/api/v1/users", "admin", map[string]string{"name": "paula", "password": "long-enough-password"}, 201, nil)
	e.MustDo("POST", "/api/v1/roles", "admin", map[string]string{"user": "paula", "system": "blog", "role": "operator"}, 201, nil)
	e.MustDo("POST", "/api/v1/tokens", "operator", map[string]string{"name": "laptop"}, 201, nil)
	e.MustDo("POST", "/api/v1/systems/webshop/notes", "operator", map[string]string{"text": "Flushed varnish"}, 201, nil)
	e.MustDo("POST", "/api/v1/config/reload", "admin", nil, 200, nil)

	page := e.MustTimeline("admin", url.Values{"limit": {"500"}})
	want := map[aramaki.EventKind]string{
		aramaki.KindUserCreated:  "user:admin",
		aramaki.KindRoleGranted:  "user:admin",
		aramaki.KindTokenCreated: "user:otto",
		aramaki.KindNote:         "user:otto",
		aramaki.KindConfigReload: "user:admin",
	}
	for kind, actor := range want {
		found := false
		for _, ev := range page.Events {
			found = found || (ev.Kind == kind && ev.Actor == actor)
		}
		if !found {
			t.Errorf("no %s event by %s on the timeline", kind, actor)
		}
	}
}

func TestABrokenCommitIsRefusedAndTheLastGoodConfigStays(t *testing.T) {
	e := MustEnv(t)
	MustCommit(t, e.repo, map[string]string{
		"systems/webshop.yaml": "id: webshop\ntitle: Webshop\nsubsystems: [webshop-app, webshop-db, no-such-system]\n",
	}, "Add a subsystem that does not exist")
	var res service.ConfigResult
	e.MustDo("POST", "/api/v1/config/reload", "admin", nil, 200, &res)
	if !res.Rejected || len(res.Problems) == 0 || !strings.HasPrefix(res.Problems[0], "systems/webshop.yaml:3:") {
		t.Fatalf("reload of a broken commit = %+v, want it refused with a file:line problem", res)
	}
	var st aramaki.ConfigState
	e.MustDo("GET", "/api/v1/config", "admin", nil, 200, &st)
	if st.Rejected == nil || st.Rejected.Message != "Add a subsystem that does not exist" || len(st.Errors) == 0 {
		t.Fatalf("config state does not show the refused commit: %+v", st)
	}
	var shop service.SystemView
	e.MustDo("GET", "/api/v1/systems/webshop", "admin", nil, 200, &shop)
	if slices.Contains(shop.Subsystems, "no-such-system") || len(shop.Rules) != 1 {
		t.Fatalf("the broken commit changed webshop: %+v", shop)
	}
	rejected := e.MustTimeline("admin", url.Values{"kind": {"config.rejected"}}).Events
	if len(rejected) != 1 || !strings.Contains(string(rejected[0].Data), "systems/webshop.yaml:3") {
		t.Fatalf("config.rejected events = %+v", rejected)
	}

	// The fix applies, and the timeline says which systems changed.
	MustCommit(t, e.repo, map[string]string{
		"systems/webshop.yaml": "id: webshop\ntitle: Webshop of Example Corp\nsubsystems: [webshop-app, webshop-db]\n",
		"systems/compute.yaml": "",
	}, "Rename the shop, retire compute")
	e.MustDo("POST", "/api/v1/config/reload", "admin", nil, 200, &res)
	if !res.Rejected { // webshop-app and infrastructure still use compute
		t.Fatalf("a commit removing a used system was applied: %+v", res)
	}
	MustCommit(t, e.repo, map[string]string{
		"systems/webshop-app.yaml":    "id: webshop-app\ntitle: Webshop app\n",
		"systems/infrastructure.yaml": "id: infrastructure\ntitle: Hosting infrastructure\nsubsystems: [storage]\n",
	}, "Move the app off compute")
	e.MustDo("POST", "/api/v1/config/reload", "admin", nil, 200, &res)
	if !res.Applied || !res.New {
		t.Fatalf("reload of the fix = %+v", res)
	}
	applied := e.MustTimeline("admin", url.Values{"kind": {"config.applied"}, "limit": {"1"}}).Events
	if len(applied) != 1 {
		t.Fatalf("no config.applied event")
	}
	var data aramaki.ConfigAppliedData
	if err := json.Unmarshal(applied[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(data.Changed, []string{"infrastructure", "webshop", "webshop-app"}) || !slices.Equal(data.Removed, []string{"compute"}) ||
		data.Commit.Message != "Move the app off compute" || !strings.Contains(data.Commit.Author, "Alice Admin") {
		t.Fatalf("config.applied data = %+v", data)
	}
}

func TestAHugeValidCommitIsAppliedAndRecorded(t *testing.T) {
	e := MustEnv(t)
	files := map[string]string{}
	var many strings.Builder
	for i := 0; i < 1200; i++ {
		fmt.Fprintf(&many, "---\nid: vm-%04d\ntitle: VM %d\n", i, i)
	}
	files["systems/vms.yaml"] = many.String()
	MustCommit(t, e.repo, files, "Add 1200 VMs\n\n"+strings.Repeat("A very long commit message. ", 3000))
	var res service.ConfigResult
	e.MustDo("POST", "/api/v1/config/reload", "admin", nil, 200, &res)
	if !res.Applied || !res.New {
		t.Fatalf("a valid commit with a long message and 1200 new systems: %+v", res)
	}
	applied := e.MustTimeline("admin", url.Values{"kind": {"config.applied"}, "limit": {"1"}}).Events
	var data aramaki.ConfigAppliedData
	if err := json.Unmarshal(applied[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.Counts["added"] != 1200 || len(data.Added) > 500 {
		t.Fatalf("config.applied data: %d listed, counts %v", len(data.Added), data.Counts)
	}
}

func TestAProjectAdminCannotHandOutSharedInfrastructure(t *testing.T) {
	e := MustEnv(t)
	e.MustDo("POST", "/api/v1/users", "admin", map[string]string{"name": "carol", "password": "carol-secret-password"}, 201, nil)
	e.MustDo("POST", "/api/v1/roles", "admin", map[string]string{"user": "carol", "system": "webshop", "role": "admin"}, 201, nil)
	var tok service.NewToken
	e.MustDo("POST", "/api/v1/login", "", map[string]string{"user": "carol", "password": "carol-secret-password"}, 201, &tok)
	e.tokens["carol"] = tok.Secret

	// Her own project, down to what only it uses: fine.
	e.MustDo("POST", "/api/v1/roles", "carol", map[string]string{"user": "vera", "system": "webshop-db", "role": "operator"}, 201, nil)
	// Storage is shared with the blog: not hers to hand out, though she inherits admin on it.
	status, raw := e.Do("POST", "/api/v1/roles", "carol", map[string]string{"user": "vera", "system": "storage", "role": "admin"})
	if status != http.StatusForbidden || !strings.Contains(string(raw), "also used by blog-db") {
		t.Fatalf("carol granting on shared storage: %d %s", status, raw)
	}
	status, _ = e.Do("POST", "/api/v1/enrollment-tokens", "carol", map[string]any{"systems": []string{"storage"}})
	if status != http.StatusForbidden {
		t.Fatalf("carol enrolling an agent for shared storage: %d", status)
	}
}

func TestADisabledUserIsLockedOutAtOnce(t *testing.T) {
	e := MustEnv(t)
	e.MustDo("GET", "/api/v1/me", "viewer", nil, 200, nil)
	e.MustDo("POST", "/api/v1/users/vera/disable", "admin", nil, 204, nil)
	e.MustDo("GET", "/api/v1/me", "viewer", nil, 401, nil) // her token is gone
	e.MustDo("POST", "/api/v1/login", "", map[string]string{"user": "vera", "password": e.secrets["vera"]}, 401, nil)
	e.MustDo("POST", "/api/v1/users/admin/disable", "admin", nil, 400, nil) // not yourself
	e.MustDo("POST", "/api/v1/users/vera/enable", "admin", nil, 204, nil)
	e.MustDo("POST", "/api/v1/login", "", map[string]string{"user": "vera", "password": e.secrets["vera"]}, 201, nil)
}
