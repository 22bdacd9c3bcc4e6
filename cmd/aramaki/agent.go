package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

// AgentCommand manages agents:
// aramaki agent token --system ID [--expires 1h] | list | show ID | revoke ID.
type AgentCommand struct{ stdout io.Writer }

// Run creates enrollment tokens, lists, shows or revokes agents.
func (c *AgentCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki agent", flag.ContinueOnError)
	var systems listFlag
	fs.Var(&systems, "system", "system the new agent is for (repeat for several)")
	expires := fs.String("expires", "1h", "how long the enrollment token is valid")
	usage := "aramaki agent token --system ID [--expires 1h] | list | show ID | revoke ID"
	pos, cl, err := parseClient(fs, args, &s, 1, 2, usage)
	if err != nil {
		return err
	}
	switch {
	case pos[0] == "token" && len(pos) == 1:
		var resp api.EnrollmentResponse
		if err := cl.do(ctx, "POST", "/api/v1/enrollment-tokens", nil, map[string]any{"systems": systems, "expires_in": *expires}, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		fmt.Fprintf(c.stdout, "Enrollment token for %s, valid once until %s:\n\n%s\n\nOn the host: aramaki-agent --data /var/lib/aramaki-agent --enroll TOKEN\n",
			strings.Join(resp.Systems, ", "), resp.Expires.Local().Format(time.RFC3339), resp.Token)
		return nil
	case pos[0] == "list" && len(pos) == 1:
		var resp struct {
			Agents []service.AgentView `json:"agents"`
		}
		if err := cl.do(ctx, "GET", "/api/v1/agents", nil, nil, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tHOST\tSYSTEMS\tVERSION\tLAST SEEN\tSTATE")
		for _, a := range resp.Agents {
			seen := "never"
			if a.LastSeen != nil {
				seen = time.Since(*a.LastSeen).Round(time.Second).String() + " ago"
			}
			state := "disconnected"
			switch {
			case a.Revoked != nil:
				state = "revoked"
			case a.Connected:
				state = "connected"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, clean(a.Name), list(a.Systems), clean(a.Version), seen, state)
		}
		return tw.Flush()
	case pos[0] == "show" && len(pos) == 2:
		var d service.AgentDetail
		if err := cl.do(ctx, "GET", "/api/v1/agents/"+url.PathEscape(pos[1]), nil, nil, &d); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, d)
		}
		fmt.Fprintf(c.stdout, "%s on %s, for %s, version %s, connected: %v\n", d.ID, clean(d.Name), list(d.Systems), clean(d.Version), d.Connected)
		if d.Facts != nil {
			var pretty any
			json.Unmarshal(d.Facts.Facts, &pretty)
			fmt.Fprintf(c.stdout, "\nFacts collected %s:\n", d.Facts.Collected.Local().Format(time.RFC3339))
			raw, _ := json.MarshalIndent(pretty, "", "  ")
			fmt.Fprintln(c.stdout, cleanBlock(string(raw)))
		}
		return nil
	case pos[0] == "revoke" && len(pos) == 2:
		if err := cl.do(ctx, "POST", "/api/v1/agents/"+url.PathEscape(pos[1])+"/revoke", nil, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "Agent %s is revoked and disconnected.\n", clean(pos[1]))
		return nil
	}
	return fmt.Errorf("usage: %s", usage)
}
