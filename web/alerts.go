package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

// Queue sizes.
const (
	queueLimit      = 200  // alerts on the review queue
	systemAlerts    = 10   // open alerts on a system page
	maxBulkAlerts   = 1000 // alerts one "Acknowledge selected" may change
	firstLineLength = 200  // runes of output shown on a card
)

// alertStates are the state choices of the queue; the first is the default.
var alertStates = []struct {
	Name, Label string
	States      []aramaki.AlertState
}{
	{"", "open or acknowledged", []aramaki.AlertState{aramaki.AlertOpen, aramaki.AlertAcknowledged}},
	{"open", "open", []aramaki.AlertState{aramaki.AlertOpen}},
	{"acknowledged", "acknowledged", []aramaki.AlertState{aramaki.AlertAcknowledged}},
	{"resolved", "resolved", []aramaki.AlertState{aramaki.AlertResolved}},
	{"any", "any state", nil},
}

// alertAges are the "older than" choices of the queue.
var alertAges = []struct {
	Name string
	D    time.Duration
}{{"15m", 15 * time.Minute}, {"1h", time.Hour}, {"1d", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}}

// alertFilter is the queue's query: what its form sends back.
type alertFilter struct {
	System, Category, Owner, State, OlderThan, Group string
}

func parseAlertFilter(q url.Values) alertFilter {
	return alertFilter{System: q.Get("system"), Category: q.Get("category"), Owner: q.Get("owner"),
		State: q.Get("state"), OlderThan: q.Get("older_than"), Group: q.Get("group")}
}

// url is the queue's address with this filter.
func (f alertFilter) url() string {
	q := url.Values{}
	for k, v := range map[string]string{"system": f.System, "category": f.Category, "owner": f.Owner,
		"state": f.State, "older_than": f.OlderThan, "group": f.Group} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return "/alerts"
	}
	return "/alerts?" + q.Encode()
}

// query turns the filter into the service's query; unknown choices are
// refused rather than ignored.
func (f alertFilter) query(limit int) (service.AlertQuery, error) {
	q := service.AlertQuery{System: f.System, Category: f.Category, Owner: f.Owner, Group: f.Group, Limit: limit}
	known := false
	for _, st := range alertStates {
		if st.Name == f.State {
			q.States, known = st.States, true
		}
	}
	if !known {
		return q, aramaki.Errorf(aramaki.EINVALID, "Unknown alert state %q.", f.State)
	}
	if f.OlderThan != "" {
		known = false
		for _, a := range alertAges {
			if a.Name == f.OlderThan {
				q.OlderThan, known = a.D, true
			}
		}
		if !known {
			return q, aramaki.Errorf(aramaki.EINVALID, "Unknown age %q.", f.OlderThan)
		}
	}
	return q, nil
}

// alertCard is an alert on the queue, and whether the user may
// acknowledge it from there.
type alertCard struct {
	aramaki.Alert
	CanAck bool
}

// canOperate reports whether the principal may change what happens on a
// system: acknowledge its alerts, silence it.
func canOperate(g *aramaki.Graph, p aramaki.Principal, system string) bool {
	return g.RoleOn(p, system).AtLeast(aramaki.RoleOperator)
}

// alertsPage is the review queue: the alerts on the systems the user can
// see, newest first, filtered by system, category, owner, state and age,
// or narrowed to one group (where notifications link to).
func (u *UI) alertsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	return u.renderQueue(w, r, s, http.StatusOK, parseAlertFilter(r.URL.Query()), "", nil)
}

// renderQueue draws the queue, with a message above it when a bulk
// acknowledgement did not go through.
func (u *UI) renderQueue(w http.ResponseWriter, r *http.Request, s *session, status int, f alertFilter, msg string, failures []string) error {
	ctx := r.Context()
	q, err := f.query(queueLimit)
	if err != nil {
		return err
	}
	alerts, err := u.svc.Alerts(ctx, s.Principal, q)
	if err != nil {
		return err
	}
	systems, err := u.svc.Systems(ctx, s.Principal, service.SystemFilter{})
	if err != nil {
		return err
	}
	var categories, owners []string
	for _, sys := range systems {
		if sys.Category != "" {
			categories = append(categories, sys.Category)
		}
		for _, o := range sys.Owners {
			owners = append(owners, o.Name)
		}
	}
	sort.Strings(categories)
	sort.Strings(owners)
	g := u.svc.Graph()
	cards := make([]alertCard, 0, len(alerts))
	anyAck := false
	for _, a := range alerts {
		c := alertCard{Alert: a, CanAck: a.State == aramaki.AlertOpen && canOperate(g, s.Principal, a.System)}
		anyAck = anyAck || c.CanAck
		cards = append(cards, c)
	}
	stateLabel := ""
	for _, st := range alertStates {
		if st.Name == f.State {
			stateLabel = st.Label
		}
	}
	anyState := f
	anyState.State = "any"
	u.render(w, r, status, "alerts", s, map[string]any{
		"Alerts": cards, "Limited": len(alerts) == queueLimit, "CanAck": anyAck,
		"Filter": f, "Back": f.url(), "AnyState": anyState.url(), "StateLabel": stateLabel,
		"Systems": systems, "Categories": slices.Compact(categories), "Owners": slices.Compact(owners),
		"States": alertStates, "Ages": alertAges, "Error": msg, "Failures": failures,
	})
	return nil
}

// queueFilter is the filter of the queue a form came from: its "back"
// field, if it is the queue's address.
func queueFilter(back string) alertFilter {
	b, err := url.Parse(safeNext(back))
	if err != nil || b.Path != "/alerts" {
		return alertFilter{}
	}
	return parseAlertFilter(b.Query())
}

// acknowledgeAlerts acknowledges the selected alerts one by one: one that
// cannot be (acknowledged meanwhile, not the user's to acknowledge) does not
// hold up the others. When all went through it goes back to the queue;
// otherwise the queue says what did not.
func (u *UI) acknowledgeAlerts(w http.ResponseWriter, r *http.Request, s *session) error {
	f := queueFilter(r.PostFormValue("back"))
	text := r.PostFormValue("text")
	var ids []string
	for _, id := range r.PostForm["ids"] {
		if id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	switch {
	case len(ids) == 0:
		return u.renderQueue(w, r, s, http.StatusBadRequest, f, "Select the alerts to acknowledge first.", nil)
	case len(ids) > maxBulkAlerts:
		return u.renderQueue(w, r, s, http.StatusBadRequest, f, fmt.Sprintf("At most %d alerts at once, not %d.", maxBulkAlerts, len(ids)), nil)
	case len(text) > service.MaxCommentLen:
		return u.renderQueue(w, r, s, http.StatusBadRequest, f, fmt.Sprintf("The comment is longer than %d bytes.", service.MaxCommentLen), nil)
	}
	var failures []string
	firstCode := ""
	for _, id := range ids {
		if err := r.Context().Err(); err != nil {
			return err
		}
		if _, err := u.svc.ChangeAlert(r.Context(), s.Principal, id, service.AlertAck, text); err != nil {
			code := aramaki.ErrorCode(err)
			if code == aramaki.EINTERNAL {
				return err
			}
			if firstCode == "" {
				firstCode = code
			}
			failures = append(failures, aramaki.ErrorMessage(err))
		}
	}
	if len(failures) == 0 {
		http.Redirect(w, r, f.url(), http.StatusSeeOther)
		return nil
	}
	done := len(ids) - len(failures)
	status := http.StatusOK
	if done == 0 {
		status = api.Status(firstCode)
	}
	msg := fmt.Sprintf("Acknowledged %d of %d alerts. Not acknowledged:", done, len(ids))
	return u.renderQueue(w, r, s, status, f, msg, failures)
}

// alertPage shows one alert: what broke, since when, who is on it, the
// output, what people did, and for operators what they can do.
func (u *UI) alertPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	return u.renderAlert(w, r, s, r.PathValue("id"), http.StatusOK, "")
}

func (u *UI) renderAlert(w http.ResponseWriter, r *http.Request, s *session, id string, status int, msg string) error {
	v, err := u.svc.Alert(r.Context(), s.Principal, id)
	if err != nil {
		return err
	}
	u.render(w, r, status, "alert", s, map[string]any{
		"Alert": v, "CanOperate": canOperate(u.svc.Graph(), s.Principal, v.System), "Error": msg,
	})
	return nil
}

// changeAlert returns the handler of one change from the alert page; field
// is the form field with its text. A change that cannot be made (done
// already, not allowed, bad input) is said on the alert page.
func (u *UI) changeAlert(change service.AlertChange, field string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		id := r.PathValue("id")
		if _, err := u.svc.ChangeAlert(r.Context(), s.Principal, id, change, r.PostFormValue(field)); err != nil {
			if code := aramaki.ErrorCode(err); code == aramaki.ECONFLICT || code == aramaki.EFORBIDDEN || code == aramaki.EINVALID {
				return u.renderAlert(w, r, s, id, api.Status(code), aramaki.ErrorMessage(err))
			}
			return err
		}
		http.Redirect(w, r, "/alerts/"+url.PathEscape(id), http.StatusSeeOther)
		return nil
	}
}

// noteVerbs say what a note on an alert records.
var noteVerbs = map[string]string{
	string(service.AlertAck): "acknowledged", string(service.AlertAssign): "assigned it to",
	string(service.AlertComment): "commented", string(service.AlertEscalate): "escalated",
	string(service.AlertResolve): "resolved",
}

// firstLine is the first line of a check's output, cut short.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > firstLineLength {
		return string(r[:firstLineLength]) + "…"
	}
	return s
}
