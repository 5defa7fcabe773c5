package k8sdrain

import (
	"os"
	"testing"

	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

// One kube-apiserver serves every test of the package; tests isolate by unique node and
// namespace names.
func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }
