package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/agent"
	"github.com/aramaki/aramaki/configrepo"
	"github.com/aramaki/aramaki/wire"
)

// QuickstartCommand runs a complete local server with zero set-up: SQLite,
// a sample config repository, TLS by its own CA. Running it again reuses
// the data directory.
type QuickstartCommand struct {
	stdout, stderr io.Writer
}

// Run starts the quickstart server and serves until ctx ends.
func (c *QuickstartCommand) Run(ctx context.Context, args []string) error {
	var cfg Config
	var logFormat, logLevel string
	fs := flag.NewFlagSet("aramaki quickstart", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&cfg.DataDir, "data", "aramaki-data", "data directory")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8443", "address to listen on")
	noAgent := fs.Bool("no-agent", false, "do not run a local agent")
	serverFlags(fs, &cfg, &logFormat, &logLevel)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	cfg.DataDir = dataDir
	cfg.ConfigRepo = filepath.Join(dataDir, "config-repo")
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := newLogger(c.stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	syscall.Umask(0o077) // the data directory holds keys and tokens
	// The sample checks the server itself, so it needs the port: with port
	// 0 ("any"), pick a free one now.
	host, p, _ := net.SplitHostPort(cfg.Listen)
	port, _ := strconv.Atoi(p)
	if port == 0 {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		cfg.Listen = net.JoinHostPort(host, strconv.Itoa(port))
	}
	if err := configrepo.WriteSample(cfg.ConfigRepo, port); err != nil {
		return fmt.Errorf("write sample config repository: %w", err)
	}
	tuneGC(cfg.MemoryLimitMiB)
	srv := NewServer(cfg, log)
	if err := srv.Start(ctx); err != nil {
		return err
	}
	agentNote := "no local agent (--no-agent)"
	if !*noAgent {
		a, err := startLocalAgent(ctx, srv, filepath.Join(dataDir, "agent"), log)
		if err != nil {
			srv.Stop(context.Background())
			return fmt.Errorf("start the local agent: %w", err)
		}
		id := a.Identity()
		agentNote = fmt.Sprintf("a local agent (%s) checks %s", id.AgentID, strings.Join(id.Systems, ", "))
		go func() {
			if err := a.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("local agent stopped", "err", err)
			}
		}()
	}
	fmt.Fprintf(c.stdout, "\nAramaki quickstart is running at %s, with %s.\n", srv.URL(), agentNote)
	printFirstStart(c.stdout, srv)
	fmt.Fprintf(c.stdout, "The config repository is a Git repository at %s: commit there and the server picks it up.\n", cfg.ConfigRepo)
	fmt.Fprintf(c.stdout, "\nTry the CLI from another shell:\n")
	fmt.Fprintf(c.stdout, "  export ARAMAKI_SERVER=%s ARAMAKI_TOKEN_FILE=%s", srv.URL(), srv.AdminTokenPath())
	if ca := srv.CAPath(); ca != "" {
		fmt.Fprintf(c.stdout, " ARAMAKI_CA=%s", ca)
	}
	fmt.Fprintf(c.stdout, "\n  aramaki systems\n  aramaki timeline\n  aramaki run disk-usage --system compute --reason \"trying actions\" --wait 30s\n  aramaki workflow run disk-report --system compute --reason \"trying workflows\" --wait 1m\n\nStop with Ctrl-C; run it again to carry on with the same data.\n")
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Stop(stopCtx)
}

// localAgentSystems are the sample's systems the quickstart's own agent
// checks: the host it runs on stands in for the shared infrastructure.
var localAgentSystems = []string{"aramaki", "compute", "storage"}

// startLocalAgent enrolls an agent in dir on the first start (reusing it
// afterwards) and returns it ready to run in this process.
func startLocalAgent(ctx context.Context, srv *Server, dir string, log *slog.Logger) (*agent.Agent, error) {
	if _, err := agent.LoadIdentity(dir); errors.Is(err, agent.ErrNotEnrolled) {
		var systems []string
		for _, id := range localAgentSystems {
			if srv.svc.Graph().System(id) != nil {
				systems = append(systems, id)
			}
		}
		quickstart := aramaki.Principal{User: "quickstart", Bindings: []aramaki.RoleBinding{{User: "quickstart", System: aramaki.GlobalScope, Role: aramaki.RoleAdmin}}}
		t, err := srv.svc.CreateEnrollmentToken(ctx, quickstart, systems, 10*time.Minute)
		if err != nil {
			return nil, err
		}
		token := wire.EnrollmentToken{URL: srv.URL(), CASHA256: srv.pin, ID: t.ID, Secret: t.Secret}
		if _, err := agent.Enroll(ctx, dir, token.String(), agent.EnrollOptions{Version: version}); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	// A harmless action for this host, to try runs with.
	actions := filepath.Join(filepath.Dir(dir), "actions.d")
	if err := os.MkdirAll(actions, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(actions, "quickstart.yaml"), []byte(quickstartActions), 0o600); err != nil {
		return nil, err
	}
	return agent.New(agent.Config{Dir: dir, Version: version, ActionsDir: actions}, log.With("component", "agent"))
}

// quickstartActions are the actions the quickstart's host allows.
const quickstartActions = `# The actions this host allows (see docs/agents.md). The quickstart writes
# this file on every start.
actions:
  - name: disk-usage
    description: Show how full a file system is
    argv: [/usr/bin/df, -h, "{mount}"]
    params:
      - {name: mount, type: enum, values: [/, /tmp], default: /}
    timeout: 10s
`
