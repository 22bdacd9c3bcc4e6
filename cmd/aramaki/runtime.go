package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/agentapi"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/configrepo"
	"github.com/aramaki/aramaki/federation"
	"github.com/aramaki/aramaki/notify"
	"github.com/aramaki/aramaki/pki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
	"github.com/aramaki/aramaki/web"
)

// Config is the server's configuration, parsed from flags and validated
// before anything starts.
type Config struct {
	DataDir      string
	Listen       string
	ConfigRepo   string
	ConfigBranch string
	Database     string // empty: SQLite in DataDir
	TLSCert      string
	TLSKey       string
	InsecureHTTP bool
	PublicURL    string
	PollInterval time.Duration
	// Name is what this server calls itself to its peers.
	Name string

	// Alert notifications.
	SMTP             notify.SMTPOptions
	SMTPPasswordFile string
	SMTPCAFile       string
	GroupWait        time.Duration // a new alert group waits this long for related alerts
	NotifyAttempts   int
	DigestEvery      time.Duration // owners' review digests; 0: none

	KeepaliveTimeout time.Duration // an agent silent this long turns its keepalive check critical
	ResultsRetention time.Duration // raw check results are kept this long
	HistoryRetention time.Duration // status changes ("always broken?") are kept this long

	// MemoryLimitMiB is how far the heap may grow before the garbage
	// collector works as hard as it must; 0: no limit (see tuneGC).
	MemoryLimitMiB int
}

// Validate reports the first problem of the configuration.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("--data is required")
	case c.Listen == "":
		return errors.New("--listen is required")
	case c.ConfigRepo == "":
		return errors.New("--config-repo is required: a path to a Git repository or its URL")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case c.InsecureHTTP && c.TLSCert != "":
		return errors.New("--insecure-http and --tls-cert contradict each other")
	case c.PollInterval < time.Second:
		return errors.New("--poll must be at least 1s")
	case c.KeepaliveTimeout < 10*time.Second:
		return errors.New("--keepalive-timeout must be at least 10s")
	case c.ResultsRetention < time.Hour || c.HistoryRetention < 24*time.Hour:
		return errors.New("--results-retention must be at least 1h and --history-retention at least 24h")
	case c.GroupWait < 0 || c.GroupWait > time.Hour:
		return errors.New("--group-wait must be between 0s and 1h")
	case c.DigestEvery != 0 && (c.DigestEvery < time.Hour || c.DigestEvery > 90*24*time.Hour):
		return errors.New("--digest-every must be 0 (never) or between 1h and 90 days")
	case c.NotifyAttempts < 1 || c.NotifyAttempts > 100:
		return errors.New("--notify-attempts must be between 1 and 100")
	case c.MemoryLimitMiB < 0 || c.MemoryLimitMiB > 1<<20:
		return errors.New("--memory-limit must be between 0 (no limit) and 1048576 MiB")
	case c.SMTP.Addr != "" && c.SMTP.From == "":
		return errors.New("--smtp-from is required with --smtp")
	case c.SMTP.Addr == "" && (c.SMTP.From != "" || c.SMTP.Username != "" || c.SMTPPasswordFile != "" || c.SMTPCAFile != ""):
		return errors.New("--smtp-from, --smtp-user, --smtp-password-file and --smtp-ca need --smtp")
	case (c.SMTP.Username == "") != (c.SMTPPasswordFile == ""):
		return errors.New("--smtp-user and --smtp-password-file go together")
	}
	if c.SMTP.Addr != "" {
		if _, _, err := net.SplitHostPort(c.SMTP.Addr); err != nil {
			return fmt.Errorf("--smtp %q: want host:port, like mail.example.com:587", c.SMTP.Addr)
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	if err := aramaki.ValidatePeerName(c.Name); err != nil {
		return fmt.Errorf("--name %q: 1-63 lower-case letters, digits and '-', starting with a letter", c.Name)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("--public-url %q is not an http(s) URL", c.PublicURL)
		}
	}
	return nil
}

// Server is one running Aramaki server: store, config repository watcher,
// service and the HTTP listener, wired together.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	svc   *service.Service
	links *federation.Links // this server's links with its peers
	http  *http.Server
	ln    net.Listener

	cancel context.CancelFunc
	wg     sync.WaitGroup
	creds  *service.Credentials
	pin    string // the CA fingerprint agents pin

	repoName string
}

// NewServer returns a server for a validated configuration.
func NewServer(cfg Config, log *slog.Logger) *Server {
	return &Server{cfg: cfg, log: log}
}

// Start opens everything and starts serving. On the very first start it
// creates the admin user; Credentials then returns what to show once.
func (s *Server) Start(ctx context.Context) (err error) {
	// The data directory holds the database, keys and tokens: ours alone.
	syscall.Umask(0o077)
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Chmod(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("protect data directory: %w", err)
	}
	defer func() {
		if err != nil {
			s.Stop(context.Background())
		}
	}()
	dsn := s.cfg.Database
	if dsn == "" {
		dsn = filepath.Join(s.cfg.DataDir, "aramaki.db")
	}
	if s.store, err = store.Open(ctx, dsn, s.log); err != nil {
		return err
	}
	repo, err := configrepo.Open(ctx, s.cfg.ConfigRepo, configrepo.Options{
		Branch:   s.cfg.ConfigBranch,
		CacheDir: filepath.Join(s.cfg.DataDir, "config-cache"),
	})
	if err != nil {
		return err
	}
	s.repoName = repo.String() // without a password in the URL
	// Listen before the service starts: links in notifications need the
	// address, which with port 0 is known only now.
	tlsConfig, err := s.tlsConfig()
	if err != nil {
		return err
	}
	if s.ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if tlsConfig != nil {
		s.ln = tls.NewListener(s.ln, tlsConfig)
	}
	sender, err := s.sender()
	if err != nil {
		return err
	}
	s.svc = service.New(s.store, repo, s.log, service.Options{URL: s.URL(), GroupWait: s.cfg.GroupWait,
		MaxAttempts: s.cfg.NotifyAttempts, Permanent: notify.IsPermanent, DigestEvery: s.cfg.DigestEvery,
		ServerName: s.cfg.Name, CASHA256: s.pin})
	s.svc.SetJoiner(federation.Joiner{})
	if err := s.svc.Open(ctx); err != nil {
		return err
	}
	if s.creds, err = s.svc.Bootstrap(ctx, s.saveAdminToken); err != nil {
		return err
	}
	if _, err := s.svc.SyncConfig(ctx, "config"); err != nil {
		// The last good config (if any) stays in force; the watcher retries.
		s.log.Error("cannot read the config repository", "repo", s.repoName, "err", err)
	}

	s.links = &federation.Links{Svc: s.svc, Log: s.log.With("component", "federation")}
	s.http = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second, // no ReadTimeout: agent websockets live long
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.background(func() {
		if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	})
	s.background(func() { s.svc.WatchConfig(bg, s.cfg.PollInterval) })
	s.background(func() { s.svc.RunIngest(bg) })
	s.background(func() { s.svc.RunAlerts(bg, sender) })
	s.background(func() { s.svc.RunDispatch(bg) })
	s.background(func() { s.links.Run(bg) })
	s.background(func() { s.svc.WatchKeepalives(bg, s.cfg.KeepaliveTimeout, max(s.cfg.KeepaliveTimeout/4, time.Second)) })
	s.background(func() {
		s.svc.Prune(bg, service.Retention{Results: s.cfg.ResultsRetention, History: s.cfg.HistoryRetention})
	})
	s.log.Info("aramaki server started", "url", s.URL(), "data", s.cfg.DataDir, "store", s.store.Dialect(), "config_repo", s.repoName)
	return nil
}

func (s *Server) background(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func (s *Server) handler() http.Handler {
	a := api.New(s.svc, s.log, api.Options{PublicURL: s.URL(), CAFingerprint: s.pin, ServerName: s.cfg.Name})
	agents := agentapi.New(s.svc, s.log, agentapi.Options{})
	mux := http.NewServeMux()
	mux.Handle("/api/", compress(a))
	mux.Handle("/api/v1/agent/", agents.Handler())
	mux.Handle("/healthz", a)
	mux.Handle("/federation/", a) // other servers: joining this one
	mux.Handle(federation.LinkPath, s.links.Handler())
	// The web UI: sessions are Secure cookies when the public URL is
	// https, even behind a TLS-terminating proxy.
	mux.Handle("/", compress(web.New(s.svc, s.log, web.Options{SecureCookies: s.cfg.PublicURL != "" && strings.HasPrefix(s.cfg.PublicURL, "https:"),
		PublicURL: s.URL(), CAFingerprint: s.pin, ServerName: s.cfg.Name})))
	return accessLog(s.log, mux)
}

// accessLog logs each request at debug level and failures at info level.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		level := slog.LevelDebug
		if rec.status >= 500 {
			level = slog.LevelInfo
		}
		log.Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", time.Since(start), "remote", r.RemoteAddr)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Hijack lets the agent websocket take over the connection.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be taken over")
	}
	r.status = http.StatusSwitchingProtocols
	return h.Hijack()
}

// Unwrap gives http.ResponseController the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) tlsConfig() (*tls.Config, error) {
	if s.cfg.InsecureHTTP {
		s.log.Warn("serving plain HTTP: passwords and tokens cross the network unencrypted; use only for development")
		return nil, nil
	}
	var cert tls.Certificate
	var err error
	if s.cfg.TLSCert != "" {
		cert, err = pki.LoadKeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
	} else {
		dir := filepath.Join(s.cfg.DataDir, "tls")
		var hosts []string
		if s.cfg.PublicURL != "" {
			u, _ := url.Parse(s.cfg.PublicURL)
			hosts = append(hosts, u.Hostname())
		}
		if host, _, _ := net.SplitHostPort(s.cfg.Listen); host != "" && host != "0.0.0.0" && host != "::" {
			hosts = append(hosts, host)
		}
		if err = pki.Ensure(dir, hosts); err == nil {
			cert, err = pki.LoadServer(dir)
		}
	}
	if err != nil {
		return nil, err
	}
	s.pin = pki.ChainFingerprint(cert)
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// sender delivers notifications: e-mail through the configured relay
// (none: e-mail notifications fail visibly), webhooks and chat messages
// with the secrets from the server's environment.
func (s *Server) sender() (*notify.Sender, error) {
	smtp := s.cfg.SMTP
	if s.cfg.SMTPPasswordFile != "" {
		pw, err := os.ReadFile(s.cfg.SMTPPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--smtp-password-file: %w", err)
		}
		smtp.Password = strings.TrimRight(string(pw), "\r\n")
	}
	if s.cfg.SMTPCAFile != "" {
		pem, err := os.ReadFile(s.cfg.SMTPCAFile)
		if err != nil {
			return nil, fmt.Errorf("--smtp-ca: %w", err)
		}
		smtp.RootCAs = x509.NewCertPool()
		if !smtp.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--smtp-ca %s: no PEM certificate in it", s.cfg.SMTPCAFile)
		}
	}
	return notify.New(notify.Options{SMTP: smtp}), nil
}

func (s *Server) saveAdminToken(c service.Credentials) (undo func(), err error) {
	path := s.AdminTokenPath()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(c.Token+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	return func() { os.Remove(path) }, nil
}

// AdminTokenPath is where the first admin's API token is written.
func (s *Server) AdminTokenPath() string { return filepath.Join(s.cfg.DataDir, "admin.token") }

// CAPath is the CA certificate clients trust, when the server made its own.
func (s *Server) CAPath() string {
	if s.cfg.InsecureHTTP || s.cfg.TLSCert != "" {
		return ""
	}
	return filepath.Join(s.cfg.DataDir, "tls", pki.CACertFile)
}

// Credentials returns the first admin's credentials when this start created
// them, else nil.
func (s *Server) Credentials() *service.Credentials { return s.creds }

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's public URL.
func (s *Server) URL() string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	scheme := "https"
	if s.cfg.InsecureHTTP {
		scheme = "http"
	}
	host, port, _ := net.SplitHostPort(s.Addr())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host, _ = os.Hostname()
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Stop shuts down gracefully: no new requests, running ones finish.
func (s *Server) Stop(ctx context.Context) error {
	var errs []error
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(ctx))
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	return errors.Join(errs...)
}
