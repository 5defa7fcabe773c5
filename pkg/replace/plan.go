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

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
)

// makePlan picks the launch options and finds the data volume.
func (r *run) makePlan(ctx context.Context) (*Plan, error) {
	w := r.w
	p := &Plan{Group: r.g.Name, Old: r.req.InstanceID, Reason: r.req.Reason, Resume: r.journal.Phase}
	if r.g.Template == nil {
		return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: "the group has no launch template (launch configurations are not supported)"}
	}
	vols, volAZ, err := r.planVolumes(ctx)
	if err != nil {
		return nil, err
	}
	p.Volumes = vols
	subnets, err := w.subnets(ctx, r.g.Subnets, r.g.AZs)
	if err != nil {
		return nil, err
	}
	azOrder := r.azOrder(subnets, volAZ)
	if len(azOrder) == 0 {
		if volAZ != "" {
			return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name,
				Why: fmt.Sprintf("its data volume(s) %s are in %s, which no subnet of the group covers", strings.Join(volumeIDs(p.Volumes), ", "), volAZ)}
		}
		return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: "the group has no subnets"}
	}
	data, err := r.template(ctx)
	if err != nil {
		return nil, err
	}
	if err := inventory.CheckDataDevice(r.g, strings.Join(r.cfg.PersistenceDevs, ","), data); err != nil {
		return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: err.Error(), Err: err}
	}
	ownType := r.ownType(string(data.InstanceType))
	// Instance types are checked against EC2's offerings: a typo in spotmax:altN is a clear
	// error naming the tag, not a launch that fails and rolls back; a type not offered in an AZ
	// is not tried there.
	extra := []string{ownType}
	if r.g.Mixed != nil {
		for _, o := range r.g.Mixed.Overrides {
			extra = append(extra, o.Type)
		}
	}
	offered, err := inventory.CheckTypes(ctx, w.EC2, r.g, nil, extra...)
	if err != nil {
		return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: err.Error(), Err: err}
	}
	for _, m := range r.markets(ownType) {
		for _, az := range azOrder {
			if !slices.Contains(offered[m.Type], az) {
				continue
			}
			p.Options = append(p.Options, Option{InstanceType: m.Type, Market: m.Market, SubnetID: subnets[az], AZ: az, Template: m.Template})
		}
	}
	p.VolumeAZ = volAZ
	p.CrossAZOptions = r.crossAZOptions(ownType, subnets, volAZ, offered)
	if len(p.Options) == 0 && len(p.CrossAZOptions) == 0 {
		return nil, &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name,
			Why: fmt.Sprintf("none of its instance types is offered in %s", strings.Join(azOrder, ", "))}
	}
	warmAZ := volAZ
	if warmAZ == "" && r.old.Placement != nil {
		warmAZ = aws.ToString(r.old.Placement.AvailabilityZone)
	}
	if err := r.planWarm(ctx, p, data, warmAZ); err != nil {
		return nil, err
	}
	r.plan = p
	p.Steps = r.planSteps()
	return p, nil
}

// planVolumes finds the data volumes that move, one per data device the old instance holds, and
// their AZ. A journal's volumes are the ones recorded at its start (the instance may have let go
// of them since); otherwise they are read from the instance. A device the old instance holds no
// volume at is skipped: the replacement launches with the template's mapping there and the pool
// fills it. All of an instance's volumes are in its AZ (EC2 attaches only there); volumes in two
// AZs are refused.
func (r *run) planVolumes(ctx context.Context) ([]DataVolume, string, error) {
	w := r.w
	devs := r.cfg.DataDevices()
	if len(devs) == 0 && len(r.journal.Volumes) == 0 {
		return nil, "", nil
	}
	var out []DataVolume
	volAZ := ""
	add := func(v ec2types.Volume, dev string) error {
		dv := DataVolume{ID: aws.ToString(v.VolumeId), Device: dev}
		if d, ok := r.cfg.DataDevice(dev); ok {
			dv.MountPath = d.MountPath
		}
		az := aws.ToString(v.AvailabilityZone)
		if volAZ != "" && az != volAZ {
			return &RefusedError{Instance: r.req.InstanceID, Group: r.g.Name,
				Why: fmt.Sprintf("its data volumes are in two AZs (%s in %s, %s in %s)", out[0].ID, volAZ, dv.ID, az)}
		}
		volAZ = az
		out = append(out, dv)
		return nil
	}
	if len(r.journal.Volumes) > 0 {
		for _, jv := range r.journal.Volumes {
			// Recorded when the journal was written: the instance may be gone since.
			v, err := w.describeVolume(ctx, jv.ID)
			if err != nil {
				return nil, "", fmt.Errorf("the journaled data volume %s of %s: %w", jv.ID, r.req.InstanceID, err)
			}
			dev := jv.Device
			if dev == "" {
				// A journal written before groups had several data volumes: its one volume.
				dev = stateTags(v.Tags)[groupconfig.StateDevice]
				if dev == "" && len(devs) > 0 {
					dev = devs[0].Device
				}
			}
			if dev == "" {
				return nil, "", fmt.Errorf("the journaled data volume %s of %s names no device, and group %s has no %s",
					jv.ID, r.req.InstanceID, r.g.Name, groupconfig.TagPersistenceDev)
			}
			if err := add(v, dev); err != nil {
				return nil, "", err
			}
		}
		return out, volAZ, nil
	}
	for _, d := range devs {
		v, err := w.dataVolume(ctx, r.req.InstanceID, r.old, d.Device)
		if err != nil {
			return nil, "", err
		}
		if v == nil {
			continue
		}
		if err := add(*v, d.Device); err != nil {
			return nil, "", err
		}
	}
	return out, volAZ, nil
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
// alternatives are the policy's overrides when no spotmax:altN is tagged, and a member needed
// to keep the policy's on-demand base and percentage is replaced by on-demand.
func (r *run) markets(ownType string) []typeMarket {
	cfg := r.cfg
	tm := func(t, market string) typeMarket { return typeMarket{t, market, r.overrideTemplate(t)} }
	if r.req.Reason == ReasonRevert {
		return []typeMarket{tm(ownType, MarketSpot)}
	}
	var altTypes []string
	switch {
	case len(cfg.AltTypes) > 0:
		altTypes = cfg.AltTypes
	case r.g.Mixed != nil:
		for _, o := range r.g.Mixed.Overrides {
			altTypes = append(altTypes, o.Type)
		}
	}
	if cfg.OnlyOD || r.needsOnDemand() {
		out := []typeMarket{tm(ownType, MarketOnDemand)}
		if r.g.Mixed != nil {
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

// ownType is the type the replacement launches first: the launch template's, or in a mixed
// instances group the old instance's when it is one of the overrides, else the first override.
func (r *run) ownType(templateType string) string {
	old := string(r.old.InstanceType)
	if m := r.g.Mixed; m != nil && len(m.Overrides) > 0 {
		if _, ok := m.Override(old); ok {
			return old
		}
		return m.Overrides[0].Type
	}
	if templateType != "" {
		return templateType
	}
	return old
}

// overrideTemplate returns the launch template of the mixed instances override of instanceType
// when it has one of its own.
func (r *run) overrideTemplate(instanceType string) *inventory.TemplateRef {
	if o, ok := r.g.Mixed.Override(instanceType); ok {
		return o.Template
	}
	return nil
}

// needsOnDemand reports whether the group's mixed instances policy needs the replacement to be
// on-demand: the other members holding capacity (inventory's Slots; this replacement's own
// launch left out, so that a resumed plan is the same) have fewer on-demand instances than the
// policy wants of the group's members.
func (r *run) needsOnDemand() bool {
	m := r.g.Mixed
	if m == nil {
		return false
	}
	n, od := 1, 0 // the replacement takes the old instance's place
	for _, in := range r.g.Slots() {
		if in.ID == r.req.InstanceID || in.Tags[groupconfig.StateReplaces] == r.req.InstanceID {
			continue
		}
		n++
		if in.Market == MarketOnDemand {
			od++
		}
	}
	return od < m.WantOnDemand(n)
}

// azOrder returns the AZs to launch in: only the data volume's AZ when a volume moves, else every
// AZ of the group's subnets. With az_rebalance=optimize the AZ with the fewest members goes
// first; without it the old instance's AZ goes first (the group keeps its shape, and Auto
// Scaling's own AZRebalance has nothing to undo), then the others, fewest first.
func (r *run) azOrder(subnets map[string]string, volAZ string) []string {
	if volAZ != "" {
		if _, ok := subnets[volAZ]; ok {
			return []string{volAZ}
		}
		return nil
	}
	count := map[string]int{}
	for _, m := range r.g.Members {
		if m.ID != r.req.InstanceID {
			count[m.AZ]++
		}
	}
	oldAZ := ""
	if r.cfg.AZRebalance != groupconfig.AZRebalanceOptimize && r.old.Placement != nil {
		oldAZ = aws.ToString(r.old.Placement.AvailabilityZone)
	}
	azs := make([]string, 0, len(subnets))
	for az := range subnets {
		azs = append(azs, az)
	}
	sort.Slice(azs, func(i, j int) bool {
		if (azs[i] == oldAZ) != (azs[j] == oldAZ) {
			return azs[i] == oldAZ
		}
		if count[azs[i]] != count[azs[j]] {
			return count[azs[i]] < count[azs[j]]
		}
		return azs[i] < azs[j]
	})
	return azs
}

// subnets maps each AZ to one of the group's subnets in it (the first by id). A group defined by
// availability zones alone launches into their default subnets.
func (w *Workflow) subnets(ctx context.Context, ids, azs []string) (map[string]string, error) {
	out := map[string]string{}
	in := &ec2.DescribeSubnetsInput{SubnetIds: ids}
	switch {
	case len(ids) > 0:
	case len(azs) > 0:
		in.Filters = []ec2types.Filter{
			{Name: aws.String("availability-zone"), Values: azs},
			{Name: aws.String("default-for-az"), Values: []string{"true"}},
		}
	default:
		return out, nil
	}
	var res *ec2.DescribeSubnetsOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		res, err = w.EC2.DescribeSubnets(ctx, in)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describing the group's subnets: %w", err)
	}
	sort.Slice(res.Subnets, func(i, j int) bool {
		return aws.ToString(res.Subnets[i].SubnetId) < aws.ToString(res.Subnets[j].SubnetId)
	})
	for _, s := range res.Subnets {
		az := aws.ToString(s.AvailabilityZone)
		if _, ok := out[az]; !ok {
			out[az] = aws.ToString(s.SubnetId)
		}
	}
	return out, nil
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

// template returns the group's launch template data, read once per run: the plan and every
// launch option use the same version.
func (r *run) template(ctx context.Context) (*ec2types.ResponseLaunchTemplateData, error) {
	if r.tmpl == nil {
		t := r.g.Template
		d, err := r.w.templateData(ctx, t.ID, t.Name, t.Version)
		if err != nil {
			return nil, err
		}
		r.tmpl = d
	}
	return r.tmpl, nil
}

// overrideData returns the data of a mixed instances override's own launch template, read once
// per run.
func (r *run) overrideData(ctx context.Context, t *inventory.TemplateRef) (*ec2types.ResponseLaunchTemplateData, error) {
	key := t.ID + "/" + t.Name + "/" + t.Version
	if d, ok := r.overrideTmpl[key]; ok {
		return d, nil
	}
	d, err := r.w.templateData(ctx, t.ID, t.Name, t.Version)
	if err != nil {
		return nil, err
	}
	if r.overrideTmpl == nil {
		r.overrideTmpl = map[string]*ec2types.ResponseLaunchTemplateData{}
	}
	r.overrideTmpl[key] = d
	return d, nil
}

// runInstance launches one replacement for option opt. The client token makes a retried or
// resumed launch of the same option return the same instance.
func (w *Workflow) runInstance(ctx context.Context, r *run, opt Option, token string) (string, error) {
	return w.runInstanceTagged(ctx, r, opt, token, groupconfig.StateReplaces, r.req.InstanceID)
}

// runInstanceTagged launches one instance of the group for option opt, tagged at launch with
// linkKey=linkValue so that a resumed workflow finds it.
func (w *Workflow) runInstanceTagged(ctx context.Context, r *run, opt Option, token, linkKey, linkValue string) (string, error) {
	tmpl := r.g.Template
	data, err := r.template(ctx)
	if opt.Template != nil {
		tmpl = opt.Template
		data, err = r.overrideData(ctx, opt.Template)
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
	if len(r.plan.Volumes) > 0 {
		// Each data volume arrives at its device: the launch must not create a fresh one there.
		// A data device whose volume the old instance did not hold keeps the template's mapping:
		// the replacement gets a fresh volume there, which the pool may swap for a pooled one.
		var kept []ec2types.BlockDeviceMapping
		for _, m := range in.BlockDeviceMappings {
			if !slices.ContainsFunc(r.plan.Volumes, func(v DataVolume) bool { return groupconfig.SameDevice(aws.ToString(m.DeviceName), v.Device) }) {
				kept = append(kept, m)
			}
		}
		for _, v := range r.plan.Volumes {
			kept = append(kept, ec2types.BlockDeviceMapping{DeviceName: aws.String(v.Device), NoDevice: aws.String("")})
		}
		in.BlockDeviceMappings = kept
	}
	tags := []ec2types.Tag{
		{Key: aws.String(groupconfig.TagGroup), Value: aws.String(r.cfg.Group)},
		{Key: aws.String(linkKey), Value: aws.String(linkValue)},
	}
	for _, t := range r.g.Tags {
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
