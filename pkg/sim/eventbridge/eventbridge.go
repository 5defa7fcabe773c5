package eventbridge

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
)

// Region is what EventBridge needs of the simulated region: its lock (which guards the rules as
// well; the region dispatches its events with it held), the due state changes every call runs
// first, simulated time and the names in ARNs.
type Region interface {
	sync.Locker
	RunDue()
	Now() time.Time
	Name() string
	AccountID() string
}

// Queues is what EventBridge needs of SQS to deliver to a queue target (pkg/sim/sqs.Service),
// with the region's lock held.
type Queues interface {
	// Access reports whether the queue arn names exists, and why its policy refuses principal
	// sending on behalf of sourceARN ("" when it allows).
	Access(arn, principal, sourceARN string) (exists bool, refused string)
	// Deliver sends body to the queue.
	Deliver(queue, body string) (string, error)
}

// Service is the EventBridge of one simulated region: the rules of the default event bus and
// the latest delivery attempts.
type Service struct {
	region     Region
	queues     Queues
	rules      map[string]*ebRule // rules of the default bus, by name
	deliveries []Delivery         // the most recent attempts, oldest first
}

// New returns the EventBridge of region, delivering to queues, without rules.
func New(region Region, queues Queues) *Service {
	return &Service{region: region, queues: queues, rules: map[string]*ebRule{}}
}

// Spec is how the region's mux reaches the service: signing name events, AWS JSON 1.1.
func (svc *Service) Spec() *awsproto.Service {
	return &awsproto.Service{
		Name:          "events",
		JSONTargets:   []string{"AWSEvents"},
		JSONNamespace: "com.amazonaws.eventbridge#",
		// EventBridge speaks AWS JSON 1.1: __type names the error structure. The codes shared
		// with other services map to EventBridge's own structures.
		ErrorShapes: map[string]string{
			awsproto.CodeThrottling:       "ThrottlingException",
			awsproto.CodeMissingParameter: "ValidationException",
			awsproto.CodeInvalidParameter: "ValidationException",
			awsproto.CodeValidationError:  "ValidationException",
			"InvalidNextToken":            "ValidationException",
			"SerializationException":      "ValidationException",
			"InternalError":               "InternalException",
			awsproto.CodeInvalidAction:    "UnknownOperationException",
		},
		Handle: svc.serve,
	}
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
	deliveriesKept    = 1000 // delivery attempts kept for tests and the control API
	ebDefaultBus      = "default"
	ebMaxTargets      = 5 // per rule
	ebMaxPutTargets   = 10
	ebMaxRules        = 300 // per event bus
	ebMaxPatternBytes = 4096
	ebSQSPrincipal    = "events.amazonaws.com"
)

var (
	ebNamePattern   = awsproto.LazyRegexp(`^[\.\-_A-Za-z0-9]{1,64}$`)
	ebTargetPattern = awsproto.LazyRegexp(`^[\.\-_A-Za-z0-9]{1,64}$`)
)

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

// Delivery is one attempt of the simulated EventBridge to deliver an event to a rule's
// target.
type Delivery struct {
	Rule       string
	Target     string // the target's ARN
	EventID    string
	DetailType string
	Time       time.Time
	// Err says why the delivery failed ("" when the message was sent): the queue does not
	// exist, its policy does not allow the rule to send, the target is not an SQS queue.
	Err string
}

// Deliveries returns the latest delivery attempts of the rules (up to 1000), oldest first,
// including failed ones with the reason.
func (svc *Service) Deliveries() []Delivery {
	svc.region.Lock()
	defer svc.region.Unlock()
	return append([]Delivery(nil), svc.deliveries...)
}

// RuleARN returns the ARN of the EventBridge rule name on the default event bus, whether or not
// it exists yet (for queue policies written before the rule).
func (svc *Service) RuleARN(name string) string { return svc.ruleARN(name) }

func (svc *Service) ruleARN(name string) string {
	return fmt.Sprintf("arn:aws:events:%s:%s:rule/%s", svc.region.Name(), svc.region.AccountID(), name)
}

var ebActions = awsproto.JSONActions[*Service]{
	"PutRule":           (*Service).ebPutRule,
	"DescribeRule":      (*Service).ebDescribeRule,
	"PutTargets":        (*Service).ebPutTargets,
	"ListTargetsByRule": (*Service).ebListTargetsByRule,
}

func (svc *Service) serve(c *awsproto.Call) {
	ebActions.Serve(svc, c, "EventBridge", "AWSEvents", svc.do)
}

// do runs fn with the region locked after its due state changes.
func (svc *Service) do(fn func()) {
	svc.region.Lock()
	defer svc.region.Unlock()
	svc.region.RunDue()
	fn()
}

func ebDecode(c *awsproto.Call, v any) *awsproto.APIError { return c.DecodeJSON(v, ebValidation) }

// ebBus checks an EventBusName (a name or an ARN): only the default bus exists.
func (svc *Service) ebBus(name string) *awsproto.APIError {
	if name == "" || name == ebDefaultBus || name == fmt.Sprintf("arn:aws:events:%s:%s:event-bus/default", svc.region.Name(), svc.region.AccountID()) {
		return nil
	}
	return awsproto.Errorf(ebResourceNotFound, "Event bus %s does not exist.", name)
}

func ebRuleMissing(name string) *awsproto.APIError {
	return awsproto.Errorf(ebResourceNotFound, "Rule %s does not exist on EventBus default.", name)
}

func ebCheckName(field, name string) *awsproto.APIError {
	if name == "" {
		return awsproto.NullMember(ebValidation, field)
	}
	if !ebNamePattern().MatchString(name) {
		return awsproto.Errorf(ebValidation, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+ and have length between 1 and 64", name, field)
	}
	return nil
}

func (svc *Service) ebRule(bus, name string) (*ebRule, *awsproto.APIError) {
	if err := svc.ebBus(bus); err != nil {
		return nil, err
	}
	if err := ebCheckName("name", name); err != nil {
		return nil, err
	}
	rule := svc.rules[name]
	if rule == nil {
		return nil, ebRuleMissing(name)
	}
	return rule, nil
}

func (svc *Service) ebPutRule(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct {
		Name, Description, EventBusName, EventPattern, ScheduleExpression, State, RoleArn string
		Tags                                                                              []struct{ Key, Value string }
	}
	if err := ebDecode(c, &in); err != nil {
		return nil, err
	}
	if err := svc.ebBus(in.EventBusName); err != nil {
		return nil, err
	}
	if err := ebCheckName("name", in.Name); err != nil {
		return nil, err
	}
	if in.EventPattern == "" && in.ScheduleExpression == "" {
		return nil, awsproto.Errorf(ebValidation, "Parameter(s) EventPattern or ScheduleExpression must be specified.")
	}
	if len(in.Description) > 512 {
		return nil, awsproto.Errorf(ebValidation, "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 512")
	}
	switch in.State {
	case "":
		in.State = "ENABLED"
	case "ENABLED", "DISABLED":
	default:
		return nil, awsproto.Errorf(ebValidation, "1 validation error detected: Value '%s' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS]", in.State)
	}
	var pat *eventPattern
	if in.EventPattern != "" {
		if len(in.EventPattern) > ebMaxPatternBytes {
			return nil, awsproto.Errorf(ebInvalidPattern, "Event pattern is not valid. Reason: the pattern is longer than %d bytes", ebMaxPatternBytes)
		}
		p, err := parseEventPattern(in.EventPattern)
		if err != nil {
			return nil, awsproto.Errorf(ebInvalidPattern, "Event pattern is not valid. Reason: %v", err)
		}
		pat = p
	}
	if in.ScheduleExpression != "" && !strings.HasPrefix(in.ScheduleExpression, "rate(") && !strings.HasPrefix(in.ScheduleExpression, "cron(") {
		return nil, awsproto.Errorf(ebValidation, "Parameter ScheduleExpression is not valid.")
	}
	st := svc
	rule := st.rules[in.Name]
	if rule == nil {
		if len(st.rules) >= ebMaxRules {
			return nil, awsproto.Errorf(ebLimitExceeded, "The requested resource exceeds the maximum number allowed.")
		}
		rule = &ebRule{name: in.Name}
		st.rules[in.Name] = rule
	}
	// PutRule replaces the rule's definition; its targets stay.
	rule.description, rule.state = in.Description, in.State
	rule.patternText, rule.pattern = in.EventPattern, pat
	rule.schedule, rule.roleARN = in.ScheduleExpression, in.RoleArn
	return map[string]string{"RuleArn": svc.ruleARN(rule.name)}, nil
}

// ebRuleOut is a rule as DescribeRule returns it.
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

func (svc *Service) ebRuleOut(rule *ebRule) ebRuleOut {
	return ebRuleOut{Name: rule.name, Arn: svc.ruleARN(rule.name), EventPattern: rule.patternText, ScheduleExpression: rule.schedule,
		State: rule.state, Description: rule.description, RoleArn: rule.roleARN, EventBusName: ebDefaultBus}
}

func (svc *Service) ebDescribeRule(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct{ Name, EventBusName string }
	if err := ebDecode(c, &in); err != nil {
		return nil, err
	}
	rule, err := svc.ebRule(in.EventBusName, in.Name)
	if err != nil {
		return nil, err
	}
	out := svc.ebRuleOut(rule)
	out.CreatedBy = svc.region.AccountID()
	return out, nil
}

// ebFailedEntry is an entry that PutTargets could not apply.
type ebFailedEntry struct {
	TargetId, ErrorCode, ErrorMessage string
}

func (svc *Service) ebPutTargets(c *awsproto.Call) (any, *awsproto.APIError) {
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
		return nil, awsproto.Errorf(ebValidation, "1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length less than or equal to %d and greater than or equal to 1", ebMaxPutTargets)
	}
	rule, err := svc.ebRule(in.EventBusName, in.Rule)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, t := range in.Targets {
		switch {
		case !ebTargetPattern().MatchString(t.ID):
			return nil, awsproto.Errorf(ebValidation, "1 validation error detected: Value '%s' at 'targets.member.id' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+", t.ID)
		case seen[t.ID]:
			return nil, awsproto.Errorf(ebValidation, "Target ids must be unique within a request: %s appears twice.", t.ID)
		case !strings.HasPrefix(t.Arn, "arn:") || strings.Count(t.Arn, ":") < 5:
			return nil, awsproto.Errorf(ebValidation, "Parameter %s is not valid. Reason: Provided Arn is not in correct format.", t.Arn)
		case t.Input != "" && t.InputPath != "":
			return nil, awsproto.Errorf(ebValidation, "Only one of Input, InputPath, or InputTransformer must be provided.")
		case t.Input != "" && !json.Valid([]byte(t.Input)):
			return nil, awsproto.Errorf(ebValidation, "Input for target %s is not valid JSON text.", t.ID)
		case len(t.InputTransformer) > 0 && string(t.InputTransformer) != "null":
			return nil, awsproto.Errorf(ebValidation, "The simulated region does not simulate InputTransformer (target %s).", t.ID)
		case t.InputPath != "" && t.InputPath != "$" && !strings.HasPrefix(t.InputPath, "$."):
			return nil, awsproto.Errorf(ebValidation, "InputPath %s of target %s is not valid: want $ or $.field.field.", t.InputPath, t.ID)
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
		return nil, awsproto.Errorf(ebLimitExceeded, "The requested resource exceeds the maximum number allowed.")
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

func (svc *Service) ebListTargetsByRule(c *awsproto.Call) (any, *awsproto.APIError) {
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
	rule, err := svc.ebRule(in.EventBusName, in.Rule)
	if err != nil {
		return nil, err
	}
	if in.Limit != nil && (*in.Limit < 1 || *in.Limit > 100) {
		return nil, awsproto.Errorf(ebValidation, "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100", *in.Limit)
	}
	var limit int64
	if in.Limit != nil {
		limit = *in.Limit
	}
	from, to, next, perr := awsproto.Page(len(rule.targets), limit, in.NextToken, 100, 100)
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

// Dispatch delivers one region event, body in EventBridge's envelope, to the targets of every
// enabled rule whose pattern matches it. The region calls it for each of its events, with the
// lock held, in event order.
func (svc *Service) Dispatch(id, detailType string, body []byte) {
	st := svc
	if len(st.rules) == 0 {
		return
	}
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
			d := Delivery{Rule: rule.name, Target: t.Arn, EventID: id, DetailType: detailType, Time: svc.region.Now()}
			if err := svc.ebDeliver(rule, t, body, envelope); err != nil {
				d.Err = err.Error()
			}
			st.deliveries = append(st.deliveries, d)
		}
	}
	if len(st.deliveries) > deliveriesKept {
		st.deliveries = append([]Delivery(nil), st.deliveries[len(st.deliveries)-deliveriesKept:]...)
	}
}

// ebDeliver sends an event to one target. Only SQS queues are simulated; the queue's policy must
// allow events.amazonaws.com to send from the rule, as AWS requires.
func (svc *Service) ebDeliver(rule *ebRule, t *ebTarget, body []byte, envelope map[string]any) error {
	parts := strings.SplitN(t.Arn, ":", 6)
	if len(parts) != 6 || parts[2] != "sqs" {
		return fmt.Errorf("target %s of rule %s: the simulated region delivers to SQS queues only", t.Arn, rule.name)
	}
	exists, refused := svc.queues.Access(t.Arn, ebSQSPrincipal, svc.ruleARN(rule.name))
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
	_, err := svc.queues.Deliver(t.Arn, msg)
	return err
}
