package awsapi

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// AutoScalingReader is the read side of Auto Scaling that inventories use.
type AutoScalingReader interface {
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
}

// EC2InstanceReader is the read side of EC2 that inventories use.
type EC2InstanceReader interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

var (
	_ AutoScalingReader = (*autoscaling.Client)(nil)
	_ EC2InstanceReader = (*ec2.Client)(nil)
)
