package store_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

// MustCreateEnrollmentToken creates a token for the systems, valid for an
// hour from t0, with the secret hash "secret-<id>".
func MustCreateEnrollmentToken(t testing.TB, s *store.Store, id string, systems ...string) aramaki.EnrollmentToken {
	t.Helper()
	tok := aramaki.EnrollmentToken{ID: id, Systems: systems, CreatedBy: "user:alice", Created: t0, Expires: t0.Add(time.Hour)}
	if err := s.CreateEnrollmentToken(context.Background(), tok, []byte("secret-"+id), MustAudit(t, "created enrollment token "+id)); err != nil {
		t.Fatalf("create enrollment token %s: %v", id, err)
	}
	return tok
}

// enrollAudit makes the audit event of an enrollment from the token.
func enrollAudit(tok aramaki.EnrollmentToken) (aramaki.Event, error) {
	return aramaki.NewEvent(*tok.Used, aramaki.KindAgentEnrolled, "agent:"+tok.AgentID, tok.Systems, "agent "+tok.AgentID+" enrolled with token "+tok.ID, nil)
}

// MustEnroll enrolls the agent with a new token for the systems, at t0.
func MustEnroll(t testing.TB, s *store.Store, id string, systems ...string) aramaki.Agent {
	t.Helper()
	MustCreateEnrollmentToken(t, s, "tok-"+id, systems...)
	a, err := s.Enroll(context.Background(), "tok-"+id, []byte("secret-tok-"+id),
		aramaki.Agent{ID: id, Name: id + ".example.com", PublicKey: []byte("key-" + id), Version: "1.0", Enrolled: t0}, enrollAudit)
	if err != nil {
		t.Fatalf("enroll %s: %v", id, err)
	}
	return a
}

func TestEnrollment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	agent := func(id string, at time.Time) aramaki.Agent {
		return aramaki.Agent{ID: id, Name: "host-" + id, PublicKey: []byte("key-" + id), Version: "1.0", Enrolled: at}
	}

	t.Run("an enrollment token works once", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustCreateEnrollmentToken(t, s, "tok1", "web", "db")
			at := t0.Add(time.Minute)
			var audited aramaki.EnrollmentToken
			a, err := s.Enroll(ctx, "tok1", []byte("secret-tok1"), agent("a1", at), func(tok aramaki.EnrollmentToken) (aramaki.Event, error) {
				audited = tok
				return enrollAudit(tok)
			})
			if err != nil {
				t.Fatal(err)
			}
			want := aramaki.Agent{ID: "a1", Name: "host-a1", Systems: []string{"web", "db"}, PublicKey: []byte("key-a1"), Version: "1.0", Enrolled: at}
			if !reflect.DeepEqual(a, want) {
				t.Errorf("enrolled %+v, want %+v", a, want)
			}
			if got, err := s.Agent(ctx, "a1"); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("agent reads back as %+v, %v", got, err)
			}
			if audited.Used == nil || !audited.Used.Equal(at) || audited.AgentID != "a1" || !reflect.DeepEqual(audited.Systems, []string{"web", "db"}) {
				t.Errorf("audit saw token %+v", audited)
			}
			page := MustTimeline(t, s, aramaki.TimelineQuery{Kinds: []aramaki.EventKind{aramaki.KindAgentEnrolled}})
			if len(page.Events) != 1 {
				t.Errorf("%d enrollment events, want 1", len(page.Events))
			}

			_, err = s.Enroll(ctx, "tok1", []byte("secret-tok1"), agent("a2", at), enrollAudit)
			wantCode(t, err, aramaki.EUNAUTHORIZED)
			if _, err := s.Agent(ctx, "a2"); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
				t.Errorf("the second agent exists: %v", err)
			}
			tokens, err := s.EnrollmentTokens(ctx)
			if err != nil || len(tokens) != 1 || tokens[0].Used == nil || !tokens[0].Used.Equal(at) || tokens[0].AgentID != "a1" {
				t.Errorf("tokens = %+v, %v", tokens, err)
			}
		})
	})

	t.Run("an expired token is refused", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			tok := MustCreateEnrollmentToken(t, s, "tok1", "web")
			_, err := s.Enroll(ctx, "tok1", []byte("secret-tok1"), agent("a1", tok.Expires), enrollAudit)
			wantCode(t, err, aramaki.EUNAUTHORIZED)
			// A moment before, it works.
			if _, err := s.Enroll(ctx, "tok1", []byte("secret-tok1"), agent("a1", tok.Expires.Add(-time.Microsecond)), enrollAudit); err != nil {
				t.Errorf("enroll just before expiry: %v", err)
			}
		})
	})

	t.Run("a wrong secret is refused with the same error", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			tok := MustCreateEnrollmentToken(t, s, "tok1", "web")
			MustCreateEnrollmentToken(t, s, "tok2", "web")
			if _, err := s.Enroll(ctx, "tok2", []byte("secret-tok2"), agent("a2", t0), enrollAudit); err != nil {
				t.Fatal(err)
			}
			var messages []string
			for _, c := range []struct {
				name, token, secret string
				at                  time.Time
			}{
				{"wrong secret", "tok1", "secret-tok2", t0},
				{"unknown token", "tok9", "secret-tok9", t0},
				{"used token", "tok2", "secret-tok2", t0},
				{"expired token", "tok1", "secret-tok1", tok.Expires.Add(time.Hour)},
			} {
				_, err := s.Enroll(ctx, c.token, []byte(c.secret), agent("a1", c.at), enrollAudit)
				if aramaki.ErrorCode(err) != aramaki.EUNAUTHORIZED {
					t.Errorf("%s: error %v, want unauthorized", c.name, err)
				}
				messages = append(messages, aramaki.ErrorMessage(err))
			}
			for _, m := range messages[1:] {
				if m != messages[0] {
					t.Errorf("messages differ: %q", messages)
					break
				}
			}
			if _, err := s.Agent(ctx, "a1"); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
				t.Errorf("a refused agent exists: %v", err)
			}
		})
	})

	t.Run("a taken agent id leaves the token unspent", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustCreateEnrollmentToken(t, s, "tok2", "db")
			_, err := s.Enroll(ctx, "tok2", []byte("secret-tok2"), agent("a1", t0), enrollAudit)
			wantCode(t, err, aramaki.ECONFLICT)
			if _, err := s.Enroll(ctx, "tok2", []byte("secret-tok2"), agent("a2", t0), enrollAudit); err != nil {
				t.Errorf("the token was spent: %v", err)
			}
		})
	})

	t.Run("token ids are unique", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			tok := MustCreateEnrollmentToken(t, s, "tok1", "web")
			err := s.CreateEnrollmentToken(ctx, tok, []byte("other"), MustAudit(t, "again"))
			wantCode(t, err, aramaki.ECONFLICT)
		})
	})

	t.Run("tokens are listed oldest first, without secrets", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			for i, id := range []string{"tok-b", "tok-a"} {
				tok := aramaki.EnrollmentToken{ID: id, Systems: []string{"web"}, CreatedBy: "user:alice", Created: t0.Add(time.Duration(i) * time.Second), Expires: t0.Add(time.Hour)}
				if err := s.CreateEnrollmentToken(ctx, tok, []byte("s"), MustAudit(t, "created "+id)); err != nil {
					t.Fatal(err)
				}
			}
			tokens, err := s.EnrollmentTokens(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := []aramaki.EnrollmentToken{
				{ID: "tok-b", Systems: []string{"web"}, CreatedBy: "user:alice", Created: t0, Expires: t0.Add(time.Hour)},
				{ID: "tok-a", Systems: []string{"web"}, CreatedBy: "user:alice", Created: t0.Add(time.Second), Expires: t0.Add(time.Hour)},
			}
			if !reflect.DeepEqual(tokens, want) {
				t.Errorf("tokens = %+v\nwant %+v", tokens, want)
			}
		})
	})
}

func TestAgents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("a revoked agent is revoked", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			at := t0.Add(time.Hour)
			audit := MustEvent(t, at, aramaki.KindAgentRevoked, []string{"web"}, "revoked a1")
			if err := s.RevokeAgent(ctx, "a1", audit); err != nil {
				t.Fatal(err)
			}
			a, err := s.Agent(ctx, "a1")
			if err != nil || a.Revoked == nil || !a.Revoked.Equal(at) {
				t.Errorf("agent = %+v, %v; want revoked at %v", a, err, at)
			}
			if _, err := s.Event(ctx, audit.ID); err != nil {
				t.Errorf("audit event: %v", err)
			}
			err = s.RevokeAgent(ctx, "a1", MustEvent(t, at.Add(time.Hour), aramaki.KindAgentRevoked, []string{"web"}, "revoked a1 again"))
			wantCode(t, err, aramaki.ECONFLICT)
			err = s.RevokeAgent(ctx, "a9", MustEvent(t, at, aramaki.KindAgentRevoked, nil, "revoked a9"))
			wantCode(t, err, aramaki.ENOTFOUND)
			if a, _ := s.Agent(ctx, "a1"); !a.Revoked.Equal(at) {
				t.Errorf("revoking twice moved the time to %v", a.Revoked)
			}
		})
	})

	t.Run("agents are listed by name", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "b", "web")
			MustEnroll(t, s, "a", "db")
			agents, err := s.Agents(ctx)
			if err != nil || len(agents) != 2 || agents[0].ID != "a" || agents[1].ID != "b" {
				t.Errorf("agents = %+v, %v", agents, err)
			}
			_, err = s.Agent(ctx, "c")
			wantCode(t, err, aramaki.ENOTFOUND)
		})
	})

	t.Run("TouchAgents updates last seen and version", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			MustEnroll(t, s, "a2", "web")
			t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
			if err := s.TouchAgents(ctx, []aramaki.AgentSeen{
				{Agent: "a1", At: t2, Version: "1.1"},
				{Agent: "a2", At: t1},
				{Agent: "unknown", At: t1},
			}); err != nil {
				t.Fatal(err)
			}
			// Older news do not move last seen back; no version keeps it.
			if err := s.TouchAgents(ctx, []aramaki.AgentSeen{{Agent: "a1", At: t1}}); err != nil {
				t.Fatal(err)
			}
			a1, _ := s.Agent(ctx, "a1")
			a2, _ := s.Agent(ctx, "a2")
			if a1.LastSeen == nil || !a1.LastSeen.Equal(t2) || a1.Version != "1.1" {
				t.Errorf("a1 seen %v running %q, want %v and 1.1", a1.LastSeen, a1.Version, t2)
			}
			if a2.LastSeen == nil || !a2.LastSeen.Equal(t1) || a2.Version != "1.0" {
				t.Errorf("a2 seen %v running %q, want %v and 1.0", a2.LastSeen, a2.Version, t1)
			}
		})
	})

	t.Run("facts replace earlier facts", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustEnroll(t, s, "a1", "web")
			_, err := s.Facts(ctx, "a1")
			wantCode(t, err, aramaki.ENOTFOUND)
			for i, facts := range []string{`{"os":"debian","version":12}`, `{"os":"debian","version":13}`} {
				f := aramaki.Facts{Agent: "a1", Collected: t0.Add(time.Duration(i) * time.Hour), Received: t0.Add(time.Duration(i)*time.Hour + time.Second), Facts: json.RawMessage(facts)}
				if err := s.SetFacts(ctx, f); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Facts(ctx, "a1")
			want := aramaki.Facts{Agent: "a1", Collected: t0.Add(time.Hour), Received: t0.Add(time.Hour + time.Second), Facts: json.RawMessage(`{"os":"debian","version":13}`)}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("facts = %+v, %v; want %+v", got, err, want)
			}
			err = s.SetFacts(ctx, aramaki.Facts{Agent: "a9", Facts: json.RawMessage(`{}`)})
			wantCode(t, err, aramaki.ENOTFOUND)
			err = s.SetFacts(ctx, aramaki.Facts{Agent: "a1", Facts: json.RawMessage(`{not json`)})
			wantCode(t, err, aramaki.EINVALID)
		})
	})
}
