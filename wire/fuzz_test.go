package wire_test

import (
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
	} {
		raw, err := wire.Encode(m, now)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"type":"auth","body":{"version":1,"agent_id":"ag_0123456789abcdef","agent_version":"1","time":"2026-11-24T03:00:00Z","signature":"AAAA","acked":0}}`))
	f.Add([]byte(`{}`))
}

// Decoders never panic, and what they accept is valid and re-encodes.
func FuzzDecodeFromAgent(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := wire.DecodeFromAgent(raw, now)
		if err != nil {
			return
		}
		if err := m.Validate(now); err != nil {
			t.Fatalf("accepted an invalid %s: %v", m.FrameType(), err)
		}
		if _, err := wire.Encode(m, now); err != nil {
			t.Fatalf("accepted %s does not re-encode: %v", m.FrameType(), err)
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
		}
	})
}

func FuzzDecodeAuth(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if m, err := wire.DecodeAuth(raw, now); err == nil {
			if !wire.ValidAgentID(m.AgentID) || len(m.Signature) != wire.SignatureSize || m.Version != wire.Version {
				t.Fatalf("accepted invalid auth %+v", m)
			}
		}
	})
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
