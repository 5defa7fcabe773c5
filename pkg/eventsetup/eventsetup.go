// Package eventsetup owns the AWS resources that bring EC2 and Auto Scaling events to
// `spotmax run`: an SQS queue, the queue's access policy that lets EventBridge send to it, and
// one EventBridge rule per event type that spotmax consumes, each targeting the queue. Ensure
// creates what is missing and corrects what differs, and changes nothing that is already right,
// so it can run any number of times; a dry run reports the same changes without making them.
package eventsetup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	sqssource "github.com/spotmax/spotmax/pkg/source/sqs"
)

// SQSAPI is what the setup needs from SQS; *sqs.Client satisfies it.
type SQSAPI interface {
	GetQueueUrl(ctx context.Context, params *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	CreateQueue(ctx context.Context, params *sqs.CreateQueueInput, optFns ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	GetQueueAttributes(ctx context.Context, params *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	SetQueueAttributes(ctx context.Context, params *sqs.SetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.SetQueueAttributesOutput, error)
}

// EventsAPI is what the setup needs from EventBridge; *eventbridge.Client satisfies it.
type EventsAPI interface {
	DescribeRule(ctx context.Context, params *eventbridge.DescribeRuleInput, optFns ...func(*eventbridge.Options)) (*eventbridge.DescribeRuleOutput, error)
	PutRule(ctx context.Context, params *eventbridge.PutRuleInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutRuleOutput, error)
	ListTargetsByRule(ctx context.Context, params *eventbridge.ListTargetsByRuleInput, optFns ...func(*eventbridge.Options)) (*eventbridge.ListTargetsByRuleOutput, error)
	PutTargets(ctx context.Context, params *eventbridge.PutTargetsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutTargetsOutput, error)
}

// DefaultQueueName is the queue `spotmax setup events` creates unless told otherwise.
const DefaultQueueName = "spotmax-events"

// TargetID is the id of the queue target on each rule; other targets are left alone.
const TargetID = "spotmax-queue"

// PolicySid is the Sid of the statement the setup owns in the queue's policy; other statements
// are kept as they are.
const PolicySid = "spotmax-eventbridge"

// queueAttributes are the attributes the queue must have: notices are worthless once their
// two minutes are over, so messages do not outlive five minutes; SQS-managed encryption at rest.
var queueAttributes = map[string]string{
	string(sqstypes.QueueAttributeNameMessageRetentionPeriod): "300",
	string(sqstypes.QueueAttributeNameSqsManagedSseEnabled):   "true",
}

// Rule is an EventBridge rule that the setup keeps.
type Rule struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Pattern     string `json:"pattern"`
}

// ruleSpecs are the event types spotmax consumes: name suffix, what, pattern.
var ruleSpecs = []struct{ suffix, what, pattern string }{
	{"spot-interruption", "spot interruption warnings",
		pattern(sqssource.SourceEC2, sqssource.DetailSpotInterruption, nil)},
	{"rebalance", "rebalance recommendations",
		pattern(sqssource.SourceEC2, sqssource.DetailRebalance, nil)},
	// Only the states in which an instance goes away: the others would flood the queue with every
	// launch in the account.
	{"state-change", "instances stopping or terminating",
		pattern(sqssource.SourceEC2, sqssource.DetailStateChange, map[string]any{"state": []string{"stopping", "stopped", "shutting-down", "terminated"}})},
	{"launch-unsuccessful", "Auto Scaling launch failures",
		pattern(sqssource.SourceAutoScaling, sqssource.DetailLaunchUnsuccessful, nil)},
}

func pattern(source, detailType string, detail map[string]any) string {
	p := map[string]any{"source": []string{source}, "detail-type": []string{detailType}}
	if detail != nil {
		p["detail"] = detail
	}
	b, _ := json.Marshal(p)
	return string(b)
}

// maxRuleSuffix is the length of the longest rule-name suffix, "-launch-unsuccessful".
const maxRuleSuffix = len("-launch-unsuccessful")

var queueNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// CheckQueueName reports whether a queue name can be used: SQS's characters, not FIFO (EventBridge
// events need no ordering), and short enough that the rule names derived from it stay within
// EventBridge's 64 characters.
func CheckQueueName(name string) error {
	switch {
	case name == "":
		return errors.New("queue name is empty")
	case strings.HasSuffix(name, ".fifo"):
		return fmt.Errorf("queue name %q: a FIFO queue is not needed and not supported", name)
	case !queueNamePattern.MatchString(name):
		return fmt.Errorf("queue name %q: only letters, digits, hyphens and underscores are allowed", name)
	case len(name)+maxRuleSuffix > 64:
		return fmt.Errorf("queue name %q is %d characters long: at most %d, so that the rule names made from it (%s-launch-unsuccessful) fit EventBridge's 64",
			name, len(name), 64-maxRuleSuffix, name)
	}
	return nil
}

// Rules returns the rules for a queue: one per event type, named after the queue.
func Rules(queueName string) []Rule {
	out := make([]Rule, len(ruleSpecs))
	for i, s := range ruleSpecs {
		out[i] = Rule{Name: queueName + "-" + s.suffix, Description: "spotmax: " + s.what + " to SQS queue " + queueName, Pattern: s.pattern}
	}
	return out
}

// Change actions.
const (
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionNone   = "unchanged"
)

// Resource kinds of a Change.
const (
	ResourceQueue  = "queue"
	ResourcePolicy = "queue-policy"
	ResourceRule   = "rule"
	ResourceTarget = "rule-target"
)

// Change is one resource and what Ensure did, or in a dry run would do, to it.
type Change struct {
	Resource string `json:"resource"`
	Name     string `json:"name"`
	Action   string `json:"action"`
	// Detail says what is created or what differs.
	Detail string `json:"detail,omitempty"`
}

// Result is what Ensure found and did.
type Result struct {
	DryRun bool `json:"dry_run"`
	// QueueURL is what `spotmax run --queue-url` takes; empty in a dry run before the queue exists.
	QueueURL string   `json:"queue_url"`
	QueueARN string   `json:"queue_arn"`
	RuleARNs []string `json:"rule_arns"`
	Changes  []Change `json:"changes"`
}

// Changed returns the changes that are not ActionNone.
func (r *Result) Changed() []Change {
	var out []Change
	for _, c := range r.Changes {
		if c.Action != ActionNone {
			out = append(out, c)
		}
	}
	return out
}

// Options configure Ensure.
type Options struct {
	// QueueName defaults to DefaultQueueName.
	QueueName string
	// DryRun reads what exists and reports the changes without making them.
	DryRun bool
}

// Setup creates and checks the queue and the rules.
type Setup struct {
	SQS    SQSAPI
	Events EventsAPI
}

// Ensure makes the queue, its policy, the rules and their targets what spotmax needs, in an
// order that never leaves a rule delivering to a queue that refuses it: queue, rules, policy,
// targets.
func (s *Setup) Ensure(ctx context.Context, opts Options) (*Result, error) {
	name := opts.QueueName
	if name == "" {
		name = DefaultQueueName
	}
	if err := CheckQueueName(name); err != nil {
		return nil, err
	}
	res := &Result{DryRun: opts.DryRun, RuleARNs: []string{}, Changes: []Change{}}
	attrs, err := s.ensureQueue(ctx, name, opts.DryRun, res)
	if err != nil {
		return nil, err
	}
	rules := Rules(name)
	created := map[string]bool{}
	for _, rule := range rules {
		arn, isNew, err := s.ensureRule(ctx, rule, res)
		if err != nil {
			return nil, err
		}
		created[rule.Name] = isNew
		res.RuleARNs = append(res.RuleARNs, arn)
	}
	if err := s.ensurePolicy(ctx, name, attrs, res); err != nil {
		return nil, err
	}
	for _, rule := range rules {
		if err := s.ensureTarget(ctx, rule, created[rule.Name], res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// ensureQueue finds or creates the queue and returns its current attributes (nil in a dry run
// without a queue). Attribute corrections are left for ensurePolicy, which writes them together
// with the policy in one call.
func (s *Setup) ensureQueue(ctx context.Context, name string, dry bool, res *Result) (map[string]string, error) {
	got, err := s.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	switch {
	case err == nil:
		res.QueueURL = aws.ToString(got.QueueUrl)
	case awsapi.IsNotFound(err):
		res.Changes = append(res.Changes, Change{Resource: ResourceQueue, Name: name, Action: ActionCreate, Detail: formatAttrs(queueAttributes)})
		if dry {
			return nil, nil
		}
		out, err := s.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: queueAttributes})
		if err != nil {
			return nil, fmt.Errorf("creating SQS queue %s: %w", name, err)
		}
		res.QueueURL = aws.ToString(out.QueueUrl)
	default:
		return nil, fmt.Errorf("looking up SQS queue %s: %w", name, err)
	}
	out, err := s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(res.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		return nil, fmt.Errorf("reading the attributes of SQS queue %s: %w", name, err)
	}
	res.QueueARN = out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if res.QueueARN == "" {
		return nil, fmt.Errorf("SQS queue %s: GetQueueAttributes returned no QueueArn", name)
	}
	if len(res.Changes) == 0 {
		c := Change{Resource: ResourceQueue, Name: name, Action: ActionNone}
		if d := attrDiff(out.Attributes); len(d) > 0 {
			c.Action, c.Detail = ActionUpdate, strings.Join(d, ", ")
		}
		res.Changes = append(res.Changes, c)
	}
	return out.Attributes, nil
}

// wantAttrs returns the attributes that differ from what the queue must have. A queue encrypted
// with a KMS key keeps it rather than SQS-managed encryption.
func wantAttrs(current map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range queueAttributes {
		if k == string(sqstypes.QueueAttributeNameSqsManagedSseEnabled) && current[string(sqstypes.QueueAttributeNameKmsMasterKeyId)] != "" {
			continue
		}
		if current[k] != v {
			out[k] = v
		}
	}
	return out
}

func attrDiff(current map[string]string) []string {
	want := wantAttrs(current)
	var d []string
	for k, v := range want {
		cur := current[k]
		if cur == "" {
			cur = "unset"
		}
		d = append(d, fmt.Sprintf("%s %s → %s", k, cur, v))
	}
	sort.Strings(d)
	return d
}

func formatAttrs(attrs map[string]string) string {
	var kv []string
	for k, v := range attrs {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, " ")
}

// ensureRule creates or corrects one rule and returns its ARN and whether it is new.
func (s *Setup) ensureRule(ctx context.Context, rule Rule, res *Result) (string, bool, error) {
	put := func() (string, error) {
		out, err := s.Events.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(rule.Name), EventPattern: aws.String(rule.Pattern),
			Description: aws.String(rule.Description), State: ebtypes.RuleStateEnabled})
		if err != nil {
			return "", fmt.Errorf("writing EventBridge rule %s: %w", rule.Name, err)
		}
		return aws.ToString(out.RuleArn), nil
	}
	cur, err := s.Events.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String(rule.Name)})
	if awsapi.IsNotFound(err) {
		res.Changes = append(res.Changes, Change{Resource: ResourceRule, Name: rule.Name, Action: ActionCreate, Detail: rule.Pattern})
		if res.DryRun {
			return ruleARN(res.QueueARN, rule.Name), true, nil
		}
		arn, err := put()
		return arn, true, err
	}
	if err != nil {
		return "", false, fmt.Errorf("reading EventBridge rule %s: %w", rule.Name, err)
	}
	var diff []string
	if !sameJSON(aws.ToString(cur.EventPattern), rule.Pattern) {
		diff = append(diff, fmt.Sprintf("pattern %s → %s", orNone(aws.ToString(cur.EventPattern)), rule.Pattern))
	}
	if cur.State != ebtypes.RuleStateEnabled {
		diff = append(diff, fmt.Sprintf("state %s → ENABLED", cur.State))
	}
	if aws.ToString(cur.Description) != rule.Description {
		diff = append(diff, "description")
	}
	if aws.ToString(cur.ScheduleExpression) != "" {
		return "", false, fmt.Errorf("EventBridge rule %s exists with a schedule (%s), not an event pattern: it is not spotmax's; remove it or choose another --queue-name",
			rule.Name, aws.ToString(cur.ScheduleExpression))
	}
	arn := aws.ToString(cur.Arn)
	if len(diff) == 0 {
		res.Changes = append(res.Changes, Change{Resource: ResourceRule, Name: rule.Name, Action: ActionNone})
		return arn, false, nil
	}
	res.Changes = append(res.Changes, Change{Resource: ResourceRule, Name: rule.Name, Action: ActionUpdate, Detail: strings.Join(diff, "; ")})
	if res.DryRun {
		return arn, false, nil
	}
	arn, err = put()
	return arn, false, err
}

// ruleARN derives a rule's ARN from the queue's (same partition, region and account), for dry
// runs before the rule exists.
func ruleARN(queueARN, name string) string {
	p := strings.Split(queueARN, ":")
	if len(p) != 6 {
		return "arn:aws:events:REGION:ACCOUNT:rule/" + name
	}
	return fmt.Sprintf("arn:%s:events:%s:%s:rule/%s", p[1], p[3], p[4], name)
}

// policyStatement is the statement the setup owns: EventBridge may send from the rules only.
func policyStatement(queueARN string, ruleARNs []string) map[string]any {
	return map[string]any{
		"Sid":       PolicySid,
		"Effect":    "Allow",
		"Principal": map[string]any{"Service": "events.amazonaws.com"},
		"Action":    "sqs:SendMessage",
		"Resource":  queueARN,
		"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": ruleARNs}},
	}
}

// mergePolicy puts the setup's statement into an existing policy document, replacing an older
// version of it and keeping every other statement.
func mergePolicy(current, queueARN string, ruleARNs []string) (string, error) {
	doc := map[string]any{"Version": "2012-10-17"}
	var stmts []any
	if current != "" {
		if err := json.Unmarshal([]byte(current), &doc); err != nil {
			return "", fmt.Errorf("the queue's current policy is not JSON: %w", err)
		}
		switch st := doc["Statement"].(type) {
		case []any:
			stmts = st
		case map[string]any:
			stmts = []any{st}
		case nil:
		default:
			return "", errors.New("the queue's current policy has a Statement that is neither a statement nor a list")
		}
	}
	mine := policyStatement(queueARN, ruleARNs)
	replaced := false
	for i, st := range stmts {
		if m, ok := st.(map[string]any); ok && m["Sid"] == PolicySid {
			stmts[i] = mine
			replaced = true
		}
	}
	if !replaced {
		stmts = append(stmts, mine)
	}
	doc["Statement"] = stmts
	b, err := json.Marshal(doc)
	return string(b), err
}

// ensurePolicy writes the queue's policy, and any attribute corrections, in one call.
func (s *Setup) ensurePolicy(ctx context.Context, queue string, attrs map[string]string, res *Result) error {
	current := attrs[string(sqstypes.QueueAttributeNamePolicy)]
	arn := res.QueueARN
	if arn == "" {
		arn = "arn:aws:sqs:REGION:ACCOUNT:" + queue
	}
	desired, err := mergePolicy(current, arn, res.RuleARNs)
	if err != nil {
		return fmt.Errorf("SQS queue %s: %w", queue, err)
	}
	c := Change{Resource: ResourcePolicy, Name: queue, Action: ActionNone}
	switch {
	case current == "" || !strings.Contains(current, PolicySid):
		c.Action = ActionCreate
		c.Detail = fmt.Sprintf("statement %s: events.amazonaws.com may send from %d rules", PolicySid, len(res.RuleARNs))
	case !sameJSON(current, desired):
		c.Action = ActionUpdate
		c.Detail = fmt.Sprintf("statement %s differs from events.amazonaws.com sending from the %d rules", PolicySid, len(res.RuleARNs))
	}
	res.Changes = append(res.Changes, c)
	set := map[string]string{}
	if attrs != nil {
		set = wantAttrs(attrs)
	}
	if c.Action != ActionNone {
		set[string(sqstypes.QueueAttributeNamePolicy)] = desired
	}
	if res.DryRun || len(set) == 0 || res.QueueURL == "" {
		return nil
	}
	if _, err := s.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(res.QueueURL), Attributes: set}); err != nil {
		return fmt.Errorf("setting the policy and attributes of SQS queue %s: %w", queue, err)
	}
	return nil
}

// ensureTarget makes the queue a target of the rule.
func (s *Setup) ensureTarget(ctx context.Context, rule Rule, isNew bool, res *Result) error {
	queue := res.QueueARN
	if queue == "" {
		queue = "the queue created above"
	}
	c := Change{Resource: ResourceTarget, Name: rule.Name + "/" + TargetID, Action: ActionCreate, Detail: "→ " + queue}
	if !isNew {
		var token *string
	pages:
		for {
			out, err := s.Events.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: aws.String(rule.Name), NextToken: token})
			if err != nil {
				return fmt.Errorf("listing the targets of EventBridge rule %s: %w", rule.Name, err)
			}
			for _, t := range out.Targets {
				if aws.ToString(t.Id) != TargetID {
					continue
				}
				c.Action = ActionNone
				c.Detail = ""
				if aws.ToString(t.Arn) != res.QueueARN || t.Input != nil || t.InputPath != nil || t.InputTransformer != nil {
					c.Action = ActionUpdate
					c.Detail = fmt.Sprintf("%s → %s", aws.ToString(t.Arn), queue)
				}
				break pages
			}
			if out.NextToken == nil {
				break
			}
			token = out.NextToken
		}
	}
	res.Changes = append(res.Changes, c)
	if res.DryRun || c.Action == ActionNone {
		return nil
	}
	out, err := s.Events.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(rule.Name),
		Targets: []ebtypes.Target{{Id: aws.String(TargetID), Arn: aws.String(res.QueueARN)}}})
	if err != nil {
		return fmt.Errorf("adding SQS queue %s as target of EventBridge rule %s: %w", res.QueueARN, rule.Name, err)
	}
	if out.FailedEntryCount > 0 {
		msg := "unknown reason"
		if len(out.FailedEntries) > 0 {
			msg = aws.ToString(out.FailedEntries[0].ErrorCode) + ": " + aws.ToString(out.FailedEntries[0].ErrorMessage)
		}
		return fmt.Errorf("adding SQS queue %s as target of EventBridge rule %s: %s", res.QueueARN, rule.Name, msg)
	}
	return nil
}

// sameJSON reports whether two JSON texts mean the same (key order and spacing aside).
func sameJSON(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func orNone(s string) string {
	if s == "" {
		return "(none yet)"
	}
	return s
}
