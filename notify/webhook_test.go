package notify_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/notify"
)

const webhookKey = "s3cr3t-hmac-key-0123456789"

func hookTo(address string) aramaki.Recipient {
	return aramaki.Recipient{Type: aramaki.NotifyWebhook, Name: "ticketing", Address: address, SecretEnv: "ARAMAKI_HOOK_KEY"}
}

func webhookSender(timeout time.Duration) *notify.Sender {
	return notify.New(notify.Options{
		Secret:  secrets(map[string]string{"ARAMAKI_HOOK_KEY": webhookKey}),
		Timeout: timeout,
	})
}

// MustDeliverWebhook sends the alert message to a fresh receiver and
// returns what arrived.
func MustDeliverWebhook(t *testing.T) (aramaki.Message, request) {
	t.Helper()
	r := MustStartReceiver(t, nil)
	m := alertMessage()
	if err := webhookSender(5*time.Second).Send(t.Context(), hookTo(r.URL+"/hooks/aramaki"), m); err != nil {
		t.Fatal(err)
	}
	return m, MustReceiveOne(t, r)
}

func TestAWebhookIsSignedSoTheReceiverCanTrustIt(t *testing.T) {
	m, got := MustDeliverWebhook(t)
	if got.Method != http.MethodPost || got.URI != "/hooks/aramaki" {
		t.Errorf("%s %s", got.Method, got.URI)
	}
	if err := notify.VerifyWebhook([]byte(webhookKey), got.Header, got.Body, time.Now(), time.Minute); err != nil {
		t.Errorf("the signature does not verify: %v", err)
	}
	for name, want := range map[string]string{
		"Content-Type":       "application/json",
		"User-Agent":         "aramaki",
		"X-Aramaki-Delivery": m.ID,
	} {
		if got.Header.Get(name) != want {
			t.Errorf("%s: %q, want %q", name, got.Header.Get(name), want)
		}
	}
	want, _ := json.Marshal(m)
	if !bytes.Equal(got.Body, want) {
		t.Errorf("body\n%s\nwant\n%s", got.Body, want)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(got.Body, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "subject", "text", "url", "at", "alerts"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("the body has no %q", k)
		}
	}
}

func TestAReceiverRefusesTamperedStaleOrForeignDeliveries(t *testing.T) {
	_, got := MustDeliverWebhook(t)
	tampered := bytes.Replace(got.Body, []byte("critical"), []byte("fine"), 1)
	for _, tc := range []struct {
		name string
		key  string
		body []byte
		now  time.Time
	}{
		{"tampered body", webhookKey, tampered, time.Now()},
		{"stale timestamp", webhookKey, got.Body, time.Now().Add(10 * time.Minute)},
		{"timestamp from the future", webhookKey, got.Body, time.Now().Add(-10 * time.Minute)},
		{"another key", "another key", got.Body, time.Now()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := notify.VerifyWebhook([]byte(tc.key), got.Header, tc.body, tc.now, 5*time.Minute); err == nil {
				t.Error("verified")
			}
		})
	}
	t.Run("a signature moved to another timestamp", func(t *testing.T) {
		h := got.Header.Clone()
		h.Set("X-Aramaki-Timestamp", fmt.Sprint(time.Now().Unix()+1))
		if err := notify.VerifyWebhook([]byte(webhookKey), h, got.Body, time.Now(), 5*time.Minute); err == nil {
			t.Error("verified")
		}
	})
	t.Run("no signature", func(t *testing.T) {
		h := got.Header.Clone()
		h.Del("X-Aramaki-Signature")
		if err := notify.VerifyWebhook([]byte(webhookKey), h, got.Body, time.Now(), 5*time.Minute); err == nil {
			t.Error("verified")
		}
	})
}

func TestAnUnsignedWebhookIsNeverSent(t *testing.T) {
	r := MustStartReceiver(t, nil)
	for _, to := range []aramaki.Recipient{
		{Type: aramaki.NotifyWebhook, Address: r.URL},                                    // no secret_env
		{Type: aramaki.NotifyWebhook, Address: r.URL, SecretEnv: "ARAMAKI_UNSET_SECRET"}, // an empty one
	} {
		err := webhookSender(time.Second).Send(t.Context(), to, alertMessage())
		if err == nil || !notify.IsPermanent(err) || !strings.Contains(err.Error(), "no signing key") {
			t.Errorf("secret_env %q: got %v, want a permanent error saying there is no key", to.SecretEnv, err)
		}
	}
	if n := len(r.Requests()); n > 0 {
		t.Errorf("the receiver got %d requests", n)
	}
}

func TestTheReceiversAnswerDecidesWhetherToRetry(t *testing.T) {
	for _, tc := range []struct {
		status    int
		delivered bool
		permanent bool
	}{
		{200, true, false},
		{202, true, false},
		{204, true, false},
		{400, false, true},
		{401, false, true},
		{404, false, true},
		{408, false, false},
		{429, false, false},
		{500, false, false},
		{502, false, false},
		{503, false, false},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			r := MustStartReceiver(t, answerWith(tc.status, ""))
			err := webhookSender(time.Second).Send(t.Context(), hookTo(r.URL+"/hook"), alertMessage())
			if (err == nil) != tc.delivered || notify.IsPermanent(err) != tc.permanent {
				t.Fatalf("got %v (permanent %v), want delivered %v, permanent %v", err, notify.IsPermanent(err), tc.delivered, tc.permanent)
			}
			if err != nil {
				want := fmt.Sprintf("webhook %s/hook: %d %s", r.URL, tc.status, http.StatusText(tc.status))
				if err.Error() != want {
					t.Errorf("error %q, want %q", err, want)
				}
			}
		})
	}
}

func TestTheReceiversAnswerIsQuotedShortAndOnOneLine(t *testing.T) {
	answer := "upstream said:\r\n\x1b[31m" + strings.Repeat("x", 10_000)
	r := MustStartReceiver(t, answerWith(http.StatusBadGateway, answer))
	err := webhookSender(time.Second).Send(t.Context(), hookTo(r.URL), alertMessage())
	if err == nil {
		t.Fatal("sent")
	}
	prefix := fmt.Sprintf("webhook %s: 502 Bad Gateway: upstream said:", r.URL)
	if !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("error %q does not start with %q", err, prefix)
	}
	if len(err.Error()) > len(prefix)+200 || strings.ContainsAny(err.Error(), "\r\n\x1b") {
		t.Errorf("error %q is too long or has control characters", err)
	}
}

func TestAHangingReceiverCannotHoldASendBeyondTheTimeout(t *testing.T) {
	for _, tc := range []struct {
		name      string
		answer    http.HandlerFunc
		delivered bool
	}{
		{"never answers", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, false},
		{"says OK, then stalls", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("o"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := MustStartReceiver(t, tc.answer)
			start := time.Now()
			err := webhookSender(200*time.Millisecond).Send(t.Context(), hookTo(r.URL), alertMessage())
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the send took %v", took)
			}
			if (err == nil) != tc.delivered {
				t.Fatalf("got %v, want delivered %v", err, tc.delivered)
			}
			if err != nil && (notify.IsPermanent(err) || err.Error() != "webhook "+r.URL+": no answer within 200ms") {
				t.Errorf("got %q (permanent %v), want a temporary timeout", err, notify.IsPermanent(err))
			}
		})
	}
}

func TestARedirectIsNotFollowed(t *testing.T) {
	elsewhere := MustStartReceiver(t, nil)
	r := MustStartReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, elsewhere.URL, http.StatusTemporaryRedirect)
	})
	err := webhookSender(time.Second).Send(t.Context(), hookTo(r.URL), alertMessage())
	if err == nil || !notify.IsPermanent(err) || !strings.Contains(err.Error(), "307 Temporary Redirect") {
		t.Fatalf("got %v, want a permanent error about the redirect", err)
	}
	if n := len(elsewhere.Requests()); n > 0 {
		t.Errorf("the redirect was followed")
	}
}

func TestOnlyHTTPAndHTTPSURLsAreUsed(t *testing.T) {
	for _, address := range []string{"file:///etc/passwd", "ftp://example.org/hook", "gopher://example.org", "example.org/hook", "http://"} {
		err := webhookSender(time.Second).Send(t.Context(), hookTo(address), alertMessage())
		if err == nil || !notify.IsPermanent(err) {
			t.Errorf("%s: got %v, want a permanent error", address, err)
		}
	}
}

func TestAReceiverWithAnUntrustedCertificateGetsNothing(t *testing.T) {
	var called bool
	r := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
	r.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	r.StartTLS()
	t.Cleanup(r.Close)
	err := webhookSender(time.Second).Send(t.Context(), hookTo(r.URL), alertMessage())
	if err == nil || !notify.IsPermanent(err) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("got %v, want a permanent error about the certificate", err)
	}
	if called {
		t.Error("the receiver was called")
	}
}

func TestErrorsNeverRevealSecrets(t *testing.T) {
	// The receiver repeats everything it got, credentials included.
	echo := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "%s %s", r.RequestURI, r.Header.Get("Authorization"))
	}
	r := MustStartReceiver(t, echo)
	u := strings.Replace(r.URL, "http://", "http://ops:hunter2@", 1)
	s := notify.New(notify.Options{Secret: secrets(map[string]string{
		"ARAMAKI_HOOK_KEY": webhookKey, "MATRIX_TOKEN": "matrix-token",
	})})
	for _, to := range []aramaki.Recipient{
		hookTo(u + "/hook?token=query-token"),
		{Type: aramaki.NotifySlack, Address: r.URL + "/services/T0/B0/slack-path-token"},
		{Type: aramaki.NotifyMattermost, Address: r.URL + "/hooks/mattermost-path-token"},
		{Type: aramaki.NotifyMatrix, Address: r.URL, Room: "!ops:example.org", SecretEnv: "MATRIX_TOKEN"},
	} {
		err := s.Send(t.Context(), to, alertMessage())
		if err == nil {
			t.Fatalf("%s: sent", to.Type)
		}
		for _, secret := range []string{webhookKey, "hunter2", "query-token", "slack-path-token", "mattermost-path-token", "matrix-token", "b3BzOmh1bnRlcjI="} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error %q reveals %q", to.Type, err, secret)
			}
		}
	}
}

// VerifyWebhook decodes what anyone can send; it must never panic and
// accept only signatures made with the key.
func FuzzVerifyWebhook(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	f.Add("1700000000", "sha256=00", []byte(`{"id":"n-1"}`))
	f.Add("-9223372036854775808", "sha256=", []byte{})
	f.Add("1700000000", "sha256=zz", []byte("x"))
	f.Fuzz(func(t *testing.T, timestamp, signature string, body []byte) {
		h := http.Header{}
		h.Set("X-Aramaki-Timestamp", timestamp)
		h.Set("X-Aramaki-Signature", signature)
		if notify.VerifyWebhook([]byte(webhookKey), h, body, now, 5*time.Minute) == nil {
			t.Errorf("a made-up signature %q verified", signature)
		}
	})
}
