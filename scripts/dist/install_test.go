package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// installAgent runs the release's install-agent.sh --release url --root root with settings and
// returns its combined output and error.
func installAgent(t *testing.T, rel *Release, url, root string, settings ...string) (string, error) {
	t.Helper()
	args := append([]string{filepath.Join(rel.Out, "install-agent.sh"), "--release", url, "--root", root}, settings...)
	out, err := exec.Command("bash", args...).CombinedOutput()
	return string(out), err
}

// install-agent.sh takes the release archive for this machine's architecture from a release
// directory served over loopback HTTP (and file://), checks it against SHA256SUMS and installs
// the binary, the unit and the settings; an archive that does not match its checksum is refused
// and nothing is installed.
func TestInstallAgentFromRelease(t *testing.T) {
	needRoot(t)
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("no release for %s", runtime.GOARCH)
	}
	rel := release(t, "v1.2.3")
	srv := httptest.NewServer(http.FileServer(http.Dir(rel.Out)))
	defer srv.Close()

	_, archive := untar(t, filepath.Join(rel.Out, rel.ArchiveName(Target{"spotmax-agent", "linux", runtime.GOARCH})))
	top := strings.TrimSuffix(rel.ArchiveName(Target{"spotmax-agent", "linux", runtime.GOARCH}), ".tar.gz") + "/"
	for _, url := range []string{srv.URL, "file://" + rel.Out} {
		root := t.TempDir()
		out, err := installAgent(t, rel, url, root, "SPOTMAX_CONSUL_MODE=maintenance", "SPOTMAX_METRICS_ADDR=:9109")
		if err != nil {
			t.Fatalf("install-agent.sh --release %s: %v\n%s", url, err, out)
		}
		if !strings.Contains(out, "verified (sha256 ") || !strings.Contains(out, "spotmax-agent v1.2.3 ") {
			t.Errorf("install-agent.sh output does not show the checked archive and the version:\n%s", out)
		}
		bin, err := os.ReadFile(filepath.Join(root, "usr/local/bin/spotmax-agent"))
		if err != nil || !bytes.Equal(bin, archive[top+"spotmax-agent"]) {
			t.Errorf("installed binary is not the archive's (%v)", err)
		}
		unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/spotmax-agent.service"))
		if err != nil || !bytes.Equal(unit, archive[top+"spotmax-agent.service"]) {
			t.Errorf("installed unit is not the archive's (%v)", err)
		}
		env := filepath.Join(root, "etc/spotmax/agent.env")
		b, err := os.ReadFile(env)
		if err != nil || !strings.Contains(string(b), "\nSPOTMAX_CONSUL_MODE=maintenance\nSPOTMAX_METRICS_ADDR=:9109\n") {
			t.Errorf("agent.env: %q, %v", b, err)
		}
		if fi, err := os.Stat(env); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("agent.env mode: %v, %v; want 0600", fi.Mode(), err)
		}
	}

	// A tampered archive: same name, other bytes.
	bad := t.TempDir()
	for _, f := range []string{sumsFile, "install-agent.sh", rel.ArchiveName(Target{"spotmax-agent", "linux", runtime.GOARCH})} {
		b, err := os.ReadFile(filepath.Join(rel.Out, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".tar.gz") {
			b = append(b, 0)
		}
		if err := os.WriteFile(filepath.Join(bad, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	badSrv := httptest.NewServer(http.FileServer(http.Dir(bad)))
	defer badSrv.Close()
	root := t.TempDir()
	out, err := installAgent(t, rel, badSrv.URL, root)
	if err == nil || !strings.Contains(out, "checksum mismatch") || !strings.Contains(out, "refusing to install") {
		t.Errorf("install-agent.sh with a tampered archive: %v, want a refusal naming the checksum mismatch:\n%s", err, out)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("install-agent.sh installed something after refusing: %v", entries)
	}

	// A release directory without SHA256SUMS is refused too.
	empty := httptest.NewServer(http.FileServer(http.Dir(t.TempDir())))
	defer empty.Close()
	if out, err := installAgent(t, rel, empty.URL, t.TempDir()); err == nil || !strings.Contains(out, "SHA256SUMS") {
		t.Errorf("install-agent.sh without SHA256SUMS: %v\n%s", err, out)
	}
}
