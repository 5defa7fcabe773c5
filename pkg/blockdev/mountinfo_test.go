package blockdev

import (
	"strings"
	"testing"
)

const mountinfoSample = `22 1 259:1 / / rw,noatime shared:1 - xfs /dev/nvme0n1p1 rw,attr2,inode64
25 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
96 22 259:3 / /data rw,relatime shared:40 - ext4 /dev/nvme1n1 rw
97 96 0:45 / /data rw,relatime shared:41 - tmpfs tmpfs rw
98 22 7:3 /sub /mnt/with\040space rw,relatime - ext4 /dev/loop3 rw
`

func TestParseMountInfo(t *testing.T) {
	ms, err := ParseMountInfo(strings.NewReader(mountinfoSample))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 5 {
		t.Fatalf("got %d entries, want 5", len(ms))
	}
	if e := ms[4]; e.MountPoint != "/mnt/with space" || e.Root != "/sub" || e.Major != 7 || e.Minor != 3 || e.Source != "/dev/loop3" || e.FSType != "ext4" {
		t.Errorf("entry with an escaped space = %+v", e)
	}
	// The last mount at a path is the one visible there.
	if e, ok := At(ms, "/data"); !ok || e.FSType != "tmpfs" {
		t.Errorf("At(/data) = %+v, %v; want the tmpfs mounted over the ext4", e, ok)
	}
	if _, ok := At(ms, "/nothing"); ok {
		t.Error("At(/nothing) found a mount")
	}
}

func TestParseMountInfoErrors(t *testing.T) {
	for _, in := range []string{
		"22 1 259:1 / / rw shared:1 xfs /dev/x rw", // no separator
		"22 1 259 / / rw - xfs /dev/x rw",          // no minor
		"x 1 259:1 / / rw - xfs /dev/x rw",         // bad id
		"22 1 259:1 / - xfs",                       // too short
	} {
		if _, err := ParseMountInfo(strings.NewReader(in + "\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseMountInfo(%q) error = %v, want one naming line 1", in, err)
		}
	}
}

func TestReadMountInfoReal(t *testing.T) {
	ms, err := ReadMountInfo("")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := At(ms, "/"); !ok {
		t.Error("the real mountinfo has no root mount")
	}
}
