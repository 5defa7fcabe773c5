package groupconfig

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// ChangeOp is what a Change does to a tag.
type ChangeOp string

// The operations of a Change.
const (
	// ChangeAdd creates a tag.
	ChangeAdd ChangeOp = "add"
	// ChangeUpdate changes the value or PropagateAtLaunch of a tag.
	ChangeUpdate ChangeOp = "change"
	// ChangeRemove deletes a tag.
	ChangeRemove ChangeOp = "remove"
)

// Change is one difference between two tag sets. Its JSON shape is stable:
// {"op":"change","key":…,"old":{…},"new":{…}}.
type Change struct {
	Op  ChangeOp `json:"op"`
	Key string   `json:"key"`
	Old *Tag     `json:"old,omitempty"` // nil for ChangeAdd
	New *Tag     `json:"new,omitempty"` // nil for ChangeRemove
}

// String renders the change on one line for --dry-run:
// `+ spotmax:consul_port="8500"` for an added tag,
// `~ spotmax:detaching_delay_seconds: "30" → "80"` for a changed one and
// `- spotmax:buffer_mins="5"` for a removed one.
func (c Change) String() string {
	prop := func(t *Tag) string {
		if t.PropagateAtLaunch {
			return " (propagated)"
		}
		return ""
	}
	switch {
	case c.Op == ChangeAdd && c.New != nil:
		return "+ " + quoteKey(c.Key) + "=" + quoteValue(c.New.Value) + prop(c.New)
	case c.Op == ChangeRemove && c.Old != nil:
		return "- " + quoteKey(c.Key) + "=" + quoteValue(c.Old.Value)
	case c.Op == ChangeUpdate && c.Old != nil && c.New != nil:
		s := "~ " + quoteKey(c.Key) + ": "
		if c.Old.Value != c.New.Value {
			s += quoteValue(c.Old.Value) + " → " + quoteValue(c.New.Value)
		} else {
			s += quoteValue(c.New.Value)
		}
		if c.Old.PropagateAtLaunch != c.New.PropagateAtLaunch {
			s += fmt.Sprintf(", propagate at launch %t → %t", c.Old.PropagateAtLaunch, c.New.PropagateAtLaunch)
		}
		return s
	}
	return string(c.Op) + " " + quoteKey(c.Key)
}

// Diff compares the spotmax: tags of two tag sets key by key and returns
// what turns current into desired, sorted by key. Tags without the spotmax:
// prefix are not spotmax's and never appear. A tag whose PropagateAtLaunch
// differs is changed. When a key appears twice in one set, its first
// occurrence counts.
func Diff(current, desired []Tag) []Change {
	cur, des := ourTags(current), ourTags(desired)
	var out []Change
	for k, o := range cur {
		n, ok := des[k]
		switch {
		case !ok:
			out = append(out, Change{Op: ChangeRemove, Key: k, Old: &o})
		case o != n:
			out = append(out, Change{Op: ChangeUpdate, Key: k, Old: &o, New: &n})
		}
	}
	for k, n := range des {
		if _, ok := cur[k]; !ok {
			out = append(out, Change{Op: ChangeAdd, Key: k, New: &n})
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

func ourTags(tags []Tag) map[string]Tag {
	m := map[string]Tag{}
	for _, t := range tags {
		if _, seen := m[t.Key]; !seen && strings.HasPrefix(t.Key, Prefix) {
			m[t.Key] = t
		}
	}
	return m
}

// Set returns a copy of tags in which one setting is value, normalised by
// FormatValue and written under its canonical key with its
// PropagateAtLaunch; other tags keep their order and the new one comes last.
// key may be an alias (both spellings are replaced by the canonical one),
// TagAlt with a comma list (every spotmax:alt<N> is replaced by
// spotmax:alt1 … in list order; the empty list removes them all) or one
// spotmax:alt<N>. The result is not validated as a whole: Parse it.
func Set(tags []Tag, key, value string) ([]Tag, error) {
	d, ok := Lookup(key)
	if !ok {
		if s := Suggest(key); s != "" {
			return nil, fmt.Errorf("unknown tag %s (did you mean %s?)", quoteKey(key), s)
		}
		return nil, fmt.Errorf("unknown tag %s", quoteKey(key))
	}
	if _, ok := ParseAltKey(key); ok {
		v, err := (Def{Kind: KindInstanceType}).FormatValue(value)
		if err != nil {
			return nil, fmt.Errorf("tag %s: %w", key, err)
		}
		return append(Unset(tags, key), Tag{Key: key, Value: v, PropagateAtLaunch: d.Propagate}), nil
	}
	v, err := d.FormatValue(value)
	if err != nil {
		return nil, fmt.Errorf("tag %s: %w", d.Key, err)
	}
	out := Unset(tags, d.Key)
	if d.Key == TagAlt {
		if v != "" {
			for i, t := range strings.Split(v, ",") {
				out = append(out, Tag{Key: AltKey(i + 1), Value: t, PropagateAtLaunch: d.Propagate})
			}
		}
		return out, nil
	}
	return append(out, Tag{Key: d.Key, Value: v, PropagateAtLaunch: d.Propagate}), nil
}

// Unset returns a copy of tags without one setting, so its default applies:
// every spelling of key, every spotmax:alt<N> for TagAlt, or exactly key
// when it is spotmax:alt<N> or not a known tag (to remove a misspelt one).
func Unset(tags []Tag, key string) []Tag {
	drop := func(k string) bool { return k == key }
	if d, ok := byKey[key]; ok {
		def := defs[d]
		switch def.Key {
		case TagAlt:
			drop = func(k string) bool { _, ok := ParseAltKey(k); return ok }
		default:
			drop = func(k string) bool { return k == def.Key || slices.Contains(def.Aliases, k) }
		}
	}
	out := make([]Tag, 0, len(tags))
	for _, t := range tags {
		if !drop(t.Key) {
			out = append(out, t)
		}
	}
	return out
}
