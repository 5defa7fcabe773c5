package sim_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
)

// spotTemplateData is a spot launch template with a data volume at /dev/sdf.
func spotTemplateData() *types.RequestLaunchTemplateData {
	return &types.RequestLaunchTemplateData{
		ImageId:      aws.String(testAMI),
		InstanceType: types.InstanceTypeM5Large,
		BlockDeviceMappings: []types.LaunchTemplateBlockDeviceMappingRequest{{
			DeviceName: aws.String("/dev/sdf"),
			Ebs:        &types.LaunchTemplateEbsBlockDeviceRequest{VolumeSize: aws.Int32(20), VolumeType: types.VolumeTypeGp3, DeleteOnTermination: aws.Bool(false)},
		}},
		InstanceMarketOptions: &types.LaunchTemplateInstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot},
		MetadataOptions: &types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: types.LaunchTemplateHttpTokensStateRequired,
			InstanceMetadataTags: types.LaunchTemplateInstanceMetadataTagsStateEnabled},
		TagSpecifications: []types.LaunchTemplateTagSpecificationRequest{{ResourceType: types.ResourceTypeInstance,
			Tags: []types.Tag{{Key: aws.String("spotmax:group"), Value: aws.String("web")}}}},
	}
}

func TestEC2RunInstancesFromLaunchTemplate(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ltID := ec2Template(t, c, "web", spotTemplateData())
	ins := ec2Run(t, c, &ec2.RunInstancesInput{
		LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web"), Version: aws.String("$Latest")},
		InstanceType:   types.InstanceTypeC5Large,
		MinCount:       aws.Int32(2),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("web-1")}}},
			{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("web")}}},
		},
	})
	if len(ins) != 2 {
		t.Fatalf("launched %d instances, want 2", len(ins))
	}
	in := ins[0]
	if in.InstanceType != types.InstanceTypeC5Large || *in.ImageId != testAMI {
		t.Errorf("type/image = %s/%s, want c5.large/%s", in.InstanceType, *in.ImageId, testAMI)
	}
	if in.State.Name != types.InstanceStateNamePending || *in.State.Code != 0 {
		t.Errorf("state = %s/%d, want pending/0", in.State.Name, *in.State.Code)
	}
	if in.InstanceLifecycle != types.InstanceLifecycleTypeSpot || aws.ToString(in.SpotInstanceRequestId) == "" {
		t.Errorf("lifecycle = %q, spot request %q; want a spot instance", in.InstanceLifecycle, aws.ToString(in.SpotInstanceRequestId))
	}
	if *in.Placement.AvailabilityZone != "us-east-1a" || aws.ToString(in.SubnetId) == "" || aws.ToString(in.PrivateIpAddress) == "" {
		t.Errorf("placement = %s subnet %s ip %s, want us-east-1a in its default subnet", *in.Placement.AvailabilityZone,
			aws.ToString(in.SubnetId), aws.ToString(in.PrivateIpAddress))
	}
	tags := tagMap(in.Tags)
	for k, v := range map[string]string{"Name": "web-1", "spotmax:group": "web", "aws:ec2launchtemplate:id": ltID, "aws:ec2launchtemplate:version": "1"} {
		if tags[k] != v {
			t.Errorf("tag %s = %q, want %q (tags %v)", k, tags[k], v, tags)
		}
	}
	if in.MetadataOptions.HttpTokens != types.HttpTokensStateRequired || in.MetadataOptions.InstanceMetadataTags != types.InstanceMetadataTagsStateEnabled {
		t.Errorf("metadata options = %+v, want tokens required and tags enabled", *in.MetadataOptions)
	}
	var devs []string
	var dataVol string
	for _, bd := range in.BlockDeviceMappings {
		devs = append(devs, fmt.Sprintf("%s:%v", *bd.DeviceName, *bd.Ebs.DeleteOnTermination))
		if *bd.DeviceName == "/dev/sdf" {
			dataVol = *bd.Ebs.VolumeId
		}
	}
	if fmt.Sprint(devs) != "[/dev/xvda:true /dev/sdf:false]" {
		t.Errorf("block devices = %v, want root with DeleteOnTermination and /dev/sdf without", devs)
	}
	v, ok := env.Region().Volume(dataVol)
	if !ok || v.Size != 20 || v.Type != "gp3" || v.Tags["owner"] != "web" || v.Attachment == nil || v.Attachment.InstanceID != *in.InstanceId {
		t.Errorf("data volume = %+v, want 20 GiB gp3 tagged owner=web attached to %s", v, *in.InstanceId)
	}

	// The launched instance becomes running after the pending latency.
	env.Region().Advance(sim.FastLatencies().Pending)
	got := ec2Describe(t, c, *in.InstanceId)
	if got[0].State.Name != types.InstanceStateNameRunning || *got[0].State.Code != 16 {
		t.Errorf("state after pending latency = %s, want running", got[0].State.Name)
	}
	if got[0].LaunchTime == nil || got[0].LaunchTime.IsZero() {
		t.Errorf("launch time missing")
	}
}

func TestEC2RunInstancesBlockDeviceOverrides(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ltID := ec2Template(t, c, "web", spotTemplateData())
	lt := &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(ltID)}

	// NoDevice drops the template's data volume.
	ins := ec2Run(t, c, &ec2.RunInstancesInput{LaunchTemplate: lt,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdf"), NoDevice: aws.String("")}}})
	if n := len(ins[0].BlockDeviceMappings); n != 1 {
		t.Errorf("with NoDevice: %d block devices, want only the root", n)
	}

	// An override that only flips DeleteOnTermination keeps the template's size and type.
	ins = ec2Run(t, c, &ec2.RunInstancesInput{LaunchTemplate: lt,
		BlockDeviceMappings: []types.BlockDeviceMapping{
			{DeviceName: aws.String("/dev/sdf"), Ebs: &types.EbsBlockDevice{DeleteOnTermination: aws.Bool(true)}},
			{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(30), VolumeType: types.VolumeTypeGp2}},
		}})
	for _, bd := range ins[0].BlockDeviceMappings {
		v, _ := env.Region().Volume(*bd.Ebs.VolumeId)
		got := fmt.Sprintf("%d/%s/%v", v.Size, v.Type, *bd.Ebs.DeleteOnTermination)
		want := map[string]string{"/dev/sdf": "20/gp3/true", "/dev/xvda": "30/gp2/true"}[*bd.DeviceName]
		if got != want {
			t.Errorf("%s = %s, want %s", *bd.DeviceName, got, want)
		}
	}
}

func TestEC2RunInstancesPlacement(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ins := ec2Run(t, c, &ec2.RunInstancesInput{InstanceType: types.InstanceTypeM5Large,
		Placement: &types.Placement{AvailabilityZone: aws.String("us-east-1b")}})
	if az := *ins[0].Placement.AvailabilityZone; az != "us-east-1b" {
		t.Errorf("AZ = %s, want us-east-1b", az)
	}
	if ins[0].InstanceLifecycle != "" {
		t.Errorf("on-demand instance has lifecycle %q, want none", ins[0].InstanceLifecycle)
	}
	subnets, err := c.DescribeSubnets(context.Background(), &ec2.DescribeSubnetsInput{Filters: []types.Filter{
		ec2Filter("availability-zone", "us-east-1c"), ec2Filter("default-for-az", "true")}})
	if err != nil || len(subnets.Subnets) != 1 {
		t.Fatalf("default subnet of us-east-1c: %v, %v", subnets, err)
	}
	ins = ec2Run(t, c, &ec2.RunInstancesInput{SubnetId: subnets.Subnets[0].SubnetId})
	if az := *ins[0].Placement.AvailabilityZone; az != "us-east-1c" || *ins[0].SubnetId != *subnets.Subnets[0].SubnetId {
		t.Errorf("AZ = %s subnet %s, want us-east-1c in %s", az, *ins[0].SubnetId, *subnets.Subnets[0].SubnetId)
	}
	if n := len(env.Region().Instances()); n != 2 {
		t.Errorf("region has %d instances, want 2", n)
	}

	_, err = c.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1),
		MaxCount: aws.Int32(1), SubnetId: aws.String("subnet-00000000000000000")})
	ec2WantErr(t, err, "InvalidSubnetID.NotFound", "subnet-00000000000000000")
	_, err = c.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1),
		MaxCount: aws.Int32(1), Placement: &types.Placement{AvailabilityZone: aws.String("us-east-1z")}})
	ec2WantErr(t, err, "InvalidParameterValue", "us-east-1z")
	_, err = c.RunInstances(context.Background(), &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("nope")}})
	ec2WantErr(t, err, "InvalidLaunchTemplateName.NotFoundException", "nope")
}

func TestEC2RunInstancesClientToken(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	in := func() *ec2.RunInstancesInput {
		return &ec2.RunInstancesInput{ClientToken: aws.String("token-1"), InstanceType: types.InstanceTypeT3Medium}
	}
	first := ec2Run(t, c, in())
	second := ec2Run(t, c, in())
	if *first[0].InstanceId != *second[0].InstanceId {
		t.Errorf("same client token launched %s and %s, want one instance", *first[0].InstanceId, *second[0].InstanceId)
	}
	if n := len(env.Region().Instances()); n != 1 {
		t.Errorf("region has %d instances, want 1", n)
	}
}

func TestEC2RunInstancesSpotPriceAndCapacity(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	spot := &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot,
		SpotOptions: &types.SpotMarketOptions{MaxPrice: aws.String("0.001")}}
	_, err := c.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeM5Large,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceMarketOptions: spot})
	price, _ := sim.SpotPrice("m5.large", "us-east-1a")
	ec2WantErr(t, err, "SpotMaxPriceTooLow", fmt.Sprintf("%.6f", price))

	env.Region().SetSpotPrice("m5.large", "us-east-1a", 0.0005)
	ins := ec2Run(t, c, &ec2.RunInstancesInput{InstanceType: types.InstanceTypeM5Large, InstanceMarketOptions: spot})
	if ins[0].InstanceLifecycle != types.InstanceLifecycleTypeSpot {
		t.Errorf("lifecycle = %q, want spot", ins[0].InstanceLifecycle)
	}

	// A dry spot pool fails the launch; MinCount < MaxCount launches what fits.
	env.Region().SetCapacity(sim.PoolKey{InstanceType: "c5.large", AZ: "us-east-1a", Market: sim.MarketSpot}, 0)
	_, err = c.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeC5Large,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceMarketOptions: &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot}})
	ec2WantErr(t, err, "InsufficientInstanceCapacity", "Spot capacity")
	env.Region().SetCapacity(sim.PoolKey{InstanceType: "c5.large", AZ: "us-east-1a", Market: sim.MarketOnDemand}, 2)
	ins = ec2Run(t, c, &ec2.RunInstancesInput{InstanceType: types.InstanceTypeC5Large, MinCount: aws.Int32(1), MaxCount: aws.Int32(3)})
	if len(ins) != 2 {
		t.Errorf("MinCount 1 MaxCount 3 in a pool of 2 launched %d, want 2", len(ins))
	}
}

func TestEC2DescribeInstancesFilters(t *testing.T) {
	_, c := ec2Start(t, sim.Options{})
	spot := ec2Run(t, c, &ec2.RunInstancesInput{InstanceType: types.InstanceTypeM5Large,
		InstanceMarketOptions: &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance,
			Tags: []types.Tag{{Key: aws.String("spotmax:group"), Value: aws.String("web")}}}}})[0]
	od := ec2Run(t, c, &ec2.RunInstancesInput{InstanceType: types.InstanceTypeC5Large,
		Placement: &types.Placement{AvailabilityZone: aws.String("us-east-1b")},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance,
			Tags: []types.Tag{{Key: aws.String("spotmax:group"), Value: aws.String("worker")}}}}})[0]
	other := ec2Run(t, c, &ec2.RunInstancesInput{InstanceType: types.InstanceTypeC5Large})[0]
	if _, err := c.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{*other.InstanceId}}); err != nil {
		t.Fatal(err)
	}
	all := []string{*spot.InstanceId, *od.InstanceId, *other.InstanceId}
	for _, tc := range []struct {
		filters []types.Filter
		want    []string
	}{
		{[]types.Filter{ec2Filter("tag:spotmax:group", "web")}, []string{*spot.InstanceId}},
		{[]types.Filter{ec2Filter("tag:spotmax:group", "web", "worker")}, []string{*spot.InstanceId, *od.InstanceId}},
		{[]types.Filter{ec2Filter("tag:spotmax:group", "w*")}, []string{*spot.InstanceId, *od.InstanceId}},
		{[]types.Filter{ec2Filter("tag-key", "spotmax:group")}, []string{*spot.InstanceId, *od.InstanceId}},
		{[]types.Filter{ec2Filter("instance-lifecycle", "spot")}, []string{*spot.InstanceId}},
		{[]types.Filter{ec2Filter("instance-state-name", "pending", "running")}, []string{*spot.InstanceId, *od.InstanceId}},
		{[]types.Filter{ec2Filter("instance-state-name", "shutting-down")}, []string{*other.InstanceId}},
		{[]types.Filter{ec2Filter("availability-zone", "us-east-1b")}, []string{*od.InstanceId}},
		{[]types.Filter{ec2Filter("instance-type", "c5.large")}, []string{*od.InstanceId, *other.InstanceId}},
		{[]types.Filter{ec2Filter("subnet-id", *od.SubnetId)}, []string{*od.InstanceId}},
		{[]types.Filter{ec2Filter("instance-id", *spot.InstanceId, *od.InstanceId), ec2Filter("instance-type", "c5.large")}, []string{*od.InstanceId}},
		{nil, all},
	} {
		out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: tc.filters})
		if err != nil {
			t.Fatalf("filters %v: %v", tc.filters, err)
		}
		var got []types.Instance
		for _, r := range out.Reservations {
			got = append(got, r.Instances...)
		}
		want := sortStrings(tc.want)
		if fmt.Sprint(ec2IDs(got)) != fmt.Sprint(want) {
			var names []string
			for _, f := range tc.filters {
				names = append(names, fmt.Sprintf("%s=%v", *f.Name, f.Values))
			}
			t.Errorf("filters %v: got %v, want %v", names, ec2IDs(got), want)
		}
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func TestEC2DescribeInstancesPagination(t *testing.T) {
	_, c := ec2Start(t, sim.Options{})
	var launched []types.Instance
	for i := 0; i < 4; i++ {
		launched = append(launched, ec2Run(t, c, &ec2.RunInstancesInput{MinCount: aws.Int32(3)})...)
	}
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	var got []types.Instance
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		n := 0
		for _, r := range out.Reservations {
			n += len(r.Instances)
			got = append(got, r.Instances...)
		}
		if n > 5 {
			t.Errorf("page %d has %d instances, want at most 5", pages, n)
		}
	}
	if pages != 3 || fmt.Sprint(ec2IDs(got)) != fmt.Sprint(ec2IDs(launched)) {
		t.Errorf("%d pages with %v, want 3 pages with %v", pages, ec2IDs(got), ec2IDs(launched))
	}
	_, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{MaxResults: aws.Int32(2)})
	ec2WantErr(t, err, "InvalidParameterValue", "maxResults")
	_, err = c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{NextToken: aws.String("garbage")})
	ec2WantErr(t, err, "InvalidNextToken", "garbage")
}

func TestEC2DescribeInstancesErrors(t *testing.T) {
	_, c := ec2Start(t, sim.Options{})
	live := ec2Run(t, c, &ec2.RunInstancesInput{})[0]
	_, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", "The instance ID 'i-0123456789abcdef0' does not exist")
	_, err = c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{*live.InstanceId, "i-0123456789abcdef0", "i-0123456789abcdef1"}})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", "The instance IDs 'i-0123456789abcdef0, i-0123456789abcdef1' do not exist")
	_, err = c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{"web-1"}})
	ec2WantErr(t, err, "InvalidInstanceID.Malformed", `Invalid id: "web-1"`)
	_, err = c.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", "i-0123456789abcdef0")
}

func TestEC2TerminateInstances(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	in := ec2Run(t, c, &ec2.RunInstancesInput{})[0]
	env.Region().Advance(sim.FastLatencies().Pending)
	out, err := c.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{*in.InstanceId}})
	if err != nil {
		t.Fatal(err)
	}
	ch := out.TerminatingInstances[0]
	if *ch.InstanceId != *in.InstanceId || ch.PreviousState.Name != types.InstanceStateNameRunning || ch.CurrentState.Name != types.InstanceStateNameShuttingDown {
		t.Errorf("state change = %s %s → %s, want running → shutting-down", *ch.InstanceId, ch.PreviousState.Name, ch.CurrentState.Name)
	}
	env.Region().Advance(sim.FastLatencies().ShuttingDown)
	got := ec2Describe(t, c, *in.InstanceId)[0]
	if got.State.Name != types.InstanceStateNameTerminated || *got.State.Code != 48 {
		t.Errorf("state = %s, want terminated", got.State.Name)
	}
	if got.StateReason == nil || *got.StateReason.Code != "Client.UserInitiatedShutdown" {
		t.Errorf("state reason = %+v, want Client.UserInitiatedShutdown", got.StateReason)
	}
	out, err = c.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{*in.InstanceId}})
	if err != nil || out.TerminatingInstances[0].PreviousState.Name != types.InstanceStateNameTerminated {
		t.Errorf("terminating again: %v, %v; want terminated → terminated", out, err)
	}
}

func TestEC2InstanceWaiters(t *testing.T) {
	env, c := ec2Start(t, sim.Options{TimeScale: 200})
	in := ec2Run(t, c, &ec2.RunInstancesInput{})[0]
	ids := []string{*in.InstanceId}
	ctx := context.Background()
	running := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	})
	if err := running.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, 10*time.Second); err != nil {
		t.Fatalf("waiting for running: %v", err)
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatal(err)
	}
	terminated := ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	})
	if err := terminated.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, 10*time.Second); err != nil {
		t.Fatalf("waiting for terminated: %v", err)
	}
	if got, _ := env.Region().Instance(*in.InstanceId); got.State != sim.StateTerminated {
		t.Errorf("state = %s, want terminated", got.State)
	}
}

func TestEC2StopStartAndModifyInstanceType(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	in := ec2Run(t, c, &ec2.RunInstancesInput{InstanceType: types.InstanceTypeM5Large})[0]
	id := *in.InstanceId
	env.Region().Advance(sim.FastLatencies().Pending)
	_, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id),
		InstanceType: &types.AttributeValue{Value: aws.String("m5.xlarge")}})
	ec2WantErr(t, err, "IncorrectInstanceState", "not in the 'stopped' state")
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(sim.FastLatencies().Stopping)
	if _, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id),
		InstanceType: &types.AttributeValue{Value: aws.String("m5.xlarge")}}); err != nil {
		t.Fatal(err)
	}
	attr, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: types.InstanceAttributeNameInstanceType})
	if err != nil || aws.ToString(attr.InstanceType.Value) != "m5.xlarge" {
		t.Fatalf("instance type attribute = %v, %v; want m5.xlarge", attr, err)
	}
	out, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
	if err != nil || out.StartingInstances[0].CurrentState.Name != types.InstanceStateNamePending {
		t.Fatalf("StartInstances = %v, %v; want pending", out, err)
	}
	env.Region().Advance(sim.FastLatencies().Pending)
	if got := ec2Describe(t, c, id)[0]; got.State.Name != types.InstanceStateNameRunning || got.InstanceType != "m5.xlarge" {
		t.Errorf("after start: %s %s, want running m5.xlarge", got.State.Name, got.InstanceType)
	}

	// A one-time spot instance cannot be stopped.
	spot := ec2Run(t, c, &ec2.RunInstancesInput{InstanceMarketOptions: &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot}})[0]
	_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{*spot.InstanceId}})
	ec2WantErr(t, err, "UnsupportedOperation", "one-time Spot Instance request")
}
