package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/kube"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
)

// DrainOptions are the inputs of `spotmax drain`.
type DrainOptions struct {
	IO     *IOStreams
	Output string
	// Target is a node name or an EC2 instance id.
	Target     string
	Kubeconfig string
	Group      string
	// GracePeriod is given to the evicted pods; negative = each pod's own. GraceSet tells
	// whether the flag was given (else the group's spotmax:k8s_node_drain_grace_second applies).
	GracePeriod time.Duration
	GraceSet    bool
	Timeout     time.Duration
	Delay       time.Duration
	Force       bool
	DryRun      bool
	Yes         bool

	Getenv func(string) string
	// EC2 and ASG hand out AWS clients; they are only called for an instance id or --group.
	EC2 func(context.Context) (inventory.EC2InstanceReader, error)
	ASG func(context.Context) (inventory.AutoScalingReader, error)
	// Connect opens the cluster; tests shorten the connect timeout.
	Connect func(context.Context, kube.Source) (*kube.Client, error)
	Clock   replace.Clock
	confirm func(string) error
	// ProgressEvery is the interval of progress updates; default 1s on a terminal, 5s otherwise.
	ProgressEvery time.Duration
	// NoCloudWatch turns off the NodeDrained metric and the action record.
	NoCloudWatch bool
	// Metrics receives NodeDrained; Actions the drain's action record. Both may be nil.
	Metrics metrics.Recorder
	Actions interface{ Log(metrics.Action) }
}

// drainJSON is the stable JSON shape of `spotmax drain -o json`.
type drainJSON struct {
	Node           string `json:"node"`
	Instance       string `json:"instance,omitempty"`
	Kubeconfig     string `json:"kubeconfig"`
	KubeconfigFrom string `json:"kubeconfig_from"`
	DryRun         bool   `json:"dry_run"`
	// Pods are the pods evicted, or in a dry run the pods that would be.
	Pods []string `json:"pods"`
	// Warnings are kubectl's notes, e.g. the DaemonSet pods left alone.
	Warnings string `json:"warnings,omitempty"`
	// Refused says why a dry run's drain would not go ahead (bare pods without --force).
	Refused        []string `json:"refused,omitempty"`
	ElapsedSeconds float64  `json:"elapsed_seconds"`
}

var instanceIDPattern = regexp.MustCompile(`^i-[0-9a-f]{8}([0-9a-f]{9})?$`)

func newDrainCmd(f *Factory) *cobra.Command { return newDrainCmdWith(f, nil) }

func newDrainCmdWith(f *Factory, runF func(context.Context, *DrainOptions) error) *cobra.Command {
	opts := &DrainOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "drain NODE|INSTANCE-ID",
		Short: "Cordon a Kubernetes node and evict its pods, respecting PodDisruptionBudgets",
		Long: `Cordon a Kubernetes node and evict its pods by kubectl drain's rules: PodDisruptionBudgets are
respected (a refused eviction is retried until --timeout), DaemonSet pods stay, pods with emptyDir
volumes are evicted, pods that no controller recreates only with --force.

The node is a node name or an EC2 instance id; an instance's node is the one whose
spec.providerID is aws:///<az>/<instance-id>, else the one named after its private DNS name.

The kubeconfig is --kubeconfig, else the group's spotmax:k8s_config_file_path (the group of
--group, or of the instance), else KUBECONFIG, else ~/.kube/config.

When the drain fails or times out, the node stays cordoned: 'kubectl uncordon NODE' undoes it.`,
		Example: `  spotmax drain ip-10-0-1-23.ec2.internal --kubeconfig ~/.kube/eks --dry-run
  spotmax drain i-0123456789abcdef0 --yes
  spotmax drain i-0123456789abcdef0 --group web --grace-period 60s --timeout 5m -o json --yes`,
		Args: exactArgs(1, "one node name or instance id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Target = args[0]
			opts.Output = f.Output
			opts.GraceSet = cmd.Flags().Changed("grace-period")
			if !opts.GraceSet {
				opts.GracePeriod = -1
			}
			if opts.Timeout < 0 || opts.Delay < 0 {
				return flagErrorf("--timeout and --delay must not be negative")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			opts.Getenv = f.Getenv
			opts.EC2 = func(ctx context.Context) (inventory.EC2InstanceReader, error) { return f.EC2(ctx) }
			opts.ASG = func(ctx context.Context) (inventory.AutoScalingReader, error) { return f.AutoScaling(ctx) }
			log := f.Logger()
			opts.Connect = func(ctx context.Context, src kube.Source) (*kube.Client, error) {
				return kube.Connect(ctx, src, kube.ConnectOptions{Log: log})
			}
			opts.confirm = f.confirm
			if !opts.DryRun && !opts.NoCloudWatch {
				// Best effort: a drain of a node by name needs no AWS credentials, and none
				// means no record rather than no drain.
				if rec, al, flush, err := f.auditRecorders(cmd.Context(), "spotmax drain"); err != nil {
					log.Debug("not recording the drain in CloudWatch", "error", err)
				} else {
					defer flush()
					opts.Metrics, opts.Actions = rec, al
				}
			}
			return drainRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: the group's spotmax:k8s_config_file_path, KUBECONFIG, ~/.kube/config)")
	fl.StringVar(&opts.Group, "group", "", "Auto Scaling group whose spotmax:k8s_config_file_path and drain grace apply (default: the instance's group)")
	fl.DurationVar(&opts.GracePeriod, "grace-period", 0, "termination grace period of the evicted pods (default: the group's spotmax:k8s_node_drain_grace_second, else each pod's own)")
	fl.DurationVar(&opts.Timeout, "timeout", 10*time.Minute, "give up after this long; the node stays cordoned")
	fl.DurationVar(&opts.Delay, "delay", 0, "wait this long between cordoning and evicting, e.g. while a replacement node gets ready")
	fl.BoolVar(&opts.Force, "force", false, "also evict pods that no controller recreates")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "list the pods that would be evicted and change nothing")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	fl.BoolVar(&opts.NoCloudWatch, "no-cloudwatch", false, "do not publish the NodeDrained metric to CloudWatch nor the action record to CloudWatch Logs")
	return cmd
}

// drainTarget is the node to drain and what was learnt on the way.
type drainTarget struct {
	instance string
	ref      *kube.InstanceRef
	group    string
	cfg      *groupconfig.Config
}

func drainRun(ctx context.Context, o *DrainOptions) error {
	if o.Clock == nil {
		o.Clock = replace.RealClock{}
	}
	tgt, err := o.resolve(ctx)
	if err != nil {
		return err
	}
	src := kube.ResolveKubeconfig(o.Kubeconfig, tgt.cfg, o.Getenv)
	c, err := o.Connect(ctx, src)
	if err != nil {
		return err
	}
	node, err := lookupNode(ctx, c, o.Target, tgt)
	if err != nil {
		return err
	}
	kopts := kube.DrainOptions{GracePeriod: o.GracePeriod, Timeout: o.Timeout, Force: o.Force}
	if !o.GraceSet && tgt.cfg != nil {
		kopts.GracePeriod = tgt.cfg.K8sNodeDrainGrace
	}
	out := drainJSON{Node: node.Name, Instance: tgt.instance, Kubeconfig: src.Path, KubeconfigFrom: src.From, DryRun: o.DryRun, Pods: []string{}}

	plan, err := c.PlanDrain(ctx, node.Name, kopts)
	if err != nil {
		return err
	}
	if o.DryRun {
		for _, p := range plan.Evict {
			out.Pods = append(out.Pods, p.String())
		}
		out.Warnings, out.Refused = plan.Warnings, plan.Refused
		return o.print(out)
	}
	if len(plan.Refused) > 0 {
		return fmt.Errorf("refusing to drain node %s, nothing was changed: %s", node.Name, strings.Join(plan.Refused, "; "))
	}
	if !o.Yes {
		if err := o.confirm(fmt.Sprintf("Cordon node %s and evict %d pod(s)?", node.Name, len(plan.Evict))); err != nil {
			return err
		}
	}

	start := o.Clock.Now()
	if o.Delay > 0 {
		if err := c.Cordon(ctx, node); err != nil {
			return err
		}
		fmt.Fprintf(o.IO.ErrOut, "node %s cordoned; evicting in %s\n", node.Name, o.Delay)
		if err := o.Clock.Sleep(ctx, o.Delay); err != nil {
			return fmt.Errorf("waiting before draining node %s (it stays cordoned): %w", node.Name, err)
		}
	}
	pw := newProgressWriter(o.IO, o.ProgressEvery)
	kopts.Progress, kopts.ProgressEvery = pw.update, pw.every
	res, err := c.Drain(ctx, node, kopts)
	pw.finish()
	o.record(ctx, tgt, node.Name, start, res, err)
	if err != nil {
		return err
	}
	for _, p := range res.Evicted {
		out.Pods = append(out.Pods, p.String())
	}
	out.Warnings = res.Warnings
	out.ElapsedSeconds = o.Clock.Now().Sub(start).Seconds()
	return o.print(out)
}

// record publishes a drain: NodeDrained when it succeeded, and its action record either way.
func (o *DrainOptions) record(ctx context.Context, tgt *drainTarget, node string, start time.Time, res *kube.DrainResult, err error) {
	end := o.Clock.Now()
	if o.Metrics != nil && err == nil {
		o.Metrics.Record(ctx, metrics.Event{Name: metrics.NodeDrained, Group: tgt.group, Instance: tgt.instance, Duration: end.Sub(start),
			Time: end, Fields: map[string]string{"node": node}})
	}
	if o.Actions == nil {
		return
	}
	a := metrics.Action{Kind: metrics.ActionDrain, Group: tgt.group, Instance: tgt.instance, Node: node, Reason: "manual",
		Result: metrics.ResultSucceeded, Started: start.UTC(), Ended: end.UTC(), DurationSeconds: end.Sub(start).Seconds()}
	if res != nil {
		a.Pods = len(res.Evicted)
	}
	if err != nil {
		a.Result, a.Error = metrics.ResultFailed, err.Error()
	}
	o.Actions.Log(a)
}

// resolve finds out, from AWS when needed, the instance behind the target and the group whose
// configuration applies.
func (o *DrainOptions) resolve(ctx context.Context) (*drainTarget, error) {
	tgt := &drainTarget{group: o.Group}
	if instanceIDPattern.MatchString(o.Target) {
		ec2c, err := o.EC2(ctx)
		if err != nil {
			return nil, err
		}
		out, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{o.Target}})
		if err != nil {
			if awsapi.IsNotFound(err) {
				return nil, &awsapi.NotFoundError{Kind: "instance", Name: o.Target}
			}
			return nil, fmt.Errorf("describing instance %s: %w", o.Target, err)
		}
		ref := &kube.InstanceRef{ID: o.Target}
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				ref.PrivateDNSName = aws.ToString(in.PrivateDnsName)
				if in.Placement != nil {
					ref.AZ = aws.ToString(in.Placement.AvailabilityZone)
				}
				for _, t := range in.Tags {
					if aws.ToString(t.Key) == inventory.TagASGName && tgt.group == "" {
						tgt.group = aws.ToString(t.Value)
					}
				}
			}
		}
		tgt.instance, tgt.ref = o.Target, ref
	}
	// The group only matters for its kubeconfig and drain grace.
	if tgt.group == "" || (o.Kubeconfig != "" && o.GraceSet) {
		return tgt, nil
	}
	asg, err := o.ASG(ctx)
	if err != nil {
		return nil, err
	}
	gs, err := (&inventory.Lister{ASG: asg}).List(ctx, inventory.Options{Names: []string{tgt.group}})
	if err != nil {
		return nil, err
	}
	g := gs[0]
	if g.ConfigErr != nil {
		return nil, fmt.Errorf("reading the spotmax configuration of group %s (pass --kubeconfig and --grace-period to drain anyway): %w", g.Name, g.ConfigErr)
	}
	if err := g.CheckManaged(); err != nil {
		// Its defaults are not a configuration anyone chose: refuse rather than guess.
		return nil, fmt.Errorf("cannot drain %s: %w; or pass --kubeconfig and --grace-period to drain it as a plain Kubernetes node", o.Target, err)
	}
	tgt.cfg = g.Config
	return tgt, nil
}

// nodeNotFound keeps the message of a missing node and makes it exit with ExitNotFound.
type nodeNotFound struct {
	err error
	nf  *awsapi.NotFoundError
}

func (e *nodeNotFound) Error() string   { return e.err.Error() }
func (e *nodeNotFound) Unwrap() []error { return []error{e.err, e.nf} }

func lookupNode(ctx context.Context, c *kube.Client, target string, tgt *drainTarget) (n *kube.Node, err error) {
	if tgt.ref != nil {
		n, err = c.NodeFor(ctx, *tgt.ref)
	} else {
		n, err = c.Node(ctx, target)
	}
	if errors.Is(err, kube.ErrNodeNotFound) {
		msg := err.Error()
		if c.Server != "" {
			msg = fmt.Sprintf("%s in the cluster at %s (kubeconfig %s)", msg, c.Server, c.Source)
		}
		return nil, &nodeNotFound{err: errors.New(msg), nf: &awsapi.NotFoundError{Kind: "Kubernetes node", Name: target}}
	}
	return n, err
}

func (o *DrainOptions) print(out drainJSON) error {
	return printData(o.IO.Out, o.Output, out, func(w io.Writer) error {
		where := out.Node
		if out.Instance != "" {
			where += " (instance " + out.Instance + ")"
		}
		if out.DryRun {
			fmt.Fprintf(w, "would cordon node %s and evict %d pod(s):\n", where, len(out.Pods))
		} else {
			fmt.Fprintf(w, "drained node %s: evicted %d pod(s) in %s; the node stays cordoned\n", where, len(out.Pods),
				(time.Duration(out.ElapsedSeconds * float64(time.Second))).Round(time.Millisecond))
		}
		if out.DryRun {
			for _, p := range out.Pods {
				fmt.Fprintln(w, "  "+p)
			}
		}
		if out.Warnings != "" {
			fmt.Fprintln(w, "note: "+out.Warnings)
		}
		for _, r := range out.Refused {
			fmt.Fprintln(w, "REFUSED: "+r)
		}
		return nil
	})
}

// progressWriter shows a drain's progress on stderr: one line rewritten in place on a terminal,
// a plain line every few seconds otherwise.
type progressWriter struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	every time.Duration
	last  kube.DrainProgress
	drawn bool
}

func newProgressWriter(ios *IOStreams, every time.Duration) *progressWriter {
	p := &progressWriter{w: ios.ErrOut, tty: ios.ErrTTY, every: every}
	if p.every <= 0 {
		p.every = 5 * time.Second
		if p.tty {
			p.every = time.Second
		}
	}
	return p
}

func (p *progressWriter) update(d kube.DrainProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("draining node %s: %d of %d pod(s) left, %s elapsed", d.Node, d.Left, d.Total, d.Elapsed.Round(time.Second))
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.last, p.drawn = d, true
		return
	}
	// Plain lines: the first, the last, and one per interval in between.
	if p.drawn && d.Left != 0 && d.Elapsed-p.last.Elapsed < p.every {
		return
	}
	if p.drawn && d.Left == 0 && p.last.Left == 0 {
		return
	}
	fmt.Fprintln(p.w, line)
	p.last, p.drawn = d, true
}

func (p *progressWriter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}
