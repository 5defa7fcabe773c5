package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/spotmax/spotmax/pkg/internal/testwait"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// t0 is the simulated region's start: fixed, so that events have known buckets.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func startSim(t testing.TB) *simtest.Env {
	t.Helper()
	return simtest.Start(t, sim.Options{Start: t0})
}

// putCalls returns how many PutMetricData calls the simulated region served.
func putCalls(env *simtest.Env) int {
	for _, c := range env.Region().Calls() {
		if c.Action == "monitoring:PutMetricData" {
			return c.Count
		}
	}
	return 0
}

// stored sums a metric's stored datapoints in the SpotMax namespace for a group ("" = the
// region-wide total): the sum of Sum and of SampleCount.
func stored(env *simtest.Env, metric, group string) (sum, n float64) {
	for _, d := range env.Region().MetricData(Namespace) {
		if d.MetricName == metric && d.Dimensions[DimensionGroup] == group && (group != "" || len(d.Dimensions) == 0) {
			sum += d.Sum
			n += d.SampleCount
		}
	}
	return sum, n
}

func newPublisher(env *simtest.Env, opts PublisherOptions) *Publisher {
	if opts.Now == nil {
		opts.Now = env.Region().Clock().Now
	}
	return NewPublisher(cloudwatch.NewFromConfig(env.Config), opts)
}

func TestPublisherAggregatesPerGroupAndTotal(t *testing.T) {
	env := startSim(t)
	p := newPublisher(env, PublisherOptions{})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		p.Record(ctx, Event{Name: InterruptionReceived, Group: "web", Instance: fmt.Sprintf("i-%d", i), Time: t0.Add(time.Minute)})
	}
	p.Record(ctx, Event{Name: InterruptionReceived, Group: "api", Time: t0.Add(time.Minute)})
	p.Record(ctx, Event{Name: ReplacementSucceeded, Group: "web", Duration: 90 * time.Second, Time: t0.Add(2 * time.Minute)})
	p.Record(ctx, Event{Name: ReplacementSucceeded, Group: "web", Duration: 30 * time.Second, Time: t0.Add(2 * time.Minute)})
	// A duration on an event that has none is not published.
	p.Record(ctx, Event{Name: ReplacementStarted, Group: "web", Duration: time.Second, Time: t0.Add(2 * time.Minute)})
	p.Record(ctx, Event{Name: "NoSuchEvent", Group: "web"})
	p.Gauge(ctx, "web", Counts{Spot: 3, OnDemand: 1, Alternative: 1})
	p.Gauge(ctx, "web", Counts{Spot: 4, OnDemand: 0, Alternative: 1})

	// InterruptionReceived ×2 series, ReplacementSucceeded ×2, its Duration ×2, ReplacementStarted ×2, 3 gauges.
	if got, want := p.Buffered(), 2+1+2+2+2+3; got != want {
		t.Fatalf("buffered %d datapoints, want %d (one per metric, group and minute)", got, want)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := putCalls(env); got != 1 {
		t.Errorf("PutMetricData calls = %d, want 1", got)
	}
	checks := []struct {
		metric, group string
		sum, n        float64
	}{
		{"InterruptionReceived", "web", 5, 5},
		{"InterruptionReceived", "api", 1, 1},
		{"InterruptionReceived", "", 6, 6},
		{"ReplacementSucceeded", "web", 2, 2},
		{"ReplacementSucceededDuration", "web", 120, 2},
		{"ReplacementSucceededDuration", "", 120, 2},
		{"ReplacementStarted", "web", 1, 1},
		{"ReplacementStartedDuration", "web", 0, 0},
		{"InstancesSpot", "web", 7, 2},
		{"InstancesOnDemand", "web", 1, 2},
		{"InstancesSpot", "", 0, 0},
		{"NoSuchEvent", "web", 0, 0},
	}
	for _, c := range checks {
		sum, n := stored(env, c.metric, c.group)
		if sum != c.sum || n != c.n {
			t.Errorf("%s{group=%q}: sum %v, samples %v; want %v, %v", c.metric, c.group, sum, n, c.sum, c.n)
		}
	}
	for _, d := range env.Region().MetricData(Namespace) {
		if want := map[bool]string{true: "Seconds", false: "Count"}[d.MetricName == "ReplacementSucceededDuration"]; d.Unit != want {
			t.Errorf("%s unit %s, want %s", d.MetricName, d.Unit, want)
		}
	}
	if p.Dropped() != 0 {
		t.Errorf("dropped %d, want 0", p.Dropped())
	}
}

func TestPublisherBatchesUpToTheAPILimit(t *testing.T) {
	cases := []struct {
		name   string
		events int
		groups int // events spread over this many groups, all in one minute
		datums int // per-group datapoints + the region-wide one
		calls  int
	}{
		{"one series", 10000, 1, 2, 1},
		{"999 groups", 999, 999, 1000, 1},
		{"1000 groups", 1000, 1000, 1001, 2},
		{"2500 groups", 2500, 2500, 2501, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := startSim(t)
			p := newPublisher(env, PublisherOptions{MaxBuffered: 5000})
			ctx := context.Background()
			for i := 0; i < c.events; i++ {
				p.Record(ctx, Event{Name: VolumeMounted, Group: fmt.Sprintf("g%04d", i%c.groups), Time: t0})
			}
			if got := p.Buffered(); got != c.datums {
				t.Fatalf("buffered %d, want %d", got, c.datums)
			}
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if got := putCalls(env); got != c.calls {
				t.Errorf("%d events → %d PutMetricData calls, want %d = ceil(%d datapoints / %d)", c.events, got, c.calls, c.datums, MaxDatumsPerCall)
			}
			if sum, _ := stored(env, "VolumeMounted", ""); sum != float64(c.events) {
				t.Errorf("region-wide VolumeMounted = %v, want %d", sum, c.events)
			}
			if got := p.Sent(); got != int64(c.datums) {
				t.Errorf("sent %d datapoints, want %d", got, c.datums)
			}
		})
	}
}

func TestRunSendsFullBatchesAtOnce(t *testing.T) {
	env := startSim(t)
	p := newPublisher(env, PublisherOptions{FlushInterval: time.Hour, MaxBuffered: 20000})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	for i := 0; i < 2500; i++ {
		p.Record(ctx, Event{Name: NodeDrained, Group: fmt.Sprintf("g%04d", i), Duration: time.Second, Time: t0})
	}
	// 2500 × (count + duration) + 2 region-wide = 5002 datapoints: Run sends full batches of
	// 1000 without waiting for the hour-long interval.
	waitFor(t, "Run to send full batches", func() bool { return p.Sent() >= 4000 })
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	sent := p.Sent()
	if sent < 5002 {
		t.Errorf("sent %d datapoints, want at least 5002", sent)
	}
	want := int((sent + MaxDatumsPerCall - 1) / MaxDatumsPerCall)
	if got := putCalls(env); got != want {
		t.Errorf("PutMetricData calls = %d, want ceil(%d/%d) = %d: every call but the last is full", got, sent, MaxDatumsPerCall, want)
	}
	if sum, _ := stored(env, "NodeDrained", ""); sum != 2500 {
		t.Errorf("region-wide NodeDrained = %v, want 2500", sum)
	}
}

// encodingRecorder is an SDK HTTP client that remembers each request's Content-Encoding.
type encodingRecorder struct {
	mu        sync.Mutex
	encodings []string
}

func (r *encodingRecorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.encodings = append(r.encodings, req.Header.Get("Content-Encoding"))
	r.mu.Unlock()
	return http.DefaultClient.Do(req)
}

func TestLargeBatchesAreGzipped(t *testing.T) {
	env := startSim(t)
	rec := &encodingRecorder{}
	cfg := env.Config.Copy()
	cfg.HTTPClient = rec
	cfg.RequestMinCompressSizeBytes = 10240 // what config.LoadDefaultConfig sets
	p := NewPublisher(cloudwatch.NewFromConfig(cfg), PublisherOptions{Now: env.Region().Clock().Now})
	ctx := context.Background()
	p.Record(ctx, Event{Name: RevertToSpot, Group: "small", Time: t0})
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 999; i++ {
		p.Record(ctx, Event{Name: RevertToSpot, Group: fmt.Sprintf("big-%03d", i), Time: t0})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flushing a gzipped batch: %v", err)
	}
	rec.mu.Lock()
	got := append([]string(nil), rec.encodings...)
	rec.mu.Unlock()
	if len(got) != 2 || got[0] == "gzip" || got[1] != "gzip" {
		t.Fatalf("Content-Encoding of the two calls = %q, want [\"\" \"gzip\"]: the SDK gzips bodies over 10 KB", got)
	}
	// The simulated region decompressed and stored every datapoint of the gzipped call.
	if sum, _ := stored(env, "RevertToSpot", ""); sum != 1000 {
		t.Errorf("region-wide RevertToSpot = %v, want 1000", sum)
	}
}

func TestOutageDropsAndCountsButNeverFails(t *testing.T) {
	env := startSim(t)
	p := newPublisher(env, PublisherOptions{MaxBuffered: 50})
	ctx := context.Background()
	env.Region().SetThrottleRate("monitoring:PutMetricData", 1)
	once := func(o *cloudwatch.Options) { o.RetryMaxAttempts = 1 }
	for i := 0; i < 40; i++ {
		p.Record(ctx, Event{Name: ConsulDeregistered, Group: fmt.Sprintf("g%02d", i), Time: t0})
	}
	// 40 groups + 1 total = 41 datapoints fit.
	if err := p.flush(ctx, false, once); err == nil {
		t.Fatal("flush during an outage returned no error")
	}
	if got := p.Buffered(); got != 41 {
		t.Fatalf("after a throttled flush %d datapoints are buffered, want all 41 kept", got)
	}
	for i := 40; i < 100; i++ {
		p.Record(ctx, Event{Name: ConsulDeregistered, Group: fmt.Sprintf("g%02d", i), Time: t0})
	}
	if got := p.Buffered(); got != 50 {
		t.Errorf("buffered %d, want the bound 50", got)
	}
	if got := p.Dropped(); got != 51 {
		t.Errorf("dropped %d, want 51 (100 groups + 1 total - 50)", got)
	}
	env.Region().SetThrottleRate("monitoring:PutMetricData", 0)
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flush after the outage: %v", err)
	}
	if sum, _ := stored(env, MetricsDropped, ""); sum != 51 {
		t.Errorf("MetricsDropped published = %v, want 51", sum)
	}
	if sum, _ := stored(env, "ConsulDeregistered", ""); sum != 100 {
		t.Errorf("region-wide ConsulDeregistered = %v, want 100 (the total series was buffered before the outage)", sum)
	}
}

func TestInternalErrorKeepsDataForTheNextFlush(t *testing.T) {
	env := startSim(t)
	p := newPublisher(env, PublisherOptions{})
	ctx := context.Background()
	once := func(o *cloudwatch.Options) { o.RetryMaxAttempts = 1 }
	p.Record(ctx, Event{Name: OnDemandFallback, Group: "web", Time: t0})
	env.Region().FailNext("monitoring:PutMetricData", "InternalError", "CloudWatch is having a bad day")
	if err := p.flush(ctx, false, once); err == nil {
		t.Fatal("flush against InternalError returned no error")
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if sum, _ := stored(env, "OnDemandFallback", "web"); sum != 1 {
		t.Errorf("OnDemandFallback{web} = %v after the retry, want 1", sum)
	}
	if p.Dropped() != 0 {
		t.Errorf("dropped %d, want 0", p.Dropped())
	}
}

func TestRejectedBatchIsDroppedNotRetried(t *testing.T) {
	env := startSim(t)
	p := newPublisher(env, PublisherOptions{})
	ctx := context.Background()
	p.Record(ctx, Event{Name: LifetimeRotation, Group: "web", Time: t0})
	env.Region().FailNext("monitoring:PutMetricData", "InvalidParameterValue", "no")
	if err := p.Flush(ctx); err == nil {
		t.Fatal("a rejected batch returned no error")
	}
	if p.Buffered() != 0 || p.Dropped() != 2 {
		t.Errorf("buffered %d, dropped %d; want 0, 2", p.Buffered(), p.Dropped())
	}
}

func TestStaleEventsAreDroppedBeforeSending(t *testing.T) {
	env := startSim(t)
	p := newPublisher(env, PublisherOptions{})
	ctx := context.Background()
	p.Record(ctx, Event{Name: VolumeMoved, Group: "web", Time: t0.Add(-15 * 24 * time.Hour)})
	p.Record(ctx, Event{Name: VolumeMoved, Group: "web", Time: t0})
	if err := p.Close(ctx); err != nil {
		t.Fatalf("one stale event made the batch fail: %v", err)
	}
	if sum, _ := stored(env, "VolumeMoved", "web"); sum != 1 {
		t.Errorf("VolumeMoved{web} = %v, want 1", sum)
	}
	if p.Dropped() != 2 {
		t.Errorf("dropped %d, want 2 (the stale event's group and total datapoints)", p.Dropped())
	}
}

func TestRecordNeverWaitsForCloudWatch(t *testing.T) {
	env := startSim(t)
	p := newPublisher(env, PublisherOptions{})
	// Every PutMetricData hangs for a minute of real time.
	env.Region().SetCallLatency("monitoring:PutMetricData", time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Record(ctx, Event{Name: InterruptionReceived, Group: "web", Time: t0})
	flushed := make(chan error, 1)
	go func() { flushed <- p.Flush(ctx) }()
	waitFor(t, "the flush to reach CloudWatch", func() bool { return putCalls(env) > 0 })
	recorded := make(chan struct{})
	go func() {
		for i := 0; i < 5000; i++ {
			p.Record(ctx, Event{Name: InterruptionReceived, Group: fmt.Sprintf("g%04d", i), Time: t0})
			p.Gauge(ctx, "web", Counts{Spot: i})
		}
		close(recorded)
	}()
	select {
	case <-recorded:
	case <-time.After(30 * time.Second):
		t.Fatal("Record blocked while PutMetricData was in flight")
	}
	select {
	case err := <-flushed:
		t.Fatalf("the flush returned (%v) before CloudWatch answered: the test proves nothing", err)
	default:
	}
	cancel()
	if err := <-flushed; err == nil {
		t.Error("a cancelled flush returned no error")
	}
	// The in-flight datapoints went back to the buffer: nothing was lost.
	if p.Dropped() != 0 {
		t.Errorf("dropped %d, want 0", p.Dropped())
	}
	// 5000 groups + the total + 3 gauges of web, and the requeued InterruptionReceived of web.
	if got := p.Buffered(); got != 5000+1+3+1 {
		t.Errorf("buffered %d, want 5005", got)
	}
}

func TestClosedEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := simtest.Config("http://"+addr, "us-east-1")
	cfg.RetryMaxAttempts = 1
	p := NewPublisher(cloudwatch.NewFromConfig(cfg), PublisherOptions{MaxBuffered: 10})
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		p.Record(ctx, Event{Name: ReplacementFailed, Group: fmt.Sprintf("g%02d", i), Duration: time.Minute})
	}
	if got := p.Buffered(); got != 10 {
		t.Errorf("buffered %d, want the bound 10", got)
	}
	// 20 groups × 2 + 2 totals = 42 datapoints, 10 kept.
	if got := p.Dropped(); got != 32 {
		t.Errorf("dropped %d, want 32", got)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = p.Close(cctx)
	if err == nil {
		t.Fatal("Close against a closed endpoint returned no error")
	}
	if got := p.Dropped(); got != 42 {
		t.Errorf("after Close dropped %d, want all 42", got)
	}
	p.Record(ctx, Event{Name: ReplacementFailed, Group: "late"})
	if got := p.Dropped(); got != 44 {
		t.Errorf("a Record after Close: dropped %d, want 44", got)
	}
}

func TestFlushWithNothingBufferedMakesNoCall(t *testing.T) {
	env := startSim(t)
	p := newPublisher(env, PublisherOptions{})
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := putCalls(env); got != 0 {
		t.Errorf("PutMetricData calls = %d, want 0", got)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, 20*time.Second, cond)
}
