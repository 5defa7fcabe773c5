package logs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// CloudWatch Logs through the real SDK (AWS JSON 1.1): groups and streams exist once, events
// must be in order and recent, and FilterLogEvents filters by time, stream and pattern.
func TestLogsPutAndFilter(t *testing.T) {
	env := simtest.Start(t, sim.Options{})
	ctx := context.Background()
	c := cloudwatchlogs.NewFromConfig(env.Config)
	g, s := aws.String("/spotmax/actions"), aws.String("host/1/2")

	if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: g, LogStreamName: s,
		LogEvents: []logtypes.InputLogEvent{{Timestamp: aws.Int64(1), Message: aws.String("x")}}}); awsapi.Code(err) != "ResourceNotFoundException" {
		t.Errorf("put into a missing log group: %v", err)
	}
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: g}); err != nil {
		t.Fatal(err)
	}
	var exists *logtypes.ResourceAlreadyExistsException
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: g}); !errors.As(err, &exists) {
		t.Errorf("second CreateLogGroup: %v, want ResourceAlreadyExistsException", err)
	}
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("bad name!")}); awsapi.Code(err) != "InvalidParameterException" ||
		!strings.Contains(err.Error(), "Value 'bad name!' at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+") {
		t.Errorf("invalid log group name: %v", err)
	}
	if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: g, LogStreamName: aws.String("a:b")}); awsapi.Code(err) != "InvalidParameterException" ||
		!strings.Contains(err.Error(), "Value 'a:b' at 'logStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]*") {
		t.Errorf("invalid log stream name: %v", err)
	}
	if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: g, LogStreamName: s}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: g, LogStreamName: s}); !errors.As(err, &exists) {
		t.Errorf("second CreateLogStream: %v", err)
	}
	now := env.Region().Clock().Now()
	ev := func(t time.Time, m string) logtypes.InputLogEvent {
		return logtypes.InputLogEvent{Timestamp: aws.Int64(t.UnixMilli()), Message: aws.String(m)}
	}
	// Out of order: the whole batch is refused.
	_, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: g, LogStreamName: s,
		LogEvents: []logtypes.InputLogEvent{ev(now, "b"), ev(now.Add(-time.Minute), "a")}})
	var inv *logtypes.InvalidParameterException
	if !errors.As(err, &inv) || !strings.Contains(err.Error(), "chronological order") {
		t.Errorf("out-of-order batch: %v", err)
	}
	// Too old and too new events are rejected, the rest kept.
	out, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: g, LogStreamName: s,
		LogEvents: []logtypes.InputLogEvent{ev(now.Add(-15*24*time.Hour), "old"),
			ev(now.Add(-2*time.Minute), `{"group":"web","instance":"i-1"}`), ev(now.Add(-time.Minute), `{"group":"db","instance":"i-2"}`),
			ev(now, "plain ERROR line")}})
	if err == nil {
		// 15 days back and the batch spans more than 24 hours: refused as a whole, as AWS does.
		t.Fatalf("a batch spanning 15 days was accepted: %+v", out.RejectedLogEventsInfo)
	}
	out, err = c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: g, LogStreamName: s,
		LogEvents: []logtypes.InputLogEvent{ev(now.Add(-2*time.Minute), `{"group":"web","instance":"i-1"}`),
			ev(now.Add(-time.Minute), `{"group":"db","instance":"i-2"}`), ev(now, "plain ERROR line"), ev(now.Add(3*time.Hour), "future")}})
	if err != nil {
		t.Fatal(err)
	}
	if r := out.RejectedLogEventsInfo; r == nil || aws.ToInt32(r.TooNewLogEventStartIndex) != 3 {
		t.Errorf("rejected info = %+v, want the event 3 hours ahead rejected", r)
	}
	filter := func(pattern string, start *int64) []string {
		t.Helper()
		in := &cloudwatchlogs.FilterLogEventsInput{LogGroupName: g, StartTime: start}
		if pattern != "" {
			in.FilterPattern = aws.String(pattern)
		}
		var msgs []string
		p := cloudwatchlogs.NewFilterLogEventsPaginator(c, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("filter %q: %v", pattern, err)
			}
			for _, e := range page.Events {
				msgs = append(msgs, aws.ToString(e.Message))
			}
		}
		return msgs
	}
	if got := filter("", nil); len(got) != 3 {
		t.Errorf("all events: %q", got)
	}
	if got := filter(`{ $.group = "web" }`, nil); len(got) != 1 || !strings.Contains(got[0], "i-1") {
		t.Errorf(`{ $.group = "web" }: %q`, got)
	}
	if got := filter(`{ $.group != "web" && $.instance = "i-2" }`, nil); len(got) != 1 || !strings.Contains(got[0], "i-2") {
		t.Errorf("!= and &&: %q", got)
	}
	if got := filter("ERROR", nil); len(got) != 1 || got[0] != "plain ERROR line" {
		t.Errorf("term ERROR: %q", got)
	}
	if got := filter("", aws.Int64(now.Add(-90*time.Second).UnixMilli())); len(got) != 2 {
		t.Errorf("since 90 s ago: %q", got)
	}
	if _, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: g, FilterPattern: aws.String("{ $.group = ")}); awsapi.Code(err) != "InvalidParameterException" {
		t.Errorf("bad pattern: %v", err)
	}
	if _, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/nope")}); awsapi.Code(err) != "ResourceNotFoundException" {
		t.Errorf("missing group: %v", err)
	}
	if evs := env.Region().LogEvents("/spotmax/actions"); len(evs) != 3 || evs[0].Stream != "host/1/2" {
		t.Errorf("LogEvents = %+v", evs)
	}
}
