package metrics

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// HistoryAPI is what history queries need from CloudWatch. *cloudwatch.Client satisfies it.
type HistoryAPI interface {
	GetMetricData(ctx context.Context, params *cloudwatch.GetMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

var _ HistoryAPI = (*cloudwatch.Client)(nil)

// Retention is how far back CloudWatch keeps metrics (15 months, as hourly datapoints).
const Retention = 455 * 24 * time.Hour

// HistoryQuery asks what spotmax did in a time range.
type HistoryQuery struct {
	// Namespace defaults to Namespace.
	Namespace string
	// Group selects one Auto Scaling group; "" selects the region-wide totals.
	Group string
	// Start and End bound the range; Start is rounded down and End up to whole periods.
	Start, End time.Time
	// Period is the bucket size: a whole number of minutes, since spotmax publishes one-minute
	// datapoints.
	Period time.Duration
}

// Validate checks the query and says what is wrong with it.
func (q HistoryQuery) Validate() error {
	switch {
	case q.Start.IsZero() || q.End.IsZero():
		return fmt.Errorf("history query needs a start and an end time")
	case !q.Start.Before(q.End):
		return fmt.Errorf("history start %s is not before its end %s", q.Start.UTC().Format(time.RFC3339), q.End.UTC().Format(time.RFC3339))
	case q.Period <= 0 || q.Period%time.Minute != 0:
		return fmt.Errorf("history period %s is not a whole number of minutes (spotmax publishes one-minute datapoints)", q.Period)
	case q.End.Sub(q.Start) > Retention:
		return fmt.Errorf("history range %s to %s is longer than CloudWatch keeps metrics (15 months)",
			q.Start.UTC().Format(time.RFC3339), q.End.UTC().Format(time.RFC3339))
	}
	return nil
}

// Aligned returns the query's range rounded out to whole periods.
func (q HistoryQuery) Aligned() (start, end time.Time) {
	p := q.Period
	start = q.Start.UTC().Truncate(p)
	end = q.End.UTC().Truncate(p)
	if end.Before(q.End) {
		end = end.Add(p)
	}
	return start, end
}

// History is what spotmax did in a time range, one entry per event in Defs order.
type History struct {
	Namespace string
	Group     string
	Start     time.Time
	End       time.Time
	Period    time.Duration
	Events    []EventHistory
	// Messages are CloudWatch's remarks on the query (partial data, limits).
	Messages []string
	// Calls is the number of GetMetricData calls (pages) the query took.
	Calls int
}

// EventHistory is one event's counts over time.
type EventHistory struct {
	Name  Name
	Timed bool
	// Total is the number of events in the range.
	Total float64
	// AvgDuration is the mean duration over the range of a timed event; 0 when none was
	// reported.
	AvgDuration time.Duration
	// Buckets are the periods that had events, oldest first.
	Buckets []Bucket
}

// Bucket is one period.
type Bucket struct {
	Start time.Time
	Count float64
	// AvgDuration is the mean duration of the period's timed events; 0 when none was reported.
	AvgDuration time.Duration
	// durSum and durN accumulate the duration statistics.
	durSum, durN float64
}

// Query ids: c<i> the count (Sum), s<i> and n<i> the duration's Sum and SampleCount, for the
// i-th event of Defs.
func queryID(kind byte, i int) string { return fmt.Sprintf("%c%d", kind, i) }

// QueryHistory answers a history query with one paginated GetMetricData request that holds a
// query per event count and two per event duration.
func QueryHistory(ctx context.Context, api HistoryAPI, q HistoryQuery) (*History, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	ns := q.Namespace
	if ns == "" {
		ns = Namespace
	}
	start, end := q.Aligned()
	period := int32(q.Period / time.Second)
	var dims []types.Dimension
	if q.Group != "" {
		dims = []types.Dimension{{Name: aws.String(DimensionGroup), Value: aws.String(q.Group)}}
	}
	stat := func(id, metric, statistic string) types.MetricDataQuery {
		return types.MetricDataQuery{Id: aws.String(id), MetricStat: &types.MetricStat{
			Metric: &types.Metric{Namespace: aws.String(ns), MetricName: aws.String(metric), Dimensions: dims},
			Period: aws.Int32(period), Stat: aws.String(statistic)}}
	}
	var queries []types.MetricDataQuery
	for i, d := range defs {
		queries = append(queries, stat(queryID('c', i), string(d.Name), "Sum"))
		if d.Timed {
			queries = append(queries, stat(queryID('s', i), d.Name.DurationMetric(), "Sum"),
				stat(queryID('n', i), d.Name.DurationMetric(), "SampleCount"))
		}
	}
	h := &History{Namespace: ns, Group: q.Group, Start: start, End: end, Period: q.Period}
	type series map[time.Time]float64
	byID := map[string]series{}
	pages := cloudwatch.NewGetMetricDataPaginator(api, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(start), EndTime: aws.Time(end), MetricDataQueries: queries,
		ScanBy: types.ScanByTimestampAscending,
	})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		h.Calls++
		if err != nil {
			what := "all groups"
			if q.Group != "" {
				what = "group " + q.Group
			}
			return nil, fmt.Errorf("querying CloudWatch metrics of %s from %s to %s: %w", what,
				start.Format(time.RFC3339), end.Format(time.RFC3339), err)
		}
		for _, m := range out.Messages {
			h.Messages = append(h.Messages, aws.ToString(m.Code)+": "+aws.ToString(m.Value))
		}
		for _, r := range out.MetricDataResults {
			id := aws.ToString(r.Id)
			s := byID[id]
			if s == nil {
				s = series{}
				byID[id] = s
			}
			for j, t := range r.Timestamps {
				if j < len(r.Values) {
					s[t.UTC()] += r.Values[j]
				}
			}
			for _, m := range r.Messages {
				h.Messages = append(h.Messages, id+": "+aws.ToString(m.Code)+": "+aws.ToString(m.Value))
			}
		}
	}
	for i, d := range defs {
		e := EventHistory{Name: d.Name, Timed: d.Timed, Buckets: []Bucket{}}
		buckets := map[time.Time]*Bucket{}
		get := func(t time.Time) *Bucket {
			b := buckets[t]
			if b == nil {
				b = &Bucket{Start: t}
				buckets[t] = b
			}
			return b
		}
		for t, v := range byID[queryID('c', i)] {
			if v > 0 {
				get(t).Count += v
			}
		}
		var sum, n float64
		if d.Timed {
			for t, v := range byID[queryID('s', i)] {
				if b := buckets[t]; b != nil {
					b.durSum += v
				}
			}
			for t, v := range byID[queryID('n', i)] {
				if b := buckets[t]; b != nil {
					b.durN += v
				}
			}
		}
		for _, b := range buckets {
			e.Total += b.Count
			if b.durN > 0 {
				b.AvgDuration = seconds(b.durSum / b.durN)
				sum += b.durSum
				n += b.durN
			}
			e.Buckets = append(e.Buckets, *b)
		}
		if n > 0 {
			e.AvgDuration = seconds(sum / n)
		}
		sort.Slice(e.Buckets, func(a, b int) bool { return e.Buckets[a].Start.Before(e.Buckets[b].Start) })
		h.Events = append(h.Events, e)
	}
	return h, nil
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}
