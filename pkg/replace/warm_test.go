package replace_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// newWarmFixture is a warm-pool group of three members (one per AZ) with is_warm_pool_first and
// a warm pool of size stopped instances; it returns the fixture and a member in an AZ where the
// pool has a warmed instance.
func newWarmFixture(t testing.TB, size int32, o fixtureOpts) (*fixture, string) {
	t.Helper()
	o.desired, o.max, o.warm = 3, 3, size
	if o.tags == nil {
		o.tags = map[string]string{}
	}
	o.tags[groupconfig.TagWarmPoolFirst] = "true"
	f := newFixture(t, o)
	if _, err := f.workflow().EnsureKeepVolumes(context.Background(), f.inventory(t)); err != nil {
		t.Fatal(err)
	}
	for az := range warmAZs(f.env.Region(), f.group) {
		return f, f.memberIn(t, az)
	}
	t.Fatal("the warm pool has no warmed instance")
	return nil, ""
}

func warmIDs(r *sim.Region, group string) []string {
	var out []string
	for _, m := range r.WarmPoolMembers(group) {
		out = append(out, m.InstanceID)
	}
	return out
}

// interrupt gives old its interruption notice and returns the replacement request for it.
func (f *fixture) interrupt(t testing.TB, old string) replace.Request {
	t.Helper()
	r := f.env.Region()
	if err := r.Interrupt(old, ""); err != nil {
		t.Fatal(err)
	}
	in, _ := r.Instance(old)
	return replace.Request{InstanceID: old, Reason: replace.ReasonInterruption, Deadline: in.Interruption.Time}
}

// TestWarmReplacementTakesAWarmedInstance: with a warmed instance in the data volume's AZ, an
// interrupted member is replaced by the instance the group draws from its warm pool — no
// RunInstances at all — and the data volume moves to it; the group keeps its size. With and
// without an agent on the old instance (released on the notice, or terminated at once).
func TestWarmReplacementTakesAWarmedInstance(t *testing.T) {
	for _, agent := range []bool{false, true} {
		t.Run(map[bool]string{false: "no-agent", true: "agent"}[agent], func(t *testing.T) {
			f, old := newWarmFixture(t, 2, fixtureOpts{})
			r := f.env.Region()
			pooled := warmIDs(r, f.group)
			vol := f.dataVolumesOf(t, old)[0]
			if agent {
				if err := f.setTag(old, groupconfig.StateAgent, "running test "+r.Clock().Now().UTC().Format(time.RFC3339)); err != nil {
					t.Fatal(err)
				}
			}
			req := f.interrupt(t, old)
			if agent {
				// The agent unmounts on the notice and reports the release.
				if err := f.setTag(old, groupconfig.StateVolumeReleased, vol); err != nil {
					t.Fatal(err)
				}
				r.Advance(5 * time.Second)
			}
			w := f.workflow()
			plan, err := w.Plan(context.Background(), f.inventory(t), req)
			if err != nil {
				t.Fatal(err)
			}
			if !plan.Warm || !slices.Contains(plan.Steps, replace.StepWarmTake) || slices.Contains(plan.Steps, replace.StepLaunch) {
				t.Fatalf("plan = warm %v, steps %v (note %q); want the warm pool's route", plan.Warm, plan.Steps, plan.WarmNote)
			}
			launches := callsOf(r, "ec2:RunInstances")
			res, err := f.replace(t, w, req)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Warm || !slices.Contains(pooled, res.New) {
				t.Errorf("replacement %s (warm %v) is not one of the warm pool's %v", res.New, res.Warm, pooled)
			}
			if n := callsOf(r, "ec2:RunInstances") - launches; n != 0 {
				t.Errorf("%d RunInstances calls; the warm route launches nothing itself", n)
			}
			v, _ := r.Volume(vol)
			if v.Attachment == nil || v.Attachment.InstanceID != res.New {
				t.Errorf("data volume %s is attached to %+v, want %s", vol, v.Attachment, res.New)
			}
			in, _ := r.Instance(res.New)
			if in.Tags[groupconfig.StateVolume] != vol || in.Tags[groupconfig.StateReplaces] != old {
				t.Errorf("replacement tags: %v", in.Tags)
			}
			if !strings.HasPrefix(string(res.Type), "m5") || res.Market != replace.MarketOnDemand {
				t.Errorf("result %s %s; want the group's on-demand m5.large", res.Market, res.Type)
			}
			if in, _ := r.Instance(old); in.State != sim.StateTerminated && in.State != sim.StateShuttingDown {
				t.Errorf("old instance %s is %s", old, in.State)
			}
			f.checkInvariants(t)
		})
	}
}

// TestWarmFallsBackWhenTheGroupTakesOneInAnotherAZ: the pool's warmed instance in the data
// volume's AZ is gone by the time the old instance is detached (terminated here, as a pool
// refresh or an operator would), so the group brings one in from another AZ. It must not receive
// the volume: it stays a plain member until the cold replacement in the volume's AZ is in, and is
// then taken back with the desired capacity decremented.
func TestWarmFallsBackWhenTheGroupTakesOneInAnotherAZ(t *testing.T) {
	f, old := newWarmFixture(t, 1, fixtureOpts{})
	r := f.env.Region()
	ctx := context.Background()
	oldIn, _ := r.Instance(old)
	// A second warmed instance outside the old instance's AZ: on-demand capacity there runs out,
	// so the pool's next launch goes to another AZ.
	r.SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: oldIn.AZ, Market: sim.MarketOnDemand}, 0)
	if _, err := f.asg.PutWarmPool(ctx, &autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String(f.group), MinSize: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	waitWarmed(t, r, f.group, 2)
	var here, there string
	for _, id := range warmIDs(r, f.group) {
		if in, _ := r.Instance(id); in.AZ == oldIn.AZ {
			here = id
		} else {
			there = id
		}
	}
	if here == "" || there == "" {
		t.Fatalf("warm pool %v: want one instance in %s and one elsewhere", warmIDs(r, f.group), oldIn.AZ)
	}
	vol := f.dataVolumesOf(t, old)[0]
	w := f.workflow()
	w.AfterPhase = func(_ string, p replace.Phase) error {
		if p == replace.PhaseWarmPrepared {
			_, err := f.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{here}})
			r.Step()
			return err
		}
		return nil
	}
	w.OnProgress = func(p replace.Progress) { t.Logf("%s %s %v %v", p.Step, p.Detail, p.Done, p.Err) }
	res, err := f.replace(t, w, f.interrupt(t, old))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result %+v", res)
	if res.Warm || res.New == there || res.AZ != oldIn.AZ {
		t.Errorf("replacement %s in %s (warm %v); want a cold launch in %s, not %s", res.New, res.AZ, res.Warm, oldIn.AZ, there)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), there) {
		t.Errorf("warnings %q do not name %s, brought in from another AZ", res.Warnings, there)
	}
	if in, _ := r.Instance(there); in.State != sim.StateTerminated && in.State != sim.StateShuttingDown {
		t.Errorf("%s, the warmed instance from another AZ, is %s; want taken back (terminated with decrement)", there, in.State)
	}
	if v, _ := r.Volume(vol); v.Attachment == nil || v.Attachment.InstanceID != res.New {
		t.Errorf("data volume %s attached to %+v, want %s", vol, v.Attachment, res.New)
	}
	f.checkInvariants(t)
}

// TestWarmFallsBackWhenNothingArrives: the group cannot launch (its Launch process is suspended,
// as an operator may do): after warmArrival the replacement launches cold, and once the
// replacement is in, the group's desired capacity is set back to its size.
func TestWarmFallsBackWhenNothingArrives(t *testing.T) {
	f, old := newWarmFixture(t, 2, fixtureOpts{})
	ctx := context.Background()
	w := f.workflow()
	w.AfterPhase = func(_ string, p replace.Phase) error {
		if p == replace.PhaseWarmPrepared {
			_, err := f.asg.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String(f.group), ScalingProcesses: []string{"Launch"}})
			return err
		}
		return nil
	}
	res, err := f.replace(t, w, f.interrupt(t, old))
	if err != nil {
		t.Fatal(err)
	}
	if res.Warm || slices.Contains(warmIDs(f.env.Region(), f.group), res.New) {
		t.Errorf("replacement %s (warm %v); want a cold launch", res.New, res.Warm)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "no warmed instance within") {
		t.Errorf("warnings %q do not say nothing arrived", res.Warnings)
	}
	if _, err := f.asg.ResumeProcesses(ctx, &autoscaling.ResumeProcessesInput{AutoScalingGroupName: aws.String(f.group), ScalingProcesses: []string{"Launch"}}); err != nil {
		t.Fatal(err)
	}
	f.checkInvariants(t)
}

// TestWarmPlanSaysWhyNotWarm: the route is the cold launch, with a note naming the reason,
// whenever the warm pool cannot serve.
func TestWarmPlanSaysWhyNotWarm(t *testing.T) {
	f, old := newWarmFixture(t, 1, fixtureOpts{})
	ctx := context.Background()
	w := f.workflow()
	plan := func(req replace.Request) *replace.Plan {
		t.Helper()
		p, err := w.Plan(ctx, f.inventory(t), req)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	interrupted := func(id string) replace.Request {
		return replace.Request{InstanceID: id, Reason: replace.ReasonInterruption, Deadline: f.env.Region().Clock().Now().Add(2 * time.Minute)}
	}
	if p := plan(interrupted(old)); !p.Warm {
		t.Errorf("interruption: warm %v, note %q; want the warm route", p.Warm, p.WarmNote)
	}
	for _, reason := range []replace.Reason{replace.ReasonRevert, replace.ReasonLifetime, replace.ReasonRebalance, replace.ReasonManual} {
		if p := plan(replace.Request{InstanceID: old, Reason: reason}); p.Warm || !strings.Contains(p.WarmNote, "only an interrupted instance") {
			t.Errorf("%s: warm %v, note %q", reason, p.Warm, p.WarmNote)
		}
	}
	for _, id := range f.members {
		if id == old {
			continue
		}
		if p := plan(interrupted(id)); p.Warm || !strings.Contains(p.WarmNote, "no warmed instance in") {
			t.Errorf("%s outside the pool's AZ: warm %v, note %q", id, p.Warm, p.WarmNote)
		}
	}
	// A launch template that maps the data device: a warmed instance would bring its own volume.
	templateVersion(t, f, true)
	if p := plan(interrupted(old)); p.Warm || !strings.Contains(p.WarmNote, "maps /dev/sdf") {
		t.Errorf("template with the data device: warm %v, note %q", p.Warm, p.WarmNote)
	}
	if _, err := f.asg.DeleteWarmPool(ctx, &autoscaling.DeleteWarmPoolInput{AutoScalingGroupName: aws.String(f.group), ForceDelete: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	templateVersion(t, f, false)
	if p := plan(interrupted(old)); p.Warm || !strings.Contains(p.WarmNote, "no warm pool") {
		t.Errorf("no warm pool: warm %v, note %q", p.Warm, p.WarmNote)
	}
}

// TestWarmJournalTrust: a warm route's journal naming an instance the group did not bring in from
// its warm pool for this replacement — even one that carries the claim tag and is a member — is
// refused and nothing is done; the genuine one is resumed to the end.
func TestWarmJournalTrust(t *testing.T) {
	f, old := newWarmFixture(t, 2, fixtureOpts{})
	r := f.env.Region()
	w := f.workflow()
	w.AfterPhase = func(_ string, p replace.Phase) error {
		if p == replace.PhaseWarmTaken {
			return errCrash
		}
		return nil
	}
	req := f.interrupt(t, old)
	if _, err := f.replace(t, w, req); !errors.Is(err, errCrash) {
		t.Fatalf("err = %v, want the simulated crash after warm-taken", err)
	}
	in, _ := r.Instance(old)
	genuine := in.Tags[groupconfig.StateReplacement]
	if genuine == "" {
		t.Fatal("no replacement journaled")
	}
	var intruder string
	for _, id := range f.members {
		if id != old {
			intruder = id
		}
	}
	for _, k := range []string{groupconfig.StateReplaces} {
		if err := f.setTag(intruder, k, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.setTag(old, groupconfig.StateReplacement, intruder); err != nil {
		t.Fatal(err)
	}
	r.Advance(5 * time.Second) // past EC2's tag visibility
	before := callsOf(r, "ec2:AttachVolume") + callsOf(r, "ec2:DetachVolume") + callsOf(r, "ec2:TerminateInstances")
	_, err := f.replace(t, f.workflow(), req)
	if !errors.Is(err, replace.ErrUntrusted) || !strings.Contains(err.Error(), "warm pool") {
		t.Fatalf("resuming a journal naming member %s: err = %v, want ErrUntrusted about the warm pool's activity", intruder, err)
	}
	if after := callsOf(r, "ec2:AttachVolume") + callsOf(r, "ec2:DetachVolume") + callsOf(r, "ec2:TerminateInstances"); after != before {
		t.Errorf("the refused journal moved or terminated something (%d calls)", after-before)
	}
	// The operator puts the journal right (and the intruder's tag away); the resume finishes.
	if err := f.setTag(old, groupconfig.StateReplacement, genuine); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ec2.DeleteTags(context.Background(), &ec2.DeleteTagsInput{Resources: []string{intruder}, Tags: []ec2types.Tag{{Key: aws.String(groupconfig.StateReplaces)}}}); err != nil {
		t.Fatal(err)
	}
	r.Advance(5 * time.Second)
	res, err := f.replace(t, f.workflow(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.New != genuine || !res.Resumed {
		t.Errorf("resumed to %s (resumed %v), want %s", res.New, res.Resumed, genuine)
	}
	f.checkInvariants(t)
}

// TestWarmTwoInterruptionsInOneAZ: two members of one AZ interrupted at once, each replaced by
// its own workflow (two controllers' workers): the group draws two warmed instances, and the
// claim protocol gives each replacement its own — never one instance to both, never a volume
// attached twice.
func TestWarmTwoInterruptionsInOneAZ(t *testing.T) {
	f, _ := newWarmFixture(t, 2, fixtureOpts{azs: []string{"us-east-1a"}})
	r := f.env.Region()
	pooled := warmIDs(r, f.group)
	olds := f.members[:2]
	reqs := []replace.Request{f.interrupt(t, olds[0]), f.interrupt(t, olds[1])}
	type out struct {
		res *replace.Result
		err error
	}
	results := make(chan out, 2)
	g := f.inventory(t)
	for i, req := range reqs {
		w := f.workflow()
		w.Owner = []string{"worker-a", "worker-b"}[i]
		w.LeaseSettle = raceSettle
		go func() {
			res, err := w.Replace(context.Background(), g, req)
			results <- out{res, err}
		}()
	}
	news := map[string]bool{}
	for range reqs {
		o := <-results
		if o.err != nil {
			t.Fatal(o.err)
		}
		if news[o.res.New] {
			t.Errorf("two replacements took %s", o.res.New)
		}
		news[o.res.New] = true
		if !o.res.Warm || !slices.Contains(pooled, o.res.New) {
			t.Errorf("replacement %s (warm %v) is not one of the pool's %v: two warmed instances were there for two", o.res.New, o.res.Warm, pooled)
		}
		t.Logf("%s → %s (warm %v, warnings %q)", o.res.Old, o.res.New, o.res.Warm, o.res.Warnings)
	}
	f.checkInvariants(t)
}
