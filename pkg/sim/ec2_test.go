package sim_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

func TestEC2DescribeAvailabilityZones(t *testing.T) {
	env := simtest.Start(t, sim.Options{Region: "eu-west-1"})
	client := ec2.NewFromConfig(env.Config)
	out, err := client.DescribeAvailabilityZones(context.Background(), &ec2.DescribeAvailabilityZonesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, z := range out.AvailabilityZones {
		got = append(got, *z.ZoneName+"/"+*z.ZoneId)
	}
	want := []string{"eu-west-1a/euw1-az1", "eu-west-1b/euw1-az2", "eu-west-1c/euw1-az3"}
	if len(got) != len(want) {
		t.Fatalf("zones = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("zone %d = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestUnknownActionIsInvalidAction(t *testing.T) {
	env := simtest.Start(t, sim.Options{})
	env.Region().FailNext("ec2:DescribeAvailabilityZones", "RequestLimitExceeded", "Request limit exceeded.")
	client := ec2.NewFromConfig(env.Config, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	_, err := client.DescribeAvailabilityZones(context.Background(), &ec2.DescribeAvailabilityZonesInput{})
	if err == nil || !contains(err.Error(), "RequestLimitExceeded") {
		t.Fatalf("err = %v, want RequestLimitExceeded", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}
