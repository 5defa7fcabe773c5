package cli

import (
	"strings"
	"testing"
	"time"
)

// TestSimServeRefusesNonLoopbackAddr is issue 11 case 9: the unauthenticated /_sim/ control API
// is not served on every interface by mistake.
func TestSimServeRefusesNonLoopbackAddr(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "10.1.2.3:4566", "example.internal:4566"} {
		_, errOut, code := run(t, "sim", "serve", "--addr", addr)
		if code != ExitUsage {
			t.Errorf("--addr %s: exit %d, want %d: %s", addr, code, ExitUsage, errOut)
		}
		for _, want := range []string{"--addr " + addr + " is not a loopback address", "/_sim/", "--allow-remote-control"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("--addr %s: stderr %q lacks %q", addr, errOut, want)
			}
		}
	}
	if _, errOut, code := run(t, "sim", "serve", "--addr", "4566"); code != ExitUsage || !strings.Contains(errOut, "want host:port") {
		t.Errorf("--addr 4566: exit %d: %s", code, errOut)
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.2:0", "localhost:0"} {
		stop := make(chan struct{})
		time.AfterFunc(500*time.Millisecond, func() { close(stop) })
		errOut, code := runUntil(t, stop, "sim", "serve", "--addr", addr)
		if code != ExitOK || !strings.Contains(errOut, "serving at http://") || strings.Contains(errOut, "warning") {
			t.Errorf("--addr %s: exit %d, stderr:\n%s", addr, code, errOut)
		}
	}
}
