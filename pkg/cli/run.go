package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	consul "github.com/hashicorp/consul/api"
	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/controller"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/kube"
	"github.com/spotmax/spotmax/pkg/leader"
	"github.com/spotmax/spotmax/pkg/metrics"
)

// RunOptions are the inputs of `spotmax run`.
type RunOptions struct {
	IO          *IOStreams
	QueueURL    string
	Interval    time.Duration
	MaxParallel int
	MetricsAddr string
	NoMetrics   bool
	Once        bool
	LeaderElect string
	ConsulAddr  string
	LeaderKey   string
	// Kubeconfig, LeaseNamespace and LeaseName locate the Lease of --leader-elect kubernetes.
	Kubeconfig     string
	LeaseNamespace string
	LeaseName      string
	// FullResyncEvery and FullResyncAfter bound the incremental inventory's drift
	// (inventory.Tracker's FullEvery and FullAfter).
	FullResyncEvery int
	FullResyncAfter time.Duration
}

func newRunCmd(f *Factory) *cobra.Command {
	opts := &RunOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Keep every spotmax group of the region on spot (the daemon)",
		Long: `Run the spotmax controller: every --interval it reads all spotmax groups of the region (in a
number of API calls that grows with pages, not instances), replaces instances that reached
their guaranteed lifetime, swaps on-demand and alternative-type stand-ins back to spot when
they have lived long enough, resumes journaled replacements and acts on the interruption
notices agents relay. With --queue-url it also consumes EventBridge events from SQS (see
'spotmax setup events'). Every action is published to CloudWatch (namespace SpotMax) and, with
--metrics-addr, on a Prometheus /metrics endpoint.

SIGTERM stops it gracefully: replacements finish the step in flight and keep their journals,
so the next 'spotmax run' resumes them.

High availability: run 'spotmax run' on two hosts with --leader-elect and only the leader
acts; a follower takes over when the leader stops or loses its lock, and resumes its journals.
  --leader-elect consul      a Consul lock on the KV key --leader-key
  --leader-elect kubernetes  a Lease --lease-namespace/--lease-name (client-go's Lease
                             protocol); the identity needs get, create and update on
                             leases.coordination.k8s.io in that namespace. The kubeconfig is
                             --kubeconfig, else KUBECONFIG, else the in-cluster service account
                             when running in a pod, else ~/.kube/config.
With --once and --leader-elect the single pass also runs only as the leader: it campaigns,
waits while another controller leads, holds the leadership for the whole pass and releases it
at the end; stopped before it leads (SIGTERM, Ctrl-C) it has done nothing and exits 130.`,
		Example: `  spotmax run --queue-url https://sqs.us-east-1.amazonaws.com/123456789012/spotmax-events
  spotmax run --leader-elect consul --consul-addr 10.0.0.5:8500
  spotmax run --leader-elect kubernetes --kubeconfig /data/spotmax/k8sconfig --lease-namespace kube-system`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Interval < time.Second {
				return flagErrorf("--interval must be at least 1s")
			}
			if opts.FullResyncEvery < 1 || opts.FullResyncAfter <= 0 {
				return flagErrorf("--full-resync-every must be at least 1 and --full-resync-after positive")
			}
			if err := validateLeaderFlags(cmd, opts); err != nil {
				return err
			}
			return runRun(cmd.Context(), f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.QueueURL, "queue-url", "", "SQS queue with EventBridge events (from 'spotmax setup events')")
	fl.DurationVar(&opts.Interval, "interval", 30*time.Second, "time between reconciles")
	fl.IntVar(&opts.MaxParallel, "max-parallel", 10, "replacements at a time in the region")
	fl.IntVar(&opts.FullResyncEvery, "full-resync-every", inventory.DefaultFullEvery, "describe every instance again every this many reconciles (1: at each reconcile); in between only new, changed and volatile instances are described")
	fl.DurationVar(&opts.FullResyncAfter, "full-resync-after", inventory.DefaultFullAfter, "describe every instance again when the last full listing is older than this")
	fl.StringVar(&opts.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address, e.g. 127.0.0.1:9108")
	fl.BoolVar(&opts.NoMetrics, "no-cloudwatch", false, "do not publish metrics to CloudWatch nor action records to CloudWatch Logs")
	fl.BoolVar(&opts.Once, "once", false, "reconcile once, wait for the replacements it started, and exit; with --leader-elect, only as the leader (it waits for leadership and releases it at the end)")
	fl.StringVar(&opts.LeaderElect, "leader-elect", "none", "high availability: none (run one controller per region), consul (a Consul lock) or kubernetes (a Kubernetes Lease)")
	fl.StringVar(&opts.ConsulAddr, "consul-addr", "", "Consul HTTP address for --leader-elect consul (default CONSUL_HTTP_ADDR or 127.0.0.1:8500; CONSUL_HTTP_TOKEN is used)")
	fl.StringVar(&opts.LeaderKey, "leader-key", "", "Consul KV key of the lock for --leader-elect consul (default spotmax/leader/<region>)")
	fl.StringVar(&opts.Kubeconfig, "kubeconfig", "", "kubeconfig for --leader-elect kubernetes (default KUBECONFIG, the in-cluster service account, ~/.kube/config)")
	fl.StringVar(&opts.LeaseNamespace, "lease-namespace", "default", "namespace of the Lease for --leader-elect kubernetes")
	fl.StringVar(&opts.LeaseName, "lease-name", "", "name of the Lease for --leader-elect kubernetes (default spotmax-<region>)")
	return cmd
}

func runRun(ctx context.Context, f *Factory, o *RunOptions) error {
	cfg, err := f.AWSConfig(ctx)
	if err != nil {
		return err
	}
	lister, err := f.Lister(ctx)
	if err != nil {
		return err
	}
	w, err := f.Workflow(ctx)
	if err != nil {
		return err
	}
	log := f.Logger()
	var recorders metrics.Multi
	if !o.NoMetrics {
		pub := metrics.NewPublisher(cloudwatch.NewFromConfig(cfg), metrics.PublisherOptions{Log: log})
		pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
		go pub.Run(pubCtx)
		defer func() {
			stopPub()
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := pub.Close(flushCtx); err != nil {
				log.Warn("flushing metrics", "error", err)
			}
		}()
		recorders = append(recorders, pub)
		// The audit trail: one record per replacement in CloudWatch Logs.
		logs, err := f.Logs(ctx)
		if err != nil {
			return err
		}
		al := metrics.NewActionLog(logs, metrics.ActionLogOptions{Actor: actorName("spotmax run"), Log: log})
		alCtx, stopAL := context.WithCancel(context.WithoutCancel(ctx))
		go al.Run(alCtx)
		defer func() {
			stopAL()
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := al.Close(flushCtx); err != nil {
				log.Warn("writing action records to CloudWatch Logs", "error", err)
			}
		}()
		recorders = append(recorders, al)
	}
	if o.MetricsAddr != "" {
		prom := metrics.NewPrometheus()
		recorders = append(recorders, prom)
		ln, err := net.Listen("tcp", o.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listening on --metrics-addr %s: %w", o.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", prom.Handler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Info("serving Prometheus metrics", "addr", ln.Addr().String())
	}
	c := &controller.Controller{
		Lister:      lister,
		Inventory:   &inventory.Tracker{Lister: lister, FullEvery: o.FullResyncEvery, FullAfter: o.FullResyncAfter},
		Workflow:    w,
		Interval:    o.Interval,
		MaxParallel: o.MaxParallel,
		Metrics:     recorders,
		Log:         log,
	}
	if o.QueueURL != "" {
		src, err := sqsSource(ctx, f, o.QueueURL, c)
		if err != nil {
			return err
		}
		c.Sources = append(c.Sources, src)
	}
	log.Info("spotmax controller starting", "region", cfg.Region, "interval", o.Interval.String(), "max_parallel", o.MaxParallel,
		"queue", o.QueueURL, "cloudwatch", !o.NoMetrics)
	elector, err := o.elector(ctx, f, cfg.Region, log)
	if err != nil {
		return err
	}
	if o.Once {
		return runOnce(ctx, f.IO, c, elector)
	}
	if f.Getenv("GOGC") == "" {
		// Long-running, the controller keeps ~22 MB live at 10,000 instances (the inventory
		// and the cached Auto Scaling pages) and allocates ~30 MB a reconcile: at Go's default
		// GOGC=100 the heap grows to twice the live size between collections. Half of that
		// headroom took ~20 MB off its RSS for ~0.01 s more CPU a reconcile at 1,000 groups × 10
		// (docs/benchmarks.md, "Fleet scale"). GOGC in the environment wins.
		debug.SetGCPercent(50)
	}
	if elector != nil {
		err = c.RunElected(ctx, elector)
		log.Info("spotmax controller stopped", "stats", fmt.Sprintf("%+v", c.Stats()))
		return err
	}
	log.Warn("no leader election: run one 'spotmax run' per region (or --leader-elect consul|kubernetes)")
	err = c.Run(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("spotmax controller stopped", "stats", fmt.Sprintf("%+v", c.Stats()))
	return err
}

// errNotLeader means `spotmax run --once --leader-elect ...` was stopped while another
// controller held the leadership: it did nothing.
var errNotLeader = errors.New("stopped before becoming the leader: nothing was done")

// runOnce reconciles once, acts on what it found and waits for the replacements it started.
// With leader election it campaigns first and works only as the leader — holding the lock or
// Lease for the whole pass, so that a running controller and a --once pass never both act —
// then releases the leadership. Losing it mid-pass stops the pass like a leader's term ends:
// the step in flight finishes and journals are kept.
func runOnce(ctx context.Context, ios *IOStreams, c *controller.Controller, elector leader.Elector) error {
	pass := func(ctx context.Context) error {
		evs, err := c.Reconcile(ctx)
		if err != nil {
			return err
		}
		for _, e := range evs {
			c.Handle(ctx, e)
		}
		c.Wait()
		st := c.Stats()
		fmt.Fprintf(ios.ErrOut, "reconciled: %d replacement(s) started, %d succeeded, %d failed\n", st.Replacements, st.Succeeded, st.Failed)
		if st.Failed > 0 {
			return fmt.Errorf("%d replacement(s) failed", st.Failed)
		}
		return nil
	}
	if elector == nil {
		return pass(ctx)
	}
	campaign, stop := context.WithCancel(ctx)
	defer stop()
	led := false
	var passErr error
	err := elector.Run(campaign, func(leadCtx context.Context) {
		if led {
			return // a second term after the pass: nothing more to do
		}
		led = true
		passErr = pass(leadCtx)
		stop() // one pass: end the campaign, which releases the leadership
	})
	switch {
	case err != nil:
		return err
	case !led:
		cause := context.Cause(ctx)
		if cause == nil {
			cause = context.Canceled
		}
		return fmt.Errorf("spotmax run --once: %w: %w", errNotLeader, cause)
	}
	return passErr
}

// elector returns the leader election of --leader-elect, or nil for none.
func (o *RunOptions) elector(ctx context.Context, f *Factory, region string, log *slog.Logger) (leader.Elector, error) {
	if o.LeaderElect == "consul" {
		ccfg := consul.DefaultConfig()
		if o.ConsulAddr != "" {
			ccfg.Address = o.ConsulAddr
		}
		client, err := consul.NewClient(ccfg)
		if err != nil {
			return nil, fmt.Errorf("connecting to Consul at %s: %w", ccfg.Address, err)
		}
		key := o.LeaderKey
		if key == "" {
			key = "spotmax/leader/" + region
		}
		log.Info("campaigning for leadership", "consul", ccfg.Address, "key", key)
		return &leader.ConsulLock{Client: client, Key: key, Log: log}, nil
	}
	if o.LeaderElect == "kubernetes" {
		cs, where, err := leaseClient(ctx, f, o)
		if err != nil {
			return nil, err
		}
		name := o.LeaseName
		if name == "" {
			name = "spotmax-" + region
		}
		log.Info("campaigning for leadership", "kubernetes", where, "lease", o.LeaseNamespace+"/"+name)
		return &leader.KubeLease{Client: cs, Namespace: o.LeaseNamespace, Name: name, Log: log}, nil
	}
	return nil, nil
}

// validateLeaderFlags checks --leader-elect and that the flags of one election mode are not
// given with another, where they would be silently ignored.
func validateLeaderFlags(cmd *cobra.Command, o *RunOptions) error {
	modes := []struct {
		name  string
		flags []string
	}{
		{"none", nil},
		{"consul", []string{"consul-addr", "leader-key"}},
		{"kubernetes", []string{"kubeconfig", "lease-namespace", "lease-name"}},
	}
	known := false
	for _, m := range modes {
		known = known || m.name == o.LeaderElect
	}
	if !known {
		return flagErrorf("invalid --leader-elect %q: want none, consul or kubernetes", o.LeaderElect)
	}
	for _, m := range modes {
		if m.name == o.LeaderElect {
			continue
		}
		for _, n := range m.flags {
			if cmd.Flags().Changed(n) {
				return flagErrorf("--%s is for --leader-elect %s, not %s", n, m.name, o.LeaderElect)
			}
		}
	}
	if o.LeaderElect != "kubernetes" {
		return nil
	}
	if errs := kube.ValidNamespace(o.LeaseNamespace); len(errs) > 0 {
		return flagErrorf("invalid --lease-namespace %q: %s", o.LeaseNamespace, strings.Join(errs, "; "))
	}
	if o.LeaseName != "" {
		if errs := kube.ValidName(o.LeaseName); len(errs) > 0 {
			return flagErrorf("invalid --lease-name %q: %s", o.LeaseName, strings.Join(errs, "; "))
		}
	}
	return nil
}

// leaseClient connects to the cluster that holds the Lease: --kubeconfig, else KUBECONFIG, else
// the in-cluster service account when running in a pod, else ~/.kube/config. It returns the
// client and where the configuration came from, for the log.
func leaseClient(ctx context.Context, f *Factory, o *RunOptions) (*kube.Client, string, error) {
	// Like client-go's resourcelock.NewFromKubeconfig: one hung request must not use up the
	// whole renew deadline (10 s) and cost the leadership.
	opts := kube.ConnectOptions{Log: f.Logger(), RequestTimeout: 5 * time.Second}
	if o.Kubeconfig == "" && f.Getenv("KUBECONFIG") == "" && f.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		cfg, err := kube.InClusterConfig(f.Getenv, opts)
		if err != nil {
			return nil, "", fmt.Errorf("loading the in-cluster Kubernetes configuration for --leader-elect kubernetes: %w", err)
		}
		return kube.NewClient(cfg, f.Logger()), "in-cluster service account, API server " + cfg.Host, nil
	}
	src := kube.ResolveKubeconfig(o.Kubeconfig, nil, f.Getenv)
	// Connect checks that the server answers, with errors that name the kubeconfig.
	kc, err := kube.Connect(ctx, src, opts)
	if err != nil {
		return nil, "", fmt.Errorf("connecting for --leader-elect kubernetes: %w", err)
	}
	return kc, src.String() + ", API server " + kc.Server, nil
}
