// Package sqstest holds test helpers for the SQS source.
package sqstest

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/source/sqs"
)

// TagFilter is an InstanceFilter as the controller could build it from EC2: the spotmax:group
// tag of each instance, in one DescribeInstances call per batch.
func TagFilter(client *ec2.Client) sqs.InstanceFilter {
	return func(ctx context.Context, ids []string) (map[string]string, error) {
		out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
		if err != nil {
			return nil, err
		}
		groups := map[string]string{}
		for _, res := range out.Reservations {
			for _, in := range res.Instances {
				for _, tag := range in.Tags {
					if aws.ToString(tag.Key) == groupconfig.TagGroup {
						groups[aws.ToString(in.InstanceId)] = aws.ToString(tag.Value)
					}
				}
			}
		}
		return groups, nil
	}
}
