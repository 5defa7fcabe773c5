package inventory

import (
	"context"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestFillInstanceShares checks that instances of one listing with the same tag set, in any
// order, share one tag map, that a different set (one value apart, or one tag more) gets its
// own, and that what fillInstance makes is what EC2 said.
func TestFillInstanceShares(t *testing.T) {
	tag := func(k, v string) ec2types.Tag { return ec2types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	inst := func(id string, tags ...ec2types.Tag) ec2types.Instance {
		return ec2types.Instance{InstanceId: aws.String(id), InstanceType: "m5.large", SubnetId: aws.String("subnet-1"),
			Placement: &ec2types.Placement{AvailabilityZone: aws.String("us-east-1a")}, Tags: tags,
			BlockDeviceMappings: []ec2types.InstanceBlockDeviceMapping{{DeviceName: aws.String("/dev/sdf"),
				Ebs: &ec2types.EbsInstanceBlockDevice{VolumeId: aws.String("vol-" + id), DeleteOnTermination: aws.Bool(false)}}}}
	}
	s := newStrs()
	var a, b, c, d Instance
	fillInstance(&a, inst("i-a", tag("spotmax:group", "web"), tag("team", "x")), s)
	fillInstance(&b, inst("i-b", tag("team", "x"), tag("spotmax:group", "web")), s)
	fillInstance(&c, inst("i-c", tag("spotmax:group", "web"), tag("team", "y")), s)
	fillInstance(&d, inst("i-d", tag("spotmax:group", "web"), tag("team", "x"), tag("Name", "d")), s)
	if reflect.ValueOf(a.Tags).Pointer() != reflect.ValueOf(b.Tags).Pointer() {
		t.Errorf("same tag set in another order: two maps")
	}
	for name, other := range map[string]Instance{"one value apart": c, "one tag more": d} {
		if reflect.ValueOf(a.Tags).Pointer() == reflect.ValueOf(other.Tags).Pointer() {
			t.Errorf("%s: shares the map of %v", name, a.Tags)
		}
	}
	want := map[string]string{"spotmax:group": "web", "team": "y"}
	if !reflect.DeepEqual(c.Tags, want) || c.Type != "m5.large" || c.AZ != "us-east-1a" || c.SubnetID != "subnet-1" ||
		len(c.Volumes) != 1 || c.Volumes[0] != (Volume{ID: "vol-i-c", Device: "/dev/sdf"}) {
		t.Errorf("instance = %+v", c)
	}
	if got := expandMembers(compactMembers([]Instance{{ID: "i-a", Type: "t3.micro", AZ: "us-east-1b", LifecycleState: "InService", Health: "Healthy"}})); !reflect.DeepEqual(got,
		[]Instance{{ID: "i-a", Type: "t3.micro", AZ: "us-east-1b", LifecycleState: "InService", Health: "Healthy"}}) {
		t.Errorf("Auto Scaling view through the page cache = %+v", got)
	}
}

type fakeASG struct{ groups []astypes.AutoScalingGroup }

func (f fakeASG) DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error) {
	return &autoscaling.DescribeAutoScalingGroupsOutput{AutoScalingGroups: f.groups}, nil
}

type fakeEC2 struct{ instances []ec2types.Instance }

func (f fakeEC2) DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: f.instances}}}, nil
}

// TestListFillsMembersInPlace checks the full listing that writes each described instance into
// its member: an instance two groups list (Auto Scaling moving it) gets EC2's view in both, a
// member EC2 does not show keeps its Auto Scaling view, and an instance no group lists is left
// out.
func TestListFillsMembersInPlace(t *testing.T) {
	member := func(id string) astypes.Instance {
		return astypes.Instance{InstanceId: aws.String(id), InstanceType: aws.String("m5.large"), AvailabilityZone: aws.String("us-east-1a"),
			LifecycleState: astypes.LifecycleStateInService, HealthStatus: aws.String("Healthy")}
	}
	running := func(id string) ec2types.Instance {
		return ec2types.Instance{InstanceId: aws.String(id), InstanceType: "m5.large", State: &ec2types.InstanceState{Name: "running"},
			Placement: &ec2types.Placement{AvailabilityZone: aws.String("us-east-1a")}, Tags: []ec2types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}
	}
	l := &Lister{
		ASG: fakeASG{[]astypes.AutoScalingGroup{
			{AutoScalingGroupName: aws.String("a"), Instances: []astypes.Instance{member("i-1"), member("i-2")}},
			{AutoScalingGroupName: aws.String("b"), Instances: []astypes.Instance{member("i-1")}},
		}},
		EC2: fakeEC2{[]ec2types.Instance{running("i-1"), running("i-9")}},
	}
	gs, err := l.List(context.Background(), Options{Members: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || len(gs[0].Members) != 2 || len(gs[1].Members) != 1 {
		t.Fatalf("groups = %+v", gs)
	}
	for _, m := range []Instance{gs[0].Members[0], gs[1].Members[0]} {
		if m.ID != "i-1" || m.State != "running" || m.Tags["k"] != "v" || m.LifecycleState != "InService" {
			t.Errorf("i-1 in a group: %+v", m)
		}
	}
	if m := gs[0].Members[1]; m.ID != "i-2" || m.State != "" || m.Type != "m5.large" || m.Health != "Healthy" {
		t.Errorf("member EC2 does not show: %+v", m)
	}
}
