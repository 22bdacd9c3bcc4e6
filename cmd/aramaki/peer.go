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

// PeerCommand peers this server with others:
// aramaki peer invite --name B [--ttl 24h] | accept TOKEN [--name A] | list | remove NAME.
type PeerCommand struct{ stdout io.Writer }

const peerUsage = "aramaki peer invite --name B [--ttl 24h] | accept TOKEN [--name A] | list | remove NAME"

// Run invites a server, accepts another's invitation, lists or removes peers.
func (c *PeerCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki peer", flag.ContinueOnError)
	name := fs.String("name", "", "invite: what this server will call the invited one; accept: what to call the inviting one (default: the name it gives itself)")
	ttl := fs.Duration("ttl", 0, "invite: how long the invitation is good for (default 24h, at most 7 days)")
	pos, cl, err := parseClient(fs, args, &s, 1, 2, peerUsage)
	if err != nil {
		return err
	}
	switch {
	case pos[0] == "invite" && len(pos) == 1:
		if *name == "" {
			return fmt.Errorf("say what to call the invited server: aramaki peer invite --name NAME")
		}
		req := api.InvitationRequest{Name: *name}
		if *ttl != 0 {
			req.TTL = ttl.String()
		}
		var resp api.InvitationResponse
		if err := cl.do(ctx, "POST", "/api/v1/peers/invitations", nil, req, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		fmt.Fprintf(c.stdout, "Invitation for peer %s, good once until %s:\n\n%s\n\n", clean(resp.Name), resp.Expires.Local().Format(time.RFC3339), resp.Token)
		fmt.Fprintf(c.stdout, "Hand it to the other server's operator out of band: it holds a secret. On that server:\n\n  aramaki peer accept TOKEN\n\n")
		fmt.Fprintf(c.stdout, "It trusts only this server's CA and its key %s (this server is %s).\n", clean(resp.Key), clean(resp.Server))
		return nil
	case pos[0] == "accept" && len(pos) == 2:
		var peer aramaki.Peer
		if err := cl.do(ctx, "POST", "/api/v1/peers/accept", nil, api.AcceptRequest{Token: pos[1], Name: *name}, &peer); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, peer)
		}
		fmt.Fprintf(c.stdout, "This server is now a peer of %s: server %s, key %s", clean(peer.Name), clean(peer.Server), peerKeys(peer))
		if peer.URL != "" {
			fmt.Fprintf(c.stdout, ", at %s", clean(peer.URL))
		}
		fmt.Fprintf(c.stdout, ".\nNothing is shared until one of you grants the other the use of a system: aramaki grant create.\n")
		return nil
	case pos[0] == "list" && len(pos) == 1:
		var resp api.PeersResponse
		if err := cl.do(ctx, "GET", "/api/v1/peers", nil, nil, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSERVER\tKEYS\tURL\tADDED\tBY\tSTATE")
		for _, p := range resp.Peers {
			state := "active"
			if p.Removed != nil {
				state = "removed " + p.Removed.Local().Format("2006-01-02 15:04")
			}
			u := p.URL
			if u == "" {
				u = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(p.Name), clean(p.Server), peerKeys(p), clean(u),
				p.Added.Local().Format("2006-01-02 15:04"), clean(p.AddedBy), state)
		}
		return tw.Flush()
	case pos[0] == "remove" && len(pos) == 2:
		if err := cl.do(ctx, "DELETE", "/api/v1/peers/"+url.PathEscape(pos[1]), nil, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "Peer %s is removed; its grants are revoked.\n", clean(pos[1]))
		return nil
	}
	return fmt.Errorf("usage: %s", peerUsage)
}

// peerKeys lists a peer's key ids, newest first.
func peerKeys(p aramaki.Peer) string {
	ids := make([]string, len(p.Keys))
	for i, k := range p.Keys {
		ids[i] = k.ID
	}
	if len(ids) == 0 {
		return "-"
	}
	return clean(strings.Join(ids, ","))
}
