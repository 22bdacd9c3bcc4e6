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
	"github.com/aramaki/aramaki/service"
)

// TokenCommand manages one's own API tokens:
// aramaki token list | create NAME [--expires 720h] | delete ID.
type TokenCommand struct{ stdout io.Writer }

// Run lists, creates or deletes tokens.
func (c *TokenCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki token", flag.ContinueOnError)
	expires := fs.String("expires", "", "lifetime of a new token, like 720h (default: no expiry)")
	pos, cl, err := parseClient(fs, args, &s, 1, 2, "aramaki token list | create NAME [--expires 720h] | delete ID")
	if err != nil {
		return err
	}
	switch {
	case pos[0] == "list" && len(pos) == 1:
		var resp struct {
			Tokens []aramaki.Token `json:"tokens"`
		}
		if err := cl.do(ctx, "GET", "/api/v1/tokens", nil, nil, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED\tEXPIRES")
		for _, t := range resp.Tokens {
			exp := "never"
			if t.Expires != nil {
				exp = t.Expires.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, clean(t.Name), t.Created.Local().Format(time.RFC3339), exp)
		}
		return tw.Flush()
	case pos[0] == "create" && len(pos) == 2:
		var tok service.NewToken
		if err := cl.do(ctx, "POST", "/api/v1/tokens", nil, map[string]string{"name": pos[1], "expires_in": *expires}, &tok); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, tok)
		}
		fmt.Fprintf(c.stdout, "Token %s (shown only now):\n%s\n", tok.ID, tok.Secret)
		return nil
	case pos[0] == "delete" && len(pos) == 2:
		return cl.do(ctx, "DELETE", "/api/v1/tokens/"+url.PathEscape(pos[1]), nil, nil, nil)
	}
	return fmt.Errorf("usage: aramaki token list | create NAME [--expires 720h] | delete ID")
}
