package sqs_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotmax/spotmax/pkg/eventsetup"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/internal/testwait"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
	"github.com/spotmax/spotmax/pkg/source"
	"github.com/spotmax/spotmax/pkg/source/sqs"
	"github.com/spotmax/spotmax/pkg/source/sqs/sqstest"
)

// sqsEnv is a simulated region with one queue for the SQS source.
type sqsEnv struct {
	*simtest.Env
	sqs   *awssqs.Client
	url   string
	queue string
}

func newSQSEnv(t *testing.T) *sqsEnv {
	t.Helper()
	env := simtest.Start(t, sim.Options{})
	cfg := env.Config.Copy()
	cfg.RetryMaxAttempts = 1 // the source's own backoff is under test, not the SDK's
	client := awssqs.NewFromConfig(cfg)
	out, err := client.CreateQueue(context.Background(), &awssqs.CreateQueueInput{QueueName: aws.String("spotmax-events")})
	if err != nil {
		t.Fatal(err)
	}
	return &sqsEnv{Env: env, sqs: client, url: aws.ToString(out.QueueUrl), queue: "spotmax-events"}
}

func (e *sqsEnv) send(t *testing.T, bodies ...[]byte) {
	t.Helper()
	for _, b := range bodies {
		if _, err := e.sqs.SendMessage(context.Background(), &awssqs.SendMessageInput{QueueUrl: aws.String(e.url), MessageBody: aws.String(string(b))}); err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
	}
}

// sqsRun runs a source until stop is called, which waits for Run to return and gives its error.
func sqsRun(src *sqs.Source, out chan source.Event) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	return func() error {
		cancel()
		return <-done
	}
}

// sqsCollect reads n events from out, failing the test after 10 s.
func sqsCollect(t *testing.T, out chan source.Event, n int) []source.Event {
	t.Helper()
	var got []source.Event
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case e := <-out:
			got = append(got, e)
		case <-timeout:
			t.Fatalf("%d of %d events after 10s: %+v", len(got), n, got)
		}
	}
	return got
}

// filterCalls is an InstanceFilter over a fixed map that records its calls.
type filterCalls struct {
	mu     sync.Mutex
	groups map[string]string
	calls  [][]string
	err    error
}

func (f *filterCalls) filter(_ context.Context, ids []string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, append([]string(nil), ids...))
	if f.err != nil {
		return nil, f.err
	}
	out := map[string]string{}
	for _, id := range ids {
		if g, ok := f.groups[id]; ok {
			out[id] = g
		}
	}
	return out, nil
}

func (f *filterCalls) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func TestSQSSourceHandsOverDocumentedEventsAndDeletesEverything(t *testing.T) {
	e := newSQSEnv(t)
	// The valid samples first, so that they share the first batch.
	for _, n := range slices.Sorted(maps.Keys(bridgeSamples)) {
		e.send(t, readBridge(t, n))
	}
	for n := range bridgeMalformed {
		e.send(t, readBridge(t, filepath.Join("malformed", n)))
	}
	e.send(t, readBridge(t, "unsupported/launch-successful.json"), readBridge(t, "unsupported/health-event.json"))
	total := len(bridgeSamples) + len(bridgeMalformed) + 2

	f := &filterCalls{groups: map[string]string{"i-0a1b2c3d4e5f60718": "web", "i-0bbbbbbbbbbbbbbbb": "api"}}
	src := &sqs.Source{Client: e.sqs, QueueURL: e.url, Filter: f.filter}
	out := make(chan source.Event)
	stop := sqsRun(src, out)
	got := sqsCollect(t, out, len(bridgeSamples))
	testwait.For(t, "every message handled", 10*time.Second, func() bool {
		s := src.Stats()
		return s.Received == int64(total) && len(e.Region().QueueMessages(e.queue)) == 0
	})
	if err := stop(); err != nil {
		t.Errorf("Run returned %v after its context ended, want nil", err)
	}

	byKind := map[string]source.Event{}
	for _, ev := range got {
		if ev.Source != "sqs" || ev.ID == "" {
			t.Errorf("event without source or id: %+v", ev)
		}
		byKind[string(ev.Kind)+" "+ev.Detail] = ev
	}
	for name, want := range bridgeSamples {
		ev, ok := byKind[string(want.Kind)+" "+want.Detail]
		if !ok {
			t.Errorf("no event for %s", name)
			continue
		}
		want.Source, want.Group, want.ID = "sqs", f.groups[want.Instance], ev.ID
		if want.Kind == source.KindLaunchFailure {
			want.Group = "web"
		}
		if ev != want {
			t.Errorf("%s:\n got %+v\nwant %+v", name, ev, want)
		}
	}
	want := sqs.Stats{Received: int64(total), HandedOver: int64(len(bridgeSamples)),
		Malformed: int64(len(bridgeMalformed)), Unsupported: 2}
	if s := src.Stats(); s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
	// One lookup for the batch with the valid messages, with each instance once.
	if len(f.calls) != 1 || strings.Join(f.calls[0], ",") != "i-0a1b2c3d4e5f60718,i-0bbbbbbbbbbbbbbbb" {
		t.Errorf("filter calls %v, want one with the two instances", f.calls)
	}
}

func TestSQSSourceDeletesMessagesAboutUnmanagedInstances(t *testing.T) {
	e := newSQSEnv(t)
	e.send(t, readBridge(t, "spot-interruption-terminate.json"), readBridge(t, "spot-interruption-hibernate.json"))
	f := &filterCalls{groups: map[string]string{"i-0a1b2c3d4e5f60718": "web"}}
	src := &sqs.Source{Client: e.sqs, QueueURL: e.url, Filter: f.filter}
	out := make(chan source.Event, 10)
	stop := sqsRun(src, out)
	got := sqsCollect(t, out, 1)
	testwait.For(t, "the queue to empty", 10*time.Second, func() bool { return len(e.Region().QueueMessages(e.queue)) == 0 })
	_ = stop()
	if got[0].Instance != "i-0a1b2c3d4e5f60718" || got[0].Group != "web" || len(out) != 0 {
		t.Errorf("events %+v (and %d more), want only the managed instance's", got, len(out))
	}
	if s := src.Stats(); s.Unmanaged != 1 || s.HandedOver != 1 || s.Received != 2 {
		t.Errorf("stats %+v, want 1 unmanaged and 1 handed over", s)
	}
}

func TestSQSSourceKeepsMessagesItCouldNotHandOver(t *testing.T) {
	e := newSQSEnv(t)
	e.send(t, readBridge(t, "spot-interruption-terminate.json"))
	src := &sqs.Source{Client: e.sqs, QueueURL: e.url}
	out := make(chan source.Event) // nobody reads: the controller is busy, then stops
	stop := sqsRun(src, out)
	testwait.For(t, "the message to be received", 10*time.Second, func() bool { return src.Stats().Received == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	msgs := e.Region().QueueMessages(e.queue)
	if len(msgs) != 1 || msgs[0].Visible || src.Stats().HandedOver != 0 {
		t.Fatalf("after shutdown the queue holds %+v, want the message in flight, not deleted", msgs)
	}

	// After its visibility timeout the message comes back to the next controller, which has
	// no filter: every instance counts as managed, the group is left to the controller.
	e.Region().Advance(31 * time.Second)
	next := &sqs.Source{Client: e.sqs, QueueURL: e.url}
	out2 := make(chan source.Event, 1)
	stop = sqsRun(next, out2)
	got := sqsCollect(t, out2, 1)
	testwait.For(t, "the queue to empty", 10*time.Second, func() bool { return len(e.Region().QueueMessages(e.queue)) == 0 })
	_ = stop()
	if got[0].Kind != source.KindInterruption || got[0].Instance != "i-0a1b2c3d4e5f60718" || got[0].Group != "" {
		t.Errorf("redelivered event %+v", got[0])
	}
}

func TestSQSSourceBacksOffAndRecovers(t *testing.T) {
	e := newSQSEnv(t)
	r := e.Region()
	f := &filterCalls{groups: map[string]string{"i-0a1b2c3d4e5f60718": "web"}, err: errors.New("inventory unavailable")}
	e.send(t, readBridge(t, "rebalance-recommendation.json"))
	r.SetThrottleRate("sqs:ReceiveMessage", 1)
	src := &sqs.Source{Client: e.sqs, QueueURL: e.url, Filter: f.filter, MinBackoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}
	out := make(chan source.Event, 1)
	stop := sqsRun(src, out)
	time.Sleep(300 * time.Millisecond)
	receives := func() int {
		for _, c := range r.Calls() {
			if c.Action == "sqs:ReceiveMessage" {
				return c.Count
			}
		}
		return 0
	}
	// With waits of at least 10 ms (half of the doubled backoff), 300 ms allow about 20 calls;
	// a tight loop would make thousands.
	// A call may be in flight as the counts are read: counted by the region, not yet by the source.
	n := receives()
	if errs := src.Stats().ReceiveErrors; n < 2 || n > 40 || errs < int64(n-1) || errs > int64(n) {
		t.Errorf("%d ReceiveMessage calls in 300ms of throttling, %d errors counted; want a few, each counted", n, src.Stats().ReceiveErrors)
	}

	// Receiving works again but the filter fails: the message stays and the source backs off.
	r.SetThrottleRate("sqs:ReceiveMessage", 0)
	testwait.For(t, "the filter to be asked", 10*time.Second, func() bool { return f.count() > 0 })
	if msgs := r.QueueMessages(e.queue); len(msgs) != 1 || len(out) != 0 || src.Stats().FilterErrors == 0 {
		t.Errorf("with a failing filter: queue %+v, %d events, stats %+v; want the message kept", msgs, len(out), src.Stats())
	}
	f.mu.Lock()
	f.err = nil
	f.mu.Unlock()
	r.Advance(31 * time.Second) // the visibility timeout
	got := sqsCollect(t, out, 1)
	_ = stop()
	if got[0].Kind != source.KindRebalance || got[0].Group != "web" {
		t.Errorf("event after recovery %+v", got[0])
	}
}

func TestSQSSourceFailsOnMissingQueue(t *testing.T) {
	e := newSQSEnv(t)
	url := strings.Replace(e.url, "spotmax-events", "nope", 1)
	src := &sqs.Source{Client: e.sqs, QueueURL: url}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := src.Run(ctx, make(chan source.Event))
	if err == nil || !strings.Contains(err.Error(), url) || ctx.Err() != nil {
		t.Errorf("Run on a missing queue: %v, want an error naming %s at once", err, url)
	}
}

// TestSQSSourceEndToEnd runs the whole path: `spotmax setup events` resources, a spot instance
// interrupted in the simulated region, EventBridge delivering to the queue, the source emitting
// the interruption for the spotmax group and dropping the one of an unmanaged group.
func TestSQSSourceEndToEnd(t *testing.T) {
	// Ten times faster than real time: the groups come up in a fraction of a second and the
	// interruption's two minutes (12 s here) outlast the test.
	env := simtest.Start(t, sim.Options{TimeScale: 10})
	ctx := context.Background()
	sqsc := awssqs.NewFromConfig(env.Config)
	setup := &eventsetup.Setup{SQS: sqsc, Events: eventbridge.NewFromConfig(env.Config)}
	res, err := setup.Ensure(ctx, eventsetup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	web := env.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, Desired: 1, Tags: map[string]string{groupconfig.TagGroup: "web"}})
	other := env.CreateGroup(t, simtest.GroupSpec{Name: "batch", Spot: true, Desired: 1})
	// Launches and their state changes are not what the rules ask for: the queue is empty.
	if msgs := env.Region().QueueMessages(eventsetup.DefaultQueueName); len(msgs) != 0 {
		t.Fatalf("queue holds %d messages before any interruption", len(msgs))
	}

	ec2c := ec2.NewFromConfig(env.Config)
	src := &sqs.Source{Client: sqsc, QueueURL: res.QueueURL, Filter: sqstest.TagFilter(ec2c)}
	out := make(chan source.Event, 10)
	stop := sqsRun(src, out)
	defer stop()
	r := env.Region()
	if err := r.Interrupt(other[0], ""); err != nil {
		t.Fatal(err)
	}
	if err := r.Interrupt(web[0], ""); err != nil {
		t.Fatal(err)
	}
	got := sqsCollect(t, out, 1)[0]
	in, _ := r.Instance(web[0])
	if got.Kind != source.KindInterruption || got.Instance != web[0] || got.Group != "web" || got.Source != "sqs" ||
		!got.Deadline.Equal(in.Interruption.Time.Truncate(time.Second)) || got.Detail != "terminate" {
		t.Errorf("event %+v, want the interruption of %s in web with deadline %v", got, web[0], in.Interruption.Time)
	}
	// The agent relays the same notice (action and IMDS time): the controller sees one event.
	relayed := source.Event{Kind: source.KindInterruption, Instance: web[0], Group: "web",
		Deadline: in.Interruption.Time.Truncate(time.Second), Detail: "terminate", Source: "agent"}
	relayed.EnsureID()
	if relayed.ID != got.ID {
		t.Errorf("SQS event id %s, the agent's %s: duplicates would not be dropped", got.ID, relayed.ID)
	}
	testwait.For(t, "the unmanaged instance's message to be dropped", 10*time.Second, func() bool { return src.Stats().Unmanaged == 1 })
	if len(out) != 0 {
		t.Errorf("unexpected events %v", <-out)
	}
}

// sqsCalls counts the SQS calls the region served.
func sqsCalls(r *sim.Region) int {
	n := 0
	for _, c := range r.Calls() {
		if strings.HasPrefix(c.Action, "sqs:") && c.Action != "sqs:SendMessage" && c.Action != "sqs:CreateQueue" {
			n += c.Count
		}
	}
	return n
}

// interruptionBody is an interruption warning for instance number i.
func interruptionBody(i int) string {
	return fmt.Sprintf(`{"version":"0","id":"%d","detail-type":"EC2 Spot Instance Interruption Warning","source":"aws.ec2",`+
		`"account":"123456789012","time":"2026-03-04T10:15:30Z","region":"us-east-1","resources":[],`+
		`"detail":{"instance-id":"i-%017x","instance-action":"terminate"}}`, i, i)
}

// BenchmarkSQSSourceCalls consumes 100 interruption warnings, half of them about managed
// instances, and reports the SQS calls and group lookups per message: the SQS source (batches of
// 10, one lookup and one DeleteMessageBatch per batch) against the per-message pattern (receive
// one, look it up, delete it).
func BenchmarkSQSSourceCalls(b *testing.B) {
	const n = 100
	managed := map[string]string{}
	for i := 0; i < n; i += 2 {
		managed[fmt.Sprintf("i-%017x", i)] = "web"
	}
	for _, mode := range []string{"source", "per-message"} {
		b.Run(mode, func(b *testing.B) {
			var calls, lookups, msgs int
			for b.Loop() {
				b.StopTimer()
				env := simtest.Start(b, sim.Options{})
				client := awssqs.NewFromConfig(env.Config)
				q, err := client.CreateQueue(context.Background(), &awssqs.CreateQueueInput{QueueName: aws.String("q")})
				if err != nil {
					b.Fatal(err)
				}
				for i := range n {
					if err := env.Region().SendQueueMessage("q", interruptionBody(i)); err != nil {
						b.Fatal(err)
					}
				}
				env.Region().ResetCalls()
				f := &filterCalls{groups: managed}
				b.StartTimer()
				handed := 0
				if mode == "source" {
					src := &sqs.Source{Client: client, QueueURL: aws.ToString(q.QueueUrl), Filter: f.filter}
					out := make(chan source.Event, n)
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan error, 1)
					go func() { done <- src.Run(ctx, out) }()
					for handed < n/2 {
						<-out
						handed++
					}
					for len(env.Region().QueueMessages("q")) > 0 {
						time.Sleep(time.Millisecond)
					}
					cancel()
					<-done
				} else {
					ctx := context.Background()
					for len(env.Region().QueueMessages("q")) > 0 {
						out, err := client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 1})
						if err != nil {
							b.Fatal(err)
						}
						for _, m := range out.Messages {
							e, err := sqs.ParseEventBridge([]byte(aws.ToString(m.Body)))
							if err == nil {
								if g, _ := f.filter(ctx, []string{e.Instance}); len(g) > 0 {
									handed++
								}
							}
							if _, err := client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
								b.Fatal(err)
							}
						}
					}
				}
				b.StopTimer()
				calls += sqsCalls(env.Region())
				lookups += f.count()
				msgs += n
				if handed != n/2 {
					b.Fatalf("%d events handed over, want %d", handed, n/2)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(calls)/float64(msgs), "sqs-calls/msg")
			b.ReportMetric(float64(lookups)/float64(msgs), "lookups/msg")
		})
	}
}

// BenchmarkSQSSourceLatency measures the time from a message reaching the queue to its event
// on out, while the source long-polls: SQS's wake-up, parsing, the group lookup and handover.
func BenchmarkSQSSourceLatency(b *testing.B) {
	env := simtest.Start(b, sim.Options{})
	client := awssqs.NewFromConfig(env.Config)
	q, err := client.CreateQueue(context.Background(), &awssqs.CreateQueueInput{QueueName: aws.String("q")})
	if err != nil {
		b.Fatal(err)
	}
	src := &sqs.Source{Client: client, QueueURL: aws.ToString(q.QueueUrl),
		Filter: func(_ context.Context, ids []string) (map[string]string, error) {
			return map[string]string{ids[0]: "web"}, nil
		}}
	out := make(chan source.Event)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	time.Sleep(10 * time.Millisecond) // the first long poll is waiting
	i := 0
	for b.Loop() {
		if err := env.Region().SendQueueMessage("q", interruptionBody(i)); err != nil {
			b.Fatal(err)
		}
		<-out
		i++
	}
	cancel()
	<-done
}
