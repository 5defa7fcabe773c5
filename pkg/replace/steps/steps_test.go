package steps_test

import (
	"testing"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace/steps"
	"github.com/spotmax/spotmax/pkg/replace/steps/consul"
	"github.com/spotmax/spotmax/pkg/replace/steps/k8sdrain"
)

// TestPreDetachRegistrations checks the registered steps' order, names, metrics and the tags
// that enable them.
func TestPreDetachRegistrations(t *testing.T) {
	regs := steps.PreDetach(steps.Deps{})
	want := []struct {
		name   string
		metric metrics.Name
		cfg    groupconfig.Config // a configuration that enables the step
	}{
		{consul.StepName, metrics.ConsulDeregistered, groupconfig.Config{ConsulPort: 8500}},
		{k8sdrain.StepName, metrics.NodeDrained, groupconfig.Config{K8sConfigFilePath: "/etc/kube/config"}},
	}
	if len(regs) != len(want) {
		t.Fatalf("%d pre-detach steps registered, want %d", len(regs), len(want))
	}
	for i, w := range want {
		r := regs[i]
		if r.Step.Name() != w.name || r.Metric != w.metric {
			t.Errorf("step %d = %s with metric %q, want %s with %q", i, r.Step.Name(), r.Metric, w.name, w.metric)
		}
		cfg := w.cfg
		if !r.Step.Enabled(&inventory.Group{Name: "web", Config: &cfg}) {
			t.Errorf("%s is not enabled by %+v", w.name, w.cfg)
		}
		if r.Step.Enabled(&inventory.Group{Name: "web", Config: &groupconfig.Config{}}) {
			t.Errorf("%s is enabled for a group without its tag", w.name)
		}
	}
}
