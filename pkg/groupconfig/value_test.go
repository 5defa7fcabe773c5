package groupconfig_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

func mustLookup(t *testing.T, key string) groupconfig.Def {
	t.Helper()
	d, ok := groupconfig.Lookup(key)
	if !ok {
		t.Fatalf("Lookup(%q) failed", key)
	}
	return d
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		key     string
		in      string
		want    string
		wantErr string // substring; "" = no error
	}{
		// seconds
		{groupconfig.TagDetachingDelaySeconds, "80", "80", ""},
		{groupconfig.TagDetachingDelaySeconds, " 80 ", "80", ""},
		{groupconfig.TagDetachingDelaySeconds, "080", "80", ""},
		{groupconfig.TagDetachingDelaySeconds, "80s", "80", ""},
		{groupconfig.TagDetachingDelaySeconds, "2m", "120", ""},
		{groupconfig.TagDetachingDelaySeconds, "1m30s", "90", ""},
		{groupconfig.TagDetachingDelaySeconds, "0", "0", ""},
		{groupconfig.TagDetachingDelaySeconds, "0s", "0", ""},
		{groupconfig.TagDetachingDelaySeconds, "1500ms", "", "not a whole number of seconds"},
		{groupconfig.TagDetachingDelaySeconds, "-5", "", "negative"},
		{groupconfig.TagDetachingDelaySeconds, "-5s", "", "negative"},
		{groupconfig.TagDetachingDelaySeconds, "abc", "", `"abc"`},
		{groupconfig.TagDetachingDelaySeconds, "1.5", "", "not a whole number of seconds"},
		{groupconfig.TagDetachingDelaySeconds, "", "", "empty"},
		{groupconfig.TagDetachingDelaySeconds, "99999999999999999999", "", "too large"},
		// minutes
		{groupconfig.TagGuaranteeLivingMins, "50", "50", ""},
		{groupconfig.TagGuaranteeLivingMins, "50m", "50", ""},
		{groupconfig.TagGuaranteeLivingMins, "1h", "60", ""},
		{groupconfig.TagGuaranteeLivingMins, "90s", "", "not a whole number of minutes"},
		{groupconfig.TagGuaranteeLivingMinsAlias, "2h", "120", ""},
		{groupconfig.TagBufferMins, "0m", "0", ""},
		// hours
		{groupconfig.TagInstanceDurationHours, "1", "1", ""},
		{groupconfig.TagInstanceDurationHours, "3h", "3", ""},
		{groupconfig.TagInstanceDurationHours, "120m", "2", ""},
		{groupconfig.TagInstanceDurationHours, "90m", "", "not a whole number of hours"},
		{groupconfig.TagInstanceDurationHours, "3000000", "", "too large"},
		// bools
		{groupconfig.TagEnableODFallback, "true", "true", ""},
		{groupconfig.TagEnableODFallback, "1", "true", ""},
		{groupconfig.TagEnableODFallback, "T", "true", ""},
		{groupconfig.TagEnableODFallback, "TRUE", "true", ""},
		{groupconfig.TagEnableODFallback, "False", "false", ""},
		{groupconfig.TagEnableODFallback, "0", "false", ""},
		{groupconfig.TagEnableODFallback, "yes", "", "not a boolean"},
		// int
		{groupconfig.TagMaxNumOfTerminatedOneTime, "3", "3", ""},
		{groupconfig.TagMaxNumOfTerminatedOneTime, "+3", "3", ""},
		{groupconfig.TagMaxNumOfTerminatedOneTime, "0", "", "at least 1"},
		{groupconfig.TagMaxNumOfTerminatedOneTime, "x", "", "not a whole number"},
		// port
		{groupconfig.TagConsulPort, "8500", "8500", ""},
		{groupconfig.TagConsulPort, ":8500", "8500", ""},
		{groupconfig.TagConsulPort, "65535", "65535", ""},
		{groupconfig.TagConsulPort, "0", "", "not a port"},
		{groupconfig.TagConsulPort, "65536", "", "not a port"},
		// device
		{groupconfig.TagPersistenceDev, "/dev/sdf", "/dev/sdf", ""},
		{groupconfig.TagPersistenceDev, "/dev/xvdf", "/dev/xvdf", ""},
		{groupconfig.TagPersistenceDev, "/dev/nvme1n1", "/dev/nvme1n1", ""},
		{groupconfig.TagPersistenceDev, "sdf", "", `did you mean "/dev/sdf"?`},
		{groupconfig.TagPersistenceDev, "/dev/", "", "not a device name"},
		// path
		{groupconfig.TagPersistenceMountPath, "/data", "/data", ""},
		{groupconfig.TagPersistenceMountPath, "/data/", "/data", ""},
		{groupconfig.TagPersistenceMountPath, "/srv//data/./x", "/srv/data/x", ""},
		{groupconfig.TagPersistenceMountPath, "data", "", "not an absolute path"},
		{groupconfig.TagPersistenceMountPath, "/", "", "root"},
		{groupconfig.TagPersistenceMountPath, "/proc/", "", "system directory"},
		{groupconfig.TagK8sConfigFilePath, "/etc/kubeconfig", "/etc/kubeconfig", ""},
		// instance types
		{groupconfig.TagAlt, "m5.large", "m5.large", ""},
		{groupconfig.TagAlt, "M5.Large, m5a.large c5.xlarge", "m5.large,m5a.large,c5.xlarge", ""},
		{groupconfig.TagAlt, "m5.large,,m5a.large,", "m5.large,m5a.large", ""},
		{groupconfig.TagAlt, "", "", ""},
		{groupconfig.TagAlt, "m5.large,m5.large", "", "listed twice"},
		{groupconfig.TagAlt, "m5.large,m5", "", `"m5": not an instance type`},
		{groupconfig.AltKey(3), "c6gn.16xlarge", "c6gn.16xlarge", ""},
		// enum, string
		{groupconfig.TagAZRebalance, "optimize", "optimize", ""},
		{groupconfig.TagAZRebalance, "OPTIMIZE", "optimize", ""},
		{groupconfig.TagAZRebalance, "balance", "", "must be one of: optimize"},
		{groupconfig.TagGroup, " web ", "web", ""},
		{groupconfig.TagGroup, "  ", "", "must not be empty"},
	}
	for _, tt := range tests {
		d := mustLookup(t, tt.key)
		got, err := d.FormatValue(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s FormatValue(%q): %v", tt.key, tt.in, err)
		case tt.wantErr == "" && got != tt.want:
			t.Errorf("%s FormatValue(%q) = %q; want %q", tt.key, tt.in, got, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s FormatValue(%q) = %q, %v; want error containing %q", tt.key, tt.in, got, err, tt.wantErr)
		}
	}
}

// TestFormatValueOutputParses checks that whatever FormatValue accepts, Parse
// accepts as a tag value.
func TestFormatValueOutputParses(t *testing.T) {
	inputs := []string{"80", "2m", "1h", "true", "0", "1", "8500", "/dev/sdf", "/data/", "m5.large", "optimize", "web", "3"}
	for _, d := range groupconfig.Defs() {
		if d.Key == groupconfig.TagAlt {
			continue
		}
		key := d.Key
		if d.Key == groupconfig.TagWarmPool {
			key += "min_size" // the family's keys carry a name
		}
		for _, in := range inputs {
			v, err := d.FormatValue(in)
			if err != nil {
				continue
			}
			tags := []groupconfig.Tag{{Key: key, Value: v, PropagateAtLaunch: d.Propagate}}
			if d.Key == groupconfig.TagPersistenceMountPath {
				tags = append(tags, groupconfig.Tag{Key: groupconfig.TagPersistenceDev, Value: "/dev/sdf"})
			}
			if d.Key == groupconfig.TagGuaranteeLivingMins || d.Key == groupconfig.TagBufferMins {
				continue // cross-field rules with the other one
			}
			if _, err := groupconfig.Parse(group, tags); err != nil {
				t.Errorf("%s: FormatValue(%q) = %q, which Parse rejects: %v", d.Key, in, v, err)
			}
		}
	}
}

func TestKind(t *testing.T) {
	if got := groupconfig.KindMinutes.Unit(); got != time.Minute {
		t.Errorf("KindMinutes.Unit() = %v", got)
	}
	if got := groupconfig.KindPort.Unit(); got != 0 {
		t.Errorf("KindPort.Unit() = %v", got)
	}
	if got := groupconfig.Kind(0).String(); got != "Kind(0)" {
		t.Errorf("Kind(0).String() = %q", got)
	}
	if _, err := (groupconfig.Def{Key: "spotmax:x"}).FormatValue("v"); err == nil {
		t.Errorf("FormatValue on a Def without a kind succeeded")
	}
}
