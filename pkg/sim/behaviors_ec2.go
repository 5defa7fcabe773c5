package sim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// EC2Behaviors are the EC2 behaviours of AWSBehaviors (see Behaviors). The zero value is the kind
// world: everything visible at once, capacity errors as client errors, and so on.
type EC2Behaviors struct {
	// LaunchVisibility is how long after RunInstances a new instance stays invisible to the EC2
	// API, as AWS documents for its eventually consistent API: calls that name it answer
	// InvalidInstanceID.NotFound and describes without ids leave it out. Zero: visible at once.
	LaunchVisibility Duration `yaml:"launchVisibility" json:"launchVisibility"`
	// TagVisibility is how long a tag written by CreateTags or a TagSpecification is not yet
	// matched by tag-filtered describes (tag:K, tag-key, tag-value). Zero: matched at once.
	TagVisibility Duration `yaml:"tagVisibility" json:"tagVisibility"`
	// CapacityServerErrors answers InsufficientInstanceCapacity and EC2's other capacity codes
	// with HTTP 500, as AWS lists them among its server errors, so SDK retryers take them for
	// transient faults. Off: HTTP 400.
	CapacityServerErrors bool `yaml:"capacityServerErrors" json:"capacityServerErrors"`
	// IdempotencyMismatch refuses a RunInstances client token reused with other parameters
	// (IdempotentParameterMismatch). Off: the token returns the first launch whatever was asked.
	IdempotencyMismatch bool `yaml:"idempotencyMismatch" json:"idempotencyMismatch"`
	// InstanceTypeOfferings checks RunInstances' instance type against the region's catalog
	// (unknown: InvalidParameterValue) and against the AZ's offerings (not offered: Unsupported),
	// and makes DescribeInstanceTypeOfferings answer per AZ with the gaps AWS has. Off: any
	// family.size name launches anywhere.
	InstanceTypeOfferings bool `yaml:"instanceTypeOfferings" json:"instanceTypeOfferings"`
	// NetworkInterfaceRules refuses SubnetId or SecurityGroupIds next to network interfaces (of
	// the call or its launch template) with InvalidParameterCombination. Off: the call's subnet wins.
	NetworkInterfaceRules bool `yaml:"networkInterfaceRules" json:"networkInterfaceRules"`
	// HibernateWithoutGrace starts a hibernate interruption at the notice, as AWS does: no
	// two-minute grace. Off: hibernate waits for the notice like stop.
	HibernateWithoutGrace bool `yaml:"hibernateWithoutGrace" json:"hibernateWithoutGrace"`
	// IMDSHopLimit applies the instance's HttpPutResponseHopLimit to IMDS token requests that
	// say they crossed extra hops (header X-Sim-Imds-Hops, see imds.go): the token response never
	// arrives. Off: the header is ignored.
	IMDSHopLimit bool `yaml:"imdsHopLimit" json:"imdsHopLimit"`
	// PageCaps accepts MaxResults above a describe's page maximum where AWS does (DescribeVolumes,
	// DescribeTags, ...), capping the page instead of refusing the call. Off: refused.
	PageCaps bool `yaml:"pageCaps" json:"pageCaps"`
}

func awsEC2Behaviors() EC2Behaviors {
	return EC2Behaviors{
		LaunchVisibility:      Duration(3 * time.Second),
		TagVisibility:         Duration(time.Second),
		CapacityServerErrors:  true,
		IdempotencyMismatch:   true,
		InstanceTypeOfferings: true,
		NetworkInterfaceRules: true,
		HibernateWithoutGrace: true,
		IMDSHopLimit:          true,
		PageCaps:              true,
	}
}

// Duration is a time.Duration that scenario files and the control API write as "3s".
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts a Go duration string ("3s") or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err := json.Unmarshal(b, &secs); err != nil {
			return fmt.Errorf("duration %s: want a string such as \"3s\" or a number of seconds", b)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	return d.parse(s)
}

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalYAML accepts a Go duration string ("3s") or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if secs, err := strconv.ParseFloat(n.Value, 64); err == nil {
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	return d.parse(n.Value)
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	if v < 0 {
		return fmt.Errorf("duration %q must not be negative", s)
	}
	*d = Duration(v)
	return nil
}

// ec2Visible reports whether the EC2 API shows an instance yet: false during the
// LaunchVisibility window after its launch. The lock must be held. Other services (Auto Scaling)
// can call it to model their own view of a new instance.
func (r *Region) ec2Visible(id string) bool {
	at, ok := r.ec2().visibleAt[id]
	return !ok || !r.now().Before(at)
}

// EC2Visible is ec2Visible for callers without the lock (tests, the control API).
func (r *Region) EC2Visible(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ec2Visible(id)
}

// markLaunched starts an instance's LaunchVisibility window, with the lock held.
func (r *Region) markLaunched(id string) {
	if w := r.beh.EC2.LaunchVisibility.D(); w > 0 {
		r.ec2().visibleAt[id] = r.now().Add(w)
	}
}

// markTagged starts the TagVisibility window of tag keys written on a resource, with the lock held.
func (r *Region) markTagged(id string, keys ...string) {
	w := r.beh.EC2.TagVisibility.D()
	if w <= 0 || len(keys) == 0 {
		return
	}
	st := r.ec2()
	if st.tagVisibleAt[id] == nil {
		st.tagVisibleAt[id] = map[string]time.Time{}
	}
	for _, k := range keys {
		st.tagVisibleAt[id][k] = r.now().Add(w)
	}
}

// filterTags returns the tags of a resource that tag filters match now: those whose
// TagVisibility window has passed. The lock must be held.
func (r *Region) filterTags(id string, t Tags) Tags {
	pending := r.ec2().tagVisibleAt[id]
	if len(pending) == 0 {
		return t
	}
	now := r.now()
	out := Tags{}
	for k, v := range t {
		if at, ok := pending[k]; ok && now.Before(at) {
			continue
		}
		out[k] = v
	}
	return out
}

// ec2CapacityCodes are the capacity codes that EC2 lists among its server errors.
var ec2CapacityCodes = map[string]bool{
	"InsufficientAddressCapacity":          true,
	"InsufficientCapacity":                 true,
	"InsufficientHostCapacity":             true,
	"InsufficientInstanceCapacity":         true,
	"InsufficientReservedInstanceCapacity": true,
}

// capacityError returns an EC2 capacity error: HTTP 500 when CapacityServerErrors is on, as
// AWS lists these codes among its server errors.
func (r *Region) capacityError(code, format string, args ...any) *APIError {
	e := errf(code, format, args...)
	if r.beh.EC2.CapacityServerErrors {
		e.Status = 500
	}
	return e
}
