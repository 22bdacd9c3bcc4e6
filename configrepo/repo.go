package configrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/aramaki/aramaki"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// MaxProblems is how many problems Load reports for one commit; the rest are
// summed up in a last line. Problems end up in events, which are bounded.
const MaxProblems = 100

// Options say how to read a config repository.
type Options struct {
	// Branch is the branch to read. When empty, a local repository is read
	// at its HEAD, and one given by URL at the branch the remote's HEAD
	// named when it was cloned.
	Branch string
	// CacheDir is where a repository given by URL is cloned to, in a
	// subdirectory named after the URL and branch. It is required for URLs
	// and unused for local paths.
	CacheDir string
}

// Repo is a config repository: a local Git repository, or a remote one that
// is cloned into a cache and fetched on every Load. Only committed content
// is read, never a working tree. A Repo is safe for concurrent use; loads
// happen one at a time.
type Repo struct {
	mu     sync.Mutex
	source string // for messages: the path, or the URL without its password
	url    string // empty for a local repository
	dir    string // the local repository, or the clone of url
	branch string

	// last is what the newest commit read, so that polling a repository
	// that has not changed does not parse it again.
	last *loaded
}

type loaded struct {
	hash     plumbing.Hash
	snap     aramaki.ConfigSnapshot
	problems []string
}

// scpLike matches the short form of SSH URLs, user@host:path.
var scpLike = regexp.MustCompile(`^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:`)

// isURL reports whether source names a remote repository rather than a
// local path: scheme://… or user@host:path.
func isURL(source string) bool {
	return strings.Contains(source, "://") || scpLike.MatchString(source)
}

// Open prepares to read the config repository at source: a path to a local
// repository (bare or with a working tree), or a URL (https://, http://,
// ssh://, user@host:path, file://). A local repository must exist now; one
// given by URL is cloned on the first Load, so that the server starts even
// while the Git host is away.
func Open(ctx context.Context, source string, opts Options) (*Repo, error) {
	if strings.TrimSpace(source) == "" {
		return nil, aramaki.Errorf(aramaki.EINVALID, "no config repository given")
	}
	if opts.Branch != "" {
		if err := plumbing.NewBranchReferenceName(opts.Branch).Validate(); err != nil {
			return nil, aramaki.Errorf(aramaki.EINVALID, "invalid branch name %q", opts.Branch)
		}
	}
	r := &Repo{branch: opts.Branch}

	if isURL(source) {
		r.url, r.source = source, redact(source)
		if opts.CacheDir == "" {
			return nil, aramaki.Errorf(aramaki.EINVALID, "config repository %s is remote and needs a cache directory to be cloned into", r.source)
		}
		cache, err := filepath.Abs(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("open config repository: %w", err)
		}
		if err := os.MkdirAll(cache, 0o700); err != nil {
			return nil, fmt.Errorf("open config repository: %w", err)
		}
		r.dir = filepath.Join(cache, cacheName(source, opts.Branch))
		return r, nil
	}

	dir, err := filepath.Abs(source)
	if err != nil {
		return nil, fmt.Errorf("open config repository: %w", err)
	}
	r.dir, r.source = dir, dir
	if _, err := r.openLocal(); err != nil {
		return nil, fmt.Errorf("open config repository: %w", err)
	}
	return r, nil
}

// redact removes the password from a URL, for messages.
func redact(source string) string {
	if u, err := url.Parse(source); err == nil && u.User != nil {
		return u.Redacted()
	}
	return source
}

// cacheName names the clone of a URL in the cache: readable, and different
// for every URL and branch, so that changing either never reads a stale clone.
func cacheName(source, branch string) string {
	sum := sha256.Sum256([]byte(source + "\n" + branch))
	base := strings.TrimSuffix(path.Base(strings.TrimRight(source, "/")), ".git")
	base = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, base)
	if len(base) > 40 {
		base = base[:40]
	}
	return strings.Trim(base, ".-") + "-" + hex.EncodeToString(sum[:6]) + ".git"
}

// Load reads the newest commit of the branch (fetching it first when the
// repository is remote) and parses its systems and notifiers. A commit with problems is
// not an error: Load returns its Commit with the problems, each
// "file:line: message", and no systems or notifiers. The error is for a repository that
// cannot be read at all; its code is EUNAVAILABLE when the repository
// cannot be reached or opened.
func (r *Repo) Load(ctx context.Context) (aramaki.ConfigSnapshot, []string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	snap, problems, err := r.load(ctx)
	if err != nil {
		return aramaki.ConfigSnapshot{}, nil, fmt.Errorf("read config repository: %w", err)
	}
	return snap, problems, nil
}

func (r *Repo) load(ctx context.Context) (aramaki.ConfigSnapshot, []string, error) {
	var repo *git.Repository
	var err error
	if r.url == "" {
		repo, err = r.openLocal()
	} else {
		repo, err = r.fetch(ctx)
	}
	if err != nil {
		return aramaki.ConfigSnapshot{}, nil, err
	}
	c, err := r.newest(repo)
	if err != nil {
		return aramaki.ConfigSnapshot{}, nil, err
	}
	if r.last != nil && r.last.hash == c.Hash {
		snap := r.last.snap
		snap.Systems = slices.Clone(snap.Systems)
		snap.Notifiers = slices.Clone(snap.Notifiers)
		return snap, slices.Clone(r.last.problems), nil
	}
	files, pre, err := readConfigFiles(ctx, repo.Storer, c)
	if err != nil {
		return aramaki.ConfigSnapshot{}, nil, fmt.Errorf("commit %s: %w", c.Hash, err)
	}

	snap, problems := parse(files, pre)
	snap.Commit = aramaki.Commit{
		Hash:    c.Hash.String(),
		Author:  clean(c.Author.Name + " <" + c.Author.Email + ">"),
		Message: clean(strings.TrimSpace(c.Message)),
		Time:    c.Committer.When.UTC(),
	}
	var out []string
	for i, p := range problems {
		if i == MaxProblems {
			out = append(out, fmt.Sprintf("… and %d more problems", len(problems)-MaxProblems))
			break
		}
		out = append(out, clean(p.String()))
	}
	r.last = &loaded{hash: c.Hash, snap: snap, problems: out}
	snap.Systems = slices.Clone(snap.Systems)
	snap.Notifiers = slices.Clone(snap.Notifiers)
	return snap, slices.Clone(out), nil
}

// clean makes text from Git safe to store: valid UTF-8 (Git does not insist
// on it) and without NUL, which databases refuse.
func clean(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

func (r *Repo) openLocal() (*git.Repository, error) {
	if _, err := os.Stat(r.dir); err != nil {
		return nil, aramaki.Errorf(aramaki.EUNAVAILABLE, "config repository %s cannot be read: %v", r.source, errors.Unwrap(err))
	}
	repo, err := git.PlainOpenWithOptions(r.dir, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return nil, aramaki.Errorf(aramaki.EUNAVAILABLE, "config repository %s is not a Git repository", r.source)
	} else if err != nil {
		return nil, aramaki.Errorf(aramaki.EUNAVAILABLE, "config repository %s cannot be opened: %v", r.source, err)
	}
	return repo, nil
}

// fetch brings the clone of a remote repository up to date, cloning it first
// when there is none (or only the remains of an interrupted clone).
func (r *Repo) fetch(ctx context.Context) (*git.Repository, error) {
	repo, err := git.PlainOpen(r.dir)
	if err == nil {
		if _, err := repo.Head(); err != nil {
			repo = nil // a clone that did not finish: start again
		}
	}
	if repo == nil {
		if err := os.RemoveAll(r.dir); err != nil {
			return nil, fmt.Errorf("remove unfinished clone: %w", err)
		}
		opts := &git.CloneOptions{URL: r.url, Tags: git.NoTags}
		if r.branch != "" {
			opts.ReferenceName = plumbing.NewBranchReferenceName(r.branch)
			opts.SingleBranch = true
		}
		repo, err := git.PlainCloneContext(ctx, r.dir, true, opts)
		if err != nil {
			return nil, unreachable("clone", r.source, err)
		}
		return repo, nil
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{RemoteName: git.DefaultRemoteName, Tags: git.NoTags})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, unreachable("fetch", r.source, err)
	}
	return repo, nil
}

func unreachable(verb, source string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", verb, source, err)
	}
	return aramaki.Errorf(aramaki.EUNAVAILABLE, "%s %s: %v", verb, source, err)
}

// newest resolves the commit to read: for a local repository HEAD or the
// branch, for a remote one the fetched state of the branch.
func (r *Repo) newest(repo *git.Repository) (*object.Commit, error) {
	var name plumbing.ReferenceName
	switch {
	case r.url == "" && r.branch == "":
		name = plumbing.HEAD
	case r.url == "":
		name = plumbing.NewBranchReferenceName(r.branch)
	default:
		branch := r.branch
		if branch == "" {
			head, err := repo.Reference(plumbing.HEAD, false)
			if err != nil {
				return nil, fmt.Errorf("clone of %s has no HEAD: %w", r.source, err)
			}
			branch = head.Target().Short()
		}
		name = plumbing.NewRemoteReferenceName(git.DefaultRemoteName, branch)
	}
	ref, err := repo.Reference(name, true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		if name == plumbing.HEAD {
			return nil, aramaki.Errorf(aramaki.ENOTFOUND, "config repository %s has no commits yet", r.source)
		}
		return nil, aramaki.Errorf(aramaki.ENOTFOUND, "config repository %s has no branch %s", r.source, name.Short())
	} else if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", name, err)
	}
	c, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("%s is not a commit: %w", name.Short(), err)
	}
	return c, nil
}

// readConfigFiles reads the system files of a commit and notifiers.yaml.
// Limits are checked on the sizes Git records before anything is read, so
// that a hostile commit costs little memory.
func readConfigFiles(ctx context.Context, s storer.EncodedObjectStorer, c *object.Commit) (map[string][]byte, []Problem, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, nil, err
	}
	files, problems, err := readSystemFiles(ctx, s, tree)
	if err != nil || files == nil {
		return files, problems, err
	}

	e, err := tree.FindEntry(notifiersFile)
	switch {
	case errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound):
		return files, problems, nil
	case err != nil:
		return nil, nil, err
	}
	switch e.Mode {
	case filemode.Regular, filemode.Executable, filemode.Deprecated:
	case filemode.Symlink:
		return files, append(problems, Problem{File: notifiersFile, Message: "symbolic links are not followed: put the file itself at the root of the repository"}), nil
	default:
		return files, append(problems, Problem{File: notifiersFile, Message: "must be a file, not a directory or submodule"}), nil
	}
	if size, err := s.EncodedObjectSize(e.Hash); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", notifiersFile, err)
	} else if size > MaxFileSize {
		return files, append(problems, fileTooLarge(notifiersFile)), nil
	}
	data, err := readBlob(s, e.Hash)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", notifiersFile, err)
	}
	files[notifiersFile] = data
	return files, problems, nil
}

// readSystemFiles reads the files under systems/. When there are too many
// or they are too large it returns no files, only the problem.
func readSystemFiles(ctx context.Context, s storer.EncodedObjectStorer, tree *object.Tree) (map[string][]byte, []Problem, error) {
	sub, err := tree.Tree(systemsDir)
	if errors.Is(err, object.ErrDirectoryNotFound) {
		return map[string][]byte{}, nil, nil
	} else if err != nil {
		return nil, nil, err
	}

	var problems []Problem
	var names []string
	var hashes []plumbing.Hash
	var count int
	var total int64
	walker := object.NewTreeWalker(sub, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		name = systemsDir + "/" + name
		if !IsSystemFile(name) {
			continue
		}
		switch e.Mode {
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
		case filemode.Symlink:
			problems = append(problems, Problem{File: name, Message: "symbolic links are not followed: put the file itself under systems/"})
			continue
		default:
			continue // a directory or submodule that happens to be named *.yaml
		}
		if count++; count > MaxFiles {
			continue // counted, not read
		}
		size, err := s.EncodedObjectSize(e.Hash)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		if size > MaxFileSize {
			problems = append(problems, fileTooLarge(name))
			continue
		}
		total += size
		names = append(names, name)
		hashes = append(hashes, e.Hash)
	}
	if count > MaxFiles {
		return nil, []Problem{tooManyFiles(count)}, nil
	}
	if total > MaxTotalSize {
		return nil, []Problem{tooLarge(total)}, nil
	}

	files := make(map[string][]byte, len(names))
	for i, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		data, err := readBlob(s, hashes[i])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		files[name] = data
	}
	return files, problems, nil
}

func readBlob(s storer.EncodedObjectStorer, h plumbing.Hash) ([]byte, error) {
	blob, err := object.GetBlob(s, h)
	if err != nil {
		return nil, err
	}
	rd, err := blob.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(io.LimitReader(rd, MaxFileSize+1))
}

// String names the repository for logs and messages: its path, or its URL
// without a password.
func (r *Repo) String() string { return r.source }
