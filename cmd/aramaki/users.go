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

// UserCommand manages users: aramaki user list | create NAME [--password-stdin].
type UserCommand struct{ stdout io.Writer }

// Run lists or creates users.
func (c *UserCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki user", flag.ContinueOnError)
	fromStdin := fs.Bool("password-stdin", false, "read the new user's password from standard input (default: make a random one and print it)")
	pos, cl, err := parseClient(fs, args, &s, 1, 2, "aramaki user list | create NAME [--password-stdin]")
	if err != nil {
		return err
	}
	switch {
	case pos[0] == "list" && len(pos) == 1:
		var resp struct {
			Users []aramaki.User `json:"users"`
		}
		if err := cl.do(ctx, "GET", "/api/v1/users", nil, nil, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tDISABLED")
		for _, u := range resp.Users {
			fmt.Fprintf(tw, "%s\t%s\t%v\n", clean(u.Name), u.Created.Local().Format(time.RFC3339), u.Disabled)
		}
		return tw.Flush()
	case pos[0] == "create" && len(pos) == 2:
		password, generated := "", false
		if *fromStdin {
			if password, err = readPassword("Password for " + pos[1] + ": "); err != nil {
				return err
			}
		} else {
			if password, err = service.RandomPassword(); err != nil {
				return err
			}
			generated = true
		}
		var u aramaki.User
		if err := cl.do(ctx, "POST", "/api/v1/users", nil, map[string]string{"name": pos[1], "password": password}, &u); err != nil {
			return err
		}
		if s.output == "json" {
			out := map[string]any{"user": u}
			if generated {
				out["password"] = password
			}
			return printJSON(c.stdout, out)
		}
		fmt.Fprintf(c.stdout, "Created user %s.\n", clean(u.Name))
		if generated {
			fmt.Fprintf(c.stdout, "Password (shown only now): %s\n", password)
		}
		return nil
	}
	return fmt.Errorf("usage: aramaki user list | create NAME [--password-stdin]")
}

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

// WhoAmICommand shows who the client is: aramaki whoami.
type WhoAmICommand struct{ stdout io.Writer }

// Run prints the user and roles.
func (c *WhoAmICommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki whoami", flag.ContinueOnError)
	_, cl, err := parseClient(fs, args, &s, 0, 0, "aramaki whoami")
	if err != nil {
		return err
	}
	var me service.Me
	if err := cl.do(ctx, "GET", "/api/v1/me", nil, nil, &me); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, me)
	}
	fmt.Fprintf(c.stdout, "%s at %s\n", clean(me.User), s.Server)
	for _, b := range me.Bindings {
		fmt.Fprintf(c.stdout, "  %s on %s\n", b.Role, clean(b.System))
	}
	return nil
}
