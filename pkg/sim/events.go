package sim

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The simulated EventBridge: rules with event patterns on the default event bus, SQS queues as
// targets, and delivery of the region's own events (EC2 interruption warnings, rebalance
// recommendations and state changes, Auto Scaling launch failures) to the queues of every
// enabled rule that matches, subject to the queue's access policy as on AWS.

func init() {
	registerService(&service{
		name:   "events",
		setup:  setupEvents,
		handle: serveEvents,
		// EventBridge speaks AWS JSON 1.1: __type names the error structure. The codes shared
		// with other services map to EventBridge's own structures.
		errorShapes: map[string]string{
			CodeThrottling:           "ThrottlingException",
			CodeMissingParameter:     "ValidationException",
			CodeInvalidParameter:     "ValidationException",
			CodeValidationError:      "ValidationException",
			"InvalidNextToken":       "ValidationException",
			"SerializationException": "ValidationException",
			"InternalError":          "InternalException",
			CodeInvalidAction:        "UnknownOperationException",
		},
	})
	asgLaunchFailedHooks = append(asgLaunchFailedHooks, (*Region).eventsLaunchFailed)
	asgLifecycleActionHooks = append(asgLifecycleActionHooks, (*Region).eventsLifecycleAction)
}

// EventBridge error codes (the names of the SDK's error structures).
const (
	ebResourceNotFound = "ResourceNotFoundException"
	ebValidation       = "ValidationException"
	ebInvalidPattern   = "InvalidEventPatternException"
	ebLimitExceeded    = "LimitExceededException"
)

// EventBridge limits and names.
const (
	ebDefaultBus      = "default"
	ebMaxTargets      = 5 // per rule
	ebMaxPutTargets   = 10
	ebMaxRules        = 300 // per event bus
	ebMaxPatternBytes = 4096
	ebSQSPrincipal    = "events.amazonaws.com"
)

// DetailLaunchUnsuccessful is the detail type of the Auto Scaling event for a failed launch.
const DetailLaunchUnsuccessful = "EC2 Instance Launch Unsuccessful"

var (
	ebNamePattern   = lazyRegexp(`^[\.\-_A-Za-z0-9]{1,64}$`)
	ebTargetPattern = lazyRegexp(`^[\.\-_A-Za-z0-9]{1,64}$`)
)

type ebState struct {
	rules      map[string]*ebRule // rules of the default bus, by name
	deliveries []EventDelivery    // the most recent attempts, oldest first
}

type ebRule struct {
	name        string
	description string
	state       string // ENABLED or DISABLED
	patternText string
	pattern     *eventPattern
	schedule    string
	roleARN     string
	targets     []*ebTarget // in the order they were added
}

type ebTarget struct {
	ID        string `json:"Id"`
	Arn       string `json:"Arn"`
	Input     string `json:"Input,omitempty"`
	InputPath string `json:"InputPath,omitempty"`
}

// EventDelivery is one attempt of the simulated EventBridge to deliver an event to a rule's
// target.
type EventDelivery struct {
	Rule       string
	Target     string // the target's ARN
	EventID    string
	DetailType string
	Time       time.Time
	// Err says why the delivery failed ("" when the message was sent): the queue does not
	// exist, its policy does not allow the rule to send, the target is not an SQS queue.
	Err string
}

func setupEvents(r *Region) {
	r.svc["events"] = &ebState{rules: map[string]*ebRule{}}
	// Subscribers run with the lock held, in event order, which is what delivery needs.
	x := r.ext()
	x.subs = append(x.subs, r.eventsDispatch)
}

func (r *Region) events() *ebState { return r.svc["events"].(*ebState) }

// EventDeliveries returns the latest delivery attempts of EventBridge rules (up to 1000), oldest
// first, including failed ones with the reason.
func (r *Region) EventDeliveries() []EventDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]EventDelivery(nil), r.events().deliveries...)
}

// RuleARN returns the ARN of the EventBridge rule name on the default event bus, whether or not
// it exists yet (for queue policies written before the rule).
func (r *Region) RuleARN(name string) string { return r.ruleARN(name) }

func (r *Region) ruleARN(name string) string {
	return fmt.Sprintf("arn:aws:events:%s:%s:rule/%s", r.opts.Region, r.opts.AccountID, name)
}

var ebActions = jsonActions{
	"PutRule":           (*Region).ebPutRule,
	"DescribeRule":      (*Region).ebDescribeRule,
	"ListRules":         (*Region).ebListRules,
	"DeleteRule":        (*Region).ebDeleteRule,
	"EnableRule":        (*Region).ebEnableRule,
	"DisableRule":       (*Region).ebDisableRule,
	"PutTargets":        (*Region).ebPutTargets,
	"ListTargetsByRule": (*Region).ebListTargetsByRule,
	"RemoveTargets":     (*Region).ebRemoveTargets,
}

func serveEvents(r *Region, c *call) { serveJSON(r, c, "EventBridge", "AWSEvents", ebActions) }

func ebDecode(c *call, v any) *APIError { return c.decodeJSON(v, ebValidation) }

// ebBus checks an EventBusName (a name or an ARN): only the default bus exists.
func (r *Region) ebBus(name string) *APIError {
	if name == "" || name == ebDefaultBus || name == fmt.Sprintf("arn:aws:events:%s:%s:event-bus/default", r.opts.Region, r.opts.AccountID) {
		return nil
	}
	return errf(ebResourceNotFound, "Event bus %s does not exist.", name)
}

func ebRuleMissing(name string) *APIError {
	return errf(ebResourceNotFound, "Rule %s does not exist on EventBus default.", name)
}

func ebCheckName(field, name string) *APIError {
	if name == "" {
		return nullMember(ebValidation, field)
	}
	if !ebNamePattern().MatchString(name) {
		return errf(ebValidation, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+ and have length between 1 and 64", name, field)
	}
	return nil
}

func (r *Region) ebRule(bus, name string) (*ebRule, *APIError) {
	if err := r.ebBus(bus); err != nil {
		return nil, err
	}
	if err := ebCheckName("name", name); err != nil {
		return nil, err
	}
	rule := r.events().rules[name]
	if rule == nil {
		return nil, ebRuleMissing(name)
	}
	return rule, nil
}

func (r *Region) ebPutRule(c *call) (any, *APIError) {
	var in struct {
		Name, Description, EventBusName, EventPattern, ScheduleExpression, State, RoleArn string
		Tags                                                                              []struct{ Key, Value string }
	}
	if err := ebDecode(c, &in); err != nil {
		return nil, err
	}
	if err := r.ebBus(in.EventBusName); err != nil {
		return nil, err
	}
	if err := ebCheckName("name", in.Name); err != nil {
		return nil, err
	}
	if in.EventPattern == "" && in.ScheduleExpression == "" {
		return nil, errf(ebValidation, "Parameter(s) EventPattern or ScheduleExpression must be specified.")
	}
	if len(in.Description) > 512 {
		return nil, errf(ebValidation, "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 512")
	}
	switch in.State {
	case "":
		in.State = "ENABLED"
	case "ENABLED", "DISABLED":
	default:
		return nil, errf(ebValidation, "1 validation error detected: Value '%s' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS]", in.State)
	}
	var pat *eventPattern
	if in.EventPattern != "" {
		if len(in.EventPattern) > ebMaxPatternBytes {
			return nil, errf(ebInvalidPattern, "Event pattern is not valid. Reason: the pattern is longer than %d bytes", ebMaxPatternBytes)
		}
		p, err := parseEventPattern(in.EventPattern)
		if err != nil {
			return nil, errf(ebInvalidPattern, "Event pattern is not valid. Reason: %v", err)
		}
		pat = p
	}
	if in.ScheduleExpression != "" && !strings.HasPrefix(in.ScheduleExpression, "rate(") && !strings.HasPrefix(in.ScheduleExpression, "cron(") {
		return nil, errf(ebValidation, "Parameter ScheduleExpression is not valid.")
	}
	st := r.events()
	rule := st.rules[in.Name]
	if rule == nil {
		if len(st.rules) >= ebMaxRules {
			return nil, errf(ebLimitExceeded, "The requested resource exceeds the maximum number allowed.")
		}
		rule = &ebRule{name: in.Name}
		st.rules[in.Name] = rule
	}
	// PutRule replaces the rule's definition; its targets stay.
	rule.description, rule.state = in.Description, in.State
	rule.patternText, rule.pattern = in.EventPattern, pat
	rule.schedule, rule.roleARN = in.ScheduleExpression, in.RoleArn
	return map[string]string{"RuleArn": r.ruleARN(rule.name)}, nil
}

// ebRuleOut is a rule as DescribeRule and ListRules return it.
type ebRuleOut struct {
	Name               string
	Arn                string
	EventPattern       string `json:",omitempty"`
	ScheduleExpression string `json:",omitempty"`
	State              string
	Description        string `json:",omitempty"`
	RoleArn            string `json:",omitempty"`
	EventBusName       string
	CreatedBy          string `json:",omitempty"`
}

func (r *Region) ebRuleOut(rule *ebRule) ebRuleOut {
	return ebRuleOut{Name: rule.name, Arn: r.ruleARN(rule.name), EventPattern: rule.patternText, ScheduleExpression: rule.schedule,
		State: rule.state, Description: rule.description, RoleArn: rule.roleARN, EventBusName: ebDefaultBus}
}

func (r *Region) ebDescribeRule(c *call) (any, *APIError) {
	var in struct{ Name, EventBusName string }
	if err := ebDecode(c, &in); err != nil {
		return nil, err
	}
	rule, err := r.ebRule(in.EventBusName, in.Name)
	if err != nil {
		return nil, err
	}
	out := r.ebRuleOut(rule)
	out.CreatedBy = r.opts.AccountID
	return out, nil
}

func (r *Region) ebListRules(c *call) (any, *APIError) {
	var in struct {
		NamePrefix, EventBusName, NextToken string
		Limit                               *int64
	}
	if err := ebDecode(c, &in); err != nil {
		return nil, err
	}
	if err := r.ebBus(in.EventBusName); err != nil {
		return nil, err
	}
	if in.Limit != nil && (*in.Limit < 1 || *in.Limit > 100) {
		return nil, errf(ebValidation, "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100", *in.Limit)
	}
	var names []string
	for n := range r.events().rules {
		if strings.HasPrefix(n, in.NamePrefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var limit int64
	if in.Limit != nil {
		limit = *in.Limit
	}
	from, to, next, err := page(len(names), limit, in.NextToken, 100, 100)
	if err != nil {
		return nil, err
	}
	out := struct {
		Rules     []ebRuleOut
		NextToken string `json:",omitempty"`
	}{Rules: []ebRuleOut{}, NextToken: next}
	for _, n := range names[from:to] {
		out.Rules = append(out.Rules, r.ebRuleOut(r.events().rules[n]))
	}
	return out, nil
}

func (r *Region) ebDeleteRule(c *call) (any, *APIError) {
	var in struct {
		Name, EventBusName string
		Force              bool
	}
	if err := ebDecode(c, &in); err != nil {
		return nil, err
	}
	if err := r.ebBus(in.EventBusName); err != nil {
		return nil, err
	}
	if err := ebCheckName("name", in.Name); err != nil {
		return nil, err
	}
	st := r.events()
	rule := st.rules[in.Name]
	if rule == nil {
		// Deleting a rule that does not exist succeeds, so that deletes can be repeated.
		return nil, nil
	}
	if len(rule.targets) > 0 {
		return nil, errf(ebValidation, "Rule can't be deleted since it has targets.")
	}
	delete(st.rules, in.Name)
	return nil, nil
}

func (r *Region) ebSetState(c *call, state string) (any, *APIError) {
	var in struct{ Name, EventBusName string }
	if err := ebDecode(c, &in); err != nil {
		return nil, err
	}
	rule, err := r.ebRule(in.EventBusName, in.Name)
	if err != nil {
		return nil, err
	}
	rule.state = state
	return nil, nil
}

func (r *Region) ebEnableRule(c *call) (any, *APIError)  { return r.ebSetState(c, "ENABLED") }
func (r *Region) ebDisableRule(c *call) (any, *APIError) { return r.ebSetState(c, "DISABLED") }

// ebFailedEntry is an entry that PutTargets or RemoveTargets could not apply.
type ebFailedEntry struct {
	TargetId, ErrorCode, ErrorMessage string
}

func (r *Region) ebPutTargets(c *call) (any, *APIError) {
	var in struct {
		Rule, EventBusName string
		Targets            []struct {
			ebTarget
			InputTransformer json.RawMessage
		}
	}
	if err := ebDecode(c, &in); err != nil {
		return nil, err
	}
	if err := ebCheckName("rule", in.Rule); err != nil {
		return nil, err
	}
	if len(in.Targets) == 0 || len(in.Targets) > ebMaxPutTargets {
		return nil, errf(ebValidation, "1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length less than or equal to %d and greater than or equal to 1", ebMaxPutTargets)
	}
	rule, err := r.ebRule(in.EventBusName, in.Rule)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, t := range in.Targets {
		switch {
		case !ebTargetPattern().MatchString(t.ID):
			return nil, errf(ebValidation, "1 validation error detected: Value '%s' at 'targets.member.id' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+", t.ID)
		case seen[t.ID]:
			return nil, errf(ebValidation, "Target ids must be unique within a request: %s appears twice.", t.ID)
		case !strings.HasPrefix(t.Arn, "arn:") || strings.Count(t.Arn, ":") < 5:
			return nil, errf(ebValidation, "Parameter %s is not valid. Reason: Provided Arn is not in correct format.", t.Arn)
		case t.Input != "" && t.InputPath != "":
			return nil, errf(ebValidation, "Only one of Input, InputPath, or InputTransformer must be provided.")
		case t.Input != "" && !json.Valid([]byte(t.Input)):
			return nil, errf(ebValidation, "Input for target %s is not valid JSON text.", t.ID)
		case len(t.InputTransformer) > 0 && string(t.InputTransformer) != "null":
			return nil, errf(ebValidation, "The simulated region does not simulate InputTransformer (target %s).", t.ID)
		case t.InputPath != "" && t.InputPath != "$" && !strings.HasPrefix(t.InputPath, "$."):
			return nil, errf(ebValidation, "InputPath %s of target %s is not valid: want $ or $.field.field.", t.InputPath, t.ID)
		}
		seen[t.ID] = true
	}
	n := len(rule.targets)
	for _, t := range in.Targets {
		if rule.target(t.ID) == nil {
			n++
		}
	}
	if n > ebMaxTargets {
		return nil, errf(ebLimitExceeded, "The requested resource exceeds the maximum number allowed.")
	}
	for _, t := range in.Targets {
		tt := t.ebTarget
		if cur := rule.target(t.ID); cur != nil {
			*cur = tt
			continue
		}
		rule.targets = append(rule.targets, &tt)
	}
	return struct {
		FailedEntryCount int
		FailedEntries    []ebFailedEntry
	}{0, []ebFailedEntry{}}, nil
}

func (rule *ebRule) target(id string) *ebTarget {
	for _, t := range rule.targets {
		if t.ID == id {
			return t
		}
	}
	return nil
}

func (r *Region) ebListTargetsByRule(c *call) (any, *APIError) {
	var in struct {
		Rule, EventBusName, NextToken string
		Limit                         *int64
	}
	if err := ebDecode(c, &in); err != nil {
		return nil, err
	}
	if err := ebCheckName("rule", in.Rule); err != nil {
		return nil, err
	}
	rule, err := r.ebRule(in.EventBusName, in.Rule)
	if err != nil {
		return nil, err
	}
	if in.Limit != nil && (*in.Limit < 1 || *in.Limit > 100) {
		return nil, errf(ebValidation, "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100", *in.Limit)
	}
	var limit int64
	if in.Limit != nil {
		limit = *in.Limit
	}
	from, to, next, perr := page(len(rule.targets), limit, in.NextToken, 100, 100)
	if perr != nil {
		return nil, perr
	}
	out := struct {
		Targets   []ebTarget
		NextToken string `json:",omitempty"`
	}{Targets: []ebTarget{}, NextToken: next}
	for _, t := range rule.targets[from:to] {
		out.Targets = append(out.Targets, *t)
	}
	return out, nil
}

func (r *Region) ebRemoveTargets(c *call) (any, *APIError) {
	var in struct {
		Rule, EventBusName string
		Ids                []string
		Force              bool
	}
	if err := ebDecode(c, &in); err != nil {
		return nil, err
	}
	if err := ebCheckName("rule", in.Rule); err != nil {
		return nil, err
	}
	if len(in.Ids) == 0 || len(in.Ids) > 100 {
		return nil, errf(ebValidation, "1 validation error detected: Value at 'ids' failed to satisfy constraint: Member must have length less than or equal to 100 and greater than or equal to 1")
	}
	rule, err := r.ebRule(in.EventBusName, in.Rule)
	if err != nil {
		return nil, err
	}
	drop := map[string]bool{}
	for _, id := range in.Ids {
		drop[id] = true
	}
	keep := rule.targets[:0]
	for _, t := range rule.targets {
		if !drop[t.ID] {
			keep = append(keep, t)
		}
	}
	clear(rule.targets[len(keep):])
	rule.targets = keep
	// Ids that name no target are not failures on AWS either.
	return struct {
		FailedEntryCount int
		FailedEntries    []ebFailedEntry
	}{0, []ebFailedEntry{}}, nil
}

// eventsDispatch delivers one region event to the targets of every enabled rule whose pattern
// matches it. It runs as a region subscriber, with the lock held.
func (r *Region) eventsDispatch(e Event) {
	st := r.events()
	if len(st.rules) == 0 {
		return
	}
	body := e.JSON(r.opts.AccountID, r.opts.Region)
	var envelope map[string]any
	if err := json.Unmarshal(body, &envelope); err != nil {
		return
	}
	names := make([]string, 0, len(st.rules))
	for n := range st.rules {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		rule := st.rules[n]
		if rule.state != "ENABLED" || rule.pattern == nil || !rule.pattern.match(envelope) {
			continue
		}
		for _, t := range rule.targets {
			d := EventDelivery{Rule: rule.name, Target: t.Arn, EventID: e.ID, DetailType: e.DetailType, Time: r.now()}
			if err := r.ebDeliver(rule, t, body, envelope); err != nil {
				d.Err = err.Error()
			}
			st.deliveries = append(st.deliveries, d)
		}
	}
	if len(st.deliveries) > eventsKept {
		st.deliveries = append([]EventDelivery(nil), st.deliveries[len(st.deliveries)-eventsKept:]...)
	}
}

// ebDeliver sends an event to one target. Only SQS queues are simulated; the queue's policy must
// allow events.amazonaws.com to send from the rule, as AWS requires.
func (r *Region) ebDeliver(rule *ebRule, t *ebTarget, body []byte, envelope map[string]any) error {
	parts := strings.SplitN(t.Arn, ":", 6)
	if len(parts) != 6 || parts[2] != "sqs" {
		return fmt.Errorf("target %s of rule %s: the simulated region delivers to SQS queues only", t.Arn, rule.name)
	}
	exists, refused := r.sqs.Access(t.Arn, ebSQSPrincipal, r.ruleARN(rule.name))
	if !exists {
		return fmt.Errorf("target %s of rule %s: the queue does not exist", t.Arn, rule.name)
	}
	if refused != "" {
		return fmt.Errorf("target %s of rule %s: the queue's policy does not allow events.amazonaws.com to send from the rule: %s", t.Arn, rule.name, refused)
	}
	msg := string(body)
	switch {
	case t.Input != "":
		msg = t.Input
	case t.InputPath != "" && t.InputPath != "$":
		var v any = envelope
		for _, f := range strings.Split(strings.TrimPrefix(t.InputPath, "$."), ".") {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[f]
		}
		if v == nil {
			return fmt.Errorf("target %s of rule %s: InputPath %s selects nothing in the event", t.Arn, rule.name, t.InputPath)
		}
		b, _ := json.Marshal(v)
		msg = string(b)
	}
	_, err := r.sqs.Deliver(t.Arn, msg)
	return err
}

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
	b := make([]byte, 16)
	r.rng.Read(b)
	e := Event{
		ID:         fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]),
		Source:     "aws.autoscaling",
		DetailType: DetailLaunchUnsuccessful,
		Time:       r.now().UTC().Truncate(time.Second),
		Resources:  resources,
		Detail:     detail,
	}
	x := r.ext()
	x.recent = append(x.recent, e)
	if len(x.recent) > eventsKept {
		x.recent = append([]Event(nil), x.recent[len(x.recent)-eventsKept:]...)
	}
	for _, fn := range x.subs {
		fn(e)
	}
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
	b := make([]byte, 16)
	r.rng.Read(b)
	e := Event{
		ID:         fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]),
		Source:     "aws.autoscaling",
		DetailType: dt,
		Time:       r.now().UTC().Truncate(time.Second),
		Resources:  []string{g.ARN},
		Detail:     detail,
	}
	x := r.ext()
	x.recent = append(x.recent, e)
	if len(x.recent) > eventsKept {
		x.recent = append([]Event(nil), x.recent[len(x.recent)-eventsKept:]...)
	}
	for _, fn := range x.subs {
		fn(e)
	}
}
