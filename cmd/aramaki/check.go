package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

// CheckCommand shows a check's history or runs it now:
// aramaki check history|run SYSTEM CHECK.
type CheckCommand struct{ stdout io.Writer }

// Run prints the history or the fresh results.
func (c *CheckCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki check", flag.ContinueOnError)
	wait := fs.Duration("wait", 0, "with run: how long to wait for results (default: the check's timeout and some)")
	pos, cl, err := parseClient(fs, args, &s, 3, 3, "aramaki check history|run SYSTEM CHECK")
	if err != nil {
		return err
	}
	path := "/api/v1/systems/" + url.PathEscape(pos[1]) + "/checks/" + url.PathEscape(pos[2])
	switch pos[0] {
	case "history":
		var h service.CheckHistory
		if err := cl.do(ctx, "GET", path, nil, nil, &h); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, h)
		}
		printHistory(c.stdout, h)
		return nil
	case "run":
		body := map[string]string{}
		if *wait > 0 {
			body["wait"] = wait.String()
		}
		var resp api.RunCheckResponse
		if err := cl.do(ctx, "POST", path+"/run", nil, body, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		if len(resp.Results) == 0 {
			return fmt.Errorf("no result arrived in time; it will show in the history when it does")
		}
		for _, r := range resp.Results {
			fmt.Fprintf(c.stdout, "%s on %s: %s in %s\n%s\n", clean(r.Check), r.Agent, upper(r.Status), r.Duration.Round(time.Millisecond), cleanBlock(r.Output))
		}
		return nil
	}
	return fmt.Errorf("unknown verb %q: use history or run", pos[0])
}

func printHistory(w io.Writer, h service.CheckHistory) {
	fmt.Fprintf(w, "%s/%s\n", clean(h.System), clean(h.Check))
	for _, a := range h.Agents {
		fmt.Fprintf(w, "\nOn %s: %s since %s — %s\n", a.Agent, upper(a.State.Status), ago(a.State.Since), clip(clean(a.State.Output), 100))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WINDOW\tOK\tWARNING\tCRITICAL\tUNKNOWN\tCHANGES\tFLAPPING")
		for _, st := range a.Stats {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%v\n", st.Window, pct(st.Share["ok"]), pct(st.Share["warning"]), pct(st.Share["critical"]), pct(st.Share["unknown"]), st.Changes, st.Flapping)
		}
		tw.Flush()
	}
	if len(h.Changes) > 0 {
		fmt.Fprintln(w, "\nChanges, newest first:")
		for _, ch := range h.Changes {
			change := upper(ch.From) + " → " + upper(ch.To)
			if ch.First {
				change = "first result " + upper(ch.To)
			}
			fmt.Fprintf(w, "  %s  %s on %s: %s\n", ch.At.Local().Format("2006-01-02 15:04:05"), change, ch.Agent, clip(clean(ch.Output), 80))
		}
	}
}
