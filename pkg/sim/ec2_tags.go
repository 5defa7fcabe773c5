package sim

import (
	"encoding/xml"
	"maps"
	"slices"
	"sort"
	"strings"
)

// maxUserTags is how many user tags (keys not starting with aws:) one resource may carry.
const maxUserTags = 50

// resourceTags returns the tag map of a taggable resource and its EC2 resource type, failing as
// EC2 does for an unknown id. The map is the resource's own: changes apply to the resource.
func (r *Region) resourceTags(id string) (Tags, string, *APIError) {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "i":
		in, err := r.instanceByID(id)
		if err != nil {
			return nil, "", err
		}
		if in.Tags == nil {
			in.Tags = Tags{}
		}
		return in.Tags, "instance", nil
	case "vol":
		v, err := r.volumeByID(id)
		if err != nil {
			return nil, "", err
		}
		if v.Tags == nil {
			v.Tags = Tags{}
		}
		return v.Tags, "volume", nil
	case "snap":
		return r.snapshotTags(id)
	case "lt":
		lt, err := r.templateByRef(id, "")
		if err != nil {
			return nil, "", err
		}
		if lt.Tags == nil {
			lt.Tags = Tags{}
		}
		return lt.Tags, "launch-template", nil
	case "subnet":
		sn := r.subnets[id]
		if sn == nil {
			return nil, "", errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
		if sn.Tags == nil {
			sn.Tags = Tags{}
		}
		return sn.Tags, "subnet", nil
	case "vpc":
		if r.vpcs[id] == nil {
			return nil, "", errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
		return r.vpcTags(id), "vpc", nil
	}
	return nil, "", errf("InvalidID", "The ID '%s' is not valid", id)
}

// vpcTags returns a VPC's tags, which the EC2 service keeps because the shared model does not.
func (r *Region) vpcTags(id string) Tags {
	st := r.ec2()
	if st.vpcTags[id] == nil {
		st.vpcTags[id] = Tags{}
	}
	return st.vpcTags[id]
}

func userTagCount(t Tags) int {
	n := 0
	for k := range t {
		if !strings.HasPrefix(k, "aws:") {
			n++
		}
	}
	return n
}

func (r *Region) ec2CreateTags(c *call) *APIError {
	p := c.Form
	ids := p.List("ResourceId")
	if len(ids) == 0 {
		return errf(CodeMissingParameter, "The request must contain the parameter resourceIdSet")
	}
	tags, err := parseTags(p, "Tag")
	if err != nil {
		return err
	}
	if len(tags) == 0 {
		return errf(CodeMissingParameter, "The request must contain the parameter tagSet")
	}
	for _, v := range tags {
		if len(v) > 256 {
			return errf(CodeInvalidParameter, "Value ( %s ) for parameter value is invalid. Tag values may not exceed 256 characters", v)
		}
	}
	var targets []Tags
	for _, id := range ids {
		t, _, err := r.resourceTags(id)
		if err != nil {
			return err
		}
		merged := t.Clone()
		for k, v := range tags {
			merged[k] = v
		}
		if userTagCount(merged) > maxUserTags {
			return errf("TagLimitExceeded", "The maximum number of Tags for a resource has been reached.")
		}
		targets = append(targets, t)
	}
	for i, t := range targets {
		for k, v := range tags {
			t[k] = v
		}
		r.markTagged(ids[i], tags.Sorted()...)
	}
	r.recordTagWrite(c, ids, slices.Collect(maps.Keys(tags)))
	writeReturnTrue(c)
	return nil
}

func (r *Region) ec2DeleteTags(c *call) *APIError {
	p := c.Form
	ids := p.List("ResourceId")
	if len(ids) == 0 {
		return errf(CodeMissingParameter, "The request must contain the parameter resourceIdSet")
	}
	type del struct {
		key      string
		value    string
		hasValue bool
	}
	var dels []del
	for _, s := range p.Structs("Tag") {
		k := s.Get("Key")
		if err := checkTagKey(k); err != nil {
			return err
		}
		dels = append(dels, del{key: k, value: s.Get("Value"), hasValue: s.Has("Value")})
	}
	var targets []Tags
	for _, id := range ids {
		t, _, err := r.resourceTags(id)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	for _, t := range targets {
		if len(dels) == 0 {
			// Without tags, EC2 deletes every user-defined tag of the resources.
			for k := range t {
				if !strings.HasPrefix(k, "aws:") {
					delete(t, k)
				}
			}
			continue
		}
		for _, d := range dels {
			if v, ok := t[d.key]; ok && (!d.hasValue || v == d.value) {
				delete(t, d.key)
			}
		}
	}
	var keys []string
	for _, d := range dels {
		keys = append(keys, d.key)
	}
	r.recordTagWrite(c, ids, keys)
	writeReturnTrue(c)
	return nil
}

type tagDescription struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
	all          Tags
}

func (r *Region) ec2DescribeTags(c *call) *APIError {
	p := c.Form
	maxN, err := maxResults(p, 5, 1000)
	if err != nil {
		return err
	}
	var items []tagDescription
	add := func(id, typ string, t Tags) {
		for _, k := range t.Sorted() {
			items = append(items, tagDescription{ResourceID: id, ResourceType: typ, Key: k, Value: t[k], all: t})
		}
	}
	for _, in := range r.instances {
		add(in.ID, "instance", in.Tags)
	}
	for _, v := range r.volumes {
		add(v.ID, "volume", v.Tags)
	}
	for _, lt := range r.templates {
		add(lt.ID, "launch-template", lt.Tags)
	}
	for _, sn := range r.subnets {
		add(sn.ID, "subnet", sn.Tags)
	}
	for id, t := range r.ec2().vpcTags {
		if r.vpcs[id] != nil {
			add(id, "vpc", t)
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].ResourceID != items[j].ResourceID {
			return items[i].ResourceID < items[j].ResourceID
		}
		return items[i].Key < items[j].Key
	})
	items, err = applyFilters(items, parseFilters(p), filterFields[tagDescription]{
		"resource-id":   func(d tagDescription) []string { return []string{d.ResourceID} },
		"resource-type": func(d tagDescription) []string { return []string{d.ResourceType} },
		"key":           func(d tagDescription) []string { return []string{d.Key} },
		"value":         func(d tagDescription) []string { return []string{d.Value} },
	}, func(d tagDescription) Tags { return d.all })
	if err != nil {
		return err
	}
	start, end, next, err := page(len(items), maxN, p.Get("NextToken"), 1000, 1000)
	if err != nil {
		return err
	}
	c.writeEC2(struct {
		XMLName   xml.Name         `xml:"x"`
		Tags      []tagDescription `xml:"tagSet>item"`
		NextToken string           `xml:"nextToken,omitempty"`
	}{Tags: items[start:end], NextToken: next})
	return nil
}
