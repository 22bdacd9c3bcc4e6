package web_test

import (
	"net/http"
	"testing"

	"github.com/aramaki/aramaki"
)

func TestTheReviewPageShowsWhatIsNoisyAndWhatNobodyTookUp(t *testing.T) {
	e := MustEnvWith(t, alertFiles())
	m := MustMonitor(e)
	m.MustReport("webshop-db", "disk", aramaki.StatusOK, "DISK OK")
	m.MustReport("webshop-db", "disk", aramaki.StatusCritical, "DISK CRITICAL - <b>99%</b>")
	admin := e.MustLogin("admin")

	body := e.MustGet(admin, "/review?system=webshop&period=24h")
	mustContain(t, "the review of webshop", body,
		`<a href="/review">Review</a>`,
		"Noisiest checks", `href="/systems/webshop-db/checks/disk">webshop-db · disk</a>`, "1 changes",
		`<option value="24h" selected>`)
	mustNotContain(t, "the review of webshop", body, "<b>99%</b>")

	// Every anchor by default; a period that is not offered is refused.
	body = e.MustGet(admin, "/review")
	mustContain(t, "the review of every anchor", body, `<option value="168h" selected>`, `<h2><a href="/systems/webshop">`)
	if code, _, _ := e.Get(admin, "/review?period=5y"); code != http.StatusBadRequest {
		t.Errorf("an unknown period: %d", code)
	}
	if code, _, resp := e.Get(e.Client(), "/review"); code != http.StatusSeeOther || resp.Header.Get("Location") == "" {
		t.Errorf("anonymous: %d, want to be sent to log in", code)
	}
}
