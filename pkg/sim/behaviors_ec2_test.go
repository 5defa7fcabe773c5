package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// awsEC2Start serves a region with AWS's behaviours (AWSBehaviors) and returns an EC2 client.
func awsEC2Start(t *testing.T, opts sim.Options) (*simtest.Env, *ec2.Client) {
	t.Helper()
	b := sim.AWSBehaviors()
	opts.Behaviors = &b
	return ec2Start(t, opts)
}

// runOne launches one instance and returns it.
func runOne(t *testing.T, c *ec2.Client, in *ec2.RunInstancesInput) types.Instance {
	t.Helper()
	if in.ImageId == nil && in.LaunchTemplate == nil {
		in.ImageId = aws.String(testAMI)
	}
	in.MinCount, in.MaxCount = aws.Int32(1), aws.Int32(1)
	out, err := c.RunInstances(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out.Instances[0]
}

func describeIDs(t *testing.T, c *ec2.Client, in *ec2.DescribeInstancesInput) []string {
	t.Helper()
	out, err := c.DescribeInstances(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			ids = append(ids, *i.InstanceId)
		}
	}
	sort.Strings(ids)
	return ids
}

func TestEC2LaunchVisibilityWindow(t *testing.T) {
	env, c := awsEC2Start(t, sim.Options{})
	ctx := context.Background()
	old := runOne(t, c, &ec2.RunInstancesInput{})
	env.Region().Advance(3 * time.Second)
	in := runOne(t, c, &ec2.RunInstancesInput{})
	id := *in.InstanceId
	notFound := "The instance ID '" + id + "' does not exist"

	_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", notFound)
	if got := describeIDs(t, c, &ec2.DescribeInstancesInput{}); strings.Join(got, " ") != *old.InstanceId {
		t.Errorf("describe without ids = %v, want only the older %s", got, *old.InstanceId)
	}
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", notFound)
	_, err = c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{id}})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", notFound)
	_, err = c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id),
		DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(false)}})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", notFound)
	_, err = c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: types.InstanceAttributeNameInstanceType})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", notFound)
	_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", notFound)
	_, err = c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", notFound)
	vol, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: in.Placement.AvailabilityZone, Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(time.Second)
	_, err = c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: vol.VolumeId, InstanceId: aws.String(id), Device: aws.String("/dev/sdf")})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", notFound)
	_, err = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", notFound)
	if got, ok := env.Region().Instance(id); !ok || got.State == sim.StateShuttingDown {
		t.Fatalf("the refused TerminateInstances changed the instance: %+v", got)
	}
	if env.Region().EC2Visible(id) {
		t.Error("EC2Visible inside the window = true")
	}

	env.Region().Advance(2 * time.Second) // 3 s after the launch
	if !env.Region().EC2Visible(id) {
		t.Error("EC2Visible after the window = false")
	}
	if got := describeIDs(t, c, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}); len(got) != 1 {
		t.Errorf("describe by id after the window = %v", got)
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Errorf("terminate after the window: %v", err)
	}

	// Switched off, an instance is visible at once.
	b := sim.AWSBehaviors()
	b.EC2.LaunchVisibility = 0
	env.Region().SetBehaviors(b)
	in2 := runOne(t, c, &ec2.RunInstancesInput{})
	if got := describeIDs(t, c, &ec2.DescribeInstancesInput{InstanceIds: []string{*in2.InstanceId}}); len(got) != 1 {
		t.Errorf("describe with LaunchVisibility 0 = %v", got)
	}
}

func TestEC2TagVisibilityWindow(t *testing.T) {
	env, c := awsEC2Start(t, sim.Options{})
	ctx := context.Background()
	in := runOne(t, c, &ec2.RunInstancesInput{TagSpecifications: []types.TagSpecification{
		{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("spotmax:group"), Value: aws.String("web")}}},
		{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("role"), Value: aws.String("root")}}}}})
	id := *in.InstanceId
	env.Region().Advance(3 * time.Second) // past the launch window, past the tag window too
	byTag := &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:spotmax:group"), Values: []string{"web"}}}}
	if got := describeIDs(t, c, byTag); len(got) != 1 {
		t.Fatalf("tag filter after both windows = %v", got)
	}

	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("spotmax:state"), Value: aws.String("replacing")}}}); err != nil {
		t.Fatal(err)
	}
	byNew := &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:spotmax:state"), Values: []string{"replacing"}}}}
	byKey := &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{"spotmax:state"}}}}
	if got := describeIDs(t, c, byNew); len(got) != 0 {
		t.Errorf("tag filter right after CreateTags = %v, want nothing yet", got)
	}
	if got := describeIDs(t, c, byKey); len(got) != 0 {
		t.Errorf("tag-key filter right after CreateTags = %v, want nothing yet", got)
	}
	// The instance itself shows the tag at once; only filters lag.
	if got := describeIDs(t, c, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}); len(got) != 1 {
		t.Errorf("describe by id = %v", got)
	}
	if got := describeIDs(t, c, byTag); len(got) != 1 {
		t.Errorf("an older tag stopped matching: %v", got)
	}
	env.Region().Advance(time.Second)
	if got := describeIDs(t, c, byNew); len(got) != 1 {
		t.Errorf("tag filter after the window = %v", got)
	}

	// Volumes tagged at launch: matched after the window only.
	in2 := runOne(t, c, &ec2.RunInstancesInput{TagSpecifications: []types.TagSpecification{
		{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("role"), Value: aws.String("second")}}}}})
	volsByTag := &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("tag:role"), Values: []string{"second"}}}}
	if out, err := c.DescribeVolumes(ctx, volsByTag); err != nil || len(out.Volumes) != 0 {
		t.Errorf("volume tag filter right after the launch = %v, %v; want nothing yet", out, err)
	}
	env.Region().Advance(time.Second)
	if out, err := c.DescribeVolumes(ctx, volsByTag); err != nil || len(out.Volumes) != 1 || *out.Volumes[0].Attachments[0].InstanceId != *in2.InstanceId {
		t.Errorf("volume tag filter after the window = %+v, %v", out, err)
	}
}

func TestEC2CapacityErrorsAreServerErrors(t *testing.T) {
	env, _ := awsEC2Start(t, sim.Options{})
	ctx := context.Background()
	env.Region().SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: "us-east-1a", Market: sim.MarketSpot}, 0)
	in := &ec2.RunInstancesInput{ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeM5Large, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		Placement:             &types.Placement{AvailabilityZone: aws.String("us-east-1a")},
		InstanceMarketOptions: &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot}}

	once := ec2.NewFromConfig(env.Config, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	_, err := once.RunInstances(ctx, in)
	ec2WantErr(t, err, "InsufficientInstanceCapacity", "There is no Spot capacity available")
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusInternalServerError {
		t.Fatalf("status of InsufficientInstanceCapacity = %v, want 500", err)
	}
	// The SDK's standard retryer takes a 500 for a transient fault and tries again.
	env.Region().ResetCalls()
	standard := ec2.NewFromConfig(env.Config, func(o *ec2.Options) { o.Retryer = retry.NewStandard() })
	_, err = standard.RunInstances(ctx, in)
	ec2WantErr(t, err, "InsufficientInstanceCapacity", "Spot capacity")
	if n := runCalls(env.Region()); n != 3 {
		t.Errorf("RunInstances calls with the standard retryer = %d, want 3 (retried as a server error)", n)
	}
	// spotmax's retry policy (simtest's clients use it) takes it as final: one call.
	env.Region().ResetCalls()
	_, err = ec2.NewFromConfig(env.Config).RunInstances(ctx, in)
	ec2WantErr(t, err, "InsufficientInstanceCapacity", "Spot capacity")
	if n := runCalls(env.Region()); n != 1 {
		t.Errorf("RunInstances calls with spotmax's retry policy = %d, want 1", n)
	}
	// Injected capacity faults are server errors too.
	env.Region().FailNext("ec2:RunInstances", "InsufficientHostCapacity", "Insufficient host capacity.")
	_, err = once.RunInstances(ctx, in)
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusInternalServerError {
		t.Errorf("status of an injected InsufficientHostCapacity = %v, want 500", err)
	}

	// Switched off (the kind world): a client error.
	env.Region().SetBehaviors(sim.KindBehaviors())
	_, err = once.RunInstances(ctx, in)
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest {
		t.Errorf("status in the kind world = %v, want 400", err)
	}
}

func runCalls(r *sim.Region) int {
	n := 0
	for _, c := range r.Calls() {
		if c.Action == "ec2:RunInstances" {
			n += c.Count
		}
	}
	return n
}

func TestEC2IdempotentParameterMismatch(t *testing.T) {
	env, c := awsEC2Start(t, sim.Options{})
	ctx := context.Background()
	in := func(typ types.InstanceType) *ec2.RunInstancesInput {
		return &ec2.RunInstancesInput{ImageId: aws.String(testAMI), InstanceType: typ, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			ClientToken: aws.String("replace-i-0123-1")}
	}
	first, err := c.RunInstances(ctx, in(types.InstanceTypeM5Large))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.RunInstances(ctx, in(types.InstanceTypeM5Large))
	if err != nil || *again.Instances[0].InstanceId != *first.Instances[0].InstanceId {
		t.Fatalf("same token, same parameters = %v, %v; want the first instance %s", again, err, *first.Instances[0].InstanceId)
	}
	_, err = c.RunInstances(ctx, in(types.InstanceTypeM5aLarge))
	ec2WantErr(t, err, "IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
	if n := len(env.Region().Instances()); n != 1 {
		t.Errorf("instances = %d, want 1", n)
	}

	env.Region().SetBehaviors(sim.KindBehaviors())
	kind, err := c.RunInstances(ctx, in(types.InstanceTypeM5aLarge))
	if err != nil || *kind.Instances[0].InstanceId != *first.Instances[0].InstanceId {
		t.Errorf("kind world: reused token = %v, %v; want the first instance", kind, err)
	}
}

func TestEC2InstanceTypeCatalogAndOfferings(t *testing.T) {
	env, c := awsEC2Start(t, sim.Options{})
	ctx := context.Background()
	_, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(testAMI), InstanceType: "m5.larg", MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	ec2WantErr(t, err, "InvalidParameterValue", "Invalid value 'm5.larg' for InstanceType.")

	_, err = c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeM7iLarge, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		Placement: &types.Placement{AvailabilityZone: aws.String("us-east-1c")}})
	ec2WantErr(t, err, "Unsupported", "Your requested instance type (m7i.large) is not supported in your requested Availability Zone (us-east-1c). "+
		"Please retry your request by not specifying an Availability Zone or choosing us-east-1a, us-east-1b.")
	// Without a zone, EC2 picks one that offers the type.
	in := runOne(t, c, &ec2.RunInstancesInput{InstanceType: types.InstanceTypeR6iLarge})
	if az := *in.Placement.AvailabilityZone; az == "us-east-1a" {
		t.Errorf("r6i.large launched in %s, which does not offer it", az)
	}
	env.Region().Advance(3 * time.Second)
	_, err = c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: in.InstanceId,
		InstanceType: &types.AttributeValue{Value: aws.String("m5.larg")}})
	ec2WantErr(t, err, "InvalidParameterValue", "Invalid value 'm5.larg' for InstanceType.")

	offers := func(filters ...types.Filter) []string {
		var got []string
		p := ec2.NewDescribeInstanceTypeOfferingsPaginator(c, &ec2.DescribeInstanceTypeOfferingsInput{
			LocationType: types.LocationTypeAvailabilityZone, Filters: filters})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range out.InstanceTypeOfferings {
				got = append(got, string(o.InstanceType)+"@"+*o.Location)
			}
		}
		sort.Strings(got)
		return got
	}
	typ := func(v ...string) types.Filter { return types.Filter{Name: aws.String("instance-type"), Values: v} }
	loc := func(v ...string) types.Filter { return types.Filter{Name: aws.String("location"), Values: v} }
	if got := strings.Join(offers(typ("m7i.large", "m5.large")), " "); got != "m5.large@us-east-1a m5.large@us-east-1b m5.large@us-east-1c m7i.large@us-east-1a m7i.large@us-east-1b" {
		t.Errorf("offerings of m7i.large and m5.large = %s", got)
	}
	if got := offers(typ("m7i.large"), loc("us-east-1c")); len(got) != 0 {
		t.Errorf("m7i.large in us-east-1c = %v, want none", got)
	}
	if got := offers(typ("m5.larg")); len(got) != 0 {
		t.Errorf("offerings of an unknown type = %v", got)
	}
}

func TestEC2LaunchTemplateNetworkInterfaces(t *testing.T) {
	env, c := awsEC2Start(t, sim.Options{})
	ctx := context.Background()
	subnetB, _ := env.Region().DefaultSubnet("us-east-1b")
	subnetC, _ := env.Region().DefaultSubnet("us-east-1c")
	lt, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("eni"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeM5Large,
			NetworkInterfaces: []types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{{DeviceIndex: aws.Int32(0),
				SubnetId: aws.String(subnetB), Groups: []string{"sg-0aaaaaaaaaaaaaaa1", "sg-0aaaaaaaaaaaaaaa2"},
				AssociatePublicIpAddress: aws.Bool(true), DeleteOnTermination: aws.Bool(true)}}}})
	if err != nil {
		t.Fatal(err)
	}
	vers, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId})
	if err != nil {
		t.Fatal(err)
	}
	nis := vers.LaunchTemplateVersions[0].LaunchTemplateData.NetworkInterfaces
	if len(nis) != 1 || *nis[0].DeviceIndex != 0 || *nis[0].SubnetId != subnetB || strings.Join(nis[0].Groups, ",") != "sg-0aaaaaaaaaaaaaaa1,sg-0aaaaaaaaaaaaaaa2" ||
		!*nis[0].AssociatePublicIpAddress {
		t.Fatalf("template network interfaces = %+v", nis)
	}

	ref := &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("eni")}
	in := runOne(t, c, &ec2.RunInstancesInput{LaunchTemplate: ref})
	if *in.SubnetId != subnetB || *in.Placement.AvailabilityZone != "us-east-1b" || len(in.SecurityGroups) != 2 || *in.SecurityGroups[0].GroupId != "sg-0aaaaaaaaaaaaaaa1" {
		t.Errorf("instance from the template: subnet %s az %s groups %+v", *in.SubnetId, *in.Placement.AvailabilityZone, in.SecurityGroups)
	}

	_, err = c.RunInstances(ctx, &ec2.RunInstancesInput{LaunchTemplate: ref, SubnetId: aws.String(subnetC), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	ec2WantErr(t, err, "InvalidParameterCombination", "Network interfaces and an instance-level subnet ID may not be specified on the same request")
	_, err = c.RunInstances(ctx, &ec2.RunInstancesInput{LaunchTemplate: ref, SecurityGroupIds: []string{"sg-0bbbbbbbbbbbbbbb1"}, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	ec2WantErr(t, err, "InvalidParameterCombination", "Network interfaces and an instance-level security groups may not be specified on the same request")

	// The call's own interfaces replace the template's.
	in2 := runOne(t, c, &ec2.RunInstancesInput{LaunchTemplate: ref, NetworkInterfaces: []types.InstanceNetworkInterfaceSpecification{{
		DeviceIndex: aws.Int32(0), SubnetId: aws.String(subnetC), Groups: []string{"sg-0ccccccccccccccc1"}}}})
	if *in2.SubnetId != subnetC || len(in2.SecurityGroups) != 1 || *in2.SecurityGroups[0].GroupId != "sg-0ccccccccccccccc1" {
		t.Errorf("instance with the call's interfaces: subnet %s groups %+v", *in2.SubnetId, in2.SecurityGroups)
	}
	// And without a template.
	in3 := runOne(t, c, &ec2.RunInstancesInput{NetworkInterfaces: []types.InstanceNetworkInterfaceSpecification{{
		DeviceIndex: aws.Int32(0), SubnetId: aws.String(subnetC), Groups: []string{"sg-0ccccccccccccccc2"}}}})
	if *in3.SubnetId != subnetC || len(in3.SecurityGroups) != 1 || len(in3.NetworkInterfaces) != 1 || len(in3.NetworkInterfaces[0].Groups) != 1 {
		t.Errorf("instance with interfaces and no template: subnet %s groups %+v", *in3.SubnetId, in3.SecurityGroups)
	}
}

func TestEC2HibernateAndStopInterruptions(t *testing.T) {
	env, c := awsEC2Start(t, sim.Options{})
	spot := func(behavior types.InstanceInterruptionBehavior) string {
		in := runOne(t, c, &ec2.RunInstancesInput{InstanceMarketOptions: &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot,
			SpotOptions: &types.SpotMarketOptions{InstanceInterruptionBehavior: behavior, SpotInstanceType: types.SpotInstanceTypePersistent}}})
		return *in.InstanceId
	}
	hib, stop := spot(types.InstanceInterruptionBehaviorHibernate), spot(types.InstanceInterruptionBehaviorStop)
	env.Region().Advance(sim.FastLatencies().Pending)
	for _, id := range []string{hib, stop} {
		if err := env.Region().Interrupt(id, ""); err != nil {
			t.Fatal(err)
		}
	}
	h, _ := env.Region().Instance(hib)
	if h.Interruption == nil || h.Interruption.Action != "hibernate" || !h.Interruption.Time.Equal(h.Interruption.Notice) {
		t.Fatalf("hibernate interruption = %+v, want its notice with no grace", h.Interruption)
	}
	s, _ := env.Region().Instance(stop)
	if s.Interruption == nil || s.Interruption.Time.Sub(s.Interruption.Notice) != 2*time.Minute {
		t.Fatalf("stop interruption = %+v, want two minutes of grace", s.Interruption)
	}
	env.Region().Step()
	if h, _ = env.Region().Instance(hib); h.State != sim.StateStopping {
		t.Errorf("hibernating instance right after its notice: %s, want stopping", h.State)
	}
	env.Region().Advance(2*time.Minute - time.Second)
	if s, _ = env.Region().Instance(stop); s.State != sim.StateRunning {
		t.Errorf("stop-interrupted instance before the two minutes: %s, want running", s.State)
	}
	env.Region().Advance(time.Second)
	if s, _ = env.Region().Instance(stop); s.State != sim.StateStopping {
		t.Errorf("stop-interrupted instance after the two minutes: %s, want stopping", s.State)
	}
}

// hopsTransport marks every request as having crossed n network hops (sim.IMDSHopsHeader).
type hopsTransport struct{ n string }

func (h hopsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(sim.IMDSHopsHeader, h.n)
	return http.DefaultTransport.RoundTrip(req)
}

func TestEC2IMDSTokensRequiredAndHopLimit(t *testing.T) {
	env, c := awsEC2Start(t, sim.Options{IMDS: true})
	ctx := context.Background()
	_, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("imdsv2"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(testAMI),
			MetadataOptions: &types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: types.LaunchTemplateHttpTokensStateRequired,
				HttpPutResponseHopLimit: aws.Int32(1)}}})
	if err != nil {
		t.Fatal(err)
	}
	in := runOne(t, c, &ec2.RunInstancesInput{LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("imdsv2")}})
	if in.MetadataOptions.HttpTokens != types.HttpTokensStateRequired || *in.MetadataOptions.HttpPutResponseHopLimit != 1 {
		t.Errorf("metadata options = %+v", in.MetadataOptions)
	}
	url := env.Region().IMDSURL(*in.InstanceId)
	if url == "" {
		t.Fatal("no IMDS endpoint")
	}
	// IMDSv1 is refused.
	resp, err := http.Get(url + "/latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("IMDSv1 GET with HttpTokens required = %d, want 401", resp.StatusCode)
	}
	// A process on the instance (one hop) gets a token and its metadata.
	onHost := imds.New(imds.Options{Endpoint: url})
	if out, err := onHost.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"}); err != nil {
		t.Errorf("IMDSv2 from the instance: %v", err)
	} else {
		_ = out.Content.Close()
	}
	// A container behind a bridge (two hops) never gets the token response; its client gives up.
	inContainer := imds.New(imds.Options{Endpoint: url, HTTPClient: &http.Client{Transport: hopsTransport{"2"}, Timeout: 500 * time.Millisecond}})
	start := time.Now()
	if _, err := inContainer.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"}); err == nil {
		t.Error("IMDSv2 from two hops away with hop limit 1 succeeded")
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("the two-hop client failed after %v, want a timeout (no answer)", d)
	}
	// Hop limit 2 lets the container through.
	in2 := runOne(t, c, &ec2.RunInstancesInput{MetadataOptions: &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateRequired,
		HttpPutResponseHopLimit: aws.Int32(2)}})
	two := imds.New(imds.Options{Endpoint: env.Region().IMDSURL(*in2.InstanceId), HTTPClient: &http.Client{Transport: hopsTransport{"2"}, Timeout: 2 * time.Second}})
	if out, err := two.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"}); err != nil {
		t.Errorf("IMDSv2 from two hops with hop limit 2: %v", err)
	} else {
		_ = out.Content.Close()
	}
}

func TestEC2DescribeVolumesMaxResultsCapped(t *testing.T) {
	env, c := awsEC2Start(t, sim.Options{})
	ctx := context.Background()
	for i := 0; i < 501; i++ {
		if _, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(1000)})
	if err != nil {
		t.Fatalf("DescribeVolumes with MaxResults 1000: %v", err)
	}
	if len(out.Volumes) != 500 || out.NextToken == nil {
		t.Errorf("first page = %d volumes (next token %v), want 500 and a token", len(out.Volumes), out.NextToken != nil)
	}
	next, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(1000), NextToken: out.NextToken})
	if err != nil || len(next.Volumes) != 1 || next.NextToken != nil {
		t.Errorf("second page = %v, %v; want the last volume", next, err)
	}
	_, err = c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(4)})
	ec2WantErr(t, err, "InvalidParameterValue", "maxResults")

	env.Region().SetBehaviors(sim.KindBehaviors())
	_, err = c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(1000)})
	ec2WantErr(t, err, "InvalidParameterValue", "maxResults")
}

func TestEC2BehaviorsFromScenarioAndControl(t *testing.T) {
	s, err := sim.ParseScenario([]byte(`
region: us-east-1
behaviors: {base: kind, ec2: {launchVisibility: 5s, networkInterfaceRules: true}}
vpcs:
  - name: demo
    cidr: 10.0.0.0/16
    subnets:
      - {name: demo-a, az: us-east-1a, cidr: 10.0.0.0/20}
      - {name: demo-b, az: us-east-1b, cidr: 10.0.16.0/20}
launchTemplates:
  - name: eni
    imageId: ami-0abcdef1234567890
    instanceType: m5.large
    networkInterfaces:
      - {deviceIndex: 0, subnet: demo-b, securityGroupIds: [sg-0123456789abcdef0]}
`))
	if err != nil {
		t.Fatal(err)
	}
	opts := s.Options()
	if opts.Behaviors == nil || opts.Behaviors.EC2.LaunchVisibility.D() != 5*time.Second || !opts.Behaviors.EC2.NetworkInterfaceRules ||
		opts.Behaviors.EC2.CapacityServerErrors {
		t.Fatalf("scenario behaviours = %+v", opts.Behaviors)
	}
	env := simtest.Start(t, opts)
	if err := s.Apply(env.Region()); err != nil {
		t.Fatal(err)
	}
	c := ec2.NewFromConfig(env.Config)
	in := runOne(t, c, &ec2.RunInstancesInput{LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("eni")}})
	if *in.Placement.AvailabilityZone != "us-east-1b" || len(in.SecurityGroups) != 1 || *in.SecurityGroups[0].GroupId != "sg-0123456789abcdef0" {
		t.Errorf("instance from the scenario's template: az %s groups %+v", *in.Placement.AvailabilityZone, in.SecurityGroups)
	}
	if env.Region().EC2Visible(*in.InstanceId) {
		t.Error("instance visible inside the scenario's 5 s window")
	}

	// The control API writes windows as durations and takes them back.
	req, _ := http.NewRequest(http.MethodGet, env.URL()+"/_sim/behaviors", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if got["ec2"]["launchVisibility"] != "5s" || got["ec2"]["networkInterfaceRules"] != true {
		t.Errorf("GET /_sim/behaviors ec2 = %v", got["ec2"])
	}
	req, _ = http.NewRequest(http.MethodPut, env.URL()+"/_sim/behaviors", strings.NewReader(`{"ec2":{"launchVisibility":"2s","tagVisibility":0.5,"pageCaps":true}}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if b := env.Region().Behaviors().EC2; resp.StatusCode != http.StatusOK || b.LaunchVisibility.D() != 2*time.Second ||
		b.TagVisibility.D() != 500*time.Millisecond || !b.PageCaps || b.NetworkInterfaceRules {
		t.Errorf("PUT /_sim/behaviors: %d %+v", resp.StatusCode, b)
	}

	if _, err := sim.ParseScenario([]byte("region: us-east-1\nbehaviors: {ec2: {launchVisibility: soon}}\n")); err == nil ||
		!strings.Contains(err.Error(), "soon") {
		t.Errorf("a bad duration: %v", err)
	}
	if _, err := sim.ParseScenario([]byte("region: us-east-1\nlaunchTemplates:\n  - name: x1y\n    imageId: ami-0abcdef1234567890\n    networkInterfaces: [{deviceIndx: 0}]\n")); err == nil ||
		!strings.Contains(err.Error(), "deviceIndx") {
		t.Errorf("an unknown interface key: %v", err)
	}
}
