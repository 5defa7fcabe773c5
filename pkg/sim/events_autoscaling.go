package sim

import (
	"encoding/json"
)

// Events that Auto Scaling publishes to the region's event stream (and so to EventBridge rules):
// a failed launch and a lifecycle hook's wait.

func init() {
	asgLaunchFailedHooks = append(asgLaunchFailedHooks, (*Region).eventsLaunchFailed)
	asgLifecycleActionHooks = append(asgLifecycleActionHooks, (*Region).eventsLifecycleAction)
}

// DetailLaunchUnsuccessful is the detail type of the Auto Scaling event for a failed launch.
const DetailLaunchUnsuccessful = "EC2 Instance Launch Unsuccessful"

// eventsLaunchFailed announces a failed Auto Scaling launch as AWS does, with an "EC2 Instance
// Launch Unsuccessful" event from aws.autoscaling. It runs with the lock held.
func (r *Region) eventsLaunchFailed(g *ASG, act *Activity, instanceID string) {
	resources := []string{g.ARN}
	if instanceID != "" {
		resources = append(resources, eventInstanceARN(r.opts.Region, r.opts.AccountID, instanceID))
	}
	details := map[string]any{}
	if act.Details != "" {
		_ = json.Unmarshal([]byte(act.Details), &details)
	}
	detail := map[string]any{
		"StatusCode":           ActivityFailed,
		"AutoScalingGroupName": g.Name,
		"ActivityId":           act.ID,
		"Details":              details,
		"RequestId":            r.asgUUID(),
		"StatusMessage":        act.StatusMsg,
		"EndTime":              act.End.UTC().Format(imdsTimeFormat),
		"EC2InstanceId":        instanceID,
		"StartTime":            act.Start.UTC().Format(imdsTimeFormat),
		"Cause":                act.Cause,
		"Description":          act.Description,
	}
	e := Event{
		Source:     "aws.autoscaling",
		DetailType: DetailLaunchUnsuccessful,
		Time:       r.now(),
		Resources:  resources,
		Detail:     detail,
	}
	r.publish(r.ext(), e)
}

// Detail types of the Auto Scaling lifecycle action events.
const (
	DetailLaunchLifecycleAction    = "EC2 Instance-launch Lifecycle Action"
	DetailTerminateLifecycleAction = "EC2 Instance-terminate Lifecycle Action"
)

// eventsLifecycleAction announces that a lifecycle hook put an instance into a wait state, as
// Auto Scaling does with an "EC2 Instance-launch Lifecycle Action" or "EC2 Instance-terminate
// Lifecycle Action" event. It runs with the lock held.
func (r *Region) eventsLifecycleAction(g *ASG, h *LifecycleHook, a *lifecycleAction) {
	detail := map[string]any{}
	for k, v := range r.asgHookNotification(g, h, a) {
		switch k {
		case "AccountId", "Service", "Time":
		default:
			detail[k] = v
		}
	}
	dt := DetailLaunchLifecycleAction
	if a.transition == TransitionTerminating {
		dt = DetailTerminateLifecycleAction
	}
	e := Event{
		Source:     "aws.autoscaling",
		DetailType: dt,
		Time:       r.now(),
		Resources:  []string{g.ARN},
		Detail:     detail,
	}
	r.publish(r.ext(), e)
}
