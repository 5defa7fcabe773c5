package inventory_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// userTag is the tag key the histories change as an operator would: not one spotmax acts on, so
// an incremental listing shows its changes only after a full resync.
const userTag = "team"

// snapshot is the part of a listing that must agree: every group's members with their Auto
// Scaling and EC2 views. Tags leave out userTag unless withUser.
func snapshot(groups []*inventory.Group, withUser bool) string {
	var b strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&b, "group %s\n", g.Name)
		for _, m := range g.Members {
			var tags []string
			for k, v := range m.Tags {
				if k != userTag || withUser {
					tags = append(tags, k+"="+v)
				}
			}
			sort.Strings(tags)
			fmt.Fprintf(&b, "  %s %s/%s %s %s %s %s %s %s %s %s %s %+v\n", m.ID, m.LifecycleState, m.Health, m.Type, m.AZ,
				m.SubnetID, m.PrivateIP, m.State, m.RootDevice, m.Market, m.LaunchTime.UTC().Format(time.RFC3339Nano),
				strings.Join(tags, ","), m.Volumes)
		}
	}
	return b.String()
}

// history drives random changes to a region of spotmax groups.
type history struct {
	t      *testing.T
	env    *simtest.Env
	rnd    *rand.Rand
	asg    *autoscaling.Client
	ec2    *ec2.Client
	groups []string
}

func (h *history) members(group string) []string {
	g, ok := h.env.Region().Group(group)
	if !ok {
		return nil
	}
	var ids []string
	for _, m := range g.Members {
		ids = append(ids, m.InstanceID)
	}
	return ids
}

func (h *history) pick(ids []string) string { return ids[h.rnd.IntN(len(ids))] }

// step makes one random change and says what it did; errors AWS answers (a full group, an
// instance already gone) are part of a history, not failures.
func (h *history) step(ctx context.Context, tr **inventory.Tracker, lister *inventory.Lister) string {
	g := h.groups[h.rnd.IntN(len(h.groups))]
	ids := h.members(g)
	sim, _ := h.env.Region().Group(g)
	tag := func(id string, k, v string) error {
		_, err := h.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{{Key: aws.String(k), Value: aws.String(v)}}})
		return err
	}
	switch op := h.rnd.IntN(12); {
	case (op == 0 || op == 11) && sim.Desired < sim.Max:
		_, err := h.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(g), DesiredCapacity: aws.Int32(sim.Desired + 1)})
		return fmt.Sprintf("launch in %s: %v", g, err)
	case op == 1 && sim.Desired > 1:
		_, err := h.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(g), DesiredCapacity: aws.Int32(sim.Desired - 1)})
		return fmt.Sprintf("scale in %s: %v", g, err)
	case op == 2 && len(ids) > 0:
		id := h.pick(ids)
		_, err := h.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
		return fmt.Sprintf("terminate %s: %v", id, err)
	case op == 3 && len(ids) > 0:
		id := h.pick(ids)
		return fmt.Sprintf("notice on %s: %v", id, tag(id, groupconfig.StateNotice, "terminate@2026-01-01T00:00:00Z"))
	case op == 4 && len(ids) > 1:
		id, repl := ids[0], ids[1+h.rnd.IntN(len(ids)-1)]
		_, err := h.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{
			{Key: aws.String(groupconfig.StatePhase), Value: aws.String("launched")},
			{Key: aws.String(groupconfig.StateReplacement), Value: aws.String(repl)}}})
		if err == nil {
			err = tag(repl, groupconfig.StateVolume, "vol-0123456789abcdef0") // written during the move
		}
		return fmt.Sprintf("journal on %s replaced by %s: %v", id, repl, err)
	case op == 5 && len(ids) > 0:
		id := h.pick(ids)
		_, err := h.ec2.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{
			{Key: aws.String(groupconfig.StateNotice)}, {Key: aws.String(groupconfig.StatePhase)}, {Key: aws.String(groupconfig.StateReplacement)}}})
		return fmt.Sprintf("journal and notice off %s: %v", id, err)
	case op == 6 && len(ids) > 0:
		id := h.pick(ids)
		return fmt.Sprintf("user tag on %s: %v", id, tag(id, userTag, fmt.Sprint(h.rnd.IntN(100))))
	case op == 7 && len(ids) > 0:
		to := h.groups[h.rnd.IntN(len(h.groups))]
		dst, _ := h.env.Region().Group(to)
		if to == g || dst.Desired >= dst.Max {
			return "no move"
		}
		id := h.pick(ids)
		_, err := h.asg.DetachInstances(ctx, &autoscaling.DetachInstancesInput{AutoScalingGroupName: aws.String(g), InstanceIds: []string{id},
			ShouldDecrementDesiredCapacity: aws.Bool(true)})
		for i := 0; err == nil && slices.Contains(h.members(g), id); i++ { // Detaching first
			if i == 200 {
				h.t.Fatalf("%s never left %s", id, g)
			}
			h.env.Region().Advance(time.Second)
			time.Sleep(5 * time.Millisecond)
		}
		if err == nil {
			_, err = h.asg.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String(to), InstanceIds: []string{id}})
		}
		return fmt.Sprintf("move %s from %s to %s: %v", id, g, to, err)
	case op == 8 && len(ids) > 0 && (g == "prop1" || g == "prop3"): // one-time spot instances cannot be stopped
		id := h.pick(ids)
		_, err := h.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
		return fmt.Sprintf("stop %s: %v", id, err)
	case op == 9 && len(ids) > 0:
		// What EnsureKeepVolumes does, telling the tracker.
		id := h.pick(ids)
		_, err := h.ec2.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id),
			BlockDeviceMappings: []ec2types.InstanceBlockDeviceMappingSpecification{{DeviceName: aws.String("/dev/sdf"),
				Ebs: &ec2types.EbsInstanceBlockDeviceSpecification{DeleteOnTermination: aws.Bool(false)}}}})
		(*tr).Forget(id)
		return fmt.Sprintf("keep the data volume of %s: %v", id, err)
	case op == 10 && h.rnd.IntN(3) == 0:
		*tr = &inventory.Tracker{Lister: lister, FullEvery: 1000, FullAfter: 1000 * time.Hour, Now: h.env.Region().Clock().Now}
		return "controller restart"
	}
	return "nothing"
}

// stableCompare lists in full, incrementally and in full again until both full listings agree
// (the region does not change under the comparison), then requires the incremental one to
// equal them.
func stableCompare(t *testing.T, ctx context.Context, tr *inventory.Tracker, lister *inventory.Lister, withUser bool, log []string) {
	t.Helper()
	var full1, inc, full2 string
	for try := 0; try < 50; try++ {
		a, err := lister.List(ctx, inventory.Options{Members: true})
		if err != nil {
			t.Fatal(err)
		}
		b, err := tr.List(ctx)
		if err != nil {
			t.Fatalf("incremental listing: %v\nhistory:\n%s", err, strings.Join(log, "\n"))
		}
		c, err := lister.List(ctx, inventory.Options{Members: true})
		if err != nil {
			t.Fatal(err)
		}
		full1, inc, full2 = snapshot(a, withUser), snapshot(b, withUser), snapshot(c, withUser)
		if full1 == full2 {
			if inc != full1 {
				t.Fatalf("incremental listing differs from the full one\nhistory:\n%s\n--- full\n%s--- incremental\n%s",
					strings.Join(log, "\n"), full1, inc)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the region never held still for a comparison:\n%s\n%s", full1, full2)
}

// TestTrackerEqualsFullListing is the property test of the incremental inventory: over random
// histories of launches, scale-ins, terminations, stops, tag changes (journals, notices, an
// operator's tag), group moves, volume attribute changes and controller restarts in a region
// with AWS's eventual consistency, an incremental listing taken once the region holds still
// equals a full listing, except for the operator's tag, which shows after a full resync.
func TestTrackerEqualsFullListing(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			ctx := context.Background()
			lat := sim.FastLatencies()
			lat.Pending, lat.ASGCheck = time.Millisecond, time.Second
			env := simtest.Start(t, sim.Options{Latencies: &lat, Seed: int64(seed)})
			h := &history{t: t, env: env, rnd: rand.New(rand.NewPCG(seed, 16)), asg: autoscaling.NewFromConfig(env.Config), ec2: ec2.NewFromConfig(env.Config)}
			for i := range 4 {
				name := fmt.Sprintf("prop%d", i)
				env.CreateGroup(t, simtest.GroupSpec{Name: name, Spot: i%2 == 0, DataDevice: "/dev/sdf", Desired: 3, Max: 6,
					Tags: map[string]string{groupconfig.TagGroup: name, groupconfig.TagPersistenceDev: "/dev/sdf"}})
				h.groups = append(h.groups, name)
			}
			lister := lister(env)
			tr := &inventory.Tracker{Lister: lister, FullEvery: 1000, FullAfter: 1000 * time.Hour, Now: env.Region().Clock().Now}
			var log []string
			restarts := 0
			for range 40 {
				what := h.step(ctx, &tr, lister)
				log = append(log, what)
				if what == "controller restart" {
					restarts++
				}
				// A listing in the middle of the change, while EC2 still hides what is new: it must
				// not fail, and what it misses it catches up on below.
				if _, err := tr.List(ctx); err != nil {
					t.Fatalf("listing right after %q: %v", what, err)
				}
				env.Region().Advance(inventory.SettleWindow) // past EC2's visibility windows and the settling of new instances
				stableCompare(t, ctx, tr, lister, false, log)
			}
			st := tr.Stats()
			if st.Full != 1 {
				t.Errorf("stats %+v: want one full listing since the last restart", st)
			}
			tr.Resync()
			stableCompare(t, ctx, tr, lister, true, log)
			t.Logf("%d restarts; last tracker %+v\n%s", restarts, st, strings.Join(log, "\n"))
		})
	}
}

// TestTrackerSteadyStateCalls pins the calling pattern of a steady-state listing: the Auto
// Scaling pages and two filtered DescribeInstances calls, describing no instance again.
func TestTrackerSteadyStateCalls(t *testing.T) {
	env := region(t, 30, 4)
	cfg := env.Config
	cfg.RetryMaxAttempts = 1
	tr := &inventory.Tracker{Lister: &inventory.Lister{ASG: autoscaling.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg)},
		Now: env.Region().Clock().Now}
	env.Region().Advance(inventory.SettleWindow) // the instances have settled
	ctx := context.Background()
	full, err := tr.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env.Region().ResetCalls()
	inc, err := tr.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	calls := callsByAction(env.Region())
	if want := map[string]int{"autoscaling:DescribeAutoScalingGroups": 1, "ec2:DescribeInstances": 2}; !reflect.DeepEqual(calls, want) {
		t.Errorf("steady-state calls = %v, want %v", calls, want)
	}
	if st := tr.Stats(); st.Described != 0 || st.Known != 120 || st.Full != 1 || st.Listings != 2 || st.PagesDecoded != 1 || st.PagesReused != 1 {
		t.Errorf("stats = %+v, want 120 known, none described again, the one Auto Scaling page decoded once", st)
	}
	if snapshot(full, true) != snapshot(inc, true) {
		t.Errorf("steady-state listing differs:\n%s\n%s", snapshot(full, true), snapshot(inc, true))
	}
	// A new member is described once, by id; the next FullEvery-th listing is full again.
	tr.FullEvery = 4
	if _, err := autoscaling.NewFromConfig(env.Config).SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: aws.String("g0000"), DesiredCapacity: aws.Int32(5)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		env.Region().Advance(5 * time.Second)
		gs, err := tr.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(gs[0].Members); n == 5 && gs[0].Members[4].State != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new member never described: %+v", tr.Stats())
		}
	}
	if st := tr.Stats(); st.Described < 1 {
		t.Errorf("stats = %+v", st)
	}
}

// TestTrackerFreshFleetListsInFull: a fleet launched less than SettleWindow ago is described again
// at every listing; when that takes more by-id calls than a full listing's pages, the listing is
// full (two DescribeInstances pages here instead of the two filtered ones and four by-id ones),
// and equals a full listing.
func TestTrackerFreshFleetListsInFull(t *testing.T) {
	env := region(t, 70, 10) // 700 spotmax members: four by-id calls of 200, one page of 1,000
	cfg := env.Config
	cfg.RetryMaxAttempts = 1
	l := &inventory.Lister{ASG: autoscaling.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg)}
	tr := &inventory.Tracker{Lister: l, Now: env.Region().Clock().Now, FullAfter: time.Hour}
	ctx := context.Background()
	if _, err := tr.List(ctx); err != nil {
		t.Fatal(err)
	}
	env.Region().ResetCalls()
	inc, err := tr.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	calls := callsByAction(env.Region())
	if want := map[string]int{"autoscaling:DescribeAutoScalingGroups": 1, "ec2:DescribeInstances": 1}; !reflect.DeepEqual(calls, want) {
		t.Errorf("fresh-fleet calls = %v, want %v", calls, want)
	}
	if st := tr.Stats(); st.Full != 2 || st.FullByCost != 1 || st.Described != 0 {
		t.Errorf("stats = %+v, want the second listing full by cost", st)
	}
	full, err := l.List(ctx, inventory.Options{Members: true})
	if err != nil {
		t.Fatal(err)
	}
	if snapshot(full, true) != snapshot(inc, true) {
		t.Errorf("fresh-fleet listing differs:\n%s\n%s", snapshot(full, true), snapshot(inc, true))
	}
	// Settled, the members watched at the last listing are described once more (in full, by
	// cost), then listings are incremental again.
	env.Region().Advance(inventory.SettleWindow)
	if _, err := tr.List(ctx); err != nil {
		t.Fatal(err)
	}
	env.Region().ResetCalls()
	if _, err := tr.List(ctx); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.FullByCost != 2 || st.Full != 3 || st.Listings != 4 {
		t.Errorf("stats = %+v, want no further full listing once settled", st)
	}
	if n := env.Region().CallsTotal(); n != 3 {
		t.Errorf("settled listing: %d calls (%v), want 3", n, env.Region().Calls())
	}
}

// TestTrackerListingsShareNothing: a listing's groups are the caller's — changing them (members
// sorted or filled in place, as listings themselves do) changes nothing in the next listing,
// whose pages come from the cache.
func TestTrackerListingsShareNothing(t *testing.T) {
	env := region(t, 3, 2)
	l := lister(env)
	tr := &inventory.Tracker{Lister: l, Now: env.Region().Clock().Now}
	ctx := context.Background()
	first, err := tr.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range first {
		for i := range g.Members {
			g.Members[i].ID, g.Members[i].LifecycleState = "i-mangled", "Mangled"
		}
		g.Members = append(g.Members, inventory.Instance{ID: "i-extra"})
	}
	next, err := tr.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.PagesReused == 0 {
		t.Fatalf("stats %+v: the second listing did not reuse the cached page", st)
	}
	full, err := l.List(ctx, inventory.Options{Members: true})
	if err != nil {
		t.Fatal(err)
	}
	if snapshot(full, true) != snapshot(next, true) {
		t.Errorf("listing after the caller changed the previous one:\n%s\nwant\n%s", snapshot(next, true), snapshot(full, true))
	}
}

// callsByAction returns the region's call counts since its last ResetCalls, by "service:Action".
func callsByAction(r *sim.Region) map[string]int {
	calls := map[string]int{}
	for _, c := range r.Calls() {
		calls[c.Action] = c.Count
	}
	return calls
}
