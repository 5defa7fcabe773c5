package replace_test

import (
	"context"
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
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// fixture is a simulated region with one spotmax group whose instances keep a data volume.
type fixture struct {
	env     *simtest.Env
	ec2     *ec2.Client
	asg     *autoscaling.Client
	group   string
	members []string
	// markers maps each original data volume to its content marker.
	markers map[string]string
	// devices are the group's data devices (default /dev/sdf); device maps each original data
	// volume to its device, origin to the instance it started on.
	devices []string
	device  map[string]string
	origin  map[string]string
	desired int32
	max     int32
}

type fixtureOpts struct {
	desired, max int32
	tags         map[string]string
	noVolume     bool
	// devices are the data devices (default /dev/sdf); two make a group with data and log
	// volumes, mounted at /data and /log.
	devices   []string
	seed      int64
	scale     float64
	latencies *sim.Latencies
	// behaviors default to AWS's (sim.AWSBehaviors); a test that needs the kind world says so.
	behaviors *sim.Behaviors
	// warm makes the group a warm-pool group (warm_test.go): its spot members stay, the launch
	// template gets an on-demand latest version without the data device (AWS refuses warm pools
	// for spot templates), a warm pool of this many stopped instances, and is_warm_pool_first.
	warm int32
	// azs restricts the group to these AZs (default: the region's three).
	azs []string
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	if o.desired == 0 {
		o.desired = 2
	}
	if o.max == 0 {
		o.max = o.desired // full: the replacement needs MaxSize raised
	}
	if o.scale == 0 {
		o.scale = 1000
	}
	env := simtest.Start(t, sim.Options{TimeScale: o.scale, Seed: o.seed, Latencies: o.latencies, Behaviors: o.behaviors})
	tags := map[string]string{groupconfig.TagGroup: "web"}
	if len(o.devices) == 0 {
		o.devices = []string{"/dev/sdf"}
	}
	if !o.noVolume {
		tags[groupconfig.TagPersistenceDev] = strings.Join(o.devices, ",")
		tags[groupconfig.TagPersistenceMountPath] = strings.Join([]string{"/data", "/log", "/d3", "/d4"}[:len(o.devices)], ",")
	}
	for k, v := range o.tags {
		tags[k] = v
	}
	spec := simtest.GroupSpec{Name: "web", Spot: true, Desired: o.desired, Max: o.max, Tags: tags,
		NoPropagate: []string{groupconfig.TagPersistenceDev}, AZs: o.azs}
	if !o.noVolume {
		spec.DataDevice, spec.MoreDataDevices = o.devices[0], o.devices[1:]
	}
	members := env.CreateGroup(t, spec)
	if o.warm > 0 {
		makeWarm(t, env, "web", o.warm)
	}
	f := &fixture{
		env:     env,
		ec2:     ec2.NewFromConfig(env.Config),
		asg:     autoscaling.NewFromConfig(env.Config),
		group:   "web",
		members: members,
		markers: map[string]string{},
		devices: o.devices,
		device:  map[string]string{},
		origin:  map[string]string{},
		desired: o.desired,
		max:     o.max,
	}
	for _, id := range members {
		in, _ := env.Region().Instance(id)
		for _, bd := range in.BlockDevices {
			if !o.noVolume && slices.Contains(o.devices, bd.DeviceName) {
				v, _ := env.Region().Volume(bd.VolumeID)
				f.markers[bd.VolumeID] = v.Marker
				f.device[bd.VolumeID] = bd.DeviceName
				f.origin[bd.VolumeID] = id
			}
		}
	}
	return f
}

// workflow returns a workflow on the simulated clock with fast polls.
func (f *fixture) workflow(steps ...replace.PreDetachStep) *replace.Workflow {
	var regs []replace.PreDetach
	for _, s := range steps {
		regs = append(regs, replace.PreDetach{Step: s})
	}
	// At 1000× a stalled goroutine on a loaded machine is minutes of simulated time: generous
	// timeouts keep such stalls from failing a test, while Release keeps its meaning.
	to := replace.Timeouts{Running: 2 * time.Hour, InService: 2 * time.Hour, Detach: 2 * time.Hour, Volume: 2 * time.Hour,
		Release: 30 * time.Second,
		// EC2's launch visibility (3 s) and Auto Scaling's attach visibility (5 s) are on: a
		// zero Visible would take an instance not listed yet for one that left the group.
		Visible: 10 * time.Minute}
	return &replace.Workflow{
		EC2: f.ec2, ASG: f.asg, Steps: regs,
		Clock:   f.env.Region().Clock(),
		PollMin: 2 * time.Millisecond, PollMax: 20 * time.Millisecond,
		Timeouts: &to,
		// One actor whose identity survives its crashes, like a restarted controller: it resumes
		// its own journals at once. Tests of concurrent actors give each its own Owner.
		Owner: "test-actor", LeaseSettle: 5 * time.Millisecond, Lease: time.Hour,
	}
}

func (f *fixture) inventory(t testing.TB) *inventory.Group {
	t.Helper()
	for attempt := 0; ; attempt++ {
		g, err := (&inventory.Lister{ASG: f.asg, EC2: f.ec2}).Group(context.Background(), f.group)
		if err == nil {
			return g
		}
		if attempt == 20 {
			t.Fatalf("listing group: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

func (f *fixture) replace(t testing.TB, w *replace.Workflow, req replace.Request) (*replace.Result, error) {
	t.Helper()
	return w.Replace(context.Background(), f.inventory(t), req)
}

// checkInvariants checks what must hold after every replacement, finished or rolled back:
// every data volume exists with its content, attached to exactly one running member at its own
// device, and the volumes that started on one instance end on one instance (a replacement moves
// them all); no instance runs outside the group; MaxSize and desired are back; nothing was
// force-detached; no journal is left.
func (f *fixture) checkInvariants(t testing.TB) {
	t.Helper()
	r := f.env.Region()
	r.Step()
	g, ok := r.Group(f.group)
	if !ok {
		t.Fatalf("group %s is gone", f.group)
	}
	if g.Max != f.max {
		t.Errorf("MaxSize = %d, want %d restored", g.Max, f.max)
	}
	if g.Desired != f.desired {
		t.Errorf("desired = %d, want %d", g.Desired, f.desired)
	}
	if _, ok := g.Tag(groupconfig.StateGroupMaxSize); ok {
		t.Errorf("group still carries %s", groupconfig.StateGroupMaxSize)
	}
	members := map[string]bool{}
	for _, m := range g.Members {
		members[m.InstanceID] = true
	}
	warmed := map[string]bool{} // in the group's warm pool: running while it warms up
	for _, m := range r.WarmPoolMembers(f.group) {
		warmed[m.InstanceID] = true
	}
	for _, in := range r.Instances() {
		if in.State == sim.StateRunning || in.State == sim.StatePending {
			// Other groups' members are checked by their own tests (otherGroup.checkUntouched).
			if g, ok := r.GroupOf(in.ID); !members[in.ID] && !warmed[in.ID] && (!ok || g == f.group) {
				t.Errorf("instance %s (%s) is running outside any group", in.ID, in.State)
			}
		}
		for k := range in.Tags {
			if strings.HasPrefix(k, groupconfig.StatePrefix) && k != groupconfig.StateReplaces &&
				k != groupconfig.StateVolume && k != groupconfig.StateMountPath && in.State != sim.StateTerminated &&
				k != groupconfig.StateAgent && k != groupconfig.StateBlankVolume { // the agent's own reports
				t.Errorf("instance %s (%s) still carries journal tag %s", in.ID, in.State, k)
			}
		}
	}
	for _, d := range r.DeletedVolumes() {
		if _, ours := f.markers[d.VolumeID]; ours {
			t.Errorf("data volume %s was deleted", d.VolumeID)
		}
	}
	if fd := r.ForceDetaches(); len(fd) > 0 {
		t.Errorf("volumes were force-detached: %+v", fd)
	}
	holder := map[string][]string{} // origin → the instances its volumes are attached to
	for id, marker := range f.markers {
		v, ok := r.Volume(id)
		if !ok {
			t.Errorf("data volume %s is gone", id)
			continue
		}
		if v.Marker != marker {
			t.Errorf("data volume %s marker = %q, want %q", id, v.Marker, marker)
		}
		if v.Attachment == nil {
			t.Errorf("data volume %s is not attached", id)
			continue
		}
		in, _ := r.Instance(v.Attachment.InstanceID)
		if !members[in.ID] || in.State != sim.StateRunning {
			t.Errorf("data volume %s is attached to %s (%s, member %v), want a running member", id, in.ID, in.State, members[in.ID])
		}
		if want := f.device[id]; v.Attachment.Device != want {
			t.Errorf("data volume %s is at %s, want %s", id, v.Attachment.Device, want)
		}
		holder[f.origin[id]] = append(holder[f.origin[id]], in.ID)
	}
	for origin, on := range holder {
		for _, x := range on[1:] {
			if x != on[0] {
				t.Errorf("the data volumes that started on %s ended on different instances: %v", origin, on)
				break
			}
		}
	}
}

// capacityWatch records the lowest number of InService members while a proactive replacement
// runs.
type capacityWatch struct {
	mu   sync.Mutex
	min  int
	stop chan struct{}
	done chan struct{}
}

func watchCapacity(r *sim.Region, group string) *capacityWatch {
	w := &capacityWatch{min: 1 << 30, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			g, _ := r.Group(group)
			n := 0
			for _, m := range g.Members {
				if m.LifecycleState == "InService" {
					n++
				}
			}
			w.mu.Lock()
			w.min = min(w.min, n)
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(500 * time.Microsecond):
			}
		}
	}()
	return w
}

func (w *capacityWatch) Stop() int {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.min
}
