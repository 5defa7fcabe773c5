package replace

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
)

// PoolWork is what one pass over the pool (TendPool) found.
type PoolWork struct {
	// Volumes are what the pass looked at: the pool's volumes attached to nothing, and those an
	// adoption claims or a discard marks.
	Volumes []PoolVolume
	// Adoptions are to be run (Adopt), interrupted ones first.
	Adoptions []Adoption
	// Waiting are available volumes no member of their group in their AZ can take now.
	Waiting []PoolVolume
	// Orphaned are available volumes whose group is not a managed spotmax group with a data
	// device.
	Orphaned []PoolVolume
	// Deleted are volumes deleted in the pass: discarded fresh volumes, and pooled volumes
	// unused for longer than their group's spotmax:volume_retention_hours.
	Deleted []string
	// Errors are the failures of the pass's own changes; they do not stop it.
	Errors []error
}

// PoolGroups maps the listed groups to what the pool needs of them.
func PoolGroups(groups []*inventory.Group) map[string]PoolGroup {
	out := map[string]PoolGroup{}
	for _, g := range groups {
		if g.Config == nil {
			continue
		}
		out[g.Name] = PoolGroup{Devices: g.Config.DataDevices(), Managed: g.Managed(), Retention: g.Config.VolumeRetention}
	}
	return out
}

// TendPool makes one pass over the region's data volumes: it stamps volumes newly attached to
// nothing (StateAvailableSince), deletes discarded fresh volumes and volumes past their group's
// retention, and pairs available volumes with members of their group in their AZ that lack their
// data at the volume's device (no volume at that data device, or the fresh one the agent reports
// blank): a group with several data devices is paired device by device. It returns the
// adoptions to run; it runs none itself, so that a caller may run them in parallel. groups must
// have been listed with their members; journals are the replacements in flight.
func (w *Workflow) TendPool(ctx context.Context, groups []*inventory.Group, journals []Journal) (*PoolWork, error) {
	pg := PoolGroups(groups)
	vols, err := w.tendable(ctx, journals, pg)
	if err != nil {
		return nil, err
	}
	now := w.clock().Now()
	work := &PoolWork{Volumes: vols}
	// Instances a replacement drives, or an adoption claims, take no pooled volume.
	busy := map[string]bool{}
	for _, j := range journals {
		busy[j.Old] = true
		if j.Replacement != "" {
			busy[j.Replacement] = true
		}
	}
	free := map[string][]PoolVolume{} // group/AZ/device → available volumes
	for _, v := range vols {
		if v.AdoptedBy != "" {
			busy[v.AdoptedBy] = true
		}
		switch v.Status {
		case PoolDiscarding:
			if v.Instance == "" || v.State == "available" {
				if err := w.deleteDiscarded(ctx, v.VolumeID); err != nil {
					work.Errors = append(work.Errors, err)
				} else {
					work.Deleted = append(work.Deleted, v.VolumeID)
				}
			}
			continue
		case PoolOrphaned:
			work.Orphaned = append(work.Orphaned, v)
			continue
		}
		if v.AdoptedBy != "" && !now.Before(v.LeaseUntil) {
			// An adoption whose actor is gone: finish it (or give it up, in Adopt's checks).
			d, _ := pg[v.Group].device(v.Device)
			work.Adoptions = append(work.Adoptions, Adoption{Group: v.Group, Volume: v.VolumeID, Instance: v.AdoptedBy,
				Device: d.Device, MountPath: d.MountPath})
			continue
		}
		if v.Status != PoolAvailable {
			continue
		}
		if v.AvailableSince.IsZero() {
			if err := w.tagResource(ctx, v.VolumeID, map[string]string{groupconfig.StateAvailableSince: now.UTC().Format(time.RFC3339)}); err != nil {
				work.Errors = append(work.Errors, fmt.Errorf("stamping pooled volume %s: %w", v.VolumeID, err))
			}
			v.AvailableSince = now
		}
		d, _ := pg[v.Group].device(v.Device)
		key := v.Group + "/" + v.AZ + "/" + groupconfig.NormalizeDevice(d.Device)
		free[key] = append(free[key], v)
	}
	for _, g := range groups {
		cfg := pg[g.Name]
		if !cfg.Managed {
			continue
		}
		// One adoption per member and pass: the controller runs one adoption per instance at a
		// time, and the member's other devices are paired in the next pass.
		taken := map[string]bool{}
		for _, d := range cfg.Devices {
			for _, m := range needy(g, d.Device, len(cfg.Devices), busy) {
				key := g.Name + "/" + m.AZ + "/" + groupconfig.NormalizeDevice(d.Device)
				if len(free[key]) == 0 || taken[m.ID] {
					continue
				}
				v := free[key][0]
				free[key] = free[key][1:]
				taken[m.ID] = true
				work.Adoptions = append(work.Adoptions, Adoption{Group: g.Name, Volume: v.VolumeID, Instance: m.ID,
					Device: d.Device, MountPath: d.MountPath})
			}
		}
	}
	keys := make([]string, 0, len(free))
	for k := range free {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range free[k] {
			if r := pg[v.Group].Retention; r > 0 && now.Sub(v.AvailableSince) >= r {
				if err := w.DeleteVolume(ctx, v.VolumeID); err != nil {
					work.Errors = append(work.Errors, err)
					continue
				}
				w.log().Warn("pooled data volume deleted: unused past its group's retention", "group", v.Group, "volume", v.VolumeID,
					"az", v.AZ, "available_since", v.AvailableSince, "retention", r)
				work.Deleted = append(work.Deleted, v.VolumeID)
				continue
			}
			work.Waiting = append(work.Waiting, v)
		}
	}
	return work, nil
}

// needy returns the group's members that lack their data at data device dev (one of ndev),
// oldest first: running and InService, driven by no replacement or adoption, assigned fewer
// volumes than the group has data devices, and with nothing at dev or only a volume there that
// the agent reports blank and that was not assigned to it (Adopt checks the whole proof). A
// member holding its data at its other devices may still lack it at dev (a replacement of an
// instance that held only some of them).
func needy(g *inventory.Group, dev string, ndev int, busy map[string]bool) []inventory.Instance {
	var out []inventory.Instance
	for _, m := range g.Members {
		if m.State != "running" || m.LifecycleState != "InService" || busy[m.ID] || m.Tags[groupconfig.StatePhase] != "" {
			continue
		}
		if r := m.Tags[groupconfig.StateReplaces]; r != "" && busy[r] {
			continue
		}
		if len(groupconfig.SplitStateList(m.Tags[groupconfig.StateVolume])) >= ndev {
			continue // every device's volume is assigned (some may still be on their way)
		}
		if v, ok := m.VolumeAt(dev); ok && (!BlankReported(m.Tags[groupconfig.StateBlankVolume], v.ID) ||
			groupconfig.StateListHas(m.Tags[groupconfig.StateVolume], v.ID)) {
			continue
		}
		out = append(out, m)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LaunchTime.Before(out[j].LaunchTime) })
	return out
}
