package replace_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// poolFixture is a fixture whose group's members all run in one AZ (so that every pooled volume
// has a taker) with the controller's first reconcile done: data volumes kept and marked.
func newPoolFixture(t *testing.T, desired, max int32) *fixture {
	t.Helper()
	f := newFixture(t, fixtureOpts{desired: desired, max: max})
	g := f.inventory(t)
	if _, err := f.workflow().EnsureKeepVolumes(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	return f
}

// setDesired changes the group's desired capacity as an operator or a scaling policy would.
func (f *fixture) setDesired(t *testing.T, n int32) {
	t.Helper()
	if _, err := f.asg.SetDesiredCapacity(context.Background(), &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: aws.String(f.group), DesiredCapacity: aws.Int32(n)}); err != nil {
		t.Fatal(err)
	}
	f.desired = n
}

// agentReportsBlank writes what the agent reports on a member whose launch's fresh volume at
// /dev/sdf is blank and held (groupconfig.StateBlankVolume), as the agent's role may.
func (f *fixture) agentReportsBlank(t testing.TB, id string) string {
	t.Helper()
	in, ok := f.env.Region().Instance(id)
	if !ok {
		t.Fatalf("no instance %s", id)
	}
	// The agent reports every blank volume it holds: the fresh one at each data device.
	var blank []string
	first := ""
	for _, dev := range f.devices {
		for _, bd := range in.BlockDevices {
			if bd.DeviceName == dev && f.markers[bd.VolumeID] == "" {
				blank = append(blank, bd.VolumeID)
				if first == "" {
					first = bd.VolumeID
				}
			}
		}
	}
	if len(blank) == 0 {
		t.Fatalf("instance %s has no fresh volume at %v", id, f.devices)
	}
	if _, err := f.ec2.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{id},
		Tags: []ec2types.Tag{{Key: aws.String(groupconfig.StateBlankVolume), Value: aws.String(strings.Join(blank, " "))}}}); err != nil {
		t.Fatal(err)
	}
	return first
}

// waitMembers waits until the group has n InService members and returns them.
func (f *fixture) waitMembers(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		f.env.Region().Step()
		g, _ := f.env.Region().Group(f.group)
		var ids []string
		for _, m := range g.Members {
			if in, ok := f.env.Region().Instance(m.InstanceID); m.LifecycleState == "InService" && ok && in.State == sim.StateRunning {
				ids = append(ids, m.InstanceID)
			}
		}
		if len(ids) == n && len(g.Members) == n {
			return ids
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("group %s never had %d InService members", f.group, n)
	return nil
}

// tend runs the pool passes a controller would, running the adoptions each pass finds, until a
// pass finds nothing to adopt; it returns the last pass.
func (f *fixture) tend(t testing.TB, w *replace.Workflow) *replace.PoolWork {
	t.Helper()
	ctx := context.Background()
	for pass := 0; pass < 10; pass++ {
		g := f.inventory(t)
		if _, err := w.EnsureKeepVolumes(ctx, g); err != nil {
			t.Fatal(err)
		}
		js, err := w.InFlight(ctx)
		if err != nil {
			t.Fatal(err)
		}
		work, err := w.TendPool(ctx, []*inventory.Group{g}, js)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range work.Errors {
			t.Errorf("pool pass: %v", e)
		}
		if len(work.Adoptions) == 0 {
			return work
		}
		for _, a := range work.Adoptions {
			if _, err := w.Adopt(ctx, a); err != nil {
				t.Fatalf("adopting %s into %s: %v", a.Volume, a.Instance, err)
			}
		}
	}
	t.Fatal("the pool never settled")
	return nil
}

// checkPool checks the pool's promise: every data volume that existed (f.markers) still exists
// with its content; the ones attached are attached at their own device to a running member, one
// per member and device; the others are available and listed as waiting; and no member runs with a fresh
// volume the agent reports blank while a pooled volume waits in its AZ.
func (f *fixture) checkPool(t *testing.T, last *replace.PoolWork) {
	t.Helper()
	r := f.env.Region()
	r.Step()
	g, _ := r.Group(f.group)
	members := map[string]bool{}
	for _, m := range g.Members {
		members[m.InstanceID] = true
	}
	holders := map[string]string{}
	waiting := map[string]bool{}
	for _, v := range last.Waiting {
		waiting[v.VolumeID] = true
	}
	nWaiting := 0
	for id, marker := range f.markers {
		v, ok := r.Volume(id)
		if !ok {
			t.Errorf("data volume %s is gone", id)
			continue
		}
		if v.Marker != marker {
			t.Errorf("data volume %s content %q, want %q", id, v.Marker, marker)
		}
		if v.Attachment == nil {
			if !waiting[id] || v.State != sim.VolumeAvailable {
				t.Errorf("data volume %s is attached to nothing (%s) and not listed as waiting in the pool", id, v.State)
			}
			nWaiting++
			continue
		}
		in, _ := r.Instance(v.Attachment.InstanceID)
		if want := f.device[id]; !members[in.ID] || in.State != sim.StateRunning || v.Attachment.Device != want {
			t.Errorf("data volume %s is attached to %s (%s, member %v) at %s; want a running member at %s", id, in.ID, in.State, members[in.ID], v.Attachment.Device, want)
		}
		if prev := holders[in.ID+f.device[id]]; prev != "" {
			t.Errorf("member %s holds two data volumes at %s: %s and %s", in.ID, f.device[id], prev, id)
		}
		holders[in.ID+f.device[id]] = id
		holders[in.ID] = id
	}
	if nWaiting > 0 {
		for id := range members {
			in, _ := r.Instance(id)
			if holders[id] == "" && in.Tags[groupconfig.StateBlankVolume] != "" {
				t.Errorf("member %s runs with a blank fresh volume while %d pooled volume(s) wait", id, nWaiting)
			}
		}
	}
	for _, d := range r.DeletedVolumes() {
		if _, ours := f.markers[d.VolumeID]; ours {
			t.Errorf("data volume %s was deleted (%s)", d.VolumeID, d.Reason)
		}
	}
	if fd := r.ForceDetaches(); len(fd) > 0 {
		t.Errorf("volumes were force-detached: %+v", fd)
	}
}

// TestPoolScaleInThenOut: scaling in keeps the removed member's data volume in the pool (listed
// as waiting); scaling out gives the new member that volume, and its launch's blank volume is
// deleted.
func TestPoolScaleInThenOut(t *testing.T) {
	f := newPoolFixture(t, 3, 4)
	w := f.workflow()
	f.setDesired(t, 2)
	f.waitMembers(t, 2)
	f.env.Region().Advance(2 * time.Minute) // the scaled-in instance terminates; its volume is available
	last := f.tend(t, w)
	if len(last.Waiting) != 1 {
		t.Fatalf("after scale-in: %d volume(s) waiting, want 1: %+v", len(last.Waiting), last.Volumes)
	}
	f.checkPool(t, last)

	f.setDesired(t, 3)
	ids := f.waitMembers(t, 3)
	var fresh, newID string
	for _, id := range ids {
		if !f.isOriginal(id) {
			newID = id
			fresh = f.agentReportsBlank(t, id)
		}
	}
	last = f.tend(t, w)
	if len(last.Waiting) != 0 {
		t.Errorf("after scale-out: %d volume(s) still waiting", len(last.Waiting))
	}
	f.checkPool(t, last)
	if !f.deleted(fresh) {
		t.Errorf("the new member's blank fresh volume %s was not deleted", fresh)
	}
	in, _ := f.env.Region().Instance(newID)
	if v := in.Tags[groupconfig.StateVolume]; v == "" || f.markers[v] == "" {
		t.Errorf("new member %s is assigned %q, want a pooled data volume for the agent to mount", newID, v)
	}
}

// TestPoolGroupReplacesOnItsOwn: an instance lost without spotmax hearing of it (an unheard
// interruption, or Auto Scaling replacing an unhealthy member) leaves its data volume in the
// pool, and the member the group launches for it gets it.
func TestPoolGroupReplacesOnItsOwn(t *testing.T) {
	for _, how := range []string{"terminate", "interruption"} {
		t.Run(how, func(t *testing.T) {
			f := newPoolFixture(t, 2, 2)
			w := f.workflow()
			lost := f.members[0]
			switch how {
			case "terminate":
				if _, err := f.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{lost}}); err != nil {
					t.Fatal(err)
				}
			case "interruption":
				if err := f.env.Region().Interrupt(lost, "terminate"); err != nil {
					t.Fatal(err)
				}
			}
			f.env.Region().Advance(5 * time.Minute) // the notice runs out, the group notices and launches
			ids := f.waitMembers(t, 2)
			for _, id := range ids {
				if !f.isOriginal(id) {
					f.agentReportsBlank(t, id)
				}
			}
			last := f.tend(t, w)
			f.checkPool(t, last)
			if len(last.Waiting) != 0 {
				t.Errorf("%d volume(s) still waiting: %+v", len(last.Waiting), last.Waiting)
			}
		})
	}
}

// TestPoolKeepsAFreshVolumeWithoutProof: without the agent's blank report, a member's fresh
// volume is never swapped (it may hold data): the pooled volume waits and is listed.
func TestPoolKeepsAFreshVolumeWithoutProof(t *testing.T) {
	f := newPoolFixture(t, 2, 2)
	w := f.workflow()
	if _, err := f.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{f.members[0]}}); err != nil {
		t.Fatal(err)
	}
	f.env.Region().Advance(5 * time.Minute)
	ids := f.waitMembers(t, 2)
	last := f.tend(t, w)
	if len(last.Waiting) != 1 {
		t.Fatalf("%d waiting, want the lost member's volume", len(last.Waiting))
	}
	for _, id := range ids {
		if f.isOriginal(id) {
			continue
		}
		in, _ := f.env.Region().Instance(id)
		for _, bd := range in.BlockDevices {
			if bd.DeviceName == "/dev/sdf" && f.deleted(bd.VolumeID) {
				t.Errorf("fresh volume %s of %s deleted without the agent's proof", bd.VolumeID, id)
			}
		}
		// A forced adoption is refused too, naming why.
		_, err := w.Adopt(context.Background(), replace.Adoption{Group: f.group, Volume: last.Waiting[0].VolumeID, Instance: id, Device: "/dev/sdf"})
		if !errors.Is(err, replace.ErrNotAdoptable) {
			t.Errorf("Adopt over an unproven fresh volume: %v, want ErrNotAdoptable", err)
		}
	}
	f.checkPool(t, last)
}

// TestPoolAdoptionRace: two actors adopting one pooled volume into two members, and two pooled
// volumes into one member, at once: one adoption wins each time; no volume is attached twice and
// no member gets two.
func TestPoolAdoptionRace(t *testing.T) {
	f := newPoolFixture(t, 4, 4)
	f.setDesired(t, 2)
	f.waitMembers(t, 2)
	f.env.Region().Advance(2 * time.Minute)
	w1, w2 := f.workflow(), f.workflow()
	w1.Owner, w2.Owner = "actor-1", "actor-2"
	last := f.tend(t, w1)
	if len(last.Waiting) != 2 {
		t.Fatalf("%d waiting, want 2", len(last.Waiting))
	}
	f.setDesired(t, 4)
	var fresh []string
	for _, id := range f.waitMembers(t, 4) {
		if !f.isOriginal(id) {
			f.agentReportsBlank(t, id)
			fresh = append(fresh, id)
		}
	}
	vA, vB := last.Waiting[0].VolumeID, last.Waiting[1].VolumeID
	race := func(a1, a2 replace.Adoption) (err1, err2 error) {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _, err1 = w1.Adopt(context.Background(), a1) }()
		go func() { defer wg.Done(); _, err2 = w2.Adopt(context.Background(), a2) }()
		wg.Wait()
		return
	}
	// One volume, two members.
	e1, e2 := race(replace.Adoption{Group: f.group, Volume: vA, Instance: fresh[0], Device: "/dev/sdf"},
		replace.Adoption{Group: f.group, Volume: vA, Instance: fresh[1], Device: "/dev/sdf"})
	if (e1 == nil) == (e2 == nil) {
		t.Errorf("one volume into two members: errors %v and %v, want exactly one to win", e1, e2)
	}
	// Two volumes, one member: the one left without data.
	var target string
	for _, id := range fresh {
		if in, _ := f.env.Region().Instance(id); in.Tags[groupconfig.StateVolume] == "" {
			target = id
		}
	}
	e1, e2 = race(replace.Adoption{Group: f.group, Volume: vB, Instance: target, Device: "/dev/sdf"},
		replace.Adoption{Group: f.group, Volume: vA, Instance: target, Device: "/dev/sdf"})
	if e1 != nil && e2 != nil {
		t.Logf("both lost the second race (%v; %v): the next pass settles it", e1, e2)
	}
	last = f.tend(t, w1)
	f.checkPool(t, last)
	if len(last.Waiting) != 0 {
		t.Errorf("%d volume(s) still waiting after the races", len(last.Waiting))
	}
}

// TestPoolAdoptionCrashes crashes an adoption at every API call, before AWS acts and just after,
// and lets a second actor resume it once the lease ran out: the pool ends as if nothing had
// crashed, and a blank fresh volume is deleted only after the adoption marked it.
func TestPoolAdoptionCrashes(t *testing.T) {
	for at := 1; ; at++ {
		done := false
		for _, after := range []bool{false, true} {
			t.Run(fmt.Sprintf("call%d/after=%v", at, after), func(t *testing.T) {
				f := newPoolFixture(t, 2, 2)
				if _, err := f.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{f.members[0]}}); err != nil {
					t.Fatal(err)
				}
				f.env.Region().Advance(5 * time.Minute)
				var newID string
				for _, id := range f.waitMembers(t, 2) {
					if !f.isOriginal(id) {
						newID = id
						f.agentReportsBlank(t, id)
					}
				}
				w := f.workflow()
				g := f.inventory(t)
				js, _ := w.InFlight(context.Background())
				work, err := w.TendPool(context.Background(), []*inventory.Group{g}, js)
				if err != nil || len(work.Adoptions) != 1 || work.Adoptions[0].Instance != newID {
					t.Fatalf("TendPool: %+v, %v; want one adoption into %s", work, err, newID)
				}
				c := &crasher{at: at, after: after}
				crashing := f.workflow()
				crashing.Owner = "crashing"
				crashing.Lease = time.Minute
				crashing.EC2 = crashEC2{EC2API: f.ec2, c: c}
				_, err = crashing.Adopt(context.Background(), work.Adoptions[0])
				if err == nil {
					done = true
				} else if !errors.Is(err, errCrash) {
					t.Fatalf("adoption failed without a crash: %v", err)
				}
				f.env.Region().Advance(2 * time.Minute) // the crashed actor's lease runs out
				last := f.tend(t, w)
				f.checkPool(t, last)
				if len(last.Waiting) != 0 {
					t.Errorf("%d volume(s) still waiting after the resume", len(last.Waiting))
				}
				for _, v := range last.Volumes {
					if v.AdoptedBy != "" && v.Status != replace.PoolMoving {
						t.Errorf("volume %s keeps a stale adoption claim for %s", v.VolumeID, v.AdoptedBy)
					}
				}
				// Nothing the adoption marked is left behind, and the pass after is a no-op.
				again := f.tend(t, w)
				for _, v := range again.Volumes {
					if (v.Status == replace.PoolDiscarding && v.State != "deleting" && v.State != "deleted") || v.AdoptedBy != "" {
						t.Errorf("volume %s left %s (adopted_by %q)", v.VolumeID, v.Status, v.AdoptedBy)
					}
				}
			})
		}
		if done || at > 60 {
			if !done {
				t.Fatal("the adoption never completed without a crash")
			}
			return
		}
	}
}

// TestPoolRetention: a pooled volume unused past its group's spotmax:volume_retention_hours is
// deleted; without the tag it is kept forever.
func TestPoolRetention(t *testing.T) {
	for _, retention := range []string{"", "1"} {
		t.Run("retention="+retention, func(t *testing.T) {
			opts := fixtureOpts{desired: 2, max: 2}
			if retention != "" {
				opts.tags = map[string]string{groupconfig.TagVolumeRetentionHours: retention}
			}
			f := newFixture(t, opts)
			w := f.workflow()
			if _, err := w.EnsureKeepVolumes(context.Background(), f.inventory(t)); err != nil {
				t.Fatal(err)
			}
			f.setDesired(t, 1)
			f.waitMembers(t, 1)
			f.env.Region().Advance(2 * time.Minute)
			last := f.tend(t, w)
			if len(last.Waiting) != 1 {
				t.Fatalf("%d waiting, want 1", len(last.Waiting))
			}
			vol := last.Waiting[0].VolumeID
			f.env.Region().Advance(59 * time.Minute)
			if f.tend(t, w); f.deleted(vol) {
				t.Fatalf("volume %s deleted before its retention ran out", vol)
			}
			f.env.Region().Advance(2 * time.Minute)
			last = f.tend(t, w)
			if got := f.deleted(vol); got != (retention != "") {
				t.Errorf("retention %q: volume %s deleted = %v after 61 minutes unused", retention, vol, got)
			}
			if retention == "" && (len(last.Waiting) != 1 || last.Waiting[0].VolumeID != vol) {
				t.Errorf("without a retention the volume must wait in the pool: %+v", last.Waiting)
			}
		})
	}
}

func (f *fixture) isOriginal(id string) bool {
	for _, m := range f.members {
		if m == id {
			return true
		}
	}
	return false
}

func (f *fixture) deleted(vol string) bool {
	for _, d := range f.env.Region().DeletedVolumes() {
		if d.VolumeID == vol {
			return true
		}
	}
	return false
}

// withdrawOnAssign is an EC2 client that, right after an adoption writes its assignment on the
// target, withdraws the agent's blank report there (the agent's hold ended meanwhile).
type withdrawOnAssign struct {
	replace.EC2API
	raw *ec2.Client
}

func (x withdrawOnAssign) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, o ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	out, err := x.EC2API.CreateTags(ctx, in, o...)
	for _, tg := range in.Tags {
		if aws.ToString(tg.Key) == groupconfig.StateVolume && err == nil {
			_, _ = x.raw.CreateTags(ctx, &ec2.CreateTagsInput{Resources: in.Resources,
				Tags: []ec2types.Tag{{Key: aws.String(groupconfig.StateBlankVolume), Value: aws.String("")}}})
		}
	}
	return out, err
}

// TestPoolAdoptionReprovesTheFreshVolume: when the agent withdraws its blank report while an
// adoption is under way, the fresh volume is neither detached nor deleted, the adoption is undone
// (no assignment, no claim) and the pooled volume waits again.
func TestPoolAdoptionReprovesTheFreshVolume(t *testing.T) {
	f := newPoolFixture(t, 2, 2)
	if _, err := f.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{f.members[0]}}); err != nil {
		t.Fatal(err)
	}
	f.env.Region().Advance(5 * time.Minute)
	var newID, fresh string
	for _, id := range f.waitMembers(t, 2) {
		if !f.isOriginal(id) {
			newID, fresh = id, f.agentReportsBlank(t, id)
		}
	}
	w := f.workflow()
	js, _ := w.InFlight(context.Background())
	work, err := w.TendPool(context.Background(), []*inventory.Group{f.inventory(t)}, js)
	if err != nil || len(work.Adoptions) != 1 {
		t.Fatalf("TendPool: %+v, %v", work, err)
	}
	w.EC2 = withdrawOnAssign{EC2API: f.ec2, raw: f.ec2}
	if _, err := w.Adopt(context.Background(), work.Adoptions[0]); !errors.Is(err, replace.ErrNotAdoptable) || !strings.Contains(err.Error(), "no longer provably empty") {
		t.Fatalf("Adopt with the report withdrawn mid-way: %v, want a refusal", err)
	}
	in, _ := f.env.Region().Instance(newID)
	if in.Tags[groupconfig.StateVolume] != "" {
		t.Errorf("the assignment %q stayed on %s", in.Tags[groupconfig.StateVolume], newID)
	}
	if v, _ := f.env.Region().Volume(fresh); f.deleted(fresh) || v.Attachment == nil || v.Attachment.InstanceID != newID || v.Tags[groupconfig.StateDiscard] != "" {
		t.Errorf("fresh volume %s touched: deleted %v, attachment %+v, tags %v", fresh, f.deleted(fresh), v.Attachment, v.Tags)
	}
	pooled, _ := f.env.Region().Volume(work.Adoptions[0].Volume)
	if pooled.Attachment != nil || pooled.Tags[groupconfig.StateAdoptedBy] != "" || pooled.Tags[groupconfig.StateOwner] != "" {
		t.Errorf("pooled volume %s after the undone adoption: attachment %+v, tags %v", pooled.ID, pooled.Attachment, pooled.Tags)
	}
}

// TestPoolAdoptionOfAGoneTargetGivesTheVolumeBack: an interrupted adoption whose target no longer
// exists is given up on the next pass; the volume waits in the pool again.
func TestPoolAdoptionOfAGoneTargetGivesTheVolumeBack(t *testing.T) {
	f := newPoolFixture(t, 2, 2)
	f.setDesired(t, 1)
	f.waitMembers(t, 1)
	f.env.Region().Advance(2 * time.Minute)
	w := f.workflow()
	last := f.tend(t, w)
	if len(last.Waiting) != 1 {
		t.Fatalf("%d waiting, want 1", len(last.Waiting))
	}
	vol := last.Waiting[0].VolumeID
	// A crashed actor's claim naming an instance that is gone (terminated an hour ago).
	past := f.env.Region().Clock().Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	for k, v := range map[string]string{groupconfig.StateAdoptedBy: "i-0123456789abcdef0", groupconfig.StateOwner: "crashed", groupconfig.StateLeaseUntil: past} {
		if err := f.setTag(vol, k, v); err != nil {
			t.Fatal(err)
		}
	}
	f.env.Region().Advance(5 * time.Second)
	ctx := context.Background()
	js, _ := w.InFlight(ctx)
	work, err := w.TendPool(ctx, []*inventory.Group{f.inventory(t)}, js)
	if err != nil || len(work.Adoptions) != 1 || work.Adoptions[0].Volume != vol {
		t.Fatalf("TendPool: %+v, %v; want the interrupted adoption resumed", work, err)
	}
	if _, err := w.Adopt(ctx, work.Adoptions[0]); !errors.Is(err, replace.ErrNotAdoptable) {
		t.Fatalf("resuming an adoption into a gone instance: %v, want ErrNotAdoptable", err)
	}
	f.env.Region().Advance(5 * time.Second)
	last = f.tend(t, w)
	if len(last.Waiting) != 1 || last.Waiting[0].VolumeID != vol || last.Waiting[0].AdoptedBy != "" {
		t.Errorf("after giving up: waiting %+v, want %s back in the pool unclaimed", last.Waiting, vol)
	}
}

// A pass over a steady pool looks only at what it may act on: with every data volume attached to
// its member, it lists none of them (a fleet's reconcile reads no page per 500 instances), while
// `spotmax volumes` (Pool) still lists them all.
func TestPoolPassSkipsAttachedVolumes(t *testing.T) {
	f := newPoolFixture(t, 3, 3)
	w := f.workflow()
	last := f.tend(t, w)
	if len(last.Volumes) != 0 {
		t.Errorf("a steady pass looked at %d volume(s), want none: %+v", len(last.Volumes), last.Volumes)
	}
	all, err := w.Pool(context.Background(), nil, map[string]replace.PoolGroup{f.group: {Devices: []groupconfig.DataDevice{{Device: "/dev/sdf"}}, Managed: true}})
	if err != nil {
		t.Fatal(err)
	}
	attached := 0
	for _, v := range all {
		if v.Status == replace.PoolAttached {
			attached++
		}
	}
	if attached != 3 {
		t.Errorf("Pool lists %d attached data volume(s), want the 3 members': %+v", attached, all)
	}
}
