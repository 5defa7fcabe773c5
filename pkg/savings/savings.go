// Package savings computes what spotmax groups really cost over a period, against the same
// instance-hours all on-demand.
//
// Hours are reconstructed from what spotmax saw and did, with no database of its own:
//
//   - every instance a group has now (the inventory) ran from its launch time (or the period's
//     start) to the period's end, in its market, type and AZ;
//   - every instance spotmax replaced (an action record of a successful replacement, from the
//     audit trail in CloudWatch Logs) ran from its launch time, which the record keeps, to the
//     end of its replacement, in the market, type and AZ the record keeps.
//
// Instances that left a group without spotmax (a scale-in, an interruption spotmax did not
// handle) are not seen; the report says it covers the instances spotmax knows of.
//
// Spot hours are priced with the spot price history of their type and AZ
// (DescribeSpotPriceHistory, Linux/UNIX), step by step as the price changed; on-demand hours and
// the all-on-demand baseline with the on-demand price of the type from the AWS Price List API
// (GetProducts, Linux, shared tenancy, no pre-installed software, capacity used).
package savings

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	pricingtypes "github.com/aws/aws-sdk-go-v2/service/pricing/types"

	"github.com/spotmax/spotmax/pkg/metrics"
)

// Markets.
const (
	MarketSpot     = "spot"
	MarketOnDemand = "on-demand"
)

// Usage is one instance's time in a group.
type Usage struct {
	Group    string
	Instance string
	Market   string
	Type     string
	AZ       string
	From, To time.Time
}

// Live is an instance a group has now.
type Live struct {
	Group, Instance, Market, Type, AZ string
	Launched                          time.Time
}

// Reconstruct returns the instance time of [start, end) from the groups' current instances
// and the action records of the period: each instance once, clipped to the period.
func Reconstruct(live []Live, actions []metrics.Action, start, end time.Time) []Usage {
	seen := map[string]bool{}
	var out []Usage
	add := func(u Usage) {
		if seen[u.Instance] {
			return
		}
		seen[u.Instance] = true
		if u.From.Before(start) {
			u.From = start
		}
		if u.To.After(end) {
			u.To = end
		}
		if u.To.After(u.From) {
			out = append(out, u)
		}
	}
	// A replaced instance ended with its replacement, even while the group still lists it
	// (Detaching): its record comes first.
	for _, a := range actions {
		if a.Kind != metrics.ActionReplace || a.Result != metrics.ResultSucceeded || a.OldType == "" {
			continue
		}
		from := start
		if a.OldLaunched != nil {
			from = *a.OldLaunched
		}
		add(Usage{Group: a.Group, Instance: a.Instance, Market: a.OldMarket, Type: a.OldType, AZ: a.OldAZ, From: from, To: a.Ended})
	}
	for _, l := range live {
		from := l.Launched
		if from.IsZero() {
			from = start
		}
		add(Usage{Group: l.Group, Instance: l.Instance, Market: l.Market, Type: l.Type, AZ: l.AZ, From: from, To: end})
	}
	slices.SortFunc(out, func(a, b Usage) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), a.From.Compare(b.From), cmp.Compare(a.Instance, b.Instance))
	})
	return out
}

// Prices answers the prices the report needs.
type Prices interface {
	// OnDemand is the hourly USD on-demand price of an instance type.
	OnDemand(ctx context.Context, instanceType string) (float64, error)
	// Spot is the spot price history of a pool over [from, to]: the price in effect at from
	// and every change until to, oldest first.
	Spot(ctx context.Context, instanceType, az string, from, to time.Time) ([]PricePoint, error)
}

// PricePoint is a price in effect from a time on.
type PricePoint struct {
	At  time.Time
	USD float64
}

// Line is the instance time of one market, type and AZ in a group.
type Line struct {
	Market string  `json:"market"`
	Type   string  `json:"type"`
	AZ     string  `json:"az"`
	Hours  float64 `json:"hours"`
	// Cost is what the hours cost in their market; OnDemandCost what they would have cost
	// on-demand.
	Cost         float64 `json:"cost_usd"`
	OnDemandCost float64 `json:"on_demand_cost_usd"`
	Instances    int     `json:"instances"`
}

// Total sums lines.
type Total struct {
	Hours        float64 `json:"hours"`
	SpotHours    float64 `json:"spot_hours"`
	Cost         float64 `json:"cost_usd"`
	OnDemandCost float64 `json:"on_demand_cost_usd"`
	Saved        float64 `json:"saved_usd"`
	// SavedPercent is Saved of OnDemandCost, 0 when nothing was priced.
	SavedPercent float64 `json:"saved_percent"`
}

func (t *Total) add(l Line) {
	t.Hours += l.Hours
	if l.Market == MarketSpot {
		t.SpotHours += l.Hours
	}
	t.Cost += l.Cost
	t.OnDemandCost += l.OnDemandCost
	t.Saved = t.OnDemandCost - t.Cost
	if t.OnDemandCost > 0 {
		t.SavedPercent = 100 * t.Saved / t.OnDemandCost
	}
}

// Group is one group's report.
type Group struct {
	Name  string `json:"group"`
	Lines []Line `json:"lines"`
	Total Total  `json:"total"`
}

// Report is the realised cost of groups over a period.
type Report struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Groups []Group   `json:"groups"`
	Total  Total     `json:"total"`
}

// Compute prices the usages.
func Compute(ctx context.Context, usages []Usage, p Prices, start, end time.Time) (*Report, error) {
	rep := &Report{Start: start.UTC(), End: end.UTC(), Groups: []Group{}}
	type key struct{ group, market, typ, az string }
	lines := map[key]*Line{}
	for _, u := range usages {
		od, err := p.OnDemand(ctx, u.Type)
		if err != nil {
			return nil, err
		}
		hours := u.To.Sub(u.From).Hours()
		cost := od * hours
		if u.Market == MarketSpot {
			pts, err := p.Spot(ctx, u.Type, u.AZ, u.From, u.To)
			if err != nil {
				return nil, err
			}
			if len(pts) == 0 {
				return nil, fmt.Errorf("no spot price history for %s in %s from %s to %s", u.Type, u.AZ,
					u.From.UTC().Format(time.RFC3339), u.To.UTC().Format(time.RFC3339))
			}
			cost = integrate(pts, u.From, u.To)
		}
		k := key{u.Group, u.Market, u.Type, u.AZ}
		l := lines[k]
		if l == nil {
			l = &Line{Market: u.Market, Type: u.Type, AZ: u.AZ}
			lines[k] = l
		}
		l.Hours += hours
		l.Cost += cost
		l.OnDemandCost += od * hours
		l.Instances++
	}
	keys := make([]key, 0, len(lines))
	for k := range lines {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.market, b.market), cmp.Compare(a.typ, b.typ), cmp.Compare(a.az, b.az))
	})
	for _, k := range keys {
		if n := len(rep.Groups); n == 0 || rep.Groups[n-1].Name != k.group {
			rep.Groups = append(rep.Groups, Group{Name: k.group, Lines: []Line{}})
		}
		g := &rep.Groups[len(rep.Groups)-1]
		l := *lines[k]
		g.Lines = append(g.Lines, l)
		g.Total.add(l)
		rep.Total.add(l)
	}
	return rep, nil
}

// integrate is the cost of [from, to) under a step price: each point's price holds until the
// next; before the first point, the first price.
func integrate(pts []PricePoint, from, to time.Time) float64 {
	pts = slices.Clone(pts)
	slices.SortFunc(pts, func(a, b PricePoint) int { return a.At.Compare(b.At) })
	cost := 0.0
	for i, p := range pts {
		segFrom := p.At
		if i == 0 || segFrom.Before(from) {
			segFrom = from
		}
		segTo := to
		if i+1 < len(pts) && pts[i+1].At.Before(to) {
			segTo = pts[i+1].At
		}
		if segTo.After(segFrom) {
			cost += p.USD * segTo.Sub(segFrom).Hours()
		}
	}
	return cost
}

// EC2SpotAPI is what spot prices need. *ec2.Client satisfies it.
type EC2SpotAPI interface {
	DescribeSpotPriceHistory(ctx context.Context, params *ec2.DescribeSpotPriceHistoryInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error)
}

// PricingAPI is what on-demand prices need. *pricing.Client satisfies it.
type PricingAPI interface {
	GetProducts(ctx context.Context, params *pricing.GetProductsInput, optFns ...func(*pricing.Options)) (*pricing.GetProductsOutput, error)
}

var (
	_ EC2SpotAPI = (*ec2.Client)(nil)
	_ PricingAPI = (*pricing.Client)(nil)
)

// AWSPrices reads prices from EC2 (spot price history) and the Price List API (on-demand),
// caching on-demand prices by type.
type AWSPrices struct {
	EC2     EC2SpotAPI
	Pricing PricingAPI
	// Region is the region whose on-demand prices apply (the Price List's regionCode).
	Region string

	mu sync.Mutex
	od map[string]float64
}

// OnDemand implements Prices with GetProducts.
func (p *AWSPrices) OnDemand(ctx context.Context, instanceType string) (float64, error) {
	p.mu.Lock()
	if v, ok := p.od[instanceType]; ok {
		p.mu.Unlock()
		return v, nil
	}
	p.mu.Unlock()
	term := func(field, value string) pricingtypes.Filter {
		return pricingtypes.Filter{Type: pricingtypes.FilterTypeTermMatch, Field: aws.String(field), Value: aws.String(value)}
	}
	in := &pricing.GetProductsInput{ServiceCode: aws.String("AmazonEC2"), FormatVersion: aws.String("aws_v1"),
		Filters: []pricingtypes.Filter{term("instanceType", instanceType), term("regionCode", p.Region),
			term("operatingSystem", "Linux"), term("tenancy", "Shared"), term("preInstalledSw", "NA"), term("capacitystatus", "Used")}}
	pages := pricing.NewGetProductsPaginator(p.Pricing, in)
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("getting the on-demand price of %s in %s from the Price List API: %w", instanceType, p.Region, err)
		}
		for _, doc := range out.PriceList {
			if usd, ok := onDemandUSD(doc); ok {
				p.mu.Lock()
				if p.od == nil {
					p.od = map[string]float64{}
				}
				p.od[instanceType] = usd
				p.mu.Unlock()
				return usd, nil
			}
		}
	}
	return 0, fmt.Errorf("no on-demand Linux price for %s in %s in the Price List API", instanceType, p.Region)
}

// onDemandUSD reads the hourly USD price of a Price List aws_v1 product's OnDemand terms.
func onDemandUSD(doc string) (float64, bool) {
	var item struct {
		Terms struct {
			OnDemand map[string]struct {
				PriceDimensions map[string]struct {
					Unit         string            `json:"unit"`
					PricePerUnit map[string]string `json:"pricePerUnit"`
				} `json:"priceDimensions"`
			} `json:"OnDemand"`
		} `json:"terms"`
	}
	if json.Unmarshal([]byte(doc), &item) != nil {
		return 0, false
	}
	for _, term := range item.Terms.OnDemand {
		for _, d := range term.PriceDimensions {
			if d.Unit != "Hrs" {
				continue
			}
			if v, err := strconv.ParseFloat(d.PricePerUnit["USD"], 64); err == nil && v > 0 {
				return v, true
			}
		}
	}
	return 0, false
}

// Spot implements Prices with DescribeSpotPriceHistory.
func (p *AWSPrices) Spot(ctx context.Context, instanceType, az string, from, to time.Time) ([]PricePoint, error) {
	in := &ec2.DescribeSpotPriceHistoryInput{InstanceTypes: []ec2types.InstanceType{ec2types.InstanceType(instanceType)},
		AvailabilityZone: aws.String(az), ProductDescriptions: []string{"Linux/UNIX"},
		StartTime: aws.Time(from), EndTime: aws.Time(to)}
	var pts []PricePoint
	pages := ec2.NewDescribeSpotPriceHistoryPaginator(p.EC2, in)
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing the spot price history of %s in %s: %w", instanceType, az, err)
		}
		for _, h := range out.SpotPriceHistory {
			v, err := strconv.ParseFloat(aws.ToString(h.SpotPrice), 64)
			if err != nil {
				return nil, fmt.Errorf("spot price %q of %s in %s: %w", aws.ToString(h.SpotPrice), instanceType, az, err)
			}
			pts = append(pts, PricePoint{At: aws.ToTime(h.Timestamp), USD: v})
		}
	}
	// The price in effect at from is the latest at or before it; older points do not matter.
	slices.SortFunc(pts, func(a, b PricePoint) int { return a.At.Compare(b.At) })
	first := 0
	for i, pt := range pts {
		if !pt.At.After(from) {
			first = i
		}
	}
	return pts[first:], nil
}
