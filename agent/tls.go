package agent

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// pin is the agent's trust in its server: exactly one CA certificate, the
// one whose SHA-256 fingerprint the enrollment token named. Nothing in the
// system's trust store counts.
type pin struct {
	host        string
	fingerprint []byte
	known       *x509.Certificate // the CA saved at enrollment, if any

	mu   sync.Mutex
	seen *x509.Certificate // the pinned certificate of the last handshake
}

// tlsConfig verifies the server in VerifyConnection, and only there:
// InsecureSkipVerify turns off the default verification against the
// system roots, which must not be trusted.
func (p *pin) tlsConfig() *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection:   p.verify,
		MinVersion:         tls.VersionTLS12,
		ServerName:         p.host,
	}
}

// verify accepts the connection only if a certificate of the presented
// chain (or, for a server that presents only its leaf, the CA saved at
// enrollment) has the pinned fingerprint, and the leaf certificate, for the
// server's host name, verifies against that certificate as the only root.
func (p *pin) verify(cs tls.ConnectionState) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return errors.New("the server presented no certificate")
	}
	var root *x509.Certificate
	for _, c := range certs {
		if p.matches(c) {
			root = c
		}
	}
	if root == nil && p.known != nil && p.matches(p.known) {
		root = p.known
	}
	if root == nil {
		return fmt.Errorf("the server's certificates include none with the pinned fingerprint SHA-256 %x…: "+
			"this is not the server the enrollment token was made for (or it does not present its CA certificate)", p.fingerprint[:8])
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: intermediates, DNSName: p.host,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("the server's certificate does not verify against the pinned CA: %w", err)
	}
	p.mu.Lock()
	p.seen = root
	p.mu.Unlock()
	return nil
}

func (p *pin) matches(c *x509.Certificate) bool {
	sum := sha256.Sum256(c.Raw)
	return subtle.ConstantTimeCompare(sum[:], p.fingerprint) == 1
}

func (p *pin) pinned() *x509.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen
}

// newClient makes the HTTP client for a server: pinned TLS for https, plain
// for an http development server (fingerprint empty). It speaks HTTP/1.1
// only, as the websocket upgrade needs.
func newClient(serverURL, fingerprint string, known *x509.Certificate) (*http.Client, *pin, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, nil, fmt.Errorf("invalid server URL %q", serverURL)
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       30 * time.Second,
		MaxIdleConns:          1,
	}
	var p *pin
	switch {
	case u.Scheme == "https":
		fp, err := hex.DecodeString(fingerprint)
		if err != nil || len(fp) != sha256.Size {
			return nil, nil, fmt.Errorf("no valid CA fingerprint pinned for %s", serverURL)
		}
		p = &pin{host: u.Hostname(), fingerprint: fp, known: known}
		tr.TLSClientConfig = p.tlsConfig()
	case fingerprint != "":
		return nil, nil, fmt.Errorf("a CA is pinned for the plain-HTTP server %s", serverURL)
	}
	return &http.Client{Transport: tr}, p, nil
}
