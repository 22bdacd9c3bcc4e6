package api

import (
	"context"
	"net/http"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// DefaultStatsPeriod is the period run statistics cover unless asked.
const DefaultStatsPeriod = 7 * 24 * time.Hour

// RunRequest is the body asking to run an action on a system: why, the
// values of its parameters, and whether to break glass (run without the
// approval it needs, loudly).
type RunRequest struct {
	Reason     string            `json:"reason"`
	Params     map[string]string `json:"params,omitempty"`
	BreakGlass bool              `json:"break_glass,omitempty"`
	// Agents narrows the run to some of the hosts it runs on (agent
	// names); empty: all of them.
	Agents []string `json:"agents,omitempty"`
}

// RunsResponse lists runs, newest first.
type RunsResponse struct {
	Runs []aramaki.Run `json:"runs"`
}

func (a *API) requestRun(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var req RunRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Params) > aramaki.MaxParams {
		return aramaki.Errorf(aramaki.EINVALID, "at most %d parameters", aramaki.MaxParams)
	}
	if len(req.Agents) > service.MaxRunAgents {
		return aramaki.Errorf(aramaki.EINVALID, "at most %d agents", service.MaxRunAgents)
	}
	run, err := a.svc.RequestRun(r.Context(), p, service.RunRequest{System: r.PathValue("id"), Action: r.PathValue("action"),
		Reason: req.Reason, Params: req.Params, BreakGlass: req.BreakGlass, Agents: req.Agents})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, run)
}

func (a *API) listRuns(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := queryParams(r, "system", "action", "state", "since", "limit", "workflow_run"); err != nil {
		return err
	}
	q := r.URL.Query()
	rq := service.RunQuery{System: q.Get("system"), Action: q.Get("action"), WorkflowRun: q.Get("workflow_run")}
	for _, st := range listParam(q, "state") {
		rq.States = append(rq.States, aramaki.RunState(st))
	}
	var err error
	if rq.Since, err = durationParam(q, "since", "24h", 0); err != nil {
		return err
	}
	if rq.Limit, err = limitParam(q, service.MaxAlertLimit); err != nil {
		return err
	}
	runs, err := a.svc.Runs(r.Context(), p, rq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, RunsResponse{Runs: runs})
}

func (a *API) getRun(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	v, err := a.svc.Run(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// change returns the handler of approving or cancelling a run or a
// workflow run by its id. Neither takes anything; an empty object is
// accepted as well as no body.
func change[T any](a *API, do func(*service.Service, context.Context, aramaki.Principal, string) (T, error)) func(http.ResponseWriter, *http.Request, aramaki.Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
		if r.ContentLength != 0 {
			var empty struct{}
			if err := decode(w, r, &empty); err != nil {
				return err
			}
		}
		v, err := do(a.svc, r.Context(), p, r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, v)
	}
}

// runStats sums up the runs of an action on a system over a period
// (default a week).
func (a *API) runStats(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := queryParams(r, "period"); err != nil {
		return err
	}
	period, err := durationParam(r.URL.Query(), "period", "168h", DefaultStatsPeriod)
	if err != nil {
		return err
	}
	st, err := a.svc.RunStats(r.Context(), p, r.PathValue("id"), r.PathValue("action"), period)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}
