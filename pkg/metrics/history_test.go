package metrics

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
)

func TestHistoryCountsPerBucket(t *testing.T) {
	env := startSim(t)
	p := newPublisher(env, PublisherOptions{})
	ctx := context.Background()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	for _, e := range []Event{
		{Name: InterruptionReceived, Group: "web", Time: at(1)},
		{Name: InterruptionReceived, Group: "web", Time: at(4)},
		{Name: InterruptionReceived, Group: "web", Time: at(7)},
		{Name: InterruptionReceived, Group: "api", Time: at(2)},
		{Name: ReplacementSucceeded, Group: "web", Duration: 60 * time.Second, Time: at(3)},
		{Name: ReplacementSucceeded, Group: "web", Duration: 120 * time.Second, Time: at(3)},
		{Name: ReplacementSucceeded, Group: "web", Duration: 300 * time.Second, Time: at(12)},
		{Name: ReplacementFailed, Group: "api", Duration: 10 * time.Second, Time: at(13)},
	} {
		p.Record(ctx, e)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cw := cloudwatch.NewFromConfig(env.Config)
	q := HistoryQuery{Group: "web", Start: t0, End: at(15), Period: 5 * time.Minute}
	h, err := QueryHistory(ctx, cw, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != len(Defs()) {
		t.Fatalf("%d events in the history, want one per definition (%d)", len(h.Events), len(Defs()))
	}
	got := map[Name]string{}
	for _, e := range h.Events {
		var parts []string
		for _, b := range e.Buckets {
			s := fmt.Sprintf("%s=%v", b.Start.Format("15:04"), b.Count)
			if b.AvgDuration > 0 {
				s += "@" + b.AvgDuration.String()
			}
			parts = append(parts, s)
		}
		got[e.Name] = fmt.Sprintf("total=%v avg=%s [%s]", e.Total, e.AvgDuration, strings.Join(parts, " "))
	}
	want := map[Name]string{
		InterruptionReceived: "total=3 avg=0s [10:00=2 10:05=1]",
		ReplacementSucceeded: "total=3 avg=2m40s [10:00=2@1m30s 10:10=1@5m0s]",
		ReplacementFailed:    "total=0 avg=0s []",
		VolumeMoved:          "total=0 avg=0s []",
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("group web, %s: got %s, want %s", n, got[n], w)
		}
	}
	if h.Calls != 1 {
		t.Errorf("the query took %d GetMetricData calls, want 1", h.Calls)
	}

	// Without a group: the region-wide totals.
	h, err = QueryHistory(ctx, cw, HistoryQuery{Start: t0, End: at(15), Period: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range h.Events {
		want := map[Name]float64{InterruptionReceived: 4, ReplacementSucceeded: 3, ReplacementFailed: 1}[e.Name]
		if e.Total != want {
			t.Errorf("region-wide %s total %v, want %v", e.Name, e.Total, want)
		}
	}
}

func TestHistoryPaginates(t *testing.T) {
	env := startSim(t)
	p := newPublisher(env, PublisherOptions{})
	ctx := context.Background()
	// One event per minute for 5 hours, in the past: 300 one-minute buckets of each of the two
	// metrics (count, and the volume move's duration twice: Sum and SampleCount) = 900 points.
	for m := 0; m < 300; m++ {
		p.Record(ctx, Event{Name: VolumeMoved, Group: "web", Duration: time.Duration(m+1) * time.Second,
			Time: t0.Add(-5*time.Hour + time.Duration(m)*time.Minute)})
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	api := &pageLimiter{api: cloudwatch.NewFromConfig(env.Config), max: 100}
	h, err := QueryHistory(ctx, api, HistoryQuery{Group: "web", Start: t0.Add(-5 * time.Hour), End: t0, Period: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if h.Calls != 9 {
		t.Errorf("%d GetMetricData calls for 900 datapoints at 100 a page, want 9", h.Calls)
	}
	for _, e := range h.Events {
		if e.Name != VolumeMoved {
			continue
		}
		if e.Total != 300 || len(e.Buckets) != 300 {
			t.Fatalf("VolumeMoved: total %v in %d buckets, want 300 in 300", e.Total, len(e.Buckets))
		}
		if e.Buckets[0].AvgDuration != time.Second || e.Buckets[299].AvgDuration != 300*time.Second {
			t.Errorf("first/last bucket durations %s/%s, want 1s/5m0s", e.Buckets[0].AvgDuration, e.Buckets[299].AvgDuration)
		}
		if e.AvgDuration != 150500*time.Millisecond {
			t.Errorf("average duration %s, want 2m30.5s", e.AvgDuration)
		}
	}
}

// pageLimiter sets MaxDatapoints on every GetMetricData call, so that small histories page.
type pageLimiter struct {
	api HistoryAPI
	max int32
}

func (l *pageLimiter) GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	c := *in
	c.MaxDatapoints = &l.max
	return l.api.GetMetricData(ctx, &c, optFns...)
}

func TestHistoryQueryValidate(t *testing.T) {
	cases := []struct {
		q    HistoryQuery
		want string
	}{
		{HistoryQuery{End: t0, Period: time.Minute}, "needs a start and an end"},
		{HistoryQuery{Start: t0, End: t0, Period: time.Minute}, "is not before its end"},
		{HistoryQuery{Start: t0.Add(time.Hour), End: t0, Period: time.Minute}, "2026-03-02T11:00:00Z is not before its end 2026-03-02T10:00:00Z"},
		{HistoryQuery{Start: t0, End: t0.Add(time.Hour), Period: 30 * time.Second}, "period 30s is not a whole number of minutes"},
		{HistoryQuery{Start: t0, End: t0.Add(time.Hour), Period: 90 * time.Second}, "period 1m30s"},
		{HistoryQuery{Start: t0.Add(-500 * 24 * time.Hour), End: t0, Period: time.Hour}, "longer than CloudWatch keeps metrics"},
		{HistoryQuery{Start: t0, End: t0.Add(time.Hour), Period: time.Minute}, ""},
	}
	for _, c := range cases {
		err := c.q.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", c.q, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: got %v, want an error containing %q", c.q, err, c.want)
		}
	}
}

func TestHistoryAlignsToPeriods(t *testing.T) {
	q := HistoryQuery{Start: t0.Add(7 * time.Minute), End: t0.Add(22 * time.Minute), Period: 5 * time.Minute}
	s, e := q.Aligned()
	if !s.Equal(t0.Add(5*time.Minute)) || !e.Equal(t0.Add(25*time.Minute)) {
		t.Errorf("aligned %s..%s, want 10:05..10:25", s, e)
	}
}
