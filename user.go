package aramaki

import (
	"regexp"
	"time"
)

// Role is what a user may do on a system and, inherited, on everything
// under it. Roles are ordered: an admin may do what an operator may, an
// operator what a viewer may.
type Role string

const (
	RoleNone     Role = ""
	RoleViewer   Role = "viewer"   // read status, timeline, rules
	RoleOperator Role = "operator" // also post notes, run allowed actions, acknowledge
	RoleAdmin    Role = "admin"    // also grant roles, reload config, manage users
)

// GlobalScope is the system id of a role binding that covers every system
// and the server itself.
const GlobalScope = "*"

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of the named roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// AtLeast reports whether r includes what min allows.
func (r Role) AtLeast(min Role) bool { return r.rank() >= min.rank() && r.rank() > 0 }

// Max returns the more powerful of two roles.
func (r Role) Max(o Role) Role {
	if o.rank() > r.rank() {
		return o
	}
	return r
}

// User is a person (or a robot) who logs in.
type User struct {
	ID       int64     `json:"id"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Disabled bool      `json:"disabled,omitempty"`
	// Email is where the user is told things meant for them, such as a
	// silence they made that is about to end.
	Email string `json:"email,omitempty"`
}

// Token is an API token. The secret is shown once, at creation; the store
// keeps only its hash.
type Token struct {
	ID       string     `json:"id"`
	UserID   int64      `json:"user_id"`
	Name     string     `json:"name"`
	Created  time.Time  `json:"created"`
	Expires  *time.Time `json:"expires,omitempty"`
	LastUsed *time.Time `json:"last_used,omitempty"`
}

// RoleBinding grants a role on a system (or GlobalScope) to a user through
// the API. Roles declared in the config repository live on the systems.
type RoleBinding struct {
	User      string    `json:"user"`
	System    string    `json:"system"`
	Role      Role      `json:"role"`
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
}

// Principal is who is asking: a user with the role bindings granted through
// the API, or nobody (anonymous).
type Principal struct {
	User     string
	UserID   int64
	Bindings []RoleBinding
}

// Anonymous reports whether nobody is logged in.
func (p Principal) Anonymous() bool { return p.User == "" }

// Actor is how the principal appears on the timeline.
func (p Principal) Actor() string {
	if p.Anonymous() {
		return "anonymous"
	}
	return "user:" + p.User
}

// GlobalRole is the role the principal holds on every system.
func (p Principal) GlobalRole() Role {
	r := RoleNone
	for _, b := range p.Bindings {
		if b.System == GlobalScope {
			r = r.Max(b.Role)
		}
	}
	return r
}

// RoleOn returns the principal's role on a system: the strongest of the
// global role and every role granted on the system or on any system that
// uses it, directly or further up, whether granted in the config repository
// or through the API.
func (g *Graph) RoleOn(p Principal, systemID string) Role {
	if p.Anonymous() || g.System(systemID) == nil {
		return RoleNone
	}
	role := p.GlobalRole()
	for _, id := range append([]string{systemID}, g.Ancestors(systemID)...) {
		for _, b := range p.Bindings {
			if b.System == id {
				role = role.Max(b.Role)
			}
		}
		for r, users := range g.System(id).Roles {
			for _, u := range users {
				if u == p.User {
					role = role.Max(r)
				}
			}
		}
	}
	return role
}

// CanView reports whether the principal may read a system: with any role on
// it, or anonymously when the system is public.
func (g *Graph) CanView(p Principal, systemID string) bool {
	s := g.System(systemID)
	if s == nil {
		return false
	}
	return s.Public || g.RoleOn(p, systemID).AtLeast(RoleViewer)
}

// Visible returns the ids of all systems the principal may read, ordered by id.
func (g *Graph) Visible(p Principal) []string {
	var out []string
	for _, id := range g.ids {
		if g.CanView(p, id) {
			out = append(out, id)
		}
	}
	return out
}

var userNamePattern = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)

// ValidateUserName checks a user name: 1-64 lower-case letters, digits,
// '.', '-' or '_', starting with a letter.
func ValidateUserName(name string) error {
	if !userNamePattern.MatchString(name) {
		return Errorf(EINVALID, "invalid user name %q: use 1-64 lower-case letters, digits, '.', '-' or '_', starting with a letter", name)
	}
	return nil
}
