package sim_test

import (
	"context"
	"encoding/json"
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
	"github.com/aws/smithy-go"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// eventsEnv is a simulated region with an EventBridge and an SQS client.
type eventsEnv struct {
	*simtest.Env
	eb  *eventbridge.Client
	sqs *sqs.Client
}

func startEvents(t *testing.T) *eventsEnv {
	t.Helper()
	env := simtest.Start(t, sim.Options{})
	return &eventsEnv{Env: env, eb: eventbridge.NewFromConfig(env.Config), sqs: sqs.NewFromConfig(env.Config)}
}

// queue creates a queue and, unless policy is "", sets its access policy; it returns the URL and
// the ARN.
func (e *eventsEnv) queue(t *testing.T, name, policy string) (string, string) {
	t.Helper()
	url := simtest.CreateQueue(t, e.sqs, name, nil)
	arn := simtest.QueueAttributes(t, e.sqs, url)["QueueArn"]
	if policy != "" {
		_, err := e.sqs.SetQueueAttributes(context.Background(), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
			Attributes: map[string]string{"Policy": policy}})
		if err != nil {
			t.Fatalf("SetQueueAttributes Policy: %v", err)
		}
	}
	return url, arn
}

// eventsPolicy allows EventBridge to send to queueARN from the rules given.
func eventsPolicy(queueARN string, ruleARNs ...string) string {
	b, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid": "events", "Effect": "Allow",
			"Principal": map[string]any{"Service": "events.amazonaws.com"},
			"Action":    "sqs:SendMessage", "Resource": queueARN,
			"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": ruleARNs}},
		}},
	})
	return string(b)
}

func (e *eventsEnv) rule(t *testing.T, name, pattern, queueARN string) string {
	t.Helper()
	ctx := context.Background()
	out, err := e.eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(name), EventPattern: aws.String(pattern)})
	if err != nil {
		t.Fatalf("PutRule %s: %v", name, err)
	}
	if queueARN != "" {
		tout, err := e.eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(name),
			Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(queueARN)}}})
		if err != nil || tout.FailedEntryCount != 0 {
			t.Fatalf("PutTargets %s: %v %+v", name, err, tout)
		}
	}
	return *out.RuleArn
}

// launchSpot runs a spot instance through the EC2 API and returns its id.
func (e *eventsEnv) launchSpot(t *testing.T) string {
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

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// receive long-polls a queue for up to wait and returns the bodies it got, deleting the messages.
func (e *eventsEnv) receive(t *testing.T, url string, wait int32) []string {
	t.Helper()
	out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url),
		MaxNumberOfMessages: 10, WaitTimeSeconds: wait})
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	var bodies []string
	for _, m := range out.Messages {
		bodies = append(bodies, *m.Body)
		if _, err := e.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatalf("DeleteMessage: %v", err)
		}
	}
	return bodies
}

type envelope struct {
	Version    string         `json:"version"`
	ID         string         `json:"id"`
	DetailType string         `json:"detail-type"`
	Source     string         `json:"source"`
	Account    string         `json:"account"`
	Time       string         `json:"time"`
	Region     string         `json:"region"`
	Resources  []string       `json:"resources"`
	Detail     map[string]any `json:"detail"`
}

func decodeEnvelope(t *testing.T, body string) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("message body is not an EventBridge event: %v\n%s", err, body)
	}
	return e
}

func TestEventsRuleLifecycle(t *testing.T) {
	e := startEvents(t)
	ctx := context.Background()
	pattern := `{"source":["aws.ec2"],"detail-type":["EC2 Spot Instance Interruption Warning"]}`
	out, err := e.eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("spot"), EventPattern: aws.String(pattern),
		Description: aws.String("spot warnings")})
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:events:us-east-1:123456789012:rule/spot"; aws.ToString(out.RuleArn) != want {
		t.Errorf("RuleArn = %s, want %s", aws.ToString(out.RuleArn), want)
	}
	d, err := e.eb.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String("spot")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(d.EventPattern) != pattern || d.State != ebtypes.RuleStateEnabled || aws.ToString(d.Description) != "spot warnings" ||
		aws.ToString(d.EventBusName) != "default" || aws.ToString(d.Arn) != aws.ToString(out.RuleArn) {
		t.Errorf("DescribeRule = %+v", d)
	}

	// PutRule again updates the rule in place: same ARN, new definition.
	again, err := e.eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("spot"), EventPattern: aws.String(pattern),
		State: ebtypes.RuleStateDisabled})
	if err != nil || aws.ToString(again.RuleArn) != aws.ToString(out.RuleArn) {
		t.Fatalf("second PutRule = %v, %v", again, err)
	}
	d, _ = e.eb.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String("spot")})
	if d.State != ebtypes.RuleStateDisabled || d.Description != nil {
		t.Errorf("after update: state %s, description %v; want DISABLED and none", d.State, d.Description)
	}

	for _, n := range []string{"spot-2", "spot-3", "other"} {
		e.rule(t, n, pattern, "")
	}
	var names []string
	var pages int
	input := &eventbridge.ListRulesInput{NamePrefix: aws.String("spot"), Limit: aws.Int32(2)}
	for {
		page, err := e.eb.ListRules(ctx, input)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page.Rules {
			names = append(names, aws.ToString(r.Name))
		}
		if page.NextToken == nil {
			break
		}
		input.NextToken = page.NextToken
	}
	if strings.Join(names, ",") != "spot,spot-2,spot-3" || pages != 2 {
		t.Errorf("ListRules spot* = %v in %d pages, want spot,spot-2,spot-3 in 2", names, pages)
	}

	// Targets: add, replace by id, list, the per-rule limit, remove.
	_, qarn := e.queue(t, "q", "")
	if _, err := e.eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("spot"), Targets: []ebtypes.Target{
		{Id: aws.String("a"), Arn: aws.String(qarn)}, {Id: aws.String("b"), Arn: aws.String(qarn + "-other")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("spot"), Targets: []ebtypes.Target{
		{Id: aws.String("b"), Arn: aws.String(qarn), Input: aws.String(`{"fixed":true}`)}}}); err != nil {
		t.Fatal(err)
	}
	lt, err := e.eb.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: aws.String("spot")})
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
	_, err = e.eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("spot"), Targets: many},
		func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })
	var limit *ebtypes.LimitExceededException
	if !errors.As(err, &limit) {
		t.Errorf("a sixth target: err = %v, want LimitExceededException", err)
	}
	_, err = e.eb.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String("spot")})
	if errorCode(err) != "ValidationException" || !strings.Contains(err.Error(), "has targets") {
		t.Errorf("DeleteRule with targets: err = %v, want ValidationException", err)
	}
	if _, err := e.eb.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: aws.String("spot"), Ids: []string{"a", "b", "nope"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.eb.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String("spot")}); err != nil {
		t.Fatalf("DeleteRule: %v", err)
	}
	if _, err := e.eb.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String("spot")}); err != nil {
		t.Errorf("deleting a deleted rule: %v, want success", err)
	}
	_, err = e.eb.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String("spot")})
	var nf *ebtypes.ResourceNotFoundException
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "Rule spot does not exist") {
		t.Errorf("DescribeRule of a deleted rule: err = %v, want ResourceNotFoundException", err)
	}
	_, err = e.eb.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: aws.String("spot")})
	if !errors.As(err, &nf) {
		t.Errorf("ListTargetsByRule of a deleted rule: err = %v, want ResourceNotFoundException", err)
	}
}

func TestEventsRuleValidation(t *testing.T) {
	e := startEvents(t)
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
		_, err := e.eb.PutRule(ctx, c.in)
		var ok bool
		switch want := c.want.(type) {
		case string:
			// EventBridge does not model ValidationException: the SDK reports a generic API error.
			ok = errorCode(err) == want
		case **ebtypes.InvalidEventPatternException:
			ok = errors.As(err, want)
		case **ebtypes.ResourceNotFoundException:
			ok = errors.As(err, want)
		}
		if !ok || !strings.Contains(fmt.Sprint(err), c.message) {
			t.Errorf("%s: err = %v, want %T with %q", c.name, err, c.want, c.message)
		}
	}
	_, err := e.eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("missing"),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String("arn:aws:sqs:us-east-1:123456789012:q")}}})
	var nf *ebtypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("PutTargets on a missing rule: err = %v, want ResourceNotFoundException", err)
	}
	e.rule(t, "r", `{"source":["aws.ec2"]}`, "")
	_, err = e.eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("r"),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String("not-an-arn")}}})
	if errorCode(err) != "ValidationException" {
		t.Errorf("PutTargets with a bad ARN: err = %v, want ValidationException", err)
	}
	e.Region().ThrottleNext("events", 1)
	_, err = e.eb.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String("r")}, func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })
	var throttled *ebtypes.ThrottlingException
	if !errors.As(err, &throttled) {
		t.Errorf("throttled DescribeRule: err = %v, want ThrottlingException", err)
	}
}

func TestEventsDeliversInterruptionToQueue(t *testing.T) {
	e := startEvents(t)
	r := e.Region()
	spot, other := e.launchSpot(t), e.launchSpot(t)
	url, arn := e.queue(t, "spotmax-events", "")
	spotRule := r.RuleARN("spot")
	stateRule := r.RuleARN("stopping")
	if _, err := e.sqs.SetQueueAttributes(context.Background(), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"Policy": eventsPolicy(arn, spotRule, stateRule)}}); err != nil {
		t.Fatal(err)
	}
	e.rule(t, "spot", `{"source":["aws.ec2"],"detail-type":["EC2 Spot Instance Interruption Warning"]}`, arn)
	// Only the states that matter: a detail.* filter with a list and a prefix.
	e.rule(t, "stopping", `{"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"],
		"detail":{"state":["stopping","stopped",{"prefix":"shutting"}]}}`, arn)
	// A disabled rule and a rule for another source deliver nothing.
	e.rule(t, "off", `{"source":["aws.ec2"]}`, arn)
	if _, err := e.eb.DisableRule(context.Background(), &eventbridge.DisableRuleInput{Name: aws.String("off")}); err != nil {
		t.Fatal(err)
	}
	e.rule(t, "asg", `{"source":["aws.autoscaling"]}`, arn)

	if err := r.Interrupt(spot, "stop"); err != nil {
		t.Fatal(err)
	}
	bodies := e.receive(t, url, 1)
	if len(bodies) != 1 {
		t.Fatalf("after the interruption the queue holds %d messages, want 1: %v", len(bodies), bodies)
	}
	ev := decodeEnvelope(t, bodies[0])
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
	for _, b := range e.receive(t, url, 1) {
		ev := decodeEnvelope(t, b)
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
	e := startEvents(t)
	r := e.Region()
	ctx := context.Background()
	url, arn := e.queue(t, "q", "")
	e.rule(t, "spot", `{"detail-type":["EC2 Spot Instance Interruption Warning"]}`, arn)
	launch := func() string {
		id := e.launchSpot(t)
		if err := r.Interrupt(id, ""); err != nil {
			t.Fatal(err)
		}
		return id
	}
	for _, c := range []struct {
		name, policy, reason string
	}{
		{"no policy", "", "has no access policy"},
		{"another rule", eventsPolicy(arn, r.RuleARN("other")), "condition ArnEquals aws:SourceArn"},
		{"another principal", strings.Replace(eventsPolicy(arn, r.RuleARN("spot")), "events.amazonaws.com", "sns.amazonaws.com", 1), "principal is not events.amazonaws.com"},
	} {
		if c.policy != "" {
			if _, err := e.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
				Attributes: map[string]string{"Policy": c.policy}}); err != nil {
				t.Fatal(err)
			}
		}
		launch()
		if got := e.receive(t, url, 0); len(got) != 0 {
			t.Errorf("%s: the queue received %v", c.name, got)
		}
		ds := r.EventDeliveries()
		if len(ds) == 0 || !strings.Contains(ds[len(ds)-1].Err, c.reason) {
			t.Errorf("%s: last delivery %+v, want a failure with %q", c.name, ds, c.reason)
		}
	}
	if _, err := e.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"Policy": eventsPolicy(arn, r.RuleARN("spot"))}}); err != nil {
		t.Fatal(err)
	}
	id := launch()
	got := e.receive(t, url, 1)
	if len(got) != 1 || decodeEnvelope(t, got[0]).Detail["instance-id"] != id {
		t.Errorf("with the right policy the queue received %v, want the interruption of %s", got, id)
	}
}

func TestEventsLaunchUnsuccessful(t *testing.T) {
	e := startEvents(t)
	r := e.Region()
	ctx := context.Background()
	url, arn := e.queue(t, "q", "")
	ruleARN := e.rule(t, "asg", `{"source":["aws.autoscaling"],"detail-type":["EC2 Instance Launch Unsuccessful"]}`, arn)
	if _, err := e.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{"Policy": eventsPolicy(arn, ruleARN)}}); err != nil {
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
	bodies := e.receive(t, url, 2)
	if len(bodies) == 0 {
		t.Fatalf("no launch failure message; deliveries %+v", r.EventDeliveries())
	}
	ev := decodeEnvelope(t, bodies[0])
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
	e := startCLI(t)
	var put struct{ RuleArn string }
	e.run(&put, "events", "put-rule", "--name", "spot", "--event-pattern", `{"source":["aws.ec2"],"detail":{"state":[{"prefix":"stop"}]}}`)
	if put.RuleArn != "arn:aws:events:us-east-1:123456789012:rule/spot" {
		t.Errorf("put-rule RuleArn = %q", put.RuleArn)
	}
	var targets struct {
		FailedEntryCount int
	}
	e.run(&targets, "events", "put-targets", "--rule", "spot", "--targets", "Id=q,Arn=arn:aws:sqs:us-east-1:123456789012:q")
	var list struct {
		Targets []struct{ Id, Arn string }
	}
	e.run(&list, "events", "list-targets-by-rule", "--rule", "spot")
	if targets.FailedEntryCount != 0 || len(list.Targets) != 1 || list.Targets[0].Id != "q" || list.Targets[0].Arn != "arn:aws:sqs:us-east-1:123456789012:q" {
		t.Errorf("put-targets %+v, list-targets-by-rule %+v", targets, list)
	}
	if out := e.fail("events", "describe-rule", "--name", "missing"); !strings.Contains(out, "ResourceNotFoundException") || !strings.Contains(out, "Rule missing does not exist") {
		t.Errorf("describe-rule of a missing rule: %s", out)
	}
}
