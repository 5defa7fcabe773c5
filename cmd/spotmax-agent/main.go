// Command spotmax-agent runs on each instance of a spotmax group; see pkg/agent and
// docs/agent.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spotmax/spotmax/pkg/agent"
	"github.com/spotmax/spotmax/pkg/version"
)

func main() {
	opts, err := agent.ParseArgs(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "spotmax-agent:", err)
		os.Exit(2)
	}
	if opts.Version {
		fmt.Printf("spotmax-agent %s\n", version.String())
		return
	}
	if os.Getenv("GOGC") == "" {
		// The agent's live heap is about 1 MB, so Go's minimum heap goal (4 MB at GOGC=100) is
		// mostly garbage waiting: half of it saves about 1 MB of RSS on every instance for one
		// more 1.5 ms collection every 25 s or so (docs/benchmarks.md, Agent). GOGC wins.
		debug.SetGCPercent(50)
	}
	log := opts.NewLogger(os.Stderr)
	opts.Log = log.With("version", version.Version)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := agent.Run(ctx, opts.Config); err != nil {
		log.Error("spotmax-agent failed", "error", err)
		os.Exit(1)
	}
}
