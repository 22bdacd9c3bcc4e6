package web_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/web"
)

// patternCases are parameter patterns, how the browser gets them, and
// values both must accept or refuse (the browser test checks them in
// Chromium too).
var patternCases = []struct {
	pattern string
	js      string // "" when there is no faithful translation
	match   []string
	nomatch []string
}{
	{`[a-z]+`, `[a-z]+`, []string{"abc"}, []string{"", "ABC", "a-b"}},
	{`[A-Za-z0-9/^$.*_-]{1,100}`, `[\$\*\--9A-Z\^-_a-z]{1,100}`, []string{"^/img/", "a.b*c$", "x-y"}, []string{"", "a b", "a&&b", strings.Repeat("a", 101)}},
	{`web[0-9]+\.example\.com`, `web[0-9]+\.example\.com`, []string{"web12.example.com"}, []string{"web.example.com", "web1xexample.com"}},
	{`(prod|staging)-[a-z]{2,}`, `(?:prod|staging)-[a-z]{2,}`, []string{"prod-eu", "staging-us"}, []string{"dev-eu", "prod-e"}},
	{`a|b`, `[a-b]`, []string{"a", "b"}, []string{"ab", ""}},
	{`(?:ab)+c?`, `(?:ab)+c?`, []string{"ab", "ababc"}, []string{"abb", "c"}},
	{`[^/]+`, `[\u{0}-\.0-\u{10FFFF}]+`, []string{"abc", "a b"}, []string{"a/b", ""}},
	{`(?i)yes|no`, `[Yy][Ee][Ssſ]|[Nn][Oo]`, []string{"YES", "No", "yeſ"}, []string{"maybe"}},
	{`[[:alpha:]]{3}`, `[A-Za-z]{3}`, []string{"abc"}, []string{"ab1"}},
	{`a{3}b{2,}c*?`, `a{3}b{2,}c*?`, []string{"aaabb", "aaabbbcc"}, []string{"aabb"}},
	{`\d+ (MB|GB)`, `[0-9]+ (?:MB|GB)`, []string{"10 MB"}, []string{"10MB", "10 KB"}},
	{`a&&b|c--d`, `a&&b|c--d`, []string{"a&&b", "c--d"}, []string{"ab"}},
	{`[&~]+`, `[\&\~]+`, []string{"&~&"}, []string{"a"}},
	{`x/y`, `x\/y`, []string{"x/y"}, []string{"xy"}},
	{`[\x00-\x1f]`, `[\u{0}-\u{1F}]`, []string{"\x01"}, []string{"a"}},
	{aramaki.DefaultParamPattern, `[0-9A-Z_a-z][\,-9\=A-Z_a-z]{0,255}`, []string{"web1.example.com", "var/lib", "a-b"}, []string{"", "a b", "$HOME", "/etc", "-rf", "@file", "host:/tmp"}},
	{`[`, "", nil, nil},
}

// A parameter's pattern becomes a pattern attribute the browser compiles
// with the v flag, which wants more escaped than Go; what it accepts must
// be what the server accepts.
func TestPatternsAreRewrittenForTheBrowser(t *testing.T) {
	for _, c := range patternCases {
		js, ok := web.JSPattern(c.pattern)
		if c.js == "" {
			if ok {
				t.Errorf("%s: rewritten as %s, want it left a hint", c.pattern, js)
			}
			continue
		}
		if !ok || js != c.js {
			t.Errorf("%s: rewritten as %q (%v), want %q", c.pattern, js, ok, c.js)
			continue
		}
		// What the browser checks is what the server checks: read back with
		// Go's syntax (\x{…} for \u{…}), both anchored.
		server := regexp.MustCompile(`^(?:` + c.pattern + `)$`)
		browser, err := regexp.Compile(`^(?:` + strings.ReplaceAll(js, `\u{`, `\x{`) + `)$`)
		if err != nil {
			t.Errorf("%s: the rewrite %s does not read back: %v", c.pattern, js, err)
			continue
		}
		for _, v := range c.match {
			if !server.MatchString(v) || !browser.MatchString(v) {
				t.Errorf("%s: %q: server %v, browser %v, want both to match", c.pattern, v, server.MatchString(v), browser.MatchString(v))
			}
		}
		for _, v := range c.nomatch {
			if server.MatchString(v) || browser.MatchString(v) {
				t.Errorf("%s: %q: server %v, browser %v, want neither to match", c.pattern, v, server.MatchString(v), browser.MatchString(v))
			}
		}
	}
}
