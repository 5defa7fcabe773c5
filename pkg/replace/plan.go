package replace

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
)

// makePlan picks the launch options and finds the data volume.
func (r *run) makePlan(ctx context.Context) (*Plan, error) {
	w := r.w
	p := &Plan{Group: r.g.Name, Old: r.req.InstanceID, Reason: r.req.Reason, Resume: r.journal.Phase}
	if r.g.Template == nil {
		return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: "the group has no launch template (launch configurations are not supported)"}
	}
	vols, volAZ, err := r.planVolumes(ctx)
	if err != nil {
		return nil, err
	}
	p.Volumes = vols
	subnets, err := w.subnets(ctx, r.g.Subnets, r.g.AZs)
	if err != nil {
		return nil, err
	}
	azOrder := r.azOrder(subnets, volAZ)
	if len(azOrder) == 0 {
		if volAZ != "" {
			return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name,
				Why: fmt.Sprintf("its data volume(s) %s are in %s, which no subnet of the group covers", strings.Join(volumeIDs(p.Volumes), ", "), volAZ)}
		}
		return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: "the group has no subnets"}
	}
	data, err := r.launcher.template(ctx)
	if err != nil {
		return nil, err
	}
	if err := inventory.CheckDataDevice(r.g, strings.Join(r.cfg.PersistenceDevs, ","), data); err != nil {
		return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: err.Error(), Err: err}
	}
	ownType := r.ownType(string(data.InstanceType))
	// Instance types are checked against EC2's offerings: a typo in spotmax:altN is a clear
	// error naming the tag, not a launch that fails and rolls back; a type not offered in an AZ
	// is not tried there.
	extra := []string{ownType}
	if r.g.Mixed != nil {
		for _, o := range r.g.Mixed.Overrides {
			extra = append(extra, o.Type)
		}
	}
	offered, err := inventory.CheckTypes(ctx, w.EC2, r.g, nil, extra...)
	if err != nil {
		return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: err.Error(), Err: err}
	}
	p.Options = r.launcher.options(r.markets(ownType), azOrder, subnets, func(t, az string) bool { return slices.Contains(offered[t], az) })
	p.VolumeAZ = volAZ
	p.CrossAZOptions = r.crossAZOptions(ownType, subnets, volAZ, offered)
	if len(p.Options) == 0 && len(p.CrossAZOptions) == 0 {
		return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name,
			Why: fmt.Sprintf("none of its instance types is offered in %s", strings.Join(azOrder, ", "))}
	}
	warmAZ := volAZ
	if warmAZ == "" && r.old.Placement != nil {
		warmAZ = aws.ToString(r.old.Placement.AvailabilityZone)
	}
	if err := r.planWarm(ctx, p, data, warmAZ); err != nil {
		return nil, err
	}
	r.plan = p
	p.Steps = r.planSteps()
	return p, nil
}

// planVolumes finds the data volumes that move, one per data device the old instance holds, and
// their AZ. A journal's volumes are the ones recorded at its start (the instance may have let go
// of them since); otherwise they are read from the instance. A device the old instance holds no
// volume at is skipped: the replacement launches with the template's mapping there and the pool
// fills it. All of an instance's volumes are in its AZ (EC2 attaches only there); volumes in two
// AZs are refused.
func (r *run) planVolumes(ctx context.Context) ([]DataVolume, string, error) {
	w := r.w
	devs := r.cfg.DataDevices()
	if len(devs) == 0 && len(r.journal.Volumes) == 0 {
		return nil, "", nil
	}
	var out []DataVolume
	volAZ := ""
	add := func(v ec2types.Volume, dev string) error {
		dv := DataVolume{ID: aws.ToString(v.VolumeId), Device: dev}
		if d, ok := r.cfg.DataDevice(dev); ok {
			dv.MountPath = d.MountPath
		}
		az := aws.ToString(v.AvailabilityZone)
		if volAZ != "" && az != volAZ {
			return &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name,
				Why: fmt.Sprintf("its data volumes are in two AZs (%s in %s, %s in %s)", out[0].ID, volAZ, dv.ID, az)}
		}
		volAZ = az
		out = append(out, dv)
		return nil
	}
	if len(r.journal.Volumes) > 0 {
		for _, jv := range r.journal.Volumes {
			// Recorded when the journal was written: the instance may be gone since.
			v, err := w.describeVolume(ctx, jv.ID)
			if err != nil {
				return nil, "", fmt.Errorf("the journaled data volume %s of %s: %w", jv.ID, r.req.InstanceID, err)
			}
			dev := jv.Device
			if dev == "" {
				// A journal written before groups had several data volumes: its one volume.
				dev = stateTags(v.Tags)[groupconfig.StateDevice]
				if dev == "" && len(devs) > 0 {
					dev = devs[0].Device
				}
			}
			if dev == "" {
				return nil, "", fmt.Errorf("the journaled data volume %s of %s names no device, and group %s has no %s",
					jv.ID, r.req.InstanceID, r.g.Name, groupconfig.TagPersistenceDev)
			}
			if err := add(v, dev); err != nil {
				return nil, "", err
			}
		}
		return out, volAZ, nil
	}
	for _, d := range devs {
		v, err := w.dataVolume(ctx, r.req.InstanceID, r.old, d.Device)
		if err != nil {
			return nil, "", err
		}
		if v == nil {
			continue
		}
		if err := add(*v, d.Device); err != nil {
			return nil, "", err
		}
	}
	return out, volAZ, nil
}

// markets lists (instance type, market) in the order to try (launcher.markets): a revert tries
// spot on the group's own type only.
func (r *run) markets(ownType string) []typeMarket {
	return r.launcher.markets(ownType, r.req.Reason == ReasonRevert, r.launcher.needsOnDemand(r.req.InstanceID))
}

// ownType is the type the replacement launches first: the launch template's, or in a mixed
// instances group the old instance's when it is one of the overrides, else the first override.
func (r *run) ownType(templateType string) string {
	old := string(r.old.InstanceType)
	if m := r.g.Mixed; m != nil && len(m.Overrides) > 0 {
		if _, ok := m.Override(old); ok {
			return old
		}
		return m.Overrides[0].Type
	}
	if templateType != "" {
		return templateType
	}
	return old
}

// azOrder returns the AZs to launch in: only the data volume's AZ when a volume moves, else every
// AZ of the group's subnets. With az_rebalance=optimize the AZ with the fewest members goes
// first; without it the old instance's AZ goes first (the group keeps its shape, and Auto
// Scaling's own AZRebalance has nothing to undo), then the others, fewest first.
func (r *run) azOrder(subnets map[string]string, volAZ string) []string {
	oldAZ := ""
	if r.cfg.AZRebalance != groupconfig.AZRebalanceOptimize && r.old.Placement != nil {
		oldAZ = aws.ToString(r.old.Placement.AvailabilityZone)
	}
	return azOrder(r.g.Members, subnets, volAZ, r.req.InstanceID, oldAZ)
}

// subnets maps each AZ to one of the group's subnets in it (the first by id). A group defined by
// availability zones alone launches into their default subnets.
func (w *Workflow) subnets(ctx context.Context, ids, azs []string) (map[string]string, error) {
	out := map[string]string{}
	in := &ec2.DescribeSubnetsInput{SubnetIds: ids}
	switch {
	case len(ids) > 0:
	case len(azs) > 0:
		in.Filters = []ec2types.Filter{
			{Name: aws.String("availability-zone"), Values: azs},
			{Name: aws.String("default-for-az"), Values: []string{"true"}},
		}
	default:
		return out, nil
	}
	var res *ec2.DescribeSubnetsOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		res, err = w.EC2.DescribeSubnets(ctx, in)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describing the group's subnets: %w", err)
	}
	sort.Slice(res.Subnets, func(i, j int) bool {
		return aws.ToString(res.Subnets[i].SubnetId) < aws.ToString(res.Subnets[j].SubnetId)
	})
	for _, s := range res.Subnets {
		az := aws.ToString(s.AvailabilityZone)
		if _, ok := out[az]; !ok {
			out[az] = aws.ToString(s.SubnetId)
		}
	}
	return out, nil
}
