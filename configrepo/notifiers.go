package configrepo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/aramaki/aramaki"
	"gopkg.in/yaml.v3"
)

// notifiersFile is the file at the root of the repository that declares
// the notifiers routes send through. It is optional.
const notifiersFile = "notifiers.yaml"

var (
	notifiersShape = shape{notifiersFile, notifiersFile, []string{"notifiers"}, "{notifiers: [{name: …, type: …}]}"}
	notifierShape  = shape{"notifier", "a notifier", []string{"name", "type", "url", "room", "to", "secret_env"}, "{name: …, type: webhook, url: https://…}"}

	envName = regexp.MustCompile(`^ARAMAKI_NOTIFY_[A-Z0-9_]+$`)
)

// notifierKeys says which keys each type of notifier takes, and which of
// them it needs. The incoming webhook URL of Slack and Mattermost is their
// only credential: it is written in url, or kept in the environment
// variable secret_env names, which is checked on its own.
var notifierKeys = map[aramaki.NotifierType]struct{ takes, needs []string }{
	aramaki.NotifyEmail:      {[]string{"to"}, []string{"to"}},
	aramaki.NotifyWebhook:    {[]string{"url", "secret_env"}, []string{"url", "secret_env"}},
	aramaki.NotifySlack:      {[]string{"url", "secret_env"}, nil},
	aramaki.NotifyMattermost: {[]string{"url", "secret_env"}, nil},
	aramaki.NotifyMatrix:     {[]string{"url", "room", "secret_env"}, []string{"url", "room", "secret_env"}},
}

// What a key is for, in the message when a notifier lacks it.
var notifierNeeds = map[string]string{
	"to":         "to, the addresses to send to",
	"url":        "url, where to send",
	"room":       "room, the id of the room to post in",
	"secret_env": "secret_env, the environment variable holding its access token",
}

// parseNotifiers reads notifiers.yaml: one document with a list of
// notifiers. Their names count for the routes' via even when a notifier has
// problems, so that one mistake is reported once.
func (p *parser) parseNotifiers(data []byte) {
	f := &fileParser{p: p, name: notifiersFile}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	read := false
	for {
		var doc yaml.Node
		err := decodeNode(dec, &doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			line, msg := syntaxError(err, data)
			p.add(notifiersFile, line, "invalid YAML: %s", msg)
			p.notifiersIncomplete = true
			return
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue
		}
		root := doc.Content[0]
		if read {
			f.add(root, "%s holds one document: put every notifier in the notifiers list of the first", notifiersFile)
			continue
		}
		read = true
		f.object(root, notifiersShape, func(k, v *yaml.Node) { f.notifiers(v) })
	}
}

func (f *fileParser) notifiers(v *yaml.Node) {
	first := map[string]int{}
	f.list(v, "notifiers", func(item *yaml.Node) {
		var n aramaki.Notifier
		// nodes holds the keys given, bad those whose value was refused
		// already: they are not checked further, nor reported missing.
		nodes := map[string]*yaml.Node{}
		bad := map[string]bool{}
		if !f.object(item, notifierShape, func(k, v *yaml.Node) {
			var ok bool
			switch k.Value {
			case "name":
				n.Name, ok = f.text(v, "name")
			case "type":
				var t string
				t, ok = f.text(v, "type")
				n.Type = aramaki.NotifierType(t)
			case "url":
				n.URL, ok = f.text(v, "url")
			case "room":
				n.Room, ok = f.room(v)
			case "to":
				ok = true
				f.list(v, "to", func(item *yaml.Node) {
					if addr, ok := f.text(item, "an address"); ok {
						if _, err := mail.ParseAddress(addr); err != nil {
							f.add(item, "%q is not an e-mail address", clip(addr))
						}
						n.To = append(n.To, addr)
					}
				})
			case "secret_env":
				n.SecretEnv, ok = f.text(v, "secret_env")
			}
			// As a key without a value, an empty list counts as not given.
			if !isNull(v) && !(v.Kind == yaml.SequenceNode && len(v.Content) == 0) {
				nodes[k.Value] = v
				bad[k.Value] = !ok
			}
		}) {
			return
		}

		switch {
		case bad["name"]:
		case strings.TrimSpace(n.Name) == "":
			f.add(item, "a notifier needs a name")
		case aramaki.ValidateSystemID(n.Name) != nil:
			f.add(nodes["name"], "invalid notifier name %q: use 1-63 lower-case letters, digits, '.', '-' or '_', starting with a letter or digit", clip(n.Name))
		case n.Name == viaEmail:
			f.add(nodes["name"], "a notifier cannot be named email: via: email sends to the contact's own address")
		case first[n.Name] != 0:
			f.add(nodes["name"], "notifier %s is declared twice (first at line %d)", n.Name, first[n.Name])
		default:
			first[n.Name] = item.Line
		}
		if n.Name != "" {
			f.p.notifierNames[n.Name] = true
		}

		keys, known := notifierKeys[n.Type]
		switch {
		case bad["type"]:
			return
		case nodes["type"] == nil:
			f.add(item, "a notifier needs a type: email, webhook, slack, mattermost or matrix")
			return
		case !known:
			f.add(nodes["type"], "unknown notifier type %q (use email, webhook, slack, mattermost or matrix)", clip(string(n.Type)))
			return
		}
		for _, key := range notifierShape.keys[2:] {
			switch {
			case nodes[key] != nil && !slices.Contains(keys.takes, key):
				f.add(nodes[key], "%s", notUsed(key))
			case nodes[key] == nil && slices.Contains(keys.needs, key):
				if n.Type == aramaki.NotifyWebhook && key == "secret_env" {
					f.add(item, "a webhook notifier needs secret_env, the environment variable holding the key its requests are signed with: unsigned webhooks are refused")
				} else {
					f.add(item, "%s %s notifier needs %s", article(n.Type), n.Type, notifierNeeds[key])
				}
			}
		}
		if n.Type == aramaki.NotifySlack || n.Type == aramaki.NotifyMattermost {
			switch {
			case nodes["url"] == nil && nodes["secret_env"] == nil:
				f.add(item, "a %s notifier needs url, its incoming webhook, or better secret_env, the environment variable holding that URL: the URL is the webhook's password", n.Type)
			case nodes["url"] != nil && nodes["secret_env"] != nil:
				f.add(nodes["secret_env"], "a %s notifier takes its URL from url or from the environment variable secret_env names, not both", n.Type)
			}
		}
		if v := nodes["url"]; v != nil && !bad["url"] && slices.Contains(keys.takes, "url") {
			if msg := checkNotifierURL(n.URL); msg != "" {
				f.add(v, "%s", msg)
			}
		}
		if v := nodes["room"]; v != nil && !bad["room"] && slices.Contains(keys.takes, "room") {
			if msg := checkRoom(n.Room); msg != "" {
				f.add(v, "%s", msg)
			}
		}
		if v := nodes["secret_env"]; v != nil && !bad["secret_env"] && slices.Contains(keys.takes, "secret_env") && !envName.MatchString(n.SecretEnv) {
			// Not quoted: whoever got this wrong may have written the
			// secret itself, and problems end up on the timeline.
			f.add(v, "secret_env must name an environment variable of the server starting with ARAMAKI_NOTIFY_ (then upper-case letters, digits and _, like ARAMAKI_NOTIFY_OPS_CHAT_URL), not hold the secret itself: only those variables are handed to notifiers")
		}
		f.p.notifiers = append(f.p.notifiers, n)
	})
}

// room reads a Matrix room id. Unquoted, "!abc:example.org" is a YAML tag
// with an empty value, hence the hint.
func (f *fileParser) room(v *yaml.Node) (string, bool) {
	if v.Kind == yaml.ScalarNode && strings.HasPrefix(v.Tag, "!") && !strings.HasPrefix(v.Tag, "!!") {
		f.add(v, "quote the room id (room: \"%s\"): unquoted, YAML reads the ! as the start of a tag", clip(v.Tag))
		return "", false
	}
	return f.text(v, "room")
}

// checkRoom returns what is wrong with a Matrix room id, or "".
func checkRoom(room string) string {
	switch {
	case strings.HasPrefix(room, "#"):
		return fmt.Sprintf("room %q is an alias: use the room id, like \"!AbCdEfGh:example.org\", shown in the room's settings", clip(room))
	case !strings.HasPrefix(room, "!") || !strings.Contains(room, ":"):
		return fmt.Sprintf("room %q is not a Matrix room id like \"!AbCdEfGh:example.org\"", clip(room))
	}
	return ""
}

// checkNotifierURL returns what is wrong with a notifier's URL, or "".
// Messages never quote the URL: chat webhook URLs hold their token.
func checkNotifierURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Hostname() == "" || u.Scheme != "https" && u.Scheme != "http":
		return "url must be an absolute https:// URL"
	case u.User != nil:
		return "url must not hold credentials (user:password@): put secrets in secret_env, an environment variable of the server"
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return "url must use https (secure by default): plain http is allowed only to localhost or a loopback address"
	}
	return ""
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func notUsed(key string) string {
	switch key {
	case "url":
		return "an email notifier has no url: it sends through the server's SMTP settings to the addresses in to"
	case "room":
		return "room is for matrix notifiers only"
	case "to":
		return "to is for email notifiers only"
	}
	return "an email notifier has no secret_env: it sends through the server's SMTP settings"
}

func article(t aramaki.NotifierType) string {
	if t == aramaki.NotifyEmail {
		return "an"
	}
	return "a"
}
