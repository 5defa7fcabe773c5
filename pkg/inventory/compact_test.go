package inventory

import (
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
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
