package main_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/aramaki/aramaki/configrepo"
	"github.com/aramaki/aramaki/pki"
)

// MustPostgresDatabase creates a fresh database on the test PostgreSQL
// server and returns its URL.
func MustPostgresDatabase(t *testing.T) string {
	t.Helper()
	admin := os.Getenv("ARAMAKI_TEST_POSTGRES")
	if admin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ARAMAKI_TEST_POSTGRES is not set; CI must test PostgreSQL (run scripts/test.sh)")
		}
		t.Skip("ARAMAKI_TEST_POSTGRES is not set; scripts/test.sh starts a PostgreSQL server")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "aramaki_e2e_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func TestTwoReplicasShareOnePostgreSQLDatabase(t *testing.T) {
	db := MustPostgresDatabase(t)
	dataA, dataB := t.TempDir(), t.TempDir()
	repo := filepath.Join(t.TempDir(), "config")
	if err := configrepo.WriteSample(repo, 8443); err != nil {
		t.Fatal(err)
	}
	// The first replica makes the CA; the second serves with its certificate.
	if err := pki.Ensure(filepath.Join(dataA, "tls"), nil); err != nil {
		t.Fatal(err)
	}
	tlsDir := filepath.Join(dataA, "tls")
	ca := filepath.Join(tlsDir, pki.CACertFile)
	args := func(data string) []string {
		return []string{"server", "--data", data, "--listen", "127.0.0.1:0", "--config-repo", repo, "--database", db,
			"--tls-cert", filepath.Join(tlsDir, pki.ServerCertFile), "--tls-key", filepath.Join(tlsDir, pki.ServerKeyFile), "--log-level", "warn"}
	}
	// Both start at once: one of them creates the admin, one config commit is applied.
	type result struct {
		p   *process
		err error
	}
	started := make(chan result, 2)
	for _, data := range []string{dataA, dataB} {
		go func() {
			p, err := start(t, data, "The admin API token is in", args(data)...)
			started <- result{p, err}
		}()
	}
	var procs []*process
	for range 2 {
		r := <-started
		if r.err != nil {
			t.Fatal(r.err)
		}
		procs = append(procs, r.p)
	}
	a, b := procs[0], procs[1]
	token := filepath.Join(dataA, "admin.token")
	if strings.Contains(b.output.String(), "password: ") {
		a, b = b, a
	}
	if strings.Contains(b.output.String(), "password: ") || !strings.Contains(a.output.String(), "password: ") {
		t.Fatalf("want exactly one replica to create the admin:\nA:\n%s\nB:\n%s", a.output.String(), b.output.String())
	}
	if _, err := os.Stat(token); err != nil {
		token = filepath.Join(dataB, "admin.token")
	}

	if out, err := cliWith(a.url, token, ca, "note", "storage", "Replacing", "a", "disk"); err != nil {
		t.Fatalf("note through one replica: %v\n%s", err, out)
	}
	out, err := cliWith(b.url, token, ca, "timeline", "-o", "json")
	if err != nil {
		t.Fatalf("timeline through the other replica: %v\n%s", err, out)
	}
	var page struct {
		Events []struct{ Kind, Summary string }
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, ev := range page.Events {
		counts[ev.Kind]++
	}
	if counts["note"] != 1 || counts["config.applied"] != 1 || counts["user.created"] != 1 {
		t.Fatalf("after two replicas started: %v, want one note, one config.applied, one user.created", counts)
	}

	// One replica dies; the other carries on with everything acknowledged.
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	if out, err := cliWith(b.url, token, ca, "timeline", "--kind", "note"); err != nil || !strings.Contains(out, "Replacing a disk") {
		t.Fatalf("the surviving replica lost the note: %v\n%s", err, out)
	}
}
