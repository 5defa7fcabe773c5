package sqs_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

func startSQS(t *testing.T) (*simtest.Env, *sqs.Client) {
	t.Helper()
	env := simtest.Start(t, sim.Options{})
	return env, sqs.NewFromConfig(env.Config)
}

func TestSQSQueueLifecycle(t *testing.T) {
	env, client := startSQS(t)
	ctx := context.Background()
	qurl := simtest.CreateQueue(t, client, "events", map[string]string{"VisibilityTimeout": "60"})
	u, err := url.Parse(qurl)
	if err != nil || u.Host != strings.TrimPrefix(env.URL(), "http://") || u.Path != "/123456789012/events" {
		t.Fatalf("QueueUrl = %s, want one on %s", qurl, env.URL())
	}
	if again := simtest.CreateQueue(t, client, "events", map[string]string{"VisibilityTimeout": "60"}); again != qurl {
		t.Errorf("second CreateQueue = %s, want %s", again, qurl)
	}
	_, err = client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("events"), Attributes: map[string]string{"VisibilityTimeout": "10"}})
	var exists *types.QueueNameExists
	if !errors.As(err, &exists) || exists.ErrorCode() != "QueueAlreadyExists" {
		t.Errorf("CreateQueue with other attributes: err = %v, want QueueNameExists", err)
	}
	simtest.CreateQueue(t, client, "events-dlq", nil)
	simtest.CreateQueue(t, client, "other", nil)

	got, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("events")})
	if err != nil || *got.QueueUrl != qurl {
		t.Fatalf("GetQueueUrl = %v, %v", got, err)
	}
	attrs := simtest.QueueAttributes(t, client, qurl)
	if attrs["QueueArn"] != "arn:aws:sqs:us-east-1:123456789012:events" || attrs["VisibilityTimeout"] != "60" ||
		attrs["ApproximateNumberOfMessages"] != "0" || attrs["MessageRetentionPeriod"] != "345600" {
		t.Errorf("attributes = %v", attrs)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"sqs:SendMessage","Resource":"*"}]}`
	if _, err := client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(qurl),
		Attributes: map[string]string{"Policy": policy, "VisibilityTimeout": "5"}}); err != nil {
		t.Fatal(err)
	}
	if attrs := simtest.QueueAttributes(t, client, qurl); attrs["Policy"] != policy || attrs["VisibilityTimeout"] != "5" {
		t.Errorf("after SetQueueAttributes: %v", attrs)
	}
	_, err = client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(qurl), Attributes: map[string]string{"VisibilityTimeout": "50000"}})
	var badValue *types.InvalidAttributeValue
	if !errors.As(err, &badValue) {
		t.Errorf("VisibilityTimeout 50000: err = %v, want InvalidAttributeValue", err)
	}
	_, err = client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(qurl), AttributeNames: []types.QueueAttributeName{"Bogus"}})
	var badName *types.InvalidAttributeName
	if !errors.As(err, &badName) {
		t.Errorf("unknown attribute: err = %v, want InvalidAttributeName", err)
	}
	_, err = client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("missing")})
	var missing *types.QueueDoesNotExist
	if !errors.As(err, &missing) || missing.ErrorCode() != "AWS.SimpleQueueService.NonExistentQueue" {
		t.Errorf("GetQueueUrl of a missing queue: err = %v, want QueueDoesNotExist", err)
	}
}

func TestSQSSendReceiveDelete(t *testing.T) {
	env, client := startSQS(t)
	ctx := context.Background()
	qurl := simtest.CreateQueue(t, client, "work", nil)

	// The SDK's checksum middleware verifies MD5OfMessageBody here and MD5OfBody on receive.
	sent, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(qurl), MessageBody: aws.String(`{"detail-type":"EC2 Spot Instance Interruption Warning"}`),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"ordinal":  {DataType: aws.String("Number"), StringValue: aws.String("1")},
			"category": {DataType: aws.String("String"), StringValue: aws.String("test")},
		}})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	// Expected digest from an independent implementation (github.com/wcharczuk/sqslite).
	if *sent.MD5OfMessageAttributes != "d21ae90c49061e927f57df5f5d72be1f" {
		t.Errorf("MD5OfMessageAttributes = %s, want d21ae90c49061e927f57df5f5d72be1f", *sent.MD5OfMessageAttributes)
	}

	recv := func(vt int32) []types.Message {
		t.Helper()
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(qurl), MaxNumberOfMessages: 10, VisibilityTimeout: vt,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
			MessageAttributeNames:       []string{"All"}})
		if err != nil {
			t.Fatalf("ReceiveMessage: %v", err)
		}
		return out.Messages
	}
	first := recv(30)
	if len(first) != 1 || *first[0].MessageId != *sent.MessageId || first[0].Attributes["ApproximateReceiveCount"] != "1" ||
		*first[0].MessageAttributes["ordinal"].StringValue != "1" || *first[0].MD5OfMessageAttributes != *sent.MD5OfMessageAttributes {
		t.Fatalf("first receive = %+v", first)
	}
	attrs := simtest.QueueAttributes(t, client, qurl)
	if attrs["ApproximateNumberOfMessages"] != "0" || attrs["ApproximateNumberOfMessagesNotVisible"] != "1" {
		t.Errorf("in flight: attributes = %v", attrs)
	}
	if again := recv(30); len(again) != 0 {
		t.Fatalf("received an invisible message: %+v", again)
	}
	env.Region().Advance(31 * time.Second)
	second := recv(30)
	if len(second) != 1 || second[0].Attributes["ApproximateReceiveCount"] != "2" || *second[0].ReceiptHandle == *first[0].ReceiptHandle {
		t.Fatalf("after the visibility timeout: %+v", second)
	}

	_, err = client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(qurl), ReceiptHandle: aws.String("garbage")})
	var invalid *types.ReceiptHandleIsInvalid
	if !errors.As(err, &invalid) {
		t.Errorf("garbage handle: err = %v, want ReceiptHandleIsInvalid", err)
	}
	// An older handle of the message still deletes it, as on AWS.
	if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(qurl), ReceiptHandle: first[0].ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage with the first handle: %v", err)
	}
	if msgs := env.Region().QueueMessages("work"); len(msgs) != 0 {
		t.Errorf("after delete: %+v", msgs)
	}
	env.Region().Advance(31 * time.Second)
	if again := recv(30); len(again) != 0 {
		t.Errorf("deleted message came back: %+v", again)
	}
}

func TestSQSLongPoll(t *testing.T) {
	env, client := startSQS(t)
	ctx := context.Background()
	qurl := simtest.CreateQueue(t, client, "poll", nil)

	type result struct {
		msgs []types.Message
		err  error
		took time.Duration
	}
	poll := func(wait int32) <-chan result {
		ch := make(chan result, 1)
		go func() {
			start := time.Now()
			out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(qurl), WaitTimeSeconds: wait})
			res := result{err: err, took: time.Since(start)}
			if out != nil {
				res.msgs = out.Messages
			}
			ch <- res
		}()
		return ch
	}
	await := func(ch <-chan result) result {
		t.Helper()
		select {
		case res := <-ch:
			if res.err != nil {
				t.Fatalf("ReceiveMessage: %v", res.err)
			}
			return res
		case <-time.After(15 * time.Second):
			t.Fatal("long poll did not return")
		}
		return result{}
	}

	// A message sent while the poll waits ends it at once.
	ch := poll(10)
	time.Sleep(100 * time.Millisecond)
	go func() {
		_, _ = client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(qurl), MessageBody: aws.String("wake up")})
	}()
	res := await(ch)
	if len(res.msgs) != 1 || *res.msgs[0].Body != "wake up" || res.took > 3*time.Second {
		t.Fatalf("long poll returned %d messages after %v, want the message well before 10s", len(res.msgs), res.took)
	}

	// A message whose visibility timeout expires in simulated time ends a waiting poll too.
	ch = poll(10)
	time.Sleep(100 * time.Millisecond)
	env.Region().Advance(31 * time.Second)
	res = await(ch)
	if len(res.msgs) != 1 || res.took > 3*time.Second {
		t.Fatalf("poll after the visibility timeout: %d messages after %v", len(res.msgs), res.took)
	}

	// The Go-level sender (EventBridge delivery) wakes pollers as well.
	ch = poll(10)
	time.Sleep(100 * time.Millisecond)
	if err := env.Region().SendQueueMessage("poll", "from the region"); err != nil {
		t.Fatal(err)
	}
	res = await(ch)
	if len(res.msgs) != 1 || *res.msgs[0].Body != "from the region" {
		t.Fatalf("poll woken by SendQueueMessage: %+v", res.msgs)
	}

	// An empty queue: the poll lasts its wait time, and a cancelled request ends it early.
	start := time.Now()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err := client.ReceiveMessage(short, &sqs.ReceiveMessageInput{QueueUrl: aws.String("http://x/123456789012/poll"), WaitTimeSeconds: 20})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("cancelled poll: err = %v after %v, want a context error soon", err, time.Since(start))
	}
	start = time.Now()
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(qurl), WaitTimeSeconds: 1})
	if err != nil || len(out.Messages) != 0 || time.Since(start) < 900*time.Millisecond {
		t.Errorf("empty poll: %v messages, err %v after %v; want none after 1s", out, err, time.Since(start))
	}
}

func TestSQSDelayAndRedrive(t *testing.T) {
	env, client := startSQS(t)
	ctx := context.Background()
	dlq := simtest.CreateQueue(t, client, "dlq", nil)
	qurl := simtest.CreateQueue(t, client, "jobs", map[string]string{
		"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":"1"}`,
	})

	for _, m := range []struct {
		body  string
		delay int32
	}{{"now", 0}, {"later", 60}} {
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(qurl), MessageBody: aws.String(m.body), DelaySeconds: m.delay}); err != nil {
			t.Fatalf("SendMessage %s: %v", m.body, err)
		}
	}
	if attrs := simtest.QueueAttributes(t, client, qurl); attrs["ApproximateNumberOfMessages"] != "1" || attrs["ApproximateNumberOfMessagesDelayed"] != "1" {
		t.Errorf("attributes = %v", attrs)
	}

	recv := func(u string) []types.Message {
		t.Helper()
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(u), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		return out.Messages
	}
	got := recv(qurl)
	if len(got) != 1 || *got[0].Body != "now" {
		t.Fatalf("first receive = %+v", got)
	}
	env.Region().Advance(61 * time.Second)
	// "now" was received once (maxReceiveCount 1) and moves to the dead-letter queue; "later" is due.
	got = recv(qurl)
	if len(got) != 1 || *got[0].Body != "later" {
		t.Fatalf("after the delay = %+v", got)
	}
	if dead := recv(dlq); len(dead) != 1 || *dead[0].Body != "now" {
		t.Errorf("dead-letter queue = %+v", dead)
	}

	del, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(qurl), Entries: []types.DeleteMessageBatchRequestEntry{
		{Id: aws.String("ok"), ReceiptHandle: got[0].ReceiptHandle}, {Id: aws.String("bad"), ReceiptHandle: aws.String("nope")}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(del.Successful) != 1 || len(del.Failed) != 1 || *del.Failed[0].Code != "ReceiptHandleIsInvalid" {
		t.Errorf("DeleteMessageBatch = %+v", del)
	}
	_, err = client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(qurl), Entries: []types.DeleteMessageBatchRequestEntry{
		{Id: aws.String("x"), ReceiptHandle: aws.String("a")}, {Id: aws.String("x"), ReceiptHandle: aws.String("b")}}})
	var dup *types.BatchEntryIdsNotDistinct
	if !errors.As(err, &dup) {
		t.Errorf("duplicate ids: err = %v, want BatchEntryIdsNotDistinct", err)
	}

	for i := 0; i < 3; i++ {
		if err := env.Region().SendQueueMessage("jobs", fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if msgs := env.Region().QueueMessages("jobs"); len(msgs) != 3 || msgs[0].Body != "m0" || !msgs[0].Visible {
		t.Errorf("QueueMessages = %+v", msgs)
	}
	if err := env.Region().SendQueueMessage("nope", "x"); err == nil {
		t.Error("SendQueueMessage to a missing queue succeeded")
	}
}

// TestSQSMessageAttributesMD5 checks the digest against LocalStack's test vector.
func TestSQSMessageAttributesMD5(t *testing.T) {
	_, client := startSQS(t)
	qurl := simtest.CreateQueue(t, client, "md5", nil)
	out, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(qurl), MessageBody: aws.String("b"),
		MessageAttributes: map[string]types.MessageAttributeValue{"timestamp": {DataType: aws.String("Number"), StringValue: aws.String("1493147359900")}}})
	if err != nil {
		t.Fatal(err)
	}
	if *out.MD5OfMessageAttributes != "235c5c510d26fb653d073faed50ae77c" {
		t.Errorf("MD5OfMessageAttributes = %s, want 235c5c510d26fb653d073faed50ae77c", *out.MD5OfMessageAttributes)
	}
}
