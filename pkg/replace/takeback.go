package replace

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

// takeBackExtraMember handles an old instance that left the group without being detached (a spot
// instance terminated at the end of its notice while still a member): the replacement's attach
// raised the desired capacity by one and nothing lowered it, so the group launches a member of its
// own in the old one's place. That member is terminated with the desired capacity decremented, so
// the group is back to its size and the replacement, which holds the data, stays.
//
// Whether a member is owed back is read from AWS, never from a desired capacity remembered
// earlier: with other replacements in the group at the same time, a count journaled by one
// includes the others' extra members, and comparing against it left groups one member short or
// one over (found by TestControllerSoak on a loaded machine).
//
//  1. The group's scaling activity for the old instance's exit says whether the desired capacity
//     went down with it ("shrinking the capacity from N to N-1", as Auto Scaling words it): a
//     detach with decrement (ours, before a crash, or someone else's). Then nothing is owed.
//  2. Otherwise the member the group launched after that exit is taken back. Which one is
//     journaled (spotmax:state:take_back) before it is terminated; a resume that finds it
//     journaled checks that member's own exit instead of choosing again. Members are chosen under
//     the group's size lock, and one taken back for another lost instance is never chosen twice.
//  3. When the group cannot launch (its template asks for spot and spot is gone — the usual reason
//     for an interruption), the desired capacity is set from its current value N to N-1 instead,
//     journaled as "desired:N" first, with the replacement protected from the scale-in.
func (r *run) takeBackExtraMember(ctx context.Context) error {
	w := r.w
	if r.journal.Desired < 0 {
		return nil // not journaled: the replacement never joined, so nothing was added
	}
	var exit *astypes.Activity
	var callErr error
	err := w.poll(ctx, "the scaling activity of "+r.req.InstanceID+"'s exit from group "+r.g.Name, w.timeouts().Visible, func(ctx context.Context) (bool, error) {
		exit, callErr = w.exitActivity(ctx, r.g.Name, r.req.InstanceID)
		return exit != nil, callErr
	})
	if exit == nil && (callErr != nil || ctx.Err() != nil) {
		return err // a failed call or a stop: the journal stays, a resume asks again
	}
	if exit == nil {
		// Activities are eventually consistent too, and kept for six weeks. Without one, whether
		// the desired capacity went down is unknown: decrementing it again could take a serving
		// member away, so it is left as it is and said.
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s left group %s and no scaling activity says how (%v); the group's desired capacity is left as it is: check that it has no extra member",
			r.req.InstanceID, r.g.Name, err))
		return nil
	}
	if shrank(exit) {
		return nil
	}
	since := aws.ToTime(exit.StartTime)
	giveUpAt := w.clock().Now().Add(min(w.timeouts().InService, extraMemberWait))
	return w.poll(ctx, "group "+r.g.Name+" to launch for the lost "+r.req.InstanceID, w.timeouts().InService, func(ctx context.Context) (bool, error) {
		unlock := w.lockGroupSize(r.g.Name)
		defer unlock()
		return r.takeBackOnce(ctx, since, giveUpAt)
	})
}

// takeBackOnce makes one attempt of takeBackExtraMember's steps 2 and 3, with the group's size
// lock held; it reports whether the member is taken back.
func (r *run) takeBackOnce(ctx context.Context, since, giveUpAt time.Time) (bool, error) {
	w := r.w
	g, err := w.describeGroup(ctx, r.g.Name)
	if err != nil {
		return false, err
	}
	desired := int(aws.ToInt32(g.DesiredCapacity))
	if tb := r.journal.TakeBack; tb != "" {
		if !strings.HasPrefix(tb, "desired:") {
			w.takeBacks.Store(tb, r.req.InstanceID) // a resume: chosen before the crash
		}
		if v, ok := strings.CutPrefix(tb, "desired:"); ok {
			from, err := strconv.Atoi(v)
			if err != nil {
				return false, fmt.Errorf("journal of %s: take-back %q is not a desired capacity", r.req.InstanceID, tb)
			}
			if desired != from {
				return true, nil // set before a crash (or changed by someone since: not lowered twice)
			}
			return true, w.setDesiredProtecting(ctx, r.g.Name, from-1, r.newID)
		}
		exit, err := w.exitActivity(ctx, r.g.Name, tb)
		if err != nil {
			return false, err
		}
		switch st, member := memberState(g, tb); {
		case exit != nil && shrank(exit):
			return true, nil // terminated with the decrement before a crash
		case member && (st == string(astypes.LifecycleStateInService) || strings.HasPrefix(st, "Pending")):
			return true, r.terminateExtra(ctx, tb)
		}
		// It left the group without the decrement: another member takes its place.
		w.takeBacks.Delete(tb)
	}
	extra, err := w.launchedSince(ctx, g, since, r.newID)
	if err != nil {
		return false, err
	}
	if extra == "" {
		if w.clock().Now().After(giveUpAt) && !hasPendingMember(g, r.newID) {
			if err := r.set(ctx, "the take-back of group "+r.g.Name+"'s extra member", func(j *Journal) { j.TakeBack = "desired:" + strconv.Itoa(desired) }); err != nil {
				return false, err
			}
			return true, w.setDesiredProtecting(ctx, r.g.Name, desired-1, r.newID)
		}
		return false, nil // the group has not launched its own member yet
	}
	w.takeBacks.Store(extra, r.req.InstanceID)
	if err := r.set(ctx, "the take-back of group "+r.g.Name+"'s extra member", func(j *Journal) { j.TakeBack = extra }); err != nil {
		return false, err
	}
	r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s left group %s before it could be detached; terminating %s, which the group launched in its place",
		r.req.InstanceID, r.g.Name, extra))
	return true, r.terminateExtra(ctx, extra)
}

// terminateExtra terminates a member the group launched in a lost instance's place, with the
// desired capacity decremented.
func (r *run) terminateExtra(ctx context.Context, id string) error {
	w := r.w
	err := w.call(ctx, func(ctx context.Context) error {
		_, err := w.ASG.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
			InstanceId: aws.String(id), ShouldDecrementDesiredCapacity: aws.Bool(true)})
		return err
	})
	if err != nil {
		return fmt.Errorf("terminating %s in group %s: %w", id, r.g.Name, err)
	}
	return nil
}

// extraMemberWait is how long the detach step waits for the group to launch a member in place of
// an instance it lost before setting the desired capacity back itself.
const extraMemberWait = 2 * time.Minute

// activityPages bounds how far back the group's scaling activities are read (100 a page, newest
// first): far enough for the few minutes a replacement takes in any group spotmax runs.
const activityPages = 5

// scanActivities reads the group's scaling activities, newest first, until visit returns true or
// activityPages pages are read.
func (w *Workflow) scanActivities(ctx context.Context, group string, visit func(astypes.Activity) bool) error {
	var token *string
	for range activityPages {
		var out *autoscaling.DescribeScalingActivitiesOutput
		err := w.call(ctx, func(ctx context.Context) (err error) {
			out, err = w.ASG.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(group),
				MaxRecords: aws.Int32(100), NextToken: token})
			return err
		})
		if err != nil {
			return fmt.Errorf("describing the scaling activities of group %s: %w", group, err)
		}
		for _, a := range out.Activities {
			if visit(a) {
				return nil
			}
		}
		if token = out.NextToken; token == nil {
			return nil
		}
	}
	return nil
}

// exitActivity returns the group's latest activity that took instance id out of it (terminated
// or detached), or nil.
func (w *Workflow) exitActivity(ctx context.Context, group, id string) (*astypes.Activity, error) {
	var found *astypes.Activity
	err := w.scanActivities(ctx, group, func(a astypes.Activity) bool {
		switch aws.ToString(a.Description) {
		case "Terminating EC2 instance: " + id, "Detaching EC2 instance: " + id:
			found = &a
			return true
		}
		return false
	})
	return found, err
}

// shrank reports whether an exit activity lowered the group's desired capacity.
func shrank(a *astypes.Activity) bool {
	return strings.Contains(aws.ToString(a.Cause), "shrinking the capacity")
}

// launchedSince returns the newest member the group launched itself or brought in from its warm
// pool (not attached: replacements and stand-ins join by attach) since since, still Pending or InService, other than except and not
// already taken back for another lost instance; "" if there is none yet.
func (w *Workflow) launchedSince(ctx context.Context, g astypes.AutoScalingGroup, since time.Time, except string) (string, error) {
	const prefix = "Launching a new EC2 instance: "
	var found string
	err := w.scanActivities(ctx, aws.ToString(g.AutoScalingGroupName), func(a astypes.Activity) bool {
		if aws.ToTime(a.StartTime).Before(since.Truncate(time.Second)) {
			return true // older than the exit: nothing further back is in its place
		}
		d := aws.ToString(a.Description)
		id, ok := strings.CutPrefix(d, prefix)
		if !ok {
			id, ok = strings.CutPrefix(d, warmActivityPrefix) // a warm pool's: brought in, not launched
		}
		if !ok || id == except {
			return false
		}
		switch a.StatusCode {
		case astypes.ScalingActivityStatusCodeFailed, astypes.ScalingActivityStatusCodeCancelled:
			return false
		}
		if _, taken := w.takeBacks.Load(id); taken {
			return false
		}
		if st, member := memberState(g, id); member && (st == string(astypes.LifecycleStateInService) || strings.HasPrefix(st, "Pending")) {
			found = id
			return true
		}
		return false
	})
	return found, err
}

// hasPendingMember reports whether the group is launching a member other than except.
func hasPendingMember(g astypes.AutoScalingGroup, except string) bool {
	for _, m := range g.Instances {
		if aws.ToString(m.InstanceId) != except && strings.HasPrefix(string(m.LifecycleState), "Pending") {
			return true
		}
	}
	return false
}
