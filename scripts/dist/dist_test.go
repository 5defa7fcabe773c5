package main

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The archives hold the binary, its unit and installer, dated at the source date, and the
// binaries report the release's version, commit and date; the arm64 agent is an aarch64 ELF.
func TestArchives(t *testing.T) {
	rel := release(t, "v1.2.3")
	for _, arch := range []string{"amd64", "arm64"} {
		tg := Target{"spotmax-agent", "linux", arch}
		name := rel.ArchiveName(tg)
		if want := "spotmax-agent_1.2.3_linux_" + arch + ".tar.gz"; name != want {
			t.Fatalf("archive name %s, want %s", name, want)
		}
		hdrs, data := untar(t, filepath.Join(rel.Out, name))
		top := strings.TrimSuffix(name, ".tar.gz") + "/"
		for _, f := range []string{"", "spotmax-agent", "spotmax-agent.service", "install-agent.sh", "README.md"} {
			h, ok := hdrs[top+f]
			if !ok {
				t.Errorf("%s has no %s", name, top+f)
				continue
			}
			if !h.ModTime.Equal(rel.Time()) || h.Uid != 0 || h.Uname != "root" {
				t.Errorf("%s: %s dated %s owned by %d/%s, want %s root", name, h.Name, h.ModTime, h.Uid, h.Uname, rel.Time())
			}
		}
		if m := hdrs[top+"spotmax-agent"].Mode; m != 0o755 {
			t.Errorf("%s: binary mode %o, want 755", name, m)
		}
		bin := data[top+"spotmax-agent"]
		ef, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: the binary is not ELF: %v", name, err)
		}
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
		if ef.Machine != want {
			t.Errorf("%s: binary for %v, want %v", name, ef.Machine, want)
		}
		p := filepath.Join(t.TempDir(), "spotmax-agent")
		if err := os.WriteFile(p, bin, 0o755); err != nil {
			t.Fatal(err)
		}
		fileTool := needTool(t, "file", "file")
		out := mustRun(t, fileTool, "-b", p)
		wantFile := map[string]string{"amd64": "x86-64", "arm64": "aarch64"}[arch]
		if !strings.Contains(out, wantFile) || !strings.Contains(out, "statically linked") {
			t.Errorf("file says %q of the %s agent, want %s, statically linked", out, arch, wantFile)
		}
		if arch == "amd64" {
			got := mustRun(t, p, "--version")
			want := "spotmax-agent v1.2.3 (commit " + rel.Commit[:12] + ", built 2026-01-01T00:00:00Z)\n"
			if got != want {
				t.Errorf("--version: %q, want %q", got, want)
			}
		}
	}
	// install-agent.sh and every file are in SHA256SUMS, and sha256sum agrees with it.
	sums, err := os.ReadFile(filepath.Join(rel.Out, sumsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"install-agent.sh", "spotmax-agent_1.2.3-1_amd64.deb", "spotmax-agent-1.2.3-1.x86_64.rpm", "spotmax-agent_1.2.3-1_arm64.deb", "spotmax-agent-1.2.3-1.aarch64.rpm"} {
		if !regexp.MustCompile(`(?m)^[0-9a-f]{64}  ` + regexp.QuoteMeta(f) + `$`).Match(sums) {
			t.Errorf("SHA256SUMS has no line for %s:\n%s", f, sums)
		}
	}
	cmd := exec.Command("sha256sum", "-c", sumsFile)
	cmd.Dir = rel.Out
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
	}
}

// Two builds of one commit are the same bytes: archives, packages, checksums. (The second build
// shares the Go build cache, so compilation is not redone, but linking, archiving and packaging
// are; `make dist-check` rebuilds with an empty cache.)
func TestDistIsReproducible(t *testing.T) {
	first := release(t, "v1.2.3")
	second := newRelease(t, "v1.2.3", filepath.Join(t.TempDir(), "again"))
	time.Sleep(1100 * time.Millisecond) // a clock that leaked into a file would now differ
	if _, err := second.Dist(t.Context(), testTargets, []string{"deb", "rpm"}); err != nil {
		t.Fatal(err)
	}
	if err := second.WriteSums(); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(first.Out, sumsFile))
	b, _ := os.ReadFile(filepath.Join(second.Out, sumsFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("two builds of one commit differ:\nfirst:\n%s\nsecond:\n%s", a, b)
	}
}

// Versions that are not semantic versions are refused with a message naming them.
func TestVersionIsChecked(t *testing.T) {
	env := map[string]string{"VERSION": "1.2", "SOURCE_DATE_EPOCH": testEpoch}
	_, err := releaseFromEnv(t.Context(), repoRoot(t), func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), `version "1.2"`) {
		t.Errorf("VERSION=1.2: %v, want an error naming it", err)
	}
	env = map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}
	_, err = releaseFromEnv(t.Context(), repoRoot(t), func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Errorf("SOURCE_DATE_EPOCH=yesterday: %v, want an error naming it", err)
	}
	if _, err := parseTargets("spotmax-agent/darwin/arm64"); err == nil {
		t.Error("the darwin agent is not a release target, but was accepted")
	}
}
