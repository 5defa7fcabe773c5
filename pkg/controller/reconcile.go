package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/source"
	"github.com/spotmax/spotmax/pkg/source/reconcile"
)

// Reconcile is one pass of the reconcile (package source/reconcile) with the controller's upkeep:
// it reads every spotmax group of the region in O(pages) API calls and returns the events that
// are due — journaled replacements to resume, notices relayed by agents, instances past their
// guaranteed lifetime, stand-ins old enough to go back to spot — with the interruption warnings
// still unconfirmed. On the way it does the upkeep (apply). Run does the same every Interval;
// `spotmax run --once` calls it once.
func (c *Controller) Reconcile(ctx context.Context) ([]source.Event, error) {
	if c.inflight == nil {
		c.init()
	}
	return c.reconciler(c.apply).Pass(ctx)
}

// reconciler is the reconcile source over the controller's inventory, workflow and clock, handing
// each snapshot to apply.
func (c *Controller) reconciler(apply func(context.Context, reconcile.Snapshot) []source.Event) *reconcile.Source {
	return &reconcile.Source{Groups: c.inventory(), Journals: c.Workflow, Now: c.Clock.Now, Interval: c.Interval,
		Apply: apply, Log: c.Log}
}

// apply is the controller's upkeep on each reconcile snapshot: it turns DeleteOnTermination off
// for data volumes (and marks them as the group's), restores MaxSize left raised, tends the data
// volume pool, reports invalid configurations, configuration warnings and journals another actor
// holds, publishes the per-group gauges, and remembers the groups for handle and
// ManagedInstances. It returns the interruption warnings EC2 has not confirmed yet, offered again
// until their deadline.
func (c *Controller) apply(ctx context.Context, snap reconcile.Snapshot) []source.Event {
	now := snap.Time
	byName := map[string]*inventory.Group{}
	instGroup := map[string]string{}
	for _, g := range snap.Groups {
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
		if hasTag(g.Tags, groupconfig.StateGroupMaxSize) && !journaled(snap.Journals, g.Name) {
			if err := c.Workflow.RestoreMaxSize(ctx, g.Name); err != nil {
				c.Log.Error("restoring MaxSize", "group", g.Name, "error", err)
			}
		}
		c.Metrics.Gauge(ctx, g.Name, counts(g))
	}
	c.tendPool(ctx, snap.Groups, snap.Journals, now)
	for _, j := range snap.Journals {
		if !snap.Leased[j.Old] {
			continue
		}
		// Another actor drives it: a `spotmax replace`, or a second controller running without
		// leader election. Its lease keeps us off; say so once per actor.
		c.mu.Lock()
		first := c.seen.add("owner/" + j.Owner)
		c.mu.Unlock()
		if first {
			c.Log.Warn("another spotmax actor is replacing instances in this region; its journals are left to it while its lease runs (run controllers with --leader-elect)",
				"owner", j.Owner, "instance", j.Old, "group", j.Group)
		}
	}
	var reoffer []source.Event
	c.mu.Lock()
	for id, e := range c.unconfirmed {
		if now.After(e.Deadline) {
			delete(c.unconfirmed, id)
			c.Log.Warn("interruption warning never confirmed by EC2 before its deadline: not acted on", "instance", e.Instance, "group", e.Group, "source", e.Source)
			continue
		}
		reoffer = append(reoffer, e) // confirm it again
	}
	c.groups, c.instGroup = byName, instGroup
	c.stats.Reconciles++
	c.mu.Unlock()
	return reoffer
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
