// Package version holds the build's version, commit and build date, set with -ldflags at build
// time (Makefile, scripts/dist).
package version

import (
	"fmt"
	"runtime/debug"
)

// Version is the release version; the Makefile and scripts/dist set it with
// -ldflags "-X github.com/spotmax/spotmax/pkg/version.Version=v0.1.0".
var Version = "dev"

// commit and date are set with -ldflags -X (…/pkg/version.commit=<sha>, …/pkg/version.date=<RFC
// 3339>). Release builds set them from git, since the build environment may disable the VCS stamp
// (GOFLAGS=-buildvcs=false) and a reproducible build must not depend on the clock.
var commit, date string

// Commit returns the VCS revision the binary was built from: the one set at link time, else Go's
// VCS stamp, else "unknown".
func Commit() string {
	c := commit
	if c == "" {
		c = buildSetting("vcs.revision")
	}
	if c == "" {
		return "unknown"
	}
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// Date returns when the binary's source was committed (RFC 3339, UTC): the release build's
// SOURCE_DATE_EPOCH set at link time, else Go's VCS stamp, else "unknown". It is the commit time,
// not the time of the build, so that two builds of one commit are identical.
func Date() string {
	d := date
	if d == "" {
		d = buildSetting("vcs.time")
	}
	if d == "" {
		return "unknown"
	}
	return d
}

// String is the one-line form both binaries print: "v1.2.3 (commit 0123456789ab, built
// 2026-12-01T10:00:00Z)".
func String() string {
	return fmt.Sprintf("%s (commit %s, built %s)", Version, Commit(), Date())
}

func buildSetting(key string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range info.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}
