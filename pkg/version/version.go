// Package version holds the build's version, set with -ldflags at build time.
package version

import "runtime/debug"

// Version is the release version; the Makefile sets it with
// -ldflags "-X github.com/spotmax/spotmax/pkg/version.Version=v0.1.0".
var Version = "dev"

// Commit returns the VCS revision the binary was built from, or "unknown".
func Commit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			if len(s.Value) > 12 {
				return s.Value[:12]
			}
			return s.Value
		}
	}
	return "unknown"
}
