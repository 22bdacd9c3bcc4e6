package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/aramaki/aramaki/api"
)

// FederationCommand shows and renews this server's identity among its
// peers: aramaki federation identity | rotate-key.
type FederationCommand struct{ stdout io.Writer }

const federationUsage = "aramaki federation identity | rotate-key"

// Run shows the identity, or gives the server a new key.
func (c *FederationCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki federation", flag.ContinueOnError)
	pos, cl, err := parseClient(fs, args, &s, 1, 1, federationUsage)
	if err != nil {
		return err
	}
	var id api.IdentityView
	switch pos[0] {
	case "identity":
		err = cl.do(ctx, "GET", "/api/v1/federation/identity", nil, nil, &id)
	case "rotate-key":
		err = cl.do(ctx, "POST", "/api/v1/federation/identity/rotate", nil, nil, &id)
	default:
		return fmt.Errorf("usage: %s", federationUsage)
	}
	if err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, id)
	}
	if pos[0] == "rotate-key" && len(id.Keys) > 0 {
		fmt.Fprintf(c.stdout, "This server signs with its new key %s from now on; the old ones still verify what they signed.\n\n", clean(id.Keys[0].ID))
	}
	fmt.Fprintf(c.stdout, "Server %s, calling itself %s. Keys, current first:\n", clean(id.ID), clean(id.Name))
	for i, k := range id.Keys {
		state := "current"
		if i > 0 || k.Retired != nil {
			state = "retired"
			if k.Retired != nil {
				state += " " + k.Retired.Local().Format(time.RFC3339)
			}
		}
		fmt.Fprintf(c.stdout, "  %s  created %s  %s\n    fingerprint %s\n", clean(k.ID), k.Created.Local().Format(time.RFC3339), state, clean(k.Fingerprint))
	}
	return nil
}
