package replace

import (
	"context"
	"fmt"
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

// dataVolume finds the data volume of the instance being replaced: attached at dev, or, once the
// instance has let go of it, by the journal tag on the volume. nil when there is none.
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
		return nil, fmt.Errorf("looking for the data volume of %s: %w", oldID, err)
	}
	if len(out.Volumes) == 0 {
		return nil, nil
	}
	return &out.Volumes[0], nil
}

// keepVolume makes sure the volume at dev survives the instance's termination.
func (w *Workflow) keepVolume(ctx context.Context, id, dev string) error {
	inst, err := w.describeInstance(ctx, id)
	if err != nil {
		return err
	}
	for _, bd := range inst.BlockDeviceMappings {
		if bd.Ebs == nil || !groupconfig.SameDevice(aws.ToString(bd.DeviceName), dev) || !aws.ToBool(bd.Ebs.DeleteOnTermination) {
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

// EnsureKeepVolumes turns DeleteOnTermination off for the data volume of every member of a group
// that keeps one, including members launched before the group was tagged: a data volume that
// would be deleted with its spot instance is the worst failure spotmax can have. It returns the
// instances it changed. g must have been listed with its members.
func (w *Workflow) EnsureKeepVolumes(ctx context.Context, g *inventory.Group) ([]string, error) {
	if g.Config == nil || g.Config.PersistenceDev == "" {
		return nil, nil
	}
	var changed, volumes []string
	for _, m := range g.Members {
		v, ok := m.VolumeAt(g.Config.PersistenceDev)
		if !ok || !v.DeleteOnTermination {
			continue
		}
		if err := w.setDeleteOnTermination(ctx, m.ID, v.Device, false); err != nil {
			return changed, err
		}
		changed = append(changed, m.ID)
		volumes = append(volumes, v.ID)
	}
	if len(volumes) > 0 {
		// Mark them as the group's data volumes (its pool: pool.go), in one call: a data volume
		// that ends up attached to nothing is then found and re-homed.
		err := w.call(ctx, func(ctx context.Context) error {
			_, err := w.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: volumes,
				Tags: []ec2types.Tag{{Key: aws.String(groupconfig.TagGroup), Value: aws.String(g.Name)},
					{Key: aws.String(groupconfig.StateDevice), Value: aws.String(g.Config.PersistenceDev)}}})
			return err
		})
		if err != nil {
			return changed, fmt.Errorf("tagging %d data volume(s) of group %s: %w", len(volumes), g.Name, err)
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

// volumeReleased reports whether the old instance has let go of the data volume already: the
// agent reported a clean unmount, or the volume is no longer attached to it.
func (r *run) volumeReleased(ctx context.Context) (bool, error) {
	v, err := r.w.describeVolume(ctx, r.plan.Volume)
	if err != nil {
		return false, err
	}
	att := volumeAttachment(v)
	if att == nil || aws.ToString(att.InstanceId) != r.req.InstanceID {
		return true, nil
	}
	old, err := r.w.describeInstance(ctx, r.req.InstanceID)
	if err != nil {
		return false, err
	}
	return stateTags(old.Tags)[groupconfig.StateVolumeReleased] == r.plan.Volume, nil
}

// interruptionGrace is how long after its deadline an interrupted instance may still run before
// spotmax terminates it to free the data volume.
const interruptionGrace = 30 * time.Second

// moveVolume waits until the old instance releases the data volume cleanly, detaches it, attaches
// it to the replacement at the same device and records it there for the agent. A replacement
// waits for a release only where an agent announced itself running (AgentRunning);
// otherwise it terminates the detached old instance at once, and its shutdown frees the volume.
func (r *run) moveVolume(ctx context.Context) error {
	if r.plan.Volume == "" {
		return nil
	}
	w := r.w
	vol := r.plan.Volume
	to := w.timeouts()
	now := w.clock().Now()
	releaseBy := now.Add(to.Release)
	if !r.req.Deadline.IsZero() {
		// An interrupted instance whose agent runs is given until its deadline to release the
		// volume (EC2 stops it then). If it still runs a little after that (a warning AWS did
		// not carry out), it is terminated below: a detached instance never holds the group's
		// data past its deadline. Without an agent it is terminated at once (below).
		releaseBy = r.req.Deadline.Add(min(to.Release, interruptionGrace))
	}
	limit := releaseBy.Sub(now) + to.Volume
	terminatedOld, forced := false, false
	err := w.poll(ctx, "volume "+vol+" to be released by "+r.req.InstanceID, limit, func(ctx context.Context) (bool, error) {
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
		released := stateTags(old.Tags)[groupconfig.StateVolumeReleased] == vol
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
		case !terminatedOld:
			// The old instance is out of the group and drained; terminating it shuts it down
			// cleanly, which unmounts the volume, and the volume survives (DeleteOnTermination off).
			terminatedOld = true
			why := "no release from the agent in time"
			switch {
			case !agent:
				// No agent to wait for: nothing on the instance would report a release. It is
				// out of the group and drained; its shutdown unmounts the volume.
				why = "no agent runs on it (" + groupconfig.StateAgent + ")"
			case !r.req.Reason.Proactive():
				why = "still running past its interruption deadline"
			}
			r.progress(StepMoveVolume, why+": terminating "+r.req.InstanceID+" to free "+vol, false, nil)
			return false, w.terminate(ctx, r.req.InstanceID)
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("releasing data volume %s: %w", vol, err)
	}
	if done, err := r.moveAcrossAZ(ctx, vol); done || err != nil {
		return err // a replacement in another AZ gets a verified copy (crossaz.go)
	}
	if err := w.attachVolume(ctx, vol, r.newID, r.plan.Device); err != nil {
		return err
	}
	if err := w.fresh(ctx, r.newID, func(ctx context.Context) error { return w.keepVolume(ctx, r.newID, r.plan.Device) }); err != nil {
		return err
	}
	tags := map[string]string{groupconfig.StateVolume: vol}
	if r.plan.MountPath != "" {
		tags[groupconfig.StateMountPath] = r.plan.MountPath
	}
	if err := w.fresh(ctx, r.newID, func(ctx context.Context) error { return w.tagInstance(ctx, r.newID, tags) }); err != nil {
		return fmt.Errorf("recording volume %s on %s: %w", vol, r.newID, err)
	}
	r.progress("move-volume", vol+" attached to "+r.newID+" at "+r.plan.Device, false, nil)
	return nil
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
