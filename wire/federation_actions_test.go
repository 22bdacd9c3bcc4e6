package wire_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aramaki/aramaki/wire"
)

const goodAction = `{"run":"7","system":"storage","action":"restart-unit","params":{"unit":"nfs"},"reason":"nfs hangs","requester":"alice","requested":"2026-11-24T03:00:00Z"}`

func TestAPeerActionIsDecodedOrRefusedWithAClearError(t *testing.T) {
	a, err := wire.DecodePeerAction([]byte(goodAction))
	if err != nil {
		t.Fatal(err)
	}
	if a.Run != "7" || a.System != "storage" || a.Action != "restart-unit" || a.Params["unit"] != "nfs" || a.Requester != "alice" {
		t.Errorf("decoded %+v", a)
	}
	for _, c := range []struct{ from, to, want string }{
		{`"run":"7"`, `"run":"07"`, "is not a run id"},
		{`"run":"7"`, `"run":"x"`, "is not a run id"},
		{`"system":"storage"`, `"system":"storage@shop"`, "is not a system id of the recipient"},
		{`"action":"restart-unit"`, `"action":"Restart"`, "is not an action name"},
		{`"requester":"alice"`, `"requester":"alice@shop"`, "is not a user name"},
		{`"requester":"alice"`, `"requester":""`, "is not a user name"},
		{`"reason":"nfs hangs"`, `"reason":""`, "no reason given"},
		{`"reason":"nfs hangs"`, `"reason":"` + strings.Repeat("x", 1001) + `"`, "exceeds 1000 bytes"},
		{`"unit":"nfs"`, `"Unit":"nfs"`, "invalid parameter name"},
		{`"unit":"nfs"`, `"unit":"a\u0000b"`, "NUL"},
		{`"requested":"2026-11-24T03:00:00Z"`, `"requested":"0001-01-01T00:00:00Z"`, "no valid time"},
		{`"run":"7"`, `"run":"7","break_glass":true`, "unknown field"},
	} {
		body := strings.Replace(goodAction, c.from, c.to, 1)
		if _, err := wire.DecodePeerAction([]byte(body)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.to, err, c.want)
		}
	}
}

func TestAPeerActionResultIsDecodedOrRefusedWithAClearError(t *testing.T) {
	for _, ok := range []string{
		`{"run":"7","peer_run":"41","state":"running","hosts_ok":0,"hosts_failed":0,"started":"2026-11-24T03:00:00Z"}`,
		`{"run":"7","peer_run":"41","state":"awaiting_approval","hosts_ok":0,"hosts_failed":0}`,
		`{"run":"7","peer_run":"41","state":"failed","hosts_ok":2,"hosts_failed":1,"started":"2026-11-24T03:00:00Z","ended":"2026-11-24T03:01:00Z"}`,
		`{"run":"7","state":"refused","hosts_ok":0,"hosts_failed":0,"message":"no grant allows it"}`,
	} {
		if _, err := wire.DecodePeerActionResult([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, c := range []struct{ body, want string }{
		{`{"run":"7","peer_run":"41","state":"done","hosts_ok":0,"hosts_failed":0}`, "unknown state"},
		{`{"run":"7","state":"succeeded","hosts_ok":1,"hosts_failed":0}`, "is not a run id"},
		{`{"run":"7","peer_run":"41","state":"refused","hosts_ok":0,"hosts_failed":0,"message":"no"}`, "a refused run has no id there"},
		{`{"run":"7","state":"refused","hosts_ok":0,"hosts_failed":0}`, "a refusal says why"},
		{`{"run":"7","peer_run":"41","state":"running","hosts_ok":1,"hosts_failed":0}`, "has not ended"},
		{`{"run":"7","peer_run":"41","state":"failed","hosts_ok":-1,"hosts_failed":0}`, "host counts"},
		{`{"run":"7","peer_run":"41","state":"failed","hosts_ok":0,"hosts_failed":0,"hosts":["st1"]}`, "unknown field"},
		{`{"run":"a","peer_run":"41","state":"failed","hosts_ok":0,"hosts_failed":0}`, "is not a run id"},
	} {
		if _, err := wire.DecodePeerActionResult([]byte(c.body)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.body, err, c.want)
		}
	}
}

func FuzzDecodePeerAction(f *testing.F) {
	for _, s := range []string{goodAction,
		`{"run":"1","system":"s","action":"a","reason":"r","requester":"u","requested":"2026-11-24T03:00:00Z"}`,
		`{"run":"1","system":"s@b","action":"a","reason":"r","requester":"u","requested":"2026-11-24T03:00:00Z"}`,
		`{"run":"1","system":"s","action":"a","params":{"":"x"},"reason":"r","requester":"u","requested":"2026-11-24T03:00:00Z"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := wire.DecodePeerAction(raw)
		if err != nil {
			return
		}
		if a.Run == "" || strings.ContainsAny(a.System, "@/ ") || a.System == "" || a.Action == "" || a.Requester == "" ||
			strings.ContainsAny(a.Requester, "@:/ ") || a.Reason == "" || !utf8.ValidString(a.Reason) || a.Requested.IsZero() || len(a.Params) > wire.MaxParams {
			t.Fatalf("accepted %+v", a)
		}
		again, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wire.DecodePeerAction(again); err != nil {
			t.Fatalf("what was accepted does not decode again: %v", err)
		}
	})
}

func FuzzDecodePeerActionResult(f *testing.F) {
	for _, s := range []string{
		`{"run":"7","peer_run":"41","state":"succeeded","hosts_ok":2,"hosts_failed":0,"started":"2026-11-24T03:00:00Z","ended":"2026-11-24T03:01:00Z"}`,
		`{"run":"7","state":"refused","hosts_ok":0,"hosts_failed":0,"message":"no grant allows it"}`,
		`{"run":"7","peer_run":"41","state":"running","hosts_ok":0,"hosts_failed":0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := wire.DecodePeerActionResult(raw)
		if err != nil {
			return
		}
		if r.Run == "" || r.HostsOK < 0 || r.HostsFailed < 0 || (r.State == wire.PeerRunRefused) != (r.PeerRun == "") || !utf8.ValidString(r.Message) {
			t.Fatalf("accepted %+v", r)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wire.DecodePeerActionResult(again); err != nil {
			t.Fatalf("what was accepted does not decode again: %v", err)
		}
	})
}

func TestActionMessagesAreOutboxKindsThatRoundTrip(t *testing.T) {
	for i, m := range []wire.PeerMessage{
		{Kind: wire.KindAction, Body: json.RawMessage(goodAction)},
		{Kind: wire.KindActionResult, Body: json.RawMessage(`{"run":"7","state":"refused","hosts_ok":0,"hosts_failed":0,"message":"no grant allows it"}`)},
	} {
		if !m.Kind.Outbox() {
			t.Fatalf("%s is not durable", m.Kind)
		}
		m.Origin, m.Recipient, m.Seq, m.Sent = srvA, srvB, uint64(i+1), now
		m.ID = wire.PeerMessageID(srvA, m.Kind, m.Seq)
		got, err := wire.OpenPeerMessage(MustSign(t, m, keyA), verifierOf(srvB))
		if err != nil {
			t.Fatalf("%s: %v", m.Kind, err)
		}
		if got.Kind != m.Kind || string(got.Body) != string(m.Body) {
			t.Fatalf("sent %+v, opened %+v", m, got)
		}
	}
}
