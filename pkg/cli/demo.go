package cli

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
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
invariant broke. Needs no AWS account.

The components' own logs are kept out of the timeline: they are printed after it when the demo
fails or with --log-level debug.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			var level slog.Level
			_ = level.UnmarshalText([]byte(f.LogLevel))
			logs := newDeferredLog(level)
			err := demo.Run(cmd.Context(), f.IO.Out, demo.Options{Scale: scale, Log: logs.logger.With("component", "demo")})
			logs.dump(f.IO.ErrOut, err != nil || level <= slog.LevelDebug)
			f.Logger().Debug("demo finished", "took", time.Since(start).String())
			return err
		},
	}
	cmd.Flags().Float64Var(&scale, "time-scale", 60, "simulated seconds per real second")
	return cmd
}

// deferredLog keeps log lines in memory so that they do not interleave with a timeline on the
// terminal, and prints them afterwards.
type deferredLog struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	logger *slog.Logger
}

func newDeferredLog(level slog.Level) *deferredLog {
	d := &deferredLog{}
	d.logger = slog.New(slog.NewTextHandler(d, &slog.HandlerOptions{Level: level}))
	return d
}

func (d *deferredLog) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.buf.Write(p)
}

// dump prints the kept lines when all is set, else says how many were kept.
func (d *deferredLog) dump(w io.Writer, all bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := strings.Count(d.buf.String(), "\n")
	switch {
	case n == 0:
	case all:
		fmt.Fprintf(w, "\ncomponent logs (%d lines, kept out of the timeline):\n%s", n, d.buf.String())
	default:
		fmt.Fprintf(w, "(%d component log lines kept out of the timeline; --log-level debug prints them after it)\n", n)
	}
}
