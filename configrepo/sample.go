package configrepo

import (
	"bytes"
	"embed"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// sample is the config tree of the quickstart: a small hosting company with
// two customer projects on shared infrastructure.
//
//go:embed sample
var sample embed.FS

// sampleFiles returns the files of the sample, keyed by their path in the
// repository, with the quickstart server's port filled in where the sample
// checks the server itself.
func sampleFiles(port int) map[string][]byte {
	files := map[string][]byte{}
	err := fs.WalkDir(sample, "sample", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := sample.ReadFile(name)
		files[name[len("sample/"):]] = bytes.ReplaceAll(data, []byte("ARAMAKI_PORT"), []byte(strconv.Itoa(port)))
		return err
	})
	if err != nil {
		panic(err) // the files are embedded: this cannot fail
	}
	return files
}

// WriteSample creates a Git repository at dir holding the sample config, in
// one commit, with a working tree to edit; port is where the quickstart
// server listens, for the check of the server itself. When dir holds a
// repository already it is left alone, so that running the quickstart again
// keeps what was changed. A directory that holds something else is refused.
func WriteSample(dir string, port int) error {
	if _, err := git.PlainOpen(dir); err == nil {
		return nil
	} else if !errors.Is(err, git.ErrRepositoryNotExists) {
		return err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return aramaki.Errorf(aramaki.ECONFLICT, "%s is neither empty nor a Git repository", dir)
	}

	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.Main},
	})
	if err != nil {
		return err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	for name, data := range sampleFiles(port) {
		file := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(file, data, 0o644); err != nil {
			return err
		}
		if _, err := wt.Add(path.Clean(name)); err != nil {
			return err
		}
	}
	who := &object.Signature{Name: "Aramaki Quickstart", Email: "quickstart@aramaki.invalid", When: time.Now()}
	_, err = wt.Commit("Start from the quickstart sample\n\n"+
		"A small hosting company: the webshop of Example Corp and the blog of\n"+
		"Example Media, both running on shared compute and storage.\n",
		&git.CommitOptions{Author: who, Committer: who})
	return err
}
