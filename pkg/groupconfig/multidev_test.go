package groupconfig_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// TestSeveralDataDevices: spotmax:persistence_dev takes a comma list and persistence_mount_path
// a matching one; each device is paired with the path at its position.
func TestSeveralDataDevices(t *testing.T) {
	cfg, err := groupconfig.Parse("db", []groupconfig.Tag{ptag(groupconfig.TagGroup, "db"),
		tag(groupconfig.TagPersistenceDev, "/dev/sdf,/dev/sdg"), ptag(groupconfig.TagPersistenceMountPath, "/data,/log")})
	if err != nil {
		t.Fatal(err)
	}
	want := []groupconfig.DataDevice{{Device: "/dev/sdf", MountPath: "/data"}, {Device: "/dev/sdg", MountPath: "/log"}}
	if got := cfg.DataDevices(); !reflect.DeepEqual(got, want) {
		t.Fatalf("DataDevices = %+v, want %+v", got, want)
	}
	if d, ok := cfg.DataDevice("/dev/xvdg"); !ok || d.MountPath != "/log" {
		t.Errorf("DataDevice(/dev/xvdg) = %+v, %v", d, ok)
	}
	if s := cfg.Summary(); !strings.Contains(s, "data /dev/sdf→/data /dev/sdg→/log") {
		t.Errorf("Summary = %q", s)
	}
	// The rendering gives the same lists back.
	again, err := groupconfig.Parse("db", cfg.Tags())
	if err != nil || !reflect.DeepEqual(again.DataDevices(), want) {
		t.Fatalf("round trip: %+v, %v", again, err)
	}
	// Without mount paths each device has none.
	cfg, err = groupconfig.Parse("db", []groupconfig.Tag{tag(groupconfig.TagPersistenceDev, "/dev/sdf, /dev/sdg")})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.DataDevices(); len(got) != 2 || got[1] != (groupconfig.DataDevice{Device: "/dev/sdg"}) {
		t.Fatalf("DataDevices = %+v", got)
	}
}

// TestSingleDataDeviceUnchanged: one device and one path mean what they always meant.
func TestSingleDataDeviceUnchanged(t *testing.T) {
	cfg, err := groupconfig.Parse("web", []groupconfig.Tag{tag(groupconfig.TagPersistenceDev, "/dev/xvdf"), ptag(groupconfig.TagPersistenceMountPath, "/srv/data")})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.DataDevices(); !reflect.DeepEqual(got, []groupconfig.DataDevice{{Device: "/dev/xvdf", MountPath: "/srv/data"}}) {
		t.Fatalf("DataDevices = %+v", got)
	}
	for _, tg := range cfg.Tags() {
		if tg.Key == groupconfig.TagPersistenceDev && tg.Value != "/dev/xvdf" || tg.Key == groupconfig.TagPersistenceMountPath && tg.Value != "/srv/data" {
			t.Errorf("rendered %s=%q", tg.Key, tg.Value)
		}
	}
}

// TestSeveralDataDevicesRefused: every mistake in the lists is refused with the group, the tag,
// its value and the reason.
func TestSeveralDataDevicesRefused(t *testing.T) {
	nine := make([]string, 9)
	for i := range nine {
		nine[i] = "/dev/sd" + string(rune('f'+i))
	}
	tests := []struct {
		name       string
		dev, mount string
		wantTag    string
		want       []string
	}{
		{"duplicate device", "/dev/sdf,/dev/xvdf", "", groupconfig.TagPersistenceDev, []string{"twice", "/dev/sdf", "/dev/xvdf"}},
		{"partition of a listed device", "/dev/sdf,/dev/sdf1", "", groupconfig.TagPersistenceDev, []string{"twice"}},
		{"root device in the list", "/dev/sdf,/dev/xvda", "", groupconfig.TagPersistenceDev, []string{`"/dev/xvda"`, "root device"}},
		{"bad device in the list", "/dev/sdf,sdg", "", groupconfig.TagPersistenceDev, []string{`"sdg"`, "not a device name", `did you mean "/dev/sdg"?`}},
		{"empty entry", "/dev/sdf,,/dev/sdg", "", groupconfig.TagPersistenceDev, []string{"empty entry"}},
		{"too many", strings.Join(nine, ","), "", groupconfig.TagPersistenceDev, []string{"9 devices", "at most 8"}},
		{"fewer paths", "/dev/sdf,/dev/sdg", "/data", groupconfig.TagPersistenceMountPath, []string{"1 mount path(s)", "2 device(s)", `spotmax:persistence_dev="/dev/sdf,/dev/sdg"`}},
		{"more paths", "/dev/sdf", "/data,/log", groupconfig.TagPersistenceMountPath, []string{"2 mount path(s)", "1 device(s)"}},
		{"duplicate path", "/dev/sdf,/dev/sdg", "/data,/data", groupconfig.TagPersistenceMountPath, []string{"/data twice"}},
		{"nested paths", "/dev/sdf,/dev/sdg", "/data,/data/log", groupconfig.TagPersistenceMountPath, []string{"nests", "/data", "/data/log", "hide"}},
		{"system dir in the list", "/dev/sdf,/dev/sdg", "/data,/proc", groupconfig.TagPersistenceMountPath, []string{`"/proc"`, "system directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tags := []groupconfig.Tag{ptag(groupconfig.TagGroup, "db"), tag(groupconfig.TagPersistenceDev, tt.dev)}
			if tt.mount != "" {
				tags = append(tags, ptag(groupconfig.TagPersistenceMountPath, tt.mount))
			}
			_, err := groupconfig.Parse("db", tags)
			if err == nil {
				t.Fatal("accepted")
			}
			value := tt.dev
			if tt.wantTag == groupconfig.TagPersistenceMountPath {
				value = tt.mount
			}
			value = value[:min(len(value), 40)] // long values are shown cut

			for _, w := range append([]string{`"db"`, tt.wantTag, value}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestDataDeviceListFormat: what a person types into `spotmax group tag` is normalised.
func TestDataDeviceListFormat(t *testing.T) {
	dev, _ := groupconfig.Lookup(groupconfig.TagPersistenceDev)
	mount, _ := groupconfig.Lookup(groupconfig.TagPersistenceMountPath)
	tests := []struct {
		d        groupconfig.Def
		in, want string
		err      string
	}{
		{dev, "/dev/sdf /dev/sdg", "/dev/sdf,/dev/sdg", ""},
		{dev, " /dev/sdf, /dev/sdg ", "/dev/sdf,/dev/sdg", ""},
		{dev, "/dev/sdf", "/dev/sdf", ""},
		{dev, "/dev/sdf,/dev/xvdf", "", "twice"},
		{mount, "/data/, /log//x", "/data,/log/x", ""},
		{mount, "/my data", "/my data", ""},
		{mount, "/data,/data/x", "", "nests"},
	}
	for _, tt := range tests {
		got, err := tt.d.FormatValue(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s FormatValue(%q) = %q, %v; want error with %q", tt.d.Key, tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s FormatValue(%q) = %q, %v; want %q", tt.d.Key, tt.in, got, err, tt.want)
		}
	}
}
