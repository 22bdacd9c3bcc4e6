package action_test

import (
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/agent/action"
)

// MustWriteFiles writes files into a new directory and returns it. The
// directory and files are the test user's, mode 0755 and 0644.
func MustWriteFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "actions.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// MustLoad loads dir and returns its actions and its problems as text,
// with the directory left out of the file names.
func MustLoad(t *testing.T, dir string) ([]aramaki.ActionSpec, []string) {
	t.Helper()
	specs, problems, err := action.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var texts []string
	for _, p := range problems {
		texts = append(texts, strings.TrimPrefix(p.String(), dir+string(filepath.Separator)))
	}
	return specs, texts
}

func names(specs []aramaki.ActionSpec) []string {
	var out []string
	for _, s := range specs {
		out = append(out, s.Name)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

const varnishFile = `# Installed with Varnish.
actions:
  - name: varnish-ban-host
    description: Ban every cached object of a host
    argv: [/usr/bin/varnishadm, ban, req.http.host, "==", "{host}"]
    params:
      - name: host
        description: the Host header, as clients send it
        pattern: '[a-z0-9.-]+'
    timeout: 30s
    user: varnish
`

const systemdFile = `actions:
  - name: restart
    argv:
      - /usr/bin/systemctl
      - restart
      - "{unit}.service"
    params:
      - name: unit
        type: enum
        values: [nginx, php8.2-fpm]
  - name: journal
    argv: [/usr/bin/journalctl, --no-pager, -u, "{unit}", -n, "{lines}", "--reverse={reverse}"]
    params:
      - {name: unit, pattern: '[a-z0-9@._-]+'}
      - {name: lines, type: int, min: 1, max: 10000, default: 100}
      - {name: reverse, type: bool, default: false}
`

func TestLoadReadsTheActionsOfEveryFile(t *testing.T) {
	dir := MustWriteFiles(t, map[string]string{
		"varnish.yaml":      varnishFile,
		"systemd.yml":       systemdFile,
		"empty.yaml":        "",
		"README":            "not an action file: ignored",
		".varnish.yaml.swp": "an editor's: ignored",
		"old.yaml.dpkg-old": "a package manager's: ignored",
	})
	specs, problems := MustLoad(t, dir)
	if problems != nil {
		t.Fatalf("problems: %q", problems)
	}
	want := []aramaki.ActionSpec{
		{
			Name: "journal",
			Argv: []string{"/usr/bin/journalctl", "--no-pager", "-u", "{unit}", "-n", "{lines}", "--reverse={reverse}"},
			Params: []aramaki.Param{
				{Name: "unit", Type: aramaki.ParamString, Pattern: "[a-z0-9@._-]+"},
				{Name: "lines", Type: aramaki.ParamInt, Min: ptr[int64](1), Max: ptr[int64](10000), Default: ptr("100")},
				{Name: "reverse", Type: aramaki.ParamBool, Default: ptr("false")},
			},
			Timeout: aramaki.DefaultRunTimeout,
		},
		{
			Name:    "restart",
			Argv:    []string{"/usr/bin/systemctl", "restart", "{unit}.service"},
			Params:  []aramaki.Param{{Name: "unit", Type: aramaki.ParamEnum, Values: []string{"nginx", "php8.2-fpm"}}},
			Timeout: aramaki.DefaultRunTimeout,
		},
		{
			Name:        "varnish-ban-host",
			Description: "Ban every cached object of a host",
			Argv:        []string{"/usr/bin/varnishadm", "ban", "req.http.host", "==", "{host}"},
			Params:      []aramaki.Param{{Name: "host", Type: aramaki.ParamString, Description: "the Host header, as clients send it", Pattern: "[a-z0-9.-]+"}},
			Timeout:     30 * time.Second,
			User:        "varnish",
		},
	}
	if !reflect.DeepEqual(specs, want) {
		t.Fatalf("got  %+v\nwant %+v", specs, want)
	}
}

func TestLoadWithoutADirectoryDeclaresNoActions(t *testing.T) {
	specs, problems, err := action.Load(filepath.Join(t.TempDir(), "actions.d"))
	if specs != nil || problems != nil || err != nil {
		t.Fatalf("got %v, %v, %v", specs, problems, err)
	}
}

// problemCases are files with something wrong, and exactly what is said
// about them.
var problemCases = []struct {
	name    string
	content string
	want    []string
}{
	{"a colon in a plain value", "actions:\n  - name: x\n    description: note: this breaks\n",
		[]string{"a.yaml:3: invalid YAML: mapping values are not allowed in this context"}},
	{"a tab for indentation", "actions:\n  - name: x\n    argv: [/bin/true]\n\tuser: x\n",
		[]string{"a.yaml:4: invalid YAML: found character that cannot start any token"}},
	{"an unclosed list", "actions:\n  - name: x\n    argv: [/bin/true\n",
		[]string{"a.yaml:3: invalid YAML: did not find expected ',' or ']'"}},
	{"not valid UTF-8", "actions:\n  - name: caf\xe9\n",
		[]string{"a.yaml:2: invalid YAML: the text is not valid UTF-8"}},
	{"a list instead of a mapping", "- name: x\n  argv: [/bin/true]\n",
		[]string{"a.yaml:1: an action file must be a mapping like actions: [{name: …, argv: […]}], not a list"}},
	{"an unknown key at the top", "action:\n  - name: x\n",
		[]string{`a.yaml:1: unknown key "action" in action file (known keys: actions)`}},
	{"an unknown key in an action", "actions:\n  - name: x\n    argv: [/bin/true]\n    shell: true\n",
		[]string{`a.yaml:4: unknown key "shell" in action (known keys: name, description, argv, params, timeout, user)`}},
	{"an unknown key in a parameter", "actions:\n  - name: x\n    argv: [/bin/echo, \"{p}\"]\n    params:\n      - name: p\n        regex: '.*'\n",
		[]string{`a.yaml:6: unknown key "regex" in parameter (known keys: name, type, description, pattern, min, max, values, default)`}},
	{"a key given twice", "actions:\n  - name: x\n    argv: [/bin/true]\n    name: y\n",
		[]string{`a.yaml:4: key "name" is given twice (first at line 2)`}},
	{"no name", "actions:\n  - argv: [/bin/true]\n",
		[]string{"a.yaml:2: an action needs a name"}},
	{"a bad name", "actions:\n  - name: Flush Cache\n    argv: [/bin/true]\n",
		[]string{`a.yaml:2: invalid action name "Flush Cache": lower-case letters, digits, - and _, at most 63`}},
	{"no argv", "actions:\n  - name: x\n",
		[]string{"a.yaml:2: an action needs an argv: the absolute path of a program and its arguments"}},
	{"a command line instead of argv", "actions:\n  - name: x\n    argv: systemctl restart nginx\n",
		[]string{`a.yaml:3: argv must be a list of arguments like [/usr/bin/systemctl, restart, "{unit}"], not "systemctl restart nginx": it is never split into words or run through a shell`}},
	{"a relative program", "actions:\n  - name: x\n    argv: [systemctl, restart, nginx]\n",
		[]string{"a.yaml:3: argv must start with the absolute path of a program, without placeholders"}},
	{"an unquoted placeholder", "actions:\n  - name: x\n    argv:\n      - /bin/echo\n      - {p}\n    params: [{name: p}]\n",
		[]string{`a.yaml:5: argument 2 of argv is a mapping: write a placeholder in quotes, like "{name}"`}},
	{"an undeclared placeholder", "actions:\n  - name: x\n    argv: [/bin/echo, \"{who}\"]\n",
		[]string{"a.yaml:3: argv uses {who}, which is not a declared parameter"}},
	{"a bad timeout", "actions:\n  - name: x\n    argv: [/bin/true]\n    timeout: 30\n",
		[]string{`a.yaml:4: timeout "30" is not a duration (write it like 30s, 5m or 1h30m)`}},
	{"a timeout too long", "actions:\n  - name: x\n    argv: [/bin/true]\n    timeout: 2h\n",
		[]string{"a.yaml:4: timeout 2h0m0s is longer than 1h0m0s, the most an action may take"}},
	{"a bad user", "actions:\n  - name: x\n    argv: [/bin/true]\n    user: Root Admin\n",
		[]string{`a.yaml:4: invalid user "Root Admin"`}},
	{"an unknown parameter type", "actions:\n  - name: x\n    argv: [/bin/echo, \"{p}\"]\n    params:\n      - name: p\n        type: float\n",
		[]string{`a.yaml:6: unknown parameter type "float" (string, int, bool or enum)`}},
	{"a pattern that does not compile", "actions:\n  - name: x\n    argv: [/bin/echo, \"{p}\"]\n    params:\n      - name: p\n        pattern: '[a-z'\n",
		[]string{"a.yaml:6: the pattern does not compile: error parsing regexp: missing closing ]: `[a-z)$`"}},
	{"an enum without values", "actions:\n  - name: x\n    argv: [/bin/echo, \"{p}\"]\n    params:\n      - name: p\n        type: enum\n",
		[]string{"a.yaml:5: parameter p: an enum needs values"}},
	{"an enum value like an option", "actions:\n  - name: x\n    argv: [/bin/echo, \"{p}\"]\n    params:\n      - name: p\n        type: enum\n        values: [a, --all]\n",
		[]string{`a.yaml:7: enum value "--all" must be non-empty, not start with - and be at most 1024 bytes`}},
	{"min above max", "actions:\n  - name: x\n    argv: [/bin/echo, \"{p}\"]\n    params:\n      - name: p\n        type: int\n        max: 1\n        min: 5\n",
		[]string{"a.yaml:7: max 1 is below min 5"}},
	{"a min that is no number", "actions:\n  - name: x\n    argv: [/bin/echo, \"{p}\"]\n    params:\n      - {name: p, type: int, min: one}\n",
		[]string{`a.yaml:5: min must be a whole number, not "one"`}},
	{"a default that does not fit", "actions:\n  - name: x\n    argv: [/bin/echo, \"{p}\"]\n    params:\n      - name: p\n        type: enum\n        values: [a, b]\n        default: c\n",
		[]string{"a.yaml:8: the default value \"c\" of p is not one of a, b"}},
	{"a parameter declared twice", "actions:\n  - name: x\n    argv: [/bin/echo, \"{p}\"]\n    params:\n      - name: p\n      - name: p\n",
		[]string{"a.yaml:6: parameter p is declared twice (first at line 5)"}},
	{"an action declared twice", "actions:\n  - name: x\n    argv: [/bin/true]\n  - name: x\n    argv: [/bin/false]\n",
		[]string{"a.yaml:4: action x is declared twice (first at line 2)"}},
	{"an alias", "actions:\n  - name: x\n    argv: &a [/bin/true]\n  - name: y\n    argv: *a\n",
		[]string{"a.yaml:5: aliases (*a) are not supported: write the value out"}},
	{"several problems", "actions:\n  - name: x\n    argv: [bin/true]\n  - name: Y\n    argv: [/bin/true]\n    timeout: -1s\n",
		[]string{
			"a.yaml:3: argv must start with the absolute path of a program, without placeholders",
			`a.yaml:4: invalid action name "Y": lower-case letters, digits, - and _, at most 63`,
			"a.yaml:6: timeout must be longer than 0",
		}},
}

func TestLoadSaysWhatIsWrongAndWhere(t *testing.T) {
	for _, c := range problemCases {
		t.Run(c.name, func(t *testing.T) {
			dir := MustWriteFiles(t, map[string]string{"a.yaml": c.content, "b.yaml": systemdFile})
			specs, problems := MustLoad(t, dir)
			if !slices.Equal(problems, c.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(c.want, "\n"))
			}
			// A file with problems declares nothing; the others do.
			if got := names(specs); !slices.Equal(got, []string{"journal", "restart"}) {
				t.Fatalf("loaded %q", got)
			}
		})
	}
}

func TestLoadRefusesAnActionDeclaredInTwoFiles(t *testing.T) {
	dir := MustWriteFiles(t, map[string]string{
		"nginx.yaml":   "actions:\n  - name: reload\n    argv: [/usr/sbin/nginx, -s, reload]\n",
		"haproxy.yaml": "actions:\n  - name: stats\n    argv: [/bin/true]\n\n  - name: reload\n    argv: [/usr/bin/systemctl, reload, haproxy]\n",
	})
	specs, problems := MustLoad(t, dir)
	want := []string{"nginx.yaml:2: action reload is declared twice (first at " + dir + "/haproxy.yaml:5): it is loaded from neither"}
	if !slices.Equal(problems, want) {
		t.Fatalf("problems %q, want %q", problems, want)
	}
	if got := names(specs); !slices.Equal(got, []string{"stats"}) {
		t.Fatalf("loaded %q", got)
	}
}

func TestLoadRefusesFilesOthersCanWrite(t *testing.T) {
	dir := MustWriteFiles(t, map[string]string{"varnish.yaml": varnishFile, "systemd.yaml": systemdFile})
	if err := os.Chmod(filepath.Join(dir, "varnish.yaml"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "systemd.yaml"), 0o620); err != nil {
		t.Fatal(err)
	}
	specs, problems := MustLoad(t, dir)
	want := []string{
		"systemd.yaml: is writable by group or others (mode 0620): chmod go-w it: its actions are not loaded",
		"varnish.yaml: is writable by group or others (mode 0666): chmod go-w it: its actions are not loaded",
	}
	if specs != nil || !slices.Equal(problems, want) {
		t.Fatalf("loaded %q with problems %q", names(specs), problems)
	}
}

func TestLoadRefusesADirectoryOthersCanWrite(t *testing.T) {
	dir := MustWriteFiles(t, map[string]string{"varnish.yaml": varnishFile})
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	specs, problems, err := action.Load(dir)
	if err != nil || specs != nil || len(problems) != 1 ||
		problems[0].String() != dir+": is writable by group or others (mode 0777): chmod go-w it: no action of it is loaded" {
		t.Fatalf("loaded %q with problems %v, err %v", names(specs), problems, err)
	}
}

func TestLoadRefusesFilesOfOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give a file away")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	dir := MustWriteFiles(t, map[string]string{"varnish.yaml": varnishFile, "systemd.yaml": systemdFile})
	if err := os.Chown(filepath.Join(dir, "varnish.yaml"), uid, -1); err != nil {
		t.Fatal(err)
	}
	specs, problems := MustLoad(t, dir)
	want := []string{"varnish.yaml: is owned by uid " + nobody.Uid + " (nobody), not by root or the agent's user: its actions are not loaded"}
	if got := names(specs); !slices.Equal(got, []string{"journal", "restart"}) || !slices.Equal(problems, want) {
		t.Fatalf("loaded %q with problems %q", got, problems)
	}
}

func TestLoadDoesNotFollowSymbolicLinks(t *testing.T) {
	dir := MustWriteFiles(t, map[string]string{"systemd.yaml": systemdFile})
	elsewhere := filepath.Join(t.TempDir(), "varnish.yaml")
	if err := os.WriteFile(elsewhere, []byte(varnishFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(dir, "varnish.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "more.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	specs, problems := MustLoad(t, dir)
	want := []string{
		"more.yaml: is not a regular file",
		"varnish.yaml: symbolic links are not followed: put the file itself in the directory",
	}
	if got := names(specs); !slices.Equal(got, []string{"journal", "restart"}) || !slices.Equal(problems, want) {
		t.Fatalf("loaded %q with problems %q", got, problems)
	}
}

func TestLoadRefusesHugeFiles(t *testing.T) {
	dir := MustWriteFiles(t, map[string]string{"big.yaml": "# " + strings.Repeat("x", action.MaxFileSize) + "\n"})
	specs, problems := MustLoad(t, dir)
	if specs != nil || !slices.Equal(problems, []string{"big.yaml: is larger than 1024 KiB, the limit for an action file"}) {
		t.Fatalf("loaded %q with problems %q", names(specs), problems)
	}
}

// The example in the documentation is a working configuration.
func TestTheDocumentedExampleLoads(t *testing.T) {
	doc, err := os.ReadFile("../../docs/agents.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## Allow-listed actions on the host")
	if !ok {
		t.Fatal("docs/agents.md has no section on actions")
	}
	_, example, ok := strings.Cut(section, "```yaml\n")
	example, _, ok2 := strings.Cut(example, "```")
	if !ok || !ok2 {
		t.Fatal("the section on actions has no YAML example")
	}
	specs, problems := action.Parse("example.yaml", []byte(example))
	if problems != nil {
		t.Fatalf("the documented example has problems: %v", problems)
	}
	if got := names(specs); !slices.Equal(got, []string{"flush-varnish", "restart-php", "clear-shop-cache"}) {
		t.Fatalf("the documented example declares %q", got)
	}
}
