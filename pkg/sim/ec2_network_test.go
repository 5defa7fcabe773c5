package sim_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
)

func TestEC2DescribeDefaultVpcAndSubnets(t *testing.T) {
	_, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	vpcs, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{ec2Filter("is-default", "true")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(vpcs.Vpcs) != 1 || !*vpcs.Vpcs[0].IsDefault || *vpcs.Vpcs[0].CidrBlock != "172.31.0.0/16" {
		t.Fatalf("default VPCs = %+v", vpcs.Vpcs)
	}
	subnets, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{
		ec2Filter("vpc-id", *vpcs.Vpcs[0].VpcId), ec2Filter("default-for-az", "true")}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sn := range subnets.Subnets {
		got = append(got, *sn.AvailabilityZone+":"+*sn.AvailabilityZoneId)
		if *sn.AvailableIpAddressCount == 0 || !*sn.DefaultForAz {
			t.Errorf("subnet %s: %d free addresses, default %v", *sn.SubnetId, *sn.AvailableIpAddressCount, *sn.DefaultForAz)
		}
	}
	if fmt.Sprint(got) != "[us-east-1a:use1-az1 us-east-1b:use1-az2 us-east-1c:use1-az3]" {
		t.Errorf("default subnets = %v", got)
	}
	one, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{*subnets.Subnets[1].SubnetId}})
	if err != nil || len(one.Subnets) != 1 || *one.Subnets[0].AvailabilityZone != "us-east-1b" {
		t.Errorf("DescribeSubnets by id = %v, %v", one, err)
	}
	_, err = c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-0123456789abcdef0"}})
	ec2WantErr(t, err, "InvalidSubnetID.NotFound", "subnet-0123456789abcdef0")
}

func TestEC2CreateVpcAndSubnet(t *testing.T) {
	env, c := ec2Start(t, sim.Options{NoDefaultVPC: true})
	ctx := context.Background()
	vpc, err := c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16"), TagSpecifications: []types.TagSpecification{
		{ResourceType: types.ResourceTypeVpc, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("test")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	vpcID := *vpc.Vpc.VpcId
	if *vpc.Vpc.IsDefault || tagMap(vpc.Vpc.Tags)["Name"] != "test" {
		t.Errorf("vpc = %+v", vpc.Vpc)
	}
	// Without a default VPC, RunInstances needs a subnet.
	_, err = c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	ec2WantErr(t, err, "VPCIdNotSpecified", "No default VPC")

	sn, err := c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpcID), CidrBlock: aws.String("10.0.1.0/24"),
		AvailabilityZone: aws.String("us-east-1b"), TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSubnet,
			Tags: []types.Tag{{Key: aws.String("tier"), Value: aws.String("app")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if *sn.Subnet.AvailabilityZone != "us-east-1b" || *sn.Subnet.AvailableIpAddressCount != 251 || *sn.Subnet.VpcId != vpcID {
		t.Errorf("subnet = %s in %s with %d addresses", *sn.Subnet.SubnetId, *sn.Subnet.AvailabilityZone, *sn.Subnet.AvailableIpAddressCount)
	}
	_, err = c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpcID), CidrBlock: aws.String("10.0.1.128/25"), AvailabilityZone: aws.String("us-east-1a")})
	ec2WantErr(t, err, "InvalidSubnet.Conflict", "10.0.1.128/25")
	_, err = c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpcID), CidrBlock: aws.String("192.168.0.0/24"), AvailabilityZone: aws.String("us-east-1a")})
	ec2WantErr(t, err, "InvalidSubnet.Range", "192.168.0.0/24")
	_, err = c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpcID), CidrBlock: aws.String("10.0.2.0/24"), AvailabilityZone: aws.String("us-east-1z")})
	ec2WantErr(t, err, "InvalidParameterValue", "us-east-1z")

	out, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{ec2Filter("tag:tier", "app")}})
	if err != nil || len(out.Subnets) != 1 || *out.Subnets[0].SubnetId != *sn.Subnet.SubnetId {
		t.Errorf("subnets tagged tier=app = %v, %v", out, err)
	}
	vpcs, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{ec2Filter("tag:Name", "test")}})
	if err != nil || len(vpcs.Vpcs) != 1 {
		t.Errorf("vpcs tagged Name=test = %v, %v", vpcs, err)
	}

	in := ec2Run(t, c, &ec2.RunInstancesInput{SubnetId: sn.Subnet.SubnetId})[0]
	if *in.VpcId != vpcID || *in.Placement.AvailabilityZone != "us-east-1b" {
		t.Errorf("instance in %s/%s, want %s/us-east-1b", *in.VpcId, *in.Placement.AvailabilityZone, vpcID)
	}
	if got, _ := env.Region().Instance(*in.InstanceId); got.SubnetID != *sn.Subnet.SubnetId {
		t.Errorf("instance subnet = %s", got.SubnetID)
	}
}
