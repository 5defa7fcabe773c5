package sim_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
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

// startCLI is the AWS CLI against a region in the kind world: these tests check each action's
// shapes through the CLI; AWS's harder behaviours have their own CLI tests
// (awscli_ec2_behaviors_test.go and the Auto Scaling ones).
func startCLI(t *testing.T) *cliEnv {
	return &cliEnv{CLI: simtest.StartCLI(t, sim.Options{Behaviors: kindWorld()}), t: t}
}

// cliEnv is the AWS CLI against a region, with this package's helpers.
type cliEnv struct {
	*simtest.CLI
	t *testing.T
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
	e.Run(&out, "ec2", "describe-availability-zones")
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
	e.Run(&lt, "ec2", "create-launch-template", "--launch-template-name", "web",
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
	e.Run(&run, "ec2", "run-instances", "--launch-template", "LaunchTemplateName=web,Version=$Latest", "--count", "2",
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
	e.Run(&out, "ec2", "describe-instances", "--filters", "Name=tag:spotmax:group,Values=web", "Name=instance-lifecycle,Values=spot")
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
	e.Run(&vol, "ec2", "create-volume", "--availability-zone", "us-east-1c", "--size", "10", "--volume-type", "gp3",
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
	e.Run(&out, "ec2", "describe-volumes", "--filters", "Name=tag:Name,Values=data", "Name=status,Values=available")
	if len(out.Volumes) != 1 || out.Volumes[0].VolumeID != vol.VolumeID || len(out.Volumes[0].Tags) != 1 || out.Volumes[0].Tags[0].Value != "data" {
		t.Errorf("describe-volumes with filters = %+v", out)
	}

	// Errors reach the CLI in EC2's error shape.
	stderr := e.Fail("ec2", "describe-volumes", "--volume-ids", "vol-0123456789abcdef0")
	if !strings.Contains(stderr, "InvalidVolume.NotFound") || !strings.Contains(stderr, "vol-0123456789abcdef0") {
		t.Errorf("describe-volumes of a missing volume: %s", stderr)
	}
}

// waitMember advances the clock a second at a time until a member of the group is in state and
// returns its instance id.
func (e *cliEnv) waitMember(group, state string) string {
	e.t.Helper()
	for i := 0; i < 600; i++ {
		if g, ok := e.Region().Group(group); ok {
			for _, m := range g.Members {
				if m.LifecycleState == state {
					return m.InstanceID
				}
			}
		}
		e.Region().Advance(time.Second)
	}
	e.t.Fatalf("group %s never had a member in %s", group, state)
	return ""
}

func (e *cliEnv) memberState(group, id string) string {
	e.t.Helper()
	var out struct {
		AutoScalingInstances []struct {
			InstanceID     string `json:"InstanceId"`
			LifecycleState string
		}
	}
	e.Run(&out, "autoscaling", "describe-auto-scaling-instances", "--instance-ids", id)
	if len(out.AutoScalingInstances) != 1 {
		return ""
	}
	return out.AutoScalingInstances[0].LifecycleState
}

func TestAWSCLILifecycleHooks(t *testing.T) {
	e := startCLI(t)
	e.Region().PutLaunchTemplate("web", sim.LaunchTemplateData{ImageID: testAMI, InstanceType: "m5.large"})
	e.Run(nil, "autoscaling", "create-auto-scaling-group", "--auto-scaling-group-name", "web",
		"--launch-template", "LaunchTemplateName=web", "--min-size", "0", "--max-size", "2", "--desired-capacity", "1",
		"--availability-zones", "us-east-1a", "--lifecycle-hook-specification-list",
		"LifecycleHookName=warm,LifecycleTransition=autoscaling:EC2_INSTANCE_LAUNCHING,HeartbeatTimeout=900,DefaultResult=CONTINUE")
	var hooks struct {
		LifecycleHooks []struct {
			LifecycleHookName, LifecycleTransition, DefaultResult string
			HeartbeatTimeout, GlobalTimeout                       int
		}
	}
	e.Run(&hooks, "autoscaling", "describe-lifecycle-hooks", "--auto-scaling-group-name", "web")
	// The clock also runs in real time and each aws call takes seconds: the heartbeat timeout is
	// long enough that no hook times out between the calls.
	if len(hooks.LifecycleHooks) != 1 || hooks.LifecycleHooks[0].LifecycleHookName != "warm" || hooks.LifecycleHooks[0].HeartbeatTimeout != 900 ||
		hooks.LifecycleHooks[0].GlobalTimeout != 90000 || hooks.LifecycleHooks[0].DefaultResult != "CONTINUE" {
		t.Errorf("describe-lifecycle-hooks = %+v", hooks)
	}
	id := e.waitMember("web", sim.LifecyclePendingWait)
	if st := e.memberState("web", id); st != "Pending:Wait" {
		t.Errorf("describe-auto-scaling-instances: %s, want Pending:Wait", st)
	}
	stderr := e.Fail("autoscaling", "complete-lifecycle-action", "--auto-scaling-group-name", "web", "--lifecycle-hook-name", "warm",
		"--lifecycle-action-result", "CONTINUE", "--instance-id", "i-0000000000000000f")
	if !strings.Contains(stderr, "ValidationError") || !strings.Contains(stderr, "No active Lifecycle Action found with instance ID i-0000000000000000f") {
		t.Errorf("complete-lifecycle-action for another instance: %s", stderr)
	}
	e.Run(nil, "autoscaling", "record-lifecycle-action-heartbeat", "--auto-scaling-group-name", "web", "--lifecycle-hook-name", "warm",
		"--instance-id", id)
	e.Run(nil, "autoscaling", "complete-lifecycle-action", "--auto-scaling-group-name", "web", "--lifecycle-hook-name", "warm",
		"--lifecycle-action-result", "CONTINUE", "--instance-id", id)
	e.waitMember("web", sim.LifecycleInService)

	e.Run(nil, "autoscaling", "put-lifecycle-hook", "--auto-scaling-group-name", "web", "--lifecycle-hook-name", "drain",
		"--lifecycle-transition", "autoscaling:EC2_INSTANCE_TERMINATING", "--heartbeat-timeout", "300")
	e.Run(nil, "autoscaling", "terminate-instance-in-auto-scaling-group", "--instance-id", id, "--should-decrement-desired-capacity")
	if st := e.memberState("web", id); st != "Terminating:Wait" {
		t.Errorf("after terminate-instance-in-auto-scaling-group: %s, want Terminating:Wait", st)
	}
}

func TestAWSCLILoadBalancerDraining(t *testing.T) {
	e := startCLI(t)
	e.Region().PutLaunchTemplate("web", sim.LaunchTemplateData{ImageID: testAMI, InstanceType: "m5.large"})
	var tg struct {
		TargetGroups []struct{ TargetGroupArn string }
	}
	e.Run(&tg, "elbv2", "create-target-group", "--name", "web", "--protocol", "HTTP", "--port", "80")
	if len(tg.TargetGroups) != 1 {
		t.Fatalf("create-target-group = %+v", tg)
	}
	arn := tg.TargetGroups[0].TargetGroupArn
	var attrs struct {
		Attributes []struct{ Key, Value string }
	}
	e.Run(&attrs, "elbv2", "describe-target-group-attributes", "--target-group-arn", arn)
	delay := ""
	for _, a := range attrs.Attributes {
		if a.Key == "deregistration_delay.timeout_seconds" {
			delay = a.Value
		}
	}
	if delay != "300" {
		t.Errorf("deregistration_delay.timeout_seconds = %q, want 300", delay)
	}
	e.Run(nil, "elb", "create-load-balancer", "--load-balancer-name", "web", "--listeners",
		"Protocol=HTTP,LoadBalancerPort=80,InstanceProtocol=HTTP,InstancePort=80", "--availability-zones", "us-east-1a")
	var lbAttrs struct {
		LoadBalancerAttributes struct {
			ConnectionDraining struct {
				Enabled bool
				Timeout int
			}
		}
	}
	e.Run(&lbAttrs, "elb", "modify-load-balancer-attributes", "--load-balancer-name", "web", "--load-balancer-attributes",
		`{"ConnectionDraining":{"Enabled":true,"Timeout":60}}`)
	if d := lbAttrs.LoadBalancerAttributes.ConnectionDraining; !d.Enabled || d.Timeout != 60 {
		t.Errorf("modify-load-balancer-attributes = %+v", d)
	}
	if stderr := e.Fail("elb", "describe-load-balancers", "--load-balancer-names", "nope"); !strings.Contains(stderr, "LoadBalancerNotFound") ||
		!strings.Contains(stderr, "There is no ACTIVE Load Balancer named 'nope'") {
		t.Errorf("describe-load-balancers of a missing one: %s", stderr)
	}

	e.Run(nil, "autoscaling", "create-auto-scaling-group", "--auto-scaling-group-name", "web",
		"--launch-template", "LaunchTemplateName=web", "--min-size", "0", "--max-size", "2", "--desired-capacity", "1",
		"--availability-zones", "us-east-1a", "--target-group-arns", arn, "--load-balancer-names", "web")
	id := e.waitMember("web", sim.LifecycleInService)
	e.Run(nil, "autoscaling", "detach-instances", "--auto-scaling-group-name", "web", "--instance-ids", id,
		"--should-decrement-desired-capacity")
	var health struct {
		TargetHealthDescriptions []struct {
			Target       struct{ Id string }
			TargetHealth struct{ State, Reason string }
		}
	}
	e.Run(&health, "elbv2", "describe-target-health", "--target-group-arn", arn)
	if len(health.TargetHealthDescriptions) != 1 || health.TargetHealthDescriptions[0].TargetHealth.State != "draining" ||
		health.TargetHealthDescriptions[0].TargetHealth.Reason != "Target.DeregistrationInProgress" {
		t.Errorf("describe-target-health while detaching = %+v", health)
	}
	var ih struct {
		InstanceStates []struct{ InstanceId, State, Description string }
	}
	e.Run(&ih, "elb", "describe-instance-health", "--load-balancer-name", "web")
	if len(ih.InstanceStates) != 1 || ih.InstanceStates[0].Description != "Instance deregistration currently in progress." {
		t.Errorf("describe-instance-health while detaching = %+v", ih)
	}
	// The simulated clock also runs in real time, and each aws call takes seconds: stay well
	// inside the 300 s delay.
	e.Region().Advance(200 * time.Second)
	if st := e.memberState("web", id); st != "Detaching" {
		t.Errorf("over 200 s after detach-instances: %q, want Detaching (the target group's 300 s delay)", st)
	}
	e.Region().Advance(100 * time.Second)
	if st := e.memberState("web", id); st != "" {
		t.Errorf("over 300 s after detach-instances: %q, want the instance gone from the group", st)
	}
}

// Debian's aws CLI 2.9 speaks SQS's query protocol, newer ones its JSON protocol: the answers
// are the same.
func TestAWSCLISQS(t *testing.T) {
	e := startCLI(t)
	var q struct{ QueueUrl string }
	e.Run(&q, "sqs", "create-queue", "--queue-name", "work", "--attributes", "VisibilityTimeout=5", "--tags", "team=ops")
	if !strings.HasSuffix(q.QueueUrl, "/123456789012/work") {
		t.Fatalf("create-queue = %+v", q)
	}
	var attrs struct{ Attributes map[string]string }
	e.Run(&attrs, "sqs", "get-queue-attributes", "--queue-url", q.QueueUrl, "--attribute-names", "All")
	if attrs.Attributes["VisibilityTimeout"] != "5" || attrs.Attributes["QueueArn"] != "arn:aws:sqs:us-east-1:123456789012:work" {
		t.Errorf("get-queue-attributes = %v", attrs.Attributes)
	}
	var sent struct{ MessageId, MD5OfMessageBody string }
	e.Run(&sent, "sqs", "send-message", "--queue-url", q.QueueUrl, "--message-body", "hello <world>",
		"--message-attributes", `{"kind":{"DataType":"String","StringValue":"greeting"}}`)
	if sum := md5.Sum([]byte("hello <world>")); sent.MD5OfMessageBody != hex.EncodeToString(sum[:]) || sent.MessageId == "" {
		t.Errorf("send-message = %+v", sent)
	}
	var recv struct {
		Messages []struct {
			MessageId, Body, ReceiptHandle string
			MessageAttributes              map[string]struct{ StringValue, DataType string }
		}
	}
	e.Run(&recv, "sqs", "receive-message", "--queue-url", q.QueueUrl, "--message-attribute-names", "All")
	if len(recv.Messages) != 1 || recv.Messages[0].MessageId != sent.MessageId || recv.Messages[0].Body != "hello <world>" ||
		recv.Messages[0].MessageAttributes["kind"].StringValue != "greeting" {
		t.Fatalf("receive-message = %+v", recv)
	}
	e.Run(nil, "sqs", "delete-message", "--queue-url", q.QueueUrl, "--receipt-handle", recv.Messages[0].ReceiptHandle)
	if msgs := e.Region().QueueMessages("work"); len(msgs) != 0 {
		t.Errorf("after delete-message the queue holds %d messages", len(msgs))
	}
	if stderr := e.Fail("sqs", "get-queue-url", "--queue-name", "missing"); !strings.Contains(stderr, "NonExistentQueue") {
		t.Errorf("get-queue-url of a missing queue: %s", stderr)
	}
}

// runIn launches n running instances in an AZ's default subnet, directly in the region.
func (e *cliEnv) runIn(az string, n int) []string {
	e.t.Helper()
	sn, ok := e.Region().DefaultSubnet(az)
	if !ok {
		e.t.Fatalf("no default subnet in %s", az)
	}
	out, err := ec2.NewFromConfig(e.Config).RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(testAMI),
		MinCount: aws.Int32(int32(n)), MaxCount: aws.Int32(int32(n)), SubnetId: aws.String(sn)})
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, in := range out.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	e.Region().Advance(sim.FastLatencies().Pending)
	return ids
}

func (e *cliEnv) groupAZs(name string) (members int, perAZ map[string]int) {
	e.t.Helper()
	var out struct {
		AutoScalingGroups []struct {
			Instances []struct{ AvailabilityZone, LifecycleState string }
		}
	}
	e.Run(&out, "autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", name)
	perAZ = map[string]int{}
	if len(out.AutoScalingGroups) != 1 {
		e.t.Fatalf("describe-auto-scaling-groups %s = %+v", name, out)
	}
	for _, in := range out.AutoScalingGroups[0].Instances {
		perAZ[in.AvailabilityZone]++
	}
	return len(out.AutoScalingGroups[0].Instances), perAZ
}

func TestAWSCLIAutoScalingEventualConsistencyAndAZRebalance(t *testing.T) {
	e := startCLI(t)
	// Each aws call takes seconds of the clock, which runs in real time too: a window of a minute
	// keeps the assertion about "not yet listed" away from that race.
	e.Region().SetBehaviors(sim.Behaviors{AutoScaling: sim.AutoScalingBehaviors{AttachVisibility: time.Minute, AZRebalance: true}})
	e.Region().PutLaunchTemplate("web", sim.LaunchTemplateData{ImageID: testAMI, InstanceType: "m5.large"})
	e.Run(nil, "autoscaling", "create-auto-scaling-group", "--auto-scaling-group-name", "web",
		"--launch-template", "LaunchTemplateName=web", "--min-size", "0", "--max-size", "4", "--desired-capacity", "2",
		"--availability-zones", "us-east-1a", "us-east-1b")
	e.Run(nil, "autoscaling", "suspend-processes", "--auto-scaling-group-name", "web", "--scaling-processes", "AZRebalance")
	for i := 0; i < 60; i++ {
		if g, _ := e.Region().Group("web"); len(g.Members) == 2 && g.Members[0].LifecycleState == sim.LifecycleInService &&
			g.Members[1].LifecycleState == sim.LifecycleInService {
			break
		}
		e.Region().Advance(time.Second)
	}
	ids := e.runIn("us-east-1a", 2)
	e.Run(nil, append([]string{"autoscaling", "attach-instances", "--auto-scaling-group-name", "web", "--instance-ids"}, ids...)...)
	var inst struct{ AutoScalingInstances []any }
	e.Run(&inst, append([]string{"autoscaling", "describe-auto-scaling-instances", "--instance-ids"}, ids...)...)
	if len(inst.AutoScalingInstances) != 0 {
		t.Errorf("describe-auto-scaling-instances right after attach-instances = %+v, want none yet", inst.AutoScalingInstances)
	}
	e.Region().Advance(2 * time.Minute)
	if n, perAZ := e.groupAZs("web"); n != 4 || perAZ["us-east-1a"] != 3 || perAZ["us-east-1b"] != 1 {
		t.Fatalf("with AZRebalance suspended, after the window: %d members %v, want 3 + 1 listed", n, perAZ)
	}
	e.Run(nil, "autoscaling", "resume-processes", "--auto-scaling-group-name", "web", "--scaling-processes", "AZRebalance")
	for i := 0; i < 120; i++ {
		e.Region().Advance(time.Second)
	}
	if n, perAZ := e.groupAZs("web"); n != 4 || perAZ["us-east-1a"] != 2 || perAZ["us-east-1b"] != 2 {
		t.Errorf("after resume-processes AZRebalance: %d members %v, want 2 + 2", n, perAZ)
	}
	var acts struct{ Activities []struct{ Cause string } }
	e.Run(&acts, "autoscaling", "describe-scaling-activities", "--auto-scaling-group-name", "web")
	found := false
	for _, a := range acts.Activities {
		found = found || strings.Contains(a.Cause, "instances were launched to balance instances in zones us-east-1b")
	}
	if !found {
		t.Errorf("describe-scaling-activities shows no AZRebalance launch: %+v", acts.Activities)
	}
}
