package sqs

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
)

// PolicyAllows evaluates a queue's access policy for an AWS service principal sending to it on
// behalf of a resource (EventBridge delivering from a rule: principal events.amazonaws.com, action
// sqs:SendMessage on the queue, with aws:SourceArn the rule's ARN and aws:SourceAccount the
// account). It returns "" when the policy allows it, and
// otherwise why not. The simulated subset of conditions: String/Arn Equals/Like and their Not
// forms on aws:SourceArn and aws:SourceAccount; a statement with any other condition does not
// apply.
func PolicyAllows(policy, principal, queueARN, sourceARN, account string) string {
	if policy == "" {
		return "the queue has no access policy"
	}
	var doc struct {
		Statement json.RawMessage
	}
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return "the policy is not valid JSON"
	}
	var stmts []policyStatement
	if err := json.Unmarshal(doc.Statement, &stmts); err != nil {
		var one policyStatement
		if err := json.Unmarshal(doc.Statement, &one); err != nil {
			return "the policy's Statement is neither a statement nor a list of statements"
		}
		stmts = []policyStatement{one}
	}
	ctx := map[string]string{"aws:sourcearn": sourceARN, "aws:sourceaccount": account}
	allowed := false
	var why []string
	for i, st := range stmts {
		reason := st.applies(principal, queueARN, ctx)
		if reason != "" {
			why = append(why, fmt.Sprintf("statement %s: %s", st.name(i), reason))
			continue
		}
		switch st.Effect {
		case "Deny":
			return fmt.Sprintf("statement %s denies it", st.name(i))
		case "Allow":
			allowed = true
		}
	}
	if allowed {
		return ""
	}
	if len(why) == 0 {
		return "no statement allows it"
	}
	return "no statement allows it (" + strings.Join(why, "; ") + ")"
}

type policyStatement struct {
	Sid       string
	Effect    string
	Principal json.RawMessage
	Action    stringList
	Resource  stringList
	Condition map[string]map[string]stringList
}

func (st policyStatement) name(i int) string {
	if st.Sid != "" {
		return st.Sid
	}
	return fmt.Sprintf("#%d", i+1)
}

// stringList is an IAM policy value that is one string or a list of them.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*l = many
	return nil
}

// applies returns "" when the statement covers principal sending to the queue, and otherwise
// the first reason it does not.
func (st policyStatement) applies(principal, queueARN string, ctx map[string]string) string {
	if !principalIs(st.Principal, principal) {
		return "the principal is not " + principal
	}
	if !anyGlob(st.Action, "sqs:SendMessage", true) {
		return "the actions do not include sqs:SendMessage"
	}
	if !anyGlob(st.Resource, queueARN, false) {
		return "the resources do not include " + queueARN
	}
	for op, keys := range st.Condition {
		for key, values := range keys {
			got, known := ctx[strings.ToLower(key)]
			if !known {
				return fmt.Sprintf("condition key %s is not simulated", key)
			}
			var ok bool
			switch op {
			case "StringEquals", "ArnEquals":
				ok = anyEqual(values, got)
			case "StringLike", "ArnLike":
				ok = anyGlob(values, got, false)
			case "StringNotEquals", "ArnNotEquals":
				ok = !anyEqual(values, got)
			case "StringNotLike", "ArnNotLike":
				ok = !anyGlob(values, got, false)
			default:
				return fmt.Sprintf("condition operator %s is not simulated", op)
			}
			if !ok {
				return fmt.Sprintf("condition %s %s %v does not hold for %s", op, key, []string(values), got)
			}
		}
	}
	return ""
}

func principalIs(raw json.RawMessage, service string) bool {
	var star string
	if json.Unmarshal(raw, &star) == nil {
		return star == "*"
	}
	var p map[string]stringList
	if json.Unmarshal(raw, &p) != nil {
		return false
	}
	for k, vs := range p {
		for _, v := range vs {
			if v == "*" && k == "AWS" {
				return true
			}
			if k == "Service" && v == service {
				return true
			}
		}
	}
	return false
}

func anyEqual(values []string, s string) bool {
	for _, v := range values {
		if v == s {
			return true
		}
	}
	return false
}

// anyGlob matches s against IAM wildcard patterns (* and ?); fold makes it case-insensitive,
// as action names are.
func anyGlob(patterns []string, s string, fold bool) bool {
	if fold {
		s = strings.ToLower(s)
	}
	for _, p := range patterns {
		if fold {
			p = strings.ToLower(p)
		}
		if awsproto.Glob(p, s, true) {
			return true
		}
	}
	return false
}
