package action

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/aramaki/aramaki"
)

// The keys of an action file: known keys only, so that a typo is an error
// rather than a silently ignored setting.
var (
	fileKeys   = []string{"actions"}
	actionKeys = []string{"name", "description", "argv", "params", "timeout", "user"}
	paramKeys  = []string{"name", "type", "description", "pattern", "min", "max", "values", "default"}
)

// fileParser reads one action file, collecting its problems.
type fileParser struct {
	name     string
	problems []Problem
}

func (f *fileParser) add(line int, format string, args ...any) {
	f.problems = append(f.problems, Problem{File: f.name, Line: line, Message: clipMessage(fmt.Sprintf(format, args...))})
}

func (f *fileParser) addAt(n *yaml.Node, format string, args ...any) {
	f.add(n.Line, format, args...)
}

// parse reads the documents of an action file: each a mapping with the
// single key actions, a list of actions.
func parse(name string, data []byte) ([]decl, []Problem) {
	f := &fileParser{name: name}
	var decls []decl
	first := map[string]int{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := decodeNode(dec, &doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line, msg := syntaxError(err, data)
			f.add(line, "invalid YAML: %s", msg)
			break
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue // an empty document
		}
		f.object(doc.Content[0], "an action file", "actions: [{name: …, argv: […]}]", fileKeys, func(_, v *yaml.Node) {
			f.list(v, "actions", func(item *yaml.Node) {
				d, ok := f.action(item)
				if !ok {
					return
				}
				if line, dup := first[d.spec.Name]; dup {
					f.add(d.line, "action %s is declared twice (first at line %d)", d.spec.Name, line)
					return
				}
				first[d.spec.Name] = d.line
				decls = append(decls, d)
			})
		})
	}
	if len(f.problems) > 0 {
		return nil, sortProblems(f.problems)
	}
	return decls, nil
}

// decodeNode reads the next document. The YAML parser is third-party code
// reading input, so a panic in it becomes a problem of the file instead of
// taking the agent down.
func decodeNode(dec *yaml.Decoder, doc *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the parser failed: %v", r)
		}
	}()
	return dec.Decode(doc)
}

// action reads one action. It returns false when the action has problems.
func (f *fileParser) action(item *yaml.Node) (decl, bool) {
	before := len(f.problems)
	a := aramaki.ActionSpec{Timeout: aramaki.DefaultRunTimeout}
	var nameNode, argvNode *yaml.Node
	paramsOK, argvOK := true, false
	if !f.object(item, "an action", "{name: flush, argv: [/usr/bin/varnishadm, ban, req.url, '~', .]}", actionKeys, func(k, v *yaml.Node) {
		switch k.Value {
		case "name":
			nameNode = v
			a.Name, _ = f.text(v, "name")
		case "description":
			a.Description, _ = f.text(v, "description")
		case "argv":
			argvNode = v
			n := len(f.problems)
			a.Argv = f.argv(v)
			argvOK = len(f.problems) == n
		case "params":
			a.Params, paramsOK = f.params(v)
		case "timeout":
			if s, ok := f.text(v, "timeout"); ok && s != "" {
				d, msg := durationOf(s)
				if msg != "" {
					f.addAt(v, "%s", msg)
				}
				a.Timeout = d
			}
		case "user":
			a.User, _ = f.text(v, "user")
			if err := (aramaki.ActionSpec{Name: stub, Argv: []string{"/" + stub}, User: a.User}).Validate(); err != nil {
				f.addAt(v, "%s", stubMessage(err))
			}
		}
	}) {
		return decl{}, false
	}

	switch {
	case !hasKey(item, "name"):
		f.addAt(item, "an action needs a name")
	case nameNode == nil:
	case a.Name == "":
		f.addAt(nameNode, "an action needs a name")
	default:
		if err := aramaki.ValidateActionName(a.Name); err != nil {
			f.addAt(nameNode, "%s", aramaki.ErrorMessage(err))
		}
	}
	switch {
	case !hasKey(item, "argv"):
		f.addAt(item, "an action needs an argv: the absolute path of a program and its arguments")
	case argvOK:
		err := (aramaki.ActionSpec{Name: stub, Argv: a.Argv[:1]}).Validate()
		if err == nil && paramsOK {
			err = (aramaki.ActionSpec{Name: stub, Argv: a.Argv, Params: a.Params}).Validate()
		}
		if err != nil {
			f.addAt(argvNode, "%s", stubMessage(err))
		}
	}
	if len(f.problems) > before {
		return decl{}, false
	}
	// Whatever the checks above missed, the domain has the last word.
	if err := a.Validate(); err != nil {
		f.addAt(item, "%s", aramaki.ErrorMessage(err))
		return decl{}, false
	}
	return decl{spec: a, file: f.name, line: nameNode.Line}, true
}

// stub names the action of the partial declarations checked on their own,
// so that each problem gets the line of what it is about.
const stub = "x"

// stubMessage is the domain's message about a partial declaration, without
// the stub's name.
func stubMessage(err error) string {
	return strings.TrimPrefix(aramaki.ErrorMessage(err), "action "+stub+": ")
}

// argv reads an argument vector: a list of texts, each one argument.
func (f *fileParser) argv(n *yaml.Node) []string {
	if f.alias(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		f.addAt(n, "argv must be a list of arguments like [/usr/bin/systemctl, restart, \"{unit}\"], not %s: it is never split into words or run through a shell", describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		f.addAt(n, "argv must not be empty: it starts with the absolute path of a program")
		return nil
	}
	var out []string
	for i, item := range n.Content {
		switch {
		case f.alias(item):
		case item.Kind == yaml.MappingNode && item.Style&yaml.FlowStyle != 0:
			f.addAt(item, "argument %d of argv is a mapping: write a placeholder in quotes, like \"{name}\"", i+1)
		case item.Kind != yaml.ScalarNode:
			f.addAt(item, "argument %d of argv must be a text, not %s", i+1, describe(item))
		case strings.ContainsRune(item.Value, 0):
			f.addAt(item, "argument %d of argv must not contain NUL characters", i+1)
		default:
			out = append(out, item.Value) // as written: 010 stays 010, null stays null
		}
	}
	return out
}

// params reads the parameters of an action. It returns false when one has
// problems.
func (f *fileParser) params(n *yaml.Node) ([]aramaki.Param, bool) {
	before := len(f.problems)
	var out []aramaki.Param
	first := map[string]int{}
	f.list(n, "params", func(item *yaml.Node) {
		p, nameLine, ok := f.param(item)
		if !ok {
			return
		}
		if line, dup := first[p.Name]; dup {
			f.add(nameLine, "parameter %s is declared twice (first at line %d)", p.Name, line)
			return
		}
		first[p.Name] = nameLine
		out = append(out, p)
	})
	if len(out) > aramaki.MaxParams {
		f.addAt(n, "an action may have at most %d parameters, not %d", aramaki.MaxParams, len(out))
	}
	return out, len(f.problems) == before
}

// param reads one parameter.
func (f *fileParser) param(item *yaml.Node) (aramaki.Param, int, bool) {
	before := len(f.problems)
	p := aramaki.Param{Type: aramaki.ParamString}
	var nameNode, defaultNode, maxNode *yaml.Node
	if !f.object(item, "a parameter", "{name: unit, type: enum, values: [varnish, nginx]}", paramKeys, func(k, v *yaml.Node) {
		switch k.Value {
		case "name":
			nameNode = v
			p.Name, _ = f.text(v, "parameter name")
		case "type":
			t, _ := f.text(v, "type")
			p.Type = aramaki.ParamType(t)
			if !slices.Contains([]aramaki.ParamType{aramaki.ParamString, aramaki.ParamInt, aramaki.ParamBool, aramaki.ParamEnum}, p.Type) {
				f.addAt(v, "unknown parameter type %q (string, int, bool or enum)", clip(t))
			}
		case "description":
			p.Description, _ = f.text(v, "description")
		case "pattern":
			p.Pattern, _ = f.text(v, "pattern")
			if _, err := regexp.Compile(`^(?:` + p.Pattern + `)$`); err != nil {
				f.addAt(v, "the pattern does not compile: %v", err)
			}
		case "min":
			p.Min = f.integer(v, "min")
		case "max":
			maxNode = v
			p.Max = f.integer(v, "max")
		case "values":
			f.list(v, "values", func(item *yaml.Node) {
				if item.Kind != yaml.ScalarNode {
					f.addAt(item, "an enum value must be a text, not %s", describe(item))
					return
				}
				if item.Value == "" || strings.HasPrefix(item.Value, "-") || len(item.Value) > aramaki.MaxParamValue {
					f.addAt(item, "enum value %q must be non-empty, not start with - and be at most %d bytes", clip(item.Value), aramaki.MaxParamValue)
					return
				}
				p.Values = append(p.Values, item.Value)
			})
		case "default":
			if !isNull(v) {
				defaultNode = v
				if v.Kind != yaml.ScalarNode {
					f.addAt(v, "default must be a text, not %s", describe(v))
				} else {
					p.Default = &v.Value
				}
			}
		}
	}) {
		return p, 0, false
	}
	switch {
	case !hasKey(item, "name"):
		f.addAt(item, "a parameter needs a name")
		return p, 0, false
	case nameNode == nil:
		return p, 0, false // an alias, reported
	case p.Name == "":
		f.addAt(nameNode, "a parameter needs a name")
		return p, 0, false
	}
	if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
		f.addAt(maxNode, "max %d is below min %d", *p.Max, *p.Min)
	}
	if len(f.problems) > before {
		return p, nameNode.Line, false
	}
	// The default is checked against the rest, at its own line.
	def := p.Default
	p.Default = nil
	check := aramaki.ActionSpec{Name: stub, Argv: []string{"/" + stub}, Params: []aramaki.Param{p}}
	if err := check.Validate(); err != nil {
		f.addAt(item, "%s", stubMessage(err))
		return p, nameNode.Line, false
	}
	if def != nil {
		if _, err := check.Values(map[string]string{p.Name: *def}); err != nil {
			f.addAt(defaultNode, "the default %s", aramaki.ErrorMessage(err))
			return p, nameNode.Line, false
		}
		p.Default = def
	}
	return p, nameNode.Line, true
}

// object reads a mapping with the given keys, reporting anything else. It
// returns false when n is not a mapping at all.
func (f *fileParser) object(n *yaml.Node, what, example string, keys []string, fn func(k, v *yaml.Node)) bool {
	if f.alias(n) {
		return false
	}
	if n.Kind != yaml.MappingNode {
		f.addAt(n, "%s must be a mapping like %s, not %s", what, example, describe(n))
		return false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge":
			f.addAt(k, "merge keys (<<) are not supported: write the keys out")
			continue
		case k.Kind != yaml.ScalarNode:
			f.addAt(k, "a key must be a plain word, not %s", describe(k))
			continue
		case seen[k.Value] != 0:
			f.addAt(k, "key %q is given twice (first at line %d)", clip(k.Value), seen[k.Value])
			continue
		}
		seen[k.Value] = k.Line
		if !slices.Contains(keys, k.Value) {
			f.addAt(k, "unknown key %q in %s (known keys: %s)", clip(k.Value), strings.TrimPrefix(strings.TrimPrefix(what, "an "), "a "), strings.Join(keys, ", "))
			continue
		}
		if f.alias(v) {
			continue
		}
		fn(k, v)
	}
	return true
}

// hasKey reports whether a mapping has the key, whatever its value.
func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return true
		}
	}
	return false
}

// list calls fn for each item of a list; an absent or empty value is an
// empty list.
func (f *fileParser) list(n *yaml.Node, what string, fn func(item *yaml.Node)) {
	if f.alias(n) || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		f.addAt(n, "%s must be a list, not %s", what, describe(n))
		return
	}
	for _, item := range n.Content {
		if !f.alias(item) {
			fn(item)
		}
	}
}

// text reads a scalar as written: numbers and booleans are text too. An
// absent value is empty. It returns false when n is not a scalar.
func (f *fileParser) text(n *yaml.Node, what string) (string, bool) {
	switch {
	case isNull(n):
		return "", true
	case n.Kind != yaml.ScalarNode:
		f.addAt(n, "%s must be a text, not %s", what, describe(n))
		return "", false
	case strings.ContainsRune(n.Value, 0):
		f.addAt(n, "%s must not contain NUL characters", what)
		return "", false
	}
	return n.Value, true
}

func (f *fileParser) integer(n *yaml.Node, what string) *int64 {
	var i int64
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" && n.Decode(&i) == nil {
		return &i
	}
	f.addAt(n, "%s must be a whole number, not %s", what, describe(n))
	return nil
}

// alias reports an alias (*name). Aliases are refused rather than followed:
// following them lets a small file expand into a huge one.
func (f *fileParser) alias(n *yaml.Node) bool {
	if n.Kind != yaml.AliasNode {
		return false
	}
	f.addAt(n, "aliases (*%s) are not supported: write the value out", clip(n.Value))
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

// clip shortens what a file says for a message about it.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return truncateUTF8(s, 61) + "..."
}

// clipMessage bounds a message: the domain's messages quote values whole.
func clipMessage(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= 300 {
		return s
	}
	return truncateUTF8(s, 297) + "..."
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// The lines of yaml.v3's errors need correcting, as configrepo does for the
// server's config repository (which the agent does not link).
var yamlErrorLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserErrors are the messages of the YAML parser proper (not of its
// scanner or reader). yaml.v3 reports their lines counted from 0, and none
// at all for the first line.
var yamlParserErrors = []string{
	"did not find expected key",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected ',' or ",
	"did not find expected <",
	"found undefined tag handle",
	"found duplicate %",
	"found incompatible YAML document",
}

// yamlReaderErrors are the messages about the encoding of the input, which
// come without a line.
var yamlReaderErrors = []string{
	"invalid leading UTF-8 octet", "incomplete UTF-8 octet sequence", "invalid trailing UTF-8 octet",
	"invalid length of a UTF-8 sequence", "invalid Unicode character", "control characters are not allowed",
}

// syntaxError returns the line and message of an error of the YAML parser.
func syntaxError(err error, data []byte) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlErrorLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	switch {
	case slices.ContainsFunc(yamlParserErrors, func(p string) bool { return strings.HasPrefix(msg, p) }):
		// At the end of the input, that is one too many.
		line = min(line+1, lineCount(data))
	case slices.Contains(yamlReaderErrors, msg):
		line = unreadableLine(data)
		if strings.Contains(msg, "UTF-8") {
			msg = "the text is not valid UTF-8"
		}
	case line == 0 && !strings.HasPrefix(msg, "the parser failed") && !strings.HasPrefix(msg, "input error"):
		line = 1 // the scanner reports no line for the first one
	}
	return line, msg
}

// lineCount is the number of lines of data, YAML's way: \n, \r\n and \r
// end a line.
func lineCount(data []byte) int {
	return 1 + bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n"))
}

// unreadableLine returns the line of the first character YAML does not
// allow, or 0.
func unreadableLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		printable := r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7E || r == 0x85 ||
			r >= 0xA0 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
		if r == utf8.RuneError && n <= 1 || !printable {
			return line
		}
		if r == '\n' {
			line++
		}
		i += n
	}
	return 0
}
