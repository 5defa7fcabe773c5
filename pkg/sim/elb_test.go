package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// lbGroup creates a group in us-east-1a registered with the given target groups and load
// balancers.
func lbGroup(t *testing.T, env *simtest.Env, c *autoscaling.Client, name string, desired int32, tgs, lbs []string) {
	t.Helper()
	lt := asgTemplate(env, name+"-lt", false)
	_, err := c.CreateAutoScalingGroup(context.Background(), &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(name),
		LaunchTemplate:       &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(lt)},
		MinSize:              aws.Int32(0),
		MaxSize:              aws.Int32(4),
		DesiredCapacity:      aws.Int32(desired),
		AvailabilityZones:    []string{"us-east-1a"},
		TargetGroupARNs:      tgs,
		LoadBalancerNames:    lbs,
	})
	if err != nil {
		t.Fatalf("CreateAutoScalingGroup %s: %v", name, err)
	}
}

func targetHealth(t *testing.T, c *elbv2.Client, tg, id string) elbv2types.TargetHealth {
	t.Helper()
	out, err := c.DescribeTargetHealth(context.Background(), &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg),
		Targets: []elbv2types.TargetDescription{{Id: aws.String(id)}}})
	if err != nil {
		t.Fatalf("DescribeTargetHealth: %v", err)
	}
	if len(out.TargetHealthDescriptions) != 1 {
		t.Fatalf("DescribeTargetHealth of %s: %+v", id, out.TargetHealthDescriptions)
	}
	return *out.TargetHealthDescriptions[0].TargetHealth
}

func TestTargetGroupDeregistrationDelayKeepsMembersDetachingAndTerminating(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lbc := elbv2.NewFromConfig(env.Config, func(o *elbv2.Options) { o.RetryMaxAttempts = 1 })
	tgOut, err := lbc.CreateTargetGroup(ctx, &elbv2.CreateTargetGroupInput{Name: aws.String("web"), Protocol: elbv2types.ProtocolEnumHttp,
		Port: aws.Int32(8080)})
	if err != nil {
		t.Fatal(err)
	}
	tg := aws.ToString(tgOut.TargetGroups[0].TargetGroupArn)
	attrs, err := lbc.DescribeTargetGroupAttributes(ctx, &elbv2.DescribeTargetGroupAttributesInput{TargetGroupArn: aws.String(tg)})
	if err != nil {
		t.Fatal(err)
	}
	delay := ""
	for _, a := range attrs.Attributes {
		if aws.ToString(a.Key) == "deregistration_delay.timeout_seconds" {
			delay = aws.ToString(a.Value)
		}
	}
	if delay != "300" {
		t.Errorf("deregistration_delay.timeout_seconds = %q, want AWS's default 300", delay)
	}
	_, err = lbc.ModifyTargetGroupAttributes(ctx, &elbv2.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(tg),
		Attributes: []elbv2types.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String("4000")}}})
	apiError(t, err, "ValidationError", "deregistration_delay.timeout_seconds")
	_, err = lbc.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{TargetGroupArns: []string{tg + "0"}})
	apiError(t, err, "TargetGroupNotFound", "One or more target groups not found")
	_, err = c.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("bad"),
		LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(asgTemplate(env, "bad-lt", false))},
		MinSize:        aws.Int32(0), MaxSize: aws.Int32(1), AvailabilityZones: []string{"us-east-1a"}, TargetGroupARNs: []string{tg + "0"}})
	apiError(t, err, "ValidationError", "Provided Target Groups may not be valid")

	lbGroup(t, env, c, "web", 2, []string{tg}, nil)
	g := waitGroup(t, env, c, "web", "InService", inService(2))
	a, b := aws.ToString(g.Instances[0].InstanceId), aws.ToString(g.Instances[1].InstanceId)
	if h := targetHealth(t, lbc, tg, a); h.State != elbv2types.TargetHealthStateEnumInitial || string(h.Reason) != "Elb.RegistrationInProgress" {
		t.Errorf("new member's target health = %s/%s, want initial/Elb.RegistrationInProgress", h.State, string(h.Reason))
	}
	env.Region().Advance(150 * time.Second)
	if h := targetHealth(t, lbc, tg, a); h.State != elbv2types.TargetHealthStateEnumHealthy {
		t.Errorf("after five 30 s health checks: %s, want healthy", h.State)
	}
	tgs, err := c.DescribeLoadBalancerTargetGroups(ctx, &autoscaling.DescribeLoadBalancerTargetGroupsInput{AutoScalingGroupName: aws.String("web")})
	if err != nil {
		t.Fatal(err)
	}
	if len(tgs.LoadBalancerTargetGroups) != 1 || aws.ToString(tgs.LoadBalancerTargetGroups[0].State) != "InService" {
		t.Errorf("DescribeLoadBalancerTargetGroups = %+v, want the target group InService", tgs.LoadBalancerTargetGroups)
	}

	// Detach: the member stays Detaching while its target drains.
	det, err := c.DetachInstances(ctx, &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{a},
		ShouldDecrementDesiredCapacity: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(det.Activities) != 1 || det.Activities[0].StatusCode != types.ScalingActivityStatusCodeWaitingForELBConnectionDraining {
		t.Errorf("DetachInstances activities = %+v, want one WaitingForELBConnectionDraining", det.Activities)
	}
	if h := targetHealth(t, lbc, tg, a); h.State != elbv2types.TargetHealthStateEnumDraining || string(h.Reason) != "Target.DeregistrationInProgress" {
		t.Errorf("detaching member's target health = %s/%s, want draining/Target.DeregistrationInProgress", h.State, string(h.Reason))
	}
	env.Region().Advance(299 * time.Second)
	if st, _ := findMember(describeGroup(t, c, "web"), a); st != "Detaching" {
		t.Fatalf("299 s after DetachInstances: %q, want Detaching", st)
	}
	env.Region().Advance(2 * time.Second)
	if st, ok := findMember(describeGroup(t, c, "web"), a); ok {
		t.Fatalf("301 s after DetachInstances: still %s", st)
	}
	if h := targetHealth(t, lbc, tg, a); h.State != elbv2types.TargetHealthStateEnumUnused || string(h.Reason) != "Target.NotRegistered" {
		t.Errorf("detached instance's target health = %s/%s, want unused/Target.NotRegistered", h.State, string(h.Reason))
	}

	// Terminate: the member stays Terminating, its instance running, for the delay.
	if _, err := c.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(b),
		ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	acts, err := c.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("web"), MaxRecords: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(acts.Activities) != 1 || acts.Activities[0].StatusCode != types.ScalingActivityStatusCodeWaitingForELBConnectionDraining {
		t.Errorf("termination activity = %+v, want WaitingForELBConnectionDraining", acts.Activities)
	}
	env.Region().Advance(299 * time.Second)
	if st, _ := findMember(describeGroup(t, c, "web"), b); st != "Terminating" {
		t.Fatalf("299 s after TerminateInstanceInAutoScalingGroup: %q, want Terminating", st)
	}
	if in, _ := env.Region().Instance(b); in.State != sim.StateRunning {
		t.Fatalf("draining instance is %s, want running", in.State)
	}
	env.Region().Advance(2 * time.Second)
	if in, _ := env.Region().Instance(b); in.State != sim.StateShuttingDown {
		t.Errorf("after the deregistration delay the instance is %s, want shutting-down", in.State)
	}
	waitGroup(t, env, c, "web", "empty", func(g types.AutoScalingGroup) bool { return len(g.Instances) == 0 })
}

func TestClassicLoadBalancerConnectionDraining(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lbc := elb.NewFromConfig(env.Config, func(o *elb.Options) { o.RetryMaxAttempts = 1 })
	out, err := lbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{LoadBalancerName: aws.String("web"),
		Listeners:         []elbtypes.Listener{{Protocol: aws.String("HTTP"), LoadBalancerPort: 80, InstancePort: aws.Int32(8080)}},
		AvailabilityZones: []string{"us-east-1a"}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.DNSName) == "" {
		t.Errorf("CreateLoadBalancer returned no DNS name")
	}
	_, err = lbc.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerNames: []string{"nope"}})
	apiError(t, err, "LoadBalancerNotFound", "There is no ACTIVE Load Balancer named 'nope'")
	attrs, err := lbc.DescribeLoadBalancerAttributes(ctx, &elb.DescribeLoadBalancerAttributesInput{LoadBalancerName: aws.String("web")})
	if err != nil {
		t.Fatal(err)
	}
	if d := attrs.LoadBalancerAttributes.ConnectionDraining; d.Enabled || aws.ToInt32(d.Timeout) != 300 {
		t.Errorf("default connection draining = %v/%d, want disabled/300", d.Enabled, aws.ToInt32(d.Timeout))
	}
	if _, err := lbc.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerName: aws.String("web"),
		LoadBalancerAttributes: &elbtypes.LoadBalancerAttributes{ConnectionDraining: &elbtypes.ConnectionDraining{Enabled: true, Timeout: aws.Int32(60)}}}); err != nil {
		t.Fatal(err)
	}

	lbGroup(t, env, c, "web", 0, nil, nil)
	if _, err := c.AttachLoadBalancers(ctx, &autoscaling.AttachLoadBalancersInput{AutoScalingGroupName: aws.String("web"), LoadBalancerNames: []string{"web"}}); err != nil {
		t.Fatal(err)
	}
	if g := describeGroup(t, c, "web"); len(g.LoadBalancerNames) != 1 || g.LoadBalancerNames[0] != "web" {
		t.Errorf("group's LoadBalancerNames = %v", g.LoadBalancerNames)
	}
	if _, err := c.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, env, c, "web", "InService", inService(1))
	id := aws.ToString(g.Instances[0].InstanceId)
	health := func() elbtypes.InstanceState {
		t.Helper()
		out, err := lbc.DescribeInstanceHealth(ctx, &elb.DescribeInstanceHealthInput{LoadBalancerName: aws.String("web"),
			Instances: []elbtypes.Instance{{InstanceId: aws.String(id)}}})
		if err != nil {
			t.Fatal(err)
		}
		return out.InstanceStates[0]
	}
	if s := health(); aws.ToString(s.State) != "OutOfService" || aws.ToString(s.Description) != "Instance registration is still in progress." {
		t.Errorf("new member: %s %q", aws.ToString(s.State), aws.ToString(s.Description))
	}
	env.Region().Advance(300 * time.Second)
	if s := health(); aws.ToString(s.State) != "InService" {
		t.Errorf("after ten 30 s health checks: %s, want InService", aws.ToString(s.State))
	}
	if _, err := c.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(id),
		ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if s := health(); aws.ToString(s.State) != "InService" || aws.ToString(s.Description) != "Instance deregistration currently in progress." {
		t.Errorf("draining member: %s %q", aws.ToString(s.State), aws.ToString(s.Description))
	}
	env.Region().Advance(59 * time.Second)
	if in, _ := env.Region().Instance(id); in.State != sim.StateRunning {
		t.Fatalf("59 s into a 60 s connection draining the instance is %s, want running", in.State)
	}
	env.Region().Advance(2 * time.Second)
	if in, _ := env.Region().Instance(id); in.State == sim.StateRunning {
		t.Errorf("after the connection-draining timeout the instance still runs")
	}
	if _, err := c.DetachLoadBalancers(ctx, &autoscaling.DetachLoadBalancersInput{AutoScalingGroupName: aws.String("web"), LoadBalancerNames: []string{"web"}}); err != nil {
		t.Fatal(err)
	}
	lbs, err := c.DescribeLoadBalancers(ctx, &autoscaling.DescribeLoadBalancersInput{AutoScalingGroupName: aws.String("web")})
	if err != nil {
		t.Fatal(err)
	}
	if len(lbs.LoadBalancers) != 0 {
		t.Errorf("after DetachLoadBalancers with no members: %+v", lbs.LoadBalancers)
	}
}
