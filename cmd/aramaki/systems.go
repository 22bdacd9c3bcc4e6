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

// SystemsCommand lists systems: aramaki systems [--anchors] [--category C].
type SystemsCommand struct{ stdout io.Writer }

// Run lists the systems the caller may see.
func (c *SystemsCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki systems", flag.ContinueOnError)
	anchors := fs.Bool("anchors", false, "only anchor systems (used by no other system)")
	category := fs.String("category", "", "only systems of this category")
	_, cl, err := parseClient(fs, args, &s, 0, 0, "aramaki systems [--anchors] [--category C]")
	if err != nil {
		return err
	}
	q := url.Values{}
	if *anchors {
		q.Set("anchors", "true")
	}
	if *category != "" {
		q.Set("category", *category)
	}
	var resp struct {
		Systems []service.SystemView `json:"systems"`
	}
	if err := cl.do(ctx, "GET", "/api/v1/systems", q, nil, &resp); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, resp)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTITLE\tCATEGORY\tSUBSYSTEMS\tUSED BY")
	for _, sys := range resp.Systems {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", clean(sys.ID), clean(sys.Title), clean(sys.Category), list(sys.Subsystems), list(sys.UsedBy))
	}
	return tw.Flush()
}
