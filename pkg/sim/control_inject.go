package sim

import (
	"net/http"
	"time"
)

// Interrupt gives a live spot instance its interruption notice: IMDS shows it at
// spot/instance-action, an "EC2 Spot Instance Interruption Warning" event is emitted, and the
// instance is stopped or terminated when the notice runs out (Latencies.InterruptionNotice, two
// minutes on AWS). action is terminate, stop or hibernate; "" means the instance's own
// interruption behaviour. A second notice for the same instance changes nothing.
func (r *Region) Interrupt(instanceID, action string) error {
	switch action {
	case "", "terminate", "stop", "hibernate":
	default:
		return errf(CodeInvalidParameter, "Invalid value '%s' for interruption action: must be terminate, stop or hibernate.", action)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sched.runDue(r.clock.Now())
	in, err := r.ctlLiveInstance(instanceID)
	if err != nil {
		return err
	}
	if e := r.interrupt(in, action); e != nil {
		return e
	}
	return nil
}

// Rebalance gives a live spot instance a rebalance recommendation: IMDS shows it at
// events/recommendations/rebalance and an "EC2 Instance Rebalance Recommendation" event is
// emitted. The instance keeps running. A second recommendation keeps the first notice time.
func (r *Region) Rebalance(instanceID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sched.runDue(r.clock.Now())
	in, err := r.ctlLiveInstance(instanceID)
	if err != nil {
		return err
	}
	if in.Market != MarketSpot {
		return errf(CodeInvalidParameter, "instance %s is not a spot instance", in.ID)
	}
	if in.Rebalance != nil {
		return nil
	}
	t := r.now().UTC().Truncate(time.Second)
	in.Rebalance = &t
	for _, h := range r.stateHooks {
		h(in)
	}
	return nil
}

// Auto Scaling target lifecycle states that IMDS can show.
var targetLifecycleStates = map[string]bool{
	"InService": true, "Terminated": true, "Detached": true, "Standby": true,
	"Warmed:Hibernated": true, "Warmed:Running": true, "Warmed:Stopped": true, "Warmed:Terminated": true,
}

// SetTargetLifecycleState sets what an instance's IMDS shows at
// autoscaling/target-lifecycle-state (InService, Terminated, Detached, Standby or a Warmed:
// state); "" returns to the default (InService for a group member).
func (r *Region) SetTargetLifecycleState(instanceID, state string) error {
	if state != "" && !targetLifecycleStates[state] {
		return errf(CodeInvalidParameter, "Invalid value '%s' for target lifecycle state.", state)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.instances[instanceID]
	if in == nil {
		return ctlInstanceNotFound(instanceID)
	}
	in.TargetLifecycleState = state
	return nil
}

func (r *Region) ctlLiveInstance(id string) (*Instance, *APIError) {
	in := r.instances[id]
	if in == nil {
		return nil, ctlInstanceNotFound(id)
	}
	if !in.Live() {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "IncorrectInstanceState",
			Message: "The instance '" + id + "' is not in a state from which it can be interrupted: " + in.State + "."}
	}
	return in, nil
}

func ctlInstanceNotFound(id string) *APIError {
	return errf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
}
