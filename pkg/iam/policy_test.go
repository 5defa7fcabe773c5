package iam

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spotmax/spotmax/pkg/internal/golden"
)

var update = flag.Bool("update", false, "rewrite golden files and the generated section of docs/iam.md")

func mustFor(t *testing.T, r Role, o Options) *Policy {
	t.Helper()
	p, err := For(r, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyJSONGolden(t *testing.T) {
	for _, c := range []struct {
		file string
		role Role
		opts Options
	}{
		{"controller.json", Controller, Options{}},
		{"controller-web.json", Controller, Options{Group: "web", Partition: "aws-cn",
			QueueARN: "arn:aws-cn:sqs:cn-north-1:123456789012:spotmax-events", InstanceRoleARN: "arn:aws-cn:iam::123456789012:role/web-node"}},
		{"agent.json", Agent, Options{}},
		{"agent-web.json", Agent, Options{Group: "web"}},
	} {
		b, err := mustFor(t, c.role, c.opts).JSON()
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: not JSON: %v", c.file, err)
		}
		golden.Check(t, filepath.Join("testdata", c.file), b, *update, "go test ./pkg/iam -update")
	}
}

// Every statement that allows a mutating action is conditioned, except those whose resources
// carry no spotmax tag to condition on; each of those is listed here with its reason.
var unconditionedMutations = map[string]string{
	"LaunchReplacementResources": "images, subnets, security groups, ... carry no spotmax tag; the instance is conditioned",
	"MoveDataVolumes":            "launch-template volumes carry no group tag; the instance side is conditioned",
	"ConsumeInterruptionEvents":  "SQS actions are confined by the queue ARN",
	"WriteDashboards":            "confined by the dashboard name prefix in the resource ARN",
	"WriteActionRecords":         "confined by the action log group's name in the resource ARN",
	"ReadActionRecords":          "confined by the action log group's name in the resource ARN (FilterLogEvents only reads)",
}

func TestMutationsAreConditioned(t *testing.T) {
	for _, r := range Roles() {
		for _, s := range mustFor(t, r, Options{}).Statement {
			mutating := false
			for _, a := range s.Action {
				_, name, _ := strings.Cut(a, ":")
				if !strings.HasPrefix(name, "Describe") && !strings.HasPrefix(name, "Get") && !strings.HasPrefix(name, "List") {
					mutating = true
				}
			}
			if !mutating {
				continue
			}
			if len(s.Condition) == 0 && unconditionedMutations[s.Sid] == "" {
				t.Errorf("%s: statement %s allows %v without a condition", r, s.Sid, s.Action)
			}
			if s.Why == "" {
				t.Errorf("%s: statement %s has no reason", r, s.Sid)
			}
		}
	}
}

func TestGroupNarrowsEveryTagCondition(t *testing.T) {
	for _, r := range Roles() {
		anyGroup := mustFor(t, r, Options{})
		web := mustFor(t, r, Options{Group: "web"})
		for i, s := range web.Statement {
			for op, kv := range s.Condition {
				for k, v := range kv {
					if !strings.HasSuffix(k, "/spotmax:group") && !strings.HasSuffix(k, "/aws:autoscaling:groupName") {
						continue
					}
					if op != "StringEquals" || v != "web" {
						t.Errorf("%s %s: with --group web, %s %s %v; want StringEquals web", r, s.Sid, k, op, v)
					}
					if got := anyGroup.Statement[i].Condition["StringLike"][k]; got != "*" {
						t.Errorf("%s %s: without a group, %s StringLike %v; want *", r, s.Sid, k, got)
					}
				}
			}
			for _, res := range s.Resource {
				if strings.Contains(res, "autoScalingGroupName/") && !strings.HasSuffix(res, "autoScalingGroupName/web") {
					t.Errorf("%s %s: with --group web the resource is %s", r, s.Sid, res)
				}
			}
		}
	}
}

func TestTagWritesAreConfinedToSpotmaxKeys(t *testing.T) {
	for _, r := range Roles() {
		for _, s := range mustFor(t, r, Options{}).Statement {
			for _, a := range s.Action {
				if a != "ec2:CreateTags" && a != "ec2:DeleteTags" && a != "autoscaling:CreateOrUpdateTags" && a != "autoscaling:DeleteTags" {
					continue
				}
				if s.Condition["StringEquals"]["ec2:CreateAction"] == "RunInstances" {
					continue // tags given at launch: the launch template's own
				}
				var keys []string
				if k, ok := s.Condition["ForAllValues:StringLike"]["aws:TagKeys"].(string); ok {
					keys = append(keys, k)
				}
				if k, ok := s.Condition["ForAllValues:StringEquals"]["aws:TagKeys"].([]string); ok {
					keys = append(keys, k...)
				}
				confined := len(keys) > 0
				for _, k := range keys {
					confined = confined && strings.HasPrefix(k, "spotmax:")
				}
				if !confined || s.Condition["Null"]["aws:TagKeys"] != "false" {
					t.Errorf("%s %s: %s is not confined to spotmax:* keys with keys required: %v", r, s.Sid, a, s.Condition)
				}
			}
		}
	}
}

func TestAgentTagsOnlyItself(t *testing.T) {
	for _, s := range mustFor(t, Agent, Options{}).Statement {
		if s.Sid == "ReportOnOwnInstance" {
			if s.Condition["StringEquals"]["aws:ARN"] != "${ec2:SourceInstanceARN}" {
				t.Errorf("the agent's CreateTags is not limited to its own instance: %v", s.Condition)
			}
			keys, _ := s.Condition["ForAllValues:StringEquals"]["aws:TagKeys"].([]string)
			if !slices.Equal(keys, AgentTagKeys()) || s.Condition["ForAllValues:StringLike"] != nil {
				t.Errorf("the agent may write more than its own keys %v: %v", AgentTagKeys(), s.Condition)
			}
			return
		}
	}
	t.Fatal("no ReportOnOwnInstance statement")
}

func TestBadOptions(t *testing.T) {
	for _, c := range []struct {
		role Role
		opts Options
		want string
	}{
		{"admin", Options{}, `unknown IAM role "admin"`},
		{Controller, Options{Partition: "aws-eu"}, `unknown AWS partition "aws-eu"`},
		{Controller, Options{Group: "web*"}, `group "web*": a group name cannot contain`},
	} {
		_, err := For(c.role, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("For(%q, %+v) = %v, want an error containing %q", c.role, c.opts, err, c.want)
		}
	}
	if _, err := ParseRole("agent"); err != nil {
		t.Error(err)
	}
}

const (
	docBegin = "<!-- BEGIN GENERATED: go test ./pkg/iam -update -->\n"
	docEnd   = "<!-- END GENERATED -->\n"
)

func TestDocsAreCurrent(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "iam.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, docBegin), strings.Index(doc, docEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated section markers", path)
	}
	got := doc[i+len(docBegin) : j]
	want := "\n" + Markdown()
	if got == want {
		return
	}
	if *update {
		doc = doc[:i+len(docBegin)] + want + doc[j:]
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the generated section of %s is stale: run go test ./pkg/iam -update", path)
}
