package inventory_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
)

// TestUnmanagedGroupHasNoConfig is issue 11 case 5: a group listed by name without a
// spotmax:group tag carries no configuration, is not managed, and says so with the group's name.
func TestUnmanagedGroupHasNoConfig(t *testing.T) {
	env := region(t, 1, 1)
	gs, err := lister(env).List(context.Background(), inventory.Options{Names: []string{"g0000", "g0001"}, Members: true})
	if err != nil {
		t.Fatal(err)
	}
	managed, unmanaged := gs[0], gs[1]
	if managed.Config == nil || !managed.Managed() || managed.CheckManaged() != nil {
		t.Errorf("tagged group %s: config %v, managed %v", managed.Name, managed.Config, managed.Managed())
	}
	if unmanaged.Config != nil || unmanaged.ConfigErr != nil || unmanaged.Managed() {
		t.Fatalf("untagged group %s: config %+v, err %v, managed %v; want no configuration", unmanaged.Name, unmanaged.Config, unmanaged.ConfigErr, unmanaged.Managed())
	}
	var nm *groupconfig.NotManagedError
	if err := unmanaged.CheckManaged(); !errors.As(err, &nm) || nm.Group != unmanaged.Name {
		t.Errorf("CheckManaged = %v, want a NotManagedError naming %s", err, unmanaged.Name)
	}
}

// TestCheckDataDeviceRootOfMembers is issue 11 case 4: the members' root device (EC2's
// RootDeviceName) is refused as the data device, naming the group, tag, value and root device.
func TestCheckDataDeviceRootOfMembers(t *testing.T) {
	env := region(t, 1, 1)
	g, err := lister(env).Group(context.Background(), "g0000")
	if err != nil {
		t.Fatal(err)
	}
	m := g.Members[0]
	if m.RootDevice != "/dev/xvda" {
		t.Fatalf("member %s RootDevice = %q, want the simulator's /dev/xvda", m.ID, m.RootDevice)
	}
	api := ec2.NewFromConfig(env.Config)
	err = inventory.CheckGroupDataDevice(context.Background(), api, g, "/dev/sda")
	for _, want := range []string{`"g0000"`, groupconfig.TagPersistenceDev, `"/dev/sda"`, "root device /dev/xvda of instance " + m.ID} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	var verr *groupconfig.ValidationError
	if !errors.As(err, &verr) {
		t.Errorf("error %T is not a ValidationError", err)
	}
	if err := inventory.CheckGroupDataDevice(context.Background(), api, g, ""); err != nil {
		t.Errorf("the group's own /dev/sdf: %v", err)
	}
	tmpl := &ec2types.ResponseLaunchTemplateData{BlockDeviceMappings: []ec2types.LaunchTemplateBlockDeviceMapping{
		{DeviceName: aws.String("/dev/xvdf"), VirtualName: aws.String("ephemeral0")}}}
	err = inventory.CheckDataDevice(g, "/dev/sdf", tmpl)
	if err == nil || !strings.Contains(err.Error(), "instance-store volume ephemeral0") {
		t.Errorf("instance-store mapping at the data device: %v", err)
	}
}

// TestOfferings checks the types against EC2's offerings in one call, and that an unknown
// alternative is an error naming the tag and value with a "did you mean".
func TestOfferings(t *testing.T) {
	env := region(t, 1, 1)
	api := ec2.NewFromConfig(env.Config)
	env.Region().ResetCalls()
	got, err := inventory.Offerings(context.Background(), api, []string{"m5.large", "m5.lage", "c5.large", "m5.large"})
	if err != nil {
		t.Fatal(err)
	}
	if n := env.Region().CallsTotal(); n != 1 {
		t.Errorf("%d calls (%v), want 1", n, env.Region().Calls())
	}
	var azs []string
	for _, z := range env.Region().AZs() {
		azs = append(azs, z.Name)
	}
	if !reflect.DeepEqual(got["m5.large"], azs) || !reflect.DeepEqual(got["c5.large"], azs) {
		t.Errorf("offerings = %v, want m5.large and c5.large in %v", got, azs)
	}
	if _, ok := got["m5.lage"]; ok {
		t.Errorf("m5.lage offered: %v", got)
	}

	g, err := lister(env).Group(context.Background(), "g0000")
	if err != nil {
		t.Fatal(err)
	}
	tags := append(g.Tags, groupconfig.Tag{Key: "spotmax:alt1", Value: "c5.large"}, groupconfig.Tag{Key: "spotmax:alt2", Value: "m5.lage"})
	offered, err := inventory.CheckTypes(context.Background(), api, g, tags, "m5.large")
	for _, want := range []string{`"g0000"`, `spotmax:alt2="m5.lage"`, "not an instance type EC2 offers", `did you mean "m5.large"?`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckTypes error %v lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "alt1") || len(offered["m5.large"]) == 0 {
		t.Errorf("CheckTypes: %v, offerings %v", err, offered)
	}
	if _, err := inventory.CheckTypes(context.Background(), api, g, tags[:len(tags)-1]); err != nil {
		t.Errorf("valid alternatives: %v", err)
	}
}
