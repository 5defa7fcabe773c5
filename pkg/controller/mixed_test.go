package controller_test

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/controller"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/internal/syncbuf"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
	"github.com/spotmax/spotmax/pkg/source"
)

// mixedGroup creates a mixed instances group "web" of three members through the SDK: on-demand
// base 1, 0 % on-demand above it, overrides m5.large then m5a.large (the second with a
// template of its own), a data volume at /dev/sdf; it returns the id of the second template.
func mixedGroup(t *testing.T, e *env, extra map[string]string) string {
	t.Helper()
	ctx := context.Background()
	data := func(typ string) *ec2types.RequestLaunchTemplateData {
		return &ec2types.RequestLaunchTemplateData{
			ImageId: aws.String("ami-12345678"), InstanceType: ec2types.InstanceType(typ),
			MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{InstanceMetadataTags: ec2types.LaunchTemplateInstanceMetadataTagsStateEnabled},
			BlockDeviceMappings: []ec2types.LaunchTemplateBlockDeviceMappingRequest{{DeviceName: aws.String("/dev/sdf"),
				Ebs: &ec2types.LaunchTemplateEbsBlockDeviceRequest{VolumeSize: aws.Int32(20), DeleteOnTermination: aws.Bool(true)}}},
		}
	}
	if _, err := e.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web-lt"), LaunchTemplateData: data("m5.large")}); err != nil {
		t.Fatal(err)
	}
	alt, err := e.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web-m5a"), LaunchTemplateData: data("m5a.large")})
	if err != nil {
		t.Fatal(err)
	}
	var tg []astypes.Tag
	for k, v := range tags("web", extra) {
		tg = append(tg, astypes.Tag{Key: aws.String(k), Value: aws.String(v), PropagateAtLaunch: aws.Bool(k != groupconfig.TagPersistenceDev),
			ResourceId: aws.String("web"), ResourceType: aws.String("auto-scaling-group")})
	}
	var azs []string
	for _, az := range e.Region().AZs() {
		azs = append(azs, az.Name)
	}
	_, err = e.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"), MinSize: aws.Int32(0), MaxSize: aws.Int32(3), DesiredCapacity: aws.Int32(3),
		AvailabilityZones: azs, Tags: tg,
		MixedInstancesPolicy: &astypes.MixedInstancesPolicy{
			InstancesDistribution: &astypes.InstancesDistribution{OnDemandBaseCapacity: aws.Int32(1), OnDemandPercentageAboveBaseCapacity: aws.Int32(0)},
			LaunchTemplate: &astypes.LaunchTemplate{
				LaunchTemplateSpecification: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web-lt"), Version: aws.String("$Latest")},
				Overrides: []astypes.LaunchTemplateOverrides{{InstanceType: aws.String("m5.large")},
					{InstanceType: aws.String("m5a.large"), LaunchTemplateSpecification: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web-m5a")}}},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.WaitInService(t, "web", 3)
	return aws.ToString(alt.LaunchTemplate.LaunchTemplateId)
}

// markets returns the group's members by market, each list oldest first.
func markets(r *sim.Region) (od, spot []sim.Instance) {
	for _, m := range members(r, "web") {
		if m.Market == sim.MarketOnDemand {
			od = append(od, m)
		} else {
			spot = append(spot, m)
		}
	}
	for _, l := range [][]sim.Instance{od, spot} {
		sort.Slice(l, func(i, j int) bool { return l[i].LaunchTime.Before(l[j].LaunchTime) })
	}
	return od, spot
}

// steady reports whether the group has three members, none being replaced, each with its data
// volume.
func steady(r *sim.Region, c *controller.Controller) bool {
	ms := members(r, "web")
	st := c.Stats()
	if len(ms) != 3 || st.Replacements != st.Succeeded+st.Failed+st.AlreadyDone {
		return false
	}
	for _, m := range ms {
		if m.State != "running" || m.Tags[groupconfig.StatePhase] != "" {
			return false
		}
		found := false
		for _, bd := range m.BlockDevices {
			found = found || bd.DeviceName == "/dev/sdf"
		}
		if !found {
			return false
		}
	}
	return true
}

func interruptionOf(r *sim.Region, id string) source.Event {
	in, _ := r.Instance(id)
	return source.Event{Kind: source.KindInterruption, Instance: id, Time: in.Interruption.Notice,
		Deadline: in.Interruption.Time, Source: "test"}
}

// TestMixedGroupKeepsOnDemandBase is issue 12's acceptance: a mixed instances group with an
// on-demand base of 1 keeps exactly one on-demand member through interruptions, reverts and
// rotations; replacements use the policy's overrides (and their templates) as alternatives.
func TestMixedGroupKeepsOnDemandBase(t *testing.T) {
	e := newEnv(t, 1000)
	altLT := mixedGroup(t, e, map[string]string{groupconfig.TagODLeastLiveMins: "1"})
	r := e.Region()
	od, spot := markets(r)
	if len(od) != 1 || len(spot) != 2 {
		t.Fatalf("the group launched %d on-demand and %d spot members; want 1 and 2", len(od), len(spot))
	}
	base := od[0].ID
	rec := &recorder{}

	// 1. An interruption of a spot member whose type has no spot left in its AZ: the
	// replacement is the next override on spot, launched from that override's template; the
	// on-demand base member, older than od_least_live_mins, is not "reverted".
	victim := spot[0]
	exhausted := sim.PoolKey{InstanceType: victim.Type, AZ: victim.AZ, Market: sim.MarketSpot}
	r.SetCapacity(exhausted, 0)
	if err := r.Interrupt(victim.ID, ""); err != nil {
		t.Fatal(err)
	}
	c := e.controller(rec)
	c.Sources = []controller.Source{oneEvent(interruptionOf(r, victim.ID))}
	start := r.Clock().Now()
	runUntil(t, c, 60*time.Second, func() bool {
		_, gone := members(r, "web")[victim.ID]
		return !gone && c.Stats().Succeeded == 1 && steady(r, c) && r.Clock().Now().Sub(start) > 5*time.Minute
	})
	c.Wait()
	r.SetCapacity(exhausted, -1)
	od, spot = markets(r)
	if len(od) != 1 || od[0].ID != base {
		t.Fatalf("after the interruption: on-demand members %v; want only the base %s", ids(od), base)
	}
	var repl sim.Instance
	for _, s := range spot {
		if s.ID != victim.ID && s.LaunchTime.After(victim.LaunchTime) {
			repl = s
		}
	}
	wantType := "m5a.large"
	if victim.Type == "m5a.large" {
		wantType = "m5.large"
	}
	if repl.Type != wantType || repl.Market != sim.MarketSpot {
		t.Errorf("replacement %s is %s %s; want spot %s (the other override)", repl.ID, repl.Market, repl.Type, wantType)
	}
	if wantType == "m5a.large" && (repl.LaunchTemplate == nil || repl.LaunchTemplate.ID != altLT) {
		t.Errorf("replacement %s launched from %+v; want the override's template %s", repl.ID, repl.LaunchTemplate, altLT)
	}
	if n := rec.count(metrics.RevertToSpot); n != 0 {
		t.Errorf("RevertToSpot = %d after phase 1; the base member is no stand-in", n)
	}

	// 2. An interruption with no spot of either override in the AZ: an on-demand stand-in;
	// once spot is back and od_least_live_mins has passed, the stand-in (not the base) goes
	// back to spot.
	_, spot = markets(r)
	victim = spot[0]
	pools := []sim.PoolKey{{InstanceType: "m5.large", AZ: victim.AZ, Market: sim.MarketSpot}, {InstanceType: "m5a.large", AZ: victim.AZ, Market: sim.MarketSpot}}
	for _, p := range pools {
		r.SetCapacity(p, 0)
	}
	r.SetCapacity(sim.PoolKey{InstanceType: victim.Type, AZ: victim.AZ, Market: sim.MarketSpot}, 1) // the victim's own
	if err := r.Interrupt(victim.ID, ""); err != nil {
		t.Fatal(err)
	}
	c = e.controller(rec)
	c.Sources = []controller.Source{oneEvent(interruptionOf(r, victim.ID))}
	fallbacks := rec.count(metrics.OnDemandFallback)
	runUntil(t, c, 60*time.Second, func() bool {
		// The stand-in may go back to spot within this run already: the victim's own pool has
		// room again once it is gone, and od_least_live_mins is 60 ms of real time. So the
		// fallback is read from its metric, not from two on-demand members seen at once.
		_, gone := members(r, "web")[victim.ID]
		return !gone && rec.count(metrics.OnDemandFallback) == fallbacks+1 && steady(r, c)
	})
	c.Wait()
	for _, p := range pools {
		r.SetCapacity(p, -1)
	}
	c = e.controller(rec)
	runUntil(t, c, 60*time.Second, func() bool {
		od, _ := markets(r)
		return len(od) == 1 && rec.count(metrics.RevertToSpot) == 1 && steady(r, c)
	})
	c.Wait()
	if od, _ = markets(r); len(od) != 1 || od[0].ID != base {
		t.Fatalf("after the revert: on-demand members %v; want only the base %s", ids(od), base)
	}

	// 3. Rotations at the guaranteed lifetime: every member is replaced, the base by
	// on-demand, the others by spot; exactly one on-demand member remains.
	before := members(r, "web")
	if _, err := e.asg.CreateOrUpdateTags(context.Background(), &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{
		{Key: aws.String(groupconfig.TagGuaranteeLivingMins), Value: aws.String("60"), ResourceId: aws.String("web"), ResourceType: aws.String("auto-scaling-group")},
	}}); err != nil {
		t.Fatal(err)
	}
	// Every member is past its lifetime (60 minutes, the most the tag allows); their replacements
	// are due again only 3.6 s of real time later, so one generation of rotations ends before the
	// next starts on a loaded machine.
	if err := r.Clock().Sleep(context.Background(), 60*time.Minute); err != nil {
		t.Fatal(err)
	}
	c = e.controller(rec)
	maxOD := 0
	runUntil(t, c, 120*time.Second, func() bool {
		od, _ := markets(r)
		maxOD = max(maxOD, len(od))
		for id := range before {
			if _, still := members(r, "web")[id]; still {
				return false
			}
		}
		return steady(r, c)
	})
	c.Wait()
	od, spot = markets(r)
	if len(od) != 1 || len(spot) != 2 {
		t.Errorf("after the rotations: %d on-demand (%v), %d spot; want 1 and 2", len(od), ids(od), len(spot))
	}
	if len(od) == 1 && !descendsFrom(r, od[0].ID, base) {
		t.Errorf("the on-demand member %s replaces %q; want the base %s (or its replacement's line)", od[0].ID, od[0].Tags[groupconfig.StateReplaces], base)
	}
	if maxOD > 2 {
		t.Errorf("%d on-demand members at once during the rotations; at most the base and its replacement", maxOD)
	}
}

// descendsFrom reports whether instance id replaced base, directly or through replacements of
// its replacements (spotmax:state:replaces).
func descendsFrom(r *sim.Region, id, base string) bool {
	for range 100 {
		in, ok := r.Instance(id)
		if !ok {
			return false
		}
		id = in.Tags[groupconfig.StateReplaces]
		if id == base {
			return true
		}
		if id == "" {
			return false
		}
	}
	return false
}

func ids(l []sim.Instance) []string {
	var out []string
	for _, in := range l {
		out = append(out, in.ID)
	}
	return out
}

// syncBuffer is a buffer safe for concurrent writers and the reading test.
type syncBuffer = syncbuf.Buffer

// TestOriginalProductTagsWarnOnce: a group carrying the original product's unsupported tags is
// managed (not reported invalid) and each tag is named once in a warning of the controller.
func TestOriginalProductTagsWarnOnce(t *testing.T) {
	e := newEnv(t, 1000)
	e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 1,
		Tags: tags("web", map[string]string{"spotmax:warm_pool_min_size": "1", groupconfig.TagK8sNodeDrainOption: "--force"})})
	rec := &recorder{}
	c := e.controller(rec)
	var logs syncBuffer
	c.Log = slog.New(slog.NewTextHandler(&logs, nil))
	runUntil(t, c, 30*time.Second, func() bool { return c.Stats().Reconciles >= 3 })
	for _, key := range []string{"spotmax:warm_pool_min_size", groupconfig.TagK8sNodeDrainOption} {
		if n := strings.Count(logs.String(), key+" is not supported"); n != 1 {
			t.Errorf("%s named in %d warnings; want 1:\n%s", key, n, logs.String())
		}
	}
	if n := rec.count(metrics.InvalidConfiguration); n != 0 {
		t.Errorf("InvalidConfiguration = %d; the group is valid", n)
	}
}
