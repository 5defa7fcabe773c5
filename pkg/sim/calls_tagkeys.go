package sim

import (
	"slices"
	"sort"
)

// TagWrite is one EC2 CreateTags or DeleteTags call that succeeded: which tag keys one access
// key wrote on which resources. Next to CallsBy, it lets a test prove what each role's
// credentials tag, key by key (the agent's role must not write the controller's journal).
type TagWrite struct {
	// Action is CreateTags or DeleteTags.
	Action    string
	Resources []string
	// Keys are the tag keys, sorted; none for a DeleteTags without tags (every user tag).
	Keys []string
}

// tagWritesKey holds the tag writes in the region's per-service state.
const tagWritesKey = "ec2:tag-writes"

// recordTagWrite keeps a successful tagging call under its access key; r.mu is held.
func (r *Region) recordTagWrite(c *call, ids, keys []string) {
	if c.AccessKey == "" {
		return
	}
	m, _ := r.svc[tagWritesKey].(map[string][]TagWrite)
	if m == nil {
		m = map[string][]TagWrite{}
		r.svc[tagWritesKey] = m
	}
	keys = slices.Clone(keys)
	sort.Strings(keys)
	m[c.AccessKey] = append(m[c.AccessKey], TagWrite{Action: c.Action, Resources: slices.Clone(ids), Keys: keys})
}

// TagWritesBy returns, per access key id, its successful CreateTags and DeleteTags calls in
// the order they were made, since the region started (ResetCalls does not clear them).
func (r *Region) TagWritesBy() map[string][]TagWrite {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, _ := r.svc[tagWritesKey].(map[string][]TagWrite)
	out := make(map[string][]TagWrite, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}
