package groupconfig

import (
	"strconv"
)

// Tagged reports whether tags carry spotmax:group (with any value; Parse
// validates it). Only such groups are spotmax's: a group without it is not
// managed whatever other spotmax: tags it has, and Load gives it no
// configuration.
func Tagged(tags []Tag) bool {
	for _, t := range tags {
		if t.Key == TagGroup {
			return true
		}
	}
	return false
}

// Load returns the configuration of a group from its tags: nil and no error
// when the group carries no spotmax:group tag (spotmax does not manage it),
// else what Parse returns. It is how everything that lists groups decides
// whether a group has a configuration at all; (*Config).Managed then says
// whether spotmax may act on it.
func Load(group string, tags []Tag) (*Config, error) {
	if !Tagged(tags) {
		return nil, nil
	}
	return Parse(group, tags)
}

// Managed reports whether spotmax may act on a group whose configuration is
// c: c is not nil (the group carries spotmax:group, see Load) and
// spotmax:ignore_tag is not true. It is the one rule; IsManaged applies it to
// raw tags and CheckManaged turns it into an error.
func (c *Config) Managed() bool { return c != nil && !c.Ignore }

// IsManaged reports whether tags mark a group spotmax manages: spotmax:group
// is present (with any value; Parse validates it) and spotmax:ignore_tag is
// not true. It is (*Config).Managed for tags that have not been parsed (an
// unparsable ignore_tag counts as not set; Parse reports it).
func IsManaged(tags []Tag) bool {
	if !Tagged(tags) {
		return false
	}
	for _, t := range tags {
		if t.Key == TagIgnore {
			if b, err := strconv.ParseBool(t.Value); err == nil && b {
				return false
			}
		}
	}
	return true
}

// NotManagedError means spotmax was asked to act on a group it does not
// manage: the group has no spotmax:group tag, or has spotmax:ignore_tag=true.
// Nothing was changed.
type NotManagedError struct {
	Group string
	// Ignored is true when the group carries spotmax:group but also
	// spotmax:ignore_tag=true.
	Ignored bool
}

// Error names the group, why it is not managed and how to change that.
func (e *NotManagedError) Error() string {
	if e.Ignored {
		return "group " + strconv.Quote(e.Group) + " is not managed by spotmax: it has " + TagIgnore +
			"=true (remove it with 'spotmax group untag " + e.Group + " " + TagIgnore + "')"
	}
	return "group " + strconv.Quote(e.Group) + " is not managed by spotmax: it has no " + TagGroup +
		" tag (manage it with 'spotmax group tag " + e.Group + " ...')"
}

// CheckManaged returns nil when c.Managed(), else a *NotManagedError naming
// group. c is the group's configuration as Load returns it.
func CheckManaged(group string, c *Config) error {
	if c.Managed() {
		return nil
	}
	return &NotManagedError{Group: group, Ignored: c != nil}
}
