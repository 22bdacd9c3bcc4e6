package api

import (
	"net/http"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
)

// WorkflowRunRequest is the body asking to run a workflow of a system:
// why, the values of its inputs, and whether only to see what it would do
// (a dry run, which needs no reason and stores nothing).
type WorkflowRunRequest struct {
	Reason string            `json:"reason,omitempty"`
	Inputs map[string]string `json:"inputs,omitempty"`
	DryRun bool              `json:"dry_run,omitempty"`
}

// WorkflowRunsResponse lists workflow runs, newest first.
type WorkflowRunsResponse struct {
	WorkflowRuns []aramaki.WorkflowRun `json:"workflow_runs"`
}

// requestWorkflow runs a workflow (201 with the workflow run) or, for a
// dry run, says what it would do (200 with the plan).
func (a *API) requestWorkflow(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	var body WorkflowRunRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if len(body.Inputs) > aramaki.MaxWorkflowInputs {
		return aramaki.Errorf(aramaki.EINVALID, "at most %d inputs", aramaki.MaxWorkflowInputs)
	}
	for name, v := range body.Inputs {
		if err := aramaki.ValidateWorkflowName("input", name); err != nil {
			return err
		}
		if len(v) > aramaki.MaxParamValue {
			return aramaki.Errorf(aramaki.EINVALID, "input %s is longer than %d bytes", name, aramaki.MaxParamValue)
		}
	}
	req := service.WorkflowRequest{System: r.PathValue("id"), Workflow: r.PathValue("workflow"), Reason: body.Reason, Inputs: body.Inputs}
	if body.DryRun {
		plan, err := a.svc.PlanWorkflow(r.Context(), p, req)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, plan)
	}
	run, err := a.svc.RequestWorkflow(r.Context(), p, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, run)
}

func (a *API) listWorkflowRuns(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	if err := queryParams(r, "system", "workflow", "state", "limit"); err != nil {
		return err
	}
	q := r.URL.Query()
	wq := service.WorkflowRunQuery{System: q.Get("system"), Workflow: q.Get("workflow")}
	for _, st := range listParam(q, "state") {
		wq.States = append(wq.States, aramaki.RunState(st))
	}
	var err error
	if wq.Limit, err = limitParam(q, service.MaxAlertLimit); err != nil {
		return err
	}
	runs, err := a.svc.WorkflowRuns(r.Context(), p, wq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, WorkflowRunsResponse{WorkflowRuns: runs})
}

func (a *API) getWorkflowRun(w http.ResponseWriter, r *http.Request, p aramaki.Principal) error {
	run, err := a.svc.WorkflowRun(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, run)
}
