package replace

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// call runs one API call of the workflow: the one place every AWS call passes through. Retries
// are the SDK's alone (awsapi.RetryPolicy: throttling retried with backoff, capacity errors
// final); the workflow adds none, so a call is never tried 10 × 20 times.
func (w *Workflow) call(ctx context.Context, fn func(context.Context) error) error {
	return fn(ctx)
}

func (w *Workflow) pollMin() time.Duration {
	if w.PollMin <= 0 {
		return time.Second
	}
	return w.PollMin
}

func (w *Workflow) pollMax() time.Duration {
	if w.PollMax <= 0 {
		return 15 * time.Second
	}
	return w.PollMax
}

// poll calls check with a growing real-time interval until it reports done, fails, or timeout
// (in the workflow clock's time) passes.
func (w *Workflow) poll(ctx context.Context, what string, timeout time.Duration, check func(context.Context) (bool, error)) error {
	deadline := w.clock().Now().Add(timeout)
	wait := w.pollMin()
	for {
		done, err := check(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if w.clock().Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*3/2, w.pollMax())
	}
}

func (w *Workflow) describeInstance(ctx context.Context, id string) (ec2types.Instance, error) {
	var out *ec2.DescribeInstancesOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		out, err = w.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		return err
	})
	if err != nil {
		if awsapi.IsNotFound(err) {
			return ec2types.Instance{}, &awsapi.NotFoundError{Kind: "instance", Name: id}
		}
		return ec2types.Instance{}, fmt.Errorf("describing instance %s: %w", id, err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if aws.ToString(in.InstanceId) == id {
				return in, nil
			}
		}
	}
	return ec2types.Instance{}, &awsapi.NotFoundError{Kind: "instance", Name: id}
}

// describeLaunched describes an instance spotmax launched. Right after RunInstances, EC2's
// eventually consistent API may answer InvalidInstanceID.NotFound: that means "not visible yet",
// not "gone", and is polled through for up to Timeouts.Visible.
func (w *Workflow) describeLaunched(ctx context.Context, id string) (ec2types.Instance, error) {
	var inst ec2types.Instance
	err := w.fresh(ctx, id, func(ctx context.Context) (err error) {
		inst, err = w.describeInstance(ctx, id)
		return err
	})
	return inst, err
}

// fresh runs fn, a call naming an instance spotmax launched, polling through NotFound answers for
// up to Timeouts.Visible (EC2's eventual consistency).
func (w *Workflow) fresh(ctx context.Context, id string, fn func(context.Context) error) error {
	var last error
	err := w.poll(ctx, "instance "+id+" to be visible", w.timeouts().Visible, func(ctx context.Context) (bool, error) {
		last = fn(ctx)
		if last != nil && awsapi.IsNotFound(last) {
			return false, nil
		}
		return true, last
	})
	if err != nil && last != nil && awsapi.IsNotFound(last) {
		return last
	}
	return err
}

// waitInstance polls an instance spotmax launched until ok says its state is reached.
func (w *Workflow) waitInstance(ctx context.Context, id string, timeout time.Duration, ok func(state string) (bool, error)) (ec2types.Instance, error) {
	var inst ec2types.Instance
	err := w.poll(ctx, "instance "+id, timeout, func(ctx context.Context) (bool, error) {
		var err error
		inst, err = w.describeLaunched(ctx, id)
		if err != nil {
			return false, err
		}
		return ok(stateName(inst))
	})
	return inst, err
}

// waitRunning waits until a freshly launched instance (what names it in errors) runs; an
// instance that goes anywhere but running is an error.
func (w *Workflow) waitRunning(ctx context.Context, id, what string) (ec2types.Instance, error) {
	return w.waitInstance(ctx, id, w.timeouts().Running, func(st string) (bool, error) {
		switch st {
		case "running":
			return true, nil
		case "pending":
			return false, nil
		}
		return false, fmt.Errorf("%s %s is %s", what, id, st)
	})
}

// findReplacement returns a live instance launched to replace old (tagged at launch), if any.
func (w *Workflow) findReplacement(ctx context.Context, old string) (string, error) {
	return w.findLaunched(ctx, groupconfig.StateReplaces, old)
}

// findLaunched returns a live instance tagged key=value at its launch, if any: what a workflow
// resumed after a crash adopts instead of launching a second one.
func (w *Workflow) findLaunched(ctx context.Context, key, value string) (string, error) {
	var out *ec2.DescribeInstancesOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		out, err = w.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
			{Name: aws.String("tag:" + key), Values: []string{value}},
			{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
		}})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("looking for an instance launched with %s=%s: %w", key, value, err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			return aws.ToString(in.InstanceId), nil
		}
	}
	return "", nil
}

func (w *Workflow) tagInstance(ctx context.Context, id string, tags map[string]string) error {
	return w.tagResource(ctx, id, tags)
}

func (w *Workflow) tagResource(ctx context.Context, id string, tags map[string]string) error {
	return w.tagResources(ctx, []string{id}, tags)
}

// tagResources writes the same tags on several resources in one CreateTags call.
func (w *Workflow) tagResources(ctx context.Context, ids []string, tags map[string]string) error {
	var ts []ec2types.Tag
	for k, v := range tags {
		ts = append(ts, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return w.call(ctx, func(ctx context.Context) error {
		_, err := w.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: ts})
		return err
	})
}

func (w *Workflow) untagResource(ctx context.Context, id string, keys ...string) error {
	var ts []ec2types.Tag
	for _, k := range keys {
		ts = append(ts, ec2types.Tag{Key: aws.String(k)})
	}
	err := w.call(ctx, func(ctx context.Context) error {
		_, err := w.EC2.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{id}, Tags: ts})
		return err
	})
	if err != nil && !awsapi.IsNotFound(err) {
		return fmt.Errorf("removing tags from %s: %w", id, err)
	}
	return nil
}

// terminateLaunched terminates an instance spotmax launched and waits until EC2 confirms it is
// shutting down or terminated; NotFound is "not visible yet" (describeLaunched), never "gone".
func (w *Workflow) terminateLaunched(ctx context.Context, id string) error {
	return w.poll(ctx, "instance "+id+" to terminate", w.timeouts().Running, func(ctx context.Context) (bool, error) {
		inst, err := w.describeLaunched(ctx, id)
		if err != nil {
			return false, err
		}
		switch stateName(inst) {
		case "shutting-down", "terminated":
			return true, nil
		}
		err = w.fresh(ctx, id, func(ctx context.Context) error {
			_, err := w.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
			return err
		})
		if err != nil {
			return false, fmt.Errorf("terminating %s: %w", id, err)
		}
		return false, nil
	})
}

// terminate terminates an instance unless it is already gone. For an instance spotmax did not
// just launch, NotFound means gone (EC2 lists terminated instances for about an hour).
func (w *Workflow) terminate(ctx context.Context, id string) error {
	inst, err := w.describeInstance(ctx, id)
	if err != nil {
		if awsapi.IsNotFound(err) {
			return nil
		}
		return err
	}
	switch stateName(inst) {
	case "shutting-down", "terminated":
		return nil
	}
	err = w.call(ctx, func(ctx context.Context) error {
		_, err := w.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
		return err
	})
	if err != nil && !awsapi.IsNotFound(err) {
		return fmt.Errorf("terminating %s: %w", id, err)
	}
	return nil
}

func (w *Workflow) describeGroup(ctx context.Context, name string) (astypes.AutoScalingGroup, error) {
	var out *autoscaling.DescribeAutoScalingGroupsOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		out, err = w.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
		return err
	})
	if err != nil {
		return astypes.AutoScalingGroup{}, fmt.Errorf("describing group %s: %w", name, err)
	}
	if len(out.AutoScalingGroups) == 0 {
		return astypes.AutoScalingGroup{}, &awsapi.NotFoundError{Kind: "Auto Scaling group", Name: name}
	}
	return out.AutoScalingGroups[0], nil
}

func memberState(g astypes.AutoScalingGroup, id string) (string, bool) {
	for _, m := range g.Instances {
		if aws.ToString(m.InstanceId) == id {
			return string(m.LifecycleState), true
		}
	}
	return "", false
}

func (w *Workflow) groupMember(ctx context.Context, group, id string) (bool, error) {
	g, err := w.describeGroup(ctx, group)
	if err != nil {
		return false, err
	}
	_, ok := memberState(g, id)
	return ok, nil
}

// detachable reports whether an instance is in the group in a state DetachInstances accepts
// (InService, Standby). One terminated by AWS while a member is on its way out instead.
func (w *Workflow) detachable(ctx context.Context, group, id string) (bool, error) {
	g, err := w.describeGroup(ctx, group)
	if err != nil {
		return false, err
	}
	st, ok := memberState(g, id)
	if !ok {
		return false, nil
	}
	switch astypes.LifecycleState(st) {
	case astypes.LifecycleStateInService, astypes.LifecycleStateStandby:
		return true, nil
	}
	return false, nil
}

// waitInService waits until an instance just attached to the group is InService. Auto Scaling's
// describes may not list an attached instance for a while (eventual consistency): absence is
// "not listed yet" for Timeouts.Visible, and only then "it left the group". what names the
// instance in errors ("replacement", "stand-in").
func (w *Workflow) waitInService(ctx context.Context, group, id, what string) error {
	listedBy := w.clock().Now().Add(w.timeouts().Visible)
	return w.waitMember(ctx, group, id, w.timeouts().InService, func(st string, present bool) (bool, error) {
		if !present {
			if w.clock().Now().Before(listedBy) {
				return false, nil
			}
			return false, fmt.Errorf("%s %s left group %s", what, id, group)
		}
		return st == string(astypes.LifecycleStateInService), nil
	})
}

// waitMember polls the group until ok says the instance's membership is as wanted.
func (w *Workflow) waitMember(ctx context.Context, group, id string, timeout time.Duration, ok func(state string, present bool) (bool, error)) error {
	return w.poll(ctx, fmt.Sprintf("%s in group %s", id, group), timeout, func(ctx context.Context) (bool, error) {
		g, err := w.describeGroup(ctx, group)
		if err != nil {
			return false, err
		}
		st, present := memberState(g, id)
		return ok(st, present)
	})
}

// attachToGroup attaches an instance, raising MaxSize first when the group is full. The MaxSize to
// restore is journaled on the group before it is raised. Replacements running side by side in
// one group race for the same headroom: an attach refused for the group's size is retried with
// fresh numbers.
func (w *Workflow) attachToGroup(ctx context.Context, group, id string) error {
	return w.attach(ctx, group, id, true)
}

// attachToGroupHeld is attachToGroup for a caller that holds the group's size lock
// (lockGroupSize) around more than the attach.
func (w *Workflow) attachToGroupHeld(ctx context.Context, group, id string) error {
	return w.attach(ctx, group, id, false)
}

func (w *Workflow) attach(ctx context.Context, group, id string, lock bool) error {
	return w.poll(ctx, "room in group "+group+" for "+id, w.timeouts().InService, func(ctx context.Context) (bool, error) {
		if lock {
			unlock := w.lockGroupSize(group)
			defer unlock()
		}
		g, err := w.describeGroup(ctx, group)
		if err != nil {
			return false, err
		}
		if _, ok := memberState(g, id); ok {
			return true, nil
		}
		if err := w.suspendAZRebalance(ctx, g); err != nil {
			return false, err
		}
		desired, maxSize := aws.ToInt32(g.DesiredCapacity), aws.ToInt32(g.MaxSize)
		if desired+1 > maxSize {
			if _, journaled := groupTag(g, groupconfig.StateGroupMaxSize); !journaled {
				if err := w.tagGroup(ctx, group, groupconfig.StateGroupMaxSize, strconv.Itoa(int(maxSize))); err != nil {
					return false, err
				}
			}
			err := w.call(ctx, func(ctx context.Context) error {
				_, err := w.ASG.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
					AutoScalingGroupName: aws.String(group), MaxSize: aws.Int32(desired + 1)})
				return err
			})
			if err != nil {
				return false, fmt.Errorf("raising MaxSize of group %s to %d: %w", group, desired+1, err)
			}
		}
		err = w.call(ctx, func(ctx context.Context) error {
			_, err := w.ASG.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String(group), InstanceIds: []string{id}})
			return err
		})
		switch {
		case err == nil:
			return true, nil
		case awsapi.Code(err) == "ValidationError" && strings.Contains(err.Error(), "update the AutoScalingGroup sizes"):
			return false, nil // another attach took the room; look again
		case awsapi.Code(err) == "ValidationError" && strings.Contains(err.Error(), "already part of the Auto Scaling group "+group+"."):
			// Attached before (a resumed join), not listed yet: Auto Scaling's describes are
			// eventually consistent after an attach.
			return true, nil
		case awsapi.Code(err) == "ValidationError" && strings.Contains(err.Error(), "Instance Id not found"):
			return false, nil // EC2 does not show the new instance to Auto Scaling yet
		}
		return false, fmt.Errorf("attaching %s to group %s: %w", id, group, err)
	})
}

// detachFromGroup detaches an instance with ShouldDecrementDesiredCapacity, so that the group
// does not launch an instance of its own, and with wait, waits until it is gone from the group:
// a member of a group with load balancers stays Detaching for their deregistration delay or
// connection-draining timeout (300 s by default), which a proactive replacement honours.
//
// The call holds the group's size lock: it lowers the desired capacity, and a stand-in that read
// the capacity before it and sets it back after its own attach would otherwise undo this
// decrement (TestFillAndReplacementInOneGroupAtOnce).
func (w *Workflow) detachFromGroup(ctx context.Context, group, id string, wait bool) error {
	unlock := w.lockGroupSize(group)
	err := w.call(ctx, func(ctx context.Context) error {
		_, err := w.ASG.DetachInstances(ctx, &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String(group),
			InstanceIds: []string{id}, ShouldDecrementDesiredCapacity: aws.Bool(true)})
		return err
	})
	unlock()
	if err != nil {
		return fmt.Errorf("detaching %s from group %s: %w", id, group, err)
	}
	if !wait {
		return nil
	}
	return w.waitMember(ctx, group, id, w.timeouts().Detach, func(_ string, present bool) (bool, error) { return !present, nil })
}

// RestoreMaxSize puts back the MaxSize journaled on a group by a replacement that raised it, once
// no instance of the group is still waiting to be detached. It is idempotent and safe to call
// from a reconcile loop.
func (w *Workflow) RestoreMaxSize(ctx context.Context, group string) error {
	unlock := w.lockGroupSize(group)
	defer unlock()
	g, err := w.describeGroup(ctx, group)
	if err != nil {
		return err
	}
	v, ok := groupTag(g, groupconfig.StateGroupMaxSize)
	if !ok {
		return nil
	}
	base, err := strconv.Atoi(v)
	if err != nil || base < 0 {
		return fmt.Errorf("group %s: journaled MaxSize %q is not a number", group, v)
	}
	if desired := aws.ToInt32(g.DesiredCapacity); int(desired) > base {
		// Another replacement still has an extra member in the group; it restores MaxSize later.
		return nil
	}
	if aws.ToInt32(g.MaxSize) != int32(base) {
		err := w.call(ctx, func(ctx context.Context) error {
			_, err := w.ASG.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
				AutoScalingGroupName: aws.String(group), MaxSize: aws.Int32(int32(base))})
			return err
		})
		if err != nil {
			return fmt.Errorf("restoring MaxSize of group %s to %d: %w", group, base, err)
		}
	}
	return w.call(ctx, func(ctx context.Context) error {
		_, err := w.ASG.DeleteTags(ctx, &autoscaling.DeleteTagsInput{Tags: []astypes.Tag{{
			ResourceId: aws.String(group), ResourceType: aws.String("auto-scaling-group"), Key: aws.String(groupconfig.StateGroupMaxSize)}}})
		return err
	})
}

// lockGroupSize serialises the changes of a group's size among the runs of this process (every
// attach, detach with a decrement, MaxSize restore, take-back and stand-in): lowering MaxSize
// from a stale read could push it below a desired capacity that another replacement just
// raised, and AWS would then scale the group in; a desired capacity set back from a stale read
// would undo another run's change. (Two processes never act
// on one region at once: the controller runs with leader election.)
func (w *Workflow) lockGroupSize(group string) func() {
	v, _ := w.sizeLocks.LoadOrStore(group, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func groupTag(g astypes.AutoScalingGroup, key string) (string, bool) {
	for _, t := range g.Tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value), true
		}
	}
	return "", false
}

func (w *Workflow) tagGroup(ctx context.Context, group, key, value string) error {
	err := w.call(ctx, func(ctx context.Context) error {
		_, err := w.ASG.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{{
			ResourceId: aws.String(group), ResourceType: aws.String("auto-scaling-group"),
			Key: aws.String(key), Value: aws.String(value), PropagateAtLaunch: aws.Bool(false)}}})
		return err
	})
	if err != nil {
		return fmt.Errorf("journaling %s on group %s: %w", key, group, err)
	}
	return nil
}

// suspendAZRebalance suspends the group's AZRebalance process before spotmax attaches an
// instance. AWS's AZRebalance evens out zones by launching in one and terminating a member in
// another — terminating an instance whose data volume spotmax keeps, or the replacement it just
// placed in its volume's zone. spotmax places instances itself (the data volume's AZ, else the
// AZ with the fewest members), so the process stays suspended; `spotmax group status` shows it.
func (w *Workflow) suspendAZRebalance(ctx context.Context, g astypes.AutoScalingGroup) error {
	for _, p := range g.SuspendedProcesses {
		if aws.ToString(p.ProcessName) == "AZRebalance" {
			return nil
		}
	}
	name := aws.ToString(g.AutoScalingGroupName)
	err := w.call(ctx, func(ctx context.Context) error {
		_, err := w.ASG.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String(name),
			ScalingProcesses: []string{"AZRebalance"}})
		return err
	})
	if err != nil {
		return fmt.Errorf("suspending AZRebalance of group %s: %w", name, err)
	}
	w.log().Info("AZRebalance suspended: spotmax places the group's instances itself", "group", name)
	return nil
}
