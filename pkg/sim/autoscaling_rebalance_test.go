package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// awsASGEnv starts a region with AWS's behaviours switched on.
func awsASGEnv(t *testing.T) (*simtest.Env, *autoscaling.Client) {
	t.Helper()
	b := sim.AWSBehaviors()
	env := simtest.Start(t, sim.Options{Behaviors: &b})
	return env, autoscaling.NewFromConfig(env.Config, func(o *autoscaling.Options) { o.RetryMaxAttempts = 1 })
}

// runningIn launches n running instances in an AZ's default subnet.
func runningIn(t *testing.T, env *simtest.Env, az string, n int32) []string {
	t.Helper()
	out, err := ec2.NewFromConfig(env.Config).RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(testAMI),
		MinCount: aws.Int32(n), MaxCount: aws.Int32(n), SubnetId: aws.String(defaultSubnet(t, env, az))})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range out.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	env.Region().Advance(sim.FastLatencies().Pending)
	// EC2 shows a launched instance to other calls, Auto Scaling's included, after its launch
	// visibility window.
	env.Region().Advance(time.Duration(sim.AWSBehaviors().EC2.LaunchVisibility))
	return ids
}

func TestAutoScalingAttachedInstanceNotListedAtOnce(t *testing.T) {
	env, c := awsASGEnv(t)
	ctx := context.Background()
	hookGroup(t, env, c, "web", 0)
	ids := runningIn(t, env, "us-east-1a", 2)
	if _, err := c.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: ids[:1]}); err != nil {
		t.Fatal(err)
	}
	g := describeGroup(t, c, "web")
	if len(g.Instances) != 0 || aws.ToInt32(g.DesiredCapacity) != 1 {
		t.Errorf("right after AttachInstances: %s, want desired 1 and the instance not listed yet", groupSummary(g))
	}
	out, err := c.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: ids[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.AutoScalingInstances) != 0 {
		t.Errorf("DescribeAutoScalingInstances right after AttachInstances = %+v, want none", out.AutoScalingInstances)
	}
	if name, ok := env.Region().GroupOf(ids[0]); !ok || name != "web" {
		t.Fatalf("the region does not hold %s in web", ids[0])
	}
	env.Region().Advance(5 * time.Second)
	if g = describeGroup(t, c, "web"); len(g.Instances) != 1 {
		t.Errorf("5 s after AttachInstances: %s, want the instance listed", groupSummary(g))
	}

	// The kind world lists it at once.
	env.Region().SetBehaviors(sim.KindBehaviors())
	if _, err := c.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: ids[1:]}); err != nil {
		t.Fatal(err)
	}
	if g = describeGroup(t, c, "web"); len(g.Instances) != 2 {
		t.Errorf("kind world, right after AttachInstances: %s, want both listed", groupSummary(g))
	}
}

func azCounts(env *simtest.Env, g types.AutoScalingGroup) map[string]int {
	n := map[string]int{}
	for _, in := range g.Instances {
		n[aws.ToString(in.AvailabilityZone)]++
	}
	return n
}

func TestAZRebalanceLaunchesBeforeTerminating(t *testing.T) {
	env, c := awsASGEnv(t)
	ctx := context.Background()
	for _, name := range []string{"web", "held"} {
		lt := asgTemplate(env, name+"-lt", false)
		if _, err := c.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String(name),
			LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(lt)},
			MinSize:        aws.Int32(0), MaxSize: aws.Int32(4), DesiredCapacity: aws.Int32(2),
			AvailabilityZones: []string{"us-east-1a", "us-east-1b"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String("held"),
		ScalingProcesses: []string{"AZRebalance"}}); err != nil {
		t.Fatal(err)
	}
	var before []string
	for _, name := range []string{"web", "held"} {
		g := waitGroup(t, env, c, name, "InService", inService(2))
		// Two instances attached in us-east-1a: three there, one in us-east-1b.
		ids := runningIn(t, env, "us-east-1a", 2)
		if _, err := c.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String(name), InstanceIds: ids}); err != nil {
			t.Fatal(err)
		}
		if name == "web" {
			before = append(memberIDs(g), ids...)
		}
	}

	// Watch the region's own record (the describes lag behind attaches) a second at a time.
	most := 0
	for i := 0; i < 120; i++ {
		env.Region().Advance(time.Second)
		rg, _ := env.Region().Group("web")
		most = max(most, len(rg.Members))
	}
	g := describeGroup(t, c, "web")
	if n := azCounts(env, g); countState(g, "InService") != 4 || len(g.Instances) != 4 || n["us-east-1a"] != 2 || n["us-east-1b"] != 2 {
		t.Fatalf("after AZRebalance: %s, want 2 + 2 InService", groupSummary(g))
	}
	if most != 5 {
		t.Errorf("the group had at most %d members, want 5: AZRebalance launches (max 4 + one) before it terminates", most)
	}
	after := strings.Join(memberIDs(g), " ")
	gone := ""
	for _, id := range before {
		if !strings.Contains(after, id) {
			gone = id
		}
	}
	if in, _ := env.Region().Instance(gone); gone == "" || in.AZ != "us-east-1a" {
		t.Errorf("AZRebalance terminated %q, want a member of us-east-1a", gone)
	}
	acts, err := c.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("web")})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range acts.Activities {
		found = found || strings.Contains(aws.ToString(a.Cause), "to balance instances in zones us-east-1b")
	}
	if !found {
		t.Errorf("no AZRebalance launch activity")
	}

	held := describeGroup(t, c, "held")
	if n := azCounts(env, held); len(held.Instances) != 4 || n["us-east-1a"] != 3 || n["us-east-1b"] != 1 {
		t.Errorf("group with AZRebalance suspended: %s, want it left at 3 + 1", groupSummary(held))
	}
}
