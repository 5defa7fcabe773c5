// Package blockdev owns the block devices of the instance the agent runs on: listing them
// (lsblk), identifying the device of an EBS volume (NVMe serial, /dev/disk/by-id, or EC2's
// attachment record for Xen-style names; never by guessing), reading what is mounted where (/proc/self/mountinfo), and
// mounting a retained data volume at its path safely: it never formats a device, never mounts a
// device that is mounted elsewhere, and only unmounts what sits at the mount path.
package blockdev

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Device is one block device as lsblk reports it.
type Device struct {
	Name string `json:"name"`
	// Type is lsblk's TYPE: disk, part, loop, rom, lvm, ...
	Type string `json:"type"`
	// Size is in bytes.
	Size int64 `json:"size"`
	// Mountpoints lists where the device is mounted (none when unmounted).
	Mountpoints []string `json:"mountpoints,omitempty"`
	// Serial is the device's serial; for an EBS volume on Nitro the volume id without its dash.
	Serial string `json:"serial,omitempty"`
	// FSType is what udev knows of the device's file system; often empty without udev (use
	// Probe for a reliable answer).
	FSType   string   `json:"fstype,omitempty"`
	Path     string   `json:"path"`
	Children []Device `json:"children,omitempty"`
}

// lsblkColumns are the columns asked of lsblk; util-linux before 2.37 (Amazon Linux 2) has no
// MOUNTPOINTS and gets lsblkColumnsOld.
const (
	lsblkColumns    = "NAME,TYPE,SIZE,MOUNTPOINTS,SERIAL,FSTYPE,PATH"
	lsblkColumnsOld = "NAME,TYPE,SIZE,MOUNTPOINT,SERIAL,FSTYPE,PATH"
)

// rawDevice is lsblk's JSON: values are strings in old versions, numbers/arrays in new ones.
type rawDevice struct {
	Name        *string         `json:"name"`
	Kname       *string         `json:"kname"`
	Type        *string         `json:"type"`
	Size        json.RawMessage `json:"size"`
	Mountpoint  *string         `json:"mountpoint"`
	Mountpoints []*string       `json:"mountpoints"`
	Serial      *string         `json:"serial"`
	FSType      *string         `json:"fstype"`
	Path        *string         `json:"path"`
	Children    []rawDevice     `json:"children"`
}

// maxDepth bounds the nesting of children (disk → part → lvm → crypt is 4 deep).
const maxDepth = 16

// ParseLsblk parses the output of `lsblk -J -b -o NAME,TYPE,SIZE,MOUNTPOINTS,SERIAL,FSTYPE,PATH`
// (or MOUNTPOINT, for util-linux before 2.37). Children (partitions, LVM volumes) are kept
// nested under their parents.
func ParseLsblk(data []byte) ([]Device, error) {
	var doc struct {
		BlockDevices *[]rawDevice `json:"blockdevices"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parsing lsblk output: %w", err)
	}
	if doc.BlockDevices == nil {
		return nil, errors.New(`parsing lsblk output: no "blockdevices" list`)
	}
	return convert(*doc.BlockDevices, 0)
}

func convert(raws []rawDevice, depth int) ([]Device, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("parsing lsblk output: devices nested more than %d deep", maxDepth)
	}
	out := make([]Device, 0, len(raws))
	for _, r := range raws {
		d := Device{Name: str(r.Name), Type: str(r.Type), Serial: strings.TrimSpace(str(r.Serial)), FSType: str(r.FSType), Path: str(r.Path)}
		if d.Name == "" {
			d.Name = str(r.Kname)
		}
		if d.Name == "" {
			return nil, errors.New("parsing lsblk output: a device without a name")
		}
		if strings.ContainsAny(d.Name, "/\x00") {
			return nil, fmt.Errorf("parsing lsblk output: bad device name %q", d.Name)
		}
		if d.Path == "" {
			d.Path = "/dev/" + d.Name
		}
		size, err := parseSize(r.Size)
		if err != nil {
			return nil, fmt.Errorf("parsing lsblk output: size of %s: %w", d.Name, err)
		}
		d.Size = size
		for _, m := range r.Mountpoints {
			if m != nil && *m != "" {
				d.Mountpoints = append(d.Mountpoints, *m)
			}
		}
		if m := str(r.Mountpoint); m != "" && len(r.Mountpoints) == 0 {
			d.Mountpoints = append(d.Mountpoints, m)
		}
		if len(r.Children) > 0 {
			if d.Children, err = convert(r.Children, depth+1); err != nil {
				return nil, err
			}
		}
		out = append(out, d)
	}
	return out, nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// parseSize accepts a JSON number, a numeric string (lsblk before 2.33 quotes everything) or null.
func parseSize(raw json.RawMessage) (int64, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size in bytes (lsblk -b)", s)
	}
	return n, nil
}

// List runs lsblk and returns every block device. devices, when given, restricts the listing
// to those paths.
func List(ctx context.Context, devices ...string) ([]Device, error) {
	out, err := runLsblk(ctx, lsblkColumns, devices)
	if err != nil && strings.Contains(err.Error(), "unknown column") {
		out, err = runLsblk(ctx, lsblkColumnsOld, devices)
	}
	if err != nil {
		return nil, err
	}
	return ParseLsblk(out)
}

func runLsblk(ctx context.Context, cols string, devices []string) ([]byte, error) {
	args := append([]string{"-J", "-b", "-o", cols}, devices...)
	cmd := exec.CommandContext(ctx, "lsblk", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing block devices (lsblk %s): %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Walk calls fn for every device and, depth first, its children, with the top-level disk it
// belongs to.
func Walk(devs []Device, fn func(d, disk *Device)) {
	for i := range devs {
		walk(&devs[i], &devs[i], fn)
	}
}

func walk(d, disk *Device, fn func(d, disk *Device)) {
	fn(d, disk)
	for i := range d.Children {
		walk(&d.Children[i], disk, fn)
	}
}

// InUse reports whether d or any of its children is mounted.
func (d *Device) InUse() bool {
	used := false
	walk(d, d, func(c, _ *Device) { used = used || len(c.Mountpoints) > 0 })
	return used
}
