package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// awsCLI returns the aws command to run: $SPOTMAX_AWS_CLI, else aws on PATH. Without one the
// test skips, unless SPOTMAX_REQUIRE_ASSETS=1 (CI) makes the missing CLI a failure.
func awsCLI(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SPOTMAX_AWS_CLI"); p != "" {
		return p
	}
	p, err := exec.LookPath("aws")
	if err != nil {
		if os.Getenv("SPOTMAX_REQUIRE_ASSETS") == "1" {
			t.Fatal("the AWS CLI (aws) is not on PATH and SPOTMAX_REQUIRE_ASSETS=1: install the Debian package awscli")
		}
		t.Skip("the AWS CLI (aws) is not on PATH; install the Debian package awscli to run the AWS CLI conformance tests")
	}
	return p
}

// cliEnv is a simulated region with an aws command pointed at it.
type cliEnv struct {
	*simtest.Env
	t   *testing.T
	bin string
	env []string
}

func startCLI(t *testing.T) *cliEnv {
	t.Helper()
	if testing.Short() && os.Getenv("SPOTMAX_REQUIRE_ASSETS") != "1" {
		t.Skip("the AWS CLI takes about two seconds per call; skipped in -short mode")
	}
	bin := awsCLI(t)
	t.Parallel()
	env := simtest.Start(t, sim.Options{})
	dir := t.TempDir()
	// Keep the caller's PATH and HOME (pyenv shims need them) but none of their AWS settings.
	var vars []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			vars = append(vars, kv)
		}
	}
	vars = append(vars,
		"AWS_ACCESS_KEY_ID=AKIDSIMCLI",
		"AWS_SECRET_ACCESS_KEY=secret",
		"AWS_DEFAULT_REGION="+env.Region().Name(),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
	)
	return &cliEnv{Env: env, t: t, bin: bin, env: vars}
}

// run runs one aws command against the region; with out set it decodes the JSON output.
func (e *cliEnv) run(out any, args ...string) {
	e.t.Helper()
	stdout, stderr, err := e.exec(args...)
	if err != nil {
		e.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	if out != nil {
		if err := json.Unmarshal(stdout, out); err != nil {
			e.t.Fatalf("aws %s: decoding output: %v\n%s", strings.Join(args, " "), err, stdout)
		}
	}
}

// fail runs an aws command that must fail and returns its error output.
func (e *cliEnv) fail(args ...string) string {
	e.t.Helper()
	_, stderr, err := e.exec(args...)
	if err == nil {
		e.t.Fatalf("aws %s succeeded, want an error", strings.Join(args, " "))
	}
	return string(stderr)
}

func (e *cliEnv) exec(args ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	full := append([]string{"--endpoint-url", e.URL(), "--output", "json"}, args...)
	cmd := exec.CommandContext(ctx, e.bin, full...)
	cmd.Env = e.env
	var o, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &se
	err = cmd.Run()
	return o.Bytes(), se.Bytes(), err
}

// cliInstances is the part of run-instances and describe-instances output the tests read.
type cliInstance struct {
	InstanceID        string `json:"InstanceId"`
	InstanceType      string
	InstanceLifecycle string
	State             struct{ Name string }
	Placement         struct{ AvailabilityZone string }
	Tags              []struct{ Key, Value string }
}

func TestAWSCLIDescribeAvailabilityZones(t *testing.T) {
	e := startCLI(t)
	var out struct {
		AvailabilityZones []struct{ ZoneName, ZoneId, State string }
	}
	e.run(&out, "ec2", "describe-availability-zones")
	var got []string
	for _, z := range out.AvailabilityZones {
		got = append(got, z.ZoneName+"/"+z.ZoneId+"/"+z.State)
	}
	if want := "us-east-1a/use1-az1/available us-east-1b/use1-az2/available us-east-1c/use1-az3/available"; strings.Join(got, " ") != want {
		t.Errorf("zones = %v, want %s", got, want)
	}
}

func TestAWSCLIRunAndDescribeInstances(t *testing.T) {
	e := startCLI(t)
	var lt struct {
		LaunchTemplate struct {
			LaunchTemplateID    string `json:"LaunchTemplateId"`
			LatestVersionNumber int64
		}
	}
	e.run(&lt, "ec2", "create-launch-template", "--launch-template-name", "web",
		"--launch-template-data", `{"ImageId":"ami-0123456789abcdef0","InstanceType":"m5.large",`+
			`"BlockDeviceMappings":[{"DeviceName":"/dev/sdf","Ebs":{"VolumeSize":20,"VolumeType":"gp3","DeleteOnTermination":false}}],`+
			`"InstanceMarketOptions":{"MarketType":"spot"},`+
			`"MetadataOptions":{"HttpTokens":"required","InstanceMetadataTags":"enabled"},`+
			`"TagSpecifications":[{"ResourceType":"instance","Tags":[{"Key":"spotmax:group","Value":"web"}]}]}`,
		"--tag-specifications", "ResourceType=launch-template,Tags=[{Key=team,Value=ops}]")
	if lt.LaunchTemplate.LaunchTemplateID == "" || lt.LaunchTemplate.LatestVersionNumber != 1 {
		t.Fatalf("create-launch-template = %+v", lt)
	}

	var run struct{ Instances []cliInstance }
	e.run(&run, "ec2", "run-instances", "--launch-template", "LaunchTemplateName=web,Version=$Latest", "--count", "2",
		"--placement", "AvailabilityZone=us-east-1b",
		"--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=web-1}]")
	if len(run.Instances) != 2 {
		t.Fatalf("run-instances launched %d instances, want 2", len(run.Instances))
	}
	for _, in := range run.Instances {
		tags := map[string]string{}
		for _, tg := range in.Tags {
			tags[tg.Key] = tg.Value
		}
		if in.InstanceLifecycle != "spot" || in.InstanceType != "m5.large" || in.Placement.AvailabilityZone != "us-east-1b" ||
			tags["spotmax:group"] != "web" || tags["Name"] != "web-1" || in.State.Name != "pending" {
			t.Errorf("instance = %+v, want a pending m5.large spot instance in us-east-1b tagged from template and call", in)
		}
		got, ok := e.Region().Instance(in.InstanceID)
		if !ok || len(got.BlockDevices) != 2 || !got.MetadataTags || !got.HTTPTokensReq {
			t.Errorf("region instance %s = %+v", in.InstanceID, got)
		}
	}

	// Another instance, launched through the SDK, that the tag filter must leave out.
	if _, err := ec2.NewFromConfig(e.Config).RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(testAMI),
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceMarketOptions: &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot}}); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Reservations []struct{ Instances []cliInstance }
	}
	e.run(&out, "ec2", "describe-instances", "--filters", "Name=tag:spotmax:group,Values=web", "Name=instance-lifecycle,Values=spot")
	var got, want []string
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			got = append(got, in.InstanceID)
		}
	}
	for _, in := range run.Instances {
		want = append(want, in.InstanceID)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("describe-instances with tag filter = %v, want %v", got, want)
	}
}

func TestAWSCLICreateAndDescribeVolumes(t *testing.T) {
	e := startCLI(t)
	var vol struct {
		VolumeID         string `json:"VolumeId"`
		Size             int32
		State            string
		AvailabilityZone string
	}
	e.run(&vol, "ec2", "create-volume", "--availability-zone", "us-east-1c", "--size", "10", "--volume-type", "gp3",
		"--tag-specifications", "ResourceType=volume,Tags=[{Key=Name,Value=data}]")
	if vol.VolumeID == "" || vol.Size != 10 || vol.State != "creating" || vol.AvailabilityZone != "us-east-1c" {
		t.Fatalf("create-volume = %+v", vol)
	}
	e.Region().Advance(sim.FastLatencies().CreateVolume)

	var out struct {
		Volumes []struct {
			VolumeID string `json:"VolumeId"`
			State    string
			Tags     []struct{ Key, Value string }
		}
	}
	e.run(&out, "ec2", "describe-volumes", "--filters", "Name=tag:Name,Values=data", "Name=status,Values=available")
	if len(out.Volumes) != 1 || out.Volumes[0].VolumeID != vol.VolumeID || len(out.Volumes[0].Tags) != 1 || out.Volumes[0].Tags[0].Value != "data" {
		t.Errorf("describe-volumes with filters = %+v", out)
	}

	// Errors reach the CLI in EC2's error shape.
	stderr := e.fail("ec2", "describe-volumes", "--volume-ids", "vol-0123456789abcdef0")
	if !strings.Contains(stderr, "InvalidVolume.NotFound") || !strings.Contains(stderr, "vol-0123456789abcdef0") {
		t.Errorf("describe-volumes of a missing volume: %s", stderr)
	}
}
