package sim

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Auto Scaling: groups that keep their desired count of instances from a launch template. This
// file holds the group engine (launching, replacing, scaling in, following instance states); the
// API handlers are in autoscaling_api.go.

func init() {
	registerService(&service{
		name:   "autoscaling",
		xmlns:  "http://autoscaling.amazonaws.com/doc/2011-01-01/",
		setup:  setupAutoScaling,
		handle: serveAutoScaling,
	})
}

// Lifecycle states of group members, as Auto Scaling names them.
const (
	LifecyclePending     = "Pending"
	LifecycleInService   = "InService"
	LifecycleTerminating = "Terminating"
	LifecycleDetaching   = "Detaching"
	LifecycleStandby     = "Standby"
)

// Health states of group members.
const (
	HealthHealthy   = "Healthy"
	HealthUnhealthy = "Unhealthy"
)

// Scaling activity status codes.
const (
	ActivityInProgress = "InProgress"
	ActivitySuccessful = "Successful"
	ActivityFailed     = "Failed"
	ActivityCancelled  = "Cancelled"
)

// ASGGroupNameTag is the tag Auto Scaling puts on every instance of a group.
const ASGGroupNameTag = "aws:autoscaling:groupName"

// asgDeleting is the Status of a group that is being force-deleted.
const asgDeleting = "Delete in progress"

// asgMaxActivities bounds the activity history kept per group (AWS keeps six weeks).
const asgMaxActivities = 1000

// asgProcesses are the scaling processes that SuspendProcesses accepts.
var asgProcesses = []string{"Launch", "Terminate", "AddToLoadBalancer", "AlarmNotification", "AZRebalance",
	"HealthCheck", "InstanceRefresh", "ReplaceUnhealthy", "ScheduledActions"}

// MixedInstancesPolicy is the part of an Auto Scaling mixed instances policy that the simulation
// follows: the instance types to try (the overrides, in priority order) and the split between
// on-demand and spot.
type MixedInstancesPolicy struct {
	// InstanceTypes are the overrides' instance types, tried in this order in each AZ; a
	// shorthand for Overrides without templates or weights (Overrides wins when both are set).
	InstanceTypes []string
	// Overrides are LaunchTemplate.Overrides: types in priority order, each with an optional
	// launch template of its own and weight (autoscaling_mixed.go).
	Overrides []LaunchOverride
	// OnDemandBaseCapacity is the number of on-demand instances the group launches first.
	OnDemandBaseCapacity int32
	// OnDemandPercentageAboveBaseCapacity is the on-demand share beyond the base; nil means 100.
	OnDemandPercentageAboveBaseCapacity *int32
	// OnDemandAllocationStrategy and SpotAllocationStrategy are echoed back; defaults
	// "prioritized" and "price-capacity-optimized".
	OnDemandAllocationStrategy string
	SpotAllocationStrategy     string
	SpotMaxPrice               string
}

func (m *MixedInstancesPolicy) onDemandPercent() int32 {
	if m.OnDemandPercentageAboveBaseCapacity == nil {
		return 100
	}
	return *m.OnDemandPercentageAboveBaseCapacity
}

// GroupSpec describes an Auto Scaling group to create: what CreateAutoScalingGroup takes, for
// callers inside the process (scenario loaders, tests).
type GroupSpec struct {
	Name string
	// LaunchTemplate names the template by ID or Name; Version is "", "$Default", "$Latest" or a
	// number ("" means $Default).
	LaunchTemplate LaunchTemplateRef
	// Mixed, when set, makes the group a mixed instances group using LaunchTemplate.
	Mixed *MixedInstancesPolicy
	Min   int32
	Max   int32
	// Desired defaults to Min.
	Desired *int32
	// Subnets is the VPCZoneIdentifier; when empty, AZs selects the default subnets.
	Subnets []string
	AZs     []string
	// Tags of the group; those with PropagateAtLaunch go to the instances it launches.
	Tags                             []ASGTag
	CapacityRebalance                bool
	TargetGroupARNs                  []string
	HealthCheckType                  string // EC2 (default) or ELB
	HealthCheckGracePeriod           int32
	DefaultCooldown                  int32 // default 300
	NewInstancesProtectedFromScaleIn bool
	TerminationPolicies              []string
	// MaxInstanceLifetime (seconds) is shown by DescribeAutoScalingGroups but not enforced.
	MaxInstanceLifetime int32
	// LifecycleHooks are created with the group (LifecycleHookSpecificationList).
	LifecycleHooks []LifecycleHook
	// LoadBalancerNames are Classic Load Balancers the group registers its members with.
	LoadBalancerNames []string
}

// asgLaunchFailedHooks run, with the lock held, after a launch of a group failed and was recorded
// as a Failed activity; instanceID is the instance that never reached InService, or "" when no
// instance was launched. The simulated EventBridge announces the failure (events.go).
var asgLaunchFailedHooks []func(r *Region, g *ASG, act *Activity, instanceID string)

// asgState is the Auto Scaling state of a region beyond the ASG records themselves.
type asgState struct {
	groups     map[string]*asgExtra // by group name
	byInstance map[string]string    // member instance id → group name
	deleted    []*Activity          // activities of deleted groups, for IncludeDeletedGroups
	// indexed counts the groups made by createGroup, whose members are all in byInstance: while
	// it equals len(r.asgs), an instance missing from byInstance is in no group, and asgGroupOf
	// need not scan every group (which made each launch cost O(instances) at fleet scale).
	indexed int
	// warmGroups names the groups that got a warm pool (a superset: entries of groups whose pool
	// or group is gone are dropped when asgWarmOf meets them), so that asgWarmOf, which runs on
	// every instance state change, looks at those groups only.
	warmGroups map[string]bool
}

// asgExtra is per-group bookkeeping that the shared model does not carry.
type asgExtra struct {
	mixed         *MixedInstancesPolicy
	suspendedAt   map[string]time.Time
	cause         string               // why the desired capacity last changed, for the next activities
	open          map[string]*Activity // instance id → its unfinished activity
	replacing     map[string]string    // capacity rebalancing: old instance id → replacement id
	kicked        bool
	retryAt       time.Time // no launch before this time after a failed launch
	newProtected  bool
	maxLifetime   int32
	launchVersion map[string]int64   // instance id → launch template version number it was launched with
	hooks         []*LifecycleHook   // by name
	actions       []*lifecycleAction // lifecycle actions not yet completed
	leaving       map[string]int     // terminating member → leaveDraining, leaveHooks or leaveFinal
	lb            asgLoadBalancing
	hidden        map[string]time.Time // attached instance → when Auto Scaling's describes list it
	azMoves       map[string]bool      // old member being replaced by AZRebalance
	warm          *warmPool            // the group's warm pool (autoscaling_warmpool.go); nil = none
	indexed       bool                 // made by createGroup: every member is in asgState.byInstance
}

func setupAutoScaling(r *Region) {
	r.svc["autoscaling"] = &asgState{groups: map[string]*asgExtra{}, byInstance: map[string]string{}, warmGroups: map[string]bool{}}
	r.onStateChange(r.asgInstanceChanged)
	r.onStateChange(r.asgWarmInstanceChanged)
	r.after(r.asgInterval(), r.asgTick)
}

func (r *Region) asg() *asgState { return r.svc["autoscaling"].(*asgState) }

func (r *Region) asgExtraOf(g *ASG) *asgExtra {
	st := r.asg()
	x := st.groups[g.Name]
	if x == nil {
		x = &asgExtra{suspendedAt: map[string]time.Time{}, open: map[string]*Activity{}, replacing: map[string]string{},
			launchVersion: map[string]int64{}, leaving: map[string]int{}, hidden: map[string]time.Time{}, azMoves: map[string]bool{}}
		st.groups[g.Name] = x
	}
	return x
}

func (r *Region) asgInterval() time.Duration {
	if d := r.lat.ASGCheck; d > 0 {
		return d
	}
	return 10 * time.Second
}

// asgTick is the periodic check of every group; it reschedules itself.
func (r *Region) asgTick() {
	names := make([]string, 0, len(r.asgs))
	for n := range r.asgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if g := r.asgs[n]; g != nil {
			r.asgReconcile(g, true)
		}
	}
	r.after(r.asgInterval(), r.asgTick)
}

// asgKick schedules a check of one group right after the current call, for changes that AWS
// acts on at once (a new desired capacity, a detach without decrement).
func (r *Region) asgKick(g *ASG) {
	x := r.asgExtraOf(g)
	if x.kicked {
		return
	}
	x.kicked = true
	name := g.Name
	r.after(0, func() {
		x.kicked = false
		if cur := r.asgs[name]; cur != nil {
			r.asgReconcile(cur, false)
		}
	})
}

// CreateGroup creates an Auto Scaling group and starts bringing it to its desired capacity, as
// CreateAutoScalingGroup does. The error is an *APIError with AWS's code and message.
func (r *Region) CreateGroup(spec GroupSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.createGroup(spec); err != nil {
		return err
	}
	return nil
}

// createGroup validates spec and creates the group, with the lock held.
func (r *Region) createGroup(spec GroupSpec) *APIError {
	if spec.Name == "" {
		return nullMember(CodeValidationError, "autoScalingGroupName")
	}
	if _, ok := r.asgs[spec.Name]; ok {
		return errf("AlreadyExists", "AutoScalingGroup by this name already exists - A group with the name %s already exists", spec.Name)
	}
	if spec.LaunchTemplate.ID == "" && spec.LaunchTemplate.Name == "" {
		return errf(CodeValidationError, "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.")
	}
	if err := r.asgCheckTemplate(spec.LaunchTemplate, spec.Mixed != nil); err != nil {
		return err
	}
	if spec.Mixed != nil {
		if err := r.asgCheckMixed(spec.Mixed); err != nil {
			return err
		}
	}
	desired := spec.Min
	if spec.Desired != nil {
		desired = *spec.Desired
	}
	if err := asgCheckSizes(spec.Min, spec.Max, desired); err != nil {
		return err
	}
	subnets, azs, err := r.asgPlacement(spec.Subnets, spec.AZs)
	if err != nil {
		return err
	}
	for _, t := range spec.Tags {
		if err := asgCheckTag(t.Key); err != nil {
			return err
		}
	}
	if len(spec.Tags) > 50 {
		return errf("LimitExceeded", "The number of tags specified (%d) exceeds the maximum of 50 tags per Auto Scaling group.", len(spec.Tags))
	}
	hc := spec.HealthCheckType
	if hc == "" {
		hc = "EC2"
	}
	cooldown := spec.DefaultCooldown
	if cooldown == 0 {
		cooldown = 300
	}
	now := r.now().UTC().Truncate(time.Millisecond)
	ref := spec.LaunchTemplate
	if ref.Version == "" {
		ref.Version = "$Default"
	}
	lt := r.findTemplate(ref.ID, ref.Name)
	ref.ID, ref.Name = lt.ID, lt.Name
	g := &ASG{
		Name:              spec.Name,
		ARN:               fmt.Sprintf("arn:aws:autoscaling:%s:%s:autoScalingGroup:%s:autoScalingGroupName/%s", r.opts.Region, r.opts.AccountID, r.asgUUID(), spec.Name),
		LaunchTemplate:    &ref,
		Min:               spec.Min,
		Max:               spec.Max,
		Desired:           desired,
		Subnets:           subnets,
		AZs:               azs,
		CapacityRebalance: spec.CapacityRebalance,
		Suspended:         map[string]bool{},
		Created:           now,
		DefaultCooldown:   cooldown,
		HealthCheckType:   hc,
		HealthCheckGrace:  spec.HealthCheckGracePeriod,
		TerminationPolicy: append([]string(nil), spec.TerminationPolicies...),
		TargetGroupARNs:   append([]string(nil), spec.TargetGroupARNs...),
	}
	if len(g.TerminationPolicy) == 0 {
		g.TerminationPolicy = []string{"Default"}
	}
	for _, t := range spec.Tags {
		g.Tags = asgPutTag(g.Tags, t)
	}
	if err := r.lbCheckSpec(spec.TargetGroupARNs, spec.LoadBalancerNames); err != nil {
		return err
	}
	if len(spec.LifecycleHooks) > hookMaxPerGroup {
		return errf("LimitExceeded", "Maximum number of lifecycle hooks (%d) for AutoScalingGroup %s has been reached.", hookMaxPerGroup, spec.Name)
	}
	seenHook := map[string]bool{}
	for _, h := range spec.LifecycleHooks {
		if _, err := asgCheckHook(h); err != nil {
			return err
		}
		if seenHook[h.Name] {
			return errf(CodeValidationError, "Lifecycle hook %s is specified twice.", h.Name)
		}
		seenHook[h.Name] = true
	}
	r.asgs[g.Name] = g
	x := r.asgExtraOf(g)
	x.indexed = true
	r.asg().indexed++
	for _, h := range spec.LifecycleHooks {
		_ = r.asgPutHook(g, h, false) // checked above
	}
	x.lb.names = append([]string(nil), spec.LoadBalancerNames...)
	x.newProtected = spec.NewInstancesProtectedFromScaleIn
	x.maxLifetime = spec.MaxInstanceLifetime
	if spec.Mixed != nil {
		x.mixed = r.asgNormalizeMixed(spec.Mixed)
		g.MixedInstanceTypes = append([]string(nil), x.mixed.InstanceTypes...)
	}
	if desired > 0 {
		x.cause = fmt.Sprintf("At %s a user request created an AutoScalingGroup changing the desired capacity from 0 to %d.", asgCauseTime(now), desired)
	}
	r.asgKick(g)
	return nil
}

// asgSetDesired changes a group's desired capacity as SetDesiredCapacity does.
func (r *Region) asgSetDesired(g *ASG, d int32) *APIError {
	if d > g.Max {
		return errf(CodeValidationError, "New SetDesiredCapacity value %d is above max value %d for the AutoScalingGroup.", d, g.Max)
	}
	if d < g.Min {
		return errf(CodeValidationError, "New SetDesiredCapacity value %d is below min value %d for the AutoScalingGroup.", d, g.Min)
	}
	if d != g.Desired {
		r.asgExtraOf(g).cause = fmt.Sprintf("At %s a user request explicitly set group desired capacity changing the desired capacity from %d to %d.",
			asgCauseTime(r.now()), g.Desired, d)
		g.Desired = d
	}
	r.asgKick(g)
	return nil
}

// asgCheckTemplate reports whether a launch template reference resolves.
func (r *Region) asgCheckTemplate(ref LaunchTemplateRef, mixed bool) *APIError {
	lt := r.findTemplate(ref.ID, ref.Name)
	if lt == nil {
		if ref.ID != "" {
			return errf(CodeValidationError, "You must use a valid fully-formed launch template. The specified launch template, with template ID %s, does not exist.", ref.ID)
		}
		return errf(CodeValidationError, "You must use a valid fully-formed launch template. The specified launch template, with template name %s, does not exist.", ref.Name)
	}
	ver, ok := lt.Version(ref.Version)
	if !ok {
		return errf(CodeValidationError, "You must use a valid fully-formed launch template. The specified launch template version %s of %s does not exist.", ref.Version, lt.ID)
	}
	if mixed && ver.Data.Spot {
		return errf(CodeValidationError, "Incompatible launch template: You cannot use a launch template that is set to request Spot Instances (InstanceMarketOptions) when you configure an Auto Scaling group with a mixed instances policy. Add a different launch template to the group and try again.")
	}
	return nil
}

func asgCheckSizes(minSize, maxSize, desired int32) *APIError {
	if minSize < 0 || maxSize < 0 || desired < 0 {
		return errf(CodeValidationError, "1 validation error detected: Value '%d' failed to satisfy constraint: Member must have value greater than or equal to 0", min(minSize, maxSize, desired))
	}
	if minSize > maxSize {
		return errf(CodeValidationError, "Max bound, %d, must be greater than or equal to min bound, %d", maxSize, minSize)
	}
	if desired < minSize || desired > maxSize {
		return errf(CodeValidationError, "Desired capacity:%d must be between the specified min size:%d and max size:%d", desired, minSize, maxSize)
	}
	return nil
}

func asgCheckTag(key string) *APIError {
	if key == "" {
		return errf(CodeValidationError, "1 validation error detected: Value at 'tags.1.member.key' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if strings.HasPrefix(strings.ToLower(key), "aws:") {
		return errf(CodeValidationError, "Tag keys starting with 'aws:' are reserved for internal use")
	}
	return nil
}

// asgPutTag adds or replaces a tag, keeping tags in key order.
func asgPutTag(tags []ASGTag, t ASGTag) []ASGTag {
	for i := range tags {
		if tags[i].Key == t.Key {
			tags[i] = t
			return tags
		}
	}
	tags = append(tags, t)
	sort.Slice(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
	return tags
}

// asgPlacement resolves a group's subnets and AZs: the given subnets (all in one VPC), or the
// default subnets of the given AZs.
func (r *Region) asgPlacement(subnets, azs []string) ([]string, []string, *APIError) {
	var outSubnets []string
	seenAZ := map[string]bool{}
	var outAZs []string
	if len(subnets) > 0 {
		vpc := ""
		for _, id := range subnets {
			id = strings.TrimSpace(id)
			if id == "" {
				continue
			}
			sn := r.subnets[id]
			if sn == nil {
				return nil, nil, errf(CodeValidationError, "The subnet ID '%s' does not exist", id)
			}
			if vpc != "" && sn.VPCID != vpc {
				return nil, nil, errf(CodeValidationError, "The subnets that you specify must be in the same VPC.")
			}
			vpc = sn.VPCID
			outSubnets = append(outSubnets, id)
			if !seenAZ[sn.AZ] {
				seenAZ[sn.AZ] = true
				outAZs = append(outAZs, sn.AZ)
			}
		}
		if len(azs) > 0 {
			want := map[string]bool{}
			for _, az := range azs {
				want[az] = true
			}
			for az := range seenAZ {
				if !want[az] {
					return nil, nil, errf(CodeValidationError, "The availability zones of the specified subnets and the Auto Scaling group do not match")
				}
			}
		}
	} else {
		for _, az := range azs {
			if !r.hasAZ(az) {
				return nil, nil, errf(CodeValidationError, "Invalid Availability Zone %s", az)
			}
			if seenAZ[az] {
				continue
			}
			seenAZ[az] = true
			outAZs = append(outAZs, az)
		}
	}
	if len(outAZs) == 0 {
		return nil, nil, errf(CodeValidationError, "At least one Availability Zone or VPC Subnet is required.")
	}
	sort.Strings(outAZs)
	return outSubnets, outAZs, nil
}

// asgSubnetsIn returns the subnets a group launches into in one AZ.
func (r *Region) asgSubnetsIn(g *ASG, az string) []*Subnet {
	var out []*Subnet
	if len(g.Subnets) > 0 {
		for _, id := range g.Subnets {
			if sn := r.subnets[id]; sn != nil && sn.AZ == az {
				out = append(out, sn)
			}
		}
		return out
	}
	ids := make([]string, 0, len(r.subnets))
	for id := range r.subnets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if sn := r.subnets[id]; sn.AZ == az && sn.DefaultForAZ {
			out = append(out, sn)
		}
	}
	return out
}

// asgCounted reports whether a member counts toward the group's capacity.
func (r *Region) asgCounted(g *ASG, m *ASGMember) bool {
	switch m.LifecycleState {
	case LifecyclePending, LifecyclePendingWait, LifecyclePendingProceed, LifecycleInService:
	default:
		return false
	}
	_, replaced := r.asgExtraOf(g).replacing[m.InstanceID]
	return !replaced
}

func (r *Region) asgCount(g *ASG) int32 {
	n := int32(0)
	for _, m := range g.Members {
		if r.asgCounted(g, m) {
			n++
		}
	}
	return n
}

// asgReconcile brings a group toward its desired capacity: it takes unhealthy members out of
// service, launches missing members and scales in surplus ones. periodic is true for the
// scheduled health check, which is the only one that retries failed launches early.
func (r *Region) asgReconcile(g *ASG, periodic bool) {
	if g.Status == asgDeleting {
		return
	}
	x := r.asgExtraOf(g)
	r.asgHealthCheck(g)
	if g.CapacityRebalance && !g.Suspended["Launch"] {
		r.asgRebalance(g)
	}
	n := r.asgCount(g)
	switch {
	case n < g.Desired && !g.Suspended["Launch"]:
		if !periodic && r.now().Before(x.retryAt) {
			return
		}
		r.asgScaleOut(g, int(g.Desired-n))
	case n > g.Desired && !g.Suspended["Terminate"]:
		r.asgScaleIn(g, int(n-g.Desired))
	}
	if n == g.Desired {
		x.cause = ""
		r.asgAZRebalance(g)
	}
	r.asgWarmReconcile(g)
}

// asgHealthCheck marks members whose instance stopped or went away as unhealthy and, unless
// ReplaceUnhealthy is suspended, takes them out of service.
func (r *Region) asgHealthCheck(g *ASG) {
	for _, m := range g.Members {
		if m.LifecycleState != LifecyclePending && m.LifecycleState != LifecycleInService {
			continue
		}
		in := r.instances[m.InstanceID]
		if in != nil && in.State == StateRunning && m.LifecycleState == LifecyclePending && !r.asgAttaching(g, m.InstanceID) {
			r.asgLaunchReady(g, m)
		}
		if !g.Suspended["HealthCheck"] && (in == nil || (in.State != StatePending && in.State != StateRunning)) {
			m.HealthStatus = HealthUnhealthy
		}
	}
	if g.Suspended["ReplaceUnhealthy"] {
		return
	}
	var sick []*ASGMember
	for _, m := range g.Members {
		if m.HealthStatus == HealthUnhealthy && (m.LifecycleState == LifecyclePending || m.LifecycleState == LifecycleInService) {
			sick = append(sick, m)
		}
	}
	for _, m := range sick {
		cause := fmt.Sprintf("At %s an instance was taken out of service in response to an EC2 health check indicating it has been terminated or stopped.", asgCauseTime(r.now()))
		if in := r.instances[m.InstanceID]; in != nil && in.Live() && in.State != StateStopped && in.State != StateStopping {
			cause = fmt.Sprintf("At %s an instance was taken out of service in response to a user health-check.", asgCauseTime(r.now()))
		}
		r.asgTerminateMember(g, m, cause)
	}
}

// asgRebalance launches replacements for members that got a rebalance recommendation or an
// interruption notice, as Capacity Rebalancing does; the old member is terminated once its
// replacement is in service.
func (r *Region) asgRebalance(g *ASG) {
	x := r.asgExtraOf(g)
	var atRisk []*ASGMember
	for _, m := range g.Members {
		if m.LifecycleState != LifecycleInService {
			continue
		}
		if _, done := x.replacing[m.InstanceID]; done {
			continue
		}
		if in := r.instances[m.InstanceID]; in != nil && in.Market == MarketSpot && (in.Rebalance != nil || in.Interruption != nil) {
			atRisk = append(atRisk, m)
		}
	}
	for _, m := range atRisk {
		cause := fmt.Sprintf("At %s an instance was launched in response to an EC2 instance rebalance recommendation for instance %s.", asgCauseTime(r.now()), m.InstanceID)
		in, ok := r.asgLaunchMember(g, cause)
		if !ok {
			return
		}
		x.replacing[m.InstanceID] = in.ID
	}
}

// asgScaleOut launches n members, one at a time, spreading them over the group's AZs.
func (r *Region) asgScaleOut(g *ASG, n int) {
	x := r.asgExtraOf(g)
	before := r.asgCount(g)
	for i := 0; i < n; i++ {
		cause := fmt.Sprintf("At %s an instance was started in response to a difference between desired and actual capacity, increasing the capacity from %d to %d.",
			asgCauseTime(r.now()), before, g.Desired)
		if x.cause != "" {
			cause = x.cause + "  " + cause
		}
		if r.asgTakeWarm(g, cause) {
			continue
		}
		if _, ok := r.asgLaunchMember(g, cause); !ok {
			return
		}
	}
}

// asgLaunchMember launches one instance for the group and adds it as a Pending member. A
// failure is recorded as a Failed scaling activity and delays the next attempt.
func (r *Region) asgLaunchMember(g *ASG, cause string) (*Instance, bool) {
	x := r.asgExtraOf(g)
	in, sn, err := r.asgLaunchOne(g)
	now := r.now().UTC().Truncate(time.Millisecond)
	if err != nil {
		msg := err.Message + " Launching EC2 instance failed."
		act := r.asgActivity(g, "Launching a new EC2 instance. Status Reason: "+msg, cause, ActivityFailed)
		act.StatusMsg = msg
		act.End = now
		act.Progress = 100
		if sn != nil {
			act.Details = fmt.Sprintf(`{"Subnet ID":"%s","Availability Zone":"%s"}`, sn.ID, sn.AZ)
		}
		x.retryAt = r.now().Add(r.asgInterval() / 2)
		for _, h := range asgLaunchFailedHooks {
			h(r, g, act, "")
		}
		return nil, false
	}
	m := &ASGMember{InstanceID: in.ID, LifecycleState: LifecyclePending, HealthStatus: HealthHealthy, ProtectedFromSIn: x.newProtected}
	g.Members = append(g.Members, m)
	r.asg().byInstance[in.ID] = g.Name
	if in.LaunchTemplate != nil {
		if v, ok := parseInt64(in.LaunchTemplate.Version); ok {
			x.launchVersion[in.ID] = v
		}
	}
	act := r.asgActivity(g, "Launching a new EC2 instance: "+in.ID, cause, ActivityInProgress)
	act.Progress = 30
	act.Details = fmt.Sprintf(`{"Subnet ID":"%s","Availability Zone":"%s"}`, sn.ID, sn.AZ)
	x.open[in.ID] = act
	return in, true
}

// asgLaunchOne launches one instance from the group's template: AZs with the fewest members
// first, and on insufficient capacity the next AZ (and, for mixed instances groups, the next
// instance type). It returns the first capacity error when every choice failed.
func (r *Region) asgLaunchOne(g *ASG) (*Instance, *Subnet, *APIError) {
	x := r.asgExtraOf(g)
	perAZ := map[string]int{}
	perSubnet := map[string]int{}
	onDemand, total := int32(0), int32(0)
	for _, m := range g.Members {
		if !r.asgCounted(g, m) {
			continue
		}
		if in := r.instances[m.InstanceID]; in != nil {
			perAZ[in.AZ]++
			perSubnet[in.SubnetID]++
			if in.Market == MarketOnDemand {
				onDemand++
			}
		}
		total++
	}
	azs := append([]string(nil), r.asgAZs(g)...)
	sort.SliceStable(azs, func(i, j int) bool { return perAZ[azs[i]] < perAZ[azs[j]] })
	ovs := []LaunchOverride{{}}
	spot := false
	if x.mixed != nil {
		if o := x.mixed.overrides(); len(o) > 0 {
			ovs = o
		}
		// The next instance is on-demand while the on-demand count is below the base plus the
		// on-demand share of the capacity above the base.
		spot = onDemand >= x.mixed.wantOnDemand(total+1)
	}
	var firstErr *APIError
	var firstSubnet *Subnet
	for _, az := range azs {
		subnets := r.asgSubnetsIn(g, az)
		if len(subnets) == 0 {
			continue
		}
		sort.SliceStable(subnets, func(i, j int) bool { return perSubnet[subnets[i].ID] < perSubnet[subnets[j].ID] })
		sn := subnets[0]
		for _, o := range ovs {
			in, err := r.asgLaunchIn(g, sn, o, spot)
			if err == nil {
				return in, sn, nil
			}
			if err.Code != CodeInsufficientCapacity {
				return nil, sn, err
			}
			if firstErr == nil {
				firstErr, firstSubnet = err, sn
			}
		}
	}
	if firstErr == nil {
		firstErr = errf(CodeValidationError, "No subnet is available in the Availability Zones of the group.")
	}
	return nil, firstSubnet, firstErr
}

// asgLaunchIn launches one instance of the group in a subnet.
func (r *Region) asgLaunchIn(g *ASG, sn *Subnet, o LaunchOverride, spot bool) (*Instance, *APIError) {
	if g.LaunchTemplate == nil {
		return nil, errf(CodeValidationError, "The Auto Scaling group %s has no launch template.", g.Name)
	}
	instanceType := o.InstanceType
	ref := *g.LaunchTemplate
	if o.LaunchTemplate != nil {
		ref = *o.LaunchTemplate // the override's own template (AWS: "launch template per instance type")
	}
	lt := r.findTemplate(ref.ID, ref.Name)
	if lt == nil {
		if ref.ID != "" {
			return nil, errf("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", ref.ID)
		}
		return nil, errf("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", ref.Name)
	}
	if ver, ok := lt.Version(ref.Version); ok {
		ref.Version = fmt.Sprint(ver.Number)
	}
	spec := LaunchSpec{SubnetID: sn.ID, InstanceType: instanceType, Spot: spot, Tags: map[string]Tags{"instance": {}}}
	if spot && r.asgExtraOf(g).mixed != nil {
		spec.SpotMaxPrice = r.asgExtraOf(g).mixed.SpotMaxPrice
	}
	for _, t := range g.Tags {
		if t.PropagateAtLaunch {
			spec.Tags["instance"][t.Key] = t.Value
		}
	}
	spec.Tags["instance"][ASGGroupNameTag] = g.Name
	if err := r.resolveTemplate(&ref, &spec); err != nil {
		return nil, err
	}
	ins, err := r.launch(spec)
	if err != nil {
		return nil, err
	}
	return ins[0], nil
}

// asgScaleIn terminates n members following the default termination policy: the AZ with the
// most members first, then instances from an older launch template version, then the oldest
// instance. Members protected from scale in are kept.
func (r *Region) asgScaleIn(g *ASG, n int) {
	x := r.asgExtraOf(g)
	before := r.asgCount(g)
	current := int64(-1)
	if g.LaunchTemplate != nil {
		if lt := r.findTemplate(g.LaunchTemplate.ID, g.LaunchTemplate.Name); lt != nil {
			if v, ok := lt.Version(g.LaunchTemplate.Version); ok {
				current = v.Number
			}
		}
	}
	for i := 0; i < n; i++ {
		perAZ := map[string]int{}
		var cands []*ASGMember
		for _, m := range g.Members {
			if !r.asgCounted(g, m) {
				continue
			}
			perAZ[r.asgMemberAZ(m)]++
			if !m.ProtectedFromSIn {
				cands = append(cands, m)
			}
		}
		if len(cands) == 0 {
			return
		}
		sort.SliceStable(cands, func(i, j int) bool {
			a, b := cands[i], cands[j]
			if ca, cb := perAZ[r.asgMemberAZ(a)], perAZ[r.asgMemberAZ(b)]; ca != cb {
				return ca > cb
			}
			oa, ob := x.launchVersion[a.InstanceID] != current, x.launchVersion[b.InstanceID] != current
			if oa != ob {
				return oa
			}
			ta, tb := r.asgLaunchTime(a), r.asgLaunchTime(b)
			if !ta.Equal(tb) {
				return ta.Before(tb)
			}
			return a.InstanceID < b.InstanceID
		})
		cause := fmt.Sprintf("At %s an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from %d to %d.",
			asgCauseTime(r.now()), before, g.Desired)
		if x.cause != "" {
			cause = x.cause + "  " + cause
		}
		if r.asgWarmReuse(g, cands[0]) {
			continue
		}
		r.asgTerminateMember(g, cands[0], cause)
	}
}

func (r *Region) asgMemberAZ(m *ASGMember) string {
	if in := r.instances[m.InstanceID]; in != nil {
		return in.AZ
	}
	return ""
}

func (r *Region) asgLaunchTime(m *ASGMember) time.Time {
	if in := r.instances[m.InstanceID]; in != nil {
		return in.LaunchTime
	}
	return time.Time{}
}

// asgTerminateMember takes a member out of service and terminates its instance; the member
// leaves the group when the instance is terminated.
//
// On the way out the member is deregistered from the group's load balancers and stays in
// Terminating for their deregistration delay, then waits on the group's terminate lifecycle hooks
// (Terminating:Wait), and only then is its instance terminated. A force delete skips both.
func (r *Region) asgTerminateMember(g *ASG, m *ASGMember, cause string) *Activity {
	x := r.asgExtraOf(g)
	if strings.HasPrefix(m.LifecycleState, LifecycleTerminating) {
		return x.open[m.InstanceID]
	}
	r.asgCloseActivity(g, m.InstanceID, ActivityCancelled)
	r.asgDropActions(g, m.InstanceID)
	m.LifecycleState = LifecycleTerminating
	act := r.asgActivity(g, "Terminating EC2 instance: "+m.InstanceID, cause, ActivityInProgress)
	act.Progress = 50
	x.open[m.InstanceID] = act
	if in := r.instances[m.InstanceID]; in != nil && in.State != StateTerminated {
		in.TargetLifecycleState = "Terminated"
	}
	x.leaving[m.InstanceID] = leaveDraining
	delay := r.lbDeregisterMember(g, m.InstanceID)
	if delay <= 0 || g.Status == asgDeleting {
		r.asgTerminateHooks(g, m)
		return act
	}
	act.Status = ActivityWaitingForELBConnectionDraining
	id, name := m.InstanceID, g.Name
	r.after(delay, func() {
		cur := r.asgs[name]
		if cur == nil {
			return
		}
		if m, ok := cur.Member(id); ok && m.LifecycleState == LifecycleTerminating && r.asgExtraOf(cur).leaving[id] == leaveDraining {
			act.Status = ActivityInProgress
			r.asgTerminateHooks(cur, m)
		}
	})
	return act
}

// asgRemoveMember removes a member from its group and completes its open activity.
func (r *Region) asgRemoveMember(g *ASG, id string) {
	x := r.asgExtraOf(g)
	for i, m := range g.Members {
		if m.InstanceID == id {
			g.Members = append(g.Members[:i:i], g.Members[i+1:]...)
			break
		}
	}
	delete(r.asg().byInstance, id)
	delete(x.launchVersion, id)
	delete(x.leaving, id)
	delete(x.hidden, id)
	delete(x.azMoves, id)
	r.asgDropActions(g, id)
	for old, repl := range x.replacing {
		if old == id || repl == id {
			delete(x.replacing, old)
		}
	}
	r.asgCloseActivity(g, id, ActivitySuccessful)
	if g.Status == asgDeleting && len(g.Members) == 0 {
		r.asgDrop(g)
	}
}

// asgDrop deletes a group's record.
func (r *Region) asgDrop(g *ASG) {
	st := r.asg()
	st.deleted = append(st.deleted, g.Activities...)
	if len(st.deleted) > asgMaxActivities {
		st.deleted = st.deleted[len(st.deleted)-asgMaxActivities:]
	}
	for _, m := range g.Members {
		delete(st.byInstance, m.InstanceID)
	}
	if wp := st.groups[g.Name]; wp != nil && wp.warm != nil {
		for _, m := range wp.warm.members {
			if in := r.instances[m.InstanceID]; in != nil && in.State != StateTerminated {
				r.terminate(in, "Client.UserInitiatedShutdown")
			}
		}
	}
	if x := st.groups[g.Name]; x != nil && x.indexed {
		st.indexed--
	}
	delete(st.groups, g.Name)
	delete(r.asgs, g.Name)
}

// asgInService moves a Pending member to InService.
func (r *Region) asgInService(g *ASG, m *ASGMember) {
	m.LifecycleState = LifecycleInService
	if in := r.instances[m.InstanceID]; in != nil {
		in.TargetLifecycleState = "InService"
	}
	r.lbRegisterMember(g, m.InstanceID)
	r.asgCloseActivity(g, m.InstanceID, ActivitySuccessful)
	x := r.asgExtraOf(g)
	for old, repl := range x.replacing {
		if repl != m.InstanceID {
			continue
		}
		if om, ok := g.Member(old); ok {
			r.asgTerminateMember(g, om, r.asgReplacedCause(g, old, m.InstanceID))
		}
	}
}

// asgInstanceChanged follows the state of member instances (the hook registered in setup).
func (r *Region) asgInstanceChanged(in *Instance) {
	g, m := r.asgGroupOf(in.ID)
	if g == nil {
		return
	}
	if g.CapacityRebalance && (in.Rebalance != nil || in.Interruption != nil) && m.LifecycleState == LifecycleInService {
		r.asgKick(g)
	}
	switch in.State {
	case StateRunning:
		if m.LifecycleState == LifecyclePending && !r.asgAttaching(g, in.ID) {
			r.asgLaunchReady(g, m)
		}
	case StateShuttingDown, StateTerminated, StateStopping, StateStopped:
		switch m.LifecycleState {
		case LifecycleTerminating, LifecycleTerminatingProceed:
			// A member still draining from its load balancers stays until the delay has passed.
			if st := r.asgExtraOf(g).leaving[in.ID]; in.State == StateTerminated && (st == 0 || st == leaveFinal) {
				r.asgRemoveMember(g, in.ID)
			}
		case LifecycleTerminatingWait, LifecycleDetaching:
		default:
			if !g.Suspended["HealthCheck"] {
				m.HealthStatus = HealthUnhealthy
			}
		}
	}
}

// asgAttaching reports whether a member is being attached (its Pending ends on a timer, not
// with its instance's state).
func (r *Region) asgAttaching(g *ASG, id string) bool {
	a := r.asgExtraOf(g).open[id]
	return a != nil && strings.HasPrefix(a.Description, "Attaching")
}

// asgGroupOf returns the group and membership of an instance, or nil. Groups put into the state
// directly (tests) are found too, by a scan of their members.
func (r *Region) asgGroupOf(id string) (*ASG, *ASGMember) {
	st := r.asg()
	if name, ok := st.byInstance[id]; ok {
		if g := r.asgs[name]; g != nil {
			if m, ok := g.Member(id); ok {
				return g, m
			}
		}
		delete(st.byInstance, id)
	}
	if st.indexed == len(r.asgs) {
		return nil, nil
	}
	for _, g := range r.asgs {
		if r.asgExtraOf(g).indexed {
			continue
		}
		if m, ok := g.Member(id); ok {
			st.byInstance[id] = g.Name
			return g, m
		}
	}
	return nil, nil
}

// asgAZs returns the AZs a group launches into.
func (r *Region) asgAZs(g *ASG) []string {
	if len(g.AZs) > 0 || len(g.Subnets) == 0 {
		return g.AZs
	}
	var azs []string
	for _, id := range g.Subnets {
		if sn := r.subnets[id]; sn != nil && !slices.Contains(azs, sn.AZ) {
			azs = append(azs, sn.AZ)
		}
	}
	sort.Strings(azs)
	return azs
}

// asgActivity records a new scaling activity of a group.
func (r *Region) asgActivity(g *ASG, description, cause, status string) *Activity {
	a := &Activity{ID: r.asgUUID(), Group: g.Name, Description: description, Cause: cause, Status: status,
		Start: r.now().UTC().Truncate(time.Millisecond)}
	if status != ActivityInProgress {
		a.End = a.Start
		a.Progress = 100
	}
	g.Activities = append(g.Activities, a)
	if len(g.Activities) > asgMaxActivities {
		g.Activities = g.Activities[len(g.Activities)-asgMaxActivities:]
	}
	return a
}

// asgCloseActivity ends the open activity of an instance, if any.
func (r *Region) asgCloseActivity(g *ASG, id, status string) {
	x := r.asgExtraOf(g)
	a := x.open[id]
	if a == nil {
		return
	}
	delete(x.open, id)
	a.Status = status
	a.Progress = 100
	a.End = r.now().UTC().Truncate(time.Millisecond)
	if status == ActivityCancelled && strings.HasPrefix(a.Description, "Launching") {
		a.Status = ActivityFailed
		a.StatusMsg = "Instance failed to reach InService state. Launching EC2 instance failed."
		for _, h := range asgLaunchFailedHooks {
			h(r, g, a, id)
		}
	}
}

// asgUUID returns an id in the UUID shape that activity ids and group ARNs use.
func (r *Region) asgUUID() string {
	b := make([]byte, 16)
	r.rng.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func asgCauseTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
