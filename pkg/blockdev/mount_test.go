package blockdev_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/blockdev/blockdevtest"
)

// These tests use real loop devices and mounts (root only; skipped otherwise, failed in CI).

func mountedAt(t *testing.T, path string) string {
	t.Helper()
	src, err := (&blockdev.Mounter{}).MountedAt(path)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestMountSwapsPlaceholderAndKeepsData(t *testing.T) {
	ctx := context.Background()
	data := blockdevtest.NewLoop(t, 32, true)
	placeholder := blockdevtest.NewLoop(t, 16, true)
	sum := blockdevtest.WriteData(t, data.Dev, 1<<20)
	path := filepath.Join(t.TempDir(), "data")
	blockdevtest.Mount(t, placeholder.Dev, path)
	t.Cleanup(func() { blockdevtest.UnmountPath(t, path) })

	m := &blockdev.Mounter{}
	res, err := m.Mount(ctx, data.Dev, path)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	if res.Replaced != placeholder.Dev || res.Device != data.Dev || res.FSType != "ext4" || res.Already {
		t.Errorf("Mount result = %+v, want the placeholder %s replaced by %s (ext4)", res, placeholder.Dev, data.Dev)
	}
	if got := mountedAt(t, path); got != data.Dev {
		t.Fatalf("mounted at %s: %q, want %s", path, got, data.Dev)
	}
	if got := blockdevtest.Checksum(t, path); got != sum {
		t.Errorf("data checksum after the remount = %s, want %s as written", got, sum)
	}
	// Mounting again is a no-op.
	res, err = m.Mount(ctx, data.Dev, path)
	if err != nil || !res.Already {
		t.Errorf("second Mount = %+v, %v; want Already", res, err)
	}
	// Unmount releases it cleanly, and again is a no-op.
	src, err := m.Unmount(ctx, path)
	if err != nil || src != data.Dev {
		t.Fatalf("Unmount = %q, %v; want %s", src, err, data.Dev)
	}
	if src, err := m.Unmount(ctx, path); err != nil || src != "" {
		t.Errorf("second Unmount = %q, %v; want nothing to do", src, err)
	}
}

func TestMountRefusesDeviceWithoutFileSystem(t *testing.T) {
	blank := blockdevtest.NewLoop(t, 16, false)
	path := filepath.Join(t.TempDir(), "data")
	_, err := (&blockdev.Mounter{}).Mount(context.Background(), blank.Dev, path)
	if !errors.Is(err, blockdev.ErrNoFileSystem) {
		t.Fatalf("Mount(blank device) error = %v, want ErrNoFileSystem", err)
	}
	if fstype, err := blockdev.Probe(context.Background(), blank.Dev); err != nil || fstype != "" {
		t.Errorf("the blank device was changed: Probe = %q, %v; it must never be formatted", fstype, err)
	}
	if got := mountedAt(t, path); got != "" {
		t.Errorf("something is mounted at %s: %s", path, got)
	}
}

func TestMountRefusesDeviceMountedElsewhere(t *testing.T) {
	data := blockdevtest.NewLoop(t, 16, true)
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	blockdevtest.Mount(t, data.Dev, elsewhere)
	path := filepath.Join(t.TempDir(), "data")
	_, err := (&blockdev.Mounter{}).Mount(context.Background(), data.Dev, path)
	if !errors.Is(err, blockdev.ErrMountedElsewhere) {
		t.Fatalf("Mount(device mounted at %s) error = %v, want ErrMountedElsewhere", elsewhere, err)
	}
	if got := mountedAt(t, path); got != "" {
		t.Errorf("%s was mounted at %s too", got, path)
	}
}

func TestMountPathBusy(t *testing.T) {
	ctx := context.Background()
	data := blockdevtest.NewLoop(t, 16, true)
	placeholder := blockdevtest.NewLoop(t, 16, true)
	path := filepath.Join(t.TempDir(), "data")
	blockdevtest.Mount(t, placeholder.Dev, path)
	t.Cleanup(func() { blockdevtest.UnmountPath(t, path) })
	f, err := os.Create(filepath.Join(path, "open.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	m := &blockdev.Mounter{}
	if _, err := m.Mount(ctx, data.Dev, path); !errors.Is(err, blockdev.ErrBusy) {
		t.Fatalf("Mount over a busy placeholder: error = %v, want ErrBusy", err)
	}
	if got := mountedAt(t, path); got != placeholder.Dev {
		t.Fatalf("after the refused mount %s holds %q, want the placeholder %s untouched", path, got, placeholder.Dev)
	}
	if _, err := m.Unmount(ctx, path); !errors.Is(err, blockdev.ErrBusy) {
		t.Errorf("Unmount of a busy path: error = %v, want ErrBusy", err)
	}
	_ = f.Close()
	if res, err := m.Mount(ctx, data.Dev, path); err != nil || res.Replaced != placeholder.Dev {
		t.Fatalf("Mount once the placeholder is free = %+v, %v", res, err)
	}
}

func TestLocatorFindsLateDeviceAndIgnoresOthers(t *testing.T) {
	right := blockdevtest.NewLoop(t, 16, true)
	wrong := blockdevtest.NewLoop(t, 16, true)
	byID := blockdevtest.NewByIDDir(t)
	l := &blockdev.Locator{ByIDDir: byID.Dir}
	const vol, other = "vol-0aaaaaaaaaaaaaaa1", "vol-0bbbbbbbbbbbbbbb2"
	if dev, err := l.Find(vol); err != nil || dev != "" {
		t.Fatalf("Find before attach = %q, %v", dev, err)
	}
	byID.Attach(t, other, wrong.Dev)
	if dev, err := l.Find(vol); err != nil || dev != "" {
		t.Fatalf("Find with only another volume attached = %q, %v; want nothing", dev, err)
	}
	byID.Attach(t, vol, right.Dev)
	if dev, err := l.Find(vol); err != nil || dev != right.Dev {
		t.Fatalf("Find after attach = %q, %v; want %s", dev, err, right.Dev)
	}
	if id, err := l.VolumeOf(right.Dev); err != nil || id != vol {
		t.Errorf("VolumeOf(%s) = %q, %v; want %s", right.Dev, id, err, vol)
	}
	devs, err := blockdev.List(context.Background(), right.Dev, wrong.Dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].Path != right.Dev || devs[0].Type != "loop" || devs[0].Size != 16<<20 {
		t.Errorf("List(loop devices) = %+v", devs)
	}
}

func TestAttachedDeviceOnlyWhatTheRecordNames(t *testing.T) {
	data := blockdevtest.NewLoop(t, 16, false)
	other := blockdevtest.NewLoop(t, 16, false)
	devs := blockdevtest.NewDevDir(t)
	mounts, err := blockdev.ReadMountInfo("")
	if err != nil {
		t.Fatal(err)
	}
	// EC2 says /dev/sdf; nothing by that name (or xvdf) yet, only an unrelated free disk.
	devs.Add(t, "xvdg", other.Dev)
	if dev, err := blockdev.AttachedDevice(devs.Dir, "/dev/sdf", mounts, "/data"); dev != "" || err != nil {
		t.Fatalf("AttachedDevice before the device appeared = %q, %v; want nothing (never another disk)", dev, err)
	}
	xvdf := devs.Add(t, "xvdf", data.Dev)
	if dev, err := blockdev.AttachedDevice(devs.Dir, "/dev/sdf", mounts, "/data"); dev != xvdf || err != nil {
		t.Fatalf("AttachedDevice(/dev/sdf) = %q, %v; want its Xen name %s", dev, err, xvdf)
	}
	var st unix.Stat_t
	if err := unix.Stat(data.Dev, &st); err != nil {
		t.Fatal(err)
	}
	ma, mi := unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	entry := func(at string) []blockdev.MountEntry {
		return append(append([]blockdev.MountEntry(nil), mounts...), blockdev.MountEntry{Major: ma, Minor: mi, MountPoint: at, Source: data.Dev})
	}
	if _, err := blockdev.AttachedDevice(devs.Dir, "/dev/sdf", entry("/"), "/data"); !errors.Is(err, blockdev.ErrRootDisk) {
		t.Errorf("AttachedDevice of the root disk: error %v, want ErrRootDisk", err)
	}
	if _, err := blockdev.AttachedDevice(devs.Dir, "/dev/sdf", entry("/srv/other"), "/data"); !errors.Is(err, blockdev.ErrMountedElsewhere) {
		t.Errorf("AttachedDevice of a disk mounted elsewhere: error %v, want ErrMountedElsewhere", err)
	}
	if dev, err := blockdev.AttachedDevice(devs.Dir, "/dev/sdf", entry("/data"), "/data"); dev != xvdf || err != nil {
		t.Errorf("AttachedDevice of the disk already at the mount path = %q, %v; want %s", dev, err, xvdf)
	}
	if err := os.WriteFile(filepath.Join(devs.Dir, "sdh"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := blockdev.AttachedDevice(devs.Dir, "/dev/sdh", mounts, "/data"); !errors.Is(err, blockdev.ErrNotBlockDevice) {
		t.Errorf("AttachedDevice of a regular file: error %v, want ErrNotBlockDevice", err)
	}
	if _, err := blockdev.AttachedDevice(devs.Dir, "sdf", mounts, "/data"); err == nil {
		t.Error("AttachedDevice accepted a device name without /dev/")
	}
}
