package blockdev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors a caller may test for with errors.Is.
var (
	// ErrNoFileSystem: the device holds no file system. spotmax never formats a data volume, so
	// it will not mount it either.
	ErrNoFileSystem = errors.New("no file system")
	// ErrMountedElsewhere: the device is already mounted at another path; mounting a file system
	// twice is how data gets corrupted, so it is refused.
	ErrMountedElsewhere = errors.New("mounted elsewhere")
	// ErrBusy: a file system could not be unmounted because files are open on it.
	ErrBusy = errors.New("busy")
)

// Probe returns the type of the file system on dev, read from its superblock by blkid's
// low-level probe (udev's cache may be absent or stale), or "" when the device holds none.
func Probe(ctx context.Context, dev string) (string, error) {
	cmd := exec.CommandContext(ctx, "blkid", "-p", "-o", "value", "-s", "TYPE", dev)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return "", nil // blkid: nothing found
	}
	if err != nil {
		return "", fmt.Errorf("probing %s for a file system (blkid -p): %w: %s", dev, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// devNum returns the major:minor of a block device node.
func devNum(dev string) (uint32, uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return 0, 0, fmt.Errorf("reading device %s: %w", dev, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, fmt.Errorf("%s is not a block device", dev)
	}
	return unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)), nil
}

// Mounter mounts a data volume's device at its mount path and unmounts it again. Its zero value
// uses the real mountinfo and no mount options.
type Mounter struct {
	// MountInfo is the mountinfo file to read; default DefaultMountInfo.
	MountInfo string
	// Options are passed to mount -o (e.g. "noatime"); empty for none.
	Options string
}

// MountResult says what Mount did.
type MountResult struct {
	// Device is the device mounted: dev itself, or its only partition holding a file system.
	Device string
	FSType string
	// Replaced is the source of the placeholder that was unmounted from the path, if any.
	Replaced string
	// Already is set when the device was mounted at the path before the call.
	Already bool
}

// Mount mounts dev at path. It refuses a device without a file system (ErrNoFileSystem; it
// never formats one) and a device mounted at any other path (ErrMountedElsewhere). Whatever
// else is mounted at path (a placeholder) is unmounted first; if that fails because the
// placeholder is in use, Mount returns ErrBusy and changes nothing. Mounting a device that is
// already mounted at path succeeds with Already set.
func (m *Mounter) Mount(ctx context.Context, dev, path string) (MountResult, error) {
	res := MountResult{}
	path = filepath.Clean(path)
	if !filepath.IsAbs(path) {
		return res, fmt.Errorf("mounting %s: mount path %q is not absolute", dev, path)
	}
	fsdev, fstype, err := resolveFS(ctx, dev)
	if err != nil {
		return res, err
	}
	res.Device, res.FSType = fsdev, fstype
	ma, mi, err := devNum(fsdev)
	if err != nil {
		return res, err
	}
	mounts, err := ReadMountInfo(m.MountInfo)
	if err != nil {
		return res, err
	}
	cur, mounted := At(mounts, path)
	if mounted && cur.Major == ma && cur.Minor == mi {
		res.Already = true
		return res, nil
	}
	for _, e := range mounts {
		if (e.Major == ma && e.Minor == mi) || e.Source == fsdev {
			return res, fmt.Errorf("mounting %s at %s: %w: it is mounted at %s", fsdev, path, ErrMountedElsewhere, e.MountPoint)
		}
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return res, fmt.Errorf("creating mount path %s: %w", path, err)
	}
	if mounted {
		if err := unmount(path); err != nil {
			return res, fmt.Errorf("unmounting placeholder %s from %s: %w", cur.Source, path, err)
		}
		res.Replaced = cur.Source
	}
	args := []string{"-t", fstype}
	if m.Options != "" {
		args = append(args, "-o", m.Options)
	}
	args = append(args, fsdev, path)
	cmd := exec.CommandContext(ctx, "mount", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return res, fmt.Errorf("mounting %s at %s (mount %s): %w: %s", fsdev, path, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	mounts, err = ReadMountInfo(m.MountInfo)
	if err != nil {
		return res, err
	}
	if cur, ok := At(mounts, path); !ok || cur.Major != ma || cur.Minor != mi {
		return res, fmt.Errorf("mounting %s at %s: mount reported success but %s does not show it", fsdev, path, orDefault(m.MountInfo, DefaultMountInfo))
	}
	return res, nil
}

// resolveFS returns the device that holds dev's file system: dev itself, or its only
// partition with a file system.
func resolveFS(ctx context.Context, dev string) (string, string, error) {
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return "", "", fmt.Errorf("resolving device %s: %w", dev, err)
	}
	fstype, err := Probe(ctx, real)
	if err != nil {
		return "", "", err
	}
	if fstype != "" {
		return real, fstype, nil
	}
	devs, err := List(ctx, real)
	if err != nil {
		return "", "", err
	}
	var found []string
	var types []string
	for _, d := range devs {
		for _, c := range d.Children {
			if t, err := Probe(ctx, c.Path); err == nil && t != "" {
				found, types = append(found, c.Path), append(types, t)
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0], types[0], nil
	case 0:
		return "", "", fmt.Errorf("device %s: %w (spotmax never formats a data volume: create the file system once, e.g. in user data)", real, ErrNoFileSystem)
	}
	return "", "", fmt.Errorf("device %s has %d partitions with file systems (%s): cannot tell which is the data", real, len(found), strings.Join(found, ", "))
}

// Unmount syncs and unmounts the file system at path. It reports the source that was mounted
// there, or "" when nothing was (not an error: unmounting is idempotent). ErrBusy means files
// are still open on it.
func (m *Mounter) Unmount(ctx context.Context, path string) (string, error) {
	path = filepath.Clean(path)
	mounts, err := ReadMountInfo(m.MountInfo)
	if err != nil {
		return "", err
	}
	cur, ok := At(mounts, path)
	if !ok {
		return "", nil
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	// syncfs through the mount point flushes this file system only.
	if f, err := os.Open(path); err == nil {
		_ = unix.Syncfs(int(f.Fd()))
		_ = f.Close()
	}
	if err := unmount(path); err != nil {
		return cur.Source, fmt.Errorf("unmounting %s from %s: %w", cur.Source, path, err)
	}
	return cur.Source, nil
}

func unmount(path string) error {
	err := unix.Unmount(path, 0)
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("%w: files are open under %s (see fuser -vm %s)", ErrBusy, path, path)
	}
	if errors.Is(err, unix.EINVAL) {
		return nil // not a mount point (any more)
	}
	return err
}

// MountedAt returns the source device of the file system mounted at path, or "".
func (m *Mounter) MountedAt(path string) (string, error) {
	mounts, err := ReadMountInfo(m.MountInfo)
	if err != nil {
		return "", err
	}
	if e, ok := At(mounts, filepath.Clean(path)); ok {
		return e.Source, nil
	}
	return "", nil
}
