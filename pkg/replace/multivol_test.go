package replace_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

var twoDevices = []string{"/dev/sdf", "/dev/sdg"}

// TestReplaceTwoVolumes: a group with data and log volumes (persistence_dev=/dev/sdf,/dev/sdg):
// the journal records both in its one CreateTags call, the launch suppresses both devices, and
// each volume ends on the replacement at its own device, recorded for the agent with its own
// mount path.
func TestReplaceTwoVolumes(t *testing.T) {
	f := newFixture(t, fixtureOpts{devices: twoDevices})
	old := f.members[0]
	vols := f.dataVolumesOf(t, old)
	w := f.workflow()
	w.AfterPhase = func(_ string, p replace.Phase) error {
		if p == replace.PhaseStarted {
			in, _ := f.env.Region().Instance(old)
			if got, want := in.Tags[groupconfig.StateJournalVolume], "/dev/sdf="+vols[0]+" /dev/sdg="+vols[1]; got != want {
				t.Errorf("journal %s = %q, want %q", groupconfig.StateJournalVolume, got, want)
			}
		}
		return nil
	}
	plan, err := w.Plan(context.Background(), f.inventory(t), replace.Request{InstanceID: old, Reason: replace.ReasonManual})
	if err != nil {
		t.Fatal(err)
	}
	want := []replace.DataVolume{{ID: vols[0], Device: "/dev/sdf", MountPath: "/data"}, {ID: vols[1], Device: "/dev/sdg", MountPath: "/log"}}
	if !slices.Equal(plan.Volumes, want) {
		t.Fatalf("plan volumes = %+v, want %+v", plan.Volumes, want)
	}
	res, err := f.replace(t, w, replace.Request{InstanceID: old, Reason: replace.ReasonManual})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Volumes, vols) {
		t.Errorf("result volumes = %v, want %v", res.Volumes, vols)
	}
	in, _ := f.env.Region().Instance(res.New)
	if got := in.Tags[groupconfig.StateVolume]; got != vols[0]+","+vols[1] {
		t.Errorf("replacement %s = %q", groupconfig.StateVolume, got)
	}
	if got := in.Tags[groupconfig.StateMountPath]; got != "/data,/log" {
		t.Errorf("replacement %s = %q, want /data,/log", groupconfig.StateMountPath, got)
	}
	fresh := 0
	for _, bd := range in.BlockDevices {
		if slices.Contains(twoDevices, bd.DeviceName) {
			if !slices.Contains(vols, bd.VolumeID) {
				fresh++
			}
			if bd.DeleteOnTermination {
				t.Errorf("replacement %s at %s has DeleteOnTermination on", bd.VolumeID, bd.DeviceName)
			}
		}
	}
	if fresh != 0 {
		t.Errorf("the replacement launched with %d fresh volume(s) at the data devices", fresh)
	}
	f.checkInvariants(t)
}

// TestReplaceTwoVolumesCrashAfterEveryPhase is TestReplaceCrashAfterEveryPhase with data and log
// volumes.
func TestReplaceTwoVolumesCrashAfterEveryPhase(t *testing.T) {
	for _, reason := range []replace.Reason{replace.ReasonManual, replace.ReasonInterruption} {
		for _, p := range []replace.Phase{replace.PhaseStarted, replace.PhaseLaunched, replace.PhaseJoined,
			replace.PhaseRetired, replace.PhaseDetached, replace.PhaseVolumeMoved, replace.PhaseDone} {
			s := schedule{seed: 11, phase: p, reason: reason, volumes: 2}
			t.Run(string(reason)+"/"+string(p), func(t *testing.T) { runSchedule(t, s) })
		}
	}
}

// TestReplaceTwoVolumesCrashBetweenMoves crashes the workflow at the first and the second
// AttachVolume, before and after AWS acts — with the first volume on the replacement and the
// second still on (or released by) the old instance — and resumes it: each volume ends at its
// own device on the replacement, none deleted, attached twice or force-detached.
func TestReplaceTwoVolumesCrashBetweenMoves(t *testing.T) {
	for _, reason := range []replace.Reason{replace.ReasonManual, replace.ReasonLifetime, replace.ReasonInterruption} {
		for _, at := range []int{1, 2} {
			for _, after := range []bool{false, true} {
				s := schedule{seed: 13, reason: reason, volumes: 2, attachCrash: at, attachAfter: after}
				name := string(reason) + "/attach" + string(rune('0'+at))
				if after {
					name += "-after"
				}
				t.Run(name, func(t *testing.T) { runSchedule(t, s) })
			}
		}
	}
}

// TestReplaceTwoVolumesMemberHoldsOne: a member that holds only one of its two data devices (its
// log volume was detached and waits in the pool) is replaced with the one it holds; the
// replacement launches with the template's fresh volume at the other device, and the pool swaps
// that one, proven blank, for the pooled log volume in its AZ.
func TestReplaceTwoVolumesMemberHoldsOne(t *testing.T) {
	f := newPoolFixtureDevices(t, 2, 2, twoDevices)
	r := f.env.Region()
	old := f.members[0]
	vols := f.dataVolumesOf(t, old)
	if _, err := f.ec2.DetachVolume(context.Background(), &ec2.DetachVolumeInput{VolumeId: aws.String(vols[1])}); err != nil {
		t.Fatal(err)
	}
	eventuallyT(t, "the log volume to be available", func() bool {
		r.Step()
		v, _ := r.Volume(vols[1])
		return v.State == sim.VolumeAvailable
	})
	w := f.workflow()
	plan, err := w.Plan(context.Background(), f.inventory(t), replace.Request{InstanceID: old, Reason: replace.ReasonManual})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Volumes) != 1 || plan.Volumes[0].ID != vols[0] {
		t.Fatalf("plan volumes = %+v, want only %s at /dev/sdf", plan.Volumes, vols[0])
	}
	res, err := f.replace(t, w, replace.Request{InstanceID: old, Reason: replace.ReasonManual})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := r.Instance(res.New)
	var freshLog string
	for _, bd := range in.BlockDevices {
		if bd.DeviceName == "/dev/sdg" {
			freshLog = bd.VolumeID
		}
	}
	if freshLog == "" || f.markers[freshLog] != "" {
		t.Fatalf("the replacement has %q at /dev/sdg, want the template's fresh volume", freshLog)
	}
	if got := f.agentReportsBlank(t, res.New); got != freshLog {
		t.Fatalf("reported %s blank, want %s", got, freshLog)
	}
	r.Advance(5 * time.Second)
	last := f.tend(t, w)
	f.checkPool(t, last)
	if !f.deleted(freshLog) {
		t.Errorf("the replacement's blank fresh log volume %s was not deleted", freshLog)
	}
	in, _ = r.Instance(res.New)
	if got := groupconfig.SplitStateList(in.Tags[groupconfig.StateVolume]); !slices.Equal(got, vols) {
		t.Errorf("replacement %s = %v, want %v (the moved one, then the adopted one)", groupconfig.StateVolume, got, vols)
	}
	if got := in.Tags[groupconfig.StateMountPath]; got != "/data,/log" {
		t.Errorf("replacement %s = %q, want /data,/log", groupconfig.StateMountPath, got)
	}
	f.checkInvariants(t)
}

// TestPoolTwoDevicesScaleInThenOut: scale-in keeps both data volumes of the removed member, each
// pooled for its device; the member the scale-out launches gets both, each at its own device (a
// pass adopts one per member), and both of its blank fresh volumes are deleted.
func TestPoolTwoDevicesScaleInThenOut(t *testing.T) {
	f := newPoolFixtureDevices(t, 3, 4, twoDevices)
	w := f.workflow()
	f.setDesired(t, 2)
	f.waitMembers(t, 2)
	f.env.Region().Advance(2 * time.Minute)
	last := f.tend(t, w)
	if len(last.Waiting) != 2 || last.Waiting[0].Device == last.Waiting[1].Device {
		t.Fatalf("after scale-in: waiting %+v, want one volume per device", last.Waiting)
	}
	f.checkPool(t, last)
	f.setDesired(t, 3)
	var newID string
	for _, id := range f.waitMembers(t, 3) {
		if !f.isOriginal(id) {
			newID = id
		}
	}
	in, _ := f.env.Region().Instance(newID)
	var fresh []string
	for _, bd := range in.BlockDevices {
		if slices.Contains(twoDevices, bd.DeviceName) {
			fresh = append(fresh, bd.VolumeID)
		}
	}
	f.agentReportsBlank(t, newID)
	f.env.Region().Advance(5 * time.Second)
	last = f.tend(t, w)
	if len(last.Waiting) != 0 {
		t.Errorf("after scale-out: still waiting %+v", last.Waiting)
	}
	f.checkPool(t, last)
	for _, id := range fresh {
		if !f.deleted(id) {
			t.Errorf("fresh volume %s of %s was not deleted", id, newID)
		}
	}
	in, _ = f.env.Region().Instance(newID)
	if got := groupconfig.SplitStateList(in.Tags[groupconfig.StateVolume]); len(got) != 2 {
		t.Errorf("new member %s is assigned %v, want both pooled volumes", newID, got)
	}
	f.checkInvariants(t)
}

func newPoolFixtureDevices(t *testing.T, desired, max int32, devices []string) *fixture {
	t.Helper()
	f := newFixture(t, fixtureOpts{desired: desired, max: max, devices: devices})
	if _, err := f.workflow().EnsureKeepVolumes(context.Background(), f.inventory(t)); err != nil {
		t.Fatal(err)
	}
	return f
}

func eventuallyT(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestReplaceResumesAJournalOfOneBareVolume: a journal written before groups had several data
// volumes names its volume without a device (spotmax:state:data_volume=vol-…); a resume moves it
// to the group's data device.
func TestReplaceResumesAJournalOfOneBareVolume(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	old := f.members[0]
	vol := f.dataVolumesOf(t, old)[0]
	w := f.workflow()
	w.AfterPhase = func(_ string, p replace.Phase) error {
		if p == replace.PhaseLaunched {
			return errCrash
		}
		return nil
	}
	if _, err := f.replace(t, w, replace.Request{InstanceID: old, Reason: replace.ReasonManual}); err == nil {
		t.Fatal("the crash did not stop the replacement")
	}
	if err := f.setTag(old, groupconfig.StateJournalVolume, vol); err != nil {
		t.Fatal(err)
	}
	f.env.Region().Advance(5 * time.Second)
	js, err := f.workflow().InFlight(context.Background())
	if err != nil || len(js) != 1 || len(js[0].Volumes) != 1 || js[0].Volumes[0] != (replace.DataVolume{ID: vol}) {
		t.Fatalf("in flight: %+v, %v; want one journal naming %s without a device", js, err, vol)
	}
	res, err := f.replace(t, f.workflow(), replace.Request{InstanceID: old, Reason: replace.ReasonManual})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || !slices.Equal(res.Volumes, []string{vol}) {
		t.Errorf("result %+v, want the resumed move of %s", res, vol)
	}
	f.checkInvariants(t)
}
