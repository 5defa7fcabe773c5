package controller_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/controller"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/internal/syncbuf"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
	"github.com/spotmax/spotmax/pkg/source"
)

type env struct {
	*simtest.Env
	ec2 *ec2.Client
	asg *autoscaling.Client
}

func newEnv(t testing.TB, scale float64) *env {
	t.Helper()
	return newEnvFor(t, simtest.Start(t, sim.Options{TimeScale: scale}))
}

// newEnvFor wraps a started simulated region with SDK clients that retry fast.
func newEnvFor(t testing.TB, e *simtest.Env) *env {
	return &env{Env: e,
		ec2: ec2.NewFromConfig(e.Config),
		asg: autoscaling.NewFromConfig(e.Config)}
}

// tags returns a spotmax group's tags with quick delays, plus extra.
func tags(name string, extra map[string]string) map[string]string {
	t := map[string]string{
		groupconfig.TagGroup: name, groupconfig.TagPersistenceDev: "/dev/sdf", groupconfig.TagPersistenceMountPath: "/data",
		groupconfig.TagDetachingDelaySeconds: "0", groupconfig.TagPreactionDetachDelaySeconds: "0",
		groupconfig.TagPreactionTerminationDelaySeconds: "0",
	}
	for k, v := range extra {
		t[k] = v
	}
	return t
}

type recorder struct {
	mu     sync.Mutex
	counts map[metrics.Name]int
}

func (r *recorder) Record(_ context.Context, e metrics.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[metrics.Name]int{}
	}
	r.counts[e.Name]++
}
func (r *recorder) Gauge(context.Context, string, metrics.Counts) {}
func (r *recorder) count(n metrics.Name) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[n]
}

func (e *env) controller(rec *recorder) *controller.Controller {
	to := replace.DefaultTimeouts()
	to.Release = 20 * time.Second
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return &controller.Controller{
		Lister: &inventory.Lister{ASG: e.asg, EC2: e.ec2},
		Workflow: &replace.Workflow{EC2: e.ec2, ASG: e.asg, Clock: e.Region().Clock(),
			PollMin: 2 * time.Millisecond, PollMax: 20 * time.Millisecond, Timeouts: &to},
		Interval: 20 * time.Millisecond,
		Clock:    e.Region().Clock(),
		Metrics:  rec,
		Log:      log,
	}
}

// runFor runs the controller until cond holds or the timeout passes.
func runUntil(t *testing.T, c *controller.Controller, timeout time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("condition not reached after %s; stats %+v", timeout, c.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func members(r *sim.Region, group string) map[string]sim.Instance {
	g, _ := r.Group(group)
	out := map[string]sim.Instance{}
	for _, m := range g.Members {
		in, _ := r.Instance(m.InstanceID)
		out[m.InstanceID] = in
	}
	return out
}

func TestControllerRotatesAtGuaranteedLifetime(t *testing.T) {
	e := newEnv(t, 1000)
	orig := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 3, Max: 3,
		Tags: tags("web", map[string]string{groupconfig.TagGuaranteeLivingMins: "30", groupconfig.TagBufferMins: "1"})})
	rec := &recorder{}
	c := e.controller(rec)
	r := e.Region()
	var minInService = 1 << 30
	var maxReplacing int
	isOrig := map[string]bool{}
	dataVolumes := map[string]bool{}
	for _, id := range orig {
		isOrig[id] = true
		in, _ := r.Instance(id)
		for _, bd := range in.BlockDevices {
			if bd.DeviceName == "/dev/sdf" {
				dataVolumes[bd.VolumeID] = true
			}
		}
	}
	runUntil(t, c, 30*time.Second, func() bool {
		g, _ := r.Group("web")
		inService, left, replacing := 0, 0, 0
		for _, m := range g.Members {
			if m.LifecycleState == "InService" {
				inService++
			}
			if isOrig[m.InstanceID] {
				left++
			}
		}
		for _, in := range r.Instances() {
			if in.Tags[groupconfig.StatePhase] != "" && in.State == sim.StateRunning {
				replacing++
			}
		}
		minInService = min(minInService, inService)
		maxReplacing = max(maxReplacing, replacing)
		return left == 0 && c.Stats().Succeeded >= 3
	})
	if minInService < 3 {
		t.Errorf("InService dropped to %d during lifetime rotation, desired 3", minInService)
	}
	if maxReplacing > 1 {
		t.Errorf("%d replacements at once, spotmax:max_num_of_terminated_one_time is 1", maxReplacing)
	}
	if got := rec.count(metrics.LifetimeRotation); got < 3 {
		t.Errorf("LifetimeRotation recorded %d times, want ≥ 3", got)
	}
	for id, in := range members(r, "web") {
		if in.Market != sim.MarketSpot {
			t.Errorf("member %s is %s", id, in.Market)
		}
		if in.Tags[groupconfig.StateVolume] == "" {
			t.Errorf("member %s did not receive a data volume", id)
		}
	}
	for _, d := range r.DeletedVolumes() {
		if dataVolumes[d.VolumeID] {
			t.Errorf("data volume %s was deleted", d.VolumeID)
		}
	}
}

func TestControllerActsOnRelayedInterruptionAndResumesJournals(t *testing.T) {
	// At 100×, the notice's 2 minutes are 1.2 s of real time: enough on a loaded machine for the
	// relayed interruption to be acted on before the instance stops.
	e := newEnv(t, 100)
	ids := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 3, Tags: tags("web", nil)})
	r := e.Region()
	// The agent on ids[0] saw the notice and relayed it.
	if err := r.Interrupt(ids[0], ""); err != nil {
		t.Fatal(err)
	}
	in, _ := r.Instance(ids[0])
	notice := groupconfig.RelayedNotice{Action: "terminate", Time: in.Interruption.Time}.String()
	if _, err := e.ec2.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{ids[0]},
		Tags: []ec2types.Tag{{Key: aws.String(groupconfig.StateNotice), Value: aws.String(notice)}}}); err != nil {
		t.Fatal(err)
	}
	// A crashed replacement of ids[1] left a journal.
	crashAfterJoin(t, e, "web", ids[1])

	rec := &recorder{}
	c := e.controller(rec)
	logs := &lockedLog{}
	c.Log = slog.New(slog.NewTextHandler(logs, nil))
	runUntil(t, c, 30*time.Second, func() bool {
		ms := members(r, "web")
		_, a := ms[ids[0]]
		_, b := ms[ids[1]]
		return !a && !b && len(ms) == 2 && c.Stats().Succeeded >= 2
	})
	c.Wait()
	// The resume is logged with the journal's reason (issue 13).
	if out := logs.String(); !strings.Contains(out, `resume="manual, after joined"`) || !strings.Contains(out, "resuming a journaled replacement") {
		t.Errorf("the resume of %s is not logged with its reason:\n%s", ids[1], out)
	}
	if rec.count(metrics.InterruptionReceived) != 1 {
		t.Errorf("InterruptionReceived = %d, want 1 (the notice is acted on once)", rec.count(metrics.InterruptionReceived))
	}
	js, err := c.Workflow.InFlight(context.Background())
	if err != nil || len(js) != 0 {
		t.Errorf("journals left: %v %v", js, err)
	}
	gg, _ := r.Group("web")
	if gg.Max != 3 || gg.Desired != 2 {
		t.Errorf("max/desired = %d/%d, want 3/2", gg.Max, gg.Desired)
	}
}

func TestControllerFallsBackToOnDemandAndReverts(t *testing.T) {
	e := newEnv(t, 1000)
	ids := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 1, Max: 1,
		Tags: tags("web", map[string]string{groupconfig.TagODLeastLiveMins: "5"})})
	r := e.Region()
	in, _ := r.Instance(ids[0])
	pool := sim.PoolKey{InstanceType: "m5.large", AZ: in.AZ, Market: sim.MarketSpot}
	r.SetCapacity(pool, 1) // the current instance only: no spot for a replacement
	if err := r.Interrupt(ids[0], ""); err != nil {
		t.Fatal(err)
	}
	in, _ = r.Instance(ids[0])
	rec := &recorder{}
	c := e.controller(rec)
	c.Sources = []controller.Source{oneEvent(source.Event{Kind: source.KindInterruption, Instance: ids[0],
		Time: in.Interruption.Notice, Deadline: in.Interruption.Time, Source: "test"})}
	var standIn string
	runUntil(t, c, 30*time.Second, func() bool {
		for id, m := range members(r, "web") {
			if id != ids[0] && m.Market == sim.MarketOnDemand && m.Tags[groupconfig.StateVolume] != "" && c.Stats().Succeeded == 1 {
				standIn = id
				return true
			}
		}
		return false
	})
	if rec.count(metrics.OnDemandFallback) != 1 {
		t.Errorf("OnDemandFallback = %d, want 1", rec.count(metrics.OnDemandFallback))
	}
	// Spot capacity comes back; after od_least_live_mins the stand-in goes back to spot.
	r.SetCapacity(pool, -1)
	c = e.controller(rec)
	runUntil(t, c, 30*time.Second, func() bool {
		ms := members(r, "web")
		for _, m := range ms {
			if m.Market == sim.MarketSpot && m.Tags[groupconfig.StateVolume] != "" && len(ms) == 1 && c.Stats().Succeeded == 1 {
				return true
			}
		}
		return false
	})
	c.Wait()
	if _, still := members(r, "web")[standIn]; still {
		t.Error("the on-demand stand-in is still in the group")
	}
	if rec.count(metrics.RevertToSpot) != 1 {
		t.Errorf("RevertToSpot = %d, want 1", rec.count(metrics.RevertToSpot))
	}
}

func TestControllerLeavesInvalidAndIgnoredGroupsAlone(t *testing.T) {
	e := newEnv(t, 1000)
	e.CreateGroup(t, simtest.GroupSpec{Name: "bad", Spot: true, Desired: 1,
		Tags: tags("bad", map[string]string{groupconfig.TagGuaranteeLivingMins: "2", groupconfig.TagDetachingDelaySeconds: "abc"})})
	e.CreateGroup(t, simtest.GroupSpec{Name: "ignored", Spot: true, Desired: 1,
		Tags: tags("ignored", map[string]string{groupconfig.TagGuaranteeLivingMins: "2", groupconfig.TagIgnore: "true"})})
	r := e.Region()
	before := len(r.Instances())
	rec := &recorder{}
	c := e.controller(rec)
	r.Advance(10 * time.Minute) // far past the 2-minute lifetime
	runUntil(t, c, 10*time.Second, func() bool { return c.Stats().Reconciles >= 3 })
	if after := len(r.Instances()); after != before || c.Stats().Replacements != 0 {
		t.Errorf("controller acted: %d → %d instances, stats %+v", before, after, c.Stats())
	}
	if rec.count(metrics.InvalidConfiguration) < 1 {
		t.Error("invalid configuration not reported")
	}
}

// crashAfterJoin runs a manual replacement of id in group that stops (as a crash would) once
// its replacement has joined, leaving the journal for a resume.
func crashAfterJoin(t *testing.T, e *env, group, id string) {
	t.Helper()
	c0 := e.controller(&recorder{})
	crash := c0.Workflow
	crash.AfterPhase = func(_ string, p replace.Phase) error {
		if p == replace.PhaseJoined {
			return context.Canceled
		}
		return nil
	}
	g, err := c0.Lister.Group(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crash.Replace(context.Background(), g, replace.Request{InstanceID: id, Reason: replace.ReasonManual}); err == nil {
		t.Fatal("crash did not happen")
	}
}

// oneEvent is a source that emits one event.
type oneEvent source.Event

func (o oneEvent) Run(ctx context.Context, out chan<- source.Event) error {
	select {
	case out <- source.Event(o):
	case <-ctx.Done():
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestControllerRebalancePolicy(t *testing.T) {
	for _, handle := range []bool{false, true} {
		e := newEnv(t, 1000)
		extra := map[string]string{}
		if handle {
			extra[groupconfig.TagHandleRebalanceEvent] = "true"
		}
		ids := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 1, Max: 1, Tags: tags("web", extra)})
		rec := &recorder{}
		c := e.controller(rec)
		if _, err := c.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.Handle(context.Background(), source.Event{Kind: source.KindRebalance, Instance: ids[0], Time: time.Now(), Source: "test"})
		c.Wait()
		if got := c.Stats().Succeeded; (got == 1) != handle {
			t.Errorf("is_to_handle_rebalance_event=%v: %d replacements", handle, got)
		}
		if rec.count(metrics.RebalanceReceived) != 1 {
			t.Errorf("RebalanceReceived = %d, want 1", rec.count(metrics.RebalanceReceived))
		}
	}
}

func TestControllerReportsOrphanedDataVolume(t *testing.T) {
	e := newEnv(t, 1000)
	ids := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 2, Tags: tags("web", nil)})
	rec := &recorder{}
	c := e.controller(rec)
	logs := &lockedLog{}
	c.Log = slog.New(slog.NewTextHandler(logs, nil))
	if _, err := c.Reconcile(context.Background()); err != nil { // first sight: DeleteOnTermination off, volumes marked
		t.Fatal(err)
	}
	// The instance is lost without spotmax hearing of it; the group replaces it on its own.
	if _, err := e.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids[:1]}); err != nil {
		t.Fatal(err)
	}
	e.Region().Advance(2 * time.Minute)
	for i := 0; i < 3; i++ {
		if _, err := c.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.count(metrics.DataVolumeOrphaned); got != 1 {
		t.Errorf("DataVolumeOrphaned = %d, want 1 (reported once)", got)
	}
	// The group's new member already has a fresh volume no agent reported blank: the lost
	// member's data volume waits in the pool, said once.
	if n := strings.Count(logs.String(), "data volume waits in the pool"); n != 1 {
		t.Errorf("the pooled-volume warning was logged %d times over 3 reconciles, want once:\n%s", n, logs.String())
	}
	for _, d := range e.Region().DeletedVolumes() {
		if d.Device == "/dev/sdf" {
			t.Errorf("data volume %s was deleted", d.VolumeID)
		}
	}
}

// lockedLog is a buffer safe for concurrent writers and the reading test.
type lockedLog = syncbuf.Buffer
