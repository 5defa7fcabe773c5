package replace_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// A launch template with network interfaces: EC2 refuses a subnet beside them
// (InvalidParameterCombination), so the replacement's subnet goes into the primary interface,
// and the interface's security groups are kept — on spot, and on-demand from the template's
// data.
func TestReplaceWithNetworkInterfaceTemplate(t *testing.T) {
	f := newFixture(t, fixtureOpts{desired: 1, max: 1, tags: map[string]string{groupconfig.TagDetachingDelaySeconds: "0",
		groupconfig.TagPreactionDetachDelaySeconds: "0"}})
	ctx := context.Background()
	out, err := f.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{f.group}})
	if err != nil {
		t.Fatal(err)
	}
	lt := out.AutoScalingGroups[0].LaunchTemplate
	const sg = "sg-0123456789abcdef0"
	if _, err := f.ec2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateName: lt.LaunchTemplateName,
		SourceVersion: aws.String("1"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
			NetworkInterfaces: []ec2types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{{
				DeviceIndex: aws.Int32(0), Groups: []string{sg}, DeleteOnTermination: aws.Bool(true)}}}}); err != nil {
		t.Fatal(err)
	}
	check := func(id, market string) {
		t.Helper()
		in, _ := f.env.Region().Instance(id)
		if in.Market != market || !slices.Contains(in.SecurityGroupIDs, sg) || in.SubnetID == "" {
			t.Errorf("replacement %s: market %s, security groups %v, subnet %q; want %s with %s", id, in.Market, in.SecurityGroupIDs, in.SubnetID, market, sg)
		}
	}
	w := f.workflow()
	res, err := f.replace(t, w, replace.Request{InstanceID: f.members[0], Reason: replace.ReasonLifetime})
	if err != nil {
		t.Fatalf("spot replacement from a template with network interfaces: %v", err)
	}
	check(res.New, sim.MarketSpot)
	f.checkInvariants(t)

	r := f.env.Region()
	for _, az := range r.AZs() {
		r.SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: az.Name, Market: sim.MarketSpot}, 0)
	}
	res2, err := f.replace(t, w, replace.Request{InstanceID: res.New, Reason: replace.ReasonManual})
	if err != nil {
		t.Fatalf("on-demand replacement from the template's data: %v", err)
	}
	check(res2.New, sim.MarketOnDemand)
	f.checkInvariants(t)
}

// An alternative type that EC2 does not offer (a typo written straight into the group's tags,
// past `spotmax group tag`'s check) is refused when the plan is made, naming the tag: no launch,
// no rollback.
func TestReplaceRefusesUnknownAlternativeType(t *testing.T) {
	f := newFixture(t, fixtureOpts{desired: 1, max: 1, tags: map[string]string{groupconfig.AltKey(1): "m5.lage"}})
	f.env.Region().ResetCalls()
	_, err := f.replace(t, f.workflow(), replace.Request{InstanceID: f.members[0], Reason: replace.ReasonManual})
	if !errors.Is(err, replace.ErrRefused) || !strings.Contains(err.Error(), groupconfig.AltKey(1)) || !strings.Contains(err.Error(), "m5.lage") {
		t.Fatalf("err = %v, want a refusal naming %s and m5.lage", err, groupconfig.AltKey(1))
	}
	if n := callsOf(f.env.Region(), "ec2:RunInstances") + callsOf(f.env.Region(), "ec2:CreateTags"); n != 0 {
		t.Errorf("%d launches or tag writes after a refused plan, want 0", n)
	}
}

// Issue 11, case 8's second half: an interruption whose instance EC2 then does not take away
// (the warning was confirmed, e.g. relayed, but AWS changed its mind) must not leave the
// detached instance holding the group's data: shortly after the deadline spotmax terminates it,
// the volume is freed by the shutdown and moves to the replacement. The instance runs an agent
// (announced) that never releases the volume: without one it would be terminated at once
// (TestReplaceInterruptedInstanceWithoutAgent).
func TestInterruptedInstanceStillRunningPastDeadlineIsTerminated(t *testing.T) {
	f := newFixture(t, fixtureOpts{desired: 1, max: 1, tags: map[string]string{groupconfig.TagDetachingDelaySeconds: "0"}})
	r := f.env.Region()
	old := f.members[0]
	if err := f.setTag(old, groupconfig.StateAgent, "running test "+r.Clock().Now().UTC().Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
	deadline := r.Clock().Now().Add(2 * time.Minute)
	res, err := f.replace(t, f.workflow(), replace.Request{InstanceID: old, Reason: replace.ReasonInterruption, Deadline: deadline})
	if err != nil {
		t.Fatalf("Replace: %v", err)
	}
	in, _ := r.Instance(old)
	if in.State != sim.StateTerminated && in.State != sim.StateShuttingDown {
		t.Errorf("old instance %s is %s after the replacement, want terminated", old, in.State)
	}
	if in.StateReason != "Client.UserInitiatedShutdown" {
		t.Errorf("old instance %s state reason %q, want terminated by spotmax", old, in.StateReason)
	}
	if end := r.Clock().Now(); end.Before(deadline) {
		t.Errorf("replacement finished at %s, before the deadline %s: the old instance was terminated early", end, deadline)
	}
	if len(res.Volumes) == 0 {
		t.Errorf("no data volume moved: %+v", res)
	}
	f.checkInvariants(t)
}
