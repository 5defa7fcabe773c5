package inventory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

const (
	// offeringsPerPage is the largest MaxResults DescribeInstanceTypeOfferings accepts.
	offeringsPerPage = 1000
	// typesPerFilter is how many instance types one filter carries (EC2 accepts up to 200
	// values per filter).
	typesPerFilter = 200
)

// OfferingsReader is what checking instance types needs from EC2.
type OfferingsReader interface {
	DescribeInstanceTypeOfferings(ctx context.Context, in *ec2.DescribeInstanceTypeOfferingsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypeOfferingsOutput, error)
}

var _ OfferingsReader = (*ec2.Client)(nil)

// Offerings returns, for each of types that EC2 offers in the region, the Availability Zones
// that offer it, sorted. A type offered nowhere — misspelt, retired, or not in this region — is
// absent from the map. It reads paged DescribeInstanceTypeOfferings calls with location type
// availability-zone filtered on up to 200 types at a time: one call for any group's types.
func Offerings(ctx context.Context, api OfferingsReader, types []string) (map[string][]string, error) {
	uniq := slices.Clone(types)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	if len(uniq) > 0 && uniq[0] == "" {
		uniq = uniq[1:]
	}
	out := map[string][]string{}
	for start := 0; start < len(uniq); start += typesPerFilter {
		chunk := uniq[start:min(start+typesPerFilter, len(uniq))]
		err := offerings(ctx, api, ec2types.LocationTypeAvailabilityZone, chunk, func(o ec2types.InstanceTypeOffering) {
			t := string(o.InstanceType)
			out[t] = append(out[t], aws.ToString(o.Location))
		})
		if err != nil {
			return nil, fmt.Errorf("describing the offerings of instance types %s: %w", strings.Join(chunk, ", "), err)
		}
	}
	for t := range out {
		sort.Strings(out[t])
		out[t] = slices.Compact(out[t])
	}
	return out, nil
}

// offerings pages through DescribeInstanceTypeOfferings by location type lt, filtered on types
// when there are any (else every type of the region).
func offerings(ctx context.Context, api OfferingsReader, lt ec2types.LocationType, types []string, each func(ec2types.InstanceTypeOffering)) error {
	in := &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: lt,
		MaxResults:   aws.Int32(offeringsPerPage),
	}
	if len(types) > 0 {
		in.Filters = []ec2types.Filter{{Name: aws.String("instance-type"), Values: types}}
	}
	p := ec2.NewDescribeInstanceTypeOfferingsPaginator(api, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.InstanceTypeOfferings {
			each(o)
		}
	}
	return nil
}

// CheckTypes checks the alternative instance types tagged in tags (spotmax:alt1 …; g.Tags when
// tags is nil) against EC2's offerings: each must be offered in the region and in at least one
// of the group's Availability Zones (g.AZs, when known). extra types, e.g. the launch template's
// own, are looked up in the same call but not checked. It returns the offerings of every type
// looked up (see Offerings), and a *groupconfig.ValidationError naming the group, each bad tag
// and its value, with "did you mean" when a type of the region is close.
func CheckTypes(ctx context.Context, api OfferingsReader, g *Group, tags []groupconfig.Tag, extra ...string) (map[string][]string, error) {
	if tags == nil {
		tags = g.Tags
	}
	var alts []groupconfig.Tag
	for _, t := range tags {
		if _, ok := groupconfig.ParseAltKey(t.Key); ok {
			alts = append(alts, t)
		}
	}
	sort.Slice(alts, func(i, j int) bool {
		a, _ := groupconfig.ParseAltKey(alts[i].Key)
		b, _ := groupconfig.ParseAltKey(alts[j].Key)
		return a < b
	})
	types := slices.Clone(extra)
	for _, t := range alts {
		types = append(types, t.Value)
	}
	offered, err := Offerings(ctx, api, types)
	if err != nil {
		return nil, err
	}
	var problems []groupconfig.Problem
	var all []string // every type of the region, read once for hints
	for _, t := range alts {
		azs, ok := offered[t.Value]
		if !ok {
			if all == nil {
				if all, err = regionTypes(ctx, api); err != nil {
					return nil, err
				}
			}
			p := groupconfig.Problem{Group: g.Name, Tag: t.Key, Value: t.Value,
				Reason: "not an instance type EC2 offers in this region"}
			if s := groupconfig.Closest(t.Value, all); s != "" {
				p.Hint = fmt.Sprintf("did you mean %q?", s)
			}
			problems = append(problems, p)
			continue
		}
		if len(g.AZs) > 0 && !slices.ContainsFunc(g.AZs, func(az string) bool { return slices.Contains(azs, az) }) {
			problems = append(problems, groupconfig.Problem{Group: g.Name, Tag: t.Key, Value: t.Value,
				Reason: "not offered in the group's Availability Zones " + strings.Join(g.AZs, ", ") +
					" (only in " + strings.Join(azs, ", ") + ")"})
		}
	}
	if len(problems) > 0 {
		return offered, &groupconfig.ValidationError{Group: g.Name, Problems: problems}
	}
	return offered, nil
}

// regionTypes lists every instance type offered in the region, sorted: by location type region,
// one offering per type.
func regionTypes(ctx context.Context, api OfferingsReader) ([]string, error) {
	seen := map[string]bool{}
	err := offerings(ctx, api, ec2types.LocationTypeRegion, nil, func(o ec2types.InstanceTypeOffering) { seen[string(o.InstanceType)] = true })
	if err != nil {
		return nil, fmt.Errorf("describing the instance types offered in the region: %w", err)
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}
