// Command aramaki is the Aramaki server, its quickstart and the CLI client.
//
//	aramaki quickstart            a complete local server with sample data
//	aramaki server ...            a real deployment
//	aramaki systems|timeline|...  the client: talk to a server's API
//
// Run "aramaki help" for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// command is one subcommand.
type command interface {
	Run(ctx context.Context, args []string) error
}

type commandInfo struct {
	name    string
	summary string
	make    func(stdout, stderr io.Writer) command
}

func commands() []commandInfo {
	return []commandInfo{
		{"quickstart", "run a complete local server: SQLite, a sample config repository, TLS", func(o, e io.Writer) command { return &QuickstartCommand{stdout: o, stderr: e} }},
		{"server", "run a server", func(o, e io.Writer) command { return &ServerCommand{stdout: o, stderr: e} }},
		{"login", "log in to a server and save the client settings", func(o, e io.Writer) command { return &LoginCommand{stdout: o} }},
		{"systems", "list systems", func(o, e io.Writer) command { return &SystemsCommand{stdout: o} }},
		{"system", "show one system: aramaki system show ID", func(o, e io.Writer) command { return &SystemCommand{stdout: o} }},
		{"timeline", "show the timeline", func(o, e io.Writer) command { return &TimelineCommand{stdout: o} }},
		{"note", "post a note on a system: aramaki note ID TEXT", func(o, e io.Writer) command { return &NoteCommand{stdout: o} }},
		{"announce", "announce an incident or maintenance: aramaki announce ID --kind incident|maintenance TEXT", func(o, e io.Writer) command { return &AnnounceCommand{stdout: o} }},
		{"config", "config repository: aramaki config status|reload", func(o, e io.Writer) command { return &ConfigCommand{stdout: o} }},
		{"user", "users: aramaki user list|create", func(o, e io.Writer) command { return &UserCommand{stdout: o} }},
		{"token", "API tokens: aramaki token list|create|delete", func(o, e io.Writer) command { return &TokenCommand{stdout: o} }},
		{"role", "roles: aramaki role list|grant|revoke", func(o, e io.Writer) command { return &RoleCommand{stdout: o} }},
		{"status", "rolled-up status of a system: aramaki status ID", func(o, e io.Writer) command { return &StatusCommand{stdout: o} }},
		{"check", "a check's history, or run it now: aramaki check history|run SYSTEM CHECK", func(o, e io.Writer) command { return &CheckCommand{stdout: o} }},
		{"alerts", "the alerts to review, newest first: aramaki alerts [--state open,acknowledged] [--system S]", func(o, e io.Writer) command { return &AlertsCommand{stdout: o} }},
		{"alert", "one alert: aramaki alert show|ack|assign|comment|escalate|resolve ID", func(o, e io.Writer) command { return &AlertCommand{stdout: o} }},
		{"review", "what to review under a system: noisy, always broken, unacknowledged: aramaki review SYSTEM", func(o, e io.Writer) command { return &ReviewCommand{stdout: o} }},
		{"run", "run an allowed action on a system, or: aramaki run show|cancel ID, run stats ACTION --system ID", func(o, e io.Writer) command { return &RunCommand{stdout: o, stderr: e} }},
		{"runs", "runs of actions, newest first: aramaki runs [--system S] [--action A] [--state running,failed]", func(o, e io.Writer) command { return &RunsCommand{stdout: o} }},
		{"approve", "approve a run that waits for a second person: aramaki approve ID", func(o, e io.Writer) command { return &ApproveCommand{stdout: o} }},
		{"workflow", "run a workflow across a system's hosts, or its dry run: aramaki workflow run NAME --system ID; aramaki workflow runs|show|cancel|approve", func(o, e io.Writer) command { return &WorkflowCommand{stdout: o, stderr: e} }},
		{"silence", "mute a system's alerts for a while: aramaki silence create|list|end", func(o, e io.Writer) command { return &SilenceCommand{stdout: o} }},
		{"agent", "agents: aramaki agent token|list|show|revoke", func(o, e io.Writer) command { return &AgentCommand{stdout: o} }},
		{"peer", "peer with other servers: aramaki peer invite --name B | accept TOKEN | list | remove NAME", func(o, e io.Writer) command { return &PeerCommand{stdout: o} }},
		{"grant", "let a peer use systems until a time: aramaki grant create --peer B --system S --allow events,status --until T | list | revoke ID", func(o, e io.Writer) command { return &GrantCommand{stdout: o} }},
		{"federation", "this server's identity among its peers: aramaki federation identity | rotate-key", func(o, e io.Writer) command { return &FederationCommand{stdout: o} }},
		{"bench", "load generator: aramaki bench agents|runs --system ID [--agents N] [--rate R] [--runs N]", func(o, e io.Writer) command { return &BenchCommand{stdout: o, stderr: e} }},
		{"whoami", "show who the client is logged in as", func(o, e io.Writer) command { return &WhoAmICommand{stdout: o} }},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.make(stdout, stderr).Run(ctx, args[1:])
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 2
			}
			fmt.Fprintf(stderr, "aramaki %s: %s\n", c.name, errorText(err))
			return 1
		}
	}
	fmt.Fprintf(stderr, "aramaki: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Aramaki, a federated DevOps control plane.\n\nUsage: aramaki COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun aramaki COMMAND -h for its flags. Client commands read the server URL, token and CA\nfrom flags, ARAMAKI_SERVER / ARAMAKI_TOKEN / ARAMAKI_TOKEN_FILE / ARAMAKI_CA, or the file\nwritten by aramaki login.")
}

// newLogger makes the process logger: text or JSON on stderr.
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
