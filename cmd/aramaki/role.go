package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"

	"github.com/aramaki/aramaki"
)

// RoleCommand manages roles granted through the API:
// aramaki role list [--system ID] | grant USER ROLE --system ID | revoke USER --system ID.
// --system '*' means the whole server.
type RoleCommand struct{ stdout io.Writer }

// Run lists, grants or revokes roles.
func (c *RoleCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki role", flag.ContinueOnError)
	system := fs.String("system", "", "the system ('*' for the whole server)")
	usage := "aramaki role list [--system ID] | grant USER ROLE --system ID | revoke USER --system ID"
	pos, cl, err := parseClient(fs, args, &s, 1, 3, usage)
	if err != nil {
		return err
	}
	switch {
	case pos[0] == "list" && len(pos) == 1:
		q := url.Values{}
		if *system != "" {
			q.Set("system", *system)
		}
		var resp struct {
			Roles []aramaki.RoleBinding `json:"roles"`
		}
		if err := cl.do(ctx, "GET", "/api/v1/roles", q, nil, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tSYSTEM\tROLE\tGRANTED BY")
		for _, b := range resp.Roles {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", clean(b.User), clean(b.System), b.Role, clean(b.CreatedBy))
		}
		return tw.Flush()
	case pos[0] == "grant" && len(pos) == 3 && *system != "":
		var b aramaki.RoleBinding
		if err := cl.do(ctx, "POST", "/api/v1/roles", nil, map[string]string{"user": pos[1], "role": pos[2], "system": *system}, &b); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, b)
		}
		fmt.Fprintf(c.stdout, "%s is now %s on %s\n", clean(b.User), b.Role, clean(b.System))
		return nil
	case pos[0] == "revoke" && len(pos) == 2 && *system != "":
		return cl.do(ctx, "DELETE", "/api/v1/roles/"+url.PathEscape(*system)+"/"+url.PathEscape(pos[1]), nil, nil, nil)
	}
	return fmt.Errorf("usage: %s", usage)
}
