package inventory

import (
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// strs shares, within one listing, the strings and tag maps that repeat from instance to
// instance. The SDK allocates every string of every page on its own: at 10,000 instances the
// instance types, AZs, subnets, states, device names and tag keys and values (the members of a
// group carry the same tags) were kept 10,000 times over in what a listing returns and a
// Tracker keeps. Only values that repeat go through it (not instance or volume ids). A strs
// is used by one listing and dropped with it, so it holds no more than the listing does.
type strs struct {
	m    map[string]string
	tags map[string]map[string]string // tag set (key) → the one map of that set
	key  strings.Builder
	sort []ec2types.Tag
}

func newStrs() *strs {
	return &strs{m: map[string]string{}, tags: map[string]map[string]string{}}
}

// of returns *p (or "" for nil) as the listing's one copy of that value.
func (s *strs) of(p *string) string {
	if p == nil {
		return ""
	}
	return s.str(*p)
}

func (s *strs) str(v string) string {
	if c, ok := s.m[v]; ok {
		return c
	}
	s.m[v] = v
	return v
}

// tagMap returns the tags as a map shared by every instance of the listing that has the same
// set. Callers never modify Instance.Tags in place (see copyEC2To), so sharing is safe.
func (s *strs) tagMap(ts []ec2types.Tag) map[string]string {
	s.sort = append(s.sort[:0], ts...)
	slices.SortFunc(s.sort, func(a, b ec2types.Tag) int { return strings.Compare(aws.ToString(a.Key), aws.ToString(b.Key)) })
	s.key.Reset()
	for _, t := range s.sort {
		// NUL separates: AWS allows no NUL in tag keys and values.
		s.key.WriteString(aws.ToString(t.Key))
		s.key.WriteByte(0)
		s.key.WriteString(aws.ToString(t.Value))
		s.key.WriteByte(0)
	}
	if m, ok := s.tags[s.key.String()]; ok && len(m) == len(ts) {
		return m
	}
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[s.of(t.Key)] = s.of(t.Value)
	}
	s.tags[s.key.String()] = m
	return m
}

// asgMember is what a cached Auto Scaling page keeps of a member: its Auto Scaling view only,
// a third of an Instance's size (pageCache keeps one per member of the fleet).
type asgMember struct {
	ID, Type, AZ, LifecycleState, Health string
}

func compactMembers(ms []Instance) []asgMember {
	out := make([]asgMember, len(ms))
	for i, m := range ms {
		out[i] = asgMember{ID: m.ID, Type: m.Type, AZ: m.AZ, LifecycleState: m.LifecycleState, Health: m.Health}
	}
	return out
}

func expandMembers(ms []asgMember) []Instance {
	if len(ms) == 0 {
		return nil
	}
	out := make([]Instance, len(ms))
	for i, m := range ms {
		out[i] = Instance{ID: m.ID, Type: m.Type, AZ: m.AZ, LifecycleState: m.LifecycleState, Health: m.Health}
	}
	return out
}
