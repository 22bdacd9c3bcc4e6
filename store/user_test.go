package store_test

import (
	"bytes"
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/store"
)

// MustCreateUser creates a user with the password hash "hash-<name>".
func MustCreateUser(t *testing.T, s *store.Store, name string) aramaki.User {
	t.Helper()
	u, err := s.CreateUser(context.Background(), name, "hash-"+name, MustAudit(t, "created user "+name))
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

// MustCreateToken creates a token of the user with the secret hash
// "secret-<id>".
func MustCreateToken(t *testing.T, s *store.Store, userID int64, id string) aramaki.Token {
	t.Helper()
	tok := aramaki.Token{ID: id, UserID: userID, Name: "laptop", Created: t0}
	if err := s.CreateToken(context.Background(), tok, []byte("secret-"+id), MustAudit(t, "created token "+id)); err != nil {
		t.Fatalf("create token %s: %v", id, err)
	}
	return tok
}

func TestUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("a user reads back by name and id", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			audit := MustEvent(t, t0, kindAudit, nil, "created user alice")
			u, err := s.CreateUser(ctx, "alice", "hash-alice", audit)
			if err != nil {
				t.Fatal(err)
			}
			want := aramaki.User{ID: u.ID, Name: "alice", Created: t0}
			if u != want || u.ID == 0 {
				t.Errorf("created %+v, want %+v", u, want)
			}
			got, hash, err := s.UserByName(ctx, "alice")
			if err != nil || got != want || hash != "hash-alice" {
				t.Errorf("by name = %+v, %q, %v", got, hash, err)
			}
			if got, err := s.UserByID(ctx, u.ID); err != nil || got != want {
				t.Errorf("by id = %+v, %v", got, err)
			}
			if _, err := s.Event(ctx, audit.ID); err != nil {
				t.Errorf("audit event: %v", err)
			}
		})
	})

	t.Run("user names are unique", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustCreateUser(t, s, "alice")
			audit := MustAudit(t, "created alice again")
			_, err := s.CreateUser(ctx, "alice", "other", audit)
			wantCode(t, err, aramaki.ECONFLICT)
			if _, err := s.Event(ctx, audit.ID); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
				t.Errorf("the refused creation was audited: %v", err)
			}
			if _, hash, _ := s.UserByName(ctx, "alice"); hash != "hash-alice" {
				t.Errorf("password hash = %q", hash)
			}
		})
	})

	t.Run("an invalid user name is refused", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			_, err := s.CreateUser(ctx, "Robert'); DROP TABLE users;--", "h", MustAudit(t, "bobby tables"))
			wantCode(t, err, aramaki.EINVALID)
		})
	})

	t.Run("users are listed by name", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			for _, name := range []string{"carol", "alice", "bob"} {
				MustCreateUser(t, s, name)
			}
			users, err := s.Users(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, u := range users {
				names = append(names, u.Name)
			}
			if !reflect.DeepEqual(names, []string{"alice", "bob", "carol"}) {
				t.Errorf("names = %v", names)
			}
		})
	})

	t.Run("unknown users are not found", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			_, _, err := s.UserByName(ctx, "nobody")
			wantCode(t, err, aramaki.ENOTFOUND)
			_, err = s.UserByID(ctx, 4711)
			wantCode(t, err, aramaki.ENOTFOUND)
			err = s.SetPassword(ctx, 4711, "x", MustAudit(t, "password"))
			wantCode(t, err, aramaki.ENOTFOUND)
		})
	})

	t.Run("a disabled user keeps no token and can be enabled again", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			u := MustCreateUser(t, s, "mallory")
			tok := MustCreateToken(t, s, u.ID, "0123456789abcdef")
			if err := s.SetUserDisabled(ctx, "mallory", true, MustAudit(t, "root disabled mallory")); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := s.UserByName(ctx, "mallory"); !got.Disabled {
				t.Error("not disabled")
			}
			_, _, err := s.TokenByID(ctx, tok.ID)
			wantCode(t, err, aramaki.ENOTFOUND)
			if err := s.SetUserDisabled(ctx, "mallory", false, MustAudit(t, "root enabled mallory")); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := s.UserByName(ctx, "mallory"); got.Disabled {
				t.Error("still disabled")
			}
			wantCode(t, s.SetUserDisabled(ctx, "nobody", true, MustAudit(t, "x")), aramaki.ENOTFOUND)
		})
	})

	t.Run("a user's e-mail address is set and cleared", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustCreateUser(t, s, "carol")
			if err := s.SetUserEmail(ctx, "carol", "carol@example.com", MustAudit(t, "root set carol's address")); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := s.UserByName(ctx, "carol"); got.Email != "carol@example.com" {
				t.Errorf("address %q", got.Email)
			}
			if err := s.SetUserEmail(ctx, "carol", "", MustAudit(t, "root cleared carol's address")); err != nil {
				t.Fatal(err)
			}
			if users, _ := s.Users(ctx); len(users) != 1 || users[0].Email != "" {
				t.Errorf("users after clearing: %+v", users)
			}
			wantCode(t, s.SetUserEmail(ctx, "nobody", "x@example.com", MustAudit(t, "x")), aramaki.ENOTFOUND)
		})
	})

	t.Run("a new password replaces the old", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			u := MustCreateUser(t, s, "alice")
			if err := s.SetPassword(ctx, u.ID, "new-hash", MustAudit(t, "alice changed her password")); err != nil {
				t.Fatal(err)
			}
			if _, hash, _ := s.UserByName(ctx, "alice"); hash != "new-hash" {
				t.Errorf("hash = %q", hash)
			}
		})
	})
}

func TestBootstrap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("bootstrap makes a global admin with a token", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			audit := MustEvent(t, t0, kindAudit, nil, "bootstrapped admin")
			tok := aramaki.Token{ID: "tok1", Name: "bootstrap", Created: t0}
			u, err := s.Bootstrap(ctx, "admin", "hash", tok, []byte("secret"), audit)
			if err != nil {
				t.Fatal(err)
			}
			if u.Name != "admin" || u.ID == 0 {
				t.Errorf("user = %+v", u)
			}
			bindings, err := s.RoleBindings(ctx, "admin")
			if err != nil {
				t.Fatal(err)
			}
			want := []aramaki.RoleBinding{{User: "admin", System: aramaki.GlobalScope, Role: aramaki.RoleAdmin, CreatedBy: "server", Created: t0}}
			if !reflect.DeepEqual(bindings, want) {
				t.Errorf("bindings = %+v, want %+v", bindings, want)
			}
			got, hash, err := s.TokenByID(ctx, "tok1")
			if err != nil || got.UserID != u.ID || !bytes.Equal(hash, []byte("secret")) {
				t.Errorf("token = %+v, %q, %v", got, hash, err)
			}
			if _, err := s.Event(ctx, audit.ID); err != nil {
				t.Errorf("audit event: %v", err)
			}
		})
	})

	t.Run("bootstrap refuses when a user exists", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			MustCreateUser(t, s, "alice")
			_, err := s.Bootstrap(ctx, "admin", "hash", aramaki.Token{ID: "tok1", Created: t0}, []byte("secret"), MustAudit(t, "bootstrap"))
			wantCode(t, err, aramaki.ECONFLICT)
			if _, _, err := s.TokenByID(ctx, "tok1"); aramaki.ErrorCode(err) != aramaki.ENOTFOUND {
				t.Errorf("token after refused bootstrap: %v", err)
			}
			if bindings, _ := s.RoleBindings(ctx, ""); len(bindings) != 0 {
				t.Errorf("bindings after refused bootstrap: %+v", bindings)
			}
		})
	})

	t.Run("concurrent bootstraps make one admin", func(t *testing.T) {
		forEachDSN(t, func(t *testing.T, dsn string) {
			replicas := []*store.Store{MustOpen(t, dsn), MustOpen(t, dsn)}
			var wg sync.WaitGroup
			for i, name := range []string{"ann", "ben", "cid", "dan"} {
				wg.Go(func() {
					tok := aramaki.Token{ID: "tok-" + name, Created: t0}
					_, err := replicas[i%2].Bootstrap(ctx, name, "hash", tok, []byte("s"), MustAudit(t, "bootstrap "+name))
					if err != nil && aramaki.ErrorCode(err) != aramaki.ECONFLICT {
						t.Errorf("bootstrap %s: %v", name, err)
					}
				})
			}
			wg.Wait()
			if users, err := replicas[0].Users(ctx); err != nil || len(users) != 1 {
				t.Errorf("users = %+v, %v; want one", users, err)
			}
		})
	})
}

func TestTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("a token reads back", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			u := MustCreateUser(t, s, "alice")
			expires := t0.Add(30 * 24 * time.Hour)
			tok := aramaki.Token{ID: "tok1", UserID: u.ID, Name: "ci", Created: t0, Expires: &expires}
			if err := s.CreateToken(ctx, tok, []byte{0, 1, 2, 255}, MustAudit(t, "token")); err != nil {
				t.Fatal(err)
			}
			got, hash, err := s.TokenByID(ctx, "tok1")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tok) || !bytes.Equal(hash, []byte{0, 1, 2, 255}) {
				t.Errorf("token = %+v, %v; want %+v", got, hash, tok)
			}
			MustCreateToken(t, s, u.ID, "tok2")
			tokens, err := s.Tokens(ctx, u.ID)
			if err != nil || len(tokens) != 2 || tokens[0].ID != "tok1" || tokens[1].ID != "tok2" {
				t.Errorf("tokens = %+v, %v", tokens, err)
			}
		})
	})

	t.Run("a token needs an existing user and a free id", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			err := s.CreateToken(ctx, aramaki.Token{ID: "tok1", UserID: 4711, Created: t0}, []byte("s"), MustAudit(t, "token"))
			wantCode(t, err, aramaki.ENOTFOUND)
			u := MustCreateUser(t, s, "alice")
			MustCreateToken(t, s, u.ID, "tok1")
			err = s.CreateToken(ctx, aramaki.Token{ID: "tok1", UserID: u.ID, Created: t0}, []byte("s"), MustAudit(t, "token again"))
			wantCode(t, err, aramaki.ECONFLICT)
		})
	})

	t.Run("a token's principal comes in one read", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			u := MustCreateUser(t, s, "otto")
			tok := MustCreateToken(t, s, u.ID, "0123456789abcdef")
			b := aramaki.RoleBinding{User: "otto", System: "webshop", Role: aramaki.RoleOperator, CreatedBy: "root", Created: time.Now()}
			if err := s.GrantRole(ctx, b, MustAudit(t, "root granted otto operator")); err != nil {
				t.Fatal(err)
			}
			got, hash, user, bindings, err := s.TokenPrincipal(ctx, tok.ID)
			if err != nil || got.ID != tok.ID || len(hash) == 0 || user.Name != "otto" || len(bindings) != 1 || bindings[0].Role != aramaki.RoleOperator {
				t.Fatalf("TokenPrincipal = %+v %x %+v %+v %v", got, hash, user, bindings, err)
			}
			_, _, _, _, err = s.TokenPrincipal(ctx, "ffffffffffffffff")
			wantCode(t, err, aramaki.ENOTFOUND)
		})
	})

	t.Run("a deleted token is gone", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			alice, bob := MustCreateUser(t, s, "alice"), MustCreateUser(t, s, "bob")
			MustCreateToken(t, s, alice.ID, "tok1")
			// Bob cannot delete Alice's token: to him it does not exist.
			err := s.DeleteToken(ctx, bob.ID, "tok1", MustAudit(t, "bob deletes tok1"))
			wantCode(t, err, aramaki.ENOTFOUND)
			if err := s.DeleteToken(ctx, alice.ID, "tok1", MustAudit(t, "alice deletes tok1")); err != nil {
				t.Fatal(err)
			}
			_, _, err = s.TokenByID(ctx, "tok1")
			wantCode(t, err, aramaki.ENOTFOUND)
			if tokens, err := s.Tokens(ctx, alice.ID); err != nil || len(tokens) != 0 {
				t.Errorf("tokens = %+v, %v", tokens, err)
			}
			err = s.DeleteToken(ctx, alice.ID, "tok1", MustAudit(t, "alice deletes tok1 again"))
			wantCode(t, err, aramaki.ENOTFOUND)
		})
	})
}

func TestRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("role grant replaces, revoke of missing is not found", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			grant := func(user, system string, role aramaki.Role, at time.Time) {
				t.Helper()
				b := aramaki.RoleBinding{User: user, System: system, Role: role, CreatedBy: "user:admin", Created: at}
				if err := s.GrantRole(ctx, b, MustAudit(t, "grant "+user+" "+system+" "+string(role))); err != nil {
					t.Fatal(err)
				}
			}
			grant("bob", "web", aramaki.RoleViewer, t0)
			grant("alice", "web", aramaki.RoleViewer, t0)
			grant("alice", aramaki.GlobalScope, aramaki.RoleViewer, t0)
			grant("alice", "web", aramaki.RoleOperator, t0.Add(time.Hour))

			all, err := s.RoleBindings(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			want := []aramaki.RoleBinding{
				{User: "alice", System: "*", Role: aramaki.RoleViewer, CreatedBy: "user:admin", Created: t0},
				{User: "alice", System: "web", Role: aramaki.RoleOperator, CreatedBy: "user:admin", Created: t0.Add(time.Hour)},
				{User: "bob", System: "web", Role: aramaki.RoleViewer, CreatedBy: "user:admin", Created: t0},
			}
			if !reflect.DeepEqual(all, want) {
				t.Errorf("bindings =\n%+v\nwant\n%+v", all, want)
			}
			if bobs, err := s.RoleBindings(ctx, "bob"); err != nil || !reflect.DeepEqual(bobs, want[2:]) {
				t.Errorf("bob's bindings = %+v, %v", bobs, err)
			}

			if err := s.RevokeRole(ctx, "alice", "web", MustAudit(t, "revoke alice web")); err != nil {
				t.Fatal(err)
			}
			err = s.RevokeRole(ctx, "alice", "web", MustAudit(t, "revoke alice web again"))
			wantCode(t, err, aramaki.ENOTFOUND)
			if alices, _ := s.RoleBindings(ctx, "alice"); !reflect.DeepEqual(alices, want[:1]) {
				t.Errorf("alice's bindings = %+v", alices)
			}
		})
	})

	t.Run("an unknown role is refused", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			err := s.GrantRole(ctx, aramaki.RoleBinding{User: "bob", System: "web", Role: "root"}, MustAudit(t, "grant root"))
			wantCode(t, err, aramaki.EINVALID)
		})
	})

	t.Run("every mutation is audited in its transaction", func(t *testing.T) {
		forEachStore(t, func(t *testing.T, s *store.Store) {
			u := MustCreateUser(t, s, "alice")
			MustCreateToken(t, s, u.ID, "tok1")
			b := aramaki.RoleBinding{User: "alice", System: "web", Role: aramaki.RoleViewer, CreatedBy: "user:admin", Created: t0}
			if err := s.GrantRole(ctx, b, MustAudit(t, "grant")); err != nil {
				t.Fatal(err)
			}
			if err := s.SetPassword(ctx, u.ID, "h2", MustAudit(t, "password")); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteToken(ctx, u.ID, "tok1", MustAudit(t, "delete token")); err != nil {
				t.Fatal(err)
			}
			if err := s.RevokeRole(ctx, "alice", "web", MustAudit(t, "revoke")); err != nil {
				t.Fatal(err)
			}
			if n := MustCountKind(t, s, kindAudit); n != 6 {
				t.Errorf("%d audit events, want 6", n)
			}

			// A mutation whose audit event cannot be stored does not happen.
			bad := aramaki.Event{ID: "ev_bad", Kind: kindAudit, Time: t0, Actor: "user:admin"} // no summary
			if err := s.GrantRole(ctx, b, bad); err == nil {
				t.Fatal("granted with an invalid audit event")
			}
			if _, err := s.CreateUser(ctx, "bob", "h", bad); err == nil {
				t.Fatal("created a user with an invalid audit event")
			}
			if bindings, _ := s.RoleBindings(ctx, ""); len(bindings) != 0 {
				t.Errorf("bindings = %+v", bindings)
			}
			_, _, err := s.UserByName(ctx, "bob")
			wantCode(t, err, aramaki.ENOTFOUND)
		})
	})
}
