package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
)

// TimelineCommand shows the timeline, newest first:
// aramaki timeline [--system ID] [--kind K,…] [--since T] [--until T] [--limit N] [--cursor C].
type TimelineCommand struct{ stdout io.Writer }

// Run prints one page of the timeline, and how to get the next.
func (c *TimelineCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki timeline", flag.ContinueOnError)
	system := fs.String("system", "", "only this system and everything under it")
	kind := fs.String("kind", "", "only these kinds, comma-separated (note, config.applied, …)")
	since := fs.String("since", "", "from this time on: RFC 3339 or a duration ago, like 24h")
	until := fs.String("until", "", "before this time: RFC 3339 or a duration ago")
	limit := fs.Int("limit", aramaki.DefaultTimelineLimit, "events per page")
	cursor := fs.String("cursor", "", "continue after a previous page")
	_, cl, err := parseClient(fs, args, &s, 0, 0, "aramaki timeline [--system ID] [--kind K] [--since T] [--until T] [--limit N] [--cursor C]")
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"system": *system, "kind": *kind, "since": *since, "until": *until, "cursor": *cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", strconv.Itoa(*limit))
	var page api.TimelineResponse
	if err := cl.do(ctx, "GET", "/api/v1/timeline", q, nil, &page); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, page)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tACTOR\tSYSTEMS\tSUMMARY")
	for _, ev := range page.Events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ev.Time.Local().Format("2006-01-02 15:04:05"), clean(string(ev.Kind)), clean(ev.Actor), list(ev.Systems), clean(ev.Summary))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.NextCursor != "" {
		fmt.Fprintf(c.stdout, "\nOlder events: add --cursor %s\n", page.NextCursor)
	}
	return nil
}
