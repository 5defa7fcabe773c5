package sim_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// asgEnv starts a region on a clock that the test moves with Advance, and an Auto Scaling client.
func asgEnv(t *testing.T) (*simtest.Env, *autoscaling.Client) {
	t.Helper()
	env := simtest.Start(t, sim.Options{Behaviors: kindWorld()})
	return env, autoscaling.NewFromConfig(env.Config, func(o *autoscaling.Options) { o.RetryMaxAttempts = 1 })
}

// asgTemplate stores a launch template and returns its id.
func asgTemplate(env *simtest.Env, name string, spot bool) string {
	return env.Region().PutLaunchTemplate(name, sim.LaunchTemplateData{ImageID: "ami-0123456789abcdef0", InstanceType: "m5.large",
		Spot: spot, Tags: map[string]sim.Tags{"instance": {"from-template": "yes", "team": "template"}}})
}

// createGroup creates a group over the three default AZs with the given sizes.
func createGroup(t *testing.T, c *autoscaling.Client, name, lt string, minSize, maxSize, desired int32, tags ...types.Tag) {
	t.Helper()
	_, err := c.CreateAutoScalingGroup(context.Background(), &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(name),
		LaunchTemplate:       &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(lt), Version: aws.String("$Latest")},
		MinSize:              aws.Int32(minSize),
		MaxSize:              aws.Int32(maxSize),
		DesiredCapacity:      aws.Int32(desired),
		AvailabilityZones:    []string{"us-east-1a", "us-east-1b", "us-east-1c"},
		Tags:                 tags,
	})
	if err != nil {
		t.Fatalf("CreateAutoScalingGroup %s: %v", name, err)
	}
}

func describeGroup(t *testing.T, c *autoscaling.Client, name string) types.AutoScalingGroup {
	t.Helper()
	out, err := c.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil {
		t.Fatalf("DescribeAutoScalingGroups: %v", err)
	}
	if len(out.AutoScalingGroups) != 1 {
		t.Fatalf("DescribeAutoScalingGroups %s: %d groups", name, len(out.AutoScalingGroups))
	}
	return out.AutoScalingGroups[0]
}

// waitGroup advances the clock a second at a time until cond holds for the group.
func waitGroup(t *testing.T, env *simtest.Env, c *autoscaling.Client, name, what string, cond func(types.AutoScalingGroup) bool) types.AutoScalingGroup {
	t.Helper()
	var g types.AutoScalingGroup
	for i := 0; i < 300; i++ {
		g = describeGroup(t, c, name)
		if cond(g) {
			return g
		}
		env.Region().Advance(time.Second)
	}
	t.Fatalf("group %s never reached %s; last state: %s", name, what, groupSummary(g))
	return g
}

func inService(n int) func(types.AutoScalingGroup) bool {
	return func(g types.AutoScalingGroup) bool { return countState(g, "InService") == n && len(g.Instances) == n }
}

func countState(g types.AutoScalingGroup, state string) int {
	n := 0
	for _, in := range g.Instances {
		if string(in.LifecycleState) == state {
			n++
		}
	}
	return n
}

func groupSummary(g types.AutoScalingGroup) string {
	var parts []string
	for _, in := range g.Instances {
		parts = append(parts, fmt.Sprintf("%s/%s/%s/%s", aws.ToString(in.InstanceId), aws.ToString(in.AvailabilityZone), in.LifecycleState, aws.ToString(in.HealthStatus)))
	}
	return fmt.Sprintf("desired=%d instances=[%s]", aws.ToInt32(g.DesiredCapacity), strings.Join(parts, " "))
}

func memberIDs(g types.AutoScalingGroup) []string {
	var ids []string
	for _, in := range g.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	sort.Strings(ids)
	return ids
}

func apiError(t *testing.T, err error, code, msgPart string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want %s", err, code)
	}
	if ae.ErrorCode() != code || !strings.Contains(ae.ErrorMessage(), msgPart) {
		t.Fatalf("err = %s: %s, want %s containing %q", ae.ErrorCode(), ae.ErrorMessage(), code, msgPart)
	}
}

func activities(t *testing.T, c *autoscaling.Client, name string) []types.Activity {
	t.Helper()
	var out []types.Activity
	p := autoscaling.NewDescribeScalingActivitiesPaginator(c, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(name)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("DescribeScalingActivities: %v", err)
		}
		out = append(out, page.Activities...)
	}
	return out
}

func TestASGCreateLaunchesToDesiredWithTags(t *testing.T) {
	env, c := asgEnv(t)
	lt := asgTemplate(env, "web", false)
	createGroup(t, c, "web", lt, 1, 5, 3,
		types.Tag{Key: aws.String("team"), Value: aws.String("search"), PropagateAtLaunch: aws.Bool(true)},
		types.Tag{Key: aws.String("cost-center"), Value: aws.String("42"), PropagateAtLaunch: aws.Bool(false)})

	g := describeGroup(t, c, "web")
	if got := countState(g, "Pending"); got != 3 {
		t.Errorf("right after creation: %d Pending members, want 3 (%s)", got, groupSummary(g))
	}
	g = waitGroup(t, env, c, "web", "3 InService", inService(3))

	azs := map[string]int{}
	for _, m := range g.Instances {
		azs[aws.ToString(m.AvailabilityZone)]++
		if aws.ToString(m.HealthStatus) != "Healthy" || aws.ToString(m.InstanceType) != "m5.large" {
			t.Errorf("member %s: health %s type %s", aws.ToString(m.InstanceId), aws.ToString(m.HealthStatus), aws.ToString(m.InstanceType))
		}
		if m.LaunchTemplate == nil || aws.ToString(m.LaunchTemplate.LaunchTemplateId) != lt || aws.ToString(m.LaunchTemplate.Version) != "1" {
			t.Errorf("member launch template = %+v, want %s version 1", m.LaunchTemplate, lt)
		}
		in, ok := env.Region().Instance(aws.ToString(m.InstanceId))
		if !ok {
			t.Fatalf("instance %s missing", aws.ToString(m.InstanceId))
		}
		want := map[string]string{"team": "search", "from-template": "yes", "aws:autoscaling:groupName": "web"}
		for k, v := range want {
			if in.Tags[k] != v {
				t.Errorf("instance %s tag %s = %q, want %q (tags %v)", in.ID, k, in.Tags[k], v, in.Tags)
			}
		}
		if _, ok := in.Tags["cost-center"]; ok {
			t.Errorf("instance %s got the non-propagated tag cost-center", in.ID)
		}
		if in.State != sim.StateRunning {
			t.Errorf("instance %s is %s", in.ID, in.State)
		}
	}
	if len(azs) != 3 {
		t.Errorf("members spread over %v, want one per AZ", azs)
	}
	if got := aws.ToString(g.AutoScalingGroupARN); !strings.HasPrefix(got, "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:") || !strings.HasSuffix(got, ":autoScalingGroupName/web") {
		t.Errorf("ARN = %s", got)
	}
	if len(g.AvailabilityZones) != 3 || g.CreatedTime == nil || aws.ToInt32(g.MinSize) != 1 || aws.ToInt32(g.MaxSize) != 5 {
		t.Errorf("group = %+v", g)
	}
	if len(g.Tags) != 2 || aws.ToString(g.Tags[0].Key) != "cost-center" || aws.ToString(g.Tags[0].ResourceType) != "auto-scaling-group" ||
		aws.ToString(g.Tags[0].ResourceId) != "web" || aws.ToBool(g.Tags[0].PropagateAtLaunch) || !aws.ToBool(g.Tags[1].PropagateAtLaunch) {
		t.Errorf("tags = %+v", g.Tags)
	}
	acts := activities(t, c, "web")
	if len(acts) != 3 {
		t.Fatalf("%d activities, want 3", len(acts))
	}
	for _, a := range acts {
		if a.StatusCode != types.ScalingActivityStatusCodeSuccessful || !strings.HasPrefix(aws.ToString(a.Description), "Launching a new EC2 instance: i-") ||
			!strings.Contains(aws.ToString(a.Cause), "a user request created an AutoScalingGroup changing the desired capacity from 0 to 3") {
			t.Errorf("activity = %s / %s / %s", a.StatusCode, aws.ToString(a.Description), aws.ToString(a.Cause))
		}
	}
	// DescribeAutoScalingInstances shows the same members, health in capitals as AWS does.
	out, err := c.DescribeAutoScalingInstances(context.Background(), &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: memberIDs(g)[:2]})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.AutoScalingInstances) != 2 || aws.ToString(out.AutoScalingInstances[0].AutoScalingGroupName) != "web" ||
		aws.ToString(out.AutoScalingInstances[0].HealthStatus) != "HEALTHY" || aws.ToString(out.AutoScalingInstances[0].LifecycleState) != "InService" {
		t.Errorf("DescribeAutoScalingInstances = %+v", out.AutoScalingInstances)
	}
}

func TestASGCreateValidation(t *testing.T) {
	env, c := asgEnv(t)
	lt := asgTemplate(env, "web", false)
	createGroup(t, c, "web", lt, 0, 2, 0)
	ctx := context.Background()
	in := func(name string, minSize, maxSize int32, desired *int32) *autoscaling.CreateAutoScalingGroupInput {
		return &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String(name), MinSize: aws.Int32(minSize), MaxSize: aws.Int32(maxSize),
			DesiredCapacity: desired, LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web")},
			AvailabilityZones: []string{"us-east-1a"}}
	}
	_, err := c.CreateAutoScalingGroup(ctx, in("web", 0, 2, nil))
	apiError(t, err, "AlreadyExists", "AutoScalingGroup by this name already exists - A group with the name web already exists")
	_, err = c.CreateAutoScalingGroup(ctx, in("x", 3, 2, nil))
	apiError(t, err, "ValidationError", "Max bound, 2, must be greater than or equal to min bound, 3")
	_, err = c.CreateAutoScalingGroup(ctx, in("x", 1, 2, aws.Int32(5)))
	apiError(t, err, "ValidationError", "Desired capacity:5 must be between the specified min size:1 and max size:2")
	bad := in("x", 0, 1, nil)
	bad.LaunchTemplate = &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("nope")}
	_, err = c.CreateAutoScalingGroup(ctx, bad)
	apiError(t, err, "ValidationError", "launch template, with template name nope, does not exist")
	bad = in("x", 0, 1, nil)
	bad.AvailabilityZones = nil
	_, err = c.CreateAutoScalingGroup(ctx, bad)
	apiError(t, err, "ValidationError", "At least one Availability Zone or VPC Subnet is required.")
	_, err = c.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(3)})
	apiError(t, err, "ValidationError", "Desired capacity:3 must be between the specified min size:0 and max size:2")
	_, err = c.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("nope"), DesiredCapacity: aws.Int32(1)})
	apiError(t, err, "ValidationError", "AutoScalingGroup name not found")
	if _, ok := env.Region().Group("x"); ok {
		t.Error("a failed create left group x behind")
	}
}

// detachedInstance returns a running instance that belongs to no group: launched by a helper
// group and detached from it.
func detachedInstance(t *testing.T, env *simtest.Env, c *autoscaling.Client, lt string) string {
	t.Helper()
	createGroup(t, c, "donor", lt, 0, 5, 1)
	g := waitGroup(t, env, c, "donor", "1 InService", inService(1))
	id := aws.ToString(g.Instances[0].InstanceId)
	_, err := c.DetachInstances(context.Background(), &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String("donor"),
		InstanceIds: []string{id}, ShouldDecrementDesiredCapacity: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	waitGroup(t, env, c, "donor", "empty", func(g types.AutoScalingGroup) bool { return len(g.Instances) == 0 })
	return id
}

func TestASGAttachOverMaxSizeFails(t *testing.T) {
	env, c := asgEnv(t)
	lt := asgTemplate(env, "web", false)
	spare := detachedInstance(t, env, c, lt)
	createGroup(t, c, "web", lt, 1, 2, 2)
	before := waitGroup(t, env, c, "web", "2 InService", inService(2))

	_, err := c.AttachInstances(context.Background(), &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{spare}})
	apiError(t, err, "ValidationError", "AutoScalingGroup web has min-size=1, max-size=2, and desired-size=2. To attach 1 instance, please update the AutoScalingGroup sizes appropriately.")

	env.Region().Advance(2 * time.Second)
	after := describeGroup(t, c, "web")
	if aws.ToInt32(after.DesiredCapacity) != 2 || fmt.Sprint(memberIDs(after)) != fmt.Sprint(memberIDs(before)) {
		t.Errorf("a failed attach changed the group: %s, was %s", groupSummary(after), groupSummary(before))
	}
	if in, _ := env.Region().Instance(spare); in.Tags["aws:autoscaling:groupName"] != "" {
		t.Errorf("a failed attach tagged the instance: %v", in.Tags)
	}
}

func TestASGAttachAndDetach(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lt := asgTemplate(env, "web", false)
	spare := detachedInstance(t, env, c, lt)
	if in, _ := env.Region().Instance(spare); in.Tags["aws:autoscaling:groupName"] != "" || in.State != sim.StateRunning {
		t.Fatalf("detached instance still tagged or not running: %s %v", in.State, in.Tags)
	}
	createGroup(t, c, "web", lt, 1, 4, 2)
	waitGroup(t, env, c, "web", "2 InService", inService(2))

	// Attach: desired grows, the member is Pending and then InService, and it gets the group tag.
	if _, err := c.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{spare}}); err != nil {
		t.Fatal(err)
	}
	g := describeGroup(t, c, "web")
	if aws.ToInt32(g.DesiredCapacity) != 3 || countState(g, "Pending") != 1 {
		t.Errorf("after attach: %s, want desired 3 with one Pending member", groupSummary(g))
	}
	if in, _ := env.Region().Instance(spare); in.Tags["aws:autoscaling:groupName"] != "web" {
		t.Errorf("attached instance tags = %v", in.Tags)
	}
	g = waitGroup(t, env, c, "web", "3 InService", inService(3))

	// Detach with decrement: the instance leaves, no replacement comes.
	out, err := c.DetachInstances(ctx, &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{spare},
		ShouldDecrementDesiredCapacity: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Activities) != 1 || !strings.Contains(aws.ToString(out.Activities[0].Description), "Detaching EC2 instance: "+spare) {
		t.Errorf("DetachInstances activities = %+v", out.Activities)
	}
	g = describeGroup(t, c, "web")
	if aws.ToInt32(g.DesiredCapacity) != 2 || countState(g, "Detaching") != 1 {
		t.Errorf("right after detach: %s, want desired 2 and one Detaching member", groupSummary(g))
	}
	g = waitGroup(t, env, c, "web", "2 InService", inService(2))
	for i := 0; i < 12; i++ {
		env.Region().Advance(time.Second)
	}
	if g = describeGroup(t, c, "web"); len(g.Instances) != 2 {
		t.Errorf("after detach with decrement: %s, want no replacement", groupSummary(g))
	}
	if in, _ := env.Region().Instance(spare); in.Tags["aws:autoscaling:groupName"] != "" || in.State != sim.StateRunning {
		t.Errorf("detached instance: %s %v", in.State, in.Tags)
	}

	// Detach below min with decrement is refused.
	_, err = c.DetachInstances(ctx, &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: memberIDs(g),
		ShouldDecrementDesiredCapacity: aws.Bool(true)})
	apiError(t, err, "ValidationError", "AutoScalingGroup web has min-size=1, max-size=4, and desired-size=2. To detach 2 instances, please update the AutoScalingGroup sizes appropriately.")
	_, err = c.DetachInstances(ctx, &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{spare},
		ShouldDecrementDesiredCapacity: aws.Bool(true)})
	apiError(t, err, "ValidationError", "The instance "+spare+" is not part of Auto Scaling group web.")

	// Detach without decrement: the group launches a replacement.
	old := memberIDs(g)[0]
	if _, err := c.DetachInstances(ctx, &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{old},
		ShouldDecrementDesiredCapacity: aws.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, env, c, "web", "2 InService without the detached one", func(g types.AutoScalingGroup) bool {
		return inService(2)(g) && !strings.Contains(fmt.Sprint(memberIDs(g)), old)
	})
	if aws.ToInt32(g.DesiredCapacity) != 2 {
		t.Errorf("desired = %d, want 2", aws.ToInt32(g.DesiredCapacity))
	}
}

func TestASGReplacesLostMembers(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lt := asgTemplate(env, "spot", true)
	createGroup(t, c, "web", lt, 1, 5, 3)
	g := waitGroup(t, env, c, "web", "3 InService", inService(3))
	ids := memberIDs(g)

	// A spot interruption terminates one member; the group takes it out and launches another.
	if err := env.Region().Interrupt(ids[0], "terminate"); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, env, c, "web", "3 InService without the interrupted one", func(g types.AutoScalingGroup) bool {
		return inService(3)(g) && !strings.Contains(fmt.Sprint(memberIDs(g)), ids[0])
	})
	if in, _ := env.Region().Instance(ids[0]); in.State != sim.StateTerminated {
		t.Errorf("interrupted instance is %s", in.State)
	}
	// A stopped member is unhealthy: the group terminates it and replaces it.
	if err := env.Region().Interrupt(ids[1], "stop"); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, env, c, "web", "3 InService without the stopped one", func(g types.AutoScalingGroup) bool {
		return inService(3)(g) && !strings.Contains(fmt.Sprint(memberIDs(g)), ids[1])
	})
	env.Region().Advance(5 * time.Second)
	if in, _ := env.Region().Instance(ids[1]); in.State != sim.StateTerminated {
		t.Errorf("stopped member is %s, want terminated by the group", in.State)
	}
	found := false
	for _, a := range activities(t, c, "web") {
		if strings.Contains(aws.ToString(a.Description), "Terminating EC2 instance: "+ids[1]) &&
			strings.Contains(aws.ToString(a.Cause), "EC2 health check indicating it has been terminated or stopped") {
			found = true
		}
	}
	if !found {
		t.Error("no termination activity for the stopped member")
	}

	// TerminateInstanceInAutoScalingGroup with decrement: no replacement.
	ids = memberIDs(g)
	out, err := c.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(ids[0]),
		ShouldDecrementDesiredCapacity: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if out.Activity == nil || !strings.Contains(aws.ToString(out.Activity.Cause), "shrinking the capacity from 3 to 2") {
		t.Errorf("activity = %+v", out.Activity)
	}
	g = waitGroup(t, env, c, "web", "2 InService", inService(2))
	for i := 0; i < 12; i++ {
		env.Region().Advance(time.Second)
	}
	if g = describeGroup(t, c, "web"); len(g.Instances) != 2 || aws.ToInt32(g.DesiredCapacity) != 2 {
		t.Errorf("after terminate with decrement: %s", groupSummary(g))
	}
	// ... and without decrement: replaced.
	ids = memberIDs(g)
	if _, err := c.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(ids[0]),
		ShouldDecrementDesiredCapacity: aws.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, env, c, "web", "2 InService with a replacement", func(g types.AutoScalingGroup) bool {
		return inService(2)(g) && !strings.Contains(fmt.Sprint(memberIDs(g)), ids[0])
	})
	// Below min with decrement is refused with AWS's message.
	if _, err := c.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, env, c, "web", "1 InService", inService(1))
	_, err = c.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: g.Instances[0].InstanceId,
		ShouldDecrementDesiredCapacity: aws.Bool(true)})
	apiError(t, err, "ValidationError", "Currently, desiredSize equals minSize (1). Terminating instance without replacement will violate group's min size constraint.")
	_, err = c.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String("i-00000000000000000"),
		ShouldDecrementDesiredCapacity: aws.Bool(false)})
	apiError(t, err, "ValidationError", "No managed instance found for instance ID: i-00000000000000000")
}

func TestASGCapacityFallsBackToOtherAZs(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lt := asgTemplate(env, "web", false)
	env.Region().SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: "us-east-1a", Market: sim.MarketOnDemand}, 0)
	createGroup(t, c, "web", lt, 0, 10, 4)
	g := waitGroup(t, env, c, "web", "4 InService", inService(4))
	for _, m := range g.Instances {
		if aws.ToString(m.AvailabilityZone) == "us-east-1a" {
			t.Errorf("member %s launched in the dry AZ", aws.ToString(m.InstanceId))
		}
	}

	// Every AZ dry: the launch fails with AWS's message, and is retried later, not in a loop.
	for _, az := range []string{"us-east-1b", "us-east-1c"} {
		env.Region().SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: az, Market: sim.MarketOnDemand}, 2)
	}
	if _, err := c.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(5)}); err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(time.Second)
	acts := activities(t, c, "web")
	failed := acts[0]
	if failed.StatusCode != types.ScalingActivityStatusCodeFailed {
		t.Fatalf("newest activity = %s %s, want Failed", failed.StatusCode, aws.ToString(failed.Description))
	}
	wantDesc := "Launching a new EC2 instance. Status Reason: We currently do not have sufficient m5.large capacity in the Availability Zone you requested (us-east-1a)."
	if d := aws.ToString(failed.Description); !strings.HasPrefix(d, wantDesc) || !strings.HasSuffix(d, "Launching EC2 instance failed.") {
		t.Errorf("failed activity description = %q", d)
	}
	if m := aws.ToString(failed.StatusMessage); !strings.HasPrefix(m, "We currently do not have sufficient m5.large capacity") || !strings.HasSuffix(m, "Launching EC2 instance failed.") {
		t.Errorf("failed activity status message = %q", m)
	}
	if !strings.Contains(aws.ToString(failed.Cause), "explicitly set group desired capacity changing the desired capacity from 4 to 5") {
		t.Errorf("cause = %q", aws.ToString(failed.Cause))
	}
	nFailed := func() int {
		n := 0
		for _, a := range activities(t, c, "web") {
			if a.StatusCode == types.ScalingActivityStatusCodeFailed {
				n++
			}
		}
		return n
	}
	if n := nFailed(); n != 1 {
		t.Errorf("%d failed activities right after the change, want 1", n)
	}
	for i := 0; i < 30; i++ {
		env.Region().Advance(time.Second)
	}
	if n := nFailed(); n < 2 || n > 10 {
		t.Errorf("%d failed activities after 30 s, want a retry per check (5 s)", n)
	}
	// Capacity comes back: the next check launches the missing member.
	env.Region().SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: "us-east-1a", Market: sim.MarketOnDemand}, -1)
	g = waitGroup(t, env, c, "web", "5 InService", inService(5))
	if countAZ(g, "us-east-1a") != 1 {
		t.Errorf("members: %s, want the new one in us-east-1a", groupSummary(g))
	}
}

func countAZ(g types.AutoScalingGroup, az string) int {
	n := 0
	for _, m := range g.Instances {
		if aws.ToString(m.AvailabilityZone) == az {
			n++
		}
	}
	return n
}

func TestASGDescribeFiltersAndPagination(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	asgTemplate(env, "web", false)
	for i := 0; i < 120; i++ {
		stage := "prod"
		if i%3 == 0 {
			stage = "dev"
		}
		tags := []sim.ASGTag{{Key: "env", Value: stage}}
		if i%10 == 0 {
			tags = append(tags, sim.ASGTag{Key: "spotmax:group", Value: fmt.Sprintf("g%03d", i), PropagateAtLaunch: true})
		}
		err := env.Region().CreateGroup(sim.GroupSpec{Name: fmt.Sprintf("group-%03d", i), LaunchTemplate: sim.LaunchTemplateRef{Name: "web"},
			Max: 2, AZs: []string{"us-east-1a"}, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Region().CreateGroup(sim.GroupSpec{Name: "group-000", LaunchTemplate: sim.LaunchTemplateRef{Name: "web"}, Max: 1, AZs: []string{"us-east-1a"}}); err == nil ||
		!strings.Contains(err.Error(), "AlreadyExists") {
		t.Errorf("CreateGroup of an existing name: %v", err)
	}

	list := func(in *autoscaling.DescribeAutoScalingGroupsInput) (names []string, pages int) {
		t.Helper()
		p := autoscaling.NewDescribeAutoScalingGroupsPaginator(c, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, g := range out.AutoScalingGroups {
				names = append(names, aws.ToString(g.AutoScalingGroupName))
			}
		}
		return names, pages
	}
	names, pages := list(&autoscaling.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(50)})
	if len(names) != 120 || pages != 3 || names[0] != "group-000" || names[119] != "group-119" || !sort.StringsAreSorted(names) {
		t.Errorf("all groups: %d names in %d pages", len(names), pages)
	}
	names, pages = list(&autoscaling.DescribeAutoScalingGroupsInput{})
	if len(names) != 120 || pages != 3 {
		t.Errorf("default page size: %d names in %d pages, want 120 in 3 (50 per page)", len(names), pages)
	}
	names, _ = list(&autoscaling.DescribeAutoScalingGroupsInput{Filters: []types.Filter{{Name: aws.String("tag:env"), Values: []string{"dev"}}}})
	if len(names) != 40 {
		t.Errorf("tag:env=dev: %d groups, want 40", len(names))
	}
	names, _ = list(&autoscaling.DescribeAutoScalingGroupsInput{Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{"spotmax:group"}}}})
	if len(names) != 12 {
		t.Errorf("tag-key spotmax:group: %d groups, want 12", len(names))
	}
	names, _ = list(&autoscaling.DescribeAutoScalingGroupsInput{Filters: []types.Filter{
		{Name: aws.String("tag-key"), Values: []string{"spotmax:group"}},
		{Name: aws.String("tag-value"), Values: []string{"prod", "g030"}}}})
	if len(names) != 9 {
		t.Errorf("tag-key spotmax:group and tag-value prod|g030: %d groups (%v), want 9", len(names), names)
	}
	names, _ = list(&autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"group-007", "nope", "group-003"}})
	if fmt.Sprint(names) != "[group-003 group-007]" {
		t.Errorf("by name: %v", names)
	}
	_, err := c.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(101)})
	apiError(t, err, "ValidationError", "maxRecords")
	_, err = c.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{NextToken: aws.String("garbage")})
	apiError(t, err, "InvalidNextToken", "")

	// DescribeTags: filters and pages.
	var tags []types.TagDescription
	tp := autoscaling.NewDescribeTagsPaginator(c, &autoscaling.DescribeTagsInput{MaxRecords: aws.Int32(50)})
	pages = 0
	for tp.HasMorePages() {
		out, err := tp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		tags = append(tags, out.Tags...)
	}
	if len(tags) != 132 || pages != 3 {
		t.Errorf("DescribeTags: %d tags in %d pages, want 132 in 3", len(tags), pages)
	}
	out, err := c.DescribeTags(ctx, &autoscaling.DescribeTagsInput{Filters: []types.Filter{
		{Name: aws.String("key"), Values: []string{"spotmax:group"}},
		{Name: aws.String("propagate-at-launch"), Values: []string{"true"}},
		{Name: aws.String("auto-scaling-group"), Values: []string{"group-010", "group-011"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tags) != 1 || aws.ToString(out.Tags[0].ResourceId) != "group-010" || aws.ToString(out.Tags[0].Value) != "g010" ||
		aws.ToString(out.Tags[0].ResourceType) != "auto-scaling-group" {
		t.Errorf("DescribeTags filtered = %+v", out.Tags)
	}

	// CreateOrUpdateTags replaces by key; DeleteTags removes.
	_, err = c.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []types.Tag{
		{ResourceId: aws.String("group-001"), ResourceType: aws.String("auto-scaling-group"), Key: aws.String("env"), Value: aws.String("staging")},
		{ResourceId: aws.String("group-001"), ResourceType: aws.String("auto-scaling-group"), Key: aws.String("owner"), Value: aws.String("me"), PropagateAtLaunch: aws.Bool(true)}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteTags(ctx, &autoscaling.DeleteTagsInput{Tags: []types.Tag{
		{ResourceId: aws.String("group-001"), ResourceType: aws.String("auto-scaling-group"), Key: aws.String("env")}}})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := env.Region().Group("group-001")
	if fmt.Sprint(g.Tags) != "[{owner me true}]" {
		t.Errorf("tags after update and delete = %v", g.Tags)
	}
	_, err = c.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []types.Tag{
		{ResourceId: aws.String("nope"), ResourceType: aws.String("auto-scaling-group"), Key: aws.String("k"), Value: aws.String("v")}}})
	apiError(t, err, "ValidationError", "not found")
}

func TestASGSetDesiredCapacityBothWays(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lt := asgTemplate(env, "web", false)
	createGroup(t, c, "web", lt, 1, 6, 1)
	waitGroup(t, env, c, "web", "1 InService", inService(1))
	set := func(n int32) error {
		_, err := c.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(n)})
		return err
	}
	if err := set(6); err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, env, c, "web", "6 InService", inService(6))
	for _, az := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		if n := countAZ(g, az); n != 2 {
			t.Errorf("%s has %d members, want 2 (%s)", az, n, groupSummary(g))
		}
	}
	// Protect one member; scale in to 2 keeps it and keeps the AZs balanced.
	protected := aws.ToString(g.Instances[0].InstanceId)
	if _, err := c.SetInstanceProtection(ctx, &autoscaling.SetInstanceProtectionInput{AutoScalingGroupName: aws.String("web"),
		InstanceIds: []string{protected}, ProtectedFromScaleIn: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if err := set(2); err != nil {
		t.Fatal(err)
	}
	g = describeGroup(t, c, "web")
	if countState(g, "Terminating") != 4 {
		t.Errorf("right after scale in: %s, want 4 Terminating", groupSummary(g))
	}
	g = waitGroup(t, env, c, "web", "2 InService", inService(2))
	if !strings.Contains(fmt.Sprint(memberIDs(g)), protected) {
		t.Errorf("the protected member %s was terminated: %s", protected, groupSummary(g))
	}
	if aws.ToString(g.Instances[0].AvailabilityZone) == aws.ToString(g.Instances[1].AvailabilityZone) {
		t.Errorf("scale in left both members in one AZ: %s", groupSummary(g))
	}
	if err := set(7); err == nil {
		t.Fatal("SetDesiredCapacity above max succeeded")
	} else {
		apiError(t, err, "ValidationError", "New SetDesiredCapacity value 7 is above max value 6 for the AutoScalingGroup.")
	}
	apiError(t, set(0), "ValidationError", "New SetDesiredCapacity value 0 is below min value 1 for the AutoScalingGroup.")

	// UpdateAutoScalingGroup moves desired into new bounds.
	if _, err := c.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"), MinSize: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, env, c, "web", "3 InService", inService(3))
	if aws.ToInt32(g.DesiredCapacity) != 3 || aws.ToInt32(g.MinSize) != 3 {
		t.Errorf("after raising min: %s min %d", groupSummary(g), aws.ToInt32(g.MinSize))
	}
}

func TestASGSuspendAndResumeLaunch(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lt := asgTemplate(env, "web", false)
	createGroup(t, c, "web", lt, 0, 5, 0)
	if _, err := c.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String("web"), ScalingProcesses: []string{"Launch"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 12; i++ {
		env.Region().Advance(time.Second)
	}
	g := describeGroup(t, c, "web")
	if len(g.Instances) != 0 {
		t.Errorf("launched with Launch suspended: %s", groupSummary(g))
	}
	if len(g.SuspendedProcesses) != 1 || aws.ToString(g.SuspendedProcesses[0].ProcessName) != "Launch" ||
		!strings.HasPrefix(aws.ToString(g.SuspendedProcesses[0].SuspensionReason), "User suspended at ") {
		t.Errorf("suspended processes = %+v", g.SuspendedProcesses)
	}
	if _, err := c.ResumeProcesses(ctx, &autoscaling.ResumeProcessesInput{AutoScalingGroupName: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, env, c, "web", "2 InService", inService(2))
	if len(g.SuspendedProcesses) != 0 {
		t.Errorf("suspended processes after resume = %+v", g.SuspendedProcesses)
	}
	_, err := c.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String("web"), ScalingProcesses: []string{"Nope"}})
	apiError(t, err, "ValidationError", "Nope")

	// With ReplaceUnhealthy suspended a stopped member stays; on resume it is replaced.
	ids := memberIDs(g)
	if _, err := c.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String("web"), ScalingProcesses: []string{"ReplaceUnhealthy"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{InstanceId: aws.String(ids[0]), HealthStatus: aws.String("Unhealthy")}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 12; i++ {
		env.Region().Advance(time.Second)
	}
	if g = describeGroup(t, c, "web"); fmt.Sprint(memberIDs(g)) != fmt.Sprint(ids) {
		t.Errorf("an unhealthy member was replaced with ReplaceUnhealthy suspended: %s", groupSummary(g))
	}
	if _, err := c.ResumeProcesses(ctx, &autoscaling.ResumeProcessesInput{AutoScalingGroupName: aws.String("web"), ScalingProcesses: []string{"ReplaceUnhealthy"}}); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, env, c, "web", "2 InService without the unhealthy one", func(g types.AutoScalingGroup) bool {
		return inService(2)(g) && !strings.Contains(fmt.Sprint(memberIDs(g)), ids[0])
	})
}

func TestASGDeleteGroup(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lt := asgTemplate(env, "web", false)
	createGroup(t, c, "web", lt, 1, 3, 2)
	g := waitGroup(t, env, c, "web", "2 InService", inService(2))
	_, err := c.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web")})
	apiError(t, err, "ResourceInUse", "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.")
	if _, err := c.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"), ForceDelete: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	d := describeGroup(t, c, "web")
	if aws.ToString(d.Status) != "Delete in progress" || countState(d, "Terminating") != 2 {
		t.Errorf("right after force delete: status %q %s", aws.ToString(d.Status), groupSummary(d))
	}
	for i := 0; i < 5; i++ {
		env.Region().Advance(time.Second)
	}
	out, err := c.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.AutoScalingGroups) != 0 {
		t.Errorf("group still there after its instances terminated: %s", groupSummary(out.AutoScalingGroups[0]))
	}
	for _, id := range memberIDs(g) {
		if in, _ := env.Region().Instance(id); in.State != sim.StateTerminated {
			t.Errorf("instance %s is %s after force delete", id, in.State)
		}
	}
	// An empty group goes at once; the name can be used again.
	createGroup(t, c, "web", lt, 0, 3, 0)
	if _, err := c.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web")})
	apiError(t, err, "ValidationError", "AutoScalingGroup name not found")
	acts, err := c.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("web"), IncludeDeletedGroups: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(acts.Activities) != 4 {
		t.Errorf("activities of the deleted groups = %d, want 4 (2 launches, 2 terminations)", len(acts.Activities))
	}
}

func TestASGGroupInServiceWaiter(t *testing.T) {
	env := simtest.Start(t, sim.Options{TimeScale: 100, Behaviors: kindWorld()})
	c := autoscaling.NewFromConfig(env.Config)
	lt := asgTemplate(env, "web", false)
	createGroup(t, c, "web", lt, 2, 4, 2)
	w := autoscaling.NewGroupInServiceWaiter(c, func(o *autoscaling.GroupInServiceWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Wait(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"web"}}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if g := describeGroup(t, c, "web"); countState(g, "InService") < 2 {
		t.Errorf("waiter returned with %s", groupSummary(g))
	}
}

func TestASGMixedInstancesPolicy(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lt := asgTemplate(env, "web", false)
	// The first override type has no spot capacity anywhere: the group uses the second.
	for _, az := range []string{"us-east-1a", "us-east-1b"} {
		env.Region().SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: az, Market: sim.MarketSpot}, 0)
	}
	subnet, ok := env.Region().DefaultSubnet("us-east-1a")
	subnetB, _ := env.Region().DefaultSubnet("us-east-1b")
	if !ok {
		t.Fatal("no default subnet in us-east-1a")
	}
	_, err := c.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("mixed"),
		MinSize:              aws.Int32(0), MaxSize: aws.Int32(6), DesiredCapacity: aws.Int32(4),
		VPCZoneIdentifier: aws.String(subnet + "," + subnetB),
		MixedInstancesPolicy: &types.MixedInstancesPolicy{
			InstancesDistribution: &types.InstancesDistribution{OnDemandBaseCapacity: aws.Int32(1), OnDemandPercentageAboveBaseCapacity: aws.Int32(0)},
			LaunchTemplate: &types.LaunchTemplate{
				LaunchTemplateSpecification: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(lt)},
				Overrides:                   []types.LaunchTemplateOverrides{{InstanceType: aws.String("m5.large")}, {InstanceType: aws.String("m6i.large")}},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, env, c, "mixed", "4 InService", inService(4))
	markets := map[string]int{}
	for _, m := range g.Instances {
		in, _ := env.Region().Instance(aws.ToString(m.InstanceId))
		markets[in.Market+"/"+in.Type]++
	}
	if markets["on-demand/m5.large"] != 1 || markets["spot/m6i.large"] != 3 {
		t.Errorf("markets/types = %v, want one on-demand m5.large and three spot m6i.large", markets)
	}
	if g.MixedInstancesPolicy == nil || g.LaunchTemplate != nil || len(g.MixedInstancesPolicy.LaunchTemplate.Overrides) != 2 ||
		aws.ToInt32(g.MixedInstancesPolicy.InstancesDistribution.OnDemandBaseCapacity) != 1 {
		t.Errorf("MixedInstancesPolicy = %+v, LaunchTemplate = %+v", g.MixedInstancesPolicy, g.LaunchTemplate)
	}
	if aws.ToString(g.VPCZoneIdentifier) != subnet+","+subnetB || len(g.AvailabilityZones) != 2 {
		t.Errorf("VPCZoneIdentifier = %q, AZs = %v", aws.ToString(g.VPCZoneIdentifier), g.AvailabilityZones)
	}
}

func TestASGCapacityRebalance(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lt := asgTemplate(env, "spot", true)
	createGroup(t, c, "web", lt, 1, 3, 2)
	if _, err := c.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"), CapacityRebalance: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, env, c, "web", "2 InService", inService(2))
	if !aws.ToBool(g.CapacityRebalance) {
		t.Error("CapacityRebalance not shown")
	}
	old := memberIDs(g)[0]
	if err := env.Region().Rebalance(old); err != nil {
		t.Fatal(err)
	}
	// The group launches a replacement first and then terminates the old instance.
	waitGroup(t, env, c, "web", "a replacement launched", func(g types.AutoScalingGroup) bool { return len(g.Instances) == 3 })
	g = waitGroup(t, env, c, "web", "2 InService without the old one", func(g types.AutoScalingGroup) bool {
		return inService(2)(g) && !strings.Contains(fmt.Sprint(memberIDs(g)), old)
	})
	env.Region().Advance(3 * time.Second)
	if in, _ := env.Region().Instance(old); in.State != sim.StateTerminated {
		t.Errorf("rebalanced instance is %s", in.State)
	}
}

func TestASGGoLevelGroup(t *testing.T) {
	env, c := asgEnv(t)
	env.Region().PutLaunchTemplate("app", sim.LaunchTemplateData{ImageID: "ami-1", InstanceType: "c5.large"})
	id := env.Region().PutLaunchTemplate("app", sim.LaunchTemplateData{ImageID: "ami-2", InstanceType: "c5.xlarge"})
	desired := int32(2)
	err := env.Region().CreateGroup(sim.GroupSpec{Name: "app", LaunchTemplate: sim.LaunchTemplateRef{ID: id}, Min: 1, Max: 3, Desired: &desired,
		AZs: []string{"us-east-1b"}, Tags: []sim.ASGTag{{Key: "spotmax:group", Value: "app", PropagateAtLaunch: true}}})
	if err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, env, c, "app", "2 InService", inService(2))
	for _, m := range g.Instances {
		in, _ := env.Region().Instance(aws.ToString(m.InstanceId))
		if in.Type != "c5.xlarge" || in.ImageID != "ami-2" || in.AZ != "us-east-1b" || in.Tags["spotmax:group"] != "app" {
			t.Errorf("instance %s: %s %s %s %v", in.ID, in.Type, in.ImageID, in.AZ, in.Tags)
		}
		if name, ok := env.Region().GroupOf(in.ID); !ok || name != "app" {
			t.Errorf("GroupOf(%s) = %q, %v", in.ID, name, ok)
		}
	}
	if err := env.Region().SetGroupDesired("app", 5); err == nil || !strings.Contains(err.Error(), "above max value 3") {
		t.Errorf("SetGroupDesired above max: %v", err)
	}
	if gs := env.Region().Groups(); len(gs) != 1 || gs[0].Name != "app" || len(gs[0].Members) != 2 {
		t.Errorf("Groups() = %+v", gs)
	}
	hooks, err := c.DescribeLifecycleHooks(context.Background(), &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String("app")})
	if err != nil || len(hooks.LifecycleHooks) != 0 {
		t.Errorf("DescribeLifecycleHooks = %+v, %v", hooks, err)
	}
}

func TestASGInstancesAndActivitiesPagination(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lt := asgTemplate(env, "web", false)
	createGroup(t, c, "big", lt, 0, 60, 60)
	waitGroup(t, env, c, "big", "60 InService", inService(60))

	var ids []string
	pages := 0
	ip := autoscaling.NewDescribeAutoScalingInstancesPaginator(c, &autoscaling.DescribeAutoScalingInstancesInput{})
	for ip.HasMorePages() {
		out, err := ip.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, in := range out.AutoScalingInstances {
			ids = append(ids, aws.ToString(in.InstanceId))
		}
	}
	if len(ids) != 60 || pages != 2 || !sort.StringsAreSorted(ids) {
		t.Errorf("DescribeAutoScalingInstances: %d instances in %d pages, want 60 in 2", len(ids), pages)
	}

	if _, err := c.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("big"), DesiredCapacity: aws.Int32(59)}); err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(time.Second)
	var acts []types.Activity
	pages = 0
	ap := autoscaling.NewDescribeScalingActivitiesPaginator(c, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("big"), MaxRecords: aws.Int32(25)})
	for ap.HasMorePages() {
		out, err := ap.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		acts = append(acts, out.Activities...)
	}
	if len(acts) != 61 || pages != 3 {
		t.Fatalf("DescribeScalingActivities: %d activities in %d pages, want 61 in 3", len(acts), pages)
	}
	if !strings.HasPrefix(aws.ToString(acts[0].Description), "Terminating EC2 instance: ") {
		t.Errorf("newest activity = %s, want the termination", aws.ToString(acts[0].Description))
	}
	for i := 1; i < len(acts); i++ {
		if acts[i].StartTime.After(*acts[i-1].StartTime) {
			t.Fatalf("activity %d starts after activity %d: not newest first", i, i-1)
		}
	}
	one, err := c.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{ActivityIds: []string{aws.ToString(acts[7].ActivityId)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Activities) != 1 || aws.ToString(one.Activities[0].ActivityId) != aws.ToString(acts[7].ActivityId) ||
		aws.ToString(one.Activities[0].AutoScalingGroupName) != "big" {
		t.Errorf("by activity id: %+v", one.Activities)
	}
}

func TestASGThrottling(t *testing.T) {
	env, c := asgEnv(t)
	env.Region().ThrottleNext("autoscaling", 1)
	_, err := c.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{})
	apiError(t, err, "Throttling", "Rate exceeded")
	if _, err := c.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{}); err != nil {
		t.Fatal(err)
	}
}

func TestASGWithEC2Calls(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	ec := ec2.NewFromConfig(env.Config, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	lt := asgTemplate(env, "web", false)
	createGroup(t, c, "web", lt, 1, 4, 2)
	g := waitGroup(t, env, c, "web", "2 InService", inService(2))
	ids := memberIDs(g)

	// TerminateInstances on a member: the group replaces it.
	if _, err := ec.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{ids[0]}}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, env, c, "web", "2 InService without the terminated one", func(g types.AutoScalingGroup) bool {
		return inService(2)(g) && !strings.Contains(fmt.Sprint(memberIDs(g)), ids[0])
	})
	// StopInstances on a member: the group terminates it and replaces it.
	if _, err := ec.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{ids[1]}}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, env, c, "web", "2 InService without the stopped one", func(g types.AutoScalingGroup) bool {
		return inService(2)(g) && !strings.Contains(fmt.Sprint(memberIDs(g)), ids[1])
	})

	// The spotmax replacement flow: launch from the group's template, attach, detach the old one.
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		LaunchTemplate: &ec2types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(lt)},
		Placement:      &ec2types.Placement{AvailabilityZone: aws.String("us-east-1b")}})
	if err != nil {
		t.Fatal(err)
	}
	fresh := aws.ToString(run.Instances[0].InstanceId)
	_, err = c.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{fresh}})
	apiError(t, err, "ValidationError", "is not in correct state")
	for i := 0; i < 5; i++ {
		env.Region().Advance(time.Second)
	}
	if _, err := c.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{fresh}}); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, env, c, "web", "3 InService", inService(3))
	old := memberIDs(g)[0]
	if _, err := c.DetachInstances(ctx, &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{old},
		ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroup(t, env, c, "web", "2 InService with the attached one", func(g types.AutoScalingGroup) bool {
		return inService(2)(g) && strings.Contains(fmt.Sprint(memberIDs(g)), fresh)
	})
	out, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{fresh, old}})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range out.Reservations {
		for _, in := range res.Instances {
			has := false
			for _, tag := range in.Tags {
				if aws.ToString(tag.Key) == "aws:autoscaling:groupName" && aws.ToString(tag.Value) == "web" {
					has = true
				}
			}
			if want := aws.ToString(in.InstanceId) == fresh; has != want {
				t.Errorf("instance %s has the group tag: %v, want %v", aws.ToString(in.InstanceId), has, want)
			}
		}
	}
}
