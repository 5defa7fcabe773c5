package groupconfig

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the typed configuration of one group: one field per tag, which
// the tag's row in the tag table (defs, keys.go) names, so that Parse, Default
// and Tags need no code of their own per tag. Fields of tags without a
// default are zero when the tag is absent, which means the feature is off.
// Durations are whole numbers of their tag's unit.
type Config struct {
	// Group is the value of spotmax:group; the name given to Parse or
	// Default when the tag is absent.
	Group string
	// Ignore is spotmax:ignore_tag.
	Ignore bool
	// PersistenceDevs is spotmax:persistence_dev, one device per data volume
	// (the tag is a comma list); empty = no data volume. DataDevices pairs
	// them with their mount paths.
	PersistenceDevs []string
	// PersistenceMountPaths is spotmax:persistence_mount_path, the mount path
	// of each device of PersistenceDevs in the same order; empty = not
	// mounted by the agent.
	PersistenceMountPaths []string
	// DetachingDelay is spotmax:detaching_delay_seconds.
	DetachingDelay time.Duration
	// ConsulPort is spotmax:consul_port; 0 = no Consul deregistration.
	ConsulPort int
	// SDDelayDetach is spotmax:sd_delay_detach_secs.
	SDDelayDetach time.Duration
	// K8sConfigFilePath is spotmax:k8s_config_file_path; "" = no Kubernetes
	// drain.
	K8sConfigFilePath string
	// K8sNodeDrainGrace is spotmax:k8s_node_drain_grace_second.
	K8sNodeDrainGrace time.Duration
	// K8sDelayDraining is spotmax:k8s_delay_draining_secs.
	K8sDelayDraining time.Duration
	// PreactionK8sDelayDraining is spotmax:preaction_k8s_delay_draining_secs.
	PreactionK8sDelayDraining time.Duration
	// InstanceDuration is spotmax:instance_duration_hours; 0 = unlimited.
	InstanceDuration time.Duration
	// GuaranteeLiving is spotmax:gurantee_living_mins (or its alias
	// spotmax:guarantee_living_mins); 0 = off.
	GuaranteeLiving time.Duration
	// Buffer is spotmax:buffer_mins.
	Buffer time.Duration
	// ODFallback is spotmax:is_enable_od_fallback.
	ODFallback bool
	// OnlyOD is spotmax:is_only_od_rep.
	OnlyOD bool
	// ODLeastLive is spotmax:od_least_live_mins.
	ODLeastLive time.Duration
	// AltTypes are the values of spotmax:alt1 … spotmax:altN ordered by N,
	// without duplicates.
	AltTypes []string
	// PreferMultipleTypes is spotmax:is_prefer_multiple_types.
	PreferMultipleTypes bool
	// AltLeastLive is spotmax:alt_least_live_mins.
	AltLeastLive time.Duration
	// MaxTerminatedOneTime is spotmax:max_num_of_terminated_one_time.
	MaxTerminatedOneTime int
	// Preaction is spotmax:is_enable_preaction.
	Preaction bool
	// PreactionDetachDelay is spotmax:preaction_detach_delay_seconds.
	PreactionDetachDelay time.Duration
	// PreactionTerminationDelay is spotmax:preaction_termination_delay_seconds.
	PreactionTerminationDelay time.Duration
	// HandleRebalanceEvent is spotmax:is_to_handle_rebalance_event.
	HandleRebalanceEvent bool
	// HandleScalingFailure is spotmax:is_to_handle_scaling_failure.
	HandleScalingFailure bool
	// AZRebalance is spotmax:az_rebalance: "" or AZRebalanceOptimize.
	AZRebalance string
	// WarmPoolFirst is spotmax:is_warm_pool_first: a replacement takes a warmed instance from
	// the group's Auto Scaling warm pool first (pkg/replace, warm.go).
	WarmPoolFirst bool
	// PodDelayDetaching is spotmax:pod_delay_detaching_secs.
	PodDelayDetaching time.Duration
	// VolumeRetention is spotmax:volume_retention_hours; 0 = pooled data
	// volumes are kept forever.
	VolumeRetention time.Duration
	// CrossAZMove is spotmax:cross_az_move.
	CrossAZMove bool

	// Warnings are things worth telling the operator that do not make the
	// configuration unusable, e.g. both spellings of the guarantee tag set
	// to different values. Tags does not render them.
	Warnings []string
}

// field returns a pointer to the Config field of d (Def.field), or nil when d sets none.
func (c *Config) field(d Def) any {
	if d.field == nil {
		return nil
	}
	return d.field(c)
}

// set stores v, which passed d.check, in the field of d.
func (c *Config) set(d Def, v string) {
	switch p := c.field(d).(type) {
	case *string:
		*p = v
	case *[]string:
		*p = splitList(v)
	case *bool:
		*p, _ = strconv.ParseBool(v)
	case *int:
		n, _ := strconv.ParseInt(v, 10, 64)
		*p = int(n)
	case *time.Duration:
		n, _ := strconv.ParseInt(v, 10, 64)
		*p = time.Duration(n) * d.Kind.Unit()
	}
}

// render returns the tag value of the field of d; "" when a tag without a
// default is off.
func (c *Config) render(d Def) string {
	switch p := c.field(d).(type) {
	case *string:
		return *p
	case *[]string:
		return strings.Join(*p, ",")
	case *bool:
		return strconv.FormatBool(*p)
	case *int:
		if *p == 0 && d.Default == "" {
			return ""
		}
		return strconv.Itoa(*p)
	case *time.Duration:
		if *p == 0 && d.Default == "" {
			return ""
		}
		return formatDuration(*p, d.Kind)
	}
	return ""
}

// Default returns the configuration of a group without spotmax tags other
// than spotmax:group=group: every default of the tag table (docs/tags.md).
func Default(group string) *Config {
	c := &Config{Group: group}
	for _, d := range defs {
		if d.Default != "" {
			c.set(d, d.Default)
		}
	}
	return c
}

// Parse reads the configuration of the group named group from its tags. It
// only looks at keys with the spotmax: prefix (and, to catch mistakes, keys
// with that prefix in another case); other tags are ignored. spotmax:group
// may be absent (Config.Group is then group): Parse reads tags as they are,
// Load is what decides that a group without spotmax:group has no
// configuration.
//
// Both spellings of the guarantee tag are accepted; when both are set
// spotmax:gurantee_living_mins (the original spelling) wins and, if the
// values differ, a warning names both tags and the value used.
//
// Any problem — a bad value, an unknown spotmax: key, contradicting tags —
// makes the whole configuration unusable: Parse then returns nil and a
// *ValidationError listing every problem, sorted by tag key.
func Parse(group string, tags []Tag) (*Config, error) {
	p := &parser{
		group: group,
		cfg:   Default(group),
		found: map[string]Tag{},
		used:  map[string]Tag{},
		bad:   map[string]bool{},
	}
	sorted := slices.Clone(tags)
	slices.SortStableFunc(sorted, func(a, b Tag) int { return strings.Compare(a.Key, b.Key) })
	for i, t := range sorted {
		if i > 0 && sorted[i-1].Key == t.Key {
			if sorted[i-1].Value != t.Value && p.ours(t.Key) {
				p.problem(t, "tag given more than once with different values", "")
			}
			continue
		}
		p.tag(t)
	}
	p.values()
	p.alts()
	p.cross()
	if len(p.problems) > 0 {
		slices.SortStableFunc(p.problems, func(a, b Problem) int { return cmp.Compare(a.Tag, b.Tag) })
		return nil, &ValidationError{Group: group, Problems: p.problems}
	}
	return p.cfg, nil
}

type altTag struct {
	n int
	t Tag
}

type parser struct {
	group   string
	cfg     *Config
	found   map[string]Tag // known keys (canonical or alias) as found
	used    map[string]Tag // canonical key → the tag whose value is in cfg
	bad     map[string]bool
	altTags []altTag
	// familyTags are tags of a Def with a Pattern other than TagAlt (spotmax:warm_pool_<name>).
	familyTags []Tag
	problems   []Problem
}

func (p *parser) problem(t Tag, reason, hint string) {
	p.problems = append(p.problems, Problem{Group: p.group, Tag: t.Key, Value: t.Value, Reason: reason, Hint: hint})
}

func (p *parser) warn(format string, args ...any) {
	p.cfg.Warnings = append(p.cfg.Warnings, fmt.Sprintf(format, args...))
}

// ours reports whether key has the spotmax: prefix in any case.
func (p *parser) ours(key string) bool {
	return len(key) >= len(Prefix) && strings.EqualFold(key[:len(Prefix)], Prefix)
}

func didYouMean(key string) string {
	if key == "" {
		return ""
	}
	return "did you mean " + key + "?"
}

// tag sorts one tag into found or altTags, or records why it is unknown.
func (p *parser) tag(t Tag) {
	if !strings.HasPrefix(t.Key, Prefix) {
		if p.ours(t.Key) {
			p.problem(t, ReasonUnknownTag, didYouMean(Suggest(t.Key)))
		}
		return
	}
	if strings.HasPrefix(t.Key, StatePrefix) {
		return // spotmax's own progress records, not configuration
	}
	if t.Key == TagAlt {
		p.problem(t, "needs a number", didYouMean(AltKey(1)))
		return
	}
	if t.Key == TagWarmPool {
		p.problem(t, "needs a name", "the original product's warm-pool tags are "+TagWarmPool+"<name>")
		return
	}
	if _, ok := byKey[t.Key]; ok {
		p.found[t.Key] = t
		return
	}
	if isWarmPoolKey(t.Key) {
		p.familyTags = append(p.familyTags, t)
		return
	}
	if rest, ok := strings.CutPrefix(t.Key, TagAlt); ok && allDigits(rest) {
		n, ok := ParseAltKey(t.Key)
		switch {
		case ok:
			p.altTags = append(p.altTags, altTag{n, t})
		case strings.Trim(rest, "0") == "":
			p.problem(t, "alternative types are numbered from 1", "numbering starts at "+AltKey(1))
		case rest[0] == '0':
			p.problem(t, "alternative type number has leading zeros", didYouMean(Suggest(t.Key)))
		default:
			p.problem(t, "alternative type number out of range", "")
		}
		return
	}
	hint := didYouMean(Suggest(t.Key))
	if hint == "" && strings.HasPrefix(t.Key, TagAlt) {
		hint = "alternative instance types are tagged " + AltKey(1) + ", " + AltKey(2) + ", …"
	}
	p.problem(t, ReasonUnknownTag, hint)
}

// unsupported warns about a tag spotmax accepts but does not act on; a
// bad value is still a problem.
func (p *parser) unsupported(d Def, t Tag) {
	if reason, hint := d.check(t.Value); reason != "" {
		p.problem(t, reason, hint)
		return
	}
	p.warn("%s is not supported by spotmax and is ignored: %s", t.Key, d.Unsupported)
}

// values checks the value of every known tag found and stores it.
func (p *parser) values() {
	for _, t := range p.familyTags {
		p.unsupported(defs[byKey[TagWarmPool]], t)
	}
	for _, d := range defs {
		if d.Key == TagAlt || d.Pattern != "" {
			continue
		}
		if d.Unsupported != "" {
			if t, ok := p.found[d.Key]; ok {
				p.unsupported(d, t)
			}
			continue
		}
		for _, k := range append([]string{d.Key}, d.Aliases...) {
			t, ok := p.found[k]
			if !ok {
				continue
			}
			if reason, hint := d.check(t.Value); reason != "" {
				if hint == "" {
					if v, err := d.FormatValue(t.Value); err == nil && v != t.Value {
						hint = fmt.Sprintf("did you mean %q?", v)
					}
				}
				p.problem(t, reason, hint)
				p.bad[d.Key] = true
				if _, ok := p.used[d.Key]; !ok {
					p.used[d.Key] = t // the bad value still wins over an alias
				}
				continue
			}
			first, ok := p.used[d.Key]
			if !ok {
				p.used[d.Key] = t
				p.cfg.set(d, t.Value)
				if d.Propagate && !t.PropagateAtLaunch {
					p.warn("%s is not propagated at launch: new instances will not carry it", t.Key)
				}
				continue
			}
			if !p.bad[d.Key] && canonical(d, first.Value) != canonical(d, t.Value) {
				p.warn("%s=%s and %s=%s are both set: using %s from %s (the original spelling wins)",
					first.Key, quoteValue(first.Value), t.Key, quoteValue(t.Value), quoteValue(first.Value), first.Key)
			}
		}
	}
}

func canonical(d Def, v string) string {
	if s, err := d.FormatValue(v); err == nil {
		return s
	}
	return v
}

// alts checks the numbered alternative types and stores them in order.
func (p *parser) alts() {
	slices.SortFunc(p.altTags, func(a, b altTag) int { return cmp.Compare(a.n, b.n) })
	first := map[string]string{}
	for _, a := range p.altTags {
		if reason, hint := checkInstanceType(a.t.Value); reason != "" {
			if hint == "" {
				if v, err := (Def{Kind: KindInstanceType}).FormatValue(a.t.Value); err == nil && v != a.t.Value {
					hint = fmt.Sprintf("did you mean %q?", v)
				}
			}
			p.problem(a.t, reason, hint)
			continue
		}
		if k, dup := first[a.t.Value]; dup {
			p.warn("%s=%s repeats %s: ignored", a.t.Key, quoteValue(a.t.Value), k)
			continue
		}
		first[a.t.Value] = a.t.Key
		p.cfg.AltTypes = append(p.cfg.AltTypes, a.t.Value)
	}
}

// ok reports whether every key given is absent or valid.
func (p *parser) ok(keys ...string) bool {
	for _, k := range keys {
		if p.bad[k] {
			return false
		}
	}
	return true
}

// setting names a setting in a message: key="value" when tagged, key
// (default "value") otherwise.
func (p *parser) setting(key string) string {
	if t, ok := p.used[key]; ok {
		return t.Key + "=" + quoteValue(t.Value)
	}
	d := defs[byKey[key]]
	return key + " (default " + quoteValue(d.Default) + ")"
}

// cross checks the rules that involve more than one tag.
func (p *parser) cross() {
	c := p.cfg
	if mount, ok := p.used[TagPersistenceMountPath]; ok && p.ok(TagPersistenceMountPath) {
		if _, ok := p.found[TagPersistenceDev]; !ok {
			p.problem(mount, "set without "+TagPersistenceDev, "name the data volume's device, e.g. /dev/sdf")
		} else if p.ok(TagPersistenceDev) && len(c.PersistenceMountPaths) != len(c.PersistenceDevs) {
			// Each device is mounted at its own path, paired by position: a list of another
			// length would leave a volume without a path or a path without a volume.
			p.problem(mount, fmt.Sprintf("lists %d mount path(s) for the %d device(s) of %s",
				len(c.PersistenceMountPaths), len(c.PersistenceDevs), p.setting(TagPersistenceDev)),
				"give one mount path per device, in the same order, e.g. /data,/log for /dev/sdf,/dev/sdg")
		}
	}
	if p.ok(TagGuaranteeLivingMins, TagBufferMins) && c.GuaranteeLiving > 0 && c.Buffer >= c.GuaranteeLiving {
		if b, ok := p.used[TagBufferMins]; ok {
			p.problem(b, "must be less than "+p.setting(TagGuaranteeLivingMins), "")
		} else {
			p.problem(p.used[TagGuaranteeLivingMins], "must be more than "+p.setting(TagBufferMins), "")
		}
	}
	if p.ok(TagGuaranteeLivingMins, TagInstanceDurationHours) && c.GuaranteeLiving > 0 &&
		c.InstanceDuration > 0 && c.GuaranteeLiving > c.InstanceDuration {
		p.problem(p.used[TagGuaranteeLivingMins], "longer than "+p.setting(TagInstanceDurationHours), "")
	}
	if p.ok(TagBufferMins, TagInstanceDurationHours) && c.InstanceDuration > 0 && c.Buffer >= c.InstanceDuration {
		if b, ok := p.used[TagBufferMins]; ok {
			p.problem(b, "must be less than "+p.setting(TagInstanceDurationHours), "")
		} else {
			p.problem(p.used[TagInstanceDurationHours], "must be more than "+p.setting(TagBufferMins), "")
		}
	}
	if p.ok(TagOnlyODRep, TagEnableODFallback) && c.OnlyOD && !c.ODFallback {
		p.problem(p.used[TagOnlyODRep], "contradicts "+p.setting(TagEnableODFallback),
			"on-demand-only replacement needs on-demand fallback enabled")
	}
}

// Tags renders the configuration as tags: spotmax:group (when Group is not
// empty) and every setting that differs from its default, in Defs order,
// with the alternative types as spotmax:alt1 … spotmax:altN and each tag's
// PropagateAtLaunch. Parse(group, c.Tags()) yields c again (less Warnings).
// Values a Config built by hand gets wrong (a negative duration, 90s for a
// minutes tag) are rendered as they are so that Parse reports them.
func (c *Config) Tags() []Tag {
	if c == nil {
		return nil
	}
	var tags []Tag
	for _, d := range defs {
		if d.Key == TagAlt {
			for i, t := range c.AltTypes {
				tags = append(tags, Tag{Key: AltKey(i + 1), Value: t, PropagateAtLaunch: d.Propagate})
			}
			continue
		}
		v := c.render(d)
		if v == "" || v == d.Default {
			continue
		}
		tags = append(tags, Tag{Key: d.Key, Value: v, PropagateAtLaunch: d.Propagate})
	}
	return tags
}

// Validate checks a Config built in code by the rules Parse applies to tags;
// the error is a *ValidationError naming c.Group.
func (c *Config) Validate() error {
	if c == nil {
		return &ValidationError{Problems: []Problem{{Reason: "no configuration"}}}
	}
	_, err := Parse(c.Group, c.Tags())
	return err
}

// ProactiveDeadline returns the age at which an instance must be replaced:
// gurantee_living_mins − buffer_mins, bounded by instance_duration_hours −
// buffer_mins when that is set; 0 when neither is set (no proactive
// rotation). It does not look at Preaction; callers decide whether
// is_enable_preaction=false disables rotation.
func (c *Config) ProactiveDeadline() time.Duration {
	if c == nil {
		return 0
	}
	var d time.Duration
	if c.GuaranteeLiving > 0 {
		d = c.GuaranteeLiving - c.Buffer
	}
	if c.InstanceDuration > 0 {
		if m := c.InstanceDuration - c.Buffer; d <= 0 || m < d {
			d = m
		}
	}
	return max(d, 0)
}

// Summary describes the configuration on one line for listings, e.g.
// "data /dev/sdf→/data, consul :8500, k8s, lifetime 50m (buffer 1m), od-fallback, alts m5.large,m5a.large".
func (c *Config) Summary() string {
	if c == nil {
		return ""
	}
	var parts []string
	if c.Ignore {
		parts = append(parts, "ignored")
	}
	if dd := c.DataDevices(); len(dd) > 0 {
		var each []string
		for _, d := range dd {
			s := d.Device
			if d.MountPath != "" {
				s += "→" + d.MountPath
			}
			each = append(each, s)
		}
		parts = append(parts, "data "+strings.Join(each, " "))
	}
	if c.ConsulPort != 0 {
		parts = append(parts, "consul :"+strconv.Itoa(c.ConsulPort))
	}
	if c.K8sConfigFilePath != "" {
		parts = append(parts, "k8s")
	}
	if c.GuaranteeLiving > 0 {
		parts = append(parts, "lifetime "+ShortDuration(c.GuaranteeLiving)+" (buffer "+ShortDuration(c.Buffer)+")")
	}
	if c.InstanceDuration > 0 {
		parts = append(parts, "max life "+ShortDuration(c.InstanceDuration))
	}
	switch {
	case c.OnlyOD:
		parts = append(parts, "od-only")
	case c.ODFallback:
		parts = append(parts, "od-fallback")
	default:
		parts = append(parts, "spot-only")
	}
	if len(c.AltTypes) > 0 {
		parts = append(parts, "alts "+strings.Join(c.AltTypes, ","))
	}
	if !c.Preaction {
		parts = append(parts, "no-preaction")
	}
	if c.HandleRebalanceEvent {
		parts = append(parts, "rebalance-events")
	}
	if c.AZRebalance != "" {
		parts = append(parts, "az-rebalance "+c.AZRebalance)
	}
	if c.WarmPoolFirst {
		parts = append(parts, "warm-pool-first")
	}
	return strings.Join(parts, ", ")
}

// DataDevice is one data volume's device (an entry of spotmax:persistence_dev)
// and where the agent mounts it (the matching entry of
// spotmax:persistence_mount_path; "" when the group has none).
type DataDevice struct {
	Device    string `json:"device"`
	MountPath string `json:"mount_path,omitempty"`
}

// DataDevices returns the group's data devices with their mount paths, in the
// order of spotmax:persistence_dev; nil when the group keeps no data volume.
// A valid configuration has as many mount paths as devices, or none.
func (c *Config) DataDevices() []DataDevice {
	if c == nil || len(c.PersistenceDevs) == 0 {
		return nil
	}
	out := make([]DataDevice, len(c.PersistenceDevs))
	for i, d := range c.PersistenceDevs {
		out[i].Device = d
		if i < len(c.PersistenceMountPaths) {
			out[i].MountPath = c.PersistenceMountPaths[i]
		}
	}
	return out
}

// DataDevice returns the entry of DataDevices at device dev (compared with
// SameDevice), and whether there is one.
func (c *Config) DataDevice(dev string) (DataDevice, bool) {
	for _, d := range c.DataDevices() {
		if SameDevice(d.Device, dev) {
			return d, true
		}
	}
	return DataDevice{}, false
}

// HasDataVolume reports whether the group keeps at least one data volume.
func (c *Config) HasDataVolume() bool { return c != nil && len(c.PersistenceDevs) > 0 }

// ShortDuration renders a duration without its zero tail: 50m0s as 50m, 1h0m0s as 1h; 2m30s
// and 1.5s stay. Configuration summaries and the CLI's tables use it.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
