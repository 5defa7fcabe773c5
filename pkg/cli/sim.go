package cli

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/sim"
)

// DefaultSimAddr is where `spotmax sim serve` listens by default: a port that local AWS emulators
// (4566) do not take.
const DefaultSimAddr = "127.0.0.1:7566"

func newSimCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run the simulated AWS region (for trying spotmax without an AWS account)",
	}
	cmd.AddCommand(newSimServeCmd(f))
	return cmd
}

func newSimServeCmd(f *Factory) *cobra.Command {
	var (
		addr, scenario, latencies string
		timeScale                 float64
		imds, loopbackIPs         bool
		allowRemote               bool
		seed                      int64
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a simulated AWS region on a loopback port",
		Long: `Serve a simulated AWS region (EC2, Auto Scaling, CloudWatch, CloudWatch Logs, SQS, EventBridge, the
Price List API) that unmodified AWS clients use through AWS_ENDPOINT_URL with dummy credentials.
It runs on the wall clock, as spotmax and every other client of it do; --time-scale makes it
faster (a scenario's timeScale is ignored here), for a region no other process's clock depends on. Without --scenario it starts like a
fresh account: three AZs and a default VPC with a subnet in each. --scenario takes a YAML file
or the name of a shipped scenario ("demo").

The control API under /_sim/ lists instances (with their IMDS addresses) and injects spot
interruptions, rebalance recommendations, capacity changes, throttling and latencies. It has no
authentication, so --addr must be a loopback address (127.0.0.0/8, ::1, localhost) unless
--allow-remote-control says that every host that can reach the address may drive the region.`,
		Example: `  spotmax sim serve --scenario demo --addr 127.0.0.1:7566 &
  export AWS_ENDPOINT_URL=http://127.0.0.1:7566 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x
  spotmax group list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkSimAddr(addr, allowRemote); err != nil {
				return err
			}
			if allowRemote && !isLoopbackAddr(addr) {
				fmt.Fprintf(f.IO.ErrOut, "warning: serving the unauthenticated /_sim/ control API on %s: every host that reaches it can drive the simulated region\n", addr)
			}
			var sc *sim.Scenario
			if scenario != "" {
				var err error
				sc, err = loadScenario(scenario)
				if err != nil {
					return err
				}
			}
			opts := sim.Options{Region: f.Region, TimeScale: timeScale, Seed: seed, IMDS: imds, LoopbackPrivateIPs: loopbackIPs}
			if sc != nil {
				opts = sc.Options()
				if f.Region != "" {
					opts.Region = f.Region
				}
				// One clock: spotmax, the agent and every other client of this region run on the
				// wall clock, so the served region does too unless --time-scale says otherwise. A
				// scenario's timeScale is for in-process use (tests) only.
				opts.TimeScale = timeScale
				opts.IMDS = opts.IMDS || imds
				opts.LoopbackPrivateIPs = opts.LoopbackPrivateIPs || loopbackIPs
				if seed != 0 {
					opts.Seed = seed
				}
			}
			switch latencies {
			case "aws":
				l := sim.AWSLatencies()
				opts.Latencies = &l
			case "fast":
				l := sim.FastLatencies()
				opts.Latencies = &l
			case "":
			default:
				return flagErrorf("invalid --latencies %q: want aws or fast", latencies)
			}
			srv, err := sim.Start(cmd.Context(), addr, opts)
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("cannot serve the simulated region on %s: the port is in use (another simulator or local AWS emulator?); choose another with --addr 127.0.0.1:PORT, or --addr 127.0.0.1:0 for any free port", addr)
			}
			if err != nil {
				return err
			}
			defer srv.Close()
			if sc != nil {
				if err := sc.Apply(srv.Region()); err != nil {
					return fmt.Errorf("applying scenario %s: %w", scenario, err)
				}
			}
			fmt.Fprintf(f.IO.ErrOut, "simulated region %s serving at %s (time scale %gx)\n", srv.Region().Name(), srv.URL(), srv.Region().Clock().Scale())
			if srv.Region().Clock().Scale() != 1 {
				fmt.Fprintf(f.IO.ErrOut, "warning: simulated time runs %gx faster than the wall clock that spotmax, its agent and other clients use: instance ages, lifetimes, delays and notices they see will not match the region's\n", srv.Region().Clock().Scale())
			}
			fmt.Fprintf(f.IO.Out, "export AWS_ENDPOINT_URL=%s AWS_REGION=%s AWS_ACCESS_KEY_ID=sim AWS_SECRET_ACCESS_KEY=sim\n", srv.URL(), srv.Region().Name())
			<-cmd.Context().Done()
			fmt.Fprintln(f.IO.ErrOut, "simulated region stopped")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", DefaultSimAddr, "listen address: a loopback address unless --allow-remote-control")
	fl.BoolVar(&allowRemote, "allow-remote-control", false, "allow a non-loopback --addr, exposing the unauthenticated /_sim/ control API to every host that reaches it")
	fl.StringVar(&scenario, "scenario", "", "scenario: a YAML file or a shipped name (demo)")
	fl.Float64Var(&timeScale, "time-scale", 1, "simulated seconds per real second; keep 1 (the wall clock) when spotmax or other processes use the region")
	fl.StringVar(&latencies, "latencies", "", "state-transition latencies: aws or fast (default: the scenario's, else fast)")
	fl.BoolVar(&imds, "imds", false, "give every instance its own IMDS endpoint on a loopback port")
	fl.BoolVar(&loopbackIPs, "loopback-ips", false, "hand out instance private IPs from 127.0.0.0/8")
	fl.Int64Var(&seed, "seed", 0, "seed for ids and random faults (default 1)")
	return cmd
}

// loadScenario reads a scenario file, or a shipped scenario by name.
func loadScenario(name string) (*sim.Scenario, error) {
	if !strings.ContainsAny(name, "/.") {
		if _, err := os.Stat(name); err != nil {
			b, err := sim.SampleScenario(name)
			if err != nil {
				return nil, err
			}
			return sim.ParseScenario(b)
		}
	}
	return sim.LoadScenario(name)
}

// checkSimAddr refuses a listen address that is not loopback unless allowRemote: the simulator's
// /_sim/ control API has no authentication.
func checkSimAddr(addr string, allowRemote bool) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return flagErrorf("invalid --addr %q: want host:port, e.g. 127.0.0.1:7566", addr)
	}
	if allowRemote || isLoopbackAddr(addr) {
		return nil
	}
	return flagErrorf("--addr %s is not a loopback address: the simulator's /_sim/ control API has no authentication and would let every host that reaches it drive the region (inject interruptions, capacity, faults); use 127.0.0.1:PORT, or pass --allow-remote-control if that is what you want", addr)
}

// isLoopbackAddr reports whether host:port listens on loopback only: an IP in 127.0.0.0/8 or
// ::1, or localhost. An empty host listens on every interface.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
