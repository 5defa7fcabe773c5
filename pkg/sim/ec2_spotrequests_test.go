package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// A spot instance's request shows fulfilled, then marked-for-termination once its notice is
// given, then closed when the instance is gone: what a consumer of interruption warnings checks.
func TestDescribeSpotInstanceRequests(t *testing.T) {
	env := simtest.Start(t, sim.Options{TimeScale: 1})
	ctx := context.Background()
	c := ec2.NewFromConfig(env.Config)
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-12345678"), InstanceType: "m5.large",
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		InstanceMarketOptions: &ec2types.InstanceMarketOptionsRequest{MarketType: ec2types.MarketTypeSpot}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	status := func() (string, string) {
		t.Helper()
		res, err := c.DescribeSpotInstanceRequests(ctx, &ec2.DescribeSpotInstanceRequestsInput{
			Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: []string{id}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.SpotInstanceRequests) != 1 {
			t.Fatalf("%d requests for %s, want 1", len(res.SpotInstanceRequests), id)
		}
		sr := res.SpotInstanceRequests[0]
		return string(sr.State), aws.ToString(sr.Status.Code)
	}
	r := env.Region()
	r.Advance(time.Minute)
	if st, code := status(); st != "active" || code != "fulfilled" {
		t.Errorf("running spot instance: request %s/%s, want active/fulfilled", st, code)
	}
	if err := r.Interrupt(id, ""); err != nil {
		t.Fatal(err)
	}
	if st, code := status(); st != "active" || code != "marked-for-termination" {
		t.Errorf("after the notice: request %s/%s, want active/marked-for-termination", st, code)
	}
	r.Advance(5 * time.Minute)
	if st, code := status(); st != "closed" || code != "instance-terminated-no-capacity" {
		t.Errorf("after the interruption: request %s/%s, want closed/instance-terminated-no-capacity", st, code)
	}
	_, err = c.DescribeSpotInstanceRequests(ctx, &ec2.DescribeSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{"sir-nosuch"}})
	if err == nil {
		t.Error("unknown request id: no error")
	}
}
