package wire_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki/wire"
)

var now = time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)

func result(seq uint64) wire.Result {
	return wire.Result{Seq: seq, System: "webshop", Check: "http", Status: 2, Output: "CRITICAL - 503",
		Metrics: []wire.Metric{{Name: "time", Value: 0.25, Unit: "s"}}, Started: now.Add(-time.Second), Duration: 250}
}

func TestFramesRoundTrip(t *testing.T) {
	msgs := []wire.Message{
		&wire.Results{Results: []wire.Result{result(1), result(2)}},
		&wire.Keepalive{Time: now},
		&wire.Facts{Collected: now, Hostname: "web1", CPUs: 2, Units: []wire.Unit{{Name: "varnish.service", Active: "active", Sub: "running"}}},
		&wire.Gap{From: 5, To: 9, Dropped: 5},
	}
	for _, m := range msgs {
		raw, err := wire.Encode(m, now)
		if err != nil {
			t.Fatalf("encode %s: %v", m.FrameType(), err)
		}
		got, err := wire.DecodeFromAgent(raw, now)
		if err != nil || got.FrameType() != m.FrameType() {
			t.Fatalf("decode %s: %v %v", m.FrameType(), got, err)
		}
	}
	welcome := &wire.Welcome{AgentID: "ag_0123456789abcdef", Keepalive: 20000, Checks: []wire.CheckDefinition{
		{System: "webshop", Name: "http", Command: []string{"/usr/lib/nagios/plugins/check_http", "-H", "shop"}, Interval: 60000, Timeout: 10000}}}
	raw, err := wire.Encode(welcome, now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := wire.DecodeFromServer(raw, now)
	if err != nil || len(got.(*wire.Welcome).Checks) != 1 {
		t.Fatalf("welcome: %v %v", got, err)
	}
}

func TestBadFramesAreRefusedWithAClearError(t *testing.T) {
	cases := []struct{ name, frame, want string }{
		{"garbage", `\x00\x01garbage`, "malformed JSON"},
		{"not an object", `[1,2]`, "malformed JSON"},
		{"unknown type", `{"type":"shell","body":{"cmd":"rm -rf /"}}`, `unexpected frame type "shell"`},
		{"server frame from agent", `{"type":"ack","body":{"seq":1}}`, `unexpected frame type "ack"`},
		{"no body", `{"type":"keepalive"}`, "has no body"},
		{"unknown field", `{"type":"keepalive","body":{"time":"2026-11-24T03:00:00Z","evil":1}}`, "unknown field"},
		{"trailing data", `{"type":"keepalive","body":{"time":"2026-11-24T03:00:00Z"}} {}`, "trailing data"},
		{"empty batch", `{"type":"results","body":{"results":[]}}`, "1 to 1000"},
		{"bad status", `{"type":"results","body":{"results":[{"seq":1,"system":"a","check":"b","status":7,"output":"","started":"2026-11-24T02:59:00Z","duration_ms":1}]}}`, "status 7"},
		{"seq zero", `{"type":"results","body":{"results":[{"seq":0,"system":"a","check":"b","status":0,"output":"","started":"2026-11-24T02:59:00Z","duration_ms":1}]}}`, "seq must be positive"},
		{"descending seq", `{"type":"results","body":{"results":[` +
			`{"seq":2,"system":"a","check":"b","status":0,"output":"","started":"2026-11-24T02:59:00Z","duration_ms":1},` +
			`{"seq":1,"system":"a","check":"b","status":0,"output":"","started":"2026-11-24T02:59:00Z","duration_ms":1}]}}`, "must ascend"},
		{"clock skew", `{"type":"keepalive","body":{"time":"2026-11-24T04:00:00Z"}}`, "ahead of the receiver's clock"},
		{"bad check name", `{"type":"results","body":{"results":[{"seq":1,"system":"a","check":"../x","status":0,"output":"","started":"2026-11-24T02:59:00Z","duration_ms":1}]}}`, "invalid system id or check name"},
		{"bad gap", `{"type":"gap","body":{"from":5,"to":4,"dropped":0}}`, "does not match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.DecodeFromAgent([]byte(c.frame), now)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	huge := `{"type":"keepalive","body":{"time":"` + strings.Repeat("x", wire.MaxFrameSize) + `"}}`
	if _, err := wire.DecodeFromAgent([]byte(huge), now); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized frame: %v", err)
	}
}

func TestAuthRefusesOtherProtocolVersions(t *testing.T) {
	_, err := wire.DecodeAuth([]byte(`{"type":"auth","body":{"version":99,"agent_id":"ag_0123456789abcdef","agent_version":"x","time":"2026-11-24T03:00:00Z","signature":"`+strings.Repeat("A", 86)+`==","acked":0}}`), now)
	if err == nil || !strings.Contains(err.Error(), "protocol version 99") {
		t.Fatalf("error %v", err)
	}
}

func TestEnrollmentTokensRoundTripAndRefuseForgeries(t *testing.T) {
	tok := wire.EnrollmentToken{URL: "https://aramaki.example.com:8443", CASHA256: strings.Repeat("ab", 32), ID: "0123456789abcdef", Secret: strings.Repeat("s", 43)}
	got, err := wire.ParseEnrollmentToken(tok.String())
	if err != nil || got != tok {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	bad := []wire.EnrollmentToken{
		{URL: "https://x", ID: tok.ID, Secret: tok.Secret},                                     // https without a pin
		{URL: "ftp://x", CASHA256: tok.CASHA256, ID: tok.ID, Secret: tok.Secret},               // not http(s)
		{URL: "https://u:p@x", CASHA256: tok.CASHA256, ID: tok.ID, Secret: tok.Secret},         // credentials in URL
		{URL: "https://x", CASHA256: tok.CASHA256, ID: "short", Secret: tok.Secret},            // bad id
		{URL: "https://x", CASHA256: tok.CASHA256, ID: tok.ID, Secret: "short"},                // weak secret
		{URL: "http://x", CASHA256: tok.CASHA256, ID: tok.ID, Secret: tok.Secret},              // pin on plain HTTP
		{URL: "https://x", CASHA256: strings.Repeat("zz", 32), ID: tok.ID, Secret: tok.Secret}, // not hex
	}
	for _, b := range bad {
		if _, err := wire.ParseEnrollmentToken(b.String()); err == nil {
			t.Errorf("accepted %+v", b)
		}
	}
	for _, s := range []string{"", "arke1.", "arke1.!!!", "ark_123", "arke1." + strings.Repeat("A", 4000)} {
		if _, err := wire.ParseEnrollmentToken(s); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
}

func TestEnrollmentRefusesHostNamesThatAreNotHostNames(t *testing.T) {
	tok := wire.EnrollmentToken{URL: "https://x", CASHA256: strings.Repeat("ab", 32), ID: "0123456789abcdef", Secret: strings.Repeat("s", 43)}
	for _, host := range []string{"\u001b[2J\u001b[31mEVIL", "web1\nFAKE LINE", "", "-web", strings.Repeat("a", 300)} {
		raw := []byte(`{"token":"` + tok.String() + `","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","hostname":` + strconv.Quote(host) + `,"agent_version":"1"}`)
		if _, _, err := wire.DecodeEnrollRequest(raw); err == nil {
			t.Errorf("hostname %q accepted", host)
		}
	}
}
