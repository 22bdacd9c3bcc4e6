package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
)

// GrantCommand lets peers use systems of this server:
// aramaki grant create --peer B --system S [--system …] --allow events,status[,action:NAME] --until T
// | list [--peer B] | revoke ID, and lists what peers grant this server:
// received [--peer A].
type GrantCommand struct{ stdout io.Writer }

const grantUsage = "aramaki grant create --peer B --system S [--system …] --allow events,status[,action:NAME] --until 2026-12-01T18:00Z | list [--peer B] | revoke ID | received [--peer A]"

// Run creates, lists or revokes grants.
func (c *GrantCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki grant", flag.ContinueOnError)
	peer := fs.String("peer", "", "create: the peer to grant to; list: only grants to it; received: only grants of it")
	var systems listFlag
	fs.Var(&systems, "system", "create: a system to share (repeat for several)")
	allow := fs.String("allow", "", "create: what the peer gets: events, status, action:NAME, comma-separated")
	until := fs.String("until", "", "create: when the grant ends: an RFC 3339 time (seconds may be left out) or a duration like 720h")
	pos, cl, err := parseClient(fs, args, &s, 1, 2, grantUsage)
	if err != nil {
		return err
	}
	switch {
	case pos[0] == "create" && len(pos) == 1:
		if *until == "" {
			return fmt.Errorf("say when the grant ends: --until 2026-12-01T18:00Z or --until 720h")
		}
		end, err := parseUntil(*until, time.Now())
		if err != nil {
			return err
		}
		req := api.GrantRequest{Peer: *peer, Systems: systems, Allow: *allow, Until: end.Format(time.RFC3339)}
		var g aramaki.Grant
		if err := cl.do(ctx, "POST", "/api/v1/grants", nil, req, &g); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, g)
		}
		fmt.Fprintf(c.stdout, "Granted peer %s %s on %s until %s (grant %s)\n", clean(g.Peer), grantAllows(g), list(g.Systems),
			g.Until.Local().Format(time.RFC3339), clean(g.ID))
		return nil
	case pos[0] == "list" && len(pos) == 1:
		var resp api.GrantsResponse
		if err := cl.do(ctx, "GET", "/api/v1/grants", peerValues(*peer), nil, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPEER\tSYSTEMS\tALLOWS\tUNTIL\tBY\tSTATE")
		now := time.Now()
		for _, g := range resp.Grants {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(g.ID), clean(g.Peer), list(g.Systems), grantAllows(g),
				g.Until.Local().Format("2006-01-02 15:04"), clean(g.CreatedBy), grantState(g, now))
		}
		return tw.Flush()
	case pos[0] == "received" && len(pos) == 1:
		var resp api.ReceivedGrantsResponse
		if err := cl.do(ctx, "GET", "/api/v1/grants/received", peerValues(*peer), nil, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PEER	GRANT	SYSTEMS	ALLOWS	UNTIL	STATE")
		now := time.Now()
		for _, g := range resp.Grants {
			state := "active"
			if !g.Active(now) {
				state = "expired"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", clean(g.Peer), clean(g.ID), list(g.Systems),
				grantAllows(aramaki.Grant{Kinds: g.Kinds, Actions: g.Actions}), g.Until.Local().Format("2006-01-02 15:04"), state)
		}
		return tw.Flush()
	case pos[0] == "revoke" && len(pos) == 2:
		var g aramaki.Grant
		if err := cl.do(ctx, "POST", "/api/v1/grants/"+url.PathEscape(pos[1])+"/revoke", nil, nil, &g); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, g)
		}
		fmt.Fprintf(c.stdout, "Revoked grant %s: peer %s no longer has %s on %s.\n", clean(g.ID), clean(g.Peer), grantAllows(g), list(g.Systems))
		return nil
	}
	return fmt.Errorf("usage: %s", grantUsage)
}

// peerValues is the query of a list of grants about peer, if one is named.
func peerValues(peer string) url.Values {
	q := url.Values{}
	if peer != "" {
		q.Set("peer", peer)
	}
	return q
}

// parseUntil reads when a grant ends: RFC 3339, with or without seconds,
// or a duration from now.
func parseUntil(v string, now time.Time) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(d).Truncate(time.Second), nil
	}
	return time.Time{}, fmt.Errorf("--until %q: give an RFC 3339 time like 2026-12-01T18:00Z or a duration like 720h", v)
}

// grantAllows says what a grant allows, as --allow takes it.
func grantAllows(g aramaki.Grant) string {
	var parts []string
	for _, k := range g.Kinds {
		parts = append(parts, string(k))
	}
	for _, a := range g.Actions {
		parts = append(parts, "action:"+a)
	}
	return clean(strings.Join(parts, ","))
}

func grantState(g aramaki.Grant, now time.Time) string {
	switch {
	case g.Revoked != nil:
		return "revoked " + g.Revoked.Local().Format("2006-01-02 15:04")
	case !g.Active(now):
		return "expired"
	}
	return "active"
}
