package replace

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
)

// TestAZOrderAZRebalance: without az_rebalance a replacement goes to the old instance's AZ
// first, then the others fewest first; with az_rebalance=optimize the AZ with the fewest members
// goes first; a data volume pins its AZ either way (issue 12).
func TestAZOrderAZRebalance(t *testing.T) {
	subnets := map[string]string{"us-east-1a": "subnet-a", "us-east-1b": "subnet-b", "us-east-1c": "subnet-c"}
	g := &inventory.Group{Members: []inventory.Instance{
		{ID: "i-old", AZ: "us-east-1b"}, {ID: "i-2", AZ: "us-east-1b"}, {ID: "i-3", AZ: "us-east-1a"}, {ID: "i-4", AZ: "us-east-1a"},
	}}
	old := ec2types.Instance{InstanceId: aws.String("i-old"), Placement: &ec2types.Placement{AvailabilityZone: aws.String("us-east-1b")}}
	for _, tc := range []struct {
		rebalance string
		volAZ     string
		want      []string
	}{
		{"", "", []string{"us-east-1b", "us-east-1c", "us-east-1a"}},
		{groupconfig.AZRebalanceOptimize, "", []string{"us-east-1c", "us-east-1b", "us-east-1a"}},
		{groupconfig.AZRebalanceOptimize, "us-east-1a", []string{"us-east-1a"}},
		{"", "us-east-1a", []string{"us-east-1a"}},
	} {
		r := &run{g: g, cfg: &groupconfig.Config{AZRebalance: tc.rebalance}, req: Request{InstanceID: "i-old"}, old: old}
		if got := r.azOrder(subnets, tc.volAZ); !slices.Equal(got, tc.want) {
			t.Errorf("az_rebalance=%q, volume in %q: azOrder = %v; want %v", tc.rebalance, tc.volAZ, got, tc.want)
		}
	}
}
