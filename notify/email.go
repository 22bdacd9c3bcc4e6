package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// email sends m to one address through the relay: STARTTLS first, always,
// then AUTH PLAIN if there are credentials, then the message.
func (s *Sender) email(ctx context.Context, limit time.Duration, to aramaki.Recipient, m aramaki.Message) error {
	if s.smtp.Addr == "" {
		return Permanent(errors.New("email: no SMTP server is configured"))
	}
	rcpt, err := mail.ParseAddress(oneLine(to.Address))
	if err != nil {
		return Permanent(fmt.Errorf("email: %q is not an e-mail address", clean(to.Address, 100)))
	}
	from, err := mail.ParseAddress(oneLine(s.smtp.From))
	if err != nil {
		return Permanent(fmt.Errorf("email: the sender %q is not an e-mail address", clean(s.smtp.From, 100)))
	}
	host, _, err := net.SplitHostPort(s.smtp.Addr)
	if err != nil {
		return Permanent(fmt.Errorf("email: the SMTP server %q is not host:port", clean(s.smtp.Addr, 100)))
	}
	a := attempt{where: fmt.Sprintf("email to %s via %s", rcpt.Address, s.smtp.Addr), limit: limit}
	a.hide(s.smtp.Password)
	msg := message(from, rcpt, m)

	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.smtp.Addr)
	if err != nil {
		return a.failed(ctx, err)
	}
	defer conn.Close()
	// The deadline bounds a relay that stops answering; AfterFunc, a send
	// canceled early.
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	defer context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })()

	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return a.smtpFailed(ctx, "greeting", err)
	}
	defer c.Close()
	if err := c.Hello(s.smtp.Hello); err != nil {
		return a.smtpFailed(ctx, "EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		c.Quit()
		return Permanent(fmt.Errorf("%s: the server does not offer STARTTLS, and mail is never sent in clear text", a.where))
	}
	if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: s.smtp.RootCAs, MinVersion: tls.VersionTLS12}); err != nil {
		return a.smtpFailed(ctx, "STARTTLS", err)
	}
	if s.smtp.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.smtp.Username, s.smtp.Password, host)); err != nil {
			return a.smtpFailed(ctx, "AUTH", err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return a.smtpFailed(ctx, "MAIL FROM", err)
	}
	if err := c.Rcpt(rcpt.Address); err != nil {
		return a.smtpFailed(ctx, "RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return a.smtpFailed(ctx, "DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return a.smtpFailed(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return a.smtpFailed(ctx, "DATA", err)
	}
	c.Quit() // the relay has the message; a failing QUIT changes nothing
	return nil
}

// smtpFailed describes a failed SMTP step: 5xx replies are permanent, 4xx
// replies and transport failures temporary.
func (a attempt) smtpFailed(ctx context.Context, step string, err error) error {
	var reply *textproto.Error
	if !errors.As(err, &reply) {
		a.where += ": " + step
		return a.failed(ctx, err)
	}
	e := &sendError{fmt.Sprintf("%s: %s: %d %s", a.where, step, reply.Code, a.safe(reply.Msg, maxAnswerShown)), err}
	if reply.Code >= 500 {
		return Permanent(e)
	}
	return e
}

// message is the RFC 5322 message: plain text, quoted-printable, every
// header on its own lines whatever the subject holds.
func message(from, to *mail.Address, m aramaki.Message) []byte {
	date := m.At
	if date.IsZero() {
		date = time.Now()
	}
	domain := from.Address[strings.LastIndex(from.Address, "@")+1:]
	var b bytes.Buffer
	for _, h := range [][2]string{
		{"From", from.String()},
		{"To", to.String()},
		{"Subject", mime.QEncoding.Encode("utf-8", oneLine(m.Subject))},
		{"Date", date.Format(time.RFC1123Z)},
		{"Message-ID", "<" + messageID(m.ID) + "@" + domain + ">"},
		{"Auto-Submitted", "auto-generated"}, // RFC 3834: no vacation replies
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "quoted-printable"},
	} {
		b.WriteString(fold(h[0], h[1]))
	}
	b.WriteString("\r\n")
	body := m.Text
	if m.URL != "" {
		body = strings.TrimRight(body, "\n") + "\n\n" + m.URL + "\n"
	}
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(body)) // writes to a bytes.Buffer do not fail
	qp.Close()
	return b.Bytes()
}

// messageID is the local part of the Message-ID: the message id when it
// is safe there, else a hash of it, the same over retries either way.
func messageID(id string) string {
	const idChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"
	if len(id) <= 64 && strings.Trim(id, idChars) == "" &&
		!strings.HasPrefix(id, ".") && !strings.HasSuffix(id, ".") && !strings.Contains(id, "..") {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// fold writes a header line, folded at spaces to keep lines short.
func fold(name, value string) string {
	var b strings.Builder
	b.WriteString(name + ":")
	n := len(name) + 1
	for _, word := range strings.Split(value, " ") {
		if n+1+len(word) > 76 && n > len(name)+1 && word != "" {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteString(" " + word)
		n += 1 + len(word)
	}
	b.WriteString("\r\n")
	return b.String()
}
