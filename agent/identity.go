package agent

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aramaki/aramaki/wire"
)

// Files in the agent's data directory.
const (
	IdentityFile = "agent.json"  // who the agent is and which server it trusts
	KeyFile      = "agent.key"   // its Ed25519 private key, PKCS#8 PEM, mode 0600
	ChecksFile   = "checks.json" // the check definitions last received, to run while the server is away
	QueueDir     = "queue"       // results not yet acknowledged (package queue)
	LockFile     = "lock"        // held while an agent uses the directory
)

// ErrNotEnrolled is returned when the data directory holds no enrollment.
var ErrNotEnrolled = errors.New("this agent is not enrolled: run aramaki-agent --enroll TOKEN with a token from the server")

// ErrAlreadyEnrolled is returned by Enroll when the directory holds an
// enrollment already and Force is not set.
var ErrAlreadyEnrolled = errors.New("already enrolled")

// Identity is who the agent is and which server it belongs to, as saved in
// agent.json after enrollment.
type Identity struct {
	AgentID   string   `json:"agent_id"`
	Name      string   `json:"name"`
	Systems   []string `json:"systems,omitempty"`
	ServerURL string   `json:"server_url"`
	// CASHA256 is the pinned fingerprint (hex SHA-256 of the DER) of the
	// server's CA certificate; empty for a plain-HTTP development server.
	CASHA256 string `json:"ca_sha256,omitempty"`
	// CACert is that certificate as the server presented it, PEM.
	CACert   string    `json:"ca_cert,omitempty"`
	Enrolled time.Time `json:"enrolled"`
}

// LoadIdentity reads the identity in dir.
func LoadIdentity(dir string) (Identity, error) {
	var id Identity
	raw, err := os.ReadFile(filepath.Join(dir, IdentityFile))
	if errors.Is(err, os.ErrNotExist) {
		return id, ErrNotEnrolled
	}
	if err != nil {
		return id, fmt.Errorf("read identity: %w", err)
	}
	if err := json.Unmarshal(raw, &id); err != nil {
		return id, fmt.Errorf("read identity: %s is damaged: %w", filepath.Join(dir, IdentityFile), err)
	}
	if !wire.ValidAgentID(id.AgentID) || id.ServerURL == "" {
		return id, fmt.Errorf("read identity: %s names no agent or server", filepath.Join(dir, IdentityFile))
	}
	return id, nil
}

// caCert parses the saved CA certificate, nil if there is none.
func (id Identity) caCert() (*x509.Certificate, error) {
	if id.CACert == "" {
		return nil, nil
	}
	block, _ := pem.Decode([]byte(id.CACert))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("the CA certificate in %s is damaged", IdentityFile)
	}
	return x509.ParseCertificate(block.Bytes)
}

func saveIdentity(dir string, id Identity) error {
	raw, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, IdentityFile), append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	return nil
}

func writeKey(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func loadKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("read agent key: %s holds no PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read agent key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("read agent key: %s is not an Ed25519 key", path)
	}
	return key, nil
}

// loadChecks reads the cached check definitions; none when there is no cache.
func loadChecks(dir string) ([]wire.CheckDefinition, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ChecksFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cached checks: %w", err)
	}
	var c wire.Checks
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("read cached checks: %w", err)
	}
	// The cache passes the same validation as a checks frame.
	if err := c.Validate(time.Now()); err != nil {
		return nil, fmt.Errorf("read cached checks: %w", err)
	}
	return c.Checks, nil
}

func saveChecks(dir string, defs []wire.CheckDefinition) error {
	raw, err := json.Marshal(wire.Checks{Checks: defs})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, ChecksFile), raw, 0o600); err != nil {
		return fmt.Errorf("save checks: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data: after a crash the file holds
// either the old or the new content, never a mix.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockDir makes sure only one agent uses dir at a time: two would number
// results twice and tear each other's queue.
func lockDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another aramaki-agent is using %s", dir)
		}
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	return func() { f.Close() }, nil
}
