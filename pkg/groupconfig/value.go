package groupconfig

import (
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind is the value type of a tag.
type Kind int

// The kinds of tag values.
const (
	// KindString is any non-empty string.
	KindString Kind = iota + 1
	// KindBool is a boolean as strconv.ParseBool reads it, written
	// "true"/"false".
	KindBool
	// KindInt is a non-negative whole number.
	KindInt
	// KindSeconds is a whole number of seconds, ≥ 0.
	KindSeconds
	// KindMinutes is a whole number of minutes, ≥ 0.
	KindMinutes
	// KindHours is a whole number of hours, ≥ 0.
	KindHours
	// KindDevice is a block device name starting with /dev/, like /dev/sdf
	// or /dev/xvdf.
	KindDevice
	// KindPath is a clean absolute path other than "/".
	KindPath
	// KindPort is a TCP port, 1-65535.
	KindPort
	// KindInstanceType is an EC2 instance type, family.size like m5.large.
	KindInstanceType
	// KindEnum is one of the Def's Enum values.
	KindEnum
	// KindDeviceList is one or more KindDevice names separated by commas, at
	// most MaxDataDevices, no two naming the same disk.
	KindDeviceList
	// KindPathList is one or more KindPath paths separated by commas, no two
	// equal and none inside another.
	KindPathList
)

// MaxDataDevices is how many data devices a group may list in
// spotmax:persistence_dev: a replacement's journal records every data volume
// with its device in one tag, and an EC2 tag value holds 256 characters
// ("/dev/sdf=vol-0123456789abcdef0 " is 31 of them).
const MaxDataDevices = 8

var kindNames = map[Kind]string{
	KindString:       "string",
	KindBool:         "bool",
	KindInt:          "int",
	KindSeconds:      "seconds",
	KindMinutes:      "minutes",
	KindHours:        "hours",
	KindDevice:       "device",
	KindPath:         "path",
	KindPort:         "port",
	KindInstanceType: "instance type",
	KindEnum:         "enum",
	KindDeviceList:   "device list",
	KindPathList:     "path list",
}

// String returns the name of the kind as docs show it, e.g. "seconds".
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Unit returns the unit of a time kind (time.Second, time.Minute,
// time.Hour) and 0 for the other kinds.
func (k Kind) Unit() time.Duration {
	switch k {
	case KindSeconds:
		return time.Second
	case KindMinutes:
		return time.Minute
	case KindHours:
		return time.Hour
	}
	return 0
}

func unitName(k Kind) string {
	switch k {
	case KindSeconds:
		return "seconds"
	case KindMinutes:
		return "minutes"
	case KindHours:
		return "hours"
	}
	return "units"
}

// systemDirs are mount points the agent must never take over: it unmounts
// whatever is mounted at the mount path.
var systemDirs = []string{
	"/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root",
	"/run", "/sbin", "/sys", "/usr", "/var",
}

var (
	deviceRE       = regexp.MustCompile(`^/dev/[a-z][a-z0-9]{0,31}$`)
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*\.[a-z0-9]+(-[a-z0-9]+)*$`)
)

const (
	maxPathLen         = 1024
	maxInstanceTypeLen = 64
)

// check validates v strictly, as it must appear in a tag value. It returns
// a reason ("" when v is valid) and possibly a hint.
func (d Def) check(v string) (reason, hint string) {
	switch d.Kind {
	case KindString:
		if v == "" {
			return "must not be empty", ""
		}
	case KindBool:
		if _, err := strconv.ParseBool(v); err != nil {
			return "not a boolean (true or false)", ""
		}
	case KindInt:
		n, r := parseCount(v, "")
		if r != "" {
			return r, ""
		}
		if d.Key == TagMaxNumOfTerminatedOneTime && n < 1 {
			return "must be at least 1", ""
		}
		if d.Max > 0 && n > d.Max {
			return fmt.Sprintf("must be at most %d", d.Max), ""
		}
	case KindSeconds, KindMinutes, KindHours:
		n, r := parseCount(v, unitName(d.Kind))
		if r != "" {
			return r, ""
		}
		if n > math.MaxInt64/int64(d.Kind.Unit()) {
			return "too large", ""
		}
		if d.Max > 0 && n > d.Max {
			return fmt.Sprintf("must be at most %d %s", d.Max, unitName(d.Kind)), ""
		}
	case KindPort:
		n, r := parseCount(v, "")
		if r != "" || n < 1 || n > 65535 {
			return "not a port number (1-65535)", ""
		}
	case KindDevice:
		return checkDevice(d.Key, v)
	case KindPath:
		return checkPath(d.Key, v)
	case KindDeviceList:
		return checkDeviceList(d.Key, v)
	case KindPathList:
		return checkPathList(d.Key, v)
	case KindInstanceType:
		return checkInstanceType(v)
	case KindEnum:
		if !slices.Contains(d.Enum, v) {
			return "must be one of: " + strings.Join(d.Enum, ", "), ""
		}
	default:
		return "tag of unknown kind " + d.Kind.String(), ""
	}
	return "", ""
}

// parseCount reads a whole number written with decimal digits only.
func parseCount(v, unit string) (int64, string) {
	what := "a whole number"
	if unit != "" {
		what += " of " + unit
	}
	if !allDigits(v) {
		if rest, ok := strings.CutPrefix(v, "-"); ok && allDigits(rest) {
			return 0, "must not be negative"
		}
		return 0, "not " + what
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, "too large"
	}
	return n, ""
}

func checkDevice(key, v string) (reason, hint string) {
	if !deviceRE.MatchString(v) {
		if !strings.HasPrefix(v, "/dev/") && deviceRE.MatchString("/dev/"+v) {
			return "not a device name like /dev/sdf", fmt.Sprintf("did you mean %q?", "/dev/"+v)
		}
		return "not a device name like /dev/sdf", ""
	}
	if r := reservedRoot(v); r != "" && key == TagPersistenceDev {
		return rootReason(r), "the data volume needs its own device, e.g. /dev/sdf"
	}
	return "", ""
}

// splitList splits a list tag value at its commas, each item trimmed of
// surrounding space; "" is the empty list.
func splitList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	items := strings.Split(v, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	return items
}

// inList prefixes an item's reason with the item when the list has more
// than one, so the message says which entry is wrong.
func inList(items []string, item, reason string) string {
	if len(items) == 1 {
		return reason
	}
	return quoteValue(item) + " " + reason
}

// checkDeviceList checks a list of data devices: each a device name, never
// a root device, at most MaxDataDevices, and no two the same disk (/dev/sdf
// and /dev/xvdf are one attachment point; two volumes cannot share it).
func checkDeviceList(key, v string) (reason, hint string) {
	items := splitList(v)
	if len(items) == 0 {
		return "must not be empty", ""
	}
	if len(items) > MaxDataDevices {
		return fmt.Sprintf("lists %d devices, at most %d are supported (a replacement journals every data volume in one tag)", len(items), MaxDataDevices), ""
	}
	for i, it := range items {
		if it == "" {
			return "has an empty entry", "separate devices with single commas, e.g. /dev/sdf,/dev/sdg"
		}
		if r, h := checkDevice(key, it); r != "" {
			return inList(items, it, r), h
		}
		for _, prev := range items[:i] {
			if SameDisk(prev, it) {
				return fmt.Sprintf("lists the device %s twice (%s and %s are the same attachment point)", NormalizeDevice(it), prev, it),
					"each data volume needs its own device"
			}
		}
	}
	return "", ""
}

// checkPathList checks a list of mount paths: each a clean absolute path,
// no two equal, none inside another. Nested paths are refused because the
// agent mounts and releases each volume on its own, in the order the
// volumes arrive: a volume mounted at /data after another at /data/log would
// hide it (its writes would land on the wrong volume), and /data could not be
// unmounted while /data/log is mounted inside it.
func checkPathList(key, v string) (reason, hint string) {
	items := splitList(v)
	if len(items) == 0 {
		return "must not be empty", ""
	}
	for i, it := range items {
		if it == "" {
			return "has an empty entry", "separate mount paths with single commas, e.g. /data,/log"
		}
		if r, h := checkPath(key, it); r != "" {
			return inList(items, it, r), h
		}
		for _, prev := range items[:i] {
			switch {
			case prev == it:
				return "lists the mount path " + it + " twice", "each data volume needs its own mount path"
			case strings.HasPrefix(it, prev+"/"), strings.HasPrefix(prev, it+"/"):
				return fmt.Sprintf("nests mount paths (%s and %s): each volume is mounted and released on its own, and one mounted over the other would hide it", prev, it),
					"use side-by-side paths, e.g. /data and /log"
			}
		}
	}
	return "", ""
}

func checkPath(key, v string) (reason, hint string) {
	switch {
	case v == "":
		return "must not be empty", ""
	case len(v) > maxPathLen:
		return "too long", ""
	case !utf8.ValidString(v):
		return "not valid UTF-8", ""
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return "contains control characters", ""
	case !strings.HasPrefix(v, "/"):
		return "not an absolute path", fmt.Sprintf("did you mean %q?", path.Clean("/"+v))
	case path.Clean(v) != v:
		return "not a clean path", fmt.Sprintf("did you mean %q?", path.Clean(v))
	case v == "/":
		return "must not be the root directory", ""
	case key == TagPersistenceMountPath && slices.Contains(systemDirs, v):
		return "is a system directory", ""
	}
	return "", ""
}

func checkInstanceType(v string) (reason, hint string) {
	const want = "not an instance type like m5.large"
	if strings.ContainsAny(v, ", ") {
		return "one instance type per tag", "use " + AltKey(1) + ", " + AltKey(2) + ", …"
	}
	if len(v) > maxInstanceTypeLen || !instanceTypeRE.MatchString(v) {
		return want, ""
	}
	family, _, _ := strings.Cut(v, ".")
	if !strings.ContainsAny(family, "0123456789") {
		return want, ""
	}
	return "", ""
}

// FormatValue normalises a value a person typed for this tag into the form
// written to the tag, or returns an error saying what is wrong.
//
// Surrounding space is dropped. Time tags accept a bare whole number of
// their unit or a Go duration ("80s", "2m", "1h") and render the whole
// number of units; an amount that is negative or not a whole number of units
// is an error. Booleans accept what strconv.ParseBool does, in any case, and
// render "true"/"false". Paths are cleaned, instance types and enum values
// lower-cased, a port may be written ":8500". The TagAlt Def takes a list of
// instance types separated by commas or spaces and renders it joined by
// commas; the empty list renders "".
func (d Def) FormatValue(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch d.Kind {
	case KindBool:
		b, err := strconv.ParseBool(strings.ToLower(s))
		if err != nil {
			return "", fmt.Errorf("%q is not a boolean (true or false)", s)
		}
		return strconv.FormatBool(b), nil
	case KindSeconds, KindMinutes, KindHours:
		return formatTime(d.Kind, s)
	case KindInt, KindPort:
		if d.Kind == KindPort {
			s = strings.TrimPrefix(s, ":")
		}
		s = strings.TrimPrefix(s, "+")
		if allDigits(s) {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				s = strconv.FormatInt(n, 10)
			}
		}
	case KindPath:
		if strings.HasPrefix(s, "/") {
			s = path.Clean(s)
		}
	case KindDeviceList, KindPathList:
		// Devices may be separated with commas or spaces, paths with commas only (a path may
		// contain a space); the tag holds commas.
		items := splitList(s)
		if d.Kind == KindDeviceList {
			items = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
		}
		for i, it := range items {
			if d.Kind == KindPathList && strings.HasPrefix(it, "/") {
				items[i] = path.Clean(it)
			}
		}
		s = strings.Join(items, ",")
	case KindEnum:
		s = strings.ToLower(s)
	case KindInstanceType:
		if d.Key == TagAlt {
			return formatAltList(s)
		}
		s = strings.ToLower(s)
	}
	if reason, hint := d.check(s); reason != "" {
		return "", valueError(s, reason, hint)
	}
	return s, nil
}

func valueError(v, reason, hint string) error {
	msg := quoteValue(v) + ": " + reason
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return errors.New(msg)
}

func formatTime(k Kind, s string) (string, error) {
	unit := k.Unit()
	if s == "" {
		return "", fmt.Errorf("empty, want a whole number of %s or a duration like 90s", unitName(k))
	}
	if rest := strings.TrimPrefix(s, "+"); allDigits(rest) {
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || n > math.MaxInt64/int64(unit) {
			return "", valueError(s, "too large", "")
		}
		return strconv.FormatInt(n, 10), nil
	}
	if rest, ok := strings.CutPrefix(s, "-"); ok && allDigits(rest) {
		return "", valueError(s, "must not be negative", "")
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		return "", valueError(s, fmt.Sprintf("not a whole number of %s or a duration like 90s", unitName(k)), "")
	}
	if dur < 0 {
		return "", valueError(s, "must not be negative", "")
	}
	if dur%unit != 0 {
		return "", valueError(s, "not a whole number of "+unitName(k), "")
	}
	return strconv.FormatInt(int64(dur/unit), 10), nil
}

func formatAltList(s string) (string, error) {
	items := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return r == ',' || unicode.IsSpace(r)
	})
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if reason, hint := checkInstanceType(it); reason != "" {
			return "", valueError(it, reason, hint)
		}
		if seen[it] {
			return "", valueError(it, "listed twice", "")
		}
		seen[it] = true
	}
	return strings.Join(items, ","), nil
}

// formatDuration renders d as the tag value of a time kind: the whole number
// of units, or, when d is not one (only a hand-built Config can do that), a
// Go duration that Parse rejects with a clear reason.
func formatDuration(d time.Duration, k Kind) string {
	unit := k.Unit()
	if unit == 0 || d%unit != 0 {
		return d.String()
	}
	return strconv.FormatInt(int64(d/unit), 10)
}
