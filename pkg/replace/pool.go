package replace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// The volume pool: every data volume of a spotmax group is the group's, not an instance's. It
// carries spotmax:group and spotmax:state:device (EnsureKeepVolumes writes them on members'
// volumes, with DeleteOnTermination off), so it survives scale-in, Auto Scaling's own
// replacements and interruptions spotmax never heard of. A volume attached to nothing waits in
// the pool until a member of its group in its AZ lacks its data; Adopt then attaches it there
// and the agent mounts it.
//
// An adoption is claimed on the volume like a journal (StateAdoptedBy, StateOwner,
// StateLeaseUntil; lease.go's rules): written, settled, read back; a rival's live claim is a
// BusyError. The target instance is named in its own StateVolume list before anything is
// attached, and read back too, and no other assigned volume may be for the same device, so two
// volumes are never adopted into one instance's device; the device name, which EC2 lets only one
// attachment hold, closes the remaining window. A group with several data devices is adopted
// into device by device, each adoption adding its volume to the list. Every step is
// idempotent: an adoption interrupted anywhere is finished by the next actor once the lease has
// run out (ResumeAdoptions), or given up, which leaves the volume in the pool.

// PoolStatus is where a pooled data volume is.
type PoolStatus string

// Pool statuses.
const (
	// PoolAttached: attached to an instance.
	PoolAttached PoolStatus = "attached"
	// PoolAvailable: attached to nothing, waiting for a member of its group in its AZ.
	PoolAvailable PoolStatus = "available"
	// PoolMoving: part of a replacement or an adoption in progress, or attaching/detaching.
	PoolMoving PoolStatus = "moving"
	// PoolOrphaned: attached to nothing and its group is no longer a spotmax group with a data
	// device, or its device is no longer one of the group's data devices: nothing will re-home it
	// until an operator adopts, releases or deletes it.
	PoolOrphaned PoolStatus = "orphaned"
	// PoolDiscarding: a launch's fresh, provably empty volume being deleted after a pooled
	// volume took its place.
	PoolDiscarding PoolStatus = "discarding"
	// PoolSuperseded: attached to nothing, replaced by its verified copy in another AZ
	// (spotmax:cross_az_move); kept, never offered to a member, deleted only by an operator.
	PoolSuperseded PoolStatus = "superseded"
)

// PoolVolume is one data volume of the pool.
type PoolVolume struct {
	VolumeID string     `json:"volume"`
	Group    string     `json:"group"`
	AZ       string     `json:"az"`
	Device   string     `json:"device,omitempty"`
	Status   PoolStatus `json:"status"`
	// Instance is the instance it is attached to.
	Instance string `json:"instance,omitempty"`
	// State is EC2's volume state (in-use, available, ...).
	State string `json:"state"`
	Size  int32  `json:"size_gib"`
	// AvailableSince is when spotmax first saw it attached to nothing.
	AvailableSince time.Time `json:"available_since,omitzero"`
	// AdoptedBy, Owner and LeaseUntil are an adoption's claim.
	AdoptedBy  string    `json:"adopted_by,omitempty"`
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// MovingFrom names the old instance of a replacement that moves it.
	MovingFrom string `json:"moving_from,omitempty"`
	// Discard names the instance whose launch created it, when it is being discarded.
	Discard string `json:"discard,omitempty"`
}

// PoolGroup is what the pool needs to know of a group: its data devices (with their mount
// paths), whether spotmax manages it, and how long an unused volume is kept (0: forever).
type PoolGroup struct {
	Devices   []groupconfig.DataDevice
	Managed   bool
	Retention time.Duration
}

// device returns the group's data device that a pooled volume tagged with device dev belongs to.
// A volume without a device tag belongs to the group's only data device, if it has one.
func (g PoolGroup) device(dev string) (groupconfig.DataDevice, bool) {
	if dev == "" {
		if len(g.Devices) == 1 {
			return g.Devices[0], true
		}
		return groupconfig.DataDevice{}, false
	}
	for _, d := range g.Devices {
		if groupconfig.SameDevice(d.Device, dev) {
			return d, true
		}
	}
	return groupconfig.DataDevice{}, false
}

// Pool lists every data volume in the region (the spotmax:group tag), in paged DescribeVolumes
// calls, and says where each one is. journals are the replacements in flight (InFlight);
// groups maps group names to what the pool needs of them.
func (w *Workflow) Pool(ctx context.Context, journals []Journal, groups map[string]PoolGroup) ([]PoolVolume, error) {
	return w.listPool(ctx, journals, groups, []ec2types.Filter{
		{Name: aws.String("tag-key"), Values: []string{groupconfig.TagGroup}},
	})
}

// tendable lists what a pass over the pool acts on, and nothing else: the data volumes attached
// to nothing, and those an adoption claims or a discard marks (attached or not). The volumes
// attached to their members — nearly all of a steady fleet's — are left out, so a reconcile
// reads a page or two instead of one per 500 instances.
func (w *Workflow) tendable(ctx context.Context, journals []Journal, groups map[string]PoolGroup) ([]PoolVolume, error) {
	return w.listPool(ctx, journals, groups,
		[]ec2types.Filter{
			{Name: aws.String("tag-key"), Values: []string{groupconfig.TagGroup}},
			{Name: aws.String("status"), Values: []string{string(ec2types.VolumeStateAvailable)}},
		},
		[]ec2types.Filter{
			{Name: aws.String("tag-key"), Values: []string{groupconfig.StateAdoptedBy, groupconfig.StateDiscard}},
		})
}

// listPool runs one paged DescribeVolumes per filter set and returns the union, sorted by group,
// AZ and volume.
func (w *Workflow) listPool(ctx context.Context, journals []Journal, groups map[string]PoolGroup, filterSets ...[]ec2types.Filter) ([]PoolVolume, error) {
	moving := map[string]bool{}
	for _, j := range journals {
		moving[j.Old] = true
		for _, v := range j.Volumes {
			moving["vol:"+v.ID] = true
		}
	}
	now := w.clock().Now()
	var out []PoolVolume
	seen := map[string]bool{}
	for _, filters := range filterSets {
		p := ec2.NewDescribeVolumesPaginator(w.EC2, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(500), Filters: filters})
		for p.HasMorePages() {
			var page *ec2.DescribeVolumesOutput
			err := w.call(ctx, func(ctx context.Context) (err error) {
				page, err = p.NextPage(ctx)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("listing the data volume pool: %w", err)
			}
			for _, v := range page.Volumes {
				if id := aws.ToString(v.VolumeId); !seen[id] && tagValue(v.Tags, groupconfig.TagGroup) != "" {
					seen[id] = true
					out = append(out, poolVolume(v, groups, moving, now))
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.AZ != b.AZ {
			return a.AZ < b.AZ
		}
		return a.VolumeID < b.VolumeID
	})
	return out, nil
}

func poolVolume(v ec2types.Volume, groups map[string]PoolGroup, moving map[string]bool, now time.Time) PoolVolume {
	t := stateTags(v.Tags)
	pv := PoolVolume{VolumeID: aws.ToString(v.VolumeId), Group: tagValue(v.Tags, groupconfig.TagGroup), AZ: aws.ToString(v.AvailabilityZone),
		Device: t[groupconfig.StateDevice], State: string(v.State), Size: aws.ToInt32(v.Size),
		AdoptedBy: t[groupconfig.StateAdoptedBy], Owner: t[groupconfig.StateOwner], MovingFrom: t[groupconfig.StateMovingFrom],
		Discard: t[groupconfig.StateDiscard]}
	pv.AvailableSince, _ = time.Parse(time.RFC3339, t[groupconfig.StateAvailableSince])
	pv.LeaseUntil, _ = time.Parse(time.RFC3339Nano, t[groupconfig.StateLeaseUntil])
	att := volumeAttachment(v)
	if att != nil {
		pv.Instance = aws.ToString(att.InstanceId)
	}
	switch {
	case pv.Discard != "":
		pv.Status = PoolDiscarding
	case moving["vol:"+pv.VolumeID] || (pv.MovingFrom != "" && moving[pv.MovingFrom]):
		pv.Status = PoolMoving
	case pv.AdoptedBy != "" && now.Before(pv.LeaseUntil):
		pv.Status = PoolMoving
	case att != nil && att.State == ec2types.VolumeAttachmentStateAttached:
		pv.Status = PoolAttached
	case att != nil || v.State != ec2types.VolumeStateAvailable:
		pv.Status = PoolMoving
	case t[groupconfig.StateSupersededBy] != "":
		pv.Status = PoolSuperseded
	case !groups[pv.Group].Managed:
		pv.Status = PoolOrphaned
	default:
		if _, ok := groups[pv.Group].device(pv.Device); !ok {
			pv.Status = PoolOrphaned // its device is no longer one of its group's data devices
			break
		}
		pv.Status = PoolAvailable
	}
	return pv
}

func tagValue(tags []ec2types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// Adoption is a pooled volume to attach to a member of its group.
type Adoption struct {
	Group, Volume, Instance string
	// Device is the group's data device; MountPath where the agent mounts it ("" = the group's
	// propagated tag decides).
	Device, MountPath string
}

// AdoptResult says what an adoption did.
type AdoptResult struct {
	// Discarded is the launch's fresh volume that was detached and deleted, if any.
	Discarded string
	// Took is how long the adoption took on the workflow's clock.
	Took time.Duration
}

// ErrNotAdoptable says that a volume or an instance is not fit for an adoption now; nothing was
// changed (or what was claimed was given back).
var ErrNotAdoptable = errors.New("not adoptable")

func notAdoptable(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrNotAdoptable, fmt.Sprintf(format, a...))
}

// Adopt attaches a pooled volume to a member of its group that lacks its data: the member has
// nothing at the group's data device, or only the fresh volume its launch created, proven empty
// and unused (FreshVolumeProof), which is detached and deleted. The volume is then recorded on
// the member (StateVolume, StateMountPath) for the agent to mount. Adopt is idempotent: run again
// on a claim this workflow owns, or one whose lease has run out, it finishes what was started.
func (w *Workflow) Adopt(ctx context.Context, a Adoption) (*AdoptResult, error) {
	start := w.clock().Now()
	if a.Device == "" {
		return nil, notAdoptable("group %s has no data device (%s)", a.Group, groupconfig.TagPersistenceDev)
	}
	v, err := w.describeVolume(ctx, a.Volume)
	if err != nil {
		return nil, err
	}
	vt := stateTags(v.Tags)
	if g := tagValue(v.Tags, groupconfig.TagGroup); g != a.Group {
		return nil, notAdoptable("volume %s belongs to group %q, not %s", a.Volume, g, a.Group)
	}
	if vt[groupconfig.StateDiscard] != "" {
		return nil, notAdoptable("volume %s is a fresh volume being discarded", a.Volume)
	}
	lease, _ := time.Parse(time.RFC3339Nano, vt[groupconfig.StateLeaseUntil])
	if owner := vt[groupconfig.StateOwner]; owner != "" && owner != w.owner() && w.clock().Now().Before(lease) {
		return nil, &BusyError{Instance: a.Volume, Group: a.Group, Owner: owner + " (adopting it into " + vt[groupconfig.StateAdoptedBy] + ")", Until: lease}
	}
	if by := vt[groupconfig.StateAdoptedBy]; by != "" && by != a.Instance {
		// An unfinished adoption into another instance: finish or undo that one first.
		return nil, notAdoptable("volume %s is claimed for %s; resume that adoption first", a.Volume, by)
	}
	att := volumeAttachment(v)
	already := att != nil && aws.ToString(att.InstanceId) == a.Instance
	if att != nil && !already {
		return nil, notAdoptable("volume %s is attached to %s", a.Volume, aws.ToString(att.InstanceId))
	}
	inst, err := w.describeInstance(ctx, a.Instance)
	if err != nil {
		if awsapi.IsNotFound(err) && !already {
			if vt[groupconfig.StateAdoptedBy] == a.Instance {
				w.dropClaim(ctx, a.Volume) // the target is long gone: the volume goes back to the pool
			}
			return nil, notAdoptable("instance %s does not exist", a.Instance)
		}
		return nil, err
	}
	if err := w.checkAdoptionTarget(ctx, a, inst, v); err != nil {
		if vt[groupconfig.StateAdoptedBy] == a.Instance && !already {
			w.dropClaim(ctx, a.Volume)
		}
		return nil, err
	}
	fresh, err := w.dataDeviceOccupant(ctx, a, inst)
	if err != nil {
		if vt[groupconfig.StateAdoptedBy] == a.Instance && !already {
			w.dropClaim(ctx, a.Volume)
		}
		return nil, err
	}
	// The claim: on the volume, then the assignment on the instance; both read back after the
	// settle. A rival that wrote after us wins and we back off before touching anything.
	until := w.clock().Now().Add(w.lease())
	claim := map[string]string{groupconfig.StateAdoptedBy: a.Instance, groupconfig.StateOwner: w.owner(),
		groupconfig.StateLeaseUntil: until.UTC().Format(time.RFC3339Nano)}
	if err := w.tagResource(ctx, a.Volume, claim); err != nil {
		return nil, fmt.Errorf("claiming volume %s for %s: %w", a.Volume, a.Instance, err)
	}
	assign := withAssignment(inst.Tags, a.Volume, a.MountPath)
	if err := w.tagResource(ctx, a.Instance, assign); err != nil {
		return nil, fmt.Errorf("assigning volume %s to %s: %w", a.Volume, a.Instance, err)
	}
	if err := w.clock().Sleep(ctx, w.leaseSettle()); err != nil {
		return nil, err
	}
	if err := w.confirmAdoption(ctx, a); err != nil {
		return nil, err
	}
	res := &AdoptResult{}
	if fresh != "" {
		// The proof again, now that the claim holds: the agent may have let go of the fresh
		// volume since it was checked (its hold ended), and then something may have used it.
		if err := w.reproveFresh(ctx, a, fresh); err != nil {
			return nil, err
		}
		// Marked first, so that an adoption interrupted after the detach still deletes it (and
		// the pool never offers it): the proof was checked above.
		mark := map[string]string{groupconfig.StateDiscard: a.Instance, groupconfig.TagGroup: a.Group}
		if err := w.tagResource(ctx, fresh, mark); err != nil {
			return nil, fmt.Errorf("marking fresh volume %s of %s for deletion: %w", fresh, a.Instance, err)
		}
		if err := w.freeDevice(ctx, fresh, a.Instance); err != nil {
			return nil, err
		}
		res.Discarded = fresh
	}
	if err := w.attachVolume(ctx, a.Volume, a.Instance, a.Device); err != nil {
		return nil, fmt.Errorf("adopting volume %s into %s: %w", a.Volume, a.Instance, err)
	}
	if err := w.keepVolume(ctx, a.Instance, a.Device); err != nil {
		return nil, err
	}
	if err := w.tagResource(ctx, a.Volume, map[string]string{groupconfig.StateDevice: a.Device}); err != nil {
		return nil, fmt.Errorf("recording the device of volume %s: %w", a.Volume, err)
	}
	if err := w.untagResource(ctx, a.Volume, groupconfig.StateAdoptedBy, groupconfig.StateOwner, groupconfig.StateLeaseUntil,
		groupconfig.StateAvailableSince, groupconfig.StateMovingFrom, groupconfig.StateMovingTo); err != nil {
		return nil, err
	}
	if fresh != "" {
		if err := w.deleteDiscarded(ctx, fresh); err != nil {
			return nil, err
		}
	}
	res.Took = w.clock().Now().Sub(start)
	w.log().Info("pooled data volume adopted", "group", a.Group, "volume", a.Volume, "instance", a.Instance,
		"device", a.Device, "discarded", res.Discarded, "took", res.Took)
	return res, nil
}

// checkAdoptionTarget refuses an instance that is not a running member of the group in the
// volume's AZ, or one a replacement drives (its journal, or a replacement receiving a volume).
func (w *Workflow) checkAdoptionTarget(ctx context.Context, a Adoption, inst ec2types.Instance, v ec2types.Volume) error {
	if st := stateName(inst); st != "running" {
		return notAdoptable("instance %s is %s", a.Instance, st)
	}
	if g := instanceTag(inst.Tags, groupconfig.TagGroup); g != a.Group {
		return notAdoptable("instance %s is not a member of group %s (its %s is %q)", a.Instance, a.Group, groupconfig.TagGroup, g)
	}
	if az := aws.ToString(inst.Placement.AvailabilityZone); az != aws.ToString(v.AvailabilityZone) {
		return notAdoptable("instance %s is in %s, volume %s in %s", a.Instance, az, a.Volume, aws.ToString(v.AvailabilityZone))
	}
	if instanceTag(inst.Tags, groupconfig.StatePhase) != "" {
		return notAdoptable("instance %s is being replaced", a.Instance)
	}
	if err := w.checkNotReceiving(ctx, a.Group, inst); err != nil {
		return notAdoptable("instance %s: %v", a.Instance, err)
	}
	return w.checkNoOtherAssignment(ctx, a, inst)
}

// checkNoOtherAssignment refuses an instance that was assigned another volume for the adoption's
// device: attached there, or on its way (its device tag names it). Volumes assigned for the
// group's other data devices do not matter.
func (w *Workflow) checkNoOtherAssignment(ctx context.Context, a Adoption, inst ec2types.Instance) error {
	for _, id := range groupconfig.SplitStateList(instanceTag(inst.Tags, groupconfig.StateVolume)) {
		if id == a.Volume {
			continue
		}
		for _, bd := range inst.BlockDeviceMappings {
			if bd.Ebs != nil && aws.ToString(bd.Ebs.VolumeId) == id && groupconfig.SameDevice(aws.ToString(bd.DeviceName), a.Device) {
				return notAdoptable("instance %s is assigned volume %s at %s already", a.Instance, id, a.Device)
			}
		}
		v, err := w.describeVolume(ctx, id)
		if awsapi.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if groupconfig.SameDevice(stateTags(v.Tags)[groupconfig.StateDevice], a.Device) {
			return notAdoptable("instance %s is assigned volume %s for %s already", a.Instance, id, a.Device)
		}
	}
	return nil
}

// withAssignment returns the assignment tags of an instance (StateVolume, StateMountPath) with
// vol added at the end (mounted at path); its other volumes keep their entries. The mount paths
// are written only while every volume has one, so the two lists stay in step.
func withAssignment(tags []ec2types.Tag, vol, path string) map[string]string {
	ids := groupconfig.SplitStateList(instanceTag(tags, groupconfig.StateVolume))
	paths := groupconfig.SplitStateList(instanceTag(tags, groupconfig.StateMountPath))
	if !slices.Contains(ids, vol) {
		ids = append(ids, vol)
		paths = append(paths, path)
	}
	out := map[string]string{groupconfig.StateVolume: groupconfig.JoinStateList(ids)}
	if len(paths) == len(ids) && !slices.Contains(paths, "") {
		out[groupconfig.StateMountPath] = groupconfig.JoinStateList(paths)
	}
	return out
}

// unassign removes vol from an instance's assignment (StateVolume, StateMountPath), leaving its
// other volumes assigned; the tags go when vol was the only one.
func (w *Workflow) unassign(ctx context.Context, instance string, tags []ec2types.Tag, vol string) error {
	ids := groupconfig.SplitStateList(instanceTag(tags, groupconfig.StateVolume))
	i := slices.Index(ids, vol)
	if i < 0 {
		return nil
	}
	paths := groupconfig.SplitStateList(instanceTag(tags, groupconfig.StateMountPath))
	ids = slices.Delete(ids, i, i+1)
	if len(ids) == 0 {
		return w.untagResource(ctx, instance, groupconfig.StateVolume, groupconfig.StateMountPath)
	}
	out := map[string]string{groupconfig.StateVolume: groupconfig.JoinStateList(ids)}
	if i < len(paths) {
		paths = slices.Delete(paths, i, i+1)
	}
	if len(paths) == len(ids) {
		out[groupconfig.StateMountPath] = groupconfig.JoinStateList(paths)
	} else if err := w.untagResource(ctx, instance, groupconfig.StateMountPath); err != nil {
		return err
	}
	return w.tagResource(ctx, instance, out)
}

// dataDeviceOccupant returns the volume at the group's data device of the target, when it is
// the launch's fresh volume proven empty and unused (to be discarded), "" when the device is
// free or holds the adopted volume already, and an error when it holds anything else.
func (w *Workflow) dataDeviceOccupant(ctx context.Context, a Adoption, inst ec2types.Instance) (string, error) {
	for _, bd := range inst.BlockDeviceMappings {
		if bd.Ebs == nil || !groupconfig.SameDevice(aws.ToString(bd.DeviceName), a.Device) {
			continue
		}
		id := aws.ToString(bd.Ebs.VolumeId)
		if id == a.Volume {
			return "", nil
		}
		v, err := w.describeVolume(ctx, id)
		if err != nil {
			if awsapi.IsNotFound(err) {
				return "", nil
			}
			return "", err
		}
		if stateTags(v.Tags)[groupconfig.StateDiscard] == a.Instance {
			return id, nil // proven before this adoption was interrupted
		}
		if why := FreshVolumeProof(inst, v, a.Device); why != "" {
			return "", notAdoptable("instance %s has volume %s at %s, which is not provably empty: %s", a.Instance, id, a.Device, why)
		}
		return id, nil
	}
	return "", nil
}

// freshWindow is how close to the instance's launch a volume must have been created and attached
// to count as created by the launch (EC2 gives both the launch's time, to the second).
const freshWindow = 10 * time.Second

// FreshVolumeProof says why the volume v at dev of inst is not provably the launch's own empty,
// unused volume; "" means it is, and may be detached and deleted for a pooled volume. All of:
//
//   - EC2: it was created with the instance from the launch template's mapping — its creation
//     and attach times are within 10 s of the instance's launch time (so it was never detached
//     and re-attached), it was restored from no snapshot, and it never carried a move or
//     adoption tag: it has never been anyone's data volume;
//   - the agent on the instance reports it blank now (spotmax:state:blank_volume names it): no
//     file system signature on the device (blkid's low-level probe), mounted nowhere, and held
//     open by the agent with O_EXCL, which makes mkfs and mount fail on it until the agent lets
//     go (and empties the tag) — so nothing can have written a file system since the probe.
//
// An instance without an agent never gives the second half, so its fresh volume is kept (and
// becomes a data volume of the group): deleting data is never a guess.
func FreshVolumeProof(inst ec2types.Instance, v ec2types.Volume, dev string) string {
	id := aws.ToString(v.VolumeId)
	launch := aws.ToTime(inst.LaunchTime)
	att := volumeAttachment(v)
	t := stateTags(v.Tags)
	switch {
	case att == nil || aws.ToString(att.InstanceId) != aws.ToString(inst.InstanceId) || !groupconfig.SameDevice(aws.ToString(att.Device), dev):
		return "it is not attached to the instance at " + dev
	case aws.ToString(v.SnapshotId) != "":
		return "it was restored from snapshot " + aws.ToString(v.SnapshotId)
	case absDuration(aws.ToTime(v.CreateTime).Sub(launch)) > freshWindow:
		return fmt.Sprintf("it was created at %s, not with the instance (launched %s)", aws.ToTime(v.CreateTime).UTC().Format(time.RFC3339), launch.UTC().Format(time.RFC3339))
	case absDuration(aws.ToTime(att.AttachTime).Sub(launch)) > freshWindow:
		return fmt.Sprintf("it was attached at %s, not at the launch (%s)", aws.ToTime(att.AttachTime).UTC().Format(time.RFC3339), launch.UTC().Format(time.RFC3339))
	case t[groupconfig.StateMovingFrom] != "" || t[groupconfig.StateMovingTo] != "" || t[groupconfig.StateAdoptedBy] != "":
		return "it has been moved by spotmax"
	case !BlankReported(instanceTag(inst.Tags, groupconfig.StateBlankVolume), id):
		return "the agent has not reported it blank (" + groupconfig.StateBlankVolume + ")"
	case groupconfig.StateListHas(instanceTag(inst.Tags, groupconfig.StateVolumeMounted), id):
		return "the agent mounted it"
	}
	return ""
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// reproveFresh checks FreshVolumeProof once more right before the fresh volume is marked for
// deletion; when it no longer holds, the adoption is undone (assignment and claim removed,
// nothing was attached) and refused.
func (w *Workflow) reproveFresh(ctx context.Context, a Adoption, fresh string) error {
	v, err := w.describeVolume(ctx, fresh)
	if err != nil {
		return err
	}
	if stateTags(v.Tags)[groupconfig.StateDiscard] == a.Instance {
		return nil
	}
	inst, err := w.describeInstance(ctx, a.Instance)
	if err != nil {
		return err
	}
	why := FreshVolumeProof(inst, v, a.Device)
	if why == "" {
		return nil
	}
	if err := w.unassign(context.WithoutCancel(ctx), a.Instance, inst.Tags, a.Volume); err != nil {
		w.log().Warn("undoing an adoption's assignment", "instance", a.Instance, "error", err)
	}
	w.dropClaim(ctx, a.Volume)
	return notAdoptable("instance %s's volume %s at %s is no longer provably empty: %s", a.Instance, fresh, a.Device, why)
}

// confirmAdoption reads the claim and the assignment back after the settle.
func (w *Workflow) confirmAdoption(ctx context.Context, a Adoption) error {
	v, err := w.describeVolume(ctx, a.Volume)
	if err != nil {
		return err
	}
	t := stateTags(v.Tags)
	if t[groupconfig.StateOwner] != w.owner() || t[groupconfig.StateAdoptedBy] != a.Instance {
		lease, _ := time.Parse(time.RFC3339Nano, t[groupconfig.StateLeaseUntil])
		return &BusyError{Instance: a.Volume, Group: a.Group, Owner: t[groupconfig.StateOwner] + " (adopting it into " + t[groupconfig.StateAdoptedBy] + ")", Until: lease}
	}
	inst, err := w.describeInstance(ctx, a.Instance)
	if err != nil {
		return err
	}
	if cur := instanceTag(inst.Tags, groupconfig.StateVolume); !groupconfig.StateListHas(cur, a.Volume) {
		// A rival assigned another volume to the instance after us: it wins; ours goes back.
		w.dropClaim(ctx, a.Volume)
		return notAdoptable("instance %s was assigned volume %s by another actor", a.Instance, cur)
	}
	return nil
}

// dropClaim removes an adoption's claim from a volume that was not attached.
func (w *Workflow) dropClaim(ctx context.Context, vol string) {
	if err := w.untagResource(context.WithoutCancel(ctx), vol, groupconfig.StateAdoptedBy, groupconfig.StateOwner, groupconfig.StateLeaseUntil); err != nil {
		w.log().Warn("dropping an adoption claim", "volume", vol, "error", err)
	}
}

// freeDevice detaches the launch's fresh volume from the instance and waits until it is
// available. The agent reported it mounted nowhere, so the detach is not forced.
func (w *Workflow) freeDevice(ctx context.Context, vol, from string) error {
	return w.poll(ctx, "fresh volume "+vol+" detached from "+from, w.timeouts().Volume, func(ctx context.Context) (bool, error) {
		v, err := w.describeVolume(ctx, vol)
		if err != nil {
			if awsapi.IsNotFound(err) {
				return true, nil
			}
			return false, err
		}
		att := volumeAttachment(v)
		if att == nil {
			return v.State == ec2types.VolumeStateAvailable, nil
		}
		if att.State == ec2types.VolumeAttachmentStateDetaching {
			return false, nil
		}
		return false, w.detachVolume(ctx, vol, aws.ToString(att.InstanceId), false)
	})
}

// deleteDiscarded deletes a fresh volume marked for discarding, once it is attached to nothing.
func (w *Workflow) deleteDiscarded(ctx context.Context, vol string) error {
	v, err := w.describeVolume(ctx, vol)
	if err != nil {
		if awsapi.IsNotFound(err) {
			return nil
		}
		return err
	}
	if stateTags(v.Tags)[groupconfig.StateDiscard] == "" {
		return fmt.Errorf("not deleting volume %s: it is not marked %s", vol, groupconfig.StateDiscard)
	}
	if v.State == ec2types.VolumeStateDeleting || v.State == ec2types.VolumeStateDeleted {
		return nil
	}
	if att := volumeAttachment(v); att != nil {
		if err := w.freeDevice(ctx, vol, aws.ToString(att.InstanceId)); err != nil {
			return err
		}
	}
	return w.DeleteVolume(ctx, vol)
}

// DeleteVolume deletes a volume that is attached to nothing; one already gone is not an error.
func (w *Workflow) DeleteVolume(ctx context.Context, vol string) error {
	err := w.call(ctx, func(ctx context.Context) error {
		_, err := w.EC2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(vol)})
		return err
	})
	if err != nil && !awsapi.IsNotFound(err) {
		return fmt.Errorf("deleting volume %s: %w", vol, err)
	}
	return nil
}

// Release detaches a pooled volume from its instance and puts it back in the pool: the agent on
// the instance must have released it (StateVolumeReleased) or the instance must be stopped;
// otherwise force must be set (an operator's explicit choice, as with --force-detach).
func (w *Workflow) Release(ctx context.Context, vol string, force bool) error {
	v, err := w.describeVolume(ctx, vol)
	if err != nil {
		return err
	}
	if tagValue(v.Tags, groupconfig.TagGroup) == "" {
		return notAdoptable("volume %s is not a pooled data volume (no %s tag)", vol, groupconfig.TagGroup)
	}
	att := volumeAttachment(v)
	if att == nil {
		return nil
	}
	from := aws.ToString(att.InstanceId)
	inst, err := w.describeInstance(ctx, from)
	if err != nil && !awsapi.IsNotFound(err) {
		return err
	}
	released := groupconfig.StateListHas(instanceTag(inst.Tags, groupconfig.StateVolumeReleased), vol)
	if st := stateName(inst); !released && st != "stopped" && !force {
		return notAdoptable("volume %s is in use on %s (%s) and its agent has not released it: stop the instance, or pass --force", vol, from, st)
	}
	if err := w.detachVolume(ctx, vol, from, force && !released); err != nil {
		return err
	}
	if err := w.poll(ctx, "volume "+vol+" detached from "+from, w.timeouts().Volume, func(ctx context.Context) (bool, error) {
		v, err := w.describeVolume(ctx, vol)
		return err == nil && volumeAttachment(v) == nil && v.State == ec2types.VolumeStateAvailable, err
	}); err != nil {
		return err
	}
	return w.unassign(ctx, from, inst.Tags, vol)
}

// BlankReported reports whether the agent's blank-volume report (groupconfig.StateBlankVolume, a
// space-separated list of volume ids) names vol.
func BlankReported(report, vol string) bool {
	return vol != "" && slices.Contains(strings.Fields(report), vol)
}
