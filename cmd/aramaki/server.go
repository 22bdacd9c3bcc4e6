package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/federation"
	"github.com/aramaki/aramaki/service"
)

// ServerCommand runs a server: aramaki server --data DIR --listen ADDR --config-repo REPO.
type ServerCommand struct {
	stdout, stderr io.Writer
}

// serverFlags registers the flags shared by server and quickstart.
func serverFlags(fs *flag.FlagSet, cfg *Config, logFormat, logLevel *string) {
	fs.StringVar(&cfg.Database, "database", "", "PostgreSQL URL (postgres://…) for several replicas; default: SQLite in the data directory")
	fs.StringVar(&cfg.ConfigBranch, "config-branch", "", "branch of the config repository (default: its HEAD)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "certificate file to serve with (default: made by the server's own CA in DIR/tls)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "key file of --tls-cert")
	fs.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "serve plain HTTP without TLS (development only)")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "URL people, agents and peer servers reach this server at (default: from --listen)")
	fs.StringVar(&cfg.Name, "name", defaultServerName(), "what this server calls itself to its peers (they may call it otherwise)")
	fs.DurationVar(&cfg.PollInterval, "poll", 30*time.Second, "how often to look for new commits in the config repository")
	fs.DurationVar(&cfg.KeepaliveTimeout, "keepalive-timeout", 2*time.Minute, "an agent silent this long turns its keepalive check critical")
	fs.DurationVar(&cfg.ResultsRetention, "results-retention", 48*time.Hour, "how long raw check results are kept")
	fs.DurationVar(&cfg.HistoryRetention, "history-retention", 30*24*time.Hour, "how long status history is kept")
	fs.StringVar(&cfg.SMTP.Addr, "smtp", "", "SMTP relay host:port for alert e-mail (STARTTLS required)")
	fs.StringVar(&cfg.SMTP.From, "smtp-from", "", "sender address of alert e-mail")
	fs.StringVar(&cfg.SMTP.Username, "smtp-user", "", "user name at the SMTP relay")
	fs.StringVar(&cfg.SMTPPasswordFile, "smtp-password-file", "", "file holding the SMTP password")
	fs.StringVar(&cfg.SMTPCAFile, "smtp-ca", "", "PEM file of the CA that signed the relay's certificate (default: the system's)")
	fs.DurationVar(&cfg.GroupWait, "group-wait", service.DefaultGroupWait, "how long a new alert group waits for related alerts before notifying")
	fs.DurationVar(&cfg.DigestEvery, "digest-every", service.DefaultDigestPeriod, "how often system owners get a review digest by e-mail (0: never)")
	fs.IntVar(&cfg.NotifyAttempts, "notify-attempts", service.DefaultMaxAttempts, "how often a notification is tried before it fails with an alert of its own")
	fs.IntVar(&cfg.MemoryLimitMiB, "memory-limit", defaultMemoryLimitMiB, "MiB of heap past which the garbage collector works as hard as it must (0: no limit; GOGC and GOMEMLIMIT in the environment take precedence)")
	fs.StringVar(logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// Run starts the server and serves until ctx ends.
func (c *ServerCommand) Run(ctx context.Context, args []string) error {
	var cfg Config
	var logFormat, logLevel string
	fs := flag.NewFlagSet("aramaki server", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&cfg.DataDir, "data", "", "data directory (database, TLS files, admin token)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8443", "address to listen on")
	fs.StringVar(&cfg.ConfigRepo, "config-repo", "", "config repository: a path to a Git repository or its URL")
	serverFlags(fs, &cfg, &logFormat, &logLevel)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := newLogger(c.stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	tuneGC(cfg.MemoryLimitMiB)
	srv := NewServer(cfg, log)
	if err := srv.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Aramaki is serving at %s\n", srv.URL())
	printFirstStart(c.stdout, srv)
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Stop(stopCtx)
}

// printFirstStart shows the first admin's credentials, once.
func printFirstStart(w io.Writer, srv *Server) {
	if creds := srv.Credentials(); creds != nil {
		fmt.Fprintf(w, "\nFirst start: created the admin user. This password is shown only now:\n  user:     %s\n  password: %s\n", creds.User, creds.Password)
	}
	fmt.Fprintf(w, "The admin API token is in %s (mode 0600).\n", srv.AdminTokenPath())
	if ca := srv.CAPath(); ca != "" {
		fmt.Fprintf(w, "Clients trust the server's own CA: %s\n", ca)
	}
}

// defaultServerName is the server's name for its peers when --name is not
// given: the first label of the host name, made a peer name, or "aramaki".
func defaultServerName() string {
	host, _ := os.Hostname()
	label, _, _ := strings.Cut(strings.ToLower(host), ".")
	name := strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			return r
		}
		return '-'
	}, label)
	name = strings.TrimLeft(name, "-0123456789")
	if len(name) > 63 {
		name = name[:63]
	}
	if aramaki.ValidatePeerName(name) != nil {
		return federation.DefaultServerName
	}
	return name
}
