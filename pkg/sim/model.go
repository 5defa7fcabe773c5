package sim

import (
	"sort"
	"time"
)

// Instance states, as EC2 names them.
const (
	StatePending      = "pending"
	StateRunning      = "running"
	StateStopping     = "stopping"
	StateStopped      = "stopped"
	StateShuttingDown = "shutting-down"
	StateTerminated   = "terminated"
)

// Volume states and attachment states, as EC2 names them.
const (
	VolumeCreating  = "creating"
	VolumeAvailable = "available"
	VolumeInUse     = "in-use"
	VolumeDeleting  = "deleting"
	VolumeDeleted   = "deleted"

	AttachAttaching = "attaching"
	AttachAttached  = "attached"
	AttachDetaching = "detaching"
	AttachDetached  = "detached"
)

// Markets of an instance.
const (
	MarketSpot     = "spot"
	MarketOnDemand = "on-demand"
)

// Tags is a set of resource tags.
type Tags map[string]string

// Sorted returns the tag keys in order, for stable output.
func (t Tags) Sorted() []string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Clone returns a copy of t.
func (t Tags) Clone() Tags {
	c := make(Tags, len(t))
	for k, v := range t {
		c[k] = v
	}
	return c
}

// AZ is an availability zone.
type AZ struct {
	Name string
	ID   string // zone id, e.g. use1-az1
}

// VPC is a virtual private cloud.
type VPC struct {
	ID        string
	CIDR      string
	IsDefault bool
}

// Subnet is a subnet in one availability zone.
type Subnet struct {
	ID               string
	VPCID            string
	AZ               string
	CIDR             string
	DefaultForAZ     bool
	MapPublicIP      bool
	Tags             Tags
	nextHost         int
	AvailableIPCount int
}

// BlockDevice is one block-device mapping of a launch template or a RunInstances call.
type BlockDevice struct {
	DeviceName          string
	NoDevice            bool
	VolumeSize          int32 // GiB
	VolumeType          string
	DeleteOnTermination bool
	SnapshotID          string
	Encrypted           bool
}

// LaunchTemplateData is the content of one launch template version.
type LaunchTemplateData struct {
	ImageID             string
	InstanceType        string
	KeyName             string
	UserData            string
	SecurityGroupIDs    []string
	BlockDevices        []BlockDevice
	Spot                bool   // InstanceMarketOptions.MarketType == spot
	SpotMaxPrice        string // empty: on-demand price cap
	SpotInterruption    string // terminate (default), stop, hibernate
	InstanceMetadataTag bool   // MetadataOptions.InstanceMetadataTags == enabled
	HTTPTokensRequired  bool   // MetadataOptions.HttpTokens == required
	IAMInstanceProfile  string
	Tags                map[string]Tags // TagSpecifications by resource type ("instance", "volume")
	// NetworkInterfaces replace SubnetId and SecurityGroupIds: the interface at device index 0
	// carries the instance's subnet and security groups.
	NetworkInterfaces []NetworkInterfaceSpec
	// HopLimit is MetadataOptions.HttpPutResponseHopLimit; 0 means EC2's default.
	HopLimit int
}

// NetworkInterfaceSpec is one network interface of a launch template or a RunInstances call.
type NetworkInterfaceSpec struct {
	DeviceIndex         int
	SubnetID            string
	Groups              []string
	AssociatePublicIP   *bool
	DeleteOnTermination bool
	Description         string
}

// primaryInterface returns the interface at device index 0, or nil.
func primaryInterface(nis []NetworkInterfaceSpec) *NetworkInterfaceSpec {
	for i := range nis {
		if nis[i].DeviceIndex == 0 {
			return &nis[i]
		}
	}
	return nil
}

// LaunchTemplateVersion is one numbered version of a launch template.
type LaunchTemplateVersion struct {
	Number      int64
	Description string
	Created     time.Time
	Data        LaunchTemplateData
}

// LaunchTemplate is an EC2 launch template with its versions.
type LaunchTemplate struct {
	ID             string
	Name           string
	Created        time.Time
	DefaultVersion int64
	LatestVersion  int64
	Versions       []*LaunchTemplateVersion
	Tags           Tags
}

// Version resolves a version string ("", "$Default", "$Latest" or a number) to a version.
func (lt *LaunchTemplate) Version(v string) (*LaunchTemplateVersion, bool) {
	want := lt.DefaultVersion
	switch v {
	case "", "$Default":
	case "$Latest":
		want = lt.LatestVersion
	default:
		n, ok := parseInt64(v)
		if !ok {
			return nil, false
		}
		want = n
	}
	for _, ver := range lt.Versions {
		if ver.Number == want {
			return ver, true
		}
	}
	return nil, false
}

// InstanceBlockDevice is a volume attached to an instance, as the instance sees it.
type InstanceBlockDevice struct {
	DeviceName          string
	VolumeID            string
	DeleteOnTermination bool
}

// Interruption is a pending spot interruption of an instance.
type Interruption struct {
	Action string    // terminate, stop or hibernate
	Time   time.Time // when the instance is stopped or terminated
	Notice time.Time // when the notice was given
}

// Instance is an EC2 instance.
type Instance struct {
	ID                string
	ReservationID     string
	ImageID           string
	Type              string
	AZ                string
	SubnetID          string
	VPCID             string
	PrivateIP         string
	State             string
	StateReason       string // code, e.g. Server.SpotInstanceTermination
	StateTransition   string
	Market            string // MarketSpot or MarketOnDemand
	SpotRequestID     string
	LaunchTime        time.Time
	LaunchTemplate    *LaunchTemplateRef
	RootDevice        string
	BlockDevices      []*InstanceBlockDevice
	Tags              Tags
	MetadataTags      bool
	HTTPTokensReq     bool
	InterruptBehavior string // terminate, stop, hibernate
	Interruption      *Interruption
	Rebalance         *time.Time
	// TargetLifecycleState is what IMDS shows at autoscaling/target-lifecycle-state.
	TargetLifecycleState string
	// IMDSAddr is host:port of this instance's IMDS endpoint, when IMDS is enabled.
	IMDSAddr string
	// ClientToken is the idempotency token of the RunInstances call that launched it.
	ClientToken string
	// SecurityGroupIDs are the security groups of its primary network interface.
	SecurityGroupIDs []string
	// HopLimit is its MetadataOptions.HttpPutResponseHopLimit.
	HopLimit int
}

// Live reports whether the instance counts as existing (not shutting down or terminated).
func (i *Instance) Live() bool {
	return i.State == StatePending || i.State == StateRunning || i.State == StateStopping || i.State == StateStopped
}

// LaunchTemplateRef names a launch template and version.
type LaunchTemplateRef struct {
	ID      string
	Name    string
	Version string
}

// VolumeAttachment is the attachment of a volume to an instance.
type VolumeAttachment struct {
	InstanceID          string
	Device              string
	State               string
	AttachTime          time.Time
	DeleteOnTermination bool
}

// Volume is an EBS volume.
type Volume struct {
	ID         string
	AZ         string
	Size       int32
	Type       string
	State      string
	SnapshotID string
	Encrypted  bool
	Created    time.Time
	Attachment *VolumeAttachment
	Tags       Tags
	// Marker stands for the volume's content: it is set once when the volume is created and
	// travels with the volume, so tests can prove that the data that left is the data that arrived.
	Marker string
}

// ASGTag is a tag of an Auto Scaling group.
type ASGTag struct {
	Key               string
	Value             string
	PropagateAtLaunch bool
}

// ASGMember is an instance in an Auto Scaling group.
type ASGMember struct {
	InstanceID       string
	LifecycleState   string // Pending, InService, Terminating, Detaching, Standby ...
	HealthStatus     string // Healthy, Unhealthy
	ProtectedFromSIn bool
}

// Activity is an Auto Scaling scaling activity.
type Activity struct {
	ID          string
	Group       string
	Description string
	Cause       string
	Status      string // Successful, Failed, InProgress, Cancelled
	StatusMsg   string
	Start       time.Time
	End         time.Time
	Progress    int32
	Details     string
}

// ASG is an Auto Scaling group.
type ASG struct {
	Name               string
	ARN                string
	LaunchTemplate     *LaunchTemplateRef
	Min, Max, Desired  int32
	Subnets            []string // VPCZoneIdentifier
	AZs                []string
	Members            []*ASGMember
	Tags               []ASGTag
	CapacityRebalance  bool
	Suspended          map[string]bool
	Created            time.Time
	DefaultCooldown    int32
	HealthCheckType    string
	HealthCheckGrace   int32
	TerminationPolicy  []string
	Activities         []*Activity
	Status             string // "" or "Delete in progress"
	TargetGroupARNs    []string
	MixedInstanceTypes []string // overrides of a mixed instances policy, if any
}

// Member returns the group's membership record of an instance.
func (g *ASG) Member(id string) (*ASGMember, bool) {
	for _, m := range g.Members {
		if m.InstanceID == id {
			return m, true
		}
	}
	return nil, false
}

// Tag returns the value of one group tag.
func (g *ASG) Tag(key string) (string, bool) {
	for _, t := range g.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// PoolKey names a capacity pool.
type PoolKey struct {
	InstanceType string
	AZ           string
	Market       string
}
