package pricing_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awspricing "github.com/aws/aws-sdk-go-v2/service/pricing"
	pricingtypes "github.com/aws/aws-sdk-go-v2/service/pricing/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// The Price List API through the real SDK: EC2 products in the aws_v1 format, filtered by
// attributes, with the type's on-demand price in its OnDemand terms.
func TestPricingGetProducts(t *testing.T) {
	env := simtest.Start(t, sim.Options{})
	ctx := context.Background()
	c := awspricing.NewFromConfig(env.Config)
	term := func(f, v string) pricingtypes.Filter {
		return pricingtypes.Filter{Type: pricingtypes.FilterTypeTermMatch, Field: aws.String(f), Value: aws.String(v)}
	}
	out, err := c.GetProducts(ctx, &awspricing.GetProductsInput{ServiceCode: aws.String("AmazonEC2"), FormatVersion: aws.String("aws_v1"),
		Filters: []pricingtypes.Filter{term("instanceType", "m5.large"), term("regionCode", "us-east-1"), term("operatingSystem", "Linux"),
			term("tenancy", "Shared"), term("preInstalledSw", "NA"), term("capacitystatus", "Used")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.PriceList) != 1 || aws.ToString(out.FormatVersion) != "aws_v1" {
		t.Fatalf("GetProducts m5.large Linux: %d products: %v", len(out.PriceList), out.PriceList)
	}
	var item struct {
		Product struct {
			Attributes map[string]string `json:"attributes"`
		} `json:"product"`
		Terms struct {
			OnDemand map[string]struct {
				PriceDimensions map[string]struct {
					Unit         string            `json:"unit"`
					PricePerUnit map[string]string `json:"pricePerUnit"`
				} `json:"priceDimensions"`
			} `json:"OnDemand"`
		} `json:"terms"`
	}
	if err := json.Unmarshal([]byte(out.PriceList[0]), &item); err != nil {
		t.Fatal(err)
	}
	want, _ := sim.OnDemandPrice("m5.large")
	found := false
	for _, term := range item.Terms.OnDemand {
		for _, d := range term.PriceDimensions {
			if d.Unit == "Hrs" && d.PricePerUnit["USD"] == "0.0960000000" {
				found = true
			}
		}
	}
	if !found || want != 0.096 || item.Product.Attributes["location"] != "US East (N. Virginia)" {
		t.Errorf("product = %s", out.PriceList[0])
	}
	// Without the OS and capacity filters there are several products per type, as on AWS.
	all, err := c.GetProducts(ctx, &awspricing.GetProductsInput{ServiceCode: aws.String("AmazonEC2"),
		Filters: []pricingtypes.Filter{term("instanceType", "m5.large")}})
	if err != nil || len(all.PriceList) != 4 {
		t.Errorf("m5.large, any OS: %d products, %v", len(all.PriceList), err)
	}
	if _, err := c.GetProducts(ctx, &awspricing.GetProductsInput{ServiceCode: aws.String("AmazonNope")}); awsapi.Code(err) != "NotFoundException" {
		t.Errorf("unknown service code: %v", err)
	}
	if _, err := c.GetProducts(ctx, &awspricing.GetProductsInput{ServiceCode: aws.String("AmazonEC2"), MaxResults: aws.Int32(500)}); awsapi.Code(err) != "InvalidParameterException" {
		t.Errorf("MaxResults 500: %v", err)
	}
	// Paging: 100 at most per page.
	n := 0
	p := awspricing.NewGetProductsPaginator(c, &awspricing.GetProductsInput{ServiceCode: aws.String("AmazonEC2")})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		n += len(page.PriceList)
	}
	if n != 4*len(sim.InstanceTypes()) || pages < 2 {
		t.Errorf("all EC2 products: %d in %d pages, want %d", n, pages, 4*len(sim.InstanceTypes()))
	}
}
