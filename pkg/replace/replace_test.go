package replace_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

func TestReplaceMovesDataVolumeToSpotReplacement(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	old := f.members[0]
	oldInst, _ := f.env.Region().Instance(old)
	watch := watchCapacity(f.env.Region(), f.group)
	res, err := f.replace(t, f.workflow(), replace.Request{InstanceID: old, Reason: replace.ReasonManual})
	minInService := watch.Stop()
	if err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if res.New == "" || res.New == old || res.Market != replace.MarketSpot || res.Type != "m5.large" {
		t.Errorf("result = %+v, want a spot m5.large replacement", res)
	}
	if res.AZ != oldInst.AZ {
		t.Errorf("replacement in %s, want the data volume's AZ %s", res.AZ, oldInst.AZ)
	}
	if minInService < int(f.desired) {
		t.Errorf("InService members dropped to %d during a proactive replacement, desired %d", minInService, f.desired)
	}
	f.checkInvariants(t)
	newInst, _ := f.env.Region().Instance(res.New)
	if newInst.Tags[groupconfig.StateVolume] != res.Volumes[0] || newInst.Tags[groupconfig.StateMountPath] != "/data" {
		t.Errorf("replacement tags = %v, want the volume and mount path recorded for the agent", newInst.Tags)
	}
	if newInst.Tags[groupconfig.TagGroup] != "web" || newInst.Tags[groupconfig.StateReplaces] != old {
		t.Errorf("replacement tags = %v, want spotmax:group and the link to %s", newInst.Tags, old)
	}
	for _, bd := range newInst.BlockDevices {
		if bd.DeviceName == "/dev/sdf" && (bd.VolumeID != res.Volumes[0] || bd.DeleteOnTermination) {
			t.Errorf("replacement /dev/sdf = %+v, want volume %s with DeleteOnTermination off", bd, res.Volumes[0])
		}
	}
	if _, moved := f.markers[res.Volumes[0]]; !moved {
		t.Errorf("moved volume %s is not the old instance's data volume", res.Volumes[0])
	}
	if in, _ := f.env.Region().Instance(old); in.State != sim.StateShuttingDown && in.State != sim.StateTerminated {
		t.Errorf("old instance is %s, want terminated", in.State)
	}
}

func TestReplaceUsesAgentRelease(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	old := f.members[0]
	// The agent announces itself: a replacement waits for a release only where one runs.
	if err := f.setTag(old, groupconfig.StateAgent, "running test "+f.env.Region().Clock().Now().UTC().Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
	// Play the agent: once the old instance is marked retiring, "unmount" and report the release.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			in, _ := f.env.Region().Instance(old)
			if in.Tags[groupconfig.StateRetiring] == "" {
				continue
			}
			for _, bd := range in.BlockDevices {
				if bd.DeviceName == "/dev/sdf" {
					_ = f.setTag(old, groupconfig.StateVolumeReleased, bd.VolumeID)
					return
				}
			}
		}
	}()
	w := f.workflow()
	to := *w.Timeouts
	to.Release = time.Hour // only the agent's release may free the volume
	w.Timeouts = &to
	rec := &recorder{}
	w.Metrics = rec
	res, err := f.replace(t, w, replace.Request{InstanceID: old, Reason: replace.ReasonLifetime})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if got, want := rec.names(), "ReplacementStarted,VolumeMoved,ReplacementSucceeded,LifetimeRotation"; got != want {
		t.Errorf("metrics = %s, want %s", got, want)
	}
	f.checkInvariants(t)
	if len(res.Volumes) == 0 {
		t.Error("no volume moved")
	}
}

func TestReplaceFallsBackThroughAlternativesToOnDemand(t *testing.T) {
	f := newFixture(t, fixtureOpts{tags: map[string]string{"spotmax:alt1": "m5a.large", "spotmax:alt2": "m6i.large"}})
	r := f.env.Region()
	old := f.members[0]
	in, _ := r.Instance(old)
	az := in.AZ
	dry := func(typ, market string) { r.SetCapacity(sim.PoolKey{InstanceType: typ, AZ: az, Market: market}, 0) }

	dry("m5.large", sim.MarketSpot)
	res, err := f.replace(t, f.workflow(), replace.Request{InstanceID: old})
	if err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if res.Type != "m5a.large" || res.Market != replace.MarketSpot {
		t.Errorf("got %s %s, want spot m5a.large (first alternative)", res.Market, res.Type)
	}
	if len(res.Attempts) != 2 || !strings.Contains(res.Attempts[0].Error, "InsufficientInstanceCapacity") {
		t.Errorf("attempts = %+v", res.Attempts)
	}
	f.checkInvariants(t)

	dry("m5a.large", sim.MarketSpot)
	dry("m6i.large", sim.MarketSpot)
	res, err = f.replace(t, f.workflow(), replace.Request{InstanceID: res.New})
	if err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if res.Type != "m5.large" || res.Market != replace.MarketOnDemand {
		t.Errorf("got %s %s, want on-demand m5.large", res.Market, res.Type)
	}
	f.checkInvariants(t)

	// Nothing left: the replacement fails and the instance keeps serving, untouched.
	dry("m5.large", sim.MarketOnDemand)
	before := len(r.Instances())
	served := res.New
	_, err = f.replace(t, f.workflow(), replace.Request{InstanceID: served})
	if !errors.Is(err, replace.ErrNoCapacity) || !errors.Is(err, replace.ErrAborted) {
		t.Fatalf("err = %v, want no capacity, rolled back", err)
	}
	for _, want := range []string{"spot m5.large", "spot m5a.large", "spot m6i.large", "on-demand m5.large", "keeps serving"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if after := len(r.Instances()); after != before {
		t.Errorf("a failed replacement left %d new instance(s)", after-before)
	}
	if in, _ := r.Instance(served); in.State != sim.StateRunning {
		t.Errorf("instance is %s after a failed replacement, want running", in.State)
	}
	f.checkInvariants(t)
}

func TestReplaceOnlyOnDemandAndRevert(t *testing.T) {
	f := newFixture(t, fixtureOpts{noVolume: true, tags: map[string]string{groupconfig.TagOnlyODRep: "true"}})
	res, err := f.replace(t, f.workflow(), replace.Request{InstanceID: f.members[0]})
	if err != nil {
		t.Fatal(err)
	}
	if res.Market != replace.MarketOnDemand {
		t.Errorf("market = %s, want on-demand (is_only_od_rep)", res.Market)
	}
	f.checkInvariants(t)
	plan, err := f.workflow().Plan(context.Background(), f.inventory(t), replace.Request{InstanceID: res.New, Reason: replace.ReasonRevert})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range plan.Options {
		if o.Market != replace.MarketSpot || o.InstanceType != "m5.large" {
			t.Errorf("revert option %v, want spot m5.large only", o)
		}
	}
}

func TestReplaceWithoutVolumePrefersEmptiestAZ(t *testing.T) {
	f := newFixture(t, fixtureOpts{noVolume: true, desired: 3, max: 5})
	g := f.inventory(t)
	// Members are spread one per AZ; replacing the one in AZ a must prefer... any AZ but with the
	// old one excluded from the count, its own AZ has zero members and comes first.
	var old inventory.Instance
	for _, m := range g.Members {
		if m.AZ == "us-east-1b" {
			old = m
		}
	}
	plan, err := f.workflow().Plan(context.Background(), g, replace.Request{InstanceID: old.ID})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Options[0].AZ != "us-east-1b" || len(plan.Volumes) != 0 {
		t.Errorf("first option %v volume %q, want us-east-1b (emptiest once the old one goes) and no volume", plan.Options[0], plan.Volumes)
	}
	if len(plan.Options) != 6 { // spot and on-demand in each of 3 AZs
		t.Errorf("options = %v", plan.Options)
	}
}

func TestReplaceRefusals(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	w := f.workflow()
	g := f.inventory(t)

	cases := []struct {
		name string
		g    func() *inventory.Group
		id   string
		want string
	}{
		{"not a member", func() *inventory.Group { return g }, "i-0000000000000dead", "not found"},
		{"ignored group", func() *inventory.Group {
			c := *g
			cfg := *g.Config
			cfg.Ignore = true
			c.Config = &cfg
			return &c
		}, f.members[0], "ignore_tag"},
		{"invalid config", func() *inventory.Group {
			c := *g
			c.Config = nil
			c.ConfigErr = &groupconfig.ValidationError{Group: "web", Problems: []groupconfig.Problem{{Group: "web", Tag: groupconfig.TagDetachingDelaySeconds, Value: "abc", Reason: "not a number"}}}
			return &c
		}, f.members[0], "configuration is invalid"},
		{"not spotmax", func() *inventory.Group {
			c := *g
			c.Config = nil
			return &c
		}, f.members[0], "is not managed by spotmax"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.env.Region().ResetCalls()
			_, err := w.Replace(ctx, tc.g(), replace.Request{InstanceID: tc.id})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			for _, c := range f.env.Region().Calls() {
				if strings.HasPrefix(c.Action, "ec2:RunInstances") || strings.Contains(c.Action, "CreateTags") {
					t.Errorf("a refused replacement called %s", c.Action)
				}
			}
		})
	}

	// A data volume whose AZ no subnet of the group covers.
	in, _ := f.env.Region().Instance(f.members[0])
	var subnets []string
	for _, az := range f.env.Region().AZs() {
		if az.Name != in.AZ {
			id, _ := f.env.Region().DefaultSubnet(az.Name)
			subnets = append(subnets, id)
		}
	}
	if _, err := f.asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"), VPCZoneIdentifier: aws.String(strings.Join(subnets, ","))}); err != nil {
		t.Fatal(err)
	}
	_, err := w.Replace(ctx, f.inventory(t), replace.Request{InstanceID: f.members[0]})
	if !errors.Is(err, replace.ErrRefused) || !strings.Contains(err.Error(), in.AZ) {
		t.Errorf("err = %v, want a refusal naming %s", err, in.AZ)
	}
}

// recordStep is a pre-detach step that records its runs and fails when told.
type recordStep struct {
	name string
	mu   sync.Mutex
	runs []string
	fail error
	log  *[]string
}

func (s *recordStep) Name() string                  { return s.name }
func (s *recordStep) Enabled(*inventory.Group) bool { return true }
func (s *recordStep) Run(_ context.Context, t replace.Target) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = append(s.runs, t.Old.ID+"->"+t.New)
	*s.log = append(*s.log, s.name)
	return s.fail
}

func TestReplacePreDetachStepsOrderAndFailures(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var order []string
	consul := &recordStep{name: "consul", log: &order}
	drain := &recordStep{name: "drain", log: &order}
	res, err := f.replace(t, f.workflow(consul, drain), replace.Request{InstanceID: f.members[0]})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "consul,drain" || consul.runs[0] != f.members[0]+"->"+res.New {
		t.Errorf("steps ran %v (%v), want consul then drain on %s->%s", order, consul.runs, f.members[0], res.New)
	}
	f.checkInvariants(t)

	// A failing step aborts a proactive replacement: the old instance keeps serving.
	order = nil
	drain.fail = errors.New("pods would not leave")
	old := f.members[1]
	before := len(f.env.Region().Instances())
	_, err = f.replace(t, f.workflow(consul, drain), replace.Request{InstanceID: old, Reason: replace.ReasonLifetime})
	if !errors.Is(err, replace.ErrAborted) || !strings.Contains(err.Error(), "pods would not leave") {
		t.Fatalf("err = %v, want aborted with the step's error", err)
	}
	f.env.Region().Advance(time.Minute)
	if in, _ := f.env.Region().Instance(old); in.State != sim.StateRunning || in.Tags[groupconfig.StateRetiring] != "" {
		t.Errorf("old instance after abort: %s, tags %v", in.State, in.Tags)
	}
	n := 0
	for _, in := range f.env.Region().Instances() {
		if in.State == sim.StateRunning {
			n++
		}
	}
	if got := len(f.env.Region().Instances()) - before; got != 1 {
		t.Errorf("abort left %d new instances, want the one launched (now terminated)", got)
	}
	if n != int(f.desired) {
		t.Errorf("%d running instances after abort, want %d", n, f.desired)
	}
	f.checkInvariants(t)

	// On an interrupted instance the failure is a warning and the replacement goes on.
	r := f.env.Region()
	if err := r.Interrupt(old, ""); err != nil {
		t.Fatal(err)
	}
	in, _ := r.Instance(old)
	res, err = f.replace(t, f.workflow(consul, drain), replace.Request{InstanceID: old, Reason: replace.ReasonInterruption, Deadline: in.Interruption.Time})
	if err != nil {
		t.Fatalf("interrupted replacement: %v", err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "pods would not leave") {
		t.Errorf("warnings = %v", res.Warnings)
	}
	f.checkInvariants(t)
}

func TestReplaceInterruptedInstanceWithoutAgent(t *testing.T) {
	// At 100× the notice is 1.2 s of wall time (120 ms at the usual 1000×, which a loaded machine
	// can spend before the replacement gets to its detach): the test asserts that spotmax
	// terminated the instance before EC2 did, so the notice must outlast the machine's load.
	f := newFixture(t, fixtureOpts{scale: 100})
	r := f.env.Region()
	old := f.members[0]
	if err := r.Interrupt(old, ""); err != nil {
		t.Fatal(err)
	}
	in, _ := r.Instance(old)
	start := r.Clock().Now()
	res, err := f.replace(t, f.workflow(), replace.Request{InstanceID: old, Reason: replace.ReasonInterruption, Deadline: in.Interruption.Time})
	if err != nil {
		t.Fatal(err)
	}
	// No agent runs on it: nothing would report a release, so the detached instance is
	// terminated at once, well before EC2 would stop it at the notice's end, and its shutdown
	// frees the volume (not a forced detach, which checkInvariants rules out).
	if o, _ := r.Instance(old); o.StateReason != "Client.UserInitiatedShutdown" {
		t.Errorf("old instance %s state reason %q (replacement from %s to %s, deadline %s), want terminated by spotmax before EC2 took it",
			old, o.StateReason, start, r.Clock().Now(), in.Interruption.Time)
	}
	f.checkInvariants(t)
	if len(res.Volumes) == 0 {
		t.Error("no volume moved")
	}
}

func TestReplaceForceDetachOnlyWhenAsked(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	w := f.workflow()
	to := *w.Timeouts
	to.Release = 10 * time.Second
	w.Timeouts = &to
	res, err := f.replace(t, w, replace.Request{InstanceID: f.members[0], Reason: replace.ReasonManual, ForceDetach: true})
	if err != nil {
		t.Fatal(err)
	}
	fd := f.env.Region().ForceDetaches()
	if len(fd) != 1 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "force-detached") {
		t.Errorf("force detaches %+v, warnings %v; want exactly one, reported", fd, res.Warnings)
	}
}

func TestEnsureKeepVolumes(t *testing.T) {
	f := newFixture(t, fixtureOpts{desired: 3, max: 3})
	changed, err := f.workflow().EnsureKeepVolumes(context.Background(), f.inventory(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 3 {
		t.Errorf("changed %v, want all 3 members", changed)
	}
	for _, id := range f.members {
		in, _ := f.env.Region().Instance(id)
		for _, bd := range in.BlockDevices {
			if bd.DeviceName == "/dev/sdf" && bd.DeleteOnTermination {
				t.Errorf("%s /dev/sdf still DeleteOnTermination", id)
			}
		}
	}
	changed, _ = f.workflow().EnsureKeepVolumes(context.Background(), f.inventory(t))
	if len(changed) != 0 {
		t.Errorf("second pass changed %v, want nothing", changed)
	}
}

func (f *fixture) setTag(id, k, v string) error {
	var err error
	f.env.Region().Do(func() {})
	_, err = f.ec2.CreateTags(context.Background(), createTags(id, k, v))
	return err
}

type recorder struct {
	mu     sync.Mutex
	events []metrics.Event
}

func (r *recorder) Record(_ context.Context, e metrics.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) names() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, string(e.Name))
	}
	return strings.Join(out, ",")
}

func TestFillStandsInForAFailedLaunch(t *testing.T) {
	f := newFixture(t, fixtureOpts{desired: 1, max: 2, noVolume: true, tags: map[string]string{"spotmax:alt1": "m5a.large"}})
	r := f.env.Region()
	w := f.workflow()
	if res, err := w.Fill(context.Background(), f.inventory(t)); err != nil || res != nil {
		t.Fatalf("Fill of a full group = %+v, %v; want nothing to do", res, err)
	}
	for _, az := range r.AZs() {
		r.SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: az.Name, Market: sim.MarketSpot}, 0)
	}
	if err := r.SetGroupDesired("web", 2); err != nil {
		t.Fatal(err)
	}
	res, err := w.Fill(context.Background(), f.inventory(t))
	if err != nil || res == nil {
		t.Fatalf("Fill: %+v, %v", res, err)
	}
	if res.Market != replace.MarketSpot || res.Type != "m5a.large" {
		t.Errorf("stand-in %s %s, want spot m5a.large (the alternative type)", res.Market, res.Type)
	}
	f.desired = 2
	r.Advance(time.Minute)
	g, _ := r.Group("web")
	if len(g.Members) != 2 || g.Desired != 2 || g.Max != 2 {
		t.Errorf("group after fill: %d members, desired %d, max %d; want 2/2/2", len(g.Members), g.Desired, g.Max)
	}
	in, _ := r.Instance(res.New)
	if in.Tags[groupconfig.StateFill] != "" {
		t.Errorf("stand-in still tagged %s", groupconfig.StateFill)
	}
	f.checkInvariants(t)
}
