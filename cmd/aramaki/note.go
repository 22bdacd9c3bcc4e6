package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// NoteCommand posts a note: aramaki note ID TEXT… (TEXT "-" reads stdin).
type NoteCommand struct{ stdout io.Writer }

// Run posts the note.
func (c *NoteCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki note", flag.ContinueOnError)
	pos, cl, err := parseClient(fs, args, &s, 2, 1000, "aramaki note SYSTEM TEXT… (TEXT - reads standard input)")
	if err != nil {
		return err
	}
	text := strings.Join(pos[1:], " ")
	if text == "-" {
		raw, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return err
		}
		text = string(raw)
	}
	var ev aramaki.Event
	if err := cl.do(ctx, "POST", "/api/v1/systems/"+url.PathEscape(pos[0])+"/notes", nil, map[string]string{"text": text}, &ev); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, ev)
	}
	fmt.Fprintf(c.stdout, "Noted on %s at %s (%s)\n", clean(pos[0]), ev.Time.Local().Format(time.RFC3339), ev.ID)
	return nil
}

// AnnounceCommand announces an incident or planned maintenance on a
// system: aramaki announce SYSTEM --kind incident|maintenance TEXT….
type AnnounceCommand struct{ stdout io.Writer }

// Run posts the announcement.
func (c *AnnounceCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki announce", flag.ContinueOnError)
	kind := fs.String("kind", "", "incident or maintenance (required)")
	pos, cl, err := parseClient(fs, args, &s, 2, 1000, "aramaki announce SYSTEM --kind incident|maintenance TEXT…")
	if err != nil {
		return err
	}
	if *kind == "" {
		return fmt.Errorf("say what it is: --kind incident or --kind maintenance")
	}
	var ev aramaki.Event
	body := map[string]string{"kind": *kind, "text": strings.Join(pos[1:], " ")}
	if err := cl.do(ctx, "POST", "/api/v1/systems/"+url.PathEscape(pos[0])+"/announcements", nil, body, &ev); err != nil {
		return err
	}
	if s.output == "json" {
		return printJSON(c.stdout, ev)
	}
	fmt.Fprintf(c.stdout, "Announced on %s: %s\nThe owners of %s and of the systems using it are told, and so is every peer it is shared with.\n",
		clean(pos[0]), clean(ev.Summary), clean(pos[0]))
	return nil
}
