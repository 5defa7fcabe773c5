package replace_test

import (
	"context"
	"flag"
	"sync"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// zeroLatencies make every state change happen at once, so a replacement's wall time is
// spotmax's own overhead (API round trips, JSON/XML, polling).
func zeroLatencies() sim.Latencies {
	return sim.Latencies{InterruptionNotice: 2 * time.Minute, ASGCheck: 10 * time.Second}
}

// criticalPath is the sum of the simulated waits a proactive replacement without an agent must
// sit through: launch, attach to the group, detach from it, the old instance's shutdown (which
// frees the volume) and the volume's attach.
func criticalPath(l sim.Latencies) time.Duration {
	return l.Pending + l.Attach + l.Detach + l.ShuttingDown + l.Attach
}

func benchReplace(b *testing.B, lat sim.Latencies, scale float64) {
	// The kind world: AWS's visibility windows are waits of AWS's, not spotmax's overhead, and
	// at zero latency they would be all the wall time measures.
	kind := sim.KindBehaviors()
	f := newFixture(b, fixtureOpts{desired: 1, max: 1, scale: scale, latencies: &lat, behaviors: &kind,
		tags: map[string]string{groupconfig.TagDetachingDelaySeconds: "0", groupconfig.TagPreactionDetachDelaySeconds: "0"}})
	w := f.workflow()
	to := replace.DefaultTimeouts()
	to.Release = 0
	w.Timeouts = &to
	// No poll faster than the state can change: the first poll waits a tenth of the shortest
	// simulated transition.
	w.PollMin = max(time.Duration(float64(lat.Attach)/scale/10), 200*time.Microsecond)
	w.PollMax = max(time.Duration(float64(lat.Pending)/scale/4), time.Millisecond)
	current := f.members[0]
	f.env.Region().ResetCalls()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := f.replace(b, w, replace.Request{InstanceID: current, Reason: replace.ReasonLifetime})
		if err != nil {
			b.Fatal(err)
		}
		current = res.New
	}
	b.StopTimer()
	perOp := b.Elapsed() / time.Duration(b.N)
	waits := time.Duration(float64(criticalPath(lat)) / scale)
	b.ReportMetric(float64(f.env.Region().CallsTotal())/float64(b.N), "calls/op")
	b.ReportMetric((perOp-waits).Seconds()*1000, "overhead-ms/op")
}

// BenchmarkReplace measures one replacement with a data volume: at zero latency (the wall time
// is spotmax's overhead) and at AWS-like latencies scaled 600× (overhead = wall time minus the
// simulated waits on the critical path).
func BenchmarkReplace(b *testing.B) {
	b.Run("zero-latency", func(b *testing.B) { benchReplace(b, zeroLatencies(), 1) })
	b.Run("aws-latency-x600", func(b *testing.B) { benchReplace(b, sim.AWSLatencies(), 600) })
}

var batchScale = flag.Float64("batch.scale", 60, "time scale of BenchmarkReplaceBatch: higher runs faster but lets the machine's CPU time count more in simulated minutes")

// BenchmarkReplaceBatch replaces 100 instances of one group, 10 at a time, under 10% throttling
// of every EC2 and Auto Scaling call, at AWS-like latencies scaled by -batch.scale (default 60×), and reports
// replacements per simulated minute. Any error (a throttle that escaped) fails it.
func BenchmarkReplaceBatch(b *testing.B) {
	lat := sim.AWSLatencies()
	scale := *batchScale
	for i := 0; i < b.N; i++ {
		f := newFixture(b, fixtureOpts{desired: 100, max: 100, scale: scale, latencies: &lat, noVolume: true,
			tags: map[string]string{groupconfig.TagDetachingDelaySeconds: "0", groupconfig.TagPreactionDetachDelaySeconds: "0"}})
		r := f.env.Region()
		r.SetThrottleRate("ec2", 0.1)
		r.SetThrottleRate("autoscaling", 0.1)
		w := f.workflow()
		// The production poll schedule (1 s growing to 15 s), on the simulated clock.
		w.PollMin, w.PollMax = time.Duration(float64(time.Second)/scale), time.Duration(float64(15*time.Second)/scale)
		g := f.inventory(b)
		sem := make(chan struct{}, 10)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		start := r.Clock().Now()
		r.ResetCalls()
		for _, id := range f.members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				if _, err := w.Replace(context.Background(), g, replace.Request{InstanceID: id, Reason: replace.ReasonLifetime}); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 {
			b.Fatalf("%d of 100 replacements failed, first: %v", len(errs), errs[0])
		}
		simMinutes := r.Clock().Now().Sub(start).Minutes()
		b.ReportMetric(100/simMinutes, "replacements/sim-min")
		b.ReportMetric(float64(r.CallsTotal())/100, "calls/replacement")
	}
}
