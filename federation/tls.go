package federation

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// pin is the trust in another server while joining it: exactly one CA
// certificate, the one whose SHA-256 the invitation names. Nothing in the
// system's trust store counts: an invitation from a server behind a
// certificate of a public CA still pins that CA.
type pin struct {
	host        string
	fingerprint []byte
}

// verify accepts the connection only if a certificate of the presented
// chain has the pinned fingerprint and the leaf, for the server's host
// name, verifies against that certificate as the only root.
func (p pin) verify(cs tls.ConnectionState) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return pinErrorf("it presented no certificate")
	}
	var root *x509.Certificate
	for _, c := range certs {
		sum := sha256.Sum256(c.Raw)
		if subtle.ConstantTimeCompare(sum[:], p.fingerprint) == 1 {
			root = c
		}
	}
	if root == nil {
		return pinErrorf("none of the server's certificates is the CA the invitation pins (SHA-256 %x…): "+
			"this is not the server that made the invitation, or it does not present its CA certificate", p.fingerprint[:8])
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
		return pinErrorf("its certificate does not verify against the CA the invitation pins: %v", err)
	}
	return nil
}

// pinError is a server failing the pin: it is not who the invitation says.
type pinError struct{ msg string }

func (e *pinError) Error() string { return e.msg }

func pinErrorf(format string, args ...any) error { return &pinError{msg: fmt.Sprintf(format, args...)} }

// pinnedClient makes the HTTP client for one join: TLS pinned to the CA
// with fingerprint for an https URL, plain for an http one (development,
// and then no pin). It follows no redirects: the secret goes to the URL of
// the invitation or nowhere.
func pinnedClient(serverURL, fingerprint string) (*http.Client, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%q is not a server URL", serverURL)
	}
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  20 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		DisableKeepAlives:      true,
	}
	switch {
	case u.Scheme == "https":
		fp, err := hex.DecodeString(fingerprint)
		if err != nil || len(fp) != sha256.Size {
			return nil, fmt.Errorf("no valid CA fingerprint pinned for %s", serverURL)
		}
		p := pin{host: u.Hostname(), fingerprint: fp}
		// InsecureSkipVerify turns off verification against the system's
		// roots, which must not count; VerifyConnection does it against
		// the pin alone.
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, VerifyConnection: p.verify, MinVersion: tls.VersionTLS12, ServerName: p.host}
	case fingerprint != "":
		return nil, fmt.Errorf("a CA is pinned for the plain-HTTP server %s", serverURL)
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}
