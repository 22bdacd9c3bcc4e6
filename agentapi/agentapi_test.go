package agentapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/agentapi"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/servicetest"
	"github.com/aramaki/aramaki/store"
	"github.com/aramaki/aramaki/wire"
)

const systems = `id: webshop
title: Webshop
subsystems: [webshop-app]
---
id: webshop-app
title: Webshop app
checks:
  - {name: http, command: "/usr/lib/nagios/plugins/check_http -H shop", interval: 1m, timeout: 10s}
  - {name: disk, command: "/usr/lib/nagios/plugins/check_disk -w 10% -c 5% -p /", interval: 5m}
  - {name: only-db1, command: "true", agents: [db1]}
`

// env is the agent API on TLS over a real store and config repository.
type env struct {
	t    *testing.T
	svc  *service.Service
	st   *store.Store
	srv  *httptest.Server
	ctx  context.Context
	stop context.CancelFunc
}

func MustEnv(t *testing.T) *env {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	se := servicetest.MustService(t, map[string]string{"systems/shop.yaml": systems})
	svc, st, log := se.Service, se.Store, se.Log
	go svc.RunIngest(ctx)
	a := agentapi.New(svc, log, agentapi.Options{Keepalive: time.Second})
	srv := httptest.NewTLSServer(a.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, svc: svc, st: st, srv: srv, ctx: ctx, stop: stop}
}

var admin = aramaki.Principal{User: "root", Bindings: []aramaki.RoleBinding{{User: "root", System: aramaki.GlobalScope, Role: aramaki.RoleAdmin}}}

// fakeAgent speaks the wire protocol the way aramaki-agent does.
type fakeAgent struct {
	e    *env
	id   string
	name string
	key  ed25519.PrivateKey
	ws   *websocket.Conn
	resp *http.Response
}

// MustEnroll makes a token as an admin and enrolls a fake agent with it.
func (e *env) MustEnroll(name string, systems ...string) *fakeAgent {
	e.t.Helper()
	tok, err := e.svc.CreateEnrollmentToken(e.ctx, admin, systems, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	wt := wire.EnrollmentToken{URL: e.srv.URL, CASHA256: strings.Repeat("00", 32), ID: tok.ID, Secret: tok.Secret}
	status, body := e.post("/api/v1/agent/enroll", wire.EnrollRequest{Token: wt.String(), PublicKey: pub, Hostname: name, AgentVersion: "test"})
	if status != http.StatusCreated {
		e.t.Fatalf("enroll: %d %s", status, body)
	}
	r, err := wire.DecodeEnrollResponse(body)
	if err != nil {
		e.t.Fatal(err)
	}
	return &fakeAgent{e: e, id: r.AgentID, name: name, key: key}
}

func (e *env) post(path string, v any) (int, []byte) {
	raw, _ := json.Marshal(v)
	resp, err := e.srv.Client().Post(e.srv.URL+path, "application/json", bytes.NewReader(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// connect dials and answers the hello; it returns the server's reply to auth.
func (a *fakeAgent) connect(sign func(payload []byte) []byte) (wire.Message, error) {
	ctx, cancel := context.WithTimeout(a.e.ctx, 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(a.e.srv.URL, "https")+"/api/v1/agent/connect", &websocket.DialOptions{
		HTTPClient: a.e.srv.Client(), Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(wire.MaxFrameSize)
	a.ws, a.resp = ws, resp
	hello, err := a.read()
	if err != nil {
		return nil, err
	}
	binding, _ := resp.TLS.ExportKeyingMaterial(wire.ChannelBindingLabel, nil, 32)
	payload := wire.AuthPayload(hello.(*wire.Hello).Nonce, a.id, binding)
	if sign == nil {
		sign = func(p []byte) []byte { return ed25519.Sign(a.key, p) }
	}
	a.send(&wire.Auth{Version: wire.Version, AgentID: a.id, AgentVersion: "test", Time: time.Now(), Signature: sign(payload)})
	return a.read()
}

func (a *fakeAgent) MustConnect() *wire.Welcome {
	a.e.t.Helper()
	m, err := a.connect(nil)
	if err != nil {
		a.e.t.Fatal(err)
	}
	w, ok := m.(*wire.Welcome)
	if !ok {
		a.e.t.Fatalf("got %T %+v, want welcome", m, m)
	}
	return w
}

func (a *fakeAgent) send(m wire.Message) {
	raw, err := wire.Encode(m, time.Now())
	if err != nil {
		a.e.t.Fatal(err)
	}
	a.sendRaw(raw)
}

func (a *fakeAgent) sendRaw(raw []byte) {
	ctx, cancel := context.WithTimeout(a.e.ctx, 5*time.Second)
	defer cancel()
	if err := a.ws.Write(ctx, websocket.MessageText, raw); err != nil {
		a.e.t.Fatal(err)
	}
}

func (a *fakeAgent) read() (wire.Message, error) {
	ctx, cancel := context.WithTimeout(a.e.ctx, 10*time.Second)
	defer cancel()
	_, raw, err := a.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	return wire.DecodeFromServer(raw, time.Now())
}

// MustAck waits for an ack, skipping other frames.
func (a *fakeAgent) MustAck() uint64 {
	a.e.t.Helper()
	for {
		m, err := a.read()
		if err != nil {
			a.e.t.Fatalf("waiting for an ack: %v", err)
		}
		switch m := m.(type) {
		case *wire.Ack:
			return m.Seq
		case *wire.ErrorMessage:
			a.e.t.Fatalf("server error: %s: %s", m.Code, m.Message)
		}
	}
}

func result(seq uint64, check string, status wire.Status) wire.Result {
	return wire.Result{Seq: seq, System: "webshop-app", Check: check, Status: status, Output: check + " output", Started: time.Now().Add(-time.Second), Duration: 10}
}

func TestAnEnrolledAgentGetsItsChecksAndItsResultsAreStoredOnce(t *testing.T) {
	e := MustEnv(t)
	a := e.MustEnroll("web1", "webshop-app")
	w := a.MustConnect()
	var names []string
	for _, c := range w.Checks {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "http,disk" || w.Acked != 0 {
		t.Fatalf("welcome: checks %v acked %d; want http,disk (only-db1 is for db1) and nothing acked", names, w.Acked)
	}
	if w.Checks[0].Command[0] != "/usr/lib/nagios/plugins/check_http" || w.Checks[0].Timeout.D() != 10*time.Second {
		t.Fatalf("http check definition: %+v", w.Checks[0])
	}

	a.send(&wire.Results{Results: []wire.Result{result(1, "http", 0), result(2, "disk", 2)}})
	if seq := a.MustAck(); seq != 2 {
		t.Fatalf("ack %d, want 2", seq)
	}
	// Resent after a lost ack: stored once.
	a.send(&wire.Results{Results: []wire.Result{result(1, "http", 0), result(2, "disk", 2), result(3, "http", 2)}})
	if seq := a.MustAck(); seq != 3 {
		t.Fatalf("ack %d, want 3", seq)
	}
	results, err := e.st.Results(e.ctx, "webshop-app", "http", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("http results stored %d times, want 2 (seq 1 and 3)", len(results))
	}
	status, err := e.svc.SystemStatus(e.ctx, admin, "webshop")
	if err != nil {
		t.Fatal(err)
	}
	if status.Status != aramaki.StatusCritical || len(status.Problems) != 2 {
		t.Fatalf("webshop rolled up %s with problems %+v; want critical from http and disk below", status.Status, status.Problems)
	}
	if len(status.Subsystems) != 1 || status.Subsystems[0].Status != aramaki.StatusCritical {
		t.Fatalf("the layer below is not shown: %+v", status.Subsystems)
	}

	// Reconnecting, the agent learns what is stored.
	a.ws.Close(websocket.StatusNormalClosure, "")
	if w := a.MustConnect(); w.Acked != 3 {
		t.Fatalf("after reconnect acked %d, want 3", w.Acked)
	}
}

func TestResultsForChecksTheAgentDoesNotRunAreNotStored(t *testing.T) {
	e := MustEnv(t)
	a := e.MustEnroll("web1", "webshop-app")
	a.MustConnect()
	a.send(&wire.Results{Results: []wire.Result{result(1, "only-db1", 2), {Seq: 2, System: "webshop", Check: "http", Status: 2, Started: time.Now()}}})
	if seq := a.MustAck(); seq != 2 {
		t.Fatalf("ack %d, want 2: dropped results must not come back", seq)
	}
	states, _ := e.st.CheckStates(e.ctx, []string{"webshop", "webshop-app"})
	for _, st := range states {
		if st.Check != aramaki.KeepaliveCheck {
			t.Fatalf("stored a state for a check the agent does not run: %+v", st)
		}
	}
}

func TestForgedAndRevokedAgentsAreRefused(t *testing.T) {
	e := MustEnv(t)
	a := e.MustEnroll("web1", "webshop-app")

	// Signed with another key.
	_, other, _ := ed25519.GenerateKey(nil)
	m, err := a.connect(func(p []byte) []byte { return ed25519.Sign(other, p) })
	if em, ok := m.(*wire.ErrorMessage); err != nil || !ok || !strings.Contains(em.Message, "signature") {
		t.Fatalf("wrong key: %v %v", m, err)
	}

	// A signature for another connection (replayed): its channel binding differs.
	var captured []byte
	a.connect(func(p []byte) []byte { captured = ed25519.Sign(a.key, p); return make([]byte, 64) })
	m, _ = a.connect(func([]byte) []byte { return captured })
	if _, ok := m.(*wire.ErrorMessage); !ok {
		t.Fatalf("a replayed signature was accepted: %+v", m)
	}

	// Revoked while connected: cut at once, and refused afterwards.
	a.MustConnect()
	if err := e.svc.RevokeAgent(e.ctx, admin, a.id); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := a.read()
		if err != nil {
			break // disconnected
		}
		if em, ok := m.(*wire.ErrorMessage); ok && em.Code != "revoked" {
			t.Fatalf("revocation said %+v", em)
		}
	}
	m, _ = a.connect(nil)
	if em, ok := m.(*wire.ErrorMessage); !ok || em.Code != "revoked" {
		t.Fatalf("a revoked agent reconnecting got %+v", m)
	}
	// What it reported no longer counts on its systems.
	states, _ := e.st.CheckStates(e.ctx, []string{"webshop-app"})
	for _, st := range states {
		if st.Agent == a.id {
			t.Errorf("a revoked agent's state is still counted: %+v", st)
		}
	}
}

func TestEnrollmentTokensWorkOnce(t *testing.T) {
	e := MustEnv(t)
	tok, err := e.svc.CreateEnrollmentToken(e.ctx, admin, []string{"webshop-app"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	wt := wire.EnrollmentToken{URL: e.srv.URL, CASHA256: strings.Repeat("00", 32), ID: tok.ID, Secret: tok.Secret}
	req := wire.EnrollRequest{Token: wt.String(), PublicKey: pub, Hostname: "web1"}
	if status, body := e.post("/api/v1/agent/enroll", req); status != http.StatusCreated {
		t.Fatalf("first use: %d %s", status, body)
	}
	if status, _ := e.post("/api/v1/agent/enroll", req); status != http.StatusUnauthorized {
		t.Fatalf("second use: %d, want 401", status)
	}
	forged := wt
	forged.Secret = strings.Repeat("x", 43)
	req.Token = forged.String()
	if status, _ := e.post("/api/v1/agent/enroll", req); status != http.StatusUnauthorized {
		t.Fatalf("forged secret: %d, want 401", status)
	}
	if status, body := e.post("/api/v1/agent/enroll", map[string]string{"token": "garbage"}); status != http.StatusBadRequest {
		t.Fatalf("garbage: %d %s", status, body)
	}
}

func TestBadFramesCloseTheConnectionAndStoreNothing(t *testing.T) {
	e := MustEnv(t)
	a := e.MustEnroll("web1", "webshop-app")
	a.MustConnect()
	a.sendRaw([]byte(`{"type":"results","body":{"results":[{"seq":1,"system":"webshop-app","check":"http","status":9,"output":"","started":"2026-01-01T00:00:00Z","duration_ms":1}]}}`))
	m, err := a.read()
	if em, ok := m.(*wire.ErrorMessage); err != nil || !ok || em.Code != "protocol" {
		t.Fatalf("bad frame answered %+v %v", m, err)
	}
	if results, _ := e.st.Results(e.ctx, "webshop-app", "http", 10); len(results) != 0 {
		t.Fatalf("stored %d results from a bad frame", len(results))
	}
}

func TestAConnectedAgentRunsACheckOnRequest(t *testing.T) {
	e := MustEnv(t)
	a := e.MustEnroll("web1", "webshop-app")
	a.MustConnect()
	done := make(chan []aramaki.CheckResult, 1)
	go func() {
		res, err := e.svc.RunCheck(e.ctx, admin, "webshop-app", "http", 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	for {
		m, err := a.read()
		if err != nil {
			t.Fatal(err)
		}
		if run, ok := m.(*wire.Run); ok {
			r := result(1, "http", 1)
			r.Request = run.Request
			a.send(&wire.Results{Results: []wire.Result{r}})
			break
		}
	}
	res := <-done
	if len(res) != 1 || res[0].Status != aramaki.StatusWarning {
		t.Fatalf("ad hoc run results: %+v", res)
	}
}

var _ = tls.VersionTLS13
