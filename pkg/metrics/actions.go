package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// The audit trail: one record per action spotmax took (a replacement by `spotmax run` or
// `spotmax replace`, a drain by `spotmax drain`), as a JSON log event in CloudWatch Logs. The
// counts stay in CloudWatch metrics; the records say who did what to which instance, when and
// why, and are what `spotmax history` lists and `spotmax savings` reconstructs hours from.

// DefaultActionLogGroup is the CloudWatch Logs log group of the action records.
const DefaultActionLogGroup = "/spotmax/actions"

// Action kinds.
const (
	ActionReplace = "replace"
	ActionDrain   = "drain"
)

// Action results.
const (
	ResultSucceeded = "succeeded"
	ResultFailed    = "failed"
)

// ActionRecordVersion is the version of the record's JSON shape.
const ActionRecordVersion = 1

// Action is one action spotmax took: the audit record. Its JSON shape is stable (version 1).
type Action struct {
	Version int    `json:"v"`
	Kind    string `json:"action"`
	Group   string `json:"group"`
	// Instance is the instance acted on; Replacement the one launched in its place.
	Instance    string `json:"instance"`
	Replacement string `json:"replacement,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Actor is the command that acted ("spotmax run", "spotmax replace") with its user and host;
	// Owner the journal lease owner of a replacement.
	Actor  string `json:"actor"`
	Owner  string `json:"owner,omitempty"`
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// Step is where a failed replacement stopped.
	Step string `json:"step,omitempty"`
	// Market, Type and AZ describe the replacement.
	Market string `json:"market,omitempty"`
	Type   string `json:"type,omitempty"`
	AZ     string `json:"az,omitempty"`
	// OldMarket, OldType, OldAZ and OldLaunched describe the instance acted on, so that its hours
	// can be priced after it is gone.
	OldMarket   string     `json:"old_market,omitempty"`
	OldType     string     `json:"old_type,omitempty"`
	OldAZ       string     `json:"old_az,omitempty"`
	OldLaunched *time.Time `json:"old_launched,omitempty"`
	Volume      string     `json:"volume,omitempty"`
	// CrossAZ describes a data volume's move to another AZ through a snapshot, with the
	// snapshot's cost.
	CrossAZ *CrossAZAction `json:"cross_az,omitempty"`
	// Node and Pods describe a drain.
	Node            string    `json:"node,omitempty"`
	Pods            int       `json:"pods,omitempty"`
	Started         time.Time `json:"started"`
	Ended           time.Time `json:"ended"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// ActionFromEvent turns a replacement's final event (ReplacementSucceeded or ReplacementFailed,
// with the workflow's fields) into its action record; ok is false for other events.
func ActionFromEvent(e Event, actor string) (Action, bool) {
	var result string
	switch e.Name {
	case ReplacementSucceeded:
		result = ResultSucceeded
	case ReplacementFailed:
		result = ResultFailed
	default:
		return Action{}, false
	}
	f := e.Fields
	a := Action{Version: ActionRecordVersion, Kind: ActionReplace, Group: e.Group, Instance: e.Instance, Replacement: f["replacement"],
		Reason: f["reason"], Actor: actor, Owner: f["owner"], Result: result, Error: f["error"], Step: f["step"],
		Market: f["market"], Type: f["type"], AZ: f["az"], OldMarket: f["old_market"], OldType: f["old_type"], OldAZ: f["old_az"],
		Volume: f["volume"], Ended: e.Time.UTC(), DurationSeconds: e.Duration.Seconds()}
	if f["xaz_volume"] != "" {
		x := &CrossAZAction{Source: f["xaz_source"], Volume: f["xaz_volume"], FromAZ: f["xaz_from_az"], ToAZ: f["xaz_to_az"], Snapshot: f["xaz_snapshot"]}
		x.SizeGiB, _ = strconv.Atoi(f["xaz_size_gib"])
		x.Seconds, _ = strconv.ParseFloat(f["xaz_seconds"], 64)
		x.SnapshotSeconds, _ = strconv.ParseFloat(f["xaz_snapshot_seconds"], 64)
		x.SnapshotUSD, _ = strconv.ParseFloat(f["xaz_snapshot_usd"], 64)
		a.CrossAZ = x
	}
	if t, err := time.Parse(time.RFC3339, f["old_launched"]); err == nil {
		t = t.UTC()
		a.OldLaunched = &t
	}
	a.Started = a.Ended.Add(-e.Duration)
	return a, true
}

// CrossAZAction is the cross-AZ part of a replacement's record: the source volume (kept) and its
// copy, the AZs, the snapshot, the move's time and the snapshot's storage cost in USD.
type CrossAZAction struct {
	Source          string  `json:"source_volume"`
	Volume          string  `json:"volume"`
	FromAZ          string  `json:"from_az"`
	ToAZ            string  `json:"to_az"`
	Snapshot        string  `json:"snapshot"`
	SizeGiB         int     `json:"size_gib"`
	Seconds         float64 `json:"seconds"`
	SnapshotSeconds float64 `json:"snapshot_seconds"`
	SnapshotUSD     float64 `json:"snapshot_usd"`
}

// ActionLogAPI is what the action log needs from CloudWatch Logs. *cloudwatchlogs.Client
// satisfies it.
type ActionLogAPI interface {
	CreateLogGroup(ctx context.Context, params *cloudwatchlogs.CreateLogGroupInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error)
	CreateLogStream(ctx context.Context, params *cloudwatchlogs.CreateLogStreamInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error)
	PutLogEvents(ctx context.Context, params *cloudwatchlogs.PutLogEventsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error)
}

var _ ActionLogAPI = (*cloudwatchlogs.Client)(nil)

// ActionLogOptions configure an ActionLog. Actor is required.
type ActionLogOptions struct {
	// LogGroup defaults to DefaultActionLogGroup.
	LogGroup string
	// Stream defaults to the actor's host, process and start time, one stream per process (as
	// the CloudWatch agent does), so that writers never contend.
	Stream string
	// Actor names who acts, e.g. "spotmax run (root@host-1)".
	Actor string
	// FlushInterval is how often Run sends what was recorded; default 5 s.
	FlushInterval time.Duration
	// MaxBuffered bounds the records kept while CloudWatch Logs is unreachable; default 10000.
	MaxBuffered int
	Log         *slog.Logger
}

// ActionLog writes action records to CloudWatch Logs. Record (a metrics Recorder) turns a
// replacement's final event into its record; Log adds any record. Neither blocks on I/O: Run
// sends the buffer every FlushInterval, Close sends what is left. Records that cannot be sent
// are kept for the next flush while the buffer has room, then dropped and counted.
type ActionLog struct {
	api    ActionLogAPI
	group  string
	stream string
	actor  string
	every  time.Duration
	max    int
	log    *slog.Logger

	mu      sync.Mutex
	buf     []Action
	ready   bool // log group and stream exist
	flushMu sync.Mutex
	dropped atomic.Int64
	sent    atomic.Int64
}

var _ Recorder = (*ActionLog)(nil)

// NewActionLog returns an action log writing to api.
func NewActionLog(api ActionLogAPI, opts ActionLogOptions) *ActionLog {
	l := &ActionLog{api: api, group: opts.LogGroup, stream: opts.Stream, actor: opts.Actor, every: opts.FlushInterval,
		max: opts.MaxBuffered, log: opts.Log}
	if l.group == "" {
		l.group = DefaultActionLogGroup
	}
	if l.stream == "" {
		l.stream = DefaultActionStream(time.Now())
	}
	if l.every <= 0 {
		l.every = 5 * time.Second
	}
	if l.max <= 0 {
		l.max = DefaultMaxBuffered
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l
}

// Record implements Recorder: a replacement's final event becomes its action record.
func (l *ActionLog) Record(_ context.Context, e Event) {
	if a, ok := ActionFromEvent(e, l.actor); ok {
		l.add(a)
	}
}

// Gauge implements Recorder; gauges are not actions.
func (l *ActionLog) Gauge(context.Context, string, Counts) {}

// Log adds a record; its Actor and Version are filled in when empty.
func (l *ActionLog) Log(a Action) {
	if a.Actor == "" {
		a.Actor = l.actor
	}
	a.Version = ActionRecordVersion
	l.add(a)
}

func (l *ActionLog) add(a Action) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) >= l.max {
		l.dropped.Add(1)
		return
	}
	l.buf = append(l.buf, a)
}

// Dropped returns the number of records that could not be sent.
func (l *ActionLog) Dropped() int64 { return l.dropped.Load() }

// Sent returns the number of records sent.
func (l *ActionLog) Sent() int64 { return l.sent.Load() }

// Run flushes every FlushInterval until ctx ends.
func (l *ActionLog) Run(ctx context.Context) {
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.Flush(ctx); err != nil {
				l.log.WarnContext(ctx, "sending action records to CloudWatch Logs (kept for the next try)", "error", err)
			}
		}
	}
}

// Close sends what is left.
func (l *ActionLog) Close(ctx context.Context) error { return l.Flush(ctx) }

// Flush sends the buffered records in PutLogEvents calls, creating the log group and stream
// first when needed.
func (l *ActionLog) Flush(ctx context.Context) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	batch := l.buf
	l.buf = nil
	l.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	slices.SortStableFunc(batch, func(a, b Action) int { return a.Ended.Compare(b.Ended) })
	sent, err := l.send(ctx, batch)
	if err != nil {
		l.mu.Lock()
		keep := append(batch[sent:], l.buf...)
		if over := len(keep) - l.max; over > 0 {
			l.dropped.Add(int64(over))
			keep = keep[over:]
		}
		l.buf = keep
		l.mu.Unlock()
	}
	return err
}

// PutLogEvents limits: events in time order, a batch of at most 10,000 events, 1,048,576
// bytes (message bytes + 26 per event) and a 24-hour span.
const (
	logsMaxEvents  = 10000
	logsMaxBytes   = 1048576
	logsOverhead   = 26
	logsMaxSpanDur = 24 * time.Hour
)

// send puts the records, in time order, and returns how many were sent.
func (l *ActionLog) send(ctx context.Context, batch []Action) (int, error) {
	if err := l.ensure(ctx); err != nil {
		return 0, err
	}
	sent := 0
	var events []logtypes.InputLogEvent
	size := 0
	var first time.Time
	put := func() error {
		if len(events) == 0 {
			return nil
		}
		out, err := l.api.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(l.group),
			LogStreamName: aws.String(l.stream), LogEvents: events})
		if err != nil {
			return fmt.Errorf("putting %d action record(s) into log group %s: %w", len(events), l.group, err)
		}
		n := int64(len(events))
		if r := out.RejectedLogEventsInfo; r != nil {
			l.log.WarnContext(ctx, "CloudWatch Logs rejected action records (too old or too new)", "log_group", l.group,
				"too_old_end", aws.ToInt32(r.TooOldLogEventEndIndex), "too_new_start", aws.ToInt32(r.TooNewLogEventStartIndex))
		}
		l.sent.Add(n)
		sent += len(events)
		events, size = nil, 0
		return nil
	}
	for _, a := range batch {
		b, err := json.Marshal(a)
		if err != nil {
			return sent, fmt.Errorf("encoding the action record of %s: %w", a.Instance, err)
		}
		t := a.Ended
		if t.IsZero() {
			t = time.Now()
		}
		if len(events) > 0 && (len(events) >= logsMaxEvents || size+len(b)+logsOverhead > logsMaxBytes || t.Sub(first) > logsMaxSpanDur) {
			if err := put(); err != nil {
				return sent, err
			}
		}
		if len(events) == 0 {
			first = t
		}
		events = append(events, logtypes.InputLogEvent{Timestamp: aws.Int64(t.UnixMilli()), Message: aws.String(string(b))})
		size += len(b) + logsOverhead
	}
	return sent, put()
}

func (l *ActionLog) ensure(ctx context.Context) error {
	if l.ready {
		return nil
	}
	var exists *logtypes.ResourceAlreadyExistsException
	if _, err := l.api.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(l.group)}); err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("creating log group %s: %w", l.group, err)
	}
	if _, err := l.api.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(l.group),
		LogStreamName: aws.String(l.stream)}); err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("creating log stream %s in %s: %w", l.stream, l.group, err)
	}
	l.ready = true
	return nil
}

// DefaultActionStream names a process's log stream: host/pid/start.
func DefaultActionStream(start time.Time) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), strconv.FormatInt(start.UnixMilli(), 10))
}

// ActionQueryAPI is what reading the trail needs. *cloudwatchlogs.Client satisfies it.
type ActionQueryAPI interface {
	FilterLogEvents(ctx context.Context, params *cloudwatchlogs.FilterLogEventsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error)
}

var _ ActionQueryAPI = (*cloudwatchlogs.Client)(nil)

// ActionQuery selects action records.
type ActionQuery struct {
	// LogGroup defaults to DefaultActionLogGroup.
	LogGroup string
	// Group selects one Auto Scaling group ("" all); Instance the actions on or launching one
	// instance ("" all).
	Group, Instance string
	// Start and End bound the records' times (when they ended).
	Start, End time.Time
}

// QueryActions returns the matching records, oldest first. The group is matched by CloudWatch
// Logs (a JSON filter pattern), the instance here (it may be the old or the new instance). A
// log group that does not exist yet means no action was recorded.
func QueryActions(ctx context.Context, api ActionQueryAPI, q ActionQuery) ([]Action, error) {
	group := q.LogGroup
	if group == "" {
		group = DefaultActionLogGroup
	}
	in := &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group)}
	if !q.Start.IsZero() {
		in.StartTime = aws.Int64(q.Start.UnixMilli())
	}
	if !q.End.IsZero() {
		in.EndTime = aws.Int64(q.End.UnixMilli())
	}
	if q.Group != "" {
		b, _ := json.Marshal(q.Group)
		in.FilterPattern = aws.String(fmt.Sprintf("{ $.group = %s }", b))
	}
	out := []Action{}
	pages := cloudwatchlogs.NewFilterLogEventsPaginator(api, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			var nf *logtypes.ResourceNotFoundException
			if errors.As(err, &nf) {
				return out, nil
			}
			return nil, fmt.Errorf("reading action records from log group %s: %w", group, err)
		}
		for _, e := range page.Events {
			var a Action
			if err := json.Unmarshal([]byte(aws.ToString(e.Message)), &a); err != nil || a.Kind == "" {
				continue // not a record of ours
			}
			if q.Instance != "" && a.Instance != q.Instance && a.Replacement != q.Instance {
				continue
			}
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b Action) int { return a.Ended.Compare(b.Ended) })
	return out, nil
}
