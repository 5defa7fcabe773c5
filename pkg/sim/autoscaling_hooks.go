package sim

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Auto Scaling lifecycle hooks, as the Amazon EC2 Auto Scaling user guide describes them: a
// launch hook holds a new member in Pending:Wait and a terminate hook holds a leaving member in
// Terminating:Wait until every hook's action is completed (CompleteLifecycleAction) or times out
// (HeartbeatTimeout, restarted by RecordLifecycleActionHeartbeat, bounded by the global timeout of
// 100 × HeartbeatTimeout or 48 hours), then the group goes on (…:Proceed) or, for an abandoned
// launch, terminates the instance. Hooks apply to launches and terminations that the group starts,
// TerminateInstanceInAutoScalingGroup, capacity rebalancing and health-check replacements (a spot
// instance that EC2 interrupted included); they do not apply to AttachInstances, DetachInstances,
// Standby, or a force delete, as the user guide's "lifecycle hook availability" table says.

// Lifecycle states of members held by lifecycle hooks.
const (
	LifecyclePendingWait        = "Pending:Wait"
	LifecyclePendingProceed     = "Pending:Proceed"
	LifecycleTerminatingWait    = "Terminating:Wait"
	LifecycleTerminatingProceed = "Terminating:Proceed"
)

// Lifecycle transitions a hook can be put on.
const (
	TransitionLaunching   = "autoscaling:EC2_INSTANCE_LAUNCHING"
	TransitionTerminating = "autoscaling:EC2_INSTANCE_TERMINATING"
)

// Lifecycle action results.
const (
	LifecycleContinue = "CONTINUE"
	LifecycleAbandon  = "ABANDON"
)

// Status codes of scaling activities that wait: on a lifecycle hook, and on load balancers
// draining a leaving instance.
const (
	ActivityMidLifecycleAction              = "MidLifecycleAction"
	ActivityWaitingForELBConnectionDraining = "WaitingForELBConnectionDraining"
)

// Lifecycle hook limits and defaults (Amazon EC2 Auto Scaling API reference, PutLifecycleHook).
const (
	hookDefaultHeartbeat = 3600
	hookMinHeartbeat     = 30
	hookMaxHeartbeat     = 7200
	hookMaxGlobal        = 48 * time.Hour
	hookMaxPerGroup      = 50
)

var hookNamePattern = lazyRegexp(`^[A-Za-z0-9\-_/]{1,255}$`)

// LifecycleHook is a lifecycle hook of an Auto Scaling group.
type LifecycleHook struct {
	Name       string
	Transition string // TransitionLaunching or TransitionTerminating
	// HeartbeatTimeout is in seconds; 0 means 3600.
	HeartbeatTimeout int32
	// DefaultResult is CONTINUE or ABANDON ("" means ABANDON, as AWS defaults).
	DefaultResult         string
	NotificationTargetARN string
	RoleARN               string
	NotificationMetadata  string
}

func (h *LifecycleHook) heartbeat() time.Duration {
	return time.Duration(h.HeartbeatTimeout) * time.Second
}

func (h *LifecycleHook) global() time.Duration {
	return min(100*h.heartbeat(), hookMaxGlobal)
}

// lifecycleAction is one hook's wait on one instance.
type lifecycleAction struct {
	hook       string
	token      string
	instanceID string
	transition string
	deadline   time.Time // heartbeat timeout
	global     time.Time // global timeout
	result     string    // "" while active
}

// asgLifecycleActionHooks run, with the lock held, when a lifecycle hook puts an instance into a
// wait state; the simulated EventBridge announces it (events.go).
var asgLifecycleActionHooks []func(r *Region, g *ASG, h *LifecycleHook, a *lifecycleAction)

// Leaving stages of a terminating member.
const (
	leaveDraining = iota + 1 // deregistering from load balancers
	leaveHooks               // Terminating:Wait
	leaveFinal               // the instance is being terminated; the member goes when it is
)

// hooksFor returns the group's hooks for a transition, ordered by name.
func (x *asgExtra) hooksFor(transition string) []*LifecycleHook {
	var out []*LifecycleHook
	for _, h := range x.hooks {
		if h.Transition == transition {
			out = append(out, h)
		}
	}
	return out
}

// asgPutHook validates a hook and adds or replaces it; on update, unset fields keep their values.
func (r *Region) asgPutHook(g *ASG, h LifecycleHook, update bool) *APIError {
	x := r.asgExtraOf(g)
	var cur *LifecycleHook
	for _, o := range x.hooks {
		if o.Name == h.Name {
			cur = o
		}
	}
	if cur != nil && update {
		if h.Transition == "" {
			h.Transition = cur.Transition
		}
		if h.HeartbeatTimeout == 0 {
			h.HeartbeatTimeout = cur.HeartbeatTimeout
		}
		if h.DefaultResult == "" {
			h.DefaultResult = cur.DefaultResult
		}
		if h.NotificationTargetARN == "" {
			h.NotificationTargetARN = cur.NotificationTargetARN
		}
		if h.RoleARN == "" {
			h.RoleARN = cur.RoleARN
		}
		if h.NotificationMetadata == "" {
			h.NotificationMetadata = cur.NotificationMetadata
		}
	}
	h, err := asgCheckHook(h)
	if err != nil {
		return err
	}
	if cur != nil {
		*cur = h
		return nil
	}
	if len(x.hooks) >= hookMaxPerGroup {
		return errf("LimitExceeded", "Maximum number of lifecycle hooks (%d) for AutoScalingGroup %s has been reached.", hookMaxPerGroup, g.Name)
	}
	hc := h
	x.hooks = append(x.hooks, &hc)
	sort.Slice(x.hooks, func(i, j int) bool { return x.hooks[i].Name < x.hooks[j].Name })
	if hc.NotificationTargetARN != "" {
		r.asgNotifyTest(g, &hc)
	}
	return nil
}

// asgCheckHook validates a hook and fills in AWS's defaults.
func asgCheckHook(h LifecycleHook) (LifecycleHook, *APIError) {
	if h.Name == "" {
		return h, nullMember(CodeValidationError, "lifecycleHookName")
	}
	if !hookNamePattern().MatchString(h.Name) {
		return h, errf(CodeValidationError, "1 validation error detected: Value '%s' at 'lifecycleHookName' failed to satisfy constraint: Member must satisfy regular expression pattern: [A-Za-z0-9\\-_\\/]+", h.Name)
	}
	if h.Transition == "" {
		return h, errf(CodeValidationError, "Lifecycle Transition must be specified when creating a lifecycle hook %s.", h.Name)
	}
	if h.Transition != TransitionLaunching && h.Transition != TransitionTerminating {
		return h, errf(CodeValidationError, "Invalid Lifecycle Transition %s: valid values are %s and %s.", h.Transition, TransitionLaunching, TransitionTerminating)
	}
	if h.HeartbeatTimeout == 0 {
		h.HeartbeatTimeout = hookDefaultHeartbeat
	}
	if h.HeartbeatTimeout < hookMinHeartbeat || h.HeartbeatTimeout > hookMaxHeartbeat {
		return h, errf(CodeValidationError, "Heartbeat timeout %d is invalid: it must be between %d and %d seconds.", h.HeartbeatTimeout, hookMinHeartbeat, hookMaxHeartbeat)
	}
	if h.DefaultResult == "" {
		h.DefaultResult = LifecycleAbandon
	}
	if h.DefaultResult != LifecycleContinue && h.DefaultResult != LifecycleAbandon {
		return h, errf(CodeValidationError, "Invalid DefaultResult %s: valid values are CONTINUE and ABANDON.", h.DefaultResult)
	}
	if len(h.NotificationMetadata) > 1023 {
		return h, errf(CodeValidationError, "1 validation error detected: Value at 'notificationMetadata' failed to satisfy constraint: Member must have length less than or equal to 1023")
	}
	return h, nil
}

// asgDeleteHook removes a hook; its outstanding actions are completed first, as DeleteLifecycleHook
// does: ABANDON for launching instances, CONTINUE for terminating ones.
func (r *Region) asgDeleteHook(g *ASG, name string) *APIError {
	x := r.asgExtraOf(g)
	for i, h := range x.hooks {
		if h.Name != name {
			continue
		}
		x.hooks = append(x.hooks[:i:i], x.hooks[i+1:]...)
		for _, a := range append([]*lifecycleAction(nil), x.actions...) {
			if a.hook == name && a.result == "" {
				result := LifecycleContinue
				if a.transition == TransitionLaunching {
					result = LifecycleAbandon
				}
				r.asgCompleteAction(g, a, result)
			}
		}
		return nil
	}
	return errf(CodeValidationError, "No Lifecycle Hook found with name %s for AutoScalingGroup %s.", name, g.Name)
}

// asgWaitHooks starts one lifecycle action per hook of the transition on a member; it reports
// false when the group has no such hook.
func (r *Region) asgWaitHooks(g *ASG, m *ASGMember, transition string) bool {
	x := r.asgExtraOf(g)
	hooks := x.hooksFor(transition)
	if len(hooks) == 0 {
		return false
	}
	now := r.now()
	for _, h := range hooks {
		a := &lifecycleAction{hook: h.Name, token: r.asgUUID(), instanceID: m.InstanceID, transition: transition,
			deadline: now.Add(h.heartbeat()), global: now.Add(h.global())}
		x.actions = append(x.actions, a)
		r.asgScheduleTimeout(g.Name, a)
		r.asgNotify(g, h, a)
		for _, fn := range asgLifecycleActionHooks {
			fn(r, g, h, a)
		}
	}
	return true
}

// asgScheduleTimeout ends an action with its hook's default result when it times out.
func (r *Region) asgScheduleTimeout(group string, a *lifecycleAction) {
	at := a.deadline
	if a.global.Before(at) {
		at = a.global
	}
	r.after(at.Sub(r.now()), func() {
		g := r.asgs[group]
		if g == nil || a.result != "" || r.now().Before(a.deadline) && r.now().Before(a.global) {
			return
		}
		result := LifecycleAbandon
		for _, h := range r.asgExtraOf(g).hooks {
			if h.Name == a.hook {
				result = h.DefaultResult
			}
		}
		r.asgCompleteAction(g, a, result)
	})
}

// asgFindAction returns the active action of a hook by token or instance id, or AWS's error.
func (r *Region) asgFindAction(g *ASG, hook, token, instanceID string) (*lifecycleAction, *APIError) {
	x := r.asgExtraOf(g)
	for _, a := range x.actions {
		if a.result == "" && a.hook == hook && (token == "" || a.token == token) && (instanceID == "" || a.instanceID == instanceID) {
			return a, nil
		}
	}
	if token != "" {
		return nil, errf(CodeValidationError, "No active Lifecycle Action found with token %s", token)
	}
	return nil, errf(CodeValidationError, "No active Lifecycle Action found with instance ID %s", instanceID)
}

// asgHeartbeat restarts an action's heartbeat timeout.
func (r *Region) asgHeartbeat(g *ASG, a *lifecycleAction) {
	for _, h := range r.asgExtraOf(g).hooks {
		if h.Name == a.hook {
			a.deadline = r.now().Add(h.heartbeat())
		}
	}
	r.asgScheduleTimeout(g.Name, a)
}

// asgCompleteAction ends an action; when it was the member's last, the member goes on: a launch
// to Pending:Proceed and InService (or, abandoned, to termination), a termination to
// Terminating:Proceed and the instance's termination.
func (r *Region) asgCompleteAction(g *ASG, a *lifecycleAction, result string) {
	x := r.asgExtraOf(g)
	a.result = result
	abandoned := false
	var kept []*lifecycleAction
	for _, o := range x.actions {
		if o.instanceID != a.instanceID || o.transition != a.transition {
			kept = append(kept, o)
			continue
		}
		if o.result == "" {
			if result == LifecycleAbandon {
				// ABANDON stops the instance's other hooks of the transition.
				o.result = LifecycleAbandon
			} else {
				return
			}
		}
		abandoned = abandoned || o.result == LifecycleAbandon
	}
	x.actions = kept
	if wm := r.asgWarmMember(g, a.instanceID); wm != nil {
		r.asgWarmHookDone(g, wm, abandoned)
		return
	}
	m, ok := g.Member(a.instanceID)
	if !ok {
		return
	}
	switch a.transition {
	case TransitionLaunching:
		if m.LifecycleState != LifecyclePendingWait {
			return
		}
		if abandoned {
			cause := fmt.Sprintf("At %s an instance was taken out of service in response to a lifecycle action for instance %s that was abandoned: Lifecycle Action Completed with ABANDON Result.",
				asgCauseTime(r.now()), a.instanceID)
			if act := x.open[a.instanceID]; act != nil {
				act.Status = ActivityInProgress
			}
			r.asgTerminateMember(g, m, cause)
			return
		}
		m.LifecycleState = LifecyclePendingProceed
		if act := x.open[a.instanceID]; act != nil {
			act.Status = ActivityInProgress
		}
		id, name := a.instanceID, g.Name
		r.after(0, func() {
			cur := r.asgs[name]
			if cur == nil {
				return
			}
			if m, ok := cur.Member(id); ok && m.LifecycleState == LifecyclePendingProceed {
				r.asgInService(cur, m)
			}
		})
	case TransitionTerminating:
		if m.LifecycleState != LifecycleTerminatingWait {
			return
		}
		m.LifecycleState = LifecycleTerminatingProceed
		r.asgTerminateFinal(g, m)
	}
}

// asgDropActions ends a member's actions without a result (the member left another way).
func (r *Region) asgDropActions(g *ASG, id string) {
	x := r.asgExtraOf(g)
	kept := x.actions[:0]
	for _, a := range x.actions {
		if a.instanceID == id {
			a.result = LifecycleAbandon
			continue
		}
		kept = append(kept, a)
	}
	x.actions = kept
}

// asgLaunchReady moves a Pending member whose instance runs on: into Pending:Wait when the group
// has launch hooks, else InService.
func (r *Region) asgLaunchReady(g *ASG, m *ASGMember) {
	if r.asgWaitHooks(g, m, TransitionLaunching) {
		m.LifecycleState = LifecyclePendingWait
		if in := r.instances[m.InstanceID]; in != nil {
			in.TargetLifecycleState = "InService"
		}
		if act := r.asgExtraOf(g).open[m.InstanceID]; act != nil {
			act.Status = ActivityMidLifecycleAction
		}
		return
	}
	r.asgInService(g, m)
}

// asgTerminateHooks runs the terminate hooks of a member that has left its load balancers.
func (r *Region) asgTerminateHooks(g *ASG, m *ASGMember) {
	x := r.asgExtraOf(g)
	if g.Status != asgDeleting && r.asgWaitHooks(g, m, TransitionTerminating) {
		x.leaving[m.InstanceID] = leaveHooks
		m.LifecycleState = LifecycleTerminatingWait
		if act := x.open[m.InstanceID]; act != nil {
			act.Status = ActivityMidLifecycleAction
		}
		return
	}
	r.asgTerminateFinal(g, m)
}

// asgTerminateFinal terminates a leaving member's instance; the member goes when the instance
// is terminated (at once when it already is).
func (r *Region) asgTerminateFinal(g *ASG, m *ASGMember) {
	x := r.asgExtraOf(g)
	x.leaving[m.InstanceID] = leaveFinal
	if m.LifecycleState == LifecycleTerminatingWait {
		m.LifecycleState = LifecycleTerminatingProceed
	}
	if act := x.open[m.InstanceID]; act != nil && act.Status == ActivityMidLifecycleAction {
		act.Status = ActivityInProgress
	}
	in := r.instances[m.InstanceID]
	if in == nil || in.State == StateTerminated {
		r.asgRemoveMember(g, m.InstanceID)
		return
	}
	r.terminate(in, "")
}

// asgHookNotification is the message Auto Scaling sends to a hook's notification target.
func (r *Region) asgHookNotification(g *ASG, h *LifecycleHook, a *lifecycleAction) map[string]any {
	msg := map[string]any{
		"Origin":               "EC2",
		"Destination":          "AutoScalingGroup",
		"LifecycleHookName":    h.Name,
		"AccountId":            r.opts.AccountID,
		"RequestId":            r.asgUUID(),
		"LifecycleTransition":  a.transition,
		"AutoScalingGroupName": g.Name,
		"Service":              "AWS Auto Scaling",
		"Time":                 r.now().UTC().Format(imdsTimeFormat),
		"EC2InstanceId":        a.instanceID,
		"LifecycleActionToken": a.token,
	}
	if a.transition == TransitionTerminating {
		msg["Origin"], msg["Destination"] = "AutoScalingGroup", "EC2"
	}
	if h.NotificationMetadata != "" {
		msg["NotificationMetadata"] = h.NotificationMetadata
	}
	return msg
}

// asgNotify sends a lifecycle action to the hook's SQS notification target, if it has one.
func (r *Region) asgNotify(g *ASG, h *LifecycleHook, a *lifecycleAction) {
	if !strings.HasPrefix(h.NotificationTargetARN, "arn:aws:sqs:") {
		return
	}
	b, _ := json.Marshal(r.asgHookNotification(g, h, a))
	_, _ = r.sqsDeliver(h.NotificationTargetARN, string(b))
}

// asgNotifyTest sends the test notification Auto Scaling sends when a hook gets a target.
func (r *Region) asgNotifyTest(g *ASG, h *LifecycleHook) {
	if !strings.HasPrefix(h.NotificationTargetARN, "arn:aws:sqs:") {
		return
	}
	b, _ := json.Marshal(map[string]any{
		"AccountId":            r.opts.AccountID,
		"RequestId":            r.asgUUID(),
		"AutoScalingGroupARN":  g.ARN,
		"AutoScalingGroupName": g.Name,
		"Service":              "AWS Auto Scaling",
		"Event":                "autoscaling:TEST_NOTIFICATION",
		"Time":                 r.now().UTC().Format(imdsTimeFormat),
	})
	_, _ = r.sqsDeliver(h.NotificationTargetARN, string(b))
}

// LifecycleHooks returns copies of a group's lifecycle hooks, ordered by name.
func (r *Region) LifecycleHooks(group string) []LifecycleHook {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.asgs[group]
	if g == nil {
		return nil
	}
	var out []LifecycleHook
	for _, h := range r.asgExtraOf(g).hooks {
		out = append(out, *h)
	}
	return out
}

// ScenarioLifecycleHook is a lifecycle hook of a scenario group.
type ScenarioLifecycleHook struct {
	Name string `yaml:"name"`
	// Transition is launch, terminate, or AWS's autoscaling:EC2_INSTANCE_LAUNCHING /
	// autoscaling:EC2_INSTANCE_TERMINATING.
	Transition string `yaml:"transition"`
	// HeartbeatTimeout is in seconds; absent means 3600.
	HeartbeatTimeout int32 `yaml:"heartbeatTimeout"`
	// DefaultResult is CONTINUE or ABANDON (the default).
	DefaultResult         string `yaml:"defaultResult"`
	NotificationTargetARN string `yaml:"notificationTargetArn"`
	NotificationMetadata  string `yaml:"notificationMetadata"`
}

func (h ScenarioLifecycleHook) hook() (LifecycleHook, error) {
	t := h.Transition
	switch t {
	case "launch":
		t = TransitionLaunching
	case "terminate":
		t = TransitionTerminating
	case TransitionLaunching, TransitionTerminating:
	default:
		return LifecycleHook{}, fmt.Errorf("transition %q must be launch or terminate", h.Transition)
	}
	return LifecycleHook{Name: h.Name, Transition: t, HeartbeatTimeout: h.HeartbeatTimeout, DefaultResult: h.DefaultResult,
		NotificationTargetARN: h.NotificationTargetARN, NotificationMetadata: h.NotificationMetadata}, nil
}
