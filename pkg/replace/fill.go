package replace

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
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
	res := &Result{Group: g.Name, Reason: "fill", Started: w.clock().Now(), Attempts: []Attempt{}, Warnings: []string{}}
	id, err := w.findLaunched(ctx, groupconfig.StateFill, g.Name)
	if err != nil {
		return nil, err
	}
	if id == "" {
		if int(desired) <= live {
			return nil, nil // not short (any more)
		}
		id, err = w.launchFill(ctx, g, res)
		if err != nil {
			return res, err
		}
	}
	res.New = id
	inst, err := w.waitRunning(ctx, id, "stand-in")
	if err != nil {
		_ = w.terminate(context.WithoutCancel(ctx), id)
		return res, fmt.Errorf("waiting for stand-in %s to run: %w", id, err)
	}
	r := &run{w: w, g: g, cfg: g.Config, res: res}
	r.recordNew(inst)
	if err := w.joinKeepingDesired(ctx, g.Name, id); err != nil {
		return res, err
	}
	if err := w.untagResource(ctx, id, groupconfig.StateFill); err != nil {
		return res, err
	}
	res.Finished = w.clock().Now()
	if w.Metrics != nil && res.Market == MarketOnDemand {
		w.Metrics.Record(ctx, metrics.Event{Name: metrics.OnDemandFallback, Group: g.Name, Instance: id, Time: res.Finished,
			Fields: map[string]string{"reason": "scaling-failure", "type": res.Type}})
	}
	return res, nil
}

// launchFill tries the alternative types on spot, then on-demand, in the group's AZs with the
// fewest members first.
func (w *Workflow) launchFill(ctx context.Context, g *inventory.Group, res *Result) (string, error) {
	subnets, err := w.subnets(ctx, g.Subnets, g.AZs)
	if err != nil {
		return "", err
	}
	r := &run{w: w, g: g, cfg: g.Config, req: Request{Reason: ReasonManual}, plan: &Plan{}, journal: Journal{Desired: -1}}
	azs := r.azOrder(subnets, "")
	data, err := r.template(ctx)
	if err != nil {
		return "", err
	}
	ownType := string(data.InstanceType)
	// The group's own type on spot is what just failed; the rest of the order is a replacement's.
	markets := r.markets(ownType)[1:]
	token := fmt.Sprintf("fill-%s-%d", g.Name, w.clock().Now().Unix()/60)
	var tried []string
	i := 0
	for _, tm := range markets {
		for _, az := range azs {
			opt := Option{InstanceType: tm.Type, Market: tm.Market, SubnetID: subnets[az], AZ: az}
			id, err := w.runInstanceTagged(ctx, r, opt, fmt.Sprintf("%s-%d", token, i), groupconfig.StateFill, g.Name)
			i++
			if err == nil {
				res.Attempts = append(res.Attempts, Attempt{Option: opt})
				return id, nil
			}
			res.Attempts = append(res.Attempts, Attempt{Option: opt, Error: err.Error()})
			if !awsapi.IsCapacity(err) {
				return "", fmt.Errorf("launching a stand-in %s for group %s: %w", opt, g.Name, err)
			}
			tried = append(tried, fmt.Sprintf("%s (%s)", opt, awsapi.Code(err)))
		}
	}
	return "", fmt.Errorf("%w for a stand-in in group %s: tried %s", ErrNoCapacity, g.Name, strings.Join(tried, ", "))
}

// joinKeepingDesired attaches the stand-in and sets the desired capacity back to what it was, so
// that the group stops retrying the launch the stand-in replaces.
func (w *Workflow) joinKeepingDesired(ctx context.Context, group, id string) error {
	g, err := w.describeGroup(ctx, group)
	if err != nil {
		return err
	}
	if _, member := memberState(g, id); member {
		return nil
	}
	before := aws.ToInt32(g.DesiredCapacity)
	if err := w.attachToGroup(ctx, group, id); err != nil {
		return err
	}
	err = w.call(ctx, func(ctx context.Context) error {
		_, err := w.ASG.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(group),
			DesiredCapacity: aws.Int32(before), HonorCooldown: aws.Bool(false)})
		return err
	})
	if err != nil {
		return fmt.Errorf("setting the desired capacity of group %s back to %d: %w", group, before, err)
	}
	if err := w.waitInService(ctx, group, id, "stand-in"); err != nil {
		return err
	}
	return w.RestoreMaxSize(ctx, group)
}
