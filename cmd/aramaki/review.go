package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/aramaki/aramaki"
)

// ReviewCommand shows the review digest of a system: aramaki review ID.
type ReviewCommand struct{ stdout io.Writer }

// Run prints what is noisy, always broken, unacknowledged and about to end
// under the system.
func (c *ReviewCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki review", flag.ContinueOnError)
	period := fs.Duration("period", 7*24*time.Hour, "the period to review")
	pos, cl, err := parseClient(fs, args, &s, 1, 1, "aramaki review SYSTEM [--period 168h]")
	if err != nil {
		return err
	}
	var d aramaki.Digest
	q := url.Values{"period": {period.String()}}
	if err := cl.do(ctx, "GET", "/api/v1/systems/"+url.PathEscape(pos[0])+"/digest", q, nil, &d); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, d)
	}
	fmt.Fprintf(c.stdout, "Review of %s (%s), %s to %s\n", clean(d.Title), clean(d.System), d.Since.Local().Format("2006-01-02 15:04"), d.Until.Local().Format("2006-01-02 15:04"))
	if d.Empty() {
		fmt.Fprintln(c.stdout, "\nNothing to review: no noisy or broken checks, no alerts left unacknowledged, no silences ending.")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	if len(d.Noisiest) > 0 {
		fmt.Fprintln(tw, "\nNOISIEST CHECK\tCHANGES\t\t")
		for _, n := range d.Noisiest {
			fmt.Fprintf(tw, "%s/%s\t%d\t\t\n", clean(n.System), clean(n.Check), n.Changes)
		}
	}
	if len(d.AlwaysBroken) > 0 {
		fmt.Fprintln(tw, "\nALWAYS BROKEN\tAGENT\tSTATUS\tSINCE\tOUTPUT")
		for _, st := range d.AlwaysBroken {
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\n", clean(st.System), clean(st.Check), st.Agent, upper(st.Status), ago(st.Since), clip(clean(st.Output), 60))
		}
	}
	if len(d.Unacknowledged) > 0 {
		fmt.Fprintln(tw, "\nUNACKNOWLEDGED\tALERT\tSTATUS\tOPENED\t")
		for _, a := range d.Unacknowledged {
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t\n", clean(a.System), clean(a.Check), a.ID, upper(a.Status), ago(a.Opened))
		}
	}
	if len(d.Expiring) > 0 {
		fmt.Fprintln(tw, "\nSILENCE ENDING\tBY\tEND\tREASON\t")
		for _, sl := range d.Expiring {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", clean(sl.System), clean(sl.CreatedBy), sl.End.Local().Format("2006-01-02 15:04"), clip(clean(sl.Reason), 60))
		}
	}
	return tw.Flush()
}
