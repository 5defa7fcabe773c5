package metrics

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
)

// A replacement's final events become action records in CloudWatch Logs (the log group and
// stream created on first use), and QueryActions reads them back by group and by instance —
// the old one or its replacement.
func TestActionLogRoundTrip(t *testing.T) {
	env := startSim(t)
	ctx := context.Background()
	c := cloudwatchlogs.NewFromConfig(env.Config)
	l := NewActionLog(c, ActionLogOptions{Actor: "spotmax replace (op@host)", Stream: "host/1/1"})
	now := env.Region().Clock().Now()
	launched := now.Add(-3 * time.Hour).UTC().Truncate(time.Second)
	l.Record(ctx, Event{Name: ReplacementStarted, Group: "web", Instance: "i-1", Time: now.Add(-time.Minute)})
	l.Record(ctx, Event{Name: ReplacementSucceeded, Group: "web", Instance: "i-1", Duration: 40 * time.Second, Time: now,
		Fields: map[string]string{"replacement": "i-2", "reason": "manual", "owner": "spotmax@host/1", "market": "spot", "type": "m5.large",
			"az": "us-east-1a", "old_market": "on-demand", "old_type": "m5.large", "old_az": "us-east-1b",
			"old_launched": launched.Format(time.RFC3339), "volume": "vol-1"}})
	l.Record(ctx, Event{Name: ReplacementFailed, Group: "db", Instance: "i-3", Duration: time.Second, Time: now.Add(-30 * time.Second),
		Fields: map[string]string{"reason": "lifetime", "step": "launch", "error": "no capacity"}})
	l.Log(Action{Kind: ActionDrain, Group: "web", Instance: "i-2", Node: "node-2", Pods: 3, Result: ResultSucceeded, Ended: now.Add(time.Second)})
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Sent() != 3 || l.Dropped() != 0 {
		t.Fatalf("sent %d, dropped %d; want 3 and 0 (ReplacementStarted is not an action)", l.Sent(), l.Dropped())
	}
	all, err := QueryActions(ctx, c, ActionQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Group != "db" || all[2].Kind != ActionDrain {
		t.Fatalf("all actions = %+v, want db's failure, web's replacement, web's drain in time order", all)
	}
	if a := all[0]; a.Result != ResultFailed || a.Step != "launch" || a.Error != "no capacity" || a.Actor != "spotmax replace (op@host)" {
		t.Errorf("failed record = %+v", a)
	}
	a := all[1]
	if a.Replacement != "i-2" || a.Owner != "spotmax@host/1" || a.OldMarket != "on-demand" || a.OldLaunched == nil ||
		!a.OldLaunched.Equal(launched) || !a.Started.Equal(a.Ended.Add(-40*time.Second)) || a.DurationSeconds != 40 || a.Version != 1 {
		t.Errorf("succeeded record = %+v", a)
	}
	web, err := QueryActions(ctx, c, ActionQuery{Group: "web"})
	if err != nil || len(web) != 2 {
		t.Errorf("group web: %+v, %v", web, err)
	}
	byNew, err := QueryActions(ctx, c, ActionQuery{Instance: "i-2", Start: now.Add(-10 * time.Second)})
	if err != nil || len(byNew) != 2 {
		t.Errorf("instance i-2 (replacement, then drained): %+v, %v", byNew, err)
	}
	// A second writer (another process) appends to the same log group.
	l2 := NewActionLog(c, ActionLogOptions{Actor: "spotmax run (x@y)", Stream: "host/2/2"})
	l2.Log(Action{Kind: ActionReplace, Group: "web", Instance: "i-9", Result: ResultSucceeded, Ended: now.Add(2 * time.Second)})
	if err := l2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if web, _ := QueryActions(ctx, c, ActionQuery{Group: "web"}); len(web) != 3 {
		t.Errorf("after a second writer, web has %d actions, want 3", len(web))
	}
}

// No log group yet means no action was recorded, not an error.
func TestQueryActionsBeforeAnyRecord(t *testing.T) {
	env := startSim(t)
	got, err := QueryActions(context.Background(), cloudwatchlogs.NewFromConfig(env.Config), ActionQuery{Group: "web"})
	if err != nil || len(got) != 0 {
		t.Errorf("QueryActions on a fresh region: %+v, %v", got, err)
	}
}

// CloudWatch Logs unreachable: records are kept for the next flush, and sent once it answers.
func TestActionLogKeepsRecordsWhileUnreachable(t *testing.T) {
	env := startSim(t)
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	cfg := env.Config.Copy()
	cfg.BaseEndpoint = aws.String(dead)
	cfg.RetryMaxAttempts = 1
	bad := cloudwatchlogs.NewFromConfig(cfg)
	l := NewActionLog(bad, ActionLogOptions{Actor: "a", Stream: "s"})
	l.Log(Action{Kind: ActionReplace, Group: "web", Instance: "i-1", Result: ResultSucceeded, Ended: env.Region().Clock().Now()})
	if err := l.Flush(ctx); err == nil {
		t.Fatal("flushing to an unreachable endpoint succeeded")
	}
	if l.Sent() != 0 || l.Dropped() != 0 {
		t.Fatalf("sent %d dropped %d while unreachable; want the record kept", l.Sent(), l.Dropped())
	}
	l.api = cloudwatchlogs.NewFromConfig(env.Config)
	if err := l.Flush(ctx); err != nil || l.Sent() != 1 {
		t.Fatalf("flush after recovery: %v, sent %d", err, l.Sent())
	}
}
