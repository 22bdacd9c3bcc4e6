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

// UserCommand manages users:
// aramaki user list | create NAME [--password-stdin] | disable NAME | enable NAME | email NAME [ADDRESS].
type UserCommand struct{ stdout io.Writer }

// Run lists or creates users.
func (c *UserCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki user", flag.ContinueOnError)
	fromStdin := fs.Bool("password-stdin", false, "read the new user's password from standard input (default: make a random one and print it)")
	pos, cl, err := parseClient(fs, args, &s, 1, 3, "aramaki user list | create NAME [--password-stdin] | disable NAME | enable NAME | email NAME [ADDRESS]")
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
		fmt.Fprintln(tw, "NAME\tCREATED\tDISABLED\tEMAIL")
		for _, u := range resp.Users {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", clean(u.Name), u.Created.Local().Format(time.RFC3339), u.Disabled, clean(u.Email))
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
	case pos[0] == "email" && len(pos) >= 2:
		address := ""
		if len(pos) == 3 {
			address = pos[2]
		}
		if err := cl.do(ctx, "PUT", "/api/v1/users/"+url.PathEscape(pos[1])+"/email", nil, map[string]string{"email": address}, nil); err != nil {
			return err
		}
		if address == "" {
			fmt.Fprintf(c.stdout, "User %s has no e-mail address now.\n", clean(pos[1]))
		} else {
			fmt.Fprintf(c.stdout, "User %s is told things meant for them at %s.\n", clean(pos[1]), clean(address))
		}
		return nil
	case (pos[0] == "disable" || pos[0] == "enable") && len(pos) == 2:
		if err := cl.do(ctx, "POST", "/api/v1/users/"+url.PathEscape(pos[1])+"/"+pos[0], nil, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "User %s is %sd.\n", clean(pos[1]), pos[0])
		return nil
	}
	return fmt.Errorf("usage: aramaki user list | create NAME [--password-stdin] | disable NAME | enable NAME | email NAME [ADDRESS]")
}
