package sim_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

func TestEC2DescribeAvailabilityZones(t *testing.T) {
	env := simtest.Start(t, sim.Options{Region: "eu-west-1", Behaviors: kindWorld()})
	client := ec2.NewFromConfig(env.Config)
	out, err := client.DescribeAvailabilityZones(context.Background(), &ec2.DescribeAvailabilityZonesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, z := range out.AvailabilityZones {
		got = append(got, *z.ZoneName+"/"+*z.ZoneId)
	}
	want := []string{"eu-west-1a/euw1-az1", "eu-west-1b/euw1-az2", "eu-west-1c/euw1-az3"}
	if len(got) != len(want) {
		t.Fatalf("zones = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("zone %d = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestUnknownActionIsInvalidAction(t *testing.T) {
	env := simtest.Start(t, sim.Options{Behaviors: kindWorld()})
	env.Region().FailNext("ec2:DescribeAvailabilityZones", "RequestLimitExceeded", "Request limit exceeded.")
	client := ec2.NewFromConfig(env.Config, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	_, err := client.DescribeAvailabilityZones(context.Background(), &ec2.DescribeAvailabilityZonesInput{})
	if err == nil || !contains(err.Error(), "RequestLimitExceeded") {
		t.Fatalf("err = %v, want RequestLimitExceeded", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}

// testAMI is the image id the EC2 tests launch.
const testAMI = "ami-0123456789abcdef0"

// ec2Start serves a region for an EC2 test and returns an EC2 client for it. Tests move the
// clock with Advance, so the default time scale leaves the state still between calls.
// ec2Start serves a region for the tests of one API's semantics, call by call. They ask for the
// kind world (no eventual consistency, capacity errors as 400) unless opts says otherwise: AWS's
// harder behaviours are covered one by one in behaviors_ec2_test.go and
// autoscaling_rebalance_test.go.
func ec2Start(t *testing.T, opts sim.Options) (*simtest.Env, *ec2.Client) {
	t.Helper()
	if opts.Behaviors == nil {
		opts.Behaviors = kindWorld()
	}
	env := simtest.Start(t, opts)
	return env, ec2.NewFromConfig(env.Config)
}

// ec2WantErr fails the test unless err is an AWS API error with the code and a message that
// contains msgPart.
func ec2WantErr(t *testing.T, err error, code, msgPart string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want API error %s", err, code)
	}
	if ae.ErrorCode() != code || !strings.Contains(ae.ErrorMessage(), msgPart) {
		t.Fatalf("err = %s: %s, want %s containing %q", ae.ErrorCode(), ae.ErrorMessage(), code, msgPart)
	}
}

// ec2Template creates a launch template and returns its id.
func ec2Template(t *testing.T, c *ec2.Client, name string, data *types.RequestLaunchTemplateData, tags ...types.Tag) string {
	t.Helper()
	in := &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(name), LaunchTemplateData: data}
	if len(tags) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeLaunchTemplate, Tags: tags}}
	}
	out, err := c.CreateLaunchTemplate(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateLaunchTemplate %s: %v", name, err)
	}
	return *out.LaunchTemplate.LaunchTemplateId
}

// ec2Run runs instances and returns them.
func ec2Run(t *testing.T, c *ec2.Client, in *ec2.RunInstancesInput) []types.Instance {
	t.Helper()
	if in.MinCount == nil {
		in.MinCount = aws.Int32(1)
	}
	if in.MaxCount == nil {
		in.MaxCount = in.MinCount
	}
	if in.ImageId == nil && in.LaunchTemplate == nil {
		in.ImageId = aws.String(testAMI)
	}
	out, err := c.RunInstances(context.Background(), in)
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	return out.Instances
}

// ec2Describe returns the instances with the ids, in the order EC2 lists them.
func ec2Describe(t *testing.T, c *ec2.Client, ids ...string) []types.Instance {
	t.Helper()
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	var ins []types.Instance
	for _, r := range out.Reservations {
		ins = append(ins, r.Instances...)
	}
	return ins
}

// ec2Volume returns one volume as DescribeVolumes shows it.
func ec2Volume(t *testing.T, c *ec2.Client, id string) types.Volume {
	t.Helper()
	out, err := c.DescribeVolumes(context.Background(), &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
	if err != nil {
		t.Fatalf("DescribeVolumes %s: %v", id, err)
	}
	if len(out.Volumes) != 1 {
		t.Fatalf("DescribeVolumes %s returned %d volumes", id, len(out.Volumes))
	}
	return out.Volumes[0]
}

// ec2IDs returns the instance ids, sorted.
func ec2IDs(ins []types.Instance) []string {
	var ids []string
	for _, in := range ins {
		ids = append(ids, *in.InstanceId)
	}
	sort.Strings(ids)
	return ids
}

func ec2Filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[*t.Key] = *t.Value
	}
	return m
}

func TestEC2ThrottledCallIsRetried(t *testing.T) {
	env := simtest.Start(t, sim.Options{Behaviors: kindWorld()})
	// The SDK's standard retryer, with a short backoff so the test stays fast.
	c := ec2.NewFromConfig(env.Config, func(o *ec2.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.MaxBackoff = 20 * time.Millisecond })
	})
	env.Region().ResetCalls()
	env.Region().ThrottleNext("ec2", 1)
	if _, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatalf("DescribeInstances after one throttled attempt: %v", err)
	}
	var n int
	for _, cc := range env.Region().Calls() {
		if cc.Action == "ec2:DescribeInstances" {
			n = cc.Count
		}
	}
	if n != 2 {
		t.Errorf("DescribeInstances was called %d times, want 2 (one throttled, one retried)", n)
	}

	// Without retries the throttling error reaches the caller with EC2's code.
	env.Region().ThrottleNext("ec2", 1)
	_, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{}, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	ec2WantErr(t, err, "RequestLimitExceeded", "Request limit exceeded")
}

func TestEC2DryRun(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	_, err := c.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1),
		MaxCount: aws.Int32(1), DryRun: aws.Bool(true)})
	ec2WantErr(t, err, "DryRunOperation", "DryRun flag is set")
	if n := len(env.Region().Instances()); n != 0 {
		t.Errorf("a dry run launched %d instances", n)
	}
}

func TestEC2UnknownFilterIsInvalid(t *testing.T) {
	_, c := ec2Start(t, sim.Options{})
	_, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: []types.Filter{ec2Filter("no-such-filter", "x")}})
	ec2WantErr(t, err, "InvalidParameterValue", "The filter 'no-such-filter' is invalid")
}

// kindWorld is sim.KindBehaviors for tests of plain API semantics (see ec2Start).
func kindWorld() *sim.Behaviors {
	b := sim.KindBehaviors()
	return &b
}
