package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// The unit in scripts/ runs the binary where install-agent.sh puts it (/usr/local/bin); a
// package owns /usr/bin instead, so the packaged unit is the same file with that one line changed.
const (
	unitExecStart    = "ExecStart=/usr/local/bin/spotmax-agent\n"
	packageExecStart = "ExecStart=/usr/bin/spotmax-agent\n"
)

// packagedUnit writes the systemd unit for the packages beside the binary and returns its path.
func (r *Release) packagedUnit(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(r.Repo, "scripts", "spotmax-agent.service"))
	if err != nil {
		return "", err
	}
	if n := bytes.Count(b, []byte(unitExecStart)); n != 1 {
		return "", fmt.Errorf("scripts/spotmax-agent.service has %d lines %q, want exactly one", n, strings.TrimSpace(unitExecStart))
	}
	b = bytes.Replace(b, []byte(unitExecStart), []byte(packageExecStart), 1)
	path := filepath.Join(dir, "spotmax-agent.service")
	return path, writeFileAt(path, b, 0o644, r.Time())
}

// Package builds the agent's package in format (deb or rpm) for target t from
// packaging/nfpm.yaml, with nfpm as a library, and returns its file name (nfpm's conventional
// one, e.g. spotmax-agent_0.3.0-1_arm64.deb, spotmax-agent-0.3.0-1.aarch64.rpm).
func (r *Release) Package(t Target, bin, format string) (string, error) {
	if t.Cmd != "spotmax-agent" || t.GOOS != "linux" {
		return "", fmt.Errorf("packaging %s: only the linux agent is packaged", t)
	}
	unit, err := r.packagedUnit(filepath.Dir(bin))
	if err != nil {
		return "", err
	}
	dir := filepath.Join(r.Repo, "packaging")
	vars := map[string]string{
		"VERSION":      r.PlainVersion(),
		"ARCH":         t.GOARCH,
		"AGENT_BINARY": bin,
		"AGENT_UNIT":   unit,
		"PACKAGING":    dir,
	}
	cfg, err := nfpm.ParseFileWithEnvMapping(filepath.Join(dir, "nfpm.yaml"), func(k string) string { return vars[k] })
	if err != nil {
		return "", fmt.Errorf("reading packaging/nfpm.yaml: %w", err)
	}
	info, err := cfg.Get(format)
	if err != nil {
		return "", fmt.Errorf("packaging/nfpm.yaml for %s: %w", format, err)
	}
	for _, s := range []*string{&info.Scripts.PreInstall, &info.Scripts.PostInstall, &info.Scripts.PreRemove, &info.Scripts.PostRemove} {
		if *s != "" && !filepath.IsAbs(*s) {
			*s = filepath.Join(dir, *s)
		}
	}
	info.MTime = r.Time()
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return "", fmt.Errorf("packaging/nfpm.yaml: %w", err)
	}
	pkger, err := nfpm.Get(format)
	if err != nil {
		return "", fmt.Errorf("package format %q: %w", format, err)
	}
	name := pkger.ConventionalFileName(info)
	info.Target = filepath.Join(r.Out, name)
	var buf bytes.Buffer
	if err := pkger.Package(info, &buf); err != nil {
		return "", fmt.Errorf("building %s: %w", name, err)
	}
	return name, writeFileAt(info.Target, buf.Bytes(), 0o644, r.Time())
}
