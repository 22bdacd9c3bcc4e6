package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/api"
	"github.com/aramaki/aramaki/service"
)

// runsLimit is how many runs the runs list shows.
const runsLimit = 100

// runStates are the state choices of the runs list; the first is the
// default.
var runStates = []struct {
	Name, Label string
	States      []aramaki.RunState
}{
	{"", "any state", nil},
	{"active", "not over yet", []aramaki.RunState{aramaki.RunRequested, aramaki.RunAwaitingApproval, aramaki.RunRunning}},
	{"awaiting_approval", "awaiting approval", []aramaki.RunState{aramaki.RunAwaitingApproval}},
	{"running", "running", []aramaki.RunState{aramaki.RunRunning}},
	{"succeeded", "succeeded", []aramaki.RunState{aramaki.RunSucceeded}},
	{"failed", "failed or timed out", []aramaki.RunState{aramaki.RunFailed, aramaki.RunTimedOut}},
	{"cancelled", "cancelled", []aramaki.RunState{aramaki.RunCancelled}},
	{"refused", "refused by a peer", []aramaki.RunState{aramaki.RunRefused}},
}

// runsFilter is the runs list's query: what its form sends back.
type runsFilter struct {
	System, Action, State, Since string
}

// runsPage lists the runs on the systems the user can see, newest first,
// filtered by system (with everything under it), action, state and time.
func (u *UI) runsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	q := r.URL.Query()
	f := runsFilter{System: q.Get("system"), Action: q.Get("action"), State: q.Get("state"), Since: q.Get("since")}
	rq := service.RunQuery{System: f.System, Action: f.Action, Limit: runsLimit}
	known := false
	for _, st := range runStates {
		if st.Name == f.State {
			rq.States, known = st.States, true
		}
	}
	if !known {
		return aramaki.Errorf(aramaki.EINVALID, "Unknown run state %q.", f.State)
	}
	if f.Since != "" {
		known = false
		for _, tw := range timeWindows {
			if tw.Name == f.Since {
				rq.Since, known = tw.D, true
			}
		}
		if !known {
			return aramaki.Errorf(aramaki.EINVALID, "Unknown time range %q.", f.Since)
		}
	}
	runs, err := u.svc.Runs(r.Context(), s.Principal, rq)
	if err != nil {
		return err
	}
	systems, err := u.svc.Systems(r.Context(), s.Principal, service.SystemFilter{})
	if err != nil {
		return err
	}
	var actions []string
	for _, sys := range systems {
		for _, a := range sys.Actions {
			actions = append(actions, a.Name)
		}
	}
	sort.Strings(actions)
	u.render(w, r, http.StatusOK, "runs", s, map[string]any{
		"Runs": runs, "Limited": len(runs) == runsLimit, "Filter": f, "Systems": systems,
		"Actions": slices.Compact(actions), "States": runStates, "Windows": timeWindows,
	})
	return nil
}

// runView is a run on its page: what the user may do about it.
type runView struct {
	service.RunView
	Role       aramaki.Role // who may run, approve and cancel it
	Mine       bool         // the user asked for it
	CanApprove bool
	CanCancel  bool
	// Live is the address the page polls for changes while the run is not
	// over; empty once it is.
	Live string
}

// loadRun loads a run and works out what the user may do about it.
func (u *UI) loadRun(r *http.Request, s *session, id string) (runView, error) {
	rv, err := u.svc.Run(r.Context(), s.Principal, id)
	if err != nil {
		return runView{}, err
	}
	v := runView{RunView: rv, Role: aramaki.RoleOperator, Mine: rv.RequestedBy == s.User}
	g := u.svc.Graph()
	if ref, ok := systemAction(g, rv.System, rv.Action); ok {
		v.Role = ref.RunRole()
	}
	may := g.RoleOn(s.Principal, rv.System).AtLeast(v.Role)
	v.CanApprove = may && rv.State == aramaki.RunAwaitingApproval && !v.Mine
	v.CanCancel = may && !rv.State.Final() && rv.CancelledBy == ""
	if rv.Remote() {
		// It runs on the peer: its people approve and cancel it there.
		v.CanApprove, v.CanCancel = false, false
	}
	if !rv.State.Final() {
		v.Live = "/runs/" + url.PathEscape(rv.ID) + "/live?v=" + v.version()
	}
	return v, nil
}

// version names what the page shows of a run: the live part of the page
// is sent again only when it changed.
func (v runView) version() string {
	return hashOf(struct {
		Run                   service.RunView
		CanApprove, CanCancel bool
	}{v.RunView, v.CanApprove, v.CanCancel})
}

// hashOf is a short hash of what a live part of a page shows.
func hashOf(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// runPage shows one run: what, where, who asked and why, its approval,
// and per host its state and output, live while it runs.
func (u *UI) runPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	return u.renderRun(w, r, s, r.PathValue("id"), http.StatusOK, "")
}

func (u *UI) renderRun(w http.ResponseWriter, r *http.Request, s *session, id string, status int, msg string) error {
	v, err := u.loadRun(r, s, id)
	if err != nil {
		return err
	}
	u.render(w, r, status, "run", s, map[string]any{"Run": v, "Error": msg})
	return nil
}

// runLive is what the run page polls (htmx, every 2 s) while the run is
// not over.
func (u *UI) runLive(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.live(w, r, s, "run", "run-live", func() (string, any, error) {
		v, err := u.loadRun(r, s, r.PathValue("id"))
		return v.version(), map[string]any{"Run": v}, err
	})
}

// live answers the poll of a page's live part: nothing (204) when what it
// shows is as the page has it (the version v), else the part drawn again
// by the page's template — without the poll once it is over, which ends
// it. Errors are plain statuses, which htmx leaves unswapped: a session
// that ended must not put the login page into the page.
func (u *UI) live(w http.ResponseWriter, r *http.Request, s *session, pageName, part string, load func() (version string, data any, err error)) error {
	w.Header().Set("Cache-Control", "no-store")
	if s.Anonymous() {
		http.Error(w, "log in again", http.StatusUnauthorized)
		return nil
	}
	version, data, err := load()
	if err != nil {
		code := aramaki.ErrorCode(err)
		if code == aramaki.EINTERNAL {
			u.log.Error("live part of a page", "path", r.URL.Path, "err", err)
		}
		http.Error(w, aramaki.ErrorMessage(err), api.Status(code))
		return nil
	}
	if r.URL.Query().Get("v") == version {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	var buf bytes.Buffer
	if err := u.pages[pageName].ExecuteTemplate(&buf, part, page{Session: s, CSRF: s.csrfToken(), Data: data}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
	return nil
}

// changeRun returns the handler of approving or cancelling a run from its
// page; a change that cannot be made is said on the page.
func (u *UI) changeRun(change func(context.Context, aramaki.Principal, string) (aramaki.Run, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		id := r.PathValue("id")
		if _, err := change(r.Context(), s.Principal, id); err != nil {
			if code := aramaki.ErrorCode(err); code == aramaki.ECONFLICT || code == aramaki.EFORBIDDEN || code == aramaki.EINVALID {
				return u.renderRun(w, r, s, id, api.Status(code), aramaki.ErrorMessage(err))
			}
			return err
		}
		http.Redirect(w, r, "/runs/"+url.PathEscape(id), http.StatusSeeOther)
		return nil
	}
}

// runOf is the run a timeline event is about, if it is one of a run's:
// the timeline links to its page.
func runOf(ev aramaki.Event) string {
	if !strings.HasPrefix(string(ev.Kind), "run.") {
		return ""
	}
	var d struct {
		Run struct {
			ID string `json:"id"`
		} `json:"run"`
	}
	if json.Unmarshal(ev.Data, &d) != nil {
		return ""
	}
	return d.Run.ID
}
