package notify_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/notify"
	"github.com/aramaki/aramaki/notify/notifytest"
	"github.com/emersion/go-smtp"
)

// alertMessage is a notification as the service makes them.
func alertMessage() aramaki.Message {
	at := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	return aramaki.Message{
		ID:      "n-4711",
		Subject: "Störung: storage-01 is critical",
		Text:    "storage-01 disk: CRITICAL - /srv 98% used\nand 3 systems depend on it.",
		URL:     "https://aramaki.example.org/alerts/a-1",
		At:      at,
		Alerts: []aramaki.Alert{{
			ID: "a-1", System: "storage-01", Check: "disk", Status: aramaki.StatusCritical,
			State: aramaki.AlertOpen, Output: "CRITICAL - /srv 98% used", Group: "g-1",
			Opened: at, Updated: at,
		}},
	}
}

func mailTo(address string) aramaki.Recipient {
	return aramaki.Recipient{Type: aramaki.NotifyEmail, Name: "alice", Address: address}
}

// MustMailer returns a Sender using the relay, logging in to it.
func MustMailer(t *testing.T, r *notifytest.Relay) *notify.Sender {
	t.Helper()
	if r.Roots == nil {
		t.Fatal("the relay has no certificate to trust")
	}
	return notify.New(notify.Options{
		SMTP: notify.SMTPOptions{
			Addr: r.Addr, From: "Aramaki <aramaki@example.org>",
			Username: notifytest.RelayUser, Password: notifytest.RelayPassword, RootCAs: r.Roots,
		},
		Timeout: 5 * time.Second,
	})
}

// MustReadMail parses the only mail the relay accepted.
func MustReadMail(t *testing.T, r *notifytest.Relay) (notifytest.Mail, *mail.Message) {
	t.Helper()
	mails := r.Mails()
	if len(mails) != 1 {
		t.Fatalf("the relay accepted %d mails, want 1", len(mails))
	}
	msg, err := mail.ReadMessage(bytes.NewReader(mails[0].Data))
	if err != nil {
		t.Fatalf("the mail does not parse: %v\n%s", err, mails[0].Data)
	}
	return mails[0], msg
}

func TestAnAlertArrivesByMailWithProperHeaders(t *testing.T) {
	r := notifytest.MustStartRelay(t, notifytest.RelayConfig{})
	m := alertMessage()
	if err := MustMailer(t, r).Send(t.Context(), mailTo("Alice Ops <alice@example.org>"), m); err != nil {
		t.Fatal(err)
	}
	got, msg := MustReadMail(t, r)
	if got.From != "aramaki@example.org" || !slices.Equal(got.To, []string{"alice@example.org"}) {
		t.Errorf("envelope from %q to %q", got.From, got.To)
	}
	if !got.TLS {
		t.Error("the mail was sent in clear text")
	}
	h := msg.Header
	if from, err := h.AddressList("From"); err != nil || from[0].Address != "aramaki@example.org" || from[0].Name != "Aramaki" {
		t.Errorf("From: %q", h.Get("From"))
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "alice@example.org" {
		t.Errorf("To: %q", h.Get("To"))
	}
	if raw := h.Get("Subject"); !strings.HasPrefix(raw, "=?utf-8?q?") {
		t.Errorf("Subject %q is not RFC 2047 encoded", raw)
	}
	if subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); err != nil || subject != m.Subject {
		t.Errorf("Subject decodes to %q (%v), want %q", subject, err, m.Subject)
	}
	if date, err := h.Date(); err != nil || !date.Equal(m.At) {
		t.Errorf("Date: %q", h.Get("Date"))
	}
	if id := h.Get("Message-ID"); id != "<n-4711@example.org>" {
		t.Errorf("Message-ID: %q", id)
	}
	for name, want := range map[string]string{
		"MIME-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
		"Auto-Submitted":            "auto-generated",
	} {
		if h.Get(name) != want {
			t.Errorf("%s: %q, want %q", name, h.Get(name), want)
		}
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(m.Text, "\n", "\r\n") + "\r\n\r\n" + m.URL + "\r\n"
	if string(body) != want {
		t.Errorf("body:\n%q\nwant\n%q", body, want)
	}
}

func TestTheRelaySeesCredentialsOnlyOverTLS(t *testing.T) {
	r := notifytest.MustStartRelay(t, notifytest.RelayConfig{}) // offers AUTH before STARTTLS too
	if err := MustMailer(t, r).Send(t.Context(), mailTo("alice@example.org"), alertMessage()); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Events(), []string{"AUTH over TLS", "MAIL", "RCPT", "DATA"}; !slices.Equal(got, want) {
		t.Errorf("the relay saw %q, want %q", got, want)
	}
}

func TestMailIsNeverSentInClearText(t *testing.T) {
	r := notifytest.MustStartRelay(t, notifytest.RelayConfig{NoTLS: true}) // but AUTH, in clear text
	_, r.Roots = notifytest.MustCertificate(t)                             // trusted, were it offered
	err := MustMailer(t, r).Send(t.Context(), mailTo("alice@example.org"), alertMessage())
	if err == nil || !notify.IsPermanent(err) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("got %v, want a permanent error about STARTTLS", err)
	}
	if events := r.Events(); len(events) > 0 {
		t.Errorf("the relay saw %q, want nothing", events)
	}
}

func TestARelayWithAnUntrustedCertificateGetsNothing(t *testing.T) {
	r := notifytest.MustStartRelay(t, notifytest.RelayConfig{})
	_, r.Roots = notifytest.MustCertificate(t) // trusts another certificate
	err := MustMailer(t, r).Send(t.Context(), mailTo("alice@example.org"), alertMessage())
	if err == nil || !notify.IsPermanent(err) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("got %v, want a permanent error about the certificate", err)
	}
	if events := r.Events(); len(events) > 0 {
		t.Errorf("the relay saw %q, want nothing", events)
	}
}

func TestTheRelaysReplyDecidesWhetherToRetry(t *testing.T) {
	for _, tc := range []struct {
		reply     *smtp.SMTPError
		permanent bool
		says      string
	}{
		{&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}, true,
			"RCPT TO: 550 5.1.1 No such user"},
		{&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, try again later"}, false,
			"RCPT TO: 451 4.7.1 Greylisted, try again later"},
	} {
		t.Run(tc.reply.Message, func(t *testing.T) {
			r := notifytest.MustStartRelay(t, notifytest.RelayConfig{RcptReply: tc.reply})
			err := MustMailer(t, r).Send(t.Context(), mailTo("nobody@example.org"), alertMessage())
			if err == nil {
				t.Fatal("sent")
			}
			if notify.IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, !tc.permanent, tc.permanent)
			}
			want := "email to nobody@example.org via " + r.Addr + ": " + tc.says
			if err.Error() != want {
				t.Errorf("error %q\nwant  %q", err, want)
			}
			if len(r.Mails()) > 0 {
				t.Error("the relay accepted a mail")
			}
		})
	}
}

func TestWrongCredentialsArePermanentAndNotRepeated(t *testing.T) {
	r := notifytest.MustStartRelay(t, notifytest.RelayConfig{})
	s := notify.New(notify.Options{SMTP: notify.SMTPOptions{
		Addr: r.Addr, From: "aramaki@example.org", Username: notifytest.RelayUser, Password: "hunter2", RootCAs: r.Roots,
	}})
	err := s.Send(t.Context(), mailTo("alice@example.org"), alertMessage())
	if err == nil || !notify.IsPermanent(err) || !strings.Contains(err.Error(), "AUTH: 535") {
		t.Fatalf("got %v, want a permanent AUTH failure", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error %q contains the password", err)
	}
}

func TestALineBreakInTheSubjectDoesNotAddARecipient(t *testing.T) {
	r := notifytest.MustStartRelay(t, notifytest.RelayConfig{})
	m := alertMessage()
	m.Subject = "x\r\nBcc: evil@example.com"
	if err := MustMailer(t, r).Send(t.Context(), mailTo("alice@example.org"), m); err != nil {
		t.Fatal(err)
	}
	got, msg := MustReadMail(t, r)
	if _, ok := msg.Header["Bcc"]; ok || bytes.Contains(got.Data, []byte("\nBcc:")) {
		t.Errorf("the mail has a Bcc header:\n%s", got.Data)
	}
	if !slices.Equal(got.To, []string{"alice@example.org"}) {
		t.Errorf("sent to %q", got.To)
	}
	if subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); subject != "x  Bcc: evil@example.com" {
		t.Errorf("Subject: %q", subject)
	}
}

func TestALineBreakInTheAddressIsRefused(t *testing.T) {
	r := notifytest.MustStartRelay(t, notifytest.RelayConfig{})
	err := MustMailer(t, r).Send(t.Context(), mailTo("alice@example.org\r\nBcc: evil@example.com"), alertMessage())
	if err == nil || !notify.IsPermanent(err) {
		t.Fatalf("got %v, want a permanent error", err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("the error %q has a line break", err)
	}
	if events := r.Events(); len(events) > 0 {
		t.Errorf("the relay saw %q, want nothing", events)
	}
}

func TestMailWithoutARelayIsAPermanentError(t *testing.T) {
	err := notify.New(notify.Options{}).Send(t.Context(), mailTo("alice@example.org"), alertMessage())
	if err == nil || !notify.IsPermanent(err) || !strings.Contains(err.Error(), "no SMTP server") {
		t.Fatalf("got %v, want a permanent error saying SMTP is not configured", err)
	}
}

func TestARelayThatNeverGreetsCannotHoldASend(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // silent until the test ends
		}
	}()
	_, roots := notifytest.MustCertificate(t)
	s := notify.New(notify.Options{
		SMTP:    notify.SMTPOptions{Addr: l.Addr().String(), From: "aramaki@example.org", RootCAs: roots},
		Timeout: 200 * time.Millisecond,
	})
	start := time.Now()
	err = s.Send(context.Background(), mailTo("alice@example.org"), alertMessage())
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the send took %v", took)
	}
	if err == nil || notify.IsPermanent(err) || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Fatalf("got %v, want a temporary timeout", err)
	}
}
