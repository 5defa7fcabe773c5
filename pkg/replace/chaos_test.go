package replace_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
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
// replacement, in a group that may have a target group (draining) and lifecycle hooks, with spot
// capacity gone (answered with HTTP 500), a rival actor and a forged journal.
type schedule struct {
	seed     int64
	phase    replace.Phase // crash after this phase is journaled, or
	crashAt  []int         // crash at these API calls of successive runs (0: no crash)
	after    []bool
	throttle float64
	latency  time.Duration
	reason   replace.Reason
	// lb attaches a target group with this deregistration delay (lbDelay); hooks adds launch
	// and terminate lifecycle hooks.
	lb      bool
	lbDelay time.Duration
	hooks   bool
	// outage empties the spot pool of the group's type in the data volume's AZ: EC2 answers
	// InsufficientInstanceCapacity with HTTP 500 and the plan falls back to on-demand.
	outage bool
	// rival is a second actor with another owner: "race" starts the same replacement at the same
	// time as the first run; "busy" tries the instance while a crashed run's lease still holds;
	// "takeover" does that, then takes the journal over once the lease has run out and drives it
	// from then on.
	rival      string
	rivalDelay time.Duration
	// forge is a forged or partial journal (a key of forgeries) written with the raw EC2 client,
	// on forgeOn: "old" (the instance being replaced) or "member" (another member of the group),
	// naming an instance of another group.
	forge   string
	forgeOn string
	// restart is how long a crashed process takes to come back: past an interruption's
	// 2-minute notice, EC2 may have taken the instance before a journal was written.
	restart time.Duration
	// warm makes the group a warm-pool group with is_warm_pool_first (three members, a warm
	// pool of two in the AZ of the instance replaced): an interruption takes the warm route.
	warm bool
	// volumes is the group's number of data volumes (data and log at /dev/sdf and /dev/sdg
	// when 2); 0 means 1.
	volumes int
	// attachCrash crashes run 0 at its attachCrash-th AttachVolume call (before AWS acts, or
	// after with attachAfter): with two volumes, between the two volumes' moves.
	attachCrash int
	attachAfter bool
}

func (s schedule) devices() []string {
	if s.volumes == 2 {
		return []string{"/dev/sdf", "/dev/sdg"}
	}
	return []string{"/dev/sdf"}
}

func (s schedule) String() string {
	return fmt.Sprintf("seed=%d phase=%q crashAt=%v after=%v throttle=%.2f latency=%s reason=%s lb=%v/%s hooks=%v outage=%v rival=%q/%s forge=%q on %q restart=%s warm=%v volumes=%d attachCrash=%d/%v",
		s.seed, s.phase, s.crashAt, s.after, s.throttle, s.latency, s.reason, s.lb, s.lbDelay, s.hooks, s.outage, s.rival, s.rivalDelay, s.forge, s.forgeOn, s.restart,
		s.warm, max(s.volumes, 1), s.attachCrash, s.attachAfter)
}

// raceSettle is the LeaseSettle of actors racing for one instance: 30 ms of real time at the
// fixture's 1000×, what 500 ms are to AWS's call latencies (the claim read back must come after
// a rival's write that was already on its way). Race schedules run without throttling: a plan
// slowed past LeaseSettle opens the window that TestIssue11Case2RivalWriteAfterReadBack shows.
const raceSettle = 30 * time.Second

// runSchedule replaces one instance under the schedule's faults, resumes after every crash with
// a fresh workflow (a new process), and checks the invariants at the end.
func runSchedule(t testing.TB, s schedule) {
	t.Helper()
	var f *fixture
	old := ""
	if s.warm {
		f, old = newWarmFixture(t, 2, fixtureOpts{seed: s.seed, devices: s.devices()})
	} else {
		f = newFixture(t, fixtureOpts{seed: s.seed, devices: s.devices()})
		old = f.members[0]
	}
	r := f.env.Region()
	ctx := context.Background()
	log := newActorLog()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("schedule %v; changes made:\n%s", s, log.dump())
		}
	})
	if s.lb || s.hooks {
		f.addHooksAndDraining(t, s.lbDelay, s.hooks, s.lb)
	}
	var other *otherGroup
	if s.forge != "" {
		other = f.addOtherGroup(t)
	}
	initial := map[string]bool{}
	for _, in := range r.Instances() {
		initial[in.ID] = true
	}
	pooled := warmIDs(r, f.group)
	for _, id := range pooled {
		delete(initial, id) // the warm pool's: the group takes them, stopped until then
	}
	if s.outage {
		// The data volume's AZ has no spot capacity left: EC2 answers
		// InsufficientInstanceCapacity (HTTP 500) and the plan falls back to on-demand. The other
		// AZs keep theirs, so the group can still launch a member for an interrupted instance
		// (TestBugInterruptionDuringSpotOutageInEveryAZ covers the outage everywhere).
		in, _ := r.Instance(old)
		r.SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: in.AZ, Market: sim.MarketSpot}, 0)
	}
	if s.throttle > 0 {
		r.SetThrottleRate("ec2", s.throttle)
		r.SetThrottleRate("autoscaling", s.throttle)
	}
	if s.latency > 0 {
		r.SetCallLatency("ec2", s.latency)
		r.SetCallLatency("autoscaling", s.latency)
	}
	// What spotmax does as soon as it sees a group's members, before any interruption can come.
	if _, err := f.workflow().EnsureKeepVolumes(ctx, f.inventory(t)); err != nil {
		t.Fatal(err)
	}
	forged := ""
	if s.forge != "" {
		forged = f.members[1]
		if forged == old {
			forged = f.members[0]
		}
		if s.forgeOn == "old" {
			forged = old
		}
		f.forge(t, forged, forgeries(other.members[0])[s.forge])
	}
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
	owner := "test-actor"
	var lastErr error
	done, lost := false, false
	oldVolumes := f.dataVolumesOf(t, old)
	runs := len(s.crashAt) + 2
	if s.forgeOn == "old" {
		runs++
	}
	for run := 0; run < runs && !done; run++ {
		w := f.workflow()
		w.Owner = owner
		if s.rival == "race" {
			w.LeaseSettle = raceSettle
		}
		c := &crasher{}
		if run < len(s.crashAt) {
			c.at, c.after = s.crashAt[run], s.after[run]
		}
		e, a := log.wrap(fmt.Sprintf("run%d", run), f.ec2, f.asg)
		w.EC2 = crashEC2{EC2API: e, c: c}
		if run == 0 && s.attachCrash > 0 {
			w.EC2 = &crashOnAttach{EC2API: w.EC2, c: c, at: s.attachCrash, after: s.attachAfter}
		}
		w.ASG = crashASG{ASGAPI: a, c: c}
		if run == 0 && s.phase != "" {
			w.AfterPhase = func(_ string, p replace.Phase) error {
				if p == s.phase {
					return errCrash
				}
				return nil
			}
		}
		if run > 0 && s.restart > 0 {
			r.Advance(s.restart)
		}
		if run > 0 && !f.needsResume(t, old) {
			done = true
			// A crash before the journal, and the notice ran out before this run: EC2 took the
			// instance (as in the lostToInterruption case below).
			lost = s.reason == replace.ReasonInterruption && errors.Is(lastErr, errCrash) && f.lostToInterruption(old, oldVolumes, nil)
			break
		}
		var rivalDone chan error
		var meet *rendezvous
		if run == 0 && s.rival == "race" {
			// Both actors plan, then write their journals together: the claim protocol must
			// leave exactly one of them driving. (A write held until after the other's claim was
			// read back is TestIssue11Case2RivalWriteAfterReadBack.)
			meet = newRendezvous(2)
			w.EC2 = meet.hold(w.EC2)
			rivalDone = make(chan error, 1)
			g := f.inventory(t)
			go func() {
				defer meet.leave()
				time.Sleep(s.rivalDelay)
				rw := f.workflow()
				rw.Owner = "rival"
				rw.LeaseSettle = raceSettle
				rw.EC2, rw.ASG = log.wrap("rival", f.ec2, f.asg)
				rw.EC2 = meet.hold(rw.EC2)
				_, err := rw.Replace(ctx, g, req)
				rivalDone <- err
			}()
		}
		res, err := f.replace(t, w, req)
		if meet != nil {
			meet.leave()
		}
		lastErr = err
		if run == 0 && s.attachCrash > 0 && len(s.crashAt) == 0 && s.phase == "" && !errors.Is(err, errCrash) {
			t.Errorf("%v: run 0 never reached its AttachVolume crash: %v", s, err)
		}
		rivalWon := false
		if rivalDone != nil {
			rerr := <-rivalDone
			t.Logf("run 0: %v; the rival: %v", err, rerr)
			switch {
			case rerr == nil:
				rivalWon = true
			case errors.Is(rerr, replace.ErrBusy):
				if !strings.Contains(rerr.Error(), "test-actor") {
					t.Errorf("%v: the rival's busy error does not name the owner test-actor: %v", s, rerr)
				}
			case errors.Is(rerr, replace.ErrAborted):
			case s.forgeOn == "old" && errors.Is(rerr, replace.ErrUntrusted):
				// The rival refused the forged journal, yet left its lease on it (see the report of
				// TestBugRefusedJournalKeepsLease): the operator removes the tags, as the error says.
				if !errors.Is(err, errCrash) || run+1 < runs {
					f.unforge(t, old)
				}
			default:
				t.Fatalf("%v: the rival failed: %v", s, rerr)
			}
		}
		switch {
		case err == nil:
			done = true
			if res.New == "" {
				t.Errorf("%v: finished without a replacement", s)
			}
		case errors.Is(err, errCrash) && rivalWon:
			// The process died; the rival did the replacement.
			done = true
		case errors.Is(err, errCrash):
			// The process died; the next run resumes from the journal.
		case errors.Is(err, replace.ErrAborted):
			// Rolled back after a crash mid-step made a step fail cleanly: the old instance keeps
			// serving, which the invariants check. A new replacement may start.
		case rivalDone != nil && errors.Is(err, replace.ErrBusy):
			// The rival holds it; it finished or left a journal the next run resumes.
			if !strings.Contains(err.Error(), "rival") {
				t.Errorf("%v: busy error does not name the owner rival: %v", s, err)
			}
			done = rivalWon
		case s.forgeOn == "old" && errors.Is(err, replace.ErrUntrusted):
			// The forged journal on the instance was refused: the operator removes it, as the
			// error says, and the replacement is asked for again.
			if other != nil {
				other.checkUntouched(t, r, log, fmt.Sprintf("%v: after refusing the forged journal", s))
			}
			f.unforge(t, old)
		case s.reason == replace.ReasonInterruption && f.lostToInterruption(old, oldVolumes, err):
			// Nothing was journaled and the notice ran out before this run acted — the process
			// died and did not come back in time, or (run 0, on a loaded machine: the notice is
			// 120 ms of wall time at 1000×) the first run started too late: EC2 took the
			// instance. Nothing is left to replace; the data volume survives (DeleteOnTermination
			// is off) and is reported as orphaned, checked below.
			done, lost = true, true
		default:
			t.Fatalf("%v: run %d failed: %v", s, run, err)
		}
		if errors.Is(err, errCrash) && (s.rival == "busy" || s.rival == "takeover") && owner == "test-actor" {
			owner = f.rivalAfterCrash(t, s, log, old, req)
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
	if lost {
		f.expectOrphan(t, old, oldVolumes)
	}
	r.ClearFaults()
	if s.reason == replace.ReasonInterruption {
		// Let the interrupted instance's termination and the group settle.
		r.Advance(5 * time.Minute)
		f.env.WaitInService(t, f.group, int(f.desired))
	}
	if lost {
		f.rehomeOrphan(t, s, oldVolumes)
	}
	if s.forge != "" && s.forgeOn == "member" {
		// The forged journal on the other member: whoever resumes it must refuse it.
		w := f.workflow()
		w.EC2, w.ASG = log.wrap("forgecheck", f.ec2, f.asg)
		if _, err := w.Replace(ctx, f.inventory(t), replace.Request{InstanceID: forged}); !errors.Is(err, replace.ErrUntrusted) {
			t.Errorf("%v: resuming the forged journal on %s: err = %v, want ErrUntrusted", s, forged, err)
		}
		f.unforge(t, forged)
	}
	if other != nil {
		other.checkUntouched(t, r, log, s.String())
	}
	if s.warm && s.phase != "" && s.reason == replace.ReasonInterruption {
		// A crash at a phase boundary changes nothing of the route: the data ends on an
		// instance the group took from its warm pool.
		for _, vol := range oldVolumes {
			if v, _ := r.Volume(vol); v.Attachment == nil || !slices.Contains(pooled, v.Attachment.InstanceID) {
				t.Errorf("%v: data volume %s is attached to %+v, not to one of the warm pool's %v", s, vol, v.Attachment, pooled)
			}
		}
	}
	f.checkInvariants(t)
	f.checkActors(t, s.String(), log, old, initial)
}

// rivalAfterCrash is a second actor arriving while a crashed run's journal is held by its lease:
// it must be refused without changing anything. In "takeover" schedules of proactive
// replacements the lease then runs out and the rival takes the journal over; it returns the
// owner that drives the replacement from then on.
func (f *fixture) rivalAfterCrash(t testing.TB, s schedule, log *actorLog, old string, req replace.Request) string {
	t.Helper()
	js, err := f.workflow().InFlight(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	held := false
	for _, j := range js {
		if j.Old == old && j.Owner == "test-actor" {
			held = true
		}
	}
	if !held {
		return "test-actor"
	}
	before := len(log.mutations(""))
	rw := f.workflow()
	rw.Owner = "rival"
	rw.EC2, rw.ASG = log.wrap("rival-early", f.ec2, f.asg)
	_, err = rw.Replace(context.Background(), f.inventory(t), req)
	if !errors.Is(err, replace.ErrBusy) || !strings.Contains(err.Error(), "test-actor") {
		t.Fatalf("%v: a rival during a held lease: err = %v, want ErrBusy naming test-actor", s, err)
	}
	if got := log.mutations(""); len(got) != before {
		t.Errorf("%v: the refused rival changed things: %+v", s, got[before:])
	}
	if s.rival != "takeover" || !s.reason.Proactive() {
		return "test-actor"
	}
	// The crashed owner never comes back: its lease (an hour in these tests) runs out.
	f.env.Region().Advance(time.Hour + time.Minute)
	return "rival"
}

// checkActors checks what the actors did: no two drove the replacement at once, each journal's
// token launched at most one instance, and nothing was terminated that spotmax did not launch or
// replace (the old instance, its replacements, or a member the group launched in place of the
// lost old instance).
func (f *fixture) checkActors(t testing.TB, what string, log *actorLog, old string, initial map[string]bool) {
	t.Helper()
	r := f.env.Region()
	log.checkOneDriver(t, what)
	perToken := map[string]map[string]bool{}
	log.mu.Lock()
	for id, tok := range log.launched {
		j := tok
		if i := strings.LastIndex(tok, "-"); i > 0 {
			j = tok[:i]
		}
		if perToken[j] == nil {
			perToken[j] = map[string]bool{}
		}
		perToken[j][id] = true
	}
	launched := maps.Clone(log.launched)
	log.mu.Unlock()
	for tok, ids := range perToken {
		if len(ids) > 1 {
			t.Errorf("%s: journal token %s launched %d instances: %v", what, tok, len(ids), ids)
		}
	}
	for id, actor := range log.terminated() {
		in, _ := r.Instance(id)
		switch {
		case id == old, launched[id] != "":
		case initial[id]:
			t.Errorf("%s: %s terminated %s, an instance that was there before and is not the one replaced", what, actor, id)
		case in.ClientToken != "":
			t.Errorf("%s: %s terminated %s, launched by someone else (token %s)", what, actor, id, in.ClientToken)
		}
	}
	for id := range initial {
		in, _ := r.Instance(id)
		if id != old && in.State != sim.StateRunning {
			t.Errorf("%s: %s, there before the replacement of %s, is %s", what, id, old, in.State)
		}
	}
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
	// The draws below come after the original ones, so a seed keeps its crash points.
	s.lb = rng.Intn(3) == 0
	s.lbDelay = time.Duration(rng.Intn(301)) * time.Second
	s.hooks = rng.Intn(3) == 0
	s.outage = rng.Intn(4) == 0
	s.rival = []string{"", "", "race", "busy", "takeover"}[rng.Intn(5)]
	s.rivalDelay = time.Duration(rng.Intn(4)) * time.Millisecond
	if s.rival == "race" {
		s.throttle = 0
	}
	if rng.Intn(3) == 0 {
		kinds := []string{"foreign-replacement", "foreign-group", "phase-only", "foreign-leased"}
		s.forge = kinds[rng.Intn(len(kinds))]
		s.forgeOn = []string{"member", "old"}[rng.Intn(2)]
		if s.reason == replace.ReasonInterruption {
			// Refused, the forged journal blocks the handover of the interrupted instance itself
			// (root on it can destroy its data anyway): the invariants are about everything else.
			s.forgeOn = "member"
		}
	}
	s.restart = []time.Duration{0, 0, 0, 30 * time.Second, 3 * time.Minute}[rng.Intn(5)]
	// A warm-pool group: the interruptions among these take the warm route (the proactive ones
	// the cold one, as the plan says).
	s.warm = rng.Intn(3) == 0
	// Drawn last, so a seed keeps its other draws: every third schedule runs a group with data
	// and log volumes, some of them crashed at an AttachVolume (between the two volumes' moves).
	if rng.Intn(3) == 0 {
		s.volumes = 2
		if rng.Intn(2) == 0 {
			s.attachCrash, s.attachAfter = 1+rng.Intn(2), rng.Intn(2) == 0
		}
	}
	return s
}

// TestReplaceWarmCrashAfterEveryPhase stops an interrupted instance's warm-route replacement
// right after each journaled phase in turn, then resumes it in a new workflow.
func TestReplaceWarmCrashAfterEveryPhase(t *testing.T) {
	for _, p := range []replace.Phase{replace.PhaseStarted, replace.PhaseWarmPrepared, replace.PhaseRetired, replace.PhaseWarmDetached,
		replace.PhaseWarmTaken, replace.PhaseVolumeMoved, replace.PhaseWarmJoined, replace.PhaseDone} {
		s := schedule{seed: 7, phase: p, reason: replace.ReasonInterruption, warm: true}
		t.Run(string(p), func(t *testing.T) { runSchedule(t, s) })
	}
}

// lostToInterruption tells whether err (nil: no run was made) refuses the replacement of old
// because EC2 already took the interrupted instance while no journal was written and its data
// volumes vols had not moved: on a loaded machine the 2-minute notice
// (120 ms at the fixture's 1000×) can run out between a crash and the next run.
func (f *fixture) lostToInterruption(old string, vols []string, err error) bool {
	if err != nil {
		var refused *replace.RefusedError
		if !errors.As(err, &refused) || refused.Instance != old {
			return false
		}
	}
	in, _ := f.env.Region().Instance(old)
	gone := in.State == sim.StateTerminated || in.State == sim.StateShuttingDown
	stayed := true
	for _, vol := range vols {
		v, _ := f.env.Region().Volume(vol)
		stayed = stayed && (v.Attachment == nil || v.Attachment.InstanceID == old)
	}
	return gone && stayed && in.Tags[groupconfig.StatePhase] == ""
}

// dataVolumesOf returns the data volumes attached to instance id, in the order of the group's
// data devices.
func (f *fixture) dataVolumesOf(t testing.TB, id string) []string {
	t.Helper()
	var out []string
	for _, dev := range f.devices {
		for _, v := range f.env.Region().Volumes() {
			if _, ours := f.markers[v.ID]; ours && v.Attachment != nil && v.Attachment.InstanceID == id && f.device[v.ID] == dev {
				out = append(out, v.ID)
			}
		}
	}
	if len(out) != len(f.devices) {
		t.Fatalf("%s has data volumes %v, want one at each of %v", id, out, f.devices)
	}
	return out
}

// poolGroups is the fixture's group as the pool sees it.
func (f *fixture) poolGroups() map[string]replace.PoolGroup {
	var devs []groupconfig.DataDevice
	for i, d := range f.devices {
		devs = append(devs, groupconfig.DataDevice{Device: d, MountPath: []string{"/data", "/log", "/d3", "/d4"}[i]})
	}
	return map[string]replace.PoolGroup{f.group: {Devices: devs, Managed: true}}
}

// crashOnAttach crashes the process at its at-th AttachVolume call, before AWS acts or (after)
// just after; every call from then on fails as with crasher.
type crashOnAttach struct {
	replace.EC2API
	c     *crasher
	mu    sync.Mutex
	n, at int
	after bool
}

func (x *crashOnAttach) AttachVolume(ctx context.Context, in *ec2.AttachVolumeInput, o ...func(*ec2.Options)) (*ec2.AttachVolumeOutput, error) {
	x.mu.Lock()
	x.n++
	hit := x.n == x.at
	x.mu.Unlock()
	if !hit {
		return x.EC2API.AttachVolume(ctx, in, o...)
	}
	crash := func() {
		x.c.mu.Lock()
		x.c.crashed = true
		x.c.mu.Unlock()
	}
	if !x.after {
		crash()
		return nil, errCrash
	}
	_, err := x.EC2API.AttachVolume(ctx, in, o...)
	crash()
	if err != nil {
		return nil, err
	}
	return nil, errCrash
}

// expectOrphan checks what is left when an interruption took old before spotmax journaled its
// replacement: each of old's data volumes vols is available, kept, and waits in the group's pool
// (rehomeOrphan then re-homes them as the controller would).
func (f *fixture) expectOrphan(t testing.TB, old string, vols []string) {
	t.Helper()
	r := f.env.Region()
	t.Logf("EC2 took the interrupted %s before a journal was written", old)
	r.Advance(5 * time.Minute)
	pool, err := f.workflow().Pool(context.Background(), nil, f.poolGroups())
	if err != nil {
		t.Fatal(err)
	}
	for _, vol := range vols {
		if v, ok := r.Volume(vol); !ok || v.Attachment != nil || v.State != "available" {
			t.Fatalf("the interruption took %s before a journal: its data volume %s should be available, is %+v", old, vol, v)
		}
		found := false
		for _, v := range pool {
			found = found || (v.VolumeID == vol && v.Group == f.group && v.Status == replace.PoolAvailable && v.Device == f.device[vol])
		}
		if !found {
			t.Errorf("data volume %s (%s) of %s, taken by its interruption, is not waiting in the group's pool: %+v", vol, f.device[vol], old, pool)
		}
	}
}

// rehomeOrphan re-homes the data volumes an unheard interruption left behind through the pool, as
// the controller's next reconciles would: the agent on the member the group launched in its place
// reports its fresh volumes blank; the first pass's adoptions are crashed at a call the
// schedule's seed picks (before or after AWS acts), and the next passes resume them once the
// crashed actor's lease ran out and adopt the other devices' volumes. The invariants then hold
// for those volumes too: attached, whole, at their own devices, to one running member.
func (f *fixture) rehomeOrphan(t testing.TB, s schedule, vols []string) {
	t.Helper()
	r := f.env.Region()
	g, _ := r.Group(f.group)
	for _, m := range g.Members {
		in, _ := r.Instance(m.InstanceID)
		if in.State != sim.StateRunning || m.LifecycleState != "InService" || in.Tags[groupconfig.StateVolume] != "" || in.Tags[groupconfig.StateReplaces] != "" {
			continue
		}
		fresh := false
		for _, bd := range in.BlockDevices {
			fresh = fresh || slices.Contains(f.devices, bd.DeviceName) && f.markers[bd.VolumeID] == ""
		}
		if fresh {
			f.agentReportsBlank(t, m.InstanceID)
		}
	}
	r.Advance(5 * time.Second) // past EC2's tag visibility
	ctx := context.Background()
	w := f.workflow()
	js, err := w.InFlight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	work, err := w.TendPool(ctx, []*inventory.Group{f.inventory(t)}, js)
	if err != nil {
		t.Fatal(err)
	}
	crashing := f.workflow()
	crashing.Owner, crashing.Lease = "pool-crashing", time.Minute
	crashing.EC2 = crashEC2{EC2API: f.ec2, c: &crasher{at: 1 + int(s.seed%20), after: s.seed%2 == 0}}
	for _, a := range work.Adoptions {
		if _, err := crashing.Adopt(ctx, a); err != nil && !errors.Is(err, errCrash) {
			t.Errorf("%v: adopting orphan %s into %s: %v", s, a.Volume, a.Instance, err)
		}
	}
	r.Advance(2 * time.Minute) // the crashed actor's lease runs out
	last := f.tend(t, w)
	for _, vol := range vols {
		v, ok := r.Volume(vol)
		if !ok {
			t.Fatalf("%v: orphaned data volume %s is gone", s, vol)
		}
		if v.Attachment != nil {
			continue
		}
		// Not re-homed: only right when no member in its AZ lacks its data at its device (e.g. a
		// spot outage put the group's new member in another AZ); then it waits, listed.
		waiting := false
		for _, x := range last.Waiting {
			waiting = waiting || x.VolumeID == vol
		}
		if !waiting {
			t.Errorf("%v: orphaned data volume %s is neither re-homed nor listed as waiting: %+v", s, vol, last.Volumes)
		}
		g, _ = r.Group(f.group)
		for _, m := range g.Members {
			in, _ := r.Instance(m.InstanceID)
			if in.AZ != v.AZ || in.State != sim.StateRunning || m.LifecycleState != "InService" {
				continue
			}
			has := false
			for _, bd := range in.BlockDevices {
				has = has || bd.DeviceName == f.device[vol] && !replace.BlankReported(in.Tags[groupconfig.StateBlankVolume], bd.VolumeID)
			}
			if !has {
				t.Errorf("%v: member %s in %s lacks its data at %s while %s waits there", s, m.InstanceID, v.AZ, f.device[vol], vol)
			}
		}
		t.Logf("orphaned data volume %s waits in %s: no member there lacks its data", vol, v.AZ)
		delete(f.markers, vol)
	}
}

// needsResume tells whether a new process would pick the replacement up again: it is journaled,
// or it never started and the instance still serves in the group. The journal is read from the
// instance itself: a tag filter (InFlight) misses a phase just rewritten for EC2's tag visibility
// window, which a controller's next reconcile would not.
func (f *fixture) needsResume(t testing.TB, old string) bool {
	t.Helper()
	in, _ := f.env.Region().Instance(old)
	if in.Tags[groupconfig.StatePhase] != "" {
		return true
	}
	// A member still serves unless it is on its way out: detached without waiting out the load
	// balancers' draining (an interruption), it stays Detaching for a while, and it is not a
	// replacement to start again.
	g, _ := f.env.Region().Group(f.group)
	m, member := g.Member(old)
	return member && !strings.HasPrefix(m.LifecycleState, "Detach") && !strings.HasPrefix(m.LifecycleState, "Terminat") &&
		in.State != sim.StateTerminated && in.State != sim.StateShuttingDown
}

func (x crashEC2) DeleteVolume(ctx context.Context, in *ec2.DeleteVolumeInput, o ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error) {
	return do(x.c, func() (*ec2.DeleteVolumeOutput, error) { return x.EC2API.DeleteVolume(ctx, in, o...) })
}
