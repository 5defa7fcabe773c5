package kube

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The product binary links no Kubernetes client library: Go initialises every linked package
// at start, and client-go's scheme registrations alone cost every command tens of MB (see
// docs/benchmarks.md, "Start-up cost"). Test binaries may link them as the baseline.
func TestProductBinaryLinksNoKubernetesLibraries(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "list", "-deps", "./cmd/spotmax")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/spotmax: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 || !strings.Contains(string(out), "github.com/spotmax/spotmax/pkg/kube\n") {
		t.Fatalf("go list printed %d packages without pkg/kube: not the product's dependencies", len(deps))
	}
	for _, d := range deps {
		for _, banned := range []string{"k8s.io/", "sigs.k8s.io/", "github.com/go-logr/"} {
			if strings.HasPrefix(d, banned) {
				t.Errorf("cmd/spotmax links %s", d)
			}
		}
	}
}
