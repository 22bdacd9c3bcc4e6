package configrepo

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aramaki/aramaki"
	"gopkg.in/yaml.v3"
)

// Limits on what a commit may hold. The config repository is input like any
// other: whoever can push to it must not be able to exhaust the server's
// memory.
const (
	MaxFileSize  = 1 << 20  // bytes in one system file
	MaxFiles     = 10000    // system files in one commit
	MaxTotalSize = 32 << 20 // bytes in all system files of one commit
)

// systemsDir is the directory of the repository that holds the systems.
const systemsDir = "systems"

// Problem is one thing wrong with a commit, at a place in one of its files.
type Problem struct {
	File    string // path in the repository: "systems/webshop.yaml"
	Line    int    // 1-based; 0 when the problem concerns the whole file
	Message string
}

// String formats the problem as "file:line: message", the way compilers do,
// leaving out what is unknown.
func (p Problem) String() string {
	switch {
	case p.File == "":
		return p.Message
	case p.Line <= 0:
		return p.File + ": " + p.Message
	}
	return p.File + ":" + strconv.Itoa(p.Line) + ": " + p.Message
}

// IsSystemFile reports whether the file at name (a slash-separated path from
// the root of the repository) declares systems: any .yaml or .yml file at any
// depth under systems/.
func IsSystemFile(name string) bool {
	if !strings.HasPrefix(name, systemsDir+"/") {
		return false
	}
	ext := strings.ToLower(path.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// Parse reads the systems and notifiers declared in the files of one commit,
// keyed by their slash-separated path from the root of the repository:
// system files (see IsSystemFile) and notifiers.yaml at the root; other files
// are ignored. It checks everything that can be checked without a running
// server: YAML syntax, keys and types, each system on its own
// (aramaki.System.Validate), ids declared twice, references to unknown
// subsystems and cycles, and what routes name: contacts, notifiers and the
// systems they forward to. It reports every problem it finds, ordered by
// file and line; the snapshot, without its commit, holds the systems
// (ordered by id) and the notifiers (ordered by name) only when there is
// none, and then aramaki.NewGraph accepts the systems.
func Parse(files map[string][]byte) (aramaki.ConfigSnapshot, []Problem) {
	return parse(files, nil)
}

// parse is Parse with problems found before, while reading the files. Those
// mean files are missing, so references to what they may declare are not
// reported as unknown.
func parse(files map[string][]byte, pre []Problem) (aramaki.ConfigSnapshot, []Problem) {
	var names []string
	total := 0
	for name, data := range files {
		if IsSystemFile(name) {
			names = append(names, name)
			total += len(data)
		}
	}
	if len(names) > MaxFiles {
		return aramaki.ConfigSnapshot{}, []Problem{tooManyFiles(len(names))}
	}
	if total > MaxTotalSize {
		return aramaki.ConfigSnapshot{}, []Problem{tooLarge(int64(total))}
	}
	slices.Sort(names)

	p := &parser{problems: pre, notifierNames: map[string]bool{}}
	for _, pr := range pre {
		if pr.File == notifiersFile {
			p.notifiersIncomplete = true
		} else {
			p.incomplete = true
		}
	}
	// The notifiers come first: routes name them.
	if data, ok := files[notifiersFile]; ok {
		if len(data) > MaxFileSize {
			p.problems = append(p.problems, fileTooLarge(notifiersFile))
			p.notifiersIncomplete = true
		} else {
			p.parseNotifiers(data)
		}
	}
	for _, name := range names {
		data := files[name]
		if len(data) > MaxFileSize {
			p.problems = append(p.problems, fileTooLarge(name))
			p.incomplete = true
			continue
		}
		p.parseFile(name, data)
	}
	p.checkGraph()

	if len(p.problems) > 0 {
		return aramaki.ConfigSnapshot{}, sortProblems(p.problems)
	}
	var snap aramaki.ConfigSnapshot
	snap.Systems = make([]aramaki.System, 0, len(p.decls))
	for _, d := range p.decls {
		snap.Systems = append(snap.Systems, d.sys)
	}
	slices.SortFunc(snap.Systems, func(a, b aramaki.System) int { return cmp.Compare(a.ID, b.ID) })
	snap.Notifiers = p.notifiers
	slices.SortFunc(snap.Notifiers, func(a, b aramaki.Notifier) int { return cmp.Compare(a.Name, b.Name) })
	return snap, nil
}

func tooManyFiles(n int) Problem {
	return Problem{File: systemsDir + "/", Message: fmt.Sprintf("%d system files are too many: a commit may hold at most %d", n, MaxFiles)}
}

func tooLarge(n int64) Problem {
	return Problem{File: systemsDir + "/", Message: fmt.Sprintf("the system files hold %d bytes, more than the %s a commit may hold", n, size(MaxTotalSize))}
}

func fileTooLarge(name string) Problem {
	return Problem{File: name, Message: fmt.Sprintf("the file is larger than %s, the limit for one file", size(MaxFileSize))}
}

func size(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// sortProblems orders problems by file, line and message and drops repeats.
func sortProblems(ps []Problem) []Problem {
	slices.SortFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Message, b.Message))
	})
	return slices.Compact(ps)
}

// parser collects the systems and problems of one commit.
type parser struct {
	decls    []*decl
	problems []Problem
	// incomplete is set when a file could not be read to its end, so some
	// systems may be missing; references to them are not reported as
	// unknown, which would only bury the real problem.
	incomplete bool

	notifiers []aramaki.Notifier
	// notifierNames holds every name given to a notifier, even one with
	// problems; notifiersIncomplete is set when notifiers.yaml could not be
	// read, so that routes' via are not reported as unknown.
	notifierNames       map[string]bool
	notifiersIncomplete bool
}

// decl is one system as declared, with where its parts were written.
type decl struct {
	sys     aramaki.System
	file    string
	line    int   // of the system's mapping
	idLine  int   // of the id's value
	subRefs []ref // the well-formed local subsystem references, first mention only
	// forwards are the well-formed local systems its routes forward to.
	forwards []ref
	// stepRefs are the systems and actions its workflows' steps name.
	stepRefs []stepRef
}

type ref struct {
	id   string
	line int
}

func (p *parser) add(file string, line int, format string, args ...any) {
	p.problems = append(p.problems, Problem{File: file, Line: line, Message: fmt.Sprintf(format, args...)})
}

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
		line++
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

func (p *parser) parseFile(name string, data []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := decodeNode(dec, &doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			line, msg := syntaxError(err, data)
			p.add(name, line, "invalid YAML: %s", msg)
			p.incomplete = true
			return
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue // an empty document, as after a trailing ---
		}
		f := &fileParser{p: p, name: name}
		if d := f.system(root); d != nil {
			p.decls = append(p.decls, d)
		}
	}
}

// decodeNode reads the next document. The YAML parser is third-party code
// reading hostile input, so a panic in it becomes a problem of the file
// instead of taking the server down.
func decodeNode(dec *yaml.Decoder, doc *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the parser failed: %v", r)
		}
	}()
	return dec.Decode(doc)
}

// checkGraph checks what involves more than one system: ids declared twice,
// references to unknown subsystems and cycles, and the same for forwards.
func (p *parser) checkGraph() {
	first := map[string]*decl{}
	for _, d := range p.decls {
		if d.sys.ID == "" {
			continue
		}
		if f, dup := first[d.sys.ID]; dup {
			p.add(d.file, d.idLine, "duplicate system id %s (first declared at %s:%d)", clip(d.sys.ID), f.file, f.idLine)
			continue
		}
		first[d.sys.ID] = d
	}

	subsystems := p.edges(first, func(d *decl) []ref { return d.subRefs }, "system %s uses unknown subsystem %s")
	p.cycles(first, subsystems, "subsystem cycle")
	forwards := p.edges(first, func(d *decl) []ref { return d.forwards }, "system %s forwards to unknown system %s")
	p.cycles(first, forwards, "forward loop")
	p.checkSteps(first)
}

// graph is the known references between systems, with the line where each
// was written.
type graph struct {
	systems []aramaki.System // only ID and Subsystems, standing for any reference
	lines   map[[2]string]int
}

// edges reports references to unknown systems and returns the known ones,
// for cycle detection.
func (p *parser) edges(first map[string]*decl, refs func(*decl) []ref, unknown string) graph {
	g := graph{lines: map[[2]string]int{}}
	for _, d := range p.decls {
		if d.sys.ID == "" {
			continue
		}
		var known []string
		seen := map[string]bool{}
		for _, r := range refs(d) {
			if first[r.id] == nil {
				if !p.incomplete {
					p.add(d.file, r.line, unknown, clip(d.sys.ID), clip(r.id))
				}
				continue
			}
			if first[d.sys.ID] == d && !seen[r.id] {
				seen[r.id] = true
				known = append(known, r.id)
				g.lines[[2]string{d.sys.ID, r.id}] = r.line
			}
		}
		if first[d.sys.ID] == d {
			g.systems = append(g.systems, aramaki.System{ID: d.sys.ID, Subsystems: known})
		}
	}
	return g
}

// cycles reports each cycle at the reference that closes it, then cuts that
// reference and looks again, so that independent cycles are all found. A
// bound keeps hostile input from making this quadratic.
func (p *parser) cycles(first map[string]*decl, g graph, what string) {
	const maxCycles = 20
	for range maxCycles {
		cycle := aramaki.FindCycle(g.systems)
		if cycle == nil {
			return
		}
		from, to := cycle[len(cycle)-2], cycle[len(cycle)-1]
		d := first[from]
		p.add(d.file, g.lines[[2]string{from, to}], "%s: %s", what, strings.Join(cycle, " → "))
		for i := range g.systems {
			if g.systems[i].ID == from {
				g.systems[i].Subsystems = slices.DeleteFunc(slices.Clone(g.systems[i].Subsystems), func(s string) bool { return s == to })
			}
		}
	}
}

// clip shortens text taken from the input for use in a message, so that a
// hostile file cannot make its problems huge.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
