// Package groupconfig owns the spotmax:* Auto Scaling group tags: their
// keys, value types, defaults, which of them propagate to instances at
// launch, parsing and validating a group's tags into a typed Config,
// rendering a Config back to tags, diffing tag sets and "did you mean" hints
// for misspelt keys.
//
// It is the only place in spotmax that spells a spotmax: tag key or knows a
// default; everything else uses the Tag* constants, Defs and Config. The progress tags under
// spotmax:state: are in state.go, and the codec of the agent's relayed notice in notice.go.
package groupconfig

import (
	"slices"
	"strconv"
	"strings"
)

// Prefix is the prefix of every spotmax tag key. Tags without it are not
// spotmax's and are ignored.
const Prefix = "spotmax:"

// Tag keys, in the order of the tag table (docs/tags.md).
const (
	// TagGroup marks a managed group; its value is the group name.
	// Propagated to instances so the agent can tell it runs in a spotmax group.
	TagGroup = "spotmax:group"
	// TagIgnore set to true makes spotmax leave the group alone.
	TagIgnore = "spotmax:ignore_tag"
	// TagPersistenceDev is the device name of the data volume kept across
	// replacements, e.g. /dev/sdf, or a comma list of devices, one data
	// volume each (Config.DataDevices).
	TagPersistenceDev = "spotmax:persistence_dev"
	// TagPersistenceMountPath is where the agent mounts the data volume (a
	// comma list matching TagPersistenceDev's). Propagated to instances so the agent can read it from IMDS.
	TagPersistenceMountPath = "spotmax:persistence_mount_path"
	// TagDetachingDelaySeconds is the wait before the old instance is
	// detached from the group.
	TagDetachingDelaySeconds = "spotmax:detaching_delay_seconds"
	// TagConsulPort is the Consul agent HTTP port on instances; setting it
	// enables Consul deregistration.
	TagConsulPort = "spotmax:consul_port"
	// TagSDDelayDetachSecs is the time allowed for service-discovery removal
	// before detaching.
	TagSDDelayDetachSecs = "spotmax:sd_delay_detach_secs"
	// TagK8sConfigFilePath is the kubeconfig path on the host running
	// spotmax; setting it enables Kubernetes drain.
	TagK8sConfigFilePath = "spotmax:k8s_config_file_path"
	// TagK8sNodeDrainGraceSecond is the pod termination grace / drain budget.
	TagK8sNodeDrainGraceSecond = "spotmax:k8s_node_drain_grace_second"
	// TagK8sDelayDrainingSecs is the delay before draining on an interruption.
	TagK8sDelayDrainingSecs = "spotmax:k8s_delay_draining_secs"
	// TagPreactionK8sDelayDrainingSecs is the delay before draining in a
	// proactive replacement.
	TagPreactionK8sDelayDrainingSecs = "spotmax:preaction_k8s_delay_draining_secs"
	// TagInstanceDurationHours is the maximum life of an instance.
	TagInstanceDurationHours = "spotmax:instance_duration_hours"
	// TagGuaranteeLivingMins is the age in minutes after which an instance is
	// replaced (0 = off). The misspelling is the original product's and IS
	// the tag; TagGuaranteeLivingMinsAlias is accepted too, and when both are
	// set this spelling wins.
	TagGuaranteeLivingMins = "spotmax:gurantee_living_mins"
	// TagGuaranteeLivingMinsAlias is the correctly spelt alias of
	// TagGuaranteeLivingMins, accepted on input and never written.
	TagGuaranteeLivingMinsAlias = "spotmax:guarantee_living_mins"
	// TagBufferMins is the safety margin subtracted from the guarantee.
	TagBufferMins = "spotmax:buffer_mins"
	// TagEnableODFallback enables on-demand instances when spot cannot be had.
	TagEnableODFallback = "spotmax:is_enable_od_fallback"
	// TagOnlyODRep makes replacements on-demand only.
	TagOnlyODRep = "spotmax:is_only_od_rep"
	// TagODLeastLiveMins is how long an on-demand stand-in lives at least
	// before it is swapped back to spot.
	TagODLeastLiveMins = "spotmax:od_least_live_mins"
	// TagAlt is the common prefix of the alternative instance type tags
	// spotmax:alt1 … spotmax:altN; use AltKey and ParseAltKey for the
	// numbered keys. "spotmax:alt" alone is not a valid tag.
	TagAlt = "spotmax:alt"
	// TagPreferMultipleTypes makes spotmax try alternative spot types before
	// on-demand.
	TagPreferMultipleTypes = "spotmax:is_prefer_multiple_types"
	// TagAltLeastLiveMins is how long an alternative-type instance lives at
	// least before it is swapped back.
	TagAltLeastLiveMins = "spotmax:alt_least_live_mins"
	// TagMaxNumOfTerminatedOneTime is the batch size of proactive replacements.
	TagMaxNumOfTerminatedOneTime = "spotmax:max_num_of_terminated_one_time"
	// TagEnablePreaction enables proactive replacement (before interruptions).
	TagEnablePreaction = "spotmax:is_enable_preaction"
	// TagPreactionDetachDelaySeconds is the detach delay in proactive
	// replacements.
	TagPreactionDetachDelaySeconds = "spotmax:preaction_detach_delay_seconds"
	// TagPreactionTerminationDelaySeconds is the interval between proactive
	// terminations.
	TagPreactionTerminationDelaySeconds = "spotmax:preaction_termination_delay_seconds"
	// TagHandleRebalanceEvent makes spotmax act on EC2 rebalance
	// recommendations.
	TagHandleRebalanceEvent = "spotmax:is_to_handle_rebalance_event"
	// TagHandleScalingFailure makes spotmax act on group launch failures.
	TagHandleScalingFailure = "spotmax:is_to_handle_scaling_failure"
	// TagAZRebalance selects the AZ placement of new instances.
	TagAZRebalance = "spotmax:az_rebalance"

	// The original product's tags beyond the core tag table (issue 12): accepted so that a group
	// migrated from it is not invalid.

	// TagWarmPoolFirst is the original product's "take a warmed instance from the group's warm
	// pool first": a replacement takes one when the group has an Auto Scaling warm pool with a
	// warmed instance in the data volume's AZ (pkg/replace, warm.go).
	TagWarmPoolFirst = "spotmax:is_warm_pool_first"
	// TagWarmPool is the common prefix of the original product's warm-pool settings
	// (spotmax:warm_pool_<name>); spotmax reads the group's warm pool from Auto Scaling instead.
	TagWarmPool = "spotmax:warm_pool_"
	// TagPodDelayDetachingSecs is the wait after the Kubernetes drain before the old instance is
	// detached, so evicted pods are running elsewhere before the node leaves its load balancers.
	TagPodDelayDetachingSecs = "spotmax:pod_delay_detaching_secs"
	// TagK8sNodeDrainOption is the original product's drain option string; not supported.
	TagK8sNodeDrainOption = "spotmax:k8s_node_drain_option"

	// TagVolumeRetentionHours bounds how long a pooled data volume attached to
	// nothing is kept before spotmax deletes it; absent or 0 = kept forever.
	TagVolumeRetentionHours = "spotmax:volume_retention_hours"

	// TagCrossAZMove lets a replacement move the data volume to another Availability Zone
	// through a snapshot when its own AZ has no capacity for any launch option (opt-in).
	TagCrossAZMove = "spotmax:cross_az_move"
)

// MaxGuaranteeLivingMins is the original product's documented maximum of
// spotmax:gurantee_living_mins.
const MaxGuaranteeLivingMins = 60

// AZRebalanceOptimize is the only accepted value of TagAZRebalance: put new
// instances in the Availability Zone with the fewest.
const AZRebalanceOptimize = "optimize"

// Tag is one ASG tag as spotmax sees it.
type Tag struct {
	Key               string `json:"key"`
	Value             string `json:"value"`
	PropagateAtLaunch bool   `json:"propagate_at_launch"`
}

// Def describes one tag.
type Def struct {
	// Key is the tag key, e.g. "spotmax:detaching_delay_seconds". For the
	// numbered alternative types it is TagAlt and Pattern says more.
	Key string
	// Kind is the type of the value.
	Kind Kind
	// Default is the value that applies when the tag is absent, in canonical
	// form; "" when the tag has no default (the setting is off).
	Default string
	// Propagate is the PropagateAtLaunch the tag is written with: true for
	// the tags the agent reads from the instance.
	Propagate bool
	// Flag is the name of the `spotmax group tag` flag that sets the tag.
	Flag string
	// Help is one line for --help and docs.
	Help string
	// Enum lists the accepted values of a KindEnum tag.
	Enum []string
	// Aliases are other keys accepted for this tag on input; they are never
	// written.
	Aliases []string
	// Pattern is the shape of the keys of a numbered tag ("spotmax:alt<N>",
	// N ≥ 1) or of a family of tags ("spotmax:warm_pool_<name>"); empty for
	// the others.
	Pattern string
	// Max is the largest accepted value of an int or time tag, in its unit;
	// 0 = no bound beyond the type's.
	Max int64
	// Unsupported, when set, says why spotmax accepts the tag but does not
	// act on it: Parse checks the value and adds a warning naming the tag,
	// never a problem, so the group stays valid.
	Unsupported string

	// field returns a pointer to the Config field that the tag's value sets (Parse, Default)
	// and is rendered from (Tags): a *string, *[]string, *bool, *int or *time.Duration as its
	// Kind says (TestEveryTagDeclaredOnce checks it). nil for an Unsupported tag, which sets
	// nothing. The numbered alternative types' AltTypes is filled by the parser in order.
	field func(*Config) any
}

// defs is the tag table: each row is the one declaration of a tag — key, value type and its
// validation (Kind, Enum, Max), default, propagation, flag, doc text and the Config field it
// sets. Parse, Default, Tags, Lookup, the `spotmax group tag` flags and docs/tags.md
// (Markdown) all loop over it; the Tag* constants above are the keys' names for other
// packages, and a test fails when a constant, a row or a Config field is added without the
// others (TestEveryTagDeclaredOnce). Adding a tag: docs/architecture.md, "Adding a group tag".
var defs = []Def{
	{Key: TagGroup, Kind: KindString, Propagate: true, Flag: "group",
		field: func(c *Config) any { return &c.Group },
		Help:  "marks a managed group: spotmax acts only on groups carrying it; the value is the group name (instances carry it too)"},
	{Key: TagIgnore, Kind: KindBool, Default: "false", Flag: "ignore",
		field: func(c *Config) any { return &c.Ignore },
		Help:  "true: spotmax leaves this group alone"},
	{Key: TagPersistenceDev, Kind: KindDeviceList, Flag: "persistence-dev",
		field: func(c *Config) any { return &c.PersistenceDevs },
		Help:  "device name of the data volume kept across replacements, e.g. /dev/sdf, or a comma list of devices, one data volume each (at most 8, e.g. /dev/sdf,/dev/sdg for data and log); each moves with its instance's replacement and waits in the group's pool per device; never the root device (/dev/sda1, /dev/xvda or the instances' own, checked when tagged and before each replacement) nor one device twice"},
	{Key: TagPersistenceMountPath, Kind: KindPathList, Propagate: true, Flag: "persistence-mount-path",
		field: func(c *Config) any { return &c.PersistenceMountPaths },
		Help:  "where the agent mounts the data volume, e.g. /data (needs persistence_dev); with several devices a comma list of as many paths in the same order, e.g. /data,/log, none twice and none inside another (each volume is mounted and released on its own)"},
	{Key: TagDetachingDelaySeconds, Kind: KindSeconds, Default: "30", Flag: "detaching-delay",
		field: func(c *Config) any { return &c.DetachingDelay },
		Help:  "wait before the old instance is detached from the group"},
	{Key: TagConsulPort, Kind: KindPort, Flag: "consul-port",
		field: func(c *Config) any { return &c.ConsulPort },
		Help:  "Consul agent HTTP port on instances, e.g. 8500; enables Consul deregistration"},
	{Key: TagSDDelayDetachSecs, Kind: KindSeconds, Default: "30", Flag: "sd-delay-detach",
		field: func(c *Config) any { return &c.SDDelayDetach },
		Help:  "time allowed for service-discovery removal before detaching"},
	{Key: TagK8sConfigFilePath, Kind: KindPath, Flag: "k8s-config",
		field: func(c *Config) any { return &c.K8sConfigFilePath },
		Help:  "kubeconfig path on the host running spotmax; enables Kubernetes drain"},
	{Key: TagK8sNodeDrainGraceSecond, Kind: KindSeconds, Default: "300", Flag: "k8s-drain-grace",
		field: func(c *Config) any { return &c.K8sNodeDrainGrace },
		Help:  "pod termination grace / drain budget"},
	{Key: TagK8sDelayDrainingSecs, Kind: KindSeconds, Default: "90", Flag: "k8s-delay-draining",
		field: func(c *Config) any { return &c.K8sDelayDraining },
		Help:  "delay before draining on an interruption (new node getting ready)"},
	{Key: TagPreactionK8sDelayDrainingSecs, Kind: KindSeconds, Default: "240", Flag: "preaction-k8s-delay-draining",
		field: func(c *Config) any { return &c.PreactionK8sDelayDraining },
		Help:  "delay before draining in a proactive replacement"},
	{Key: TagInstanceDurationHours, Kind: KindHours, Flag: "instance-duration-hours",
		field: func(c *Config) any { return &c.InstanceDuration },
		Help:  "maximum life of an instance (0 or absent = unlimited)"},
	{Key: TagGuaranteeLivingMins, Kind: KindMinutes, Default: "0", Flag: "guarantee-living-mins",
		field:   func(c *Config) any { return &c.GuaranteeLiving },
		Aliases: []string{TagGuaranteeLivingMinsAlias}, Max: MaxGuaranteeLivingMins,
		Help: "after this many minutes the instance is replaced (0 = off, at most 60); original spelling, " +
			TagGuaranteeLivingMinsAlias + " is accepted too and loses when both are set"},
	{Key: TagBufferMins, Kind: KindMinutes, Default: "1", Flag: "buffer-mins",
		field: func(c *Config) any { return &c.Buffer },
		Help:  "safety margin subtracted from the guarantee and the maximum life"},
	{Key: TagEnableODFallback, Kind: KindBool, Default: "true", Flag: "od-fallback",
		field: func(c *Config) any { return &c.ODFallback },
		Help:  "use on-demand when spot cannot be had"},
	{Key: TagOnlyODRep, Kind: KindBool, Default: "false", Flag: "only-od",
		field: func(c *Config) any { return &c.OnlyOD },
		Help:  "replace with on-demand only (needs od-fallback)"},
	{Key: TagODLeastLiveMins, Kind: KindMinutes, Default: "15", Flag: "od-least-live-mins",
		field: func(c *Config) any { return &c.ODLeastLive },
		Help:  "an on-demand stand-in lives at least this long before it is swapped back to spot"},
	{Key: TagAlt, Kind: KindInstanceType, Flag: "alt", Pattern: TagAlt + "<N>",
		field: func(c *Config) any { return &c.AltTypes },
		Help:  "alternative instance types (tags spotmax:alt1 … spotmax:altN, tried in order; the flag takes a comma list); checked against EC2's offerings in the group's Availability Zones"},
	{Key: TagPreferMultipleTypes, Kind: KindBool, Default: "true", Flag: "prefer-multiple-types",
		field: func(c *Config) any { return &c.PreferMultipleTypes },
		Help:  "try alternative spot types before on-demand"},
	{Key: TagAltLeastLiveMins, Kind: KindMinutes, Default: "15", Flag: "alt-least-live-mins",
		field: func(c *Config) any { return &c.AltLeastLive },
		Help:  "an alternative-type instance lives at least this long before it is swapped back"},
	{Key: TagMaxNumOfTerminatedOneTime, Kind: KindInt, Default: "1", Flag: "max-terminated-one-time",
		field: func(c *Config) any { return &c.MaxTerminatedOneTime },
		Help:  "batch size of proactive replacements (at least 1)"},
	{Key: TagEnablePreaction, Kind: KindBool, Default: "true", Flag: "preaction",
		field: func(c *Config) any { return &c.Preaction },
		Help:  "proactive replacement (before interruptions)"},
	{Key: TagPreactionDetachDelaySeconds, Kind: KindSeconds, Default: "30", Flag: "preaction-detach-delay",
		field: func(c *Config) any { return &c.PreactionDetachDelay },
		Help:  "detach delay in proactive replacements"},
	{Key: TagPreactionTerminationDelaySeconds, Kind: KindSeconds, Default: "300", Flag: "preaction-termination-delay",
		field: func(c *Config) any { return &c.PreactionTerminationDelay },
		Help:  "interval between proactive terminations"},
	{Key: TagHandleRebalanceEvent, Kind: KindBool, Default: "false", Flag: "handle-rebalance",
		field: func(c *Config) any { return &c.HandleRebalanceEvent },
		Help:  "act on EC2 rebalance recommendations"},
	{Key: TagHandleScalingFailure, Kind: KindBool, Default: "true", Flag: "handle-scaling-failure",
		field: func(c *Config) any { return &c.HandleScalingFailure },
		Help:  "act on group launch failures (e.g. no spot capacity)"},
	{Key: TagAZRebalance, Kind: KindEnum, Enum: []string{AZRebalanceOptimize}, Flag: "az-rebalance",
		field: func(c *Config) any { return &c.AZRebalance },
		Help:  `"optimize": a replacement without a data volume goes to the AZ with the fewest members; absent: to the old instance's AZ first (other AZs only for capacity). A data volume always pins its AZ`},
	{Key: TagWarmPoolFirst, Kind: KindBool, Default: "false", Flag: "warm-pool-first",
		field: func(c *Config) any { return &c.WarmPoolFirst },
		Help:  "a replacement (not a revert) takes a warmed instance from the group's Auto Scaling warm pool first: the old instance is detached without decrementing the desired capacity, the group starts a warmed instance in its place, and the data volume moves to it when it is in the volume's AZ; otherwise, or when none arrives in time, the cold launch"},
	{Key: TagWarmPool, Kind: KindString, Pattern: TagWarmPool + "<name>",
		Unsupported: "spotmax does not manage warm pools; a group's own warm pool (PutWarmPool) serves its scale-outs",
		Help:        "the original product's warm-pool settings: accepted with a warning, not supported"},
	{Key: TagPodDelayDetachingSecs, Kind: KindSeconds, Default: "0", Flag: "pod-delay-detaching",
		field: func(c *Config) any { return &c.PodDelayDetaching },
		Help:  "wait after the Kubernetes drain before the old instance is detached (needs k8s_config_file_path)"},
	{Key: TagK8sNodeDrainOption, Kind: KindString,
		Unsupported: "spotmax drains with fixed options (evict, respect PodDisruptionBudgets, delete emptyDir data, ignore DaemonSets, grace k8s_node_drain_grace_second)",
		Help:        "the original product's drain option string: accepted with a warning, not supported"},
	{Key: TagVolumeRetentionHours, Kind: KindHours, Flag: "volume-retention-hours",
		field: func(c *Config) any { return &c.VolumeRetention },
		Help:  "a pooled data volume attached to nothing for this long is deleted (0 or absent = kept forever: deleting data is never a default)"},
	{Key: TagCrossAZMove, Kind: KindBool, Default: "false", Flag: "cross-az-move",
		field: func(c *Config) any { return &c.CrossAZMove },
		Help:  "when the data volume's AZ has no capacity for any launch option, launch in another AZ and move the volume there through a snapshot (the source volume is kept, tagged superseded)"},
}

// byKey maps every accepted key (canonical and alias) and flag to its
// index in defs.
var byKey, byFlag = func() (map[string]int, map[string]int) {
	k, f := map[string]int{}, map[string]int{}
	for i, d := range defs {
		k[d.Key] = i
		for _, a := range d.Aliases {
			k[a] = i
		}
		if d.Flag != "" {
			f[d.Flag] = i
		}
	}
	return k, f
}()

func (d Def) clone() Def {
	d.Enum = slices.Clone(d.Enum)
	d.Aliases = slices.Clone(d.Aliases)
	return d
}

// Defs returns every tag in the order of the tag table (docs/tags.md). The numbered
// alternative types are one Def with Key TagAlt. The result is a copy.
func Defs() []Def {
	out := make([]Def, len(defs))
	for i, d := range defs {
		out[i] = d.clone()
	}
	return out
}

// Lookup returns the Def of a tag key. It also finds aliases (returning the
// Def of the canonical key) and the numbered keys spotmax:alt<N> (returning
// the TagAlt Def).
func Lookup(key string) (Def, bool) {
	if i, ok := byKey[key]; ok {
		return defs[i].clone(), true
	}
	if _, ok := ParseAltKey(key); ok {
		return defs[byKey[TagAlt]].clone(), true
	}
	if isWarmPoolKey(key) {
		return defs[byKey[TagWarmPool]].clone(), true
	}
	return Def{}, false
}

// isWarmPoolKey reports whether key is one of the original product's
// spotmax:warm_pool_<name> tags.
func isWarmPoolKey(key string) bool {
	name, ok := strings.CutPrefix(key, TagWarmPool)
	return ok && name != ""
}

// LookupFlag returns the Def whose `spotmax group tag` flag is flag.
func LookupFlag(flag string) (Def, bool) {
	if i, ok := byFlag[flag]; ok {
		return defs[i].clone(), true
	}
	return Def{}, false
}

// AltKey returns the key of the n-th alternative instance type, n ≥ 1.
func AltKey(n int) string {
	return TagAlt + strconv.Itoa(n)
}

// ParseAltKey reports whether key is spotmax:alt<N> with N ≥ 1 written
// without leading zeros, and returns N.
func ParseAltKey(key string) (int, bool) {
	rest, ok := strings.CutPrefix(key, TagAlt)
	if !ok || rest == "" || rest[0] == '0' || !allDigits(rest) {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil {
		return 0, false
	}
	return n, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
