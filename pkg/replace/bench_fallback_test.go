package replace_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// launchClock records when each RunInstances call of the workflow started and how it ended.
type launchClock struct {
	replace.EC2API
	mu    sync.Mutex
	first time.Time
	okAt  time.Time
}

func (l *launchClock) RunInstances(ctx context.Context, in *ec2.RunInstancesInput, o ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	l.mu.Lock()
	if l.first.IsZero() {
		l.first = time.Now()
	}
	l.mu.Unlock()
	out, err := l.EC2API.RunInstances(ctx, in, o...)
	if err == nil {
		l.mu.Lock()
		l.okAt = time.Now()
		l.mu.Unlock()
	}
	return out, err
}

// benchFallback measures a replacement whose spot options have no capacity (EC2 answers
// InsufficientInstanceCapacity with HTTP 500, as AWS does): the time from the first launch
// attempt to the on-demand launch, and the RunInstances requests that reached EC2. Each EC2
// call takes 100 ms, about what RunInstances takes on AWS.
func benchFallback(b *testing.B, retryer func() aws.Retryer) {
	f := newFixture(b, fixtureOpts{desired: 1, max: 1, scale: 60,
		tags: map[string]string{groupconfig.AltKey(1): "m5a.large", groupconfig.TagDetachingDelaySeconds: "0",
			groupconfig.TagPreactionDetachDelaySeconds: "0"}})
	r := f.env.Region()
	for _, az := range r.AZs() {
		for _, typ := range []string{"m5.large", "m5a.large"} {
			r.SetCapacity(sim.PoolKey{InstanceType: typ, AZ: az.Name, Market: sim.MarketSpot}, 0)
		}
	}
	r.SetCallLatency("ec2:RunInstances", 100*time.Millisecond)
	clock := &launchClock{EC2API: ec2.NewFromConfig(f.env.Config, func(o *ec2.Options) { o.Retryer = retryer() })}
	w := f.workflow()
	w.EC2 = clock
	to := replace.DefaultTimeouts()
	to.Release = 0
	w.Timeouts = &to
	current := f.members[0]
	var total time.Duration
	var launches int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clock.first, clock.okAt = time.Time{}, time.Time{}
		before := callsOf(r, "ec2:RunInstances")
		res, err := f.replace(b, w, replace.Request{InstanceID: current, Reason: replace.ReasonLifetime})
		if err != nil {
			b.Fatal(err)
		}
		if res.Market != replace.MarketOnDemand {
			b.Fatalf("replacement is %s, want on-demand", res.Market)
		}
		total += clock.okAt.Sub(clock.first)
		launches += callsOf(r, "ec2:RunInstances") - before
		current = res.New
	}
	b.StopTimer()
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-on-demand/op")
	b.ReportMetric(float64(launches)/float64(b.N), "RunInstances/op")
}

func callsOf(r *sim.Region, key string) int {
	for _, c := range r.Calls() {
		if c.Action == key {
			return c.Count
		}
	}
	return 0
}

// BenchmarkFallbackToOnDemand compares spotmax's retry policy (capacity errors final) with the
// SDK's standard retryer at spotmax's former 10 attempts, which retries the 500s as transient.
func BenchmarkFallbackToOnDemand(b *testing.B) {
	b.Run("retry-policy", func(b *testing.B) { benchFallback(b, awsapi.DefaultRetryPolicy().NewRetryer) })
	b.Run("sdk-standard-10", func(b *testing.B) {
		benchFallback(b, func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 10 })
		})
	})
}
