package sim_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// hookGroup creates a one-instance group in us-east-1a with the given hooks.
func hookGroup(t *testing.T, env *simtest.Env, c *autoscaling.Client, name string, desired int32, hooks ...types.LifecycleHookSpecification) {
	t.Helper()
	lt := asgTemplate(env, name+"-lt", false)
	_, err := c.CreateAutoScalingGroup(context.Background(), &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName:           aws.String(name),
		LaunchTemplate:                 &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(lt)},
		MinSize:                        aws.Int32(0),
		MaxSize:                        aws.Int32(4),
		DesiredCapacity:                aws.Int32(desired),
		AvailabilityZones:              []string{"us-east-1a"},
		LifecycleHookSpecificationList: hooks,
	})
	if err != nil {
		t.Fatalf("CreateAutoScalingGroup %s: %v", name, err)
	}
}

func stateIs(state string, n int) func(types.AutoScalingGroup) bool {
	return func(g types.AutoScalingGroup) bool { return countState(g, state) == n }
}

func TestLifecycleLaunchHookHoldsInstanceUntilCompleted(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	hookGroup(t, env, c, "web", 1, types.LifecycleHookSpecification{LifecycleHookName: aws.String("warm"),
		LifecycleTransition: aws.String(sim.TransitionLaunching), HeartbeatTimeout: aws.Int32(60), DefaultResult: aws.String("CONTINUE")})

	hooks, err := c.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String("web")})
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks.LifecycleHooks) != 1 {
		t.Fatalf("DescribeLifecycleHooks = %+v", hooks.LifecycleHooks)
	}
	h := hooks.LifecycleHooks[0]
	if aws.ToString(h.LifecycleHookName) != "warm" || aws.ToInt32(h.HeartbeatTimeout) != 60 || aws.ToInt32(h.GlobalTimeout) != 6000 ||
		aws.ToString(h.DefaultResult) != "CONTINUE" || aws.ToString(h.LifecycleTransition) != sim.TransitionLaunching {
		t.Errorf("hook = %+v, want warm, 60 s heartbeat, 6000 s global timeout, CONTINUE", h)
	}

	g := waitGroup(t, env, c, "web", "Pending:Wait", stateIs("Pending:Wait", 1))
	id := aws.ToString(g.Instances[0].InstanceId)
	// The instance runs, but the group holds it out of service.
	env.Region().Advance(30 * time.Second)
	if g = describeGroup(t, c, "web"); countState(g, "Pending:Wait") != 1 {
		t.Fatalf("after 30 s: %s, want the member still in Pending:Wait", groupSummary(g))
	}
	var events []string
	for _, e := range env.Region().Events() {
		if e.DetailType == sim.DetailLaunchLifecycleAction {
			events = append(events, e.Detail["EC2InstanceId"].(string)+"/"+e.Detail["LifecycleHookName"].(string))
		}
	}
	if strings.Join(events, " ") != id+"/warm" {
		t.Errorf("launch lifecycle action events = %v, want one for %s/warm", events, id)
	}

	_, err = c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("warm"), InstanceId: aws.String("i-0000000000000000f"), LifecycleActionResult: aws.String("CONTINUE")})
	apiError(t, err, "ValidationError", "No active Lifecycle Action found with instance ID i-0000000000000000f")
	_, err = c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("warm"), LifecycleActionToken: aws.String("bcd2c7a8-0000-4000-8000-000000000000"), LifecycleActionResult: aws.String("CONTINUE")})
	apiError(t, err, "ValidationError", "No active Lifecycle Action found with token bcd2c7a8-0000-4000-8000-000000000000")

	if _, err := c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("warm"), InstanceId: aws.String(id), LifecycleActionResult: aws.String("CONTINUE")}); err != nil {
		t.Fatal(err)
	}
	g = describeGroup(t, c, "web")
	if st := string(g.Instances[0].LifecycleState); st != "Pending:Proceed" && st != "InService" {
		t.Errorf("after CompleteLifecycleAction: %s, want Pending:Proceed or InService", groupSummary(g))
	}
	waitGroup(t, env, c, "web", "InService", inService(1))
	_, err = c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("warm"), InstanceId: aws.String(id), LifecycleActionResult: aws.String("CONTINUE")})
	apiError(t, err, "ValidationError", "No active Lifecycle Action found with instance ID "+id)
}

func TestLifecycleLaunchHookTimeoutAbandonsAndHeartbeatExtends(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	hookGroup(t, env, c, "web", 1, types.LifecycleHookSpecification{LifecycleHookName: aws.String("warm"),
		LifecycleTransition: aws.String(sim.TransitionLaunching), HeartbeatTimeout: aws.Int32(30)})
	g := waitGroup(t, env, c, "web", "Pending:Wait", stateIs("Pending:Wait", 1))
	first := aws.ToString(g.Instances[0].InstanceId)

	// A heartbeat 20 s in restarts the 30 s timeout: the member still waits 40 s in.
	env.Region().Advance(20 * time.Second)
	if _, err := c.RecordLifecycleActionHeartbeat(ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("warm"), InstanceId: aws.String(first)}); err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(20 * time.Second)
	if g = describeGroup(t, c, "web"); countState(g, "Pending:Wait") != 1 {
		t.Fatalf("40 s in, after a heartbeat at 20 s: %s, want Pending:Wait", groupSummary(g))
	}
	// Then the timeout passes; the default result (ABANDON) terminates the instance and the
	// group launches another one.
	env.Region().Advance(11 * time.Second)
	g = describeGroup(t, c, "web")
	if m, ok := findMember(g, first); !ok || m != "Terminating" {
		t.Fatalf("after the heartbeat timeout: %s, want %s Terminating", groupSummary(g), first)
	}
	g = waitGroup(t, env, c, "web", "a replacement waiting", func(g types.AutoScalingGroup) bool {
		_, old := findMember(g, first)
		return !old && countState(g, "Pending:Wait") == 1
	})
	in, _ := env.Region().Instance(first)
	if in.State != sim.StateTerminated {
		t.Errorf("abandoned instance %s is %s, want terminated", first, in.State)
	}
	acts, err := c.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("web")})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range acts.Activities {
		if strings.Contains(aws.ToString(a.Description), "Terminating EC2 instance: "+first) && strings.Contains(aws.ToString(a.Cause), "ABANDON") {
			found = true
		}
	}
	if !found {
		t.Errorf("no termination activity for %s citing ABANDON", first)
	}
}

func findMember(g types.AutoScalingGroup, id string) (string, bool) {
	for _, in := range g.Instances {
		if aws.ToString(in.InstanceId) == id {
			return string(in.LifecycleState), true
		}
	}
	return "", false
}

func TestLifecycleTerminateHookNotifiesQueueAndWaitsForToken(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	q := sqs.NewFromConfig(env.Config)
	qo, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("hooks")})
	if err != nil {
		t.Fatal(err)
	}
	hookGroup(t, env, c, "web", 1)
	if _, err := c.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("drain"), LifecycleTransition: aws.String(sim.TransitionTerminating), HeartbeatTimeout: aws.Int32(300),
		DefaultResult: aws.String("CONTINUE"), NotificationTargetARN: aws.String("arn:aws:sqs:us-east-1:123456789012:hooks"),
		RoleARN: aws.String("arn:aws:iam::123456789012:role/hooks"), NotificationMetadata: aws.String("meta")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("bad"), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_REBOOTING")})
	apiError(t, err, "ValidationError", "autoscaling:EC2_INSTANCE_REBOOTING")
	g := waitGroup(t, env, c, "web", "InService", inService(1))
	id := aws.ToString(g.Instances[0].InstanceId)

	if _, err := c.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(id),
		ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	g = describeGroup(t, c, "web")
	if st, _ := findMember(g, id); st != "Terminating:Wait" {
		t.Fatalf("after TerminateInstanceInAutoScalingGroup: %s, want Terminating:Wait", groupSummary(g))
	}
	env.Region().Advance(time.Minute)
	if in, _ := env.Region().Instance(id); in.State != sim.StateRunning {
		t.Fatalf("instance %s is %s while its terminate hook waits, want running", id, in.State)
	}

	msgs, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qo.QueueUrl, MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	var token string
	var kinds []string
	for _, m := range msgs.Messages {
		var body map[string]any
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &body); err != nil {
			t.Fatalf("message %q: %v", aws.ToString(m.Body), err)
		}
		if ev, ok := body["Event"].(string); ok {
			kinds = append(kinds, ev)
			continue
		}
		kinds = append(kinds, body["LifecycleTransition"].(string))
		if body["EC2InstanceId"] != id || body["NotificationMetadata"] != "meta" || body["LifecycleHookName"] != "drain" {
			t.Errorf("lifecycle notification = %v", body)
		}
		token, _ = body["LifecycleActionToken"].(string)
	}
	if strings.Join(kinds, " ") != "autoscaling:TEST_NOTIFICATION "+sim.TransitionTerminating || token == "" {
		t.Fatalf("queue messages = %v (token %q), want the test notification then the terminate action", kinds, token)
	}
	if _, err := c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("drain"), LifecycleActionToken: aws.String(token), LifecycleActionResult: aws.String("CONTINUE")}); err != nil {
		t.Fatal(err)
	}
	if st, _ := findMember(describeGroup(t, c, "web"), id); st != "Terminating:Proceed" {
		t.Errorf("after completing the terminate hook: %s, want Terminating:Proceed", st)
	}
	waitGroup(t, env, c, "web", "empty", func(g types.AutoScalingGroup) bool { return len(g.Instances) == 0 })
	if in, _ := env.Region().Instance(id); in.State != sim.StateTerminated {
		t.Errorf("instance %s is %s, want terminated", id, in.State)
	}
}

// AWS's "lifecycle hook availability" table: AttachInstances and DetachInstances do not run
// lifecycle hooks.
func TestLifecycleHooksSkipAttachAndDetach(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	hookGroup(t, env, c, "web", 0,
		types.LifecycleHookSpecification{LifecycleHookName: aws.String("up"), LifecycleTransition: aws.String(sim.TransitionLaunching)},
		types.LifecycleHookSpecification{LifecycleHookName: aws.String("down"), LifecycleTransition: aws.String(sim.TransitionTerminating)})
	e := ec2.NewFromConfig(env.Config)
	run, err := e.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SubnetId: aws.String(defaultSubnet(t, env, "us-east-1a"))})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	env.Region().Advance(sim.FastLatencies().Pending)
	if _, err := c.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, env, c, "web", "InService", func(g types.AutoScalingGroup) bool {
		if countState(g, "Pending:Wait") > 0 {
			t.Fatalf("attached instance in Pending:Wait: %s", groupSummary(g))
		}
		return countState(g, "InService") == 1
	})
	if _, err := c.DetachInstances(ctx, &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{id},
		ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, env, c, "web", "empty", func(g types.AutoScalingGroup) bool {
		if countState(g, "Terminating:Wait") > 0 {
			t.Fatalf("detached instance in Terminating:Wait: %s", groupSummary(g))
		}
		return len(g.Instances) == 0
	})
	if in, _ := env.Region().Instance(id); in.State != sim.StateRunning {
		t.Errorf("detached instance is %s, want running", in.State)
	}
}

// An instance that EC2 terminated (a spot interruption) still goes through the group's
// terminate hook when the health check takes it out of service.
func TestLifecycleTerminateHookAfterExternalTermination(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	hookGroup(t, env, c, "web", 1, types.LifecycleHookSpecification{LifecycleHookName: aws.String("down"),
		LifecycleTransition: aws.String(sim.TransitionTerminating), HeartbeatTimeout: aws.Int32(600)})
	g := waitGroup(t, env, c, "web", "InService", inService(1))
	id := aws.ToString(g.Instances[0].InstanceId)
	if _, err := ec2.NewFromConfig(env.Config).TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, env, c, "web", "Terminating:Wait", func(g types.AutoScalingGroup) bool {
		st, _ := findMember(g, id)
		return st == "Terminating:Wait"
	})
	if _, err := c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("down"), InstanceId: aws.String(id), LifecycleActionResult: aws.String("ABANDON")}); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, env, c, "web", "the old member gone", func(g types.AutoScalingGroup) bool {
		_, ok := findMember(g, id)
		return !ok
	})
	if _, err := c.DeleteLifecycleHook(ctx, &autoscaling.DeleteLifecycleHookInput{AutoScalingGroupName: aws.String("web"), LifecycleHookName: aws.String("down")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.DeleteLifecycleHook(ctx, &autoscaling.DeleteLifecycleHookInput{AutoScalingGroupName: aws.String("web"), LifecycleHookName: aws.String("down")})
	apiError(t, err, "ValidationError", "No Lifecycle Hook found")
}

func defaultSubnet(t *testing.T, env *simtest.Env, az string) string {
	t.Helper()
	id, ok := env.Region().DefaultSubnet(az)
	if !ok {
		t.Fatalf("no default subnet in %s", az)
	}
	return id
}

// A force delete skips the terminate hooks, even of a member already waiting on one.
func TestLifecycleHooksSkippedByForceDelete(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	hookGroup(t, env, c, "web", 2, types.LifecycleHookSpecification{LifecycleHookName: aws.String("down"),
		LifecycleTransition: aws.String(sim.TransitionTerminating)})
	g := waitGroup(t, env, c, "web", "InService", inService(2))
	id := aws.ToString(g.Instances[0].InstanceId)
	if _, err := c.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(id),
		ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if st, _ := findMember(describeGroup(t, c, "web"), id); st != "Terminating:Wait" {
		t.Fatalf("member %s is %q, want Terminating:Wait", id, st)
	}
	if _, err := c.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"), ForceDelete: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		env.Region().Advance(time.Second)
	}
	if _, ok := env.Region().Group("web"); ok {
		t.Errorf("group still exists 10 s after a force delete")
	}
	for _, in := range g.Instances {
		if got, _ := env.Region().Instance(aws.ToString(in.InstanceId)); got.State != sim.StateTerminated {
			t.Errorf("instance %s is %s, want terminated", got.ID, got.State)
		}
	}
}

// The terminate lifecycle action reaches an EventBridge rule's queue as AWS's event.
func TestLifecycleActionEventReachesRule(t *testing.T) {
	e := simtest.StartEvents(t, sim.Options{})
	ctx := context.Background()
	url, arn := e.Queue(t, "q", "")
	ruleARN := e.Rule(t, "hooks", `{"source":["aws.autoscaling"],"detail-type":["EC2 Instance-terminate Lifecycle Action"]}`, arn)
	if _, err := e.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"Policy": simtest.EventsPolicy(arn, ruleARN)}}); err != nil {
		t.Fatal(err)
	}
	c := autoscaling.NewFromConfig(e.Config, func(o *autoscaling.Options) { o.RetryMaxAttempts = 1 })
	hookGroup(t, e.Env, c, "web", 1, types.LifecycleHookSpecification{LifecycleHookName: aws.String("down"),
		LifecycleTransition: aws.String(sim.TransitionTerminating), NotificationMetadata: aws.String("meta")})
	g := waitGroup(t, e.Env, c, "web", "InService", inService(1))
	id := aws.ToString(g.Instances[0].InstanceId)
	if _, err := c.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(id),
		ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	bodies := e.Receive(t, url, 2)
	if len(bodies) != 1 {
		t.Fatalf("queue got %d messages, want the terminate lifecycle action; deliveries %+v", len(bodies), e.Region().EventDeliveries())
	}
	ev := simtest.DecodeEnvelope(t, bodies[0])
	grp, _ := e.Region().Group("web")
	if ev.Source != "aws.autoscaling" || ev.DetailType != sim.DetailTerminateLifecycleAction || len(ev.Resources) != 1 || ev.Resources[0] != grp.ARN ||
		ev.Detail["EC2InstanceId"] != id || ev.Detail["LifecycleHookName"] != "down" || ev.Detail["AutoScalingGroupName"] != "web" ||
		ev.Detail["LifecycleTransition"] != sim.TransitionTerminating || ev.Detail["NotificationMetadata"] != "meta" || ev.Detail["LifecycleActionToken"] == "" {
		t.Errorf("event = %+v", ev)
	}
	// Its token completes the action.
	if _, err := c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("down"), LifecycleActionToken: aws.String(ev.Detail["LifecycleActionToken"].(string)),
		LifecycleActionResult: aws.String("CONTINUE")}); err != nil {
		t.Fatal(err)
	}
}
