package aramaki_test

import (
	"strings"
	"testing"

	"github.com/aramaki/aramaki"
)

func TestAStepsValuesComeFromInputsAndEarlierOutputs(t *testing.T) {
	st := aramaki.WorkflowStep{Name: "flush", Params: map[string]string{"pattern": "/${steps.deploy.path}/${inputs.sku}", "fixed": "x"}}
	got, err := st.StepParams(map[string]string{"sku": "42"}, map[string]map[string]string{"deploy": {"path": "products"}}, false)
	if err != nil || got["pattern"] != "/products/42" || got["fixed"] != "x" {
		t.Fatalf("%v, %v", got, err)
	}
	// Before the earlier step ran, a dry run shows the reference as written.
	got, err = st.StepParams(map[string]string{"sku": "42"}, nil, true)
	if err != nil || got["pattern"] != "/${steps.deploy.path}/42" {
		t.Fatalf("dry run: %v, %v", got, err)
	}
	if _, err := st.StepParams(map[string]string{"sku": "42"}, nil, false); err == nil || !strings.Contains(aramaki.ErrorMessage(err), "${steps.deploy.path} has no value") {
		t.Fatalf("running without the output: %v", err)
	}
	// A value holding a reference is not expanded again.
	got, _ = st.StepParams(map[string]string{"sku": "${inputs.sku}"}, map[string]map[string]string{"deploy": {"path": "p"}}, false)
	if got["pattern"] != "/p/${inputs.sku}" {
		t.Errorf("expanded twice: %q", got["pattern"])
	}
}

func TestAStepsOutputIsTheGroupInTheFirstHostThatPrintedIt(t *testing.T) {
	st := aramaki.WorkflowStep{Name: "check", Outputs: map[string]string{"version": `version=(\S+)`}}
	got, err := st.StepOutputs([]string{"starting\n", "version=1.2.3\n", "version=9\n"})
	if err != nil || got["version"] != "1.2.3" {
		t.Fatalf("%v, %v", got, err)
	}
	if _, err := st.StepOutputs([]string{"nothing"}); err == nil || !strings.Contains(aramaki.ErrorMessage(err), "no host printed its output version") {
		t.Fatalf("missing output: %v", err)
	}
}

func TestBreakersAreWrittenAsACountOrAShare(t *testing.T) {
	for in, want := range map[string]aramaki.Breaker{"1": {Failures: 1}, "3": {Failures: 3}, "25%": {Percent: 25}, " 100% ": {Percent: 100}} {
		if got, err := aramaki.ParseBreaker(in); err != nil || got != want || (got.String() != strings.TrimSpace(in)) {
			t.Errorf("%q: %+v (%s), %v", in, got, got.String(), err)
		}
	}
	for _, bad := range []string{"0", "-1", "0%", "101%", "half", "", "1.5"} {
		if _, err := aramaki.ParseBreaker(bad); aramaki.ErrorCode(err) != aramaki.EINVALID {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestWorkflowInputsNeedAValueOrADefault(t *testing.T) {
	dot := "."
	w := aramaki.Workflow{Name: "w", Inputs: []aramaki.WorkflowInput{{Name: "pattern", Default: &dot}, {Name: "ticket"}}}
	if _, err := w.WorkflowInputs(nil); err == nil || !strings.Contains(aramaki.ErrorMessage(err), "needs the input ticket") {
		t.Errorf("missing input: %v", err)
	}
	got, err := w.WorkflowInputs(map[string]string{"ticket": "OPS-1"})
	if err != nil || got["pattern"] != "." || got["ticket"] != "OPS-1" {
		t.Errorf("%v, %v", got, err)
	}
	if _, err := w.WorkflowInputs(map[string]string{"ticket": "x", "argv": "y"}); err == nil {
		t.Error("unknown input accepted")
	}
}
