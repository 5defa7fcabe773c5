package replace_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

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
				f := memberShort(t, fixtureOpts{tags: map[string]string{"spotmax:alt1": "m5a.large"}})
				r := f.env.Region()
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
	f := memberShort(t, fixtureOpts{tags: map[string]string{groupconfig.TagOnlyODRep: "true"}})
	r := f.env.Region()
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

// TestFillAndReplacementInOneGroupAtOnce: a stand-in for a member the group failed to launch and
// a replacement of another member run at the same time in one process (as `spotmax run` does
// them), each raising and setting back the group's desired capacity around its attach. Each
// holds the group's size lock for it, so neither undoes the other's increment: the group ends
// at its size with the stand-in and the replacement, MaxSize restored, the old member gone.
func TestFillAndReplacementInOneGroupAtOnce(t *testing.T) {
	for round := range 16 {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			f := memberShort(t, fixtureOpts{seed: int64(40 + round), tags: map[string]string{"spotmax:alt1": "m5a.large"}})
			r := f.env.Region()
			old := f.members[0]
			w := f.workflow() // one process
			// Random delays on the group's size calls shuffle how the two runs' reads and writes
			// of the desired capacity interleave from round to round.
			w.ASG = &jitterASG{ASGAPI: f.asg, rnd: rand.New(rand.NewPCG(uint64(round), 7))}
			ctx := context.Background()
			var fillRes *replace.Result
			var fillErr, repErr error
			var rep *replace.Result
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); fillRes, fillErr = w.Fill(ctx, f.inventory(t)) }()
			go func() {
				defer wg.Done()
				rep, repErr = w.Replace(ctx, f.inventory(t), replace.Request{InstanceID: old, Reason: replace.ReasonManual})
			}()
			wg.Wait()
			if fillErr != nil || fillRes == nil || fillRes.New == "" {
				t.Fatalf("Fill: %+v, %v", fillRes, fillErr)
			}
			if repErr != nil || rep == nil || rep.New == "" {
				t.Fatalf("Replace of %s: %+v, %v", old, rep, repErr)
			}
			r.Advance(time.Minute)
			f.checkInvariants(t)
			g, _ := r.Group("web")
			got := map[string]bool{}
			for _, m := range g.Members {
				got[m.InstanceID] = true
			}
			if len(g.Members) != 2 || !got[fillRes.New] || !got[rep.New] || got[old] {
				t.Errorf("members %v, want the stand-in %s and the replacement %s (not %s)", got, fillRes.New, rep.New, old)
			}
		})
	}
}

// jitterASG delays the Auto Scaling calls that read or change a group's size: 0–15 ms, an attach
// 0–60 ms (it is the call a size read before it must not outlive).
type jitterASG struct {
	replace.ASGAPI
	mu  sync.Mutex
	rnd *rand.Rand
}

func (j *jitterASG) pause(upTo int) {
	j.mu.Lock()
	d := time.Duration(j.rnd.IntN(upTo)) * time.Millisecond
	j.mu.Unlock()
	time.Sleep(d)
}

func (j *jitterASG) DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, o ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error) {
	j.pause(15)
	return j.ASGAPI.DescribeAutoScalingGroups(ctx, in, o...)
}

func (j *jitterASG) AttachInstances(ctx context.Context, in *autoscaling.AttachInstancesInput, o ...func(*autoscaling.Options)) (*autoscaling.AttachInstancesOutput, error) {
	j.pause(60)
	return j.ASGAPI.AttachInstances(ctx, in, o...)
}

func (j *jitterASG) SetDesiredCapacity(ctx context.Context, in *autoscaling.SetDesiredCapacityInput, o ...func(*autoscaling.Options)) (*autoscaling.SetDesiredCapacityOutput, error) {
	j.pause(15)
	return j.ASGAPI.SetDesiredCapacity(ctx, in, o...)
}

// memberShort is a group "web" of one member without a data volume and MaxSize 2 whose desired
// capacity was just raised to 2 while spot m5.large has no capacity in any AZ: one member short,
// what a fill stands in for. opts gives the seed and the group's tags.
func memberShort(t *testing.T, opts fixtureOpts) *fixture {
	t.Helper()
	opts.desired, opts.max, opts.noVolume = 1, 2, true
	f := newFixture(t, opts)
	r := f.env.Region()
	for _, az := range r.AZs() {
		r.SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: az.Name, Market: sim.MarketSpot}, 0)
	}
	if err := r.SetGroupDesired("web", 2); err != nil {
		t.Fatal(err)
	}
	f.desired = 2
	return f
}
