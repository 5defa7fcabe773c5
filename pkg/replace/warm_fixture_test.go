package replace_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// makeWarm turns a fixture's group into a warm-pool group through the AWS APIs, as an operator
// would: a new launch template version without the data device (the group launches $Latest; its
// data volumes live in its pool), a warm pool of size stopped instances, and waits until they
// are Warmed:Stopped.
func makeWarm(t testing.TB, env *simtest.Env, group string, size int32) {
	t.Helper()
	ctx := context.Background()
	as := autoscaling.NewFromConfig(env.Config)
	newTemplateVersion(t, ec2.NewFromConfig(env.Config), group+"-lt", false)
	if _, err := as.PutWarmPool(ctx, &autoscaling.PutWarmPoolInput{AutoScalingGroupName: aws.String(group), MinSize: aws.Int32(size)}); err != nil {
		t.Fatalf("PutWarmPool: %v", err)
	}
	waitWarmed(t, env.Region(), group, int(size))
}

// waitWarmed waits until n instances of the group's warm pool are Warmed:Stopped.
func waitWarmed(t testing.TB, r *sim.Region, group string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := 0
		for _, m := range r.WarmPoolMembers(group) {
			if m.LifecycleState == sim.LifecycleWarmedStopped {
				ready++
			}
		}
		if ready >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: %d of %d warm pool instances Warmed:Stopped after 20s: %+v", group, ready, n, r.WarmPoolMembers(group))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// warmAZs returns the AZs of the group's Warmed:Stopped instances.
func warmAZs(r *sim.Region, group string) map[string]int {
	out := map[string]int{}
	for _, m := range r.WarmPoolMembers(group) {
		if m.LifecycleState == sim.LifecycleWarmedStopped {
			in, _ := r.Instance(m.InstanceID)
			out[in.AZ]++
		}
	}
	return out
}

// memberIn returns a member of the fixture's group in az.
func (f *fixture) memberIn(t testing.TB, az string) string {
	t.Helper()
	for _, id := range f.members {
		if in, _ := f.env.Region().Instance(id); in.AZ == az {
			return id
		}
	}
	t.Fatalf("no member of %s in %s", f.group, az)
	return ""
}

// newTemplateVersion adds a version to a launch template (the group launches $Latest): the
// fixture's on-demand m5.large, with or without an EBS volume at the data device /dev/sdf.
func newTemplateVersion(t testing.TB, ec *ec2.Client, name string, withDevice bool) {
	t.Helper()
	data := &ec2types.RequestLaunchTemplateData{ImageId: aws.String("ami-12345678"), InstanceType: ec2types.InstanceTypeM5Large,
		MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{InstanceMetadataTags: ec2types.LaunchTemplateInstanceMetadataTagsStateEnabled}}
	if withDevice {
		data.BlockDeviceMappings = []ec2types.LaunchTemplateBlockDeviceMappingRequest{{DeviceName: aws.String("/dev/sdf"),
			Ebs: &ec2types.LaunchTemplateEbsBlockDeviceRequest{VolumeSize: aws.Int32(20), DeleteOnTermination: aws.Bool(true)}}}
	}
	if _, err := ec.CreateLaunchTemplateVersion(context.Background(), &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateName: aws.String(name),
		LaunchTemplateData: data}); err != nil {
		t.Fatalf("creating a version of launch template %s: %v", name, err)
	}
}

// templateVersion adds a version to the fixture group's launch template.
func templateVersion(t testing.TB, f *fixture, withDevice bool) {
	t.Helper()
	newTemplateVersion(t, f.ec2, f.group+"-lt", withDevice)
}
