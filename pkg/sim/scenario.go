package sim

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Scenario is a simulated region described in a YAML file: its options (region, time scale,
// latencies, IMDS), its network, launch templates, Auto Scaling groups and capacity pools.
// `spotmax sim serve` starts a region with Options and then calls Apply on it.
//
//	region: us-east-1
//	timeScale: 10
//	latencies: fast            # aws | fast | {base: aws, pending: 40s, ...}
//	imds: true
//	azs: [us-east-1a, us-east-1b, us-east-1c]
//	vpcs:
//	  - name: demo
//	    cidr: 10.0.0.0/16
//	    subnets:
//	      - {name: demo-a, az: us-east-1a, cidr: 10.0.0.0/20}
//	launchTemplates:
//	  - name: web-spot
//	    imageId: ami-0abcdef1234567890
//	    instanceType: m5.large
//	    spot: true
//	    blockDevices:
//	      - {deviceName: /dev/sdf, volumeSize: 20, volumeType: gp3, deleteOnTermination: true}
//	    networkInterfaces:       # optional; subnet: a subnet name, id or AZ
//	      - {deviceIndex: 0, subnet: demo-a, securityGroupIds: [sg-0123456789abcdef0]}
//	groups:
//	  - name: web
//	    launchTemplate: web-spot
//	    min: 1
//	    max: 4
//	    desired: 3
//	    subnets: all             # or a list of subnet names, ids or AZs
//	    tags:
//	      spotmax:group: {value: web, propagate: true}
//	      spotmax:alt1: m5a.large
//	capacity:
//	  - {instanceType: m5a.large, az: us-east-1c, market: spot, count: 0}
type Scenario struct {
	// Source names where the scenario came from (a file path), for messages.
	Source string `yaml:"-"`

	Description        string             `yaml:"description"`
	Region             string             `yaml:"region"`
	AccountID          string             `yaml:"accountId"`
	Seed               int64              `yaml:"seed"`
	TimeScale          float64            `yaml:"timeScale"`
	Start              *time.Time         `yaml:"start"`
	Latencies          ScenarioLatencies  `yaml:"latencies"`
	Behaviors          ScenarioBehaviors  `yaml:"behaviors"`
	IMDS               bool               `yaml:"imds"`
	LoopbackPrivateIPs bool               `yaml:"loopbackPrivateIPs"`
	AZs                []string           `yaml:"azs"`
	VPCs               []ScenarioVPC      `yaml:"vpcs"`
	LaunchTemplates    []ScenarioTemplate `yaml:"launchTemplates"`
	Groups             []ScenarioGroup    `yaml:"groups"`
	Capacity           []ScenarioPool     `yaml:"capacity"`
}

// ScenarioLatencies are the state-transition latencies of a scenario: a preset ("aws" or
// "fast", the default) with optional overrides per transition.
type ScenarioLatencies struct {
	Base               string         `yaml:"base"`
	Pending            *time.Duration `yaml:"pending"`
	Start              *time.Duration `yaml:"start"`
	ShuttingDown       *time.Duration `yaml:"shuttingDown"`
	Stopping           *time.Duration `yaml:"stopping"`
	Attach             *time.Duration `yaml:"attach"`
	Detach             *time.Duration `yaml:"detach"`
	CreateVolume       *time.Duration `yaml:"createVolume"`
	DeleteVolume       *time.Duration `yaml:"deleteVolume"`
	InterruptionNotice *time.Duration `yaml:"interruptionNotice"`
	ASGCheck           *time.Duration `yaml:"asgCheck"`
	SnapshotBase       *time.Duration `yaml:"snapshotBase"`
	SnapshotPerGiB     *time.Duration `yaml:"snapshotPerGiB"`
}

// UnmarshalYAML accepts a preset name or a mapping of overrides.
func (l *ScenarioLatencies) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = ScenarioLatencies{Base: n.Value}
		return nil
	}
	if err := scenarioCheckKeys(n, "latencies", l); err != nil {
		return err
	}
	type plain ScenarioLatencies
	return n.Decode((*plain)(l))
}

// Resolve returns the latencies the scenario asks for.
func (l ScenarioLatencies) Resolve() Latencies {
	lat := FastLatencies()
	if l.Base == "aws" {
		lat = AWSLatencies()
	}
	set := func(dst *time.Duration, v *time.Duration) {
		if v != nil {
			*dst = *v
		}
	}
	set(&lat.Pending, l.Pending)
	set(&lat.Start, l.Start)
	set(&lat.ShuttingDown, l.ShuttingDown)
	set(&lat.Stopping, l.Stopping)
	set(&lat.Attach, l.Attach)
	set(&lat.Detach, l.Detach)
	set(&lat.CreateVolume, l.CreateVolume)
	set(&lat.DeleteVolume, l.DeleteVolume)
	set(&lat.InterruptionNotice, l.InterruptionNotice)
	set(&lat.ASGCheck, l.ASGCheck)
	set(&lat.SnapshotBase, l.SnapshotBase)
	set(&lat.SnapshotPerGiB, l.SnapshotPerGiB)
	return lat
}

// ScenarioVPC is a VPC with its subnets; its name becomes its Name tag. The id is generated
// when not given.
type ScenarioVPC struct {
	Name    string            `yaml:"name"`
	ID      string            `yaml:"id"`
	CIDR    string            `yaml:"cidr"`
	Tags    map[string]string `yaml:"tags"`
	Subnets []ScenarioSubnet  `yaml:"subnets"`
}

// ScenarioSubnet is a subnet in one availability zone; its name becomes its Name tag and is how
// groups refer to it. Without a cidr it gets the next /20 of the VPC.
type ScenarioSubnet struct {
	Name   string            `yaml:"name"`
	ID     string            `yaml:"id"`
	AZ     string            `yaml:"az"`
	CIDR   string            `yaml:"cidr"`
	Public bool              `yaml:"public"`
	Tags   map[string]string `yaml:"tags"`
}

// ScenarioTemplate is a launch template (its first version).
type ScenarioTemplate struct {
	Name                 string                       `yaml:"name"`
	ImageID              string                       `yaml:"imageId"`
	InstanceType         string                       `yaml:"instanceType"`
	KeyName              string                       `yaml:"keyName"`
	UserData             string                       `yaml:"userData"`
	SecurityGroupIDs     []string                     `yaml:"securityGroupIds"`
	IAMInstanceProfile   string                       `yaml:"iamInstanceProfile"`
	Spot                 bool                         `yaml:"spot"`
	SpotMaxPrice         string                       `yaml:"spotMaxPrice"`
	InterruptionBehavior string                       `yaml:"interruptionBehavior"`
	BlockDevices         []ScenarioBlockDevice        `yaml:"blockDevices"`
	InstanceMetadataTags bool                         `yaml:"instanceMetadataTags"`
	HTTPTokens           string                       `yaml:"httpTokens"`
	Tags                 map[string]map[string]string `yaml:"tags"`
	NetworkInterfaces    []ScenarioNetworkInterface   `yaml:"networkInterfaces"`
}

// ScenarioNetworkInterface is a network interface of a launch template; subnet is a subnet
// name, id or AZ of the scenario (the first subnet that matches).
type ScenarioNetworkInterface struct {
	DeviceIndex              int      `yaml:"deviceIndex"`
	Subnet                   string   `yaml:"subnet"`
	SecurityGroupIDs         []string `yaml:"securityGroupIds"`
	AssociatePublicIPAddress *bool    `yaml:"associatePublicIpAddress"`
	DeleteOnTermination      *bool    `yaml:"deleteOnTermination"`
}

// UnmarshalYAML refuses unknown keys.
func (ni *ScenarioNetworkInterface) UnmarshalYAML(n *yaml.Node) error {
	if err := scenarioCheckKeys(n, "networkInterfaces", ni); err != nil {
		return err
	}
	type plain ScenarioNetworkInterface
	return n.Decode((*plain)(ni))
}

// ScenarioBlockDevice is a block-device mapping of a launch template. DeleteOnTermination
// defaults to true, as for volumes that EC2 creates from a mapping.
type ScenarioBlockDevice struct {
	DeviceName          string `yaml:"deviceName"`
	VolumeSize          int32  `yaml:"volumeSize"`
	VolumeType          string `yaml:"volumeType"`
	DeleteOnTermination *bool  `yaml:"deleteOnTermination"`
	SnapshotID          string `yaml:"snapshotId"`
	Encrypted           bool   `yaml:"encrypted"`
	NoDevice            bool   `yaml:"noDevice"`
}

// ScenarioGroup is an Auto Scaling group.
type ScenarioGroup struct {
	Name              string                      `yaml:"name"`
	LaunchTemplate    string                      `yaml:"launchTemplate"`
	Version           string                      `yaml:"version"`
	Min               int32                       `yaml:"min"`
	Max               int32                       `yaml:"max"`
	Desired           *int32                      `yaml:"desired"`
	Subnets           SubnetSelection             `yaml:"subnets"`
	Tags              map[string]ScenarioGroupTag `yaml:"tags"`
	CapacityRebalance bool                        `yaml:"capacityRebalance"`
	// LifecycleHooks, TargetGroups and LoadBalancers: see autoscaling_hooks.go and elb.go.
	LifecycleHooks []ScenarioLifecycleHook `yaml:"lifecycleHooks"`
	TargetGroups   []ScenarioTargetGroup   `yaml:"targetGroups"`
	LoadBalancers  []ScenarioLoadBalancer  `yaml:"loadBalancers"`
}

// SubnetSelection picks a group's subnets: "all" (the default) or a list of subnet names, ids
// or availability zones.
type SubnetSelection struct {
	All   bool
	Names []string
}

// UnmarshalYAML accepts "all", one name, or a list of names.
func (s *SubnetSelection) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "all" {
			*s = SubnetSelection{All: true}
		} else {
			*s = SubnetSelection{Names: []string{n.Value}}
		}
		return nil
	case yaml.SequenceNode:
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		*s = SubnetSelection{Names: names}
		return nil
	}
	return fmt.Errorf("line %d: subnets must be \"all\" or a list of subnet names", n.Line)
}

// ScenarioGroupTag is a group tag: written as a plain value, or as {value, propagate} to
// propagate it to the instances the group launches.
type ScenarioGroupTag struct {
	Value     string `yaml:"value"`
	Propagate bool   `yaml:"propagate"`
}

// UnmarshalYAML accepts a scalar value or a {value, propagate} mapping.
func (t *ScenarioGroupTag) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*t = ScenarioGroupTag{Value: n.Value}
		return nil
	}
	if err := scenarioCheckKeys(n, "a group tag", t); err != nil {
		return err
	}
	type plain ScenarioGroupTag
	return n.Decode((*plain)(t))
}

// ScenarioPool limits a capacity pool; a count of -1 means unlimited.
type ScenarioPool struct {
	InstanceType string `yaml:"instanceType"`
	AZ           string `yaml:"az"`
	Market       string `yaml:"market"`
	Count        *int   `yaml:"count"`
}

// scenarioCheckKeys reports mapping keys that v's yaml tags do not name: custom unmarshalers decode
// with a fresh decoder that does not know about KnownFields.
func scenarioCheckKeys(n *yaml.Node, what string, v any) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s must be a mapping", n.Line, what)
	}
	known := map[string]bool{}
	for _, f := range scenarioYAMLFields(v) {
		known[f] = true
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; !known[k] {
			return fmt.Errorf("line %d: unknown field %q in %s (known: %s)", n.Content[i].Line, k, what, strings.Join(scenarioYAMLFields(v), ", "))
		}
	}
	return nil
}

func scenarioYAMLFields(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// LoadScenario reads and checks a scenario file.
func LoadScenario(file string) (*Scenario, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	return parseScenario(b, file)
}

// ParseScenario parses and checks a scenario. Unknown fields are errors, so that a misspelt
// key does not silently fall back to a default.
func ParseScenario(b []byte) (*Scenario, error) {
	return parseScenario(b, "")
}

func parseScenario(b []byte, source string) (*Scenario, error) {
	prefix := "scenario"
	if source != "" {
		prefix = "scenario " + source
	}
	var s Scenario
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty file", prefix)
		}
		return nil, fmt.Errorf("%s: %s", prefix, scenarioYAMLError(err))
	}
	s.Source = source
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	return &s, nil
}

var scenarioYAMLType = lazyRegexp(`field (\S+) not found in type sim\.(\w+)`)

// scenarioYAMLError names the scenario's sections instead of Go types.
func scenarioYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	msg = scenarioYAMLType().ReplaceAllStringFunc(msg, func(m string) string {
		sub := scenarioYAMLType().FindStringSubmatch(m)
		where := map[string]string{
			"Scenario": "the scenario", "ScenarioVPC": "a VPC", "ScenarioSubnet": "a subnet",
			"ScenarioTemplate": "a launch template", "ScenarioBlockDevice": "a block device", "ScenarioGroup": "a group",
			"ScenarioPool": "a capacity pool", "plain": "latencies or a group tag",
		}[sub[2]]
		if where == "" {
			where = sub[2]
		}
		return fmt.Sprintf("unknown field %q in %s", sub[1], where)
	})
	return strings.ReplaceAll(msg, "\n  ", "; ")
}

var (
	scenarioVPCID    = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)
	scenarioSubnetID = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	scenarioAMI      = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	scenarioRegion   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
)

var scenarioVolumeTypes = map[string]bool{"gp2": true, "gp3": true, "io1": true, "io2": true, "st1": true, "sc1": true, "standard": true}

// check validates the scenario and fills in defaults. Every problem is reported, each with the
// field that holds it.
func (s *Scenario) check() error {
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	if !scenarioRegion.MatchString(s.Region) {
		bad("region", "%q is not a region name such as us-east-1", s.Region)
	}
	if s.AccountID != "" && !regexp.MustCompile(`^\d{12}$`).MatchString(s.AccountID) {
		bad("accountId", "%q is not a 12-digit account id", s.AccountID)
	}
	if s.TimeScale < 0 {
		bad("timeScale", "%v must not be negative", s.TimeScale)
	}
	if _, err := s.Behaviors.Resolve(); err != nil {
		bad("behaviors", "%v", err)
	}
	switch s.Latencies.Base {
	case "", "aws", "fast":
	default:
		bad("latencies", "%q must be aws, fast or a mapping of durations", s.Latencies.Base)
	}
	for name, d := range map[string]*time.Duration{"pending": s.Latencies.Pending, "start": s.Latencies.Start, "shuttingDown": s.Latencies.ShuttingDown,
		"stopping": s.Latencies.Stopping, "attach": s.Latencies.Attach, "detach": s.Latencies.Detach,
		"createVolume": s.Latencies.CreateVolume, "deleteVolume": s.Latencies.DeleteVolume,
		"interruptionNotice": s.Latencies.InterruptionNotice, "asgCheck": s.Latencies.ASGCheck,
		"snapshotBase": s.Latencies.SnapshotBase, "snapshotPerGiB": s.Latencies.SnapshotPerGiB} {
		if d != nil && *d < 0 {
			bad("latencies."+name, "%s must not be negative", *d)
		}
	}
	if s.Latencies.ASGCheck != nil && *s.Latencies.ASGCheck == 0 {
		bad("latencies.asgCheck", "must be more than 0")
	}

	azs := s.AZs
	if len(azs) == 0 {
		azs = []string{s.Region + "a", s.Region + "b", s.Region + "c"}
	}
	azSet := map[string]bool{}
	for i, az := range s.AZs {
		f := fmt.Sprintf("azs[%d]", i)
		if !strings.HasPrefix(az, s.Region) || len(az) != len(s.Region)+1 || az[len(az)-1] < 'a' || az[len(az)-1] > 'z' {
			bad(f, "%q is not an availability zone of %s (such as %sa)", az, s.Region, s.Region)
		}
		if azSet[az] {
			bad(f, "%q is listed twice", az)
		}
		azSet[az] = true
	}
	for _, az := range azs {
		azSet[az] = true
	}

	subnetNames := map[string]bool{}
	ids := map[string]bool{}
	for i := range s.VPCs {
		v := &s.VPCs[i]
		f := fmt.Sprintf("vpcs[%d]", i)
		if v.Name != "" {
			f = fmt.Sprintf("vpcs[%d] (%s)", i, v.Name)
		}
		if v.ID != "" {
			if !scenarioVPCID.MatchString(v.ID) {
				bad(f+".id", "%q is not a VPC id such as vpc-0a1b2c3d4e5f67890", v.ID)
			}
			if ids[v.ID] {
				bad(f+".id", "%q is used twice", v.ID)
			}
			ids[v.ID] = true
		}
		if v.CIDR == "" {
			v.CIDR = "10.0.0.0/16"
		}
		vp, err := netip.ParsePrefix(v.CIDR)
		if err != nil || !vp.Addr().Is4() || vp.Bits() < 16 || vp.Bits() > 28 {
			bad(f+".cidr", "%q is not an IPv4 CIDR block between /16 and /28", v.CIDR)
			continue
		}
		vp = vp.Masked()
		if len(v.Subnets) == 0 {
			bad(f+".subnets", "a VPC needs at least one subnet")
		}
		var used []netip.Prefix
		var auto []int // subnets without a cidr get one after the explicit ones are known
		for j := range v.Subnets {
			sn := &v.Subnets[j]
			sf := fmt.Sprintf("%s.subnets[%d]", f, j)
			if sn.Name == "" {
				bad(sf+".name", "is required: groups refer to subnets by name")
			} else {
				sf = fmt.Sprintf("%s.subnets[%d] (%s)", f, j, sn.Name)
				if subnetNames[sn.Name] {
					bad(sf+".name", "%q is used twice", sn.Name)
				}
				subnetNames[sn.Name] = true
			}
			if sn.ID != "" {
				if !scenarioSubnetID.MatchString(sn.ID) {
					bad(sf+".id", "%q is not a subnet id such as subnet-0a1b2c3d4e5f67890", sn.ID)
				}
				if ids[sn.ID] {
					bad(sf+".id", "%q is used twice", sn.ID)
				}
				ids[sn.ID] = true
			}
			if !azSet[sn.AZ] {
				bad(sf+".az", "%q is not one of the scenario's availability zones (%s)", sn.AZ, strings.Join(azs, ", "))
			}
			if sn.CIDR == "" {
				auto = append(auto, j)
				continue
			}
			sp, err := netip.ParsePrefix(sn.CIDR)
			if err != nil || !sp.Addr().Is4() || sp.Bits() > 28 || sp.Bits() < vp.Bits() || !vp.Contains(sp.Addr()) {
				bad(sf+".cidr", "%q is not an IPv4 CIDR block inside %s", sn.CIDR, v.CIDR)
				continue
			}
			sp = sp.Masked()
			for _, u := range used {
				if u.Overlaps(sp) {
					bad(sf+".cidr", "%s overlaps %s", sp, u)
				}
			}
			used = append(used, sp)
			sn.CIDR = sp.String()
		}
		for _, j := range auto {
			p, ok := scenarioNextCIDR(vp, used)
			if !ok {
				bad(fmt.Sprintf("%s.subnets[%d].cidr", f, j), "no free /20 left in %s: give the cidr", v.CIDR)
				continue
			}
			used = append(used, p)
			v.Subnets[j].CIDR = p.String()
		}
	}

	templates := map[string]bool{}
	for i := range s.LaunchTemplates {
		lt := &s.LaunchTemplates[i]
		f := fmt.Sprintf("launchTemplates[%d]", i)
		if lt.Name == "" {
			bad(f+".name", "is required")
		} else {
			f = fmt.Sprintf("launchTemplates[%d] (%s)", i, lt.Name)
			if templates[lt.Name] {
				bad(f+".name", "%q is used twice", lt.Name)
			}
			templates[lt.Name] = true
		}
		if !scenarioAMI.MatchString(lt.ImageID) {
			bad(f+".imageId", "%q is not an AMI id such as ami-0abcdef1234567890", lt.ImageID)
		}
		if !validInstanceType(lt.InstanceType) {
			bad(f+".instanceType", "%q is not an instance type such as m5.large", lt.InstanceType)
		}
		switch lt.InterruptionBehavior {
		case "", "terminate", "stop", "hibernate":
		default:
			bad(f+".interruptionBehavior", "%q must be terminate, stop or hibernate", lt.InterruptionBehavior)
		}
		if !lt.Spot && (lt.SpotMaxPrice != "" || lt.InterruptionBehavior != "") {
			bad(f+".spot", "spotMaxPrice and interruptionBehavior need spot: true")
		}
		switch lt.HTTPTokens {
		case "", "optional", "required":
		default:
			bad(f+".httpTokens", "%q must be required or optional", lt.HTTPTokens)
		}
		devs := map[string]bool{}
		for j, bd := range lt.BlockDevices {
			bf := fmt.Sprintf("%s.blockDevices[%d]", f, j)
			if !strings.HasPrefix(bd.DeviceName, "/dev/") && !strings.HasPrefix(bd.DeviceName, "xvd") {
				bad(bf+".deviceName", "%q is not a device name such as /dev/sdf", bd.DeviceName)
			}
			if devs[bd.DeviceName] {
				bad(bf+".deviceName", "%q is mapped twice", bd.DeviceName)
			}
			devs[bd.DeviceName] = true
			if bd.NoDevice {
				continue
			}
			if bd.VolumeType != "" && !scenarioVolumeTypes[bd.VolumeType] {
				bad(bf+".volumeType", "%q must be one of gp2, gp3, io1, io2, st1, sc1, standard", bd.VolumeType)
			}
			if bd.VolumeSize < 0 || bd.VolumeSize > 65536 {
				bad(bf+".volumeSize", "%d GiB is out of range (1-65536)", bd.VolumeSize)
			}
			if bd.VolumeSize == 0 && bd.SnapshotID == "" {
				bad(bf+".volumeSize", "is required without a snapshotId")
			}
		}
		for rt := range lt.Tags {
			if rt != "instance" && rt != "volume" && rt != "network-interface" && rt != "spot-instances-request" {
				bad(f+".tags", "resource type %q must be instance, volume, network-interface or spot-instances-request", rt)
			}
		}
	}

	groups := map[string]bool{}
	for i := range s.Groups {
		g := &s.Groups[i]
		f := fmt.Sprintf("groups[%d]", i)
		if g.Name == "" {
			bad(f+".name", "is required")
		} else {
			f = fmt.Sprintf("groups[%d] (%s)", i, g.Name)
			if groups[g.Name] {
				bad(f+".name", "%q is used twice", g.Name)
			}
			groups[g.Name] = true
		}
		if !templates[g.LaunchTemplate] {
			bad(f+".launchTemplate", "%q is not a launch template of the scenario", g.LaunchTemplate)
		}
		if g.Version == "" {
			g.Version = "$Default"
		}
		if _, isNum := parseInt64(g.Version); g.Version != "$Default" && g.Version != "$Latest" && !isNum {
			bad(f+".version", "%q must be $Default, $Latest or a version number", g.Version)
		}
		desired := g.Min
		if g.Desired != nil {
			desired = *g.Desired
		}
		if g.Min < 0 || g.Max < g.Min || desired < g.Min || desired > g.Max {
			bad(f, "sizes must satisfy 0 <= min <= desired <= max (min %d, desired %d, max %d)", g.Min, desired, g.Max)
		}
		if !g.Subnets.All && len(g.Subnets.Names) == 0 {
			g.Subnets.All = true
		}
		for _, n := range g.Subnets.Names {
			if !subnetNames[n] && !ids[n] && !azSet[n] {
				if len(s.VPCs) == 0 {
					bad(f+".subnets", "%q is not an availability zone (the scenario has no vpcs, so groups pick default subnets by zone)", n)
				} else {
					bad(f+".subnets", "%q is not a subnet name, subnet id or availability zone of the scenario", n)
				}
			}
		}
		keys := make([]string, 0, len(g.Tags))
		for k := range g.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.HasPrefix(k, "aws:") {
				bad(f+".tags", "%q: keys starting with aws: are reserved", k)
			}
			if len(k) > 128 || len(g.Tags[k].Value) > 256 {
				bad(f+".tags", "%q: keys are at most 128 characters and values at most 256", k)
			}
		}
	}

	for i := range s.Capacity {
		p := &s.Capacity[i]
		f := fmt.Sprintf("capacity[%d]", i)
		if !validInstanceType(p.InstanceType) {
			bad(f+".instanceType", "%q is not an instance type such as m5.large", p.InstanceType)
		}
		if !azSet[p.AZ] {
			bad(f+".az", "%q is not one of the scenario's availability zones (%s)", p.AZ, strings.Join(azs, ", "))
		}
		if p.Market == "" {
			p.Market = MarketSpot
		}
		if p.Market != MarketSpot && p.Market != MarketOnDemand {
			bad(f+".market", "%q must be spot or on-demand", p.Market)
		}
		if p.Count == nil || *p.Count < -1 {
			bad(f+".count", "is required: the number of instances the pool holds, or -1 for unlimited")
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// scenarioNextCIDR returns the first /20 (or the VPC itself when smaller) inside vpc that does not
// overlap the used blocks.
func scenarioNextCIDR(vpc netip.Prefix, used []netip.Prefix) (netip.Prefix, bool) {
	bits := 20
	if vpc.Bits() > bits {
		bits = vpc.Bits()
	}
	step := uint32(1) << (32 - bits)
	a := vpc.Addr().As4()
	base := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	for n := uint32(0); n < 1<<(bits-vpc.Bits()); n++ {
		x := base + n*step
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}), bits)
		free := true
		for _, u := range used {
			if u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// Options returns the region options the scenario asks for. A scenario with its own vpcs or
// azs starts without the default VPC; Apply creates what it needs.
func (s *Scenario) Options() Options {
	lat := s.Latencies.Resolve()
	o := Options{
		Region:             s.Region,
		AccountID:          s.AccountID,
		TimeScale:          s.TimeScale,
		Latencies:          &lat,
		Seed:               s.Seed,
		IMDS:               s.IMDS,
		LoopbackPrivateIPs: s.LoopbackPrivateIPs,
		NoDefaultVPC:       len(s.VPCs) > 0 || len(s.AZs) > 0,
	}
	if s.Start != nil {
		o.Start = s.Start.UTC()
	}
	if b, err := s.Behaviors.Resolve(); err == nil {
		o.Behaviors = &b
	}
	return o
}

// Apply creates the scenario's availability zones, VPCs and subnets, launch templates, capacity
// limits and Auto Scaling groups in r, which should have been created with s.Options(). The
// groups launch their instances at the next Auto Scaling check.
func (s *Scenario) Apply(r *Region) error {
	if err := s.apply(r); err != nil {
		if s.Source != "" {
			return fmt.Errorf("applying scenario %s: %w", s.Source, err)
		}
		return fmt.Errorf("applying scenario: %w", err)
	}
	return nil
}

func (s *Scenario) apply(r *Region) error {
	if r.Name() != s.Region {
		return fmt.Errorf("the scenario is for region %s, the simulated region is %s", s.Region, r.Name())
	}
	subnetRefs, err := s.applyNetwork(r)
	if err != nil {
		return err
	}
	for _, t := range s.LaunchTemplates {
		d := t.data()
		for _, ni := range t.NetworkInterfaces {
			spec := NetworkInterfaceSpec{DeviceIndex: ni.DeviceIndex, Groups: append([]string(nil), ni.SecurityGroupIDs...),
				AssociatePublicIP: ni.AssociatePublicIPAddress, DeleteOnTermination: ni.DeleteOnTermination == nil || *ni.DeleteOnTermination}
			if ni.Subnet != "" {
				ids := subnetRefs[ni.Subnet]
				if len(ids) == 0 {
					return fmt.Errorf("launch template %s: networkInterfaces: no subnet matches %q", t.Name, ni.Subnet)
				}
				spec.SubnetID = ids[0]
			}
			d.NetworkInterfaces = append(d.NetworkInterfaces, spec)
		}
		r.PutLaunchTemplate(t.Name, d)
	}
	for _, p := range s.Capacity {
		r.SetCapacity(PoolKey{InstanceType: p.InstanceType, AZ: p.AZ, Market: p.Market}, *p.Count)
	}
	for _, g := range s.Groups {
		spec := GroupSpec{
			Name:              g.Name,
			LaunchTemplate:    LaunchTemplateRef{Name: g.LaunchTemplate, Version: g.Version},
			Min:               g.Min,
			Max:               g.Max,
			Desired:           g.Desired,
			CapacityRebalance: g.CapacityRebalance,
		}
		seen := map[string]bool{}
		addSubnets := func(ids []string) {
			for _, id := range ids {
				if !seen[id] {
					seen[id] = true
					spec.Subnets = append(spec.Subnets, id)
				}
			}
		}
		if g.Subnets.All {
			addSubnets(subnetRefs["*"])
		}
		for _, n := range g.Subnets.Names {
			addSubnets(subnetRefs[n])
		}
		if len(spec.Subnets) == 0 {
			return fmt.Errorf("group %s: no subnet matches %v", g.Name, g.Subnets.Names)
		}
		keys := make([]string, 0, len(g.Tags))
		for k := range g.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			spec.Tags = append(spec.Tags, ASGTag{Key: k, Value: g.Tags[k].Value, PropagateAtLaunch: g.Tags[k].Propagate})
		}
		if err := r.scenarioGroupExtras(g, &spec); err != nil {
			return fmt.Errorf("group %s: %w", g.Name, err)
		}
		if err := r.CreateGroup(spec); err != nil {
			return fmt.Errorf("group %s: %w", g.Name, err)
		}
	}
	return nil
}

// applyNetwork creates the zones, VPCs and subnets and returns the subnet ids each group
// subnet reference stands for ("*" is every subnet the groups may use).
func (s *Scenario) applyNetwork(r *Region) (map[string][]string, error) {
	var err error
	refs := map[string][]string{}
	r.Do(func() {
		if len(s.AZs) > 0 {
			same := len(s.AZs) == len(r.azs)
			for i := range s.AZs {
				same = same && r.azs[i].Name == s.AZs[i]
			}
			if !same {
				if len(r.subnets) > 0 {
					err = fmt.Errorf("the region already has subnets in other availability zones: start it with the scenario's Options")
					return
				}
				r.azs = nil
				for i, n := range s.AZs {
					r.azs = append(r.azs, AZ{Name: n, ID: fmt.Sprintf("%s-az%d", shortRegion(r.opts.Region), i+1)})
				}
			}
		}
		for _, v := range s.VPCs {
			id := v.ID
			if id == "" {
				id = r.newID("vpc")
			}
			if r.vpcs[id] != nil {
				err = fmt.Errorf("vpc %s already exists", id)
				return
			}
			r.vpcs[id] = &VPC{ID: id, CIDR: v.CIDR}
			vt := r.vpcTags(id)
			for k, val := range v.Tags {
				vt[k] = val
			}
			if v.Name != "" {
				vt["Name"] = v.Name
			}
			for _, sv := range v.Subnets {
				sid := sv.ID
				if sid == "" {
					sid = r.newID("subnet")
				}
				if r.subnets[sid] != nil {
					err = fmt.Errorf("subnet %s already exists", sid)
					return
				}
				tags := Tags{"Name": sv.Name}
				for k, val := range sv.Tags {
					tags[k] = val
				}
				r.subnets[sid] = &Subnet{ID: sid, VPCID: id, AZ: sv.AZ, CIDR: sv.CIDR, MapPublicIP: sv.Public, Tags: tags,
					AvailableIPCount: scenarioSubnetSize(sv.CIDR)}
			}
		}
		if len(s.VPCs) == 0 && !r.scenarioHasDefaultVPC() {
			r.scenarioDefaultVPC()
		}
		// References: names (Name tags), ids, zones, and "*" for every subnet of the scenario's
		// VPCs (or the default subnets when it has none).
		ids := make([]string, 0, len(r.subnets))
		for id := range r.subnets {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool {
			a, b := r.subnets[ids[i]], r.subnets[ids[j]]
			if a.AZ != b.AZ {
				return a.AZ < b.AZ
			}
			return a.ID < b.ID
		})
		ours := map[string]bool{}
		for _, v := range s.VPCs {
			for _, sv := range v.Subnets {
				ours[sv.Name] = true
			}
		}
		for _, id := range ids {
			sn := r.subnets[id]
			refs[id] = append(refs[id], id)
			if n := sn.Tags["Name"]; n != "" {
				refs[n] = append(refs[n], id)
			}
			inScope := ours[sn.Tags["Name"]] && len(s.VPCs) > 0
			if len(s.VPCs) == 0 {
				inScope = sn.DefaultForAZ
			}
			if inScope {
				refs[sn.AZ] = append(refs[sn.AZ], id)
				refs["*"] = append(refs["*"], id)
			}
		}
	})
	return refs, err
}

func (r *Region) scenarioHasDefaultVPC() bool {
	for _, v := range r.vpcs {
		if v.IsDefault {
			return true
		}
	}
	return false
}

// scenarioDefaultVPC creates a default VPC with a default subnet per zone, as New does.
func (r *Region) scenarioDefaultVPC() {
	vpc := &VPC{ID: r.newID("vpc"), CIDR: "172.31.0.0/16", IsDefault: true}
	r.vpcs[vpc.ID] = vpc
	for i, az := range r.azs {
		sn := &Subnet{ID: r.newID("subnet"), VPCID: vpc.ID, AZ: az.Name, CIDR: fmt.Sprintf("172.31.%d.0/20", i*16),
			DefaultForAZ: true, MapPublicIP: true, Tags: Tags{}, AvailableIPCount: 4091}
		r.subnets[sn.ID] = sn
	}
}

// scenarioSubnetSize is the number of addresses AWS leaves usable in a subnet (it reserves five).
func scenarioSubnetSize(cidr string) int {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return 0
	}
	return 1<<(32-p.Bits()) - 5
}

// data converts the scenario's template into launch template data.
func (t ScenarioTemplate) data() LaunchTemplateData {
	d := LaunchTemplateData{
		ImageID:             t.ImageID,
		InstanceType:        t.InstanceType,
		KeyName:             t.KeyName,
		UserData:            t.UserData,
		SecurityGroupIDs:    append([]string(nil), t.SecurityGroupIDs...),
		Spot:                t.Spot,
		SpotMaxPrice:        t.SpotMaxPrice,
		SpotInterruption:    t.InterruptionBehavior,
		InstanceMetadataTag: t.InstanceMetadataTags,
		HTTPTokensRequired:  t.HTTPTokens == "required",
		IAMInstanceProfile:  t.IAMInstanceProfile,
	}
	for _, bd := range t.BlockDevices {
		del := true
		if bd.DeleteOnTermination != nil {
			del = *bd.DeleteOnTermination
		}
		typ := bd.VolumeType
		if typ == "" && !bd.NoDevice {
			typ = "gp3"
		}
		d.BlockDevices = append(d.BlockDevices, BlockDevice{DeviceName: bd.DeviceName, NoDevice: bd.NoDevice,
			VolumeSize: bd.VolumeSize, VolumeType: typ, DeleteOnTermination: del, SnapshotID: bd.SnapshotID, Encrypted: bd.Encrypted})
	}
	if len(t.Tags) > 0 {
		d.Tags = map[string]Tags{}
		for rt, tags := range t.Tags {
			d.Tags[rt] = Tags{}
			for k, v := range tags {
				d.Tags[rt][k] = v
			}
		}
	}
	return d
}

//go:embed scenarios/*.yaml
var sampleScenarios embed.FS

// SampleScenarios returns the names of the scenarios shipped with the simulator.
func SampleScenarios() []string {
	entries, _ := sampleScenarios.ReadDir("scenarios")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// SampleScenario returns the YAML of a shipped scenario by name ("demo" or "demo.yaml").
func SampleScenario(name string) ([]byte, error) {
	base := strings.TrimSuffix(path.Base(name), ".yaml")
	b, err := sampleScenarios.ReadFile("scenarios/" + base + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no sample scenario %q (have %s)", name, strings.Join(SampleScenarios(), ", "))
	}
	return b, nil
}

// LoadSampleScenario parses a shipped scenario.
func LoadSampleScenario(name string) (*Scenario, error) {
	b, err := SampleScenario(name)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(path.Base(name), ".yaml")
	return parseScenario(b, "sample "+base)
}
