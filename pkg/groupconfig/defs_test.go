package groupconfig_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// TestDefsMatchSpec pins every tag of the tag table (docs/tags.md): order, key, kind,
// default and propagation.
func TestDefsMatchSpec(t *testing.T) {
	type row struct {
		Key       string
		Kind      groupconfig.Kind
		Default   string
		Propagate bool
		Flag      string
	}
	want := []row{
		{"spotmax:group", groupconfig.KindString, "", true, "group"},
		{"spotmax:ignore_tag", groupconfig.KindBool, "false", false, "ignore"},
		{"spotmax:persistence_dev", groupconfig.KindDeviceList, "", false, "persistence-dev"},
		{"spotmax:persistence_mount_path", groupconfig.KindPathList, "", true, "persistence-mount-path"},
		{"spotmax:detaching_delay_seconds", groupconfig.KindSeconds, "30", false, "detaching-delay"},
		{"spotmax:consul_port", groupconfig.KindPort, "", false, "consul-port"},
		{"spotmax:sd_delay_detach_secs", groupconfig.KindSeconds, "30", false, "sd-delay-detach"},
		{"spotmax:k8s_config_file_path", groupconfig.KindPath, "", false, "k8s-config"},
		{"spotmax:k8s_node_drain_grace_second", groupconfig.KindSeconds, "300", false, "k8s-drain-grace"},
		{"spotmax:k8s_delay_draining_secs", groupconfig.KindSeconds, "90", false, "k8s-delay-draining"},
		{"spotmax:preaction_k8s_delay_draining_secs", groupconfig.KindSeconds, "240", false, "preaction-k8s-delay-draining"},
		{"spotmax:instance_duration_hours", groupconfig.KindHours, "", false, "instance-duration-hours"},
		{"spotmax:gurantee_living_mins", groupconfig.KindMinutes, "0", false, "guarantee-living-mins"},
		{"spotmax:buffer_mins", groupconfig.KindMinutes, "1", false, "buffer-mins"},
		{"spotmax:is_enable_od_fallback", groupconfig.KindBool, "true", false, "od-fallback"},
		{"spotmax:is_only_od_rep", groupconfig.KindBool, "false", false, "only-od"},
		{"spotmax:od_least_live_mins", groupconfig.KindMinutes, "15", false, "od-least-live-mins"},
		{"spotmax:alt", groupconfig.KindInstanceType, "", false, "alt"},
		{"spotmax:is_prefer_multiple_types", groupconfig.KindBool, "true", false, "prefer-multiple-types"},
		{"spotmax:alt_least_live_mins", groupconfig.KindMinutes, "15", false, "alt-least-live-mins"},
		{"spotmax:max_num_of_terminated_one_time", groupconfig.KindInt, "1", false, "max-terminated-one-time"},
		{"spotmax:is_enable_preaction", groupconfig.KindBool, "true", false, "preaction"},
		{"spotmax:preaction_detach_delay_seconds", groupconfig.KindSeconds, "30", false, "preaction-detach-delay"},
		{"spotmax:preaction_termination_delay_seconds", groupconfig.KindSeconds, "300", false, "preaction-termination-delay"},
		{"spotmax:is_to_handle_rebalance_event", groupconfig.KindBool, "false", false, "handle-rebalance"},
		{"spotmax:is_to_handle_scaling_failure", groupconfig.KindBool, "true", false, "handle-scaling-failure"},
		{"spotmax:az_rebalance", groupconfig.KindEnum, "", false, "az-rebalance"},
		{"spotmax:is_warm_pool_first", groupconfig.KindBool, "false", false, "warm-pool-first"},
		{"spotmax:warm_pool_", groupconfig.KindString, "", false, ""},
		{"spotmax:pod_delay_detaching_secs", groupconfig.KindSeconds, "0", false, "pod-delay-detaching"},
		{"spotmax:k8s_node_drain_option", groupconfig.KindString, "", false, ""},
		{"spotmax:volume_retention_hours", groupconfig.KindHours, "", false, "volume-retention-hours"},
		{"spotmax:cross_az_move", groupconfig.KindBool, "false", false, "cross-az-move"},
	}
	var got []row
	for _, d := range groupconfig.Defs() {
		got = append(got, row{d.Key, d.Kind, d.Default, d.Propagate, d.Flag})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Defs() mismatch (-want +got):\n%s", diff)
	}
}

func TestDefsWellFormed(t *testing.T) {
	keys, flags := map[string]bool{}, map[string]bool{}
	for _, d := range groupconfig.Defs() {
		if keys[d.Key] || flags[d.Flag] {
			t.Errorf("duplicate key %s or flag %s", d.Key, d.Flag)
		}
		keys[d.Key] = true
		if d.Flag != "" {
			flags[d.Flag] = true
		} else if d.Unsupported == "" {
			t.Errorf("%s: a supported tag needs a flag", d.Key)
		}
		if d.Help == "" || strings.Contains(d.Help, "\n") {
			t.Errorf("%s: Help %q is not one line", d.Key, d.Help)
		}
		if !strings.HasPrefix(d.Key, groupconfig.Prefix) {
			t.Errorf("%s lacks the prefix", d.Key)
		}
		if d.Default != "" {
			if got, err := d.FormatValue(d.Default); err != nil || got != d.Default {
				t.Errorf("%s: default %q is not canonical: FormatValue = %q, %v", d.Key, d.Default, got, err)
			}
		}
		if (d.Kind == groupconfig.KindEnum) != (len(d.Enum) > 0) {
			t.Errorf("%s: Enum %v for kind %v", d.Key, d.Enum, d.Kind)
		}
		if d.Kind.String() == "" || strings.HasPrefix(d.Kind.String(), "Kind(") {
			t.Errorf("%s: kind %d has no name", d.Key, d.Kind)
		}
	}
	g, ok := groupconfig.Lookup(groupconfig.TagGuaranteeLivingMins)
	if !ok || !strings.Contains(g.Help, groupconfig.TagGuaranteeLivingMinsAlias) {
		t.Errorf("guarantee Help %q does not document the alias", g.Help)
	}
}

func TestDefsIsACopy(t *testing.T) {
	d := groupconfig.Defs()
	d[0].Key = "mutated"
	for i := range d {
		if d[i].Kind == groupconfig.KindEnum {
			d[i].Enum[0] = "mutated"
		}
	}
	for _, d := range groupconfig.Defs() {
		if d.Key == "mutated" || (len(d.Enum) > 0 && d.Enum[0] == "mutated") {
			t.Fatalf("Defs() shares state with its callers: %+v", d)
		}
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		key     string
		wantKey string
		wantOK  bool
	}{
		{"spotmax:group", "spotmax:group", true},
		{"spotmax:detaching_delay_seconds", "spotmax:detaching_delay_seconds", true},
		{"spotmax:gurantee_living_mins", "spotmax:gurantee_living_mins", true},
		{"spotmax:guarantee_living_mins", "spotmax:gurantee_living_mins", true},
		{"spotmax:alt1", "spotmax:alt", true},
		{"spotmax:alt42", "spotmax:alt", true},
		{"spotmax:alt", "spotmax:alt", true},
		{"spotmax:alt_least_live_mins", "spotmax:alt_least_live_mins", true},
		{"spotmax:warm_pool_min_size", "spotmax:warm_pool_", true},
		{"spotmax:warm_pool_", "spotmax:warm_pool_", true},
		{"spotmax:alt0", "", false},
		{"spotmax:alt01", "", false},
		{"spotmax:altx", "", false},
		{"spotmax:detach_delay_seconds", "", false},
		{"Spotmax:group", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		d, ok := groupconfig.Lookup(tt.key)
		if d.Key != tt.wantKey || ok != tt.wantOK {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.key, d.Key, ok, tt.wantKey, tt.wantOK)
		}
	}
	for _, d := range groupconfig.Defs() {
		if d.Flag == "" {
			continue // unsupported tags have no flag
		}
		got, ok := groupconfig.LookupFlag(d.Flag)
		if !ok || got.Key != d.Key {
			t.Errorf("LookupFlag(%q) = %q, %v; want %q", d.Flag, got.Key, ok, d.Key)
		}
	}
	if _, ok := groupconfig.LookupFlag("nope"); ok {
		t.Errorf("LookupFlag(nope) found something")
	}
}

func TestAltKey(t *testing.T) {
	for _, n := range []int{1, 2, 10, 123} {
		got, ok := groupconfig.ParseAltKey(groupconfig.AltKey(n))
		if !ok || got != n {
			t.Errorf("ParseAltKey(AltKey(%d)) = %d, %v", n, got, ok)
		}
	}
	for _, k := range []string{"spotmax:alt", "spotmax:alt0", "spotmax:alt01", "spotmax:alt-1", "spotmax:alt1x",
		"spotmax:alt99999999999999999999", "alt1", "spotmax:alt_least_live_mins"} {
		if n, ok := groupconfig.ParseAltKey(k); ok {
			t.Errorf("ParseAltKey(%q) = %d, true; want false", k, n)
		}
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct{ key, want string }{
		{"spotmax:detach_delay_seconds", "spotmax:detaching_delay_seconds"},
		{"spotmax:detaching_delay_secs", "spotmax:detaching_delay_seconds"},
		{"spotmax:grop", "spotmax:group"},
		{"spotmax:Group", "spotmax:group"},
		{"SPOTMAX:GROUP", "spotmax:group"},
		{"spotmax:consul", "spotmax:consul_port"},
		{"spotmax:consul-port", "spotmax:consul_port"},
		{"spotmax:ignore", "spotmax:ignore_tag"},
		{"spotmax:od-fallback", "spotmax:is_enable_od_fallback"},
		{"spotmax:k8s_drain_grace", "spotmax:k8s_node_drain_grace_second"},
		{"spotmax:gurantee_living_minutes", "spotmax:gurantee_living_mins"},
		{"spotmax:guarantee_living_min", "spotmax:guarantee_living_mins"},
		{"spotmax:bufer_mins", "spotmax:buffer_mins"},
		{"spotmax:alt_2", "spotmax:alt2"},
		{"spotmax:alt-3", "spotmax:alt3"},
		{"spotmax:ALT4", "spotmax:alt4"},
		{"spotmax:alt05", "spotmax:alt5"},
		{"spotmax:foo", ""},
		{"spotmax:", ""},
		{"spotmax:x", ""},
		{"spotmax:completely_unrelated_setting", ""},
		{"other:group", ""},
		{"", ""},
		{"spotmax:" + strings.Repeat("a", 10000), ""},
		{"spotmax:group", ""}, // known keys suggest nothing but themselves
	}
	for _, tt := range tests {
		if got := groupconfig.Suggest(tt.key); got != tt.want {
			t.Errorf("Suggest(%q) = %q; want %q", tt.key, got, tt.want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	md := groupconfig.Markdown()
	lines := strings.Split(strings.TrimSuffix(md, "\n"), "\n")
	if want := len(groupconfig.Defs()) + 2; len(lines) != want {
		t.Fatalf("Markdown() has %d lines; want %d:\n%s", len(lines), want, md)
	}
	if lines[0] != "| tag | type | default | propagated | flag | meaning |" {
		t.Errorf("header = %q", lines[0])
	}
	for i, d := range groupconfig.Defs() {
		line := lines[i+2]
		key := d.Key
		if d.Key == groupconfig.TagAlt {
			key = groupconfig.AltKey(1)
		}
		if d.Pattern != "" && d.Key != groupconfig.TagAlt {
			key = d.Pattern
		}
		flag := "—"
		if d.Flag != "" {
			flag = "--" + d.Flag
		}
		for _, want := range []string{key, flag, d.Kind.String()} {
			if !strings.Contains(line, want) {
				t.Errorf("row %q lacks %q", line, want)
			}
		}
		if got := strings.Count(line, " | "); got != 5 {
			t.Errorf("row %q has %d cell separators; want 5", line, got)
		}
	}
	if !strings.Contains(md, groupconfig.TagGuaranteeLivingMinsAlias) {
		t.Errorf("Markdown() does not mention the alias")
	}
}
