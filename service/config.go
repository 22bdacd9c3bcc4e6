package service

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aramaki/aramaki"
)

// ConfigResult says what a config sync did.
type ConfigResult struct {
	Commit   aramaki.Commit `json:"commit"`
	Applied  bool           `json:"applied"`            // the commit is in force
	Rejected bool           `json:"rejected,omitempty"` // the commit is broken; the last good config stays
	New      bool           `json:"new"`                // this sync changed what is in force or recorded
	Problems []string       `json:"problems,omitempty"`
}

// ConfigState returns the config commit in force and the last refused one.
func (s *Service) ConfigState(ctx context.Context, p aramaki.Principal) (aramaki.ConfigState, error) {
	if err := s.require(p, aramaki.GlobalScope, aramaki.RoleViewer); err != nil {
		return aramaki.ConfigState{}, err
	}
	return s.store.ConfigState(ctx)
}

// ReloadConfig re-reads the config repository now, on a person's request.
func (s *Service) ReloadConfig(ctx context.Context, p aramaki.Principal) (ConfigResult, error) {
	if err := s.require(p, aramaki.GlobalScope, aramaki.RoleAdmin); err != nil {
		return ConfigResult{}, err
	}
	res, err := s.SyncConfig(ctx, p.Actor())
	if err != nil {
		return res, err
	}
	if !res.New {
		// Nothing new: still a request that someone made, so on the record.
		state := "is already in force"
		if res.Rejected {
			state = "was already refused"
		}
		ev, err := s.event(aramaki.KindConfigReload, p.Actor(), nil,
			fmt.Sprintf("Config reload: commit %s %s", short(res.Commit.Hash), state), res)
		if err != nil {
			return res, err
		}
		if _, err := s.store.AppendEvent(ctx, ev); err != nil {
			return res, err
		}
	}
	return res, nil
}

// SyncConfig reads the newest commit of the config repository and applies
// it, or records why it was refused. actor is who caused the read ("config"
// for the poller). Running it on several replicas at once applies a commit
// once: the store decides.
func (s *Service) SyncConfig(ctx context.Context, actor string) (ConfigResult, error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	snap, problems, err := s.config.Load(ctx)
	if err != nil {
		return ConfigResult{}, fmt.Errorf("sync config: %w", err)
	}
	if err := s.store.MarkConfigChecked(ctx, s.now()); err != nil {
		return ConfigResult{}, err
	}
	snap.Commit = recordable(snap.Commit)
	if len(problems) > 0 {
		return s.reject(ctx, actor, snap.Commit, problems)
	}
	res, err := s.apply(ctx, actor, snap)
	if code := aramaki.ErrorCode(err); code == aramaki.EINVALID || code == aramaki.ETOOLARGE {
		// Valid files, but a commit that cannot be recorded: refuse it
		// like a broken one rather than retrying it forever.
		return s.reject(ctx, actor, snap.Commit, []string{"the commit cannot be applied: " + aramaki.ErrorMessage(err)})
	}
	return res, err
}

// reject records a refused commit; the config in force stays.
func (s *Service) reject(ctx context.Context, actor string, c aramaki.Commit, problems []string) (ConfigResult, error) {
	res := ConfigResult{Commit: c, Problems: problems, Rejected: true}
	bounded := make([]string, len(problems))
	for i, p := range problems {
		bounded[i] = clipRunes(p, 500)
	}
	ev, err := s.event(aramaki.KindConfigRejected, actor, nil,
		fmt.Sprintf("Config commit %s by %s refused: %s", short(c.Hash), authorName(c.Author), firstLine(problems[0])),
		aramaki.ConfigRejectedData{Commit: c, Errors: bounded})
	if err != nil {
		return res, err
	}
	res.New, err = s.store.RejectConfig(ctx, c, bounded, ev)
	if err != nil {
		return res, err
	}
	if res.New {
		s.log.Warn("config commit refused", "commit", c.Hash, "problems", len(problems), "first", problems[0])
	}
	return res, nil
}

// apply puts a valid commit in force and records it on the timeline.
func (s *Service) apply(ctx context.Context, actor string, snap aramaki.ConfigSnapshot) (ConfigResult, error) {
	res := ConfigResult{Commit: snap.Commit}
	newGraph, err := aramaki.NewGraph(snap.Systems)
	if err != nil {
		// The config source validates; this is a second line of defence.
		return res, fmt.Errorf("sync config: %w", err)
	}
	data := diffSystems(s.Graph(), newGraph)
	concerned := append(append(append([]string{}, data.Added...), data.Changed...), data.Removed...)
	if len(concerned) > aramaki.MaxEventSystems {
		concerned = nil // too many to file under each: the server's own timeline has it
	}
	data.Commit = snap.Commit
	data.Counts = map[string]int{"added": len(data.Added), "changed": len(data.Changed), "removed": len(data.Removed)}
	for _, l := range []*[]string{&data.Added, &data.Changed, &data.Removed} {
		if len(*l) > maxListedSystems {
			*l = (*l)[:maxListedSystems]
		}
	}
	ev, err := s.event(aramaki.KindConfigApplied, actor, concerned,
		fmt.Sprintf("Config commit %s by %s: %s", short(snap.Commit.Hash), authorName(snap.Commit.Author), firstLine(snap.Commit.Message)), data)
	if err != nil {
		return res, err
	}
	res.New, err = s.store.ApplyConfig(ctx, snap, ev)
	if err != nil {
		return res, err
	}
	res.Applied = true
	if res.New {
		// Checks no longer declared are no longer anyone's problem.
		keep := map[string][]string{}
		for _, sys := range newGraph.Systems() {
			keep[sys.ID] = []string{}
			for _, c := range sys.Checks {
				keep[sys.ID] = append(keep[sys.ID], c.Name)
			}
		}
		if err := s.store.DeleteCheckStates(ctx, keep); err != nil {
			return res, err
		}
		s.log.Info("config commit applied", "commit", snap.Commit.Hash, "systems", len(snap.Systems),
			"added", len(data.Added), "changed", len(data.Changed), "removed", len(data.Removed))
	}
	// Another replica may have applied it; either way the store is the truth.
	return res, s.refreshGraph(ctx)
}

// WatchConfig syncs the config repository every interval until ctx ends.
func (s *Service) WatchConfig(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.SyncConfig(ctx, "config"); err != nil && ctx.Err() == nil {
			s.log.Error("config sync failed; the last good config stays in force", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maxListedSystems bounds each list of a config.applied event's data.
const maxListedSystems = 500

// recordable bounds what a commit brings to an event: a commit message or
// author can be as long as Git allows.
func recordable(c aramaki.Commit) aramaki.Commit {
	c.Author = clipRunes(c.Author, 200)
	c.Message = clipRunes(c.Message, 4000)
	return c
}

func clipRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func diffSystems(old, new *aramaki.Graph) aramaki.ConfigAppliedData {
	var d aramaki.ConfigAppliedData
	for _, sys := range new.Systems() {
		prev := old.System(sys.ID)
		switch {
		case prev == nil:
			d.Added = append(d.Added, sys.ID)
		case !sameJSON(prev, sys):
			d.Changed = append(d.Changed, sys.ID)
		}
	}
	for _, sys := range old.Systems() {
		if new.System(sys.ID) == nil {
			d.Removed = append(d.Removed, sys.ID)
		}
	}
	return d
}

func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if r := []rune(line); len(r) > 100 {
		line = string(r[:99]) + "…"
	}
	return line
}

func authorName(author string) string {
	name, _, _ := strings.Cut(author, " <")
	return clipRunes(name, 60)
}
