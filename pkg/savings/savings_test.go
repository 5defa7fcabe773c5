package savings_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/pricing"

	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/savings"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6*math.Max(1, math.Abs(b)) }

// Hours come from the live instances and the replaced ones' records, each instance once,
// clipped to the period; a replaced instance still listed (Detaching) ends with its record.
func TestReconstruct(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(10 * time.Hour)
	launchedBefore := start.Add(-5 * time.Hour)
	live := []savings.Live{
		{Group: "web", Instance: "i-new", Market: "spot", Type: "m5.large", AZ: "us-east-1a", Launched: start.Add(4 * time.Hour)},
		{Group: "web", Instance: "i-old", Market: "spot", Type: "m5.large", AZ: "us-east-1b", Launched: launchedBefore}, // Detaching
		{Group: "web", Instance: "i-late", Market: "on-demand", Type: "m5.large", AZ: "us-east-1a", Launched: end.Add(time.Hour)},
	}
	actions := []metrics.Action{
		{Kind: metrics.ActionReplace, Result: metrics.ResultSucceeded, Group: "web", Instance: "i-old", Replacement: "i-new",
			OldMarket: "spot", OldType: "m5.large", OldAZ: "us-east-1b", OldLaunched: &launchedBefore, Ended: start.Add(4 * time.Hour)},
		{Kind: metrics.ActionReplace, Result: metrics.ResultFailed, Group: "web", Instance: "i-kept", OldType: "m5.large", Ended: start.Add(time.Hour)},
		{Kind: metrics.ActionDrain, Result: metrics.ResultSucceeded, Group: "web", Instance: "i-new", Ended: start.Add(time.Hour)},
	}
	got := savings.Reconstruct(live, actions, start, end)
	if len(got) != 2 {
		t.Fatalf("usages = %+v, want i-old and i-new", got)
	}
	if u := got[0]; u.Instance != "i-old" || !u.From.Equal(start) || !u.To.Equal(start.Add(4*time.Hour)) || u.AZ != "us-east-1b" {
		t.Errorf("old instance = %+v, want the period's start to its replacement's end", u)
	}
	if u := got[1]; u.Instance != "i-new" || !u.From.Equal(start.Add(4*time.Hour)) || !u.To.Equal(end) {
		t.Errorf("new instance = %+v, want its launch to the period's end", u)
	}
}

// Compute prices spot hours with the spot price history (a change mid-way counts from when it
// happened) and on-demand hours with the Price List, both read from the simulated region.
func TestComputeWithTheRegionsPrices(t *testing.T) {
	env := simtest.Start(t, sim.Options{})
	r := env.Region()
	ctx := context.Background()
	p := &savings.AWSPrices{EC2: ec2.NewFromConfig(env.Config), Pricing: pricing.NewFromConfig(env.Config), Region: r.Name()}
	az := r.AZs()[0].Name
	spot, _ := sim.SpotPrice("m5.large", az)
	od, _ := sim.OnDemandPrice("m5.large")

	// The spot price changes now; the history has the region's start price before it.
	changed := r.Clock().Now()
	r.SetSpotPrice("m5.large", az, 0.05)
	from := changed.Add(-2 * time.Hour)
	to := changed.Add(time.Hour)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	usages := []savings.Usage{
		{Group: "web", Instance: "i-1", Market: "spot", Type: "m5.large", AZ: az, From: from, To: to},
		{Group: "web", Instance: "i-2", Market: "on-demand", Type: "m5.large", AZ: az, From: from, To: from.Add(30 * time.Minute)},
		{Group: "db", Instance: "i-3", Market: "on-demand", Type: "c5.large", AZ: az, From: from, To: from.Add(time.Hour)},
	}
	rep, err := savings.Compute(ctx, usages, p, start, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != 2 || rep.Groups[0].Name != "db" || rep.Groups[1].Name != "web" {
		t.Fatalf("groups = %+v", rep.Groups)
	}
	web := rep.Groups[1]
	// The simulated history starts at the region's start (truncated to the hour), so before the
	// change the pool's default price held.
	wantSpot := spot*2 + 0.05*1
	if len(web.Lines) != 2 || !near(web.Lines[1].Cost, wantSpot) || !near(web.Lines[1].Hours, 3) || !near(web.Lines[1].OnDemandCost, od*3) {
		t.Errorf("web spot line = %+v, want cost %.6f for 3 h", web.Lines, wantSpot)
	}
	if l := web.Lines[0]; l.Market != "on-demand" || !near(l.Cost, od*0.5) || !near(l.Cost, l.OnDemandCost) {
		t.Errorf("web on-demand line = %+v", l)
	}
	c5, _ := sim.OnDemandPrice("c5.large")
	if g := rep.Groups[0]; !near(g.Total.Cost, c5) || g.Total.Saved != 0 {
		t.Errorf("db = %+v", g)
	}
	wantTotal := wantSpot + od*0.5 + c5
	if !near(rep.Total.Cost, wantTotal) || !near(rep.Total.OnDemandCost, od*3.5+c5) || rep.Total.Saved <= 0 ||
		!near(rep.Total.SavedPercent, 100*(od*3.5+c5-wantTotal)/(od*3.5+c5)) || !near(rep.Total.SpotHours, 3) {
		t.Errorf("total = %+v, want cost %.6f", rep.Total, wantTotal)
	}
	// An unknown type has no price: an error naming it, not a zero.
	if _, err := savings.Compute(ctx, []savings.Usage{{Group: "x", Instance: "i-9", Market: "spot", Type: "z9.huge", AZ: az, From: from, To: to}},
		p, start, to); err == nil {
		t.Error("an instance type without a price was priced")
	}
}
