package sqs

import (
	"strings"
	"testing"
)

func TestQueuePolicyForEventBridge(t *testing.T) {
	const queue = "arn:aws:sqs:us-east-1:123456789012:q"
	const rule = "arn:aws:events:us-east-1:123456789012:rule/spot"
	for _, c := range []struct {
		name, policy, want string
	}{
		{"exact", `{"Statement":[{"Effect":"Allow","Principal":{"Service":["events.amazonaws.com"]},"Action":"sqs:SendMessage","Resource":"` + queue + `","Condition":{"ArnEquals":{"aws:SourceArn":"` + rule + `"}}}]}`, ""},
		{"single statement, wildcards", `{"Statement":{"Effect":"Allow","Principal":"*","Action":"SQS:*","Resource":"arn:aws:sqs:*:123456789012:*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:events:*:*:rule/sp*"},"StringEquals":{"aws:SourceAccount":"123456789012"}}}}`, ""},
		{"deny wins", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"},{"Sid":"no","Effect":"Deny","Principal":"*","Action":"sqs:SendMessage","Resource":"*"}]}`, "statement no denies it"},
		{"other action", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sqs:ReceiveMessage","Resource":"*"}]}`, "do not include sqs:SendMessage"},
		{"other queue", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sqs:SendMessage","Resource":"arn:aws:sqs:us-east-1:123456789012:other"}]}`, "resources do not include"},
		{"unsimulated condition", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sqs:SendMessage","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`, "not simulated"},
		{"not JSON", `{`, "not valid JSON"},
		{"none", ``, "no access policy"},
	} {
		got := PolicyAllows(c.policy, "events.amazonaws.com", queue, rule, "123456789012")
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
