package eventbridge

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEventsPatternMatching(t *testing.T) {
	event := `{"version":"0","source":"aws.ec2","detail-type":"EC2 Instance State-change Notification",
		"resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"],
		"detail":{"instance-id":"i-0abc","state":"shutting-down","count":3,"flag":true,"none":null}}`
	var env map[string]any
	if err := json.Unmarshal([]byte(event), &env); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pattern string
		want    bool
	}{
		{`{"source":["aws.ec2"]}`, true},
		{`{"source":["aws.autoscaling"]}`, false},
		{`{"source":["aws.autoscaling","aws.ec2"],"detail-type":["EC2 Instance State-change Notification"]}`, true},
		{`{"detail":{"state":["stopping","stopped"]}}`, false},
		{`{"detail":{"state":["stopping",{"prefix":"shutting"}]}}`, true},
		{`{"detail":{"state":[{"prefix":{"equals-ignore-case":"SHUT"}}]}}`, true},
		{`{"detail":{"state":[{"suffix":"down"}]}}`, true},
		{`{"detail":{"state":[{"equals-ignore-case":"Shutting-Down"}]}}`, true},
		{`{"detail":{"state":[{"anything-but":["running","pending"]}]}}`, true},
		{`{"detail":{"state":[{"anything-but":"shutting-down"}]}}`, false},
		{`{"detail":{"state":[{"anything-but":{"prefix":"shut"}}]}}`, false},
		{`{"detail":{"missing":[{"anything-but":"x"}]}}`, false},
		{`{"detail":{"missing":[{"exists":false}]}}`, true},
		{`{"detail":{"state":[{"exists":false}]}}`, false},
		{`{"detail":{"state":[{"exists":true}]}}`, true},
		{`{"detail":{"count":[3]}}`, true},
		{`{"detail":{"count":["3"]}}`, false},
		{`{"detail":{"count":[{"numeric":[">",2,"<=",3]}]}}`, true},
		{`{"detail":{"count":[{"numeric":["<",3]}]}}`, false},
		{`{"detail":{"flag":[true]}}`, true},
		{`{"detail":{"none":[null]}}`, true},
		{`{"detail":{"instance-id":[{"wildcard":"i-0*c"}]}}`, true},
		{`{"detail":{"instance-id":[{"wildcard":"i-1*"}]}}`, false},
		// An array in the event matches when any element does.
		{`{"resources":[{"suffix":"/i-0abc"}]}`, true},
		// A nested pattern on a field that is absent or not an object.
		{`{"nothing":{"x":["y"]}}`, false},
		{`{"source":{"x":["y"]}}`, false},
	} {
		p, err := parseEventPattern(c.pattern)
		if err != nil {
			t.Errorf("%s: %v", c.pattern, err)
			continue
		}
		if got := p.match(env); got != c.want {
			t.Errorf("%s matched %v, want %v", c.pattern, got, c.want)
		}
	}
}

func TestEventsPatternRejects(t *testing.T) {
	for _, c := range []struct{ pattern, want string }{
		{`[]`, "Filter is not an object"},
		{`{}`, "empty object"},
		{`{"source":"aws.ec2"}`, "must be an object or an array"},
		{`{"source":[]}`, "Empty arrays"},
		{`{"source":[["a"]]}`, "Match value must be"},
		{`{"source":[{"prefix":1}]}`, "prefix match pattern must be a string"},
		{`{"source":[{"exists":"yes"}]}`, "either true or false"},
		{`{"source":[{"numeric":[">"]}]}`, "operator-number pairs"},
		{`{"source":[{"numeric":["!=",1]}]}`, "Unrecognized numeric range operator"},
		{`{"source":[{"cidr":"10.0.0.0/8"}]}`, "does not simulate cidr"},
		{`{"$or":[{"source":["a"]}]}`, "does not simulate $or"},
		{`{"source":[{"a":1,"b":2}]}`, "exactly one key"},
		{`{"source":["a"]} x`, "text after"},
	} {
		_, err := parseEventPattern(c.pattern)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.pattern, err, c.want)
		}
	}
}
