package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/aramaki/aramaki/service"
)

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
