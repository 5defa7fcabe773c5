package sim_test

import (
	"context"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

// TestWarmPoolFillsADetachWithoutDecrement: a member detached without decrementing the desired
// capacity is replaced from the warm pool (DetachInstances: "Amazon EC2 Auto Scaling launches
// instances to replace the ones that are detached"; PutWarmPool: the group "draws on the warm
// pool to meet its new desired capacity"), in the detached member's AZ when the pool has a warmed
// instance there, else from another AZ — never a cold launch in the short AZ instead. The started
// instance's LaunchTime is its start, as EC2 reports the most recent one.
func TestWarmPoolFillsADetachWithoutDecrement(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	r := env.Region()
	lt := asgTemplate(env, "web", false)
	createGroup(t, c, "web", lt, 0, 3, 3)
	g := waitGroup(t, env, c, "web", "3 InService", inService(3))
	if _, err := c.PutWarmPool(ctx, &autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String("web"), MinSize: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	out := waitWarm(t, r, c, "web", "2 Warmed:Stopped", func(o *autoscaling.DescribeWarmPoolOutput) bool {
		return warmStates(o, "Warmed:Stopped") == 2
	})
	pooled := map[string]string{} // id → AZ
	for _, in := range out.Instances {
		pooled[aws.ToString(in.InstanceId)] = aws.ToString(in.AvailabilityZone)
	}
	memberIn := func(g types.AutoScalingGroup, want func(az string) bool) string {
		for _, m := range g.Instances {
			if want(aws.ToString(m.AvailabilityZone)) && m.LifecycleState == types.LifecycleStateInService {
				return aws.ToString(m.InstanceId)
			}
		}
		t.Fatalf("no member fits: %s", groupSummary(g))
		return ""
	}
	hasWarm := func(az string) bool {
		for _, a := range pooled {
			if a == az {
				return true
			}
		}
		return false
	}
	detach := func(id string) string {
		t.Helper()
		before := map[string]bool{}
		for _, m := range describeGroup(t, c, "web").Instances {
			before[aws.ToString(m.InstanceId)] = true
		}
		if _, err := c.DetachInstances(ctx, &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String("web"),
			InstanceIds: []string{id}, ShouldDecrementDesiredCapacity: aws.Bool(false)}); err != nil {
			t.Fatal(err)
		}
		r.Step()
		g := describeGroup(t, c, "web")
		if aws.ToInt32(g.DesiredCapacity) != 3 {
			t.Errorf("desired = %d after a detach without decrement, want 3", aws.ToInt32(g.DesiredCapacity))
		}
		for _, m := range g.Instances {
			if nid := aws.ToString(m.InstanceId); !before[nid] {
				return nid
			}
		}
		t.Fatalf("the group brought in nothing for %s: %s", id, groupSummary(g))
		return ""
	}

	// The pool has a warmed instance in the detached member's AZ: that AZ is short, and gets it.
	old := memberIn(g, hasWarm)
	oldIn, _ := r.Instance(old)
	w := detach(old)
	wIn, _ := r.Instance(w)
	if _, ok := pooled[w]; !ok || wIn.AZ != oldIn.AZ {
		t.Errorf("the group brought in %s in %s; want a warmed instance in %s (pool %v)", w, wIn.AZ, oldIn.AZ, pooled)
	}
	if !slices.ContainsFunc(activities(t, c, "web"), func(a types.Activity) bool {
		return aws.ToString(a.Description) == "Launching a new EC2 instance from warm pool: "+w
	}) {
		t.Errorf("no scaling activity names the warm pool launch of %s", w)
	}
	if !wIn.LaunchTime.After(oldIn.LaunchTime) {
		t.Errorf("LaunchTime of the started %s is %s, not after the members' %s: EC2 reports the most recent start", w, wIn.LaunchTime, oldIn.LaunchTime)
	}
	waitGroup(t, env, c, "web", "3 InService", inService(3))
	out = waitWarm(t, r, c, "web", "2 Warmed:Stopped", func(o *autoscaling.DescribeWarmPoolOutput) bool {
		return len(o.Instances) == 2 && warmStates(o, "Warmed:Stopped") == 2
	})
	pooled = map[string]string{}
	for _, in := range out.Instances {
		pooled[aws.ToString(in.InstanceId)] = aws.ToString(in.AvailabilityZone)
	}

	// None in the detached member's AZ: the group takes the warmed instance it has elsewhere.
	g = describeGroup(t, c, "web")
	old = memberIn(g, func(az string) bool { return !hasWarm(az) })
	oldIn, _ = r.Instance(old)
	w = detach(old)
	wIn, _ = r.Instance(w)
	if _, ok := pooled[w]; !ok || wIn.AZ == oldIn.AZ {
		t.Errorf("the group brought in %s in %s; want the pool's warmed instance from another AZ than %s (pool %v)", w, wIn.AZ, oldIn.AZ, pooled)
	}
}
