package replace_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/replace"
)

var chaosSchedules = flag.Int("chaos.schedules", 250, "random crash schedules in TestReplaceChaos (the soak target runs thousands)")
var chaosSeed = flag.Int64("chaos.seed", 1, "first seed of TestReplaceChaos; schedule i uses seed+i")

var errCrash = errors.New("simulated crash")

// crasher stops every API call from the at-th one on, as if the process died: before the call
// reaches AWS, or just after AWS acted but before the workflow learnt the result.
type crasher struct {
	mu      sync.Mutex
	calls   int
	at      int
	after   bool
	crashed bool
}

func do[T any](c *crasher, f func() (T, error)) (T, error) {
	var zero T
	c.mu.Lock()
	if c.crashed {
		c.mu.Unlock()
		return zero, errCrash
	}
	c.calls++
	hit := c.at > 0 && c.calls == c.at
	if hit && !c.after {
		c.crashed = true
		c.mu.Unlock()
		return zero, errCrash
	}
	c.mu.Unlock()
	v, err := f()
	if hit {
		c.mu.Lock()
		c.crashed = true
		c.mu.Unlock()
		return zero, errCrash
	}
	return v, err
}

type crashEC2 struct {
	replace.EC2API
	c *crasher
}

func (x crashEC2) RunInstances(ctx context.Context, in *ec2.RunInstancesInput, o ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	return do(x.c, func() (*ec2.RunInstancesOutput, error) { return x.EC2API.RunInstances(ctx, in, o...) })
}
func (x crashEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, o ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	return do(x.c, func() (*ec2.DescribeInstancesOutput, error) { return x.EC2API.DescribeInstances(ctx, in, o...) })
}
func (x crashEC2) TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, o ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	return do(x.c, func() (*ec2.TerminateInstancesOutput, error) { return x.EC2API.TerminateInstances(ctx, in, o...) })
}
func (x crashEC2) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, o ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	return do(x.c, func() (*ec2.CreateTagsOutput, error) { return x.EC2API.CreateTags(ctx, in, o...) })
}
func (x crashEC2) DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, o ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error) {
	return do(x.c, func() (*ec2.DeleteTagsOutput, error) { return x.EC2API.DeleteTags(ctx, in, o...) })
}
func (x crashEC2) DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, o ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	return do(x.c, func() (*ec2.DescribeVolumesOutput, error) { return x.EC2API.DescribeVolumes(ctx, in, o...) })
}
func (x crashEC2) AttachVolume(ctx context.Context, in *ec2.AttachVolumeInput, o ...func(*ec2.Options)) (*ec2.AttachVolumeOutput, error) {
	return do(x.c, func() (*ec2.AttachVolumeOutput, error) { return x.EC2API.AttachVolume(ctx, in, o...) })
}
func (x crashEC2) DetachVolume(ctx context.Context, in *ec2.DetachVolumeInput, o ...func(*ec2.Options)) (*ec2.DetachVolumeOutput, error) {
	return do(x.c, func() (*ec2.DetachVolumeOutput, error) { return x.EC2API.DetachVolume(ctx, in, o...) })
}
func (x crashEC2) ModifyInstanceAttribute(ctx context.Context, in *ec2.ModifyInstanceAttributeInput, o ...func(*ec2.Options)) (*ec2.ModifyInstanceAttributeOutput, error) {
	return do(x.c, func() (*ec2.ModifyInstanceAttributeOutput, error) {
		return x.EC2API.ModifyInstanceAttribute(ctx, in, o...)
	})
}
func (x crashEC2) DescribeLaunchTemplateVersions(ctx context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, o ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error) {
	return do(x.c, func() (*ec2.DescribeLaunchTemplateVersionsOutput, error) {
		return x.EC2API.DescribeLaunchTemplateVersions(ctx, in, o...)
	})
}
func (x crashEC2) DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, o ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	return do(x.c, func() (*ec2.DescribeSubnetsOutput, error) { return x.EC2API.DescribeSubnets(ctx, in, o...) })
}

type crashASG struct {
	replace.ASGAPI
	c *crasher
}

func (x crashASG) DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, o ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error) {
	return do(x.c, func() (*autoscaling.DescribeAutoScalingGroupsOutput, error) {
		return x.ASGAPI.DescribeAutoScalingGroups(ctx, in, o...)
	})
}
func (x crashASG) AttachInstances(ctx context.Context, in *autoscaling.AttachInstancesInput, o ...func(*autoscaling.Options)) (*autoscaling.AttachInstancesOutput, error) {
	return do(x.c, func() (*autoscaling.AttachInstancesOutput, error) { return x.ASGAPI.AttachInstances(ctx, in, o...) })
}
func (x crashASG) DetachInstances(ctx context.Context, in *autoscaling.DetachInstancesInput, o ...func(*autoscaling.Options)) (*autoscaling.DetachInstancesOutput, error) {
	return do(x.c, func() (*autoscaling.DetachInstancesOutput, error) { return x.ASGAPI.DetachInstances(ctx, in, o...) })
}
func (x crashASG) UpdateAutoScalingGroup(ctx context.Context, in *autoscaling.UpdateAutoScalingGroupInput, o ...func(*autoscaling.Options)) (*autoscaling.UpdateAutoScalingGroupOutput, error) {
	return do(x.c, func() (*autoscaling.UpdateAutoScalingGroupOutput, error) {
		return x.ASGAPI.UpdateAutoScalingGroup(ctx, in, o...)
	})
}
func (x crashASG) CreateOrUpdateTags(ctx context.Context, in *autoscaling.CreateOrUpdateTagsInput, o ...func(*autoscaling.Options)) (*autoscaling.CreateOrUpdateTagsOutput, error) {
	return do(x.c, func() (*autoscaling.CreateOrUpdateTagsOutput, error) {
		return x.ASGAPI.CreateOrUpdateTags(ctx, in, o...)
	})
}
func (x crashASG) DeleteTags(ctx context.Context, in *autoscaling.DeleteTagsInput, o ...func(*autoscaling.Options)) (*autoscaling.DeleteTagsOutput, error) {
	return do(x.c, func() (*autoscaling.DeleteTagsOutput, error) { return x.ASGAPI.DeleteTags(ctx, in, o...) })
}
func (x crashASG) TerminateInstanceInAutoScalingGroup(ctx context.Context, in *autoscaling.TerminateInstanceInAutoScalingGroupInput, o ...func(*autoscaling.Options)) (*autoscaling.TerminateInstanceInAutoScalingGroupOutput, error) {
	return do(x.c, func() (*autoscaling.TerminateInstanceInAutoScalingGroupOutput, error) {
		return x.ASGAPI.TerminateInstanceInAutoScalingGroup(ctx, in, o...)
	})
}

// schedule is one fault-injection run: crash points, throttling, latency and the kind of
// replacement.
type schedule struct {
	seed     int64
	phase    replace.Phase // crash after this phase is journaled, or
	crashAt  []int         // crash at these API calls of successive runs (0: no crash)
	after    []bool
	throttle float64
	latency  time.Duration
	reason   replace.Reason
}

func (s schedule) String() string {
	return fmt.Sprintf("seed=%d phase=%q crashAt=%v after=%v throttle=%.2f latency=%s reason=%s",
		s.seed, s.phase, s.crashAt, s.after, s.throttle, s.latency, s.reason)
}

// runSchedule replaces one instance under the schedule's faults, resumes after every crash with
// a fresh workflow (a new process), and checks the invariants at the end.
func runSchedule(t testing.TB, s schedule) {
	t.Helper()
	f := newFixture(t, fixtureOpts{seed: s.seed})
	r := f.env.Region()
	if s.throttle > 0 {
		r.SetThrottleRate("ec2", s.throttle)
		r.SetThrottleRate("autoscaling", s.throttle)
	}
	if s.latency > 0 {
		r.SetCallLatency("ec2", s.latency)
		r.SetCallLatency("autoscaling", s.latency)
	}
	// What spotmax does as soon as it sees a group's members, before any interruption can come.
	if _, err := f.workflow().EnsureKeepVolumes(context.Background(), f.inventory(t)); err != nil {
		t.Fatal(err)
	}
	old := f.members[0]
	req := replace.Request{InstanceID: old, Reason: s.reason}
	if s.reason == replace.ReasonInterruption {
		if err := r.Interrupt(old, ""); err != nil {
			t.Fatal(err)
		}
		in, _ := r.Instance(old)
		req.Deadline = in.Interruption.Time
	}
	var watch *capacityWatch
	if s.reason.Proactive() {
		watch = watchCapacity(r, f.group)
	}
	var lastErr error
	done := false
	for run := 0; run < len(s.crashAt)+2 && !done; run++ {
		w := f.workflow()
		c := &crasher{}
		if run < len(s.crashAt) {
			c.at, c.after = s.crashAt[run], s.after[run]
		}
		w.EC2 = crashEC2{EC2API: f.ec2, c: c}
		w.ASG = crashASG{ASGAPI: f.asg, c: c}
		if run == 0 && s.phase != "" {
			w.AfterPhase = func(_ string, p replace.Phase) error {
				if p == s.phase {
					return errCrash
				}
				return nil
			}
		}
		if run > 0 && !f.needsResume(t, old) {
			done = true
			break
		}
		res, err := f.replace(t, w, req)
		lastErr = err
		switch {
		case err == nil:
			done = true
			if res.New == "" {
				t.Errorf("%v: finished without a replacement", s)
			}
		case errors.Is(err, errCrash):
			// The process died; the next run resumes from the journal.
		case errors.Is(err, replace.ErrAborted):
			// Rolled back after a crash mid-step made a step fail cleanly: the old instance keeps
			// serving, which the invariants check. A new replacement may start.
		default:
			t.Fatalf("%v: run %d failed: %v", s, run, err)
		}
	}
	if watch != nil {
		if got := watch.Stop(); got < int(f.desired) {
			t.Errorf("%v: InService members dropped to %d (desired %d) during a proactive replacement", s, got, f.desired)
		}
	}
	if !done {
		t.Fatalf("%v: not finished after every resume: %v", s, lastErr)
	}
	r.ClearFaults()
	if s.reason == replace.ReasonInterruption {
		// Let the interrupted instance's termination and the group settle.
		r.Advance(5 * time.Minute)
		f.env.WaitInService(t, f.group, int(f.desired))
	}
	f.checkInvariants(t)
}

// TestReplaceCrashAfterEveryPhase stops the workflow right after each journaled phase in turn,
// then resumes it in a new workflow.
func TestReplaceCrashAfterEveryPhase(t *testing.T) {
	for _, reason := range []replace.Reason{replace.ReasonManual, replace.ReasonInterruption} {
		for _, p := range []replace.Phase{replace.PhaseStarted, replace.PhaseLaunched, replace.PhaseJoined,
			replace.PhaseRetired, replace.PhaseDetached, replace.PhaseVolumeMoved, replace.PhaseDone} {
			s := schedule{seed: 7, phase: p, reason: reason}
			t.Run(string(reason)+"/"+string(p), func(t *testing.T) { runSchedule(t, s) })
		}
	}
}

// TestReplaceChaos runs seeded random schedules: crashes at random API calls (before or after
// AWS acted), under random throttling and latency, resumed until done. Reproduce one with
// -chaos.seed=N -chaos.schedules=1.
func TestReplaceChaos(t *testing.T) {
	n := *chaosSchedules
	if testing.Short() {
		n = 20
	}
	for i := 0; i < n; i++ {
		s := randomSchedule(*chaosSeed + int64(i))
		t.Run(fmt.Sprint(s.seed), func(t *testing.T) { runSchedule(t, s) })
	}
}

func randomSchedule(seed int64) schedule {
	rng := rand.New(rand.NewSource(seed))
	s := schedule{seed: seed}
	crashes := 1 + rng.Intn(2)
	for i := 0; i < crashes; i++ {
		s.crashAt = append(s.crashAt, 1+rng.Intn(60))
		s.after = append(s.after, rng.Intn(2) == 0)
	}
	s.throttle = []float64{0, 0, 0.05, 0.2}[rng.Intn(4)]
	s.latency = time.Duration(rng.Intn(3)) * 500 * time.Microsecond
	s.reason = []replace.Reason{replace.ReasonManual, replace.ReasonLifetime, replace.ReasonInterruption}[rng.Intn(3)]
	return s
}

// needsResume tells whether a new process would pick the replacement up again: it is journaled,
// or it never started and the instance still serves in the group.
func (f *fixture) needsResume(t testing.TB, old string) bool {
	t.Helper()
	// InFlight filters on the journal's tag, which EC2 matches only once its tag visibility
	// window has passed: like the controller's next reconcile, look after it.
	f.env.Region().Advance(time.Duration(f.env.Region().Behaviors().EC2.TagVisibility))
	js, err := f.workflow().InFlight(context.Background())
	if err != nil {
		t.Fatalf("listing journals: %v", err)
	}
	for _, j := range js {
		if j.Old == old {
			return true
		}
	}
	g, _ := f.env.Region().Group(f.group)
	_, member := g.Member(old)
	return member
}
