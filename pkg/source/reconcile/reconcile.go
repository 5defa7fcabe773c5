package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/source"
)

// Groups lists every spotmax group of the region; *inventory.Tracker satisfies it.
type Groups interface {
	List(ctx context.Context) ([]*inventory.Group, error)
}

// Journals reads the replacements in flight; *replace.Workflow satisfies it. Busy reports,
// without a call, whether another actor's lease holds a journal at now.
type Journals interface {
	InFlight(ctx context.Context) ([]replace.Journal, error)
	Busy(j replace.Journal, now time.Time) bool
}

// Snapshot is one reconcile's read of the region: every spotmax group and every journaled
// replacement, at Time.
type Snapshot struct {
	Time     time.Time
	Groups   []*inventory.Group
	Journals []replace.Journal
	// Leased are the old instances of the journals another actor drives while its lease runs
	// (a `spotmax replace`, or a second controller without leader election): not resumed.
	Leased map[string]bool
}

// Source reads the region every Interval and emits the events due in each snapshot (Events).
// It never acts: before it emits a snapshot's events it hands the snapshot to Apply, where the
// consumer does its upkeep, and the next read waits for Apply to return.
type Source struct {
	Groups   Groups
	Journals Journals
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Interval between reads, from the end of one pass to the start of the next; default 30 s.
	Interval time.Duration
	// Apply receives each snapshot before its events are emitted and returns events of the
	// consumer's own to emit with them (the controller re-offers the interruption warnings EC2
	// has not confirmed yet); nil emits the snapshot's events alone.
	Apply func(ctx context.Context, snap Snapshot) []source.Event
	Log   *slog.Logger
}

// Read takes one snapshot: the groups, in O(pages) calls through Groups, and the journals.
func (s *Source) Read(ctx context.Context) (Snapshot, error) {
	groups, err := s.Groups.List(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("listing spotmax groups: %w", err)
	}
	journals, err := s.Journals.InFlight(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	snap := Snapshot{Time: now(), Groups: groups, Journals: journals, Leased: map[string]bool{}}
	for _, j := range journals {
		if j.Group != "" && s.Journals.Busy(j, snap.Time) {
			snap.Leased[j.Old] = true
		}
	}
	return snap, nil
}

// Run reads the region at once and then every Interval, hands each snapshot to Apply and emits
// its events (with Apply's), oldest first, until ctx ends. A failed read is logged and tried
// again at the next interval.
func (s *Source) Run(ctx context.Context, out chan<- source.Event) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	interval := s.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		evs, err := s.Pass(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("reconcile failed", "error", err)
		}
		for _, e := range evs {
			select {
			case out <- e:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		t.Reset(interval)
	}
}

// Pass is one reconcile: it reads a snapshot, hands it to Apply and returns the snapshot's events
// with Apply's, oldest first. Run emits what it returns; `spotmax run --once` calls it directly.
func (s *Source) Pass(ctx context.Context) ([]source.Event, error) {
	snap, err := s.Read(ctx)
	if err != nil {
		return nil, err
	}
	var extra []source.Event
	if s.Apply != nil {
		extra = s.Apply(ctx, snap)
	}
	events := append(Events(snap), extra...)
	// Proactive work is taken oldest first, so a long backlog rotates in a fair order.
	slices.SortStableFunc(events, func(a, b source.Event) int { return a.Time.Compare(b.Time) })
	return events, nil
}

// Events derives the events due in a snapshot, without a call: notices relayed by agents,
// instances past their guaranteed lifetime and stand-ins old enough to go back to spot, for each
// managed group with a valid configuration; then the journals to resume, apart from those
// another actor's lease holds.
func Events(snap Snapshot) []source.Event {
	// Instances a replacement in flight drives — the old instance and the replacement receiving
	// its data volume — are no policy's candidates.
	busy := map[string]bool{}
	for _, j := range snap.Journals {
		busy[j.Old] = true
		if j.Replacement != "" {
			busy[j.Replacement] = true
		}
	}
	var events []source.Event
	for _, g := range snap.Groups {
		if g.ConfigErr != nil || !g.Managed() {
			continue
		}
		events = append(events, dueEvents(g, snap.Time, busy)...)
	}
	for _, j := range snap.Journals {
		if j.Group == "" || snap.Leased[j.Old] {
			continue
		}
		events = append(events, source.Event{ID: "resume/" + j.Old + "/" + string(j.Phase), Kind: source.KindResume, Instance: j.Old,
			Group: j.Group, Time: snap.Time, Source: source.Reconcile, Detail: string(j.Reason) + ", after " + string(j.Phase)})
	}
	return events
}

// dueEvents returns the group's members that need a replacement now, by policy.
func dueEvents(g *inventory.Group, now time.Time, busy map[string]bool) []source.Event {
	cfg := g.Config
	var out []source.Event
	// Only on-demand capacity beyond a mixed instances policy's base and percentage stands in
	// for spot (inventory's StandIns).
	standIns := g.StandIns()
	for _, m := range g.Members {
		if m.State != "running" || m.LifecycleState != "InService" {
			continue
		}
		if busy[m.ID] || busy[m.Tags[groupconfig.StateReplaces]] {
			continue // the old instance or the replacement of a replacement in flight
		}
		if notice := m.Tags[groupconfig.StateNotice]; notice != "" {
			if e, ok := relayedNotice(m.ID, g.Name, notice); ok {
				out = append(out, e)
				continue
			}
		}
		if m.Tags[groupconfig.StatePhase] != "" {
			continue // being replaced; the journal drives it
		}
		age := now.Sub(m.LaunchTime)
		if d := cfg.ProactiveDeadline(); cfg.Preaction && d > 0 && age >= d {
			out = append(out, source.Event{ID: "lifetime/" + m.ID, Kind: source.KindLifetime, Instance: m.ID, Group: g.Name,
				Time: m.LaunchTime.Add(d), Source: source.Reconcile, Detail: fmt.Sprintf("age %s ≥ %s", age.Round(time.Second), d)})
			continue
		}
		switch {
		case standIns[m.ID] && !cfg.OnlyOD && age >= cfg.ODLeastLive:
			out = append(out, source.Event{ID: revertID(m.ID, now), Kind: source.KindRevert, Instance: m.ID, Group: g.Name,
				Time: m.LaunchTime.Add(cfg.ODLeastLive), Source: source.Reconcile, Detail: "on-demand stand-in"})
		case slices.Contains(cfg.AltTypes, m.Type) && age >= cfg.AltLeastLive:
			out = append(out, source.Event{ID: revertID(m.ID, now), Kind: source.KindRevert, Instance: m.ID, Group: g.Name,
				Time: m.LaunchTime.Add(cfg.AltLeastLive), Source: source.Reconcile, Detail: "alternative type " + m.Type})
		}
	}
	return out
}

// revertID lets a revert that could not be done (no spot capacity yet) be tried again at a later
// reconcile, once per ten minutes.
func revertID(id string, now time.Time) string {
	return "revert/" + id + "/" + now.UTC().Truncate(10*time.Minute).Format(time.RFC3339)
}

// relayedNotice parses an agent's relayed notice (groupconfig.RelayedNotice, the tag's codec).
func relayedNotice(id, group, v string) (source.Event, bool) {
	n, err := groupconfig.ParseRelayedNotice(v)
	if err != nil {
		return source.Event{}, false
	}
	kind := source.KindInterruption
	if n.Rebalance() {
		kind = source.KindRebalance
	}
	e := source.Event{Kind: kind, Instance: id, Group: group, Time: n.Time, Source: source.Agent, Detail: n.Action}
	if kind == source.KindInterruption {
		e.Deadline = n.Time
	}
	return e, true
}
