package api_test

import (
	"encoding/json"
	"testing"

	"github.com/aramaki/aramaki/api"
)

// FuzzRequestBodies throws arbitrary bodies at every route that decodes
// one: the answer is never a server error, and every error is well-formed.
func FuzzRequestBodies(f *testing.F) {
	e := MustEnv(f)
	alert := "/api/v1/alerts/" + e.MustAlert("webshop", "http", "CRITICAL - shop down").ID
	restart := "/api/v1/runs/" + e.MustRun("admin", "webshop-db", "restart-db", "Vacuum is stuck").ID
	workflow := "/api/v1/workflow-runs/" + e.MustWorkflowRun("admin", "webshop", "restart-and-flush", "Vacuum is stuck").ID
	targets := []struct{ method, path string }{
		{"POST", "/api/v1/systems/webshop/notes"},
		{"POST", "/api/v1/systems/webshop/announcements"},
		{"POST", "/api/v1/login"},
		{"POST", "/api/v1/me/password"},
		{"POST", "/api/v1/users"},
		{"POST", "/api/v1/tokens"},
		{"POST", "/api/v1/roles"},
		{"POST", alert + "/acknowledge"},
		{"POST", alert + "/assign"},
		{"POST", alert + "/comment"},
		{"POST", "/api/v1/alerts/acknowledge"},
		{"POST", "/api/v1/silences"},
		{"PUT", "/api/v1/users/otto/email"},
		{"POST", "/api/v1/systems/webshop-app/actions/flush-varnish/runs"},
		{"POST", "/api/v1/systems/webshop-db/actions/restart-db/runs"},
		{"POST", restart + "/approve"},
		{"POST", restart + "/cancel"},
		{"POST", "/api/v1/systems/webshop/workflows/flush-web/runs"},
		{"POST", "/api/v1/systems/webshop/workflows/restart-and-flush/runs"},
		{"POST", workflow + "/approve"},
		{"POST", workflow + "/cancel"},
		{"POST", "/api/v1/peers/invitations"},
		{"POST", "/api/v1/peers/accept"},
		{"POST", "/api/v1/grants"},
		{"POST", "/federation/v1/join"},
	}
	for i := range targets {
		f.Add(uint8(i), `{"text": "hello"}`)
		f.Add(uint8(i), `{"user": "vera", "password": "x", "name": "n", "role": "viewer", "system": "*"}`)
		f.Add(uint8(i), `{"expires_in": "-5h", "current": null}`)
		f.Add(uint8(i), `[1, 2, {"a": "\u0000"}]`)
		f.Add(uint8(i), `{"ids": ["1", "x", ""], "text": "on it"}`)
		f.Add(uint8(i), `{"email": "Carol <carol@example.com>\r\nBcc: x@example.com"}`)
		f.Add(uint8(i), `{"system": "webshop", "start": "2099-01-01T00:00:00Z", "duration": "1h", "reason": "r", "maintenance": true}`)
		f.Add(uint8(i), `{"system": "webshop", "end": "9999-12-31T23:59:59+23:59", "duration": "-9223372036854775808ns", "until_resolved": 1}`)
		f.Add(uint8(i), `{"reason": "stale pages", "params": {"pattern": "^/products/"}}`)
		f.Add(uint8(i), `{"reason": "down", "break_glass": true, "params": {}}`)
		f.Add(uint8(i), `{"reason": "x", "params": {"pattern": "$(reboot)\u0000\n-rf", "": null}, "break_glass": "yes"}`)
		f.Add(uint8(i), `{"reason": "stale pages", "inputs": {"pattern": "^/products/"}}`)
		f.Add(uint8(i), `{"dry_run": true, "inputs": {"pattern": "${steps.x.y}", "": "\u0000"}}`)
		f.Add(uint8(i), `{"reason": "x", "inputs": {"pattern": null}, "dry_run": 1}`)
		f.Add(uint8(i), `{"name": "customer", "ttl": "24h"}`)
		f.Add(uint8(i), `{"token": "arpeer1.eyJ1IjoiaHR0cHM6Ly9hLmV4YW1wbGUifQ", "name": "a"}`)
		f.Add(uint8(i), `{"peer": "customer", "systems": ["webshop", "webshop"], "allow": "events,status,action:flush-varnish", "until": "2099-01-01T00:00:00Z"}`)
		f.Add(uint8(i), `{"peer": "customer", "systems": null, "allow": ",,action:,", "until": "9999-12-31T23:59:59+23:59"}`)
		f.Add(uint8(i), `{"invitation": "0123456789abcdef", "secret": "ssssssssssssssssssssssssssssssssssssssssss", "server": "srv_0123456789abcdef", "name": "b", "url": "", "ca_sha256": "", "public_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "proof": "AAAA"}`)
		f.Add(uint8(i), `{}`)
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		e.t = t
		target := targets[int(which)%len(targets)]
		status, raw := e.Do(target.method, target.path, "operator", body)
		if status >= 500 {
			t.Fatalf("%s %s with %q: status %d: %s", target.method, target.path, body, status, raw)
		}
		if status >= 400 {
			var eb api.ErrorBody
			if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code == "" {
				t.Fatalf("malformed error answer %q", raw)
			}
		}
	})
}
