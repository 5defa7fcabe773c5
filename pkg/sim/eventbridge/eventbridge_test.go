package eventbridge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// launchSpot runs a spot instance through the EC2 API and returns its id.
func launchSpot(t *testing.T, e *simtest.Events) string {
	t.Helper()
	out, err := ec2.NewFromConfig(e.Config).RunInstances(context.Background(), &ec2.RunInstancesInput{
		ImageId: aws.String("ami-12345678"), InstanceType: ec2types.InstanceTypeM5Large, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		InstanceMarketOptions: &ec2types.InstanceMarketOptionsRequest{MarketType: ec2types.MarketTypeSpot},
	})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	return aws.ToString(out.Instances[0].InstanceId)
}

func TestEventsRuleLifecycle(t *testing.T) {
	e := simtest.StartEvents(t, sim.Options{})
	ctx := context.Background()
	pattern := `{"source":["aws.ec2"],"detail-type":["EC2 Spot Instance Interruption Warning"]}`
	out, err := e.EventBridge.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("spot"), EventPattern: aws.String(pattern),
		Description: aws.String("spot warnings")})
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:events:us-east-1:123456789012:rule/spot"; aws.ToString(out.RuleArn) != want {
		t.Errorf("RuleArn = %s, want %s", aws.ToString(out.RuleArn), want)
	}
	d, err := e.EventBridge.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String("spot")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(d.EventPattern) != pattern || d.State != ebtypes.RuleStateEnabled || aws.ToString(d.Description) != "spot warnings" ||
		aws.ToString(d.EventBusName) != "default" || aws.ToString(d.Arn) != aws.ToString(out.RuleArn) {
		t.Errorf("DescribeRule = %+v", d)
	}

	// PutRule again updates the rule in place: same ARN, new definition.
	again, err := e.EventBridge.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("spot"), EventPattern: aws.String(pattern),
		State: ebtypes.RuleStateDisabled})
	if err != nil || aws.ToString(again.RuleArn) != aws.ToString(out.RuleArn) {
		t.Fatalf("second PutRule = %v, %v", again, err)
	}
	d, _ = e.EventBridge.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String("spot")})
	if d.State != ebtypes.RuleStateDisabled || d.Description != nil {
		t.Errorf("after update: state %s, description %v; want DISABLED and none", d.State, d.Description)
	}

	// Targets: add, replace by id, list, the per-rule limit.
	_, qarn := e.Queue(t, "q", "")
	if _, err := e.EventBridge.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("spot"), Targets: []ebtypes.Target{
		{Id: aws.String("a"), Arn: aws.String(qarn)}, {Id: aws.String("b"), Arn: aws.String(qarn + "-other")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EventBridge.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("spot"), Targets: []ebtypes.Target{
		{Id: aws.String("b"), Arn: aws.String(qarn), Input: aws.String(`{"fixed":true}`)}}}); err != nil {
		t.Fatal(err)
	}
	lt, err := e.EventBridge.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: aws.String("spot")})
	if err != nil {
		t.Fatal(err)
	}
	if len(lt.Targets) != 2 || aws.ToString(lt.Targets[1].Id) != "b" || aws.ToString(lt.Targets[1].Arn) != qarn ||
		aws.ToString(lt.Targets[1].Input) != `{"fixed":true}` {
		t.Errorf("ListTargetsByRule = %+v", lt.Targets)
	}
	var many []ebtypes.Target
	for i := range 4 {
		many = append(many, ebtypes.Target{Id: aws.String(fmt.Sprintf("x%d", i)), Arn: aws.String(qarn)})
	}
	// The SDK treats LimitExceededException as throttling and retries it; once is enough here.
	_, err = e.EventBridge.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("spot"), Targets: many},
		func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })
	var limit *ebtypes.LimitExceededException
	if !errors.As(err, &limit) {
		t.Errorf("a sixth target: err = %v, want LimitExceededException", err)
	}
}

func TestEventsRuleValidation(t *testing.T) {
	e := simtest.StartEvents(t, sim.Options{})
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		in      *eventbridge.PutRuleInput
		want    any
		message string
	}{
		{"no pattern", &eventbridge.PutRuleInput{Name: aws.String("r")}, "ValidationException", "EventPattern or ScheduleExpression"},
		{"bad name", &eventbridge.PutRuleInput{Name: aws.String("a b"), EventPattern: aws.String(`{"source":["x"]}`)}, "ValidationException", "regular expression"},
		{"not JSON", &eventbridge.PutRuleInput{Name: aws.String("r"), EventPattern: aws.String(`{"source":`)}, new(*ebtypes.InvalidEventPatternException), "not JSON"},
		{"not an array", &eventbridge.PutRuleInput{Name: aws.String("r"), EventPattern: aws.String(`{"source":"aws.ec2"}`)}, new(*ebtypes.InvalidEventPatternException), `"source" must be an object or an array`},
		{"empty array", &eventbridge.PutRuleInput{Name: aws.String("r"), EventPattern: aws.String(`{"source":[]}`)}, new(*ebtypes.InvalidEventPatternException), "Empty arrays"},
		{"unknown filter", &eventbridge.PutRuleInput{Name: aws.String("r"), EventPattern: aws.String(`{"source":[{"regex":"a.*"}]}`)}, new(*ebtypes.InvalidEventPatternException), "Unrecognized match type regex"},
		{"other bus", &eventbridge.PutRuleInput{Name: aws.String("r"), EventBusName: aws.String("custom"), EventPattern: aws.String(`{"source":["x"]}`)}, new(*ebtypes.ResourceNotFoundException), "Event bus custom does not exist"},
	} {
		_, err := e.EventBridge.PutRule(ctx, c.in)
		var ok bool
		switch want := c.want.(type) {
		case string:
			// EventBridge does not model ValidationException: the SDK reports a generic API error.
			ok = awsapi.Code(err) == want
		case **ebtypes.InvalidEventPatternException:
			ok = errors.As(err, want)
		case **ebtypes.ResourceNotFoundException:
			ok = errors.As(err, want)
		}
		if !ok || !strings.Contains(fmt.Sprint(err), c.message) {
			t.Errorf("%s: err = %v, want %T with %q", c.name, err, c.want, c.message)
		}
	}
	_, err := e.EventBridge.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("missing"),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String("arn:aws:sqs:us-east-1:123456789012:q")}}})
	var nf *ebtypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("PutTargets on a missing rule: err = %v, want ResourceNotFoundException", err)
	}
	e.Rule(t, "r", `{"source":["aws.ec2"]}`, "")
	_, err = e.EventBridge.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("r"),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String("not-an-arn")}}})
	if awsapi.Code(err) != "ValidationException" {
		t.Errorf("PutTargets with a bad ARN: err = %v, want ValidationException", err)
	}
	e.Region().ThrottleNext("events", 1)
	_, err = e.EventBridge.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String("r")}, func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })
	var throttled *ebtypes.ThrottlingException
	if !errors.As(err, &throttled) {
		t.Errorf("throttled DescribeRule: err = %v, want ThrottlingException", err)
	}
}

func TestEventsDeliversInterruptionToQueue(t *testing.T) {
	e := simtest.StartEvents(t, sim.Options{})
	r := e.Region()
	spot, other := launchSpot(t, e), launchSpot(t, e)
	url, arn := e.Queue(t, "spotmax-events", "")
	spotRule := r.RuleARN("spot")
	stateRule := r.RuleARN("stopping")
	if _, err := e.SQS.SetQueueAttributes(context.Background(), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"Policy": simtest.EventsPolicy(arn, spotRule, stateRule)}}); err != nil {
		t.Fatal(err)
	}
	e.Rule(t, "spot", `{"source":["aws.ec2"],"detail-type":["EC2 Spot Instance Interruption Warning"]}`, arn)
	// Only the states that matter: a detail.* filter with a list and a prefix.
	e.Rule(t, "stopping", `{"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"],
		"detail":{"state":["stopping","stopped",{"prefix":"shutting"}]}}`, arn)
	// A disabled rule and a rule for another source deliver nothing.
	if _, err := e.EventBridge.PutRule(context.Background(), &eventbridge.PutRuleInput{Name: aws.String("off"),
		EventPattern: aws.String(`{"source":["aws.ec2"]}`), State: ebtypes.RuleStateDisabled}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EventBridge.PutTargets(context.Background(), &eventbridge.PutTargetsInput{Rule: aws.String("off"),
		Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(arn)}}}); err != nil {
		t.Fatal(err)
	}
	e.Rule(t, "asg", `{"source":["aws.autoscaling"]}`, arn)

	if err := r.Interrupt(spot, "stop"); err != nil {
		t.Fatal(err)
	}
	bodies := e.Receive(t, url, 1)
	if len(bodies) != 1 {
		t.Fatalf("after the interruption the queue holds %d messages, want 1: %v", len(bodies), bodies)
	}
	ev := simtest.DecodeEnvelope(t, bodies[0])
	notice, _ := r.Instance(spot)
	if ev.Version != "0" || ev.Source != "aws.ec2" || ev.DetailType != "EC2 Spot Instance Interruption Warning" ||
		ev.Account != "123456789012" || ev.Region != "us-east-1" || ev.ID == "" ||
		len(ev.Resources) != 1 || ev.Resources[0] != "arn:aws:ec2:us-east-1:123456789012:instance/"+spot ||
		ev.Detail["instance-id"] != spot || ev.Detail["instance-action"] != "stop" ||
		ev.Time != notice.Interruption.Notice.UTC().Format("2006-01-02T15:04:05Z") {
		t.Errorf("interruption message = %+v", ev)
	}

	// Two minutes later the instance stops: "stopping" and "stopped" match the state rule,
	// the other instance's interruption stays out since that instance was not interrupted.
	r.Advance(2*time.Minute + time.Second)
	r.Advance(r.Latencies().Stopping + time.Second)
	var states []string
	for _, b := range e.Receive(t, url, 1) {
		ev := simtest.DecodeEnvelope(t, b)
		if ev.DetailType != "EC2 Instance State-change Notification" || ev.Detail["instance-id"] != spot {
			t.Errorf("unexpected message %s", b)
			continue
		}
		states = append(states, ev.Detail["state"].(string))
	}
	if strings.Join(states, ",") != "stopping,stopped" {
		t.Errorf("state-change messages %v, want stopping,stopped", states)
	}
	if _, ok := r.Instance(other); !ok {
		t.Fatal("other instance vanished")
	}
	for _, d := range r.EventDeliveries() {
		if d.Err != "" {
			t.Errorf("delivery of %s by %s failed: %s", d.DetailType, d.Rule, d.Err)
		}
		if d.Rule == "off" || d.Rule == "asg" {
			t.Errorf("rule %s delivered %s", d.Rule, d.DetailType)
		}
	}
}

func TestEventsQueuePolicyGuardsDelivery(t *testing.T) {
	e := simtest.StartEvents(t, sim.Options{})
	r := e.Region()
	ctx := context.Background()
	url, arn := e.Queue(t, "q", "")
	e.Rule(t, "spot", `{"detail-type":["EC2 Spot Instance Interruption Warning"]}`, arn)
	launch := func() string {
		id := launchSpot(t, e)
		if err := r.Interrupt(id, ""); err != nil {
			t.Fatal(err)
		}
		return id
	}
	for _, c := range []struct {
		name, policy, reason string
	}{
		{"no policy", "", "has no access policy"},
		{"another rule", simtest.EventsPolicy(arn, r.RuleARN("other")), "condition ArnEquals aws:SourceArn"},
		{"another principal", strings.Replace(simtest.EventsPolicy(arn, r.RuleARN("spot")), "events.amazonaws.com", "sns.amazonaws.com", 1), "principal is not events.amazonaws.com"},
	} {
		if c.policy != "" {
			if _, err := e.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
				Attributes: map[string]string{"Policy": c.policy}}); err != nil {
				t.Fatal(err)
			}
		}
		launch()
		if got := e.Receive(t, url, 0); len(got) != 0 {
			t.Errorf("%s: the queue received %v", c.name, got)
		}
		ds := r.EventDeliveries()
		if len(ds) == 0 || !strings.Contains(ds[len(ds)-1].Err, c.reason) {
			t.Errorf("%s: last delivery %+v, want a failure with %q", c.name, ds, c.reason)
		}
	}
	if _, err := e.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"Policy": simtest.EventsPolicy(arn, r.RuleARN("spot"))}}); err != nil {
		t.Fatal(err)
	}
	id := launch()
	got := e.Receive(t, url, 1)
	if len(got) != 1 || simtest.DecodeEnvelope(t, got[0]).Detail["instance-id"] != id {
		t.Errorf("with the right policy the queue received %v, want the interruption of %s", got, id)
	}
}

func TestEventsLaunchUnsuccessful(t *testing.T) {
	e := simtest.StartEvents(t, sim.Options{})
	r := e.Region()
	ctx := context.Background()
	url, arn := e.Queue(t, "q", "")
	ruleARN := e.Rule(t, "asg", `{"source":["aws.autoscaling"],"detail-type":["EC2 Instance Launch Unsuccessful"]}`, arn)
	if _, err := e.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"Policy": simtest.EventsPolicy(arn, ruleARN)}}); err != nil {
		t.Fatal(err)
	}
	e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, Desired: 0, AZs: []string{"us-east-1a"}})
	r.SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: "us-east-1a", Market: sim.MarketSpot}, 0)
	asg := autoscaling.NewFromConfig(e.Config)
	if _, err := asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("web"),
		DesiredCapacity: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	r.Advance(time.Second)
	bodies := e.Receive(t, url, 2)
	if len(bodies) == 0 {
		t.Fatalf("no launch failure message; deliveries %+v", r.EventDeliveries())
	}
	ev := simtest.DecodeEnvelope(t, bodies[0])
	g, _ := r.Group("web")
	if ev.Source != "aws.autoscaling" || ev.DetailType != "EC2 Instance Launch Unsuccessful" ||
		len(ev.Resources) != 1 || ev.Resources[0] != g.ARN ||
		ev.Detail["AutoScalingGroupName"] != "web" || ev.Detail["StatusCode"] != "Failed" || ev.Detail["EC2InstanceId"] != "" ||
		!strings.Contains(fmt.Sprint(ev.Detail["StatusMessage"]), "no Spot capacity") || ev.Detail["ActivityId"] == "" {
		t.Errorf("launch failure message = %+v", ev)
	}
	details, _ := ev.Detail["Details"].(map[string]any)
	if details["Availability Zone"] != "us-east-1a" {
		t.Errorf("Details = %v, want the AZ of the failed launch", ev.Detail["Details"])
	}
	// The same event is in the region's event log.
	var seen bool
	for _, re := range r.Events() {
		seen = seen || (re.DetailType == sim.DetailLaunchUnsuccessful && re.ID == ev.ID)
	}
	if !seen {
		t.Error("the launch failure is not in Region.Events()")
	}
}

// TestEventsAWSCLI checks the EventBridge wire shapes with a second real client, the AWS CLI
// (botocore).
func TestEventsAWSCLI(t *testing.T) {
	kind := sim.KindBehaviors()
	e := simtest.StartCLI(t, sim.Options{Behaviors: &kind})
	var put struct{ RuleArn string }
	e.Run(&put, "events", "put-rule", "--name", "spot", "--event-pattern", `{"source":["aws.ec2"],"detail":{"state":[{"prefix":"stop"}]}}`)
	if put.RuleArn != "arn:aws:events:us-east-1:123456789012:rule/spot" {
		t.Errorf("put-rule RuleArn = %q", put.RuleArn)
	}
	var targets struct {
		FailedEntryCount int
	}
	e.Run(&targets, "events", "put-targets", "--rule", "spot", "--targets", "Id=q,Arn=arn:aws:sqs:us-east-1:123456789012:q")
	var list struct {
		Targets []struct{ Id, Arn string }
	}
	e.Run(&list, "events", "list-targets-by-rule", "--rule", "spot")
	if targets.FailedEntryCount != 0 || len(list.Targets) != 1 || list.Targets[0].Id != "q" || list.Targets[0].Arn != "arn:aws:sqs:us-east-1:123456789012:q" {
		t.Errorf("put-targets %+v, list-targets-by-rule %+v", targets, list)
	}
	if out := e.Fail("events", "describe-rule", "--name", "missing"); !strings.Contains(out, "ResourceNotFoundException") || !strings.Contains(out, "Rule missing does not exist") {
		t.Errorf("describe-rule of a missing rule: %s", out)
	}
}
