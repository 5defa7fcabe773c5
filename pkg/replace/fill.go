package replace

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
)

// Fill launches a stand-in for a member the group itself could not launch (its launch failed,
// typically for lack of spot capacity of its own type): the alternative types on spot, then
// on-demand, the same options a replacement has after its first. The stand-in joins the group and
// the desired capacity is set back, so the group stops retrying its own launch; a later reconcile
// swaps the stand-in back to spot. It is a no-op when the group is not short.
//
// Crash safety: the stand-in is tagged spotmax:state:fill at launch with the group's name; a fill
// resumed after a crash adopts it instead of launching another.
func (w *Workflow) Fill(ctx context.Context, g *inventory.Group) (*Result, error) {
	if err := g.CheckManaged(); err != nil {
		return nil, &RefusedError{Instance: "(new)", Group: g.Name, Why: err.Error(), Err: err}
	}
	asg, err := w.describeGroup(ctx, g.Name)
	if err != nil {
		return nil, err
	}
	desired := aws.ToInt32(asg.DesiredCapacity)
	live := 0
	for _, m := range asg.Instances {
		switch m.LifecycleState {
		case astypes.LifecycleStatePending, astypes.LifecycleStatePendingWait, astypes.LifecycleStatePendingProceed, astypes.LifecycleStateInService:
			live++
		}
	}
	s := &standIn{w: w, g: g, launcher: w.launcher(g),
		res: &Result{Group: g.Name, Reason: "fill", Started: w.clock().Now(), Attempts: []Attempt{}, Warnings: []string{}}}
	id, err := s.launcher.adopt(ctx, s.spec(nil))
	if err != nil {
		return nil, err
	}
	if id == "" {
		if int(desired) <= live {
			return nil, nil // not short (any more)
		}
		id, err = s.launch(ctx)
		if err != nil {
			return s.res, err
		}
	}
	return s.join(ctx, id)
}

// standIn is one stand-in in progress (Workflow.Fill): an instance launched into a group in place
// of a member the group could not launch. Unlike a replacement it has no old instance, no journal
// and no data volume: its record is on the stand-in itself, spotmax:state:fill written at launch
// and spotmax:state:desired written before its attach (joinKeepingDesired).
type standIn struct {
	w        *Workflow
	g        *inventory.Group
	launcher *launcher
	res      *Result
}

// spec is the stand-in's launch (launch.go): client tokens from the group's name and the minute
// (a fill retried within it gets the same instance), and the spotmax:state:fill tag that a
// resumed fill adopts it by.
func (s *standIn) spec(opts []Option) launchSpec {
	return launchSpec{options: opts, token: fmt.Sprintf("fill-%s-%d", s.g.Name, s.w.clock().Now().Unix()/60),
		linkKey: groupconfig.StateFill, linkValue: s.g.Name, what: "a stand-in"}
}

// launch tries the alternative types on spot, then on-demand, in the group's AZs with the fewest
// members first.
func (s *standIn) launch(ctx context.Context) (string, error) {
	subnets, err := s.w.subnets(ctx, s.g.Subnets, s.g.AZs)
	if err != nil {
		return "", err
	}
	azs := azOrder(s.g.Members, subnets, "", "", "")
	data, err := s.launcher.template(ctx)
	if err != nil {
		return "", err
	}
	// The group's own type on spot is what just failed; the rest of the order is a replacement's
	// (with is_only_od_rep, or a mixed group short of its on-demand base, on-demand first).
	own := string(data.InstanceType)
	markets := slices.DeleteFunc(s.launcher.markets(own, false, s.launcher.needsOnDemand("")), func(m typeMarket) bool {
		return m.Type == own && m.Market == MarketSpot
	})
	id, _, err := s.launcher.first(ctx, s.spec(s.launcher.options(markets, azs, subnets, nil)), s.res)
	return id, err
}

// join waits until the stand-in runs, joins it to the group keeping the desired capacity and
// removes its state tags.
func (s *standIn) join(ctx context.Context, id string) (*Result, error) {
	w, res := s.w, s.res
	res.New = id
	inst, err := w.waitRunning(ctx, id, "stand-in")
	if err != nil {
		_ = w.terminate(context.WithoutCancel(ctx), id)
		return res, fmt.Errorf("waiting for stand-in %s to run: %w", id, err)
	}
	res.recordInstance(inst)
	if err := s.joinKeepingDesired(ctx, id, stateTags(inst.Tags)); err != nil {
		return res, err
	}
	if err := w.untagResource(ctx, id, groupconfig.StateFill, groupconfig.StateDesired); err != nil {
		return res, err
	}
	res.Finished = w.clock().Now()
	if w.Metrics != nil && res.Market == MarketOnDemand {
		w.Metrics.Record(ctx, metrics.Event{Name: metrics.OnDemandFallback, Group: s.g.Name, Instance: id, Time: res.Finished,
			Fields: map[string]string{"reason": "scaling-failure", "type": res.Type}})
	}
	return res, nil
}

// joinKeepingDesired attaches the stand-in and sets the desired capacity back to what it was, so
// that the group stops retrying the launch the stand-in replaces, and restores MaxSize. The
// desired capacity to set back is journaled on the stand-in (spotmax:state:desired, tags are its
// state tags) before the attach raises it: a fill resumed after a crash that cut this short sets
// back only the attach's own increment and restores MaxSize, as the first fill would have.
func (s *standIn) joinKeepingDesired(ctx context.Context, id string, tags map[string]string) error {
	w, group := s.w, s.g.Name
	// The desired capacity is read, raised by the attach and set back under the group's size
	// lock: a replacement of this process attaching in the same group in between would otherwise
	// have its own increment undone, and the group would end one short.
	if err := s.attachKeepingDesired(ctx, id, tags); err != nil {
		return err
	}
	if err := w.waitInService(ctx, group, id, "stand-in"); err != nil {
		return err
	}
	return w.RestoreMaxSize(ctx, group)
}

// attachKeepingDesired is joinKeepingDesired's attach and set-back, with the group's size lock
// held.
func (s *standIn) attachKeepingDesired(ctx context.Context, id string, tags map[string]string) error {
	w, group := s.w, s.g.Name
	unlock := w.lockGroupSize(group)
	defer unlock()
	g, err := w.describeGroup(ctx, group)
	if err != nil {
		return err
	}
	before := -1
	if v, ok := tags[groupconfig.StateDesired]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("stand-in %s of group %s: its journaled desired capacity %q is not a number", id, group, v)
		}
		before = n
	}
	_, member := memberState(g, id)
	switch desired := int(aws.ToInt32(g.DesiredCapacity)); {
	case !member:
		if before < 0 {
			before = desired
			if err := w.tagResource(ctx, id, map[string]string{groupconfig.StateDesired: strconv.Itoa(before)}); err != nil {
				return fmt.Errorf("journaling the desired capacity %d of group %s on stand-in %s: %w", before, group, id, err)
			}
		}
		if err := w.attachToGroupHeld(ctx, group, id); err != nil {
			return err
		}
		return s.setDesired(ctx, before)
	case before >= 0 && desired == before+1:
		// Attached before a crash that came before the desired capacity was set back.
		return s.setDesired(ctx, before)
	}
	return nil
}

// setDesired sets the group's desired capacity to n without waiting out its cooldown.
func (s *standIn) setDesired(ctx context.Context, n int) error {
	err := s.w.call(ctx, func(ctx context.Context) error {
		_, err := s.w.ASG.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(s.g.Name),
			DesiredCapacity: aws.Int32(int32(n)), HonorCooldown: aws.Bool(false)})
		return err
	})
	if err != nil {
		return fmt.Errorf("setting the desired capacity of group %s back to %d: %w", s.g.Name, n, err)
	}
	return nil
}
