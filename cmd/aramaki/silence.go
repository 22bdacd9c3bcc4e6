package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
)

// SilenceCommand mutes a system's alerts for a while:
// aramaki silence create --system S (--for 2h | --until T) [--start T] --reason TEXT
// [--maintenance] [--until-resolved] | list [--system S] | end ID.
type SilenceCommand struct{ stdout io.Writer }

const silenceUsage = "aramaki silence create --system S (--for 2h | --until RFC3339) [--start RFC3339] --reason TEXT [--maintenance] [--until-resolved] | list [--system S] | end ID"

// Run creates, lists or ends silences.
func (c *SilenceCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki silence", flag.ContinueOnError)
	system := fs.String("system", "", "create: the system to silence, with everything under it; list: only silences covering it")
	duration := fs.Duration("for", 0, "create: how long, like 2h")
	until := fs.String("until", "", "create: until this time (RFC 3339)")
	start := fs.String("start", "", "create: from this time (RFC 3339; default now)")
	reason := fs.String("reason", "", "create: why, for the timeline and whoever gets no page")
	maintenance := fs.Bool("maintenance", false, "create: a planned maintenance window")
	untilResolved := fs.Bool("until-resolved", false, "create: end early once the alerts it covers have all resolved")
	pos, cl, err := parseClient(fs, args, &s, 1, 2, silenceUsage)
	if err != nil {
		return err
	}
	switch {
	case pos[0] == "create" && len(pos) == 1:
		if (*duration == 0) == (*until == "") {
			return errors.New("say how long: --for 2h or --until 2026-11-24T06:00:00Z, one of the two")
		}
		req := api.SilenceRequest{System: *system, Start: *start, End: *until, Reason: *reason, Maintenance: *maintenance, UntilResolved: *untilResolved}
		if *duration != 0 {
			req.Duration = duration.String()
		}
		var sl aramaki.Silence
		if err := cl.do(ctx, "POST", "/api/v1/silences", nil, req, &sl); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, sl)
		}
		fmt.Fprintf(c.stdout, "Silenced %s from %s until %s (silence %s)\n", clean(sl.System),
			sl.Start.Local().Format(time.RFC3339), sl.End.Local().Format(time.RFC3339), clean(sl.ID))
		return nil
	case pos[0] == "list" && len(pos) == 1:
		path := "/api/v1/silences"
		if *system != "" {
			path = "/api/v1/systems/" + url.PathEscape(*system) + "/silences"
		}
		var resp api.SilencesResponse
		if err := cl.do(ctx, "GET", path, nil, nil, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSYSTEM\tSTART\tEND\tBY\tKIND\tREASON")
		for _, sl := range resp.Silences {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(sl.ID), clean(sl.System), sl.Start.Local().Format("2006-01-02 15:04"),
				sl.End.Local().Format("2006-01-02 15:04"), clean(sl.CreatedBy), silenceKind(sl), clip(clean(sl.Reason), 60))
		}
		return tw.Flush()
	case pos[0] == "end" && len(pos) == 2:
		var sl aramaki.Silence
		if err := cl.do(ctx, "DELETE", "/api/v1/silences/"+url.PathEscape(pos[1]), nil, nil, &sl); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, sl)
		}
		fmt.Fprintf(c.stdout, "Ended the silence of %s (silence %s)\n", clean(sl.System), clean(sl.ID))
		return nil
	}
	return fmt.Errorf("usage: %s", silenceUsage)
}

// silenceKind says what sort of silence it is.
func silenceKind(sl aramaki.Silence) string {
	kind := "silence"
	if sl.Maintenance {
		kind = "maintenance"
	}
	if sl.UntilResolved {
		kind += ", until resolved"
	}
	return kind
}
