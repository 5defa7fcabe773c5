package controller_test

import (
	"context"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/controller"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// settledFleet serves groups × n running spot instances with a data volume at /dev/sdf and
// returns a controller over clients that never retry (so that the simulator's call count is
// exactly the calling pattern), after the reconciles that change something once: the first
// turns DeleteOnTermination off for every data volume (one call each) and the next, an
// inventory.SettleWindow later, describes those instances again. What follows is a steady state.
func settledFleet(tb testing.TB, groups, n int) (*simtest.Env, *controller.Controller) {
	tb.Helper()
	lat := sim.FastLatencies()
	lat.Pending, lat.ASGCheck = time.Millisecond, time.Hour
	e := simtest.Start(tb, sim.Options{Latencies: &lat})
	e.Populate(tb, groups, n, func(i int, name string) []sim.ASGTag {
		return []sim.ASGTag{{Key: groupconfig.TagGroup, Value: name, PropagateAtLaunch: true},
			{Key: groupconfig.TagPersistenceDev, Value: "/dev/sdf"}, {Key: groupconfig.TagGuaranteeLivingMins, Value: "50"}}
	})
	env := newEnvFor(tb, e)
	cfg := e.Config
	cfg.RetryMaxAttempts = 1
	env.ec2, env.asg = ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg)
	c := env.controller(&recorder{})
	ctx := context.Background()
	if _, err := c.Reconcile(ctx); err != nil {
		tb.Fatal(err)
	}
	// A fleet launched seconds ago is still settling: a real one is mostly older.
	e.Region().Advance(inventory.SettleWindow)
	if _, err := c.Reconcile(ctx); err != nil {
		tb.Fatal(err)
	}
	e.Region().ResetCalls()
	return e, c
}

// TestReconcileSteadyStateCalls pins the calls of a reconcile of an unchanged fleet of groups
// with data volumes: the Auto Scaling pages, the Tracker's two filtered DescribeInstances and the
// journals' one, and the pool's two DescribeVolumes (volumes attached to nothing; volumes claimed
// by an adoption or marked for discard). Nothing per group, per instance or per volume, and no
// write.
func TestReconcileSteadyStateCalls(t *testing.T) {
	e, c := settledFleet(t, 150, 4) // two Auto Scaling pages of 100 groups
	for i := 0; i < 3; i++ {
		evs, err := c.Reconcile(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 0 {
			t.Fatalf("reconcile %d: %d events from an unchanged fleet: %+v", i, len(evs), evs)
		}
		calls := map[string]int{}
		for _, cc := range e.Region().Calls() {
			calls[cc.Action] = cc.Count
		}
		want := map[string]int{"autoscaling:DescribeAutoScalingGroups": 2, "ec2:DescribeInstances": 3, "ec2:DescribeVolumes": 2}
		if st := c.Inventory.Stats(); st.Full != 2 {
			t.Errorf("reconcile %d: tracker %+v, want only the first two listings full", i, st)
		}
		if !reflect.DeepEqual(calls, want) {
			t.Fatalf("reconcile %d of an unchanged fleet: calls = %v, want %v (tracker %+v)", i, calls, want, c.Inventory.Stats())
		}
		e.Region().ResetCalls()
	}
}

// BenchmarkReconcile measures one steady-state reconcile of 1,000 spotmax groups × 10 instances:
// API calls (goal ≤ 50), the controller's own allocations, and time (which includes the simulator
// serving 10,000 instances on the same 2 cores).
func BenchmarkReconcile(b *testing.B) {
	e, c := settledFleet(b, 1000, 10)
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
	b.Logf("calls of %d reconciles: %v", b.N, e.Region().Calls())
	b.ReportMetric(float64(e.Region().CallsTotal())/float64(b.N), "calls/op")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MiB-alloc/op")
}
