package replace_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// crossAZFixture is a group opted into cross-AZ moves (or not) whose first member's AZ has no
// capacity left for any launch option: spot and on-demand of the group's type.
func crossAZFixture(t testing.TB, optIn bool) (f *fixture, old, vol, az string) {
	t.Helper()
	tags := map[string]string{}
	if optIn {
		tags[groupconfig.TagCrossAZMove] = "true"
	}
	f = newFixture(t, fixtureOpts{tags: tags})
	r := f.env.Region()
	old = f.members[0]
	in, _ := r.Instance(old)
	az = in.AZ
	for _, bd := range in.BlockDevices {
		if bd.DeviceName == "/dev/sdf" {
			vol = bd.VolumeID
		}
	}
	for _, m := range []string{sim.MarketSpot, sim.MarketOnDemand} {
		r.SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: az, Market: m}, 0)
	}
	return f, old, vol, az
}

// checkCrossAZ checks what must hold after a cross-AZ move of src: the copy, in another AZ with
// the source's content, is the replacement's data volume (and the usual invariants hold for
// it); the source is kept with its content, attached to nothing and marked superseded by the
// copy; no snapshot is left; nothing was deleted.
func (f *fixture) checkCrossAZ(t testing.TB, res *replace.Result, src, srcAZ string) {
	t.Helper()
	r := f.env.Region()
	marker := f.markers[src]
	if res == nil || len(res.CrossAZ) != 1 {
		t.Fatalf("result %+v reports no single cross-AZ move", res)
	}
	m := res.CrossAZ[0]
	if m.Source != src || m.FromAZ != srcAZ || m.ToAZ == srcAZ || m.ToAZ != res.AZ || m.Volume == "" || m.Snapshot == "" || m.SizeGiB <= 0 {
		t.Errorf("cross-AZ move = %+v; want %s from %s to the replacement's AZ %s", m, src, srcAZ, res.AZ)
	}
	cp, ok := r.Volume(m.Volume)
	if !ok || cp.Marker != marker || cp.AZ != m.ToAZ || cp.SnapshotID != m.Snapshot {
		t.Fatalf("copy %s = %+v; want the source's content %q in %s, restored from %s", m.Volume, cp, marker, m.ToAZ, m.Snapshot)
	}
	if cp.Tags[groupconfig.TagGroup] != f.group || cp.Tags[groupconfig.StateDevice] != "/dev/sdf" ||
		cp.Tags[groupconfig.StateMovingFrom] != "" || cp.Tags[groupconfig.StateMovingTo] != "" {
		t.Errorf("copy tags = %v; want the group's data volume, no longer moving", cp.Tags)
	}
	s, ok := r.Volume(src)
	if !ok || s.Marker != marker || s.Attachment != nil || s.State != sim.VolumeAvailable {
		t.Errorf("source %s = %+v; want kept, available, with its content", src, s)
	}
	if s.Tags[groupconfig.StateSupersededBy] != m.Volume || s.Tags[groupconfig.TagGroup] != f.group {
		t.Errorf("source tags = %v; want %s=%s in group %s", s.Tags, groupconfig.StateSupersededBy, m.Volume, f.group)
	}
	for _, d := range r.DeletedVolumes() {
		if d.VolumeID == src || d.Marker == marker {
			t.Errorf("volume %s with the data was deleted (%s)", d.VolumeID, d.Reason)
		}
	}
	if snaps := r.Snapshots(); len(snaps) != 0 {
		t.Errorf("snapshots left: %v", snaps)
	}
	newInst, _ := r.Instance(res.New)
	if newInst.Tags[groupconfig.StateVolume] != m.Volume || newInst.Tags[groupconfig.StateMountPath] != "/data" {
		t.Errorf("replacement tags = %v; want the copy %s recorded for the agent", newInst.Tags, m.Volume)
	}
	// The copy now stands for the data: the usual invariants hold for it.
	delete(f.markers, src)
	f.markers[m.Volume] = marker
	f.device[m.Volume], f.origin[m.Volume] = f.device[src], f.origin[src]
	f.checkInvariants(t)
	// The pool lists the source as superseded: never offered to a member.
	w := f.workflow()
	vols, err := w.Pool(context.Background(), nil, map[string]replace.PoolGroup{f.group: {Devices: []groupconfig.DataDevice{{Device: "/dev/sdf"}}, Managed: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if v.VolumeID == src && v.Status != replace.PoolSuperseded {
			t.Errorf("pool lists the source %s as %s, want %s", src, v.Status, replace.PoolSuperseded)
		}
	}
}

// TestCrossAZMoveWhenTheVolumesAZHasNoCapacity: with spotmax:cross_az_move, a replacement whose
// data volume's AZ has neither spot nor on-demand capacity is launched in another AZ, and the
// data follows through a snapshot; the source is kept, the time and cost are reported.
func TestCrossAZMoveWhenTheVolumesAZHasNoCapacity(t *testing.T) {
	f, old, vol, az := crossAZFixture(t, true)
	w := f.workflow()
	rec := &recorder{}
	w.Metrics = rec
	plan, err := w.Plan(context.Background(), f.inventory(t), replace.Request{InstanceID: old})
	if err != nil {
		t.Fatal(err)
	}
	if plan.VolumeAZ != az || len(plan.CrossAZOptions) == 0 || !strings.Contains(strings.Join(plan.Steps, " "), "move-volume/cross-az-copy") {
		t.Errorf("plan = volume in %s, %d cross-AZ options, steps %v; want the volume's AZ %s, options elsewhere, the copy shown",
			plan.VolumeAZ, len(plan.CrossAZOptions), plan.Steps, az)
	}
	for _, o := range plan.CrossAZOptions {
		if o.AZ == az {
			t.Errorf("cross-AZ option %s is in the volume's AZ", o)
		}
	}
	res, err := f.replace(t, w, replace.Request{InstanceID: old})
	if err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if res.AZ == az || res.Market != replace.MarketSpot {
		t.Errorf("replacement: %s in %s; want spot in another AZ than %s", res.Market, res.AZ, az)
	}
	f.checkCrossAZ(t, res, vol, az)
	m := res.CrossAZ[0]
	t.Logf("cross-AZ move: %s; attempts %v", m, res.Attempts)
	if m.Seconds <= 0 || m.SnapshotSeconds <= 0 || m.SnapshotUSD <= 0 || m.SnapshotUSDPerMonth != float64(m.SizeGiB)*replace.SnapshotUSDPerGBMonth {
		t.Errorf("cross-AZ report = %+v; want its time, the snapshot's time and cost at $%.2f/GB-month", m, replace.SnapshotUSDPerGBMonth)
	}
	if got := rec.names(); !strings.Contains(got, string(metrics.VolumeMovedAcrossAZ)) || strings.Contains(got, string(metrics.ReplacementFailed)) {
		t.Errorf("metrics = %s; want %s and no failure", got, metrics.VolumeMovedAcrossAZ)
	}
	var action *metrics.Action
	for _, e := range rec.events {
		if a, ok := metrics.ActionFromEvent(e, "test"); ok && e.Name == metrics.ReplacementSucceeded {
			action = &a
		}
	}
	if action == nil || action.CrossAZ == nil || action.CrossAZ.Volume != m.Volume || action.CrossAZ.SnapshotUSD != m.SnapshotUSD || action.CrossAZ.Source != vol {
		t.Errorf("action record = %+v; want the cross-AZ move %+v in it", action, m)
	}
}

// TestCrossAZMoveIsOptIn: without the tag, the volume's AZ pins the replacement as before: no
// capacity there rolls the replacement back and the instance keeps its data.
func TestCrossAZMoveIsOptIn(t *testing.T) {
	f, old, vol, _ := crossAZFixture(t, false)
	plan, err := f.workflow().Plan(context.Background(), f.inventory(t), replace.Request{InstanceID: old})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.CrossAZOptions) != 0 {
		t.Errorf("plan without the tag has cross-AZ options %v", plan.CrossAZOptions)
	}
	_, err = f.replace(t, f.workflow(), replace.Request{InstanceID: old})
	if !errors.Is(err, replace.ErrNoCapacity) || !errors.Is(err, replace.ErrAborted) {
		t.Fatalf("err = %v; want no capacity, rolled back", err)
	}
	if v, _ := f.env.Region().Volume(vol); v.Attachment == nil || v.Attachment.InstanceID != old {
		t.Errorf("data volume %s after the rollback: %+v; want still on %s", vol, v.Attachment, old)
	}
	if snaps := f.env.Region().Snapshots(); len(snaps) != 0 {
		t.Errorf("snapshots taken without the opt-in: %v", snaps)
	}
	f.checkInvariants(t)
}

// crashSnapEC2 is crashEC2 with the snapshot calls of a cross-AZ move, so that a crash can hit
// them too.
type crashSnapEC2 struct {
	crashEC2
	api *ec2.Client
}

func (x crashSnapEC2) CreateSnapshot(ctx context.Context, in *ec2.CreateSnapshotInput, o ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error) {
	return do(x.c, func() (*ec2.CreateSnapshotOutput, error) { return x.api.CreateSnapshot(ctx, in, o...) })
}
func (x crashSnapEC2) DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, o ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	return do(x.c, func() (*ec2.DescribeSnapshotsOutput, error) { return x.api.DescribeSnapshots(ctx, in, o...) })
}
func (x crashSnapEC2) DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, o ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	return do(x.c, func() (*ec2.DeleteSnapshotOutput, error) { return x.api.DeleteSnapshot(ctx, in, o...) })
}
func (x crashSnapEC2) CreateVolume(ctx context.Context, in *ec2.CreateVolumeInput, o ...func(*ec2.Options)) (*ec2.CreateVolumeOutput, error) {
	return do(x.c, func() (*ec2.CreateVolumeOutput, error) { return x.api.CreateVolume(ctx, in, o...) })
}

var _ replace.SnapshotAPI = crashSnapEC2{}

// TestCrossAZMoveCrashes crashes the cross-AZ path at every API call, from the launch that gives
// up on the volume's AZ to the end of the move, before and after AWS acted; a resume by the same
// actor (a restarted controller) finishes the move with the data on the replacement, the source
// kept and no snapshot left behind.
func TestCrossAZMoveCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("crashes a cross-AZ move at each of its API calls (about a minute)")
	}
	for at := 1; ; at++ {
		done := false
		for _, after := range []bool{false, true} {
			t.Run(fmt.Sprintf("call%d/after=%v", at, after), func(t *testing.T) {
				f, old, vol, az := crossAZFixture(t, true)
				c := &crasher{}
				crashing := f.workflow()
				crashing.EC2 = crashSnapEC2{crashEC2: crashEC2{EC2API: f.ec2, c: c}, api: f.ec2}
				// Armed when the launch step starts: every call from the first launch attempt on
				// (spot and on-demand failing in the volume's AZ, the launch elsewhere, the join,
				// the detach and the whole copy) is a crash point.
				crashing.OnProgress = func(p replace.Progress) {
					if p.Step == replace.StepLaunch && !p.Done {
						c.mu.Lock()
						if c.at == 0 {
							c.at = c.calls + at
						}
						c.mu.Unlock()
					}
				}
				res, err := f.replace(t, crashing, replace.Request{InstanceID: old})
				if err == nil {
					done = true
				} else if !errors.Is(err, errCrash) {
					t.Fatalf("replacement failed without a crash: %v", err)
				} else {
					res, err = f.replace(t, f.workflow(), replace.Request{InstanceID: old})
					if err != nil {
						t.Fatalf("resume after a crash at call %d (after=%v): %v", at, after, err)
					}
					if !res.Resumed {
						t.Errorf("the run after the crash did not resume the journal: %+v", res)
					}
				}
				if len(res.CrossAZ) != 1 {
					// A move finished before the crash reports nothing on resume: the copy
					// is found by checkCrossAZ's fallback below.
					res.CrossAZ = []*replace.CrossAZMove{f.findCrossAZ(t, vol)}
				}
				f.checkCrossAZ(t, res, vol, az)
			})
		}
		if done || at > 200 {
			if !done {
				t.Fatal("the cross-AZ replacement never completed without a crash")
			}
			return
		}
	}
}

// TestCrossAZMoveWaitsForTheAgentsMount: where an agent runs on the replacement, the source is
// marked superseded only once the agent reports the copy mounted.
func TestCrossAZMoveWaitsForTheAgentsMount(t *testing.T) {
	f, old, vol, az := crossAZFixture(t, true)
	r := f.env.Region()
	stop := make(chan struct{})
	done := make(chan struct{})
	var sawSupersededEarly bool
	go func() {
		// Play the agent on every instance launched from now on: announce it, and once spotmax
		// records a data volume on it, check the source is still not superseded and "mount" it.
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			for _, in := range r.Instances() {
				if in.Tags[groupconfig.StateReplaces] != old || in.State != sim.StateRunning {
					continue
				}
				if _, ok := in.Tags[groupconfig.StateAgent]; !ok {
					_ = f.setTag(in.ID, groupconfig.StateAgent, "running test "+r.Clock().Now().UTC().Format(time.RFC3339))
				}
				if v := in.Tags[groupconfig.StateVolume]; v != "" && in.Tags[groupconfig.StateVolumeMounted] != v {
					if s, _ := r.Volume(vol); s.Tags[groupconfig.StateSupersededBy] != "" {
						sawSupersededEarly = true
					}
					_ = f.setTag(in.ID, groupconfig.StateVolumeMounted, v)
				}
			}
		}
	}()
	res, err := f.replace(t, f.workflow(), replace.Request{InstanceID: old})
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if sawSupersededEarly {
		t.Errorf("the source was marked superseded before the agent mounted the copy")
	}
	if len(res.CrossAZ) != 1 {
		t.Fatalf("no single cross-AZ move: %+v", res)
	}
	if in, _ := r.Instance(res.New); in.Tags[groupconfig.StateVolumeMounted] != res.CrossAZ[0].Volume {
		t.Errorf("agent's mount report = %q, want %s", in.Tags[groupconfig.StateVolumeMounted], res.CrossAZ[0].Volume)
	}
	// The agent's own report is not a journal tag, but checkInvariants knows only spotmax's.
	if _, err := f.ec2.DeleteTags(context.Background(), &ec2.DeleteTagsInput{Resources: []string{res.New},
		Tags: []ec2types.Tag{{Key: aws.String(groupconfig.StateVolumeMounted)}}}); err != nil {
		t.Fatal(err)
	}
	f.checkCrossAZ(t, res, vol, az)
}

// findCrossAZ rebuilds the report of a cross-AZ move of src from the region: its copy (named
// by the source's superseded tag) and that copy's snapshot.
func (f *fixture) findCrossAZ(t testing.TB, src string) *replace.CrossAZMove {
	t.Helper()
	s, _ := f.env.Region().Volume(src)
	cp, ok := f.env.Region().Volume(s.Tags[groupconfig.StateSupersededBy])
	if !ok {
		t.Fatalf("source %s names no copy (tags %v)", src, s.Tags)
	}
	return &replace.CrossAZMove{Source: src, Volume: cp.ID, FromAZ: s.AZ, ToAZ: cp.AZ, Snapshot: cp.SnapshotID, SizeGiB: cp.Size}
}

// TestCrossAZMoveOnInterruption: an interrupted instance whose volume's AZ has no capacity left
// (the usual cause of an interruption) gets its replacement elsewhere with the data; with the
// volume already released by the agent when the replacement runs, the copy is made before the
// replacement joins (volume-first).
func TestCrossAZMoveOnInterruption(t *testing.T) {
	for _, released := range []bool{false, true} {
		t.Run(fmt.Sprintf("released=%v", released), func(t *testing.T) {
			f, old, vol, az := crossAZFixture(t, true)
			r := f.env.Region()
			if released {
				// The agent saw the notice and unmounted the volume.
				if err := f.setTag(old, groupconfig.StateAgent, "running test "+r.Clock().Now().UTC().Format(time.RFC3339)); err != nil {
					t.Fatal(err)
				}
				if err := f.setTag(old, groupconfig.StateVolumeReleased, vol); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Interrupt(old, ""); err != nil {
				t.Fatal(err)
			}
			in, _ := r.Instance(old)
			var steps []string
			w := f.workflow()
			w.OnProgress = func(p replace.Progress) {
				if !p.Done && p.Detail == "" {
					steps = append(steps, p.Step)
				}
			}
			res, err := f.replace(t, w, replace.Request{InstanceID: old, Reason: replace.ReasonInterruption, Deadline: in.Interruption.Time})
			if err != nil {
				t.Fatalf("Replace: %v", err)
			}
			order := strings.Join(steps, " ")
			if volumeFirst := strings.Index(order, replace.StepMoveVolume) < strings.Index(order, replace.StepJoin); volumeFirst != released {
				t.Errorf("steps %s: the copy before the join = %v, want %v", order, volumeFirst, released)
			}
			f.checkCrossAZ(t, res, vol, az)
		})
	}
}
