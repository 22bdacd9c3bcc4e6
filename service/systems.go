package service

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/aramaki/aramaki"
)

// SystemView is a system as one principal sees it: with the systems that use
// it, its place in the graph and the principal's role on it.
type SystemView struct {
	aramaki.System
	UsedBy []string     `json:"used_by"`
	Anchor bool         `json:"anchor"`
	Role   aramaki.Role `json:"role,omitempty"`
}

// SystemFilter narrows a system list.
type SystemFilter struct {
	Anchors  bool   // only systems used by no other system
	Category string // only systems of this category
}

func (s *Service) view(g *aramaki.Graph, p aramaki.Principal, sys *aramaki.System) SystemView {
	v := SystemView{System: *sys, UsedBy: g.UsedBy(sys.ID), Role: g.RoleOn(p, sys.ID)}
	v.Anchor = len(v.UsedBy) == 0
	if v.UsedBy == nil {
		v.UsedBy = []string{}
	}
	// Who else holds roles is not the business of viewers.
	if !v.Role.AtLeast(aramaki.RoleAdmin) {
		v.Roles = nil
	}
	return v
}

// Systems lists the systems the principal may see, ordered by id.
func (s *Service) Systems(ctx context.Context, p aramaki.Principal, f SystemFilter) ([]SystemView, error) {
	g := s.Graph()
	out := []SystemView{}
	for _, id := range g.Visible(p) {
		sys := g.System(id)
		if f.Category != "" && sys.Category != f.Category {
			continue
		}
		v := s.view(g, p, sys)
		if f.Anchors && !v.Anchor {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// System returns one system. Systems the principal may not see do not exist
// for them: the error is the same as for an unknown id.
func (s *Service) System(ctx context.Context, p aramaki.Principal, id string) (SystemView, error) {
	g := s.Graph()
	if err := s.visible(g, p, id); err != nil {
		return SystemView{}, err
	}
	return s.view(g, p, g.System(id)), nil
}

// Descendants returns the systems under id that the principal may see,
// breadth first.
func (s *Service) Descendants(ctx context.Context, p aramaki.Principal, id string) ([]SystemView, error) {
	g := s.Graph()
	if err := s.visible(g, p, id); err != nil {
		return nil, err
	}
	return s.views(g, p, g.Descendants(id)), nil
}

// Ancestors returns the systems that use id, directly or further up, that
// the principal may see, breadth first.
func (s *Service) Ancestors(ctx context.Context, p aramaki.Principal, id string) ([]SystemView, error) {
	g := s.Graph()
	if err := s.visible(g, p, id); err != nil {
		return nil, err
	}
	return s.views(g, p, g.Ancestors(id)), nil
}

func (s *Service) views(g *aramaki.Graph, p aramaki.Principal, ids []string) []SystemView {
	out := []SystemView{}
	for _, id := range ids {
		if g.CanView(p, id) {
			out = append(out, s.view(g, p, g.System(id)))
		}
	}
	return out
}

func (s *Service) visible(g *aramaki.Graph, p aramaki.Principal, id string) error {
	if err := aramaki.ValidateSystemRef(id); err != nil {
		return err
	}
	if !g.CanView(p, id) {
		// Nobody logged in learns nothing, not even whether it exists.
		if p.Anonymous() {
			return aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in to see system %s", id)
		}
		return aramaki.Errorf(aramaki.ENOTFOUND, "no system %s", id)
	}
	return nil
}

// scope returns the systems whose events the principal may read, given an
// optional system to narrow to (with everything under it). all is true when
// the principal may read every event, including those about no system.
func (s *Service) scope(g *aramaki.Graph, p aramaki.Principal, system string) (ids []string, all bool, err error) {
	if system != "" {
		if err := s.visible(g, p, system); err != nil {
			return nil, false, err
		}
		for _, id := range append([]string{system}, g.Descendants(system)...) {
			if g.CanView(p, id) {
				ids = append(ids, id)
			}
		}
		return ids, false, nil
	}
	if p.GlobalRole().AtLeast(aramaki.RoleViewer) {
		return nil, true, nil
	}
	return g.Visible(p), false, nil
}

// redact drops from an event what the principal may not see: the ids of
// other systems, and in a config commit's detail the systems it changed
// elsewhere and the author's e-mail address.
func redact(g *aramaki.Graph, p aramaki.Principal, all bool, ev aramaki.Event) aramaki.Event {
	if all {
		return ev
	}
	hidden := func(id string) bool { return !g.CanView(p, id) }
	ev.Systems = slices.DeleteFunc(slices.Clone(ev.Systems), hidden)
	if ev.Kind == aramaki.KindConfigApplied {
		var d aramaki.ConfigAppliedData
		if json.Unmarshal(ev.Data, &d) == nil {
			d.Added = slices.DeleteFunc(d.Added, hidden)
			d.Changed = slices.DeleteFunc(d.Changed, hidden)
			d.Removed = nil // gone from the graph: nobody but global viewers can tell whose they were
			d.Counts = nil
			d.Commit.Author = authorName(d.Commit.Author)
			ev.Data, _ = json.Marshal(d)
		}
	}
	return ev
}
