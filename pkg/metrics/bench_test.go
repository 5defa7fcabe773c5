package metrics

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// nullCW accepts every call and does nothing, so that Record is measured alone.
type nullCW struct{}

func (nullCW) PutMetricData(context.Context, *cloudwatch.PutMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	return &cloudwatch.PutMetricDataOutput{}, nil
}

// BenchmarkRecord measures one Record into an existing series (the common case: many events of
// a group within a minute) and into a new series each time (a new group or minute).
func BenchmarkRecord(b *testing.B) {
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	b.Run("existing-series", func(b *testing.B) {
		p := NewPublisher(nullCW{}, PublisherOptions{Now: func() time.Time { return now }})
		e := Event{Name: ReplacementSucceeded, Group: "web", Instance: "i-0123456789abcdef0", Duration: 3 * time.Minute}
		b.ReportAllocs()
		for b.Loop() {
			p.Record(ctx, e)
		}
	})
	b.Run("new-series", func(b *testing.B) {
		p := NewPublisher(nullCW{}, PublisherOptions{Now: func() time.Time { return now }, MaxBuffered: 1 << 30})
		groups := make([]string, 4096)
		for i := range groups {
			groups[i] = fmt.Sprintf("group-%04d", i)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			// A new minute for every round over the groups: each Record makes new series.
			p.Record(ctx, Event{Name: InterruptionReceived, Group: groups[i%len(groups)], Time: now.Add(time.Duration(i/len(groups)) * time.Minute)})
			i++
		}
	})
}

// sdkDefaults sets what config.LoadDefaultConfig sets and simtest.Config does not: gzip only
// bodies of 10 KB and more.
func sdkDefaults(o *cloudwatch.Options) { o.RequestMinCompressSizeBytes = 10240 }

// BenchmarkPublish10k sends 10,000 events to the simulated region over HTTP: through the
// publisher (aggregated, batched) and, as the baseline, one PutMetricData call per event with
// its two datapoints (group and region-wide), as a naive publisher would. Calls per 10k events
// are reported as calls/op.
func BenchmarkPublish10k(b *testing.B) {
	const events = 10000
	ctx := context.Background()
	shapes := []struct {
		name   string
		groups int
	}{
		{"50-groups", 50},        // a busy region: many events per group and minute
		{"10000-groups", events}, // the worst case for aggregation: every event its own series
	}
	for _, s := range shapes {
		b.Run("batched/"+s.name, func(b *testing.B) {
			env := startSim(b)
			cw := cloudwatch.NewFromConfig(env.Config, sdkDefaults)
			calls := 0
			for b.Loop() {
				before := putCalls(env)
				p := NewPublisher(cw, PublisherOptions{Now: env.Region().Clock().Now, MaxBuffered: 2 * events})
				for i := 0; i < events; i++ {
					p.Record(ctx, Event{Name: VolumeMoved, Group: fmt.Sprintf("g%05d", i%s.groups), Duration: time.Second, Time: t0})
				}
				if err := p.Close(ctx); err != nil {
					b.Fatal(err)
				}
				calls = putCalls(env) - before
			}
			b.ReportMetric(float64(calls), "calls/op")
		})
		b.Run("per-event/"+s.name, func(b *testing.B) {
			env := startSim(b)
			cw := cloudwatch.NewFromConfig(env.Config, sdkDefaults)
			calls := 0
			for b.Loop() {
				before := putCalls(env)
				for i := 0; i < events; i++ {
					group := fmt.Sprintf("g%05d", i%s.groups)
					_, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(Namespace), MetricData: []types.MetricDatum{
						{MetricName: aws.String("VolumeMoved"), Value: aws.Float64(1), Unit: types.StandardUnitCount, Timestamp: aws.Time(t0),
							Dimensions: []types.Dimension{{Name: aws.String(DimensionGroup), Value: aws.String(group)}}},
						{MetricName: aws.String("VolumeMoved"), Value: aws.Float64(1), Unit: types.StandardUnitCount, Timestamp: aws.Time(t0)},
					}})
					if err != nil {
						b.Fatal(err)
					}
				}
				calls = putCalls(env) - before
			}
			b.ReportMetric(float64(calls), "calls/op")
		})
	}
}
