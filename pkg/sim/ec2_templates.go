package sim

import (
	"encoding/xml"
	"sort"
	"strconv"
	"strings"
)

type xmlLaunchTemplate struct {
	CreateTime     string   `xml:"createTime"`
	CreatedBy      string   `xml:"createdBy"`
	DefaultVersion int64    `xml:"defaultVersionNumber"`
	LatestVersion  int64    `xml:"latestVersionNumber"`
	ID             string   `xml:"launchTemplateId"`
	Name           string   `xml:"launchTemplateName"`
	Tags           []xmlTag `xml:"tagSet>item"`
}

type xmlLTEbs struct {
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
	Encrypted           bool   `xml:"encrypted"`
	SnapshotID          string `xml:"snapshotId,omitempty"`
	VolumeSize          int32  `xml:"volumeSize,omitempty"`
	VolumeType          string `xml:"volumeType,omitempty"`
}

type xmlLTBlockDevice struct {
	DeviceName string    `xml:"deviceName"`
	NoDevice   *string   `xml:"noDevice,omitempty"`
	Ebs        *xmlLTEbs `xml:"ebs,omitempty"`
}

type xmlLTSpotOptions struct {
	InterruptionBehavior string `xml:"instanceInterruptionBehavior,omitempty"`
	MaxPrice             string `xml:"maxPrice,omitempty"`
	SpotInstanceType     string `xml:"spotInstanceType"`
}

type xmlLTMarket struct {
	MarketType  string            `xml:"marketType"`
	SpotOptions *xmlLTSpotOptions `xml:"spotOptions,omitempty"`
}

type xmlLTMetadata struct {
	State                string `xml:"state"`
	HTTPTokens           string `xml:"httpTokens"`
	HopLimit             int    `xml:"httpPutResponseHopLimit"`
	HTTPEndpoint         string `xml:"httpEndpoint"`
	InstanceMetadataTags string `xml:"instanceMetadataTags"`
}

type xmlLTIamProfile struct {
	Arn  string `xml:"arn,omitempty"`
	Name string `xml:"name,omitempty"`
}

type xmlLTTagSpec struct {
	ResourceType string   `xml:"resourceType"`
	Tags         []xmlTag `xml:"tagSet>item"`
}

type xmlLTNetworkInterface struct {
	AssociatePublicIP   *bool    `xml:"associatePublicIpAddress,omitempty"`
	DeleteOnTermination bool     `xml:"deleteOnTermination"`
	Description         string   `xml:"description,omitempty"`
	DeviceIndex         int      `xml:"deviceIndex"`
	Groups              []string `xml:"groupSet>groupId"`
	SubnetID            string   `xml:"subnetId,omitempty"`
}

type xmlLTData struct {
	NetworkInterfaces []xmlLTNetworkInterface `xml:"networkInterfaceSet>item"`
	BlockDevices      []xmlLTBlockDevice      `xml:"blockDeviceMappingSet>item"`
	IamProfile        *xmlLTIamProfile        `xml:"iamInstanceProfile,omitempty"`
	ImageID           string                  `xml:"imageId,omitempty"`
	MarketOptions     *xmlLTMarket            `xml:"instanceMarketOptions,omitempty"`
	InstanceType      string                  `xml:"instanceType,omitempty"`
	KeyName           string                  `xml:"keyName,omitempty"`
	MetadataOptions   xmlLTMetadata           `xml:"metadataOptions"`
	SecurityGroupIDs  []string                `xml:"securityGroupIdSet>item"`
	TagSpecs          []xmlLTTagSpec          `xml:"tagSpecificationSet>item"`
	UserData          string                  `xml:"userData,omitempty"`
}

type xmlLTVersion struct {
	CreateTime     string    `xml:"createTime"`
	CreatedBy      string    `xml:"createdBy"`
	DefaultVersion bool      `xml:"defaultVersion"`
	Data           xmlLTData `xml:"launchTemplateData"`
	ID             string    `xml:"launchTemplateId"`
	Name           string    `xml:"launchTemplateName"`
	Description    string    `xml:"versionDescription,omitempty"`
	Number         int64     `xml:"versionNumber"`
}

func (r *Region) createdBy() string { return "arn:aws:iam::" + r.opts.AccountID + ":root" }

func (r *Region) xmlLaunchTemplate(lt *LaunchTemplate) xmlLaunchTemplate {
	return xmlLaunchTemplate{CreateTime: isoTime(lt.Created), CreatedBy: r.createdBy(), DefaultVersion: lt.DefaultVersion,
		LatestVersion: lt.LatestVersion, ID: lt.ID, Name: lt.Name, Tags: xmlTags(lt.Tags)}
}

func xmlLaunchTemplateData(d LaunchTemplateData) xmlLTData {
	x := xmlLTData{ImageID: d.ImageID, InstanceType: d.InstanceType, KeyName: d.KeyName, UserData: d.UserData,
		SecurityGroupIDs: d.SecurityGroupIDs,
		MetadataOptions:  xmlLTMetadata{State: "applied", HTTPTokens: "optional", HopLimit: 2, HTTPEndpoint: "enabled", InstanceMetadataTags: "disabled"}}
	if d.HTTPTokensRequired {
		x.MetadataOptions.HTTPTokens = "required"
	}
	if d.HopLimit > 0 {
		x.MetadataOptions.HopLimit = d.HopLimit
	}
	for _, ni := range d.NetworkInterfaces {
		x.NetworkInterfaces = append(x.NetworkInterfaces, xmlLTNetworkInterface{AssociatePublicIP: ni.AssociatePublicIP,
			DeleteOnTermination: ni.DeleteOnTermination, Description: ni.Description, DeviceIndex: ni.DeviceIndex,
			Groups: ni.Groups, SubnetID: ni.SubnetID})
	}
	if d.InstanceMetadataTag {
		x.MetadataOptions.InstanceMetadataTags = "enabled"
	}
	for _, bd := range d.BlockDevices {
		b := xmlLTBlockDevice{DeviceName: bd.DeviceName}
		if bd.NoDevice {
			b.NoDevice = new(string)
		} else {
			b.Ebs = &xmlLTEbs{DeleteOnTermination: bd.DeleteOnTermination, Encrypted: bd.Encrypted, SnapshotID: bd.SnapshotID,
				VolumeSize: bd.VolumeSize, VolumeType: bd.VolumeType}
		}
		x.BlockDevices = append(x.BlockDevices, b)
	}
	if d.Spot {
		x.MarketOptions = &xmlLTMarket{MarketType: MarketSpot, SpotOptions: &xmlLTSpotOptions{
			InterruptionBehavior: d.SpotInterruption, MaxPrice: d.SpotMaxPrice, SpotInstanceType: "one-time"}}
	}
	if d.IAMInstanceProfile != "" {
		if strings.HasPrefix(d.IAMInstanceProfile, "arn:") {
			x.IamProfile = &xmlLTIamProfile{Arn: d.IAMInstanceProfile}
		} else {
			x.IamProfile = &xmlLTIamProfile{Name: d.IAMInstanceProfile}
		}
	}
	for _, rt := range sortedKeys(d.Tags) {
		x.TagSpecs = append(x.TagSpecs, xmlLTTagSpec{ResourceType: rt, Tags: xmlTags(d.Tags[rt])})
	}
	return x
}

func (r *Region) xmlLTVersion(lt *LaunchTemplate, v *LaunchTemplateVersion) xmlLTVersion {
	return xmlLTVersion{CreateTime: isoTime(v.Created), CreatedBy: r.createdBy(), DefaultVersion: v.Number == lt.DefaultVersion,
		Data: xmlLaunchTemplateData(v.Data), ID: lt.ID, Name: lt.Name, Description: v.Description, Number: v.Number}
}

// parseLaunchTemplateData overlays the LaunchTemplateData fields of a request on base (a source
// version's data, or the zero value): fields the request names replace the base's; lists are
// replaced as a whole.
func parseLaunchTemplateData(p params, base LaunchTemplateData) (LaunchTemplateData, *APIError) {
	d := base
	d.BlockDevices = append([]BlockDevice(nil), base.BlockDevices...)
	d.SecurityGroupIDs = append([]string(nil), base.SecurityGroupIDs...)
	d.NetworkInterfaces = append([]NetworkInterfaceSpec(nil), base.NetworkInterfaces...)
	d.Tags = map[string]Tags{}
	for rt, t := range base.Tags {
		d.Tags[rt] = t.Clone()
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"ImageId", &d.ImageID}, {"InstanceType", &d.InstanceType}, {"KeyName", &d.KeyName}, {"UserData", &d.UserData}} {
		if p.Has(f.key) {
			*f.dst = p.Get(f.key)
		}
	}
	if d.InstanceType != "" && !validInstanceType(d.InstanceType) {
		return d, errf(CodeInvalidParameter, "Invalid value '%s' for InstanceType.", d.InstanceType)
	}
	if ids := p.List("SecurityGroupId"); len(ids) > 0 {
		d.SecurityGroupIDs = ids
	}
	if len(p.Structs("BlockDeviceMapping")) > 0 {
		bds, err := parseBlockDevices(p, "BlockDeviceMapping", nil)
		if err != nil {
			return d, err
		}
		d.BlockDevices = bds
	}
	if mo := p.Sub("InstanceMarketOptions"); len(mo.Values()) > 0 {
		switch mt := mo.Get("MarketType"); mt {
		case MarketSpot:
			so := mo.Sub("SpotOptions")
			d.Spot, d.SpotMaxPrice, d.SpotInterruption = true, so.Get("MaxPrice"), so.Get("InstanceInterruptionBehavior")
			if d.SpotMaxPrice != "" {
				if f, err := strconv.ParseFloat(d.SpotMaxPrice, 64); err != nil || f <= 0 {
					return d, errf(CodeInvalidParameter, "Invalid value '%s' for MaxPrice", d.SpotMaxPrice)
				}
			}
			switch d.SpotInterruption {
			case "", "terminate", "stop", "hibernate":
			default:
				return d, errf(CodeInvalidParameter, "Value (%s) for parameter instanceInterruptionBehavior is invalid.", d.SpotInterruption)
			}
		case "":
			d.Spot, d.SpotMaxPrice, d.SpotInterruption = false, "", ""
		default:
			return d, errf(CodeInvalidParameter, "Value (%s) for parameter marketType is invalid.", mt)
		}
	}
	md := p.Sub("MetadataOptions")
	if md.Has("HttpTokens") {
		d.HTTPTokensRequired = md.Get("HttpTokens") == "required"
	}
	if md.Has("InstanceMetadataTags") {
		d.InstanceMetadataTag = md.Get("InstanceMetadataTags") == "enabled"
	}
	if hl, ok, err := md.Int("HttpPutResponseHopLimit"); err != nil {
		return d, err
	} else if ok {
		if hl < 1 || hl > 64 {
			return d, errf(CodeInvalidParameter, "Value (%d) for parameter httpPutResponseHopLimit is invalid. Valid values are between 1 and 64.", hl)
		}
		d.HopLimit = int(hl)
	}
	if len(p.Structs("NetworkInterface")) > 0 {
		nis, err := parseNetworkInterfaces(p, "NetworkInterface")
		if err != nil {
			return d, err
		}
		d.NetworkInterfaces = nis
	}
	if iam := p.Sub("IamInstanceProfile"); len(iam.Values()) > 0 {
		d.IAMInstanceProfile = iam.Get("Arn")
		if d.IAMInstanceProfile == "" {
			d.IAMInstanceProfile = iam.Get("Name")
		}
	}
	if len(p.Structs("TagSpecification")) > 0 {
		tags, err := parseTagSpecs(p, "TagSpecification", "instance", "volume", "network-interface", "spot-instances-request")
		if err != nil {
			return d, err
		}
		d.Tags = tags
	}
	return d, nil
}

var templateNamePattern = lazyRegexp(`^[a-zA-Z0-9().\-/_]{3,128}$`)

// templateByRef finds a launch template by id or name, failing as EC2 does.
func (r *Region) templateByRef(id, name string) (*LaunchTemplate, *APIError) {
	switch {
	case id != "" && name != "":
		return nil, errf("InvalidParameterCombination", "The parameters 'LaunchTemplateId' and 'LaunchTemplateName' cannot be used together.")
	case id == "" && name == "":
		return nil, errf(CodeMissingParameter, "The request must contain the parameter LaunchTemplateName or LaunchTemplateId")
	case id != "" && !validID("lt", id):
		return nil, errf("InvalidLaunchTemplateId.Malformed", "The specified ID for the launch template (%s) is not valid.", id)
	}
	lt := r.findTemplate(id, name)
	if lt == nil {
		if id != "" {
			return nil, errf("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
		}
		return nil, errf("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", name)
	}
	return lt, nil
}

func (r *Region) ec2CreateLaunchTemplate(c *call) *APIError {
	p := c.Form
	name := p.Get("LaunchTemplateName")
	if name == "" {
		return errf(CodeMissingParameter, "The request must contain the parameter LaunchTemplateName")
	}
	if !templateNamePattern().MatchString(name) {
		return errf("InvalidLaunchTemplateName.MalformedException", "A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.")
	}
	if r.findTemplate("", name) != nil {
		return errf("InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
	}
	data, err := parseLaunchTemplateData(p.Sub("LaunchTemplateData"), LaunchTemplateData{})
	if err != nil {
		return err
	}
	tags, err := parseTagSpecs(p, "TagSpecification", "launch-template")
	if err != nil {
		return err
	}
	now := r.now().UTC().Truncate(1e6)
	lt := &LaunchTemplate{ID: r.newID("lt"), Name: name, Created: now, DefaultVersion: 1, LatestVersion: 1,
		Versions: []*LaunchTemplateVersion{{Number: 1, Description: p.Get("VersionDescription"), Created: now, Data: data}},
		Tags:     Tags{}}
	for k, v := range tags["launch-template"] {
		lt.Tags[k] = v
	}
	r.templates[lt.ID] = lt
	c.writeEC2(struct {
		XMLName        xml.Name          `xml:"x"`
		LaunchTemplate xmlLaunchTemplate `xml:"launchTemplate"`
	}{LaunchTemplate: r.xmlLaunchTemplate(lt)})
	return nil
}

func (r *Region) ec2CreateLaunchTemplateVersion(c *call) *APIError {
	p := c.Form
	lt, err := r.templateByRef(p.Get("LaunchTemplateId"), p.Get("LaunchTemplateName"))
	if err != nil {
		return err
	}
	var base LaunchTemplateData
	if src := p.Get("SourceVersion"); src != "" {
		ver, ok := lt.Version(src)
		if !ok {
			return errf("InvalidLaunchTemplateId.VersionNotFound", "The specified launch template version %s does not exist.", src)
		}
		base = ver.Data
	}
	data, err := parseLaunchTemplateData(p.Sub("LaunchTemplateData"), base)
	if err != nil {
		return err
	}
	lt.LatestVersion++
	ver := &LaunchTemplateVersion{Number: lt.LatestVersion, Description: p.Get("VersionDescription"), Created: r.now().UTC().Truncate(1e6), Data: data}
	lt.Versions = append(lt.Versions, ver)
	c.writeEC2(struct {
		XMLName xml.Name     `xml:"x"`
		Version xmlLTVersion `xml:"launchTemplateVersion"`
	}{Version: r.xmlLTVersion(lt, ver)})
	return nil
}

func (r *Region) ec2ModifyLaunchTemplate(c *call) *APIError {
	p := c.Form
	lt, err := r.templateByRef(p.Get("LaunchTemplateId"), p.Get("LaunchTemplateName"))
	if err != nil {
		return err
	}
	if v := p.Get("SetDefaultVersion"); v != "" {
		ver, ok := lt.Version(v)
		if !ok {
			return errf("InvalidLaunchTemplateId.VersionNotFound", "The specified launch template version %s does not exist.", v)
		}
		lt.DefaultVersion = ver.Number
	}
	c.writeEC2(struct {
		XMLName        xml.Name          `xml:"x"`
		LaunchTemplate xmlLaunchTemplate `xml:"launchTemplate"`
	}{LaunchTemplate: r.xmlLaunchTemplate(lt)})
	return nil
}

func (r *Region) ec2DeleteLaunchTemplate(c *call) *APIError {
	p := c.Form
	lt, err := r.templateByRef(p.Get("LaunchTemplateId"), p.Get("LaunchTemplateName"))
	if err != nil {
		return err
	}
	delete(r.templates, lt.ID)
	c.writeEC2(struct {
		XMLName        xml.Name          `xml:"x"`
		LaunchTemplate xmlLaunchTemplate `xml:"launchTemplate"`
	}{LaunchTemplate: r.xmlLaunchTemplate(lt)})
	return nil
}

// sortedTemplates returns every launch template, oldest first.
func (r *Region) sortedTemplates() []*LaunchTemplate {
	out := make([]*LaunchTemplate, 0, len(r.templates))
	for _, lt := range r.templates {
		out = append(out, lt)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (r *Region) ec2DescribeLaunchTemplates(c *call) *APIError {
	p := c.Form
	ids, names := p.List("LaunchTemplateId"), p.List("LaunchTemplateName")
	maxN, err := maxResults(p, 1, 200)
	if err != nil {
		return err
	}
	var lts []*LaunchTemplate
	switch {
	case len(ids) > 0 || len(names) > 0:
		for _, id := range ids {
			if !validID("lt", id) {
				return errf("InvalidLaunchTemplateId.Malformed", "The specified ID for the launch template (%s) is not valid.", id)
			}
			lt := r.templates[id]
			if lt == nil {
				return errf("InvalidLaunchTemplateId.NotFound", "At least one of the launch templates specified in the request does not exist.")
			}
			lts = append(lts, lt)
		}
		for _, n := range names {
			lt := r.findTemplate("", n)
			if lt == nil {
				return errf("InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist.")
			}
			lts = append(lts, lt)
		}
	default:
		lts = r.sortedTemplates()
	}
	lts, err = applyFilters(lts, parseFilters(p), filterFields[*LaunchTemplate]{
		"launch-template-name": func(lt *LaunchTemplate) []string { return []string{lt.Name} },
		"launch-template-id":   func(lt *LaunchTemplate) []string { return []string{lt.ID} },
		"create-time":          func(lt *LaunchTemplate) []string { return []string{isoTime(lt.Created)} },
	}, func(lt *LaunchTemplate) Tags { return lt.Tags })
	if err != nil {
		return err
	}
	start, end, next, err := page(len(lts), maxN, p.Get("NextToken"), 1000, 1000)
	if err != nil {
		return err
	}
	out := struct {
		XMLName   xml.Name            `xml:"x"`
		Templates []xmlLaunchTemplate `xml:"launchTemplates>item"`
		NextToken string              `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, lt := range lts[start:end] {
		out.Templates = append(out.Templates, r.xmlLaunchTemplate(lt))
	}
	c.writeEC2(out)
	return nil
}

func (r *Region) ec2DescribeLaunchTemplateVersions(c *call) *APIError {
	p := c.Form
	maxN, err := maxResults(p, 1, 200)
	if err != nil {
		return err
	}
	wanted := p.List("LaunchTemplateVersion")
	var lts []*LaunchTemplate
	if p.Get("LaunchTemplateId") == "" && p.Get("LaunchTemplateName") == "" {
		// Without a template, EC2 describes the $Latest or $Default versions of every template.
		if len(wanted) == 0 {
			return errf(CodeMissingParameter, "The request must contain the parameter LaunchTemplateName or LaunchTemplateId")
		}
		for _, w := range wanted {
			if w != "$Latest" && w != "$Default" {
				return errf("InvalidParameterCombination", "To describe versions of all launch templates, specify only $Latest or $Default.")
			}
		}
		lts = r.sortedTemplates()
	} else {
		lt, err := r.templateByRef(p.Get("LaunchTemplateId"), p.Get("LaunchTemplateName"))
		if err != nil {
			return err
		}
		lts = []*LaunchTemplate{lt}
	}
	minV, _, err := p.Int("MinVersion")
	if err != nil {
		return err
	}
	maxV, hasMax, err := p.Int("MaxVersion")
	if err != nil {
		return err
	}
	type pair struct {
		lt  *LaunchTemplate
		ver *LaunchTemplateVersion
	}
	var vers []pair
	for _, lt := range lts {
		var picked []*LaunchTemplateVersion
		if len(wanted) > 0 {
			seen := map[int64]bool{}
			for _, w := range wanted {
				ver, ok := lt.Version(w)
				if !ok {
					return errf("InvalidLaunchTemplateId.VersionNotFound", "The specified launch template version %s does not exist.", w)
				}
				if !seen[ver.Number] {
					seen[ver.Number] = true
					picked = append(picked, ver)
				}
			}
		} else {
			picked = append(picked, lt.Versions...)
		}
		// Newest version first, as EC2 lists them.
		sort.Slice(picked, func(i, j int) bool { return picked[i].Number > picked[j].Number })
		for _, ver := range picked {
			if ver.Number < minV || (hasMax && ver.Number > maxV) {
				continue
			}
			vers = append(vers, pair{lt, ver})
		}
	}
	vers, err = applyFilters(vers, parseFilters(p), filterFields[pair]{
		"is-default-version": func(v pair) []string { return []string{boolStr(v.ver.Number == v.lt.DefaultVersion)} },
		"image-id":           func(v pair) []string { return []string{v.ver.Data.ImageID} },
		"instance-type":      func(v pair) []string { return []string{v.ver.Data.InstanceType} },
	}, nil)
	if err != nil {
		return err
	}
	start, end, next, err := page(len(vers), maxN, p.Get("NextToken"), 1000, 1000)
	if err != nil {
		return err
	}
	out := struct {
		XMLName   xml.Name       `xml:"x"`
		Versions  []xmlLTVersion `xml:"launchTemplateVersionSet>item"`
		NextToken string         `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, v := range vers[start:end] {
		out.Versions = append(out.Versions, r.xmlLTVersion(v.lt, v.ver))
	}
	c.writeEC2(out)
	return nil
}
