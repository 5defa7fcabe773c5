package blockdev

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/spotmax/spotmax/pkg/internal/testassets"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lsblk 2.38 on a Nitro instance: EBS root and data volumes, an instance-store disk.
const lsblkNitro = `{
   "blockdevices": [
      {"name":"nvme0n1", "type":"disk", "size":8589934592, "mountpoints":[null], "serial":"vol0a1b2c3d4e5f60718", "fstype":null, "path":"/dev/nvme0n1",
         "children": [
            {"name":"nvme0n1p1", "type":"part", "size":8578383360, "mountpoints":["/"], "serial":null, "fstype":"xfs", "path":"/dev/nvme0n1p1"},
            {"name":"nvme0n1p128", "type":"part", "size":10485760, "mountpoints":["/boot/efi"], "serial":null, "fstype":"vfat", "path":"/dev/nvme0n1p128"}
         ]
      },
      {"name":"nvme1n1", "type":"disk", "size":107374182400, "mountpoints":["/data"], "serial":"vol0123456789abcdef0", "fstype":"ext4", "path":"/dev/nvme1n1"},
      {"name":"nvme2n1", "type":"disk", "size":75000000000, "mountpoints":[null], "serial":"AWS1A2B3C4D5E6F7G8H", "fstype":null, "path":"/dev/nvme2n1"}
   ]
}`

// lsblk 2.30 (Amazon Linux 2, Xen): every value a string, MOUNTPOINT singular.
const lsblkXenOld = `{
   "blockdevices": [
      {"name": "xvda", "type": "disk", "size": "8589934592", "mountpoint": null, "serial": null, "fstype": null, "path": "/dev/xvda",
         "children": [
            {"name": "xvda1", "type": "part", "size": "8588886016", "mountpoint": "/", "serial": null, "fstype": "xfs", "path": "/dev/xvda1"}
         ]
      },
      {"name": "xvdf", "type": "disk", "size": "107374182400", "mountpoint": "/data", "serial": null, "fstype": "ext4", "path": "/dev/xvdf"},
      {"name": "xvdg", "type": "disk", "size": "107374182400", "mountpoint": null, "serial": null, "fstype": "ext4", "path": "/dev/xvdg"}
   ]
}`

func TestParseLsblk(t *testing.T) {
	got, err := ParseLsblk([]byte(lsblkNitro))
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{Name: "nvme0n1", Type: "disk", Size: 8589934592, Serial: "vol0a1b2c3d4e5f60718", Path: "/dev/nvme0n1", Children: []Device{
			{Name: "nvme0n1p1", Type: "part", Size: 8578383360, Mountpoints: []string{"/"}, FSType: "xfs", Path: "/dev/nvme0n1p1"},
			{Name: "nvme0n1p128", Type: "part", Size: 10485760, Mountpoints: []string{"/boot/efi"}, FSType: "vfat", Path: "/dev/nvme0n1p128"},
		}},
		{Name: "nvme1n1", Type: "disk", Size: 107374182400, Mountpoints: []string{"/data"}, Serial: "vol0123456789abcdef0", FSType: "ext4", Path: "/dev/nvme1n1"},
		{Name: "nvme2n1", Type: "disk", Size: 75000000000, Serial: "AWS1A2B3C4D5E6F7G8H", Path: "/dev/nvme2n1"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseLsblk (-want +got):\n%s", d)
	}
	if !got[0].InUse() || got[2].InUse() {
		t.Errorf("InUse: root disk %v (want true), instance store %v (want false)", got[0].InUse(), got[2].InUse())
	}
}

func TestParseLsblkOldFormat(t *testing.T) {
	got, err := ParseLsblk([]byte(lsblkXenOld))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Children[0].Mountpoints[0] != "/" || got[1].Size != 107374182400 || got[2].Mountpoints != nil {
		t.Errorf("ParseLsblk(old format) = %+v", got)
	}
}

func TestParseLsblkErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"not json", "NAME TYPE\nloop0 loop", "parsing lsblk output"},
		{"no list", `{"devices":[]}`, `no "blockdevices" list`},
		{"no name", `{"blockdevices":[{"type":"disk"}]}`, "without a name"},
		{"bad size", `{"blockdevices":[{"name":"sda","size":"1.5G"}]}`, `size of sda: "1.5G" is not a size in bytes`},
		{"negative size", `{"blockdevices":[{"name":"sda","size":-1}]}`, "size of sda"},
		{"slash in name", `{"blockdevices":[{"name":"../etc","size":1}]}`, "bad device name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLsblk([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseLsblk(%s) error = %v, want it to contain %q", tc.in, err, tc.want)
			}
		})
	}
	deep := strings.Repeat(`{"name":"d","children":[`, maxDepth+3) + strings.Repeat(`]}`, maxDepth+3)
	if _, err := ParseLsblk([]byte(`{"blockdevices":[` + deep + `]}`)); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Errorf("deeply nested devices: error = %v, want a nesting error", err)
	}
}

func TestAttachmentNames(t *testing.T) {
	for in, want := range map[string][]string{
		"/dev/sdf": {"sdf", "xvdf"}, "/dev/xvdf": {"xvdf", "sdf"}, "/dev/xvdba": {"xvdba", "sdba"},
		"/dev/nvme1n1": {"nvme1n1"}, "sdf": nil, "/dev/": nil, "/dev/../sda": nil, "/dev/sd": {"sd"},
	} {
		if got := AttachmentNames(in); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("AttachmentNames(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestListRealDevices(t *testing.T) {
	if _, err := List(context.Background()); err != nil {
		testassets.Missing(t, fmt.Sprintf("lsblk does not run here (Debian package util-linux): %v", err))
	}
	devs, err := List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) == 0 {
		t.Fatal("lsblk listed no block devices at all")
	}
	if _, err := List(context.Background(), "/dev/does-not-exist"); err == nil || !strings.Contains(err.Error(), "lsblk") {
		t.Errorf("List(missing device) error = %v, want an lsblk error", err)
	}
}

func FuzzParseLsblk(f *testing.F) {
	f.Add([]byte(lsblkNitro))
	f.Add([]byte(lsblkXenOld))
	f.Add([]byte(`{"blockdevices":[]}`))
	f.Add([]byte(`{"blockdevices":[{"name":"a","size":null,"mountpoints":[null,"/x"],"children":[{"name":"b"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		devs, err := ParseLsblk(data)
		if err != nil {
			return
		}
		// What parses must be well formed and survive a round trip through JSON.
		Walk(devs, func(d, disk *Device) {
			if d.Name == "" || strings.ContainsAny(d.Name, "/\x00") || d.Size < 0 || d.Path == "" {
				t.Fatalf("malformed device %+v", *d)
			}
			for _, m := range d.Mountpoints {
				if m == "" {
					t.Fatalf("empty mount point in %+v", *d)
				}
			}
		})
		b, err := json.Marshal(map[string]any{"blockdevices": devs})
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseLsblk(b)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", b, err)
		}
		if d := cmp.Diff(devs, again); d != "" {
			t.Fatalf("round trip changed the devices (-first +second):\n%s", d)
		}
	})
}
