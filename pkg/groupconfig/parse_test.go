package groupconfig_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

const group = "web"

func tag(k, v string) groupconfig.Tag { return groupconfig.Tag{Key: k, Value: v} }

// ptag is a tag propagated at launch.
func ptag(k, v string) groupconfig.Tag {
	return groupconfig.Tag{Key: k, Value: v, PropagateAtLaunch: true}
}

// wantDefault is the tag table's defaults (docs/tags.md) written out field by field.
func wantDefault() *groupconfig.Config {
	return &groupconfig.Config{
		Group:                     group,
		Ignore:                    false,
		PersistenceDevs:           nil,
		PersistenceMountPaths:     nil,
		DetachingDelay:            30 * time.Second,
		ConsulPort:                0,
		SDDelayDetach:             30 * time.Second,
		K8sConfigFilePath:         "",
		K8sNodeDrainGrace:         300 * time.Second,
		K8sDelayDraining:          90 * time.Second,
		PreactionK8sDelayDraining: 240 * time.Second,
		InstanceDuration:          0,
		GuaranteeLiving:           0,
		Buffer:                    1 * time.Minute,
		ODFallback:                true,
		OnlyOD:                    false,
		ODLeastLive:               15 * time.Minute,
		AltTypes:                  nil,
		PreferMultipleTypes:       true,
		AltLeastLive:              15 * time.Minute,
		MaxTerminatedOneTime:      1,
		Preaction:                 true,
		PreactionDetachDelay:      30 * time.Second,
		PreactionTerminationDelay: 300 * time.Second,
		HandleRebalanceEvent:      false,
		HandleScalingFailure:      true,
		AZRebalance:               "",
	}
}

func TestDefault(t *testing.T) {
	if diff := cmp.Diff(wantDefault(), groupconfig.Default(group)); diff != "" {
		t.Errorf("Default mismatch (-want +got):\n%s", diff)
	}
	got, err := groupconfig.Parse(group, nil)
	if err != nil {
		t.Fatalf("Parse(no tags): %v", err)
	}
	if diff := cmp.Diff(wantDefault(), got); diff != "" {
		t.Errorf("Parse(no tags) mismatch (-want +got):\n%s", diff)
	}
}

type badValue struct {
	value  string
	reason string // substring of Problem.Reason
}

type tagCase struct {
	key     string
	valid   string
	extra   []groupconfig.Tag // tags the valid value needs besides it
	want    func(c *groupconfig.Config)
	invalid []badValue
}

// tagCases has one entry per tag (TestTagCasesCoverEveryTag checks that).
var tagCases = []tagCase{
	{key: groupconfig.TagGroup, valid: "web-prod",
		want:    func(c *groupconfig.Config) { c.Group = "web-prod" },
		invalid: []badValue{{"", "must not be empty"}}},
	{key: groupconfig.TagIgnore, valid: "true",
		want:    func(c *groupconfig.Config) { c.Ignore = true },
		invalid: []badValue{{"yes", "not a boolean"}, {"", "not a boolean"}, {" true", "not a boolean"}}},
	{key: groupconfig.TagPersistenceDev, valid: "/dev/xvdf",
		want: func(c *groupconfig.Config) { c.PersistenceDevs = []string{"/dev/xvdf"} },
		invalid: []badValue{{"sdf", "not a device name"}, {"/dev/", "not a device name"},
			{"/dev/sd f", "not a device name"}, {"/mnt/sdf", "not a device name"}, {"/dev/../etc", "not a device name"}}},
	{key: groupconfig.TagPersistenceMountPath, valid: "/data",
		extra: []groupconfig.Tag{tag(groupconfig.TagPersistenceDev, "/dev/sdf")},
		want: func(c *groupconfig.Config) {
			c.PersistenceDevs, c.PersistenceMountPaths = []string{"/dev/sdf"}, []string{"/data"}
		},
		invalid: []badValue{{"data", "not an absolute path"}, {"/data/", "not a clean path"}, {"/", "root"},
			{"/etc", "system directory"}, {"/da\x00ta", "control characters"}, {"", "empty"}}},
	{key: groupconfig.TagDetachingDelaySeconds, valid: "80",
		want: func(c *groupconfig.Config) { c.DetachingDelay = 80 * time.Second },
		invalid: []badValue{{"abc", "not a whole number of seconds"}, {"-5", "negative"}, {"80s", "not a whole number"},
			{"1.5", "not a whole number"}, {"", "not a whole number"}, {"+5", "not a whole number"},
			{"99999999999999999999", "too large"}, {"9999999999999", "too large"}}},
	{key: groupconfig.TagConsulPort, valid: "8500",
		want: func(c *groupconfig.Config) { c.ConsulPort = 8500 },
		invalid: []badValue{{"0", "not a port"}, {"65536", "not a port"}, {"http", "not a port"},
			{":8500", "not a port"}, {"-1", "not a port"}}},
	{key: groupconfig.TagSDDelayDetachSecs, valid: "45",
		want:    func(c *groupconfig.Config) { c.SDDelayDetach = 45 * time.Second },
		invalid: []badValue{{"x", "not a whole number of seconds"}}},
	{key: groupconfig.TagK8sConfigFilePath, valid: "/data/spotmax/k8sconfig",
		want:    func(c *groupconfig.Config) { c.K8sConfigFilePath = "/data/spotmax/k8sconfig" },
		invalid: []badValue{{"k8sconfig", "not an absolute path"}, {"~/.kube/config", "not an absolute path"}, {"/", "root"}}},
	{key: groupconfig.TagK8sNodeDrainGraceSecond, valid: "600",
		want:    func(c *groupconfig.Config) { c.K8sNodeDrainGrace = 600 * time.Second },
		invalid: []badValue{{"10m", "not a whole number of seconds"}}},
	{key: groupconfig.TagK8sDelayDrainingSecs, valid: "0",
		want:    func(c *groupconfig.Config) { c.K8sDelayDraining = 0 },
		invalid: []badValue{{"-1", "negative"}}},
	{key: groupconfig.TagPreactionK8sDelayDrainingSecs, valid: "120",
		want:    func(c *groupconfig.Config) { c.PreactionK8sDelayDraining = 120 * time.Second },
		invalid: []badValue{{"two minutes", "not a whole number of seconds"}}},
	{key: groupconfig.TagInstanceDurationHours, valid: "2",
		want: func(c *groupconfig.Config) { c.InstanceDuration = 2 * time.Hour },
		invalid: []badValue{{"1.5", "not a whole number of hours"}, {"-1", "negative"}, {"2h", "not a whole number of hours"},
			{"9999999999", "too large"}}},
	{key: groupconfig.TagGuaranteeLivingMins, valid: "50",
		want: func(c *groupconfig.Config) { c.GuaranteeLiving = 50 * time.Minute },
		invalid: []badValue{{"fifty", "not a whole number of minutes"}, {"50m", "not a whole number of minutes"},
			{"61", "must be at most 60 minutes"}, {"350", "must be at most 60 minutes"}}},
	{key: groupconfig.TagGuaranteeLivingMinsAlias, valid: "45",
		want:    func(c *groupconfig.Config) { c.GuaranteeLiving = 45 * time.Minute },
		invalid: []badValue{{"x", "not a whole number of minutes"}, {"120", "must be at most 60 minutes"}}},
	{key: groupconfig.TagBufferMins, valid: "0",
		want:    func(c *groupconfig.Config) { c.Buffer = 0 },
		invalid: []badValue{{"-1", "negative"}, {"1m", "not a whole number of minutes"}}},
	{key: groupconfig.TagEnableODFallback, valid: "false",
		want:    func(c *groupconfig.Config) { c.ODFallback = false },
		invalid: []badValue{{"nope", "not a boolean"}}},
	{key: groupconfig.TagOnlyODRep, valid: "true",
		want:    func(c *groupconfig.Config) { c.OnlyOD = true },
		invalid: []badValue{{"2", "not a boolean"}}},
	{key: groupconfig.TagODLeastLiveMins, valid: "30",
		want:    func(c *groupconfig.Config) { c.ODLeastLive = 30 * time.Minute },
		invalid: []badValue{{"", "not a whole number of minutes"}}},
	{key: groupconfig.AltKey(1), valid: "m5.large",
		want: func(c *groupconfig.Config) { c.AltTypes = []string{"m5.large"} },
		invalid: []badValue{{"m5", "not an instance type"}, {"M5.large", "not an instance type"},
			{"m5.large,c5.large", "one instance type per tag"}, {"large.medium", "not an instance type"},
			{"", "not an instance type"}}},
	{key: groupconfig.TagPreferMultipleTypes, valid: "false",
		want:    func(c *groupconfig.Config) { c.PreferMultipleTypes = false },
		invalid: []badValue{{"y", "not a boolean"}}},
	{key: groupconfig.TagAltLeastLiveMins, valid: "5",
		want:    func(c *groupconfig.Config) { c.AltLeastLive = 5 * time.Minute },
		invalid: []badValue{{"5.0", "not a whole number of minutes"}}},
	{key: groupconfig.TagMaxNumOfTerminatedOneTime, valid: "3",
		want: func(c *groupconfig.Config) { c.MaxTerminatedOneTime = 3 },
		invalid: []badValue{{"0", "at least 1"}, {"-1", "negative"}, {"three", "not a whole number"},
			{"99999999999999999999", "too large"}}},
	{key: groupconfig.TagEnablePreaction, valid: "false",
		want:    func(c *groupconfig.Config) { c.Preaction = false },
		invalid: []badValue{{"off", "not a boolean"}}},
	{key: groupconfig.TagPreactionDetachDelaySeconds, valid: "60",
		want:    func(c *groupconfig.Config) { c.PreactionDetachDelay = 60 * time.Second },
		invalid: []badValue{{"1m", "not a whole number of seconds"}}},
	{key: groupconfig.TagPreactionTerminationDelaySeconds, valid: "600",
		want:    func(c *groupconfig.Config) { c.PreactionTerminationDelay = 600 * time.Second },
		invalid: []badValue{{"abc", "not a whole number of seconds"}}},
	{key: groupconfig.TagHandleRebalanceEvent, valid: "true",
		want:    func(c *groupconfig.Config) { c.HandleRebalanceEvent = true },
		invalid: []badValue{{"TRUEE", "not a boolean"}}},
	{key: groupconfig.TagHandleScalingFailure, valid: "false",
		want:    func(c *groupconfig.Config) { c.HandleScalingFailure = false },
		invalid: []badValue{{"no", "not a boolean"}}},
	{key: groupconfig.TagAZRebalance, valid: "optimize",
		want:    func(c *groupconfig.Config) { c.AZRebalance = "optimize" },
		invalid: []badValue{{"balanced", "must be one of: optimize"}, {"Optimize", "must be one of"}}},
	{key: groupconfig.TagWarmPoolFirst, valid: "true",
		want:    func(c *groupconfig.Config) { c.WarmPoolFirst = true },
		invalid: []badValue{{"first", "not a boolean"}}},
	{key: groupconfig.TagPodDelayDetachingSecs, valid: "20",
		want:    func(c *groupconfig.Config) { c.PodDelayDetaching = 20 * time.Second },
		invalid: []badValue{{"-5", "negative"}, {"20s", "not a whole number of seconds"}}},
	// The unsupported tags change nothing but a warning (TestParseUnsupportedTags); a value of
	// the wrong kind is still a problem.
	{key: groupconfig.TagWarmPool + "min_size", valid: "1",
		want:    unsupportedWarning(groupconfig.TagWarmPool+"min_size", groupconfig.TagWarmPool),
		invalid: []badValue{{"", "must not be empty"}}},
	{key: groupconfig.TagK8sNodeDrainOption, valid: "--ignore-daemonsets --delete-emptydir-data",
		want:    unsupportedWarning(groupconfig.TagK8sNodeDrainOption, groupconfig.TagK8sNodeDrainOption),
		invalid: []badValue{{"", "must not be empty"}}},
	{key: groupconfig.TagVolumeRetentionHours, valid: "72",
		want:    func(c *groupconfig.Config) { c.VolumeRetention = 72 * time.Hour },
		invalid: []badValue{{"-1", "negative"}, {"3d", "not a whole number of hours"}}},
	{key: groupconfig.TagCrossAZMove, valid: "true",
		want:    func(c *groupconfig.Config) { c.CrossAZMove = true },
		invalid: []badValue{{"yes please", "not a boolean"}}},
}

// unsupportedWarning is the only effect of an unsupported tag: a warning naming it.
func unsupportedWarning(key, defKey string) func(c *groupconfig.Config) {
	return func(c *groupconfig.Config) {
		d, _ := groupconfig.Lookup(defKey)
		c.Warnings = []string{key + " is not supported by spotmax and is ignored: " + d.Unsupported}
	}
}

// TestParseOriginalProductTags: a group migrated from the original product with its other tags
// stays valid; each unsupported tag is named in a warning, the supported ones take effect.
func TestParseOriginalProductTags(t *testing.T) {
	cfg, err := groupconfig.Parse(group, []groupconfig.Tag{
		ptag(groupconfig.TagGroup, group),
		tag("spotmax:warm_pool_min_size", "2"),
		tag("spotmax:warm_pool_max_prepared_capacity", "4"),
		tag(groupconfig.TagWarmPoolFirst, "true"),
		tag(groupconfig.TagPodDelayDetachingSecs, "15"),
		tag(groupconfig.TagK8sNodeDrainOption, "force"),
		tag(groupconfig.TagK8sConfigFilePath, "/data/spotmax/k8sconfig"),
	})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.PodDelayDetaching != 15*time.Second {
		t.Errorf("PodDelayDetaching = %v; want 15s", cfg.PodDelayDetaching)
	}
	if !cfg.WarmPoolFirst {
		t.Errorf("WarmPoolFirst = false; want true (%s is supported)", groupconfig.TagWarmPoolFirst)
	}
	for _, w := range cfg.Warnings {
		if strings.HasPrefix(w, groupconfig.TagWarmPoolFirst) {
			t.Errorf("warning about the supported %s: %q", groupconfig.TagWarmPoolFirst, w)
		}
	}
	for _, key := range []string{"spotmax:warm_pool_min_size", "spotmax:warm_pool_max_prepared_capacity", groupconfig.TagK8sNodeDrainOption} {
		found := false
		for _, w := range cfg.Warnings {
			if strings.HasPrefix(w, key+" is not supported") {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning names %s: %q", key, cfg.Warnings)
		}
	}
	if len(cfg.Warnings) != 3 {
		t.Errorf("warnings = %q; want 3", cfg.Warnings)
	}
	if _, err := groupconfig.Parse(group, []groupconfig.Tag{tag("spotmax:warm_pool_", "1")}); err == nil {
		t.Errorf("Parse accepted spotmax:warm_pool_ without a name")
	}
}

func TestTagCasesCoverEveryTag(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range tagCases {
		d, ok := groupconfig.Lookup(tc.key)
		if !ok {
			t.Fatalf("tagCases has unknown key %s", tc.key)
		}
		covered[d.Key] = true
	}
	for _, d := range groupconfig.Defs() {
		if !covered[d.Key] {
			t.Errorf("no tagCase for %s", d.Key)
		}
	}
}

func TestParseValidValue(t *testing.T) {
	for _, tc := range tagCases {
		t.Run(tc.key, func(t *testing.T) {
			tags := append([]groupconfig.Tag{ptag(tc.key, tc.valid)}, tc.extra...)
			got, err := groupconfig.Parse(group, tags)
			if err != nil {
				t.Fatalf("Parse(%s=%q): %v", tc.key, tc.valid, err)
			}
			want := wantDefault()
			tc.want(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Parse(%s=%q) mismatch (-want +got):\n%s", tc.key, tc.valid, diff)
			}
		})
	}
}

func TestParseInvalidValue(t *testing.T) {
	for _, tc := range tagCases {
		for _, bad := range tc.invalid {
			t.Run(tc.key+"="+bad.value, func(t *testing.T) {
				tags := append([]groupconfig.Tag{ptag(tc.key, bad.value)}, tc.extra...)
				got, err := groupconfig.Parse(group, tags)
				if got != nil {
					t.Errorf("Parse returned a config with an error: %+v", got)
				}
				var verr *groupconfig.ValidationError
				if !errors.As(err, &verr) {
					t.Fatalf("Parse(%s=%q) error = %v (%T); want *ValidationError", tc.key, bad.value, err, err)
				}
				want := groupconfig.Problem{Group: group, Tag: tc.key, Value: bad.value}
				found := false
				for _, p := range verr.Problems {
					if p.Group == want.Group && p.Tag == want.Tag && p.Value == want.Value && strings.Contains(p.Reason, bad.reason) {
						found = true
					}
				}
				if !found {
					t.Errorf("Parse(%s=%q) problems = %+v; want one for %+v with reason containing %q", tc.key, bad.value, verr.Problems, want, bad.reason)
				}
				msg := err.Error()
				for _, s := range []string{`group "web"`, tc.key, strconv.Quote(bad.value)} {
					if !strings.Contains(msg, s) {
						t.Errorf("error %q does not contain %q", msg, s)
					}
				}
			})
		}
	}
}

func TestParseHints(t *testing.T) {
	tests := []struct {
		tags []groupconfig.Tag
		want string // the whole message
	}{
		{[]groupconfig.Tag{tag(groupconfig.TagDetachingDelaySeconds, "abc")},
			`group "web": tag spotmax:detaching_delay_seconds="abc": not a whole number of seconds`},
		{[]groupconfig.Tag{tag("spotmax:detach_delay_seconds", "30")},
			`group "web": unknown tag spotmax:detach_delay_seconds="30" (did you mean spotmax:detaching_delay_seconds?)`},
		{[]groupconfig.Tag{tag("spotmax:nonsense", "1")},
			`group "web": unknown tag spotmax:nonsense="1"`},
		{[]groupconfig.Tag{tag(groupconfig.TagDetachingDelaySeconds, "80s")},
			`group "web": tag spotmax:detaching_delay_seconds="80s": not a whole number of seconds (did you mean "80"?)`},
		{[]groupconfig.Tag{tag(groupconfig.TagBufferMins, "2h")},
			`group "web": tag spotmax:buffer_mins="2h": not a whole number of minutes (did you mean "120"?)`},
		{[]groupconfig.Tag{tag(groupconfig.TagIgnore, " true")},
			`group "web": tag spotmax:ignore_tag=" true": not a boolean (true or false) (did you mean "true"?)`},
		{[]groupconfig.Tag{tag(groupconfig.TagPersistenceDev, "sdf")},
			`group "web": tag spotmax:persistence_dev="sdf": not a device name like /dev/sdf (did you mean "/dev/sdf"?)`},
		{[]groupconfig.Tag{tag(groupconfig.TagPersistenceDev, "/dev/sdf"), ptag(groupconfig.TagPersistenceMountPath, "/data/")},
			`group "web": tag spotmax:persistence_mount_path="/data/": not a clean path (did you mean "/data"?)`},
		{[]groupconfig.Tag{tag(groupconfig.TagAZRebalance, "Optimize")},
			`group "web": tag spotmax:az_rebalance="Optimize": must be one of: optimize (did you mean "optimize"?)`},
		{[]groupconfig.Tag{tag(groupconfig.AltKey(1), "M5.Large")},
			`group "web": tag spotmax:alt1="M5.Large": not an instance type like m5.large (did you mean "m5.large"?)`},
		{[]groupconfig.Tag{tag("SpotMax:Group", "web")},
			`group "web": unknown tag SpotMax:Group="web" (did you mean spotmax:group?)`},
		{[]groupconfig.Tag{tag("spotmax:alt0", "m5.large")},
			`group "web": tag spotmax:alt0="m5.large": alternative types are numbered from 1 (numbering starts at spotmax:alt1)`},
		{[]groupconfig.Tag{tag("spotmax:altx", "m5.large")},
			`group "web": unknown tag spotmax:altx="m5.large" (alternative instance types are tagged spotmax:alt1, spotmax:alt2, …)`},
		{[]groupconfig.Tag{tag("spotmax:alt_2", "m5.large")},
			`group "web": unknown tag spotmax:alt_2="m5.large" (did you mean spotmax:alt2?)`},
		{[]groupconfig.Tag{tag("spotmax:alt01", "m5.large")},
			`group "web": tag spotmax:alt01="m5.large": alternative type number has leading zeros (did you mean spotmax:alt1?)`},
		{[]groupconfig.Tag{tag("spotmax:alt", "m5.large")},
			`group "web": tag spotmax:alt="m5.large": needs a number (did you mean spotmax:alt1?)`},
		{[]groupconfig.Tag{tag("spotmax:alt99999999999999999999", "m5.large")},
			`group "web": tag spotmax:alt99999999999999999999="m5.large": alternative type number out of range`},
		{[]groupconfig.Tag{tag(groupconfig.TagConsulPort, "8500"), tag(groupconfig.TagConsulPort, "8501")},
			`group "web": tag spotmax:consul_port="8501": tag given more than once with different values`},
		{[]groupconfig.Tag{tag("spotmax:a\"b\x00", "v")},
			`group "web": unknown tag "spotmax:a\"b\x00"="v"`},
	}
	for _, tt := range tests {
		_, err := groupconfig.Parse(group, tt.tags)
		if err == nil {
			t.Errorf("Parse(%v) succeeded; want %q", tt.tags, tt.want)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("Parse(%v) error:\n got %s\nwant %s", tt.tags, got, tt.want)
		}
	}
}

func TestParseIgnoresOtherTags(t *testing.T) {
	tags := []groupconfig.Tag{
		tag("Name", "web"), tag("aws:autoscaling:groupName", "web"), tag("spotmax", "x"),
		tag("spotmax_group", "x"), tag("team", "spotmax:group"), tag("", ""),
	}
	got, err := groupconfig.Parse(group, tags)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(wantDefault(), got); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}
}

func TestParseDuplicateIdenticalTags(t *testing.T) {
	got, err := groupconfig.Parse(group, []groupconfig.Tag{tag(groupconfig.TagConsulPort, "8500"), tag(groupconfig.TagConsulPort, "8500")})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got.ConsulPort != 8500 {
		t.Errorf("ConsulPort = %d; want 8500", got.ConsulPort)
	}
}

func TestParseGuaranteeAlias(t *testing.T) {
	const (
		orig  = groupconfig.TagGuaranteeLivingMins
		alias = groupconfig.TagGuaranteeLivingMinsAlias
	)
	tests := []struct {
		name         string
		tags         []groupconfig.Tag
		want         time.Duration
		wantWarnings []string // substrings, all in one warning
		wantProblem  string   // tag with a problem; "" = no error
	}{
		{name: "original only", tags: []groupconfig.Tag{tag(orig, "50")}, want: 50 * time.Minute},
		{name: "alias only", tags: []groupconfig.Tag{tag(alias, "40")}, want: 40 * time.Minute},
		{name: "both equal", tags: []groupconfig.Tag{tag(orig, "50"), tag(alias, "50")}, want: 50 * time.Minute},
		{name: "both equal after normalising", tags: []groupconfig.Tag{tag(orig, "050"), tag(alias, "50")}, want: 50 * time.Minute},
		{name: "both differ, original wins", tags: []groupconfig.Tag{tag(alias, "40"), tag(orig, "50")}, want: 50 * time.Minute,
			wantWarnings: []string{orig, alias, `"50"`, `"40"`, `using "50"`}},
		{name: "original invalid", tags: []groupconfig.Tag{tag(orig, "x"), tag(alias, "40")}, wantProblem: orig},
		{name: "alias invalid", tags: []groupconfig.Tag{tag(orig, "50"), tag(alias, "x")}, wantProblem: alias},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := groupconfig.Parse(group, tt.tags)
			if tt.wantProblem != "" {
				var verr *groupconfig.ValidationError
				if !errors.As(err, &verr) || len(verr.Problems) != 1 || verr.Problems[0].Tag != tt.wantProblem {
					t.Fatalf("Parse error = %v; want one problem on %s", err, tt.wantProblem)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.GuaranteeLiving != tt.want {
				t.Errorf("GuaranteeLiving = %v; want %v", got.GuaranteeLiving, tt.want)
			}
			if tt.wantWarnings == nil {
				if len(got.Warnings) != 0 {
					t.Errorf("Warnings = %q; want none", got.Warnings)
				}
				return
			}
			if len(got.Warnings) != 1 {
				t.Fatalf("Warnings = %q; want one", got.Warnings)
			}
			for _, s := range tt.wantWarnings {
				if !strings.Contains(got.Warnings[0], s) {
					t.Errorf("warning %q lacks %q", got.Warnings[0], s)
				}
			}
			// The alias is never written back.
			for _, tg := range got.Tags() {
				if tg.Key == alias {
					t.Errorf("Tags() writes the alias: %v", got.Tags())
				}
			}
		})
	}
}

func TestParseCrossField(t *testing.T) {
	tests := []struct {
		name        string
		tags        []groupconfig.Tag
		wantTag     string // tag of the single problem; "" = valid
		wantReason  string
		wantWarning string
	}{
		{name: "mount path without device",
			tags:    []groupconfig.Tag{ptag(groupconfig.TagPersistenceMountPath, "/data")},
			wantTag: groupconfig.TagPersistenceMountPath, wantReason: "without spotmax:persistence_dev"},
		{name: "device without mount path is fine",
			tags: []groupconfig.Tag{tag(groupconfig.TagPersistenceDev, "/dev/sdf")}},
		{name: "buffer equals guarantee",
			tags:    []groupconfig.Tag{tag(groupconfig.TagGuaranteeLivingMins, "50"), tag(groupconfig.TagBufferMins, "50")},
			wantTag: groupconfig.TagBufferMins, wantReason: `less than spotmax:gurantee_living_mins="50"`},
		{name: "buffer above guarantee given by alias",
			tags:    []groupconfig.Tag{tag(groupconfig.TagGuaranteeLivingMinsAlias, "5"), tag(groupconfig.TagBufferMins, "10")},
			wantTag: groupconfig.TagBufferMins, wantReason: `less than spotmax:guarantee_living_mins="5"`},
		{name: "guarantee not above default buffer",
			tags:    []groupconfig.Tag{tag(groupconfig.TagGuaranteeLivingMins, "1")},
			wantTag: groupconfig.TagGuaranteeLivingMins, wantReason: `more than spotmax:buffer_mins (default "1")`},
		{name: "buffer above an off guarantee is fine",
			tags: []groupconfig.Tag{tag(groupconfig.TagGuaranteeLivingMins, "0"), tag(groupconfig.TagBufferMins, "100")}},
		{name: "guarantee above the documented maximum of 60",
			tags:    []groupconfig.Tag{tag(groupconfig.TagGuaranteeLivingMins, "90"), tag(groupconfig.TagInstanceDurationHours, "2")},
			wantTag: groupconfig.TagGuaranteeLivingMins, wantReason: `must be at most 60 minutes`},
		{name: "guarantee equal to instance duration is fine",
			tags: []groupconfig.Tag{tag(groupconfig.TagGuaranteeLivingMins, "60"), tag(groupconfig.TagInstanceDurationHours, "1")}},
		{name: "instance duration 0 means unlimited",
			tags: []groupconfig.Tag{tag(groupconfig.TagGuaranteeLivingMins, "55"), tag(groupconfig.TagInstanceDurationHours, "0")}},
		{name: "buffer not below instance duration",
			tags:    []groupconfig.Tag{tag(groupconfig.TagBufferMins, "60"), tag(groupconfig.TagInstanceDurationHours, "1")},
			wantTag: groupconfig.TagBufferMins, wantReason: `less than spotmax:instance_duration_hours="1"`},
		{name: "only on-demand without fallback",
			tags:    []groupconfig.Tag{tag(groupconfig.TagOnlyODRep, "true"), tag(groupconfig.TagEnableODFallback, "false")},
			wantTag: groupconfig.TagOnlyODRep, wantReason: `contradicts spotmax:is_enable_od_fallback="false"`},
		{name: "only on-demand with default fallback",
			tags: []groupconfig.Tag{tag(groupconfig.TagOnlyODRep, "true")}},
		{name: "duplicate alternative type warns",
			tags:        []groupconfig.Tag{tag("spotmax:alt1", "m5.large"), tag("spotmax:alt2", "m5.large")},
			wantWarning: `spotmax:alt2="m5.large" repeats spotmax:alt1`},
		{name: "group not propagated warns",
			tags:        []groupconfig.Tag{tag(groupconfig.TagGroup, "web")},
			wantWarning: "spotmax:group is not propagated at launch"},
		{name: "mount path not propagated warns",
			tags:        []groupconfig.Tag{tag(groupconfig.TagPersistenceDev, "/dev/sdf"), tag(groupconfig.TagPersistenceMountPath, "/data")},
			wantWarning: "spotmax:persistence_mount_path is not propagated at launch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := groupconfig.Parse(group, tt.tags)
			if tt.wantTag == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				var warnings []string
				if tt.wantWarning != "" {
					warnings = []string{tt.wantWarning}
				}
				if len(got.Warnings) != len(warnings) || (len(warnings) == 1 && !strings.Contains(got.Warnings[0], warnings[0])) {
					t.Errorf("Warnings = %q; want %q", got.Warnings, warnings)
				}
				return
			}
			var verr *groupconfig.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Parse error = %v; want *ValidationError", err)
			}
			if len(verr.Problems) != 1 {
				t.Fatalf("Problems = %+v; want one", verr.Problems)
			}
			p := verr.Problems[0]
			if p.Tag != tt.wantTag || !strings.Contains(p.Reason, tt.wantReason) || p.Group != group {
				t.Errorf("Problem = %+v; want tag %s, reason containing %q", p, tt.wantTag, tt.wantReason)
			}
		})
	}
}

func TestParseAltOrder(t *testing.T) {
	got, err := groupconfig.Parse(group, []groupconfig.Tag{
		tag("spotmax:alt10", "c5.large"), tag("spotmax:alt2", "m5a.large"), tag("spotmax:alt1", "m5.large"),
		tag("spotmax:alt3", "c7i-flex.large"), tag("spotmax:alt4", "u-6tb1.metal"), tag("spotmax:alt5", "m7i.metal-48xl"),
	})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []string{"m5.large", "m5a.large", "c7i-flex.large", "u-6tb1.metal", "m7i.metal-48xl", "c5.large"}
	if diff := cmp.Diff(want, got.AltTypes); diff != "" {
		t.Errorf("AltTypes mismatch (-want +got):\n%s", diff)
	}
}

func TestParseReportsAllProblemsSorted(t *testing.T) {
	_, err := groupconfig.Parse(group, []groupconfig.Tag{
		tag(groupconfig.TagPreactionDetachDelaySeconds, "x"),
		tag(groupconfig.TagBufferMins, "-1"),
		tag("spotmax:detach_delay_seconds", "30"),
		tag(groupconfig.TagAZRebalance, "max"),
		tag(groupconfig.TagConsulPort, "0"),
		tag("Name", "ignored"),
	})
	var verr *groupconfig.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Parse error = %v; want *ValidationError", err)
	}
	var got []string
	for _, p := range verr.Problems {
		got = append(got, p.Tag)
	}
	want := []string{groupconfig.TagAZRebalance, groupconfig.TagBufferMins, groupconfig.TagConsulPort,
		"spotmax:detach_delay_seconds", groupconfig.TagPreactionDetachDelaySeconds}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problem tags mismatch (-want +got):\n%s", diff)
	}
	if verr.Group != group {
		t.Errorf("Group = %q; want %q", verr.Group, group)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("error has %d lines; want %d:\n%s", len(lines), len(want), err)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, `group "web": `) || !strings.Contains(l, want[i]) {
			t.Errorf("line %d = %q; want group and %s", i, l, want[i])
		}
	}
}

func TestErrorTruncatesLongValues(t *testing.T) {
	long := strings.Repeat("é", 500) // multi-byte, so truncation must respect runes
	_, err := groupconfig.Parse(group, []groupconfig.Tag{tag(groupconfig.TagDetachingDelaySeconds, long)})
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	msg := err.Error()
	if len(msg) > 200 {
		t.Errorf("message is %d bytes: %q", len(msg), msg)
	}
	if !strings.Contains(msg, "…(1000 bytes)") || strings.Contains(msg, `\x`) {
		t.Errorf("message %q does not abridge the value cleanly", msg)
	}
	var verr *groupconfig.ValidationError
	if errors.As(err, &verr) && verr.Problems[0].Value != long {
		t.Errorf("Problem.Value was truncated")
	}
}

func TestValidationErrorEdgeCases(t *testing.T) {
	var nilErr *groupconfig.ValidationError
	if nilErr.Error() == "" {
		t.Error("nil ValidationError has an empty message")
	}
	e := &groupconfig.ValidationError{Group: "g"}
	if !strings.Contains(e.Error(), `group "g"`) {
		t.Errorf("empty ValidationError message %q lacks the group", e.Error())
	}
}

func TestIsManaged(t *testing.T) {
	tests := []struct {
		tags []groupconfig.Tag
		want bool
	}{
		{nil, false},
		{[]groupconfig.Tag{tag("Name", "web")}, false},
		{[]groupconfig.Tag{ptag(groupconfig.TagGroup, "web")}, true},
		{[]groupconfig.Tag{ptag(groupconfig.TagGroup, "")}, true}, // Parse reports the empty value
		{[]groupconfig.Tag{ptag(groupconfig.TagGroup, "web"), tag(groupconfig.TagIgnore, "true")}, false},
		{[]groupconfig.Tag{ptag(groupconfig.TagGroup, "web"), tag(groupconfig.TagIgnore, "1")}, false},
		{[]groupconfig.Tag{ptag(groupconfig.TagGroup, "web"), tag(groupconfig.TagIgnore, "false")}, true},
		{[]groupconfig.Tag{ptag(groupconfig.TagGroup, "web"), tag(groupconfig.TagIgnore, "junk")}, true}, // Parse reports it
		{[]groupconfig.Tag{tag(groupconfig.TagIgnore, "false")}, false},
		{[]groupconfig.Tag{ptag("Spotmax:group", "web")}, false},
	}
	for _, tt := range tests {
		if got := groupconfig.IsManaged(tt.tags); got != tt.want {
			t.Errorf("IsManaged(%v) = %v; want %v", tt.tags, got, tt.want)
		}
	}
}

// fullConfig sets every setting to something other than its default.
func fullConfig() *groupconfig.Config {
	return &groupconfig.Config{
		Group:                     "web-prod",
		Ignore:                    true,
		PersistenceDevs:           []string{"/dev/sdf"},
		PersistenceMountPaths:     []string{"/data"},
		DetachingDelay:            80 * time.Second,
		ConsulPort:                8500,
		SDDelayDetach:             45 * time.Second,
		K8sConfigFilePath:         "/data/spotmax/k8sconfig",
		K8sNodeDrainGrace:         600 * time.Second,
		K8sDelayDraining:          0,
		PreactionK8sDelayDraining: 120 * time.Second,
		InstanceDuration:          time.Hour,
		GuaranteeLiving:           50 * time.Minute,
		Buffer:                    2 * time.Minute,
		ODFallback:                true,
		OnlyOD:                    true,
		ODLeastLive:               30 * time.Minute,
		AltTypes:                  []string{"m5.large", "m5a.large", "c5.xlarge"},
		PreferMultipleTypes:       false,
		AltLeastLive:              5 * time.Minute,
		MaxTerminatedOneTime:      3,
		Preaction:                 false,
		PreactionDetachDelay:      60 * time.Second,
		PreactionTerminationDelay: 600 * time.Second,
		HandleRebalanceEvent:      true,
		HandleScalingFailure:      false,
		AZRebalance:               groupconfig.AZRebalanceOptimize,
		PodDelayDetaching:         15 * time.Second,
	}
}

func TestRoundTrip(t *testing.T) {
	configs := map[string]*groupconfig.Config{
		"default": groupconfig.Default(group),
		"full":    fullConfig(),
	}
	for _, tc := range tagCases {
		c := wantDefault()
		tc.want(c)
		c.Warnings = nil // Tags does not render warnings, nor the unsupported tags behind them
		configs["one "+tc.key] = c
	}
	for name, c := range configs {
		t.Run(name, func(t *testing.T) {
			tags := c.Tags()
			got, err := groupconfig.Parse(group, tags)
			if err != nil {
				t.Fatalf("Parse(Tags()): %v\ntags: %v", err, tags)
			}
			if diff := cmp.Diff(c, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse(Tags()) mismatch (-want +got):\n%s", diff)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestTags(t *testing.T) {
	if diff := cmp.Diff([]groupconfig.Tag{ptag(groupconfig.TagGroup, "web")}, groupconfig.Default("web").Tags()); diff != "" {
		t.Errorf("Default().Tags() mismatch (-want +got):\n%s", diff)
	}
	if got := groupconfig.Default("").Tags(); len(got) != 0 {
		t.Errorf(`Default("").Tags() = %v; want none`, got)
	}
	want := []groupconfig.Tag{
		ptag("spotmax:group", "web-prod"),
		tag("spotmax:ignore_tag", "true"),
		tag("spotmax:persistence_dev", "/dev/sdf"),
		ptag("spotmax:persistence_mount_path", "/data"),
		tag("spotmax:detaching_delay_seconds", "80"),
		tag("spotmax:consul_port", "8500"),
		tag("spotmax:sd_delay_detach_secs", "45"),
		tag("spotmax:k8s_config_file_path", "/data/spotmax/k8sconfig"),
		tag("spotmax:k8s_node_drain_grace_second", "600"),
		tag("spotmax:k8s_delay_draining_secs", "0"),
		tag("spotmax:preaction_k8s_delay_draining_secs", "120"),
		tag("spotmax:instance_duration_hours", "1"),
		tag("spotmax:gurantee_living_mins", "50"),
		tag("spotmax:buffer_mins", "2"),
		tag("spotmax:is_only_od_rep", "true"),
		tag("spotmax:od_least_live_mins", "30"),
		tag("spotmax:alt1", "m5.large"),
		tag("spotmax:alt2", "m5a.large"),
		tag("spotmax:alt3", "c5.xlarge"),
		tag("spotmax:is_prefer_multiple_types", "false"),
		tag("spotmax:alt_least_live_mins", "5"),
		tag("spotmax:max_num_of_terminated_one_time", "3"),
		tag("spotmax:is_enable_preaction", "false"),
		tag("spotmax:preaction_detach_delay_seconds", "60"),
		tag("spotmax:preaction_termination_delay_seconds", "600"),
		tag("spotmax:is_to_handle_rebalance_event", "true"),
		tag("spotmax:is_to_handle_scaling_failure", "false"),
		tag("spotmax:az_rebalance", "optimize"),
		tag("spotmax:pod_delay_detaching_secs", "15"),
	}
	if diff := cmp.Diff(want, fullConfig().Tags()); diff != "" {
		t.Errorf("Tags() mismatch (-want +got):\n%s", diff)
	}
	var nilConfig *groupconfig.Config
	if nilConfig.Tags() != nil || nilConfig.Summary() != "" || nilConfig.ProactiveDeadline() != 0 || nilConfig.Validate() == nil {
		t.Error("nil *Config methods misbehave")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *groupconfig.Config)
		want   string // substring of the error; "" = valid
	}{
		{"default", func(*groupconfig.Config) {}, ""},
		{"buffer not whole minutes", func(c *groupconfig.Config) { c.Buffer = 90 * time.Second },
			`tag spotmax:buffer_mins="1m30s": not a whole number of minutes`},
		{"negative delay", func(c *groupconfig.Config) { c.DetachingDelay = -time.Second },
			`tag spotmax:detaching_delay_seconds="-1": must not be negative`},
		{"port out of range", func(c *groupconfig.Config) { c.ConsulPort = 70000 }, "not a port number"},
		{"no batch", func(c *groupconfig.Config) { c.MaxTerminatedOneTime = 0 }, "at least 1"},
		{"bad alt", func(c *groupconfig.Config) { c.AltTypes = []string{"m5.large", ""} }, `spotmax:alt2=""`},
		{"bad enum", func(c *groupconfig.Config) { c.AZRebalance = "x" }, "must be one of"},
		{"cross field", func(c *groupconfig.Config) { c.PersistenceMountPaths = []string{"/data"} }, "without spotmax:persistence_dev"},
	}
	for _, tt := range tests {
		c := groupconfig.Default(group)
		tt.modify(c)
		err := c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: Validate: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `group "web"`)):
			t.Errorf("%s: Validate = %v; want error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestProactiveDeadline(t *testing.T) {
	tests := []struct {
		name                        string
		guarantee, buffer, duration time.Duration
		want                        time.Duration
	}{
		{"off", 0, time.Minute, 0, 0},
		{"guarantee", 50 * time.Minute, time.Minute, 0, 49 * time.Minute},
		{"guarantee within duration", 50 * time.Minute, time.Minute, time.Hour, 49 * time.Minute},
		{"duration only", 0, 5 * time.Minute, time.Hour, 55 * time.Minute},
		{"duration bounds guarantee", 90 * time.Minute, time.Minute, time.Hour, 59 * time.Minute},
		{"no buffer", 30 * time.Minute, 0, 0, 30 * time.Minute},
		{"never negative", 10 * time.Minute, 20 * time.Minute, 0, 0},
	}
	for _, tt := range tests {
		c := groupconfig.Default(group)
		c.GuaranteeLiving, c.Buffer, c.InstanceDuration = tt.guarantee, tt.buffer, tt.duration
		if got := c.ProactiveDeadline(); got != tt.want {
			t.Errorf("%s: ProactiveDeadline() = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	c := groupconfig.Default(group)
	c.PersistenceDevs, c.PersistenceMountPaths = []string{"/dev/sdf"}, []string{"/data"}
	c.ConsulPort = 8500
	c.K8sConfigFilePath = "/data/spotmax/k8sconfig"
	c.GuaranteeLiving = 50 * time.Minute
	c.AltTypes = []string{"m5.large", "m5a.large"}
	want := "data /dev/sdf→/data, consul :8500, k8s, lifetime 50m (buffer 1m), od-fallback, alts m5.large,m5a.large"
	if got := c.Summary(); got != want {
		t.Errorf("Summary() = %q; want %q", got, want)
	}
	if got, want := groupconfig.Default(group).Summary(), "od-fallback"; got != want {
		t.Errorf("default Summary() = %q; want %q", got, want)
	}
	want = "ignored, max life 2h, od-only, no-preaction, rebalance-events, az-rebalance optimize"
	c = groupconfig.Default(group)
	c.Ignore, c.InstanceDuration, c.OnlyOD, c.Preaction, c.HandleRebalanceEvent, c.AZRebalance = true, 2*time.Hour, true, false, true, "optimize"
	if got := c.Summary(); got != want {
		t.Errorf("Summary() = %q; want %q", got, want)
	}
	c = groupconfig.Default(group)
	c.ODFallback = false
	c.GuaranteeLiving, c.Buffer = 90*time.Minute, 90*time.Second
	if got, want := c.Summary(), "lifetime 1h30m (buffer 1m30s), spot-only"; got != want {
		t.Errorf("Summary() = %q; want %q", got, want)
	}
}
