package replace_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// BenchmarkInterruptionHandover measures the handover of an interrupted member's data volume,
// side by side in one run: the cold launch (spot on the group's type) against the warm pool's
// route (is_warm_pool_first, a warmed instance in the volume's AZ), at the `aws` latencies (launch
// 40 s, start of a stopped instance 12 s, attach 5 s, detach 10 s) scaled 10×, in AWS's world
// (sim.AWSBehaviors), with the production timeouts and poll schedule (1 s growing to 15 s) and
// the group's default delays (detaching_delay_seconds 30 s). The old instance's agent announces
// itself and releases the volume 1 s after the notice, as the real agent does when it unmounts.
// It reports, in simulated seconds, notice → data volume attached to the replacement and recorded
// there for its agent (spotmax:state:volume): the agent's mount itself, well under a second once
// the device is there, is not in the loop. The workflow is started at the notice, as `spotmax
// run` is by the interruption event.
//
//	go test ./pkg/replace -run '^$' -bench BenchmarkInterruptionHandover -benchtime 3x -timeout 30m
func BenchmarkInterruptionHandover(b *testing.B) {
	for _, route := range []string{"cold", "warm"} {
		b.Run(route, func(b *testing.B) { benchHandover(b, route == "warm") })
	}
}

func benchHandover(b *testing.B, warm bool) {
	const scale = 10
	lat := sim.AWSLatencies()
	var handover, total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		opts := fixtureOpts{scale: scale, latencies: &lat, desired: 3, max: 3}
		var f *fixture
		var old string
		if warm {
			f, old = newWarmFixture(b, 2, opts)
		} else {
			f = newFixture(b, opts)
			old = f.members[0]
		}
		r := f.env.Region()
		clock := r.Clock()
		vol := f.dataVolumesOf(b, old)[0]
		w := f.workflow()
		to := replace.DefaultTimeouts()
		w.Timeouts = &to
		w.PollMin, w.PollMax = time.Duration(float64(time.Second)/scale), time.Duration(float64(15*time.Second)/scale)
		w.LeaseSettle, w.Lease = 0, 0 // production defaults
		if err := f.setTag(old, groupconfig.StateAgent, "running bench "+clock.Now().UTC().Format(time.RFC3339)); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var handedAt time.Time
		req := f.interrupt(b, old)
		notice := clock.Now()
		wg.Add(2)
		go func() { // the old instance's agent: unmount on the notice, report the release
			defer wg.Done()
			if clock.Sleep(ctx, time.Second) == nil {
				_ = f.setTag(old, groupconfig.StateVolumeReleased, vol)
			}
		}()
		go func() { // notice → attached and recorded on the replacement
			defer wg.Done()
			for ctx.Err() == nil {
				if v, ok := r.Volume(vol); ok && v.Attachment != nil && v.Attachment.InstanceID != old && v.Attachment.State == "attached" {
					if in, _ := r.Instance(v.Attachment.InstanceID); in.Tags[groupconfig.StateVolume] == vol {
						handedAt = clock.Now()
						return
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
		b.StartTimer()
		res, err := f.replace(b, w, req)
		b.StopTimer()
		cancel()
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
		if res.Warm != warm {
			b.Fatalf("replacement warm = %v, want %v (warnings %q)", res.Warm, warm, res.Warnings)
		}
		if handedAt.IsZero() {
			b.Fatalf("data volume %s never reached the replacement %s", vol, res.New)
		}
		handover += handedAt.Sub(notice)
		total += res.Finished.Sub(notice)
	}
	b.ReportMetric(handover.Seconds()/float64(b.N), "sim-s-notice-to-attached")
	b.ReportMetric(total.Seconds()/float64(b.N), "sim-s-notice-to-done")
}
