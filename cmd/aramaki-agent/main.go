// Command aramaki-agent is the Aramaki agent: it runs on a host, enrolled to
// one server, runs the checks the server defines and reports their results,
// keepalives and inventory facts.
//
//	aramaki-agent --data DIR --enroll TOKEN [--force]   enroll with the server the token names, then run
//	aramaki-agent --data DIR                            run (enrolled before)
//	aramaki-agent version                               print the version
//
// --enroll - reads the token from standard input, which keeps it out of the
// process list. The agent stops cleanly on SIGINT and SIGTERM. It links
// neither the store nor any database driver nor the web UI.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/aramaki/aramaki/agent"
)

// version is set at build time: go build -ldflags "-X main.version=1.0.0".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintln(stdout, "aramaki-agent", agentVersion())
		return 0
	}
	fs := flag.NewFlagSet("aramaki-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "the agent's data directory (required)")
	token := fs.String("enroll", "", "enroll with this token (\"-\": read it from standard input), then run")
	force := fs.Bool("force", false, "with --enroll: enroll again, replacing the agent's identity")
	actions := fs.String("actions", "/etc/aramaki/actions.d", "directory of the host's allow-listed actions (*.yaml); see docs/agents.md")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "The Aramaki agent.\n\nUsage:\n"+
			"  aramaki-agent --data DIR --enroll TOKEN [--force]   enroll, then run\n"+
			"  aramaki-agent --data DIR                            run\n"+
			"  aramaki-agent version\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "aramaki-agent: unexpected argument %q\n", fs.Arg(0))
		return 2
	case *data == "":
		fmt.Fprintln(stderr, "aramaki-agent: --data DIR is required")
		return 2
	case *force && *token == "":
		fmt.Fprintln(stderr, "aramaki-agent: --force goes with --enroll")
		return 2
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "aramaki-agent: %v\n", err)
		return 2
	}

	if *token != "" {
		if *token == "-" {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && line == "" {
				fmt.Fprintln(stderr, "aramaki-agent: no enrollment token on standard input")
				return 2
			}
			*token = strings.TrimSpace(line)
		}
		id, err := agent.Enroll(ctx, *data, *token, agent.EnrollOptions{Force: *force, Version: agentVersion()})
		if err != nil {
			fmt.Fprintf(stderr, "aramaki-agent: %v\n", err)
			return 1
		}
		log.Info("enrolled", "agent", id.AgentID, "name", id.Name, "server", id.ServerURL, "systems", strings.Join(id.Systems, " "))
	}
	a, err := agent.New(agent.Config{Dir: *data, Version: agentVersion(), ActionsDir: *actions}, log)
	if err != nil {
		fmt.Fprintf(stderr, "aramaki-agent: %v\n", err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "aramaki-agent: %v\n", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// agentVersion is the version set at build time, else the module version
// the binary was built from, else "dev".
func agentVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
