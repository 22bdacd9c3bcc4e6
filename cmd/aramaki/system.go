package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// SystemCommand shows one system and its place in the graph:
// aramaki system show|descendants|ancestors ID.
type SystemCommand struct{ stdout io.Writer }

// Run shows the system.
func (c *SystemCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki system", flag.ContinueOnError)
	pos, cl, err := parseClient(fs, args, &s, 2, 2, "aramaki system show|descendants|ancestors ID")
	if err != nil {
		return err
	}
	verb, id := pos[0], url.PathEscape(pos[1])
	switch verb {
	case "show":
		var sys service.SystemView
		if err := cl.do(ctx, "GET", "/api/v1/systems/"+id, nil, nil, &sys); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, sys)
		}
		printSystem(c.stdout, sys)
		return nil
	case "descendants", "ancestors":
		var resp struct {
			Systems []service.SystemView `json:"systems"`
		}
		if err := cl.do(ctx, "GET", "/api/v1/systems/"+id+"/"+verb, nil, nil, &resp); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, resp)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTITLE\tCATEGORY")
		for _, sys := range resp.Systems {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", clean(sys.ID), clean(sys.Title), clean(sys.Category))
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown verb %q: use show, descendants or ancestors", verb)
}

func printSystem(w io.Writer, sys service.SystemView) {
	fmt.Fprintf(w, "%s — %s\n", clean(sys.ID), clean(sys.Title))
	if sys.Category != "" {
		fmt.Fprintf(w, "Category:   %s\n", clean(sys.Category))
	}
	if sys.Role != "" {
		fmt.Fprintf(w, "Your role:  %s\n", sys.Role)
	}
	fmt.Fprintf(w, "Subsystems: %s\nUsed by:    %s\n", list(sys.Subsystems), list(sys.UsedBy))
	if len(sys.Labels) > 0 {
		var labels []string
		for k, v := range sys.Labels {
			labels = append(labels, k+"="+v)
		}
		slices.Sort(labels)
		fmt.Fprintf(w, "Labels:     %s\n", clean(strings.Join(labels, ", ")))
	}
	if sys.Description != "" {
		fmt.Fprintf(w, "\n%s\n", cleanBlock(strings.TrimSpace(sys.Description)))
	}
	if len(sys.Rules) > 0 {
		fmt.Fprintln(w, "\nRules:")
		for _, r := range sys.Rules {
			fmt.Fprintf(w, "  - %s", clean(r.Text))
			if r.EscalateTo != "" {
				fmt.Fprintf(w, " (escalate to %s)", clean(r.EscalateTo))
			}
			fmt.Fprintln(w)
		}
	}
	for _, group := range []struct {
		title    string
		contacts []aramaki.Contact
	}{{"Owners", sys.Owners}, {"Contacts", sys.Contacts}} {
		if len(group.contacts) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", group.title)
		for _, c := range group.contacts {
			fmt.Fprintf(w, "  - %s\n", contactLine(c))
		}
	}
	if len(sys.Links) > 0 {
		fmt.Fprintln(w, "\nLinks:")
		for _, l := range sys.Links {
			fmt.Fprintf(w, "  - %s: %s\n", clean(l.Title), clean(l.URL))
		}
	}
	if len(sys.Checks) > 0 {
		fmt.Fprintln(w, "\nChecks:")
		for _, c := range sys.Checks {
			fmt.Fprintf(w, "  - %s: %s\n", clean(c.Name), clean(c.Command))
		}
	}
	if len(sys.Actions) > 0 {
		fmt.Fprintln(w, "\nActions:")
		for _, a := range sys.Actions {
			fmt.Fprintf(w, "  - %s: %s\n", clean(a.Name), clean(a.Description))
		}
	}
}

// contactLine puts what is known of a contact on one line.
func contactLine(c aramaki.Contact) string {
	parts := []string{c.Name}
	if c.Role != "" {
		parts[0] += " (" + c.Role + ")"
	}
	for _, v := range []string{c.Phone, c.Email, c.Chat, c.Hours} {
		if v != "" {
			parts = append(parts, v)
		}
	}
	return clean(strings.Join(parts, ", "))
}
