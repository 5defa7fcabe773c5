package sim

import (
	"fmt"
	"maps"
	"sort"
	"strings"
)

// asgActions maps Auto Scaling action names to their handlers; each handler writes its response
// or returns an error, with the region locked.
var asgActions = map[string]func(r *Region, c *call) *APIError{
	"CreateAutoScalingGroup":              (*Region).asCreateAutoScalingGroup,
	"UpdateAutoScalingGroup":              (*Region).asUpdateAutoScalingGroup,
	"DeleteAutoScalingGroup":              (*Region).asDeleteAutoScalingGroup,
	"DescribeAutoScalingGroups":           (*Region).asDescribeAutoScalingGroups,
	"CreateOrUpdateTags":                  (*Region).asCreateOrUpdateTags,
	"DeleteTags":                          (*Region).asDeleteTags,
	"DescribeTags":                        (*Region).asDescribeTags,
	"AttachInstances":                     (*Region).asAttachInstances,
	"DetachInstances":                     (*Region).asDetachInstances,
	"SetDesiredCapacity":                  (*Region).asSetDesiredCapacity,
	"TerminateInstanceInAutoScalingGroup": (*Region).asTerminateInstanceInAutoScalingGroup,
	"DescribeAutoScalingInstances":        (*Region).asDescribeAutoScalingInstances,
	"SuspendProcesses":                    (*Region).asSuspendProcesses,
	"ResumeProcesses":                     (*Region).asResumeProcesses,
	"DescribeScalingActivities":           (*Region).asDescribeScalingActivities,
	"SetInstanceProtection":               (*Region).asSetInstanceProtection,
	"SetInstanceHealth":                   (*Region).asSetInstanceHealth,
	"DescribeLifecycleHooks":              (*Region).asDescribeLifecycleHooks,
	"DescribeLifecycleHookTypes":          (*Region).asDescribeLifecycleHookTypes,
	"PutLifecycleHook":                    (*Region).asPutLifecycleHook,
	"DeleteLifecycleHook":                 (*Region).asDeleteLifecycleHook,
	"CompleteLifecycleAction":             (*Region).asCompleteLifecycleAction,
	"RecordLifecycleActionHeartbeat":      (*Region).asRecordLifecycleActionHeartbeat,
	"AttachLoadBalancerTargetGroups":      (*Region).asAttachLoadBalancerTargetGroups,
	"DetachLoadBalancerTargetGroups":      (*Region).asDetachLoadBalancerTargetGroups,
	"DescribeLoadBalancerTargetGroups":    (*Region).asDescribeLoadBalancerTargetGroups,
	"AttachLoadBalancers":                 (*Region).asAttachLoadBalancers,
	"DetachLoadBalancers":                 (*Region).asDetachLoadBalancers,
	"DescribeLoadBalancers":               (*Region).asDescribeLoadBalancers,
}

func serveAutoScaling(r *Region, c *call) {
	h, ok := asgActions[c.Action]
	if !ok {
		c.fail(notServed(c))
		return
	}
	var err *APIError
	r.Do(func() { err = h(r, c) })
	if err != nil {
		c.fail(err)
	}
}

// asList is a query-protocol list: <Name><member>…</member></Name>. Unlike a plain slice with a
// "Name>member" tag, an empty list is still written, as AWS does.
type asList[T any] struct {
	Items []T `xml:"member"`
}

func asMembers[T any](items []T) asList[T] { return asList[T]{Items: items} }

type asLTSpec struct {
	LaunchTemplateID   string `xml:"LaunchTemplateId,omitempty"`
	LaunchTemplateName string `xml:"LaunchTemplateName,omitempty"`
	Version            string `xml:"Version,omitempty"`
}

type asInstance struct {
	AvailabilityZone     string    `xml:"AvailabilityZone"`
	AvailabilityZoneID   string    `xml:"AvailabilityZoneId,omitempty"`
	HealthStatus         string    `xml:"HealthStatus"`
	InstanceID           string    `xml:"InstanceId"`
	InstanceType         string    `xml:"InstanceType,omitempty"`
	LaunchTemplate       *asLTSpec `xml:"LaunchTemplate,omitempty"`
	LifecycleState       string    `xml:"LifecycleState"`
	ProtectedFromScaleIn bool      `xml:"ProtectedFromScaleIn"`
	WeightedCapacity     string    `xml:"WeightedCapacity,omitempty"`
}

type asTag struct {
	Key               string `xml:"Key"`
	PropagateAtLaunch bool   `xml:"PropagateAtLaunch"`
	ResourceID        string `xml:"ResourceId"`
	ResourceType      string `xml:"ResourceType"`
	Value             string `xml:"Value"`
}

type asSuspended struct {
	ProcessName      string `xml:"ProcessName"`
	SuspensionReason string `xml:"SuspensionReason"`
}

type asMixed struct {
	InstancesDistribution struct {
		OnDemandAllocationStrategy          string `xml:"OnDemandAllocationStrategy"`
		OnDemandBaseCapacity                int32  `xml:"OnDemandBaseCapacity"`
		OnDemandPercentageAboveBaseCapacity int32  `xml:"OnDemandPercentageAboveBaseCapacity"`
		SpotAllocationStrategy              string `xml:"SpotAllocationStrategy"`
		SpotMaxPrice                        string `xml:"SpotMaxPrice,omitempty"`
	} `xml:"InstancesDistribution"`
	LaunchTemplate struct {
		LaunchTemplateSpecification asLTSpec           `xml:"LaunchTemplateSpecification"`
		Overrides                   asList[asOverride] `xml:"Overrides"`
	} `xml:"LaunchTemplate"`
}

type asOverride struct {
	InstanceType                string    `xml:"InstanceType"`
	LaunchTemplateSpecification *asLTSpec `xml:"LaunchTemplateSpecification,omitempty"`
	WeightedCapacity            string    `xml:"WeightedCapacity,omitempty"`
}

type asGroup struct {
	AutoScalingGroupARN              string               `xml:"AutoScalingGroupARN"`
	AutoScalingGroupName             string               `xml:"AutoScalingGroupName"`
	AvailabilityZones                asList[string]       `xml:"AvailabilityZones"`
	CapacityRebalance                bool                 `xml:"CapacityRebalance"`
	CreatedTime                      string               `xml:"CreatedTime"`
	DefaultCooldown                  int32                `xml:"DefaultCooldown"`
	DesiredCapacity                  int32                `xml:"DesiredCapacity"`
	EnabledMetrics                   asList[string]       `xml:"EnabledMetrics"`
	HealthCheckGracePeriod           int32                `xml:"HealthCheckGracePeriod"`
	HealthCheckType                  string               `xml:"HealthCheckType"`
	Instances                        *asList[asInstance]  `xml:"Instances,omitempty"`
	LaunchTemplate                   *asLTSpec            `xml:"LaunchTemplate,omitempty"`
	LoadBalancerNames                asList[string]       `xml:"LoadBalancerNames"`
	MaxInstanceLifetime              int32                `xml:"MaxInstanceLifetime,omitempty"`
	MaxSize                          int32                `xml:"MaxSize"`
	MinSize                          int32                `xml:"MinSize"`
	MixedInstancesPolicy             *asMixed             `xml:"MixedInstancesPolicy,omitempty"`
	NewInstancesProtectedFromScaleIn bool                 `xml:"NewInstancesProtectedFromScaleIn"`
	ServiceLinkedRoleARN             string               `xml:"ServiceLinkedRoleARN"`
	Status                           string               `xml:"Status,omitempty"`
	SuspendedProcesses               asList[asSuspended]  `xml:"SuspendedProcesses"`
	Tags                             asList[asTag]        `xml:"Tags"`
	TargetGroupARNs                  asList[string]       `xml:"TargetGroupARNs"`
	TerminationPolicies              asList[string]       `xml:"TerminationPolicies"`
	TrafficSources                   asList[asTrafficSrc] `xml:"TrafficSources"`
	VPCZoneIdentifier                string               `xml:"VPCZoneIdentifier,omitempty"`
	WarmPoolConfiguration            *asWarmPoolConfig    `xml:"WarmPoolConfiguration,omitempty"`
	WarmPoolSize                     *int32               `xml:"WarmPoolSize,omitempty"`
}

type asTrafficSrc struct {
	Identifier string `xml:"Identifier"`
	Type       string `xml:"Type"`
}

type asActivity struct {
	ActivityID           string `xml:"ActivityId"`
	AutoScalingGroupARN  string `xml:"AutoScalingGroupARN,omitempty"`
	AutoScalingGroupName string `xml:"AutoScalingGroupName"`
	Cause                string `xml:"Cause"`
	Description          string `xml:"Description"`
	Details              string `xml:"Details,omitempty"`
	EndTime              string `xml:"EndTime,omitempty"`
	Progress             int32  `xml:"Progress"`
	StartTime            string `xml:"StartTime"`
	StatusCode           string `xml:"StatusCode"`
	StatusMessage        string `xml:"StatusMessage,omitempty"`
}

// asGroupByName returns a group or AWS's error for a missing one.
func (r *Region) asGroupByName(name string) (*ASG, *APIError) {
	if name == "" {
		return nil, nullMember(CodeValidationError, "autoScalingGroupName")
	}
	g := r.asgs[name]
	if g == nil {
		return nil, errf(CodeValidationError, "AutoScalingGroup name not found - AutoScalingGroup %s not found", name)
	}
	return g, nil
}

// asMutable returns a group that calls may change: not one that is being deleted.
func (r *Region) asMutable(name string) (*ASG, *APIError) {
	g, err := r.asGroupByName(name)
	if err != nil {
		return nil, err
	}
	if g.Status == asgDeleting {
		return nil, errf(CodeValidationError, "AutoScalingGroup %s is pending delete.", name)
	}
	return g, nil
}

func asInt32(p params, k string) (int32, bool, *APIError) {
	n, ok, err := p.Int(k)
	if err != nil {
		return 0, false, errf(CodeValidationError, "Invalid value '%s' for %s", p.Get(k), k)
	}
	return int32(n), ok, nil
}

// asLaunchTemplateParam reads a LaunchTemplateSpecification under prefix.
func asLaunchTemplateParam(p params, prefix string) (LaunchTemplateRef, bool) {
	s := p.Sub(prefix)
	ref := LaunchTemplateRef{ID: s.Get("LaunchTemplateId"), Name: s.Get("LaunchTemplateName"), Version: s.Get("Version")}
	return ref, ref.ID != "" || ref.Name != ""
}

// asMixedParam reads a MixedInstancesPolicy.
func asMixedParam(p params) (*MixedInstancesPolicy, LaunchTemplateRef, bool, *APIError) {
	s := p.Sub("MixedInstancesPolicy")
	if len(s.Values()) == 0 {
		return nil, LaunchTemplateRef{}, false, nil
	}
	ref, _ := asLaunchTemplateParam(s, "LaunchTemplate.LaunchTemplateSpecification")
	m := &MixedInstancesPolicy{}
	for _, o := range s.Structs("LaunchTemplate.Overrides.member") {
		ov := LaunchOverride{InstanceType: o.Get("InstanceType"), WeightedCapacity: o.Get("WeightedCapacity")}
		if lt, ok := asLaunchTemplateParam(o, "LaunchTemplateSpecification"); ok {
			ov.LaunchTemplate = &lt
		}
		m.Overrides = append(m.Overrides, ov)
	}
	d := s.Sub("InstancesDistribution")
	base, _, err := asInt32(d, "OnDemandBaseCapacity")
	if err != nil {
		return nil, ref, false, err
	}
	m.OnDemandBaseCapacity = base
	if pct, ok, err := asInt32(d, "OnDemandPercentageAboveBaseCapacity"); err != nil {
		return nil, ref, false, err
	} else if ok {
		if pct < 0 || pct > 100 {
			return nil, ref, false, errf(CodeValidationError, "OnDemandPercentageAboveBaseCapacity must be between 0 and 100.")
		}
		m.OnDemandPercentageAboveBaseCapacity = &pct
	}
	m.OnDemandAllocationStrategy = d.Get("OnDemandAllocationStrategy")
	m.SpotAllocationStrategy = d.Get("SpotAllocationStrategy")
	m.SpotMaxPrice = d.Get("SpotMaxPrice")
	return m, ref, true, nil
}

func asTagsParam(p params) []ASGTag {
	var out []ASGTag
	for _, t := range p.Structs("Tags.member") {
		prop, _, _ := t.Bool("PropagateAtLaunch")
		out = append(out, ASGTag{Key: t.Get("Key"), Value: t.Get("Value"), PropagateAtLaunch: prop})
	}
	return out
}

func asSplitSubnets(s string) []string {
	var out []string
	for _, id := range strings.Split(s, ",") {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

func (r *Region) asCreateAutoScalingGroup(c *call) *APIError {
	p := c.Form
	spec := GroupSpec{
		Name:            p.Get("AutoScalingGroupName"),
		Subnets:         asSplitSubnets(p.Get("VPCZoneIdentifier")),
		AZs:             p.List("AvailabilityZones.member"),
		Tags:            asTagsParam(p),
		TargetGroupARNs: p.List("TargetGroupARNs.member"),
		HealthCheckType: p.Get("HealthCheckType"),
	}
	if p.Get("LaunchConfigurationName") != "" || p.Get("InstanceId") != "" {
		return errf(CodeValidationError, "The simulated region supports only launch templates: use LaunchTemplate or MixedInstancesPolicy.")
	}
	ref, hasLT := asLaunchTemplateParam(p, "LaunchTemplate")
	mixed, mref, hasMixed, err := asMixedParam(p)
	if err != nil {
		return err
	}
	if hasLT && hasMixed {
		return errf(CodeValidationError, "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.")
	}
	if hasMixed {
		ref, spec.Mixed = mref, mixed
	}
	spec.LaunchTemplate = ref
	var ok bool
	if spec.Min, ok, err = asInt32(p, "MinSize"); err != nil {
		return err
	} else if !ok {
		return nullMember(CodeValidationError, "minSize")
	}
	if spec.Max, ok, err = asInt32(p, "MaxSize"); err != nil {
		return err
	} else if !ok {
		return nullMember(CodeValidationError, "maxSize")
	}
	if d, ok, err := asInt32(p, "DesiredCapacity"); err != nil {
		return err
	} else if ok {
		spec.Desired = &d
	}
	if spec.HealthCheckGracePeriod, _, err = asInt32(p, "HealthCheckGracePeriod"); err != nil {
		return err
	}
	if spec.DefaultCooldown, _, err = asInt32(p, "DefaultCooldown"); err != nil {
		return err
	}
	spec.CapacityRebalance, _, _ = p.Bool("CapacityRebalance")
	spec.NewInstancesProtectedFromScaleIn, _, _ = p.Bool("NewInstancesProtectedFromScaleIn")
	spec.TerminationPolicies = p.List("TerminationPolicies.member")
	spec.LoadBalancerNames = p.List("LoadBalancerNames.member")
	if spec.LifecycleHooks, err = asHookSpecsParam(p); err != nil {
		return err
	}
	if spec.MaxInstanceLifetime, _, err = asInt32(p, "MaxInstanceLifetime"); err != nil {
		return err
	}
	if err := r.createGroup(spec); err != nil {
		return err
	}
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asUpdateAutoScalingGroup(c *call) *APIError {
	p := c.Form
	g, err := r.asMutable(p.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	x := r.asgExtraOf(g)
	minSize, maxSize, desired := g.Min, g.Max, g.Desired
	newMin, hasMin, err := asInt32(p, "MinSize")
	if err != nil {
		return err
	}
	newMax, hasMax, err := asInt32(p, "MaxSize")
	if err != nil {
		return err
	}
	newDesired, hasDesired, err := asInt32(p, "DesiredCapacity")
	if err != nil {
		return err
	}
	if hasMin {
		minSize = newMin
	}
	if hasMax {
		maxSize = newMax
	}
	if hasDesired {
		desired = newDesired
	} else {
		// Without a desired capacity, AWS moves it into the new bounds.
		desired = max(desired, minSize)
		desired = min(desired, maxSize)
	}
	if err := asgCheckSizes(minSize, maxSize, desired); err != nil {
		return err
	}
	ref, hasLT := asLaunchTemplateParam(p, "LaunchTemplate")
	mixed, mref, hasMixed, err := asMixedParam(p)
	if err != nil {
		return err
	}
	if hasLT && hasMixed {
		return errf(CodeValidationError, "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.")
	}
	if hasMixed {
		if mref.ID == "" && mref.Name == "" && g.LaunchTemplate != nil {
			mref = *g.LaunchTemplate
		}
		ref, hasLT = mref, true
	}
	if hasLT {
		if err := r.asgCheckTemplate(ref, hasMixed); err != nil {
			return err
		}
	}
	if hasMixed {
		if err := r.asgCheckMixed(mixed); err != nil {
			return err
		}
	}
	subnetsParam, azsParam := asSplitSubnets(p.Get("VPCZoneIdentifier")), p.List("AvailabilityZones.member")
	var subnets, azs []string
	if len(subnetsParam) > 0 || len(azsParam) > 0 {
		if subnets, azs, err = r.asgPlacement(subnetsParam, azsParam); err != nil {
			return err
		}
	}
	// Every check passed: apply.
	if hasLT {
		if ref.Version == "" {
			ref.Version = "$Default"
		}
		lt := r.findTemplate(ref.ID, ref.Name)
		ref.ID, ref.Name = lt.ID, lt.Name
		g.LaunchTemplate = &ref
		if hasMixed {
			x.mixed = r.asgNormalizeMixed(mixed)
			g.MixedInstanceTypes = append([]string(nil), x.mixed.InstanceTypes...)
		} else {
			x.mixed = nil
			g.MixedInstanceTypes = nil
		}
	}
	if azs != nil {
		g.Subnets, g.AZs = subnets, azs
	}
	if b, ok, _ := p.Bool("CapacityRebalance"); ok {
		g.CapacityRebalance = b
	}
	if b, ok, _ := p.Bool("NewInstancesProtectedFromScaleIn"); ok {
		x.newProtected = b
	}
	if n, ok, _ := asInt32(p, "HealthCheckGracePeriod"); ok {
		g.HealthCheckGrace = n
	}
	if n, ok, _ := asInt32(p, "DefaultCooldown"); ok {
		g.DefaultCooldown = n
	}
	if n, ok, _ := asInt32(p, "MaxInstanceLifetime"); ok {
		x.maxLifetime = n
	}
	if t := p.Get("HealthCheckType"); t != "" {
		g.HealthCheckType = t
	}
	if tp := p.List("TerminationPolicies.member"); len(tp) > 0 {
		g.TerminationPolicy = tp
	}
	if desired != g.Desired {
		x.cause = fmt.Sprintf("At %s a user request update of AutoScalingGroup constraints to min: %d, max: %d, desired: %d changing the desired capacity from %d to %d.",
			asgCauseTime(r.now()), minSize, maxSize, desired, g.Desired, desired)
	}
	g.Min, g.Max, g.Desired = minSize, maxSize, desired
	r.asgKick(g)
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asDeleteAutoScalingGroup(c *call) *APIError {
	p := c.Form
	g, err := r.asGroupByName(p.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	force, _, _ := p.Bool("ForceDelete")
	if !force {
		if len(g.Members) > 0 {
			return errf("ResourceInUse", "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.")
		}
		for _, a := range g.Activities {
			if a.Status == ActivityInProgress {
				return errf("ScalingActivityInProgress", "You cannot delete an AutoScalingGroup while there are scaling activities in progress for that group.")
			}
		}
		r.asgDrop(g)
		c.writeQuery(struct{}{})
		return nil
	}
	if g.Status != asgDeleting {
		cause := fmt.Sprintf("At %s a user request deleted the AutoScalingGroup changing the desired capacity from %d to 0.", asgCauseTime(r.now()), g.Desired)
		g.Status = asgDeleting
		g.Min, g.Max, g.Desired = 0, 0, 0
		for _, m := range append([]*ASGMember(nil), g.Members...) {
			if m.LifecycleState == LifecycleDetaching {
				continue
			}
			// A force delete does not wait for lifecycle hooks or draining.
			if x := r.asgExtraOf(g); strings.HasPrefix(m.LifecycleState, LifecycleTerminating) && x.leaving[m.InstanceID] != leaveFinal {
				r.asgDropActions(g, m.InstanceID)
				r.asgTerminateFinal(g, m)
				continue
			}
			r.asgTerminateMember(g, m, cause)
		}
	}
	if len(g.Members) == 0 && r.asgs[g.Name] == g {
		r.asgDrop(g)
	}
	c.writeQuery(struct{}{})
	return nil
}

// asRender renders a group for DescribeAutoScalingGroups.
func (r *Region) asRender(g *ASG, withInstances bool) asGroup {
	x := r.asgExtraOf(g)
	out := asGroup{
		AutoScalingGroupARN:              g.ARN,
		AutoScalingGroupName:             g.Name,
		AvailabilityZones:                asMembers(append([]string(nil), r.asgAZs(g)...)),
		CapacityRebalance:                g.CapacityRebalance,
		CreatedTime:                      isoTime(g.Created),
		DefaultCooldown:                  g.DefaultCooldown,
		DesiredCapacity:                  g.Desired,
		HealthCheckGracePeriod:           g.HealthCheckGrace,
		HealthCheckType:                  g.HealthCheckType,
		MaxInstanceLifetime:              x.maxLifetime,
		MaxSize:                          g.Max,
		MinSize:                          g.Min,
		NewInstancesProtectedFromScaleIn: x.newProtected,
		ServiceLinkedRoleARN:             fmt.Sprintf("arn:aws:iam::%s:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling", r.opts.AccountID),
		Status:                           g.Status,
		TargetGroupARNs:                  asMembers(append([]string(nil), g.TargetGroupARNs...)),
		TerminationPolicies:              asMembers(append([]string(nil), g.TerminationPolicy...)),
		VPCZoneIdentifier:                strings.Join(g.Subnets, ","),
	}
	if wp := x.warm; wp != nil {
		out.WarmPoolConfiguration = asWarmConfig(wp)
		n := int32(len(wp.members))
		out.WarmPoolSize = &n
	}
	lt := &asLTSpec{}
	if g.LaunchTemplate != nil {
		lt = &asLTSpec{LaunchTemplateID: g.LaunchTemplate.ID, LaunchTemplateName: g.LaunchTemplate.Name, Version: g.LaunchTemplate.Version}
	}
	if x.mixed != nil {
		m := &asMixed{}
		d := &m.InstancesDistribution
		d.OnDemandAllocationStrategy = x.mixed.OnDemandAllocationStrategy
		d.OnDemandBaseCapacity = x.mixed.OnDemandBaseCapacity
		d.OnDemandPercentageAboveBaseCapacity = x.mixed.onDemandPercent()
		d.SpotAllocationStrategy = x.mixed.SpotAllocationStrategy
		d.SpotMaxPrice = x.mixed.SpotMaxPrice
		m.LaunchTemplate.LaunchTemplateSpecification = *lt
		for _, o := range x.mixed.overrides() {
			ov := asOverride{InstanceType: o.InstanceType, WeightedCapacity: o.WeightedCapacity}
			if t := o.LaunchTemplate; t != nil {
				ov.LaunchTemplateSpecification = &asLTSpec{LaunchTemplateID: t.ID, LaunchTemplateName: t.Name, Version: t.Version}
			}
			m.LaunchTemplate.Overrides.Items = append(m.LaunchTemplate.Overrides.Items, ov)
		}
		out.MixedInstancesPolicy = m
	} else {
		out.LaunchTemplate = lt
	}
	if withInstances {
		list := asList[asInstance]{Items: []asInstance{}}
		for _, m := range g.Members {
			if !r.asgHidden(g, m.InstanceID) {
				list.Items = append(list.Items, r.asRenderMember(m))
			}
		}
		out.Instances = &list
	}
	procs := make([]string, 0, len(g.Suspended))
	for name, on := range g.Suspended {
		if on {
			procs = append(procs, name)
		}
	}
	sort.Strings(procs)
	for _, name := range procs {
		out.SuspendedProcesses.Items = append(out.SuspendedProcesses.Items, asSuspended{ProcessName: name,
			SuspensionReason: "User suspended at " + asgCauseTime(x.suspendedAt[name])})
	}
	for _, t := range g.Tags {
		out.Tags.Items = append(out.Tags.Items, asTag{Key: t.Key, Value: t.Value, PropagateAtLaunch: t.PropagateAtLaunch,
			ResourceID: g.Name, ResourceType: "auto-scaling-group"})
	}
	for _, arn := range g.TargetGroupARNs {
		out.TrafficSources.Items = append(out.TrafficSources.Items, asTrafficSrc{Identifier: arn, Type: "elbv2"})
	}
	out.LoadBalancerNames = asMembers(append([]string(nil), x.lb.names...))
	for _, n := range x.lb.names {
		out.TrafficSources.Items = append(out.TrafficSources.Items, asTrafficSrc{Identifier: n, Type: "elb"})
	}
	return out
}

func (r *Region) asRenderMember(m *ASGMember) asInstance {
	out := asInstance{InstanceID: m.InstanceID, LifecycleState: m.LifecycleState, HealthStatus: m.HealthStatus,
		ProtectedFromScaleIn: m.ProtectedFromSIn}
	if in := r.instances[m.InstanceID]; in != nil {
		out.AvailabilityZone = in.AZ
		out.InstanceType = in.Type
		for _, az := range r.azs {
			if az.Name == in.AZ {
				out.AvailabilityZoneID = az.ID
			}
		}
		if in.LaunchTemplate != nil {
			out.LaunchTemplate = &asLTSpec{LaunchTemplateID: in.LaunchTemplate.ID, LaunchTemplateName: in.LaunchTemplate.Name,
				Version: in.LaunchTemplate.Version}
		}
		if g, _ := r.asgGroupOf(m.InstanceID); g != nil {
			if mixed := r.asgExtraOf(g).mixed; mixed != nil {
				out.WeightedCapacity = mixed.weightOf(in.Type)
			}
		}
	}
	return out
}

// asMaxRecords reads MaxRecords and checks it against AWS's limit.
func asMaxRecords(p params, limit int64) (int64, *APIError) {
	n, ok, err := p.Int("MaxRecords")
	if err != nil {
		return 0, errf(CodeValidationError, "Invalid value '%s' for MaxRecords", p.Get("MaxRecords"))
	}
	if ok && (n < 1 || n > limit) {
		return 0, errf(CodeValidationError, "1 validation error detected: Value '%d' at 'maxRecords' failed to satisfy constraint: Member must have value between 1 and %d", n, limit)
	}
	return n, nil
}

type asFilter struct {
	name   string
	values []string
}

func asFiltersParam(p params) []asFilter {
	var out []asFilter
	for _, f := range p.Structs("Filters.member") {
		out = append(out, asFilter{name: f.Get("Name"), values: f.List("Values.member")})
	}
	return out
}

func asAnyOf(values []string, v string) bool {
	for _, w := range values {
		if w == v {
			return true
		}
	}
	return false
}

func (r *Region) asDescribeAutoScalingGroups(c *call) *APIError {
	p := c.Form
	maxRecords, err := asMaxRecords(p, 100)
	if err != nil {
		return err
	}
	filters := asFiltersParam(p)
	for _, f := range filters {
		if f.name != "tag-key" && f.name != "tag-value" && !strings.HasPrefix(f.name, "tag:") {
			return errf(CodeValidationError, "Filter type %s is not correct. Allowed Filter types are: tag-key tag-value tag:<key>", f.name)
		}
	}
	names := p.List("AutoScalingGroupNames.member")
	var groups []*ASG
	if len(names) > 0 {
		seen := map[string]bool{}
		for _, n := range names {
			if g := r.asgs[n]; g != nil && !seen[n] {
				seen[n] = true
				groups = append(groups, g)
			}
		}
	} else {
		for _, g := range r.asgs {
			groups = append(groups, g)
		}
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Name < groups[j].Name })
	kept := groups[:0]
	for _, g := range groups {
		if asGroupMatches(g, filters) {
			kept = append(kept, g)
		}
	}
	start, end, next, perr := page(len(kept), maxRecords, p.Get("NextToken"), 50, 100)
	if perr != nil {
		return perr
	}
	withInstances := true
	if b, ok, _ := p.Bool("IncludeInstances"); ok {
		withInstances = b
	}
	out := struct {
		AutoScalingGroups asList[asGroup] `xml:"AutoScalingGroups"`
		NextToken         string          `xml:"NextToken,omitempty"`
	}{NextToken: next}
	out.AutoScalingGroups.Items = []asGroup{}
	for _, g := range kept[start:end] {
		out.AutoScalingGroups.Items = append(out.AutoScalingGroups.Items, r.asRender(g, withInstances))
	}
	c.writeQuery(out)
	return nil
}

func asGroupMatches(g *ASG, filters []asFilter) bool {
	for _, f := range filters {
		ok := false
		for _, t := range g.Tags {
			switch {
			case f.name == "tag-key":
				ok = asAnyOf(f.values, t.Key)
			case f.name == "tag-value":
				ok = asAnyOf(f.values, t.Value)
			default:
				ok = t.Key == strings.TrimPrefix(f.name, "tag:") && asAnyOf(f.values, t.Value)
			}
			if ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// asTagsInput reads the Tags of CreateOrUpdateTags and DeleteTags and checks their groups.
func (r *Region) asTagsInput(p params) ([]ASGTag, []*ASG, *APIError) {
	var tags []ASGTag
	var groups []*ASG
	structs := p.Structs("Tags.member")
	if len(structs) == 0 {
		return nil, nil, nullMember(CodeValidationError, "tags")
	}
	for _, t := range structs {
		if rt := t.Get("ResourceType"); rt != "" && rt != "auto-scaling-group" {
			return nil, nil, errf(CodeValidationError, "Invalid resource type: %s. Valid resource type: auto-scaling-group", rt)
		}
		id := t.Get("ResourceId")
		g := r.asgs[id]
		if g == nil {
			return nil, nil, errf(CodeValidationError, "AutoScalingGroup not found - AutoScaling Group %s not found", id)
		}
		if err := asgCheckTag(t.Get("Key")); err != nil {
			return nil, nil, err
		}
		prop, _, _ := t.Bool("PropagateAtLaunch")
		tags = append(tags, ASGTag{Key: t.Get("Key"), Value: t.Get("Value"), PropagateAtLaunch: prop})
		groups = append(groups, g)
	}
	return tags, groups, nil
}

func (r *Region) asCreateOrUpdateTags(c *call) *APIError {
	tags, groups, err := r.asTagsInput(c.Form)
	if err != nil {
		return err
	}
	count := map[*ASG]map[string]bool{}
	for i, g := range groups {
		if count[g] == nil {
			count[g] = map[string]bool{}
			for _, t := range g.Tags {
				count[g][t.Key] = true
			}
		}
		count[g][tags[i].Key] = true
		if len(count[g]) > 50 {
			return errf("LimitExceeded", "The number of tags for the Auto Scaling group %s exceeds the maximum of 50.", g.Name)
		}
	}
	for i, g := range groups {
		g.Tags = asgPutTag(g.Tags, tags[i])
	}
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asDeleteTags(c *call) *APIError {
	tags, groups, err := r.asTagsInput(c.Form)
	if err != nil {
		return err
	}
	for i, g := range groups {
		kept := g.Tags[:0]
		for _, t := range g.Tags {
			if t.Key != tags[i].Key {
				kept = append(kept, t)
			}
		}
		g.Tags = kept
	}
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asDescribeTags(c *call) *APIError {
	p := c.Form
	maxRecords, err := asMaxRecords(p, 100)
	if err != nil {
		return err
	}
	filters := asFiltersParam(p)
	for _, f := range filters {
		switch f.name {
		case "auto-scaling-group", "key", "value", "propagate-at-launch":
		default:
			return errf(CodeValidationError, "Filter type %s is not correct. Allowed Filter types are: auto-scaling-group key value propagate-at-launch", f.name)
		}
	}
	names := make([]string, 0, len(r.asgs))
	for n := range r.asgs {
		names = append(names, n)
	}
	sort.Strings(names)
	var all []asTag
	for _, n := range names {
		g := r.asgs[n]
		for _, t := range g.Tags {
			ok := true
			for _, f := range filters {
				switch f.name {
				case "auto-scaling-group":
					ok = ok && asAnyOf(f.values, g.Name)
				case "key":
					ok = ok && asAnyOf(f.values, t.Key)
				case "value":
					ok = ok && asAnyOf(f.values, t.Value)
				case "propagate-at-launch":
					ok = ok && asAnyOf(f.values, fmt.Sprint(t.PropagateAtLaunch))
				}
			}
			if ok {
				all = append(all, asTag{Key: t.Key, Value: t.Value, PropagateAtLaunch: t.PropagateAtLaunch, ResourceID: g.Name,
					ResourceType: "auto-scaling-group"})
			}
		}
	}
	start, end, next, perr := page(len(all), maxRecords, p.Get("NextToken"), 50, 100)
	if perr != nil {
		return perr
	}
	out := struct {
		NextToken string        `xml:"NextToken,omitempty"`
		Tags      asList[asTag] `xml:"Tags"`
	}{NextToken: next, Tags: asMembers(append([]asTag{}, all[start:end]...))}
	c.writeQuery(out)
	return nil
}

func (r *Region) asAttachInstances(c *call) *APIError {
	p := c.Form
	g, err := r.asMutable(p.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	ids := p.List("InstanceIds.member")
	if len(ids) > 20 {
		return errf(CodeValidationError, "The number of instance IDs (%d) exceeds the maximum of 20.", len(ids))
	}
	vpc := ""
	if len(g.Subnets) > 0 {
		if sn := r.subnets[g.Subnets[0]]; sn != nil {
			vpc = sn.VPCID
		}
	}
	var ins []*Instance
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		in := r.instances[id]
		// Auto Scaling reads EC2: an instance EC2 does not show yet is not found either.
		if in == nil || in.State == StateTerminated || !r.ec2Visible(id) {
			return errf(CodeValidationError, "Instance Id not found - No instance found for instance ID: %s", id)
		}
		if in.State != StateRunning {
			return errf(CodeValidationError, "The instance %s is not in correct state.", id)
		}
		if other, _ := r.asgGroupOf(id); other != nil {
			return errf(CodeValidationError, "The instance %s is already part of the Auto Scaling group %s.", id, other.Name)
		}
		if !asAnyOf(r.asgAZs(g), in.AZ) {
			return errf(CodeValidationError, "The instance %s is in Availability Zone %s, which is not one of the Availability Zones of the Auto Scaling group %s.", id, in.AZ, g.Name)
		}
		if vpc != "" && in.VPCID != vpc {
			return errf(CodeValidationError, "The instance %s is not in the same VPC as the Auto Scaling group %s.", id, g.Name)
		}
		ins = append(ins, in)
	}
	if len(ins) == 0 {
		c.writeQuery(struct{}{})
		return nil
	}
	if g.Desired+int32(len(ins)) > g.Max {
		return errf(CodeValidationError, "AutoScalingGroup %s has min-size=%d, max-size=%d, and desired-size=%d. To attach %d %s, please update the AutoScalingGroup sizes appropriately.",
			g.Name, g.Min, g.Max, g.Desired, len(ins), asPlural(len(ins), "instance"))
	}
	x := r.asgExtraOf(g)
	g.Desired += int32(len(ins))
	for _, in := range ins {
		m := &ASGMember{InstanceID: in.ID, LifecycleState: LifecyclePending, HealthStatus: HealthHealthy, ProtectedFromSIn: x.newProtected}
		g.Members = append(g.Members, m)
		r.asg().byInstance[in.ID] = g.Name
		r.asgHide(g, in.ID)
		in.Tags[ASGGroupNameTag] = g.Name
		if in.LaunchTemplate != nil {
			if v, ok := parseInt64(in.LaunchTemplate.Version); ok {
				x.launchVersion[in.ID] = v
			}
		}
		cause := fmt.Sprintf("At %s an instance was added in response to user request. Keeping the capacity at the new desired capacity %d.", asgCauseTime(r.now()), g.Desired)
		act := r.asgActivity(g, "Attaching an existing EC2 instance: "+in.ID, cause, ActivityInProgress)
		act.Progress = 50
		x.open[in.ID] = act
		id, name := in.ID, g.Name
		r.after(r.lat.Attach, func() {
			cur := r.asgs[name]
			if cur == nil {
				return
			}
			m, ok := cur.Member(id)
			if !ok || m.LifecycleState != LifecyclePending {
				return
			}
			if in := r.instances[id]; in != nil && in.State == StateRunning {
				r.asgInService(cur, m)
			}
		})
	}
	c.writeQuery(struct{}{})
	return nil
}

func asPlural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func (r *Region) asDetachInstances(c *call) *APIError {
	p := c.Form
	g, err := r.asMutable(p.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	decrement, berr := p.RequiredBool("ShouldDecrementDesiredCapacity", "shouldDecrementDesiredCapacity")
	if berr != nil {
		return berr
	}
	ids := p.List("InstanceIds.member")
	if len(ids) > 20 {
		return errf(CodeValidationError, "List exceeds the maximum number of instances to detach. Please retry your request with fewer instances.")
	}
	var ms []*ASGMember
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		m, ok := g.Member(id)
		if !ok {
			return errf(CodeValidationError, "The instance %s is not part of Auto Scaling group %s.", id, g.Name)
		}
		if m.LifecycleState != LifecycleInService && m.LifecycleState != LifecycleStandby {
			return errf(CodeValidationError, "The instance %s is not in InService or Standby.", id)
		}
		ms = append(ms, m)
	}
	if decrement && g.Desired-int32(len(ms)) < g.Min {
		return errf(CodeValidationError, "AutoScalingGroup %s has min-size=%d, max-size=%d, and desired-size=%d. To detach %d %s, please update the AutoScalingGroup sizes appropriately.",
			g.Name, g.Min, g.Max, g.Desired, len(ms), asPlural(len(ms), "instance"))
	}
	x := r.asgExtraOf(g)
	before := g.Desired
	if decrement {
		g.Desired -= int32(len(ms))
	}
	var acts []asActivity
	for _, m := range ms {
		cause := fmt.Sprintf("At %s instance %s was detached in response to a user request.", asgCauseTime(r.now()), m.InstanceID)
		if decrement {
			cause = fmt.Sprintf("At %s instance %s was detached in response to a user request, shrinking the capacity from %d to %d.",
				asgCauseTime(r.now()), m.InstanceID, before, g.Desired)
		}
		r.asgCloseActivity(g, m.InstanceID, ActivitySuccessful)
		m.LifecycleState = LifecycleDetaching
		act := r.asgActivity(g, "Detaching EC2 instance: "+m.InstanceID, cause, ActivityInProgress)
		act.Progress = 50
		x.open[m.InstanceID] = act
		if in := r.instances[m.InstanceID]; in != nil {
			in.TargetLifecycleState = "Detached"
		}
		id, name := m.InstanceID, g.Name
		drain := r.lbDeregisterMember(g, m.InstanceID)
		if drain > 0 {
			act.Status = ActivityWaitingForELBConnectionDraining
		}
		acts = append(acts, r.asRenderActivity(g, act))
		r.after(max(r.lat.Detach, drain), func() {
			cur := r.asgs[name]
			if cur == nil {
				return
			}
			if m, ok := cur.Member(id); !ok || m.LifecycleState != LifecycleDetaching {
				return
			}
			if in := r.instances[id]; in != nil && in.Tags[ASGGroupNameTag] == name {
				delete(in.Tags, ASGGroupNameTag)
			}
			r.asgRemoveMember(cur, id)
		})
	}
	r.asgKick(g)
	c.writeQuery(struct {
		Activities asList[asActivity] `xml:"Activities"`
	}{asMembers(acts)})
	return nil
}

func (r *Region) asSetDesiredCapacity(c *call) *APIError {
	p := c.Form
	g, err := r.asMutable(p.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	d, ok, err := asInt32(p, "DesiredCapacity")
	if err != nil {
		return err
	}
	if !ok {
		return nullMember(CodeValidationError, "desiredCapacity")
	}
	if err := r.asgSetDesired(g, d); err != nil {
		return err
	}
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asTerminateInstanceInAutoScalingGroup(c *call) *APIError {
	p := c.Form
	id := p.Get("InstanceId")
	decrement, berr := p.RequiredBool("ShouldDecrementDesiredCapacity", "shouldDecrementDesiredCapacity")
	if berr != nil {
		return berr
	}
	g, m := r.asgGroupOf(id)
	if g == nil {
		return errf(CodeValidationError, "Instance Id not found - No managed instance found for instance ID: %s", id)
	}
	if m.LifecycleState == LifecycleTerminating {
		act := r.asgExtraOf(g).open[id]
		if act == nil {
			act = r.asgActivity(g, "Terminating EC2 instance: "+id, "", ActivityInProgress)
		}
		c.writeQuery(struct {
			Activity asActivity `xml:"Activity"`
		}{r.asRenderActivity(g, act)})
		return nil
	}
	if decrement && g.Desired-1 < g.Min {
		return errf(CodeValidationError, "Currently, desiredSize equals minSize (%d). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.", g.Min)
	}
	cause := fmt.Sprintf("At %s instance %s was taken out of service in response to a user request.", asgCauseTime(r.now()), id)
	if decrement && r.asgCounted(g, m) {
		cause = fmt.Sprintf("At %s instance %s was taken out of service in response to a user request, shrinking the capacity from %d to %d.",
			asgCauseTime(r.now()), id, g.Desired, g.Desired-1)
		g.Desired--
	}
	act := r.asgTerminateMember(g, m, cause)
	r.asgKick(g)
	c.writeQuery(struct {
		Activity asActivity `xml:"Activity"`
	}{r.asRenderActivity(g, act)})
	return nil
}

func (r *Region) asDescribeAutoScalingInstances(c *call) *APIError {
	p := c.Form
	maxRecords, err := asMaxRecords(p, 50)
	if err != nil {
		return err
	}
	ids := p.List("InstanceIds.member")
	if len(ids) > 50 {
		return errf(CodeValidationError, "The number of instance ids that may be passed in is limited to 50")
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	type item struct {
		AutoScalingGroupName string `xml:"AutoScalingGroupName"`
		asInstance
	}
	var all []item
	for _, g := range r.asgs {
		for _, m := range g.Members {
			if len(want) > 0 && !want[m.InstanceID] || r.asgHidden(g, m.InstanceID) {
				continue
			}
			it := item{AutoScalingGroupName: g.Name, asInstance: r.asRenderMember(m)}
			it.HealthStatus = strings.ToUpper(it.HealthStatus)
			all = append(all, it)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].InstanceID < all[j].InstanceID })
	start, end, next, perr := page(len(all), maxRecords, p.Get("NextToken"), 50, 50)
	if perr != nil {
		return perr
	}
	out := struct {
		AutoScalingInstances asList[item] `xml:"AutoScalingInstances"`
		NextToken            string       `xml:"NextToken,omitempty"`
	}{AutoScalingInstances: asMembers(append([]item{}, all[start:end]...)), NextToken: next}
	c.writeQuery(out)
	return nil
}

// asProcessesParam reads ScalingProcesses; none means all of them.
func asProcessesParam(p params) ([]string, *APIError) {
	procs := p.List("ScalingProcesses.member")
	if len(procs) == 0 {
		return asgProcesses, nil
	}
	for _, name := range procs {
		if !asAnyOf(asgProcesses, name) {
			return nil, errf(CodeValidationError, "Process name %s is not a valid scaling process.", name)
		}
	}
	return procs, nil
}

func (r *Region) asSuspendProcesses(c *call) *APIError {
	g, err := r.asMutable(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	procs, err := asProcessesParam(c.Form)
	if err != nil {
		return err
	}
	x := r.asgExtraOf(g)
	// The map is replaced, never changed in place: copies of the group handed out by Group share it.
	suspended := maps.Clone(g.Suspended)
	if suspended == nil {
		suspended = map[string]bool{}
	}
	for _, name := range procs {
		if !suspended[name] {
			suspended[name] = true
			x.suspendedAt[name] = r.now()
		}
	}
	g.Suspended = suspended
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asResumeProcesses(c *call) *APIError {
	g, err := r.asMutable(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	procs, err := asProcessesParam(c.Form)
	if err != nil {
		return err
	}
	x := r.asgExtraOf(g)
	suspended := maps.Clone(g.Suspended)
	for _, name := range procs {
		delete(suspended, name)
		delete(x.suspendedAt, name)
	}
	g.Suspended = suspended
	r.asgKick(g)
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asRenderActivity(g *ASG, a *Activity) asActivity {
	out := asActivity{ActivityID: a.ID, AutoScalingGroupName: a.Group, Cause: a.Cause, Description: a.Description,
		Details: a.Details, Progress: a.Progress, StartTime: isoTime(a.Start), StatusCode: a.Status, StatusMessage: a.StatusMsg}
	if g != nil {
		out.AutoScalingGroupARN = g.ARN
	}
	if out.Details == "" {
		out.Details = "{}"
	}
	if !a.End.IsZero() {
		out.EndTime = isoTime(a.End)
	}
	return out
}

func (r *Region) asDescribeScalingActivities(c *call) *APIError {
	p := c.Form
	maxRecords, err := asMaxRecords(p, 100)
	if err != nil {
		return err
	}
	ids := p.List("ActivityIds.member")
	if len(ids) > 50 {
		return errf(CodeValidationError, "The number of activity ids that may be passed in is limited to 50")
	}
	name := p.Get("AutoScalingGroupName")
	includeDeleted, _, _ := p.Bool("IncludeDeletedGroups")
	var acts []*Activity
	for _, g := range r.asgs {
		if name == "" || g.Name == name {
			acts = append(acts, g.Activities...)
		}
	}
	if includeDeleted {
		for _, a := range r.asg().deleted {
			if name == "" || a.Group == name {
				acts = append(acts, a)
			}
		}
	}
	if len(ids) > 0 {
		kept := acts[:0]
		for _, a := range acts {
			if asAnyOf(ids, a.ID) {
				kept = append(kept, a)
			}
		}
		acts = kept
	}
	// Newest first; activities that started together keep their creation order reversed.
	idx := map[*Activity]int{}
	for i, a := range acts {
		idx[a] = i
	}
	sort.SliceStable(acts, func(i, j int) bool {
		if !acts[i].Start.Equal(acts[j].Start) {
			return acts[i].Start.After(acts[j].Start)
		}
		return idx[acts[i]] > idx[acts[j]]
	})
	start, end, next, perr := page(len(acts), maxRecords, p.Get("NextToken"), 100, 100)
	if perr != nil {
		return perr
	}
	out := struct {
		Activities asList[asActivity] `xml:"Activities"`
		NextToken  string             `xml:"NextToken,omitempty"`
	}{NextToken: next}
	out.Activities.Items = []asActivity{}
	for _, a := range acts[start:end] {
		out.Activities.Items = append(out.Activities.Items, r.asRenderActivity(r.asgs[a.Group], a))
	}
	c.writeQuery(out)
	return nil
}

func (r *Region) asSetInstanceProtection(c *call) *APIError {
	p := c.Form
	g, err := r.asMutable(p.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	protect, berr := p.RequiredBool("ProtectedFromScaleIn", "protectedFromScaleIn")
	if berr != nil {
		return berr
	}
	ids := p.List("InstanceIds.member")
	if len(ids) > 50 {
		return errf(CodeValidationError, "The number of instance ids that may be passed in is limited to 50")
	}
	var ms []*ASGMember
	for _, id := range ids {
		m, ok := g.Member(id)
		if !ok {
			return errf(CodeValidationError, "The instance %s is not part of Auto Scaling group %s.", id, g.Name)
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		m.ProtectedFromSIn = protect
	}
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asSetInstanceHealth(c *call) *APIError {
	p := c.Form
	id := p.Get("InstanceId")
	status := p.Get("HealthStatus")
	if status != HealthHealthy && status != HealthUnhealthy {
		return errf(CodeValidationError, "Valid values for HealthStatus are Healthy and Unhealthy.")
	}
	g, m := r.asgGroupOf(id)
	if g == nil {
		return errf(CodeValidationError, "Instance Id not found - No managed instance found for instance ID: %s", id)
	}
	m.HealthStatus = status
	c.writeQuery(struct{}{})
	return nil
}
