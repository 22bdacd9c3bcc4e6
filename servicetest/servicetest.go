// Package servicetest builds a real Aramaki service for the tests of the
// adapters around it: a real SQLite store, a real Git config repository made
// with the git command, the first admin, and the first commit applied.
package servicetest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/configrepo"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
)

// Env is a service ready for a test.
type Env struct {
	Service *service.Service
	Store   *store.Store
	// Repo is the config repository's directory: commit to it with MustCommit.
	Repo string
	// Admin is the first admin's user name, password and API token.
	Admin service.Credentials
	Log   *slog.Logger
}

// MustService starts a service over a new store and a new config repository
// holding files, applies that first commit and creates the first admin.
func MustService(t testing.TB, files map[string]string) *Env {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	repoDir := filepath.Join(t.TempDir(), "config")
	MustGit(t, "", "init", "-q", "-b", "main", repoDir)
	MustCommit(t, repoDir, files, "Initial systems")
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "aramaki.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	repo, err := configrepo.Open(ctx, repoDir, configrepo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(st, repo, log, service.Options{})
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	creds, err := svc.Bootstrap(ctx, func(service.Credentials) (func(), error) { return func() {}, nil })
	if err != nil || creds == nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if res, err := svc.SyncConfig(ctx, "config"); err != nil || !res.Applied {
		t.Fatalf("first config sync: %+v %v", res, err)
	}
	return &Env{Service: svc, Store: st, Repo: repoDir, Admin: *creds, Log: log}
}

// MustGit runs the real git CLI in dir; a test without git is skipped.
func MustGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	cmd := exec.Command("git", append([]string{"-c", "user.name=Alice Admin", "-c", "user.email=alice@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// MustCommit writes files into a repository (an empty content removes the
// file) and commits them with the real git CLI.
func MustCommit(t testing.TB, repo string, files map[string]string, message string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(repo, name)
		if content == "" {
			MustGit(t, repo, "rm", "-q", name)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	MustGit(t, repo, "add", "-A")
	MustGit(t, repo, "commit", "-q", "-m", message)
}

// Hub stands in for the agent connections of a test without agents: the
// agents listed are connected and take every run they are asked to start,
// which the test then plays through the service (RunOutput, RunFinished).
type Hub struct{ Agents []string }

// StartRun takes the start.
func (h *Hub) StartRun(aramaki.RunStart, time.Duration) error { return nil }

// CancelRun takes the cancel.
func (h *Hub) CancelRun(string, string) error { return nil }

// ConnectedAgents lists the agents.
func (h *Hub) ConnectedAgents() []string { return h.Agents }

// Connected says every agent is.
func (h *Hub) Connected(string) bool { return true }

// Revoked does nothing.
func (h *Hub) Revoked(string, string) {}

// Run takes a request to run a check.
func (h *Hub) Run(string, string, string, string) error { return nil }
