package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testEpoch is the SOURCE_DATE_EPOCH of the tests' releases (2026-01-01T00:00:00Z).
const testEpoch = "1767225600"

// missing skips the test with why, or fails it when SPOTMAX_REQUIRE_ASSETS=1 (CI), as
// pkg/internal/testassets does in the main module.
func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("SPOTMAX_REQUIRE_ASSETS") == "1" {
		t.Fatalf("missing test prerequisite (SPOTMAX_REQUIRE_ASSETS=1): %s", why)
	}
	t.Skipf("skipping: %s", why)
}

func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, name+" is not installed (Debian package "+pkg+")")
	}
	return p
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "needs root (installs a package with dpkg)")
	}
}

// built is one release built for the tests: the agent for linux/amd64 and linux/arm64 with its
// .deb and .rpm, in a temporary directory shared by the test binary.
type built struct {
	rel   *Release
	files []string
	err   error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*built{}
	tmpRoot  string
)

func TestMain(m *testing.M) {
	var err error
	if tmpRoot, err = os.MkdirTemp("", "spotmax-dist-test-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// testTargets are what the tests build: the agent, for both architectures (an arm64 binary
// must be in its archive), with packages.
var testTargets = []Target{{"spotmax-agent", "linux", "amd64"}, {"spotmax-agent", "linux", "arm64"}}

// headCommit is HEAD when the test binary first asked, so that every release of one test run
// names one commit even if a commit is made meanwhile.
var headCommit = sync.OnceValues(func() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	return git(context.Background(), root, "rev-parse", "HEAD")
})

// newRelease is the release of version at HEAD with the tests' source date, writing to out.
func newRelease(t *testing.T, version, out string) *Release {
	t.Helper()
	commit, err := headCommit()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VERSION": version, "SOURCE_DATE_EPOCH": testEpoch, "COMMIT": commit}
	rel, err := releaseFromEnv(context.Background(), repoRoot(t), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	rel.Out = out
	return rel
}

// release builds (once per test binary) version's agent archives and packages.
func release(t *testing.T, version string) *Release {
	t.Helper()
	buildsMu.Lock()
	defer buildsMu.Unlock()
	b, ok := builds[version]
	if !ok {
		b = &built{rel: newRelease(t, version, filepath.Join(tmpRoot, version))}
		b.files, b.err = b.rel.Dist(context.Background(), testTargets, []string{"deb", "rpm"})
		if b.err == nil {
			b.err = b.rel.WriteSums()
		}
		builds[version] = b
	}
	if b.err != nil {
		t.Fatalf("building release %s: %v", version, b.err)
	}
	return b.rel
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// untar reads a .tar.gz (or a plain .tar) into name → header and contents.
func untar(t *testing.T, path string) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r = zr
	}
	tr := tar.NewReader(r)
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hdrs[h.Name], data[h.Name] = h, b
	}
	return hdrs, data
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
