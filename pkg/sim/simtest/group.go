package simtest

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
)

// GroupSpec describes a test group created through the AWS APIs.
type GroupSpec struct {
	Name         string
	InstanceType string // default m5.large
	Spot         bool   // launch template asks for spot
	// DataDevice adds a data volume to the launch template at this device (e.g. /dev/sdf), with
	// DeleteOnTermination true as launch templates usually have it.
	DataDevice string
	// MoreDataDevices add a data volume at each of these devices too (a group with several
	// data volumes, e.g. data and log).
	MoreDataDevices []string
	Desired         int32
	Max             int32 // default Desired+2
	// AZs default to the region's three.
	AZs []string
	// Tags are group tags; all propagate at launch unless listed in NoPropagate.
	Tags        map[string]string
	NoPropagate []string
}

// CreateGroup creates a launch template and an Auto Scaling group through the SDK and waits
// until the group's instances are InService. It returns the members' ids, oldest first.
func (e *Env) CreateGroup(t testing.TB, spec GroupSpec) []string {
	t.Helper()
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(e.Config)
	asg := autoscaling.NewFromConfig(e.Config)
	if spec.InstanceType == "" {
		spec.InstanceType = "m5.large"
	}
	if spec.Max == 0 {
		spec.Max = spec.Desired + 2
	}
	data := &ec2types.RequestLaunchTemplateData{
		ImageId:         aws.String("ami-12345678"),
		InstanceType:    ec2types.InstanceType(spec.InstanceType),
		MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{InstanceMetadataTags: ec2types.LaunchTemplateInstanceMetadataTagsStateEnabled},
	}
	if spec.Spot {
		data.InstanceMarketOptions = &ec2types.LaunchTemplateInstanceMarketOptionsRequest{MarketType: ec2types.MarketTypeSpot}
	}
	for _, dev := range append([]string{spec.DataDevice}, spec.MoreDataDevices...) {
		if dev == "" {
			continue
		}
		data.BlockDeviceMappings = append(data.BlockDeviceMappings, ec2types.LaunchTemplateBlockDeviceMappingRequest{
			DeviceName: aws.String(dev),
			Ebs:        &ec2types.LaunchTemplateEbsBlockDeviceRequest{VolumeSize: aws.Int32(20), DeleteOnTermination: aws.Bool(true)},
		})
	}
	lt := spec.Name + "-lt"
	if _, err := ec2c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(lt), LaunchTemplateData: data}); err != nil {
		t.Fatalf("creating launch template %s: %v", lt, err)
	}
	azs := spec.AZs
	if len(azs) == 0 {
		for _, az := range e.Region().AZs() {
			azs = append(azs, az.Name)
		}
	}
	noProp := map[string]bool{}
	for _, k := range spec.NoPropagate {
		noProp[k] = true
	}
	var tags []astypes.Tag
	for k, v := range spec.Tags {
		tags = append(tags, astypes.Tag{Key: aws.String(k), Value: aws.String(v), PropagateAtLaunch: aws.Bool(!noProp[k]),
			ResourceId: aws.String(spec.Name), ResourceType: aws.String("auto-scaling-group")})
	}
	_, err := asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(spec.Name),
		LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(lt), Version: aws.String("$Latest")},
		MinSize:              aws.Int32(0), MaxSize: aws.Int32(spec.Max), DesiredCapacity: aws.Int32(spec.Desired),
		AvailabilityZones: azs,
		Tags:              tags,
	})
	if err != nil {
		t.Fatalf("creating group %s: %v", spec.Name, err)
	}
	return e.WaitInService(t, spec.Name, int(spec.Desired))
}

// WaitInService waits until n members of a group are InService and returns their ids, oldest
// first.
func (e *Env) WaitInService(t testing.TB, group string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, _ := e.Region().Group(group)
		var ids []string
		for _, m := range g.Members {
			if m.LifecycleState == "InService" {
				ids = append(ids, m.InstanceID)
			}
		}
		if len(ids) == n {
			sort.Slice(ids, func(i, j int) bool {
				a, _ := e.Region().Instance(ids[i])
				b, _ := e.Region().Instance(ids[j])
				return a.LaunchTime.Before(b.LaunchTime) || (a.LaunchTime.Equal(b.LaunchTime) && ids[i] < ids[j])
			})
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: %d of %d instances InService after 20s", group, len(ids), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Populate creates groups Auto Scaling groups of n running spot instances each, with a data
// volume at /dev/sdf, through the simulator's Go API (fast, for large inventories), named
// g0000, g0001, ... tags(i) gives each group's tags. It waits until every instance runs and then
// resets the call counters.
func (e *Env) Populate(t testing.TB, groups, n int, tags func(i int, name string) []sim.ASGTag) {
	t.Helper()
	r := e.Region()
	lt := r.PutLaunchTemplate("populate", sim.LaunchTemplateData{ImageID: "ami-1", InstanceType: "m5.large", Spot: true,
		BlockDevices: []sim.BlockDevice{{DeviceName: "/dev/sdf", VolumeSize: 10, DeleteOnTermination: true}}})
	var azs []string
	for _, az := range r.AZs() {
		azs = append(azs, az.Name)
	}
	desired := int32(n)
	for i := 0; i < groups; i++ {
		name := fmt.Sprintf("g%04d", i)
		if err := r.CreateGroup(sim.GroupSpec{Name: name, LaunchTemplate: sim.LaunchTemplateRef{ID: lt}, Max: desired + 1,
			Desired: &desired, AZs: azs, Tags: tags(i, name)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		running := 0
		for _, in := range r.Instances() {
			if in.State == sim.StateRunning {
				running++
			}
		}
		if running == groups*n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d instances running", running, groups*n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.ResetCalls()
}
