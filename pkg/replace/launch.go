package replace

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
)

// launcher launches instances into one group. It is the one launcher of a replacement (run.launch)
// and of a stand-in (standIn, Workflow.Fill): the group's launch template data, read once so that
// a plan and every option use the same version; the markets to try in order and the options they
// make in the AZs given; and the loop (first) that tries the options with a client token each,
// moves on after a capacity error, tags the instance at launch for crash adoption and records
// every attempt in the Result. What differs between a replacement and a stand-in is a launchSpec.
type launcher struct {
	w            *Workflow
	g            *inventory.Group
	cfg          *groupconfig.Config
	tmpl         *ec2types.ResponseLaunchTemplateData            // read once, see template
	overrideTmpl map[string]*ec2types.ResponseLaunchTemplateData // mixed instances overrides' own templates
}

func (w *Workflow) launcher(g *inventory.Group) *launcher {
	return &launcher{w: w, g: g, cfg: g.Config}
}

// launchSpec is what differs between a replacement's launch and a stand-in's.
type launchSpec struct {
	// options are tried in order: a capacity error moves on to the next, any other error stops.
	options []Option
	// token is the stem of the client tokens: option i launches with "<token>-<i>", so a retried
	// or resumed launch of the same option returns the same instance.
	token string
	// linkKey=linkValue is the state tag written at launch that a workflow resumed after a crash
	// finds the instance by (adopt) instead of launching another: spotmax:state:replaces=<old
	// instance> for a replacement, spotmax:state:fill=<group> for a stand-in.
	linkKey, linkValue string
	// volumes arrive at their devices after the launch, which must not create fresh ones there.
	volumes []DataVolume
	// what names the launch in its errors: "" for a replacement (its errors are wrapped with the
	// old instance's name), "a stand-in" (named with its group).
	what string
	// progress, when set, hears of each option tried (i is its index in options): the instance
	// launched, or the capacity error that moves on to the next option.
	progress func(i int, opt Option, id string, err error)
}

// adopt returns a live instance launched under s's link tag before a crash, if any.
func (l *launcher) adopt(ctx context.Context, s launchSpec) (string, error) {
	return l.w.findLaunched(ctx, s.linkKey, s.linkValue)
}

// first launches the first of s's options that has capacity and returns the instance and the
// option's index. Every attempt is recorded in res.Attempts. When every option failed for
// capacity the error wraps ErrNoCapacity and lists them.
func (l *launcher) first(ctx context.Context, s launchSpec, res *Result) (string, int, error) {
	var tried []string
	for i, opt := range s.options {
		id, err := l.runInstance(ctx, s, opt, fmt.Sprintf("%s-%d", s.token, i))
		if err == nil {
			res.Attempts = append(res.Attempts, Attempt{Option: opt})
			if s.progress != nil {
				s.progress(i, opt, id, nil)
			}
			return id, i, nil
		}
		res.Attempts = append(res.Attempts, Attempt{Option: opt, Error: err.Error()})
		if !awsapi.IsCapacity(err) {
			if s.what == "" {
				return "", i, fmt.Errorf("launching %s: %w", opt, err)
			}
			return "", i, fmt.Errorf("launching %s %s for group %s: %w", s.what, opt, l.g.Name, err)
		}
		tried = append(tried, fmt.Sprintf("%s (%s)", opt, awsapi.Code(err)))
		if s.progress != nil {
			s.progress(i, opt, "", err)
		}
	}
	if s.what == "" {
		return "", -1, fmt.Errorf("%w: tried %s", ErrNoCapacity, strings.Join(tried, ", "))
	}
	return "", -1, fmt.Errorf("%w for %s in group %s: tried %s", ErrNoCapacity, s.what, l.g.Name, strings.Join(tried, ", "))
}

// typeMarket is an instance type in a market, with the launch template of its mixed instances
// override when that has its own.
type typeMarket struct {
	Type, Market string
	Template     *inventory.TemplateRef
}

// markets lists (instance type, market) in the order to try: spot on the group's type, then the
// alternative types on spot (before on-demand when is_prefer_multiple_types), then on-demand.
// A revert only makes sense on spot of the group's own type. In a mixed instances group the
// alternatives are the policy's overrides when no spotmax:altN is tagged, and a launch needed
// to keep the policy's on-demand base and percentage (onDemand, see needsOnDemand) is on-demand.
func (l *launcher) markets(ownType string, revert, onDemand bool) []typeMarket {
	cfg := l.cfg
	tm := func(t, market string) typeMarket { return typeMarket{t, market, l.overrideTemplate(t)} }
	if revert {
		return []typeMarket{tm(ownType, MarketSpot)}
	}
	var altTypes []string
	switch {
	case len(cfg.AltTypes) > 0:
		altTypes = cfg.AltTypes
	case l.g.Mixed != nil:
		for _, o := range l.g.Mixed.Overrides {
			altTypes = append(altTypes, o.Type)
		}
	}
	if cfg.OnlyOD || onDemand {
		out := []typeMarket{tm(ownType, MarketOnDemand)}
		if l.g.Mixed != nil {
			// On-demand capacity of another override type keeps the base too.
			for _, t := range altTypes {
				if t != ownType {
					out = append(out, tm(t, MarketOnDemand))
				}
			}
		}
		return out
	}
	out := []typeMarket{tm(ownType, MarketSpot)}
	var alts []typeMarket
	for _, t := range altTypes {
		if t != ownType {
			alts = append(alts, tm(t, MarketSpot))
		}
	}
	if cfg.PreferMultipleTypes {
		out = append(out, alts...)
	}
	if cfg.ODFallback {
		out = append(out, tm(ownType, MarketOnDemand))
	}
	if !cfg.PreferMultipleTypes {
		out = append(out, alts...)
	}
	return out
}

// options are the launch options of markets in azs, markets first: each type in a market in
// every AZ before the next. offered, when set, leaves out a type in an AZ that does not offer
// it (or that the caller excludes).
func (l *launcher) options(markets []typeMarket, azs []string, subnets map[string]string, offered func(typ, az string) bool) []Option {
	var out []Option
	for _, m := range markets {
		for _, az := range azs {
			if offered != nil && !offered(m.Type, az) {
				continue
			}
			out = append(out, Option{InstanceType: m.Type, Market: m.Market, SubnetID: subnets[az], AZ: az, Template: m.Template})
		}
	}
	return out
}

// overrideTemplate returns the launch template of the mixed instances override of instanceType
// when it has one of its own.
func (l *launcher) overrideTemplate(instanceType string) *inventory.TemplateRef {
	if o, ok := l.g.Mixed.Override(instanceType); ok {
		return o.Template
	}
	return nil
}

// needsOnDemand reports whether the group's mixed instances policy needs the launch to be
// on-demand: the members holding capacity (inventory's Slots) other than old — the instance a
// replacement takes the place of, with its own replacement's launch left out so that a resumed
// plan is the same; "" for a stand-in, which adds a member — have fewer on-demand instances than
// the policy wants of the group's members.
func (l *launcher) needsOnDemand(old string) bool {
	m := l.g.Mixed
	if m == nil {
		return false
	}
	n, od := 1, 0 // the launch takes the old instance's place, or is the member the group lacks
	for _, in := range l.g.Slots() {
		if old != "" && (in.ID == old || in.Tags[groupconfig.StateReplaces] == old) {
			continue
		}
		n++
		if in.Market == MarketOnDemand {
			od++
		}
	}
	return od < m.WantOnDemand(n)
}

// azOrder returns the AZs to launch in: only volAZ when a data volume moves (none when no subnet
// covers it), else every AZ of subnets, first (if any) first, then the others with the fewest
// members (not counting exclude) first.
func azOrder(members []inventory.Instance, subnets map[string]string, volAZ, exclude, first string) []string {
	if volAZ != "" {
		if _, ok := subnets[volAZ]; ok {
			return []string{volAZ}
		}
		return nil
	}
	count := map[string]int{}
	for _, m := range members {
		if m.ID != exclude {
			count[m.AZ]++
		}
	}
	azs := make([]string, 0, len(subnets))
	for az := range subnets {
		azs = append(azs, az)
	}
	sort.Slice(azs, func(i, j int) bool {
		if (azs[i] == first) != (azs[j] == first) {
			return azs[i] == first
		}
		if count[azs[i]] != count[azs[j]] {
			return count[azs[i]] < count[azs[j]]
		}
		return azs[i] < azs[j]
	})
	return azs
}

// template returns the group's launch template data, read once per launcher: the plan and every
// launch option use the same version.
func (l *launcher) template(ctx context.Context) (*ec2types.ResponseLaunchTemplateData, error) {
	if l.tmpl == nil {
		t := l.g.Template
		d, err := l.w.templateData(ctx, t.ID, t.Name, t.Version)
		if err != nil {
			return nil, err
		}
		l.tmpl = d
	}
	return l.tmpl, nil
}

// overrideData returns the data of a mixed instances override's own launch template, read once
// per launcher.
func (l *launcher) overrideData(ctx context.Context, t *inventory.TemplateRef) (*ec2types.ResponseLaunchTemplateData, error) {
	key := t.ID + "/" + t.Name + "/" + t.Version
	if d, ok := l.overrideTmpl[key]; ok {
		return d, nil
	}
	d, err := l.w.templateData(ctx, t.ID, t.Name, t.Version)
	if err != nil {
		return nil, err
	}
	if l.overrideTmpl == nil {
		l.overrideTmpl = map[string]*ec2types.ResponseLaunchTemplateData{}
	}
	l.overrideTmpl[key] = d
	return d, nil
}

// templateData returns the launch template version's data.
func (w *Workflow) templateData(ctx context.Context, id, name, version string) (*ec2types.ResponseLaunchTemplateData, error) {
	in := &ec2.DescribeLaunchTemplateVersionsInput{}
	if id != "" {
		in.LaunchTemplateId = aws.String(id)
	} else {
		in.LaunchTemplateName = aws.String(name)
	}
	if version == "" {
		version = "$Default"
	}
	in.Versions = []string{version}
	var res *ec2.DescribeLaunchTemplateVersionsOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		res, err = w.EC2.DescribeLaunchTemplateVersions(ctx, in)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading launch template %s%s version %s: %w", id, name, version, err)
	}
	if len(res.LaunchTemplateVersions) == 0 || res.LaunchTemplateVersions[0].LaunchTemplateData == nil {
		return nil, fmt.Errorf("launch template %s%s has no version %s", id, name, version)
	}
	return res.LaunchTemplateVersions[0].LaunchTemplateData, nil
}

// runInstance launches one instance of the group for option opt with the client token given,
// tagged at launch with the group and s's link tag.
func (l *launcher) runInstance(ctx context.Context, s launchSpec, opt Option, token string) (string, error) {
	w := l.w
	tmpl := l.g.Template
	data, err := l.template(ctx)
	if opt.Template != nil {
		tmpl = opt.Template
		data, err = l.overrideData(ctx, opt.Template)
	}
	if err != nil {
		return "", err
	}
	in := &ec2.RunInstancesInput{
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		ClientToken:  aws.String(token),
		InstanceType: ec2types.InstanceType(opt.InstanceType),
	}
	templateIsSpot := data.InstanceMarketOptions != nil && data.InstanceMarketOptions.MarketType == ec2types.MarketTypeSpot
	fromData := opt.Market == MarketOnDemand && templateIsSpot
	if len(data.NetworkInterfaces) > 0 {
		// EC2 refuses an instance-level subnet (or security groups) beside network interfaces
		// (InvalidParameterCombination): the subnet goes into the primary interface, which keeps
		// the template's security groups and settings.
		in.NetworkInterfaces = interfacesIn(data.NetworkInterfaces, opt.SubnetID, fromData)
	} else {
		in.SubnetId = aws.String(opt.SubnetID)
	}
	if fromData {
		// RunInstances cannot turn a spot template's market off: launch from its data instead.
		fromTemplateData(in, data)
	} else {
		spec := &ec2types.LaunchTemplateSpecification{Version: aws.String(tmpl.Version)}
		if tmpl.ID != "" {
			spec.LaunchTemplateId = aws.String(tmpl.ID)
		} else {
			spec.LaunchTemplateName = aws.String(tmpl.Name)
		}
		if tmpl.Version == "" {
			spec.Version = nil
		}
		in.LaunchTemplate = spec
	}
	if opt.Market == MarketSpot {
		in.InstanceMarketOptions = &ec2types.InstanceMarketOptionsRequest{
			MarketType:  ec2types.MarketTypeSpot,
			SpotOptions: &ec2types.SpotMarketOptions{SpotInstanceType: ec2types.SpotInstanceTypeOneTime},
		}
	}
	if len(s.volumes) > 0 {
		// Each data volume arrives at its device: the launch must not create a fresh one there.
		// A data device whose volume the old instance did not hold keeps the template's mapping:
		// the replacement gets a fresh volume there, which the pool may swap for a pooled one.
		var kept []ec2types.BlockDeviceMapping
		for _, m := range in.BlockDeviceMappings {
			if !slices.ContainsFunc(s.volumes, func(v DataVolume) bool { return groupconfig.SameDevice(aws.ToString(m.DeviceName), v.Device) }) {
				kept = append(kept, m)
			}
		}
		for _, v := range s.volumes {
			kept = append(kept, ec2types.BlockDeviceMapping{DeviceName: aws.String(v.Device), NoDevice: aws.String("")})
		}
		in.BlockDeviceMappings = kept
	}
	tags := []ec2types.Tag{
		{Key: aws.String(groupconfig.TagGroup), Value: aws.String(l.cfg.Group)},
		{Key: aws.String(s.linkKey), Value: aws.String(s.linkValue)},
	}
	for _, t := range l.g.Tags {
		if t.PropagateAtLaunch && t.Key != groupconfig.TagGroup && !strings.HasPrefix(t.Key, "aws:") {
			tags = append(tags, ec2types.Tag{Key: aws.String(t.Key), Value: aws.String(t.Value)})
		}
	}
	merged := false
	for i := range in.TagSpecifications {
		if in.TagSpecifications[i].ResourceType == ec2types.ResourceTypeInstance {
			in.TagSpecifications[i].Tags = append(in.TagSpecifications[i].Tags, tags...)
			merged = true
		}
	}
	if !merged {
		in.TagSpecifications = append(in.TagSpecifications, ec2types.TagSpecification{ResourceType: ec2types.ResourceTypeInstance, Tags: tags})
	}
	var out *ec2.RunInstancesOutput
	err = w.call(ctx, func(ctx context.Context) (err error) {
		out, err = w.EC2.RunInstances(ctx, in)
		return err
	})
	if err != nil {
		return "", err
	}
	if len(out.Instances) == 0 {
		return "", fmt.Errorf("RunInstances returned no instance")
	}
	return aws.ToString(out.Instances[0].InstanceId), nil
}

// fromTemplateData fills a RunInstances request from a launch template's data, without its
// market options.
func fromTemplateData(in *ec2.RunInstancesInput, d *ec2types.ResponseLaunchTemplateData) {
	in.ImageId = d.ImageId
	in.KeyName = d.KeyName
	in.UserData = d.UserData
	if len(in.NetworkInterfaces) == 0 {
		in.SecurityGroupIds = d.SecurityGroupIds
	}
	if p := d.IamInstanceProfile; p != nil {
		in.IamInstanceProfile = &ec2types.IamInstanceProfileSpecification{Arn: p.Arn, Name: p.Name}
	}
	if m := d.MetadataOptions; m != nil {
		in.MetadataOptions = &ec2types.InstanceMetadataOptionsRequest{
			HttpTokens:              ec2types.HttpTokensState(m.HttpTokens),
			HttpPutResponseHopLimit: m.HttpPutResponseHopLimit,
			HttpEndpoint:            ec2types.InstanceMetadataEndpointState(m.HttpEndpoint),
			InstanceMetadataTags:    ec2types.InstanceMetadataTagsState(m.InstanceMetadataTags),
		}
	}
	for _, bd := range d.BlockDeviceMappings {
		m := ec2types.BlockDeviceMapping{DeviceName: bd.DeviceName, NoDevice: bd.NoDevice, VirtualName: bd.VirtualName}
		if e := bd.Ebs; e != nil {
			m.Ebs = &ec2types.EbsBlockDevice{DeleteOnTermination: e.DeleteOnTermination, Encrypted: e.Encrypted, Iops: e.Iops,
				KmsKeyId: e.KmsKeyId, SnapshotId: e.SnapshotId, Throughput: e.Throughput, VolumeSize: e.VolumeSize, VolumeType: e.VolumeType}
		}
		in.BlockDeviceMappings = append(in.BlockDeviceMappings, m)
	}
	for _, ts := range d.TagSpecifications {
		in.TagSpecifications = append(in.TagSpecifications, ec2types.TagSpecification{ResourceType: ts.ResourceType, Tags: ts.Tags})
	}
}

// interfacesIn turns a launch template's network interfaces into a RunInstances request's: the
// primary interface (device index 0) gets subnet; with all its settings copied (all=true, a launch
// from the template's data) every interface keeps its groups and options, else only the
// subnet is overridden and the rest comes from the template itself.
func interfacesIn(tmpl []ec2types.LaunchTemplateInstanceNetworkInterfaceSpecification, subnet string, all bool) []ec2types.InstanceNetworkInterfaceSpecification {
	var out []ec2types.InstanceNetworkInterfaceSpecification
	for _, n := range tmpl {
		primary := aws.ToInt32(n.DeviceIndex) == 0 && aws.ToInt32(n.NetworkCardIndex) == 0
		if !all && !primary {
			continue
		}
		x := ec2types.InstanceNetworkInterfaceSpecification{DeviceIndex: n.DeviceIndex, NetworkCardIndex: n.NetworkCardIndex}
		if all {
			x.AssociatePublicIpAddress = n.AssociatePublicIpAddress
			x.DeleteOnTermination = n.DeleteOnTermination
			x.Description = n.Description
			x.Groups = n.Groups
			x.InterfaceType = n.InterfaceType
			x.Ipv6AddressCount = n.Ipv6AddressCount
			x.SecondaryPrivateIpAddressCount = n.SecondaryPrivateIpAddressCount
			x.SubnetId = n.SubnetId
		}
		if primary {
			x.SubnetId = aws.String(subnet)
			if !all {
				// An override of the template's interface must repeat its security groups, or the
				// instance gets the VPC's default group.
				x.Groups = n.Groups
				x.AssociatePublicIpAddress = n.AssociatePublicIpAddress
				x.DeleteOnTermination = n.DeleteOnTermination
			}
		}
		out = append(out, x)
	}
	return out
}

// recordInstance records the instance launched in the result: its type, market and AZ.
func (res *Result) recordInstance(inst ec2types.Instance) {
	res.Type = string(inst.InstanceType)
	res.Market = inventory.MarketOf(inst)
	if inst.Placement != nil {
		res.AZ = aws.ToString(inst.Placement.AvailabilityZone)
	}
}
