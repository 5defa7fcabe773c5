package sim

import (
	"fmt"
	"sort"
	"time"
)

// Warm pools (PutWarmPool, DescribeWarmPool, DeleteWarmPool), as the Auto Scaling user guide's
// "Warm pools" chapter and the API reference describe them:
//
//   - the pool holds max(MinSize, prepared − desired) instances, where prepared is
//     MaxGroupPreparedCapacity when set (≥ 0) and the group's MaxSize otherwise;
//   - an instance enters the pool Warmed:Pending, is launched from the group's template, runs,
//     and then is stopped (PoolState Stopped, the default), hibernated (Hibernated; modelled as
//     a stop) or kept running (Running): Warmed:Stopped, Warmed:Hibernated, Warmed:Running;
//   - on scale-out — any launch to meet the desired capacity, including the one that follows
//     DetachInstances without ShouldDecrementDesiredCapacity — the group takes a warmed instance
//     before launching a new one: it leaves the pool as a Pending member, is started when
//     stopped (Latencies.Start, far shorter than a launch) and goes through the group's launch
//     lifecycle hooks (Pending:Wait) like any launch before InService. AWS documents that the
//     group "draws on the warm pool to meet its new desired capacity" and that launches go to
//     the AZ with the fewest members, not which warmed instance it takes: the simulator takes
//     one in the AZ with the fewest members when the pool has one there, else one in another
//     AZ (never a cold launch in the short AZ instead), in the pool's order. No caller can pick
//     it: there is no API for that;
//   - a started instance's LaunchTime is its most recent start, as EC2 reports it;
//   - an instance leaving the pool because it shrank is terminated (Warmed:Terminating), and one
//     a caller terminates is Warmed:Terminating too: it is never handed to the group;
//   - with InstanceReusePolicy.ReuseOnScaleIn, a member the group scales in returns to the pool
//     (stopped) instead of being terminated, while the pool has room;
//   - DeleteWarmPool marks the pool PendingDelete and terminates its instances; it is gone once
//     they are. ForceDelete removes it at once.
//
//   - the group's launch hooks also hold an instance entering the pool (Warmed:Pending:Wait,
//     then Warmed:Pending:Proceed; ABANDON terminates it), as they do when it leaves.
//
// Not modelled: the Origin/Destination fields of hook notifications, warm pool instance health
// checks and instance refresh of the pool.

// Lifecycle states of warm pool instances.
const (
	LifecycleWarmedPending     = "Warmed:Pending"
	LifecycleWarmedPendingWait = "Warmed:Pending:Wait"
	LifecycleWarmedProceed     = "Warmed:Pending:Proceed"
	LifecycleWarmedStopped     = "Warmed:Stopped"
	LifecycleWarmedRunning     = "Warmed:Running"
	LifecycleWarmedHibernated  = "Warmed:Hibernated"
	LifecycleWarmedTerminating = "Warmed:Terminating"
)

// Pool states of PutWarmPool.
const (
	WarmPoolStopped    = "Stopped"
	WarmPoolRunning    = "Running"
	WarmPoolHibernated = "Hibernated"
)

// WarmPool is a warm pool's configuration, as PutWarmPool takes it.
type WarmPool struct {
	// MaxGroupPreparedCapacity bounds the group's instances in the pool and in service; nil
	// (or -1 on the API) means the group's MaxSize.
	MaxGroupPreparedCapacity *int32
	MinSize                  int32
	PoolState                string // Stopped (default), Running or Hibernated
	ReuseOnScaleIn           bool
}

// warmPool is a group's warm pool.
type warmPool struct {
	cfg      WarmPool
	deleting bool
	members  []*ASGMember // LifecycleState Warmed:*
}

// warmReady reports whether a pool member can leave for the group.
func warmReady(m *ASGMember) bool {
	switch m.LifecycleState {
	case LifecycleWarmedStopped, LifecycleWarmedRunning, LifecycleWarmedHibernated:
		return true
	}
	return false
}

// PutWarmPool creates or updates a group's warm pool (the API's PutWarmPool).
func (r *Region) PutWarmPool(group string, cfg WarmPool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.putWarmPool(group, cfg); err != nil {
		return err
	}
	return nil
}

func (r *Region) putWarmPool(group string, cfg WarmPool) *APIError {
	g, err := r.asMutable(group)
	if err != nil {
		return err
	}
	x := r.asgExtraOf(g)
	if x.mixed != nil {
		return errf(CodeValidationError, "You can't add a warm pool to an Auto Scaling group that has a mixed instances policy.")
	}
	if g.LaunchTemplate != nil {
		if lt := r.findTemplate(g.LaunchTemplate.ID, g.LaunchTemplate.Name); lt != nil {
			if v, ok := lt.Version(g.LaunchTemplate.Version); ok && v.Data.Spot {
				return errf(CodeValidationError, "You can't add a warm pool to an Auto Scaling group whose launch template requests Spot Instances.")
			}
		}
	}
	if cfg.MinSize < 0 {
		return errf(CodeValidationError, "MinSize must be greater than or equal to 0.")
	}
	if p := cfg.MaxGroupPreparedCapacity; p != nil {
		if *p < -1 {
			return errf(CodeValidationError, "MaxGroupPreparedCapacity must be greater than or equal to -1.")
		}
		if *p == -1 {
			cfg.MaxGroupPreparedCapacity = nil
		} else if cfg.MinSize > *p {
			return errf(CodeValidationError, "MinSize (%d) cannot be greater than MaxGroupPreparedCapacity (%d).", cfg.MinSize, *p)
		}
	}
	switch cfg.PoolState {
	case "":
		cfg.PoolState = WarmPoolStopped
	case WarmPoolStopped, WarmPoolRunning, WarmPoolHibernated:
	default:
		return errf(CodeValidationError, "1 validation error detected: Value '%s' at 'poolState' failed to satisfy constraint: Member must satisfy enum value set: [Hibernated, Running, Stopped]", cfg.PoolState)
	}
	if x.warm != nil && x.warm.deleting {
		return errf(CodeValidationError, "The warm pool of Auto Scaling group %s is being deleted.", g.Name)
	}
	if x.warm == nil {
		x.warm = &warmPool{}
		r.asg().warmGroups[g.Name] = true
	}
	x.warm.cfg = cfg
	r.asgKick(g)
	return nil
}

// asgWarmTarget is the number of instances a group's warm pool holds.
func (r *Region) asgWarmTarget(g *ASG, wp *warmPool) int {
	prepared := g.Max
	if p := wp.cfg.MaxGroupPreparedCapacity; p != nil {
		prepared = *p
	}
	return int(max(prepared-g.Desired, wp.cfg.MinSize, 0))
}

// asgWarmReconcile keeps a group's warm pool at its size (called with the group's reconcile).
func (r *Region) asgWarmReconcile(g *ASG) {
	x := r.asgExtraOf(g)
	wp := x.warm
	if wp == nil {
		return
	}
	var live []*ASGMember
	for _, m := range wp.members {
		if m.LifecycleState != LifecycleWarmedTerminating {
			live = append(live, m)
		}
	}
	target := r.asgWarmTarget(g, wp)
	if wp.deleting || g.Status == asgDeleting {
		target = 0
	}
	for i := len(live); i < target && !g.Suspended["Launch"]; i++ {
		in, sn, err := r.asgLaunchOne(g)
		if err != nil {
			act := r.asgActivity(g, "Launching a new EC2 instance into warm pool. Status Reason: "+err.Message, "a warm pool below its size", ActivityFailed)
			act.End, act.Progress = r.now().UTC(), 100
			break
		}
		m := &ASGMember{InstanceID: in.ID, LifecycleState: LifecycleWarmedPending, HealthStatus: HealthHealthy}
		wp.members = append(wp.members, m)
		act := r.asgActivity(g, "Launching a new EC2 instance into warm pool: "+in.ID,
			fmt.Sprintf("At %s an instance was launched into the warm pool.", asgCauseTime(r.now())), ActivityInProgress)
		act.Details = fmt.Sprintf(`{"Subnet ID":"%s","Availability Zone":"%s"}`, sn.ID, sn.AZ)
		x.open[in.ID] = act
	}
	// Shrink: the newest first, never one already on its way into the group.
	sort.SliceStable(live, func(i, j int) bool { return r.asgLaunchTime(live[i]).After(r.asgLaunchTime(live[j])) })
	for i := 0; i < len(live)-target; i++ {
		r.asgWarmTerminate(g, live[i])
	}
	if wp.deleting && len(wp.members) == 0 {
		x.warm = nil
	}
}

func (r *Region) asgWarmTerminate(g *ASG, m *ASGMember) {
	m.LifecycleState = LifecycleWarmedTerminating
	if in := r.instances[m.InstanceID]; in != nil && in.State != StateTerminated {
		r.terminate(in, "Client.UserInitiatedShutdown")
	} else {
		r.asgWarmRemove(g, m.InstanceID)
	}
}

func (r *Region) asgWarmRemove(g *ASG, id string) {
	x := r.asgExtraOf(g)
	if x.warm == nil {
		return
	}
	for i, m := range x.warm.members {
		if m.InstanceID == id {
			x.warm.members = append(x.warm.members[:i], x.warm.members[i+1:]...)
			break
		}
	}
	r.asgCloseActivity(g, id, ActivitySuccessful)
	if x.warm.deleting && len(x.warm.members) == 0 {
		x.warm = nil
	}
}

// asgWarmOf returns the group and pool membership of a warm pool instance.
func (r *Region) asgWarmOf(id string) (*ASG, *ASGMember) {
	st := r.asg()
	for name := range st.warmGroups {
		g, x := r.asgs[name], st.groups[name]
		if g == nil || x == nil || x.warm == nil {
			delete(st.warmGroups, name) // pool or group gone
			continue
		}
		for _, m := range x.warm.members {
			if m.InstanceID == id {
				return g, m
			}
		}
	}
	return nil, nil
}

// asgWarmInstanceChanged follows the EC2 state of warm pool instances (a state hook).
func (r *Region) asgWarmInstanceChanged(in *Instance) {
	g, m := r.asgWarmOf(in.ID)
	if g == nil {
		return
	}
	wp := r.asgExtraOf(g).warm
	switch in.State {
	case StateRunning:
		switch m.LifecycleState {
		case LifecycleWarmedPending:
			if r.asgWaitHooks(g, m, TransitionLaunching) {
				m.LifecycleState = LifecycleWarmedPendingWait
				if act := r.asgExtraOf(g).open[in.ID]; act != nil {
					act.Status = ActivityMidLifecycleAction
				}
				return
			}
		case LifecycleWarmedProceed:
		default:
			return
		}
		if wp.cfg.PoolState == WarmPoolRunning {
			m.LifecycleState = LifecycleWarmedRunning
			r.asgCloseActivity(g, in.ID, ActivitySuccessful)
			return
		}
		r.stop(in, "Client.UserInitiatedShutdown")
	case StateStopped:
		if m.LifecycleState != LifecycleWarmedPending && m.LifecycleState != LifecycleWarmedProceed {
			return
		}
		m.LifecycleState = LifecycleWarmedStopped
		if wp.cfg.PoolState == WarmPoolHibernated {
			m.LifecycleState = LifecycleWarmedHibernated
		}
		r.asgCloseActivity(g, in.ID, ActivitySuccessful)
	case StateShuttingDown:
		// Terminated by a caller (or EC2) while in the pool: on its way out, never handed to the
		// group.
		m.LifecycleState = LifecycleWarmedTerminating
	case StateTerminated:
		r.asgWarmRemove(g, in.ID)
	}
}

// asgTakeWarm moves a warmed instance into the group for a scale-out, from the AZ with the
// fewest members first; it reports false when the pool has none ready.
func (r *Region) asgTakeWarm(g *ASG, cause string) bool {
	x := r.asgExtraOf(g)
	if x.warm == nil || x.warm.deleting {
		return false
	}
	perAZ := map[string]int{}
	for _, m := range g.Members {
		if r.asgCounted(g, m) {
			perAZ[r.asgMemberAZ(m)]++
		}
	}
	var ready []*ASGMember
	for _, m := range x.warm.members {
		if in := r.instances[m.InstanceID]; warmReady(m) && in != nil && (in.State == StateStopped || in.State == StateRunning) {
			ready = append(ready, m)
		}
	}
	if len(ready) == 0 {
		return false
	}
	sort.SliceStable(ready, func(i, j int) bool {
		return perAZ[r.asgMemberAZ(ready[i])] < perAZ[r.asgMemberAZ(ready[j])]
	})
	m := ready[0]
	in := r.instances[m.InstanceID]
	for i, wm := range x.warm.members {
		if wm == m {
			x.warm.members = append(x.warm.members[:i], x.warm.members[i+1:]...)
			break
		}
	}
	member := &ASGMember{InstanceID: in.ID, LifecycleState: LifecyclePending, HealthStatus: HealthHealthy, ProtectedFromSIn: x.newProtected}
	g.Members = append(g.Members, member)
	r.asg().byInstance[in.ID] = g.Name
	act := r.asgActivity(g, "Launching a new EC2 instance from warm pool: "+in.ID, cause, ActivityInProgress)
	act.Progress = 30
	act.Details = fmt.Sprintf(`{"Subnet ID":"%s","Availability Zone":"%s"}`, in.SubnetID, in.AZ)
	x.open[in.ID] = act
	switch in.State {
	case StateStopped:
		r.startInstance(in)
	case StateRunning:
		id := in.ID
		r.after(0, func() {
			if g2, m2 := r.asgGroupOf(id); g2 != nil && m2.LifecycleState == LifecyclePending {
				r.asgLaunchReady(g2, m2)
			}
		})
	}
	return true
}

// asgWarmReuse returns a member the group scales in to its warm pool when the pool reuses
// instances on scale-in and has room; it reports whether it did.
func (r *Region) asgWarmReuse(g *ASG, m *ASGMember) bool {
	x := r.asgExtraOf(g)
	wp := x.warm
	if wp == nil || wp.deleting || !wp.cfg.ReuseOnScaleIn {
		return false
	}
	in := r.instances[m.InstanceID]
	if in == nil || (in.State != StateRunning && in.State != StateStopped) {
		return false
	}
	live := 0
	for _, wm := range wp.members {
		if wm.LifecycleState != LifecycleWarmedTerminating {
			live++
		}
	}
	// The group's desired capacity already went down: the pool's size is the one after.
	if live >= r.asgWarmTarget(g, wp) {
		return false
	}
	r.lbDeregisterMember(g, m.InstanceID)
	r.asgRemoveMember(g, m.InstanceID)
	wm := &ASGMember{InstanceID: in.ID, LifecycleState: LifecycleWarmedPending, HealthStatus: HealthHealthy}
	wp.members = append(wp.members, wm)
	act := r.asgActivity(g, "Moving EC2 instance to warm pool: "+in.ID,
		fmt.Sprintf("At %s an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity.", asgCauseTime(r.now())), ActivityInProgress)
	x.open[in.ID] = act
	switch {
	case wp.cfg.PoolState == WarmPoolRunning:
		wm.LifecycleState = LifecycleWarmedRunning
		r.asgCloseActivity(g, in.ID, ActivitySuccessful)
	case in.State == StateRunning:
		r.stop(in, "Client.UserInitiatedShutdown")
	default:
		r.asgWarmInstanceChanged(in)
	}
	return true
}

// startInstance starts a stopped instance: pending for Latencies.Start (Pending when unset),
// then running. A stopped EBS-backed instance starts much faster than a new one launches.
func (r *Region) startInstance(in *Instance) {
	if in.State != StateStopped {
		return
	}
	in.StateReason = ""
	in.Interruption = nil
	// EC2's LaunchTime is the most recent start ("Find the initial and most recent launch time"
	// in the EC2 user guide): a warmed instance that leaves the pool looks freshly launched, and
	// a volume created with its first launch no longer looks created with it.
	in.LaunchTime = r.now().UTC().Truncate(1e6)
	r.setState(in, StatePending)
	id := in.ID
	r.after(r.startLatency(), func() {
		if cur := r.instances[id]; cur != nil && cur.State == StatePending {
			r.setState(cur, StateRunning)
		}
	})
}

func (r *Region) startLatency() time.Duration {
	if r.lat.Start > 0 {
		return r.lat.Start
	}
	return r.lat.Pending
}

// asgWarmMember returns the pool membership of an instance of g's warm pool, or nil.
func (r *Region) asgWarmMember(g *ASG, id string) *ASGMember {
	if wp := r.asgExtraOf(g).warm; wp != nil {
		for _, m := range wp.members {
			if m.InstanceID == id {
				return m
			}
		}
	}
	return nil
}

// asgWarmHookDone ends the launch hooks of an instance entering the pool: on to its pool state,
// or terminated when a hook abandoned it.
func (r *Region) asgWarmHookDone(g *ASG, m *ASGMember, abandoned bool) {
	if m.LifecycleState != LifecycleWarmedPendingWait {
		return
	}
	if act := r.asgExtraOf(g).open[m.InstanceID]; act != nil {
		act.Status = ActivityInProgress
	}
	if abandoned {
		r.asgWarmTerminate(g, m)
		return
	}
	m.LifecycleState = LifecycleWarmedProceed
	if in := r.instances[m.InstanceID]; in != nil {
		r.asgWarmInstanceChanged(in)
	}
}

// WarmPoolMembers returns a copy of the instances in a group's warm pool (nil without one), for
// tests and scenarios.
func (r *Region) WarmPoolMembers(group string) []ASGMember {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.asgs[group]
	if g == nil {
		return nil
	}
	wp := r.asgExtraOf(g).warm
	if wp == nil {
		return nil
	}
	out := make([]ASGMember, 0, len(wp.members))
	for _, m := range wp.members {
		out = append(out, *m)
	}
	return out
}
