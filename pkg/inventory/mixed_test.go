package inventory

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

func TestMixedPolicyFromDescribe(t *testing.T) {
	g := fromASG(astypes.AutoScalingGroup{AutoScalingGroupName: aws.String("web"),
		MixedInstancesPolicy: &astypes.MixedInstancesPolicy{
			InstancesDistribution: &astypes.InstancesDistribution{OnDemandBaseCapacity: aws.Int32(2), SpotAllocationStrategy: aws.String("capacity-optimized")},
			LaunchTemplate: &astypes.LaunchTemplate{
				LaunchTemplateSpecification: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("lt"), Version: aws.String("3")},
				Overrides: []astypes.LaunchTemplateOverrides{{InstanceType: aws.String("m5.large"), WeightedCapacity: aws.String("2")},
					{InstanceType: aws.String("m6g.large"), WeightedCapacity: aws.String("1"),
						LaunchTemplateSpecification: &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String("lt-arm")}}},
			},
		}}, newStrs())
	m := g.Mixed
	if m == nil || m.OnDemandBase != 2 || m.OnDemandPercent != 100 || m.SpotAllocationStrategy != "capacity-optimized" || len(m.Overrides) != 2 {
		t.Fatalf("Mixed = %+v", m)
	}
	if o, ok := m.Override("m6g.large"); !ok || o.Weight != 1 || o.Template == nil || o.Template.ID != "lt-arm" {
		t.Errorf("Override(m6g.large) = %+v, %v", o, ok)
	}
	if o, _ := m.Override("m5.large"); o.Weight != 2 || o.Template != nil {
		t.Errorf("Override(m5.large) = %+v", o)
	}
	if g.Template == nil || g.Template.Name != "lt" || g.Template.Version != "3" {
		t.Errorf("Template = %+v", g.Template)
	}
}

func TestWantOnDemand(t *testing.T) {
	for _, tc := range []struct {
		base, pct int32
		n, want   int
	}{
		{1, 0, 3, 1}, {1, 0, 1, 1}, {1, 0, 0, 0}, {2, 0, 1, 1}, {1, 50, 4, 3}, {0, 25, 5, 2}, {0, 100, 3, 3}, {0, 0, 3, 0},
	} {
		m := &MixedPolicy{OnDemandBase: tc.base, OnDemandPercent: tc.pct}
		if got := m.WantOnDemand(tc.n); got != tc.want {
			t.Errorf("base %d, %d%%: WantOnDemand(%d) = %d; want %d", tc.base, tc.pct, tc.n, got, tc.want)
		}
	}
	if got := (*MixedPolicy)(nil).WantOnDemand(3); got != 0 {
		t.Errorf("nil policy wants %d", got)
	}
}

// TestStandIns: without a policy every on-demand member stands in; with base 1 the oldest
// on-demand member keeps the base; a replacement whose old instance is still a member holds no
// place of its own.
func TestStandIns(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	member := func(id, market string, age int, tags map[string]string) Instance {
		return Instance{ID: id, Market: market, LifecycleState: "InService", LaunchTime: t0.Add(time.Duration(age) * time.Minute), Tags: tags}
	}
	g := &Group{Members: []Instance{
		member("i-base", "on-demand", 0, nil),
		member("i-spot", "spot", 1, nil),
		member("i-standin", "on-demand", 2, nil),
	}}
	if got := g.StandIns(); !got["i-base"] || !got["i-standin"] || len(got) != 2 {
		t.Errorf("no policy: StandIns = %v; want both on-demand members", got)
	}
	g.Mixed = &MixedPolicy{OnDemandBase: 1}
	if got := g.StandIns(); !got["i-standin"] || len(got) != 1 {
		t.Errorf("base 1: StandIns = %v; want i-standin only", got)
	}
	// The base member being rotated: its on-demand replacement is no stand-in while both are there.
	g.Members = append(g.Members[:2], member("i-base2", "on-demand", 3, map[string]string{groupconfig.StateReplaces: "i-base"}))
	if got := g.StandIns(); len(got) != 0 {
		t.Errorf("base in rotation: StandIns = %v; want none", got)
	}
	if got := len(g.Slots()); got != 2 {
		t.Errorf("Slots = %d; want 2 (the pair holds one place)", got)
	}
}
