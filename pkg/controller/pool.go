package controller

import (
	"context"
	"errors"
	"time"

	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
)

// tendPool is the reconcile's pass over the data volume pool (replace.TendPool): it starts the
// adoptions that are due — a pooled volume for each member of its group in its AZ that lacks its
// data, and any adoption whose actor is gone — in the replacement pool, and reports volumes that
// wait with no member to take them, once each.
func (c *Controller) tendPool(ctx context.Context, groups []*inventory.Group, journals []replace.Journal, now time.Time) {
	work, err := c.Workflow.TendPool(ctx, groups, journals)
	if err != nil {
		c.Log.Error("tending the data volume pool", "error", err)
		return
	}
	for _, err := range work.Errors {
		c.Log.Error("tending the data volume pool", "error", err)
	}
	for _, id := range work.Deleted {
		c.Log.Info("volume deleted by the pool", "volume", id)
	}
	report := func(v replace.PoolVolume, msg string) {
		c.mu.Lock()
		first := c.seen.add("orphan/" + v.VolumeID)
		c.mu.Unlock()
		if !first {
			return
		}
		c.Log.Warn(msg, "group", v.Group, "volume", v.VolumeID, "az", v.AZ)
		c.Metrics.Record(ctx, metrics.Event{Name: metrics.DataVolumeOrphaned, Group: v.Group, Time: now,
			Fields: map[string]string{"volume": v.VolumeID, "az": v.AZ, "status": string(v.Status)}})
	}
	for _, v := range work.Waiting {
		report(v, "data volume waits in the pool: no member of its group in its AZ lacks its data (a member's fresh volume is "+
			"swapped only when its agent reports it blank); it is kept and adopted by the next member that needs it")
	}
	for _, v := range work.Orphaned {
		report(v, "data volume attached to nothing and its group is not a managed spotmax group with a data device: "+
			"kept; adopt, release or delete it with 'spotmax volumes'")
	}
	for _, a := range work.Adoptions {
		c.startAdoption(ctx, a)
	}
}

// startAdoption runs one adoption in the pool, keyed by its instance so that no replacement of
// that instance starts meanwhile, and no second adoption either: a member lacking its data at
// several devices gets one pooled volume per pass (TendPool offers one per member), each
// adoption rewriting the member's assignment list on its own.
func (c *Controller) startAdoption(ctx context.Context, a replace.Adoption) {
	vkey := "adopt/" + a.Volume
	c.mu.Lock()
	if c.quiesced || c.inflight[a.Instance] || c.inflight[vkey] {
		c.mu.Unlock()
		return
	}
	c.inflight[a.Instance], c.inflight[vkey] = true, true
	c.mu.Unlock()
	log := c.Log.With("group", a.Group, "volume", a.Volume, "device", a.Device, "instance", a.Instance)
	c.spawn(a.Instance, func() { delete(c.inflight, vkey) }, func() {
		res, err := c.Workflow.Adopt(ctx, a)
		switch {
		case errors.Is(err, replace.ErrNotAdoptable), errors.Is(err, replace.ErrBusy):
			log.Info("pooled data volume not adopted", "why", err)
		case err != nil:
			log.Warn("adopting a pooled data volume failed; the next reconcile tries again", "error", err)
		default:
			log.Info("pooled data volume attached to a member that lacked its data", "discarded_fresh_volume", res.Discarded,
				"took", res.Took.Round(time.Millisecond).String())
			c.Metrics.Record(ctx, metrics.Event{Name: metrics.VolumeMoved, Group: a.Group, Instance: a.Instance, Time: c.Clock.Now(),
				Duration: res.Took, Fields: map[string]string{"volume": a.Volume, "device": a.Device, "from": "pool"}})
		}
	})
}
