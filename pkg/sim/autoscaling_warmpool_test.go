package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/spotmax/spotmax/pkg/sim"
)

func warmPool(t *testing.T, c *autoscaling.Client, name string) *autoscaling.DescribeWarmPoolOutput {
	t.Helper()
	out, err := c.DescribeWarmPool(context.Background(), &autoscaling.DescribeWarmPoolInput{AutoScalingGroupName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func waitWarm(t *testing.T, env interface{ Advance(time.Duration) }, c *autoscaling.Client, name, what string, cond func(*autoscaling.DescribeWarmPoolOutput) bool) *autoscaling.DescribeWarmPoolOutput {
	t.Helper()
	for i := 0; i < 300; i++ {
		if out := warmPool(t, c, name); cond(out) {
			return out
		}
		env.Advance(time.Second)
	}
	out := warmPool(t, c, name)
	t.Fatalf("warm pool of %s never reached %s: %+v", name, what, out.Instances)
	return nil
}

func warmStates(out *autoscaling.DescribeWarmPoolOutput, state string) int {
	n := 0
	for _, in := range out.Instances {
		if string(in.LifecycleState) == state {
			n++
		}
	}
	return n
}

// TestWarmPoolLifecycle: a pool fills to max − desired with stopped instances, a scale-out takes
// a warmed instance (started, not launched: it is InService after the start latency, well before
// a launch would be), the pool refills, ReuseOnScaleIn returns a scaled-in member to the pool,
// and DeleteWarmPool empties it.
func TestWarmPoolLifecycle(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lat := sim.FastLatencies()
	lat.Pending, lat.Start = 40*time.Second, 5*time.Second
	env.Region().SetLatencies(lat)
	lt := asgTemplate(env, "web", false)
	createGroup(t, c, "web", lt, 0, 4, 1)
	waitGroup(t, env, c, "web", "1 InService", inService(1))
	_, err := c.PutWarmPool(ctx, &autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String("web"), MinSize: aws.Int32(1),
		InstanceReusePolicy: &types.InstanceReusePolicy{ReuseOnScaleIn: aws.Bool(true)}})
	if err != nil {
		t.Fatal(err)
	}
	out := waitWarm(t, env.Region(), c, "web", "3 Warmed:Stopped", func(o *autoscaling.DescribeWarmPoolOutput) bool {
		return warmStates(o, "Warmed:Stopped") == 3
	})
	if cfg := out.WarmPoolConfiguration; cfg == nil || cfg.PoolState != types.WarmPoolStateStopped || aws.ToInt32(cfg.MinSize) != 1 ||
		cfg.InstanceReusePolicy == nil || !aws.ToBool(cfg.InstanceReusePolicy.ReuseOnScaleIn) {
		t.Errorf("WarmPoolConfiguration = %+v", cfg)
	}
	warm := map[string]bool{}
	for _, in := range out.Instances {
		warm[aws.ToString(in.InstanceId)] = true
		if e, _ := env.Region().Instance(aws.ToString(in.InstanceId)); e.State != sim.StateStopped {
			t.Errorf("warmed instance %s is %s, want stopped", e.ID, e.State)
		}
	}
	g := waitGroup(t, env, c, "web", "1 InService", inService(1))
	if aws.ToInt32(g.WarmPoolSize) != 3 || g.WarmPoolConfiguration == nil {
		t.Errorf("DescribeAutoScalingGroups: WarmPoolSize %d, configuration %+v", aws.ToInt32(g.WarmPoolSize), g.WarmPoolConfiguration)
	}

	// Scale out by one: a warmed instance joins, started in 5 s where a launch takes 40 s.
	if _, err := c.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	env.Region().Step()                   // the group acts on its new desired capacity
	env.Region().Advance(6 * time.Second) // and the start it began then is over
	if g = describeGroup(t, c, "web"); !inService(2)(g) {
		t.Fatalf("6 s after the scale-out: %s; want 2 InService (a warmed start takes 5 s, a launch 40 s)", groupSummary(g))
	}
	joined := ""
	for _, m := range g.Instances {
		if warm[aws.ToString(m.InstanceId)] {
			joined = aws.ToString(m.InstanceId)
		}
	}
	if joined == "" {
		t.Fatalf("the scale-out did not take a warmed instance: members %v, warm %v", g.Instances, warm)
	}
	acts := activities(t, c, "web")
	found := false
	for _, a := range acts {
		found = found || aws.ToString(a.Description) == "Launching a new EC2 instance from warm pool: "+joined
	}
	if !found {
		t.Errorf("no activity names the warm pool launch of %s", joined)
	}
	// max 4 − desired 2 = 2 in the pool.
	waitWarm(t, env.Region(), c, "web", "2 Warmed:Stopped", func(o *autoscaling.DescribeWarmPoolOutput) bool {
		return len(o.Instances) == 2 && warmStates(o, "Warmed:Stopped") == 2
	})

	// Scale in by one with ReuseOnScaleIn: the member goes back to the pool, stopped.
	if _, err := c.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, env, c, "web", "1 InService", inService(1))
	out = waitWarm(t, env.Region(), c, "web", "3 Warmed:Stopped", func(o *autoscaling.DescribeWarmPoolOutput) bool {
		return len(o.Instances) == 3 && warmStates(o, "Warmed:Stopped") == 3
	})
	reused := false
	for _, in := range out.Instances {
		id := aws.ToString(in.InstanceId)
		if id != aws.ToString(g.Instances[0].InstanceId) && !warm[id] {
			reused = true // the scaled-in member, never launched into the pool
		}
		if id == joined && aws.ToString(g.Instances[0].InstanceId) != joined {
			reused = true
		}
	}
	if !reused {
		t.Errorf("the scaled-in member did not return to the pool: %+v", out.Instances)
	}

	// DeleteWarmPool: PendingDelete while its instances terminate, then gone.
	if _, err := c.DeleteWarmPool(ctx, &autoscaling.DeleteWarmPoolInput{AutoScalingGroupName: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	if cfg := warmPool(t, c, "web").WarmPoolConfiguration; cfg == nil || cfg.Status != types.WarmPoolStatusPendingDelete {
		t.Errorf("after DeleteWarmPool: configuration %+v, want PendingDelete", cfg)
	}
	waitWarm(t, env.Region(), c, "web", "deleted", func(o *autoscaling.DescribeWarmPoolOutput) bool {
		return o.WarmPoolConfiguration == nil && len(o.Instances) == 0
	})
	_, err = c.DeleteWarmPool(ctx, &autoscaling.DeleteWarmPoolInput{AutoScalingGroupName: aws.String("web")})
	apiError(t, err, "ValidationError", "No warm pool found")
}

// TestWarmPoolValidation: PutWarmPool refuses a group with a mixed instances policy or a spot
// launch template, and bad sizes and states.
func TestWarmPoolValidation(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	createGroup(t, c, "spot", asgTemplate(env, "spot", true), 0, 2, 0)
	odLT := asgTemplate(env, "od", false)
	createGroup(t, c, "od", odLT, 0, 2, 0)
	_, err := c.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("mixed"),
		MinSize: aws.Int32(0), MaxSize: aws.Int32(2), AvailabilityZones: []string{"us-east-1a"},
		MixedInstancesPolicy: &types.MixedInstancesPolicy{LaunchTemplate: &types.LaunchTemplate{
			LaunchTemplateSpecification: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(odLT)}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in  autoscaling.PutWarmPoolInput
		msg string
	}{
		{autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String("spot")}, "requests Spot Instances"},
		{autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String("mixed")}, "mixed instances policy"},
		{autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String("od"), MinSize: aws.Int32(-1)}, "MinSize"},
		{autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String("od"), MaxGroupPreparedCapacity: aws.Int32(-2)}, "MaxGroupPreparedCapacity"},
		{autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String("od"), MinSize: aws.Int32(3), MaxGroupPreparedCapacity: aws.Int32(2)}, "cannot be greater"},
		{autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String("od"), PoolState: "Frozen"}, "poolState"},
		{autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String("nope")}, "not found"},
	} {
		_, err := c.PutWarmPool(ctx, &tc.in)
		apiError(t, err, "ValidationError", tc.msg)
	}
	if got := warmPool(t, c, "od"); got.WarmPoolConfiguration != nil || len(got.Instances) != 0 {
		t.Errorf("a refused PutWarmPool left a pool: %+v", got)
	}
}

// TestWarmPoolLaunchHook: a warmed instance leaving the pool for the group goes through the
// group's launch hook (Pending:Wait) before InService, as the user guide's warm pool lifecycle
// shows.
func TestWarmPoolLaunchHook(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	createGroup(t, c, "web", asgTemplate(env, "web", false), 0, 2, 0)
	if _, err := c.PutWarmPool(ctx, &autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String("web"), PoolState: types.WarmPoolStateRunning}); err != nil {
		t.Fatal(err)
	}
	pool := waitWarm(t, env.Region(), c, "web", "2 Warmed:Running", func(o *autoscaling.DescribeWarmPoolOutput) bool {
		return warmStates(o, "Warmed:Running") == 2
	})
	warm := map[string]bool{}
	for _, in := range pool.Instances {
		warm[aws.ToString(in.InstanceId)] = true
	}
	if _, err := c.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("ready"), LifecycleTransition: aws.String(sim.TransitionLaunching), HeartbeatTimeout: aws.Int32(300)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, env, c, "web", "1 Pending:Wait", func(g types.AutoScalingGroup) bool { return countState(g, "Pending:Wait") == 1 })
	id := aws.ToString(g.Instances[0].InstanceId)
	if !warm[id] {
		t.Fatalf("member %s did not come from the warm pool %v", id, warm)
	}
	env.Region().Advance(time.Minute)
	if g = describeGroup(t, c, "web"); countState(g, "Pending:Wait") != 1 {
		t.Fatalf("the hook did not hold the warmed instance: %s", groupSummary(g))
	}
	if _, err := c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("ready"), InstanceId: aws.String(id), LifecycleActionResult: aws.String("CONTINUE")}); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, env, c, "web", "1 InService", inService(1))
}

// TestWarmPoolEntryHook: the group's launch hook holds an instance entering the warm pool in
// Warmed:Pending:Wait; CONTINUE sends it on to Warmed:Stopped, ABANDON terminates it (and the
// pool launches another).
func TestWarmPoolEntryHook(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	createGroup(t, c, "web", asgTemplate(env, "web", false), 0, 2, 0)
	if _, err := c.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("warm"), LifecycleTransition: aws.String(sim.TransitionLaunching), HeartbeatTimeout: aws.Int32(300)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutWarmPool(ctx, &autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	out := waitWarm(t, env.Region(), c, "web", "2 Warmed:Pending:Wait", func(o *autoscaling.DescribeWarmPoolOutput) bool {
		return warmStates(o, "Warmed:Pending:Wait") == 2
	})
	keep, drop := aws.ToString(out.Instances[0].InstanceId), aws.ToString(out.Instances[1].InstanceId)
	complete := func(id, result string) {
		t.Helper()
		if _, err := c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
			LifecycleHookName: aws.String("warm"), InstanceId: aws.String(id), LifecycleActionResult: aws.String(result)}); err != nil {
			t.Fatal(err)
		}
	}
	complete(keep, "CONTINUE")
	complete(drop, "ABANDON")
	waitWarm(t, env.Region(), c, "web", "the kept one stopped, the abandoned one gone", func(o *autoscaling.DescribeWarmPoolOutput) bool {
		kept, dropped := false, false
		for _, in := range o.Instances {
			id := aws.ToString(in.InstanceId)
			kept = kept || id == keep && in.LifecycleState == "Warmed:Stopped"
			dropped = dropped || id == drop
		}
		return kept && !dropped && len(o.Instances) == 2
	})
	if in, _ := env.Region().Instance(drop); in.State != sim.StateTerminated && in.State != sim.StateShuttingDown {
		t.Errorf("abandoned warm instance %s is %s", drop, in.State)
	}
	// The instance launched for the abandoned one is held by the hook too.
	waitWarm(t, env.Region(), c, "web", "the new instance held by the hook", func(o *autoscaling.DescribeWarmPoolOutput) bool {
		return warmStates(o, "Warmed:Pending:Wait") == 1 && warmStates(o, "Warmed:Stopped") == 1
	})
}
