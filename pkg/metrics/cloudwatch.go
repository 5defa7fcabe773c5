package metrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"

	"github.com/spotmax/spotmax/pkg/awsapi"
)

// CloudWatchAPI is what the publisher needs from CloudWatch. *cloudwatch.Client satisfies it.
type CloudWatchAPI interface {
	PutMetricData(ctx context.Context, params *cloudwatch.PutMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

var _ CloudWatchAPI = (*cloudwatch.Client)(nil)

// CloudWatch limits the publisher respects
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html).
const (
	// MaxDatumsPerCall is PutMetricData's limit of MetricDatum per request. Requests this large
	// are about 100-200 KB, well under the 1 MB body limit, and the SDK gzips bodies over 10 KB.
	MaxDatumsPerCall = 1000
	// maxPast and maxFuture bound the timestamps CloudWatch accepts, with a margin.
	maxPast   = 14*24*time.Hour - 10*time.Minute
	maxFuture = 2*time.Hour - 10*time.Minute
)

// Publisher defaults.
const (
	DefaultFlushInterval = time.Minute
	DefaultMaxBuffered   = 10000
)

// PublisherOptions configure a Publisher. The zero value is usable.
type PublisherOptions struct {
	// Namespace defaults to Namespace ("SpotMax").
	Namespace string
	// FlushInterval is how often Run sends what was recorded; default one minute, CloudWatch's
	// standard resolution. A full batch is sent at once.
	FlushInterval time.Duration
	// MaxBuffered bounds the buffer, in datapoints (one per metric, group and minute: recording
	// into an existing one costs no memory); default 10000. When it is full, new datapoints are
	// dropped and counted.
	MaxBuffered int
	// Now is the clock for events without a time; default time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// seriesKey identifies one datapoint in the buffer: a metric of a group (or the region-wide
// total, group "") in one minute.
type seriesKey struct {
	metric string
	group  string
	minute int64 // Unix minutes
}

// stat is a statistic set: what CloudWatch stores for a datapoint.
type stat struct {
	unit           types.StandardUnit
	n, sum, lo, hi float64
}

func (s *stat) add(o stat) {
	s.n += o.n
	s.sum += o.sum
	s.lo = min(s.lo, o.lo)
	s.hi = max(s.hi, o.hi)
}

// entry is a buffered datapoint.
type entry struct {
	k seriesKey
	s stat
}

// Publisher publishes events and gauges to CloudWatch. Record and Gauge aggregate into an
// in-memory buffer per metric, group and minute (as CloudWatch's statistic sets), so that a
// burst of events costs one datapoint per series; Run sends the buffer every FlushInterval in
// PutMetricData calls of up to MaxDatumsPerCall datapoints, and at once when a full call's worth
// is waiting. A CloudWatch outage never blocks or fails the caller: what could not be sent is
// kept for the next flush while the buffer has room, then dropped and counted (Dropped, and the
// MetricsDropped metric once CloudWatch answers again). Close flushes what is left.
type Publisher struct {
	api   CloudWatchAPI
	ns    string
	every time.Duration
	max   int
	now   func() time.Time
	log   *slog.Logger

	mu         sync.Mutex
	buf        map[seriesKey]*stat
	closed     bool
	unreported float64 // drops not yet published as MetricsDropped

	flushMu sync.Mutex // one flush at a time
	kick    chan struct{}
	stop    chan struct{}
	stopped sync.Once

	dropped atomic.Int64
	sent    atomic.Int64
	calls   atomic.Int64
}

var _ Recorder = (*Publisher)(nil)

// durationMetrics caches each event's duration metric name, so Record does not build strings.
var durationMetrics = func() map[Name]string {
	m := make(map[Name]string, len(defs))
	for _, d := range defs {
		m[d.Name] = d.Name.DurationMetric()
	}
	return m
}()

// NewPublisher returns a publisher that sends to api. Start its flush loop with Run and end it
// with Close.
func NewPublisher(api CloudWatchAPI, opts PublisherOptions) *Publisher {
	p := &Publisher{api: api, ns: opts.Namespace, every: opts.FlushInterval, max: opts.MaxBuffered,
		now: opts.Now, log: opts.Log, buf: map[seriesKey]*stat{},
		kick: make(chan struct{}, 1), stop: make(chan struct{})}
	if p.ns == "" {
		p.ns = Namespace
	}
	if p.every <= 0 {
		p.every = DefaultFlushInterval
	}
	if p.max <= 0 {
		p.max = DefaultMaxBuffered
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p
}

// Record buffers an event: its count, per group and region-wide, and its duration when the
// event is timed and has one. It never blocks on CloudWatch.
func (p *Publisher) Record(ctx context.Context, e Event) {
	def, ok := defByName[e.Name]
	if !ok {
		p.log.WarnContext(ctx, "not publishing an unknown metrics event", "event", string(e.Name), "group", e.Group)
		return
	}
	t := e.Time
	if t.IsZero() {
		t = p.now()
	}
	m := unixMinute(t)
	one := stat{unit: types.StandardUnitCount, n: 1, sum: 1, lo: 1, hi: 1}
	p.mu.Lock()
	p.addLocked(seriesKey{string(e.Name), "", m}, one)
	if e.Group != "" {
		p.addLocked(seriesKey{string(e.Name), e.Group, m}, one)
	}
	if def.Timed && e.Duration > 0 {
		secs := e.Duration.Seconds()
		d := stat{unit: types.StandardUnitSeconds, n: 1, sum: secs, lo: secs, hi: secs}
		name := durationMetrics[e.Name]
		p.addLocked(seriesKey{name, "", m}, d)
		if e.Group != "" {
			p.addLocked(seriesKey{name, e.Group, m}, d)
		}
	}
	full := len(p.buf) >= MaxDatumsPerCall
	p.mu.Unlock()
	if full {
		p.wake()
	}
}

// Gauge buffers a group's instance counts (InstancesSpot, InstancesOnDemand,
// InstancesAlternative). Several reconciles in one minute make one datapoint whose Average and
// Maximum are what dashboards show.
func (p *Publisher) Gauge(ctx context.Context, group string, c Counts) {
	if group == "" {
		return
	}
	m := unixMinute(p.now())
	p.mu.Lock()
	for _, g := range []struct {
		name string
		v    int
	}{{InstancesSpot, c.Spot}, {InstancesOnDemand, c.OnDemand}, {InstancesAlternative, c.Alternative}} {
		v := float64(g.v)
		p.addLocked(seriesKey{g.name, group, m}, stat{unit: types.StandardUnitCount, n: 1, sum: v, lo: v, hi: v})
	}
	full := len(p.buf) >= MaxDatumsPerCall
	p.mu.Unlock()
	if full {
		p.wake()
	}
}

func unixMinute(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s - 59) / 60
	}
	return s / 60
}

// addLocked merges a datapoint into the buffer; a new series that does not fit is dropped.
func (p *Publisher) addLocked(k seriesKey, s stat) {
	if p.closed {
		p.dropLocked(1)
		return
	}
	if cur := p.buf[k]; cur != nil {
		cur.add(s)
		return
	}
	if len(p.buf) >= p.max {
		p.dropLocked(1)
		return
	}
	n := new(stat) // not &s: that would move every caller's s to the heap
	*n = s
	p.buf[k] = n
}

func (p *Publisher) dropLocked(n int) {
	p.dropped.Add(int64(n))
	p.unreported += float64(n)
}

func (p *Publisher) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Dropped returns how many datapoints were dropped since the publisher was created: buffer
// full, too old to be accepted, rejected by CloudWatch, or still undelivered at Close.
func (p *Publisher) Dropped() int64 { return p.dropped.Load() }

// Buffered returns how many datapoints wait to be sent.
func (p *Publisher) Buffered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.buf)
}

// Sent returns how many datapoints CloudWatch accepted.
func (p *Publisher) Sent() int64 { return p.sent.Load() }

// Calls returns how many PutMetricData calls the publisher made.
func (p *Publisher) Calls() int64 { return p.calls.Load() }

// Run sends the buffer every FlushInterval, and full batches as soon as they are ready, until
// ctx ends or Close is called. Each call is tried once: what fails waits for the next flush.
func (p *Publisher) Run(ctx context.Context) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	once := func(o *cloudwatch.Options) { o.RetryMaxAttempts = 1 }
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.stop:
			return
		case <-t.C:
			if err := p.flush(ctx, false, once); err != nil {
				p.log.WarnContext(ctx, "publishing metrics to CloudWatch; kept for the next flush while the buffer has room",
					"error", err, "buffered", p.Buffered(), "dropped", p.Dropped())
			}
		case <-p.kick:
			if err := p.flush(ctx, true, once); err != nil {
				p.log.WarnContext(ctx, "publishing metrics to CloudWatch; kept for the next flush while the buffer has room",
					"error", err, "buffered", p.Buffered(), "dropped", p.Dropped())
			}
		}
	}
}

// Flush sends everything buffered now, with the client's retries. What fails stays buffered
// (while there is room) and the error is returned.
func (p *Publisher) Flush(ctx context.Context) error { return p.flush(ctx, false) }

// Close stops Run, refuses further datapoints (they count as dropped) and sends what is left.
// What cannot be sent before ctx ends is dropped and counted, and the error says so.
func (p *Publisher) Close(ctx context.Context) error {
	p.stopped.Do(func() { close(p.stop) })
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.flush(ctx, false)
	p.mu.Lock()
	left := len(p.buf)
	p.dropLocked(left)
	p.buf = map[seriesKey]*stat{}
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("flushing metrics to CloudWatch at close (%d datapoints dropped): %w", left, err)
	}
	return nil
}

// flush sends the buffer in calls of up to MaxDatumsPerCall datapoints, oldest first. With
// fullOnly it sends only full calls and keeps the rest for the interval flush, so that a burst
// costs exactly ceil(datapoints/MaxDatumsPerCall) calls.
func (p *Publisher) flush(ctx context.Context, fullOnly bool, optFns ...func(*cloudwatch.Options)) error {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	now := p.now()
	p.mu.Lock()
	if len(p.buf) == 0 && p.unreported == 0 || fullOnly && len(p.buf) < MaxDatumsPerCall {
		p.mu.Unlock()
		return nil
	}
	taken := p.buf
	p.buf = make(map[seriesKey]*stat, len(taken))
	if p.unreported > 0 {
		// The drop count travels as one more datapoint; it is not bounded by the buffer.
		k := seriesKey{MetricsDropped, "", unixMinute(now)}
		s := stat{unit: types.StandardUnitCount, n: 1, sum: p.unreported, lo: p.unreported, hi: p.unreported}
		if cur := taken[k]; cur != nil {
			cur.add(s)
		} else {
			taken[k] = &s
		}
		p.unreported = 0
	}
	p.mu.Unlock()

	entries := make([]entry, 0, len(taken))
	stale := 0
	for k, s := range taken {
		t := time.Unix(k.minute*60, 0)
		if t.Before(now.Add(-maxPast)) || t.After(now.Add(maxFuture)) {
			stale++
			continue
		}
		entries = append(entries, entry{k, *s})
	}
	if stale > 0 {
		p.mu.Lock()
		p.dropLocked(stale)
		p.mu.Unlock()
		p.log.WarnContext(ctx, "dropping metrics datapoints CloudWatch would reject as too old or too far ahead", "count", stale)
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.k.minute, b.k.minute), cmp.Compare(a.k.metric, b.k.metric), cmp.Compare(a.k.group, b.k.group))
	})
	if fullOnly {
		n := len(entries) / MaxDatumsPerCall * MaxDatumsPerCall
		p.requeue(entries[n:])
		entries = entries[:n]
	}
	var errs []error
	for len(entries) > 0 {
		n := min(len(entries), MaxDatumsPerCall)
		batch := entries[:n]
		entries = entries[n:]
		err := p.put(ctx, batch, optFns...)
		if err == nil {
			continue
		}
		if !retryable(err) {
			p.mu.Lock()
			p.dropLocked(len(batch))
			p.mu.Unlock()
			errs = append(errs, fmt.Errorf("CloudWatch rejected %d datapoints (dropped): %w", len(batch), err))
			continue
		}
		// CloudWatch is unreachable or overloaded: keep everything for later, stop hammering it.
		p.requeue(batch)
		p.requeue(entries)
		errs = append(errs, fmt.Errorf("sending %d datapoints to CloudWatch (kept for retry): %w", len(batch)+len(entries), err))
		break
	}
	return errors.Join(errs...)
}

// requeue puts entries back into the buffer; what no longer fits is dropped. MetricsDropped
// datapoints return to the unreported count instead, so the count survives a full buffer.
func (p *Publisher) requeue(entries []entry) {
	if len(entries) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range entries {
		if e.k.metric == MetricsDropped && e.k.group == "" {
			p.unreported += e.s.sum
			continue
		}
		if cur := p.buf[e.k]; cur != nil {
			cur.add(e.s)
			continue
		}
		if len(p.buf) >= p.max {
			p.dropLocked(1)
			continue
		}
		s := e.s
		p.buf[e.k] = &s
	}
}

func (p *Publisher) put(ctx context.Context, batch []entry, optFns ...func(*cloudwatch.Options)) error {
	data := make([]types.MetricDatum, len(batch))
	for i, e := range batch {
		d := types.MetricDatum{
			MetricName: aws.String(e.k.metric),
			Timestamp:  aws.Time(time.Unix(e.k.minute*60, 0).UTC()),
			Unit:       e.s.unit,
			StatisticValues: &types.StatisticSet{SampleCount: aws.Float64(e.s.n), Sum: aws.Float64(e.s.sum),
				Minimum: aws.Float64(e.s.lo), Maximum: aws.Float64(e.s.hi)},
		}
		if e.k.group != "" {
			d.Dimensions = []types.Dimension{{Name: aws.String(DimensionGroup), Value: aws.String(e.k.group)}}
		}
		data[i] = d
	}
	p.calls.Add(1)
	_, err := p.api.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(p.ns), MetricData: data}, optFns...)
	if err != nil {
		return err
	}
	p.sent.Add(int64(len(batch)))
	return nil
}

// retryable reports whether a failed PutMetricData may succeed later unchanged: throttling,
// server errors, an unreachable endpoint, a cancelled call. A request CloudWatch rejected as
// invalid never will.
func retryable(err error) bool {
	if awsapi.IsThrottled(err) || awsapi.IsUnreachable(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorFault() == smithy.FaultServer
	}
	return true // transport errors without an answer: connection reset, EOF
}
