// Package inventory reads the spotmax groups of a region with their instances and data volumes
// in a number of API calls that grows with the number of result pages, not with groups ×
// instances: groups come from paged DescribeAutoScalingGroups calls filtered by the spotmax:group
// tag key, and instances from paged DescribeInstances calls filtered by many group names at once.
package inventory

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// TagASGName is the tag AWS puts on every member of an Auto Scaling group.
const TagASGName = "aws:autoscaling:groupName"

// Page sizes: the largest each API accepts.
const (
	groupsPerPage    = 100
	instancesPerPage = 1000
	// namesPerFilter is how many group names one DescribeInstances filter carries; EC2 accepts
	// up to 200 values per filter.
	namesPerFilter = 200
)

// Group is an Auto Scaling group with its spotmax configuration and members.
type Group struct {
	Name              string
	Min, Desired, Max int32
	CapacityRebalance bool
	LaunchTemplate    string // "name (version)" for display; "" for launch configurations
	// Template is the group's launch template (from its mixed instances policy when it has one);
	// nil for launch configurations.
	Template *TemplateRef
	Subnets  []string
	AZs      []string
	Tags     []groupconfig.Tag
	// Config is the parsed spotmax configuration (groupconfig.Load); nil when the group carries
	// no spotmax:group tag — spotmax does not manage it — or when ConfigErr is set.
	Config *groupconfig.Config
	// ConfigErr is the validation error of an invalid configuration: the group is reported and
	// left alone.
	ConfigErr error
	Members   []Instance
	// Mixed is the group's mixed instances policy; nil for a group with one launch template
	// (mixed.go).
	Mixed *MixedPolicy
}

// TemplateRef names a launch template and version.
type TemplateRef struct {
	ID, Name, Version string
}

// Managed reports whether spotmax acts on the group: it carries spotmax:group, its
// configuration is valid and it is not ignored (groupconfig's rule, (*Config).Managed).
func (g *Group) Managed() bool { return g.ConfigErr == nil && g.Config.Managed() }

// CheckManaged returns nil when spotmax may act on the group, else the reason: a
// *groupconfig.NotManagedError naming the group when it has no spotmax:group tag or has
// spotmax:ignore_tag=true, or the *groupconfig.ValidationError of its tags.
func (g *Group) CheckManaged() error {
	if g.ConfigErr != nil {
		return g.ConfigErr
	}
	return groupconfig.CheckManaged(g.Name, g.Config)
}

// Instance is a member of a group as EC2 and Auto Scaling see it.
type Instance struct {
	ID             string
	Type           string
	AZ             string
	SubnetID       string
	PrivateIP      string
	State          string // EC2 state: pending, running, ...
	RootDevice     string // EC2's RootDeviceName, e.g. /dev/xvda
	LifecycleState string // Auto Scaling: Pending, InService, Detaching, ...
	Health         string
	Market         string // "spot" or "on-demand"
	LaunchTime     time.Time
	Tags           map[string]string
	Volumes        []Volume
}

// Volume is an EBS volume attached to an instance.
type Volume struct {
	ID                  string
	Device              string
	DeleteOnTermination bool
}

// VolumeAt returns the volume attached at device, if any.
func (i *Instance) VolumeAt(device string) (Volume, bool) {
	for _, v := range i.Volumes {
		if groupconfig.SameDevice(v.Device, device) {
			return v, true
		}
	}
	return Volume{}, false
}

// AutoScalingReader is the read side of Auto Scaling that inventories use.
type AutoScalingReader interface {
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
}

// EC2InstanceReader is the read side of EC2 that inventories use.
type EC2InstanceReader interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// Lister reads groups and instances.
type Lister struct {
	ASG AutoScalingReader
	EC2 EC2InstanceReader
}

// Options select what List reads.
type Options struct {
	// Names limits the listing to these groups, tagged or not; empty means every group with a
	// spotmax:group tag.
	Names []string
	// Members also reads each group's instances.
	Members bool
}

var (
	_ AutoScalingReader = (*autoscaling.Client)(nil)
	_ EC2InstanceReader = (*ec2.Client)(nil)
)

// List returns groups ordered by name. Unknown names in opts.Names are an
// *awsapi.NotFoundError naming the first missing group.
func (l *Lister) List(ctx context.Context, opts Options) ([]*Group, error) {
	groups, err := l.groups(ctx, opts.Names)
	if err != nil {
		return nil, err
	}
	if len(opts.Names) > 0 {
		found := map[string]bool{}
		for _, g := range groups {
			found[g.Name] = true
		}
		for _, n := range opts.Names {
			if !found[n] {
				return nil, &awsapi.NotFoundError{Kind: "Auto Scaling group", Name: n}
			}
		}
	}
	if opts.Members && len(groups) > 0 {
		if err := l.members(ctx, groups); err != nil {
			return nil, err
		}
	}
	return groups, nil
}

// Group returns one group with its members.
func (l *Lister) Group(ctx context.Context, name string) (*Group, error) {
	gs, err := l.List(ctx, Options{Names: []string{name}, Members: true})
	if err != nil {
		return nil, err
	}
	return gs[0], nil
}

func (l *Lister) groups(ctx context.Context, names []string, optFns ...func(*autoscaling.Options)) ([]*Group, error) {
	in := &autoscaling.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(groupsPerPage)}
	if len(names) > 0 {
		in.AutoScalingGroupNames = names
	} else {
		in.Filters = []astypes.Filter{{Name: aws.String("tag-key"), Values: []string{groupconfig.TagGroup}}}
	}
	var out []*Group
	s := newStrs()
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(l.ASG, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, optFns...)
		if err != nil {
			return nil, fmt.Errorf("describing Auto Scaling groups: %w", err)
		}
		if cached, ok := page.ResultMetadata.Get(pageGroups{}).(*cachedPage); ok {
			for i, g := range cached.groups { // shared with later listings: the members are filled in place
				c := *g
				c.Members = expandMembers(cached.members[i])
				out = append(out, &c)
			}
			continue
		}
		for _, g := range page.AutoScalingGroups {
			out = append(out, fromASG(g, s))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// fromASG makes a Group of an Auto Scaling group, its repeating strings shared through s.
func fromASG(g astypes.AutoScalingGroup, s *strs) *Group {
	out := &Group{
		Name:              aws.ToString(g.AutoScalingGroupName),
		Min:               aws.ToInt32(g.MinSize),
		Desired:           aws.ToInt32(g.DesiredCapacity),
		Max:               aws.ToInt32(g.MaxSize),
		CapacityRebalance: aws.ToBool(g.CapacityRebalance),
	}
	for _, az := range g.AvailabilityZones {
		out.AZs = append(out.AZs, s.str(az))
	}
	lt := g.LaunchTemplate
	if lt == nil && g.MixedInstancesPolicy != nil && g.MixedInstancesPolicy.LaunchTemplate != nil {
		lt = g.MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification
	}
	if lt != nil {
		out.Template = &TemplateRef{ID: aws.ToString(lt.LaunchTemplateId), Name: aws.ToString(lt.LaunchTemplateName), Version: aws.ToString(lt.Version)}
		out.LaunchTemplate = aws.ToString(lt.LaunchTemplateName)
		if out.LaunchTemplate == "" {
			out.LaunchTemplate = aws.ToString(lt.LaunchTemplateId)
		}
		if v := aws.ToString(lt.Version); v != "" {
			out.LaunchTemplate += " (" + v + ")"
		}
	}
	out.Mixed = mixedPolicy(g.MixedInstancesPolicy)
	if z := aws.ToString(g.VPCZoneIdentifier); z != "" {
		out.Subnets = splitComma(z)
	}
	for _, t := range g.Tags {
		out.Tags = append(out.Tags, groupconfig.Tag{Key: aws.ToString(t.Key), Value: aws.ToString(t.Value),
			PropagateAtLaunch: aws.ToBool(t.PropagateAtLaunch)})
	}
	cfg, err := groupconfig.Load(out.Name, out.Tags)
	if err != nil {
		out.ConfigErr = err
	} else {
		out.Config = cfg
	}
	for _, m := range g.Instances {
		out.Members = append(out.Members, Instance{
			ID:             aws.ToString(m.InstanceId),
			Type:           s.of(m.InstanceType),
			AZ:             s.of(m.AvailabilityZone),
			LifecycleState: s.str(string(m.LifecycleState)),
			Health:         s.of(m.HealthStatus),
		})
	}
	return out
}

func splitComma(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// members fills in the EC2 view of every group's members with DescribeInstances calls that
// filter on up to namesPerFilter group names at a time.
func (l *Lister) members(ctx context.Context, groups []*Group) error {
	byGroup := map[string]*Group{}
	names := make([]string, 0, len(groups))
	for _, g := range groups {
		if len(g.Members) == 0 {
			continue
		}
		byGroup[g.Name] = g
		names = append(names, g.Name)
	}
	// Each page is written into the members as it arrives: the SDK's structs of 10,000
	// instances held at once were most of a full listing's memory, and a copy of every instance
	// on the side (then copied into its member) the next largest part of its peak.
	slot := map[string]*Instance{}
	var dups []*Instance // an instance listed by two groups: filled from its first slot
	for _, g := range byGroup {
		for i := range g.Members {
			m := &g.Members[i]
			if _, ok := slot[m.ID]; ok {
				dups = append(dups, m)
				continue
			}
			slot[m.ID] = m
		}
	}
	var described map[string]bool
	if len(dups) > 0 {
		described = map[string]bool{}
	}
	s := newStrs()
	for start := 0; start < len(names); start += namesPerFilter {
		end := min(start+namesPerFilter, len(names))
		in := &ec2.DescribeInstancesInput{
			MaxResults: aws.Int32(instancesPerPage),
			Filters: []ec2types.Filter{
				{Name: aws.String("tag:" + TagASGName), Values: names[start:end]},
				{Name: aws.String("instance-state-name"), Values: liveStates},
			},
		}
		p := ec2.NewDescribeInstancesPaginator(l.EC2, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("describing instances of %d groups: %w", end-start, err)
			}
			for _, r := range page.Reservations {
				for _, in := range r.Instances {
					id := aws.ToString(in.InstanceId)
					if m := slot[id]; m != nil {
						fillInstance(m, in, s)
						if described != nil {
							described[id] = true
						}
					}
				}
			}
		}
	}
	for _, m := range dups {
		if described[m.ID] {
			slot[m.ID].copyEC2To(m)
		}
	}
	for _, g := range byGroup {
		sortMembers(g)
	}
	return nil
}

// liveStates are the EC2 states of the instances a listing describes: terminated ones keep only
// their Auto Scaling view.
var liveStates = []string{"pending", "running", "stopping", "stopped", "shutting-down"}

// sortMembers orders members oldest first, then by id.
func sortMembers(g *Group) {
	sort.Slice(g.Members, func(i, j int) bool {
		a, b := g.Members[i], g.Members[j]
		if !a.LaunchTime.Equal(b.LaunchTime) {
			return a.LaunchTime.Before(b.LaunchTime)
		}
		return a.ID < b.ID
	})
}

// fillInstance copies EC2's view of an instance into m.
// Markets of an instance, as Instance.Market, plans and results show them.
const (
	MarketSpot     = "spot"
	MarketOnDemand = "on-demand"
)

// MarketOf is the one derivation of an instance's market: spot when EC2 says its lifecycle is
// spot, on-demand otherwise.
func MarketOf(in ec2types.Instance) string {
	if in.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot {
		return MarketSpot
	}
	return MarketOnDemand
}

// fillInstance copies EC2's view of an instance into m; its repeating strings and its tag map
// are shared through s with the other instances of the listing.
func fillInstance(m *Instance, in ec2types.Instance, s *strs) {
	m.Type = s.str(string(in.InstanceType))
	m.AZ = ""
	if in.Placement != nil {
		m.AZ = s.of(in.Placement.AvailabilityZone)
	}
	m.SubnetID = s.of(in.SubnetId)
	m.PrivateIP = aws.ToString(in.PrivateIpAddress)
	m.RootDevice = s.of(in.RootDeviceName)
	if in.State != nil {
		m.State = s.str(string(in.State.Name))
	}
	m.Market = MarketOf(in)
	m.LaunchTime = aws.ToTime(in.LaunchTime)
	m.Tags = s.tagMap(in.Tags)
	m.Volumes = nil
	n := 0
	for _, bd := range in.BlockDeviceMappings {
		if bd.Ebs != nil {
			n++
		}
	}
	if n > 0 {
		m.Volumes = make([]Volume, 0, n)
	}
	for _, bd := range in.BlockDeviceMappings {
		if bd.Ebs == nil {
			continue
		}
		m.Volumes = append(m.Volumes, Volume{ID: aws.ToString(bd.Ebs.VolumeId), Device: s.of(bd.DeviceName),
			DeleteOnTermination: aws.ToBool(bd.Ebs.DeleteOnTermination)})
	}
}
