package sim

import (
	"sort"
	"time"
)

// PutLaunchTemplate stores a launch template for callers inside the process (scenarios, tests)
// and returns its id. A new name creates the template with version 1; an existing name gets a new
// version that becomes its default, as CreateLaunchTemplateVersion followed by
// ModifyLaunchTemplate would.
func (r *Region) PutLaunchTemplate(name string, data LaunchTemplateData) (id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now().UTC().Truncate(time.Millisecond)
	lt := r.findTemplate("", name)
	if lt == nil {
		lt = &LaunchTemplate{ID: r.newID("lt"), Name: name, Created: now, Tags: Tags{}}
		r.templates[lt.ID] = lt
	}
	lt.LatestVersion++
	lt.Versions = append(lt.Versions, &LaunchTemplateVersion{Number: lt.LatestVersion, Created: now, Data: cloneTemplateData(data)})
	lt.DefaultVersion = lt.LatestVersion
	return lt.ID
}

func cloneTemplateData(d LaunchTemplateData) LaunchTemplateData {
	c := d
	c.SecurityGroupIDs = append([]string(nil), d.SecurityGroupIDs...)
	c.BlockDevices = append([]BlockDevice(nil), d.BlockDevices...)
	if d.Tags != nil {
		c.Tags = make(map[string]Tags, len(d.Tags))
		for rt, t := range d.Tags {
			c.Tags[rt] = t.Clone()
		}
	}
	return c
}

// Groups returns copies of every Auto Scaling group, ordered by name.
func (r *Region) Groups() []ASG {
	r.mu.Lock()
	names := make([]string, 0, len(r.asgs))
	for n := range r.asgs {
		names = append(names, n)
	}
	r.mu.Unlock()
	sort.Strings(names)
	out := make([]ASG, 0, len(names))
	for _, n := range names {
		if g, ok := r.Group(n); ok {
			out = append(out, g)
		}
	}
	return out
}

// GroupOf returns the name of the Auto Scaling group an instance belongs to.
func (r *Region) GroupOf(instanceID string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, _ := r.asgGroupOf(instanceID)
	if g == nil {
		return "", false
	}
	return g.Name, true
}

// SetGroupDesired changes a group's desired capacity as SetDesiredCapacity does, for scenarios.
func (r *Region) SetGroupDesired(name string, desired int32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.asgs[name]
	if g == nil {
		return errf(CodeValidationError, "AutoScalingGroup name not found - AutoScalingGroup %s not found", name)
	}
	if err := r.asgSetDesired(g, desired); err != nil {
		return err
	}
	return nil
}

// DefaultSubnet returns the id of the default subnet of an availability zone.
func (r *Region) DefaultSubnet(az string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := sortedKeysOfSubnets(r.subnets)
	for _, id := range ids {
		if sn := r.subnets[id]; sn.AZ == az && sn.DefaultForAZ {
			return id, true
		}
	}
	return "", false
}

func sortedKeysOfSubnets(m map[string]*Subnet) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
