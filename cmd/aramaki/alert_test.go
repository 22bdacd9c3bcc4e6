package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/servicetest"
)

// alertServer is the API over a real service, with an agent whose results
// the test makes up and the alert engine run after each.
type alertServer struct {
	t     *testing.T
	ctx   context.Context
	svc   *service.Service
	url   string
	token string
	agent aramaki.Agent
	seq   uint64
}

func MustAlertServer(t *testing.T) *alertServer {
	t.Helper()
	se := servicetest.MustService(t, map[string]string{
		"systems/webshop.yaml": `id: webshop
title: Webshop
subsystems: [webshop-db]
contacts:
  - {name: Oncall, email: oncall@example.com}
  - {name: Lead, email: lead@example.com}
routing:
  - {contact: Oncall}
  - {contact: Lead, after: 30m}
checks:
  - {name: http, command: "/usr/lib/nagios/plugins/check_http -H shop.example.com", interval: 1m}
`,
		"systems/webshop-db.yaml": `id: webshop-db
title: Webshop database
checks:
  - {name: postgres, command: "/usr/lib/nagios/plugins/check_pgsql", interval: 1m}
`,
	})
	srv := httptest.NewServer(api.New(se.Service, se.Log, api.Options{}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	ingesting := make(chan struct{})
	go func() { defer close(ingesting); se.Service.RunIngest(ctx) }()
	t.Cleanup(func() { cancel(); <-ingesting })

	admin, err := se.Service.AuthenticateToken(ctx, se.Admin.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := se.Service.CreateUser(ctx, admin, "otto", "a long enough password"); err != nil {
		t.Fatal(err)
	}
	tok, err := se.Service.CreateEnrollmentToken(ctx, admin, []string{"webshop", "webshop-db"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	agent, err := se.Service.Enroll(ctx, tok.ID, tok.Secret, pub, "web1", "test")
	if err != nil {
		t.Fatal(err)
	}
	// Only what the flags say: no saved settings, no environment.
	t.Setenv("ARAMAKI_CLIENT_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	t.Setenv("ARAMAKI_CA", "")
	return &alertServer{t: t, ctx: ctx, svc: se.Service, url: srv.URL, token: se.Admin.Token, agent: agent}
}

// MustAlert reports a check failing with output and returns its new alert.
func (s *alertServer) MustAlert(system, check, output string) aramaki.Alert {
	s.t.Helper()
	s.MustReport(system, check, aramaki.StatusCritical, output)
	var resp api.AlertsResponse
	mustJSON(s.t, s.MustCLI("alerts", "--state", "open", "--system", system, "-o", "json"), &resp)
	for _, a := range resp.Alerts {
		if a.Check == check {
			return a
		}
	}
	s.t.Fatalf("no open alert on %s/%s", system, check)
	return aramaki.Alert{}
}

// MustReport reports a result of a check and runs the alert engine once.
func (s *alertServer) MustReport(system, check string, status aramaki.Status, output string) {
	s.t.Helper()
	s.seq++
	done, err := s.svc.SubmitResults(s.ctx, service.NewStream(), s.agent, []aramaki.CheckResult{
		{Seq: s.seq, System: system, Check: check, Status: status, Output: output, Started: time.Now()},
	}, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if r := <-done; r.Err != nil {
		s.t.Fatal(r.Err)
	}
	if err := s.svc.AlertRound(s.ctx, nil); err != nil {
		s.t.Fatal(err)
	}
}

// CLI runs a client command as the admin and returns its exit code, what
// it printed and what it complained about.
func (s *alertServer) CLI(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(s.ctx, append(args, "--server", s.url, "--token", s.token), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func (s *alertServer) MustCLI(args ...string) string {
	s.t.Helper()
	code, out, errs := s.CLI(args...)
	if code != 0 {
		s.t.Fatalf("aramaki %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func mustJSON(t *testing.T, raw string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
}

func TestTheAlertCommandsWorkAnAlertFromTheTerminal(t *testing.T) {
	s := MustAlertServer(t)
	// Output comes from the host: it must not drive the terminal.
	alert := s.MustAlert("webshop", "http", "CRITICAL - \x1b]0;owned\x07Socket timeout \u202eevil\nsecond line of detail")

	table := s.MustCLI("alerts", "--state", "open,acknowledged")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "ASSIGNEE/ACK BY") {
		t.Fatalf("alerts table:\n%s", table)
	}
	for _, want := range []string{alert.ID, "CRITICAL", "open", "webshop/http", "ago", "Socket timeout"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("the alert's row lacks %q:\n%s", want, table)
		}
	}
	if strings.ContainsAny(table, "\x1b\x07\u202e") || strings.Contains(table, "second line") {
		t.Errorf("the table shows control characters or more than the output's first line:\n%q", table)
	}

	if out := s.MustCLI("alert", "ack", alert.ID, "-m", "Looking into it"); !strings.Contains(out, "Acknowledged alert "+alert.ID+" (webshop/http): acknowledged") {
		t.Errorf("alert ack: %s", out)
	}
	code, _, errs := s.CLI("alert", "ack", alert.ID)
	if code != 1 || !strings.Contains(errs, "acknowledged already, by admin (conflict)") {
		t.Errorf("acknowledging twice: exit %d, %s", code, errs)
	}
	if out := s.MustCLI("alert", "assign", alert.ID, "otto"); !strings.Contains(out, "assigned to otto") {
		t.Errorf("alert assign: %s", out)
	}
	s.MustCLI("alert", "comment", alert.ID, "Varnish", "is", "out", "of", "memory")
	if out := s.MustCLI("alert", "escalate", alert.ID); !strings.Contains(out, "level 1") {
		t.Errorf("alert escalate: %s", out)
	}
	if code, _, errs := s.CLI("alert", "escalate", alert.ID); code != 1 || !strings.Contains(errs, "last escalation level") {
		t.Errorf("escalating past the last level: exit %d, %s", code, errs)
	}
	if out := s.MustCLI("alerts"); !strings.Contains(out, "otto/admin") {
		t.Errorf("the table does not say who has it and who acknowledged it:\n%s", out)
	}
	if out := s.MustCLI("alert", "resolve", alert.ID, "-m", "Restarted varnish"); !strings.Contains(out, "resolved") {
		t.Errorf("alert resolve: %s", out)
	}

	show := s.MustCLI("alert", "show", alert.ID)
	for _, want := range []string{"webshop/http is CRITICAL", "State:    resolved", "Assignee: otto", "second line of detail",
		"admin acknowledged: Looking into it", "admin assigned to otto", "admin commented: Varnish is out of memory",
		"admin escalated", "admin resolved: Restarted varnish"} {
		if !strings.Contains(show, want) {
			t.Errorf("alert show lacks %q:\n%s", want, show)
		}
	}
	if strings.ContainsAny(show, "\x1b\x07\u202e") {
		t.Errorf("alert show prints control characters: %q", show)
	}
	var view service.AlertView
	mustJSON(t, s.MustCLI("alert", "show", alert.ID, "-o", "json"), &view)
	if view.Output != alert.Output || len(view.Notes) != 5 {
		t.Errorf("alert show -o json: %+v, want the output as sent and five notes", view)
	}

	if code, _, errs := s.CLI("alert", "assign", alert.ID); code != 1 || !strings.Contains(errs, "usage:") {
		t.Errorf("assign without a user: exit %d, %s", code, errs)
	}
	if code, _, errs := s.CLI("alerts", "--state", "sleeping"); code != 1 || !strings.Contains(errs, `unknown alert state "sleeping"`) {
		t.Errorf("an unknown state: exit %d, %s", code, errs)
	}
}

func TestAcknowledgingSeveralAlertsSaysWhichWereNot(t *testing.T) {
	s := MustAlertServer(t)
	shop := s.MustAlert("webshop", "http", "CRITICAL - shop down")
	db := s.MustAlert("webshop-db", "postgres", "CRITICAL - too many connections")

	out := s.MustCLI("alert", "ack", shop.ID, db.ID, "-m", "Storage incident")
	if !strings.Contains(out, "Acknowledged alert "+shop.ID) || !strings.Contains(out, "Acknowledged alert "+db.ID) {
		t.Fatalf("alert ack of two:\n%s", out)
	}
	code, out, errs := s.CLI("alert", "ack", db.ID, "999999")
	if code != 1 || !strings.Contains(errs, "2 of 2 alerts were not acknowledged") ||
		!strings.Contains(out, "Alert "+db.ID+": alert "+db.ID+" is acknowledged already, by admin (conflict)") ||
		!strings.Contains(out, "Alert 999999: alert 999999 not found (not_found)") {
		t.Fatalf("alert ack of two that cannot be: exit %d\n%s%s", code, out, errs)
	}
	var resp api.BulkResponse
	code, out, _ = s.CLI("alert", "ack", shop.ID, db.ID, "-o", "json")
	mustJSON(t, out, &resp)
	if code != 1 || len(resp.Results) != 2 || resp.Results[0].Code != aramaki.ECONFLICT {
		t.Fatalf("alert ack -o json: exit %d, %+v", code, resp)
	}
}

func TestASilenceIsCreatedListedAndEndedFromTheTerminal(t *testing.T) {
	s := MustAlertServer(t)
	out := s.MustCLI("silence", "create", "--system", "webshop", "--for", "2h", "--reason", "Database upgrade", "--maintenance")
	if !strings.HasPrefix(out, "Silenced webshop from ") {
		t.Fatalf("silence create: %s", out)
	}
	var sl aramaki.Silence
	end := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	mustJSON(t, s.MustCLI("silence", "create", "--system", "webshop-db", "--until", end.Format(time.RFC3339), "--reason", "Replica rebuild", "--until-resolved", "-o", "json"), &sl)
	if !sl.End.Equal(end) || !sl.UntilResolved || sl.CreatedBy != "admin" {
		t.Fatalf("silence create --until -o json: %+v", sl)
	}

	list := s.MustCLI("silence", "list")
	if lines := strings.Split(strings.TrimSpace(list), "\n"); len(lines) != 3 || !strings.Contains(lines[1], "maintenance") ||
		!strings.Contains(lines[1], "Database upgrade") || !strings.Contains(lines[2], "silence, until resolved") {
		t.Fatalf("silence list:\n%s", list)
	}
	// The database is under the shop: both silences cover it.
	var covering api.SilencesResponse
	mustJSON(t, s.MustCLI("silence", "list", "--system", "webshop-db", "-o", "json"), &covering)
	if len(covering.Silences) != 2 {
		t.Fatalf("silences covering webshop-db: %+v", covering.Silences)
	}

	if out := s.MustCLI("silence", "end", sl.ID); !strings.Contains(out, "Ended the silence of webshop-db") {
		t.Fatalf("silence end: %s", out)
	}
	if list := s.MustCLI("silence", "list"); strings.Contains(list, "Replica rebuild") {
		t.Fatalf("an ended silence is still listed:\n%s", list)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"silence", "create", "--system", "webshop", "--reason", "x"}, "--for 2h or --until"},
		{[]string{"silence", "create", "--system", "webshop", "--for", "1h", "--until", end.Format(time.RFC3339), "--reason", "x"}, "one of the two"},
		{[]string{"silence", "create", "--system", "webshop", "--for", "1h"}, "needs a reason (invalid)"},
		{[]string{"silence", "create", "--system", "nope", "--for", "1h", "--reason", "x"}, "no system nope (not_found)"},
		{[]string{"silence", "end", sl.ID}, "over already (conflict)"},
	} {
		if code, _, errs := s.CLI(c.args...); code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("aramaki %s: exit %d, %s; want %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
}

func TestTheReviewCommandShowsWhatNeedsLookingAt(t *testing.T) {
	s := MustAlertServer(t)
	s.MustReport("webshop", "http", aramaki.StatusOK, "OK")
	s.MustAlert("webshop", "http", "CRITICAL - \x1b[31mdown")
	out := s.MustCLI("review", "webshop", "--period", "1h")
	for _, want := range []string{"Review of", "(webshop)", "NOISIEST CHECK", "webshop/http    1"} {
		if !strings.Contains(out, want) {
			t.Errorf("the review lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("the review shows control characters:\n%q", out)
	}
	if code, _, errs := s.CLI("review", "webshop", "--period", "-1h"); code == 0 || !strings.Contains(errs, "period") {
		t.Errorf("a negative period: exit %d, %s", code, errs)
	}
}

func TestAUserGetsAnAddressForReminders(t *testing.T) {
	s := MustAlertServer(t)
	if out := s.MustCLI("user", "email", "otto", "otto@example.com"); !strings.Contains(out, "otto@example.com") {
		t.Errorf("user email: %s", out)
	}
	if out := s.MustCLI("user", "list"); !strings.Contains(out, "otto@example.com") {
		t.Errorf("user list lacks the address:\n%s", out)
	}
	if code, _, errs := s.CLI("user", "email", "otto", "otto at example"); code == 0 || !strings.Contains(errs, "not an e-mail address") {
		t.Errorf("a bad address: exit %d, %s", code, errs)
	}
}
