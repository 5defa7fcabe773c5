// Package blockdevtest makes real block devices for tests: loop devices over sparse image files,
// with or without an ext4 file system, and a by-id directory whose links make a loop device
// look like an attached EBS volume (loop devices have no serial). Everything it creates —
// mounts, loop devices, image files, device nodes — is removed when the test ends, also when it
// fails. It needs root; without it the test is skipped (failed when SPOTMAX_REQUIRE_ASSETS=1).
package blockdevtest

import (
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/internal/testassets"
)

// Require skips (fails in CI) a test that cannot make loop devices: not root, or no losetup,
// mkfs.ext4, blkid, lsblk or mount.
func Require(t testing.TB) {
	t.Helper()
	testassets.Root(t)
	for _, p := range []string{"losetup", "mkfs.ext4", "blkid", "lsblk", "mount", "umount"} {
		if _, err := exec.LookPath(p); err != nil {
			testassets.Missing(t, p+" is not installed (apt-get install util-linux mount e2fsprogs)")
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		testassets.Missing(t, "no /dev/loop-control: the loop driver is not available ("+err.Error()+")")
	}
}

// Loop is a loop device over an image file.
type Loop struct {
	Dev   string // /dev/loopN
	Image string
}

// NewLoop attaches a sparse image of sizeMiB to a free loop device, formatted with ext4 when
// format is set, and detaches it when the test ends.
func NewLoop(t testing.TB, sizeMiB int, format bool) *Loop {
	t.Helper()
	Require(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.Truncate(mustCreate(t, img), int64(sizeMiB)<<20); err != nil {
		t.Fatalf("sizing %s: %v", img, err)
	}
	dev := attach(t, img)
	l := &Loop{Dev: dev, Image: img}
	t.Cleanup(func() { Detach(t, dev) })
	if format {
		run(t, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", dev)
	}
	return l
}

func mustCreate(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("creating %s: %v", path, err)
	}
	_ = f.Close()
	return path
}

// attach binds img to a free loop device. When the kernel offers a device whose node is missing
// (/dev without devtmpfs, as in some containers), the node is made with mknod and removed at
// the end of the test.
func attach(t testing.TB, img string) string {
	t.Helper()
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err == nil {
		return strings.TrimSpace(string(out))
	}
	free, ferr := exec.Command("losetup", "-f").Output()
	name := strings.TrimSpace(string(free))
	n, nerr := strconv.Atoi(strings.TrimPrefix(name, "/dev/loop"))
	if ferr != nil || nerr != nil {
		t.Fatalf("attaching %s to a loop device: %v: %s", img, err, out)
	}
	if _, serr := os.Stat(name); errors.Is(serr, fs.ErrNotExist) {
		if err := unix.Mknod(name, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n)))); err != nil {
			t.Fatalf("making loop device node %s: %v", name, err)
		}
		t.Cleanup(func() { _ = os.Remove(name) })
	}
	out, err = exec.Command("losetup", "--show", name, img).CombinedOutput()
	if err != nil {
		t.Fatalf("attaching %s to %s: %v: %s", img, name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Detach unmounts every mount of dev and detaches it; errors are reported, not fatal, so that
// cleanup goes on.
func Detach(t testing.TB, dev string) {
	t.Helper()
	UnmountDevice(t, dev)
	if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
		t.Logf("cleanup: detaching %s: %v: %s", dev, err, out)
	}
}

// UnmountDevice unmounts every mount of dev (lazily if it is busy, so that cleanup never hangs).
func UnmountDevice(t testing.TB, dev string) {
	t.Helper()
	mounts, err := blockdev.ReadMountInfo("")
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].Source != dev {
			continue
		}
		if err := unix.Unmount(mounts[i].MountPoint, 0); err != nil {
			if err := unix.Unmount(mounts[i].MountPoint, unix.MNT_DETACH); err != nil {
				t.Logf("cleanup: unmounting %s from %s: %v", dev, mounts[i].MountPoint, err)
			}
		}
	}
}

// Mount mounts dev at dir (creating it) and unmounts it when the test ends.
func Mount(t testing.TB, dev, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", dev, dir)
	t.Cleanup(func() { UnmountPath(t, dir) })
}

// UnmountPath unmounts whatever is mounted at dir, if anything (lazily if busy).
func UnmountPath(t testing.TB, dir string) {
	t.Helper()
	for range 8 {
		mounts, err := blockdev.ReadMountInfo("")
		if err != nil {
			return
		}
		if _, ok := blockdev.At(mounts, dir); !ok {
			return
		}
		if err := unix.Unmount(dir, 0); err != nil {
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	}
}

// WriteData mounts dev at a temporary directory, writes a file of random content and returns
// its SHA-256, then unmounts it.
func WriteData(t testing.TB, dev string, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "w")
	Mount(t, dev, dir)
	f, err := os.Create(filepath.Join(dir, "data.bin"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), crand.Reader, int64(size)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	UnmountPath(t, dir)
	return hex.EncodeToString(h.Sum(nil))
}

// Checksum returns the SHA-256 of the file WriteData wrote, read from a mounted directory.
func Checksum(t testing.TB, dir string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "data.bin"))
	if err != nil {
		t.Fatalf("reading the data written before: %v", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ByIDDir is a stand-in for /dev/disk/by-id: links named as udev names an EBS volume on a
// Nitro instance, pointing at loop devices.
type ByIDDir struct {
	Dir string
}

// NewByIDDir makes an empty by-id directory for the test.
func NewByIDDir(t testing.TB) *ByIDDir {
	t.Helper()
	return &ByIDDir{Dir: t.TempDir()}
}

// LinkName is the by-id name udev gives an EBS volume's NVMe device.
func LinkName(volumeID string) string {
	return "nvme-Amazon_Elastic_Block_Store_" + blockdev.SerialOf(volumeID)
}

// Attach makes dev appear as the EBS volume volumeID, as udev does when the volume is attached.
func (b *ByIDDir) Attach(t testing.TB, volumeID, dev string) {
	t.Helper()
	if err := os.Symlink(dev, filepath.Join(b.Dir, LinkName(volumeID))); err != nil {
		t.Fatalf("linking %s as volume %s: %v", dev, volumeID, err)
	}
}

// Remove makes volumeID disappear, as when the volume is detached.
func (b *ByIDDir) Remove(t testing.TB, volumeID string) {
	t.Helper()
	if err := os.Remove(filepath.Join(b.Dir, LinkName(volumeID))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// DevDir is a stand-in for /dev on a Xen instance, where an EBS volume attached as /dev/sdf
// appears as /dev/xvdf with no serial: entries named as the kernel names such disks, linked to
// loop devices (a link rather than a device node, so that it works on a nodev file system too).
type DevDir struct {
	Dir string
}

// NewDevDir makes an empty device directory for the test.
func NewDevDir(t testing.TB) *DevDir {
	t.Helper()
	return &DevDir{Dir: t.TempDir()}
}

// Add makes dev appear under name (e.g. xvdf), as the kernel does when EC2 attaches a volume.
func (d *DevDir) Add(t testing.TB, name, dev string) string {
	t.Helper()
	p := filepath.Join(d.Dir, name)
	if err := os.Symlink(dev, p); err != nil {
		t.Fatalf("making %s appear as %s: %v", dev, p, err)
	}
	return p
}
