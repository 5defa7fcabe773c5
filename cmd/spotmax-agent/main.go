// Command spotmax-agent is the on-instance agent of spotmax.
//
// Until the agent issue lands it only prints its version and exits: it does not yet watch IMDS,
// deregister from Consul or remount data volumes.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/spotmax/spotmax/pkg/version"
)

func main() {
	fs := flag.NewFlagSet("spotmax-agent", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: spotmax-agent [--version]

spotmax-agent will run on every instance of a spotmax group: watch IMDS for interruption
notices, deregister the instance's services from Consul and move its data volume's mount.
This build only prints its version and exits; the agent itself is not implemented yet.
`)
	}
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	_ = showVersion
	fmt.Printf("spotmax-agent %s (commit %s): the agent is not implemented yet; exiting\n", version.Version, version.Commit())
}
