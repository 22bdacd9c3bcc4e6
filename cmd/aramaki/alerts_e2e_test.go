package main_test

import (
	"bytes"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki/notify"
	"github.com/aramaki/aramaki/notify/notifytest"
)

// hook is a webhook receiver that checks signatures and, while failing is
// set, answers 500.
type hook struct {
	t       *testing.T
	key     []byte
	mu      sync.Mutex
	failing bool
	got     []delivery
}

type delivery struct {
	id     string
	status int
	body   []byte
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := notify.VerifyWebhook(h.key, r.Header, body, time.Now(), 5*time.Minute); err != nil {
		h.t.Errorf("a webhook that does not verify: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	status := http.StatusOK
	if h.failing {
		status = http.StatusInternalServerError
	}
	h.got = append(h.got, delivery{r.Header.Get("X-Aramaki-Delivery"), status, body})
	w.WriteHeader(status)
}

func (h *hook) deliveries() []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]delivery(nil), h.got...)
}

func (h *hook) setFailing(f bool) {
	h.mu.Lock()
	h.failing = f
	h.mu.Unlock()
}

// MustAlertingRepo is a config repository with a check that is always
// critical, routed to an on-call person by e-mail and to a pager webhook.
func MustAlertingRepo(t *testing.T, hookURL string) string {
	t.Helper()
	repo := MustConfigRepo(t, map[string]string{"fleet.yaml": `id: fleet
title: Fleet
contacts:
  - {name: Oncall, email: oncall@example.com}
routing:
  - {contact: Oncall}
  - {contact: Oncall, via: pager}
checks:
  - {name: disk, command: "/usr/lib/nagios/plugins/check_dummy 2 'disk full'", interval: 1s}
`})
	notifiers := "notifiers:\n  - {name: pager, type: webhook, url: \"" + hookURL + "\", secret_env: ARAMAKI_NOTIFY_E2E_HOOK_KEY}\n"
	if err := os.WriteFile(filepath.Join(repo, "notifiers.yaml"), []byte(notifiers), 0o644); err != nil {
		t.Fatal(err)
	}
	mustGit(t, repo, "add", "-A")
	mustGit(t, repo, "commit", "-q", "-m", "Page the on-call")
	return repo
}

func TestAnAlertReachesOnCallByMailAndAFailingWebhookIsRetriedAcrossAKill9(t *testing.T) {
	// Not parallel: the webhook key is in the server's environment.
	const plugin = "/usr/lib/nagios/plugins/check_dummy"
	if _, err := os.Stat(plugin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing; CI must test a real plugin (apt-get install monitoring-plugins-basic)", plugin)
		}
		t.Skipf("%s is not installed (apt-get install monitoring-plugins-basic)", plugin)
	}
	key := "e2e webhook key"
	t.Setenv("ARAMAKI_NOTIFY_E2E_HOOK_KEY", key)
	relay := notifytest.MustStartRelay(t, notifytest.RelayConfig{})
	ca := filepath.Join(t.TempDir(), "relay-ca.pem")
	if err := os.WriteFile(ca, relay.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	h := &hook{t: t, key: []byte(key), failing: true}
	receiver := httptest.NewServer(h)
	defer receiver.Close()

	srv := MustStartServer(t, MustAlertingRepo(t, receiver.URL+"/hook"),
		"--smtp", relay.Addr, "--smtp-from", "aramaki@example.com", "--smtp-ca", ca, "--group-wait", "1s")
	MustEnrollAgent(t, srv, "fleet")

	// The check fails: the on-call gets one mail over STARTTLS.
	Eventually(t, 30*time.Second, "the alert mail", func() bool { return len(relay.Mails()) > 0 })
	mails := relay.Mails()
	msg, err := mail.ReadMessage(bytes.NewReader(mails[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if !mails[0].TLS || len(mails[0].To) != 1 || mails[0].To[0] != "oncall@example.com" ||
		!strings.Contains(msg.Header.Get("Subject"), "CRITICAL fleet/disk") || !strings.Contains(string(body), "disk full") {
		t.Errorf("the alert mail: TLS %v to %v, subject %q, body:\n%s", mails[0].TLS, mails[0].To, msg.Header.Get("Subject"), body)
	}

	// The pager answers 500; the server is killed after that attempt.
	Eventually(t, 30*time.Second, "the first webhook attempt", func() bool { return len(h.deliveries()) > 0 })
	srv.Kill9()
	first := h.deliveries()[0]
	if first.status != http.StatusInternalServerError || first.id == "" {
		t.Fatalf("first webhook attempt: %+v", first)
	}
	h.setFailing(false)
	srv.MustRestart()

	// The notification was in the outbox: it is retried after the restart,
	// with the same delivery id, and goes through.
	Eventually(t, 60*time.Second, "the retried webhook", func() bool {
		d := h.deliveries()
		return d[len(d)-1].status == http.StatusOK
	})
	for _, d := range h.deliveries() {
		if d.id != first.id {
			t.Errorf("a webhook delivery %s besides the retried %s: the alert was notified twice", d.id, first.id)
		}
	}
	if !strings.Contains(string(h.deliveries()[len(h.deliveries())-1].body), `"check":"disk"`) {
		t.Errorf("the webhook body: %s", h.deliveries()[len(h.deliveries())-1].body)
	}
	if n := len(relay.Mails()); n != 1 {
		t.Errorf("the on-call got %d mails, want 1 (across the restart)", n)
	}
}
