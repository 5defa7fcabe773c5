package sim

import (
	"fmt"
	"sort"
)

// Two Auto Scaling behaviours switched by AutoScalingBehaviors: the eventual consistency of
// Auto Scaling's describes after AttachInstances, and the AZRebalance process.

// asgHide keeps a just-attached instance out of the describes for the AttachVisibility window.
func (r *Region) asgHide(g *ASG, id string) {
	if d := r.beh.AutoScaling.AttachVisibility; d > 0 {
		r.asgExtraOf(g).hidden[id] = r.now().Add(d)
	}
}

// asgHidden reports whether a member is not yet visible in Auto Scaling's describes.
func (r *Region) asgHidden(g *ASG, id string) bool {
	x := r.asgExtraOf(g)
	until, ok := x.hidden[id]
	if !ok {
		return false
	}
	if !r.now().Before(until) {
		delete(x.hidden, id)
		return false
	}
	return true
}

// asgAZRebalance evens out a group's members across its AZs as the AZRebalance process does:
// when the zone with the most members has two or more than the zone with the fewest, it launches
// an instance in the short zone and, once that is InService, terminates one in the long zone.
// The launch comes first, so the group may exceed its maximum by 10 % of it or one instance,
// whichever is greater, and no further; one rebalancing runs at a time.
func (r *Region) asgAZRebalance(g *ASG) {
	if !r.beh.AutoScaling.AZRebalance || g.Suspended["AZRebalance"] || g.Suspended["Launch"] || g.Suspended["Terminate"] {
		return
	}
	x := r.asgExtraOf(g)
	if len(x.replacing) > 0 || !r.now().After(x.retryAt) {
		return
	}
	azs := r.asgAZs(g)
	if len(azs) < 2 {
		return
	}
	perAZ := map[string][]*ASGMember{}
	live := 0
	for _, m := range g.Members {
		if m.LifecycleState == LifecycleStandby {
			continue
		}
		live++
		if m.LifecycleState != LifecycleInService {
			// Wait until launches, attaches and leaves have settled.
			return
		}
		perAZ[r.asgMemberAZ(m)] = append(perAZ[r.asgMemberAZ(m)], m)
	}
	long, short := azs[0], azs[0]
	for _, az := range azs {
		if len(perAZ[az]) > len(perAZ[long]) {
			long = az
		}
		if len(perAZ[az]) < len(perAZ[short]) {
			short = az
		}
	}
	if len(perAZ[long])-len(perAZ[short]) < 2 {
		return
	}
	margin := max(1, (int(g.Max)*10+99)/100)
	if live+1 > int(g.Max)+margin {
		return
	}
	var cands []*ASGMember
	for _, m := range perAZ[long] {
		if !m.ProtectedFromSIn {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		return
	}
	// The default termination policy within the zone: oldest launch template version, then the
	// oldest instance.
	current := int64(-1)
	if g.LaunchTemplate != nil {
		if lt := r.findTemplate(g.LaunchTemplate.ID, g.LaunchTemplate.Name); lt != nil {
			if v, ok := lt.Version(g.LaunchTemplate.Version); ok {
				current = v.Number
			}
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if oa, ob := x.launchVersion[a.InstanceID] != current, x.launchVersion[b.InstanceID] != current; oa != ob {
			return oa
		}
		if ta, tb := r.asgLaunchTime(a), r.asgLaunchTime(b); !ta.Equal(tb) {
			return ta.Before(tb)
		}
		return a.InstanceID < b.InstanceID
	})
	old := cands[0]
	cause := fmt.Sprintf("At %s instances were launched to balance instances in zones %s with other zones %s.",
		asgCauseTime(r.now()), short, long)
	in, ok := r.asgLaunchMember(g, cause)
	if !ok {
		return
	}
	x.replacing[old.InstanceID] = in.ID
	x.azMoves[old.InstanceID] = true
}

// asgReplacedCause is the cause of terminating a member whose replacement is InService.
func (r *Region) asgReplacedCause(g *ASG, old, repl string) string {
	if r.asgExtraOf(g).azMoves[old] {
		return fmt.Sprintf("At %s an instance was taken out of service in response to an Availability Zone rebalancing: its replacement %s is in service.",
			asgCauseTime(r.now()), repl)
	}
	return fmt.Sprintf("At %s an instance was taken out of service in response to an EC2 instance rebalance recommendation. Its replacement %s is in service.", asgCauseTime(r.now()), repl)
}
