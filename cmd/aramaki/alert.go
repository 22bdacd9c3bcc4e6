package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

// AlertsCommand shows the review queue, newest first:
// aramaki alerts [--system S] [--category C] [--owner O] [--state S,…]
// [--older-than D] [--group G] [--limit N].
type AlertsCommand struct{ stdout io.Writer }

// Run prints the alerts as a table.
func (c *AlertsCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki alerts", flag.ContinueOnError)
	system := fs.String("system", "", "only this system and everything under it")
	category := fs.String("category", "", "only systems of this category")
	owner := fs.String("owner", "", "only systems with an owner of this name")
	state := fs.String("state", "", "only these states, comma-separated: open, acknowledged, resolved (default: all)")
	olderThan := fs.Duration("older-than", 0, "only alerts opened longer ago than this, like 1h")
	group := fs.String("group", "", "only the alerts of this group")
	limit := fs.Int("limit", service.DefaultAlertLimit, "at most this many alerts")
	_, cl, err := parseClient(fs, args, &s, 0, 0, "aramaki alerts [--system S] [--category C] [--owner O] [--state open,acknowledged] [--older-than 1h] [--group G] [--limit N]")
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"system": *system, "category": *category, "owner": *owner, "state": *state, "group": *group} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *olderThan != 0 {
		q.Set("older_than", olderThan.String())
	}
	q.Set("limit", strconv.Itoa(*limit))
	var resp api.AlertsResponse
	if err := cl.do(ctx, "GET", "/api/v1/alerts", q, nil, &resp); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, resp)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tSTATE\tSYSTEM/CHECK\tOPENED\tASSIGNEE/ACK BY\tOUTPUT")
	for _, a := range resp.Alerts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\n", clean(a.ID), upper(a.Status), alertState(a), clean(a.System), clean(a.Check),
			ago(a.Opened), who(a), clip(clean(firstLine(a.Output)), 60))
	}
	return tw.Flush()
}

// alertState is the state, and whether a silence muted the alert.
func alertState(a aramaki.Alert) string {
	if a.Silenced != "" {
		return clean(string(a.State)) + " (silenced)"
	}
	return clean(string(a.State))
}

// who is the assignee and who acknowledged, "-" for nobody.
func who(a aramaki.Alert) string {
	if a.Assignee == "" && a.AcknowledgedBy == "" {
		return "-"
	}
	or := func(s string) string {
		if s == "" {
			return "-"
		}
		return clean(s)
	}
	return or(a.Assignee) + "/" + or(a.AcknowledgedBy)
}

// AlertCommand shows and works one alert:
// aramaki alert show ID | ack ID… [-m TEXT] | assign ID USER | comment ID TEXT…
// | escalate ID [-m TEXT] | resolve ID [-m TEXT].
type AlertCommand struct{ stdout io.Writer }

const alertUsage = "aramaki alert show ID | ack ID... [-m TEXT] | assign ID USER | comment ID TEXT | escalate ID [-m TEXT] | resolve ID [-m TEXT]"

// Run does the verb.
func (c *AlertCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki alert", flag.ContinueOnError)
	message := fs.String("m", "", "a comment noted on the alert with the change")
	pos, cl, err := parseClient(fs, args, &s, 2, 1+api.MaxBulkAlerts, alertUsage)
	if err != nil {
		return err
	}
	verb, id := pos[0], pos[1]
	path := "/api/v1/alerts/" + url.PathEscape(id)
	if *message != "" && (verb == "show" || verb == "assign" || verb == "comment") {
		return fmt.Errorf("%s takes no -m", verb)
	}
	var (
		change string // the path's last part
		body   any
		done   string
	)
	switch {
	case verb == "show" && len(pos) == 2:
		var v service.AlertView
		if err := cl.do(ctx, "GET", path, nil, nil, &v); err != nil {
			return err
		}
		if s.output == "json" {
			return printJSON(c.stdout, v)
		}
		printAlert(c.stdout, v)
		return nil
	case verb == "ack" && len(pos) > 2:
		return c.ackAll(ctx, cl, s, pos[1:], *message)
	case verb == "ack" && len(pos) == 2:
		change, body, done = "acknowledge", api.AlertChangeRequest{Text: *message}, "Acknowledged"
	case verb == "assign" && len(pos) == 3:
		change, body, done = "assign", api.AssignRequest{User: pos[2]}, "Assigned"
	case verb == "comment" && len(pos) > 2:
		change, body, done = "comment", api.AlertChangeRequest{Text: strings.Join(pos[2:], " ")}, "Commented on"
	case verb == "escalate" && len(pos) == 2:
		change, body, done = "escalate", api.AlertChangeRequest{Text: *message}, "Escalated"
	case verb == "resolve" && len(pos) == 2:
		change, body, done = "resolve", api.AlertChangeRequest{Text: *message}, "Resolved"
	default:
		return fmt.Errorf("usage: %s", alertUsage)
	}
	var alert aramaki.Alert
	if err := cl.do(ctx, "POST", path+"/"+change, nil, body, &alert); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, alert)
	}
	fmt.Fprintf(c.stdout, "%s alert %s (%s/%s): %s", done, clean(alert.ID), clean(alert.System), clean(alert.Check), clean(string(alert.State)))
	if alert.Assignee != "" {
		fmt.Fprintf(c.stdout, ", assigned to %s", clean(alert.Assignee))
	}
	if alert.Level > 0 {
		fmt.Fprintf(c.stdout, ", level %d", alert.Level)
	}
	fmt.Fprintln(c.stdout)
	return nil
}

// ackAll acknowledges several alerts at once; it fails when any could not
// be, after saying which.
func (c *AlertCommand) ackAll(ctx context.Context, cl *client, s clientSettings, ids []string, text string) error {
	var resp api.BulkResponse
	if err := cl.do(ctx, "POST", "/api/v1/alerts/acknowledge", nil, api.BulkAckRequest{IDs: ids, Text: text}, &resp); err != nil {
		return err
	}
	failed := 0
	for _, r := range resp.Results {
		if !r.OK {
			failed++
		}
	}
	if s.output == "json" {
		if err := printJSON(c.stdout, resp); err != nil {
			return err
		}
	} else {
		for _, r := range resp.Results {
			if r.OK {
				fmt.Fprintf(c.stdout, "Acknowledged alert %s\n", clean(r.ID))
			} else {
				fmt.Fprintf(c.stdout, "Alert %s: %s (%s)\n", clean(r.ID), clean(r.Error), clean(r.Code))
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d alerts were not acknowledged", failed, len(resp.Results))
	}
	return nil
}

func printAlert(w io.Writer, v service.AlertView) {
	a := v.Alert
	fmt.Fprintf(w, "Alert %s: %s/%s is %s\n", clean(a.ID), clean(a.System), clean(a.Check), upper(a.Status))
	fmt.Fprintf(w, "State:    %s\n", alertState(a))
	fmt.Fprintf(w, "Opened:   %s (%s)\n", a.Opened.Local().Format(time.RFC3339), ago(a.Opened))
	if a.Acknowledged != nil {
		fmt.Fprintf(w, "Acked:    %s by %s\n", a.Acknowledged.Local().Format(time.RFC3339), clean(a.AcknowledgedBy))
	}
	if a.Assignee != "" {
		fmt.Fprintf(w, "Assignee: %s\n", clean(a.Assignee))
	}
	if a.Resolved != nil {
		fmt.Fprintf(w, "Resolved: %s\n", a.Resolved.Local().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "Level:    %d\nGroup:    %s\n", a.Level, clean(a.Group))
	if a.Silenced != "" {
		fmt.Fprintf(w, "Silenced: by silence %s\n", clean(a.Silenced))
	}
	fmt.Fprintf(w, "\n%s\n", cleanBlock(strings.TrimRight(a.Output, "\n")))
	if len(v.Notes) > 0 {
		fmt.Fprintln(w, "\nHistory:")
		for _, n := range v.Notes {
			line := fmt.Sprintf("  %s  %s %s", n.At.Local().Format("2006-01-02 15:04:05"), clean(n.Actor), noteVerb(n.Kind))
			switch {
			case n.Kind == string(service.AlertAssign):
				line += " to " + clean(n.Text)
			case n.Text != "":
				line += ": " + clean(n.Text)
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(v.Deliveries) > 0 {
		fmt.Fprintln(w, "\nTold:")
		for _, d := range v.Deliveries {
			line := fmt.Sprintf("  %s  %s by %s: %s", d.Created.Local().Format("2006-01-02 15:04:05"), clean(d.To), d.Via, d.State)
			if d.Attempts != 1 {
				line += fmt.Sprintf(" after %d attempts", d.Attempts)
			}
			if d.LastError != "" {
				line += " (" + clip(clean(d.LastError), 100) + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
}

// noteVerb says what a note's kind did, in the past tense.
func noteVerb(kind string) string {
	switch service.AlertChange(kind) {
	case service.AlertAck:
		return "acknowledged"
	case service.AlertAssign:
		return "assigned"
	case service.AlertComment:
		return "commented"
	case service.AlertEscalate:
		return "escalated"
	case service.AlertResolve:
		return "resolved"
	}
	return clean(kind)
}
