package wire_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/aramaki/aramaki/wire"
)

func seedFrames(f *testing.F) {
	for _, m := range []wire.Message{
		&wire.Results{Results: []wire.Result{result(1), result(2)}},
		&wire.Keepalive{Time: now},
		&wire.Facts{Collected: now, Hostname: "web1", Ports: []wire.Port{{Proto: "tcp", Address: "0.0.0.0", Port: 80}}},
		&wire.Gap{From: 1, To: 1, Dropped: 1},
		&wire.Ack{Seq: 7},
		&wire.Run{Request: "r1", System: "webshop", Check: "http"},
		&wire.ErrorMessage{Code: "revoked", Message: "agent revoked"},
		&wire.Hello{Version: 1, Nonce: make([]byte, wire.NonceSize), ServerTime: now},
		&wire.Hello{Version: 2, Nonce: make([]byte, wire.NonceSize), ServerTime: now},
	} {
		raw, err := wire.Encode(m, now)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, m := range v2Messages() {
		raw, err := wire.Encode(m, now)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"type":"auth","body":{"version":1,"agent_id":"ag_0123456789abcdef","agent_version":"1","time":"2026-11-24T03:00:00Z","signature":"AAAA","acked":0}}`))
	f.Add([]byte(`{"type":"auth","body":{"version":2,"agent_id":"ag_0123456789abcdef","agent_version":"1","time":"2026-11-24T03:00:00Z","signature":"` + strings.Repeat("A", 86) + `==","acked":0}}`))
	f.Add([]byte(`{"type":"finished","body":{"run":"r1","state":"failed","exit_code":null,"started":"2026-11-24T02:59:00Z","ended":"2026-11-24T02:59:00Z","error":"agent restarted","last_seq":0,"dropped":0}}`))
	f.Add([]byte(`{}`))
}

// checkDecoded holds what a decoder accepted on a connection of version v
// to account: it is valid, of a type v has, and re-encodes for v.
func checkDecoded(t *testing.T, m wire.Message, v int) {
	t.Helper()
	if err := m.Validate(now); err != nil {
		t.Fatalf("accepted an invalid %s: %v", m.FrameType(), err)
	}
	if since := m.FrameType().Since(); since < 1 || since > v {
		t.Fatalf("accepted a %s frame (since %d) on a v%d connection", m.FrameType(), since, v)
	}
	if _, err := wire.EncodeVersion(m, v, now); err != nil {
		t.Fatalf("accepted %s does not re-encode for v%d: %v", m.FrameType(), v, err)
	}
}

// Decoders never panic, and what they accept is valid and re-encodes;
// what version 1 accepts, every later version accepts the same.
func FuzzDecodeFromAgent(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		legacy, lerr := wire.DecodeFromAgent(raw, now)
		var first wire.Message
		for v := wire.MinVersion; v <= wire.Version; v++ {
			m, err := wire.DecodeFromAgentVersion(raw, v, now)
			if v == 1 && (err == nil) != (lerr == nil) {
				t.Fatalf("DecodeFromAgent says %v, at version 1 %v", lerr, err)
			}
			if err != nil {
				if first != nil {
					t.Fatalf("accepted on v1, refused on v%d: %v", v, err)
				}
				continue
			}
			checkDecoded(t, m, v)
			if first == nil && v == 1 {
				first = m
			} else if first != nil && !reflect.DeepEqual(first, m) {
				t.Fatalf("v1 decoded %+v, v%d %+v", first, v, m)
			}
			if a, ok := m.(*wire.Actions); ok {
				// What the wire lets through, the domain allows.
				for _, d := range a.Actions {
					if err := specOf(d).Validate(); err != nil {
						t.Fatalf("accepted action %s the domain refuses: %v", d.Name, err)
					}
				}
			}
		}
		if legacy != nil {
			checkDecoded(t, legacy, 1)
		}
	})
}

func FuzzDecodeFromServer(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if m, err := wire.DecodeFromServer(raw, now); err == nil {
			if err := m.Validate(now); err != nil {
				t.Fatalf("accepted an invalid %s: %v", m.FrameType(), err)
			}
			if m.FrameType().Since() != 1 {
				t.Fatalf("the version 1 decoder accepted a %s frame", m.FrameType())
			}
		}
		accepted := false
		for v := wire.MinVersion; v <= wire.Version; v++ {
			m, err := wire.DecodeFromServerVersion(raw, v, now)
			if err != nil {
				// A hello names one version; anything else of v1 is fine on v2.
				if accepted && !strings.Contains(err.Error(), "hello: version") {
					t.Fatalf("accepted on an earlier version, refused on v%d: %v", v, err)
				}
				continue
			}
			checkDecoded(t, m, v)
			accepted = true
		}
	})
}

func FuzzDecodeAuth(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := wire.DecodeAuth(raw, now)
		if err == nil {
			if !wire.ValidAgentID(m.AgentID) || len(m.Signature) != wire.SignatureSize || m.Version < wire.MinVersion || m.Version > wire.Version {
				t.Fatalf("accepted invalid auth %+v", m)
			}
		}
		for v := wire.MinVersion; v <= wire.Version; v++ {
			a, verr := wire.DecodeAuthVersion(raw, v, now)
			if verr == nil && (err != nil || a.Version != v || m.Version != v) {
				t.Fatalf("accepted on v%d an auth of version %d (%v)", v, a.Version, err)
			}
			if err == nil && m.Version == v && verr != nil {
				t.Fatalf("refused on v%d an auth of that version: %v", v, verr)
			}
		}
	})
}

// This package repeats the domain's rules for action declarations: the two
// agree on every declaration within the wire's limits.
func FuzzActionDeclaration(f *testing.F) {
	for _, d := range goodActions().Actions {
		raw, err := json.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"name":"x","argv":["/bin/x","{p}"],"timeout_ms":1000,"params":[{"name":"p","type":"string","pattern":"a|-b","default":"-b"}]}`))
	f.Add([]byte(`{"name":"y","argv":["/y","-n{n}"],"timeout_ms":0,"params":[{"name":"n","type":"int","min":-3,"max":3,"default":"+1"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d wire.ActionDeclaration
		if json.Unmarshal(raw, &d) != nil {
			return
		}
		werr := d.Validate()
		if !withinLimits(d) {
			if werr == nil {
				t.Fatalf("accepted %+v beyond the limits", d)
			}
			return
		}
		if derr := specOf(d).Validate(); (derr == nil) != (werr == nil) {
			t.Fatalf("the domain says %v, the wire %v, of %+v", derr, werr, d)
		}
	})
}

// withinLimits reports whether d keeps to the limits the wire adds to the
// domain's rules: sizes, counts and no NUL bytes.
func withinLimits(d wire.ActionDeclaration) bool {
	text := func(s string, max int) bool { return len(s) <= max && !strings.ContainsRune(s, 0) }
	if !text(d.Description, wire.MaxActionText) || len(d.Argv) > wire.MaxArgs ||
		d.Timeout < 0 || d.Timeout > wire.Millis(wire.MaxActionTimeout)+1 {
		return false
	}
	for _, a := range d.Argv {
		if !text(a, 4096) {
			return false
		}
	}
	for _, p := range d.Params {
		if !text(p.Description, wire.MaxActionText) || !text(p.Pattern, wire.MaxActionText) || len(p.Values) > wire.MaxEnumValues {
			return false
		}
		for _, v := range p.Values {
			if !text(v, wire.MaxParamValue) {
				return false
			}
		}
		if p.Default != nil && !text(*p.Default, wire.MaxParamValue) {
			return false
		}
	}
	return true
}

func FuzzEnrollment(f *testing.F) {
	tok := wire.EnrollmentToken{URL: "https://127.0.0.1:8443", CASHA256: strings.Repeat("cd", 32), ID: "0123456789abcdef", Secret: "0123456789012345678901234567890123456789"}
	f.Add([]byte(`{"token":"` + tok.String() + `","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","hostname":"web1","agent_version":"1"}`))
	f.Add([]byte(`{"token":"arke1.e30","public_key":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, tok, err := wire.DecodeEnrollRequest(raw)
		if err != nil {
			return
		}
		if len(req.PublicKey) != wire.PublicKeySize || req.Hostname == "" || tok.ID == "" {
			t.Fatalf("accepted invalid enrollment %+v", req)
		}
		if again, err := wire.ParseEnrollmentToken(tok.String()); err != nil || again != tok {
			t.Fatalf("accepted token does not round-trip: %v", err)
		}
	})
}

func FuzzDecodeEnrollResponse(f *testing.F) {
	f.Add([]byte(`{"agent_id":"ag_0123456789abcdef","name":"web1","systems":["webshop"]}`))
	f.Add([]byte(`{"agent_id":"x"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if r, err := wire.DecodeEnrollResponse(raw); err == nil && !wire.ValidAgentID(r.AgentID) {
			t.Fatalf("accepted %+v", r)
		}
	})
}
