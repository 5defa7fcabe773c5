package sim

import (
	"encoding/xml"
	"net/netip"
	"sort"
	"strings"
)

type xmlVpc struct {
	VPCID           string `xml:"vpcId"`
	OwnerID         string `xml:"ownerId"`
	State           string `xml:"state"`
	CIDR            string `xml:"cidrBlock"`
	CIDRAssociation []struct {
		AssociationID string `xml:"associationId"`
		CIDR          string `xml:"cidrBlock"`
		State         string `xml:"cidrBlockState>state"`
	} `xml:"cidrBlockAssociationSet>item"`
	DHCPOptionsID   string   `xml:"dhcpOptionsId"`
	InstanceTenancy string   `xml:"instanceTenancy"`
	IsDefault       bool     `xml:"isDefault"`
	Tags            []xmlTag `xml:"tagSet>item"`
}

func (r *Region) xmlVpc(v *VPC) xmlVpc {
	x := xmlVpc{VPCID: v.ID, OwnerID: r.opts.AccountID, State: "available", CIDR: v.CIDR,
		DHCPOptionsID: "dopt-" + strings.TrimPrefix(v.ID, "vpc-"), InstanceTenancy: "default", IsDefault: v.IsDefault,
		Tags: xmlTags(r.ec2().vpcTags[v.ID])}
	x.CIDRAssociation = append(x.CIDRAssociation, struct {
		AssociationID string `xml:"associationId"`
		CIDR          string `xml:"cidrBlock"`
		State         string `xml:"cidrBlockState>state"`
	}{AssociationID: "vpc-cidr-assoc-" + strings.TrimPrefix(v.ID, "vpc-"), CIDR: v.CIDR, State: "associated"})
	return x
}

type xmlSubnet struct {
	SubnetID         string   `xml:"subnetId"`
	SubnetArn        string   `xml:"subnetArn"`
	State            string   `xml:"state"`
	VPCID            string   `xml:"vpcId"`
	OwnerID          string   `xml:"ownerId"`
	CIDR             string   `xml:"cidrBlock"`
	AvailableIPCount int      `xml:"availableIpAddressCount"`
	AZ               string   `xml:"availabilityZone"`
	AZID             string   `xml:"availabilityZoneId"`
	DefaultForAZ     bool     `xml:"defaultForAz"`
	MapPublicIP      bool     `xml:"mapPublicIpOnLaunch"`
	AssignIPv6       bool     `xml:"assignIpv6AddressOnCreation"`
	Tags             []xmlTag `xml:"tagSet>item"`
}

func (r *Region) xmlSubnet(sn *Subnet) xmlSubnet {
	free := sn.AvailableIPCount
	for _, in := range r.instances {
		if in.SubnetID == sn.ID && in.State != StateTerminated {
			free--
		}
	}
	return xmlSubnet{SubnetID: sn.ID, SubnetArn: "arn:aws:ec2:" + r.opts.Region + ":" + r.opts.AccountID + ":subnet/" + sn.ID,
		State: "available", VPCID: sn.VPCID, OwnerID: r.opts.AccountID, CIDR: sn.CIDR, AvailableIPCount: max(free, 0),
		AZ: sn.AZ, AZID: r.azID(sn.AZ), DefaultForAZ: sn.DefaultForAZ, MapPublicIP: sn.MapPublicIP, Tags: xmlTags(sn.Tags)}
}

func (r *Region) ec2DescribeVpcs(c *call) *APIError {
	p := c.Form
	maxN, err := maxResults(p, 5, 1000)
	if err != nil {
		return err
	}
	var vpcs []*VPC
	if ids := p.List("VpcId"); len(ids) > 0 {
		for _, id := range ids {
			v := r.vpcs[id]
			if v == nil {
				return errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
			}
			vpcs = append(vpcs, v)
		}
	} else {
		for _, id := range sortedKeys(r.vpcs) {
			vpcs = append(vpcs, r.vpcs[id])
		}
	}
	one := func(f func(*VPC) string) func(*VPC) []string { return func(v *VPC) []string { return []string{f(v)} } }
	vpcs, err = applyFilters(vpcs, parseFilters(p), filterFields[*VPC]{
		"vpc-id":                            one(func(v *VPC) string { return v.ID }),
		"is-default":                        one(func(v *VPC) string { return boolStr(v.IsDefault) }),
		"isDefault":                         one(func(v *VPC) string { return boolStr(v.IsDefault) }),
		"cidr":                              one(func(v *VPC) string { return v.CIDR }),
		"cidr-block-association.cidr-block": one(func(v *VPC) string { return v.CIDR }),
		"state":                             one(func(*VPC) string { return "available" }),
		"owner-id":                          one(func(*VPC) string { return r.opts.AccountID }),
	}, func(v *VPC) Tags { return r.ec2().vpcTags[v.ID] })
	if err != nil {
		return err
	}
	start, end, next, err := page(len(vpcs), maxN, p.Get("NextToken"), 1000, 1000)
	if err != nil {
		return err
	}
	out := struct {
		XMLName   xml.Name `xml:"x"`
		Vpcs      []xmlVpc `xml:"vpcSet>item"`
		NextToken string   `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, v := range vpcs[start:end] {
		out.Vpcs = append(out.Vpcs, r.xmlVpc(v))
	}
	c.writeEC2(out)
	return nil
}

func (r *Region) ec2CreateVpc(c *call) *APIError {
	p := c.Form
	cidr := p.Get("CidrBlock")
	if cidr == "" {
		return errf(CodeMissingParameter, "The request must contain the parameter CidrBlock")
	}
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil || !pfx.Addr().Is4() || pfx.Masked() != pfx {
		return errf(CodeInvalidParameter, "Value (%s) for parameter cidrBlock is invalid. This is not a valid CIDR block.", cidr)
	}
	if pfx.Bits() < 16 || pfx.Bits() > 28 {
		return errf("InvalidVpc.Range", "The CIDR '%s' is invalid.", cidr)
	}
	tags, aerr := parseTagSpecs(p, "TagSpecification", "vpc")
	if aerr != nil {
		return aerr
	}
	v := &VPC{ID: r.newID("vpc"), CIDR: pfx.String()}
	r.vpcs[v.ID] = v
	for k, val := range tags["vpc"] {
		r.vpcTags(v.ID)[k] = val
	}
	c.writeEC2(struct {
		XMLName xml.Name `xml:"x"`
		Vpc     xmlVpc   `xml:"vpc"`
	}{Vpc: r.xmlVpc(v)})
	return nil
}

func (r *Region) ec2DescribeSubnets(c *call) *APIError {
	p := c.Form
	maxN, err := maxResults(p, 5, 1000)
	if err != nil {
		return err
	}
	var sns []*Subnet
	if ids := p.List("SubnetId"); len(ids) > 0 {
		for _, id := range ids {
			sn := r.subnets[id]
			if sn == nil {
				return errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
			}
			sns = append(sns, sn)
		}
	} else {
		for _, id := range sortedKeys(r.subnets) {
			sns = append(sns, r.subnets[id])
		}
		sort.SliceStable(sns, func(i, j int) bool { return sns[i].AZ < sns[j].AZ })
	}
	one := func(f func(*Subnet) string) func(*Subnet) []string {
		return func(sn *Subnet) []string { return []string{f(sn)} }
	}
	sns, err = applyFilters(sns, parseFilters(p), filterFields[*Subnet]{
		"subnet-id":               one(func(sn *Subnet) string { return sn.ID }),
		"vpc-id":                  one(func(sn *Subnet) string { return sn.VPCID }),
		"vpcId":                   one(func(sn *Subnet) string { return sn.VPCID }),
		"availability-zone":       one(func(sn *Subnet) string { return sn.AZ }),
		"availabilityZone":        one(func(sn *Subnet) string { return sn.AZ }),
		"availability-zone-id":    one(func(sn *Subnet) string { return r.azID(sn.AZ) }),
		"default-for-az":          one(func(sn *Subnet) string { return boolStr(sn.DefaultForAZ) }),
		"defaultForAz":            one(func(sn *Subnet) string { return boolStr(sn.DefaultForAZ) }),
		"cidr-block":              one(func(sn *Subnet) string { return sn.CIDR }),
		"cidrBlock":               one(func(sn *Subnet) string { return sn.CIDR }),
		"cidr":                    one(func(sn *Subnet) string { return sn.CIDR }),
		"map-public-ip-on-launch": one(func(sn *Subnet) string { return boolStr(sn.MapPublicIP) }),
		"state":                   one(func(*Subnet) string { return "available" }),
		"owner-id":                one(func(*Subnet) string { return r.opts.AccountID }),
	}, func(sn *Subnet) Tags { return sn.Tags })
	if err != nil {
		return err
	}
	start, end, next, err := page(len(sns), maxN, p.Get("NextToken"), 1000, 1000)
	if err != nil {
		return err
	}
	out := struct {
		XMLName   xml.Name    `xml:"x"`
		Subnets   []xmlSubnet `xml:"subnetSet>item"`
		NextToken string      `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, sn := range sns[start:end] {
		out.Subnets = append(out.Subnets, r.xmlSubnet(sn))
	}
	c.writeEC2(out)
	return nil
}

func (r *Region) ec2CreateSubnet(c *call) *APIError {
	p := c.Form
	vpcID := p.Get("VpcId")
	if vpcID == "" {
		return errf(CodeMissingParameter, "The request must contain the parameter VpcId")
	}
	vpc := r.vpcs[vpcID]
	if vpc == nil {
		return errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpcID)
	}
	cidr := p.Get("CidrBlock")
	if cidr == "" {
		return errf(CodeMissingParameter, "The request must contain the parameter CidrBlock")
	}
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil || !pfx.Addr().Is4() || pfx.Masked() != pfx {
		return errf(CodeInvalidParameter, "Value (%s) for parameter cidrBlock is invalid. This is not a valid CIDR block.", cidr)
	}
	vpcPfx, err := netip.ParsePrefix(vpc.CIDR)
	if err != nil || pfx.Bits() < 16 || pfx.Bits() > 28 || pfx.Bits() < vpcPfx.Bits() || !vpcPfx.Contains(pfx.Addr()) {
		return errf("InvalidSubnet.Range", "The CIDR '%s' is invalid.", cidr)
	}
	for _, sn := range r.subnets {
		if sn.VPCID != vpc.ID {
			continue
		}
		if other, err := netip.ParsePrefix(sn.CIDR); err == nil && other.Overlaps(pfx) {
			return errf("InvalidSubnet.Conflict", "The CIDR '%s' conflicts with another subnet", cidr)
		}
	}
	az := p.Get("AvailabilityZone")
	if id := p.Get("AvailabilityZoneId"); az == "" && id != "" {
		for _, z := range r.azs {
			if z.ID == id {
				az = z.Name
			}
		}
		if az == "" {
			az = id // reported as invalid below
		}
	}
	if az == "" && len(r.azs) > 0 {
		az = r.azs[0].Name
	}
	if !r.hasAZ(az) {
		names := make([]string, 0, len(r.azs))
		for _, z := range r.azs {
			names = append(names, z.Name)
		}
		return errf(CodeInvalidParameter, "Value (%s) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: %s.", az, strings.Join(names, ", "))
	}
	tags, aerr := parseTagSpecs(p, "TagSpecification", "subnet")
	if aerr != nil {
		return aerr
	}
	sn := &Subnet{ID: r.newID("subnet"), VPCID: vpc.ID, AZ: az, CIDR: pfx.String(), Tags: Tags{},
		AvailableIPCount: 1<<(32-pfx.Bits()) - 5}
	for k, v := range tags["subnet"] {
		sn.Tags[k] = v
	}
	r.subnets[sn.ID] = sn
	c.writeEC2(struct {
		XMLName xml.Name  `xml:"x"`
		Subnet  xmlSubnet `xml:"subnet"`
	}{Subnet: r.xmlSubnet(sn)})
	return nil
}
