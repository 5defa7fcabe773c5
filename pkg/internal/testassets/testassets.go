// Package testassets finds the real programs that tests run (kube-apiserver, etcd, consul,
// ec2-metadata-mock), built by scripts/build-test-assets.sh into .cache/testassets/bin.
//
// A missing program skips the test with a message on a developer machine and fails it when
// SPOTMAX_REQUIRE_ASSETS=1 (CI sets it), so a missing install step cannot pass silently.
package testassets

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir returns the directory of the built programs: SPOTMAX_ASSETS_DIR, or .cache/testassets/bin
// at the top of the module.
func Dir() string {
	if d := os.Getenv("SPOTMAX_ASSETS_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", ".cache", "testassets", "bin")
}

// Required reports whether missing prerequisites must fail tests instead of skipping them.
func Required() bool { return os.Getenv("SPOTMAX_REQUIRE_ASSETS") == "1" }

// Path returns the path of a built program, or skips (fails in CI) the test when it is missing.
func Path(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Dir(), name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	Missing(t, name+" is not built: run scripts/build-test-assets.sh (or make test-assets)")
	return ""
}

// Missing skips the test with why, or fails it when prerequisites are required.
func Missing(t testing.TB, why string) {
	t.Helper()
	if Required() {
		t.Fatalf("missing test prerequisite (SPOTMAX_REQUIRE_ASSETS=1): %s", why)
	}
	t.Skipf("skipping: %s", why)
}

// Root skips (fails in CI) a test that needs root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root (loop devices and mounts)")
	}
}
