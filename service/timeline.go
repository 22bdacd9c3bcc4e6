package service

import (
	"context"
	"time"

	"github.com/aramaki/aramaki"
)

// TimelineRequest asks for a page of the timeline, newest first. System,
// when set, narrows to that system and everything under it.
type TimelineRequest struct {
	System string
	Kinds  []aramaki.EventKind
	Since  time.Time
	Until  time.Time
	Cursor string
	Limit  int
}

// Timeline returns the events the principal may read.
func (s *Service) Timeline(ctx context.Context, p aramaki.Principal, r TimelineRequest) (aramaki.TimelinePage, error) {
	g := s.Graph()
	q := aramaki.TimelineQuery{Kinds: r.Kinds, Since: r.Since, Until: r.Until, Limit: r.Limit}
	for _, k := range r.Kinds {
		if err := aramaki.ValidateKind(k); err != nil {
			return aramaki.TimelinePage{}, err
		}
	}
	if r.Limit < 0 || r.Limit > aramaki.MaxTimelineLimit {
		return aramaki.TimelinePage{}, aramaki.Errorf(aramaki.EINVALID, "limit must be between 1 and %d", aramaki.MaxTimelineLimit)
	}
	if !r.Since.IsZero() && !r.Until.IsZero() && !r.Until.After(r.Since) {
		return aramaki.TimelinePage{}, aramaki.Errorf(aramaki.EINVALID, "until must be after since")
	}
	if r.Cursor != "" {
		c, err := aramaki.ParseCursor(r.Cursor)
		if err != nil {
			return aramaki.TimelinePage{}, err
		}
		q.Cursor = c
	}
	ids, all, err := s.scope(g, p, r.System)
	if err != nil {
		return aramaki.TimelinePage{}, err
	}
	if !all && len(ids) == 0 {
		if p.Anonymous() {
			return aramaki.TimelinePage{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in to see the timeline")
		}
		return aramaki.TimelinePage{Events: []aramaki.Event{}}, nil
	}
	q.Systems = ids
	page, err := s.store.Timeline(ctx, q)
	if err != nil {
		return aramaki.TimelinePage{}, err
	}
	for i := range page.Events {
		page.Events[i] = redact(g, p, all, page.Events[i])
	}
	if page.Events == nil {
		page.Events = []aramaki.Event{}
	}
	return page, nil
}

// Event returns one event, if the principal may read it.
func (s *Service) Event(ctx context.Context, p aramaki.Principal, id string) (aramaki.Event, error) {
	if len(id) > 64 {
		return aramaki.Event{}, aramaki.Errorf(aramaki.EINVALID, "invalid event id")
	}
	ev, err := s.store.Event(ctx, id)
	if err != nil {
		return aramaki.Event{}, err
	}
	g := s.Graph()
	if p.GlobalRole().AtLeast(aramaki.RoleViewer) {
		return ev, nil
	}
	for _, sys := range ev.Systems {
		if g.CanView(p, sys) {
			return redact(g, p, false, ev), nil
		}
	}
	if p.Anonymous() {
		return aramaki.Event{}, aramaki.Errorf(aramaki.EUNAUTHORIZED, "log in to see this event")
	}
	return aramaki.Event{}, aramaki.Errorf(aramaki.ENOTFOUND, "no event %s", id)
}

// PostNote puts a person's note on a system's timeline. Operators may post.
func (s *Service) PostNote(ctx context.Context, p aramaki.Principal, systemID, text string) (aramaki.Event, error) {
	g := s.Graph()
	if err := s.visible(g, p, systemID); err != nil {
		return aramaki.Event{}, err
	}
	if err := s.require(p, systemID, aramaki.RoleOperator); err != nil {
		return aramaki.Event{}, err
	}
	if err := aramaki.ValidateNote(text); err != nil {
		return aramaki.Event{}, err
	}
	ev, err := s.event(aramaki.KindNote, p.Actor(), []string{systemID}, aramaki.NoteSummary(text), aramaki.NoteData{Text: text})
	if err != nil {
		return aramaki.Event{}, err
	}
	if _, err := s.store.AppendEvent(ctx, ev); err != nil {
		return aramaki.Event{}, err
	}
	return ev, nil
}

// Announce posts an announcement on a system: an incident or planned
// maintenance. It is on the timeline, mailed to the owners of the system
// and of every system that uses it, and shared with every peer whose
// grants cover the system (events or status), whose people hear of it the
// same way.
func (s *Service) Announce(ctx context.Context, p aramaki.Principal, systemID, kind, text string) (aramaki.Event, error) {
	g := s.Graph()
	if err := s.visible(g, p, systemID); err != nil {
		return aramaki.Event{}, err
	}
	if g.System(systemID).Peer != "" {
		return aramaki.Event{}, aramaki.Errorf(aramaki.EINVALID, "%s is a peer's system: announce on the server it belongs to", systemID)
	}
	if err := s.require(p, systemID, aramaki.RoleOperator); err != nil {
		return aramaki.Event{}, err
	}
	if kind != aramaki.AnnounceIncident && kind != aramaki.AnnounceMaintenance {
		return aramaki.Event{}, aramaki.Errorf(aramaki.EINVALID, "an announcement is an incident or maintenance, not %q", clipRunes(kind, 40))
	}
	if err := aramaki.ValidateNote(text); err != nil {
		return aramaki.Event{}, err
	}
	summary := aramaki.AnnouncementSummary(kind, systemID, text)
	ev, err := s.event(aramaki.KindAnnouncement, p.Actor(), []string{systemID}, summary, aramaki.AnnouncementData{Kind: kind, Text: text})
	if err != nil {
		return aramaki.Event{}, err
	}
	nts := s.tellOwners(g, systemID, summary, text+"\n", "/systems/"+systemID)
	return ev, s.store.AppendEventNotifying(ctx, ev, nts)
}
