package sim

import (
	"fmt"
	"sort"
	"strings"
)

// LaunchSpec is one launch request, resolved from RunInstances parameters or from an Auto
// Scaling group's launch template.
type LaunchSpec struct {
	Template     *LaunchTemplateRef // optional
	ImageID      string
	InstanceType string
	SubnetID     string // required: the caller resolves a subnet
	Spot         bool
	SpotMaxPrice string
	Interruption string // terminate (default), stop, hibernate
	// BlockDevices are the launch template's mappings merged with the call's overrides
	// (NoDevice removes a mapping).
	BlockDevices []BlockDevice
	Tags         map[string]Tags // by resource type: "instance", "volume"
	MetadataTags bool
	HTTPTokens   bool
	HopLimit     int // MetadataOptions.HttpPutResponseHopLimit; 0: defaultHopLimit
	ClientToken  string
	Count        int
	// SecurityGroupIDs are the instance's security groups: the call's, else those of the
	// template's primary network interface, else the template's.
	SecurityGroupIDs []string
	// NetworkInterfaces are the call's network interfaces, else the template's.
	NetworkInterfaces []NetworkInterfaceSpec
}

// defaultHopLimit is the HttpPutResponseHopLimit of an instance launched without one: EC2 gives
// 2 for AMIs whose ImdsSupport is v2.0, which is what the simulated region's images stand for.
const defaultHopLimit = 2

// resolveTemplate merges a launch template version's data into spec where spec leaves fields
// empty. Overrides in spec win; a NoDevice override removes the template's mapping.
func (r *Region) resolveTemplate(ref *LaunchTemplateRef, spec *LaunchSpec) *APIError {
	lt := r.findTemplate(ref.ID, ref.Name)
	if lt == nil {
		if ref.ID != "" {
			return errf("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", ref.ID)
		}
		return errf("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", ref.Name)
	}
	ver, ok := lt.Version(ref.Version)
	if !ok {
		return errf("InvalidLaunchTemplateId.VersionNotFound", "The specified launch template version %q of %s does not exist.", ref.Version, lt.ID)
	}
	ref.ID, ref.Name = lt.ID, lt.Name
	if ref.Version == "" {
		ref.Version = fmt.Sprint(ver.Number)
	}
	d := ver.Data
	if spec.ImageID == "" {
		spec.ImageID = d.ImageID
	}
	if spec.InstanceType == "" {
		spec.InstanceType = d.InstanceType
	}
	if !spec.Spot && d.Spot {
		spec.Spot = true
		if spec.SpotMaxPrice == "" {
			spec.SpotMaxPrice = d.SpotMaxPrice
		}
		if spec.Interruption == "" {
			spec.Interruption = d.SpotInterruption
		}
	}
	spec.MetadataTags = spec.MetadataTags || d.InstanceMetadataTag
	spec.HTTPTokens = spec.HTTPTokens || d.HTTPTokensRequired
	if spec.HopLimit == 0 {
		spec.HopLimit = d.HopLimit
	}
	if len(spec.NetworkInterfaces) == 0 {
		spec.NetworkInterfaces = append([]NetworkInterfaceSpec(nil), d.NetworkInterfaces...)
	}
	if len(spec.SecurityGroupIDs) == 0 {
		if ni := primaryInterface(spec.NetworkInterfaces); ni != nil {
			spec.SecurityGroupIDs = append([]string(nil), ni.Groups...)
		} else {
			spec.SecurityGroupIDs = append([]string(nil), d.SecurityGroupIDs...)
		}
	}
	merged := append([]BlockDevice(nil), d.BlockDevices...)
	for _, o := range spec.BlockDevices {
		replaced := false
		for i := range merged {
			if merged[i].DeviceName == o.DeviceName {
				merged[i] = o
				replaced = true
			}
		}
		if !replaced {
			merged = append(merged, o)
		}
	}
	spec.BlockDevices = merged
	for rt, tags := range d.Tags {
		if spec.Tags == nil {
			spec.Tags = map[string]Tags{}
		}
		if spec.Tags[rt] == nil {
			spec.Tags[rt] = Tags{}
		}
		for k, v := range tags {
			if _, set := spec.Tags[rt][k]; !set {
				spec.Tags[rt][k] = v
			}
		}
	}
	spec.Template = ref
	return nil
}

func (r *Region) findTemplate(id, name string) *LaunchTemplate {
	if id != "" {
		return r.templates[id]
	}
	for _, lt := range r.templates {
		if lt.Name == name {
			return lt
		}
	}
	return nil
}

// launch creates spec.Count instances (at least one) with their volumes, with the lock held.
// Capacity is checked for all of them first: a launch either fits or fails as a whole, as
// RunInstances with MinCount = MaxCount does.
func (r *Region) launch(spec LaunchSpec) ([]*Instance, *APIError) {
	if spec.Count < 1 {
		spec.Count = 1
	}
	if spec.ClientToken != "" {
		var prior []*Instance
		for _, in := range r.instances {
			if in.ClientToken == spec.ClientToken {
				prior = append(prior, in)
			}
		}
		if len(prior) > 0 {
			sort.Slice(prior, func(i, j int) bool { return prior[i].ID < prior[j].ID })
			return prior, nil
		}
	}
	if spec.ImageID == "" {
		return nil, errf(CodeMissingParameter, "The request must contain the parameter ImageId")
	}
	if spec.InstanceType == "" {
		spec.InstanceType = "m1.small"
	}
	if !validInstanceType(spec.InstanceType) || (r.beh.EC2.InstanceTypeOfferings && !knownInstanceType(spec.InstanceType)) {
		return nil, errf(CodeInvalidParameter, "Invalid value '%s' for InstanceType.", spec.InstanceType)
	}
	sn := r.subnets[spec.SubnetID]
	if sn == nil {
		return nil, errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", spec.SubnetID)
	}
	if err := r.checkOffered(spec.InstanceType, sn.AZ); err != nil {
		return nil, err
	}
	market := MarketOnDemand
	if spec.Spot {
		market = MarketSpot
	}
	key := PoolKey{InstanceType: spec.InstanceType, AZ: sn.AZ, Market: market}
	if !r.poolFree(key, spec.Count-1) {
		if spec.Spot {
			return nil, r.capacityError(CodeInsufficientCapacity, "There is no Spot capacity available that matches your request.")
		}
		return nil, r.capacityError(CodeInsufficientCapacity, "We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity.", spec.InstanceType, sn.AZ)
	}
	for _, bd := range spec.BlockDevices {
		if bd.DeviceName == "" {
			return nil, errf(CodeMissingParameter, "The request must contain the parameter BlockDeviceMapping.DeviceName")
		}
	}
	resID := r.newID("r")
	var out []*Instance
	for n := 0; n < spec.Count; n++ {
		in := &Instance{
			ID:                r.newID("i"),
			ReservationID:     resID,
			ImageID:           spec.ImageID,
			Type:              spec.InstanceType,
			AZ:                sn.AZ,
			SubnetID:          sn.ID,
			VPCID:             sn.VPCID,
			PrivateIP:         r.allocIP(sn),
			State:             StatePending,
			Market:            market,
			LaunchTime:        r.now().UTC().Truncate(1e6),
			RootDevice:        "/dev/xvda",
			Tags:              Tags{},
			MetadataTags:      spec.MetadataTags,
			HTTPTokensReq:     spec.HTTPTokens,
			InterruptBehavior: spec.Interruption,
			ClientToken:       spec.ClientToken,
			SecurityGroupIDs:  append([]string(nil), spec.SecurityGroupIDs...),
			HopLimit:          spec.HopLimit,
		}
		if in.HopLimit == 0 {
			in.HopLimit = defaultHopLimit
		}
		if in.InterruptBehavior == "" {
			in.InterruptBehavior = "terminate"
		}
		if spec.Template != nil {
			ref := *spec.Template
			in.LaunchTemplate = &ref
			in.Tags["aws:ec2launchtemplate:id"] = ref.ID
			in.Tags["aws:ec2launchtemplate:version"] = ref.Version
		}
		if spec.Spot {
			in.SpotRequestID = r.newID("sir")
		}
		for k, v := range spec.Tags["instance"] {
			in.Tags[k] = v
		}
		// The root volume comes first, then the mappings in device-name order.
		root := BlockDevice{DeviceName: in.RootDevice, VolumeSize: 8, VolumeType: "gp3", DeleteOnTermination: true}
		devs := []BlockDevice{root}
		for _, bd := range spec.BlockDevices {
			if bd.DeviceName == in.RootDevice {
				devs[0] = bd
				continue
			}
			devs = append(devs, bd)
		}
		for _, bd := range devs {
			if bd.NoDevice {
				continue
			}
			v := r.newVolume(sn.AZ, bd.VolumeSize, bd.VolumeType, bd.SnapshotID, bd.Encrypted)
			v.State = VolumeInUse
			v.Attachment = &VolumeAttachment{InstanceID: in.ID, Device: bd.DeviceName, State: AttachAttached,
				AttachTime: in.LaunchTime, DeleteOnTermination: bd.DeleteOnTermination}
			for k, val := range spec.Tags["volume"] {
				v.Tags[k] = val
			}
			in.BlockDevices = append(in.BlockDevices, &InstanceBlockDevice{DeviceName: bd.DeviceName, VolumeID: v.ID,
				DeleteOnTermination: bd.DeleteOnTermination})
		}
		r.instances[in.ID] = in
		out = append(out, in)
		id := in.ID
		r.after(r.lat.Pending, func() {
			if cur := r.instances[id]; cur != nil && cur.State == StatePending {
				r.setState(cur, StateRunning)
			}
		})
	}
	for _, in := range out {
		for _, h := range r.stateHooks {
			h(in)
		}
	}
	return out, nil
}

// validInstanceType accepts family.size names such as m5.large or c6gn.16xlarge.
func validInstanceType(t string) bool {
	fam, size, ok := strings.Cut(t, ".")
	return ok && fam != "" && size != "" && !strings.ContainsAny(t, " /")
}

// newVolume creates a volume record with a fresh content marker, with the lock held.
func (r *Region) newVolume(az string, size int32, typ, snap string, encrypted bool) *Volume {
	if size == 0 {
		size = 8
	}
	if typ == "" {
		typ = "gp3"
	}
	v := &Volume{ID: r.newID("vol"), AZ: az, Size: size, Type: typ, State: VolumeAvailable, SnapshotID: snap,
		Encrypted: encrypted, Created: r.now().UTC().Truncate(1e6), Tags: Tags{}}
	v.Marker = fmt.Sprintf("data:%s:%08x", v.ID, r.rng.Uint32())
	r.volumes[v.ID] = v
	return v
}

// terminate starts the termination of an instance, with the lock held: shutting-down now,
// terminated after the latency; then volumes with DeleteOnTermination are deleted and the others
// are detached and become available.
func (r *Region) terminate(in *Instance, reason string) {
	if in.State == StateShuttingDown || in.State == StateTerminated {
		return
	}
	if reason != "" {
		in.StateReason = reason
	}
	r.setState(in, StateShuttingDown)
	id := in.ID
	r.after(r.lat.ShuttingDown, func() {
		cur := r.instances[id]
		if cur == nil || cur.State == StateTerminated {
			return
		}
		r.releaseVolumes(cur, true)
		r.setState(cur, StateTerminated)
	})
}

// stop stops an instance (spot interruption with behaviour stop), with the lock held.
func (r *Region) stop(in *Instance, reason string) {
	if in.State != StateRunning && in.State != StatePending {
		return
	}
	if reason != "" {
		in.StateReason = reason
	}
	r.setState(in, StateStopping)
	id := in.ID
	r.after(r.lat.Stopping, func() {
		if cur := r.instances[id]; cur != nil && cur.State == StateStopping {
			r.setState(cur, StateStopped)
		}
	})
}

// releaseVolumes detaches every volume from a terminated instance; with terminating set, volumes
// whose attachment has DeleteOnTermination are deleted.
func (r *Region) releaseVolumes(in *Instance, terminating bool) {
	for _, bd := range in.BlockDevices {
		v := r.volumes[bd.VolumeID]
		if v == nil || v.Attachment == nil || v.Attachment.InstanceID != in.ID {
			continue
		}
		del := terminating && v.Attachment.DeleteOnTermination
		v.Attachment = nil
		if del {
			v.State = VolumeDeleted
			delete(r.volumes, v.ID)
		} else {
			v.State = VolumeAvailable
		}
	}
	in.BlockDevices = nil
}

// interrupt gives a spot instance its two-minute notice and schedules the stop or termination.
func (r *Region) interrupt(in *Instance, action string) *APIError {
	if in.Market != MarketSpot {
		return errf(CodeInvalidParameter, "instance %s is not a spot instance", in.ID)
	}
	if !in.Live() {
		return errf("IncorrectInstanceState", "instance %s is %s", in.ID, in.State)
	}
	if in.Interruption != nil {
		return nil
	}
	if action == "" {
		action = in.InterruptBehavior
	}
	// A hibernating spot instance gets its notice but no grace: AWS starts hibernation at once.
	grace := r.lat.InterruptionNotice
	if action == "hibernate" && r.beh.EC2.HibernateWithoutGrace {
		grace = 0
	}
	now := r.now().UTC()
	in.Interruption = &Interruption{Action: action, Notice: now, Time: now.Add(grace)}
	for _, h := range r.stateHooks {
		h(in)
	}
	id := in.ID
	r.after(grace, func() {
		cur := r.instances[id]
		if cur == nil {
			return
		}
		if action == "stop" || action == "hibernate" {
			r.stop(cur, "Server.SpotInstanceShutdown")
			return
		}
		r.terminate(cur, "Server.SpotInstanceTermination")
	})
	return nil
}
