package configrepo

import (
	"strings"

	"github.com/aramaki/aramaki"
	"gopkg.in/yaml.v3"
)

var (
	workflowShape = shape{"workflow", "a workflow", []string{"name", "description", "role", "approval", "rule", "inputs", "steps"},
		"{name: rolling-restart, steps: [{name: restart, action: restart-php-fpm}]}"}
	inputShape = shape{"input", "an input", []string{"name", "description", "default"}, "{name: unit, default: php-fpm}"}
	stepShape  = shape{"step", "a step", []string{"name", "action", "system", "agents", "params", "concurrency", "stop_after", "outputs"},
		"{name: restart, action: restart-php-fpm, concurrency: 1}"}
	paramsShape  = shape{"params", "params", nil, "{pattern: \"${inputs.pattern}\"}"}
	outputsShape = shape{"outputs", "outputs", nil, "{version: 'version (\\S+)'}"}
)

// workflows reads the workflows of a system. The references of their
// steps to other systems are checked with the whole graph (stepRefs).
func (f *fileParser) workflows(v *yaml.Node, d *decl) []aramaki.Workflow {
	var out []aramaki.Workflow
	first := map[string]int{}
	f.list(v, "workflows", func(item *yaml.Node) {
		before := len(f.p.problems)
		var w aramaki.Workflow
		var steps []stepRef
		if !f.object(item, workflowShape, func(k, v *yaml.Node) {
			switch k.Value {
			case "name":
				w.Name, _ = f.text(v, "name")
				if w.Name != "" && aramaki.ValidateWorkflowName("workflow", w.Name) != nil {
					f.add(v, "workflow name %q must be lower-case letters, digits, - and _ (at most 63)", clip(w.Name))
				}
			case "description":
				w.Description, _ = f.text(v, "description")
			case "role":
				if r, ok := f.text(v, "role"); ok {
					switch aramaki.Role(r) {
					case aramaki.RoleOperator, aramaki.RoleAdmin:
						w.Role = aramaki.Role(r)
					default:
						f.add(v, "role %q: workflows are run by operator (the default) or admin", clip(r))
					}
				}
			case "approval":
				w.Approval = f.boolean(v, "approval")
			case "rule":
				if w.Rule, _ = f.text(v, "rule"); len(w.Rule) > aramaki.MaxReasonLen {
					f.add(v, "the rule is longer than %d characters", aramaki.MaxReasonLen)
				}
			case "inputs":
				w.Inputs = f.inputs(v)
			case "steps":
				w.Steps, steps = f.steps(v)
			}
		}) {
			return
		}
		switch {
		case strings.TrimSpace(w.Name) == "":
			f.add(item, "a workflow needs a name")
		case first[w.Name] != 0:
			f.add(item, "workflow %s is declared twice (first at line %d)", clip(w.Name), first[w.Name])
		default:
			first[w.Name] = item.Line
		}
		if len(w.Steps) == 0 && len(f.p.problems) == before {
			f.add(item, "a workflow needs steps")
		}
		// What the domain checks besides (references to inputs and to
		// outputs of earlier steps), at the workflow's line.
		if len(f.p.problems) == before {
			if err := w.Validate(); err != nil {
				f.add(item, "%s", aramaki.ErrorMessage(err))
			}
		}
		d.stepRefs = append(d.stepRefs, steps...)
		out = append(out, w)
	})
	return out
}

// stepRef is a step's system and action, with the line of the step.
type stepRef struct {
	step           string
	system, action string // system empty: the workflow's own
	line           int
}

func (f *fileParser) inputs(v *yaml.Node) []aramaki.WorkflowInput {
	var out []aramaki.WorkflowInput
	f.list(v, "inputs", func(item *yaml.Node) {
		var in aramaki.WorkflowInput
		if !f.object(item, inputShape, func(k, v *yaml.Node) {
			switch k.Value {
			case "name":
				in.Name, _ = f.text(v, "name")
				if aramaki.ValidateWorkflowName("input", in.Name) != nil {
					f.add(v, "input name %q must be lower-case letters, digits, - and _ (at most 63)", clip(in.Name))
				}
			case "description":
				in.Description, _ = f.text(v, "description")
			case "default":
				if s, ok := f.text(v, "default"); ok {
					in.Default = &s
				}
			}
		}) {
			return
		}
		if in.Name == "" {
			f.add(item, "an input needs a name")
		}
		out = append(out, in)
	})
	return out
}

func (f *fileParser) steps(v *yaml.Node) ([]aramaki.WorkflowStep, []stepRef) {
	var out []aramaki.WorkflowStep
	var refs []stepRef
	f.list(v, "steps", func(item *yaml.Node) {
		var st aramaki.WorkflowStep
		if !f.object(item, stepShape, func(k, v *yaml.Node) {
			switch k.Value {
			case "name":
				st.Name, _ = f.text(v, "name")
				if aramaki.ValidateWorkflowName("step", st.Name) != nil {
					f.add(v, "step name %q must be lower-case letters, digits, - and _ (at most 63)", clip(st.Name))
				}
			case "action":
				st.Action, _ = f.text(v, "action")
				if aramaki.ValidateActionName(st.Action) != nil {
					f.add(v, "action name %q must be lower-case letters, digits, - and _ (at most 63), as the hosts declare it", clip(st.Action))
				}
			case "system":
				st.System, _ = f.text(v, "system")
				if aramaki.ValidateSystemID(st.System) != nil {
					f.add(v, "%s", aramaki.ErrorMessage(aramaki.ValidateSystemID(clip(st.System))))
				}
			case "agents":
				f.list(v, "agents", func(item *yaml.Node) {
					if name, ok := f.text(item, "agent name"); ok {
						st.Agents = append(st.Agents, name)
					}
				})
			case "params":
				st.Params = f.stringMap(v, paramsShape, "parameter")
			case "outputs":
				st.Outputs = f.stringMap(v, outputsShape, "output")
			case "concurrency":
				if n, ok := f.integer(v, "concurrency"); ok {
					if n < 0 || n > aramaki.MaxWorkflowHosts {
						f.add(v, "concurrency is 0 (all hosts at once) to %d", aramaki.MaxWorkflowHosts)
					}
					st.Concurrency = n
				}
			case "stop_after":
				if s, ok := f.text(v, "stop_after"); ok {
					b, err := aramaki.ParseBreaker(s)
					if err != nil {
						f.add(v, "%s", aramaki.ErrorMessage(err))
					}
					st.StopAfter = b
				}
			}
		}) {
			return
		}
		switch {
		case st.Name == "":
			f.add(item, "a step needs a name")
		case st.Action == "":
			f.add(item, "step %s needs an action", clip(st.Name))
		}
		out = append(out, st)
		refs = append(refs, stepRef{step: st.Name, system: st.System, action: st.Action, line: item.Line})
	})
	return out, refs
}

// stringMap reads a mapping of names to texts.
func (f *fileParser) stringMap(v *yaml.Node, sh shape, what string) map[string]string {
	out := map[string]string{}
	f.object(v, sh, func(k, v *yaml.Node) {
		if s, ok := f.text(v, what+" "+clip(k.Value)); ok {
			out[k.Value] = s
		}
	})
	return out
}

// checkSteps checks what the steps of workflows name in other systems:
// each runs on its workflow's system or one under it, which exposes the
// step's action.
func (p *parser) checkSteps(first map[string]*decl) {
	if p.incomplete {
		return
	}
	for _, d := range p.decls {
		if d.sys.ID == "" || first[d.sys.ID] != d {
			continue
		}
		var under map[string]bool
		for _, r := range d.stepRefs {
			sys := r.system
			if sys == "" {
				sys = d.sys.ID
			}
			target := first[sys]
			if target == nil {
				p.add(d.file, r.line, "step %s runs on unknown system %s", clip(r.step), clip(sys))
				continue
			}
			if under == nil {
				under = descendants(first, d.sys.ID)
			}
			if !under[sys] {
				p.add(d.file, r.line, "step %s runs on %s, which is not %s or under it", clip(r.step), clip(sys), d.sys.ID)
				continue
			}
			if r.action != "" && !hasAction(target.sys, r.action) {
				p.add(d.file, r.line, "step %s: system %s has no action %s (add it to the actions of %s)", clip(r.step), sys, clip(r.action), sys)
			}
		}
	}
}

// descendants is the system and every system under it, as declared.
func descendants(first map[string]*decl, id string) map[string]bool {
	seen := map[string]bool{id: true}
	queue := []string{id}
	for len(queue) > 0 {
		d := first[queue[0]]
		queue = queue[1:]
		if d == nil {
			continue
		}
		for _, sub := range d.sys.Subsystems {
			if !seen[sub] {
				seen[sub] = true
				queue = append(queue, sub)
			}
		}
	}
	return seen
}

func hasAction(s aramaki.System, name string) bool {
	for _, a := range s.Actions {
		if a.Name == name {
			return true
		}
	}
	return false
}
