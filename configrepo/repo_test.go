package configrepo_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/configrepo"
	"github.com/aramaki/aramaki/service"
)

var _ service.ConfigSource = (*configrepo.Repo)(nil)

const (
	webshopYAML = "id: webshop\ntitle: Webshop\nsubsystems: [webshop-db]\n---\nid: webshop-db\ntitle: Shop database\n"
	blogYAML    = "id: blog\ntitle: Blog\n"
)

// A commit made with git is read with its author, message and time; the
// next commit is seen on the next Load, without opening the repository again.
func TestLoadLocalRepository(t *testing.T) {
	dir := MustInitRepo(t)
	first := MustCommit(t, dir, map[string]string{
		"README.md":            "# config\n",
		"systems/webshop.yaml": webshopYAML,
	}, "Add the webshop\n\nWith its database.\n")
	ctx := context.Background()
	repo, err := configrepo.Open(ctx, dir, configrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}

	snap := MustLoad(t, repo)
	if snap.Commit.Hash != first || len(first) != 40 {
		t.Errorf("hash %q, want %q", snap.Commit.Hash, first)
	}
	if want := "Alice Example <alice@example.com>"; snap.Commit.Author != want {
		t.Errorf("author %q, want %q", snap.Commit.Author, want)
	}
	if want := "Add the webshop\n\nWith its database."; snap.Commit.Message != want {
		t.Errorf("message %q, want %q", snap.Commit.Message, want)
	}
	when, err := time.Parse(time.RFC3339, MustGit(t, dir, "log", "-1", "--format=%cI"))
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Commit.Time.Equal(when) || snap.Commit.Time.Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC", snap.Commit.Time, when)
	}
	if got := ids(snap.Systems); !slices.Equal(got, []string{"webshop", "webshop-db"}) {
		t.Errorf("systems %v", got)
	}

	second := MustCommit(t, dir, map[string]string{"systems/blog/blog.yml": blogYAML}, "Add the blog")
	snap = MustLoad(t, repo)
	if snap.Commit.Hash != second || snap.Commit.Message != "Add the blog" {
		t.Errorf("second load: commit %+v, want %s", snap.Commit, second)
	}
	if got := ids(snap.Systems); !slices.Equal(got, []string{"blog", "webshop", "webshop-db"}) {
		t.Errorf("second load: systems %v", got)
	}

	// git gc moves the objects into a new pack behind go-git's back.
	MustGit(t, dir, "gc", "-q")
	third := MustCommit(t, dir, map[string]string{"systems/blog/blog.yml": "id: blog\ntitle: The blog\n"}, "Rename the blog")
	if snap = MustLoad(t, repo); snap.Commit.Hash != third || snap.Systems[0].Title != "The blog" {
		t.Errorf("after gc: commit %s, %q; want %s", snap.Commit.Hash, snap.Systems[0].Title, third)
	}
}

// A broken commit comes back with its problems and no systems; fixing it
// makes the next Load good again.
func TestLoadBrokenCommit(t *testing.T) {
	dir := MustInitRepo(t)
	MustCommit(t, dir, map[string]string{"systems/webshop.yaml": webshopYAML}, "Add the webshop")
	repo := MustOpen(t, dir, configrepo.Options{})
	MustLoad(t, repo)

	broken := MustCommit(t, dir, map[string]string{
		"systems/webshop.yaml": "id: webshop\ntitle: Webshop\nsubsystems: [webshop-db, webshop-cache]\n---\nid: webshop-db\ntitle: Shop database\n",
		"systems/blog.yaml":    "id: blog\ntitle: [Blog\n",
	}, "Rework the webshop")
	snap, problems, err := repo.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"systems/blog.yaml:2: invalid YAML: did not find expected ',' or ']'"}
	if !slices.Equal(problems, want) {
		t.Errorf("problems %q, want %q", problems, want)
	}
	if snap.Commit.Hash != broken || snap.Commit.Message != "Rework the webshop" || snap.Systems != nil {
		t.Errorf("snapshot %+v, want the broken commit without systems", snap)
	}
	// Polling again finds the same.
	again, problemsAgain, err := repo.Load(context.Background())
	if err != nil || again.Commit != snap.Commit || !slices.Equal(problemsAgain, want) || again.Systems != nil {
		t.Errorf("second load of the broken commit: %+v %q %v", again, problemsAgain, err)
	}

	MustCommit(t, dir, map[string]string{"systems/blog.yaml": blogYAML}, "Fix the blog")
	_, problems, _ = repo.Load(context.Background())
	want = []string{"systems/webshop.yaml:3: system webshop uses unknown subsystem webshop-cache"}
	if !slices.Equal(problems, want) {
		t.Errorf("problems %q, want %q", problems, want)
	}

	MustGit(t, dir, "rm", "-q", "systems/webshop.yaml")
	MustGit(t, dir, "commit", "-q", "-m", "Drop the webshop")
	if got := ids(MustLoad(t, repo).Systems); !slices.Equal(got, []string{"blog"}) {
		t.Errorf("systems %v, want the blog alone", got)
	}
}

// Only commits count: what is changed, staged or untracked in the working
// tree is not read.
func TestLoadIgnoresWorkingTree(t *testing.T) {
	dir := MustInitRepo(t)
	head := MustCommit(t, dir, map[string]string{"systems/webshop.yaml": webshopYAML}, "Add the webshop")
	MustWriteFile(t, dir, "systems/webshop.yaml", "id: webshop\ntitle: [broken\n")
	MustWriteFile(t, dir, "systems/blog.yaml", blogYAML)
	MustWriteFile(t, dir, "systems/staged.yaml", "id: staged\ntitle: Staged\n")
	MustGit(t, dir, "add", "systems/staged.yaml")

	snap := MustLoad(t, MustOpen(t, dir, configrepo.Options{}))
	if snap.Commit.Hash != head {
		t.Errorf("hash %s, want HEAD %s", snap.Commit.Hash, head)
	}
	if got := ids(snap.Systems); !slices.Equal(got, []string{"webshop", "webshop-db"}) {
		t.Errorf("systems %v, want only the committed ones", got)
	}
}

func TestLoadBranch(t *testing.T) {
	dir := MustInitRepo(t)
	MustCommit(t, dir, map[string]string{"systems/webshop.yaml": webshopYAML}, "Add the webshop")
	MustGit(t, dir, "checkout", "-q", "-b", "staging")
	staging := MustCommit(t, dir, map[string]string{"systems/blog.yaml": blogYAML}, "Try the blog")
	MustGit(t, dir, "checkout", "-q", "main")

	snap := MustLoad(t, MustOpen(t, dir, configrepo.Options{Branch: "staging"}))
	if snap.Commit.Hash != staging || len(snap.Systems) != 3 {
		t.Errorf("branch staging: %s with %v, want %s with three systems", snap.Commit.Hash, ids(snap.Systems), staging)
	}
	if got := ids(MustLoad(t, MustOpen(t, dir, configrepo.Options{})).Systems); len(got) != 2 {
		t.Errorf("HEAD (main): %v, want the webshop's two systems", got)
	}

	_, _, err := MustOpen(t, dir, configrepo.Options{Branch: "production"}).Load(context.Background())
	if aramaki.ErrorCode(err) != aramaki.ENOTFOUND || !strings.Contains(err.Error(), "has no branch production") {
		t.Errorf("missing branch: %v, want not_found", err)
	}
}

// A repository given by URL is cloned into the cache on the first Load and
// fetched on every one after, history rewrites included.
func TestLoadURL(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "config.git")
	MustGit(t, "", "init", "-q", "--bare", bare)
	work := MustInitRepo(t)
	MustGit(t, work, "remote", "add", "origin", bare)
	first := MustCommit(t, work, map[string]string{"systems/webshop.yaml": webshopYAML}, "Add the webshop")
	MustGit(t, work, "push", "-q", "origin", "main")

	cache := t.TempDir()
	url := "file://" + bare
	repo := MustOpen(t, url, configrepo.Options{CacheDir: cache})
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("Open cloned already: %v", entries)
	}
	if snap := MustLoad(t, repo); snap.Commit.Hash != first || len(snap.Systems) != 2 {
		t.Errorf("first load: %s %v, want %s", snap.Commit.Hash, ids(snap.Systems), first)
	}
	entries, _ := os.ReadDir(cache)
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".git") {
		t.Fatalf("cache holds %v, want one clone", entries)
	}
	clone := filepath.Join(cache, entries[0].Name())
	if got := MustGit(t, clone, "rev-parse", "--is-bare-repository"); got != "true" {
		t.Errorf("the clone is not bare: %s", got)
	}

	second := MustCommit(t, work, map[string]string{"systems/blog.yaml": blogYAML}, "Add the blog")
	MustGit(t, work, "push", "-q", "origin", "main")
	if snap := MustLoad(t, repo); snap.Commit.Hash != second || len(snap.Systems) != 3 {
		t.Errorf("after a push: %s %v, want %s with the blog", snap.Commit.Hash, ids(snap.Systems), second)
	}

	MustGit(t, work, "commit", "-q", "--amend", "-m", "Add the blog, reworded")
	amended := MustGit(t, work, "rev-parse", "HEAD")
	MustGit(t, work, "push", "-q", "--force", "origin", "main")
	// A new Repo on the same cache, as after a restart, reuses the clone.
	if snap := MustLoad(t, MustOpen(t, url, configrepo.Options{CacheDir: cache})); snap.Commit.Hash != amended {
		t.Errorf("after a force push: %s, want %s", snap.Commit.Hash, amended)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 1 {
		t.Errorf("cache holds %d entries after a restart, want the one clone", len(entries))
	}
}

func TestLoadURLBranch(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "config.git")
	MustGit(t, "", "init", "-q", "--bare", bare)
	work := MustInitRepo(t)
	MustGit(t, work, "remote", "add", "origin", bare)
	MustCommit(t, work, map[string]string{"systems/webshop.yaml": webshopYAML}, "Add the webshop")
	MustGit(t, work, "checkout", "-q", "-b", "staging")
	staging := MustCommit(t, work, map[string]string{"systems/blog.yaml": blogYAML}, "Try the blog")
	MustGit(t, work, "push", "-q", "origin", "main", "staging")

	repo := MustOpen(t, "file://"+bare, configrepo.Options{CacheDir: t.TempDir(), Branch: "staging"})
	if snap := MustLoad(t, repo); snap.Commit.Hash != staging {
		t.Errorf("branch staging: %s, want %s", snap.Commit.Hash, staging)
	}
}

func TestOpenAndLoadErrors(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		source string
		opts   configrepo.Options
		code   string
	}{
		"nothing":            {"", configrepo.Options{}, aramaki.EINVALID},
		"missing path":       {filepath.Join(t.TempDir(), "nope"), configrepo.Options{}, aramaki.EUNAVAILABLE},
		"not a repository":   {t.TempDir(), configrepo.Options{}, aramaki.EUNAVAILABLE},
		"URL without cache":  {"https://git.example.com/config.git", configrepo.Options{}, aramaki.EINVALID},
		"invalid branch":     {t.TempDir(), configrepo.Options{Branch: "a..b"}, aramaki.EINVALID},
		"scp URL, no cache":  {"git@git.example.com:ops/config.git", configrepo.Options{}, aramaki.EINVALID},
		"URL with password":  {"https://bob:s3cret@git.example.com/config.git", configrepo.Options{}, aramaki.EINVALID},
		"file URL, no cache": {"file:///srv/config.git", configrepo.Options{}, aramaki.EINVALID},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := configrepo.Open(ctx, tc.source, tc.opts)
			if code := aramaki.ErrorCode(err); code != tc.code {
				t.Errorf("Open: %v (code %q), want code %q", err, code, tc.code)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}

	t.Run("unreachable URL", func(t *testing.T) {
		repo := MustOpen(t, "file://"+filepath.Join(t.TempDir(), "gone.git"), configrepo.Options{CacheDir: t.TempDir()})
		_, _, err := repo.Load(ctx)
		if aramaki.ErrorCode(err) != aramaki.EUNAVAILABLE || !strings.HasPrefix(err.Error(), "read config repository: ") {
			t.Errorf("Load: %v, want an unavailable error", err)
		}
	})
	t.Run("no commits yet", func(t *testing.T) {
		repo := MustOpen(t, MustInitRepo(t), configrepo.Options{})
		_, _, err := repo.Load(ctx)
		if aramaki.ErrorCode(err) != aramaki.ENOTFOUND || !strings.Contains(err.Error(), "has no commits yet") {
			t.Errorf("Load: %v, want not_found", err)
		}
	})
	t.Run("repository removed", func(t *testing.T) {
		dir := MustInitRepo(t)
		MustCommit(t, dir, map[string]string{"systems/blog.yaml": blogYAML}, "Add the blog")
		repo := MustOpen(t, dir, configrepo.Options{})
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if _, _, err := repo.Load(ctx); aramaki.ErrorCode(err) != aramaki.EUNAVAILABLE {
			t.Errorf("Load: %v, want unavailable", err)
		}
	})
}

// What git can hold but a config repository must not: files over the size
// limit (not even read) and symbolic links.
func TestLoadRefusesHostileFiles(t *testing.T) {
	dir := MustInitRepo(t)
	MustWriteFile(t, dir, "systems/big.yaml", strings.Repeat("# padding\n", configrepo.MaxFileSize/10+1))
	MustWriteFile(t, dir, "systems/blog.yaml", blogYAML)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "systems", "passwd.yaml")); err != nil {
		t.Fatal(err)
	}
	MustGit(t, dir, "add", ".")
	MustGit(t, dir, "commit", "-q", "-m", "Hostile")

	_, problems, err := MustOpen(t, dir, configrepo.Options{}).Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"systems/big.yaml: the file is larger than 1 MiB, the limit for one file",
		"systems/passwd.yaml: symbolic links are not followed: put the file itself under systems/",
	}
	if !slices.Equal(problems, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
}

// However broken a commit, Load reports a bounded number of problems, so
// that they fit into an event.
func TestLoadBoundsProblems(t *testing.T) {
	var b strings.Builder
	for i := range 150 {
		fmt.Fprintf(&b, "---\nid: s%d\n", i)
	}
	dir := MustInitRepo(t)
	MustCommit(t, dir, map[string]string{"systems/untitled.yaml": b.String()}, "Forget the titles")
	_, problems, err := MustOpen(t, dir, configrepo.Options{}).Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != configrepo.MaxProblems+1 || problems[len(problems)-1] != "… and 50 more problems" {
		t.Errorf("%d problems ending in %q, want %d and a summary", len(problems), problems[len(problems)-1], configrepo.MaxProblems+1)
	}
}

// MustGit runs the real git CLI in dir (or the current directory) with a
// fixed identity and without reading the user's or the system's config.
func MustGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the git CLI is not installed; these tests make their repositories with the real git")
	}
	cmd := exec.Command("git", append([]string{
		"-c", "user.name=Alice Example", "-c", "user.email=alice@example.com",
		"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false",
	}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// MustInitRepo makes an empty repository with a working tree on branch main.
func MustInitRepo(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	MustGit(t, dir, "init", "-q")
	return dir
}

// MustCommit writes the files, commits them with git and returns the hash.
func MustCommit(t testing.TB, dir string, files map[string]string, message string) string {
	t.Helper()
	for name, content := range files {
		MustWriteFile(t, dir, name, content)
		MustGit(t, dir, "add", name)
	}
	MustGit(t, dir, "commit", "-q", "-m", message)
	return MustGit(t, dir, "rev-parse", "HEAD")
}

func MustWriteFile(t testing.TB, dir, name, content string) {
	t.Helper()
	file := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func MustOpen(t testing.TB, source string, opts configrepo.Options) *configrepo.Repo {
	t.Helper()
	repo, err := configrepo.Open(context.Background(), source, opts)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// MustLoad loads a commit that must have no problems.
func MustLoad(t testing.TB, repo *configrepo.Repo) aramaki.ConfigSnapshot {
	t.Helper()
	snap, problems, err := repo.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("problems in commit %s:\n%s", snap.Commit.Hash, strings.Join(problems, "\n"))
	}
	return snap
}

// notifiers.yaml at the root of a commit is read with the systems, and
// routes through its notifiers; the next commit may take it away again.
func TestLoadNotifiers(t *testing.T) {
	dir := MustInitRepo(t)
	MustCommit(t, dir, map[string]string{
		"notifiers.yaml": "notifiers:\n  - {name: pager, type: webhook, url: \"https://pager.example.com/x\", secret_env: ARAMAKI_NOTIFY_PAGER_KEY}\n",
		"systems/webshop.yaml": "id: webshop\ntitle: Webshop\ncontacts: [{name: On-call}]\n" +
			"routing: [{contact: On-call, via: pager, severities: [critical]}]\n",
	}, "Page the on-call")
	repo := MustOpen(t, dir, configrepo.Options{})
	snap := MustLoad(t, repo)
	want := []aramaki.Notifier{{Name: "pager", Type: aramaki.NotifyWebhook, URL: "https://pager.example.com/x", SecretEnv: "ARAMAKI_NOTIFY_PAGER_KEY"}}
	if !slices.EqualFunc(snap.Notifiers, want, func(a, b aramaki.Notifier) bool {
		return a.Name == b.Name && a.URL == b.URL && a.SecretEnv == b.SecretEnv
	}) {
		t.Errorf("notifiers %+v, want %+v", snap.Notifiers, want)
	}
	if r := snap.Systems[0].Routing; len(r) != 1 || r[0].Via != "pager" {
		t.Errorf("routing %+v, want the route via the pager", r)
	}
	// The repository keeps what it read: changing the snapshot changes
	// nothing for the next Load of the same commit.
	snap.Notifiers[0].URL = "https://changed.example.com"
	if again := MustLoad(t, repo); again.Notifiers[0].URL != want[0].URL {
		t.Errorf("second load: notifiers %+v", again.Notifiers)
	}

	MustGit(t, dir, "rm", "-q", "notifiers.yaml")
	MustGit(t, dir, "commit", "-q", "-m", "No more pager")
	_, problems, err := repo.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`systems/webshop.yaml:4: unknown notifier "pager": via is email or the name of a notifier in notifiers.yaml`}; !slices.Equal(problems, want) {
		t.Errorf("problems %q, want %q", problems, want)
	}
}

// notifiers.yaml must be a regular file of at most the size of any other;
// when it is refused, routes through it are not reported as well.
func TestLoadRefusesHostileNotifiers(t *testing.T) {
	system := "id: a\ntitle: A\nowners: [{name: Alice}]\nrouting: [{contact: Alice, via: chat}]\n"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"symbolic link", func(t *testing.T, dir string) {
			MustWriteFile(t, dir, "elsewhere.yaml", "notifiers: []\n")
			if err := os.Symlink("elsewhere.yaml", filepath.Join(dir, "notifiers.yaml")); err != nil {
				t.Fatal(err)
			}
		}, "notifiers.yaml: symbolic links are not followed: put the file itself at the root of the repository"},
		{"too large", func(t *testing.T, dir string) {
			MustWriteFile(t, dir, "notifiers.yaml", strings.Repeat("# padding\n", configrepo.MaxFileSize/10+1))
		}, "notifiers.yaml: the file is larger than 1 MiB, the limit for one file"},
		{"directory", func(t *testing.T, dir string) {
			MustWriteFile(t, dir, "notifiers.yaml/chat.yaml", "notifiers: []\n")
		}, "notifiers.yaml: must be a file, not a directory or submodule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := MustInitRepo(t)
			MustWriteFile(t, dir, "systems/a.yaml", system)
			tc.setup(t, dir)
			MustGit(t, dir, "add", ".")
			MustGit(t, dir, "commit", "-q", "-m", "Hostile")
			_, problems, err := MustOpen(t, dir, configrepo.Options{}).Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(problems, []string{tc.want}) {
				t.Errorf("problems %q, want %q", problems, tc.want)
			}
		})
	}
}
