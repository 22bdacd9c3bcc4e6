package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aramaki/aramaki/wire"
)

// EnrollPath and ConnectPath are where a server takes enrollments and agent
// websockets.
const (
	EnrollPath  = "/api/v1/agent/enroll"
	ConnectPath = "/api/v1/agent/connect"
)

// EnrollOptions change how Enroll works.
type EnrollOptions struct {
	// Force enrolls again over an existing enrollment: the agent gets a new
	// key and identity, and forgets its old queue and checks.
	Force bool
	// Hostname is the name the agent enrolls with; by default the host's.
	Hostname string
	// Version is the agent's version, reported to the server.
	Version string
}

// ServerError is the server's refusal: of an enrollment (an HTTP error
// response) or of a connection (an error frame).
type ServerError struct {
	HTTPStatus int // 0 for an error frame
	Code       string
	Message    string
}

func (e *ServerError) Error() string {
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("the server refused (%d %s): %s", e.HTTPStatus, e.Code, e.Message)
	}
	return fmt.Sprintf("the server refused (%s): %s", e.Code, e.Message)
}

// Enroll makes dir the home of a newly enrolled agent. token is an
// enrollment token from the server (wire.EnrollmentToken): Enroll makes an
// Ed25519 key pair, keeps the private key in dir/agent.key, and sends the
// public key with the token to the server, trusting only the CA the token
// pins. The token's secret crosses the network only after the server has
// proven it holds a certificate issued by that CA. On success the identity
// is saved in dir/agent.json and returned; Run then needs no token.
//
// A directory enrolled already is refused with ErrAlreadyEnrolled unless
// opts.Force is set.
func Enroll(ctx context.Context, dir, token string, opts EnrollOptions) (Identity, error) {
	token = strings.TrimSpace(token)
	tok, err := wire.ParseEnrollmentToken(token)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	defer unlock()
	old, err := LoadIdentity(dir)
	switch {
	case err == nil && !opts.Force:
		return Identity{}, fmt.Errorf("%w: %s is agent %s (%s) of %s; enrolling again gives it a new identity and forgets its queue — add --force to do that",
			ErrAlreadyEnrolled, dir, old.AgentID, old.Name, old.ServerURL)
	case err != nil && !errors.Is(err, ErrNotEnrolled) && !opts.Force:
		return Identity{}, fmt.Errorf("enroll: %w (add --force to enroll over it)", err)
	}
	host := opts.Hostname
	if host == "" {
		if host, err = os.Hostname(); err != nil || host == "" {
			host = "localhost"
		}
	}

	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: generate key: %w", err)
	}
	// The key is on disk before the server learns of it, so an enrollment
	// never exists whose key is lost. It becomes agent.key on success.
	pending := filepath.Join(dir, KeyFile+".new")
	if err := writeKey(pending, key); err != nil {
		return Identity{}, fmt.Errorf("enroll: save key: %w", err)
	}
	defer os.Remove(pending)

	client, p, err := newClient(tok.URL, tok.CASHA256, nil)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	defer client.CloseIdleConnections()
	body, err := json.Marshal(wire.EnrollRequest{Token: token, PublicKey: pub, Hostname: host, AgentVersion: opts.Version})
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	endpoint := strings.TrimSuffix(tok.URL, "/") + EnrollPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// The URL error names the endpoint, never the body with the secret.
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: read the server's answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return Identity{}, fmt.Errorf("enroll: %w", refusal(resp.StatusCode, raw))
	}
	er, err := wire.DecodeEnrollResponse(raw)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: the server's answer: %w", err)
	}

	id := Identity{AgentID: er.AgentID, Name: er.Name, Systems: er.Systems, ServerURL: strings.TrimSuffix(tok.URL, "/"),
		CASHA256: tok.CASHA256, Enrolled: time.Now().UTC()}
	if id.Name == "" {
		id.Name = host
	}
	if p != nil {
		ca := p.pinned()
		if ca == nil {
			return Identity{}, errors.New("enroll: no pinned certificate seen") // cannot happen: the handshake checked it
		}
		id.CACert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	}
	if err := os.Rename(pending, filepath.Join(dir, KeyFile)); err != nil {
		return Identity{}, fmt.Errorf("enroll: save key: %w", err)
	}
	if opts.Force {
		// A new identity starts a new history: the old queue's numbers and
		// results belong to the old agent.
		os.RemoveAll(filepath.Join(dir, QueueDir))
		os.Remove(filepath.Join(dir, ChecksFile))
	}
	if err := saveIdentity(dir, id); err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	return id, nil
}

// refusal reads the server's JSON error ({"error":{"code","message"}}).
func refusal(status int, body []byte) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
		msg := strings.TrimSpace(strings.ToValidUTF8(string(body), "?"))
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
		return &ServerError{HTTPStatus: status, Code: "http", Message: msg}
	}
	return &ServerError{HTTPStatus: status, Code: e.Error.Code, Message: e.Error.Message}
}
