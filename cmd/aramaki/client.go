package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/pki"
)

// clientSettings say which server to talk to and as whom. Flags win over
// the environment, the environment over the saved settings file.
type clientSettings struct {
	Server    string `json:"server"`
	Token     string `json:"token,omitempty"`
	TokenFile string `json:"token_file,omitempty"`
	CA        string `json:"ca,omitempty"`
	output    string
}

// clientFlags registers the flags every client command has.
func clientFlags(fs *flag.FlagSet, s *clientSettings) {
	fs.StringVar(&s.Server, "server", "", "server URL (or ARAMAKI_SERVER)")
	fs.StringVar(&s.Token, "token", "", "API token (or ARAMAKI_TOKEN); prefer --token-file")
	fs.StringVar(&s.TokenFile, "token-file", "", "file holding the API token (or ARAMAKI_TOKEN_FILE)")
	fs.StringVar(&s.CA, "ca", "", "CA certificate to trust (or ARAMAKI_CA)")
	fs.StringVar(&s.output, "o", "text", "output: text or json")
}

// settingsPath is where aramaki login saves the client settings.
func settingsPath() string {
	if p := os.Getenv("ARAMAKI_CLIENT_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "aramaki", "client.json")
}

// resolve fills what flags left empty from the environment and the file.
func (s *clientSettings) resolve() error {
	if s.output != "text" && s.output != "json" {
		return fmt.Errorf("-o %q: use text or json", s.output)
	}
	var saved clientSettings
	if p := settingsPath(); p != "" {
		if raw, err := os.ReadFile(p); err == nil {
			if err := json.Unmarshal(raw, &saved); err != nil {
				return fmt.Errorf("read client settings %s: %w", p, err)
			}
		}
	}
	pick := func(dst *string, env string, file string) {
		if *dst == "" {
			*dst = os.Getenv(env)
		}
		if *dst == "" {
			*dst = file
		}
	}
	tokenGiven := s.Token != "" || s.TokenFile != ""
	pick(&s.Server, "ARAMAKI_SERVER", saved.Server)
	pick(&s.CA, "ARAMAKI_CA", saved.CA)
	if !tokenGiven {
		s.Token, s.TokenFile = os.Getenv("ARAMAKI_TOKEN"), os.Getenv("ARAMAKI_TOKEN_FILE")
		if s.Token == "" && s.TokenFile == "" {
			s.Token, s.TokenFile = saved.Token, saved.TokenFile
		}
	}
	if s.Server == "" {
		return errors.New("which server? Give --server, set ARAMAKI_SERVER, or run aramaki login")
	}
	if s.Token == "" && s.TokenFile != "" {
		raw, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return fmt.Errorf("read token file: %w", err)
		}
		s.Token = strings.TrimSpace(string(raw))
	}
	return nil
}

// client talks to a server's JSON API.
type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient(s clientSettings) (*client, error) {
	u, err := url.Parse(s.Server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("server %q is not an http(s) URL", s.Server)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.CA != "" {
		pool, err := pki.CertPool(s.CA)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &client{base: strings.TrimSuffix(s.Server, "/"), token: s.Token, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}, nil
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (when not nil). API errors come back as *aramaki.Error.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach server: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		var eb api.ErrorBody
		if json.Unmarshal(raw, &eb) == nil && eb.Error.Code != "" {
			return &aramaki.Error{Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// parseArgs parses flags that may stand before, between or after the
// positional arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// parseClient parses a client command's flags, checks the number of
// positional arguments and returns them with the client.
func parseClient(fs *flag.FlagSet, args []string, s *clientSettings, minArgs, maxArgs int, usage string) ([]string, *client, error) {
	clientFlags(fs, s)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	positional, err := parseArgs(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(positional) < minArgs || len(positional) > maxArgs {
		return nil, nil, fmt.Errorf("usage: %s", usage)
	}
	if err := s.resolve(); err != nil {
		return nil, nil, err
	}
	c, err := newClient(*s)
	return positional, c, err
}
