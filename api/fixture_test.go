package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/federation"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/servicetest"
	"github.com/aramaki/aramaki/wire"
)

// The fixture: a hosting company with two customer projects that share
// storage and compute.
var fixtureFiles = map[string]string{
	"systems/webshop.yaml": `id: webshop
title: Webshop
category: customer project
subsystems: [webshop-app, webshop-db]
owners:
  - {name: Sam Shop, email: sam@example.com}
contacts:
  - {name: Shop oncall, email: oncall@example.com}
routing:
  - {contact: Shop oncall}
  - {contact: Sam Shop, after: 30m}
rules:
  - text: Flushing the Varnish cache is always fine.
checks:
  - {name: http, command: "/usr/lib/nagios/plugins/check_http -H shop.example.com", interval: 1m, timeout: 10s}
workflows:
  - name: flush-web
    description: Flush Varnish on the web hosts, one at a time
    rule: Tell the shop's owner afterwards.
    inputs:
      - {name: pattern, default: "."}
    steps:
      - {name: flush, system: webshop-app, action: flush-varnish, concurrency: 1, params: {pattern: "${inputs.pattern}"}, outputs: {bans: 'bans: (\d+)'}}
  - name: restart-and-flush
    steps:
      - {name: restart, system: webshop-db, action: restart-db}
      - {name: flush, system: webshop-app, action: flush-varnish, stop_after: 50%}
`,
	"systems/webshop-app.yaml": `id: webshop-app
title: Webshop app
subsystems: [compute]
actions:
  - {name: flush-varnish, description: Flush the Varnish cache, rule: Flushing the Varnish cache is always fine.}
`,
	"systems/webshop-db.yaml": `id: webshop-db
title: Webshop database
subsystems: [storage]
checks:
  - {name: postgres, command: "/usr/lib/nagios/plugins/check_pgsql", interval: 1m}
actions:
  - {name: restart-db, approval: true, rule: Tell the shop's owner before restarting.}
`,
	"systems/blog.yaml": `id: blog
title: Blog
category: customer project
subsystems: [blog-db]
public: true
checks:
  - {name: http, command: "/usr/lib/nagios/plugins/check_http -H blog.example.org", interval: 1m}
actions:
  - {name: flush-cache}
`,
	"systems/blog-db.yaml": `id: blog-db
title: Blog database
subsystems: [storage]
checks:
  - {name: mysql, command: "/usr/lib/nagios/plugins/check_mysql", interval: 1m}
`,
	"systems/infrastructure.yaml": `id: infrastructure
title: Hosting infrastructure
category: infrastructure
subsystems: [storage, compute]
actions:
  - {name: rebalance-storage, role: admin}
workflows:
  - {name: rebalance, role: admin, steps: [{name: rebalance, action: rebalance-storage}]}
`,
	"systems/storage.yaml": "id: storage\ntitle: Storage\ncategory: infrastructure\n",
	"systems/compute.yaml": "id: compute\ntitle: Compute\ncategory: infrastructure\n",
}

// env is a running API over a real SQLite store and a real Git repository.
type env struct {
	t       testing.TB
	srv     *httptest.Server
	svc     *service.Service
	repo    string
	tokens  map[string]string // role name -> token: viewer, operator, admin
	secrets map[string]string // user -> password
	checker *checker          // reports check results: see MustReport
	hosts   []aramaki.Agent   // the hosts that allow actions: see MustActionHosts
	peers   map[string]bool   // the peers made by MustPeerOnce
}

// MustEnv starts the API with users vera (viewer on webshop), otto
// (operator on webshop) and the first admin.
func MustEnv(t testing.TB) *env {
	t.Helper()
	se := servicetest.MustService(t, fixtureFiles)
	svc, repoDir, log, creds := se.Service, se.Repo, se.Log, se.Admin
	e := &env{t: t, svc: svc, repo: repoDir, tokens: map[string]string{"admin": creds.Token},
		secrets: map[string]string{"admin": creds.Password}, peers: map[string]bool{}}
	// This server joins others over the network, as a real server does.
	svc.SetJoiner(federation.Joiner{Timeout: 10 * time.Second})
	e.srv = httptest.NewServer(api.New(svc, log, api.Options{PublicURL: "https://aramaki.test:8443", CAFingerprint: strings.Repeat("ab", 32)}))
	t.Cleanup(e.srv.Close)

	// The writer of agents' results, for MustReport.
	ctx, cancel := context.WithCancel(context.Background())
	ingesting := make(chan struct{})
	go func() { defer close(ingesting); svc.RunIngest(ctx) }()
	t.Cleanup(func() { cancel(); <-ingesting })
	e.checker = &checker{ctx: ctx, agents: map[string]aramaki.Agent{}}

	for user, role := range map[string]string{"vera": "viewer", "otto": "operator"} {
		pw := user + "-secret-password"
		e.MustDo("POST", "/api/v1/users", "admin", map[string]string{"name": user, "password": pw}, http.StatusCreated, nil)
		e.MustDo("POST", "/api/v1/roles", "admin", map[string]string{"user": user, "system": "webshop", "role": role}, http.StatusCreated, nil)
		var tok service.NewToken
		e.MustDo("POST", "/api/v1/login", "", map[string]string{"user": user, "password": pw}, http.StatusCreated, &tok)
		e.tokens[role] = tok.Secret
		e.secrets[user] = pw
	}
	return e
}

// MustAgent enrolls a new agent for the systems, the way aramaki-agent does.
func (e *env) MustAgent(host string, systems ...string) aramaki.Agent {
	e.t.Helper()
	var resp api.EnrollmentResponse
	e.MustDo("POST", "/api/v1/enrollment-tokens", "admin", map[string]any{"systems": systems}, http.StatusCreated, &resp)
	tok, err := wire.ParseEnrollmentToken(resp.Token)
	if err != nil {
		e.t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	a, err := e.svc.Enroll(context.Background(), tok.ID, tok.Secret, pub, host, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// Do sends a request as a role ("" for anonymous) and returns status and body.
func (e *env) Do(method, path, role string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// MustDo sends a request and fails unless the status is want; the answer
// is decoded into out when not nil.
func (e *env) MustDo(method, path, role string, body any, want int, out any) {
	e.t.Helper()
	status, raw := e.Do(method, path, role, body)
	if status != want {
		e.t.Fatalf("%s %s as %q: status %d, want %d: %s", method, path, role, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// MustCommit commits files to the config repository with the real git CLI.
var MustCommit = servicetest.MustCommit
