package sim

import "testing"

// TestGroupOfIndexes checks the lookups that every instance state change makes (asgGroupOf,
// asgWarmOf) once they no longer scan every group: members of created groups come from the
// index, members of a group put into the state directly are still found, an instance in no
// group is in none, and a warm pool's group that was deleted and made again without a pool
// no longer claims its old instances.
func TestGroupOfIndexes(t *testing.T) {
	kind := KindBehaviors()
	r := New(Options{Behaviors: &kind})
	lt := r.PutLaunchTemplate("idx", LaunchTemplateData{ImageID: "ami-0123456789abcdef0", InstanceType: "m5.large"})
	one := int32(1)
	for _, name := range []string{"made", "warm"} {
		if err := r.CreateGroup(GroupSpec{Name: name, LaunchTemplate: LaunchTemplateRef{ID: lt}, Max: 2, Desired: &one, AZs: []string{"us-east-1a"}}); err != nil {
			t.Fatalf("CreateGroup %s: %v", name, err)
		}
	}
	r.Do(func() {
		if err := r.putWarmPool("warm", WarmPool{MinSize: 1}); err != nil {
			t.Fatalf("putWarmPool: %v", err)
		}
	})
	for i := 0; i < 30; i++ {
		r.Advance(1e9)
	}
	loose := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large"})
	direct := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large"})
	r.Do(func() {
		made := r.asgs["made"]
		if len(made.Members) != 1 {
			t.Fatalf("group made has %d members", len(made.Members))
		}
		if g, _ := r.asgGroupOf(made.Members[0].InstanceID); g != made {
			t.Errorf("member of made: group %v", g)
		}
		if g, _ := r.asgGroupOf(loose.ID); g != nil {
			t.Errorf("instance in no group: group %s", g.Name)
		}
		wp := r.asgExtraOf(r.asgs["warm"]).warm
		if wp == nil || len(wp.members) == 0 {
			t.Fatalf("group warm has no warm pool member")
		}
		warmID := wp.members[0].InstanceID
		if g, m := r.asgWarmOf(warmID); g == nil || m != wp.members[0] {
			t.Errorf("warm pool member %s: group %v", warmID, g)
		}
		if g, _ := r.asgWarmOf(loose.ID); g != nil {
			t.Errorf("instance in no warm pool: group %s", g.Name)
		}

		r.asgs["direct"] = &ASG{Name: "direct", Max: 1, Desired: 1, Members: []*ASGMember{{InstanceID: direct.ID, LifecycleState: LifecycleInService}}}
		if g, _ := r.asgGroupOf(direct.ID); g == nil || g.Name != "direct" {
			t.Errorf("member of a group put into the state directly: group %v", g)
		}
		r.asgDrop(made)
		if got := r.asg().indexed; got != 1 {
			t.Errorf("indexed groups after deleting one of two = %d, want 1", got)
		}
		if g, _ := r.asgGroupOf(loose.ID); g != nil {
			t.Errorf("instance in no group, direct group present: group %s", g.Name)
		}

		r.asgDrop(r.asgs["warm"])
		if err := r.createGroup(GroupSpec{Name: "warm", LaunchTemplate: LaunchTemplateRef{ID: lt}, Max: 1, AZs: []string{"us-east-1a"}}); err != nil {
			t.Fatalf("createGroup warm again: %v", err)
		}
		if g, _ := r.asgWarmOf(warmID); g != nil {
			t.Errorf("old warm pool member %s: group %s after the group was made again without a pool", warmID, g.Name)
		}
		if r.asg().warmGroups["warm"] {
			t.Errorf("warm still listed as a group with a warm pool")
		}
	})
}
