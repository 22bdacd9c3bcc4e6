package notify_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// A receiver is a real HTTP server on loopback that records requests and
// answers them as told.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
}

type request struct {
	Method string
	URI    string // as sent, escaping and all
	Header http.Header
	Body   []byte
}

// MustStartReceiver starts a receiver; answer nil means 200 OK.
func MustStartReceiver(t *testing.T, answer http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, request{req.Method, req.RequestURI, req.Header.Clone(), body})
		r.mu.Unlock()
		if answer != nil {
			answer(w, req)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

// Requests returns what reached the receiver.
func (r *receiver) Requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.requests...)
}

// MustReceiveOne returns the only request that reached the receiver.
func MustReceiveOne(t *testing.T, r *receiver) request {
	t.Helper()
	reqs := r.Requests()
	if len(reqs) != 1 {
		t.Fatalf("the receiver got %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

// answerWith answers every request with status and body.
func answerWith(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// secrets stands in for the environment.
func secrets(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}
