package aramaki

import (
	"slices"
	"sort"
	"strings"
)

// Graph is the system graph: systems aggregate subsystems top-down, a
// subsystem may be used by many systems, and there are no cycles. A Graph is
// immutable once built and safe for concurrent use.
type Graph struct {
	systems map[string]*System
	usedBy  map[string][]string // child -> parents, sorted
	ids     []string            // sorted
}

// NewGraph builds the graph of systems. It refuses unknown subsystem
// references and cycles; use FindCycle for the path of a cycle.
func NewGraph(systems []System) (*Graph, error) {
	g := &Graph{systems: make(map[string]*System, len(systems)), usedBy: map[string][]string{}}
	for i := range systems {
		s := &systems[i]
		if _, dup := g.systems[s.ID]; dup {
			return nil, Errorf(EINVALID, "system %s is declared twice", s.ID)
		}
		g.systems[s.ID] = s
		g.ids = append(g.ids, s.ID)
	}
	// A peer's systems used here are in the graph as remote systems,
	// known by what the peer shares of them.
	for i := range systems {
		for _, sub := range systems[i].Subsystems {
			name, peer, remote := SplitRemote(sub)
			if _, ok := g.systems[sub]; ok || !remote {
				continue
			}
			if err := ValidateSystemRef(sub); err != nil {
				return nil, err
			}
			g.systems[sub] = &System{ID: sub, Title: name + " at " + peer, Category: "remote system", Peer: peer}
			g.ids = append(g.ids, sub)
		}
	}
	sort.Strings(g.ids)
	for _, id := range g.ids {
		for _, sub := range g.systems[id].Subsystems {
			if _, ok := g.systems[sub]; !ok {
				return nil, Errorf(EINVALID, "system %s uses unknown subsystem %s", id, sub)
			}
			g.usedBy[sub] = append(g.usedBy[sub], id)
		}
	}
	if cycle := FindCycle(systems); cycle != nil {
		return nil, Errorf(EINVALID, "subsystem cycle: %s", strings.Join(cycle, " → "))
	}
	return g, nil
}

// FindCycle returns a cycle in the subsystem relation as a path that starts
// and ends with the same id, or nil when there is none. References to unknown
// systems are ignored.
func FindCycle(systems []System) []string {
	subs := make(map[string][]string, len(systems))
	ids := make([]string, 0, len(systems))
	for _, s := range systems {
		subs[s.ID] = s.Subsystems
		ids = append(ids, s.ID)
	}
	sort.Strings(ids)
	const (
		unvisited = iota
		onPath
		done
	)
	state := make(map[string]int, len(systems))
	var path []string
	var visit func(id string) []string
	visit = func(id string) []string {
		state[id] = onPath
		path = append(path, id)
		for _, sub := range subs[id] {
			if _, known := subs[sub]; !known {
				continue
			}
			switch state[sub] {
			case onPath:
				start := slices.Index(path, sub)
				return append(slices.Clone(path[start:]), sub)
			case unvisited:
				if c := visit(sub); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[id] = done
		return nil
	}
	for _, id := range ids {
		if state[id] == unvisited {
			if c := visit(id); c != nil {
				return c
			}
		}
	}
	return nil
}

// System returns the system with the id, or nil.
func (g *Graph) System(id string) *System { return g.systems[id] }

// Systems returns all systems ordered by id.
func (g *Graph) Systems() []*System {
	out := make([]*System, 0, len(g.ids))
	for _, id := range g.ids {
		out = append(out, g.systems[id])
	}
	return out
}

// Len is the number of systems.
func (g *Graph) Len() int { return len(g.ids) }

// Subsystems returns the ids of the systems id uses directly, in declared order.
func (g *Graph) Subsystems(id string) []string {
	if s := g.systems[id]; s != nil {
		return slices.Clone(s.Subsystems)
	}
	return nil
}

// UsedBy returns the ids of the systems that use id directly, ordered by id.
func (g *Graph) UsedBy(id string) []string { return slices.Clone(g.usedBy[id]) }

// Anchors returns the systems used by no other system, ordered by id: the
// starting points for navigation.
func (g *Graph) Anchors() []string {
	var out []string
	for _, id := range g.ids {
		if len(g.usedBy[id]) == 0 {
			out = append(out, id)
		}
	}
	return out
}

// Descendants returns every system below id (not id itself), each once,
// breadth first.
func (g *Graph) Descendants(id string) []string {
	return g.walk(id, func(s string) []string {
		if sys := g.systems[s]; sys != nil {
			return sys.Subsystems
		}
		return nil
	})
}

// Ancestors returns every system that uses id directly or further up (not id
// itself), each once, breadth first.
func (g *Graph) Ancestors(id string) []string {
	return g.walk(id, func(s string) []string { return g.usedBy[s] })
}

func (g *Graph) walk(id string, next func(string) []string) []string {
	seen := map[string]bool{id: true}
	queue := []string{id}
	var out []string
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, n := range next(cur) {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
				queue = append(queue, n)
			}
		}
	}
	return out
}
