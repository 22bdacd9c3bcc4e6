package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aramaki/aramaki/configrepo"
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
	if err := configrepo.WriteSample(cfg.ConfigRepo); err != nil {
		return fmt.Errorf("write sample config repository: %w", err)
	}
	srv := NewServer(cfg, log)
	if err := srv.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\nAramaki quickstart is running at %s\n", srv.URL())
	printFirstStart(c.stdout, srv)
	fmt.Fprintf(c.stdout, "The config repository is a Git repository at %s: commit there and the server picks it up.\n", cfg.ConfigRepo)
	fmt.Fprintf(c.stdout, "\nTry the CLI from another shell:\n")
	fmt.Fprintf(c.stdout, "  export ARAMAKI_SERVER=%s ARAMAKI_TOKEN_FILE=%s", srv.URL(), srv.AdminTokenPath())
	if ca := srv.CAPath(); ca != "" {
		fmt.Fprintf(c.stdout, " ARAMAKI_CA=%s", ca)
	}
	fmt.Fprintf(c.stdout, "\n  aramaki systems\n  aramaki timeline\n\nStop with Ctrl-C; run it again to carry on with the same data.\n")
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Stop(stopCtx)
}
