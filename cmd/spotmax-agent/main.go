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
		fmt.Printf("spotmax-agent %s (commit %s)\n", version.Version, version.Commit())
		return
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
