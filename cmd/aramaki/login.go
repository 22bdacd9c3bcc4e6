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

	"golang.org/x/term"

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
	password, err := readPassword(fmt.Sprintf("Password for %s at %s: ", *user, s.Server))
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	var tok service.NewToken
	body := map[string]string{"user": *user, "password": password, "token_name": "cli on " + host, "expires_in": *expires}
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

// readPassword reads a password from the terminal without echo, or a line
// from standard input when it is not a terminal (scripts).
func readPassword(prompt string) (string, error) {
	fd := int(os.Stdin.Fd())
	if term.IsTerminal(fd) {
		fmt.Fprint(os.Stderr, prompt)
		pw, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		return string(pw), err
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
