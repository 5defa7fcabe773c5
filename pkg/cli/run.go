package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	consul "github.com/hashicorp/consul/api"
	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/controller"
	"github.com/spotmax/spotmax/pkg/inventory"
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
so the next 'spotmax run' resumes them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Interval < time.Second {
				return flagErrorf("--interval must be at least 1s")
			}
			switch opts.LeaderElect {
			case "none", "consul":
			default:
				return flagErrorf("invalid --leader-elect %q: want none or consul", opts.LeaderElect)
			}
			return runRun(cmd.Context(), f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.QueueURL, "queue-url", "", "SQS queue with EventBridge events (from 'spotmax setup events')")
	fl.DurationVar(&opts.Interval, "interval", 30*time.Second, "time between reconciles")
	fl.IntVar(&opts.MaxParallel, "max-parallel", 10, "replacements at a time in the region")
	fl.StringVar(&opts.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address, e.g. 127.0.0.1:9108")
	fl.BoolVar(&opts.NoMetrics, "no-cloudwatch", false, "do not publish metrics to CloudWatch")
	fl.BoolVar(&opts.Once, "once", false, "reconcile once, wait for the replacements it started, and exit")
	fl.StringVar(&opts.LeaderElect, "leader-elect", "none", "high availability: none (run one controller per region) or consul (a Consul lock)")
	fl.StringVar(&opts.ConsulAddr, "consul-addr", "", "Consul HTTP address for --leader-elect consul (default CONSUL_HTTP_ADDR or 127.0.0.1:8500; CONSUL_HTTP_TOKEN is used)")
	fl.StringVar(&opts.LeaderKey, "leader-key", "", "Consul KV key of the lock (default spotmax/leader/<region>)")
	return cmd
}

func runRun(ctx context.Context, f *Factory, o *RunOptions) error {
	cfg, err := f.AWSConfig(ctx)
	if err != nil {
		return err
	}
	ec2c, err := f.EC2(ctx)
	if err != nil {
		return err
	}
	asg, err := f.AutoScaling(ctx)
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
		Lister:      &inventory.Lister{ASG: asg, EC2: ec2c},
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
	if o.Once {
		evs, err := c.Reconcile(ctx)
		if err != nil {
			return err
		}
		for _, e := range evs {
			c.Handle(ctx, e)
		}
		c.Wait()
		st := c.Stats()
		fmt.Fprintf(f.IO.ErrOut, "reconciled: %d replacement(s) started, %d succeeded, %d failed\n", st.Replacements, st.Succeeded, st.Failed)
		if st.Failed > 0 {
			return fmt.Errorf("%d replacement(s) failed", st.Failed)
		}
		return nil
	}
	if o.LeaderElect == "consul" {
		ccfg := consul.DefaultConfig()
		if o.ConsulAddr != "" {
			ccfg.Address = o.ConsulAddr
		}
		client, err := consul.NewClient(ccfg)
		if err != nil {
			return fmt.Errorf("connecting to Consul at %s: %w", ccfg.Address, err)
		}
		key := o.LeaderKey
		if key == "" {
			key = "spotmax/leader/" + cfg.Region
		}
		log.Info("campaigning for leadership", "consul", ccfg.Address, "key", key)
		err = c.RunElected(ctx, &controller.ConsulLock{Client: client, Key: key, Log: log})
		log.Info("spotmax controller stopped", "stats", fmt.Sprintf("%+v", c.Stats()))
		return err
	}
	log.Warn("no leader election: run one 'spotmax run' per region (or --leader-elect consul)")
	err = c.Run(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("spotmax controller stopped", "stats", fmt.Sprintf("%+v", c.Stats()))
	return err
}
