package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Release is one build of the repository at one commit: what goes into the binaries' version
// and every file time of the artifacts.
type Release struct {
	// Repo is the repository root; Out the directory the artifacts are written to.
	Repo, Out string
	// Version is the release version, e.g. v0.3.0 (a "v" and semantic version; the packages
	// drop the "v").
	Version string
	// Commit is the full commit id the binaries report.
	Commit string
	// Epoch is SOURCE_DATE_EPOCH: the commit time, every file's mtime and the binaries' date.
	Epoch int64
}

// Date is the release's source date, in the form the binaries print.
func (r *Release) Date() string {
	return time.Unix(r.Epoch, 0).UTC().Format(time.RFC3339)
}

// Time is the release's source date as a time.
func (r *Release) Time() time.Time { return time.Unix(r.Epoch, 0).UTC() }

// PlainVersion is the version without its leading "v", as archive names and packages use it.
func (r *Release) PlainVersion() string { return strings.TrimPrefix(r.Version, "v") }

var semverRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// releaseFromEnv takes VERSION, COMMIT and SOURCE_DATE_EPOCH from the environment, and what is
// not set from git: the newest v* tag (git describe), else a Go-style pseudo-version
// v0.0.0-<commit time>-<short commit>; "-dirty" marks uncommitted changes.
func releaseFromEnv(ctx context.Context, repo string, getenv func(string) string) (*Release, error) {
	r := &Release{Repo: repo, Version: getenv("VERSION"), Commit: getenv("COMMIT")}
	var err error
	if r.Commit == "" {
		if r.Commit, err = git(ctx, repo, "rev-parse", "HEAD"); err != nil {
			return nil, err
		}
	}
	if s := getenv("SOURCE_DATE_EPOCH"); s != "" {
		if r.Epoch, err = strconv.ParseInt(s, 10, 64); err != nil || r.Epoch < 0 {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds since 1970", s)
		}
	} else {
		s, err := git(ctx, repo, "log", "-1", "--format=%ct", r.Commit)
		if err != nil {
			return nil, err
		}
		if r.Epoch, err = strconv.ParseInt(s, 10, 64); err != nil {
			return nil, fmt.Errorf("commit time %q of %s: %w", s, r.Commit, err)
		}
	}
	if r.Version == "" {
		if v, err := git(ctx, repo, "describe", "--tags", "--match", "v[0-9]*", "--dirty"); err == nil {
			r.Version = v
		} else {
			r.Version = fmt.Sprintf("v0.0.0-%s-%.12s", r.Time().Format("20060102150405"), r.Commit)
			if st, err := git(ctx, repo, "status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
				r.Version += "-dirty"
			}
		}
	}
	if !semverRE.MatchString(r.Version) {
		return nil, fmt.Errorf("version %q is not a semantic version with a leading v (e.g. v1.2.3, v1.2.3-rc.1)", r.Version)
	}
	return r, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// Target is one binary for one platform.
type Target struct{ Cmd, GOOS, GOARCH string }

func (t Target) String() string { return t.Cmd + "/" + t.GOOS + "/" + t.GOARCH }

// allTargets is what a release ships: both binaries for Linux on x86-64 and Graviton, and the
// operator's CLI for macOS.
var allTargets = []Target{
	{"spotmax", "linux", "amd64"}, {"spotmax", "linux", "arm64"},
	{"spotmax", "darwin", "amd64"}, {"spotmax", "darwin", "arm64"},
	{"spotmax-agent", "linux", "amd64"}, {"spotmax-agent", "linux", "arm64"},
}

func parseTargets(s string) ([]Target, error) {
	var ts []Target
	for _, f := range strings.Split(s, ",") {
		p := strings.Split(strings.TrimSpace(f), "/")
		if len(p) != 3 {
			return nil, fmt.Errorf("target %q: want CMD/GOOS/GOARCH, e.g. spotmax-agent/linux/arm64", f)
		}
		t := Target{p[0], p[1], p[2]}
		known := false
		for _, a := range allTargets {
			known = known || a == t
		}
		if !known {
			return nil, fmt.Errorf("target %q is not a release target (%v)", f, allTargets)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// Build compiles one target into Out/build/GOOS_GOARCH/CMD and returns its path. The flags are
// those of a reproducible build: no paths, no build id, no VCS stamp, no cgo, and the Go
// environment's architecture levels pinned so that a developer's GOAMD64 does not leak in.
func (r *Release) Build(ctx context.Context, t Target) (string, error) {
	out := filepath.Join(r.Out, "build", t.GOOS+"_"+t.GOARCH, t.Cmd)
	const pkg = "github.com/spotmax/spotmax/pkg/version"
	ldflags := fmt.Sprintf("-s -w -buildid= -X %s.Version=%s -X %s.commit=%s -X %s.date=%s",
		pkg, r.Version, pkg, r.Commit, pkg, r.Date())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, "./cmd/"+t.Cmd)
	cmd.Dir = r.Repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.GOOS, "GOARCH="+t.GOARCH,
		"GOAMD64=v1", "GOARM64=v8.0", "GOFLAGS=", "GOEXPERIMENT=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w: %s", t, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Dist builds the targets, their archives and, for each linux spotmax-agent target, its
// packages in formats; it copies install-agent.sh beside them. It returns the file names
// written in Out.
func (r *Release) Dist(ctx context.Context, targets []Target, formats []string) ([]string, error) {
	if err := os.MkdirAll(r.Out, 0o755); err != nil {
		return nil, err
	}
	var written []string
	for _, t := range targets {
		bin, err := r.Build(ctx, t)
		if err != nil {
			return nil, err
		}
		name, err := r.Archive(t, bin)
		if err != nil {
			return nil, err
		}
		written = append(written, name)
		if t.Cmd != "spotmax-agent" {
			continue
		}
		for _, f := range formats {
			name, err := r.Package(t, bin, f)
			if err != nil {
				return nil, err
			}
			written = append(written, name)
		}
	}
	// install-agent.sh is a release file of its own: user data downloads it first, checks it
	// against SHA256SUMS, and it then installs the archive.
	src := filepath.Join(r.Repo, "scripts", "install-agent.sh")
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, err
	}
	if err := writeFileAt(filepath.Join(r.Out, "install-agent.sh"), b, 0o755, r.Time()); err != nil {
		return nil, err
	}
	return append(written, "install-agent.sh"), nil
}

// writeFileAt writes a file with the release's mtime, so that a copy is the same file each time.
func writeFileAt(path string, b []byte, mode os.FileMode, mtime time.Time) error {
	if err := os.WriteFile(path, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	return os.Chtimes(path, mtime, mtime)
}
