package replace_test

import (
	"context"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// BenchmarkReplaceAgentWait measures one proactive replacement (lifetime) of a member with a data
// volume, with the group's default delays, the production timeouts (release 3 min) and poll
// schedule (1 s growing to 15 s), in AWS's world (sim.AWSBehaviors), at the `fast` latencies in
// real time and at the `aws` latencies scaled 10×, three ways: no agent on the old instance (the
// workflow terminates it at once once it is out of the group), an agent that announces itself and
// releases the volume 1 s after the retiring mark, and an agent that announces itself and never
// releases (the wait every agentless replacement had before agents announced themselves). It
// reports the replacement's duration in simulated seconds (= wall seconds at the fast profile).
//
//	go test ./pkg/replace -run '^$' -bench BenchmarkReplaceAgentWait -benchtime 1x -timeout 30m
func BenchmarkReplaceAgentWait(b *testing.B) {
	for _, p := range []struct {
		name  string
		lat   sim.Latencies
		scale float64
	}{{"fast", sim.FastLatencies(), 1}, {"aws-x10", sim.AWSLatencies(), 10}} {
		for _, mode := range []string{"no-agent", "agent", "silent-agent"} {
			b.Run(p.name+"/"+mode, func(b *testing.B) { benchAgentWait(b, p.lat, p.scale, mode) })
		}
	}
}

func benchAgentWait(b *testing.B, lat sim.Latencies, scale float64, mode string) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		f := newFixture(b, fixtureOpts{desired: 2, max: 2, scale: scale, latencies: &lat})
		w := f.workflow()
		to := replace.DefaultTimeouts()
		w.Timeouts = &to
		w.PollMin, w.PollMax = time.Duration(float64(time.Second)/scale), time.Duration(float64(15*time.Second)/scale)
		w.LeaseSettle, w.Lease = 0, 0 // production defaults
		old := f.members[0]
		clock := f.env.Region().Clock()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		if mode != "no-agent" {
			if err := f.setTag(old, groupconfig.StateAgent, "running bench "+clock.Now().UTC().Format(time.RFC3339)); err != nil {
				b.Fatal(err)
			}
		}
		go func() {
			defer close(done)
			if mode != "agent" {
				return
			}
			for ctx.Err() == nil {
				in, _ := f.env.Region().Instance(old)
				if in.Tags[groupconfig.StateRetiring] != "" {
					_ = clock.Sleep(ctx, time.Second) // the unmount
					for _, bd := range in.BlockDevices {
						if bd.DeviceName == "/dev/sdf" {
							_ = f.setTag(old, groupconfig.StateVolumeReleased, bd.VolumeID)
						}
					}
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		b.StartTimer()
		res, err := f.replace(b, w, replace.Request{InstanceID: old, Reason: replace.ReasonLifetime})
		b.StopTimer()
		cancel()
		<-done
		if err != nil {
			b.Fatal(err)
		}
		total += res.Finished.Sub(res.Started)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "sim-s/replacement")
}
