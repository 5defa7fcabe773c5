package sim_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
)

// ec2RunningInstance launches an on-demand instance in az and lets it reach running.
func ec2RunningInstance(t *testing.T, env interface{ Region() *sim.Region }, c *ec2.Client, az string) types.Instance {
	t.Helper()
	in := ec2Run(t, c, &ec2.RunInstancesInput{Placement: &types.Placement{AvailabilityZone: aws.String(az)}})[0]
	env.Region().Advance(sim.FastLatencies().Pending)
	return in
}

// ec2NewVolume creates a volume in az and lets it become available.
func ec2NewVolume(t *testing.T, env interface{ Region() *sim.Region }, c *ec2.Client, az string, tags ...types.Tag) string {
	t.Helper()
	in := &ec2.CreateVolumeInput{AvailabilityZone: aws.String(az), Size: aws.Int32(10), VolumeType: types.VolumeTypeGp3}
	if len(tags) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeVolume, Tags: tags}}
	}
	out, err := c.CreateVolume(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	env.Region().Advance(sim.FastLatencies().CreateVolume)
	return *out.VolumeId
}

func TestEC2CreateVolume(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	out, err := c.CreateVolume(context.Background(), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), Size: aws.Int32(50),
		VolumeType: types.VolumeTypeGp3, TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVolume,
			Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("data")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != types.VolumeStateCreating || *out.Size != 50 || *out.AvailabilityZone != "us-east-1b" || tagMap(out.Tags)["Name"] != "data" {
		t.Errorf("created volume = %s %d GiB in %s tags %v, want creating 50 GiB in us-east-1b with Name=data",
			out.State, *out.Size, *out.AvailabilityZone, tagMap(out.Tags))
	}
	env.Region().Advance(sim.FastLatencies().CreateVolume)
	if v := ec2Volume(t, c, *out.VolumeId); v.State != types.VolumeStateAvailable {
		t.Errorf("state after the create latency = %s, want available", v.State)
	}
	if v, _ := env.Region().Volume(*out.VolumeId); v.Marker == "" {
		t.Errorf("new volume has no content marker")
	}
	_, err = c.CreateVolume(context.Background(), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1z"), Size: aws.Int32(1)})
	ec2WantErr(t, err, "InvalidZone.NotFound", "us-east-1z")
	_, err = c.CreateVolume(context.Background(), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a")})
	ec2WantErr(t, err, "MissingParameter", "size")
	_, err = c.CreateVolume(context.Background(), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(20000)})
	ec2WantErr(t, err, "InvalidParameterValue", "too large")
}

func TestEC2AttachDetachMovesTheVolume(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	a := ec2RunningInstance(t, env, c, "us-east-1a")
	b := ec2RunningInstance(t, env, c, "us-east-1a")
	vol := ec2NewVolume(t, env, c, "us-east-1a")
	before, _ := env.Region().Volume(vol)

	att, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: a.InstanceId, Device: aws.String("/dev/sdf")})
	if err != nil {
		t.Fatal(err)
	}
	if att.State != types.VolumeAttachmentStateAttaching || *att.Device != "/dev/sdf" || *att.InstanceId != *a.InstanceId {
		t.Errorf("attachment = %s %s %s, want attaching /dev/sdf to %s", att.State, *att.Device, *att.InstanceId, *a.InstanceId)
	}
	if v := ec2Volume(t, c, vol); v.State != types.VolumeStateInUse || v.Attachments[0].State != types.VolumeAttachmentStateAttaching {
		t.Errorf("volume while attaching = %s/%s, want in-use/attaching", v.State, v.Attachments[0].State)
	}
	env.Region().Advance(sim.FastLatencies().Attach)
	v := ec2Volume(t, c, vol)
	if v.Attachments[0].State != types.VolumeAttachmentStateAttached || *v.Attachments[0].DeleteOnTermination {
		t.Errorf("attachment after the latency = %s (delete on termination %v), want attached, kept", v.Attachments[0].State, *v.Attachments[0].DeleteOnTermination)
	}
	var found bool
	for _, bd := range ec2Describe(t, c, *a.InstanceId)[0].BlockDeviceMappings {
		if *bd.DeviceName == "/dev/sdf" && *bd.Ebs.VolumeId == vol && bd.Ebs.Status == types.AttachmentStatusAttached {
			found = true
		}
	}
	if !found {
		t.Errorf("instance %s does not list %s at /dev/sdf", *a.InstanceId, vol)
	}

	// Attaching again fails, to any instance; another volume cannot take the device.
	_, err = c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: b.InstanceId, Device: aws.String("/dev/sdg")})
	ec2WantErr(t, err, "VolumeInUse", vol+" is already attached to an instance")
	other := ec2NewVolume(t, env, c, "us-east-1a")
	_, err = c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(other), InstanceId: a.InstanceId, Device: aws.String("/dev/sdf")})
	ec2WantErr(t, err, "InvalidParameterValue", "Attachment point /dev/sdf is already in use")

	det, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(vol), InstanceId: a.InstanceId})
	if err != nil {
		t.Fatal(err)
	}
	if det.State != types.VolumeAttachmentStateDetaching {
		t.Errorf("detach state = %s, want detaching", det.State)
	}
	if v := ec2Volume(t, c, vol); v.State != types.VolumeStateInUse || v.Attachments[0].State != types.VolumeAttachmentStateDetaching {
		t.Errorf("volume while detaching = %s/%s, want in-use/detaching", v.State, v.Attachments[0].State)
	}
	_, err = c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: b.InstanceId, Device: aws.String("/dev/sdf")})
	ec2WantErr(t, err, "IncorrectState", vol+" is in-use")
	env.Region().Advance(sim.FastLatencies().Detach)
	if v := ec2Volume(t, c, vol); v.State != types.VolumeStateAvailable || len(v.Attachments) != 0 {
		t.Errorf("volume after detach = %s with %d attachments, want available, none", v.State, len(v.Attachments))
	}
	if got, _ := env.Region().Instance(*a.InstanceId); len(got.BlockDevices) != 1 {
		t.Errorf("instance %s still has %d block devices, want only the root", *a.InstanceId, len(got.BlockDevices))
	}

	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: b.InstanceId, Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(sim.FastLatencies().Attach)
	after, _ := env.Region().Volume(vol)
	if after.Marker != before.Marker || after.Attachment == nil || after.Attachment.InstanceID != *b.InstanceId {
		t.Errorf("moved volume = marker %q attached %+v, want marker %q attached to %s", after.Marker, after.Attachment, before.Marker, *b.InstanceId)
	}
	if fd := env.Region().ForceDetaches(); len(fd) != 0 {
		t.Errorf("force detaches = %+v, want none", fd)
	}

	// A forced detach is recorded.
	if _, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(vol), Force: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	fd := env.Region().ForceDetaches()
	if len(fd) != 1 || fd[0].VolumeID != vol || fd[0].InstanceID != *b.InstanceId || fd[0].InstanceState != sim.StateRunning {
		t.Errorf("force detaches = %+v, want one of %s from running %s", fd, vol, *b.InstanceId)
	}
}

func TestEC2AttachVolumeRules(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	a := ec2RunningInstance(t, env, c, "us-east-1a")
	volB := ec2NewVolume(t, env, c, "us-east-1b")
	_, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(volB), InstanceId: a.InstanceId, Device: aws.String("/dev/sdf")})
	ec2WantErr(t, err, "InvalidVolume.ZoneMismatch",
		fmt.Sprintf("The volume '%s' is not in the same availability zone as instance '%s'", volB, *a.InstanceId))

	volA := ec2NewVolume(t, env, c, "us-east-1a")
	_, err = c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(volA), InstanceId: a.InstanceId, Device: aws.String("sdf")})
	ec2WantErr(t, err, "InvalidParameterValue", "not a valid EBS device name")
	_, err = c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String("vol-0123456789abcdef0"), InstanceId: a.InstanceId, Device: aws.String("/dev/sdf")})
	ec2WantErr(t, err, "InvalidVolume.NotFound", "The volume 'vol-0123456789abcdef0' does not exist.")

	pending := ec2Run(t, c, &ec2.RunInstancesInput{Placement: &types.Placement{AvailabilityZone: aws.String("us-east-1a")}})[0]
	_, err = c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(volA), InstanceId: pending.InstanceId, Device: aws.String("/dev/sdf")})
	ec2WantErr(t, err, "IncorrectInstanceState", "is not 'running'")

	creating, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: creating.VolumeId, InstanceId: a.InstanceId, Device: aws.String("/dev/sdg")})
	ec2WantErr(t, err, "IncorrectState", "creating")

	// Detaching: not attached, the root volume, the wrong instance.
	_, err = c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(volA)})
	ec2WantErr(t, err, "IncorrectState", fmt.Sprintf("Volume '%s' is in the 'available' state.", volA))
	root := *a.BlockDeviceMappings[0].Ebs.VolumeId
	_, err = c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(root)})
	ec2WantErr(t, err, "OperationNotPermitted", "Unable to detach root volume")
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(volA), InstanceId: a.InstanceId, Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(volA), InstanceId: pending.InstanceId})
	ec2WantErr(t, err, "InvalidAttachment.NotFound", volA)
}

func TestEC2VolumeWaiters(t *testing.T) {
	env, c := ec2Start(t, sim.Options{TimeScale: 200})
	ctx := context.Background()
	in := ec2Run(t, c, &ec2.RunInstancesInput{})[0]
	out, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: in.Placement.AvailabilityZone, Size: aws.Int32(5)})
	if err != nil {
		t.Fatal(err)
	}
	ids := &ec2.DescribeVolumesInput{VolumeIds: []string{*out.VolumeId}}
	available := ec2.NewVolumeAvailableWaiter(c, func(o *ec2.VolumeAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	})
	if err := available.Wait(ctx, ids, 10*time.Second); err != nil {
		t.Fatalf("waiting for available: %v", err)
	}
	running := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	})
	if err := running.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{*in.InstanceId}}, 10*time.Second); err != nil {
		t.Fatalf("waiting for running: %v", err)
	}
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: out.VolumeId, InstanceId: in.InstanceId, Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	inUse := ec2.NewVolumeInUseWaiter(c, func(o *ec2.VolumeInUseWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	})
	if err := inUse.Wait(ctx, ids, 10*time.Second); err != nil {
		t.Fatalf("waiting for in-use: %v", err)
	}
	if _, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: out.VolumeId}); err != nil {
		t.Fatal(err)
	}
	if err := available.Wait(ctx, ids, 10*time.Second); err != nil {
		t.Fatalf("waiting for available after detach: %v", err)
	}
	if v, _ := env.Region().Volume(*out.VolumeId); v.State != sim.VolumeAvailable {
		t.Errorf("state = %s, want available", v.State)
	}
}

func TestEC2DeleteVolume(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	in := ec2RunningInstance(t, env, c, "us-east-1a")
	vol := ec2NewVolume(t, env, c, "us-east-1a")
	marker := func() string { v, _ := env.Region().Volume(vol); return v.Marker }()
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: in.InstanceId, Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(vol)})
	ec2WantErr(t, err, "VolumeInUse", *in.InstanceId)
	if _, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(vol)}); err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(sim.FastLatencies().Detach)
	if _, err := c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(vol)}); err != nil {
		t.Fatal(err)
	}
	if v := ec2Volume(t, c, vol); v.State != types.VolumeStateDeleting {
		t.Errorf("state = %s, want deleting", v.State)
	}
	env.Region().Advance(sim.FastLatencies().DeleteVolume)
	_, err = c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{vol}})
	ec2WantErr(t, err, "InvalidVolume.NotFound", vol)
	del := env.Region().DeletedVolumes()
	if len(del) != 1 || del[0].VolumeID != vol || del[0].Marker != marker || del[0].Reason != "DeleteVolume" {
		t.Errorf("deleted volumes = %+v, want %s with marker %s", del, vol, marker)
	}
}

func TestEC2DeleteOnTermination(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	ec2Template(t, c, "data", &types.RequestLaunchTemplateData{ImageId: aws.String(testAMI),
		BlockDeviceMappings: []types.LaunchTemplateBlockDeviceMappingRequest{{DeviceName: aws.String("/dev/sdf"),
			Ebs: &types.LaunchTemplateEbsBlockDeviceRequest{VolumeSize: aws.Int32(10), DeleteOnTermination: aws.Bool(true)}}}})
	launch := func() (id, root, data string) {
		in := ec2Run(t, c, &ec2.RunInstancesInput{LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("data")}})[0]
		for _, bd := range in.BlockDeviceMappings {
			if *bd.DeviceName == "/dev/sdf" {
				data = *bd.Ebs.VolumeId
			} else {
				root = *bd.Ebs.VolumeId
			}
		}
		return *in.InstanceId, root, data
	}
	kept, keptRoot, keptData := launch()
	lost, _, lostData := launch()
	env.Region().Advance(sim.FastLatencies().Pending)
	keptMarker := func() string { v, _ := env.Region().Volume(keptData); return v.Marker }()

	if _, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(kept),
		BlockDeviceMappings: []types.InstanceBlockDeviceMappingSpecification{{DeviceName: aws.String("/dev/sdf"),
			Ebs: &types.EbsInstanceBlockDeviceSpecification{DeleteOnTermination: aws.Bool(false)}}}}); err != nil {
		t.Fatal(err)
	}
	attr, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(kept),
		Attribute: types.InstanceAttributeNameBlockDeviceMapping})
	if err != nil {
		t.Fatal(err)
	}
	for _, bd := range attr.BlockDeviceMappings {
		if want := *bd.DeviceName != "/dev/sdf"; *bd.Ebs.DeleteOnTermination != want {
			t.Errorf("%s DeleteOnTermination = %v, want %v", *bd.DeviceName, *bd.Ebs.DeleteOnTermination, want)
		}
	}
	if v := ec2Volume(t, c, keptData); *v.Attachments[0].DeleteOnTermination {
		t.Errorf("the volume's attachment still has DeleteOnTermination")
	}
	_, err = c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(kept),
		BlockDeviceMappings: []types.InstanceBlockDeviceMappingSpecification{{DeviceName: aws.String("/dev/sdz"),
			Ebs: &types.EbsInstanceBlockDeviceSpecification{DeleteOnTermination: aws.Bool(false)}}}})
	ec2WantErr(t, err, "InvalidInstanceAttributeValue", "/dev/sdz")

	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{kept, lost}}); err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(sim.FastLatencies().ShuttingDown)
	if v := ec2Volume(t, c, keptData); v.State != types.VolumeStateAvailable {
		t.Errorf("kept data volume = %s, want available", v.State)
	}
	if v, _ := env.Region().Volume(keptData); v.Marker != keptMarker {
		t.Errorf("kept data volume marker = %s, want %s", v.Marker, keptMarker)
	}
	_, err = c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{lostData}})
	ec2WantErr(t, err, "InvalidVolume.NotFound", lostData)
	deleted := map[string]string{}
	for _, d := range env.Region().DeletedVolumes() {
		deleted[d.VolumeID] = d.Reason
	}
	if _, ok := deleted[keptData]; ok {
		t.Errorf("the data volume with DeleteOnTermination=false was deleted")
	}
	if deleted[lostData] != "DeleteOnTermination" || deleted[keptRoot] != "DeleteOnTermination" || len(deleted) != 3 {
		t.Errorf("deleted volumes = %v, want both roots and %s by DeleteOnTermination", deleted, lostData)
	}
}

func TestEC2DescribeVolumesFiltersAndPagination(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	in := ec2RunningInstance(t, env, c, "us-east-1a")
	data := ec2NewVolume(t, env, c, "us-east-1a", types.Tag{Key: aws.String("spotmax:group"), Value: aws.String("web")})
	spare := ec2NewVolume(t, env, c, "us-east-1b", types.Tag{Key: aws.String("Name"), Value: aws.String("spare")})
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(data), InstanceId: in.InstanceId, Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(sim.FastLatencies().Attach)
	root := *in.BlockDeviceMappings[0].Ebs.VolumeId
	for _, tc := range []struct {
		filter types.Filter
		want   []string
	}{
		{ec2Filter("attachment.instance-id", *in.InstanceId), []string{root, data}},
		{ec2Filter("attachment.device", "/dev/sdf"), []string{data}},
		{ec2Filter("status", "available"), []string{spare}},
		{ec2Filter("availability-zone", "us-east-1b"), []string{spare}},
		{ec2Filter("tag:spotmax:group", "web"), []string{data}},
		{ec2Filter("tag-key", "Name", "spotmax:group"), []string{data, spare}},
		{ec2Filter("volume-id", spare), []string{spare}},
		{ec2Filter("attachment.status", "attached"), []string{root, data}},
	} {
		out, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{tc.filter}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range out.Volumes {
			got = append(got, *v.VolumeId)
		}
		if fmt.Sprint(sortStrings(got)) != fmt.Sprint(sortStrings(tc.want)) {
			t.Errorf("%s=%v: got %v, want %v", *tc.filter.Name, tc.filter.Values, got, tc.want)
		}
	}

	for i := 0; i < 9; i++ {
		ec2NewVolume(t, env, c, "us-east-1c")
	}
	p := ec2.NewDescribeVolumesPaginator(c, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(5)})
	seen := map[string]bool{}
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range out.Volumes {
			seen[*v.VolumeId] = true
		}
	}
	if pages != 3 || len(seen) != 12 {
		t.Errorf("%d pages with %d volumes, want 3 pages with 12", pages, len(seen))
	}
}
