package replace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// The warm pool's route (spotmax:is_warm_pool_first). Auto Scaling has no call that moves a
// chosen warmed instance into a group: a group "draws on the warm pool to meet its new desired
// capacity" (PutWarmPool), in the AZ with the fewest members, and AWS does not document which
// warmed instance it takes. So spotmax does not choose one; it makes the group need one where
// the data is:
//
//  1. warm-prepare: the data volume is secured (DeleteOnTermination off, moving_from), as the
//     cold launch step does first.
//  2. warm-detach: DetachInstances WITHOUT ShouldDecrementDesiredCapacity. The group is one short,
//     in the old instance's AZ (the data volume's), and draws a warmed instance to fill it; a
//     stopped one is started (12 s at the `aws` latencies, against 40 s for a launch).
//  3. warm-take: the instance the group brought in is identified by its scaling activity
//     ("Launching a new EC2 instance from warm pool: i-…", started after the journal), checked
//     (a member, in the data volume's AZ, nothing at the data device), claimed with
//     spotmax:state:replaces (written, settled, read back: two replacements in one group never
//     take the same one) and journaled as the replacement.
//  4. move-volume: as on the cold route; the volume is attached once EC2 lets it (AttachVolume
//     takes a running or stopped instance, and the group starts the warmed one as it takes it,
//     so in practice once it runs).
//  5. retire: the pre-detach steps and delays (capped by the deadline), after the data moved, as
//     the cold route does for an interrupted instance whose volume is released (volume-first):
//     the delays never hold the data back. The old instance has left the group already, but it
//     runs until its deadline, so Consul and Kubernetes still deregister and drain it.
//  6. warm-join: wait until the group has it InService; 7. finish.
//
// Only an interrupted instance takes this route: a proactive replacement keeps the old instance
// serving until its replacement is InService, which a detach-first route cannot.
// When the group brings in nothing usable — a warmed instance in another AZ (it stays a plain
// member: a volume must never be attached across AZs), one with a volume of its own at the data
// device, a cold launch because the pool ran dry, or nothing within warmArrival — the
// replacement falls back to the cold route from its launch step (spot, the alternatives,
// on-demand, in the volume's AZ), journaled as warm-fallback. The cold route's detach step then
// finds the old instance gone from the group and takes back the member the group launched in
// its place (TerminateInstanceInAutoScalingGroup with decrement; or, if the group launches
// nothing, sets its desired capacity back with the replacement protected), so the group ends at
// its size. Past warm-detach nothing is rolled back: the old instance has left the group.
//
// Trust: a warmed instance carries no launch token of spotmax's. What proves it was brought in
// for this replacement is what only AWS writes: a scaling activity of this group that launched
// it from the group's warm pool after the journal was started, and Auto Scaling's
// aws:autoscaling:groupName tag (no caller may write aws: tags); plus spotmax's claim tag.
// verifyReplacement checks all three for a journal on this route.

// Journaled options of the warm pool's route.
const (
	optWarm         = "warm"
	optWarmFallback = "warm-fallback"
)

// warmArrival bounds how long warm-take waits for the group to bring in an instance after the
// old one was detached, in the workflow clock's time. Auto Scaling acts on a detach without
// decrement within seconds; a pool that is empty or a group whose launches are suspended must
// not keep the data from a cold replacement for long.
const warmArrival = 45 * time.Second

// warmActivityPrefix begins the description of the scaling activity that moves a warmed
// instance into its group.
const warmActivityPrefix = "Launching a new EC2 instance from warm pool: "

// asgGroupNameTag is the tag Auto Scaling puts on its members; the aws: prefix is reserved, so
// no caller can write it.
const asgGroupNameTag = "aws:autoscaling:groupName"

// warmSequence is the warm route's order: the table's warm steps, with retire after the data
// moved (see above).
func warmSequence() []step {
	var out []step
	var retire step
	for _, s := range routeSteps(routeWarm) {
		switch s.name {
		case StepRetire:
			retire = s
			continue
		case StepWarmJoin:
			out = append(out, retire)
		}
		out = append(out, s)
	}
	return out
}

// warmFallbackSequence is the order of a replacement that fell back from the warm pool to the
// cold launch: the warm route up to warm-take (the old instance is detached), then the cold
// route from launch.
func warmFallbackSequence(volumeFirst bool) []step {
	var out []step
	for _, s := range warmSequence() {
		out = append(out, s)
		if s.name == StepWarmTake {
			break
		}
	}
	for _, s := range sequence(volumeFirst) {
		if s.name != StepStart {
			out = append(out, s)
		}
	}
	return out
}

// warmPastDetach reports whether the warm route's old instance may have left the group: a
// rollback cannot put it back, so failures keep the journal for a resume instead.
func (r *run) warmPastDetach() bool {
	if r.journal.has(optWarmFallback) {
		return true
	}
	if !r.journal.has(optWarm) {
		return false
	}
	switch r.journal.Phase {
	case "", PhaseStarted, PhaseWarmPrepared, PhaseAborting:
		return false
	}
	return true
}

// warmAZ is the AZ the warmed instance must be in: the data volumes' (one instance's volumes
// are all in its AZ), else the old instance's.
func (r *run) warmAZ(ctx context.Context) (string, error) {
	if len(r.plan.Volumes) > 0 {
		v, err := r.w.describeVolume(ctx, r.plan.Volumes[0].ID)
		if err != nil {
			return "", err
		}
		return aws.ToString(v.AvailabilityZone), nil
	}
	if r.old.Placement != nil {
		return aws.ToString(r.old.Placement.AvailabilityZone), nil
	}
	return "", nil
}

// planWarm decides whether the replacement takes the warm pool's route: the group asks for it
// (is_warm_pool_first), the old instance is interrupted (a proactive replacement joins its
// replacement before the old instance leaves, which a detach-first route cannot), the group has
// an Auto Scaling warm pool with a warmed instance in the data volume's AZ, and the group's
// launch template maps nothing at the data device (a warmed instance would bring a volume of its
// own there). Otherwise WarmNote says why, and the plan is the cold launch. A journaled
// replacement keeps its route.
func (r *run) planWarm(ctx context.Context, p *Plan, tmpl *ec2types.ResponseLaunchTemplateData, az string) error {
	if r.journal.Phase != "" {
		p.Warm = r.journal.has(optWarm)
		r.res.Warm = p.Warm && r.journal.Replacement != ""
		return nil
	}
	if !r.cfg.WarmPoolFirst {
		return nil
	}
	why, err := r.warmUnusable(ctx, tmpl, az)
	if err != nil {
		return err
	}
	if why != "" {
		p.WarmNote = groupconfig.TagWarmPoolFirst + ": launching cold: " + why
		if r.req.Reason == ReasonInterruption {
			// A proactive replacement's cold route is by design, not worth a warning each time.
			r.res.Warnings = append(r.res.Warnings, p.WarmNote)
		}
		return nil
	}
	p.Warm = true
	return nil
}

// warmUnusable says why the group's warm pool cannot serve this replacement ("" when it can).
func (r *run) warmUnusable(ctx context.Context, tmpl *ec2types.ResponseLaunchTemplateData, az string) (string, error) {
	if r.req.Reason != ReasonInterruption {
		// A proactive replacement keeps the old instance serving until its replacement is
		// InService (join before detach); the warm route must detach first, which would leave the
		// group a member short while the warmed instance starts. And a revert's point is spot.
		return "only an interrupted instance takes the warm pool's route: a proactive replacement keeps the old instance serving until its replacement is InService", nil
	}
	if tmpl != nil {
		for _, dd := range r.cfg.DataDevices() {
			for _, m := range tmpl.BlockDeviceMappings {
				if groupconfig.SameDevice(aws.ToString(m.DeviceName), dd.Device) && m.NoDevice == nil {
					return fmt.Sprintf("the group's launch template maps %s, so a warmed instance brings a volume of its own there (remove the mapping: the group's data volumes live in its pool)", dd.Device), nil
				}
			}
		}
	}
	cfg, ready, err := r.w.warmPool(ctx, r.g.Name)
	if err != nil {
		return "", err
	}
	switch {
	case cfg == nil:
		return "the group has no warm pool", nil
	case cfg.Status == astypes.WarmPoolStatusPendingDelete:
		return "the group's warm pool is being deleted", nil
	case !slices.Contains(ready, az):
		return "the group's warm pool has no warmed instance in " + az, nil
	}
	return "", nil
}

// warmPool returns a group's warm pool configuration (nil without one) and the AZ of each
// warmed instance ready to leave it.
func (w *Workflow) warmPool(ctx context.Context, group string) (*astypes.WarmPoolConfiguration, []string, error) {
	var cfg *astypes.WarmPoolConfiguration
	var azs []string
	var token *string
	for {
		var out *autoscaling.DescribeWarmPoolOutput
		err := w.call(ctx, func(ctx context.Context) (err error) {
			out, err = w.ASG.DescribeWarmPool(ctx, &autoscaling.DescribeWarmPoolInput{AutoScalingGroupName: aws.String(group),
				MaxRecords: aws.Int32(100), NextToken: token})
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("describing the warm pool of group %s: %w", group, err)
		}
		if out.WarmPoolConfiguration != nil {
			cfg = out.WarmPoolConfiguration
		}
		for _, in := range out.Instances {
			switch in.LifecycleState {
			case astypes.LifecycleStateWarmedStopped, astypes.LifecycleStateWarmedRunning, astypes.LifecycleStateWarmedHibernated:
				azs = append(azs, aws.ToString(in.AvailabilityZone))
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return cfg, azs, nil
		}
		token = out.NextToken
	}
}

// warmPrepare secures the data volume before anything else happens to the old instance.
func (r *run) warmPrepare(ctx context.Context) error {
	return r.secure(ctx)
}

// warmDetach takes the old instance out of the group without decrementing the desired capacity,
// so that the group draws a warmed instance in its place. An old instance no longer a member (it
// left on its own, e.g. terminated at the end of its notice) leaves the group just as short.
func (r *run) warmDetach(ctx context.Context) error {
	w := r.w
	if err := r.secure(ctx); err != nil { // again after a resume: idempotent
		return err
	}
	g, err := w.describeGroup(ctx, r.g.Name)
	if err != nil {
		return err
	}
	// The detach leaves the group's zones unbalanced, and a warmed instance from another AZ keeps
	// them so: AWS's AZRebalance would then terminate a member (and its data volume's instance)
	// elsewhere. spotmax places the group's instances itself, as on the cold route's join.
	if err := w.suspendAZRebalance(ctx, g); err != nil {
		return err
	}
	if st, member := memberState(g, r.req.InstanceID); !member || (st != string(astypes.LifecycleStateInService) && st != string(astypes.LifecycleStateStandby)) {
		return nil
	}
	err = w.call(ctx, func(ctx context.Context) error {
		_, err := w.ASG.DetachInstances(ctx, &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String(r.g.Name),
			InstanceIds: []string{r.req.InstanceID}, ShouldDecrementDesiredCapacity: aws.Bool(false)})
		return err
	})
	if err != nil {
		if still, err2 := w.detachable(ctx, r.g.Name, r.req.InstanceID); err2 == nil && !still {
			return nil // it left on its own between the check and the call
		}
		return fmt.Errorf("detaching %s from group %s without decrementing its desired capacity: %w", r.req.InstanceID, r.g.Name, err)
	}
	r.progress(StepWarmDetach, r.req.InstanceID+" detached; group "+r.g.Name+" draws on its warm pool", false, nil)
	return nil
}

// warmTake identifies the instance the group brought in from its warm pool, claims it and
// journals it as the replacement; or, when nothing usable arrives, switches the journal to the
// cold fallback.
func (r *run) warmTake(ctx context.Context) error {
	w := r.w
	if r.newID != "" {
		return nil // journaled before a crash and verified by execute
	}
	az, err := r.warmAZ(ctx)
	if err != nil {
		return err
	}
	giveUpAt := w.clock().Now().Add(warmArrival)
	why := ""
	err = w.poll(ctx, "group "+r.g.Name+" to bring in a warmed instance for "+r.req.InstanceID, warmArrival+w.timeouts().Visible, func(ctx context.Context) (bool, error) {
		id, unusable, filled, err := r.warmCandidate(ctx, az)
		if err != nil || id != "" {
			if id != "" {
				claimed, cerr := r.claimWarm(ctx, id)
				if cerr != nil || !claimed {
					return false, cerr
				}
			}
			return id != "", err
		}
		switch {
		case filled && unusable != "":
			why = unusable
		case filled:
			why = "the group filled its place with an instance not from its warm pool (the pool ran dry)"
		case !w.clock().Now().Before(giveUpAt):
			why = fmt.Sprintf("the group brought in no warmed instance within %s", warmArrival)
		default:
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if r.newID != "" {
		return nil
	}
	return r.warmFallback(ctx, why)
}

// warmCandidate looks for the instance the group brought in from its warm pool since the journal
// was started: id is a usable one (a member in az with nothing at the data device, unclaimed or
// claimed by this replacement); otherwise unusable says why the ones found are not, and filled
// reports that the group has as many members as it wants (its place is filled).
func (r *run) warmCandidate(ctx context.Context, az string) (id, unusable string, filled bool, err error) {
	w := r.w
	g, err := w.describeGroup(ctx, r.g.Name)
	if err != nil {
		return "", "", false, err
	}
	live := 0
	for _, m := range g.Instances {
		if aws.ToString(m.InstanceId) == r.req.InstanceID {
			continue
		}
		switch st := string(m.LifecycleState); {
		case st == string(astypes.LifecycleStateInService), strings.HasPrefix(st, "Pending"):
			live++
		}
	}
	filled = live >= int(aws.ToInt32(g.DesiredCapacity))
	ids, err := w.warmLaunched(ctx, r.g.Name, r.journal.Started)
	if err != nil {
		return "", "", filled, err
	}
	var whys []string
	for _, cand := range ids {
		if _, member := memberState(g, cand); !member {
			continue
		}
		inst, err := w.describeInstance(ctx, cand)
		if err != nil {
			if awsapi.IsNotFound(err) {
				continue
			}
			return "", "", filled, err
		}
		if claim := instanceTag(inst.Tags, groupconfig.StateReplaces); claim != "" && claim != r.req.InstanceID {
			continue // another replacement's
		}
		switch st := stateName(inst); st {
		case "pending", "running", "stopped":
		default:
			whys = append(whys, fmt.Sprintf("the group brought in %s from its warm pool, which is %s", cand, st))
			continue
		}
		if got := placementAZ(inst); got != az {
			whys = append(whys, fmt.Sprintf("the group brought in %s from its warm pool in %s, not in the data's %s (it stays a plain member)", cand, got, az))
			continue
		}
		if dev := r.heldDataDevice(inst); dev != "" {
			whys = append(whys, fmt.Sprintf("the group brought in %s from its warm pool with a volume of its own at %s", cand, dev))
			continue
		}
		return cand, "", filled, nil
	}
	return "", strings.Join(whys, "; "), filled, nil
}

// warmLaunched lists the instances the group launched from its warm pool since since (scaling
// activities, newest first; the first page of 100 reaches far enough back for one replacement).
func (w *Workflow) warmLaunched(ctx context.Context, group string, since time.Time) ([]string, error) {
	var out *autoscaling.DescribeScalingActivitiesOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		out, err = w.ASG.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(group),
			MaxRecords: aws.Int32(100)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describing the scaling activities of group %s: %w", group, err)
	}
	var ids []string
	for _, a := range out.Activities {
		d := aws.ToString(a.Description)
		if !strings.HasPrefix(d, warmActivityPrefix) || aws.ToTime(a.StartTime).Before(since.Truncate(time.Second)) {
			continue
		}
		switch a.StatusCode {
		case astypes.ScalingActivityStatusCodeFailed, astypes.ScalingActivityStatusCodeCancelled:
			continue
		}
		ids = append(ids, strings.TrimSpace(strings.TrimPrefix(d, warmActivityPrefix)))
	}
	return ids, nil
}

// claimWarm claims a warmed instance for this replacement: the claim tag written, settled and
// read back (a rival replacement in the same group may have claimed it at the same time), then
// journaled. It reports false, changing nothing of ours, when a rival's claim won.
func (r *run) claimWarm(ctx context.Context, id string) (bool, error) {
	w := r.w
	if err := w.tagResource(ctx, id, map[string]string{groupconfig.StateReplaces: r.req.InstanceID, groupconfig.TagGroup: r.g.Name}); err != nil {
		return false, fmt.Errorf("claiming warmed instance %s: %w", id, err)
	}
	if err := w.clock().Sleep(ctx, w.leaseSettle()); err != nil {
		return false, err
	}
	inst, err := w.describeInstance(ctx, id)
	if err != nil {
		return false, err
	}
	if instanceTag(inst.Tags, groupconfig.StateReplaces) != r.req.InstanceID {
		return false, nil
	}
	r.newID = id
	r.res.New = id
	r.res.Warm = true
	if err := r.set(ctx, "warmed replacement "+id, func(j *Journal) { j.Replacement = id }); err != nil {
		return false, err
	}
	for _, dv := range r.plan.Volumes {
		if err := w.tagResource(ctx, dv.ID, map[string]string{groupconfig.StateMovingTo: id}); err != nil {
			return false, fmt.Errorf("journaling volume %s: %w", dv.ID, err)
		}
	}
	r.progress(StepWarmTake, "took "+id+" from the warm pool of group "+r.g.Name, false, nil)
	return true, nil
}

// warmFallback switches the journal to the cold launch from its launch step: the old instance is
// already retired and detached; the cold route's detach step then gives the group back its size.
func (r *run) warmFallback(ctx context.Context, why string) error {
	r.res.Warnings = append(r.res.Warnings, "warm pool: "+why+"; launching cold")
	r.progress(StepWarmTake, why+": falling back to the cold launch", false, nil)
	return r.set(ctx, "the fallback to the cold launch", func(j *Journal) {
		j.Options = slices.DeleteFunc(j.Options, func(o string) bool { return o == optWarm })
		j.Options = append(j.Options, optWarmFallback)
		j.Desired = -1
		j.Replacement = ""
	})
}

// warmJoin waits until the group has the warmed instance InService. It is already a member: the
// group brought it in.
func (r *run) warmJoin(ctx context.Context) error {
	if r.newID == "" {
		return errors.New("journal of " + r.req.InstanceID + " names no warmed replacement")
	}
	return r.w.waitInService(ctx, r.g.Name, r.newID, "warmed replacement")
}

// verifyWarm checks a warm route's journaled replacement: claimed for this instance, still
// carrying Auto Scaling's own tag of this group, and launched from the group's warm pool after the
// journal was started (a scaling activity says so; only Auto Scaling writes those).
func (r *run) verifyWarm(ctx context.Context, id string, inst ec2types.Instance) (string, error) {
	switch {
	case instanceTag(inst.Tags, groupconfig.StateReplaces) != r.req.InstanceID:
		return fmt.Sprintf("%s was not claimed to replace it (its %s tag is %q)", id, groupconfig.StateReplaces, instanceTag(inst.Tags, groupconfig.StateReplaces)), nil
	case instanceTag(inst.Tags, asgGroupNameTag) != r.g.Name:
		return fmt.Sprintf("%s is not a member of group %s (its %s tag is %q)", id, r.g.Name, asgGroupNameTag, instanceTag(inst.Tags, asgGroupNameTag)), nil
	}
	ids, err := r.w.warmLaunched(ctx, r.g.Name, r.journal.Started)
	if err != nil {
		return "", err
	}
	if !slices.Contains(ids, id) {
		return fmt.Sprintf("group %s has no scaling activity that launched %s from its warm pool since %s", r.g.Name, id, r.journal.Started.UTC().Format(time.RFC3339)), nil
	}
	return "", nil
}

func placementAZ(inst ec2types.Instance) string {
	if inst.Placement == nil {
		return ""
	}
	return aws.ToString(inst.Placement.AvailabilityZone)
}

func hasDevice(inst ec2types.Instance, dev string) bool {
	for _, bd := range inst.BlockDeviceMappings {
		if groupconfig.SameDevice(aws.ToString(bd.DeviceName), dev) {
			return true
		}
	}
	return false
}

// heldDataDevice returns the first of the group's data devices at which inst already has a
// volume, or "".
func (r *run) heldDataDevice(inst ec2types.Instance) string {
	for _, dd := range r.cfg.DataDevices() {
		if hasDevice(inst, dd.Device) {
			return dd.Device
		}
	}
	return ""
}
