package sim

// The lifecycle hook calls of Auto Scaling; the engine is in autoscaling_hooks.go.

type asHook struct {
	AutoScalingGroupName  string `xml:"AutoScalingGroupName"`
	DefaultResult         string `xml:"DefaultResult"`
	GlobalTimeout         int32  `xml:"GlobalTimeout"`
	HeartbeatTimeout      int32  `xml:"HeartbeatTimeout"`
	LifecycleHookName     string `xml:"LifecycleHookName"`
	LifecycleTransition   string `xml:"LifecycleTransition"`
	NotificationMetadata  string `xml:"NotificationMetadata,omitempty"`
	NotificationTargetARN string `xml:"NotificationTargetARN,omitempty"`
	RoleARN               string `xml:"RoleARN,omitempty"`
}

// asHookParam reads the fields of a hook under p (PutLifecycleHook, or one
// LifecycleHookSpecificationList member).
func asHookParam(p params) (LifecycleHook, *APIError) {
	h := LifecycleHook{
		Name:                  p.Get("LifecycleHookName"),
		Transition:            p.Get("LifecycleTransition"),
		DefaultResult:         p.Get("DefaultResult"),
		NotificationTargetARN: p.Get("NotificationTargetARN"),
		RoleARN:               p.Get("RoleARN"),
		NotificationMetadata:  p.Get("NotificationMetadata"),
	}
	n, ok, err := asInt32(p, "HeartbeatTimeout")
	if err != nil {
		return h, err
	}
	if ok && n == 0 {
		return h, errf(CodeValidationError, "Heartbeat timeout 0 is invalid: it must be between %d and %d seconds.", hookMinHeartbeat, hookMaxHeartbeat)
	}
	h.HeartbeatTimeout = n
	return h, nil
}

// asHookSpecsParam reads CreateAutoScalingGroup's LifecycleHookSpecificationList.
func asHookSpecsParam(p params) ([]LifecycleHook, *APIError) {
	var out []LifecycleHook
	for _, s := range p.Structs("LifecycleHookSpecificationList.member") {
		h, err := asHookParam(s)
		if err != nil {
			return nil, err
		}
		if h.Transition == "" {
			return nil, nullMember(CodeValidationError, "lifecycleTransition")
		}
		out = append(out, h)
	}
	return out, nil
}

func (r *Region) asPutLifecycleHook(c *call) *APIError {
	g, err := r.asMutable(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	h, err := asHookParam(c.Form)
	if err != nil {
		return err
	}
	if err := r.asgPutHook(g, h, true); err != nil {
		return err
	}
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asDeleteLifecycleHook(c *call) *APIError {
	g, err := r.asMutable(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	name := c.Form.Get("LifecycleHookName")
	if name == "" {
		return nullMember(CodeValidationError, "lifecycleHookName")
	}
	if err := r.asgDeleteHook(g, name); err != nil {
		return err
	}
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asDescribeLifecycleHooks(c *call) *APIError {
	g, err := r.asGroupByName(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	names := c.Form.List("LifecycleHookNames.member")
	if len(names) > hookMaxPerGroup {
		return errf(CodeValidationError, "The number of lifecycle hook names (%d) exceeds the maximum of %d.", len(names), hookMaxPerGroup)
	}
	out := asList[asHook]{Items: []asHook{}}
	for _, h := range r.asgExtraOf(g).hooks {
		if len(names) > 0 && !asAnyOf(names, h.Name) {
			continue
		}
		out.Items = append(out.Items, asHook{AutoScalingGroupName: g.Name, DefaultResult: h.DefaultResult,
			GlobalTimeout: int32(h.global().Seconds()), HeartbeatTimeout: h.HeartbeatTimeout, LifecycleHookName: h.Name,
			LifecycleTransition: h.Transition, NotificationMetadata: h.NotificationMetadata,
			NotificationTargetARN: h.NotificationTargetARN, RoleARN: h.RoleARN})
	}
	c.writeQuery(struct {
		LifecycleHooks asList[asHook] `xml:"LifecycleHooks"`
	}{out})
	return nil
}

func (r *Region) asDescribeLifecycleHookTypes(c *call) *APIError {
	c.writeQuery(struct {
		LifecycleHookTypes asList[string] `xml:"LifecycleHookTypes"`
	}{asMembers([]string{TransitionLaunching, TransitionTerminating})})
	return nil
}

// asLifecycleAction finds the action that CompleteLifecycleAction or
// RecordLifecycleActionHeartbeat names, by token or instance id.
func (r *Region) asLifecycleAction(p params) (*ASG, *lifecycleAction, *APIError) {
	g, err := r.asGroupByName(p.Get("AutoScalingGroupName"))
	if err != nil {
		return nil, nil, err
	}
	hook := p.Get("LifecycleHookName")
	if hook == "" {
		return nil, nil, nullMember(CodeValidationError, "lifecycleHookName")
	}
	token, id := p.Get("LifecycleActionToken"), p.Get("InstanceId")
	if token == "" && id == "" {
		return nil, nil, errf(CodeValidationError, "Either LifecycleActionToken or InstanceId must be specified.")
	}
	a, err := r.asgFindAction(g, hook, token, id)
	if err != nil {
		return nil, nil, err
	}
	return g, a, nil
}

func (r *Region) asCompleteLifecycleAction(c *call) *APIError {
	result := c.Form.Get("LifecycleActionResult")
	if result == "" {
		return nullMember(CodeValidationError, "lifecycleActionResult")
	}
	if result != LifecycleContinue && result != LifecycleAbandon {
		return errf(CodeValidationError, "Invalid LifecycleActionResult %s: valid values are CONTINUE and ABANDON.", result)
	}
	g, a, err := r.asLifecycleAction(c.Form)
	if err != nil {
		return err
	}
	r.asgCompleteAction(g, a, result)
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asRecordLifecycleActionHeartbeat(c *call) *APIError {
	g, a, err := r.asLifecycleAction(c.Form)
	if err != nil {
		return err
	}
	r.asgHeartbeat(g, a)
	c.writeQuery(struct{}{})
	return nil
}
