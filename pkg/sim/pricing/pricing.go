package pricing

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
)

// Service is the Price List API of one region. Its catalog is fixed when it is made, so it
// needs no lock.
type Service struct {
	region  string
	catalog []InstanceType
}

// InstanceType is one instance type the region offers, as the Price List describes it.
type InstanceType struct {
	Name        string
	OnDemandUSD float64 // the hourly Linux on-demand price
	VCPUs       int
	MemoryMiB   int
}

// New returns the Price List API of region, listing catalog.
func New(region string, catalog []InstanceType) *Service {
	return &Service{region: region, catalog: catalog}
}

// Spec is how the region's mux reaches the service: signing name pricing, AWS JSON 1.1.
func (s *Service) Spec() *awsproto.Service {
	return &awsproto.Service{
		Name:        "pricing",
		JSONTargets: []string{"AWSPriceListService"},
		ErrorShapes: map[string]string{
			awsproto.CodeThrottling:       "ThrottlingException",
			awsproto.CodeMissingParameter: invalidParameter,
			awsproto.CodeInvalidParameter: invalidParameter,
			awsproto.CodeValidationError:  invalidParameter,
			"SerializationException":      invalidParameter,
			"InvalidNextToken":            "InvalidNextTokenException",
			"InternalError":               "InternalErrorException",
			awsproto.CodeInvalidAction:    "UnknownOperationException",
		},
		Handle: s.serve,
	}
}

const (
	invalidParameter = "InvalidParameterException"
	notFound         = "NotFoundException"
	maxResults       = 100
)

// regionLocations are the Price List "location" names of regions.
var regionLocations = map[string]string{
	"us-east-1":      "US East (N. Virginia)",
	"us-east-2":      "US East (Ohio)",
	"us-west-1":      "US West (N. California)",
	"us-west-2":      "US West (Oregon)",
	"eu-west-1":      "EU (Ireland)",
	"eu-central-1":   "EU (Frankfurt)",
	"ap-south-1":     "Asia Pacific (Mumbai)",
	"ap-northeast-1": "Asia Pacific (Tokyo)",
	"ap-southeast-1": "Asia Pacific (Singapore)",
}

var actions = awsproto.JSONActions[*Service]{"GetProducts": (*Service).getProducts}

func (s *Service) serve(c *awsproto.Call) {
	actions.Serve(s, c, "the Price List API", "AWSPriceListService", func(fn func()) { fn() })
}

type priceFilter struct {
	Type  string `json:"Type"`
	Field string `json:"Field"`
	Value string `json:"Value"`
}

func (f priceFilter) match(attrs map[string]string) bool {
	v, ok := attrs[f.Field]
	if !ok {
		// Field names are case-insensitive on AWS.
		for k, x := range attrs {
			if strings.EqualFold(k, f.Field) {
				v, ok = x, true
			}
		}
	}
	switch f.Type {
	case "TERM_MATCH", "EQUALS":
		return ok && strings.EqualFold(v, f.Value)
	case "CONTAINS":
		return ok && strings.Contains(strings.ToLower(v), strings.ToLower(f.Value))
	case "ANY_OF", "NONE_OF":
		in := false
		for _, w := range strings.Split(f.Value, ",") {
			if ok && strings.EqualFold(strings.TrimSpace(w), v) {
				in = true
			}
		}
		return in == (f.Type == "ANY_OF")
	}
	return false
}

func (s *Service) getProducts(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct {
		ServiceCode   string        `json:"ServiceCode"`
		Filters       []priceFilter `json:"Filters"`
		FormatVersion string        `json:"FormatVersion"`
		NextToken     string        `json:"NextToken"`
		MaxResults    *int64        `json:"MaxResults"`
	}
	if err := c.DecodeJSON(&in, "SerializationException"); err != nil {
		return nil, err
	}
	if in.ServiceCode == "" {
		return nil, awsproto.NullMember(invalidParameter, "serviceCode")
	}
	if in.FormatVersion != "" && in.FormatVersion != "aws_v1" {
		return nil, awsproto.Errorf(invalidParameter, "Input validation failed: FormatVersion %s is not supported, valid values: aws_v1", in.FormatVersion)
	}
	max := int64(maxResults)
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > maxResults {
			return nil, awsproto.Errorf(invalidParameter, "1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 100", *in.MaxResults)
		}
		max = *in.MaxResults
	}
	for i, f := range in.Filters {
		switch f.Type {
		case "TERM_MATCH", "EQUALS", "CONTAINS", "ANY_OF", "NONE_OF":
		default:
			return nil, awsproto.Errorf(invalidParameter, "1 validation error detected: Value '%s' at 'filters.%d.member.type' failed to satisfy constraint: Member must satisfy enum value set: [TERM_MATCH, EQUALS, CONTAINS, ANY_OF, NONE_OF]", f.Type, i+1)
		}
		if f.Field == "" {
			return nil, awsproto.NullMember(invalidParameter, fmt.Sprintf("filters.%d.member.field", i+1))
		}
	}
	if in.ServiceCode != "AmazonEC2" {
		return nil, awsproto.Errorf(notFound, "The requested service code %s does not exist or is not served by the simulated region (AmazonEC2 only)", in.ServiceCode)
	}
	var items []string
	for _, p := range s.ec2Products() {
		ok := true
		for _, f := range in.Filters {
			if !f.match(p.attrs) {
				ok = false
				break
			}
		}
		if ok {
			items = append(items, p.document())
		}
	}
	start, end, next, err := awsproto.Page(len(items), max, in.NextToken, maxResults, maxResults)
	if err != nil {
		return nil, err
	}
	return struct {
		FormatVersion string   `json:"FormatVersion"`
		PriceList     []string `json:"PriceList"`
		NextToken     string   `json:"NextToken,omitempty"`
	}{FormatVersion: "aws_v1", PriceList: append([]string{}, items[start:end]...), NextToken: next}, nil
}

type priceProduct struct {
	sku   string
	attrs map[string]string
	usd   float64
	desc  string
}

// ec2Products lists the region's EC2 compute products: per instance type, Linux and Windows on
// shared tenancy, with capacity used and unused-reserved, in a stable order.
func (s *Service) ec2Products() []priceProduct {
	location := regionLocations[s.region]
	if location == "" {
		location = s.region
	}
	var out []priceProduct
	for _, spec := range s.catalog {
		t := spec.Name
		for _, os := range []string{"Linux", "Windows"} {
			for _, cap := range []string{"Used", "UnusedCapacityReservation"} {
				usd := spec.OnDemandUSD
				op, usage := "RunInstances", "BoxUsage:"+t
				if os == "Windows" {
					// Windows adds a license fee per vCPU-hour.
					usd += 0.046 * float64(spec.VCPUs)
					op = "RunInstances:0002"
				}
				if cap != "Used" {
					usage = "UnusedBox:" + t
				}
				h := fnv.New64a()
				_, _ = fmt.Fprintf(h, "%s/%s/%s/%s", s.region, t, os, cap)
				sku := strings.ToUpper(strconv.FormatUint(h.Sum64(), 36))
				out = append(out, priceProduct{sku: sku, usd: usd,
					desc: fmt.Sprintf("$%s per On Demand %s %s Instance Hour", strconv.FormatFloat(usd, 'f', -1, 64), os, t),
					attrs: map[string]string{
						"servicecode": "AmazonEC2", "servicename": "Amazon Elastic Compute Cloud",
						"instanceType": t, "instanceFamily": "General purpose", "vcpu": strconv.Itoa(spec.VCPUs),
						"memory":   strconv.FormatFloat(float64(spec.MemoryMiB)/1024, 'f', -1, 64) + " GiB",
						"location": location, "locationType": "AWS Region", "regionCode": s.region,
						"operatingSystem": os, "tenancy": "Shared", "preInstalledSw": "NA", "licenseModel": "No License required",
						"capacitystatus": cap, "usagetype": usage, "operation": op,
					}})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].sku < out[j].sku })
	return out
}

// document renders the product as a Price List aws_v1 item.
func (p priceProduct) document() string {
	const offer = "JRTCKXETXF" // the On Demand offer term code
	dim := p.sku + "." + offer + ".6YS6EN2CT7"
	doc := map[string]any{
		"product":         map[string]any{"productFamily": "Compute Instance", "attributes": p.attrs, "sku": p.sku},
		"serviceCode":     "AmazonEC2",
		"version":         "20260101000000",
		"publicationDate": "2026-01-01T00:00:00Z",
		"terms": map[string]any{"OnDemand": map[string]any{p.sku + "." + offer: map[string]any{
			"offerTermCode": offer, "sku": p.sku, "effectiveDate": "2026-01-01T00:00:00Z", "termAttributes": map[string]string{},
			"priceDimensions": map[string]any{dim: map[string]any{
				"unit": "Hrs", "beginRange": "0", "endRange": "Inf", "description": p.desc, "appliesTo": []string{},
				"rateCode": dim, "pricePerUnit": map[string]string{"USD": strconv.FormatFloat(p.usd, 'f', 10, 64)},
			}},
		}}},
	}
	b, _ := json.Marshal(doc)
	return string(b)
}
