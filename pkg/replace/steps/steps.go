// Package steps registers spotmax's pre-detach steps: the steps a replacement runs on the old
// instance after its replacement joined and before it is detached, in the order they run, each
// with the metrics event recorded when it succeeds. Each step lives in a package of its own
// under pkg/replace/steps over a pure client package (consul over pkg/consul, k8sdrain over
// pkg/kube) and implements replace.PreDetachStep (Name, Enabled, Run).
//
// Adding a pre-detach step is one new package here (a file with its Step) plus one line in
// PreDetach; docs/architecture.md shows it with the two steps below.
package steps

import (
	"log/slog"

	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/replace/steps/consul"
	"github.com/spotmax/spotmax/pkg/replace/steps/k8sdrain"
)

// Deps are what the steps take from the process that runs the workflow.
type Deps struct {
	// EC2 gives the drain step the instances' AZs and private DNS names; may be nil.
	EC2 k8sdrain.InstanceDescriber
	Log *slog.Logger
}

// PreDetach returns the pre-detach steps in the order a replacement runs them: Consul
// deregistration, then the Kubernetes drain. Each is enabled per group by its tags
// (spotmax:consul_port, spotmax:k8s_config_file_path).
func PreDetach(d Deps) []replace.PreDetach {
	return []replace.PreDetach{
		{Step: &consul.Step{Log: d.Log}, Metric: metrics.ConsulDeregistered},
		{Step: &k8sdrain.Step{EC2: d.EC2, Log: d.Log}, Metric: metrics.NodeDrained},
	}
}
