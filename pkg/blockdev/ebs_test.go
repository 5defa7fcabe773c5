package blockdev

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSerials(t *testing.T) {
	if got := SerialOf("vol-0123456789abcdef0"); got != "vol0123456789abcdef0" {
		t.Errorf("SerialOf = %q", got)
	}
	for serial, want := range map[string]string{
		"vol0123456789abcdef0":    "vol-0123456789abcdef0",
		"vol0123456789abcdef0   ": "vol-0123456789abcdef0", // NVMe pads serials with spaces
		"vol12345678":             "vol-12345678",
		"AWS1A2B3C4D5E6F7G8H":     "",
		"vol-0123456789abcdef0":   "",
		"volXYZ":                  "",
		"":                        "",
	} {
		got, ok := VolumeIDOfSerial(serial)
		if got != want || ok != (want != "") {
			t.Errorf("VolumeIDOfSerial(%q) = %q, %v; want %q", serial, got, ok, want)
		}
	}
}

func TestByIDMatches(t *testing.T) {
	s := "vol0123456789abcdef0"
	for name, want := range map[string]bool{
		"nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0":       true,
		"nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0-ns-1":  true,
		"nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0-part1": false,
		"nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef01":      false,
		"nvme-Amazon_Elastic_Block_Store_xvol0123456789abcdef0":      false,
		"vol0123456789abcdef0": false,
		"nvme-nvme.1d0f-766f6c30313233343536373839616263646566300000": false,
	} {
		if got := byIDMatches(name, s); got != want {
			t.Errorf("byIDMatches(%q) = %v, want %v", name, got, want)
		}
	}
}

// fakeSys makes a /sys/block with an NVMe namespace whose controller reports serial.
func fakeSys(t *testing.T, name, serial string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, name, "device"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name, "device", "serial"), []byte(serial+"  \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLocator(t *testing.T) {
	vol := "vol-0123456789abcdef0"
	t.Run("by-id", func(t *testing.T) {
		byID := t.TempDir()
		target := filepath.Join(t.TempDir(), "nvme1n1")
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		l := &Locator{ByIDDir: byID, SysBlockDir: "-"}
		if dev, err := l.Find(vol); err != nil || dev != "" {
			t.Fatalf("Find before the link exists = %q, %v; want nothing", dev, err)
		}
		for name, to := range map[string]string{
			"nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0-part1": "/dev/null",
			"nvme-Amazon_Elastic_Block_Store_vol0fffffffffffffff0":       "/dev/null",
			"nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0":       target,
		} {
			if err := os.Symlink(to, filepath.Join(byID, name)); err != nil {
				t.Fatal(err)
			}
		}
		dev, err := l.Find(vol)
		if err != nil || dev != target {
			t.Fatalf("Find = %q, %v; want %q", dev, err, target)
		}
		if got, err := l.VolumeOf(target); err != nil || got != vol {
			t.Errorf("VolumeOf(%s) = %q, %v; want %s", target, got, err, vol)
		}
	})
	t.Run("sysfs serial", func(t *testing.T) {
		l := &Locator{ByIDDir: "-", SysBlockDir: fakeSys(t, "nvme3n1", "vol0123456789abcdef0")}
		if dev, err := l.Find(vol); err != nil || dev != "/dev/nvme3n1" {
			t.Errorf("Find = %q, %v; want /dev/nvme3n1", dev, err)
		}
		if dev, err := l.Find("vol-0fffffffffffffff0"); err != nil || dev != "" {
			t.Errorf("Find(other volume) = %q, %v; want nothing", dev, err)
		}
	})
	t.Run("missing dirs", func(t *testing.T) {
		l := &Locator{ByIDDir: filepath.Join(t.TempDir(), "none"), SysBlockDir: filepath.Join(t.TempDir(), "none")}
		if dev, err := l.Find(vol); err != nil || dev != "" {
			t.Errorf("Find without udev or sysfs = %q, %v; want nothing, no error", dev, err)
		}
	})
	t.Run("bad id", func(t *testing.T) {
		if _, err := (&Locator{}).Find("/dev/sdf"); err == nil {
			t.Error("Find(/dev/sdf) accepted a device name as a volume id")
		}
	})
}
