package groupconfig_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// fuzzTags turns key, value and rest (lines of key=value; a leading '^'
// marks a propagated tag) into tags.
func fuzzTags(key, value, rest string) []groupconfig.Tag {
	tags := []groupconfig.Tag{{Key: key, Value: value, PropagateAtLaunch: true}}
	for line := range strings.SplitSeq(rest, "\n") {
		if line == "" {
			continue
		}
		prop := strings.HasPrefix(line, "^")
		k, v, _ := strings.Cut(strings.TrimPrefix(line, "^"), "=")
		tags = append(tags, groupconfig.Tag{Key: k, Value: v, PropagateAtLaunch: prop})
	}
	return tags
}

func FuzzParse(f *testing.F) {
	f.Add("web", groupconfig.TagDetachingDelaySeconds, "abc", "")
	f.Add("web", "spotmax:detach_delay_seconds", "30", "")
	f.Add("web", groupconfig.TagGroup, "web",
		"spotmax:persistence_dev=/dev/sdf\n^spotmax:persistence_mount_path=/data\nspotmax:consul_port=8500\n"+
			"spotmax:k8s_config_file_path=/data/spotmax/k8sconfig\nspotmax:gurantee_living_mins=50\n"+
			"spotmax:instance_duration_hours=1\nspotmax:alt1=m5.large\nspotmax:alt2=m5a.large\nName=web")
	f.Add("", groupconfig.TagGuaranteeLivingMinsAlias, "40", "spotmax:gurantee_living_mins=50\nspotmax:buffer_mins=5")
	f.Add("g", "spotmax:alt0", "m5.large", "spotmax:altx=c5.large\nspotmax:alt01=x\nspotmax:alt=y\nspotmax:alt10=M5.large")
	f.Add("g\x00\xff", "SpotMax:Group", "\xff", "spotmax:is_only_od_rep=true\nspotmax:is_enable_od_fallback=false")
	f.Add("g", groupconfig.TagBufferMins, "60", "spotmax:instance_duration_hours=1\nspotmax:az_rebalance=Optimize")
	f.Add("g", groupconfig.TagMaxNumOfTerminatedOneTime, "0", "spotmax:consul_port=65536\nspotmax:consul_port=1")
	f.Add("g", groupconfig.TagPersistenceMountPath, "/", "spotmax:persistence_dev=sdf\nspotmax:ignore_tag=1")
	f.Add("g", groupconfig.TagK8sNodeDrainGraceSecond, "99999999999999999999", "spotmax:alt1=m5.large\nspotmax:alt2=m5.large")
	f.Add("g", groupconfig.TagIgnore, "true", "")
	f.Fuzz(func(t *testing.T, group, key, value, rest string) {
		tags := fuzzTags(key, value, rest)
		_ = groupconfig.IsManaged(tags)
		_ = groupconfig.Suggest(key)
		c, err := groupconfig.Parse(group, tags)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config and an error: %v", err)
			}
			var verr *groupconfig.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %v is %T; want *ValidationError", err, err)
			}
			if len(verr.Problems) == 0 {
				t.Fatalf("ValidationError without problems")
			}
			if !slices.IsSortedFunc(verr.Problems, func(a, b groupconfig.Problem) int { return strings.Compare(a.Tag, b.Tag) }) {
				t.Fatalf("problems not sorted by tag: %+v", verr.Problems)
			}
			q := strconv.Quote(group)
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.Contains(line, q) {
					t.Fatalf("message line %q does not name group %s", line, q)
				}
			}
			return
		}
		if c == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		_ = c.Summary()
		if d := c.ProactiveDeadline(); d < 0 {
			t.Fatalf("ProactiveDeadline() = %v", d)
		}
		// A valid configuration survives rendering and parsing again.
		again, err := groupconfig.Parse(group, c.Tags())
		if err != nil {
			t.Fatalf("Parse(Tags()) of a valid config: %v\ntags: %+v", err, c.Tags())
		}
		if diff := cmp.Diff(c, again, cmpopts.IgnoreFields(groupconfig.Config{}, "Warnings"), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip mismatch (-want +got):\n%s", diff)
		}
		if len(again.Warnings) != 0 {
			t.Fatalf("rendered tags warn: %q", again.Warnings)
		}
		_ = groupconfig.Diff(tags, c.Tags())
	})
}

// FuzzFormatValue checks that FormatValue never panics and is idempotent:
// what it returns is already normal, and Parse accepts it as a tag value.
func FuzzFormatValue(f *testing.F) {
	for i, d := range groupconfig.Defs() {
		f.Add(uint8(i), d.Default)
	}
	for _, s := range []string{"80s", "-5", "1.5m", "2h", "TRUE", ":8500", "/data/", "sdf", "M5.large, c5.large", "Optimize", " web "} {
		f.Add(uint8(0), s)
	}
	defs := groupconfig.Defs()
	f.Fuzz(func(t *testing.T, i uint8, value string) {
		d := defs[int(i)%len(defs)]
		v, err := d.FormatValue(value)
		if err != nil {
			return
		}
		if again, err := d.FormatValue(v); err != nil || again != v {
			t.Fatalf("%s: FormatValue(%q) = %q, but FormatValue(%q) = %q, %v", d.Key, value, v, v, again, err)
		}
		if d.Key == groupconfig.TagAlt {
			return // a list, not one tag value
		}
		tags := []groupconfig.Tag{{Key: d.Key, Value: v, PropagateAtLaunch: d.Propagate}}
		if d.Key == groupconfig.TagPersistenceMountPath {
			tags = append(tags, groupconfig.Tag{Key: groupconfig.TagPersistenceDev, Value: "/dev/sdf"})
		}
		if d.Key == groupconfig.TagGuaranteeLivingMins {
			tags = append(tags, groupconfig.Tag{Key: groupconfig.TagBufferMins, Value: "0"})
		}
		if _, err := groupconfig.Parse("g", tags); err != nil {
			var verr *groupconfig.ValidationError
			if errors.As(err, &verr) && len(verr.Problems) == 1 && verr.Problems[0].Tag != d.Key {
				return // a cross-field rule with a default, e.g. buffer_mins ≥ instance duration
			}
			t.Fatalf("%s: FormatValue(%q) = %q, which Parse rejects: %v", d.Key, value, v, err)
		}
	})
}
