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
	res := ConfigResult{Commit: snap.Commit, Problems: problems}
	if len(problems) > 0 {
		data := aramaki.ConfigRejectedData{Commit: snap.Commit, Errors: problems}
		ev, err := s.event(aramaki.KindConfigRejected, actor, nil,
			fmt.Sprintf("Config commit %s by %s refused: %s", short(snap.Commit.Hash), authorName(snap.Commit.Author), firstLine(problems[0])), data)
		if err != nil {
			return res, err
		}
		res.New, err = s.store.RejectConfig(ctx, snap.Commit, problems, ev)
		if err != nil {
			return res, err
		}
		if res.New {
			s.log.Warn("config commit refused", "commit", snap.Commit.Hash, "problems", len(problems), "first", problems[0])
		}
		res.Rejected = true
		return res, nil
	}
	newGraph, err := aramaki.NewGraph(snap.Systems)
	if err != nil {
		// The config source validates; this is a second line of defence.
		return res, fmt.Errorf("sync config: %w", err)
	}
	data := diffSystems(s.Graph(), newGraph)
	data.Commit = snap.Commit
	concerned := append(append(append([]string{}, data.Added...), data.Changed...), data.Removed...)
	ev, err := s.event(aramaki.KindConfigApplied, actor, concerned,
		fmt.Sprintf("Config commit %s by %s: %s (%s)", short(snap.Commit.Hash), authorName(snap.Commit.Author), firstLine(snap.Commit.Message), changeCounts(data)), data)
	if err != nil {
		return res, err
	}
	res.New, err = s.store.ApplyConfig(ctx, snap, ev)
	if err != nil {
		return res, err
	}
	res.Applied = true
	if res.New {
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

func changeCounts(d aramaki.ConfigAppliedData) string {
	var parts []string
	for _, c := range []struct {
		n    int
		verb string
	}{{len(d.Added), "added"}, {len(d.Changed), "changed"}, {len(d.Removed), "removed"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.verb))
		}
	}
	if len(parts) == 0 {
		return "no system changed"
	}
	return "systems: " + strings.Join(parts, ", ")
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
	return name
}
