package controller_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// BenchmarkReconcile measures one reconcile of 1,000 spotmax groups × 10 instances: API calls
// (goal ≤ 50), the controller's own heap growth, and time (which includes the simulator serving
// 10,000 instances on the same 2 cores).
func BenchmarkReconcile(b *testing.B) {
	lat := sim.FastLatencies()
	lat.Pending, lat.ASGCheck = time.Millisecond, time.Hour
	e := simtest.Start(b, sim.Options{Latencies: &lat})
	env := newEnvFor(b, e)
	e.Populate(b, 1000, 10, func(i int, name string) []sim.ASGTag {
		return []sim.ASGTag{{Key: groupconfig.TagGroup, Value: name, PropagateAtLaunch: true},
			{Key: groupconfig.TagPersistenceDev, Value: "/dev/sdf"}, {Key: groupconfig.TagGuaranteeLivingMins, Value: "50"}}
	})
	c := env.controller(&recorder{})
	// The first reconcile turns DeleteOnTermination off for 10,000 data volumes (one call each, a
	// one-time cost); measure the steady state after it.
	if _, err := c.Reconcile(context.Background()); err != nil {
		b.Fatal(err)
	}
	e.Region().ResetCalls()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		evs, err := c.Reconcile(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if len(evs) != 0 {
			b.Fatalf("%d events from a fresh region", len(evs))
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(e.Region().CallsTotal())/float64(b.N), "calls/op")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MiB-alloc/op")
}
