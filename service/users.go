package service

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// Credentials of the first admin, shown once at the first start.
type Credentials struct {
	User     string
	Password string
	Token    string
}

// BootstrapUser is the name of the first admin.
const BootstrapUser = "admin"

// SaveCredentials keeps the first admin's credentials (the token in a
// file, say) before they are committed, so that a token that was not saved
// never works. undo takes them away again when another replica was first.
type SaveCredentials func(Credentials) (undo func(), err error)

// Bootstrap creates the first admin with a random password and an API token
// when the server has no users yet, and returns the credentials; nil when
// users exist.
func (s *Service) Bootstrap(ctx context.Context, save SaveCredentials) (*Credentials, error) {
	users, err := s.store.Users(ctx)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return nil, nil
	}
	password, err := RandomPassword()
	if err != nil {
		return nil, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return nil, err
	}
	id, raw, secretHash, err := newTokenSecret()
	if err != nil {
		return nil, err
	}
	creds := Credentials{User: BootstrapUser, Password: password, Token: raw}
	undo, err := save(creds)
	if err != nil {
		return nil, fmt.Errorf("save admin credentials: %w", err)
	}
	ev, err := s.event(aramaki.KindUserCreated, "server", nil, "First start: created the admin user with a random password and an API token", map[string]string{"user": BootstrapUser})
	if err != nil {
		return nil, err
	}
	tok := aramaki.Token{ID: id, Name: "admin token (first start)", Created: s.now().UTC()}
	if _, err := s.store.Bootstrap(ctx, BootstrapUser, hash, tok, secretHash, ev); err != nil {
		undo()
		if aramaki.ErrorCode(err) == aramaki.ECONFLICT {
			return nil, nil // another replica was first
		}
		return nil, err
	}
	return &creds, nil
}

// AuthenticateToken returns the principal of an API token.
func (s *Service) AuthenticateToken(ctx context.Context, raw string) (aramaki.Principal, error) {
	bad := aramaki.Errorf(aramaki.EUNAUTHORIZED, "invalid or expired token")
	id, hash, ok := parseToken(raw)
	if !ok {
		return aramaki.Principal{}, bad
	}
	tok, want, u, bindings, err := s.store.TokenPrincipal(ctx, id)
	if aramaki.ErrorCode(err) == aramaki.ENOTFOUND {
		return aramaki.Principal{}, bad
	} else if err != nil {
		return aramaki.Principal{}, err
	}
	if subtle.ConstantTimeCompare(hash, want) != 1 || (tok.Expires != nil && !s.now().Before(*tok.Expires)) {
		return aramaki.Principal{}, bad
	}
	if u.Disabled {
		return aramaki.Principal{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "user %s is disabled", u.Name)
	}
	return aramaki.Principal{User: u.Name, UserID: u.ID, Bindings: bindings}, nil
}

// dummyHash is checked against when a user does not exist, so that a
// login takes as long for unknown users as for wrong passwords.
var dummyHash, _ = HashPassword("aramaki-no-such-user")

// AuthenticatePassword returns the principal of a user name and password.
func (s *Service) AuthenticatePassword(ctx context.Context, name, password string) (aramaki.Principal, error) {
	bad := aramaki.Errorf(aramaki.EUNAUTHORIZED, "wrong user name or password")
	if len(name) > 64 || len(password) > MaxPasswordLen {
		return aramaki.Principal{}, bad
	}
	if err := s.logins.enter(ctx, name, s.now()); err != nil {
		return aramaki.Principal{}, err
	}
	ok := false
	defer func() { s.logins.leave(name, ok, s.now()) }()
	u, hash, err := s.store.UserByName(ctx, name)
	if aramaki.ErrorCode(err) == aramaki.ENOTFOUND {
		CheckPassword(dummyHash, password)
		return aramaki.Principal{}, bad
	} else if err != nil {
		return aramaki.Principal{}, err
	}
	if !CheckPassword(hash, password) || u.Disabled {
		return aramaki.Principal{}, bad
	}
	ok = true
	return s.principal(ctx, u)
}

func (s *Service) principal(ctx context.Context, u aramaki.User) (aramaki.Principal, error) {
	if u.Disabled {
		return aramaki.Principal{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "user %s is disabled", u.Name)
	}
	bindings, err := s.store.RoleBindings(ctx, u.Name)
	if err != nil {
		return aramaki.Principal{}, err
	}
	return aramaki.Principal{User: u.Name, UserID: u.ID, Bindings: bindings}, nil
}

// Login checks a user name and password and issues a new API token.
func (s *Service) Login(ctx context.Context, name, password, tokenName string, ttl time.Duration) (NewToken, error) {
	p, err := s.AuthenticatePassword(ctx, name, password)
	if err != nil {
		return NewToken{}, err
	}
	if tokenName == "" {
		tokenName = "login"
	}
	return s.CreateToken(ctx, p, tokenName, ttl)
}

// Me describes the principal: name and roles.
type Me struct {
	User     string                `json:"user"`
	Global   aramaki.Role          `json:"global_role,omitempty"`
	Bindings []aramaki.RoleBinding `json:"roles"`
}

// WhoAmI describes the principal.
func (s *Service) WhoAmI(p aramaki.Principal) (Me, error) {
	if p.Anonymous() {
		return Me{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
	}
	b := p.Bindings
	if b == nil {
		b = []aramaki.RoleBinding{}
	}
	return Me{User: p.User, Global: p.GlobalRole(), Bindings: b}, nil
}

// CreateUser adds a user. Only admins of the whole server may.
func (s *Service) CreateUser(ctx context.Context, p aramaki.Principal, name, password string) (aramaki.User, error) {
	if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
		return aramaki.User{}, err
	}
	if err := aramaki.ValidateUserName(name); err != nil {
		return aramaki.User{}, err
	}
	if err := ValidatePassword(password); err != nil {
		return aramaki.User{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return aramaki.User{}, err
	}
	ev, err := s.event(aramaki.KindUserCreated, p.Actor(), nil, fmt.Sprintf("%s created user %s", p.User, name), map[string]string{"user": name})
	if err != nil {
		return aramaki.User{}, err
	}
	return s.store.CreateUser(ctx, name, hash, ev)
}

// SetUserDisabled locks a user out — their password and every token stop
// working at once — or lets them in again. Admins of the whole server may,
// but not on themselves.
func (s *Service) SetUserDisabled(ctx context.Context, p aramaki.Principal, name string, disabled bool) error {
	if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
		return err
	}
	if err := aramaki.ValidateUserName(name); err != nil {
		return err
	}
	if name == p.User {
		return aramaki.Errorf(aramaki.EINVALID, "you cannot disable or enable yourself")
	}
	kind, verb := aramaki.KindUserEnabled, "enabled"
	if disabled {
		kind, verb = aramaki.KindUserDisabled, "disabled"
	}
	ev, err := s.event(kind, p.Actor(), nil, fmt.Sprintf("%s %s user %s", p.User, verb, name), map[string]string{"user": name})
	if err != nil {
		return err
	}
	return s.store.SetUserDisabled(ctx, name, disabled, ev)
}

// SetUserEmail sets or (empty) clears where a user is told things meant
// for them. Admins of the whole server may, and every user for themself.
func (s *Service) SetUserEmail(ctx context.Context, p aramaki.Principal, name, email string) error {
	if name != p.User || p.Anonymous() {
		if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
			return err
		}
	}
	if err := aramaki.ValidateUserName(name); err != nil {
		return err
	}
	email = strings.TrimSpace(email)
	if email != "" {
		a, err := mail.ParseAddress(email)
		if err != nil || a.Name != "" || a.Address != email || len(email) > 254 {
			return aramaki.Errorf(aramaki.EINVALID, "%q is not an e-mail address like carol@example.com", email)
		}
	}
	summary := fmt.Sprintf("%s set the e-mail address of %s", p.User, name)
	if email == "" {
		summary = fmt.Sprintf("%s cleared the e-mail address of %s", p.User, name)
	}
	ev, err := s.event(aramaki.KindUserEmail, p.Actor(), nil, summary, map[string]string{"user": name})
	if err != nil {
		return err
	}
	return s.store.SetUserEmail(ctx, name, email, ev)
}

// Users lists all users. Only admins of the whole server may.
func (s *Service) Users(ctx context.Context, p aramaki.Principal) ([]aramaki.User, error) {
	if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
		return nil, err
	}
	return s.store.Users(ctx)
}

// ChangePassword sets the principal's own password, given the current one.
func (s *Service) ChangePassword(ctx context.Context, p aramaki.Principal, current, next string) error {
	if p.Anonymous() {
		return aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
	}
	if _, err := s.AuthenticatePassword(ctx, p.User, current); err != nil {
		return aramaki.Errorf(aramaki.EFORBIDDEN, "the current password is wrong")
	}
	if err := ValidatePassword(next); err != nil {
		return err
	}
	hash, err := HashPassword(next)
	if err != nil {
		return err
	}
	ev, err := s.event(aramaki.KindPasswordSet, p.Actor(), nil, fmt.Sprintf("%s changed their password", p.User), map[string]string{"user": p.User})
	if err != nil {
		return err
	}
	return s.store.SetPassword(ctx, p.UserID, hash, ev)
}

// NewToken is a token just made: the only time its secret is shown.
type NewToken struct {
	aramaki.Token
	Secret string `json:"token"`
}

// MaxTokenTTL bounds how long a token made through the API may live.
const MaxTokenTTL = 366 * 24 * time.Hour

// CreateToken makes an API token for the principal. ttl 0 means no expiry.
func (s *Service) CreateToken(ctx context.Context, p aramaki.Principal, name string, ttl time.Duration) (NewToken, error) {
	if p.Anonymous() {
		return NewToken{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
	}
	if name == "" || len(name) > 100 {
		return NewToken{}, aramaki.Errorf(aramaki.EINVALID, "a token needs a name of at most 100 bytes")
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return NewToken{}, aramaki.Errorf(aramaki.EINVALID, "a token may live at most %d days", int(MaxTokenTTL.Hours()/24))
	}
	id, raw, hash, err := newTokenSecret()
	if err != nil {
		return NewToken{}, err
	}
	now := s.now().UTC()
	tok := aramaki.Token{ID: id, UserID: p.UserID, Name: name, Created: now}
	if ttl > 0 {
		exp := now.Add(ttl)
		tok.Expires = &exp
	}
	ev, err := s.event(aramaki.KindTokenCreated, p.Actor(), nil, fmt.Sprintf("%s created API token %s (%s)", p.User, id, name), map[string]string{"token": id, "name": name})
	if err != nil {
		return NewToken{}, err
	}
	if err := s.store.CreateToken(ctx, tok, hash, ev); err != nil {
		return NewToken{}, err
	}
	return NewToken{Token: tok, Secret: raw}, nil
}

// Tokens lists the principal's own tokens (never their secrets).
func (s *Service) Tokens(ctx context.Context, p aramaki.Principal) ([]aramaki.Token, error) {
	if p.Anonymous() {
		return nil, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
	}
	return s.store.Tokens(ctx, p.UserID)
}

// DeleteToken revokes one of the principal's own tokens.
func (s *Service) DeleteToken(ctx context.Context, p aramaki.Principal, id string) error {
	if p.Anonymous() {
		return aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in first")
	}
	if len(id) != 16 {
		return aramaki.Errorf(aramaki.ENOTFOUND, "no token %s", id)
	}
	ev, err := s.event(aramaki.KindTokenDeleted, p.Actor(), nil, fmt.Sprintf("%s deleted API token %s", p.User, id), map[string]string{"token": id})
	if err != nil {
		return err
	}
	return s.store.DeleteToken(ctx, p.UserID, id, ev)
}

// GrantRole gives a user a role on a system (or on everything, with
// GlobalScope). Admins of the system may grant on it.
func (s *Service) GrantRole(ctx context.Context, p aramaki.Principal, user, system string, role aramaki.Role) (aramaki.RoleBinding, error) {
	if err := s.checkRoleChange(ctx, p, user, system); err != nil {
		return aramaki.RoleBinding{}, err
	}
	if !role.Valid() {
		return aramaki.RoleBinding{}, aramaki.Errorf(aramaki.EINVALID, "unknown role %q (use viewer, operator or admin)", role)
	}
	b := aramaki.RoleBinding{User: user, System: system, Role: role, CreatedBy: p.User, Created: s.now().UTC()}
	ev, err := s.event(aramaki.KindRoleGranted, p.Actor(), systemsOf(system), fmt.Sprintf("%s granted %s the %s role on %s", p.User, user, role, scopeName(system)), b)
	if err != nil {
		return aramaki.RoleBinding{}, err
	}
	return b, s.store.GrantRole(ctx, b, ev)
}

// RevokeRole takes a role granted through the API away again.
func (s *Service) RevokeRole(ctx context.Context, p aramaki.Principal, user, system string) error {
	if err := s.checkRoleChange(ctx, p, user, system); err != nil {
		return err
	}
	ev, err := s.event(aramaki.KindRoleRevoked, p.Actor(), systemsOf(system), fmt.Sprintf("%s revoked the role of %s on %s", p.User, user, scopeName(system)), map[string]string{"user": user, "system": system})
	if err != nil {
		return err
	}
	return s.store.RevokeRole(ctx, user, system, ev)
}

// RoleBindings lists API-granted roles: on one system (admins of it), or all
// (admins of the whole server) when system is empty.
func (s *Service) RoleBindings(ctx context.Context, p aramaki.Principal, system string) ([]aramaki.RoleBinding, error) {
	scope := system
	if scope == "" {
		scope = aramaki.GlobalScope
	} else if scope != aramaki.GlobalScope {
		if err := s.visible(s.Graph(), p, scope); err != nil {
			return nil, err
		}
	}
	if err := s.require(p, scope, aramaki.RoleAdmin); err != nil {
		return nil, err
	}
	all, err := s.store.RoleBindings(ctx, "")
	if err != nil {
		return nil, err
	}
	if system == "" {
		return all, nil
	}
	out := []aramaki.RoleBinding{}
	for _, b := range all {
		if b.System == system {
			out = append(out, b)
		}
	}
	return out, nil
}

func (s *Service) checkRoleChange(ctx context.Context, p aramaki.Principal, user, system string) error {
	if system == aramaki.GlobalScope {
		if err := s.require(p, system, aramaki.RoleAdmin); err != nil {
			return err
		}
	} else {
		if err := s.visible(s.Graph(), p, system); err != nil {
			return err
		}
		if err := s.requireOwner(p, system); err != nil {
			return err
		}
	}
	if err := aramaki.ValidateUserName(user); err != nil {
		return err
	}
	if _, _, err := s.store.UserByName(ctx, user); err != nil {
		return err
	}
	return nil
}

func systemsOf(system string) []string {
	if system == aramaki.GlobalScope {
		return nil
	}
	return []string{system}
}

func scopeName(system string) string {
	if system == aramaki.GlobalScope {
		return "the whole server"
	}
	return "system " + system
}
