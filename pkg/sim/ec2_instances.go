package sim

import (
	"encoding/xml"
	"sort"
	"strconv"
	"strings"
)

// Instance state codes, as EC2 reports them next to the state name.
var instanceStateCodes = map[string]int{
	StatePending:      0,
	StateRunning:      16,
	StateShuttingDown: 32,
	StateTerminated:   48,
	StateStopping:     64,
	StateStopped:      80,
}

// stateReasonMessages are the messages EC2 gives with a state reason code.
var stateReasonMessages = map[string]string{
	"Client.UserInitiatedShutdown":     "Client.UserInitiatedShutdown: User initiated shutdown",
	"Client.InstanceInitiatedShutdown": "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
	"Server.SpotInstanceTermination":   "Server.SpotInstanceTermination: Spot instance termination",
	"Server.SpotInstanceShutdown":      "Server.SpotInstanceShutdown: Spot instance shutdown",
	"Server.InsufficientInstanceCapacity": "Server.InsufficientInstanceCapacity: Insufficient capacity to satisfy " +
		"instance request",
}

type xmlInstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

func instanceState(s string) xmlInstanceState {
	return xmlInstanceState{Code: instanceStateCodes[s], Name: s}
}

type xmlEbsInstanceBlockDevice struct {
	VolumeID            string `xml:"volumeId"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime,omitempty"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlInstanceBlockDevice struct {
	DeviceName string                    `xml:"deviceName"`
	Ebs        xmlEbsInstanceBlockDevice `xml:"ebs"`
}

type xmlPlacement struct {
	AZ        string `xml:"availabilityZone"`
	AZID      string `xml:"availabilityZoneId,omitempty"`
	GroupName string `xml:"groupName"`
	Tenancy   string `xml:"tenancy"`
}

type xmlStateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xmlMetadataOptions struct {
	State                string `xml:"state"`
	HTTPTokens           string `xml:"httpTokens"`
	HopLimit             int    `xml:"httpPutResponseHopLimit"`
	HTTPEndpoint         string `xml:"httpEndpoint"`
	InstanceMetadataTags string `xml:"instanceMetadataTags"`
}

type xmlNetworkInterface struct {
	ID         string `xml:"networkInterfaceId"`
	SubnetID   string `xml:"subnetId"`
	VPCID      string `xml:"vpcId"`
	OwnerID    string `xml:"ownerId"`
	Status     string `xml:"status"`
	PrivateIP  string `xml:"privateIpAddress"`
	PrivateDNS string `xml:"privateDnsName"`
	Attachment struct {
		ID                  string `xml:"attachmentId"`
		DeviceIndex         int    `xml:"deviceIndex"`
		Status              string `xml:"status"`
		AttachTime          string `xml:"attachTime"`
		DeleteOnTermination bool   `xml:"deleteOnTermination"`
	} `xml:"attachment"`
	InterfaceType string     `xml:"interfaceType"`
	Groups        []xmlGroup `xml:"groupSet>item"`
}

type xmlInstance struct {
	InstanceID        string                   `xml:"instanceId"`
	ImageID           string                   `xml:"imageId"`
	State             xmlInstanceState         `xml:"instanceState"`
	PrivateDNSName    string                   `xml:"privateDnsName"`
	DNSName           string                   `xml:"dnsName"`
	Reason            string                   `xml:"reason"`
	AMILaunchIndex    int                      `xml:"amiLaunchIndex"`
	InstanceType      string                   `xml:"instanceType"`
	LaunchTime        string                   `xml:"launchTime"`
	Placement         xmlPlacement             `xml:"placement"`
	MonitoringState   string                   `xml:"monitoring>state"`
	SubnetID          string                   `xml:"subnetId"`
	VPCID             string                   `xml:"vpcId"`
	PrivateIP         string                   `xml:"privateIpAddress"`
	SourceDestCheck   bool                     `xml:"sourceDestCheck"`
	StateReason       *xmlStateReason          `xml:"stateReason,omitempty"`
	Architecture      string                   `xml:"architecture"`
	RootDeviceType    string                   `xml:"rootDeviceType"`
	RootDeviceName    string                   `xml:"rootDeviceName"`
	BlockDevices      []xmlInstanceBlockDevice `xml:"blockDeviceMapping>item"`
	InstanceLifecycle string                   `xml:"instanceLifecycle,omitempty"`
	SpotRequestID     string                   `xml:"spotInstanceRequestId,omitempty"`
	Virtualization    string                   `xml:"virtualizationType"`
	ClientToken       string                   `xml:"clientToken,omitempty"`
	Tags              []xmlTag                 `xml:"tagSet>item"`
	Hypervisor        string                   `xml:"hypervisor"`
	NetworkInterfaces []xmlNetworkInterface    `xml:"networkInterfaceSet>item"`
	EbsOptimized      bool                     `xml:"ebsOptimized"`
	EnaSupport        bool                     `xml:"enaSupport"`
	MetadataOptions   xmlMetadataOptions       `xml:"metadataOptions"`
	Groups            []xmlGroup               `xml:"groupSet>item"`
}

// xmlGroup is a security group as instances and network interfaces list it.
type xmlGroup struct {
	GroupID string `xml:"groupId"`
}

func xmlGroups(ids []string) []xmlGroup {
	out := make([]xmlGroup, 0, len(ids))
	for _, id := range ids {
		out = append(out, xmlGroup{GroupID: id})
	}
	return out
}

// privateDNSName returns the instance's private host name as EC2 forms it.
func (r *Region) privateDNSName(ip string) string {
	if ip == "" {
		return ""
	}
	host := "ip-" + strings.ReplaceAll(ip, ".", "-")
	if r.opts.Region == "us-east-1" {
		return host + ".ec2.internal"
	}
	return host + "." + r.opts.Region + ".compute.internal"
}

func (r *Region) xmlInstance(in *Instance) xmlInstance {
	x := xmlInstance{
		InstanceID:      in.ID,
		ImageID:         in.ImageID,
		State:           instanceState(in.State),
		Reason:          in.StateTransition,
		InstanceType:    in.Type,
		LaunchTime:      isoTime(in.LaunchTime),
		Placement:       xmlPlacement{AZ: in.AZ, AZID: r.azID(in.AZ), Tenancy: "default"},
		MonitoringState: "disabled",
		SubnetID:        in.SubnetID,
		VPCID:           in.VPCID,
		SourceDestCheck: true,
		Architecture:    "x86_64",
		RootDeviceType:  "ebs",
		RootDeviceName:  in.RootDevice,
		Virtualization:  "hvm",
		ClientToken:     in.ClientToken,
		Tags:            xmlTags(in.Tags),
		Hypervisor:      "xen",
		EbsOptimized:    true,
		EnaSupport:      true,
		MetadataOptions: xmlMetadataOptions{State: "applied", HTTPTokens: "optional", HopLimit: in.HopLimit, HTTPEndpoint: "enabled",
			InstanceMetadataTags: "disabled"},
		Groups: xmlGroups(in.SecurityGroupIDs),
	}
	if x.MetadataOptions.HopLimit == 0 {
		x.MetadataOptions.HopLimit = defaultHopLimit
	}
	if in.State != StateTerminated {
		x.PrivateIP = in.PrivateIP
		x.PrivateDNSName = r.privateDNSName(in.PrivateIP)
		eni := xmlNetworkInterface{ID: "eni-" + strings.TrimPrefix(in.ID, "i-"), SubnetID: in.SubnetID, VPCID: in.VPCID,
			OwnerID: r.opts.AccountID, Status: "in-use", PrivateIP: in.PrivateIP, PrivateDNS: x.PrivateDNSName, InterfaceType: "interface"}
		eni.Attachment.ID = "eni-attach-" + strings.TrimPrefix(in.ID, "i-")
		eni.Attachment.Status = "attached"
		eni.Attachment.AttachTime = x.LaunchTime
		eni.Attachment.DeleteOnTermination = true
		eni.Groups = x.Groups
		x.NetworkInterfaces = []xmlNetworkInterface{eni}
	}
	if in.HTTPTokensReq {
		x.MetadataOptions.HTTPTokens = "required"
	}
	if in.MetadataTags {
		x.MetadataOptions.InstanceMetadataTags = "enabled"
	}
	if in.StateReason != "" {
		msg := stateReasonMessages[in.StateReason]
		if msg == "" {
			msg = in.StateReason
		}
		x.StateReason = &xmlStateReason{Code: in.StateReason, Message: msg}
	}
	if in.Market == MarketSpot {
		x.InstanceLifecycle = "spot"
		x.SpotRequestID = in.SpotRequestID
	}
	x.BlockDevices = r.xmlInstanceBlockDevices(in)
	return x
}

func (r *Region) xmlInstanceBlockDevices(in *Instance) []xmlInstanceBlockDevice {
	var out []xmlInstanceBlockDevice
	for _, bd := range in.BlockDevices {
		ebs := xmlEbsInstanceBlockDevice{VolumeID: bd.VolumeID, Status: AttachAttached, DeleteOnTermination: bd.DeleteOnTermination}
		if v := r.volumes[bd.VolumeID]; v != nil && v.Attachment != nil && v.Attachment.InstanceID == in.ID {
			ebs.Status = v.Attachment.State
			ebs.AttachTime = isoTime(v.Attachment.AttachTime)
		}
		out = append(out, xmlInstanceBlockDevice{DeviceName: bd.DeviceName, Ebs: ebs})
	}
	return out
}

type xmlReservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}

// instancesByID resolves a list of instance ids, failing as EC2 does when one is malformed or
// unknown.
func (r *Region) instancesByID(ids []string) ([]*Instance, *APIError) {
	var out []*Instance
	var missing []string
	for _, id := range ids {
		if !validID("i", id) {
			return nil, errf("InvalidInstanceID.Malformed", "Invalid id: \"%s\" (expecting \"i-...\")", id)
		}
		in := r.instances[id]
		if in == nil || !r.ec2Visible(id) {
			missing = append(missing, id)
			continue
		}
		out = append(out, in)
	}
	switch {
	case len(missing) == 1:
		return nil, errf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", missing[0])
	case len(missing) > 1:
		return nil, errf("InvalidInstanceID.NotFound", "The instance IDs %s do not exist", quoteIDs(missing))
	}
	return out, nil
}

// instanceByID resolves one required instance id.
func (r *Region) instanceByID(id string) (*Instance, *APIError) {
	if id == "" {
		return nil, errf(CodeMissingParameter, "The request must contain the parameter InstanceId")
	}
	ins, err := r.instancesByID([]string{id})
	if err != nil {
		return nil, err
	}
	return ins[0], nil
}

// parseBlockDevices reads BlockDeviceMapping.N structures. Fields the call leaves out are taken
// from the base mapping of the same device (a launch template's), else from EC2's defaults.
func parseBlockDevices(p params, prefix string, base []BlockDevice) ([]BlockDevice, *APIError) {
	var out []BlockDevice
	for _, s := range p.Structs(prefix) {
		bd := BlockDevice{DeviceName: s.Get("DeviceName"), DeleteOnTermination: true}
		if bd.DeviceName == "" {
			return nil, errf(CodeMissingParameter, "The request must contain the parameter BlockDeviceMapping.DeviceName")
		}
		for _, b := range base {
			if b.DeviceName == bd.DeviceName && !b.NoDevice {
				bd = b
			}
		}
		if s.Has("NoDevice") {
			out = append(out, BlockDevice{DeviceName: bd.DeviceName, NoDevice: true})
			continue
		}
		ebs := s.Sub("Ebs")
		if dot, ok, err := ebs.Bool("DeleteOnTermination"); err != nil {
			return nil, err
		} else if ok {
			bd.DeleteOnTermination = dot
		}
		if size, ok, err := ebs.Int("VolumeSize"); err != nil {
			return nil, err
		} else if ok {
			if size < 1 || size > 65536 {
				return nil, errf(CodeInvalidParameter, "Volume of %d GiB is out of range for %s", size, bd.DeviceName)
			}
			bd.VolumeSize = int32(size)
		}
		if t := ebs.Get("VolumeType"); t != "" {
			if !validVolumeType(t) {
				return nil, errf(CodeInvalidParameter, "Value (%s) for parameter volumeType is invalid. Valid values: standard, io1, io2, gp2, sc1, st1, gp3", t)
			}
			bd.VolumeType = t
		}
		if snap := ebs.Get("SnapshotId"); snap != "" {
			bd.SnapshotID = snap
		}
		if enc, ok, err := ebs.Bool("Encrypted"); err != nil {
			return nil, err
		} else if ok {
			bd.Encrypted = enc
		}
		out = append(out, bd)
	}
	return out, nil
}

func validVolumeType(t string) bool {
	switch t {
	case "standard", "io1", "io2", "gp2", "gp3", "sc1", "st1":
		return true
	}
	return false
}

func (r *Region) ec2RunInstances(c *call) *APIError {
	p := c.Form
	minN, okMin, err := p.Int("MinCount")
	if err != nil {
		return err
	}
	maxN, okMax, err := p.Int("MaxCount")
	if err != nil {
		return err
	}
	switch {
	case !okMin:
		return errf(CodeMissingParameter, "The request must contain the parameter MinCount")
	case !okMax:
		return errf(CodeMissingParameter, "The request must contain the parameter MaxCount")
	case minN < 1:
		return errf(CodeInvalidParameter, "Value (%d) for parameter minCount is invalid. Expected a positive integer.", minN)
	case maxN < minN:
		return errf(CodeInvalidParameter, "Value (%d) for parameter maxCount is invalid. Expected a value greater than or equal to minCount (%d).", maxN, minN)
	}
	spec := LaunchSpec{ImageID: p.Get("ImageId"), InstanceType: p.Get("InstanceType"), ClientToken: p.Get("ClientToken"),
		SecurityGroupIDs: p.List("SecurityGroupId")}
	replay := r.launchedWithToken(spec.ClientToken)
	if replay && r.beh.EC2.IdempotencyMismatch && r.ec2().launches[spec.ClientToken] != launchFingerprint(p) {
		return errf("IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
	}

	var ref *LaunchTemplateRef
	var base []BlockDevice
	if lt := p.Sub("LaunchTemplate"); lt.Get("LaunchTemplateId") != "" || lt.Get("LaunchTemplateName") != "" {
		if lt.Get("LaunchTemplateId") != "" && lt.Get("LaunchTemplateName") != "" {
			return errf("InvalidParameterCombination", "The parameters 'LaunchTemplateId' and 'LaunchTemplateName' cannot be used together.")
		}
		ref = &LaunchTemplateRef{ID: lt.Get("LaunchTemplateId"), Name: lt.Get("LaunchTemplateName"), Version: lt.Get("Version")}
		if t := r.findTemplate(ref.ID, ref.Name); t != nil {
			if ver, ok := t.Version(ref.Version); ok {
				base = ver.Data.BlockDevices
				// The instance's aws:ec2launchtemplate:version tag names the number, not $Latest.
				ref.Version = strconv.FormatInt(ver.Number, 10)
			}
		}
	}

	mo := p.Sub("InstanceMarketOptions")
	switch mo.Get("MarketType") {
	case "":
	case MarketSpot:
		spec.Spot = true
		so := mo.Sub("SpotOptions")
		spec.SpotMaxPrice = so.Get("MaxPrice")
		spec.Interruption = so.Get("InstanceInterruptionBehavior")
		switch spec.Interruption {
		case "", "terminate", "stop", "hibernate":
		default:
			return errf(CodeInvalidParameter, "Value (%s) for parameter instanceInterruptionBehavior is invalid.", spec.Interruption)
		}
	default:
		return errf(CodeInvalidParameter, "Value (%s) for parameter marketType is invalid.", mo.Get("MarketType"))
	}
	md := p.Sub("MetadataOptions")
	spec.HTTPTokens = md.Get("HttpTokens") == "required"
	spec.MetadataTags = md.Get("InstanceMetadataTags") == "enabled"
	if hl, ok, err := md.Int("HttpPutResponseHopLimit"); err != nil {
		return err
	} else if ok {
		if hl < 1 || hl > 64 {
			return errf(CodeInvalidParameter, "Value (%d) for parameter httpPutResponseHopLimit is invalid. Valid values are between 1 and 64.", hl)
		}
		spec.HopLimit = int(hl)
	}
	nis, err := parseNetworkInterfaces(p, "NetworkInterface")
	if err != nil {
		return err
	}
	spec.NetworkInterfaces = nis

	bds, err := parseBlockDevices(p, "BlockDeviceMapping", base)
	if err != nil {
		return err
	}
	spec.BlockDevices = bds
	tags, err := parseTagSpecs(p, "TagSpecification", "instance", "volume", "spot-instances-request", "network-interface")
	if err != nil {
		return err
	}
	spec.Tags = tags
	if ref != nil {
		if err := r.resolveTemplate(ref, &spec); err != nil {
			return err
		}
	}

	subnetID, err := r.launchNetwork(p, &spec)
	if err != nil {
		return err
	}
	sn, err := r.launchSubnet(subnetID, p.Get("Placement.AvailabilityZone"), spec.InstanceType)
	if err != nil {
		return err
	}
	spec.SubnetID = sn.ID
	if spec.Spot && spec.SpotMaxPrice != "" && !replay {
		if err := r.checkSpotMaxPrice(spec, sn.AZ); err != nil {
			return err
		}
	}

	var ins []*Instance
	for n := maxN; n >= minN; n-- {
		spec.Count = int(n)
		ins, err = r.launch(spec)
		if err == nil || err.Code != CodeInsufficientCapacity {
			break
		}
	}
	if err != nil {
		return err
	}
	if !replay {
		r.launched(ins, spec, p)
	}
	out := struct {
		XMLName xml.Name `xml:"x"`
		xmlReservation
	}{xmlReservation: xmlReservation{ReservationID: ins[0].ReservationID, OwnerID: r.opts.AccountID}}
	for _, in := range ins {
		out.Instances = append(out.Instances, r.xmlInstance(in))
	}
	c.writeEC2(out)
	return nil
}

// launchNetwork applies the network interfaces of a RunInstances call or its launch template to
// spec and returns the subnet the call names: the request's SubnetId, else the subnet of the
// primary interface. With NetworkInterfaceRules, an instance-level subnet or security groups next
// to interfaces are refused, as EC2 does.
func (r *Region) launchNetwork(p params, spec *LaunchSpec) (string, *APIError) {
	subnetID := p.Get("SubnetId")
	ni := primaryInterface(spec.NetworkInterfaces)
	if len(spec.NetworkInterfaces) > 0 && r.beh.EC2.NetworkInterfaceRules {
		if subnetID != "" {
			return "", errf("InvalidParameterCombination", "Network interfaces and an instance-level subnet ID may not be specified on the same request")
		}
		if len(p.List("SecurityGroupId")) > 0 || len(p.List("SecurityGroup")) > 0 || r.templateGroups(spec.Template) {
			return "", errf("InvalidParameterCombination", "Network interfaces and an instance-level security groups may not be specified on the same request")
		}
	}
	if ni != nil {
		if subnetID == "" {
			subnetID = ni.SubnetID
		}
		if len(p.List("SecurityGroupId")) == 0 {
			spec.SecurityGroupIDs = append([]string(nil), ni.Groups...)
		}
	}
	return subnetID, nil
}

// templateGroups reports whether a launch template version names instance-level security groups.
func (r *Region) templateGroups(ref *LaunchTemplateRef) bool {
	if ref == nil {
		return false
	}
	if lt := r.findTemplate(ref.ID, ref.Name); lt != nil {
		if ver, ok := lt.Version(ref.Version); ok {
			return len(ver.Data.SecurityGroupIDs) > 0
		}
	}
	return false
}

// parseNetworkInterfaces reads prefix.N network interface specifications.
func parseNetworkInterfaces(p params, prefix string) ([]NetworkInterfaceSpec, *APIError) {
	var out []NetworkInterfaceSpec
	for _, s := range p.Structs(prefix) {
		ni := NetworkInterfaceSpec{SubnetID: s.Get("SubnetId"), Groups: s.List("SecurityGroupId"), Description: s.Get("Description")}
		idx, ok, err := s.Int("DeviceIndex")
		if err != nil {
			return nil, err
		}
		if ok {
			ni.DeviceIndex = int(idx)
		} else if len(out) > 0 {
			return nil, errf(CodeMissingParameter, "The request must contain the parameter NetworkInterface.DeviceIndex")
		}
		if b, ok, err := s.Bool("AssociatePublicIpAddress"); err != nil {
			return nil, err
		} else if ok {
			ni.AssociatePublicIP = &b
		}
		ni.DeleteOnTermination = true
		if b, ok, err := s.Bool("DeleteOnTermination"); err != nil {
			return nil, err
		} else if ok {
			ni.DeleteOnTermination = b
		}
		for _, o := range out {
			if o.DeviceIndex == ni.DeviceIndex {
				return nil, errf(CodeInvalidParameter, "Each network interface requires a unique device index.")
			}
		}
		out = append(out, ni)
	}
	return out, nil
}

// launchFingerprint identifies a RunInstances call's parameters apart from its client token,
// for IdempotentParameterMismatch.
func launchFingerprint(p params) string {
	var b strings.Builder
	for _, k := range sortedKeys(p.Values()) {
		switch k {
		case "ClientToken", "Action", "Version", "DryRun":
			continue
		}
		b.WriteString(k + "=" + strings.Join(p.Values()[k], ",") + "&")
	}
	return b.String()
}

// launched records a fresh RunInstances launch: its client token's parameters and the
// eventual-consistency windows of the instances and the tags written with them.
func (r *Region) launched(ins []*Instance, spec LaunchSpec, p params) {
	if spec.ClientToken != "" {
		r.ec2().launches[spec.ClientToken] = launchFingerprint(p)
	}
	for _, in := range ins {
		r.markLaunched(in.ID)
		r.markTagged(in.ID, spec.Tags["instance"].Sorted()...)
		for _, bd := range in.BlockDevices {
			r.markTagged(bd.VolumeID, spec.Tags["volume"].Sorted()...)
		}
	}
}

// launchSubnet returns the subnet a RunInstances call launches into: the named one, else the
// default subnet of the requested AZ, else the default subnet of the first AZ that has one.
func (r *Region) launchSubnet(subnetID, az, typ string) (*Subnet, *APIError) {
	if subnetID != "" {
		sn := r.subnets[subnetID]
		if sn == nil {
			return nil, errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnetID)
		}
		if az != "" && az != sn.AZ {
			return nil, errf(CodeInvalidParameter, "Value (%s) for parameter availabilityZone is invalid. Subnet '%s' is in the availability zone %s", az, sn.ID, sn.AZ)
		}
		return sn, nil
	}
	if az != "" && !r.hasAZ(az) {
		return nil, errf(CodeInvalidParameter, "Invalid availability zone: [%s]", az)
	}
	for _, zone := range r.azs {
		if az != "" && zone.Name != az {
			continue
		}
		// Without a zone, EC2 picks one that offers the type.
		if az == "" && typ != "" && !r.offered(typ, zone.Name) {
			continue
		}
		for _, id := range sortedKeys(r.subnets) {
			if sn := r.subnets[id]; sn.AZ == zone.Name && sn.DefaultForAZ {
				return sn, nil
			}
		}
	}
	return nil, errf("VPCIdNotSpecified", "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.")
}

// launchedWithToken reports whether an earlier RunInstances call used the client token.
func (r *Region) launchedWithToken(token string) bool {
	if token == "" {
		return false
	}
	for _, in := range r.instances {
		if in.ClientToken == token {
			return true
		}
	}
	return false
}

// checkSpotMaxPrice fails a spot launch whose maximum price is below the current spot price.
func (r *Region) checkSpotMaxPrice(spec LaunchSpec, az string) *APIError {
	maxPrice, err := strconv.ParseFloat(spec.SpotMaxPrice, 64)
	if err != nil || maxPrice <= 0 {
		return errf(CodeInvalidParameter, "Invalid value '%s' for MaxPrice", spec.SpotMaxPrice)
	}
	typ := spec.InstanceType
	if typ == "" {
		typ = "m1.small"
	}
	price, ok := r.spotPrice(typ, az)
	if ok && maxPrice < price {
		return errf("SpotMaxPriceTooLow", "Your Spot request price of %s is lower than the minimum required Spot request fulfillment price of %s.",
			spec.SpotMaxPrice, formatPrice(price))
	}
	return nil
}

func (r *Region) ec2DescribeInstances(c *call) *APIError {
	p := c.Form
	ids := p.List("InstanceId")
	maxN, err := maxResults(p, 5, 1000)
	if err != nil {
		return err
	}
	if len(ids) > 0 && maxN > 0 {
		return errf("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	var ins []*Instance
	if len(ids) > 0 {
		if ins, err = r.instancesByID(ids); err != nil {
			return err
		}
	} else {
		for _, in := range r.instances {
			if r.ec2Visible(in.ID) {
				ins = append(ins, in)
			}
		}
	}
	// Filtered first, then ordered: the same page, without sorting the region's every instance
	// for each page of a filtered listing.
	ins, err = applyFilters(ins, parseFilters(p), instanceFilters(r), func(in *Instance) Tags { return r.filterTags(in.ID, in.Tags) })
	if err != nil {
		return err
	}
	sort.Slice(ins, func(i, j int) bool {
		a, b := ins[i], ins[j]
		if !a.LaunchTime.Equal(b.LaunchTime) {
			return a.LaunchTime.Before(b.LaunchTime)
		}
		if a.ReservationID != b.ReservationID {
			return a.ReservationID < b.ReservationID
		}
		return a.ID < b.ID
	})
	start, end, next, err := page(len(ins), maxN, p.Get("NextToken"), 1000, 1000)
	if err != nil {
		return err
	}
	var out struct {
		XMLName      xml.Name         `xml:"x"`
		Reservations []xmlReservation `xml:"reservationSet>item"`
		NextToken    string           `xml:"nextToken,omitempty"`
	}
	out.NextToken = next
	for _, in := range ins[start:end] {
		n := len(out.Reservations)
		if n == 0 || out.Reservations[n-1].ReservationID != in.ReservationID {
			out.Reservations = append(out.Reservations, xmlReservation{ReservationID: in.ReservationID, OwnerID: r.opts.AccountID})
			n++
		}
		out.Reservations[n-1].Instances = append(out.Reservations[n-1].Instances, r.xmlInstance(in))
	}
	c.writeEC2(out)
	return nil
}

func instanceFilters(r *Region) filterFields[*Instance] {
	one := func(f func(*Instance) string) func(*Instance) []string {
		return func(in *Instance) []string { return []string{f(in)} }
	}
	return filterFields[*Instance]{
		"instance-id":         one(func(in *Instance) string { return in.ID }),
		"instance-state-name": one(func(in *Instance) string { return in.State }),
		"instance-state-code": one(func(in *Instance) string { return strconv.Itoa(instanceStateCodes[in.State]) }),
		"instance-lifecycle": func(in *Instance) []string {
			if in.Market == MarketSpot {
				return []string{"spot"}
			}
			return nil
		},
		"availability-zone":           one(func(in *Instance) string { return in.AZ }),
		"placement.availability-zone": one(func(in *Instance) string { return in.AZ }),
		"instance-type":               one(func(in *Instance) string { return in.Type }),
		"subnet-id":                   one(func(in *Instance) string { return in.SubnetID }),
		"vpc-id":                      one(func(in *Instance) string { return in.VPCID }),
		"image-id":                    one(func(in *Instance) string { return in.ImageID }),
		"reservation-id":              one(func(in *Instance) string { return in.ReservationID }),
		"private-ip-address":          one(func(in *Instance) string { return in.PrivateIP }),
		"private-dns-name":            one(func(in *Instance) string { return r.privateDNSName(in.PrivateIP) }),
		"spot-instance-request-id":    one(func(in *Instance) string { return in.SpotRequestID }),
		"client-token":                one(func(in *Instance) string { return in.ClientToken }),
		"root-device-name":            one(func(in *Instance) string { return in.RootDevice }),
		"block-device-mapping.volume-id": func(in *Instance) []string {
			var out []string
			for _, bd := range in.BlockDevices {
				out = append(out, bd.VolumeID)
			}
			return out
		},
		"block-device-mapping.device-name": func(in *Instance) []string {
			var out []string
			for _, bd := range in.BlockDevices {
				out = append(out, bd.DeviceName)
			}
			return out
		},
		"metadata-options.http-tokens": one(func(in *Instance) string {
			if in.HTTPTokensReq {
				return "required"
			}
			return "optional"
		}),
	}
}

type xmlStateChange struct {
	InstanceID string           `xml:"instanceId"`
	Current    xmlInstanceState `xml:"currentState"`
	Previous   xmlInstanceState `xml:"previousState"`
}

// writeStateChanges writes the instancesSet of Terminate/Stop/StartInstances.
func writeStateChanges(c *call, changes []xmlStateChange) {
	c.writeEC2(struct {
		XMLName   xml.Name         `xml:"x"`
		Instances []xmlStateChange `xml:"instancesSet>item"`
	}{Instances: changes})
}

func (r *Region) ec2TerminateInstances(c *call) *APIError {
	ids := c.Form.List("InstanceId")
	if len(ids) == 0 {
		return errf(CodeMissingParameter, "The request must contain the parameter InstanceId")
	}
	ins, err := r.instancesByID(ids)
	if err != nil {
		return err
	}
	var changes []xmlStateChange
	for _, in := range ins {
		prev := in.State
		r.terminate(in, "Client.UserInitiatedShutdown")
		changes = append(changes, xmlStateChange{InstanceID: in.ID, Current: instanceState(in.State), Previous: instanceState(prev)})
	}
	writeStateChanges(c, changes)
	return nil
}

func (r *Region) ec2StopInstances(c *call) *APIError {
	ids := c.Form.List("InstanceId")
	if len(ids) == 0 {
		return errf(CodeMissingParameter, "The request must contain the parameter InstanceId")
	}
	ins, err := r.instancesByID(ids)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.Market == MarketSpot && in.InterruptBehavior == "terminate" {
			return errf("UnsupportedOperation", "You can't stop the Spot Instance '%s' because it is associated with a one-time Spot Instance request. You can only stop Spot Instances associated with persistent Spot Instance requests.", in.ID)
		}
		if in.State == StateShuttingDown || in.State == StateTerminated {
			return errf("IncorrectInstanceState", "This instance '%s' is not in a state from which it can be stopped.", in.ID)
		}
	}
	var changes []xmlStateChange
	for _, in := range ins {
		prev := in.State
		r.stop(in, "Client.UserInitiatedShutdown")
		changes = append(changes, xmlStateChange{InstanceID: in.ID, Current: instanceState(in.State), Previous: instanceState(prev)})
	}
	writeStateChanges(c, changes)
	return nil
}

func (r *Region) ec2StartInstances(c *call) *APIError {
	ids := c.Form.List("InstanceId")
	if len(ids) == 0 {
		return errf(CodeMissingParameter, "The request must contain the parameter InstanceId")
	}
	ins, err := r.instancesByID(ids)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.State != StateStopped && in.State != StatePending && in.State != StateRunning {
			return errf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", in.ID)
		}
	}
	var changes []xmlStateChange
	for _, in := range ins {
		prev := in.State
		if in.State == StateStopped {
			r.startInstance(in)
		}
		changes = append(changes, xmlStateChange{InstanceID: in.ID, Current: instanceState(in.State), Previous: instanceState(prev)})
	}
	writeStateChanges(c, changes)
	return nil
}

func (r *Region) ec2ModifyInstanceAttribute(c *call) *APIError {
	p := c.Form
	in, err := r.instanceByID(p.Get("InstanceId"))
	if err != nil {
		return err
	}
	if in.State == StateTerminated || in.State == StateShuttingDown {
		return errf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be modified.", in.ID)
	}
	// Validate everything before changing anything.
	type dotChange struct {
		bd  *InstanceBlockDevice
		dot bool
	}
	var dots []dotChange
	for _, s := range p.Structs("BlockDeviceMapping") {
		dev := s.Get("DeviceName")
		if dev == "" {
			return errf(CodeMissingParameter, "The request must contain the parameter BlockDeviceMapping.DeviceName")
		}
		var found *InstanceBlockDevice
		for _, bd := range in.BlockDevices {
			if bd.DeviceName == dev {
				found = bd
			}
		}
		if found == nil {
			return errf("InvalidInstanceAttributeValue", "No device is currently mapped at %s", dev)
		}
		if vid := s.Get("Ebs.VolumeId"); vid != "" && vid != found.VolumeID {
			return errf("InvalidInstanceAttributeValue", "The volume '%s' is not attached at %s", vid, dev)
		}
		dot, ok, err := s.Bool("Ebs.DeleteOnTermination")
		if err != nil {
			return err
		}
		if ok {
			dots = append(dots, dotChange{found, dot})
		}
	}
	newType := p.Get("InstanceType.Value")
	attr, value := p.Get("Attribute"), p.Get("Value")
	if attr == "instanceType" {
		newType = value
	}
	if newType != "" {
		if !validInstanceType(newType) || (r.beh.EC2.InstanceTypeOfferings && !knownInstanceType(newType)) {
			return errf(CodeInvalidParameter, "Invalid value '%s' for InstanceType.", newType)
		}
		if in.State != StateStopped {
			return errf("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state.", in.ID)
		}
	}
	if len(dots) == 0 && newType == "" && attr == "" && !hasAnyPrefix(p, "DisableApiTermination", "DisableApiStop",
		"SourceDestCheck", "UserData", "GroupId", "InstanceInitiatedShutdownBehavior", "EbsOptimized", "EnaSupport") {
		return errf("InvalidParameterCombination", "No attributes specified.")
	}
	for _, d := range dots {
		d.bd.DeleteOnTermination = d.dot
		if v := r.volumes[d.bd.VolumeID]; v != nil && v.Attachment != nil && v.Attachment.InstanceID == in.ID {
			v.Attachment.DeleteOnTermination = d.dot
		}
	}
	if newType != "" {
		in.Type = newType
	}
	writeReturnTrue(c)
	return nil
}

func hasAnyPrefix(p params, names ...string) bool {
	for k := range p.Values() {
		for _, n := range names {
			if k == n || strings.HasPrefix(k, n+".") {
				return true
			}
		}
	}
	return false
}

// writeReturnTrue writes the <return>true</return> body of EC2 actions without other output.
func writeReturnTrue(c *call) {
	c.writeEC2(struct {
		XMLName xml.Name `xml:"x"`
		Return  bool     `xml:"return"`
	}{Return: true})
}

func (r *Region) ec2DescribeInstanceAttribute(c *call) *APIError {
	p := c.Form
	in, err := r.instanceByID(p.Get("InstanceId"))
	if err != nil {
		return err
	}
	type value struct {
		Value string `xml:"value"`
	}
	type boolValue struct {
		Value bool `xml:"value"`
	}
	out := struct {
		XMLName               xml.Name                 `xml:"x"`
		InstanceID            string                   `xml:"instanceId"`
		BlockDevices          []xmlInstanceBlockDevice `xml:"blockDeviceMapping>item,omitempty"`
		InstanceType          *value                   `xml:"instanceType,omitempty"`
		RootDeviceName        *value                   `xml:"rootDeviceName,omitempty"`
		ShutdownBehavior      *value                   `xml:"instanceInitiatedShutdownBehavior,omitempty"`
		DisableAPITermination *boolValue               `xml:"disableApiTermination,omitempty"`
		DisableAPIStop        *boolValue               `xml:"disableApiStop,omitempty"`
		UserData              *value                   `xml:"userData,omitempty"`
	}{InstanceID: in.ID}
	switch attr := p.Get("Attribute"); attr {
	case "":
		return errf(CodeMissingParameter, "The request must contain the parameter Attribute")
	case "blockDeviceMapping":
		out.BlockDevices = r.xmlInstanceBlockDevices(in)
	case "instanceType":
		out.InstanceType = &value{in.Type}
	case "rootDeviceName":
		out.RootDeviceName = &value{in.RootDevice}
	case "instanceInitiatedShutdownBehavior":
		out.ShutdownBehavior = &value{"stop"}
	case "disableApiTermination":
		out.DisableAPITermination = &boolValue{false}
	case "disableApiStop":
		out.DisableAPIStop = &boolValue{false}
	case "userData":
		out.UserData = &value{}
	default:
		return errf(CodeInvalidParameter, "Value (%s) for parameter attribute is invalid. Unknown attribute.", attr)
	}
	c.writeEC2(out)
	return nil
}
