package eventsetup_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/spotmax/spotmax/pkg/eventsetup"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// mutating are the calls that change something.
var mutating = []string{"sqs:CreateQueue", "sqs:SetQueueAttributes", "events:PutRule", "events:PutTargets",
	"events:RemoveTargets", "events:DeleteRule", "sqs:DeleteQueue"}

func mutatingCalls(r *sim.Region) map[string]int {
	out := map[string]int{}
	for _, c := range r.Calls() {
		for _, m := range mutating {
			if c.Action == m {
				out[m] = c.Count
			}
		}
	}
	return out
}

func setup(t *testing.T) (*simtest.Env, *eventsetup.Setup, *sqs.Client, *eventbridge.Client) {
	t.Helper()
	env := simtest.Start(t, sim.Options{})
	sqsc, eb := sqs.NewFromConfig(env.Config), eventbridge.NewFromConfig(env.Config)
	return env, &eventsetup.Setup{SQS: sqsc, Events: eb}, sqsc, eb
}

func actions(res *eventsetup.Result) map[string]int {
	out := map[string]int{}
	for _, c := range res.Changes {
		out[c.Resource+":"+c.Action]++
	}
	return out
}

func TestEnsureCreatesOnceAndThenChangesNothing(t *testing.T) {
	env, s, sqsc, eb := setup(t)
	ctx := context.Background()
	r := env.Region()

	// A dry run on an empty region plans everything and calls nothing that writes.
	plan, err := s.Ensure(ctx, eventsetup.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(plan); got["queue:create"] != 1 || got["rule:create"] != 4 || got["queue-policy:create"] != 1 || got["rule-target:create"] != 4 || len(plan.Changes) != 10 {
		t.Errorf("dry-run plan = %v, want the queue, 4 rules, the policy and 4 targets to be created", got)
	}
	if plan.QueueURL != "" || len(mutatingCalls(r)) != 0 {
		t.Errorf("dry run: queue URL %q, mutating calls %v; want none", plan.QueueURL, mutatingCalls(r))
	}

	res, err := s.Ensure(ctx, eventsetup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(res.QueueURL, "/123456789012/spotmax-events") || res.QueueARN != "arn:aws:sqs:us-east-1:123456789012:spotmax-events" {
		t.Errorf("queue %s (%s)", res.QueueURL, res.QueueARN)
	}
	want := map[string]int{"sqs:CreateQueue": 1, "sqs:SetQueueAttributes": 1, "events:PutRule": 4, "events:PutTargets": 4}
	if got := mutatingCalls(r); !equalCounts(got, want) {
		t.Errorf("first run: mutating calls %v, want %v", got, want)
	}
	// The rules exist as planned, each targeting the queue.
	for i, rule := range eventsetup.Rules("spotmax-events") {
		d, err := eb.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String(rule.Name)})
		if err != nil {
			t.Fatalf("rule %s: %v", rule.Name, err)
		}
		if aws.ToString(d.EventPattern) != rule.Pattern || d.State != ebtypes.RuleStateEnabled || aws.ToString(d.Arn) != res.RuleARNs[i] {
			t.Errorf("rule %s = %+v", rule.Name, d)
		}
		lt, err := eb.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: aws.String(rule.Name)})
		if err != nil || len(lt.Targets) != 1 || aws.ToString(lt.Targets[0].Arn) != res.QueueARN {
			t.Errorf("targets of %s = %+v, %v", rule.Name, lt, err)
		}
	}
	attrs, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(res.QueueURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	if attrs.Attributes["MessageRetentionPeriod"] != "300" || !strings.Contains(attrs.Attributes["Policy"], eventsetup.PolicySid) {
		t.Errorf("queue attributes %v", attrs.Attributes)
	}

	// The second run reads and writes nothing.
	again, err := s.Ensure(ctx, eventsetup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := mutatingCalls(r); !equalCounts(got, want) {
		t.Errorf("second run made mutating calls: %v, want still %v", got, want)
	}
	if len(again.Changed()) != 0 || again.QueueURL != res.QueueURL || strings.Join(again.RuleARNs, ",") != strings.Join(res.RuleARNs, ",") {
		t.Errorf("second run: changes %+v, queue %s", again.Changed(), again.QueueURL)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestEnsureRepairsDriftAndKeepsForeignStatements(t *testing.T) {
	env, s, sqsc, eb := setup(t)
	ctx := context.Background()
	r := env.Region()
	// The queue exists already, with a longer retention and a policy statement of its own.
	out, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("ops-events")})
	if err != nil {
		t.Fatal(err)
	}
	foreign := `{"Version":"2012-10-17","Statement":{"Sid":"ops","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sqs:ReceiveMessage","Resource":"*"}}`
	if _, err := sqsc.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: out.QueueUrl, Attributes: map[string]string{"Policy": foreign}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ensure(ctx, eventsetup.Options{QueueName: "ops-events"}); err != nil {
		t.Fatal(err)
	}
	attrs, _ := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNamePolicy}})
	var doc struct{ Statement []struct{ Sid string } }
	if err := json.Unmarshal([]byte(attrs.Attributes["Policy"]), &doc); err != nil || len(doc.Statement) != 2 ||
		doc.Statement[0].Sid != "ops" || doc.Statement[1].Sid != eventsetup.PolicySid {
		t.Errorf("merged policy %s: want the ops statement kept and spotmax's added", attrs.Attributes["Policy"])
	}

	// Someone disables a rule, widens another, points a target elsewhere and changes retention.
	rules := eventsetup.Rules("ops-events")
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(rules[0].Name), EventPattern: aws.String(rules[0].Pattern),
		Description: aws.String(rules[0].Description), State: ebtypes.RuleStateDisabled}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(rules[2].Name), EventPattern: aws.String(`{"source":["aws.ec2"]}`),
		Description: aws.String(rules[2].Description)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(rules[1].Name), Targets: []ebtypes.Target{
		{Id: aws.String(eventsetup.TargetID), Arn: aws.String("arn:aws:sqs:us-east-1:123456789012:elsewhere")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sqsc.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: out.QueueUrl, Attributes: map[string]string{"MessageRetentionPeriod": "86400"}}); err != nil {
		t.Fatal(err)
	}
	before := mutatingCalls(r)
	plan, err := s.Ensure(ctx, eventsetup.Options{QueueName: "ops-events", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range plan.Changed() {
		got = append(got, c.Resource+" "+c.Name+" "+c.Action+": "+c.Detail)
	}
	wantParts := []string{
		"queue ops-events update: MessageRetentionPeriod 86400 → 300",
		"rule ops-events-spot-interruption update: state DISABLED → ENABLED",
		"rule ops-events-state-change update: pattern",
		"rule-target ops-events-rebalance/spotmax-queue update: arn:aws:sqs:us-east-1:123456789012:elsewhere → arn:aws:sqs:us-east-1:123456789012:ops-events",
	}
	if len(got) != len(wantParts) {
		t.Fatalf("dry run after drift: %d changes, want %d:\n%s", len(got), len(wantParts), strings.Join(got, "\n"))
	}
	for i, w := range wantParts {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("change %d = %q, want it to start with %q", i, got[i], w)
		}
	}
	if after := mutatingCalls(r); !equalCounts(after, before) {
		t.Errorf("dry run made mutating calls: %v → %v", before, after)
	}
	if _, err := s.Ensure(ctx, eventsetup.Options{QueueName: "ops-events"}); err != nil {
		t.Fatal(err)
	}
	final, err := s.Ensure(ctx, eventsetup.Options{QueueName: "ops-events", DryRun: true})
	if err != nil || len(final.Changed()) != 0 {
		t.Errorf("after the repair: %v, %+v; want nothing left to change", err, final.Changed())
	}
}

func TestEnsureDeliversEventsToTheQueue(t *testing.T) {
	env, s, sqsc, _ := setup(t)
	ctx := context.Background()
	res, err := s.Ensure(ctx, eventsetup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := env.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, Desired: 1})
	if err := env.Region().Interrupt(ids[0], ""); err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(2*time.Minute + time.Second)
	msgs, err := sqsc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(res.QueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, m := range msgs.Messages {
		var e struct {
			DetailType string         `json:"detail-type"`
			Detail     map[string]any `json:"detail"`
		}
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &e); err != nil {
			t.Fatal(err)
		}
		if e.Detail["instance-id"] == ids[0] {
			kinds = append(kinds, e.DetailType+" "+func() string { s, _ := e.Detail["state"].(string); return s }())
		}
	}
	// The interruption warning and the shutting-down state change; pending and running, which
	// the state rule leaves out, never reach the queue.
	if strings.Join(kinds, "|") != "EC2 Spot Instance Interruption Warning |EC2 Instance State-change Notification shutting-down" {
		t.Errorf("messages about %s: %q", ids[0], kinds)
	}
	for _, d := range env.Region().EventDeliveries() {
		if d.Err != "" {
			t.Errorf("delivery failed: %+v", d)
		}
	}
}

func TestCheckQueueName(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"spotmax-events", ""},
		{"", "empty"},
		{"events.fifo", "FIFO"},
		{"my events", "only letters"},
		{strings.Repeat("q", 45), "at most 44"},
	} {
		err := eventsetup.CheckQueueName(c.name)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("CheckQueueName(%q) = %v, want %q", c.name, err, c.want)
		}
	}
	s := &eventsetup.Setup{}
	if _, err := s.Ensure(context.Background(), eventsetup.Options{QueueName: "bad name"}); err == nil || !strings.Contains(err.Error(), `"bad name"`) {
		t.Errorf("Ensure with a bad queue name: %v", err)
	}
}
