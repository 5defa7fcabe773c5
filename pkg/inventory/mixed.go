package inventory

import (
	"sort"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// MixedPolicy is what spotmax reads of a group's mixed instances policy: the on-demand split
// it must keep and the overrides it may launch.
type MixedPolicy struct {
	// OnDemandBase is InstancesDistribution.OnDemandBaseCapacity: the first members that are
	// on-demand.
	OnDemandBase int32
	// OnDemandPercent is OnDemandPercentageAboveBaseCapacity (AWS's default 100 when absent).
	OnDemandPercent int32
	// SpotAllocationStrategy is shown for reference, e.g. "price-capacity-optimized".
	SpotAllocationStrategy string
	// Overrides are the instance types in the policy's priority order.
	Overrides []Override
}

// Override is one LaunchTemplate.Overrides entry.
type Override struct {
	Type string
	// Weight is WeightedCapacity; 0 when the policy does not weight its types.
	Weight int
	// Template is the override's own launch template; nil when it uses the policy's.
	Template *TemplateRef
}

// WantOnDemand returns how many of n members the policy wants on-demand: the base, then the
// on-demand percentage of the members above it, rounded up (as Auto Scaling launches them). It
// is the one home of that rule in spotmax: the controller's stand-in policy and the replacement
// plan both use it. A nil policy wants none.
func (m *MixedPolicy) WantOnDemand(n int) int {
	if m == nil || n <= 0 {
		return 0
	}
	base := min(int(m.OnDemandBase), n)
	above := n - base
	return base + (above*int(m.OnDemandPercent)+99)/100
}

// Override returns the override of an instance type.
func (m *MixedPolicy) Override(instanceType string) (Override, bool) {
	if m != nil {
		for _, o := range m.Overrides {
			if o.Type == instanceType {
				return o, true
			}
		}
	}
	return Override{}, false
}

func mixedPolicy(p *astypes.MixedInstancesPolicy) *MixedPolicy {
	if p == nil {
		return nil
	}
	out := &MixedPolicy{OnDemandPercent: 100}
	if d := p.InstancesDistribution; d != nil {
		out.OnDemandBase = aws.ToInt32(d.OnDemandBaseCapacity)
		if d.OnDemandPercentageAboveBaseCapacity != nil {
			out.OnDemandPercent = *d.OnDemandPercentageAboveBaseCapacity
		}
		out.SpotAllocationStrategy = aws.ToString(d.SpotAllocationStrategy)
	}
	if lt := p.LaunchTemplate; lt != nil {
		for _, o := range lt.Overrides {
			ov := Override{Type: aws.ToString(o.InstanceType)}
			if w, err := strconv.Atoi(aws.ToString(o.WeightedCapacity)); err == nil {
				ov.Weight = w
			}
			if s := o.LaunchTemplateSpecification; s != nil {
				ov.Template = &TemplateRef{ID: aws.ToString(s.LaunchTemplateId), Name: aws.ToString(s.LaunchTemplateName), Version: aws.ToString(s.Version)}
			}
			if ov.Type != "" {
				out.Overrides = append(out.Overrides, ov)
			}
		}
	}
	return out
}

// Slots returns the members that hold the group's capacity: launching or in service, leaving
// out a replacement whose old instance is still a member (the pair holds one place until the
// old one leaves). Members are in the group's order (oldest first once members were read).
func (g *Group) Slots() []Instance {
	counted := func(in Instance) bool {
		switch in.LifecycleState {
		case "Pending", "Pending:Wait", "Pending:Proceed", "InService":
			return true
		}
		return false
	}
	present := map[string]bool{}
	for _, m := range g.Members {
		if counted(m) {
			present[m.ID] = true
		}
	}
	var out []Instance
	for _, m := range g.Members {
		if !counted(m) {
			continue
		}
		if old := m.Tags[groupconfig.StateReplaces]; old != "" && old != m.ID && present[old] {
			continue
		}
		out = append(out, m)
	}
	return out
}

// StandIns returns the ids of the on-demand members that stand in for spot capacity and go
// back to spot when they may: every on-demand member of a group without a mixed instances
// policy; in a mixed instances group only those beyond what the policy's on-demand base and
// percentage want, the oldest on-demand members keeping the base.
func (g *Group) StandIns() map[string]bool {
	out := map[string]bool{}
	slots := g.Slots()
	want := g.Mixed.WantOnDemand(len(slots))
	kept := 0
	ods := make([]Instance, 0, len(slots))
	for _, m := range slots {
		if m.Market == MarketOnDemand {
			ods = append(ods, m)
		}
	}
	sort.SliceStable(ods, func(i, j int) bool { return ods[i].LaunchTime.Before(ods[j].LaunchTime) })
	for _, m := range ods {
		if kept < want {
			kept++
			continue
		}
		out[m.ID] = true
	}
	return out
}
