// Package notify delivers alert notifications: e-mail over SMTP, signed
// webhooks, and Slack, Mattermost and Matrix chat messages.
//
// A [Sender] sends one [aramaki.Message] to one [aramaki.Recipient] and says
// whether a failure is worth retrying: [IsPermanent] is true when the same
// send would fail again (a 4xx answer, a missing secret, a refused
// redirect, a server without STARTTLS), false for timeouts, connection
// errors and 5xx answers. Error messages are short, safe to show, and never
// contain secrets: URLs lose their userinfo and query, and the URLs of
// Slack and Mattermost, whose path is the secret, lose their path too.
//
// # E-mail
//
// Mail goes to one SMTP relay ([SMTPOptions]) and is only ever sent
// encrypted: a relay that does not offer STARTTLS is refused before
// anything, credentials included, is sent. The message is text/plain,
// quoted-printable, with a Message-ID derived from the message id, so mail
// clients can recognise a retried notification.
//
// # Webhooks
//
// A webhook is a POST of the message as JSON:
//
//	{"id": "…", "subject": "…", "text": "…", "alerts": [{…}], "url": "…", "at": "2006-01-02T15:04:05Z"}
//
// with the headers
//
//	Content-Type: application/json
//	User-Agent: aramaki
//	X-Aramaki-Delivery: <message id, the same over retries>
//	X-Aramaki-Timestamp: <unix seconds at sending>
//	X-Aramaki-Signature: sha256=<hex HMAC-SHA256(key, timestamp + "." + body)>
//
// The key is the value of the environment variable the recipient's
// SecretEnv names; webhooks without a key are not sent. A receiver
// recomputes the signature over the raw body, compares it in constant
// time, refuses timestamps older than a few minutes (against replays) and
// drops deliveries whose id it has seen (against duplicates).
// [VerifyWebhook] does the first three for Go receivers.
//
// # Chat
//
// Slack and Mattermost get {"text": …} on their incoming webhook URL. The
// URL is the webhook's only credential: it is best kept in the environment
// variable SecretEnv names rather than in the config repository.
// Matrix gets an m.text message through the Client-Server API, with the
// message id as transaction id so that the homeserver drops retries it has
// already accepted.
package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/aramaki/aramaki"
)

// DefaultTimeout bounds a send when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Options configure a Sender. The zero value sends everything but e-mail.
type Options struct {
	SMTP SMTPOptions
	// Secret returns the value of the environment variable a recipient's
	// SecretEnv names: a webhook's HMAC key or a Matrix access token.
	// Default: os.Getenv.
	Secret func(name string) string
	// HTTPClient sends webhooks and chat messages. Default: a client
	// verifying TLS with the system roots. Redirects are never followed,
	// whatever the client's CheckRedirect says.
	HTTPClient *http.Client
	// Timeout bounds each send, however slow the receiver. Default:
	// DefaultTimeout.
	Timeout time.Duration
}

// SMTPOptions say how to reach the mail relay.
type SMTPOptions struct {
	Addr string // host:port; empty: e-mail is not configured
	From string // the sender, "Aramaki <aramaki@example.org>"
	// Username and Password, when Username is set, authenticate with AUTH
	// PLAIN, only ever over TLS.
	Username, Password string
	RootCAs            *x509.CertPool // to verify the relay; nil: the system roots
	Hello              string         // the name sent with EHLO; default "localhost"
}

// Sender delivers notifications. It is safe for concurrent use.
type Sender struct {
	smtp    SMTPOptions
	secret  func(string) string
	client  *http.Client
	timeout time.Duration
}

// New returns a Sender with o's defaults filled in.
func New(o Options) *Sender {
	s := &Sender{smtp: o.SMTP, secret: o.Secret, timeout: o.Timeout}
	if s.secret == nil {
		s.secret = os.Getenv
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.smtp.Hello == "" {
		s.smtp.Hello = "localhost"
	}
	var c http.Client
	if o.HTTPClient != nil {
		c = *o.HTTPClient
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		c = http.Client{Transport: t, Timeout: DefaultTimeout}
	}
	// A redirect could carry a signed alert somewhere nobody configured;
	// the answer is reported instead.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.client = &c
	return s
}

// Send delivers m to one recipient, within the Sender's timeout.
func (s *Sender) Send(ctx context.Context, to aramaki.Recipient, m aramaki.Message) error {
	if m.ID == "" {
		return Permanent(fmt.Errorf("%s %s: the message has no id", to.Type, to.Name))
	}
	limit := s.timeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < limit {
		limit = time.Until(d).Round(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	switch to.Type {
	case aramaki.NotifyEmail:
		return s.email(ctx, limit, to, m)
	case aramaki.NotifyWebhook:
		return s.webhook(ctx, limit, to, m)
	case aramaki.NotifySlack:
		return s.slack(ctx, limit, to, m)
	case aramaki.NotifyMattermost:
		return s.mattermost(ctx, limit, to, m)
	case aramaki.NotifyMatrix:
		return s.matrix(ctx, limit, to, m)
	}
	return Permanent(fmt.Errorf("notifier %q: unknown type %q", to.Name, to.Type))
}

// Permanent marks err as one that retrying will not cure. Permanent(nil)
// is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// sendError is a failure with a message chosen to be safe to show, still
// wrapping its cause for errors.Is and errors.As.
type sendError struct {
	msg string
	err error
}

func (e *sendError) Error() string { return e.msg }
func (e *sendError) Unwrap() error { return e.err }

// attempt is one send, for error messages.
type attempt struct {
	where   string        // "webhook https://example.org/hook", safe to show
	limit   time.Duration // the time the send had
	secrets []string      // never repeated, even when the receiver echoes them
}

// hide adds secrets to leave out of messages.
func (a *attempt) hide(secrets ...string) {
	for _, s := range secrets {
		if s != "" {
			a.secrets = append(a.secrets, s)
		}
	}
	// Longest first, so that no part of a longer one is left.
	slices.SortFunc(a.secrets, func(x, y string) int { return len(y) - len(x) })
}

// failed describes a transport failure: timeouts, refused connections and
// resets are temporary, certificates that do not verify are permanent.
func (a attempt) failed(ctx context.Context, err error) error {
	var ne interface{ Timeout() bool }
	var cert *tls.CertificateVerificationError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return &sendError{fmt.Sprintf("%s: no answer within %v", a.where, a.limit), err}
	case errors.Is(ctx.Err(), context.Canceled):
		return &sendError{a.where + ": canceled", err}
	case errors.As(err, &cert):
		return Permanent(&sendError{a.where + ": " + a.safe(cert.Err.Error(), maxAnswerShown), err})
	}
	return &sendError{a.where + ": " + a.safe(err.Error(), maxAnswerShown), err}
}

// safe makes text from elsewhere fit for an error message: clean and
// without secrets.
func (a attempt) safe(s string, n int) string {
	for _, secret := range a.secrets {
		s = strings.ReplaceAll(s, secret, "[secret]")
	}
	return clean(s, n)
}

// clean returns s as valid UTF-8 without control characters, cut to at
// most n bytes.
func clean(s string, n int) string {
	if len(s) > n {
		s = s[:n] // a rune cut in half goes with the invalid bytes below
	}
	return strings.TrimSpace(oneLine(strings.ToValidUTF8(s, "")))
}

// oneLine replaces control characters, CR and LF above all, with spaces,
// so that a value cannot start a header or a log line of its own.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}
