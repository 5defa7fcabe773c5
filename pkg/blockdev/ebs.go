package blockdev

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var volumeIDRe = regexp.MustCompile(`^vol-[0-9a-f]{8,32}$`)

// ValidVolumeID reports whether id looks like an EBS volume id (vol-0123abcd…).
func ValidVolumeID(id string) bool { return volumeIDRe.MatchString(id) }

// SerialOf returns the NVMe serial under which a Nitro instance shows the EBS volume id: the id
// without its dash (vol-0123 → vol0123).
func SerialOf(volumeID string) string { return strings.Replace(volumeID, "vol-", "vol", 1) }

// VolumeIDOfSerial is the inverse of SerialOf: the volume id of an NVMe serial, or false when
// the serial is not an EBS one.
func VolumeIDOfSerial(serial string) (string, bool) {
	serial = strings.TrimSpace(serial)
	rest, ok := strings.CutPrefix(serial, "vol")
	if !ok || strings.HasPrefix(rest, "-") {
		return "", false
	}
	id := "vol-" + rest
	if !ValidVolumeID(id) {
		return "", false
	}
	return id, true
}

// Default locations of the kernel's and udev's views of block devices.
const (
	DefaultByIDDir     = "/dev/disk/by-id"
	DefaultSysBlockDir = "/sys/block"
)

// Locator finds the block device of an EBS volume by its id, without asking EC2: through udev's
// /dev/disk/by-id links (nvme-Amazon_Elastic_Block_Store_vol0123…) and the serials the kernel
// reports in sysfs (NVMe controllers, also without udev). Both are a directory read and a few
// small files, cheap enough to poll every few milliseconds while a volume is awaited.
//
// The directories are fields so that tests can point them elsewhere: loop devices have no
// serial, so a test makes a by-id directory of its own whose links name loop devices.
type Locator struct {
	// ByIDDir is udev's by-id directory; default DefaultByIDDir. "-" disables it.
	ByIDDir string
	// SysBlockDir is the kernel's /sys/block; default DefaultSysBlockDir. "-" disables it.
	SysBlockDir string
}

// Find returns the device path of volume (e.g. /dev/nvme1n1), or "" when no device of the
// instance is that volume (yet).
func (l *Locator) Find(volumeID string) (string, error) {
	if !ValidVolumeID(volumeID) {
		return "", fmt.Errorf("finding the device of volume %q: not an EBS volume id", volumeID)
	}
	serial := SerialOf(volumeID)
	dev, err := l.findByID(serial)
	if dev != "" || err != nil {
		return dev, err
	}
	return l.findSysfs(serial)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// byIDMatches reports whether a by-id link name designates the whole device with that serial:
// "nvme-Amazon_Elastic_Block_Store_vol0123" or "…_vol0123-ns-1", not a partition ("-part1").
func byIDMatches(name, serial string) bool {
	i := strings.Index(name, serial)
	if i <= 0 || (name[i-1] != '_' && name[i-1] != '-') {
		return false
	}
	rest := name[i+len(serial):]
	if strings.Contains(rest, "-part") {
		return false
	}
	return rest == "" || strings.HasPrefix(rest, "-ns-")
}

func (l *Locator) findByID(serial string) (string, error) {
	dir := orDefault(l.ByIDDir, DefaultByIDDir)
	if dir == "-" {
		return "", nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil // no udev (or no disks with ids yet)
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		if !byIDMatches(e.Name(), serial) {
			continue
		}
		link := filepath.Join(dir, e.Name())
		dev, err := filepath.EvalSymlinks(link)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a stale link of a device that just went away
		}
		if err != nil {
			return "", fmt.Errorf("resolving %s: %w", link, err)
		}
		return dev, nil
	}
	return "", nil
}

func (l *Locator) findSysfs(serial string) (string, error) {
	dir := orDefault(l.SysBlockDir, DefaultSysBlockDir)
	if dir == "-" {
		return "", nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") {
			continue
		}
		// NVMe namespaces have the serial on their controller (device/serial); virtio and
		// some SCSI disks have their own.
		for _, f := range []string{"device/serial", "serial"} {
			b, err := os.ReadFile(filepath.Join(dir, name, f))
			if err == nil && strings.TrimSpace(string(b)) == serial {
				return "/dev/" + name, nil
			}
		}
	}
	return "", nil
}

// Serial returns the serial of a device from sysfs (for a partition, its disk's), or "".
func (l *Locator) Serial(dev string) string {
	dir := orDefault(l.SysBlockDir, DefaultSysBlockDir)
	if dir == "-" {
		return ""
	}
	name := filepath.Base(dev)
	// /sys/class/block/<name> exists for partitions too; its parent directory is the disk.
	real, err := filepath.EvalSymlinks(filepath.Join(filepath.Dir(dir), "class", "block", name))
	if err != nil {
		real = filepath.Join(dir, name)
	}
	for _, p := range []string{real, filepath.Dir(real)} {
		for _, f := range []string{"device/serial", "serial"} {
			if b, err := os.ReadFile(filepath.Join(p, f)); err == nil {
				if s := strings.TrimSpace(string(b)); s != "" {
					return s
				}
			}
		}
	}
	return ""
}

// VolumeOf returns the EBS volume id of a device (or of the disk of a partition) from its by-id
// links or its sysfs serial, or "" when it cannot tell (loop devices, Xen instances).
func (l *Locator) VolumeOf(dev string) (string, error) {
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return "", fmt.Errorf("resolving device %s: %w", dev, err)
	}
	if dir := orDefault(l.ByIDDir, DefaultByIDDir); dir != "-" {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("reading %s: %w", dir, err)
		}
		for _, e := range entries {
			target, err := filepath.EvalSymlinks(filepath.Join(dir, e.Name()))
			if err != nil || target != real {
				continue
			}
			if id, ok := volumeInLinkName(e.Name()); ok {
				return id, nil
			}
		}
	}
	if id, ok := VolumeIDOfSerial(l.Serial(real)); ok {
		return id, nil
	}
	return "", nil
}

var linkVolRe = regexp.MustCompile(`[_-](vol[0-9a-f]{8,32})(?:-ns-\d+)?(?:-part\d+)?$`)

func volumeInLinkName(name string) (string, bool) {
	m := linkVolRe.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	return VolumeIDOfSerial(m[1])
}

// AttachmentNames returns the kernel names under which the device of an EBS attachment may
// appear, given EC2's device name for it (DescribeVolumes' Attachment.Device, e.g. /dev/sdf):
// the name itself and its Xen form, /dev/sdX ↔ /dev/xvdX. Nothing for a name that is not a
// plain /dev/<name>.
func AttachmentNames(device string) []string {
	name, ok := strings.CutPrefix(device, "/dev/")
	if !ok || name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil
	}
	out := []string{name}
	if rest, ok := strings.CutPrefix(name, "sd"); ok && rest != "" {
		out = append(out, "xvd"+rest)
	} else if rest, ok := strings.CutPrefix(name, "xvd"); ok && rest != "" {
		out = append(out, "sd"+rest)
	}
	return out
}

// Errors of AttachedDevice for a device that exists but must not be mounted.
var (
	// ErrRootDisk: the device is, or holds, the root file system.
	ErrRootDisk = errors.New("is the root disk")
	// ErrNotBlockDevice: the name exists but is not a block device.
	ErrNotBlockDevice = errors.New("not a block device")
)

// AttachedDevice returns the block device, in devDir (default /dev), that EC2's attachment
// record names: device is the attachment's device name (/dev/sdf), which the kernel shows as
// itself or under its Xen name (AttachmentNames). This is how a volume is identified on
// instances whose disks carry no EBS serial: the record, for this instance, is the proof. It
// returns "" and no error while no such name exists (the device has not appeared yet), and an
// error when one exists but is not a block device, is or holds the root file system
// (ErrRootDisk), or has a file system mounted anywhere but at mountPath (ErrMountedElsewhere).
// mounts is the mount table to check against (ReadMountInfo).
func AttachedDevice(devDir, device string, mounts []MountEntry, mountPath string) (string, error) {
	names := AttachmentNames(device)
	if len(names) == 0 {
		return "", fmt.Errorf("EC2 attachment device %q is not a /dev/<name> device name", device)
	}
	devDir = orDefault(devDir, "/dev")
	for _, n := range names {
		p := filepath.Join(devDir, n)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		ma, mi, err := devNum(p)
		if err != nil {
			return "", fmt.Errorf("device %s of attachment %s: %w (%w)", p, device, ErrNotBlockDevice, err)
		}
		for _, m := range mounts {
			if !(m.Major == ma && m.Minor == mi) && !isPartitionOf(m.Major, m.Minor, ma, mi) {
				continue
			}
			switch {
			case m.MountPoint == "/":
				return "", fmt.Errorf("device %s of attachment %s (%d:%d) %w: it holds /", p, device, ma, mi, ErrRootDisk)
			case mountPath != "" && m.MountPoint == filepath.Clean(mountPath):
			default:
				return "", fmt.Errorf("device %s of attachment %s: %w: it is mounted at %s", p, device, ErrMountedElsewhere, m.MountPoint)
			}
		}
		return p, nil
	}
	return "", nil
}

// sysDevBlock is the kernel's index of block devices by major:minor.
const sysDevBlock = "/sys/dev/block"

// isPartitionOf reports whether the block device pma:pmi is a partition of the disk ma:mi.
func isPartitionOf(pma, pmi, ma, mi uint32) bool {
	dir, err := filepath.EvalSymlinks(filepath.Join(sysDevBlock, fmt.Sprintf("%d:%d", pma, pmi)))
	if err != nil {
		return false
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "dev"))
	return err == nil && strings.TrimSpace(string(b)) == fmt.Sprintf("%d:%d", ma, mi)
}
