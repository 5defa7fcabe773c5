package groupconfig_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

func TestSameDevice(t *testing.T) {
	tests := []struct {
		a, b       string
		same, disk bool
	}{
		{"/dev/sdf", "/dev/xvdf", true, true},
		{"/dev/xvdf", "/dev/xvdf", true, true},
		{"/dev/sdf", "/dev/sdg", false, false},
		{"/dev/sda1", "/dev/xvda", false, true},
		{"/dev/sda1", "/dev/sda", false, true},
		{"/dev/xvdf1", "/dev/sdf", false, true},
		{"/dev/nvme1n1", "/dev/nvme1n2", false, false},
	}
	for _, tt := range tests {
		if got := groupconfig.SameDevice(tt.a, tt.b); got != tt.same {
			t.Errorf("SameDevice(%s, %s) = %v", tt.a, tt.b, got)
		}
		if got := groupconfig.SameDisk(tt.a, tt.b); got != tt.disk {
			t.Errorf("SameDisk(%s, %s) = %v", tt.a, tt.b, got)
		}
	}
}

// TestPersistenceDevNotRoot is issue 11 case 4: the root device is refused as the data device,
// by Parse (AWS's reserved root names) and by CheckDataDevice (the root names seen).
func TestPersistenceDevNotRoot(t *testing.T) {
	for _, dev := range []string{"/dev/xvda", "/dev/sda1", "/dev/sda", "/dev/xvda1"} {
		_, err := groupconfig.Parse("web", []groupconfig.Tag{ptag(groupconfig.TagGroup, "web"), tag(groupconfig.TagPersistenceDev, dev)})
		var verr *groupconfig.ValidationError
		if !errors.As(err, &verr) {
			t.Fatalf("persistence_dev=%s accepted", dev)
		}
		for _, want := range []string{`"web"`, groupconfig.TagPersistenceDev, `"` + dev + `"`, "root device"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		def, _ := groupconfig.Lookup(groupconfig.TagPersistenceDev)
		if _, err := def.FormatValue(dev); err == nil {
			t.Errorf("FormatValue(%s) accepted the root device", dev)
		}
	}
	roots := []groupconfig.RootDevice{{Name: ""}, {Name: "/dev/sdg", Where: "instance i-0123456789abcdef0"}}
	err := groupconfig.CheckDataDevice("web", "/dev/xvdg", roots)
	for _, want := range []string{`"web"`, groupconfig.TagPersistenceDev, `"/dev/xvdg"`, "/dev/sdg", "i-0123456789abcdef0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckDataDevice error %v lacks %q", err, want)
		}
	}
	if err := groupconfig.CheckDataDevice("web", "/dev/sdf", roots); err != nil {
		t.Errorf("CheckDataDevice(/dev/sdf): %v", err)
	}
	if err := groupconfig.CheckDataDevice("web", "/dev/xvda", nil); err == nil {
		t.Error("CheckDataDevice(/dev/xvda) without known roots accepted AWS's reserved root name")
	}
}
