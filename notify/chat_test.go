package notify_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/notify"
)

// MustDecode decodes a JSON body into a map of strings.
func MustDecode(t *testing.T, body []byte) map[string]string {
	t.Helper()
	var v map[string]string
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return v
}

func TestSlackGetsTheSubjectInBoldAndTheTextEscaped(t *testing.T) {
	r := MustStartReceiver(t, answerWith(http.StatusOK, "ok"))
	m := alertMessage()
	m.Text = "load <high> & rising"
	to := aramaki.Recipient{Type: aramaki.NotifySlack, Address: r.URL + "/services/T000/B000/XXXX"}
	if err := notify.New(notify.Options{}).Send(t.Context(), to, m); err != nil {
		t.Fatal(err)
	}
	got := MustReceiveOne(t, r)
	if got.Method != http.MethodPost || got.URI != "/services/T000/B000/XXXX" || got.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s %s, Content-Type %q", got.Method, got.URI, got.Header.Get("Content-Type"))
	}
	want := map[string]string{"text": "*Störung: storage-01 is critical*\nload &lt;high&gt; &amp; rising\n" + m.URL}
	if payload := MustDecode(t, got.Body); !reflect.DeepEqual(payload, want) {
		t.Errorf("payload %q, want %q", payload, want)
	}
}

func TestMattermostGetsTheSubjectInBoldMarkdown(t *testing.T) {
	r := MustStartReceiver(t, answerWith(http.StatusOK, "ok"))
	m := alertMessage()
	to := aramaki.Recipient{Type: aramaki.NotifyMattermost, Address: r.URL + "/hooks/xxx-generatedkey-xxx"}
	if err := notify.New(notify.Options{}).Send(t.Context(), to, m); err != nil {
		t.Fatal(err)
	}
	got := MustReceiveOne(t, r)
	if got.Method != http.MethodPost || got.URI != "/hooks/xxx-generatedkey-xxx" {
		t.Errorf("%s %s", got.Method, got.URI)
	}
	want := map[string]string{"text": "**" + m.Subject + "**\n" + m.Text + "\n" + m.URL}
	if payload := MustDecode(t, got.Body); !reflect.DeepEqual(payload, want) {
		t.Errorf("payload %q, want %q", payload, want)
	}
}

func TestAFailedChatMessageDoesNotShowTheWebhooksSecretPath(t *testing.T) {
	r := MustStartReceiver(t, answerWith(http.StatusNotFound, "no_service"))
	to := aramaki.Recipient{Type: aramaki.NotifySlack, Address: r.URL + "/services/T000/B000/XXXX"}
	err := notify.New(notify.Options{}).Send(t.Context(), to, alertMessage())
	if want := "slack " + r.URL + "/…: 404 Not Found: no_service"; err == nil || err.Error() != want || !notify.IsPermanent(err) {
		t.Errorf("got %v, want the permanent %q", err, want)
	}
}

func matrixRoom(homeserver string) aramaki.Recipient {
	return aramaki.Recipient{
		Type: aramaki.NotifyMatrix, Name: "ops-room", Address: homeserver,
		Room: "!OGEhHVWSdvArJzumhm:example.org", SecretEnv: "ARAMAKI_MATRIX_TOKEN",
	}
}

func matrixSender() *notify.Sender {
	return notify.New(notify.Options{
		Secret:  secrets(map[string]string{"ARAMAKI_MATRIX_TOKEN": "syt_bWF0cml4_token"}),
		Timeout: 5 * time.Second,
	})
}

func TestMatrixGetsATextMessageInTheRoomOnceHoweverOftenItIsSent(t *testing.T) {
	r := MustStartReceiver(t, answerWith(http.StatusOK, `{"event_id":"$YUwRidLecu:example.org"}`))
	m := alertMessage()
	m.ID = "n/4711" // escaped like the room
	for range 2 {   // a retry
		if err := matrixSender().Send(t.Context(), matrixRoom(r.URL+"/"), m); err != nil {
			t.Fatal(err)
		}
	}
	reqs := r.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	wantURI := "/_matrix/client/v3/rooms/" + url.PathEscape("!OGEhHVWSdvArJzumhm:example.org") +
		"/send/m.room.message/" + url.PathEscape("n/4711")
	if wantURI != "/_matrix/client/v3/rooms/%21OGEhHVWSdvArJzumhm:example.org/send/m.room.message/n%2F4711" {
		t.Fatalf("url.PathEscape changed: %s", wantURI)
	}
	for _, got := range reqs {
		if got.Method != http.MethodPut || got.URI != wantURI {
			t.Errorf("%s %s, want PUT %s", got.Method, got.URI, wantURI)
		}
		if auth := got.Header.Get("Authorization"); auth != "Bearer syt_bWF0cml4_token" {
			t.Errorf("Authorization: %q", auth)
		}
		want := map[string]string{"msgtype": "m.text", "body": m.Subject + "\n" + m.Text + "\n" + m.URL}
		if payload := MustDecode(t, got.Body); !reflect.DeepEqual(payload, want) {
			t.Errorf("payload %q, want %q", payload, want)
		}
	}
}

func TestAMatrixHomeserverUnderAPathIsReachedThere(t *testing.T) {
	r := MustStartReceiver(t, answerWith(http.StatusOK, "{}"))
	if err := matrixSender().Send(t.Context(), matrixRoom(r.URL+"/matrix"), alertMessage()); err != nil {
		t.Fatal(err)
	}
	if got := MustReceiveOne(t, r); !strings.HasPrefix(got.URI, "/matrix/_matrix/client/v3/rooms/") {
		t.Errorf("PUT %s", got.URI)
	}
}

func TestMatrixWithoutATokenOrRoomIsNotSent(t *testing.T) {
	r := MustStartReceiver(t, nil)
	noToken := matrixRoom(r.URL)
	noToken.SecretEnv = "ARAMAKI_UNSET"
	noRoom := matrixRoom(r.URL)
	noRoom.Room = ""
	for _, to := range []aramaki.Recipient{noToken, noRoom} {
		if err := matrixSender().Send(t.Context(), to, alertMessage()); err == nil || !notify.IsPermanent(err) {
			t.Errorf("got %v, want a permanent error", err)
		}
	}
	if n := len(r.Requests()); n > 0 {
		t.Errorf("the homeserver got %d requests", n)
	}
}

func TestAMatrixTokenTheHomeserverRefusesIsPermanent(t *testing.T) {
	r := MustStartReceiver(t, answerWith(http.StatusUnauthorized, `{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed."}`))
	err := matrixSender().Send(t.Context(), matrixRoom(r.URL), alertMessage())
	want := "matrix " + r.URL + " room !OGEhHVWSdvArJzumhm:example.org: 401 Unauthorized: " +
		`{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed."}`
	if err == nil || err.Error() != want || !notify.IsPermanent(err) {
		t.Errorf("got %v, want the permanent %q", err, want)
	}
}

func TestWhatCannotBeSentIsAPermanentError(t *testing.T) {
	noID := alertMessage()
	noID.ID = ""
	for name, send := range map[string]func() error{
		"unknown type": func() error {
			return notify.New(notify.Options{}).Send(t.Context(), aramaki.Recipient{Type: "pigeon", Address: "roof"}, alertMessage())
		},
		"message without id": func() error {
			return webhookSender(time.Second).Send(t.Context(), hookTo("http://127.0.0.1:1/"), noID)
		},
	} {
		if err := send(); err == nil || !notify.IsPermanent(err) {
			t.Errorf("%s: got %v, want a permanent error", name, err)
		}
	}
}

func TestAnUnreachableReceiverIsWorthRetrying(t *testing.T) {
	r := MustStartReceiver(t, nil)
	r.Close() // nobody listens there now
	err := webhookSender(time.Second).Send(t.Context(), hookTo(r.URL), alertMessage())
	if err == nil || notify.IsPermanent(err) || !strings.HasPrefix(err.Error(), "webhook "+r.URL+": ") {
		t.Errorf("got %v, want a temporary error", err)
	}
}

func TestAChatWebhookURLCanComeFromTheEnvironmentAsTheSecretItIs(t *testing.T) {
	r := MustStartReceiver(t, answerWith(http.StatusOK, "ok"))
	to := aramaki.Recipient{Type: aramaki.NotifyMattermost, SecretEnv: "OPS_CHAT_URL"}
	s := notify.New(notify.Options{Secret: secrets(map[string]string{"OPS_CHAT_URL": r.URL + "/hooks/from-env"})})
	if err := s.Send(t.Context(), to, alertMessage()); err != nil {
		t.Fatal(err)
	}
	if got := MustReceiveOne(t, r); got.URI != "/hooks/from-env" {
		t.Errorf("posted to %s, want the URL from the environment", got.URI)
	}
	err := notify.New(notify.Options{Secret: secrets(nil)}).Send(t.Context(), to, alertMessage())
	if err == nil || !notify.IsPermanent(err) || !strings.Contains(err.Error(), "OPS_CHAT_URL") {
		t.Errorf("without the variable: %v, want a permanent error naming it", err)
	}
}
