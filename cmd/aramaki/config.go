package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// ConfigCommand shows or reloads the config repository:
// aramaki config status|reload.
type ConfigCommand struct{ stdout io.Writer }

// Run shows the state or asks for a reload.
func (c *ConfigCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki config", flag.ContinueOnError)
	pos, cl, err := parseClient(fs, args, &s, 1, 1, "aramaki config status|reload")
	if err != nil {
		return err
	}
	switch pos[0] {
	case "status":
		var st aramaki.ConfigState
		if err := cl.do(ctx, "GET", "/api/v1/config", nil, nil, &st); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, st)
		}
		printConfigState(c.stdout, st)
		return nil
	case "reload":
		var res service.ConfigResult
		if err := cl.do(ctx, "POST", "/api/v1/config/reload", nil, nil, &res); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, res)
		}
		switch {
		case res.Rejected:
			fmt.Fprintf(c.stdout, "Commit %s is refused; the last good config stays in force:\n", short(res.Commit.Hash))
			for _, p := range res.Problems {
				fmt.Fprintf(c.stdout, "  %s\n", clean(p))
			}
			return fmt.Errorf("config commit %s is broken", short(res.Commit.Hash))
		case res.New:
			fmt.Fprintf(c.stdout, "Applied commit %s: %s\n", short(res.Commit.Hash), clean(firstLine(res.Commit.Message)))
		default:
			fmt.Fprintf(c.stdout, "Nothing new: commit %s is in force\n", short(res.Commit.Hash))
		}
		return nil
	}
	return fmt.Errorf("unknown verb %q: use status or reload", pos[0])
}

func printConfigState(w io.Writer, st aramaki.ConfigState) {
	if st.Applied == nil {
		fmt.Fprintln(w, "No config applied yet.")
	} else {
		fmt.Fprintf(w, "In force:  %s by %s, %s\n           %s\n", short(st.Applied.Hash), clean(st.Applied.Author),
			st.Applied.Time.Local().Format(time.RFC3339), clean(firstLine(st.Applied.Message)))
	}
	if st.CheckedAt != nil {
		fmt.Fprintf(w, "Checked:   %s\n", st.CheckedAt.Local().Format(time.RFC3339))
	}
	if st.Rejected != nil {
		fmt.Fprintf(w, "\nRefused:   %s by %s: %s\n", short(st.Rejected.Hash), clean(st.Rejected.Author), clean(firstLine(st.Rejected.Message)))
		for _, p := range st.Errors {
			fmt.Fprintf(w, "  %s\n", clean(p))
		}
	}
}
