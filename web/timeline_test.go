package web_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var olderLink = regexp.MustCompile(`href="(/timeline\?[^"]*cursor=[^"]*)">Older`)

func TestTheTimelineFiltersBySystemAndPages(t *testing.T) {
	e := MustEnv(t)
	ctx := context.Background()
	for i := 0; i < 60; i++ {
		if _, err := e.svc.PostNote(ctx, e.admin, "webshop-db", fmt.Sprintf("vacuum run %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.PostNote(ctx, e.admin, "blog", "blog-only note"); err != nil {
		t.Fatal(err)
	}
	c := e.MustLogin("admin")
	status, body, _ := e.Get(c, "/timeline?system=webshop&kind=note")
	if status != http.StatusOK || !strings.Contains(body, "vacuum run 59") || strings.Contains(body, "blog-only note") {
		t.Fatalf("webshop's timeline (with its database, without the blog): %d", status)
	}
	m := olderLink.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("a full page has no link to older events")
	}
	_, older, _ := e.Get(c, strings.ReplaceAll(m[1], "&amp;", "&"))
	if !strings.Contains(older, "vacuum run 0") || strings.Contains(older, "vacuum run 59") {
		t.Fatal("the older page does not continue where the first ended")
	}
	if status, _, _ := e.Get(c, "/timeline?since=forever"); status != http.StatusBadRequest {
		t.Fatalf("unknown range: %d", status)
	}
}
