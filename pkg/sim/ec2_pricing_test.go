package sim_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
)

func TestEC2DescribeSpotPriceHistory(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	out, err := c.DescribeSpotPriceHistory(ctx, &ec2.DescribeSpotPriceHistoryInput{
		InstanceTypes:       []types.InstanceType{types.InstanceTypeM5Large, types.InstanceTypeC5Large},
		ProductDescriptions: []string{"Linux/UNIX"},
		AvailabilityZone:    aws.String("us-east-1b"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.SpotPriceHistory) != 2 {
		t.Fatalf("%d prices, want 2", len(out.SpotPriceHistory))
	}
	for _, p := range out.SpotPriceHistory {
		want, _ := sim.SpotPrice(string(p.InstanceType), "us-east-1b")
		od, _ := sim.OnDemandPrice(string(p.InstanceType))
		got, err := strconv.ParseFloat(*p.SpotPrice, 64)
		if err != nil || got != want || *p.AvailabilityZone != "us-east-1b" || p.ProductDescription != types.RIProductDescriptionLinuxUnix || p.Timestamp == nil {
			t.Errorf("price %s = %s, want %v in us-east-1b", p.InstanceType, *p.SpotPrice, want)
		}
		if got < 0.25*od || got > 0.45*od {
			t.Errorf("spot price %v of %s is not 25-45%% of on-demand %v", got, p.InstanceType, od)
		}
	}
	a, _ := sim.SpotPrice("m5.large", "us-east-1a")
	b, _ := sim.SpotPrice("m5.large", "us-east-1b")
	if a == b {
		t.Errorf("m5.large costs %v in two AZs; want pools to differ", a)
	}
	if _, ok := sim.OnDemandPrice("x9.huge"); ok {
		t.Errorf("unknown type has an on-demand price")
	}

	env.Region().SetSpotPrice("m5.large", "us-east-1b", 0.5)
	out, err = c.DescribeSpotPriceHistory(ctx, &ec2.DescribeSpotPriceHistoryInput{InstanceTypes: []types.InstanceType{types.InstanceTypeM5Large},
		Filters: []types.Filter{ec2Filter("availability-zone", "us-east-1b")}})
	// The history keeps the price before the change, newest first.
	if err != nil || len(out.SpotPriceHistory) != 2 || *out.SpotPriceHistory[0].SpotPrice != "0.500000" ||
		*out.SpotPriceHistory[1].SpotPrice != fmt.Sprintf("%.6f", b) {
		t.Errorf("price after SetSpotPrice = %+v, %v; want 0.500000 then %v", out, err, b)
	}
	// From a start time on: the price in effect then, and the changes after it. The start is a
	// second after the change: the SDK sends times to the second, and a start truncated to before
	// the change rightly gets the old price too.
	out, err = c.DescribeSpotPriceHistory(ctx, &ec2.DescribeSpotPriceHistoryInput{InstanceTypes: []types.InstanceType{types.InstanceTypeM5Large},
		AvailabilityZone: aws.String("us-east-1b"), StartTime: aws.Time(env.Region().Clock().Now().Add(time.Second))})
	if err != nil || len(out.SpotPriceHistory) != 1 || *out.SpotPriceHistory[0].SpotPrice != "0.500000" {
		t.Errorf("price history from now = %+v, %v; want the one in effect, 0.500000", out, err)
	}

	// Every known type in every AZ, in pages.
	n := 0
	for p := ec2.NewDescribeSpotPriceHistoryPaginator(c, &ec2.DescribeSpotPriceHistoryInput{MaxResults: aws.Int32(40)}); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.SpotPriceHistory)
	}
	if want := 3*len(sim.InstanceTypes()) + 1; n != want { // and the one price change
		t.Errorf("%d prices in all, want %d", n, want)
	}
}

func TestEC2DescribeInstanceTypeOfferings(t *testing.T) {
	_, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	out, err := c.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{LocationType: types.LocationTypeAvailabilityZone,
		Filters: []types.Filter{ec2Filter("instance-type", "m5.large", "m5a.large"), ec2Filter("location", "us-east-1a", "us-east-1c")}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range out.InstanceTypeOfferings {
		got = append(got, fmt.Sprintf("%s@%s", o.InstanceType, *o.Location))
	}
	if want := "[m5.large@us-east-1a m5.large@us-east-1c m5a.large@us-east-1a m5a.large@us-east-1c]"; fmt.Sprint(got) != want {
		t.Errorf("offerings = %v, want %s", got, want)
	}
	out, err = c.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{})
	if err != nil || len(out.InstanceTypeOfferings) != len(sim.InstanceTypes()) || *out.InstanceTypeOfferings[0].Location != "us-east-1" {
		t.Errorf("region offerings = %d, %v", len(out.InstanceTypeOfferings), err)
	}

	its, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{types.InstanceTypeM5Large, types.InstanceTypeR5Large}})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, it := range its.InstanceTypes {
		got = append(got, fmt.Sprintf("%s:%d/%d", it.InstanceType, *it.VCpuInfo.DefaultVCpus, *it.MemoryInfo.SizeInMiB))
	}
	if want := "[m5.large:2/8192 r5.large:2/16384]"; fmt.Sprint(got) != want {
		t.Errorf("instance types = %v, want %s", got, want)
	}
	_, err = c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"x9.huge"}})
	ec2WantErr(t, err, "InvalidInstanceType", "x9.huge")
}
