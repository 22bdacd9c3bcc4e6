package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"

	"github.com/aramaki/aramaki/service"
)

// StatusCommand shows a system's rolled-up status: aramaki status ID.
type StatusCommand struct{ stdout io.Writer }

// Run prints the status, the layer below and the problems under it.
func (c *StatusCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki status", flag.ContinueOnError)
	pos, cl, err := parseClient(fs, args, &s, 1, 1, "aramaki status SYSTEM")
	if err != nil {
		return err
	}
	var v service.StatusView
	if err := cl.do(ctx, "GET", "/api/v1/systems/"+url.PathEscape(pos[0])+"/status", nil, nil, &v); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, v)
	}
	fmt.Fprintf(c.stdout, "%s — %s: %s\n", clean(v.System), clean(v.Title), upper(v.Status))
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	if len(v.Checks) > 0 || len(v.Pending) > 0 {
		fmt.Fprintln(tw, "\nCHECK\tAGENT\tSTATUS\tSINCE\tOUTPUT")
		for _, st := range v.Checks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", clean(st.Check), st.Agent, upper(st.Status), ago(st.Since), clip(clean(st.Output), 80))
		}
		for _, name := range v.Pending {
			fmt.Fprintf(tw, "%s\t-\tPENDING\t-\tno result yet\n", clean(name))
		}
	}
	if len(v.Subsystems) > 0 {
		fmt.Fprintln(tw, "\nSUBSYSTEM\tSTATUS\tPROBLEMS\t\t")
		for _, sub := range v.Subsystems {
			fmt.Fprintf(tw, "%s\t%s\t%d\t\t\n", clean(sub.ID), upper(sub.Status), sub.Problems)
		}
	}
	if len(v.Problems) > 0 {
		fmt.Fprintln(tw, "\nPROBLEM\tAGENT\tSTATUS\tSINCE\tOUTPUT")
		for _, st := range v.Problems {
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\n", clean(st.System), clean(st.Check), st.Agent, upper(st.Status), ago(st.Since), clip(clean(st.Output), 80))
		}
	}
	return tw.Flush()
}
