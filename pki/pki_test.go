package pki_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/aramaki/aramaki/pki"
)

func TestFirstStartMakesACAThatClientsCanTrust(t *testing.T) {
	dir := t.TempDir()
	if err := pki.Ensure(dir, []string{"aramaki.example.com"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode = %v, want 0600", st.Mode().Perm())
	}
	cert, err := pki.LoadServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()

	pool, err := pki.CertPool(filepath.Join(dir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("client trusting ca.crt cannot connect: %v", err)
	}
	resp.Body.Close()

	// A client that does not trust the CA is refused.
	if _, err := http.Get(srv.URL); err == nil {
		t.Fatal("a client without ca.crt connected")
	}
}

func TestRestartKeepsTheCAAndAddsNewHostNames(t *testing.T) {
	dir := t.TempDir()
	if err := pki.Ensure(dir, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := pki.CAFingerprint(dir)
	if err := pki.Ensure(dir, []string{"ops.example.org"}); err != nil {
		t.Fatal(err)
	}
	after, _ := pki.CAFingerprint(dir)
	if before == "" || before != after {
		t.Fatalf("CA changed on restart: %s -> %s", before, after)
	}
	cert, err := pki.LoadServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.Leaf.VerifyHostname("ops.example.org"); err != nil {
		t.Fatalf("renewed certificate does not cover the new name: %v", err)
	}
}

func TestABrokenCAIsNotSilentlyReplaced(t *testing.T) {
	dir := t.TempDir()
	if err := pki.Ensure(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, pki.CAKeyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := pki.Ensure(dir, nil); err == nil {
		t.Fatal("a damaged CA key was accepted or replaced")
	}
}

func TestAServerKeyThatDoesNotMatchItsCertificateIsReissued(t *testing.T) {
	dir := t.TempDir()
	if err := pki.Ensure(dir, nil); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := pki.Ensure(other, nil); err != nil {
		t.Fatal(err)
	}
	// As if the server died between writing the new key and the new certificate.
	key, _ := os.ReadFile(filepath.Join(other, pki.ServerKeyFile))
	os.WriteFile(filepath.Join(dir, pki.ServerKeyFile), key, 0o600)
	if err := pki.Ensure(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.LoadServer(dir); err != nil {
		t.Fatalf("after a torn renewal the server cannot start: %v", err)
	}
}
