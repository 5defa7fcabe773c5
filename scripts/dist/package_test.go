package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	debName   = "spotmax-agent"
	unitPath  = "/usr/lib/systemd/system/spotmax-agent.service"
	binPath   = "/usr/bin/spotmax-agent"
	envPath   = "/etc/spotmax/agent.env"
	wantsLink = "/etc/systemd/system/multi-user.target.wants/spotmax-agent.service"
)

// mountLine is the /proc/self/mountinfo line of the mount at dir ("" when none). Only that line
// is compared: other tests may mount and unmount elsewhere meanwhile.
func mountLine(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return l
		}
	}
	return ""
}

func installed(name string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", name).Output()
	return err == nil && strings.TrimSpace(string(out)) != "not-installed"
}

// The .deb installs on this machine's Debian with dpkg: binary, unit (which systemd-analyze
// verifies as installed), a 0600 config file and the unit enabled; an upgrade keeps an edited
// config and runs the new binary; a purge leaves none of its files, and a mounted data volume
// is still mounted with its data through all of it.
func TestDebInstallUpgradePurge(t *testing.T) {
	needRoot(t)
	dpkg := needTool(t, "dpkg", "dpkg")
	sa := needTool(t, "systemd-analyze", "systemd")
	_, hasSystemctl := exec.LookPath("systemctl")
	if installed(debName) {
		t.Fatalf("%s is already installed on this machine: this test would replace it; remove it first (dpkg --purge %s)", debName, debName)
	}
	v1, v2 := release(t, "v1.2.3"), release(t, "v1.2.4")
	deb := func(r *Release) string { return filepath.Join(r.Out, "spotmax-agent_"+r.PlainVersion()+"-1_amd64.deb") }
	t.Cleanup(func() {
		if installed(debName) {
			_ = exec.Command(dpkg, "--purge", debName).Run()
		}
	})

	// A data volume (a tmpfs here) mounted where the agent would have mounted it.
	data := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "spotmax-test-data", data).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs as the data volume: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", data).Run() })
	if err := os.WriteFile(filepath.Join(data, "payload"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	mountBefore := mountLine(t, data)
	if mountBefore == "" {
		t.Fatalf("%s is not in mountinfo after mounting it", data)
	}

	mustRun(t, dpkg, "-i", deb(v1))
	if got := mustRun(t, binPath, "--version"); !strings.HasPrefix(got, "spotmax-agent v1.2.3 ") {
		t.Errorf("installed %s --version: %q", binPath, got)
	}
	for path, mode := range map[string]os.FileMode{binPath: 0o755, unitPath: 0o644, envPath: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("after dpkg -i: %v", err)
		} else if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %o, want %o", path, fi.Mode().Perm(), mode)
		}
	}
	unit, _ := os.ReadFile(unitPath)
	if !strings.Contains(string(unit), "\nExecStart=/usr/bin/spotmax-agent\n") {
		t.Errorf("installed unit does not run %s:\n%s", binPath, unit)
	}
	if out, err := exec.Command(sa, "verify", unitPath).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}
	if conf := mustRun(t, "dpkg-query", "-W", "-f=${Conffiles}", debName); !strings.Contains(conf, envPath) {
		t.Errorf("%s is not a conffile of the package: %q", envPath, conf)
	}
	if hasSystemctl == nil {
		// No systemd runs here: postinstall enabled the unit offline.
		// The link may name /lib/systemd/system on a merged-/usr system: compare what it resolves to.
		l, err := filepath.EvalSymlinks(wantsLink)
		want, _ := filepath.EvalSymlinks(unitPath)
		if err != nil || l != want {
			t.Errorf("the unit is not enabled: %s -> %q (%v), want %s", wantsLink, l, err, want)
		}
	}

	// The operator edits the config; the upgrade keeps it and brings the new binary.
	edited := "# the operator's settings\nSPOTMAX_CONSUL_MODE=off\n"
	if err := os.WriteFile(envPath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dpkg, "-i", deb(v2))
	if got := mustRun(t, binPath, "--version"); !strings.HasPrefix(got, "spotmax-agent v1.2.4 ") {
		t.Errorf("after the upgrade %s --version: %q, want v1.2.4", binPath, got)
	}
	if b, err := os.ReadFile(envPath); err != nil || string(b) != edited {
		t.Errorf("after the upgrade %s is %q (%v), want the operator's %q", envPath, b, err, edited)
	}
	if hasSystemctl == nil {
		if _, err := os.Lstat(wantsLink); err != nil {
			t.Errorf("the upgrade disabled the unit: %v", err)
		}
	}

	mustRun(t, dpkg, "--purge", debName)
	if installed(debName) {
		t.Errorf("%s is still installed after dpkg --purge", debName)
	}
	for _, p := range []string{binPath, unitPath, envPath, "/etc/spotmax", wantsLink, "/run/spotmax-agent"} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("after dpkg --purge %s is still there (%v)", p, err)
		}
	}
	if got := mountLine(t, data); got != mountBefore {
		t.Errorf("the data volume's mount changed across install, upgrade and purge:\nbefore: %s\nafter:  %s", mountBefore, got)
	}
	if b, err := os.ReadFile(filepath.Join(data, "payload")); err != nil || string(b) != "keep me" {
		t.Errorf("the data volume's file after purge: %q, %v", b, err)
	}
}

// The .rpm, read with rpm itself: its name, version and architecture, the files with their
// modes, the config file marked noreplace, the scripts and the dependency.
func TestRPMContents(t *testing.T) {
	rpm := needTool(t, "rpm", "rpm")
	rel := release(t, "v1.2.3")
	for _, c := range []struct{ goarch, rpmArch string }{{"amd64", "x86_64"}, {"arm64", "aarch64"}} {
		p := filepath.Join(rel.Out, "spotmax-agent-1.2.3-1."+c.rpmArch+".rpm")
		q := func(args ...string) string {
			return mustRun(t, rpm, append([]string{"-qp", "--nosignature", "--nodigest"}, append(args, p)...)...)
		}
		if got := q("--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}"); got != "spotmax-agent 1.2.3 1 "+c.rpmArch {
			t.Errorf("%s: %q", p, got)
		}
		files := q("--qf", "[%{FILENAMES} %{FILEMODES:perms} %{FILEFLAGS:fflags}\n]")
		for _, want := range []string{
			binPath + " -rwxr-xr-x ",
			unitPath + " -rw-r--r-- ",
			envPath + " -rw------- cn",
			"/etc/spotmax drwxr-xr-x ",
		} {
			if !strings.Contains(files, want) {
				t.Errorf("%s: no %q in\n%s", p, want, files)
			}
		}
		scripts := q("--scripts")
		for _, want := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "systemctl enable --now", "systemctl stop"} {
			if !strings.Contains(scripts, want) {
				t.Errorf("%s: scripts have no %q:\n%s", p, want, scripts)
			}
		}
		if req := q("--requires"); !strings.Contains(req, "util-linux") {
			t.Errorf("%s requires %q, want util-linux", p, req)
		}
	}
}
