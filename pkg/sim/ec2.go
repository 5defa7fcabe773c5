package sim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

func init() {
	registerService(&service{
		name:   "ec2",
		xmlns:  "http://ec2.amazonaws.com/doc/2016-11-15/",
		setup:  setupEC2,
		handle: serveEC2,
	})
}

// ec2Actions maps EC2 action names to their handlers; each handler writes its response or
// returns an error, with the region locked.
var ec2Actions = map[string]func(r *Region, c *call) *APIError{
	"DescribeAvailabilityZones": (*Region).ec2DescribeAvailabilityZones,

	// ec2_instances.go
	"RunInstances":              (*Region).ec2RunInstances,
	"DescribeInstances":         (*Region).ec2DescribeInstances,
	"TerminateInstances":        (*Region).ec2TerminateInstances,
	"StopInstances":             (*Region).ec2StopInstances,
	"StartInstances":            (*Region).ec2StartInstances,
	"ModifyInstanceAttribute":   (*Region).ec2ModifyInstanceAttribute,
	"DescribeInstanceAttribute": (*Region).ec2DescribeInstanceAttribute,

	// ec2_tags.go
	"CreateTags":   (*Region).ec2CreateTags,
	"DeleteTags":   (*Region).ec2DeleteTags,
	"DescribeTags": (*Region).ec2DescribeTags,

	// ec2_volumes.go
	"DescribeVolumes": (*Region).ec2DescribeVolumes,
	"CreateVolume":    (*Region).ec2CreateVolume,
	"AttachVolume":    (*Region).ec2AttachVolume,
	"DetachVolume":    (*Region).ec2DetachVolume,
	"DeleteVolume":    (*Region).ec2DeleteVolume,

	// ec2_snapshots.go
	"CreateSnapshot":    (*Region).ec2CreateSnapshot,
	"DescribeSnapshots": (*Region).ec2DescribeSnapshots,
	"DeleteSnapshot":    (*Region).ec2DeleteSnapshot,

	// ec2_templates.go
	"CreateLaunchTemplate":           (*Region).ec2CreateLaunchTemplate,
	"CreateLaunchTemplateVersion":    (*Region).ec2CreateLaunchTemplateVersion,
	"ModifyLaunchTemplate":           (*Region).ec2ModifyLaunchTemplate,
	"DeleteLaunchTemplate":           (*Region).ec2DeleteLaunchTemplate,
	"DescribeLaunchTemplates":        (*Region).ec2DescribeLaunchTemplates,
	"DescribeLaunchTemplateVersions": (*Region).ec2DescribeLaunchTemplateVersions,

	// ec2_network.go
	"DescribeVpcs":    (*Region).ec2DescribeVpcs,
	"CreateVpc":       (*Region).ec2CreateVpc,
	"DescribeSubnets": (*Region).ec2DescribeSubnets,
	"CreateSubnet":    (*Region).ec2CreateSubnet,

	// ec2_pricing.go
	"DescribeSpotPriceHistory":      (*Region).ec2DescribeSpotPriceHistory,
	"DescribeInstanceTypeOfferings": (*Region).ec2DescribeInstanceTypeOfferings,
	"DescribeInstanceTypes":         (*Region).ec2DescribeInstanceTypes,

	// ec2_spotrequests.go
	"DescribeSpotInstanceRequests": (*Region).ec2DescribeSpotInstanceRequests,
}

func serveEC2(r *Region, c *call) {
	h, ok := ec2Actions[c.Action]
	if !ok {
		c.fail(notServed(c))
		return
	}
	if dry, _, _ := c.Form.Bool("DryRun"); dry {
		c.fail(&APIError{Status: http.StatusPreconditionFailed, Code: "DryRunOperation",
			Message: "Request would have succeeded, but DryRun flag is set."})
		return
	}
	var err *APIError
	r.Do(func() { err = h(r, c) })
	if err != nil {
		c.fail(err)
	}
}

func (r *Region) ec2DescribeAvailabilityZones(c *call) *APIError {
	type zone struct {
		ZoneName   string `xml:"zoneName"`
		ZoneID     string `xml:"zoneId"`
		State      string `xml:"zoneState"`
		RegionName string `xml:"regionName"`
		ZoneType   string `xml:"zoneType"`
		OptIn      string `xml:"optInStatus"`
	}
	var out struct {
		XMLName xml.Name `xml:"x"`
		Zones   []zone   `xml:"availabilityZoneInfo>item"`
	}
	want := map[string]bool{}
	for _, n := range c.Form.List("ZoneName") {
		want[n] = true
	}
	for _, az := range r.azs {
		if len(want) > 0 && !want[az.Name] {
			continue
		}
		out.Zones = append(out.Zones, zone{ZoneName: az.Name, ZoneID: az.ID, State: "available", RegionName: r.opts.Region,
			ZoneType: "availability-zone", OptIn: "opt-in-not-required"})
	}
	c.writeEC2(out)
	return nil
}

// ec2State is the EC2 service's own per-region state: logs that tests read and data that the
// shared model does not carry.
type ec2State struct {
	deleted    []DeletedVolume
	forced     []ForceDetach
	vpcTags    map[string]Tags
	spotPrices map[[2]string]spotOverride // (instance type, AZ) → price set by SetSpotPrice
	// spotHistory keeps every price set on a pool, oldest first, for DescribeSpotPriceHistory.
	spotHistory map[[2]string][]spotOverride
	// volumeTokens maps CreateVolume client tokens to the volume they created.
	volumeTokens map[string]string
	// shutdownVolumes remembers the volumes attached to an instance when it started shutting
	// down, so that the ones DeleteOnTermination removed can be logged once it is terminated.
	shutdownVolumes map[string][]DeletedVolume
	// visibleAt is when a just-launched instance becomes visible to the EC2 API
	// (EC2Behaviors.LaunchVisibility); tagVisibleAt is when tag filters start matching a
	// resource's freshly written tag keys (EC2Behaviors.TagVisibility).
	visibleAt    map[string]time.Time
	tagVisibleAt map[string]map[string]time.Time
	// launches maps RunInstances client tokens to the parameters of the call that used them
	// first, for IdempotentParameterMismatch.
	launches map[string]string
}

func setupEC2(r *Region) {
	st := &ec2State{vpcTags: map[string]Tags{}, spotPrices: map[[2]string]spotOverride{}, spotHistory: map[[2]string][]spotOverride{},
		volumeTokens: map[string]string{}, shutdownVolumes: map[string][]DeletedVolume{},
		visibleAt: map[string]time.Time{}, tagVisibleAt: map[string]map[string]time.Time{}, launches: map[string]string{}}
	r.svc["ec2"] = st
	r.onStateChange(func(in *Instance) {
		switch in.State {
		case StateShuttingDown:
			var vols []DeletedVolume
			for _, bd := range in.BlockDevices {
				if v := r.volumes[bd.VolumeID]; v != nil {
					vols = append(vols, DeletedVolume{VolumeID: v.ID, Marker: v.Marker, InstanceID: in.ID, Device: bd.DeviceName})
				}
			}
			st.shutdownVolumes[in.ID] = vols
		case StateTerminated:
			for _, dv := range st.shutdownVolumes[in.ID] {
				if _, still := r.volumes[dv.VolumeID]; still || st.wasDeleted(dv.VolumeID) {
					continue
				}
				dv.Time = r.now().UTC()
				dv.Reason = "DeleteOnTermination"
				st.deleted = append(st.deleted, dv)
			}
			delete(st.shutdownVolumes, in.ID)
		}
	})
}

func (st *ec2State) wasDeleted(id string) bool {
	for _, d := range st.deleted {
		if d.VolumeID == id {
			return true
		}
	}
	return false
}

// ec2 returns the EC2 service's state, with the lock held.
func (r *Region) ec2() *ec2State {
	return r.svc["ec2"].(*ec2State)
}

// DeletedVolume records the deletion of an EBS volume.
type DeletedVolume struct {
	VolumeID string
	// Marker is the volume's content marker: a test proves that a data volume survived by
	// checking that its marker never appears here.
	Marker string
	// Reason is "DeleteVolume" or "DeleteOnTermination".
	Reason string
	// InstanceID and Device name the attachment the volume had, for DeleteOnTermination.
	InstanceID string
	Device     string
	Time       time.Time
}

// DeletedVolumes returns every volume deletion so far, in order: DeleteVolume calls and volumes
// deleted with their instance because of DeleteOnTermination.
func (r *Region) DeletedVolumes() []DeletedVolume {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]DeletedVolume(nil), r.ec2().deleted...)
}

// ForceDetach records a DetachVolume call with Force set.
type ForceDetach struct {
	VolumeID   string
	InstanceID string
	Device     string
	Marker     string
	// InstanceState is the state of the instance when the volume was forced off it.
	InstanceState string
	Time          time.Time
}

// ForceDetaches returns every forced detach so far, in order. Forcing a detach can corrupt the
// file system, so an invariant check can require this to be empty unless a test asked for it.
func (r *Region) ForceDetaches() []ForceDetach {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ForceDetach(nil), r.ec2().forced...)
}

// filter is one Filter.N of a Describe call.
type filter struct {
	Name   string
	Values []string
}

func parseFilters(p params) []filter {
	var out []filter
	for _, s := range p.Structs("Filter") {
		out = append(out, filter{Name: s.Get("Name"), Values: s.List("Value")})
	}
	return out
}

// match reports whether any of got matches any of the filter's values; values may use the
// wildcards * and ?, as in EC2.
func (f filter) match(got ...string) bool {
	for _, want := range f.Values {
		for _, g := range got {
			if globMatch(want, g) {
				return true
			}
		}
	}
	return false
}

// globMatch matches s against pattern with * (any run) and ? (any one character); a backslash
// escapes the next character.
func globMatch(pattern, s string) bool {
	if !strings.ContainsAny(pattern, `*?\`) {
		return pattern == s
	}
	p, str := []rune(pattern), []rune(s)
	var match func(i, j int) bool
	match = func(i, j int) bool {
		for i < len(p) {
			switch p[i] {
			case '*':
				for k := j; k <= len(str); k++ {
					if match(i+1, k) {
						return true
					}
				}
				return false
			case '?':
				if j >= len(str) {
					return false
				}
			case '\\':
				if i+1 < len(p) {
					i++
				}
				fallthrough
			default:
				if j >= len(str) || str[j] != p[i] {
					return false
				}
			}
			i++
			j++
		}
		return j == len(str)
	}
	return match(0, 0)
}

// filterFields maps a filter name to the values an item has for it.
type filterFields[T any] map[string]func(T) []string

// applyFilters keeps the items that match every filter. tags, if not nil, serves the tag:KEY,
// tag-key and tag-value filters. An unknown filter name is an error, as in EC2.
func applyFilters[T any](items []T, fs []filter, fields filterFields[T], tags func(T) Tags) ([]T, *APIError) {
	for _, f := range fs {
		if _, ok := fields[f.Name]; ok {
			continue
		}
		if tags != nil && (strings.HasPrefix(f.Name, "tag:") || f.Name == "tag-key" || f.Name == "tag-value") {
			continue
		}
		return nil, errf(CodeInvalidParameter, "The filter '%s' is invalid", f.Name)
	}
	// A filter of exact values (no wildcard) is matched through a set: a listing filtered on
	// 200 group names otherwise compared each instance of the region with each name, on every
	// page.
	sets := make([]map[string]bool, len(fs))
	for i, f := range fs {
		sets[i] = exactValues(f)
	}
	var out []T
	for _, it := range items {
		ok := true
		for i, f := range fs {
			if fn := fields[f.Name]; fn != nil {
				ok = matchSet(f, sets[i], fn(it)...)
			} else {
				ok = matchTagFilter(f, sets[i], tags(it))
			}
			if !ok {
				break
			}
		}
		if ok {
			out = append(out, it)
		}
	}
	return out, nil
}

func matchTagFilter(f filter, set map[string]bool, t Tags) bool {
	switch {
	case strings.HasPrefix(f.Name, "tag:"):
		v, ok := t[strings.TrimPrefix(f.Name, "tag:")]
		return ok && matchSet(f, set, v)
	case f.Name == "tag-key":
		if set != nil {
			for k := range t {
				if set[k] {
					return true
				}
			}
			return false
		}
		return f.match(t.Sorted()...)
	default: // tag-value
		var vals []string
		for _, v := range t {
			vals = append(vals, v)
		}
		return matchSet(f, set, vals...)
	}
}

// exactValues returns the filter's values as a set when none has a wildcard (or an escape),
// else nil.
func exactValues(f filter) map[string]bool {
	set := make(map[string]bool, len(f.Values))
	for _, v := range f.Values {
		if strings.ContainsAny(v, `*?\`) {
			return nil
		}
		set[v] = true
	}
	return set
}

// matchSet is f.match through the set of exactValues when there is one.
func matchSet(f filter, set map[string]bool, got ...string) bool {
	if set == nil {
		return f.match(got...)
	}
	for _, g := range got {
		if set[g] {
			return true
		}
	}
	return false
}

// xmlTag is one item of a tagSet.
type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func xmlTags(t Tags) []xmlTag {
	out := make([]xmlTag, 0, len(t))
	for _, k := range t.Sorted() {
		out = append(out, xmlTag{Key: k, Value: t[k]})
	}
	return out
}

// parseTags reads prefix.N.Key / prefix.N.Value pairs, refusing reserved aws: keys.
func parseTags(p params, prefix string) (Tags, *APIError) {
	t := Tags{}
	for _, s := range p.Structs(prefix) {
		k := s.Get("Key")
		if err := checkTagKey(k); err != nil {
			return nil, err
		}
		t[k] = s.Get("Value")
	}
	return t, nil
}

func checkTagKey(k string) *APIError {
	if k == "" {
		return errf(CodeInvalidParameter, "Tag key cannot be empty")
	}
	if strings.HasPrefix(strings.ToLower(k), "aws:") {
		return errf(CodeInvalidParameter, "Value ( %s ) for parameter key is invalid. Tag keys starting with 'aws:' are reserved for internal use", k)
	}
	if len(k) > 128 {
		return errf(CodeInvalidParameter, "Tag key exceeds the maximum length of 128 characters")
	}
	return nil
}

// parseTagSpecs reads TagSpecification.N.ResourceType with its Tag.M list, keyed by resource type.
func parseTagSpecs(p params, prefix string, allowed ...string) (map[string]Tags, *APIError) {
	out := map[string]Tags{}
	for _, s := range p.Structs(prefix) {
		rt := s.Get("ResourceType")
		ok := len(allowed) == 0
		for _, a := range allowed {
			ok = ok || a == rt
		}
		if !ok {
			return nil, errf(CodeInvalidParameter, "'%s' is not a valid taggable resource type for this operation.", rt)
		}
		tags, err := parseTags(s, "Tag")
		if err != nil {
			return nil, err
		}
		if out[rt] == nil {
			out[rt] = Tags{}
		}
		for k, v := range tags {
			out[rt][k] = v
		}
	}
	return out, nil
}

// validID reports whether id has the shape of an EC2 resource id with the prefix: 8 or 17 hex
// digits after the dash.
func validID(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix+"-")
	if !ok || (len(rest) != 8 && len(rest) != 17) {
		return false
	}
	for _, c := range rest {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// quoteIDs formats ids as AWS lists them in not-found messages: 'a, b'.
func quoteIDs(ids []string) string { return "'" + strings.Join(ids, ", ") + "'" }

// maxResults reads MaxResults and checks it against the bounds the action allows.
func maxResults(p params, lo, hi int64) (int64, *APIError) {
	n, ok, err := p.Int("MaxResults")
	if err != nil || !ok {
		return 0, err
	}
	if n < lo || n > hi {
		return 0, errf(CodeInvalidParameter, "Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and %d.", n, lo, hi)
	}
	return n, nil
}

// maxResultsCapped is maxResults for the describes whose reference says that a larger value is
// capped at the page maximum rather than refused (DescribeVolumes: "if MaxResults is given a value
// larger than 500, only 500 results are returned"). Without EC2Behaviors.PageCaps it refuses.
func (r *Region) maxResultsCapped(p params, lo, hi int64) (int64, *APIError) {
	if n, ok, err := p.Int("MaxResults"); err == nil && ok && n > hi && r.beh.EC2.PageCaps {
		return hi, nil
	}
	return maxResults(p, lo, hi)
}

// azID returns the zone id of an availability zone name.
func (r *Region) azID(name string) string {
	for _, az := range r.azs {
		if az.Name == name {
			return az.ID
		}
	}
	return ""
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// boolStr renders a bool the way EC2 filters compare it.
func boolStr(b bool) string { return fmt.Sprint(b) }
