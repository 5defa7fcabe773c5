package replace_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// TestFillCrashAtEveryCall crashes a stand-in at each of its API calls, before and after AWS
// acted, and runs the fill again a reconcile later: the launcher's spotmax:state:fill tag makes
// the second fill adopt a stand-in launched before the crash, so the group ends at its size with
// one stand-in, nothing running outside it and no state tag left.
func TestFillCrashAtEveryCall(t *testing.T) {
	for _, after := range []bool{false, true} {
		for at := 1; ; at++ {
			done := false
			t.Run(fmt.Sprintf("call%d/after=%v", at, after), func(t *testing.T) {
				f := newFixture(t, fixtureOpts{desired: 1, max: 2, noVolume: true, tags: map[string]string{"spotmax:alt1": "m5a.large"}})
				r := f.env.Region()
				for _, az := range r.AZs() {
					r.SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: az.Name, Market: sim.MarketSpot}, 0)
				}
				if err := r.SetGroupDesired("web", 2); err != nil {
					t.Fatal(err)
				}
				f.desired = 2
				c := &crasher{at: at, after: after}
				crashing := f.workflow()
				crashing.EC2 = crashEC2{EC2API: f.ec2, c: c}
				crashing.ASG = crashASG{ASGAPI: f.asg, c: c}
				res, err := crashing.Fill(context.Background(), f.inventory(t))
				if !c.crashed {
					if err != nil || res == nil || res.New == "" {
						t.Fatalf("Fill without a crash: %+v, %v", res, err)
					}
					done = true
				} else {
					if !errors.Is(err, errCrash) {
						t.Fatalf("Fill crashed at call %d: err = %v, want the crash", at, err)
					}
					r.Advance(time.Minute) // the next reconcile
					if _, err := f.workflow().Fill(context.Background(), f.inventory(t)); err != nil {
						t.Fatalf("Fill after the crash: %v", err)
					}
				}
				r.Advance(time.Minute)
				f.checkInvariants(t)
				g, _ := r.Group("web")
				if len(g.Members) != 2 {
					t.Errorf("group has %d members, want 2 (one stand-in)", len(g.Members))
				}
				standIns := 0
				for _, in := range r.Instances() {
					if in.State == sim.StateRunning || in.State == sim.StatePending {
						if in.Type == "m5a.large" {
							standIns++
						}
						if in.Tags[groupconfig.StateFill] != "" {
							t.Errorf("%s still carries %s", in.ID, groupconfig.StateFill)
						}
					}
				}
				if standIns != 1 {
					t.Errorf("%d stand-ins running, want 1", standIns)
				}
			})
			if done || at > 80 {
				if !done {
					t.Fatal("the fill never completed without a crash")
				}
				break
			}
		}
	}
}

// TestFillOnlyOnDemand: with is_only_od_rep the stand-in is on-demand of the group's own type
// (only spot of that type is what the group failed to launch).
func TestFillOnlyOnDemand(t *testing.T) {
	f := newFixture(t, fixtureOpts{desired: 1, max: 2, noVolume: true, tags: map[string]string{groupconfig.TagOnlyODRep: "true"}})
	r := f.env.Region()
	for _, az := range r.AZs() {
		r.SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: az.Name, Market: sim.MarketSpot}, 0)
	}
	if err := r.SetGroupDesired("web", 2); err != nil {
		t.Fatal(err)
	}
	f.desired = 2
	res, err := f.workflow().Fill(context.Background(), f.inventory(t))
	if err != nil || res == nil {
		t.Fatalf("Fill: %+v, %v", res, err)
	}
	if res.Market != replace.MarketOnDemand || res.Type != "m5.large" {
		t.Errorf("stand-in %s %s, want on-demand m5.large", res.Market, res.Type)
	}
	r.Advance(time.Minute)
	f.checkInvariants(t)
}
