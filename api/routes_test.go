package api_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

var roles = []string{"", "viewer", "operator", "admin"}

// routeCase is one route with what each role gets. setup runs before each
// request as that role and returns the path and body to send.
type routeCase struct {
	method, pattern string
	want            [4]int // anonymous, viewer (on webshop), operator (on webshop), admin (global)
	setup           func(e *env, role string) (path string, body any)
}

func fixed(path string, body any) func(*env, string) (string, any) {
	return func(*env, string) (string, any) { return path, body }
}

// shopAlert sends to a new alert on the webshop, with suffix after its path.
func shopAlert(suffix string, body any) func(*env, string) (string, any) {
	return func(e *env, _ string) (string, any) {
		return "/api/v1/alerts/" + e.MustAlert("webshop", "http", "CRITICAL - Socket timeout").ID + suffix, body
	}
}

// shopRun sends to a new run on the webshop, with suffix after its path.
// Someone else than role asks for it, so that role may approve it.
func shopRun(action, suffix string, body any) func(*env, string) (string, any) {
	return func(e *env, role string) (string, any) {
		asker := "admin"
		if role == "admin" {
			asker = "operator"
		}
		system := map[string]string{"restart-db": "webshop-db", "flush-varnish": "webshop-app"}[action]
		return "/api/v1/runs/" + e.MustRun(asker, system, action, "Checking who may "+suffix).ID + suffix, body
	}
}

// shopWorkflowRun sends to a new run of a workflow of the webshop, with
// suffix after its path. Someone else than role asks for it, so that role
// may approve it.
func shopWorkflowRun(workflow, suffix string, body any) func(*env, string) (string, any) {
	return func(e *env, role string) (string, any) {
		asker := "admin"
		if role == "admin" {
			asker = "operator"
		}
		return "/api/v1/workflow-runs/" + e.MustWorkflowRun(asker, "webshop", workflow, "Checking who may "+suffix).ID + suffix, body
	}
}

func routeCases() []routeCase {
	n := 0
	unique := func(prefix string) string { n++; return fmt.Sprintf("%s%d", prefix, n) }
	return []routeCase{
		{"GET", "/healthz", [4]int{200, 200, 200, 200}, fixed("/healthz", nil)},
		{"GET", "/api/v1/openapi.json", [4]int{200, 200, 200, 200}, fixed("/api/v1/openapi.json", nil)},
		{"POST", "/api/v1/login", [4]int{201, 201, 201, 201}, func(e *env, _ string) (string, any) {
			return "/api/v1/login", map[string]string{"user": "vera", "password": e.secrets["vera"]}
		}},
		{"GET", "/api/v1/me", [4]int{401, 200, 200, 200}, fixed("/api/v1/me", nil)},
		// A wrong current password: nobody gets to change it that way.
		{"POST", "/api/v1/me/password", [4]int{401, 403, 403, 403}, fixed("/api/v1/me/password", map[string]string{"current": "wrong-password!", "new": "a-new-password-123"})},
		{"GET", "/api/v1/systems", [4]int{200, 200, 200, 200}, fixed("/api/v1/systems", nil)},
		{"GET", "/api/v1/systems/{id}", [4]int{401, 200, 200, 200}, fixed("/api/v1/systems/webshop", nil)},
		{"GET", "/api/v1/systems/{id}/descendants", [4]int{401, 200, 200, 200}, fixed("/api/v1/systems/webshop/descendants", nil)},
		{"GET", "/api/v1/systems/{id}/ancestors", [4]int{401, 200, 200, 200}, fixed("/api/v1/systems/webshop-db/ancestors", nil)},
		{"POST", "/api/v1/systems/{id}/notes", [4]int{401, 403, 201, 201}, func(e *env, _ string) (string, any) {
			return "/api/v1/systems/webshop-db/notes", map[string]string{"text": unique("Restarted the database ")}
		}},
		{"POST", "/api/v1/systems/{id}/announcements", [4]int{401, 403, 201, 201}, func(e *env, _ string) (string, any) {
			return "/api/v1/systems/webshop-db/announcements", map[string]string{"kind": "maintenance", "text": unique("Database upgrade at 18:00 ")}
		}},
		{"GET", "/api/v1/systems/{id}/status", [4]int{401, 200, 200, 200}, fixed("/api/v1/systems/webshop/status", nil)},
		{"GET", "/api/v1/systems/{id}/checks/{check}", [4]int{401, 200, 200, 200}, fixed("/api/v1/systems/webshop/checks/http", nil)},
		// No agent runs it here: an operator learns so, a viewer may not ask.
		{"POST", "/api/v1/systems/{id}/checks/{check}/run", [4]int{401, 403, 404, 404}, fixed("/api/v1/systems/webshop/checks/http/run", map[string]string{})},
		{"GET", "/api/v1/systems/{id}/silences", [4]int{401, 200, 200, 200}, fixed("/api/v1/systems/webshop-db/silences", nil)},
		{"GET", "/api/v1/systems/{id}/digest", [4]int{401, 200, 200, 200}, fixed("/api/v1/systems/webshop/digest?period=24h", nil)},
		{"POST", "/api/v1/systems/{id}/actions/{action}/runs", [4]int{401, 403, 201, 201}, func(e *env, _ string) (string, any) {
			e.MustActionHosts()
			return "/api/v1/systems/webshop-app/actions/flush-varnish/runs", map[string]any{"reason": unique("Stale pages "), "params": map[string]string{"pattern": "^/products/"}}
		}},
		{"GET", "/api/v1/systems/{id}/actions/{action}/stats", [4]int{401, 200, 200, 200}, fixed("/api/v1/systems/webshop-app/actions/flush-varnish/stats?period=24h", nil)},
		// Nobody logged in sees only runs on public systems.
		{"GET", "/api/v1/runs", [4]int{401, 200, 200, 200}, fixed("/api/v1/runs?state=running,awaiting_approval&since=1h", nil)},
		{"GET", "/api/v1/runs/{id}", [4]int{401, 200, 200, 200}, shopRun("flush-varnish", "", nil)},
		{"POST", "/api/v1/runs/{id}/approve", [4]int{404, 403, 200, 200}, shopRun("restart-db", "/approve", nil)},
		{"POST", "/api/v1/runs/{id}/cancel", [4]int{404, 403, 200, 200}, shopRun("flush-varnish", "/cancel", map[string]string{})},
		{"POST", "/api/v1/systems/{id}/workflows/{workflow}/runs", [4]int{401, 403, 201, 201}, func(e *env, _ string) (string, any) {
			e.MustActionHosts()
			return "/api/v1/systems/webshop/workflows/flush-web/runs", map[string]any{"reason": unique("Stale pages "), "inputs": map[string]string{"pattern": "^/products/"}}
		}},
		{"GET", "/api/v1/workflow-runs", [4]int{401, 200, 200, 200}, fixed("/api/v1/workflow-runs?state=running,awaiting_approval&workflow=flush-web&limit=10", nil)},
		{"GET", "/api/v1/workflow-runs/{id}", [4]int{401, 200, 200, 200}, shopWorkflowRun("flush-web", "", nil)},
		{"POST", "/api/v1/workflow-runs/{id}/approve", [4]int{404, 403, 200, 200}, shopWorkflowRun("restart-and-flush", "/approve", nil)},
		{"POST", "/api/v1/workflow-runs/{id}/cancel", [4]int{404, 403, 200, 200}, shopWorkflowRun("flush-web", "/cancel", map[string]string{})},
		{"GET", "/api/v1/alerts", [4]int{200, 200, 200, 200}, fixed("/api/v1/alerts?state=open,acknowledged", nil)},
		// An alert on a private system is not found by anonymous visitors.
		{"GET", "/api/v1/alerts/{id}", [4]int{404, 200, 200, 200}, shopAlert("", nil)},
		{"POST", "/api/v1/alerts/{id}/acknowledge", [4]int{404, 403, 200, 200}, shopAlert("/acknowledge", nil)},
		{"POST", "/api/v1/alerts/{id}/assign", [4]int{404, 403, 200, 200}, shopAlert("/assign", map[string]string{"user": "otto"})},
		{"POST", "/api/v1/alerts/{id}/comment", [4]int{404, 403, 200, 200}, shopAlert("/comment", map[string]string{"text": "Varnish again"})},
		{"POST", "/api/v1/alerts/{id}/escalate", [4]int{404, 403, 200, 200}, shopAlert("/escalate", map[string]string{})},
		{"POST", "/api/v1/alerts/{id}/resolve", [4]int{404, 403, 200, 200}, shopAlert("/resolve", map[string]string{"text": "Restarted varnish"})},
		// 200 with a result per alert: the viewer's say "forbidden".
		{"POST", "/api/v1/alerts/acknowledge", [4]int{401, 200, 200, 200}, func(e *env, _ string) (string, any) {
			return "/api/v1/alerts/acknowledge", map[string]any{"ids": []string{e.MustAlert("webshop", "http", "CRITICAL").ID}, "text": "on it"}
		}},
		{"GET", "/api/v1/silences", [4]int{200, 200, 200, 200}, fixed("/api/v1/silences", nil)},
		{"POST", "/api/v1/silences", [4]int{401, 403, 201, 201}, func(e *env, _ string) (string, any) {
			return "/api/v1/silences", map[string]any{"system": "webshop", "duration": "2h", "reason": unique("Database upgrade ")}
		}},
		{"DELETE", "/api/v1/silences/{id}", [4]int{404, 403, 200, 200}, func(e *env, _ string) (string, any) {
			var sl aramaki.Silence
			e.MustDo("POST", "/api/v1/silences", "admin", map[string]any{"system": "webshop", "duration": "1h", "reason": unique("Reboot ")}, 201, &sl)
			return "/api/v1/silences/" + sl.ID, nil
		}},
		{"GET", "/api/v1/agents", [4]int{401, 200, 200, 200}, fixed("/api/v1/agents", nil)},
		{"GET", "/api/v1/agents/{id}", [4]int{401, 200, 200, 200}, func(e *env, _ string) (string, any) {
			return "/api/v1/agents/" + e.MustAgent("web1", "webshop-app").ID, nil
		}},
		{"POST", "/api/v1/agents/{id}/revoke", [4]int{401, 403, 403, 204}, func(e *env, _ string) (string, any) {
			return "/api/v1/agents/" + e.MustAgent("web2", "webshop-app").ID + "/revoke", nil
		}},
		{"GET", "/api/v1/enrollment-tokens", [4]int{401, 403, 403, 200}, fixed("/api/v1/enrollment-tokens", nil)},
		{"POST", "/api/v1/enrollment-tokens", [4]int{401, 403, 403, 201}, fixed("/api/v1/enrollment-tokens", map[string]any{"systems": []string{"webshop"}, "expires_in": "1h"})},
		{"GET", "/api/v1/timeline", [4]int{200, 200, 200, 200}, fixed("/api/v1/timeline", nil)},
		{"GET", "/api/v1/events/{id}", [4]int{401, 200, 200, 200}, func(e *env, _ string) (string, any) {
			var ev aramaki.Event
			e.MustDo("POST", "/api/v1/systems/webshop/notes", "admin", map[string]string{"text": unique("note ")}, 201, &ev)
			return "/api/v1/events/" + ev.ID, nil
		}},
		{"GET", "/api/v1/config", [4]int{401, 403, 403, 200}, fixed("/api/v1/config", nil)},
		{"POST", "/api/v1/config/reload", [4]int{401, 403, 403, 200}, fixed("/api/v1/config/reload", nil)},
		{"GET", "/api/v1/users", [4]int{401, 403, 403, 200}, fixed("/api/v1/users", nil)},
		{"POST", "/api/v1/users", [4]int{401, 403, 403, 201}, func(e *env, _ string) (string, any) {
			return "/api/v1/users", map[string]string{"name": unique("user"), "password": "long-enough-password"}
		}},
		{"POST", "/api/v1/users/{name}/disable", [4]int{401, 403, 403, 204}, func(e *env, _ string) (string, any) {
			name := unique("gone")
			e.MustDo("POST", "/api/v1/users", "admin", map[string]string{"name": name, "password": "long-enough-password"}, 201, nil)
			return "/api/v1/users/" + name + "/disable", nil
		}},
		{"POST", "/api/v1/users/{name}/enable", [4]int{401, 403, 403, 204}, fixed("/api/v1/users/vera/enable", nil)},
		{"PUT", "/api/v1/users/{name}/email", [4]int{401, 403, 403, 204}, func(e *env, _ string) (string, any) {
			name := unique("mailed")
			e.MustDo("POST", "/api/v1/users", "admin", map[string]string{"name": name, "password": "long-enough-password"}, 201, nil)
			return "/api/v1/users/" + name + "/email", map[string]string{"email": name + "@example.com"}
		}},
		{"GET", "/api/v1/tokens", [4]int{401, 200, 200, 200}, fixed("/api/v1/tokens", nil)},
		{"POST", "/api/v1/tokens", [4]int{401, 201, 201, 201}, fixed("/api/v1/tokens", map[string]string{"name": "ci", "expires_in": "24h"})},
		{"DELETE", "/api/v1/tokens/{id}", [4]int{401, 204, 204, 204}, func(e *env, role string) (string, any) {
			if role == "" {
				return "/api/v1/tokens/0123456789abcdef", nil
			}
			var tok service.NewToken
			e.MustDo("POST", "/api/v1/tokens", role, map[string]string{"name": "throwaway"}, 201, &tok)
			return "/api/v1/tokens/" + tok.ID, nil
		}},
		{"GET", "/api/v1/roles", [4]int{401, 403, 403, 200}, fixed("/api/v1/roles?system=webshop", nil)},
		{"POST", "/api/v1/roles", [4]int{401, 403, 403, 201}, fixed("/api/v1/roles", map[string]string{"user": "vera", "system": "blog", "role": "viewer"})},
		{"DELETE", "/api/v1/roles/{system}/{user}", [4]int{401, 403, 403, 204}, func(e *env, role string) (string, any) {
			e.MustDo("POST", "/api/v1/roles", "admin", map[string]string{"user": "otto", "system": "compute", "role": "viewer"}, 201, nil)
			return "/api/v1/roles/compute/otto", nil
		}},
		// Its identity holds nothing secret, but only who is logged in sees it.
		{"GET", "/api/v1/federation/identity", [4]int{401, 200, 200, 200}, fixed("/api/v1/federation/identity", nil)},
		{"POST", "/api/v1/federation/identity/rotate", [4]int{401, 403, 403, 200}, fixed("/api/v1/federation/identity/rotate", nil)},
		{"POST", "/api/v1/peers/invitations", [4]int{401, 403, 403, 201}, func(e *env, _ string) (string, any) {
			return "/api/v1/peers/invitations", api.InvitationRequest{Name: unique("customer"), TTL: "1h"}
		}},
		// The admin's accept reaches a real server over loopback.
		{"POST", "/api/v1/peers/accept", [4]int{401, 403, 403, 201}, func(e *env, role string) (string, any) {
			if role != "admin" {
				return "/api/v1/peers/accept", api.AcceptRequest{Token: "arpeer1.e30"}
			}
			return "/api/v1/peers/accept", api.AcceptRequest{Token: MustInviter(e.t, unique("hoster")).MustInvite(e.t, "shop")}
		}},
		{"GET", "/api/v1/peers", [4]int{401, 403, 403, 200}, fixed("/api/v1/peers", nil)},
		{"DELETE", "/api/v1/peers/{name}", [4]int{401, 403, 403, 204}, func(e *env, role string) (string, any) {
			name := unique("gone")
			if role == "admin" {
				e.MustPeer(name)
			}
			return "/api/v1/peers/" + name, nil
		}},
		// Sharing a system takes its owner's admin.
		{"POST", "/api/v1/grants", [4]int{401, 403, 403, 201}, func(e *env, _ string) (string, any) {
			e.MustPeerOnce("grantee")
			return "/api/v1/grants", api.GrantRequest{Peer: "grantee", Systems: []string{"webshop"}, Allow: "events,status", Until: time.Now().Add(time.Hour).Format(time.RFC3339)}
		}},
		{"GET", "/api/v1/grants", [4]int{401, 200, 200, 200}, fixed("/api/v1/grants?peer=grantee", nil)},
		{"GET", "/api/v1/grants/received", [4]int{401, 200, 200, 200}, fixed("/api/v1/grants/received?peer=grantee", nil)},
		// Who may not hand out its systems does not learn of a grant.
		{"POST", "/api/v1/grants/{id}/revoke", [4]int{401, 404, 404, 200}, func(e *env, _ string) (string, any) {
			return "/api/v1/grants/" + e.MustGrant("grantee", "webshop").ID + "/revoke", nil
		}},
		// Other servers: the invitation is the credential, whoever asks.
		{"POST", "/federation/v1/join", [4]int{201, 201, 201, 201}, func(e *env, _ string) (string, any) {
			return "/federation/v1/join", e.MustJoinRequest(unique("joiner"))
		}},
	}
}

func TestEveryRouteAnswersEachRoleWithTheRightStatus(t *testing.T) {
	e := MustEnv(t)
	for _, rc := range routeCases() {
		for i, role := range roles {
			name := role
			if name == "" {
				name = "anonymous"
			}
			t.Run(rc.method+" "+rc.pattern+" as "+name, func(t *testing.T) {
				e.t = t
				path, body := rc.setup(e, role)
				status, raw := e.Do(rc.method, path, role, body)
				if status != rc.want[i] {
					t.Fatalf("status %d, want %d: %s", status, rc.want[i], raw)
				}
				if status >= 400 {
					var eb api.ErrorBody
					if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
						t.Fatalf("error answer is not {\"error\": {code, message}}: %s", raw)
					}
				}
			})
		}
	}
}

func TestEveryRouteHasAnAuthorisationCase(t *testing.T) {
	e := MustEnv(t)
	var tested []string
	for _, rc := range routeCases() {
		tested = append(tested, rc.method+" "+rc.pattern)
	}
	a := api.New(e.svc, nil, api.Options{})
	for _, r := range a.Routes() {
		if !slices.Contains(tested, r.Method+" "+r.Pattern) {
			t.Errorf("route %s %s has no case in routeCases", r.Method, r.Pattern)
		}
	}
}

func TestTheOpenAPIDocumentDescribesExactlyTheRoutes(t *testing.T) {
	e := MustEnv(t)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	e.MustDo("GET", "/api/v1/openapi.json", "", nil, 200, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, r := range api.New(e.svc, nil, api.Options{}).Routes() {
		key := r.Method + " " + r.Pattern
		routed[key] = true
		if !documented[key] {
			t.Errorf("route %s is not in the OpenAPI document", key)
		}
	}
	for key := range documented {
		if !routed[key] {
			t.Errorf("the OpenAPI document describes %s, which is not routed", key)
		}
	}
}
