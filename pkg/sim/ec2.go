package sim

import "encoding/xml"

func init() {
	registerService(&service{
		name:   "ec2",
		xmlns:  "http://ec2.amazonaws.com/doc/2016-11-15/",
		handle: serveEC2,
	})
}

// ec2Actions maps EC2 action names to their handlers; each handler writes its response or
// returns an error, with the region locked.
var ec2Actions = map[string]func(r *Region, c *call) *APIError{
	"DescribeAvailabilityZones": (*Region).ec2DescribeAvailabilityZones,
}

func serveEC2(r *Region, c *call) {
	h, ok := ec2Actions[c.Action]
	if !ok {
		c.fail(notServed(c))
		return
	}
	r.mu.Lock()
	r.sched.runDue(r.clock.Now())
	err := h(r, c)
	r.mu.Unlock()
	if err != nil {
		c.fail(err)
	}
}

func (r *Region) ec2DescribeAvailabilityZones(c *call) *APIError {
	type zone struct {
		ZoneName   string `xml:"zoneName"`
		ZoneID     string `xml:"zoneId"`
		State      string `xml:"zoneState"`
		RegionName string `xml:"regionName"`
		ZoneType   string `xml:"zoneType"`
		OptIn      string `xml:"optInStatus"`
	}
	var out struct {
		XMLName xml.Name `xml:"x"`
		Zones   []zone   `xml:"availabilityZoneInfo>item"`
	}
	want := map[string]bool{}
	for _, n := range c.Form.List("ZoneName") {
		want[n] = true
	}
	for _, az := range r.azs {
		if len(want) > 0 && !want[az.Name] {
			continue
		}
		out.Zones = append(out.Zones, zone{ZoneName: az.Name, ZoneID: az.ID, State: "available", RegionName: r.opts.Region,
			ZoneType: "availability-zone", OptIn: "opt-in-not-required"})
	}
	c.writeEC2(out)
	return nil
}
