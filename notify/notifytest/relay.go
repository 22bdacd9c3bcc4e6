// Package notifytest runs a real SMTP relay on loopback for tests: it
// offers STARTTLS with a certificate of its own and AUTH PLAIN, and records
// what reaches it.
package notifytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// A Relay is a real SMTP server on loopback that records what reaches it.
type Relay struct {
	Addr  string
	Roots *x509.CertPool // trusts the relay's certificate
	CAPEM []byte         // that certificate, for processes that trust it from a file

	rcptReply *smtp.SMTPError

	mu     sync.Mutex
	events []string // "AUTH over TLS", "AUTH in clear text", "MAIL", "RCPT", "DATA"
	mails  []Mail
}

type Mail struct {
	From string
	To   []string
	Data []byte
	TLS  bool
}

// RelayConfig changes the relay's behaviour from a well-configured one.
type RelayConfig struct {
	NoTLS     bool             // does not offer STARTTLS
	RcptReply *smtp.SMTPError  // answers RCPT TO with this
	Cert      *tls.Certificate // instead of a fresh one
}

const (
	RelayUser     = "aramaki"
	RelayPassword = "correct horse battery staple"
)

// MustStartRelay starts a relay offering STARTTLS and AUTH PLAIN. AUTH is
// offered in clear text too, so that the tests see whether the client
// waits for TLS by itself.
func MustStartRelay(t testing.TB, cfg RelayConfig) *Relay {
	t.Helper()
	r := &Relay{rcptReply: cfg.RcptReply}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &relaySession{relay: r, conn: c}, nil
	}))
	s.Domain = "relay.test"
	s.AllowInsecureAuth = true
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.ErrorLog = log.New(io.Discard, "", 0)
	if !cfg.NoTLS {
		cert := cfg.Cert
		if cert == nil {
			var pool *x509.CertPool
			cert, pool = MustCertificate(t)
			r.Roots = pool
		}
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Addr = l.Addr().String()
	if !cfg.NoTLS && cfg.Cert == nil {
		r.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.TLSConfig.Certificates[0].Certificate[0]})
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return r
}

// Events returns what the relay saw, in order.
func (r *Relay) Events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// Mails returns the messages the relay accepted.
func (r *Relay) Mails() []Mail {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Mail(nil), r.mails...)
}

func (r *Relay) record(event string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event)
}

type relaySession struct {
	relay *Relay
	conn  *smtp.Conn
	mail  Mail
}

func (s *relaySession) tls() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

func (s *relaySession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *relaySession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if s.tls() {
			s.relay.record("AUTH over TLS")
		} else {
			s.relay.record("AUTH in clear text")
		}
		if username != RelayUser || password != RelayPassword {
			return smtp.ErrAuthFailed
		}
		return nil
	}), nil
}

func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error {
	s.relay.record("MAIL")
	s.mail = Mail{From: from, TLS: s.tls()}
	return nil
}

func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.relay.record("RCPT")
	if s.relay.rcptReply != nil {
		return s.relay.rcptReply
	}
	s.mail.To = append(s.mail.To, to)
	return nil
}

func (s *relaySession) Data(r io.Reader) error {
	s.relay.record("DATA")
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mail.Data = b
	s.relay.mu.Lock()
	s.relay.mails = append(s.relay.mails, s.mail)
	s.relay.mu.Unlock()
	return nil
}

func (s *relaySession) Reset()        { s.mail = Mail{} }
func (s *relaySession) Logout() error { return nil }

// MustCertificate makes a self-signed ECDSA certificate for 127.0.0.1 and
// a pool that trusts it.
func MustCertificate(t testing.TB) (*tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "aramaki test relay"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
