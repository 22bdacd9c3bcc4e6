package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// The webhook headers; the package doc describes the scheme.
const (
	headerDelivery  = "X-Aramaki-Delivery"
	headerTimestamp = "X-Aramaki-Timestamp"
	headerSignature = "X-Aramaki-Signature"
)

func (s *Sender) webhook(ctx context.Context, limit time.Duration, to aramaki.Recipient, m aramaki.Message) error {
	u, err := target("webhook", to.Address)
	if err != nil {
		return err
	}
	a := attempt{where: "webhook " + shown(u, false), limit: limit}
	if to.SecretEnv == "" {
		return Permanent(fmt.Errorf("%s: no signing key: unsigned webhooks are not sent; name an environment variable with secret_env", a.where))
	}
	key := s.secret(to.SecretEnv)
	if key == "" {
		return Permanent(fmt.Errorf("%s: no signing key: the environment variable %s is empty", a.where, to.SecretEnv))
	}
	a.hide(key)
	body, err := json.Marshal(m)
	if err != nil {
		return Permanent(&sendError{a.where + ": encoding the message: " + err.Error(), err})
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(headerDelivery, m.ID)
	h.Set(headerTimestamp, ts)
	h.Set(headerSignature, "sha256="+hex.EncodeToString(sign([]byte(key), ts, body)))
	return s.do(ctx, a, http.MethodPost, u, h, body)
}

// sign is HMAC-SHA256(key, timestamp + "." + body): the timestamp is signed
// too, so a captured delivery cannot be replayed later under a new one.
func sign(key []byte, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return mac.Sum(nil)
}

// VerifyWebhook checks a webhook delivery as its receiver: the signature in
// header must be that of body and the timestamp under key, and the
// timestamp at most maxAge away from now (5 minutes if maxAge is not
// positive). Receivers should also drop a delivery whose
// X-Aramaki-Delivery id they have seen before.
func VerifyWebhook(key []byte, header http.Header, body []byte, now time.Time, maxAge time.Duration) error {
	if len(key) == 0 {
		return errors.New("webhook: no key to verify the signature with")
	}
	if maxAge <= 0 {
		maxAge = 5 * time.Minute
	}
	ts := header.Get(headerTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook: %s is not a unix time", headerTimestamp)
	}
	if age := now.Sub(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
		return fmt.Errorf("webhook: the timestamp is %v away from now, more than %v", age.Abs().Round(time.Second), maxAge)
	}
	sig, ok := strings.CutPrefix(header.Get(headerSignature), "sha256=")
	if !ok {
		return fmt.Errorf("webhook: no sha256 signature in %s", headerSignature)
	}
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, sign(key, ts, body)) {
		return errors.New("webhook: the signature does not match")
	}
	return nil
}
