package aramaki

import (
	"regexp"
	"strings"
)

// System is the thing being managed. Systems aggregate subsystems top-down: a
// system names its subsystems, a subsystem has no parent pointer and may be
// used by many systems. Systems come from the config repository.
type System struct {
	ID          string            `json:"id"`
	Title       string            `json:"title"`
	Category    string            `json:"category,omitempty"`
	Description string            `json:"description,omitempty"`
	Owners      []Contact         `json:"owners,omitempty"`
	Contacts    []Contact         `json:"contacts,omitempty"`
	Rules       []Rule            `json:"rules,omitempty"`
	Links       []Link            `json:"links,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Subsystems  []string          `json:"subsystems,omitempty"`
	// Public systems can be read by anyone, without logging in. Being public
	// is not inherited: each system opts in on its own.
	Public bool `json:"public,omitempty"`
	// Roles grants roles on this system (and, inherited, on everything under
	// it) to users by name.
	Roles   map[Role][]string `json:"roles,omitempty"`
	Checks  []Check           `json:"checks,omitempty"`
	Actions []ActionRef       `json:"actions,omitempty"`
	// Workflows are changes across the hosts of this system and of the
	// systems under it.
	Workflows []Workflow `json:"workflows,omitempty"`
	// Routing says who hears about alerts of this system and of everything
	// under it. Without routes, nobody is notified for this system (the
	// systems above it may still route its alerts).
	Routing []Route `json:"routing,omitempty"`
	// Peer is set on a remote system (storage@a): the peer whose system it
	// is. This server knows it only by what the peer shares of it.
	Peer string `json:"peer,omitempty"`
}

// Contact is a person or team to call about a system. Escalation lists the
// order in which contacts are tried: lower comes first.
type Contact struct {
	Name       string `json:"name"`
	Role       string `json:"role,omitempty"` // in the team's words: "on-call", "project owner"
	Email      string `json:"email,omitempty"`
	Phone      string `json:"phone,omitempty"`
	Chat       string `json:"chat,omitempty"`
	Hours      string `json:"hours,omitempty"` // when to call: "24/7", "Mon-Fri 08-18 Europe/Berlin"
	Escalation int    `json:"escalation,omitempty"`
}

// Rule tells on-call what they may touch and what to escalate, and to whom.
type Rule struct {
	Text       string `json:"text"`
	EscalateTo string `json:"escalate_to,omitempty"`
}

// Link points at a dashboard, a runbook, docs or a repository.
type Link struct {
	Title string `json:"title"`
	URL   string `json:"url"`
	Kind  string `json:"kind,omitempty"` // dashboard, runbook, docs, repository, ...
}

// Check is a probe bound to a system: a command the system's agents run
// every Interval, killed after Timeout. Its exit code is its status.
type Check struct {
	Name     string `json:"name"`
	Command  string `json:"command"`
	Interval string `json:"interval,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
	// Agents, when set, names the agents (by host name) that run the check;
	// otherwise every agent enrolled for the system runs it.
	Agents []string `json:"agents,omitempty"`
	// AlertAfter is how many bad results in a row open an alert (default
	// 1): a check that fails once in a while need not wake anyone.
	AlertAfter int `json:"alert_after,omitempty"`
}

// MaxAlertAfter bounds Check.AlertAfter.
const MaxAlertAfter = 100

// ActionRef exposes an allow-listed action on a system. The actions issue
// gives it roles, approval and parameters.
type ActionRef struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Role is who may run it on this system: operator (the default) or
	// admin.
	Role Role `json:"role,omitempty"`
	// Approval asks a second person to approve each run before it starts
	// (four eyes); break-glass runs skip it with a reason, loudly.
	Approval bool `json:"approval,omitempty"`
	// Rule is shown before running: when it is fine, whom to tell.
	Rule string `json:"rule,omitempty"`
	// Agents, when set, names the hosts (agent names) it runs on;
	// otherwise every agent of the system that allows the action.
	Agents []string `json:"agents,omitempty"`
}

// RunRole is the role needed to run the action: operator unless it says
// admin.
func (a ActionRef) RunRole() Role {
	if a.Role == RoleAdmin {
		return RoleAdmin
	}
	return RoleOperator
}

var systemIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidateSystemID reports whether id is a well-formed system id: lower-case
// letters, digits, dot, dash and underscore, starting with a letter or digit,
// at most 63 characters. Ids end up in URLs, file names and federation
// references (id@server), so they are kept plain.
func ValidateSystemID(id string) error {
	if !systemIDPattern.MatchString(id) {
		return Errorf(EINVALID, "invalid system id %q: use 1-63 lower-case letters, digits, '.', '-' or '_', starting with a letter or digit", id)
	}
	return nil
}

// Validate checks the parts of a system that do not depend on other systems.
func (s *System) Validate() error {
	if err := ValidateSystemID(s.ID); err != nil {
		return err
	}
	if strings.TrimSpace(s.Title) == "" {
		return Errorf(EINVALID, "system %s: title is required", s.ID)
	}
	for _, c := range append(append([]Contact(nil), s.Owners...), s.Contacts...) {
		if strings.TrimSpace(c.Name) == "" {
			return Errorf(EINVALID, "system %s: every owner and contact needs a name", s.ID)
		}
	}
	for _, r := range s.Rules {
		if strings.TrimSpace(r.Text) == "" {
			return Errorf(EINVALID, "system %s: a rule needs a text", s.ID)
		}
	}
	for _, l := range s.Links {
		if strings.TrimSpace(l.Title) == "" || !(strings.HasPrefix(l.URL, "https://") || strings.HasPrefix(l.URL, "http://")) {
			return Errorf(EINVALID, "system %s: a link needs a title and an http(s) URL", s.ID)
		}
	}
	for role, users := range s.Roles {
		if !role.Valid() {
			return Errorf(EINVALID, "system %s: unknown role %q (use viewer, operator or admin)", s.ID, role)
		}
		for _, u := range users {
			if err := ValidateUserName(u); err != nil {
				return Errorf(EINVALID, "system %s: role %s: %s", s.ID, role, ErrorMessage(err))
			}
		}
	}
	seen := map[string]bool{}
	for _, sub := range s.Subsystems {
		if sub == s.ID {
			return Errorf(EINVALID, "system %s: a system cannot be its own subsystem", s.ID)
		}
		if seen[sub] {
			return Errorf(EINVALID, "system %s: subsystem %s is listed twice", s.ID, sub)
		}
		seen[sub] = true
	}
	names := map[string]bool{}
	for _, c := range s.Checks {
		if c.Name == "" || c.Command == "" {
			return Errorf(EINVALID, "system %s: a check needs a name and a command", s.ID)
		}
		if ValidateSystemID(c.Name) != nil || c.Name == KeepaliveCheck {
			return Errorf(EINVALID, "system %s: invalid check name %q", s.ID, c.Name)
		}
		if _, err := SplitCommand(c.Command); err != nil {
			return Errorf(EINVALID, "system %s: check %s: %s", s.ID, c.Name, ErrorMessage(err))
		}
		if _, _, err := c.Schedule(); err != nil {
			return Errorf(EINVALID, "system %s: %s", s.ID, ErrorMessage(err))
		}
		if names[c.Name] {
			return Errorf(EINVALID, "system %s: check %s is declared twice", s.ID, c.Name)
		}
		names[c.Name] = true
	}
	workflows := map[string]bool{}
	for _, w := range s.Workflows {
		if err := w.Validate(); err != nil {
			return Errorf(EINVALID, "system %s: %s", s.ID, ErrorMessage(err))
		}
		if workflows[w.Name] {
			return Errorf(EINVALID, "system %s: workflow %s is declared twice", s.ID, w.Name)
		}
		workflows[w.Name] = true
	}
	return nil
}

// Workflow returns the workflow of the system with the name, if any.
func (s *System) Workflow(name string) (Workflow, bool) {
	for _, w := range s.Workflows {
		if w.Name == name {
			return w, true
		}
	}
	return Workflow{}, false
}
