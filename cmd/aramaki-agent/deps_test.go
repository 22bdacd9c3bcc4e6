package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The agent is small: it must not link the server's store, API, services,
// config repository or any database driver.
func TestTheAgentLinksNothingOfTheServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/aramaki/aramaki/store", "github.com/aramaki/aramaki/api", "github.com/aramaki/aramaki/service",
		"github.com/aramaki/aramaki/configrepo", "modernc.org/sqlite", "github.com/jackc/pgx", "database/sql",
		"github.com/go-git/go-git", "html/template",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed %q", out)
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("aramaki-agent links %s", dep)
			}
		}
	}
}
