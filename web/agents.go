package web

import (
	"encoding/json"
	"net/http"
	"sort"
)

// agentsPage lists the agents of the systems the user can see: host, systems,
// version, last seen, connected or not; admins may revoke.
func (u *UI) agentsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	agents, err := u.svc.Agents(r.Context(), s.Principal)
	if err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "agents", s, map[string]any{"Agents": agents})
	return nil
}

// agentFacts is the inventory of one host, flattened for the page.
type agentFacts struct {
	Hostname, Kernel, Arch, CPUModel string
	CPUs                             int
	MemoryKiB                        uint64
	OS                               map[string]string
	Units                            []struct{ Name, Active, Sub string }
	Ports                            []struct {
		Proto, Address, Process string
		Port                    int
	}
}

// agentPage shows one agent with its host's facts.
func (u *UI) agentPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	d, err := u.svc.Agent(r.Context(), s.Principal, r.PathValue("id"))
	if err != nil {
		return err
	}
	var facts *agentFacts
	if d.Facts != nil {
		facts = &agentFacts{}
		if err := json.Unmarshal(d.Facts.Facts, facts); err != nil {
			facts = nil // stored facts are validated; a damaged one is simply not shown
		}
		if facts != nil {
			sort.Slice(facts.Ports, func(i, j int) bool { return facts.Ports[i].Port < facts.Ports[j].Port })
		}
	}
	u.render(w, r, http.StatusOK, "agent", s, map[string]any{"Agent": d, "Facts": facts, "Collected": d.Facts})
	return nil
}

// revokeAgent refuses an agent from now on (admins of its systems).
func (u *UI) revokeAgent(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Anonymous() {
		redirectToLogin(w, r)
		return nil
	}
	if err := u.svc.RevokeAgent(r.Context(), s.Principal, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, "/agents", http.StatusSeeOther)
	return nil
}
