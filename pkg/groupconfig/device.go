package groupconfig

import (
	"strings"
)

// reservedRootDevices are the device names AWS reserves for the root volume
// of Linux AMIs ("Device names on Linux instances", EC2 User Guide).
var reservedRootDevices = []string{"/dev/sda1", "/dev/xvda"}

// NormalizeDevice returns the one spelling of an EC2 device name: EC2
// reports the name used at attach time while operators write /dev/sdf or
// /dev/xvdf for the same attachment point, so /dev/xvd* becomes /dev/sd*. It
// is the only place spotmax maps device names; compare them with SameDevice.
func NormalizeDevice(dev string) string {
	if rest, ok := strings.CutPrefix(dev, "/dev/xvd"); ok {
		return "/dev/sd" + rest
	}
	return dev
}

// SameDevice reports whether a and b name the same attachment point, e.g.
// /dev/sdf and /dev/xvdf.
func SameDevice(a, b string) bool { return NormalizeDevice(a) == NormalizeDevice(b) }

// SameDisk reports whether a and b name the same disk: the same attachment
// point, or one a partition of the other. A root device named /dev/sda1 is
// the disk /dev/sda (the kernel's xvda), so /dev/sda, /dev/xvda and
// /dev/xvda1 are all that root device.
func SameDisk(a, b string) bool { return diskOf(a) == diskOf(b) }

func diskOf(dev string) string {
	n := NormalizeDevice(dev)
	if strings.HasPrefix(n, "/dev/sd") {
		n = strings.TrimRight(n, "0123456789")
	}
	return n
}

// reservedRoot returns the reserved root device name dev is the disk of, or "".
func reservedRoot(dev string) string {
	for _, r := range reservedRootDevices {
		if SameDisk(dev, r) {
			return r
		}
	}
	return ""
}

// RootDevice is a root device name and where it was seen, e.g. the
// RootDeviceName of a member ("instance i-0abc") or of the launch template's
// AMI ("image ami-0abc").
type RootDevice struct {
	Name  string
	Where string
}

// CheckDataDevice checks that dev, the spotmax:persistence_dev of group, is
// not the root device of its instances: spotmax moves the data volume to a
// replacement launched without a volume at dev, so a root device there
// would leave the replacement without a root volume and the real data
// volume to be deleted with the old instance. roots are the root device
// names known (entries with an empty Name are skipped); AWS's reserved root
// names are always checked. The error is a *ValidationError naming the
// group, the tag, the value and the root device.
func CheckDataDevice(group, dev string, roots []RootDevice) error {
	if dev == "" {
		return nil
	}
	var problems []Problem
	for _, r := range roots {
		if r.Name != "" && SameDisk(dev, r.Name) {
			problems = append(problems, Problem{Group: group, Tag: TagPersistenceDev, Value: dev,
				Reason: "is the root device " + r.Name + " of " + r.Where,
				Hint:   "the data volume needs its own device, e.g. /dev/sdf"})
			break
		}
	}
	if len(problems) == 0 {
		if r := reservedRoot(dev); r != "" {
			problems = append(problems, Problem{Group: group, Tag: TagPersistenceDev, Value: dev,
				Reason: rootReason(r), Hint: "the data volume needs its own device, e.g. /dev/sdf"})
		}
	}
	if len(problems) > 0 {
		return &ValidationError{Group: group, Problems: problems}
	}
	return nil
}

func rootReason(r string) string {
	return "is the root device " + r + " (AWS reserves /dev/sda1 and /dev/xvda for root volumes)"
}
