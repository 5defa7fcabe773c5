package consul_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"

	consulclient "github.com/spotmax/spotmax/pkg/consul"
	"github.com/spotmax/spotmax/pkg/consul/consultest"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
	consulstep "github.com/spotmax/spotmax/pkg/replace/steps/consul"
)

func TestStepAgainstInstanceAgent(t *testing.T) {
	// The agent of "the instance" listens on its own loopback address, as the simulated region
	// hands out with LoopbackPrivateIPs.
	srv := consultest.Start(t, consultest.Options{Bind: "127.0.0.7"})
	srv.Register(t, "web-1", "web")
	srv.Register(t, "web-1-sidecar", "web-sidecar")
	g := &inventory.Group{Name: "web", Config: &groupconfig.Config{Group: "web", ConsulPort: srv.Port}}
	step := &consulstep.Step{}
	if step.Name() != "consul-deregister" || !step.Enabled(g) {
		t.Fatalf("step %q enabled=%v", step.Name(), step.Enabled(g))
	}
	if step.Enabled(&inventory.Group{Name: "x", Config: &groupconfig.Config{}}) {
		t.Error("the step is enabled for a group without spotmax:consul_port")
	}
	target := replace.Target{Group: g, Old: inventory.Instance{ID: "i-0old", PrivateIP: "127.0.0.7"}, New: "i-0new", Reason: replace.ReasonInterruption}
	if err := step.Run(context.Background(), target); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if left := srv.Services(t); len(left) != 0 {
		sort.Strings(left)
		t.Errorf("services left on the instance's agent: %v", left)
	}
	if err := step.Run(context.Background(), target); err != nil {
		t.Errorf("second Run (idempotent): %v", err)
	}
	// No agent on the instance: reported as an error (the workflow decides what it means).
	target.Old.PrivateIP = "127.0.0.8"
	if err := step.Run(context.Background(), target); !errors.Is(err, consulclient.ErrUnreachable) || !strings.Contains(err.Error(), "i-0old") {
		t.Errorf("Run against an instance without an agent: %v, want ErrUnreachable naming the instance", err)
	}
	target.Old.PrivateIP = ""
	if err := step.Run(context.Background(), target); err == nil || !strings.Contains(err.Error(), "no private IP") {
		t.Errorf("Run without a private IP: %v", err)
	}
}
