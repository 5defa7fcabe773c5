package cli

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testEnv is a simulated region with the environment pointing the CLI at it.
type testEnv struct {
	*simtest.Env
	ec2 *ec2.Client
	asg *autoscaling.Client
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	// Real-time clock with short latencies: the CLI measures ages against the wall clock.
	lat := sim.Latencies{Pending: 20 * time.Millisecond, ShuttingDown: 20 * time.Millisecond, Stopping: 20 * time.Millisecond,
		Attach: 10 * time.Millisecond, Detach: 10 * time.Millisecond, CreateVolume: 10 * time.Millisecond,
		DeleteVolume: 10 * time.Millisecond, InterruptionNotice: 2 * time.Minute, ASGCheck: 50 * time.Millisecond}
	env := simtest.Start(t, sim.Options{Latencies: &lat})
	t.Setenv("AWS_ENDPOINT_URL", env.URL())
	t.Setenv("AWS_REGION", env.Region().Name())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDCLITEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_PROFILE", "")
	return &testEnv{Env: env, ec2: ec2.NewFromConfig(env.Config), asg: autoscaling.NewFromConfig(env.Config)}
}

// group creates a launch template with a data volume and a group of n spot instances with tags,
// and waits until they are in service.
func (e *testEnv) group(t *testing.T, name string, n int32, tags map[string]string) {
	t.Helper()
	ctx := context.Background()
	ltName := name + "-lt"
	_, err := e.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(ltName),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
			ImageId:      aws.String("ami-12345678"),
			InstanceType: ec2types.InstanceTypeM5Large,
			InstanceMarketOptions: &ec2types.LaunchTemplateInstanceMarketOptionsRequest{
				MarketType: ec2types.MarketTypeSpot,
			},
			BlockDeviceMappings: []ec2types.LaunchTemplateBlockDeviceMappingRequest{{
				DeviceName: aws.String("/dev/sdf"),
				Ebs:        &ec2types.LaunchTemplateEbsBlockDeviceRequest{VolumeSize: aws.Int32(20), DeleteOnTermination: aws.Bool(true)},
			}},
		},
	})
	if err != nil {
		t.Fatalf("creating launch template: %v", err)
	}
	var asgTags []astypes.Tag
	for k, v := range tags {
		asgTags = append(asgTags, astypes.Tag{Key: aws.String(k), Value: aws.String(v), PropagateAtLaunch: aws.Bool(true),
			ResourceId: aws.String(name), ResourceType: aws.String("auto-scaling-group")})
	}
	_, err = e.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(name),
		LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(ltName), Version: aws.String("$Latest")},
		MinSize:              aws.Int32(0), MaxSize: aws.Int32(n + 2), DesiredCapacity: aws.Int32(n),
		AvailabilityZones: []string{"us-east-1a", "us-east-1b", "us-east-1c"},
		Tags:              asgTags,
	})
	if err != nil {
		t.Fatalf("creating group %s: %v", name, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, _ := e.Region().Group(name)
		inService := 0
		for _, m := range g.Members {
			if m.LifecycleState == "InService" {
				inService++
			}
		}
		if inService == int(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: %d of %d instances in service after 10s", name, inService, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs the CLI with args and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ios, _, out, errOut := Test()
	f := NewFactory(ios)
	code = Run(context.Background(), f, args)
	return out.String(), errOut.String(), code
}

var volatile = []*regexp.Regexp{
	regexp.MustCompile(`\b(i|vol|sir|r|lt|subnet|vpc)-[0-9a-f]{8,17}\b`),
	regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`),
	regexp.MustCompile(`"(age_seconds|lifetime_left_seconds)": -?\d+`),
}

// golden compares got, with ids and times masked, to testdata/name.
func golden(t *testing.T, name, got string) {
	t.Helper()
	masked := got
	for i, re := range volatile {
		switch i {
		case 0:
			masked = re.ReplaceAllStringFunc(masked, func(s string) string { return s[:strings.IndexByte(s, '-')] + "-X" })
		case 1:
			masked = re.ReplaceAllString(masked, "TIME")
		case 2:
			masked = re.ReplaceAllString(masked, `"$1": N`)
		}
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(masked), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test ./pkg/cli -run %s -update): %v", t.Name(), err)
	}
	if masked != string(want) {
		t.Errorf("%s differs from golden file %s:\ngot:\n%s\nwant:\n%s", t.Name(), path, masked, want)
	}
}
