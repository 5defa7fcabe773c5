package replace

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/metrics"
)

// Cross-AZ moves (spotmax:cross_az_move). A data volume pins its replacement to its own AZ; when
// every launch option failed there for capacity and the group opted in, the replacement is
// launched in another AZ of the group (Plan.CrossAZOptions, journaled as StateCrossAZ) and the
// move-volume step copies the volume there through a snapshot:
//
//  1. wait until the old instance released the volume (the usual release: the agent unmounted
//     it, or the instance stopped or was terminated), so the snapshot is of an unmounted file
//     system, not merely crash-consistent;
//  2. find the move's snapshot of the source (DescribeSnapshots on the volume, tag StateXAZToken
//     = "<journal token>/<source>": CreateSnapshot takes no client token) or create it, and wait
//     until it is completed;
//  3. restore it in the replacement's AZ with CreateVolume (client token from the journal's
//     token: a retried or resumed create returns the same volume), same type, size, IOPS,
//     throughput and encryption, tagged as the group's data volume and as moving;
//  4. attach it at the group's device and record it on the replacement for the agent;
//  5. verify the copy: attached to the replacement at the device, restored from a completed
//     snapshot of exactly the source; where an agent runs on the replacement, also its report
//     that it mounted the copy (StateVolumeMounted);
//  6. only then mark the source superseded (StateSupersededBy): it is kept, never deleted by
//     spotmax, and never offered to a member by the pool (PoolSuperseded); an operator deletes
//     it with `spotmax volumes delete`. The snapshot is deleted: the source still holds the same
//     data.
//
// Every step is idempotent and found again from tags and tokens, so a crash anywhere resumes.

// SnapshotAPI is what a cross-AZ move needs from EC2 beyond EC2API. *ec2.Client satisfies it;
// a Workflow whose EC2 does not cannot move a volume across AZs.
type SnapshotAPI interface {
	CreateSnapshot(ctx context.Context, in *ec2.CreateSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error)
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
	CreateVolume(ctx context.Context, in *ec2.CreateVolumeInput, optFns ...func(*ec2.Options)) (*ec2.CreateVolumeOutput, error)
}

var _ SnapshotAPI = (*ec2.Client)(nil)

// SnapshotUSDPerGBMonth is the price of EBS snapshot storage, standard tier, in USD per
// GB-month: the Amazon EBS pricing page ("EBS Snapshots – Standard: $0.05/GB-month",
// us-east-1 and most regions). A move's first snapshot is a full copy: its size is the
// volume's at most.
const SnapshotUSDPerGBMonth = 0.05

// hoursPerMonth is AWS's billing month for GB-month prices (730 hours).
const hoursPerMonth = 730

// snapshotTimeout bounds the wait for a snapshot to complete: a first snapshot of a large
// volume takes hours on AWS.
const snapshotTimeout = 12 * time.Hour

// CrossAZMove reports a data volume's move to another AZ through a snapshot (Result.CrossAZ).
type CrossAZMove struct {
	// Source is the volume that stayed in FromAZ (kept, tagged superseded); Volume its copy in ToAZ.
	Source   string `json:"source_volume"`
	Volume   string `json:"volume"`
	FromAZ   string `json:"from_az"`
	ToAZ     string `json:"to_az"`
	Snapshot string `json:"snapshot"`
	SizeGiB  int32  `json:"size_gib"`
	// Seconds is the move's time on the workflow's clock (release to verified copy, this run);
	// SnapshotSeconds the snapshot's own, from its start to its completion.
	Seconds         float64 `json:"seconds"`
	SnapshotSeconds float64 `json:"snapshot_seconds"`
	// SnapshotUSD is the snapshot's storage for the time it existed (SnapshotUSDPerGBMonth, by
	// the hour); SnapshotUSDPerMonth what it would cost per month if kept.
	SnapshotUSD         float64 `json:"snapshot_usd"`
	SnapshotUSDPerMonth float64 `json:"snapshot_usd_per_month"`
}

// String renders the move for logs and the replace summary.
func (m CrossAZMove) String() string {
	return fmt.Sprintf("%s (%s) copied to %s (%s) through %s: %d GiB in %s, snapshot %s, cost $%.6f ($%.2f/month if kept)",
		m.Source, m.FromAZ, m.Volume, m.ToAZ, m.Snapshot, m.SizeGiB, secs(m.Seconds), secs(m.SnapshotSeconds), m.SnapshotUSD, m.SnapshotUSDPerMonth)
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)).Round(time.Second) }

// fields are the move's metrics and action-record fields (metrics.ActionFromEvent).
// crossAZFields are the action record's fields of a replacement's cross-AZ moves: one move's as
// they are; for a group with several data volumes the ids are comma lists in the order of the
// group's devices and the sizes, times and costs are sums (the moves run one after the other).
func crossAZFields(ms []*CrossAZMove) map[string]string {
	switch len(ms) {
	case 0:
		return nil
	case 1:
		return ms[0].fields()
	}
	sum := CrossAZMove{FromAZ: ms[0].FromAZ, ToAZ: ms[0].ToAZ}
	var src, vol, snap []string
	for _, m := range ms {
		src, vol, snap = append(src, m.Source), append(vol, m.Volume), append(snap, m.Snapshot)
		sum.SizeGiB += m.SizeGiB
		sum.Seconds += m.Seconds
		sum.SnapshotSeconds += m.SnapshotSeconds
		sum.SnapshotUSD += m.SnapshotUSD
		sum.SnapshotUSDPerMonth += m.SnapshotUSDPerMonth
	}
	sum.Source, sum.Volume, sum.Snapshot = strings.Join(src, ","), strings.Join(vol, ","), strings.Join(snap, ",")
	return sum.fields()
}

func (m *CrossAZMove) fields() map[string]string {
	return map[string]string{
		"xaz_source": m.Source, "xaz_volume": m.Volume, "xaz_from_az": m.FromAZ, "xaz_to_az": m.ToAZ,
		"xaz_snapshot": m.Snapshot, "xaz_size_gib": fmt.Sprint(m.SizeGiB),
		"xaz_seconds": fmt.Sprintf("%.1f", m.Seconds), "xaz_snapshot_seconds": fmt.Sprintf("%.1f", m.SnapshotSeconds),
		"xaz_snapshot_usd": fmt.Sprintf("%.6f", m.SnapshotUSD), "xaz_snapshot_usd_per_month": fmt.Sprintf("%.4f", m.SnapshotUSDPerMonth),
	}
}

// crossAZOptions are the launch options outside the data volume's AZ, tried only when every
// option in it failed for capacity and the group opted into cross-AZ moves: the same markets,
// in the other AZs of the group that offer the type.
func (r *run) crossAZOptions(ownType string, subnets map[string]string, volAZ string, offered map[string][]string) []Option {
	if !r.cfg.CrossAZMove || volAZ == "" {
		return nil
	}
	return r.launcher.options(r.markets(ownType), r.azOrder(subnets, ""), subnets, func(t, az string) bool {
		return az != volAZ && slices.Contains(offered[t], az)
	})
}

// crossAZTarget returns the AZ the data volume must move to: the journaled one, or — for a
// replacement launched before a crash cut its journal entry short — the replacement's AZ when
// it is not the volume's. "" means the replacement is in the volume's AZ.
func (r *run) crossAZTarget(ctx context.Context) (string, error) {
	if r.journal.CrossAZ != "" {
		return r.journal.CrossAZ, nil
	}
	az := r.res.AZ
	if az == "" {
		inst, err := r.w.describeLaunched(ctx, r.newID)
		if err != nil {
			return "", err
		}
		if inst.Placement != nil {
			az = aws.ToString(inst.Placement.AvailabilityZone)
		}
	}
	if az == "" || az == r.plan.VolumeAZ || r.plan.VolumeAZ == "" {
		return "", nil
	}
	if !r.cfg.CrossAZMove {
		return "", fmt.Errorf("replacement %s is in %s and data volume %s in %s, but %s is off: not moving it", r.newID, az,
			strings.Join(volumeIDs(r.plan.Volumes), ","), r.plan.VolumeAZ, groupconfig.TagCrossAZMove)
	}
	if err := r.set(ctx, "the cross-AZ move to "+az, func(j *Journal) { j.CrossAZ = az }); err != nil {
		return "", err
	}
	return az, nil
}

// moveAcrossAZ is the move-volume step's hook: once the old instance released the data volume
// src, a replacement in another AZ gets a verified copy (Workflow.MoveAcrossAZ), recorded for its
// agent together with the volumes before it that the replacement already received. copied is
// the copy's id, empty when the replacement is in the volume's AZ and the usual move applies.
func (r *run) moveAcrossAZ(ctx context.Context, src DataVolume, before []DataVolume) (copied string, err error) {
	to, err := r.crossAZTarget(ctx)
	if err != nil || to == "" {
		return "", err
	}
	r.progress(StepMoveVolume, "copying "+src.ID+" to "+to+" through a snapshot", false, nil)
	m, err := r.w.MoveAcrossAZ(ctx, CrossAZRequest{Group: r.g.Name, Source: src.ID, AZ: to, Instance: r.newID,
		Device: src.Device, MountPath: src.MountPath, Assigned: before, Token: r.journal.Token, From: r.req.InstanceID})
	if err != nil {
		return "", err
	}
	r.res.CrossAZ = append(r.res.CrossAZ, m)
	r.progress(StepMoveVolume, m.String(), false, nil)
	r.record(ctx, metrics.VolumeMovedAcrossAZ, secs(m.Seconds), m.fields())
	return m.Volume, nil
}

// CrossAZRequest is one data volume's move to another AZ.
type CrossAZRequest struct {
	Group string
	// Source is the released data volume; AZ where its copy goes; Instance the replacement there
	// that receives it at Device (MountPath for its agent).
	Source, AZ, Instance, Device, MountPath string
	// Assigned are the data volumes (a group's other devices) the replacement already received:
	// recorded for its agent again with the copy, so the assignment lists them all.
	Assigned []DataVolume
	// Token is the replacement journal's token: it names the move's snapshot and copy.
	Token string
	// From is the old instance (the copy is tagged as moving from it while the journal lasts).
	From string
}

func (q CrossAZRequest) tag() string { return q.Token + "/" + q.Source }

// snapshots returns the workflow's EC2 client as a SnapshotAPI.
func (w *Workflow) snapshots() (SnapshotAPI, error) {
	if s, ok := w.EC2.(SnapshotAPI); ok {
		return s, nil
	}
	return nil, fmt.Errorf("the workflow's EC2 client (%T) cannot create snapshots and volumes: no cross-AZ move", w.EC2)
}

// MoveAcrossAZ copies a released data volume to another AZ through a snapshot, attaches the
// copy to the replacement there, verifies it, and marks the source superseded (kept). It takes
// one volume, so a group with several data volumes calls it once per volume; it is idempotent
// and resumes from any point (the snapshot and the copy are found by q's token).
func (w *Workflow) MoveAcrossAZ(ctx context.Context, q CrossAZRequest) (*CrossAZMove, error) {
	start := w.clock().Now()
	api, err := w.snapshots()
	if err != nil {
		return nil, err
	}
	if q.Token == "" || q.Source == "" || q.AZ == "" || q.Instance == "" || q.Device == "" {
		return nil, fmt.Errorf("cross-AZ move of %q: token, source, AZ, instance and device are required", q.Source)
	}
	src, err := w.describeVolume(ctx, q.Source)
	if err != nil {
		return nil, fmt.Errorf("cross-AZ move: %w", err)
	}
	m := &CrossAZMove{Source: q.Source, FromAZ: aws.ToString(src.AvailabilityZone), ToAZ: q.AZ, SizeGiB: aws.ToInt32(src.Size)}
	if m.FromAZ == q.AZ {
		return nil, fmt.Errorf("cross-AZ move of %s: it is already in %s", q.Source, q.AZ)
	}
	// The copy goes where the replacement really runs, whatever a journal says.
	inst, err := w.describeLaunched(ctx, q.Instance)
	if err != nil {
		return nil, err
	}
	if inst.Placement == nil || aws.ToString(inst.Placement.AvailabilityZone) != q.AZ {
		return nil, fmt.Errorf("cross-AZ move of %s: replacement %s is not in %s", q.Source, q.Instance, q.AZ)
	}
	cp, err := w.findCopy(ctx, q)
	if err != nil {
		return nil, err
	}
	var snap *ec2types.Snapshot
	if cp == nil {
		// The snapshot is taken only of a released volume: an unmounted file system.
		if att := volumeAttachment(src); att != nil || src.State != ec2types.VolumeStateAvailable {
			return nil, fmt.Errorf("cross-AZ move of %s: the volume is %s, not released (available)", q.Source, src.State)
		}
		if snap, err = w.ensureSnapshot(ctx, api, q, src); err != nil {
			return nil, err
		}
		if cp, err = w.restore(ctx, api, q, src, *snap); err != nil {
			return nil, err
		}
	}
	m.Volume, m.Snapshot = aws.ToString(cp.VolumeId), aws.ToString(cp.SnapshotId)
	if snap == nil {
		if snap, err = w.describeSnapshot(ctx, api, m.Snapshot); err != nil {
			return nil, err
		}
	}
	if err := w.attachVolume(ctx, m.Volume, q.Instance, q.Device); err != nil {
		return nil, err
	}
	if err := w.fresh(ctx, q.Instance, func(ctx context.Context) error { return w.keepVolume(ctx, q.Instance, q.Device) }); err != nil {
		return nil, err
	}
	tags := assignmentTags(append(slices.Clone(q.Assigned), DataVolume{ID: m.Volume, Device: q.Device, MountPath: q.MountPath}))
	if err := w.fresh(ctx, q.Instance, func(ctx context.Context) error { return w.tagInstance(ctx, q.Instance, tags) }); err != nil {
		return nil, fmt.Errorf("recording volume %s on %s: %w", m.Volume, q.Instance, err)
	}
	if err := w.verifyCopy(ctx, q, snap, m.Volume); err != nil {
		return nil, err
	}
	// Verified: the source is superseded, kept, and the pool never offers it again.
	if err := w.tagResource(ctx, q.Source, map[string]string{groupconfig.StateSupersededBy: m.Volume}); err != nil {
		return nil, fmt.Errorf("marking volume %s superseded by %s: %w", q.Source, m.Volume, err)
	}
	if err := w.untagResource(ctx, m.Volume, groupconfig.StateMovingFrom, groupconfig.StateMovingTo); err != nil {
		return nil, err
	}
	end := w.clock().Now()
	if snap != nil {
		started := aws.ToTime(snap.StartTime)
		if done := aws.ToTime(snap.CompletionTime); !done.IsZero() && !started.IsZero() {
			m.SnapshotSeconds = done.Sub(started).Seconds()
		}
		if !started.IsZero() {
			m.SnapshotUSD = usd(float64(m.SizeGiB) * SnapshotUSDPerGBMonth * end.Sub(started).Hours() / hoursPerMonth)
		}
	}
	m.SnapshotUSDPerMonth = usd(float64(m.SizeGiB) * SnapshotUSDPerGBMonth)
	// The source keeps the same data: the snapshot is not needed any more.
	if m.Snapshot != "" {
		err := w.call(ctx, func(ctx context.Context) error {
			_, err := api.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(m.Snapshot)})
			return err
		})
		if err != nil && !awsapi.IsNotFound(err) {
			return nil, fmt.Errorf("deleting snapshot %s of %s: %w", m.Snapshot, q.Source, err)
		}
	}
	m.Seconds = end.Sub(start).Seconds()
	return m, nil
}

func usd(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// findCopy returns the move's restored volume if it was created already: tagged with the move's
// token, in the target AZ. A copy that is attached to anything but the replacement is refused.
func (w *Workflow) findCopy(ctx context.Context, q CrossAZRequest) (*ec2types.Volume, error) {
	var out *ec2.DescribeVolumesOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		out, err = w.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
			{Name: aws.String("tag:" + groupconfig.StateXAZToken), Values: []string{q.tag()}}}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("looking for the copy of %s: %w", q.Source, err)
	}
	for _, v := range out.Volumes {
		if aws.ToString(v.AvailabilityZone) != q.AZ || aws.ToString(v.SnapshotId) == "" {
			continue
		}
		if att := volumeAttachment(v); att != nil && aws.ToString(att.InstanceId) != q.Instance {
			return nil, fmt.Errorf("the copy %s of %s is attached to %s, not the replacement %s: not touching it",
				aws.ToString(v.VolumeId), q.Source, aws.ToString(att.InstanceId), q.Instance)
		}
		return &v, nil
	}
	return nil, nil
}

// ensureSnapshot finds the move's snapshot of the source (listed by volume, matched by the
// token tag: a tag filter may miss a snapshot created a moment ago) or creates it, and waits
// until it is completed.
func (w *Workflow) ensureSnapshot(ctx context.Context, api SnapshotAPI, q CrossAZRequest, src ec2types.Volume) (*ec2types.Snapshot, error) {
	var snap *ec2types.Snapshot
	err := w.poll(ctx, "snapshot of "+q.Source+" to complete", snapshotTimeout, func(ctx context.Context) (bool, error) {
		if snap == nil {
			s, err := w.findSnapshot(ctx, api, q)
			if err != nil {
				return false, err
			}
			if s == nil {
				s, err = w.createSnapshot(ctx, api, q)
				if err != nil || s == nil {
					return false, err
				}
			}
			snap = s
		} else {
			s, err := w.describeSnapshot(ctx, api, aws.ToString(snap.SnapshotId))
			if err != nil {
				return false, err
			}
			snap = s
		}
		switch snap.State {
		case ec2types.SnapshotStateCompleted:
			return true, nil
		case ec2types.SnapshotStateError:
			// A failed snapshot is given up (deleted) and taken again at the next poll.
			id := aws.ToString(snap.SnapshotId)
			snap = nil
			if err := w.call(ctx, func(ctx context.Context) error {
				_, err := api.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
				return err
			}); err != nil && !awsapi.IsNotFound(err) {
				return false, fmt.Errorf("deleting failed snapshot %s of %s: %w", id, q.Source, err)
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot of data volume %s: %w", q.Source, err)
	}
	return snap, nil
}

func (w *Workflow) findSnapshot(ctx context.Context, api SnapshotAPI, q CrossAZRequest) (*ec2types.Snapshot, error) {
	p := ec2.NewDescribeSnapshotsPaginator(api, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(1000),
		Filters: []ec2types.Filter{{Name: aws.String("volume-id"), Values: []string{q.Source}}}})
	for p.HasMorePages() {
		var page *ec2.DescribeSnapshotsOutput
		err := w.call(ctx, func(ctx context.Context) (err error) {
			page, err = p.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("looking for the snapshot of %s: %w", q.Source, err)
		}
		for _, s := range page.Snapshots {
			if tagValue(s.Tags, groupconfig.StateXAZToken) == q.tag() && s.State != ec2types.SnapshotStateError {
				return &s, nil
			}
		}
	}
	return nil, nil
}

// createSnapshot takes the move's snapshot. EC2's per-volume limits (one CreateSnapshot per
// 15 s, a few pending at once) answer "not now": nil, and the poll tries again.
func (w *Workflow) createSnapshot(ctx context.Context, api SnapshotAPI, q CrossAZRequest) (*ec2types.Snapshot, error) {
	tags := []ec2types.Tag{
		{Key: aws.String(groupconfig.TagGroup), Value: aws.String(q.Group)},
		{Key: aws.String(groupconfig.StateXAZToken), Value: aws.String(q.tag())},
		{Key: aws.String(groupconfig.StateXAZFrom), Value: aws.String(q.Source)},
	}
	var out *ec2.CreateSnapshotOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		out, err = api.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(q.Source),
			Description:       aws.String(fmt.Sprintf("spotmax: cross-AZ move of %s (group %s) to %s", q.Source, q.Group, q.AZ)),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: tags}}})
		return err
	})
	switch code := awsapi.Code(err); {
	case err == nil:
	case code == "SnapshotCreationPerVolumeRateExceeded" || code == "ConcurrentSnapshotLimitExceeded":
		return nil, nil
	default:
		return nil, fmt.Errorf("creating a snapshot of %s: %w", q.Source, err)
	}
	return &ec2types.Snapshot{SnapshotId: out.SnapshotId, VolumeId: out.VolumeId, State: out.State, StartTime: out.StartTime,
		VolumeSize: out.VolumeSize, Tags: out.Tags}, nil
}

func (w *Workflow) describeSnapshot(ctx context.Context, api SnapshotAPI, id string) (*ec2types.Snapshot, error) {
	var out *ec2.DescribeSnapshotsOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		out, err = api.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
		return err
	})
	if err != nil {
		if awsapi.IsNotFound(err) {
			return nil, nil // deleted once a move was verified
		}
		return nil, fmt.Errorf("describing snapshot %s: %w", id, err)
	}
	if len(out.Snapshots) == 0 {
		return nil, nil
	}
	return &out.Snapshots[0], nil
}

// restore creates the copy of src from snap in the target AZ, with a client token from the
// move's token, so that a retried or resumed create returns the same volume.
func (w *Workflow) restore(ctx context.Context, api SnapshotAPI, q CrossAZRequest, src ec2types.Volume, snap ec2types.Snapshot) (*ec2types.Volume, error) {
	tags := []ec2types.Tag{
		{Key: aws.String(groupconfig.TagGroup), Value: aws.String(q.Group)},
		{Key: aws.String(groupconfig.StateDevice), Value: aws.String(q.Device)},
		{Key: aws.String(groupconfig.StateXAZToken), Value: aws.String(q.tag())},
		{Key: aws.String(groupconfig.StateXAZFrom), Value: aws.String(q.Source)},
		// Moving while the journal lasts: the pool does not offer it to anyone else.
		{Key: aws.String(groupconfig.StateMovingFrom), Value: aws.String(q.From)},
		{Key: aws.String(groupconfig.StateMovingTo), Value: aws.String(q.Instance)},
	}
	// Only spotmax's own keys: the controller's role may tag nothing else (docs/iam.md,
	// TagAtCreation); the source's other tags (Name, cost allocation) stay on the source.
	in := &ec2.CreateVolumeInput{AvailabilityZone: aws.String(q.AZ), SnapshotId: snap.SnapshotId, Size: src.Size,
		VolumeType: src.VolumeType, Encrypted: src.Encrypted, KmsKeyId: src.KmsKeyId,
		ClientToken:       aws.String("xaz-" + q.Token + "-" + q.Source),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: tags}}}
	switch src.VolumeType {
	case ec2types.VolumeTypeGp3:
		in.Iops, in.Throughput = src.Iops, src.Throughput
	case ec2types.VolumeTypeIo1, ec2types.VolumeTypeIo2:
		in.Iops = src.Iops
	}
	if !aws.ToBool(src.Encrypted) {
		in.KmsKeyId = nil
	}
	var out *ec2.CreateVolumeOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		out, err = api.CreateVolume(ctx, in)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("restoring snapshot %s of %s in %s: %w", aws.ToString(snap.SnapshotId), q.Source, q.AZ, err)
	}
	return &ec2types.Volume{VolumeId: out.VolumeId, SnapshotId: out.SnapshotId, AvailabilityZone: out.AvailabilityZone,
		Size: out.Size, State: out.State}, nil
}

// verifyCopy checks the copy before the source is let go: attached to the replacement at the
// device, restored from a snapshot of exactly the source (when the snapshot still exists), at
// least the source's size; and, where an agent runs on the replacement, mounted by it.
func (w *Workflow) verifyCopy(ctx context.Context, q CrossAZRequest, snap *ec2types.Snapshot, copyID string) error {
	v, err := w.describeVolume(ctx, copyID)
	if err != nil {
		return err
	}
	att := volumeAttachment(v)
	switch {
	case att == nil || aws.ToString(att.InstanceId) != q.Instance || att.State != ec2types.VolumeAttachmentStateAttached:
		return fmt.Errorf("copy %s of %s is not attached to %s", copyID, q.Source, q.Instance)
	case !groupconfig.SameDevice(aws.ToString(att.Device), q.Device):
		return fmt.Errorf("copy %s of %s is at %s on %s, not %s", copyID, q.Source, aws.ToString(att.Device), q.Instance, q.Device)
	case snap != nil && aws.ToString(snap.VolumeId) != q.Source:
		return fmt.Errorf("copy %s was restored from snapshot %s of %s, not of %s", copyID, aws.ToString(snap.SnapshotId), aws.ToString(snap.VolumeId), q.Source)
	case snap != nil && aws.ToString(v.SnapshotId) != aws.ToString(snap.SnapshotId):
		return fmt.Errorf("copy %s was restored from %s, not the move's snapshot %s", copyID, aws.ToString(v.SnapshotId), aws.ToString(snap.SnapshotId))
	}
	inst, err := w.describeLaunched(ctx, q.Instance)
	if err != nil {
		return err
	}
	if !AgentRunning(inst.Tags) {
		return nil // EC2's lineage is the proof; nothing on the instance would report a mount
	}
	return w.poll(ctx, "the agent on "+q.Instance+" to mount "+copyID, w.timeouts().Release, func(ctx context.Context) (bool, error) {
		inst, err := w.describeLaunched(ctx, q.Instance)
		if err != nil {
			return false, err
		}
		return groupconfig.StateListHas(instanceTag(inst.Tags, groupconfig.StateVolumeMounted), copyID), nil
	})
}
