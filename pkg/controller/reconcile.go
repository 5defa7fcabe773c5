package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
)

// Reconcile reads every spotmax group of the region in O(pages) API calls and returns the events
// that are due: journaled replacements to resume, notices relayed by agents, instances past
// their guaranteed lifetime, and stand-ins old enough to go back to spot. On the way it turns
// DeleteOnTermination off for data volumes (and marks them as the group's), restores MaxSize
// left raised, reports invalid configurations and orphaned data volumes, and publishes the
// per-group gauges.
func (c *Controller) Reconcile(ctx context.Context) ([]Event, error) {
	if c.inflight == nil {
		c.init()
	}
	groups, err := c.inventory().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing spotmax groups: %w", err)
	}
	journals, err := c.Workflow.InFlight(ctx)
	if err != nil {
		return nil, err
	}
	now := c.Clock.Now()
	// Instances a replacement in flight drives — the old instance and the replacement receiving
	// its data volume — are no policy's candidates.
	busy := map[string]bool{}
	for _, j := range journals {
		busy[j.Old] = true
		if j.Replacement != "" {
			busy[j.Replacement] = true
		}
	}
	byName := map[string]*inventory.Group{}
	instGroup := map[string]string{}
	var events []Event
	for _, g := range groups {
		byName[g.Name] = g
		for _, m := range g.Members {
			instGroup[m.ID] = g.Name
		}
		if g.ConfigErr != nil {
			c.Log.Warn("group left alone: invalid spotmax configuration", "group", g.Name, "error", g.ConfigErr)
			c.Metrics.Record(ctx, metrics.Event{Name: metrics.InvalidConfiguration, Group: g.Name, Time: now})
			continue
		}
		if !g.Managed() {
			continue
		}
		if g.CapacityRebalance {
			c.Log.Warn("group has Capacity Rebalancing on: AWS replaces interrupted instances on its own; turn it off", "group", g.Name)
		}
		for _, w := range g.Config.Warnings {
			// e.g. an original product's tag spotmax accepts but does not act on: said once.
			c.mu.Lock()
			first := c.seen.add("config-warning/" + g.Name + "/" + w)
			c.mu.Unlock()
			if first {
				c.Log.Warn("group configuration: "+w, "group", g.Name)
			}
		}
		if changed, err := c.Workflow.EnsureKeepVolumes(ctx, g); err != nil {
			c.Log.Error("keeping data volumes", "group", g.Name, "error", err)
		} else if len(changed) > 0 {
			c.inventory().Forget(changed...) // their volumes' DeleteOnTermination changed
			c.Log.Info("data volumes no longer deleted on termination", "group", g.Name, "instances", strings.Join(changed, ","))
		}
		if hasTag(g.Tags, groupconfig.StateGroupMaxSize) && !journaled(journals, g.Name) {
			if err := c.Workflow.RestoreMaxSize(ctx, g.Name); err != nil {
				c.Log.Error("restoring MaxSize", "group", g.Name, "error", err)
			}
		}
		c.Metrics.Gauge(ctx, g.Name, counts(g))
		events = append(events, dueEvents(g, now, busy)...)
	}
	c.tendPool(ctx, groups, journals, now)
	for _, j := range journals {
		if j.Group == "" {
			continue
		}
		if c.Workflow.Busy(j, now) {
			// Another actor drives it: a `spotmax replace`, or a second controller running without
			// leader election. Its lease keeps us off; say so once per actor.
			c.mu.Lock()
			first := c.seen.add("owner/" + j.Owner)
			c.mu.Unlock()
			if first {
				c.Log.Warn("another spotmax actor is replacing instances in this region; its journals are left to it while its lease runs (run controllers with --leader-elect)",
					"owner", j.Owner, "instance", j.Old, "group", j.Group)
			}
			continue
		}
		events = append(events, Event{ID: "resume/" + j.Old + "/" + string(j.Phase), Kind: KindResume, Instance: j.Old, Group: j.Group,
			Time: now, Source: "reconcile", Detail: string(j.Reason) + ", after " + string(j.Phase)})
	}
	c.mu.Lock()
	for id, e := range c.unconfirmed {
		if now.After(e.Deadline) {
			delete(c.unconfirmed, id)
			c.Log.Warn("interruption warning never confirmed by EC2 before its deadline: not acted on", "instance", e.Instance, "group", e.Group, "source", e.Source)
			continue
		}
		events = append(events, e) // confirm it again
	}
	c.groups, c.instGroup = byName, instGroup
	c.stats.Reconciles++
	c.mu.Unlock()
	// Proactive work is taken oldest first, so a long backlog rotates in a fair order.
	slices.SortStableFunc(events, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return events, nil
}

// dueEvents returns the group's members that need a replacement now, by policy.
func dueEvents(g *inventory.Group, now time.Time, busy map[string]bool) []Event {
	cfg := g.Config
	var out []Event
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
			out = append(out, Event{ID: "lifetime/" + m.ID, Kind: KindLifetime, Instance: m.ID, Group: g.Name,
				Time: m.LaunchTime.Add(d), Source: "reconcile", Detail: fmt.Sprintf("age %s ≥ %s", age.Round(time.Second), d)})
			continue
		}
		switch {
		case standIns[m.ID] && !cfg.OnlyOD && age >= cfg.ODLeastLive:
			out = append(out, Event{ID: revertID(m.ID, now), Kind: KindRevert, Instance: m.ID, Group: g.Name,
				Time: m.LaunchTime.Add(cfg.ODLeastLive), Source: "reconcile", Detail: "on-demand stand-in"})
		case slices.Contains(cfg.AltTypes, m.Type) && age >= cfg.AltLeastLive:
			out = append(out, Event{ID: revertID(m.ID, now), Kind: KindRevert, Instance: m.ID, Group: g.Name,
				Time: m.LaunchTime.Add(cfg.AltLeastLive), Source: "reconcile", Detail: "alternative type " + m.Type})
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
func relayedNotice(id, group, v string) (Event, bool) {
	n, err := groupconfig.ParseRelayedNotice(v)
	if err != nil {
		return Event{}, false
	}
	kind := KindInterruption
	if n.Rebalance() {
		kind = KindRebalance
	}
	e := Event{Kind: kind, Instance: id, Group: group, Time: n.Time, Source: "agent", Detail: n.Action}
	if kind == KindInterruption {
		e.Deadline = n.Time
	}
	return e, true
}

func counts(g *inventory.Group) metrics.Counts {
	var c metrics.Counts
	for _, m := range g.Members {
		switch m.Market {
		case "spot":
			c.Spot++
		case "on-demand":
			c.OnDemand++
		}
		if slices.Contains(g.Config.AltTypes, m.Type) {
			c.Alternative++
		}
	}
	return c
}

func hasTag(tags []groupconfig.Tag, key string) bool {
	for _, t := range tags {
		if t.Key == key {
			return true
		}
	}
	return false
}

func journaled(js []replace.Journal, group string) bool {
	for _, j := range js {
		if j.Group == group {
			return true
		}
	}
	return false
}

// ManagedInstances is the SQS source's InstanceFilter: it maps instance ids to their spotmax
// groups from the last reconcile, and looks the others up in one DescribeInstances call (their
// group tag, or the journal's once detached). Instances of groups spotmax does not manage are
// left out.
func (c *Controller) ManagedInstances(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	var unknown []string
	c.mu.Lock()
	for _, id := range ids {
		if g, ok := c.instGroup[id]; ok {
			out[id] = g
		} else {
			unknown = append(unknown, id)
		}
	}
	c.mu.Unlock()
	if len(unknown) > 0 {
		res, err := c.Lister.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: unknown})
		if err != nil && !awsapi.IsNotFound(err) {
			return nil, fmt.Errorf("looking up the groups of %d instance(s): %w", len(unknown), err)
		}
		if res != nil {
			for _, r := range res.Reservations {
				for _, in := range r.Instances {
					tags := map[string]string{}
					for _, t := range in.Tags {
						tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
					}
					g := tags[inventory.TagASGName]
					if g == "" {
						g = tags[groupconfig.StateJournalGroup]
					}
					spotmax := tags[groupconfig.TagGroup] != "" || tags[groupconfig.StateJournalGroup] != ""
					if g != "" && spotmax {
						out[aws.ToString(in.InstanceId)] = g
					}
				}
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, g := range out {
		if grp, known := c.groups[g]; known && !grp.Managed() {
			delete(out, id)
		}
	}
	return out, nil
}
