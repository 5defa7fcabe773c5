package iam_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/iam"
	"github.com/spotmax/spotmax/pkg/sim"
)

// requestContext is what IAM evaluates a policy's conditions against: condition keys and their
// values (several for a multivalued key such as aws:TagKeys); a key that is absent is not there.
type requestContext map[string][]string

// iamGlob matches an IAM pattern with * and ? wildcards (resources, StringLike).
func iamGlob(pattern, s string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(s)
}

var policyVariable = regexp.MustCompile(`\$\{([^}]+)\}`)

// allows evaluates a policy of Allow statements for one request: some statement names the
// action and a matching resource, and all its conditions hold. It knows the condition
// operators spotmax's policies use and fails the test on any other, rather than guess.
func allows(t *testing.T, p *iam.Policy, action, resource string, rc requestContext) bool {
	t.Helper()
	for _, s := range p.Statement {
		if s.Effect != "Allow" || !slices.Contains(s.Action, action) ||
			!slices.ContainsFunc(s.Resource, func(pat string) bool { return iamGlob(pat, resource) }) {
			continue
		}
		if conditionsHold(t, s, rc) {
			return true
		}
	}
	return false
}

func conditionsHold(t *testing.T, s iam.Statement, rc requestContext) bool {
	t.Helper()
	for op, kv := range s.Condition {
		for key, v := range kv {
			var want []string
			switch v := v.(type) {
			case string:
				want = []string{v}
			case []string:
				want = v
			default:
				t.Fatalf("statement %s: condition %s %s has a value of type %T", s.Sid, op, key, v)
			}
			for i, w := range want {
				// A policy variable whose key is absent makes the comparison fail (IAM).
				want[i] = policyVariable.ReplaceAllStringFunc(w, func(m string) string {
					if got := rc[m[2:len(m)-1]]; len(got) == 1 {
						return got[0]
					}
					return "\x00absent"
				})
			}
			got, present := rc[key]
			eq := func(a, b string) bool { return a == b }
			anyOf := func(g string, match func(a, b string) bool) bool {
				return slices.ContainsFunc(want, func(w string) bool { return match(w, g) })
			}
			var ok bool
			switch op {
			case "StringEquals":
				ok = present && len(got) == 1 && anyOf(got[0], eq)
			case "StringLike":
				ok = present && len(got) == 1 && anyOf(got[0], iamGlob)
			case "ForAllValues:StringEquals":
				ok = !slices.ContainsFunc(got, func(g string) bool { return !anyOf(g, eq) })
			case "ForAllValues:StringLike":
				ok = !slices.ContainsFunc(got, func(g string) bool { return !anyOf(g, iamGlob) })
			case "Null":
				ok = (want[0] == "true") == !present
			default:
				t.Fatalf("statement %s: the test's evaluator does not know condition operator %s: teach it, from the IAM docs", s.Sid, op)
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

func instanceARN(r *sim.Region, id string) string {
	return "arn:aws:ec2:" + r.Name() + ":123456789012:instance/" + id
}

// tagRequest is the request context of a tagging call on instance id by the role credentials of
// instance source.
func tagRequest(r *sim.Region, id, source string, keys []string) requestContext {
	rc := requestContext{"aws:ARN": {instanceARN(r, id)}, "ec2:SourceInstanceARN": {instanceARN(r, source)}}
	if len(keys) > 0 {
		rc["aws:TagKeys"] = keys
	}
	in, _ := r.Instance(id)
	for k, v := range in.Tags {
		rc["ec2:ResourceTag/"+k] = []string{v}
	}
	return rc
}

// journalKeys are the keys of the controller's journal and assignments: what the controller acts
// on, so what the agent must never write. Keys being added to the journal (an owner, a lease)
// stand for any other spotmax:state:* key.
var journalKeys = []string{groupconfig.StatePhase, groupconfig.StateJournalGroup, groupconfig.StateDesired,
	groupconfig.StateReplacement, groupconfig.StateReason, groupconfig.StateStarted, groupconfig.StateToken,
	groupconfig.StateOptions, groupconfig.StateReplaces, groupconfig.StateFill, groupconfig.StateRetiring,
	groupconfig.StateVolume, groupconfig.StateMountPath, groupconfig.StateMovingTo, groupconfig.StateMovingFrom,
	groupconfig.StateGroupMaxSize, groupconfig.StatePrefix + "owner", groupconfig.StatePrefix + "lease_until",
	groupconfig.TagGroup, groupconfig.TagPersistenceDev}

// checkTagTrustBoundary proves, from the tag keys each access key really wrote in the simulated
// region, that the agent's policy allows every write the agent made (on its own instances,
// agentKeys → the instances it ran on) and none of the keys the controller trusts: not the
// journal keys, not any spotmax:state:* key the controller's key wrote, not on another instance.
func checkTagTrustBoundary(t *testing.T, r *sim.Region, agentKeys map[string][]string, controllerKey string) {
	t.Helper()
	p, err := iam.For(iam.Agent, iam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	writes := r.TagWritesBy()
	wrote := map[string]bool{}
	for key, instances := range agentKeys {
		if len(writes[key]) == 0 {
			t.Fatalf("the agent's key %s wrote no tags: the test proves nothing", key)
		}
		for _, w := range writes[key] {
			if len(w.Resources) != 1 || !slices.Contains(instances, w.Resources[0]) {
				t.Errorf("the agent's key %s tagged %v, not only an instance it runs on (%v)", key, w.Resources, instances)
				continue
			}
			id := w.Resources[0]
			if !allows(t, p, "ec2:"+w.Action, instanceARN(r, id), tagRequest(r, id, id, w.Keys)) {
				t.Errorf("the agent wrote %v on %s (%s), which its policy does not allow", w.Keys, id, w.Action)
			}
			for _, k := range w.Keys {
				wrote[k] = true
			}
		}
	}
	for _, k := range iam.AgentTagKeys() {
		if !wrote[k] {
			t.Errorf("the agent's policy allows writing %s, which no agent in this test wrote: cover it or drop it", k)
		}
	}
	trusted := slices.Clone(journalKeys)
	for _, w := range writes[controllerKey] {
		for _, k := range w.Keys {
			if strings.HasPrefix(k, groupconfig.StatePrefix) && !slices.Contains(iam.AgentTagKeys(), k) && !slices.Contains(trusted, k) {
				trusted = append(trusted, k)
			}
		}
	}
	var self, other string
	for _, instances := range agentKeys {
		self = instances[len(instances)-1]
	}
	for _, in := range r.Instances() {
		if in.ID != self && in.Tags[groupconfig.TagGroup] != "" {
			other = in.ID
		}
	}
	if other == "" {
		t.Fatal("no other instance of a spotmax group to try the agent's policy on")
	}
	own := iam.AgentTagKeys()
	for _, k := range trusted {
		for _, action := range []string{"ec2:CreateTags", "ec2:DeleteTags"} {
			for _, keys := range [][]string{{k}, {own[0], k}} {
				if allows(t, p, action, instanceARN(r, self), tagRequest(r, self, self, keys)) {
					t.Errorf("the agent's policy allows %s %v on its own instance: %s is the controller's", action, keys, k)
				}
			}
		}
	}
	if allows(t, p, "ec2:CreateTags", instanceARN(r, other), tagRequest(r, other, self, own)) {
		t.Errorf("the agent's policy allows its own keys on another instance (%s from %s)", other, self)
	}
	if allows(t, p, "ec2:DeleteTags", instanceARN(r, self), tagRequest(r, self, self, nil)) {
		t.Error("the agent's policy allows DeleteTags without keys (every tag) on its own instance")
	}
	if !allows(t, p, "ec2:CreateTags", instanceARN(r, self), tagRequest(r, self, self, own)) {
		t.Errorf("the agent's policy refuses all of its own keys %v together on its own instance", own)
	}
	t.Logf("agent wrote %v; denied the %d keys the controller trusts: %v", slices.Sorted(func(yield func(string) bool) {
		for k := range wrote {
			if !yield(k) {
				return
			}
		}
	}), len(trusted), trusted)
}
