package groupconfig_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

func tagp(k, v string, p bool) *groupconfig.Tag {
	return &groupconfig.Tag{Key: k, Value: v, PropagateAtLaunch: p}
}

func TestDiff(t *testing.T) {
	current := []groupconfig.Tag{
		tag("Name", "web"),
		ptag(groupconfig.TagGroup, "web"),
		tag(groupconfig.TagDetachingDelaySeconds, "30"),
		tag(groupconfig.TagConsulPort, "8500"),
		tag(groupconfig.TagGuaranteeLivingMinsAlias, "50"),
		tag(groupconfig.TagPersistenceMountPath, "/data"),
	}
	desired := []groupconfig.Tag{
		ptag(groupconfig.TagGroup, "web"),
		tag(groupconfig.TagDetachingDelaySeconds, "80"),
		tag(groupconfig.TagGuaranteeLivingMins, "50"),
		ptag(groupconfig.TagPersistenceMountPath, "/data"),
		tag(groupconfig.TagAZRebalance, "optimize"),
	}
	want := []groupconfig.Change{
		{Op: groupconfig.ChangeAdd, Key: groupconfig.TagAZRebalance, New: tagp(groupconfig.TagAZRebalance, "optimize", false)},
		{Op: groupconfig.ChangeRemove, Key: groupconfig.TagConsulPort, Old: tagp(groupconfig.TagConsulPort, "8500", false)},
		{Op: groupconfig.ChangeUpdate, Key: groupconfig.TagDetachingDelaySeconds,
			Old: tagp(groupconfig.TagDetachingDelaySeconds, "30", false), New: tagp(groupconfig.TagDetachingDelaySeconds, "80", false)},
		{Op: groupconfig.ChangeRemove, Key: groupconfig.TagGuaranteeLivingMinsAlias, Old: tagp(groupconfig.TagGuaranteeLivingMinsAlias, "50", false)},
		{Op: groupconfig.ChangeAdd, Key: groupconfig.TagGuaranteeLivingMins, New: tagp(groupconfig.TagGuaranteeLivingMins, "50", false)},
		{Op: groupconfig.ChangeUpdate, Key: groupconfig.TagPersistenceMountPath,
			Old: tagp(groupconfig.TagPersistenceMountPath, "/data", false), New: tagp(groupconfig.TagPersistenceMountPath, "/data", true)},
	}
	got := groupconfig.Diff(current, desired)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Diff mismatch (-want +got):\n%s", diff)
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, c.String())
	}
	wantLines := []string{
		`+ spotmax:az_rebalance="optimize"`,
		`- spotmax:consul_port="8500"`,
		`~ spotmax:detaching_delay_seconds: "30" → "80"`,
		`- spotmax:guarantee_living_mins="50"`,
		`+ spotmax:gurantee_living_mins="50"`,
		`~ spotmax:persistence_mount_path: "/data", propagate at launch false → true`,
	}
	if diff := cmp.Diff(wantLines, lines); diff != "" {
		t.Errorf("Change.String mismatch (-want +got):\n%s", diff)
	}
	if got := groupconfig.Diff(desired, desired); len(got) != 0 {
		t.Errorf("Diff(x, x) = %v; want none", got)
	}
	if got := groupconfig.Diff(nil, nil); len(got) != 0 {
		t.Errorf("Diff(nil, nil) = %v; want none", got)
	}
}

func TestChangeJSON(t *testing.T) {
	b, err := json.Marshal(groupconfig.Diff(nil, []groupconfig.Tag{ptag(groupconfig.TagGroup, "web")}))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"op":"add","key":"spotmax:group","new":{"key":"spotmax:group","value":"web","propagate_at_launch":true}}]`
	if string(b) != want {
		t.Errorf("JSON = %s; want %s", b, want)
	}
}

func TestSet(t *testing.T) {
	base := []groupconfig.Tag{
		tag("Name", "web"),
		ptag(groupconfig.TagGroup, "web"),
		tag(groupconfig.TagGuaranteeLivingMinsAlias, "40"),
		tag("spotmax:alt1", "m5.large"),
		tag("spotmax:alt3", "c5.large"),
	}
	tests := []struct {
		name    string
		key     string
		value   string
		want    []groupconfig.Tag
		wantErr string
	}{
		{name: "duration", key: groupconfig.TagDetachingDelaySeconds, value: "2m",
			want: append(clone(base), tag(groupconfig.TagDetachingDelaySeconds, "120"))},
		{name: "propagated", key: groupconfig.TagPersistenceMountPath, value: "/data/",
			want: append(clone(base), ptag(groupconfig.TagPersistenceMountPath, "/data"))},
		{name: "alias replaced by original spelling", key: groupconfig.TagGuaranteeLivingMinsAlias, value: "50",
			want: append(without(base, 2), tag(groupconfig.TagGuaranteeLivingMins, "50"))},
		{name: "alt list", key: groupconfig.TagAlt, value: "m6i.large, m5.large",
			want: append(without(base, 3, 4), tag("spotmax:alt1", "m6i.large"), tag("spotmax:alt2", "m5.large"))},
		{name: "empty alt list", key: groupconfig.TagAlt, value: "", want: without(base, 3, 4)},
		{name: "one alt", key: "spotmax:alt3", value: "C6i.large",
			want: append(without(base, 4), tag("spotmax:alt3", "c6i.large"))},
		{name: "bad value", key: groupconfig.TagDetachingDelaySeconds, value: "abc",
			wantErr: `tag spotmax:detaching_delay_seconds: "abc": not a whole number of seconds`},
		{name: "bad alt", key: "spotmax:alt2", value: "m5.large,c5.large", wantErr: "one instance type per tag"},
		{name: "unknown key", key: "spotmax:detach_delay_seconds", value: "30",
			wantErr: "unknown tag spotmax:detach_delay_seconds (did you mean spotmax:detaching_delay_seconds?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := clone(base)
			got, err := groupconfig.Set(in, tt.key, tt.value)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Set error = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Set: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Set mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(base, in); diff != "" {
				t.Errorf("Set modified its input (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnset(t *testing.T) {
	base := []groupconfig.Tag{
		tag("Name", "web"),
		tag(groupconfig.TagGuaranteeLivingMins, "50"),
		tag(groupconfig.TagGuaranteeLivingMinsAlias, "40"),
		tag("spotmax:alt1", "m5.large"),
		tag("spotmax:alt2", "c5.large"),
		tag("spotmax:detach_delay_seconds", "30"),
	}
	tests := []struct {
		key  string
		want []groupconfig.Tag
	}{
		{groupconfig.TagGuaranteeLivingMins, without(base, 1, 2)},
		{groupconfig.TagGuaranteeLivingMinsAlias, without(base, 1, 2)},
		{groupconfig.TagAlt, without(base, 3, 4)},
		{"spotmax:alt2", without(base, 4)},
		{"spotmax:detach_delay_seconds", without(base, 5)},
		{groupconfig.TagConsulPort, clone(base)},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, groupconfig.Unset(base, tt.key)); diff != "" {
			t.Errorf("Unset(%s) mismatch (-want +got):\n%s", tt.key, diff)
		}
	}
}

func clone(tags []groupconfig.Tag) []groupconfig.Tag {
	return append([]groupconfig.Tag(nil), tags...)
}

func without(tags []groupconfig.Tag, drop ...int) []groupconfig.Tag {
	var out []groupconfig.Tag
	for i, t := range tags {
		keep := true
		for _, d := range drop {
			keep = keep && d != i
		}
		if keep {
			out = append(out, t)
		}
	}
	return out
}
