package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/aramaki/aramaki/service"
)

// LoginCommand logs in with a user name and password, makes an API token
// and saves server, CA and token for the other client commands:
// aramaki login --server URL [--ca FILE] --user NAME (password on stdin).
type LoginCommand struct{ stdout io.Writer }

// Run logs in and saves the settings.
func (c *LoginCommand) Run(ctx context.Context, args []string) error {
	var s clientSettings
	fs := flag.NewFlagSet("aramaki login", flag.ContinueOnError)
	user := fs.String("user", "", "user name")
	expires := fs.String("expires", "720h", "lifetime of the token")
	clientFlags(fs, &s)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if *user == "" {
		return errors.New("--user is required")
	}
	s.Token, s.TokenFile = "", ""
	if err := s.resolve(); err != nil {
		return err
	}
	cl, err := newClient(s)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Password for %s at %s: ", *user, s.Server)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return err
	}
	fmt.Fprintln(os.Stderr)
	host, _ := os.Hostname()
	var tok service.NewToken
	body := map[string]string{"user": *user, "password": strings.TrimRight(line, "\r\n"), "token_name": "cli on " + host, "expires_in": *expires}
	if err := cl.do(ctx, "POST", "/api/v1/login", nil, body, &tok); err != nil {
		return err
	}
	if s.CA != "" {
		if s.CA, err = filepath.Abs(s.CA); err != nil {
			return err
		}
	}
	saved := clientSettings{Server: s.Server, Token: tok.Secret, CA: s.CA}
	raw, err := json.MarshalIndent(saved, "", "  ")
	if err != nil {
		return err
	}
	path := settingsPath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Logged in as %s; token %s saved in %s\n", *user, tok.ID, path)
	return nil
}
