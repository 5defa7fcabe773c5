package blockdev

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// DefaultMountInfo is the kernel's list of the mounts this process sees.
const DefaultMountInfo = "/proc/self/mountinfo"

// MountEntry is one line of /proc/self/mountinfo.
type MountEntry struct {
	ID, Parent   int
	Major, Minor uint32
	// Root is the directory of the file system mounted here ("/" for a whole file system).
	Root       string
	MountPoint string
	FSType     string
	// Source is the mounted device as given to mount, e.g. /dev/nvme1n1.
	Source string
}

// ParseMountInfo parses the format of /proc/<pid>/mountinfo (proc(5)).
func ParseMountInfo(r io.Reader) ([]MountEntry, error) {
	var out []MountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		e, err := parseMountLine(text)
		if err != nil {
			return nil, fmt.Errorf("parsing mountinfo line %d: %w", line, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return out, nil
}

func parseMountLine(s string) (MountEntry, error) {
	// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
	pre, post, ok := strings.Cut(s, " - ")
	if !ok {
		return MountEntry{}, fmt.Errorf("no ' - ' separator in %q", s)
	}
	f := strings.Fields(pre)
	g := strings.Fields(post)
	if len(f) < 6 || len(g) < 2 {
		return MountEntry{}, fmt.Errorf("too few fields in %q", s)
	}
	var e MountEntry
	var err error
	if e.ID, err = strconv.Atoi(f[0]); err != nil {
		return e, fmt.Errorf("mount id %q: %w", f[0], err)
	}
	if e.Parent, err = strconv.Atoi(f[1]); err != nil {
		return e, fmt.Errorf("parent id %q: %w", f[1], err)
	}
	maj, min, ok := strings.Cut(f[2], ":")
	if !ok {
		return e, fmt.Errorf("device %q is not major:minor", f[2])
	}
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return e, fmt.Errorf("device %q is not major:minor", f[2])
	}
	e.Major, e.Minor = uint32(ma), uint32(mi)
	e.Root = unescapeMount(f[3])
	e.MountPoint = unescapeMount(f[4])
	e.FSType = g[0]
	e.Source = unescapeMount(g[1])
	return e, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) the kernel writes in mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ReadMountInfo reads and parses a mountinfo file (DefaultMountInfo when path is "").
func ReadMountInfo(path string) ([]MountEntry, error) {
	path = orDefault(path, DefaultMountInfo)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return ParseMountInfo(bytes.NewReader(b))
}

// At returns the mount that is visible at path (the last one mounted there), if any.
func At(mounts []MountEntry, path string) (MountEntry, bool) {
	var found MountEntry
	ok := false
	for _, m := range mounts {
		if m.MountPoint == path {
			found, ok = m, true
		}
	}
	return found, ok
}
