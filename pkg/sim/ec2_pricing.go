package sim

import (
	"encoding/xml"
	"github.com/spotmax/spotmax/pkg/sim/pricing"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// instanceTypeSpec is what the simulated region knows about an instance type.
type instanceTypeSpec struct {
	vcpus    int
	memMiB   int
	onDemand float64 // USD per hour, Linux, us-east-1
}

// instanceTypes are the instance types the simulated region offers in every AZ, with their
// us-east-1 Linux on-demand prices.
var instanceTypes = map[string]instanceTypeSpec{
	"m1.small":   {1, 1740, 0.044},
	"t2.micro":   {1, 1024, 0.0116},
	"t3.micro":   {2, 1024, 0.0104},
	"t3.small":   {2, 2048, 0.0208},
	"t3.medium":  {2, 4096, 0.0416},
	"t3.large":   {2, 8192, 0.0832},
	"t3.xlarge":  {4, 16384, 0.1664},
	"t3a.medium": {2, 4096, 0.0376},
	"t3a.large":  {2, 8192, 0.0752},
	"m4.large":   {2, 8192, 0.10},
	"m5.large":   {2, 8192, 0.096},
	"m5.xlarge":  {4, 16384, 0.192},
	"m5.2xlarge": {8, 32768, 0.384},
	"m5.4xlarge": {16, 65536, 0.768},
	"m5a.large":  {2, 8192, 0.086},
	"m5a.xlarge": {4, 16384, 0.172},
	"m5d.large":  {2, 8192, 0.113},
	"m6i.large":  {2, 8192, 0.096},
	"m6i.xlarge": {4, 16384, 0.192},
	"m6a.large":  {2, 8192, 0.0864},
	"m7i.large":  {2, 8192, 0.1008},
	"c5.large":   {2, 4096, 0.085},
	"c5.xlarge":  {4, 8192, 0.17},
	"c5.2xlarge": {8, 16384, 0.34},
	"c5a.large":  {2, 4096, 0.077},
	"c6i.large":  {2, 4096, 0.085},
	"c6i.xlarge": {4, 8192, 0.17},
	"r5.large":   {2, 16384, 0.126},
	"r5.xlarge":  {4, 32768, 0.252},
	"r6i.large":  {2, 16384, 0.126},
}

// offeringGaps are the availability zones (by index in the region's zone list) where an
// instance type is not offered, as some AZs lack some types on AWS (us-east-1e has no m5 or t3,
// for instance). They apply when EC2Behaviors.InstanceTypeOfferings is on.
var offeringGaps = map[string][]int{
	"m7i.large": {2},
	"r6i.large": {0},
}

// knownInstanceType reports whether the region's catalog has the instance type.
func knownInstanceType(t string) bool {
	_, ok := instanceTypes[t]
	return ok
}

// offered reports whether an instance type is offered in an AZ (by name or zone id), with the
// lock held. Without InstanceTypeOfferings every type is offered everywhere.
func (r *Region) offered(typ, az string) bool {
	if !r.beh.EC2.InstanceTypeOfferings {
		return true
	}
	for _, i := range offeringGaps[typ] {
		if i < len(r.azs) && (r.azs[i].Name == az || r.azs[i].ID == az) {
			return false
		}
	}
	return true
}

// checkOffered fails a launch of a type that the AZ does not offer, with EC2's answer.
func (r *Region) checkOffered(typ, az string) *APIError {
	if r.offered(typ, az) {
		return nil
	}
	var others []string
	for _, z := range r.azs {
		if z.Name != az && r.offered(typ, z.Name) {
			others = append(others, z.Name)
		}
	}
	return errf("Unsupported", "Your requested instance type (%s) is not supported in your requested Availability Zone (%s). "+
		"Please retry your request by not specifying an Availability Zone or choosing %s.", typ, az, strings.Join(others, ", "))
}

// InstanceTypes returns the instance types the simulated region offers, in order.
func InstanceTypes() []string { return sortedKeys(instanceTypes) }

// OnDemandPrice returns the hourly Linux on-demand price in USD of an instance type that the
// simulated region knows (us-east-1 list prices, used for every region).
func OnDemandPrice(instanceType string) (float64, bool) {
	s, ok := instanceTypes[instanceType]
	return s.onDemand, ok
}

// SpotPrice returns the simulated hourly spot price in USD of an instance type in an AZ: a fixed
// fraction between 25% and 45% of the on-demand price, derived from the type and the AZ, so that
// prices differ between pools but never change between runs. Region.SetSpotPrice overrides it.
func SpotPrice(instanceType, az string) (float64, bool) {
	od, ok := OnDemandPrice(instanceType)
	if !ok {
		return 0, false
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(instanceType + "/" + az))
	factor := 0.25 + float64(h.Sum32()%2001)/10000
	return math.Round(od*factor*1e4) / 1e4, true
}

type spotOverride struct {
	price float64
	at    time.Time
}

// SetSpotPrice sets the spot price of one (instance type, AZ) pool from now on; a price of zero
// or less returns the pool to its default SpotPrice. Spot launches whose MaxPrice is below the
// pool's price fail with SpotMaxPriceTooLow.
func (r *Region) SetSpotPrice(instanceType, az string, price float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.ec2()
	k := [2]string{instanceType, az}
	now := r.now().UTC()
	if price <= 0 {
		delete(st.spotPrices, k)
		if def, ok := SpotPrice(instanceType, az); ok {
			st.spotHistory[k] = append(st.spotHistory[k], spotOverride{price: def, at: now})
		}
		return
	}
	st.spotPrices[k] = spotOverride{price: price, at: now}
	st.spotHistory[k] = append(st.spotHistory[k], spotOverride{price: price, at: now})
}

// CurrentSpotPrice returns the spot price of a pool as DescribeSpotPriceHistory reports it.
func (r *Region) CurrentSpotPrice(instanceType, az string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spotPrice(instanceType, az)
}

// spotPrice is CurrentSpotPrice with the lock held.
func (r *Region) spotPrice(instanceType, az string) (float64, bool) {
	if o, ok := r.ec2().spotPrices[[2]string{instanceType, az}]; ok {
		return o.price, true
	}
	return SpotPrice(instanceType, az)
}

// formatPrice renders a price as EC2 does: six decimals.
func formatPrice(p float64) string { return strconv.FormatFloat(p, 'f', 6, 64) }

type spotPricePoint struct {
	AZ                 string `xml:"availabilityZone"`
	AZID               string `xml:"availabilityZoneId"`
	InstanceType       string `xml:"instanceType"`
	ProductDescription string `xml:"productDescription"`
	SpotPrice          string `xml:"spotPrice"`
	Timestamp          string `xml:"timestamp"`
	at                 time.Time
}

// linuxProducts are the product descriptions the simulated region prices.
var linuxProducts = map[string]bool{"Linux/UNIX": true, "Linux/UNIX (Amazon VPC)": true}

func (r *Region) ec2DescribeSpotPriceHistory(c *call) *APIError {
	p := c.Form
	maxN, err := maxResults(p, 1, 1000)
	if err != nil {
		return err
	}
	types := p.List("InstanceType")
	if len(types) == 0 {
		types = InstanceTypes()
	}
	products := p.List("ProductDescription")
	if len(products) == 0 {
		products = []string{"Linux/UNIX"}
	}
	var azs []string
	az, azID := p.Get("AvailabilityZone"), p.Get("AvailabilityZoneId")
	for _, z := range r.azs {
		if (az == "" || z.Name == az) && (azID == "" || z.ID == azID) {
			azs = append(azs, z.Name)
		}
	}
	if az != "" && len(azs) == 0 {
		return errf(CodeInvalidParameter, "Invalid availability zone: [%s]", az)
	}
	// Prices are constant since the region started, unless a test set one.
	base := r.opts.Start.UTC().Truncate(time.Hour)
	var points []spotPricePoint
	for _, t := range types {
		for _, z := range azs {
			for _, prod := range products {
				if !linuxProducts[prod] {
					continue
				}
				// The pool's default price since the region started, then every price set on
				// it, as AWS keeps a pool's history (90 days).
				def, ok := SpotPrice(t, z)
				if !ok {
					continue
				}
				hist := append([]spotOverride{{price: def, at: base}}, r.ec2().spotHistory[[2]string{t, z}]...)
				for _, h := range hist {
					points = append(points, spotPricePoint{AZ: z, AZID: r.azID(z), InstanceType: t, ProductDescription: prod,
						SpotPrice: formatPrice(h.price), Timestamp: isoTime(h.at), at: h.at})
				}
			}
		}
	}
	if end, ok, err := p.Time("EndTime"); err != nil {
		return err
	} else if ok {
		var kept []spotPricePoint
		for _, pt := range points {
			if !pt.at.After(end) {
				kept = append(kept, pt)
			}
		}
		points = kept
	}
	if start, ok, err := p.Time("StartTime"); err != nil {
		return err
	} else if ok {
		// From StartTime on, with the price in effect at StartTime: per pool, the points after
		// it and the last one at or before it.
		lastBefore := map[string]time.Time{}
		for _, pt := range points {
			k := pt.InstanceType + "/" + pt.AZ + "/" + pt.ProductDescription
			if !pt.at.After(start) && pt.at.After(lastBefore[k]) {
				lastBefore[k] = pt.at
			}
		}
		var kept []spotPricePoint
		for _, pt := range points {
			k := pt.InstanceType + "/" + pt.AZ + "/" + pt.ProductDescription
			if pt.at.After(start) || pt.at.Equal(lastBefore[k]) {
				kept = append(kept, pt)
			}
		}
		points = kept
	}
	sort.SliceStable(points, func(i, j int) bool { return points[i].at.After(points[j].at) })
	points, err = applyFilters(points, parseFilters(p), filterFields[spotPricePoint]{
		"instance-type":        func(s spotPricePoint) []string { return []string{s.InstanceType} },
		"availability-zone":    func(s spotPricePoint) []string { return []string{s.AZ} },
		"availability-zone-id": func(s spotPricePoint) []string { return []string{s.AZID} },
		"product-description":  func(s spotPricePoint) []string { return []string{s.ProductDescription} },
		"spot-price":           func(s spotPricePoint) []string { return []string{s.SpotPrice} },
	}, nil)
	if err != nil {
		return err
	}
	start, end, next, err := page(len(points), maxN, p.Get("NextToken"), 1000, 1000)
	if err != nil {
		return err
	}
	c.writeEC2(struct {
		XMLName   xml.Name         `xml:"x"`
		History   []spotPricePoint `xml:"spotPriceHistorySet>item"`
		NextToken string           `xml:"nextToken,omitempty"`
	}{History: points[start:end], NextToken: next})
	return nil
}

type typeOffering struct {
	InstanceType string `xml:"instanceType"`
	LocationType string `xml:"locationType"`
	Location     string `xml:"location"`
}

func (r *Region) ec2DescribeInstanceTypeOfferings(c *call) *APIError {
	p := c.Form
	maxN, err := maxResults(p, 5, 1000)
	if err != nil {
		return err
	}
	var locations []string
	lt := p.Get("LocationType")
	switch lt {
	case "", "region":
		lt = "region"
		locations = []string{r.opts.Region}
	case "availability-zone":
		for _, z := range r.azs {
			locations = append(locations, z.Name)
		}
	case "availability-zone-id":
		for _, z := range r.azs {
			locations = append(locations, z.ID)
		}
	default:
		return errf(CodeInvalidParameter, "Value (%s) for parameter locationType is invalid. Valid values: region, availability-zone, availability-zone-id", lt)
	}
	var offers []typeOffering
	for _, t := range InstanceTypes() {
		for _, loc := range locations {
			if lt != "region" && !r.offered(t, loc) {
				continue
			}
			offers = append(offers, typeOffering{InstanceType: t, LocationType: lt, Location: loc})
		}
	}
	offers, err = applyFilters(offers, parseFilters(p), filterFields[typeOffering]{
		"instance-type": func(o typeOffering) []string { return []string{o.InstanceType} },
		"location":      func(o typeOffering) []string { return []string{o.Location} },
	}, nil)
	if err != nil {
		return err
	}
	start, end, next, err := page(len(offers), maxN, p.Get("NextToken"), 1000, 1000)
	if err != nil {
		return err
	}
	c.writeEC2(struct {
		XMLName   xml.Name       `xml:"x"`
		Offerings []typeOffering `xml:"instanceTypeOfferingSet>item"`
		NextToken string         `xml:"nextToken,omitempty"`
	}{Offerings: offers[start:end], NextToken: next})
	return nil
}

type xmlInstanceTypeInfo struct {
	InstanceType        string   `xml:"instanceType"`
	CurrentGeneration   bool     `xml:"currentGeneration"`
	FreeTierEligible    bool     `xml:"freeTierEligible"`
	UsageClasses        []string `xml:"supportedUsageClasses>item"`
	RootDeviceTypes     []string `xml:"supportedRootDeviceTypes>item"`
	VirtualizationTypes []string `xml:"supportedVirtualizationTypes>item"`
	BareMetal           bool     `xml:"bareMetal"`
	Hypervisor          string   `xml:"hypervisor"`
	Architectures       []string `xml:"processorInfo>supportedArchitectures>item"`
	DefaultVCpus        int      `xml:"vCpuInfo>defaultVCpus"`
	DefaultCores        int      `xml:"vCpuInfo>defaultCores"`
	ThreadsPerCore      int      `xml:"vCpuInfo>defaultThreadsPerCore"`
	MemoryMiB           int      `xml:"memoryInfo>sizeInMiB"`
	InstanceStorage     bool     `xml:"instanceStorageSupported"`
	Burstable           bool     `xml:"burstablePerformanceSupported"`
	Hibernation         bool     `xml:"hibernationSupported"`
}

func xmlInstanceType(name string, s instanceTypeSpec) xmlInstanceTypeInfo {
	fam, _, _ := strings.Cut(name, ".")
	old := fam == "m1" || fam == "m4" || fam == "t2"
	hv := "nitro"
	if old {
		hv = "xen"
	}
	threads := 2
	if s.vcpus == 1 {
		threads = 1
	}
	return xmlInstanceTypeInfo{InstanceType: name, CurrentGeneration: fam != "m1", FreeTierEligible: name == "t2.micro" || name == "t3.micro",
		UsageClasses: []string{"on-demand", "spot"}, RootDeviceTypes: []string{"ebs"}, VirtualizationTypes: []string{"hvm"},
		Hypervisor: hv, Architectures: []string{"x86_64"}, DefaultVCpus: s.vcpus, DefaultCores: s.vcpus / threads,
		ThreadsPerCore: threads, MemoryMiB: s.memMiB, InstanceStorage: fam == "m5d", Burstable: strings.HasPrefix(fam, "t"),
		Hibernation: true}
}

func (r *Region) ec2DescribeInstanceTypes(c *call) *APIError {
	p := c.Form
	maxN, err := maxResults(p, 5, 100)
	if err != nil {
		return err
	}
	names := p.List("InstanceType")
	if len(names) > 0 {
		var unknown []string
		for _, n := range names {
			if _, ok := instanceTypes[n]; !ok {
				unknown = append(unknown, n)
			}
		}
		if len(unknown) > 0 {
			return errf("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", strings.Join(unknown, ", "))
		}
		sort.Strings(names)
	} else {
		names = InstanceTypes()
	}
	var infos []xmlInstanceTypeInfo
	for _, n := range names {
		infos = append(infos, xmlInstanceType(n, instanceTypes[n]))
	}
	infos, err = applyFilters(infos, parseFilters(p), filterFields[xmlInstanceTypeInfo]{
		"instance-type":                         func(i xmlInstanceTypeInfo) []string { return []string{i.InstanceType} },
		"current-generation":                    func(i xmlInstanceTypeInfo) []string { return []string{boolStr(i.CurrentGeneration)} },
		"vcpu-info.default-vcpus":               func(i xmlInstanceTypeInfo) []string { return []string{strconv.Itoa(i.DefaultVCpus)} },
		"memory-info.size-in-mib":               func(i xmlInstanceTypeInfo) []string { return []string{strconv.Itoa(i.MemoryMiB)} },
		"supported-usage-class":                 func(i xmlInstanceTypeInfo) []string { return i.UsageClasses },
		"processor-info.supported-architecture": func(i xmlInstanceTypeInfo) []string { return i.Architectures },
		"burstable-performance-supported": func(i xmlInstanceTypeInfo) []string {
			return []string{boolStr(i.Burstable)}
		},
	}, nil)
	if err != nil {
		return err
	}
	start, end, next, err := page(len(infos), maxN, p.Get("NextToken"), 100, 100)
	if err != nil {
		return err
	}
	c.writeEC2(struct {
		XMLName   xml.Name              `xml:"x"`
		Types     []xmlInstanceTypeInfo `xml:"instanceTypeSet>item"`
		NextToken string                `xml:"nextToken,omitempty"`
	}{Types: infos[start:end], NextToken: next})
	return nil
}

// priceCatalog is the instance type catalog as the Price List API (pkg/sim/pricing) lists it.
func priceCatalog() []pricing.InstanceType {
	out := make([]pricing.InstanceType, 0, len(instanceTypes))
	for _, t := range InstanceTypes() {
		s := instanceTypes[t]
		out = append(out, pricing.InstanceType{Name: t, OnDemandUSD: s.onDemand, VCPUs: s.vcpus, MemoryMiB: s.memMiB})
	}
	return out
}
