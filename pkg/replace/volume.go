package replace

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
)

func (w *Workflow) describeVolume(ctx context.Context, id string) (ec2types.Volume, error) {
	var out *ec2.DescribeVolumesOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		out, err = w.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
		return err
	})
	if err != nil {
		return ec2types.Volume{}, fmt.Errorf("describing volume %s: %w", id, err)
	}
	if len(out.Volumes) == 0 {
		return ec2types.Volume{}, &awsapi.NotFoundError{Kind: "volume", Name: id}
	}
	return out.Volumes[0], nil
}

// dataVolume finds the data volume of the instance being replaced at dev: attached at dev, or,
// once the instance has let go of it, by the journal tags on the volume (moving from the
// instance, at that device). nil when there is none.
func (w *Workflow) dataVolume(ctx context.Context, oldID string, old ec2types.Instance, dev string) (*ec2types.Volume, error) {
	for _, bd := range old.BlockDeviceMappings {
		if bd.Ebs != nil && groupconfig.SameDevice(aws.ToString(bd.DeviceName), dev) {
			v, err := w.describeVolume(ctx, aws.ToString(bd.Ebs.VolumeId))
			if err != nil {
				return nil, err
			}
			return &v, nil
		}
	}
	var out *ec2.DescribeVolumesOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		out, err = w.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
			{Name: aws.String("tag:" + groupconfig.StateMovingFrom), Values: []string{oldID}}}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("looking for the data volume of %s at %s: %w", oldID, dev, err)
	}
	for i := range out.Volumes {
		if groupconfig.SameDevice(stateTags(out.Volumes[i].Tags)[groupconfig.StateDevice], dev) {
			return &out.Volumes[i], nil
		}
	}
	return nil, nil
}

// keepVolume makes sure the volume at dev survives the instance's termination.
func (w *Workflow) keepVolume(ctx context.Context, id, dev string) error {
	return w.keepVolumes(ctx, id, []DataVolume{{Device: dev}})
}

// keepVolumes makes sure the volumes at the devices of vols survive the instance's termination:
// one describe, and one ModifyInstanceAttribute per device that still has DeleteOnTermination on.
func (w *Workflow) keepVolumes(ctx context.Context, id string, vols []DataVolume) error {
	inst, err := w.describeInstance(ctx, id)
	if err != nil {
		return err
	}
	for _, bd := range inst.BlockDeviceMappings {
		if bd.Ebs == nil || !aws.ToBool(bd.Ebs.DeleteOnTermination) {
			continue
		}
		if !slices.ContainsFunc(vols, func(v DataVolume) bool { return groupconfig.SameDevice(aws.ToString(bd.DeviceName), v.Device) }) {
			continue
		}
		if err := w.setDeleteOnTermination(ctx, id, aws.ToString(bd.DeviceName), false); err != nil {
			return err
		}
	}
	return nil
}

func (w *Workflow) setDeleteOnTermination(ctx context.Context, id, dev string, del bool) error {
	err := w.call(ctx, func(ctx context.Context) error {
		_, err := w.EC2.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{
			InstanceId: aws.String(id),
			BlockDeviceMappings: []ec2types.InstanceBlockDeviceMappingSpecification{{
				DeviceName: aws.String(dev), Ebs: &ec2types.EbsInstanceBlockDeviceSpecification{DeleteOnTermination: aws.Bool(del)}}},
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("setting DeleteOnTermination=%v for %s on %s: %w", del, dev, id, err)
	}
	return nil
}

// EnsureKeepVolumes turns DeleteOnTermination off for the data volumes of every member of a group
// that keeps them, at each of its data devices, including members launched before the group was
// tagged: a data volume that would be deleted with its spot instance is the worst failure spotmax
// can have. It returns the instances it changed. g must have been listed with its members.
func (w *Workflow) EnsureKeepVolumes(ctx context.Context, g *inventory.Group) ([]string, error) {
	devs := g.Config.DataDevices()
	if len(devs) == 0 {
		return nil, nil
	}
	var changed []string
	byDevice := map[string][]string{} // device → volumes to mark, in one call per device
	for _, m := range g.Members {
		touched := false
		for _, d := range devs {
			v, ok := m.VolumeAt(d.Device)
			if !ok || !v.DeleteOnTermination {
				continue
			}
			if err := w.setDeleteOnTermination(ctx, m.ID, v.Device, false); err != nil {
				return changed, err
			}
			touched = true
			byDevice[d.Device] = append(byDevice[d.Device], v.ID)
		}
		if touched {
			changed = append(changed, m.ID)
		}
	}
	for _, d := range devs {
		volumes := byDevice[d.Device]
		if len(volumes) == 0 {
			continue
		}
		// Mark them as the group's data volumes of that device (its pool: pool.go), in one call:
		// a data volume that ends up attached to nothing is then found and re-homed at its device.
		err := w.tagResources(ctx, volumes, map[string]string{groupconfig.TagGroup: g.Name, groupconfig.StateDevice: d.Device})
		if err != nil {
			return changed, fmt.Errorf("tagging %d data volume(s) of group %s at %s: %w", len(volumes), g.Name, d.Device, err)
		}
	}
	return changed, nil
}

func volumeAttachment(v ec2types.Volume) *ec2types.VolumeAttachment {
	for i := range v.Attachments {
		return &v.Attachments[i]
	}
	return nil
}

// volumeReleased reports whether the old instance has let go of every data volume already: the
// agent reported a clean unmount of each, or it is no longer attached to it.
func (r *run) volumeReleased(ctx context.Context) (bool, error) {
	var old *ec2types.Instance
	for _, dv := range r.plan.Volumes {
		v, err := r.w.describeVolume(ctx, dv.ID)
		if err != nil {
			return false, err
		}
		att := volumeAttachment(v)
		if att == nil || aws.ToString(att.InstanceId) != r.req.InstanceID {
			continue
		}
		if old == nil {
			inst, err := r.w.describeInstance(ctx, r.req.InstanceID)
			if err != nil {
				return false, err
			}
			old = &inst
		}
		if !groupconfig.StateListHas(stateTags(old.Tags)[groupconfig.StateVolumeReleased], dv.ID) {
			return false, nil
		}
	}
	return true, nil
}

// interruptionGrace is how long after its deadline an interrupted instance may still run before
// spotmax terminates it to free the data volume.
const interruptionGrace = 30 * time.Second

// moveVolume moves every data volume of the old instance to the replacement, one after the
// other: it waits until the old instance releases the volume cleanly, detaches it, attaches it to
// the replacement at its own device; once all are there it records them on the replacement for
// the agent (StateVolume, StateMountPath: one entry each, in one call). A replacement waits for
// a release only where an agent announced itself running (AgentRunning); otherwise it terminates
// the detached old instance at once, and its shutdown frees every volume. Each step is
// idempotent: a resume after a crash between two volumes finds the first attached to the
// replacement and goes on with the next.
func (r *run) moveVolume(ctx context.Context) error {
	if len(r.plan.Volumes) == 0 {
		return nil
	}
	w := r.w
	to := w.timeouts()
	now := w.clock().Now()
	releaseBy := now.Add(to.Release)
	if !r.req.Deadline.IsZero() {
		// An interrupted instance whose agent runs is given until its deadline to release the
		// volumes (EC2 stops it then). If it still runs a little after that (a warning AWS did
		// not carry out), it is terminated below: a detached instance never holds the group's
		// data past its deadline. Without an agent it is terminated at once (below).
		releaseBy = r.req.Deadline.Add(min(to.Release, interruptionGrace))
	}
	terminatedOld := false
	// assigned are the volumes the replacement receives: the plan's, or, for a replacement in
	// another AZ, their verified copies (crossaz.go), each recorded for the agent as it lands.
	assigned := slices.Clone(r.plan.Volumes)
	for i, dv := range r.plan.Volumes {
		if err := r.releaseFromOld(ctx, dv.ID, releaseBy, &terminatedOld); err != nil {
			return fmt.Errorf("releasing data volume %s: %w", dv.ID, err)
		}
		copied, err := r.moveAcrossAZ(ctx, dv, assigned[:i])
		if err != nil {
			return err
		}
		if copied != "" {
			assigned[i].ID = copied
			continue
		}
		if err := w.attachVolume(ctx, dv.ID, r.newID, dv.Device); err != nil {
			return err
		}
		r.progress(StepMoveVolume, dv.ID+" attached to "+r.newID+" at "+dv.Device, false, nil)
	}
	if err := w.fresh(ctx, r.newID, func(ctx context.Context) error { return w.keepVolumes(ctx, r.newID, assigned) }); err != nil {
		return err
	}
	tags := assignmentTags(assigned)
	if err := w.fresh(ctx, r.newID, func(ctx context.Context) error { return w.tagInstance(ctx, r.newID, tags) }); err != nil {
		return fmt.Errorf("recording volumes %s on %s: %w", tags[groupconfig.StateVolume], r.newID, err)
	}
	return nil
}

// assignmentTags are the tags that assign data volumes to an instance for its agent: their ids
// and, when every one has a mount path, the mount paths in the same order (otherwise the agent
// falls back to its own setting or the group's propagated tag).
func assignmentTags(vols []DataVolume) map[string]string {
	var ids, paths []string
	for _, v := range vols {
		ids = append(ids, v.ID)
		paths = append(paths, v.MountPath)
	}
	tags := map[string]string{groupconfig.StateVolume: groupconfig.JoinStateList(ids)}
	if !slices.Contains(paths, "") {
		tags[groupconfig.StateMountPath] = groupconfig.JoinStateList(paths)
	}
	return tags
}

// releaseFromOld waits until the old instance lets go of vol and detaches it: released by the
// agent (its StateVolumeReleased names vol) or the instance stopped, then a clean detach; the
// instance terminated past releaseBy (or at once without an agent), which frees every volume;
// a forced detach only when asked (--force-detach). terminatedOld is shared by the volumes of
// one move, so the old instance is terminated once.
func (r *run) releaseFromOld(ctx context.Context, vol string, releaseBy time.Time, terminatedOld *bool) error {
	w := r.w
	limit := max(releaseBy.Sub(w.clock().Now()), 0) + w.timeouts().Volume
	forced := false
	return w.poll(ctx, "volume "+vol+" to be released by "+r.req.InstanceID, limit, func(ctx context.Context) (bool, error) {
		v, err := w.describeVolume(ctx, vol)
		if err != nil {
			return false, err
		}
		att := volumeAttachment(v)
		if att == nil {
			return v.State == ec2types.VolumeStateAvailable, nil
		}
		holder := aws.ToString(att.InstanceId)
		switch {
		case holder == r.newID:
			return true, nil
		case holder != r.req.InstanceID:
			return false, fmt.Errorf("volume %s is attached to %s, which is neither %s nor its replacement %s: not touching it",
				vol, holder, r.req.InstanceID, r.newID)
		case att.State == ec2types.VolumeAttachmentStateDetaching:
			return false, nil
		}
		old, err := w.describeInstance(ctx, r.req.InstanceID)
		if err != nil && !awsapi.IsNotFound(err) {
			return false, err
		}
		released := groupconfig.StateListHas(stateTags(old.Tags)[groupconfig.StateVolumeReleased], vol)
		switch st := stateName(old); {
		case st == "stopped" || released:
			return false, w.detachVolume(ctx, vol, r.req.InstanceID, false)
		case st == "shutting-down" || st == "terminated":
			return false, nil // termination frees it
		}
		// Without an agent nothing would report a release: the detached instance is terminated
		// at once, an interrupted one too (it is out of the group and its load balancers, drained
		// and deregistered: waiting for EC2 to stop it at its deadline would only keep the
		// replacement without its data that much longer).
		agent := AgentRunning(old.Tags)
		if agent && w.clock().Now().Before(releaseBy) {
			return false, nil
		}
		switch {
		case r.req.ForceDetach && !forced:
			forced = true
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("volume %s force-detached from %s, as asked (--force-detach)", vol, r.req.InstanceID))
			return false, w.detachVolume(ctx, vol, r.req.InstanceID, true)
		case !*terminatedOld:
			// The old instance is out of the group and drained; terminating it shuts it down
			// cleanly, which unmounts its volumes, and they survive (DeleteOnTermination off).
			*terminatedOld = true
			why := "no release from the agent in time"
			switch {
			case !agent:
				// No agent to wait for: nothing on the instance would report a release. It is
				// out of the group and drained; its shutdown unmounts the volumes.
				why = "no agent runs on it (" + groupconfig.StateAgent + ")"
			case !r.req.Reason.Proactive():
				why = "still running past its interruption deadline"
			}
			r.progress(StepMoveVolume, why+": terminating "+r.req.InstanceID+" to free "+vol, false, nil)
			return false, w.terminate(ctx, r.req.InstanceID)
		}
		return false, nil
	})
}

func (w *Workflow) detachVolume(ctx context.Context, vol, from string, force bool) error {
	err := w.call(ctx, func(ctx context.Context) error {
		_, err := w.EC2.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(from), Force: aws.Bool(force)})
		return err
	})
	if err != nil && !awsapi.IsIncorrectState(err) {
		return fmt.Errorf("detaching volume %s from %s: %w", vol, from, err)
	}
	return nil
}

// attachVolume attaches an available volume to an instance and waits until it is attached.
func (w *Workflow) attachVolume(ctx context.Context, vol, to, dev string) error {
	return w.poll(ctx, "volume "+vol+" attached to "+to, w.timeouts().Volume, func(ctx context.Context) (bool, error) {
		v, err := w.describeVolume(ctx, vol)
		if err != nil {
			return false, err
		}
		if att := volumeAttachment(v); att != nil {
			if aws.ToString(att.InstanceId) != to {
				return false, fmt.Errorf("volume %s is attached to %s, not %s", vol, aws.ToString(att.InstanceId), to)
			}
			return att.State == ec2types.VolumeAttachmentStateAttached, nil
		}
		if v.State != ec2types.VolumeStateAvailable {
			return false, nil
		}
		err = w.fresh(ctx, to, func(ctx context.Context) error {
			_, err := w.EC2.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(to), Device: aws.String(dev)})
			return err
		})
		if err != nil && !awsapi.IsIncorrectState(err) {
			return false, fmt.Errorf("attaching volume %s to %s at %s: %w", vol, to, dev, err)
		}
		return false, nil
	})
}

// AgentRunning reports whether an instance's tags carry the agent's announcement that it runs
// there (groupconfig.StateAgent: "running <version> <RFC 3339 time>"). Anything else — no tag, a
// "stopped" announcement, a malformed value — means no agent to wait for. The value is not
// trusted for more: a forged "running" makes a replacement wait for the release timeout (as before
// agents announced themselves); a forged absence makes it terminate the detached instance at once,
// whose OS shutdown still unmounts the volume.
func AgentRunning(tags []ec2types.Tag) bool {
	f := strings.Fields(instanceTag(tags, groupconfig.StateAgent))
	if len(f) != 3 || f[0] != "running" {
		return false
	}
	_, err := time.Parse(time.RFC3339, f[2])
	return err == nil
}
