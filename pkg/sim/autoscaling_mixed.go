package sim

import (
	"strconv"
)

// LaunchOverride is one entry of a mixed instances policy's LaunchTemplate.Overrides: an
// instance type, optionally with its own launch template and a weight.
type LaunchOverride struct {
	InstanceType string
	// WeightedCapacity is the number of capacity units the type counts for, "1"–"999"; "" when
	// the policy does not weight its types.
	WeightedCapacity string
	// LaunchTemplate, when set, is the template launches of this type use instead of the
	// policy's.
	LaunchTemplate *LaunchTemplateRef
}

// Limits and values of a mixed instances policy from the Auto Scaling API reference
// (LaunchTemplate.Overrides: 0–40 items; WeightedCapacity: 1–999; the allocation strategies).
const (
	mixedMaxOverrides = 40
	mixedMaxWeight    = 999
)

var (
	spotAllocationStrategies = []string{"lowest-price", "capacity-optimized", "capacity-optimized-prioritized", "price-capacity-optimized"}
	odAllocationStrategies   = []string{"prioritized", "lowest-price"}
)

// overrides returns the policy's overrides; a policy built with InstanceTypes alone (scenario
// loaders, older tests) has one override per type.
func (m *MixedInstancesPolicy) overrides() []LaunchOverride {
	if len(m.Overrides) > 0 {
		return m.Overrides
	}
	out := make([]LaunchOverride, 0, len(m.InstanceTypes))
	for _, t := range m.InstanceTypes {
		out = append(out, LaunchOverride{InstanceType: t})
	}
	return out
}

// wantOnDemand returns how many of n members are on-demand by the policy: the base, then the
// on-demand percentage of the capacity above it, rounded up.
func (m *MixedInstancesPolicy) wantOnDemand(n int32) int32 {
	base := min(m.OnDemandBaseCapacity, n)
	above := n - base
	return base + (above*m.onDemandPercent()+99)/100
}

// weightOf returns the weight of an instance type in the policy, "" when the policy has no
// weights or the type is not one of its overrides.
func (m *MixedInstancesPolicy) weightOf(instanceType string) string {
	for _, o := range m.overrides() {
		if o.InstanceType == instanceType {
			return o.WeightedCapacity
		}
	}
	return ""
}

// asgCheckMixed validates a mixed instances policy as CreateAutoScalingGroup and
// UpdateAutoScalingGroup do. Codes and HTTP statuses are AWS's (ValidationError, 400); where the
// exact text of AWS's message was not found the wording is the simulator's.
func (r *Region) asgCheckMixed(m *MixedInstancesPolicy) *APIError {
	ovs := m.overrides()
	if len(ovs) > mixedMaxOverrides {
		return errf(CodeValidationError, "The number of launch template overrides (%d) exceeds the maximum of %d.", len(ovs), mixedMaxOverrides)
	}
	weighted, seen := 0, map[string]bool{}
	for i, o := range ovs {
		if o.InstanceType == "" {
			return errf(CodeValidationError, "Override %d of the mixed instances policy has no InstanceType.", i+1)
		}
		if seen[o.InstanceType] {
			return errf(CodeValidationError, "Duplicate instance type %s in the launch template overrides.", o.InstanceType)
		}
		seen[o.InstanceType] = true
		if o.WeightedCapacity != "" {
			w, err := strconv.Atoi(o.WeightedCapacity)
			if err != nil || w < 1 || w > mixedMaxWeight {
				return errf(CodeValidationError, "Invalid WeightedCapacity '%s' for instance type %s: it must be a whole number from 1 to %d.", o.WeightedCapacity, o.InstanceType, mixedMaxWeight)
			}
			weighted++
		}
		if o.LaunchTemplate != nil {
			if err := r.asgCheckTemplate(*o.LaunchTemplate, true); err != nil {
				return err
			}
		}
	}
	if weighted > 0 && weighted < len(ovs) {
		return errf(CodeValidationError, "WeightedCapacity must be specified for all instance types of the overrides or for none (%d of %d have one).", weighted, len(ovs))
	}
	if m.OnDemandBaseCapacity < 0 {
		return errf(CodeValidationError, "OnDemandBaseCapacity must be greater than or equal to 0.")
	}
	if s := m.SpotAllocationStrategy; s != "" && !containsString(spotAllocationStrategies, s) {
		return errf(CodeValidationError, "Invalid value '%s' for SpotAllocationStrategy: valid values are lowest-price, capacity-optimized, capacity-optimized-prioritized and price-capacity-optimized.", s)
	}
	if s := m.OnDemandAllocationStrategy; s != "" && !containsString(odAllocationStrategies, s) {
		return errf(CodeValidationError, "Invalid value '%s' for OnDemandAllocationStrategy: valid values are prioritized and lowest-price.", s)
	}
	return nil
}

// asgNormalizeMixed fills in the defaults AWS shows for a policy and copies its slices.
func (r *Region) asgNormalizeMixed(in *MixedInstancesPolicy) *MixedInstancesPolicy {
	m := *in
	m.Overrides = nil
	for _, o := range in.overrides() {
		if o.LaunchTemplate != nil {
			ref := *o.LaunchTemplate
			if ref.Version == "" {
				ref.Version = "$Default"
			}
			if lt := r.findTemplate(ref.ID, ref.Name); lt != nil {
				ref.ID, ref.Name = lt.ID, lt.Name
			}
			o.LaunchTemplate = &ref
		}
		m.Overrides = append(m.Overrides, o)
	}
	m.InstanceTypes = nil
	for _, o := range m.Overrides {
		m.InstanceTypes = append(m.InstanceTypes, o.InstanceType)
	}
	if m.OnDemandAllocationStrategy == "" {
		m.OnDemandAllocationStrategy = "prioritized"
	}
	if m.SpotAllocationStrategy == "" {
		m.SpotAllocationStrategy = "price-capacity-optimized"
	}
	return &m
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
