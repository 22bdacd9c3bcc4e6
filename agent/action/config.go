// Package action runs the allow-listed actions of an agent's host: the
// things the host itself declares may be done to it, such as "flush the
// Varnish cache" or "restart this service".
//
// Load reads the declarations from the YAML files of a directory (say
// /etc/aramaki/actions.d), refusing files that anyone but root or the
// agent's user could have written. A Runner runs them when the server asks
// for one by name with values for its parameters: the declared argument
// vector with each value filling exactly one argument, never through a
// shell, in a process group of its own, with a timeout, cancel by run id,
// and output streamed as it comes and bounded.
//
// The package imports only the domain, the standard library and the YAML
// parser, so that the agent stays small.
package action

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aramaki/aramaki"
)

// MaxFileSize is the largest action file Load reads.
const MaxFileSize = 1 << 20

// Problem is one thing wrong with the host's action files, at a place in
// one of them.
type Problem struct {
	File    string // path of the file (or of the directory)
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

// IsActionFile reports whether a file of the actions directory, by its
// name, declares actions: *.yaml and *.yml, except hidden files (editors'
// and package managers' leftovers start with a dot).
func IsActionFile(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return !strings.HasPrefix(name, ".") && (ext == ".yaml" || ext == ".yml")
}

// Load reads the actions declared in the action files of dir (see
// IsActionFile), in the order of their names, and returns them sorted by
// name with every problem found, sorted by file and line.
//
// A missing directory declares no actions. A file with any problem
// declares none either, and an action declared in two files is loaded from
// neither: an allow-list is not guessed at. The directory and every file
// must belong to root or to the agent's user and must not be writable by
// group or others, and the files must be regular files, not symbolic
// links. The error is for a directory that cannot be read at all.
func Load(dir string) ([]aramaki.ActionSpec, []Problem, error) {
	return load(dir, os.Geteuid())
}

func load(dir string, euid int) ([]aramaki.ActionSpec, []Problem, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("read actions: %w", err)
	case !fi.IsDir():
		return nil, []Problem{{File: dir, Message: "is not a directory"}}, nil
	}
	if msg := unsafeOwnership(fi, euid); msg != "" {
		return nil, []Problem{{File: dir, Message: msg + ": no action of it is loaded"}}, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read actions: %w", err)
	}

	var problems []Problem
	var decls []decl
	for _, e := range entries {
		if !IsActionFile(e.Name()) {
			continue
		}
		name := filepath.Join(dir, e.Name())
		data, msg := readFile(name, euid)
		if msg != "" {
			problems = append(problems, Problem{File: name, Message: msg})
			continue
		}
		ds, ps := parse(name, data)
		if len(ps) > 0 {
			problems = append(problems, ps...)
			continue
		}
		decls = append(decls, ds...)
	}

	first := map[string]decl{}
	twice := map[string]bool{}
	for _, d := range decls {
		if f, dup := first[d.spec.Name]; dup {
			problems = append(problems, Problem{File: d.file, Line: d.line,
				Message: fmt.Sprintf("action %s is declared twice (first at %s:%d): it is loaded from neither", d.spec.Name, f.file, f.line)})
			twice[d.spec.Name] = true
			continue
		}
		first[d.spec.Name] = d
	}
	var specs []aramaki.ActionSpec
	for _, d := range decls {
		if !twice[d.spec.Name] {
			specs = append(specs, d.spec)
		}
	}
	slices.SortFunc(specs, func(a, b aramaki.ActionSpec) int { return cmp.Compare(a.Name, b.Name) })
	return specs, sortProblems(problems), nil
}

// readFile reads an action file if it is safe to trust, or says why not.
// It opens the file without following a symbolic link and checks what it
// opened, so nothing can be swapped in between check and read.
func readFile(name string, euid int) ([]byte, string) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, "symbolic links are not followed: put the file itself in the directory"
	}
	if err != nil {
		return nil, "cannot read it: " + reason(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "cannot read it: " + reason(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "is not a regular file"
	}
	if msg := unsafeOwnership(fi, euid); msg != "" {
		return nil, msg + ": its actions are not loaded"
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Sprintf("is larger than %d KiB, the limit for an action file", MaxFileSize>>10)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, "cannot read it: " + reason(err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Sprintf("is larger than %d KiB, the limit for an action file", MaxFileSize>>10)
	}
	return data, ""
}

// unsafeOwnership says why a file or directory of the allow-list could
// have been written by someone other than root and the agent's user, or
// returns "". An allow-list that anyone can edit is no allow-list.
func unsafeOwnership(fi fs.FileInfo, euid int) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "cannot tell who owns it"
	}
	if st.Uid != 0 && int(st.Uid) != euid {
		return fmt.Sprintf("is owned by %s, not by root or the agent's user", userName(st.Uid))
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Sprintf("is writable by group or others (mode %04o): chmod go-w it", perm)
	}
	return ""
}

// reason is what went wrong, without the path the problem names already.
func reason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return fmt.Sprintf("uid %s (%s)", id, u.Username)
	}
	return "uid " + id
}

// Parse reads the actions declared in the contents of one action file;
// name is the file's name in problems. When there are problems it returns
// no actions.
func Parse(name string, data []byte) ([]aramaki.ActionSpec, []Problem) {
	decls, problems := parse(name, data)
	if len(problems) > 0 {
		return nil, problems
	}
	specs := make([]aramaki.ActionSpec, len(decls))
	for i, d := range decls {
		specs[i] = d.spec
	}
	return specs, nil
}

// decl is an action as declared, with where.
type decl struct {
	spec aramaki.ActionSpec
	file string
	line int // of its name
}

// sortProblems orders problems by file, line and message and drops repeats.
func sortProblems(ps []Problem) []Problem {
	slices.SortFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Message, b.Message))
	})
	return slices.Compact(ps)
}

// durationOf reads a timeout.
func durationOf(s string) (time.Duration, string) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Sprintf("timeout %q is not a duration (write it like 30s, 5m or 1h30m)", clip(s))
	case d <= 0:
		return 0, "timeout must be longer than 0"
	case d > aramaki.MaxActionTimeout:
		return 0, fmt.Sprintf("timeout %s is longer than %s, the most an action may take", d, aramaki.MaxActionTimeout)
	}
	return d, ""
}
