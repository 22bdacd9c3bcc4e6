// Package federation is the way between servers: the network adapter
// that presents this server to another that invited it, over HTTPS that
// trusts only the CA the invitation pins. The federation websocket (the
// signed, durable link between peers) will live here too.
package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/wire"
)

// JoinPath is where a server takes join requests (wire.JoinRequest).
const JoinPath = "/federation/v1/join"

// DefaultJoinTimeout bounds one join, from dialling to the inviter's answer.
const DefaultJoinTimeout = 30 * time.Second

// DefaultServerName is what a server calls itself to its peers when it was
// given no name.
const DefaultServerName = "aramaki"

// maxRefusal bounds the error body of an inviter's refusal.
const maxRefusal = 16 << 10

// Joiner joins servers that invited this one: it is the service's
// PeerJoiner over the network.
type Joiner struct {
	// Timeout bounds one join; DefaultJoinTimeout when zero.
	Timeout time.Duration
	// Now is the clock the invitation's expiry is checked by; time.Now
	// when nil.
	Now func() time.Time
}

var _ service.PeerJoiner = Joiner{}

// Join presents this server (self) to the server whose invitation token it
// is given, and returns that server as a peer, with the name it gives
// itself. It sends the invitation's secret only to a server that proves,
// in the TLS handshake, a certificate of the CA the invitation pins
// (plain HTTP only when the invitation says so, for development), and
// tells it which of its keys the token pins, so that a server refuses a
// token altered on the way before it uses the invitation. It accepts the
// answer only from the server the invitation names, showing the key the
// invitation pins and signing the answer, for this join, with its current
// key.
func (j Joiner) Join(ctx context.Context, token string, self service.JoinSelf) (aramaki.Peer, string, error) {
	inv, err := wire.ParsePeerInvitation(token)
	if err != nil {
		return aramaki.Peer{}, "", wireError(aramaki.EINVALID, err)
	}
	now := time.Now
	if j.Now != nil {
		now = j.Now
	}
	if !now().Before(inv.Expires) {
		return aramaki.Peer{}, "", aramaki.Errorf(aramaki.EINVALID, "the invitation expired at %s: ask the inviting server's operator for a new one",
			inv.Expires.Format(time.RFC3339))
	}
	if inv.Server == self.Server {
		return aramaki.Peer{}, "", aramaki.Errorf(aramaki.EINVALID, "that invitation is this server's own")
	}
	if len(self.Key.Private) != ed25519.PrivateKeySize {
		return aramaki.Peer{}, "", errors.New("join: this server has no private key to prove itself with")
	}
	if self.Check != nil {
		// Nothing is sent yet: a refusal here costs neither side anything.
		if err := self.Check(inv.Server, inv.Name); err != nil {
			return aramaki.Peer{}, "", err
		}
	}
	selfKey := self.Key.Private.Public().(ed25519.PublicKey)
	name := self.Name
	if !wire.ValidPeerName(name) {
		name = DefaultServerName
	}
	req := wire.JoinRequest{
		Invitation: inv.ID,
		Secret:     inv.Secret,
		InviterKey: inv.Key,
		Server:     self.Server,
		Name:       name,
		URL:        self.URL,
		CASHA256:   self.CASHA256,
		PublicKey:  selfKey,
		Proof:      ed25519.Sign(self.Key.Private, wire.JoinProofBytes(inv.ID, inv.Server, inv.Key, self.Server)),
	}
	if err := req.Validate(); err != nil {
		// This server's own settings are wrong: no use asking the other.
		return aramaki.Peer{}, "", aramaki.Errorf(aramaki.EUNAVAILABLE, "this server cannot present itself: %s", wireMessage(err))
	}
	body, err := json.Marshal(req)
	if err != nil {
		return aramaki.Peer{}, "", fmt.Errorf("join: %w", err)
	}

	timeout := j.Timeout
	if timeout == 0 {
		timeout = DefaultJoinTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := pinnedClient(inv.URL, inv.CASHA256)
	if err != nil {
		return aramaki.Peer{}, "", aramaki.Errorf(aramaki.EINVALID, "the invitation: %v", err)
	}
	defer client.CloseIdleConnections()
	endpoint := strings.TrimSuffix(inv.URL, "/") + JoinPath
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return aramaki.Peer{}, "", aramaki.Errorf(aramaki.EINVALID, "the invitation's URL %s: %v", inv.URL, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	resp, err := client.Do(hr)
	if err != nil {
		// The error names the endpoint, never the body with the secret.
		var pe *pinError
		if errors.As(err, &pe) {
			return aramaki.Peer{}, "", aramaki.Errorf(aramaki.EFORBIDDEN, "the server at %s is not the one that made the invitation: %s", inv.URL, pe.msg)
		}
		return aramaki.Peer{}, "", aramaki.Errorf(aramaki.EUNAVAILABLE, "cannot reach the inviting server at %s: %s", inv.URL, reachError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxRefusal))
		return aramaki.Peer{}, "", refusal(resp.StatusCode, raw)
	}
	// The server there has taken this one in: from here on, a refusal
	// leaves it a peer that does not list it, and says so.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, wire.MaxJoinSize+1))
	if err != nil {
		return aramaki.Peer{}, "", answerRefused(aramaki.EUNAVAILABLE, inv, "read the inviting server's answer: %s", reachError(err))
	}
	jr, err := wire.DecodeJoinResponse(raw)
	if err != nil {
		return aramaki.Peer{}, "", answerRefused(aramaki.EUNAVAILABLE, inv, "the inviting server's answer is not understood: %s", wireMessage(err))
	}
	if jr.Server != inv.Server {
		return aramaki.Peer{}, "", answerRefused(aramaki.EFORBIDDEN, inv, "the inviting server answered as %s, but the invitation is from %s: not the server that invited this one",
			jr.Server, inv.Server)
	}
	if err := jr.VerifyInviter(inv); err != nil {
		return aramaki.Peer{}, "", answerRefused(aramaki.EFORBIDDEN, inv, "the inviting server's key does not match the invitation: it pins key %s…, and %s shows none with that fingerprint",
			inv.Key[:16], inv.Server)
	}
	if err := jr.VerifyProof(inv.ID, self.Server, selfKey); err != nil {
		return aramaki.Peer{}, "", answerRefused(aramaki.EFORBIDDEN, inv, "the inviting server's answer does not prove it holds its key: %s", wireMessage(err))
	}
	added := now().UTC()
	peer := aramaki.Peer{Server: jr.Server, URL: jr.URL, CASHA256: jr.CASHA256}
	for _, k := range jr.PublicKeys {
		pub := ed25519.PublicKey(k)
		peer.Keys = append(peer.Keys, aramaki.PeerKey{ID: aramaki.KeyID(pub), Public: pub, Added: added})
	}
	return peer, jr.Name, nil
}

// answerRefused is the error of an answer this server refuses after the
// inviting server took it in: what is wrong, and what its operator should
// undo there.
func answerRefused(code string, inv wire.PeerInvitation, format string, args ...any) error {
	return aramaki.Errorf(code, "%s. The server there has taken this one in as its peer %s already: its operator should undo that with aramaki peer remove %s",
		fmt.Sprintf(format, args...), inv.Name, inv.Name)
}

// refusal turns the inviting server's error answer into an error for the
// operator here. Its message comes from another server: it is clipped and
// made valid text, and its code is translated, so that a refused
// invitation does not read as this server refusing the operator's login.
func refusal(status int, raw []byte) error {
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := http.StatusText(status)
	if json.Unmarshal(raw, &eb) == nil && eb.Error.Message != "" {
		msg = clip(strings.ToValidUTF8(eb.Error.Message, "?"), 300)
	}
	code := aramaki.EUNAVAILABLE
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		code = aramaki.EFORBIDDEN
	case status == http.StatusConflict:
		code = aramaki.ECONFLICT
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		code = aramaki.EINVALID
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		msg = "it takes no joins at " + JoinPath + " (is it an Aramaki server, and recent enough?)"
	}
	return aramaki.Errorf(code, "the inviting server refused (%d): %s", status, msg)
}

// wireError makes a wire error an application error with its message.
func wireError(code string, err error) error {
	return aramaki.Errorf(code, "%s", wireMessage(err))
}

func wireMessage(err error) string {
	var werr *wire.Error
	if errors.As(err, &werr) {
		return werr.Msg
	}
	return err.Error()
}

// reachError says why a server could not be reached, without the Go
// wrapping that repeats the method and URL.
func reachError(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time"
	}
	return err.Error()
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
