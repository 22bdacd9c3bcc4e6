package configrepo_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/configrepo"
)

// The quickstart's repository is a real Git repository: git shows its one
// commit and a clean working tree, and the server reads it without problems.
func TestWriteSample(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config-repo")
	if err := configrepo.WriteSample(dir, 8443); err != nil {
		t.Fatal(err)
	}
	log := MustGit(t, dir, "log", "--format=%H %an <%ae>")
	fields := strings.SplitN(log, " ", 2)
	if strings.Count(log, "\n") != 0 || fields[1] != "Aramaki Quickstart <quickstart@aramaki.invalid>" {
		t.Errorf("git log:\n%s\nwant one commit by the quickstart", log)
	}
	if branch := MustGit(t, dir, "symbolic-ref", "--short", "HEAD"); branch != "main" {
		t.Errorf("branch %s, want main", branch)
	}
	if status := MustGit(t, dir, "status", "--porcelain"); status != "" {
		t.Errorf("git status:\n%s\nwant a clean working tree", status)
	}
	MustGit(t, dir, "fsck", "--strict")

	snap := MustLoad(t, MustOpen(t, dir, configrepo.Options{}))
	if snap.Commit.Hash != fields[0] || snap.Commit.Author != "Aramaki Quickstart <quickstart@aramaki.invalid>" {
		t.Errorf("commit %+v, want %s by the quickstart", snap.Commit, fields[0])
	}
	want := MustParse(t, MustReadTree(t, "sample")).Systems
	if got := ids(snap.Systems); !slices.Equal(got, ids(want)) || len(got) < 10 {
		t.Errorf("systems %v, want the sample's %v", got, ids(want))
	}
	if _, err := aramaki.NewGraph(snap.Systems); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Errorf("no README in the working tree: %v", err)
	}
}

// Running the quickstart again keeps the repository as it is, with whatever
// was committed since.
func TestWriteSampleKeepsRepository(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config-repo")
	if err := configrepo.WriteSample(dir, 8443); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "systems", "customers", "example-corp", "webshop.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "title: Webshop of Example Corp", "title: The Example Corp shop", 1)
	MustWriteFile(t, dir, "systems/customers/example-corp/webshop.yaml", edited)
	MustGit(t, dir, "commit", "-q", "-a", "-m", "Rename the shop")
	head := MustGit(t, dir, "rev-parse", "HEAD")

	if err := configrepo.WriteSample(dir, 8443); err != nil {
		t.Fatal(err)
	}
	if got := MustGit(t, dir, "rev-parse", "HEAD"); got != head {
		t.Errorf("HEAD moved from %s to %s", head, got)
	}
	if got, _ := os.ReadFile(file); string(got) != edited {
		t.Error("the edited file was overwritten")
	}
	snap := MustLoad(t, MustOpen(t, dir, configrepo.Options{}))
	for _, s := range snap.Systems {
		if s.ID == "webshop" && s.Title != "The Example Corp shop" {
			t.Errorf("webshop is titled %q after the edit", s.Title)
		}
	}
}

func TestWriteSampleRefusesOtherDirectories(t *testing.T) {
	dir := t.TempDir()
	MustWriteFile(t, dir, "notes.txt", "mine")
	err := configrepo.WriteSample(dir, 8443)
	if aramaki.ErrorCode(err) != aramaki.ECONFLICT {
		t.Errorf("WriteSample into a directory with files: %v, want conflict", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory now holds %d entries, want it untouched", len(entries))
	}
}
