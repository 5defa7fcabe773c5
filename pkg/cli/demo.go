package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/demo"
)

func newDemoCmd(f *Factory) *cobra.Command {
	var scale float64
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Play the whole spotmax story on a simulated region, in under a minute",
		Long: `Start a simulated AWS region in-process with a fast clock, create a group of spot
instances with data volumes, Consul and Kubernetes configured, run the controller and agents
(Consul, Kubernetes and the agents' disk work are in-process stand-ins, labelled as such), and
play: a spot interruption (the data volume moves and is remounted, services deregistered, node
drained), a spot capacity outage (on-demand fallback) and its recovery (revert to spot), and
guaranteed-lifetime rotations. It prints a timeline and a summary, and exits non-zero if an
invariant broke. Needs no AWS account.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			err := demo.Run(cmd.Context(), f.IO.Out, demo.Options{Scale: scale, Log: f.Logger().With("component", "demo")})
			f.Logger().Debug("demo finished", "took", time.Since(start).String())
			return err
		},
	}
	cmd.Flags().Float64Var(&scale, "time-scale", 60, "simulated seconds per real second")
	return cmd
}
