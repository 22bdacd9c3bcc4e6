// Package agenttest is a minimal Aramaki server for the tests of the agent
// and its binary: it enrolls agents, authenticates them the way the
// protocol says (signature over the nonce and the TLS channel binding,
// checked against the enrolled key), and records everything they send.
// Its TLS identity is a CA of its own making and a leaf certificate, both
// presented in the handshake, like the real server's. It is not the
// server: no store, no config, no rules beyond the wire's.
package agenttest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/aramaki/aramaki/wire"
)

// Options shape a server.
type Options struct {
	// PlainHTTP serves without TLS, like a development server.
	PlainHTTP bool
	// CA issues the server's certificate; by default a new one.
	CA *CA
	// LeafOnly presents only the leaf certificate, without the CA.
	LeafOnly bool
	// Hosts the leaf certificate is issued for (default localhost and
	// 127.0.0.1).
	Hosts []string
	// Keepalive is the interval the welcome asks for (default 1s).
	Keepalive time.Duration
	// ClockSkew sets the server's clock off this host's.
	ClockSkew time.Duration
}

// Server is the fake server.
type Server struct {
	URL string
	// CAFingerprint is the hex SHA-256 of the CA certificate (empty for
	// plain HTTP).
	CAFingerprint string

	t         testing.TB
	srv       *httptest.Server
	keepalive time.Duration
	skew      time.Duration

	mu             sync.Mutex
	changed        chan struct{} // closed on every change
	tokens         map[string]*token
	agents         map[string]*Agent
	conns          map[string]*websocket.Conn
	checks         []wire.CheckDefinition
	hold           bool
	refuse         bool
	enrollRequests int
	attempts       int
	violations     []string
}

type token struct {
	secret  string
	systems []string
	used    bool
}

// Agent is what the server knows of an enrolled agent.
type Agent struct {
	ID        string
	Name      string
	Version   string
	PublicKey ed25519.PublicKey
	Revoked   bool
	// Results are the stored results, in the order stored; LastSeq is the
	// highest stored sequence (what Welcome.Acked says).
	Results []wire.Result
	LastSeq uint64
	// Duplicates counts results received again after they were stored.
	Duplicates int
	Gaps       []wire.Gap
	Facts      []*wire.Facts
	Keepalives int
	// Connects counts authenticated connections.
	Connects int
}

// New starts a server; it stops when the test ends.
func New(t testing.TB, opt Options) *Server {
	t.Helper()
	s := &Server{t: t, keepalive: opt.Keepalive, skew: opt.ClockSkew, changed: make(chan struct{}),
		tokens: map[string]*token{}, agents: map[string]*Agent{}, conns: map[string]*websocket.Conn{}}
	if s.keepalive == 0 {
		s.keepalive = time.Second
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/agent/enroll", s.enroll)
	mux.HandleFunc("GET /api/v1/agent/connect", s.connect)
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what some tests are about
	if opt.PlainHTTP {
		s.srv.Start()
	} else {
		hosts := opt.Hosts
		if len(hosts) == 0 {
			hosts = []string{"localhost", "127.0.0.1"}
		}
		ca := opt.CA
		if ca == nil {
			ca = MustMakeCA(t)
		}
		s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.MustIssue(t, hosts, opt.LeafOnly)}, MinVersion: tls.VersionTLS12}
		s.srv.StartTLS()
		s.CAFingerprint = ca.Fingerprint
	}
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and drops every connection.
func (s *Server) Close() {
	s.mu.Lock()
	for _, c := range s.conns {
		c.CloseNow()
	}
	s.mu.Unlock()
	s.srv.Close()
}

// CA is a certificate authority of a test's own making.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// Fingerprint is the hex SHA-256 of the certificate: what a token pins.
	Fingerprint string
}

// MustMakeCA makes a CA.
func MustMakeCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agenttest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(der)
	return &CA{Cert: cert, Key: key, Fingerprint: hex.EncodeToString(sum[:])}
}

// MustIssue makes a server certificate for hosts; the TLS certificate
// presents the chain leaf, CA (only the leaf with leafOnly).
func (ca *CA) MustIssue(t testing.TB, hosts []string, leafOnly bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	chain := [][]byte{der, ca.Cert.Raw}
	if leafOnly {
		chain = chain[:1]
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key}
}

// Token makes a one-time enrollment token for systems.
func (s *Server) Token(systems ...string) string {
	return s.TokenWithPin(s.CAFingerprint, systems...)
}

// TokenWithPin makes a token for this server that pins another CA.
func (s *Server) TokenWithPin(fingerprint string, systems ...string) string {
	id, secret := randomHex(8), randomHex(24)
	s.mu.Lock()
	s.tokens[id] = &token{secret: secret, systems: systems}
	s.mu.Unlock()
	return wire.EnrollmentToken{URL: s.URL, CASHA256: fingerprint, ID: id, Secret: secret}.String()
}

// now is the server's clock.
func (s *Server) now() time.Time { return time.Now().Add(s.skew) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	s.update(func() { s.enrollRequests++ })
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 32<<10))
	req, tok, err := wire.DecodeEnrollRequest(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "invalid", "send JSON")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	known := s.tokens[tok.ID]
	if known == nil || known.used || subtle.ConstantTimeCompare([]byte(known.secret), []byte(tok.Secret)) != 1 {
		writeError(w, http.StatusUnauthorized, "invalid_token", "the enrollment token is unknown, used or expired")
		return
	}
	known.used = true
	a := &Agent{ID: "ag_" + randomHex(8), Name: req.Hostname, Version: req.AgentVersion, PublicKey: ed25519.PublicKey(req.PublicKey)}
	s.agents[a.ID] = a
	s.changedLocked()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(wire.EnrollResponse{AgentID: a.ID, Name: a.Name, Systems: known.systems})
}

func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	refusing := s.refuse
	s.mu.Unlock()
	if refusing {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the server is starting")
		return
	}
	var binding []byte
	if r.TLS != nil {
		var err error
		if binding, err = r.TLS.ExportKeyingMaterial(wire.ChannelBindingLabel, nil, 32); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	// Version 1, as servers before actions: the agent's tests prove it
	// still talks to them; version 2 is tested against the real server.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{wire.SubprotocolV1}})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(wire.MaxFrameSize)
	s.update(func() { s.attempts++ })
	ctx := context.Background()

	nonce := make([]byte, wire.NonceSize)
	rand.Read(nonce)
	if s.write(conn, &wire.Hello{Version: 1, Nonce: nonce, ServerTime: s.now()}) != nil {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, raw, err := conn.Read(hctx)
	cancel()
	if err != nil {
		return
	}
	auth, err := wire.DecodeAuth(raw, s.now())
	if err != nil {
		s.refuseConn(conn, "invalid", err.Error())
		return
	}
	s.mu.Lock()
	a := s.agents[auth.AgentID]
	var pub ed25519.PublicKey
	revoked := false
	if a != nil {
		pub, revoked = a.PublicKey, a.Revoked
	}
	s.mu.Unlock()
	if a == nil || !ed25519.Verify(pub, wire.AuthPayload(nonce, auth.AgentID, binding), auth.Signature) {
		s.refuseConn(conn, wire.CodeUnauthorized, "unknown agent or bad signature")
		return
	}
	if revoked {
		s.refuseConn(conn, wire.CodeRevoked, "this agent was revoked by an administrator")
		return
	}

	// The welcome goes out before anyone else may write to the connection
	// (SetChecks, RunCheck), and with the checks of that moment.
	s.mu.Lock()
	if old := s.conns[a.ID]; old != nil {
		old.CloseNow()
	}
	welcome := &wire.Welcome{AgentID: a.ID, Checks: s.checks, Keepalive: wire.Millis(s.keepalive), Acked: a.LastSeq}
	if s.write(conn, welcome) != nil {
		s.mu.Unlock()
		return
	}
	s.conns[a.ID] = conn
	a.Connects++
	a.Version = auth.AgentVersion
	s.changedLocked()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.conns[a.ID] == conn {
			delete(s.conns, a.ID)
		}
		s.mu.Unlock()
	}()

	var lastOnConn uint64
	for {
		_, raw, err := conn.Read(ctx)
		if err != nil {
			return
		}
		m, err := wire.DecodeFromAgent(raw, s.now())
		if err != nil {
			s.violation("agent %s sent a bad frame: %v", a.ID, err)
			s.refuseConn(conn, "invalid", err.Error())
			return
		}
		var ack *wire.Ack
		s.mu.Lock()
		switch m := m.(type) {
		case *wire.Results:
			for _, r := range m.Results {
				if r.Seq <= lastOnConn {
					s.violationLocked("agent %s sent %d after %d on one connection", a.ID, r.Seq, lastOnConn)
				}
				if r.Seq <= welcome.Acked {
					s.violationLocked("agent %s resent %d, acknowledged before it connected (acked %d)", a.ID, r.Seq, welcome.Acked)
				}
				lastOnConn = r.Seq
				if s.hold {
					continue
				}
				if r.Seq <= a.LastSeq {
					a.Duplicates++
					continue
				}
				if r.Seq != a.LastSeq+1 && !covered(a.Gaps, a.LastSeq+1, r.Seq-1) {
					s.violationLocked("agent %s jumped from %d to %d without a gap", a.ID, a.LastSeq, r.Seq)
				}
				a.Results = append(a.Results, r)
				a.LastSeq = r.Seq
			}
			if !s.hold {
				ack = &wire.Ack{Seq: a.LastSeq}
			}
		case *wire.Keepalive:
			a.Keepalives++
		case *wire.Facts:
			a.Facts = append(a.Facts, m)
		case *wire.Gap:
			a.Gaps = append(a.Gaps, *m)
		}
		s.changedLocked()
		s.mu.Unlock()
		if ack != nil && s.write(conn, ack) != nil {
			return
		}
	}
}

func covered(gaps []wire.Gap, from, to uint64) bool {
	for seq := from; seq <= to; seq++ {
		in := false
		for _, g := range gaps {
			if g.From <= seq && seq <= g.To {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

func (s *Server) refuseConn(conn *websocket.Conn, code, msg string) {
	s.write(conn, &wire.ErrorMessage{Code: code, Message: msg})
	conn.Close(websocket.StatusPolicyViolation, code)
}

func (s *Server) write(conn *websocket.Conn, m wire.Message) error {
	raw, err := wire.Encode(m, s.now())
	if err != nil {
		s.t.Errorf("the test server cannot encode its own %s: %v", m.FrameType(), err)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, raw)
}

func (s *Server) update(f func()) {
	s.mu.Lock()
	f()
	s.changedLocked()
	s.mu.Unlock()
}

func (s *Server) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) violation(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violationLocked(format, args...)
}

func (s *Server) violationLocked(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
	s.changedLocked()
}

// Violations are the protocol rules agents broke: results out of order or
// resent after an ack, sequence jumps without a gap, bad frames.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// SetChecks changes the check definitions of every agent and pushes them
// to those connected.
func (s *Server) SetChecks(defs []wire.CheckDefinition) {
	s.mu.Lock()
	s.checks = defs
	conns := make([]*websocket.Conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		s.write(c, &wire.Checks{Checks: defs})
	}
}

// RunCheck asks a connected agent to run a check now.
func (s *Server) RunCheck(agentID, system, check, request string) error {
	s.mu.Lock()
	c := s.conns[agentID]
	s.mu.Unlock()
	if c == nil {
		return fmt.Errorf("agent %s is not connected", agentID)
	}
	return s.write(c, &wire.Run{Request: request, System: system, Check: check})
}

// Hold makes the server neither store nor acknowledge results (as if it
// lost them in a crash before committing), or store them again.
func (s *Server) Hold(hold bool) { s.update(func() { s.hold = hold }) }

// Refuse makes the server answer every websocket connection with 503, as
// if it were down, or accept them again.
func (s *Server) Refuse(refuse bool) { s.update(func() { s.refuse = refuse }) }

// Drop cuts an agent's connection without a word.
func (s *Server) Drop(agentID string) {
	s.mu.Lock()
	c := s.conns[agentID]
	s.mu.Unlock()
	if c != nil {
		c.CloseNow()
	}
}

// Revoke revokes an agent and drops its connection.
func (s *Server) Revoke(agentID string) {
	s.update(func() {
		if a := s.agents[agentID]; a != nil {
			a.Revoked = true
		}
	})
	s.Drop(agentID)
}

// Agent returns a copy of what the server knows of an agent.
func (s *Server) Agent(id string) Agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[id]
	if a == nil {
		return Agent{}
	}
	c := *a
	c.Results = append([]wire.Result(nil), a.Results...)
	c.Gaps = append([]wire.Gap(nil), a.Gaps...)
	c.Facts = append([]*wire.Facts(nil), a.Facts...)
	return c
}

// EnrollRequests counts enrollment requests that reached the handler.
func (s *Server) EnrollRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enrollRequests
}

// Attempts counts websocket connections accepted, authenticated or not.
func (s *Server) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// Connected reports whether an agent has a connection now.
func (s *Server) Connected(agentID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[agentID] != nil
}

// Wait waits until cond holds, for at most timeout, checking after every
// change; it fails the test with what when it does not.
func (s *Server) Wait(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waited %s for %s", timeout, what)
		}
	}
}
