package replace_test

import (
	"testing"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// BenchmarkCrossAZMove measures, at AWS-like latencies (sim.AWSLatencies: launch 40 s, attach
// 5 s, detach 10 s, CreateVolume 5 s, a snapshot 15 s + 5 s per GiB) on the simulated clock, a
// proactive replacement of a member with a 20 GiB data volume, side by side: in its own AZ (the
// volume moves by detach and attach) and with that AZ out of capacity (spotmax:cross_az_move:
// launched elsewhere, the volume copied through a snapshot). No agent runs: the detached old
// instance is terminated to free the volume. Reported in simulated seconds.
func BenchmarkCrossAZMove(b *testing.B) {
	for _, cross := range []bool{false, true} {
		name := "same-az"
		if cross {
			name = "cross-az"
		}
		b.Run(name, func(b *testing.B) {
			var total, move, snap, usd float64
			for i := 0; i < b.N; i++ {
				lat := sim.AWSLatencies()
				f := newFixture(b, fixtureOpts{scale: 100, latencies: &lat, tags: map[string]string{groupconfig.TagCrossAZMove: "true",
					groupconfig.TagPreactionDetachDelaySeconds: "0"}})
				r := f.env.Region()
				old := f.members[0]
				in, _ := r.Instance(old)
				if cross {
					for _, m := range []string{sim.MarketSpot, sim.MarketOnDemand} {
						r.SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: in.AZ, Market: m}, 0)
					}
				}
				res, err := f.replace(b, f.workflow(), replace.Request{InstanceID: old})
				if err != nil {
					b.Fatal(err)
				}
				if (len(res.CrossAZ) == 1) != cross {
					b.Fatalf("cross-AZ move = %+v, want one: %v", res.CrossAZ, cross)
				}
				total += res.Finished.Sub(res.Started).Seconds()
				for _, m := range res.CrossAZ {
					move += m.Seconds
					snap += m.SnapshotSeconds
					usd += m.SnapshotUSD
				}
			}
			n := float64(b.N)
			b.ReportMetric(total/n, "sim-s/replacement")
			if cross {
				b.ReportMetric(move/n, "sim-s/copy")
				b.ReportMetric(snap/n, "sim-s/snapshot")
				b.ReportMetric(usd/n*1e6, "µUSD-snapshot/op")
			}
		})
	}
}
