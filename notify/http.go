package notify

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Limits on what is read of an answer and repeated of it in errors.
const (
	maxAnswer      = 4 << 10
	maxAnswerShown = 200
)

// target parses a receiver's URL; only http and https are allowed.
func target(kind, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, Permanent(fmt.Errorf("%s: invalid URL", kind)) // err would repeat the URL
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, Permanent(fmt.Errorf("%s %s: only http and https URLs are allowed", kind, shown(u, false)))
	}
	return u, nil
}

// shown is u as it may appear in messages: without userinfo, query and
// fragment, and without the path when the path is the secret (Slack,
// Mattermost).
func shown(u *url.URL, pathIsSecret bool) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	if pathIsSecret && v.Path != "" && v.Path != "/" {
		return v.Scheme + "://" + v.Host + "/…"
	}
	return v.String()
}

// do sends one request with a body and checks the answer: any 2xx is
// delivered; 408, 429 and 5xx are worth retrying; redirects and every
// other answer are permanent failures.
func (s *Sender) do(ctx context.Context, a attempt, method string, u *url.URL, header http.Header, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return Permanent(&sendError{a.where + ": invalid request", err})
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "aramaki")
	// Whatever else in the request may be a credential is not repeated
	// either: the password, as the Basic credentials made of it, and the
	// query.
	if p, ok := u.User.Password(); ok {
		a.hide(p, base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+p)))
	}
	a.hide(u.RawQuery)
	for _, vs := range u.Query() {
		for _, v := range vs {
			if len(v) >= 4 { // shorter ones would garble messages more than they hide
				a.hide(v, url.QueryEscape(v))
			}
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err // its message repeats the URL, query and all
		}
		return a.failed(ctx, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil && resp.StatusCode/100 == 2 {
		// The receiver said yes before it stalled; sending again would
		// only duplicate the notification.
		return nil
	}
	code := resp.StatusCode
	status := strings.TrimSpace(fmt.Sprintf("%d %s", code, http.StatusText(code)))
	switch {
	case code/100 == 2:
		return nil
	case code/100 == 3:
		return Permanent(fmt.Errorf("%s: %s: redirects are not followed", a.where, status))
	}
	msg := a.where + ": " + status
	if said := a.safe(string(answer), maxAnswerShown); said != "" {
		msg += ": " + said
	}
	err = errors.New(msg)
	if code/100 == 4 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests {
		return Permanent(err)
	}
	return err
}
