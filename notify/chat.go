package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// Slack's mrkdwn: *bold*, and &, < and > escaped so that text cannot form
// links or mentions.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func (s *Sender) slack(ctx context.Context, limit time.Duration, to aramaki.Recipient, m aramaki.Message) error {
	text := chatText("*"+m.Subject+"*", m.Text, m.URL)
	return s.incomingWebhook(ctx, limit, "slack", to, slackEscaper.Replace(text))
}

// Mattermost's Markdown: **bold**.
func (s *Sender) mattermost(ctx context.Context, limit time.Duration, to aramaki.Recipient, m aramaki.Message) error {
	return s.incomingWebhook(ctx, limit, "mattermost", to, chatText("**"+m.Subject+"**", m.Text, m.URL))
}

// chatText puts the non-empty lines together.
func chatText(lines ...string) string {
	var kept []string
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "\n")
}

// incomingWebhook posts text to a Slack or Mattermost incoming webhook,
// whose URL is its only credential: it comes from the environment variable
// SecretEnv names, or else from Address.
func (s *Sender) incomingWebhook(ctx context.Context, limit time.Duration, kind string, to aramaki.Recipient, text string) error {
	raw := to.Address
	if to.SecretEnv != "" {
		if raw = s.secret(to.SecretEnv); raw == "" {
			return Permanent(fmt.Errorf("%s webhook: the environment variable %s holding its URL is not set", kind, to.SecretEnv))
		}
	}
	u, err := target(kind, raw)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return Permanent(err)
	}
	a := attempt{where: kind + " " + shown(u, true), limit: limit}
	if len(u.Path) > 1 {
		a.hide(u.Path, u.EscapedPath())
	}
	h := http.Header{"Content-Type": {"application/json"}}
	return s.do(ctx, a, http.MethodPost, u, h, body)
}

// matrix sends an m.text message to a room with the Client-Server API. The
// message id is the transaction id: the homeserver answers a retry of a
// transaction it has seen with the event it made the first time.
func (s *Sender) matrix(ctx context.Context, limit time.Duration, to aramaki.Recipient, m aramaki.Message) error {
	base, err := target("matrix", to.Address)
	if err != nil {
		return err
	}
	if to.Room == "" {
		return Permanent(fmt.Errorf("matrix %s: no room", shown(base, false)))
	}
	a := attempt{where: fmt.Sprintf("matrix %s room %s", shown(base, false), clean(to.Room, 100)), limit: limit}
	if to.SecretEnv == "" {
		return Permanent(fmt.Errorf("%s: no access token: name an environment variable with secret_env", a.where))
	}
	token := s.secret(to.SecretEnv)
	if token == "" {
		return Permanent(fmt.Errorf("%s: no access token: the environment variable %s is empty", a.where, to.SecretEnv))
	}
	a.hide(token)
	u, err := url.Parse(strings.TrimSuffix(shown(base, false), "/") +
		"/_matrix/client/v3/rooms/" + url.PathEscape(to.Room) +
		"/send/m.room.message/" + url.PathEscape(m.ID))
	if err != nil {
		return Permanent(fmt.Errorf("%s: invalid room or message id", a.where))
	}
	body, err := json.Marshal(map[string]string{
		"msgtype": "m.text",
		"body":    chatText(m.Subject, m.Text, m.URL),
	})
	if err != nil {
		return Permanent(err)
	}
	h := http.Header{
		"Content-Type":  {"application/json"},
		"Authorization": {"Bearer " + token},
	}
	return s.do(ctx, a, http.MethodPut, u, h, body)
}
