package configrepo

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"gopkg.in/yaml.v3"
)

// The YAML of a system is read node by node rather than decoded into structs:
// that way every problem gets the line it is on, all problems of a document
// are found in one go, and the messages speak of the file's keys rather than
// of Go types.

// shape describes a mapping the format expects.
type shape struct {
	name    string // "owner"
	a       string // "an owner", to begin a sentence
	keys    []string
	example string // how one looks, for the message when something else is written
}

var (
	systemShape = shape{"system", "a system", []string{
		"id", "title", "category", "description", "owners", "contacts", "rules", "links",
		"labels", "subsystems", "public", "roles", "checks", "actions", "workflows", "routing",
	}, "{id: …, title: …}"}
	ownerShape   = shape{"owner", "an owner", contactKeys, "{name: …, email: …}"}
	contactShape = shape{"contact", "a contact", contactKeys, "{name: …, phone: …}"}
	ruleShape    = shape{"rule", "a rule", []string{"text", "escalate_to"}, "{text: …, escalate_to: …}"}
	linkShape    = shape{"link", "a link", []string{"title", "url", "kind"}, "{title: …, url: …}"}
	checkShape   = shape{"check", "a check", []string{"name", "command", "interval", "timeout", "agents", "alert_after"}, "{name: …, command: …}"}
	routeShape   = shape{"route", "a route", []string{"contact", "via", "severities", "hours", "after", "forward"}, "{contact: …, severities: [critical]}"}
	actionShape  = shape{"action", "an action", []string{"name", "description", "role", "approval", "rule", "agents"}, "{name: flush-varnish, rule: …}"}
	labelsShape  = shape{"labels", "labels", nil, "{customer: example-corp, env: production}"}
	rolesShape   = shape{"roles", "roles", nil, "{operator: [bob], viewer: [carol]}"}

	contactKeys = []string{"name", "role", "email", "phone", "chat", "hours", "escalation"}
)

// fileParser reads the documents of one file.
type fileParser struct {
	p    *parser
	name string
}

func (f *fileParser) add(n *yaml.Node, format string, args ...any) {
	f.p.add(f.name, n.Line, format, args...)
}

// system reads one document. It returns nil when the document is not a
// system at all; otherwise the declaration, even when it has problems, so
// that its id still counts for the checks across systems.
func (f *fileParser) system(n *yaml.Node) *decl {
	before := len(f.p.problems)
	if f.alias(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		f.add(n, "a system must be a mapping with at least id and title, like %s, not %s", systemShape.example, describe(n))
		return nil
	}
	d := &decl{file: f.name, line: n.Line, idLine: n.Line}
	s := &d.sys

	// The id comes first, wherever it is written, so that the other keys
	// can be checked against it.
	var idNode, titleNode *yaml.Node
	titleWrong := false // reported already
	var routes []routeDecl
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "id" {
			idNode = n.Content[i+1]
			break
		}
	}
	if idNode != nil {
		d.idLine = idNode.Line
		if id, ok := f.text(idNode, "id"); !ok {
			idNode = nil // reported already
		} else if strings.TrimSpace(id) == "" {
			f.add(idNode, "a system needs an id")
		} else if err := aramaki.ValidateSystemID(id); err != nil {
			f.add(idNode, "%s", aramaki.ErrorMessage(aramaki.ValidateSystemID(clip(id))))
			s.ID = id
		} else {
			s.ID = id
		}
	} else {
		f.add(n, "a system needs an id")
	}

	f.mapping(n, systemShape, func(k, v *yaml.Node) {
		switch k.Value {
		case "id":
			// read above
		case "title":
			var ok bool
			if s.Title, ok = f.text(v, "title"); ok {
				titleNode = v
			} else {
				titleWrong = true
			}
		case "category":
			s.Category, _ = f.text(v, "category")
		case "description":
			s.Description, _ = f.text(v, "description")
		case "owners":
			s.Owners = f.contacts(v, "owners", ownerShape)
		case "contacts":
			s.Contacts = f.contacts(v, "contacts", contactShape)
		case "rules":
			s.Rules = f.rules(v)
		case "links":
			s.Links = f.links(v)
		case "labels":
			s.Labels = f.labels(v)
		case "subsystems":
			s.Subsystems, d.subRefs = f.subsystems(v, s.ID)
		case "public":
			s.Public = f.boolean(v, "public")
		case "roles":
			s.Roles = f.roles(v)
		case "checks":
			s.Checks = f.checks(v)
		case "actions":
			s.Actions = f.actions(v)
		case "workflows":
			s.Workflows = f.workflows(v, d)
		case "routing":
			routes = f.routes(v)
		}
	})
	// Routes name the system's owners and contacts, wherever those are
	// written, so they are checked once the whole system is read.
	s.Routing, d.forwards = f.checkRoutes(s, routes)
	switch {
	case titleWrong:
	case titleNode == nil:
		f.add(n, "a system needs a title")
	case strings.TrimSpace(s.Title) == "":
		f.add(titleNode, "a system needs a title")
	}

	// What the domain checks is checked above, each at its line. Should the
	// domain come to check more, the system is still refused here, at the
	// line of the system.
	if len(f.p.problems) == before {
		if err := s.Validate(); err != nil {
			f.add(n, "%s", aramaki.ErrorMessage(err))
		}
	}
	return d
}

func (f *fileParser) contacts(v *yaml.Node, key string, sh shape) []aramaki.Contact {
	var out []aramaki.Contact
	f.list(v, key, func(item *yaml.Node) {
		var c aramaki.Contact
		if !f.object(item, sh, func(k, v *yaml.Node) {
			switch k.Value {
			case "name":
				c.Name, _ = f.text(v, "name")
			case "role":
				c.Role, _ = f.text(v, "role")
			case "email":
				c.Email, _ = f.text(v, "email")
			case "phone":
				c.Phone, _ = f.text(v, "phone")
			case "chat":
				c.Chat, _ = f.text(v, "chat")
			case "hours":
				c.Hours, _ = f.text(v, "hours")
			case "escalation":
				if n, ok := f.integer(v, "escalation"); ok && n < 0 {
					f.add(v, "escalation must be 0 or more, not %d", n)
				} else {
					c.Escalation = n
				}
			}
		}) {
			return
		}
		if strings.TrimSpace(c.Name) == "" {
			f.add(item, "%s needs a name", sh.a)
		}
		out = append(out, c)
	})
	return out
}

func (f *fileParser) rules(v *yaml.Node) []aramaki.Rule {
	var out []aramaki.Rule
	f.list(v, "rules", func(item *yaml.Node) {
		var r aramaki.Rule
		if !f.object(item, ruleShape, func(k, v *yaml.Node) {
			switch k.Value {
			case "text":
				r.Text, _ = f.text(v, "text")
			case "escalate_to":
				r.EscalateTo, _ = f.text(v, "escalate_to")
			}
		}) {
			return
		}
		if strings.TrimSpace(r.Text) == "" {
			f.add(item, "a rule needs a text")
		}
		out = append(out, r)
	})
	return out
}

func (f *fileParser) links(v *yaml.Node) []aramaki.Link {
	var out []aramaki.Link
	f.list(v, "links", func(item *yaml.Node) {
		var l aramaki.Link
		var urlNode *yaml.Node
		if !f.object(item, linkShape, func(k, v *yaml.Node) {
			switch k.Value {
			case "title":
				l.Title, _ = f.text(v, "title")
			case "url":
				urlNode = v
				l.URL, _ = f.text(v, "url")
			case "kind":
				l.Kind, _ = f.text(v, "kind")
			}
		}) {
			return
		}
		if strings.TrimSpace(l.Title) == "" {
			f.add(item, "a link needs a title")
		}
		if urlNode == nil || l.URL == "" {
			f.add(item, "a link needs a url")
		} else if !validURL(l.URL) {
			f.add(urlNode, "url %q is not an http:// or https:// URL", clip(l.URL))
		}
		out = append(out, l)
	})
	return out
}

// validURL reports whether s is an absolute http(s) URL with a host: links
// end up as href attributes, so nothing else (javascript:, data:) passes.
func validURL(s string) bool {
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Host != ""
}

func (f *fileParser) labels(v *yaml.Node) map[string]string {
	out := map[string]string{}
	f.object(v, labelsShape, func(k, v *yaml.Node) {
		if strings.TrimSpace(k.Value) == "" {
			f.add(k, "a label needs a name")
			return
		}
		if name, ok := f.text(k, "a label name"); ok {
			out[name], _ = f.text(v, "the value of label "+clip(name))
		}
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// subsystems returns the references as written and the well-formed local
// ones, with their lines, for the checks across systems.
func (f *fileParser) subsystems(v *yaml.Node, self string) ([]string, []ref) {
	var ids []string
	var refs []ref
	first := map[string]int{}
	f.list(v, "subsystems", func(item *yaml.Node) {
		id, ok := f.text(item, "a subsystem")
		if !ok {
			return
		}
		ids = append(ids, id)
		switch {
		case strings.TrimSpace(id) == "":
			f.add(item, "a subsystem needs an id")
		case strings.Contains(id, "@"):
			// A peer's system: whether the peer shares it is known at run
			// time, not from the repository.
			if err := aramaki.ValidateSystemRef(id); err != nil {
				f.add(item, "subsystem %s: a peer's system is written system@peer: %s", clip(id), aramaki.ErrorMessage(err))
			} else if first[id] != 0 {
				f.add(item, "subsystem %s is listed twice (first at line %d)", id, first[id])
			} else {
				first[id] = item.Line
			}
		case aramaki.ValidateSystemID(id) != nil:
			f.add(item, "%s", aramaki.ErrorMessage(aramaki.ValidateSystemID(clip(id))))
		case id == self:
			f.add(item, "a system cannot be its own subsystem")
		case first[id] != 0:
			f.add(item, "subsystem %s is listed twice (first at line %d)", id, first[id])
		default:
			first[id] = item.Line
			refs = append(refs, ref{id: id, line: item.Line})
		}
	})
	return ids, refs
}

func (f *fileParser) roles(v *yaml.Node) map[aramaki.Role][]string {
	out := map[aramaki.Role][]string{}
	f.object(v, rolesShape, func(k, v *yaml.Node) {
		role := aramaki.Role(k.Value)
		if !role.Valid() {
			f.add(k, "unknown role %q (use viewer, operator or admin)", clip(k.Value))
			return
		}
		var users []string
		f.list(v, "the users of role "+k.Value, func(item *yaml.Node) {
			u, ok := f.text(item, "a user name")
			if !ok {
				return
			}
			if strings.TrimSpace(u) == "" {
				f.add(item, "a user name must not be empty")
				return
			}
			users = append(users, u)
		})
		out[role] = users
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

func (f *fileParser) checks(v *yaml.Node) []aramaki.Check {
	var out []aramaki.Check
	first := map[string]int{}
	f.list(v, "checks", func(item *yaml.Node) {
		var c aramaki.Check
		if !f.object(item, checkShape, func(k, v *yaml.Node) {
			switch k.Value {
			case "name":
				c.Name, _ = f.text(v, "name")
			case "command":
				c.Command, _ = f.text(v, "command")
				if _, err := aramaki.SplitCommand(c.Command); err != nil && strings.TrimSpace(c.Command) != "" {
					f.add(v, "check command: %s", aramaki.ErrorMessage(err))
				}
			case "agents":
				f.list(v, "agents", func(item *yaml.Node) {
					if name, ok := f.text(item, "agent name"); ok {
						c.Agents = append(c.Agents, name)
					}
				})
			case "interval":
				c.Interval, _ = f.text(v, "interval")
				f.duration(v, "interval", c.Interval)
			case "timeout":
				c.Timeout, _ = f.text(v, "timeout")
				f.duration(v, "timeout", c.Timeout)
			case "alert_after":
				if n, ok := f.integer(v, "alert_after"); ok && (n < 1 || n > aramaki.MaxAlertAfter) {
					f.add(v, "alert_after must be from 1 to %d results in a row, not %d", aramaki.MaxAlertAfter, n)
				} else {
					c.AlertAfter = n
				}
			}
		}) {
			return
		}
		switch {
		case strings.TrimSpace(c.Name) == "" || strings.TrimSpace(c.Command) == "":
			f.add(item, "a check needs a name and a command")
		case aramaki.ValidateSystemID(c.Name) != nil:
			f.add(item, "invalid check name %s: use 1-63 lower-case letters, digits, '.', '-' or '_'", clip(c.Name))
		case first[c.Name] != 0:
			f.add(item, "check %s is declared twice (first at line %d)", clip(c.Name), first[c.Name])
		default:
			first[c.Name] = item.Line
		}
		out = append(out, c)
	})
	return out
}

func (f *fileParser) duration(v *yaml.Node, key, s string) {
	if s == "" {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		f.add(v, "%s %q is not a duration (write it like 30s, 5m or 1h30m)", key, clip(s))
	} else if d <= 0 {
		f.add(v, "%s must be longer than 0", key)
	}
}

func (f *fileParser) actions(v *yaml.Node) []aramaki.ActionRef {
	var out []aramaki.ActionRef
	first := map[string]int{}
	f.list(v, "actions", func(item *yaml.Node) {
		var a aramaki.ActionRef
		if !f.object(item, actionShape, func(k, v *yaml.Node) {
			switch k.Value {
			case "name":
				a.Name, _ = f.text(v, "name")
				if a.Name != "" && aramaki.ValidateActionName(a.Name) != nil {
					f.add(v, "action name %q must be lower-case letters, digits, - and _ (at most 63), as the hosts declare it", clip(a.Name))
				}
			case "description":
				a.Description, _ = f.text(v, "description")
			case "role":
				if r, ok := f.text(v, "role"); ok {
					switch aramaki.Role(r) {
					case aramaki.RoleOperator, aramaki.RoleAdmin:
						a.Role = aramaki.Role(r)
					default:
						f.add(v, "role %q: actions are run by operator (the default) or admin", clip(r))
					}
				}
			case "approval":
				a.Approval = f.boolean(v, "approval")
			case "rule":
				if a.Rule, _ = f.text(v, "rule"); len(a.Rule) > aramaki.MaxReasonLen {
					f.add(v, "the rule is longer than %d characters", aramaki.MaxReasonLen)
				}
			case "agents":
				f.list(v, "agents", func(item *yaml.Node) {
					if name, ok := f.text(item, "agent name"); ok {
						a.Agents = append(a.Agents, name)
					}
				})
			}
		}) {
			return
		}
		switch {
		case strings.TrimSpace(a.Name) == "":
			f.add(item, "an action needs a name")
		case first[a.Name] != 0:
			f.add(item, "action %s is declared twice (first at line %d)", clip(a.Name), first[a.Name])
		default:
			first[a.Name] = item.Line
		}
		out = append(out, a)
	})
	return out
}

// object reads a mapping of the given shape, reporting anything else. It
// returns false when n is not a mapping at all.
func (f *fileParser) object(n *yaml.Node, sh shape, fn func(k, v *yaml.Node)) bool {
	if f.alias(n) || isNull(n) {
		return false
	}
	if n.Kind != yaml.MappingNode {
		if sh.keys == nil {
			f.add(n, "%s must be a mapping like %s, not %s", sh.name, sh.example, describe(n))
		} else {
			f.add(n, "%s must be a mapping like %s, not %s", sh.a, sh.example, describe(n))
		}
		return false
	}
	f.mapping(n, sh, fn)
	return true
}

// mapping calls fn for each key of a mapping, in order, reporting keys that
// are not plain, not known (when sh lists keys) or given twice.
func (f *fileParser) mapping(n *yaml.Node, sh shape, fn func(k, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge":
			f.add(k, "merge keys (<<) are not supported: write the keys out")
			continue
		case k.Kind != yaml.ScalarNode:
			f.add(k, "a key must be a plain word, not %s", describe(k))
			continue
		case seen[k.Value] != 0:
			f.add(k, "key %q is given twice (first at line %d)", clip(k.Value), seen[k.Value])
			continue
		}
		seen[k.Value] = k.Line
		if sh.keys != nil && !slices.Contains(sh.keys, k.Value) {
			f.add(k, "%s", unknownKey(k.Value, sh))
			continue
		}
		if f.alias(v) {
			continue
		}
		fn(k, v)
	}
}

func unknownKey(key string, sh shape) string {
	key = clip(key)
	best, bestDist := "", 3 // suggest only keys within two edits
	for _, k := range sh.keys {
		if d := editDistance(strings.ToLower(key), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key %q in %s (did you mean %s?)", key, sh.name, best)
	}
	return fmt.Sprintf("unknown key %q in %s (known keys: %s)", key, sh.name, strings.Join(sh.keys, ", "))
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// list calls fn for each item of a list; an absent or empty value is an
// empty list.
func (f *fileParser) list(n *yaml.Node, what string, fn func(item *yaml.Node)) {
	if f.alias(n) || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		f.add(n, "%s must be a list, not %s", what, describe(n))
		return
	}
	for _, item := range n.Content {
		if !f.alias(item) {
			fn(item)
		}
	}
}

// text reads a scalar as written: numbers and booleans are text too
// ("phone: 0301234", "version: 1.10"). An absent value is empty. It returns
// false when n is not a scalar.
func (f *fileParser) text(n *yaml.Node, what string) (string, bool) {
	switch {
	case f.alias(n):
		return "", false
	case isNull(n):
		return "", true
	case n.Kind != yaml.ScalarNode:
		f.add(n, "%s must be a text, not %s", what, describe(n))
		return "", false
	case strings.ContainsRune(n.Value, 0):
		// Databases refuse NUL in text; refuse it here, with a line.
		f.add(n, "%s must not contain NUL characters", what)
		return "", false
	}
	return n.Value, true
}

func (f *fileParser) integer(n *yaml.Node, what string) (int, bool) {
	if f.alias(n) || isNull(n) {
		return 0, false
	}
	var i int
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" && n.Decode(&i) == nil {
		return i, true
	}
	f.add(n, "%s must be a whole number, not %s", what, describe(n))
	return 0, false
}

func (f *fileParser) boolean(n *yaml.Node, what string) bool {
	if f.alias(n) || isNull(n) {
		return false
	}
	var b bool
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" && n.Decode(&b) == nil {
		return b
	}
	f.add(n, "%s must be true or false, not %s", what, describe(n))
	return false
}

// alias reports an alias (*name). Aliases are refused rather than followed:
// following them lets a small file expand into a huge one.
func (f *fileParser) alias(n *yaml.Node) bool {
	if n.Kind != yaml.AliasNode {
		return false
	}
	f.add(n, "aliases (*%s) are not supported: write the value out", clip(n.Value))
	return true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what was written instead of what was expected.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(clip(n.Value))
	}
	return "something else"
}
