package wire

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
)

// EnrollmentTokenPrefix starts every enrollment token.
const EnrollmentTokenPrefix = "arke1."

// EnrollmentToken is what an operator hands to a new agent: where the
// server is, the fingerprint of the CA it must present (so the agent trusts
// nothing else), and a single-use secret.
type EnrollmentToken struct {
	URL      string `json:"u"`
	CASHA256 string `json:"f"` // hex SHA-256 of the CA certificate's DER; empty only for plain-HTTP development servers
	ID       string `json:"i"`
	Secret   string `json:"s"`
}

// String encodes the token for copy and paste.
func (t EnrollmentToken) String() string {
	raw, _ := json.Marshal(t)
	return EnrollmentTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// ParseEnrollmentToken decodes and checks a token.
func ParseEnrollmentToken(s string) (EnrollmentToken, error) {
	var t EnrollmentToken
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, EnrollmentTokenPrefix)
	if !ok || len(s) > 2048 {
		return t, errorf("not an enrollment token (they start with %s)", EnrollmentTokenPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return t, errorf("enrollment token is damaged: %s", "not base64url")
	}
	if err := decodeStrict(raw, &t); err != nil {
		return t, errorf("enrollment token is damaged: %s", err.(*Error).Msg)
	}
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return t, errorf("enrollment token names no valid server URL")
	}
	if u.Scheme == "https" {
		if fp, err := hex.DecodeString(t.CASHA256); err != nil || len(fp) != 32 {
			return t, errorf("enrollment token for an https server must pin a SHA-256 CA fingerprint")
		}
	} else if t.CASHA256 != "" {
		return t, errorf("enrollment token pins a CA for a plain-HTTP server")
	}
	if len(t.ID) != 16 || len(t.Secret) < 32 || len(t.Secret) > 100 {
		return t, errorf("enrollment token has no valid secret")
	}
	if _, err := hex.DecodeString(t.ID); err != nil {
		return t, errorf("enrollment token has no valid id")
	}
	return t, nil
}

// Host names and versions end up on pages and in terminals: plain
// characters only.
var (
	hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)
	versionPattern  = regexp.MustCompile(`^[A-Za-z0-9.+_~-]{0,100}$`)
)

// EnrollRequest is what a new agent posts to /api/v1/agent/enroll.
type EnrollRequest struct {
	Token        string `json:"token"` // the whole enrollment token string
	PublicKey    []byte `json:"public_key"`
	Hostname     string `json:"hostname"`
	AgentVersion string `json:"agent_version"`
}

// DecodeEnrollRequest decodes and validates an enrollment request body.
func DecodeEnrollRequest(raw []byte) (*EnrollRequest, EnrollmentToken, error) {
	var r EnrollRequest
	if len(raw) > 16<<10 {
		return nil, EnrollmentToken{}, errorf("enrollment request exceeds 16 KiB")
	}
	if err := decodeStrict(raw, &r); err != nil {
		return nil, EnrollmentToken{}, err
	}
	tok, err := ParseEnrollmentToken(r.Token)
	if err != nil {
		return nil, tok, err
	}
	if len(r.PublicKey) != PublicKeySize {
		return nil, tok, errorf("public_key must be a %d-byte Ed25519 key", PublicKeySize)
	}
	if !hostnamePattern.MatchString(r.Hostname) {
		return nil, tok, errorf("hostname %s is not a host name (letters, digits, '.', '-', '_', at most 253)", clip(r.Hostname))
	}
	if !versionPattern.MatchString(r.AgentVersion) {
		return nil, tok, errorf("agent_version %s is not a version (letters, digits and .+-_~, at most 100)", clip(r.AgentVersion))
	}
	return &r, tok, nil
}

// EnrollResponse tells the new agent who it is now.
type EnrollResponse struct {
	AgentID string   `json:"agent_id"`
	Name    string   `json:"name"`
	Systems []string `json:"systems"`
}

// DecodeEnrollResponse decodes and validates the server's answer.
func DecodeEnrollResponse(raw []byte) (*EnrollResponse, error) {
	var r EnrollResponse
	if err := decodeStrict(raw, &r); err != nil {
		return nil, err
	}
	if !ValidAgentID(r.AgentID) {
		return nil, errorf("enroll response: invalid agent id")
	}
	for _, s := range r.Systems {
		if !ValidName(s) {
			return nil, errorf("enroll response: invalid system id")
		}
	}
	return &r, nil
}
