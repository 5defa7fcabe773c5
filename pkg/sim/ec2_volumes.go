package sim

import (
	"encoding/xml"
	"sort"
	"strconv"
)

type xmlVolumeAttachment struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlVolume struct {
	VolumeID    string                `xml:"volumeId"`
	Size        int32                 `xml:"size"`
	SnapshotID  string                `xml:"snapshotId"`
	AZ          string                `xml:"availabilityZone"`
	AZID        string                `xml:"availabilityZoneId,omitempty"`
	Status      string                `xml:"status"`
	CreateTime  string                `xml:"createTime"`
	Attachments []xmlVolumeAttachment `xml:"attachmentSet>item"`
	Tags        []xmlTag              `xml:"tagSet>item"`
	VolumeType  string                `xml:"volumeType"`
	Iops        int                   `xml:"iops,omitempty"`
	Throughput  int                   `xml:"throughput,omitempty"`
	Encrypted   bool                  `xml:"encrypted"`
	MultiAttach bool                  `xml:"multiAttachEnabled"`
}

func xmlAttachment(v *Volume) xmlVolumeAttachment {
	a := v.Attachment
	return xmlVolumeAttachment{VolumeID: v.ID, InstanceID: a.InstanceID, Device: a.Device, Status: a.State,
		AttachTime: isoTime(a.AttachTime), DeleteOnTermination: a.DeleteOnTermination}
}

func (r *Region) xmlVolume(v *Volume) xmlVolume {
	x := xmlVolume{VolumeID: v.ID, Size: v.Size, SnapshotID: v.SnapshotID, AZ: v.AZ, AZID: r.azID(v.AZ), Status: v.State,
		CreateTime: isoTime(v.Created), Tags: xmlTags(v.Tags), VolumeType: v.Type, Encrypted: v.Encrypted}
	if v.Attachment != nil {
		x.Attachments = []xmlVolumeAttachment{xmlAttachment(v)}
	}
	switch v.Type {
	case "gp3":
		x.Iops, x.Throughput = 3000, 125
	case "gp2":
		x.Iops = max(100, min(16000, 3*int(v.Size)))
	case "io1", "io2":
		x.Iops = 3000
	}
	return x
}

// volumesByID resolves a list of volume ids, failing as EC2 does when one is malformed or
// unknown.
func (r *Region) volumesByID(ids []string) ([]*Volume, *APIError) {
	var out []*Volume
	var missing []string
	for _, id := range ids {
		if !validID("vol", id) {
			return nil, errf("InvalidVolumeID.Malformed", "Invalid id: \"%s\" (expecting \"vol-...\")", id)
		}
		v := r.volumes[id]
		if v == nil {
			missing = append(missing, id)
			continue
		}
		out = append(out, v)
	}
	switch {
	case len(missing) == 1:
		return nil, errf("InvalidVolume.NotFound", "The volume '%s' does not exist.", missing[0])
	case len(missing) > 1:
		return nil, errf("InvalidVolume.NotFound", "The volumes %s do not exist.", quoteIDs(missing))
	}
	return out, nil
}

func (r *Region) volumeByID(id string) (*Volume, *APIError) {
	if id == "" {
		return nil, errf(CodeMissingParameter, "The request must contain the parameter VolumeId")
	}
	vs, err := r.volumesByID([]string{id})
	if err != nil {
		return nil, err
	}
	return vs[0], nil
}

func volumeFilters() filterFields[*Volume] {
	one := func(f func(*Volume) string) func(*Volume) []string {
		return func(v *Volume) []string { return []string{f(v)} }
	}
	att := func(f func(*VolumeAttachment) string) func(*Volume) []string {
		return func(v *Volume) []string {
			if v.Attachment == nil {
				return nil
			}
			return []string{f(v.Attachment)}
		}
	}
	return filterFields[*Volume]{
		"volume-id":         one(func(v *Volume) string { return v.ID }),
		"status":            one(func(v *Volume) string { return v.State }),
		"availability-zone": one(func(v *Volume) string { return v.AZ }),
		"size":              one(func(v *Volume) string { return strconv.Itoa(int(v.Size)) }),
		"volume-type":       one(func(v *Volume) string { return v.Type }),
		"snapshot-id":       one(func(v *Volume) string { return v.SnapshotID }),
		"encrypted":         one(func(v *Volume) string { return boolStr(v.Encrypted) }),
		"create-time":       one(func(v *Volume) string { return isoTime(v.Created) }),
		"attachment.instance-id": att(func(a *VolumeAttachment) string {
			return a.InstanceID
		}),
		"attachment.device": att(func(a *VolumeAttachment) string { return a.Device }),
		"attachment.status": att(func(a *VolumeAttachment) string { return a.State }),
		"attachment.delete-on-termination": att(func(a *VolumeAttachment) string {
			return boolStr(a.DeleteOnTermination)
		}),
		"attachment.attach-time": att(func(a *VolumeAttachment) string { return isoTime(a.AttachTime) }),
	}
}

func (r *Region) ec2DescribeVolumes(c *call) *APIError {
	p := c.Form
	ids := p.List("VolumeId")
	maxN, err := r.maxResultsCapped(p, 5, 500)
	if err != nil {
		return err
	}
	if len(ids) > 0 && maxN > 0 {
		return errf("InvalidParameterCombination", "The parameter volumeSet cannot be used with the parameter maxResults")
	}
	var vols []*Volume
	if len(ids) > 0 {
		if vols, err = r.volumesByID(ids); err != nil {
			return err
		}
	} else {
		for _, v := range r.volumes {
			vols = append(vols, v)
		}
		sort.Slice(vols, func(i, j int) bool {
			if !vols[i].Created.Equal(vols[j].Created) {
				return vols[i].Created.Before(vols[j].Created)
			}
			return vols[i].ID < vols[j].ID
		})
	}
	vols, err = applyFilters(vols, parseFilters(p), volumeFilters(), func(v *Volume) Tags { return r.filterTags(v.ID, v.Tags) })
	if err != nil {
		return err
	}
	start, end, next, err := page(len(vols), maxN, p.Get("NextToken"), 1000, 1000)
	if err != nil {
		return err
	}
	out := struct {
		XMLName   xml.Name    `xml:"x"`
		Volumes   []xmlVolume `xml:"volumeSet>item"`
		NextToken string      `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, v := range vols[start:end] {
		out.Volumes = append(out.Volumes, r.xmlVolume(v))
	}
	c.writeEC2(out)
	return nil
}

// volumeSizeLimits are the size bounds in GiB per volume type.
var volumeSizeLimits = map[string][2]int64{
	"gp2": {1, 16384}, "gp3": {1, 16384}, "io1": {4, 16384}, "io2": {4, 65536},
	"st1": {125, 16384}, "sc1": {125, 16384}, "standard": {1, 1024},
}

func (r *Region) ec2CreateVolume(c *call) *APIError {
	p := c.Form
	st := r.ec2()
	if tok := p.Get("ClientToken"); tok != "" {
		if id, ok := st.volumeTokens[tok]; ok {
			if v := r.volumes[id]; v != nil {
				c.writeEC2(struct {
					XMLName xml.Name `xml:"x"`
					xmlVolume
				}{xmlVolume: r.xmlVolume(v)})
				return nil
			}
		}
	}
	az := p.Get("AvailabilityZone")
	if az == "" {
		if id := p.Get("AvailabilityZoneId"); id != "" {
			for _, z := range r.azs {
				if z.ID == id {
					az = z.Name
				}
			}
			if az == "" {
				return errf("InvalidZone.NotFound", "The zone '%s' does not exist.", id)
			}
		}
	}
	if az == "" {
		return errf(CodeMissingParameter, "The request must contain the parameter AvailabilityZone")
	}
	if !r.hasAZ(az) {
		return errf("InvalidZone.NotFound", "The zone '%s' does not exist.", az)
	}
	typ := p.Get("VolumeType")
	if typ == "" {
		typ = "gp2"
	}
	if !validVolumeType(typ) {
		return errf(CodeInvalidParameter, "Value (%s) for parameter volumeType is invalid. Valid values: standard, io1, io2, gp2, sc1, st1, gp3", typ)
	}
	size, hasSize, err := p.Int("Size")
	if err != nil {
		return err
	}
	snap := p.Get("SnapshotId")
	if !hasSize && snap == "" {
		return errf(CodeMissingParameter, "The request must contain the parameter size/snapshotId")
	}
	var from *Snapshot
	if snap != "" {
		if from, err = r.restoreFrom(snap, size, hasSize); err != nil {
			return err
		}
		if !hasSize {
			size, hasSize = int64(from.VolumeSize), true
		}
	}
	if hasSize {
		lim := volumeSizeLimits[typ]
		if size < lim[0] {
			return errf(CodeInvalidParameter, "Volume of size %dGB is too small; minimum is %dGB.", size, lim[0])
		}
		if size > lim[1] {
			return errf(CodeInvalidParameter, "Volume of size %dGB is too large; maximum is %dGB.", size, lim[1])
		}
	}
	enc, _, err := p.Bool("Encrypted")
	if err != nil {
		return err
	}
	tags, err := parseTagSpecs(p, "TagSpecification", "volume")
	if err != nil {
		return err
	}
	v := r.newVolume(az, int32(size), typ, snap, enc)
	v.State = VolumeCreating
	if from != nil {
		// The restored volume holds the snapshot's data (loaded lazily: slower first reads, the
		// same content), and is encrypted when the snapshot is.
		v.Marker, v.Encrypted = from.Marker, v.Encrypted || from.Encrypted
	}
	for k, val := range tags["volume"] {
		v.Tags[k] = val
	}
	r.markTagged(v.ID, tags["volume"].Sorted()...)
	if tok := p.Get("ClientToken"); tok != "" {
		st.volumeTokens[tok] = v.ID
	}
	id := v.ID
	r.after(r.lat.CreateVolume, func() {
		if cur := r.volumes[id]; cur != nil && cur.State == VolumeCreating {
			cur.State = VolumeAvailable
		}
	})
	c.writeEC2(struct {
		XMLName xml.Name `xml:"x"`
		xmlVolume
	}{xmlVolume: r.xmlVolume(v)})
	return nil
}

// devicePattern matches the device names EC2 accepts for EBS volumes on Linux and Windows.
var devicePattern = lazyRegexp(`^(/dev/(sd|xvd|hd)[a-z]{1,2}[0-9]{0,2}|xvd[a-z]{1,2})$`)

func (r *Region) ec2AttachVolume(c *call) *APIError {
	p := c.Form
	dev := p.Get("Device")
	if dev == "" {
		return errf(CodeMissingParameter, "The request must contain the parameter device")
	}
	v, err := r.volumeByID(p.Get("VolumeId"))
	if err != nil {
		return err
	}
	in, err := r.instanceByID(p.Get("InstanceId"))
	if err != nil {
		return err
	}
	if !devicePattern().MatchString(dev) {
		return errf(CodeInvalidParameter, "Value (%s) for parameter device is invalid. %s is not a valid EBS device name.", dev, dev)
	}
	if v.Attachment != nil {
		if v.Attachment.State == AttachDetaching {
			return errf("IncorrectState", "%s is %s", v.ID, v.State)
		}
		return errf("VolumeInUse", "%s is already attached to an instance", v.ID)
	}
	if v.State != VolumeAvailable {
		return errf("IncorrectState", "%s is %s", v.ID, v.State)
	}
	if in.State != StateRunning && in.State != StateStopped {
		return errf("IncorrectInstanceState", "Instance '%s' is not 'running'.", in.ID)
	}
	if v.AZ != in.AZ {
		return errf("InvalidVolume.ZoneMismatch", "The volume '%s' is not in the same availability zone as instance '%s'", v.ID, in.ID)
	}
	for _, bd := range in.BlockDevices {
		if bd.DeviceName == dev {
			return errf(CodeInvalidParameter, "Attachment point %s is already in use", dev)
		}
	}
	att := &VolumeAttachment{InstanceID: in.ID, Device: dev, State: AttachAttaching, AttachTime: r.now().UTC().Truncate(1e6)}
	v.Attachment = att
	v.State = VolumeInUse
	in.BlockDevices = append(in.BlockDevices, &InstanceBlockDevice{DeviceName: dev, VolumeID: v.ID})
	r.after(r.lat.Attach, func() {
		if att.State == AttachAttaching {
			att.State = AttachAttached
		}
	})
	c.writeEC2(struct {
		XMLName xml.Name `xml:"x"`
		xmlVolumeAttachment
	}{xmlVolumeAttachment: xmlAttachment(v)})
	return nil
}

func (r *Region) ec2DetachVolume(c *call) *APIError {
	p := c.Form
	v, err := r.volumeByID(p.Get("VolumeId"))
	if err != nil {
		return err
	}
	force, _, err := p.Bool("Force")
	if err != nil {
		return err
	}
	att := v.Attachment
	if att == nil {
		return errf("IncorrectState", "Volume '%s' is in the '%s' state.", v.ID, v.State)
	}
	if iid := p.Get("InstanceId"); iid != "" {
		if _, err := r.instanceByID(iid); err != nil {
			return err
		}
		if iid != att.InstanceID {
			return errf("InvalidAttachment.NotFound", "The volume '%s' is not attached to instance '%s'", v.ID, iid)
		}
	}
	if dev := p.Get("Device"); dev != "" && dev != att.Device {
		return errf("InvalidAttachment.NotFound", "Attachment point %s is not in use for instance %s", dev, att.InstanceID)
	}
	in := r.instances[att.InstanceID]
	if in != nil && att.Device == in.RootDevice && in.State != StateStopped {
		return errf("OperationNotPermitted", "Unable to detach root volume '%s' from instance '%s'", v.ID, in.ID)
	}
	if force {
		fd := ForceDetach{VolumeID: v.ID, InstanceID: att.InstanceID, Device: att.Device, Marker: v.Marker, Time: r.now().UTC()}
		if in != nil {
			fd.InstanceState = in.State
		}
		r.ec2().forced = append(r.ec2().forced, fd)
	}
	if att.State != AttachDetaching || force {
		att.State = AttachDetaching
		id := v.ID
		r.after(r.lat.Detach, func() {
			cur := r.volumes[id]
			if cur == nil || cur.Attachment != att {
				return
			}
			if owner := r.instances[att.InstanceID]; owner != nil {
				for i, bd := range owner.BlockDevices {
					if bd.VolumeID == id {
						owner.BlockDevices = append(owner.BlockDevices[:i:i], owner.BlockDevices[i+1:]...)
						break
					}
				}
			}
			cur.Attachment = nil
			cur.State = VolumeAvailable
		})
	}
	c.writeEC2(struct {
		XMLName xml.Name `xml:"x"`
		xmlVolumeAttachment
	}{xmlVolumeAttachment: xmlAttachment(v)})
	return nil
}

func (r *Region) ec2DeleteVolume(c *call) *APIError {
	v, err := r.volumeByID(c.Form.Get("VolumeId"))
	if err != nil {
		return err
	}
	if v.Attachment != nil {
		return errf("VolumeInUse", "Volume %s is currently attached to %s", v.ID, v.Attachment.InstanceID)
	}
	if v.State != VolumeAvailable {
		return errf("IncorrectState", "The volume '%s' is '%s'", v.ID, v.State)
	}
	v.State = VolumeDeleting
	st := r.ec2()
	st.deleted = append(st.deleted, DeletedVolume{VolumeID: v.ID, Marker: v.Marker, Reason: "DeleteVolume", Time: r.now().UTC()})
	id := v.ID
	r.after(r.lat.DeleteVolume, func() {
		if cur := r.volumes[id]; cur != nil && cur.State == VolumeDeleting {
			cur.State = VolumeDeleted
			delete(r.volumes, id)
		}
	})
	writeReturnTrue(c)
	return nil
}
