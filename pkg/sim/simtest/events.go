package simtest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotmax/spotmax/pkg/sim"
)

// Events is a simulated region with an EventBridge and an SQS client, for tests that follow a
// region event through a rule to its queue.
type Events struct {
	*Env
	EventBridge *eventbridge.Client
	SQS         *sqs.Client
}

// StartEvents serves a region with opts until the test ends.
func StartEvents(t testing.TB, opts sim.Options) *Events {
	t.Helper()
	env := Start(t, opts)
	return &Events{Env: env, EventBridge: eventbridge.NewFromConfig(env.Config), SQS: sqs.NewFromConfig(env.Config)}
}

// Queue creates a queue and, unless policy is "", sets its access policy; it returns the URL and
// the ARN.
func (e *Events) Queue(t testing.TB, name, policy string) (string, string) {
	t.Helper()
	url := CreateQueue(t, e.SQS, name, nil)
	arn := QueueAttributes(t, e.SQS, url)["QueueArn"]
	if policy != "" {
		_, err := e.SQS.SetQueueAttributes(context.Background(), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
			Attributes: map[string]string{"Policy": policy}})
		if err != nil {
			t.Fatalf("SetQueueAttributes Policy: %v", err)
		}
	}
	return url, arn
}

// EventsPolicy is a queue policy that allows EventBridge to send to queueARN from the rules given.
func EventsPolicy(queueARN string, ruleARNs ...string) string {
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

// Rule puts a rule with pattern and, unless queueARN is "", the queue as its target; it returns
// the rule's ARN.
func (e *Events) Rule(t testing.TB, name, pattern, queueARN string) string {
	t.Helper()
	ctx := context.Background()
	out, err := e.EventBridge.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(name), EventPattern: aws.String(pattern)})
	if err != nil {
		t.Fatalf("PutRule %s: %v", name, err)
	}
	if queueARN != "" {
		tout, err := e.EventBridge.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(name),
			Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(queueARN)}}})
		if err != nil || tout.FailedEntryCount != 0 {
			t.Fatalf("PutTargets %s: %v %+v", name, err, tout)
		}
	}
	return *out.RuleArn
}

// Receive long-polls a queue for up to wait seconds and returns the bodies it got, deleting the
// messages.
func (e *Events) Receive(t testing.TB, url string, wait int32) []string {
	t.Helper()
	out, err := e.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url),
		MaxNumberOfMessages: 10, WaitTimeSeconds: wait})
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	var bodies []string
	for _, m := range out.Messages {
		bodies = append(bodies, *m.Body)
		if _, err := e.SQS.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatalf("DeleteMessage: %v", err)
		}
	}
	return bodies
}

// Envelope is an EventBridge event as a rule's queue receives it.
type Envelope struct {
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

// DecodeEnvelope decodes a message body as an EventBridge event; a failure ends the test.
func DecodeEnvelope(t testing.TB, body string) Envelope {
	t.Helper()
	var e Envelope
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("message body is not an EventBridge event: %v\n%s", err, body)
	}
	return e
}
