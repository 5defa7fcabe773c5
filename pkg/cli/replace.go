package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
)

// ReplaceOptions are the inputs of `spotmax replace`.
type ReplaceOptions struct {
	IO     *IOStreams
	Output string

	Instances []string
	Group     string
	OnDemand  bool
	OlderThan time.Duration
	All       bool

	MaxParallel    int
	DryRun         bool
	Yes            bool
	Resume         bool
	ForceDetach    bool
	ReleaseTimeout time.Duration
	// NoCloudWatch turns off the metrics and the action record.
	NoCloudWatch bool

	Workflow *replace.Workflow
	Lister   *inventory.Lister
	Now      func() time.Time
	confirm  func(string) error
}

func newReplaceCmd(f *Factory, runF func(context.Context, *ReplaceOptions) error) *cobra.Command {
	opts := &ReplaceOptions{IO: f.IO, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "replace [INSTANCE...] | --group ASG (--on-demand | --older-than D | --all) | --resume",
		Short: "Replace instances of spotmax groups, moving their data volumes",
		Long: `Replace instances of spotmax groups: launch a replacement (spot on the group's type, then its
alternative types, then on-demand), join it to the group, retire the old instance (Consul
deregistration and Kubernetes drain when the group configures them), detach it, move its data
volume to the replacement and terminate it.

Every step is journaled in EC2 tags: a replacement interrupted by a crash or Ctrl-C is picked up
again by 'spotmax replace --resume' (or by 'spotmax run'). A replacement that fails before the old
instance is detached is rolled back and the old instance keeps serving.`,
		Example: `  spotmax replace i-0123456789abcdef0 --dry-run
  spotmax replace --group web --on-demand --yes          # swap on-demand stand-ins back to spot
  spotmax replace --group web --older-than 50m --max-parallel 2 --yes
  spotmax replace --resume --yes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Instances = args
			opts.Output = f.Output
			selectors := 0
			for _, on := range []bool{opts.OnDemand, opts.OlderThan > 0, opts.All} {
				if on {
					selectors++
				}
			}
			switch {
			case opts.OlderThan < 0:
				return flagErrorf("invalid --older-than %s: want a positive age, e.g. 50m", opts.OlderThan)
			case cmd.Flags().Changed("older-than") && opts.OlderThan == 0:
				return flagErrorf("invalid --older-than 0s: want a positive age, e.g. 50m (or --all for every instance)")
			case opts.ReleaseTimeout < 0:
				return flagErrorf("invalid --release-timeout %s: must not be negative (0 terminates the detached old instance without waiting for the agent)", opts.ReleaseTimeout)
			case opts.Resume && (len(args) > 0 || selectors > 0):
				return flagErrorf("--resume takes no instances or selectors (it may take --group)")
			case opts.Resume:
			case len(args) > 0 && opts.Group != "":
				return flagErrorf("give instances or --group, not both")
			case len(args) == 0 && opts.Group == "":
				return flagErrorf("name instances to replace, or --group ASG with --on-demand, --older-than or --all, or --resume")
			case opts.Group != "" && selectors == 0:
				return flagErrorf("--group needs a selection: --on-demand, --older-than DURATION or --all")
			case len(args) > 0 && selectors > 0:
				return flagErrorf("--on-demand, --older-than and --all select from --group")
			}
			for _, id := range args {
				if !strings.HasPrefix(id, "i-") {
					return flagErrorf("%q is not an instance id (i-...)", id)
				}
			}
			if opts.MaxParallel < 0 {
				return flagErrorf("--max-parallel must be at least 1")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			w, err := f.Workflow(cmd.Context())
			if err != nil {
				return err
			}
			to := replace.DefaultTimeouts()
			to.Release = opts.ReleaseTimeout
			w.Timeouts = &to
			opts.Workflow = w
			opts.Lister = &inventory.Lister{ASG: w.ASG, EC2: w.EC2}
			if !opts.DryRun && !opts.NoCloudWatch {
				// Every replacement an operator runs is published and recorded like the
				// controller's: metrics to CloudWatch, the action record to CloudWatch Logs.
				rec, _, flush, err := f.auditRecorders(cmd.Context(), "spotmax replace")
				if err != nil {
					return err
				}
				defer flush()
				w.Metrics = rec
			}
			return replaceRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Group, "group", "", "replace instances of this group (with a selection)")
	fl.BoolVar(&opts.OnDemand, "on-demand", false, "select the group's on-demand instances (stand-ins)")
	fl.DurationVar(&opts.OlderThan, "older-than", 0, "select the group's instances older than this, e.g. 50m")
	fl.BoolVar(&opts.All, "all", false, "select all of the group's instances")
	fl.IntVar(&opts.MaxParallel, "max-parallel", 0, "replacements at a time per group (default: the group's spotmax:max_num_of_terminated_one_time)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print the plan (market, type, AZ, steps) without changing anything")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	fl.BoolVar(&opts.Resume, "resume", false, "resume the journaled replacements left by a crash")
	fl.BoolVar(&opts.NoCloudWatch, "no-cloudwatch", false, "do not publish metrics to CloudWatch nor the action record to CloudWatch Logs")
	fl.BoolVar(&opts.ForceDetach, "force-detach", false, "force-detach a data volume the old instance does not release in time (can corrupt its file system)")
	fl.DurationVar(&opts.ReleaseTimeout, "release-timeout", replace.DefaultTimeouts().Release,
		"how long to wait for the agent to release the data volume before terminating the (detached) old instance")
	opts.confirm = f.confirm
	return cmd
}

// replaceJob is one replacement to run.
type replaceJob struct {
	group *inventory.Group
	req   replace.Request
	plan  *replace.Plan
}

// replaceOutcome is the stable JSON shape of one replacement in `spotmax replace -o json`.
type replaceOutcome struct {
	Group           string          `json:"group"`
	Old             string          `json:"old"`
	DryRun          bool            `json:"dry_run"`
	Plan            *replace.Plan   `json:"plan,omitempty"`
	Result          *replace.Result `json:"result,omitempty"`
	Error           string          `json:"error,omitempty"`
	DurationSeconds float64         `json:"duration_seconds"`
	err             error
}

func replaceRun(ctx context.Context, o *ReplaceOptions) error {
	jobs, err := o.selectJobs(ctx)
	if err != nil {
		return err
	}
	if len(jobs) == 0 {
		fmt.Fprintln(o.IO.ErrOut, "nothing to replace")
		return printData(o.IO.Out, o.Output, []replaceOutcome{}, func(io.Writer) error { return nil })
	}
	// Protect every data volume of the groups involved before anything else can happen to them.
	if !o.DryRun {
		seen := map[string]bool{}
		for _, j := range jobs {
			if seen[j.group.Name] {
				continue
			}
			seen[j.group.Name] = true
			if changed, err := o.Workflow.EnsureKeepVolumes(ctx, j.group); err != nil {
				return err
			} else if len(changed) > 0 {
				fmt.Fprintf(o.IO.ErrOut, "group %s: turned DeleteOnTermination off for the data volumes of %s\n", j.group.Name, strings.Join(changed, ", "))
			}
		}
	}
	var planErrs []error
	var planned []*replaceJob
	for _, j := range jobs {
		p, err := o.Workflow.Plan(ctx, j.group, j.req)
		if err != nil {
			planErrs = append(planErrs, err)
			continue
		}
		j.plan = p
		planned = append(planned, j)
	}
	if len(planErrs) > 0 {
		return errors.Join(planErrs...)
	}
	if o.DryRun {
		out := make([]replaceOutcome, 0, len(planned))
		for _, j := range planned {
			out = append(out, replaceOutcome{Group: j.group.Name, Old: j.req.InstanceID, DryRun: true, Plan: j.plan})
		}
		return printData(o.IO.Out, o.Output, out, func(w io.Writer) error { return printPlans(w, planned) })
	}
	if !o.Yes {
		_ = printPlans(o.IO.ErrOut, planned)
		if err := o.confirm(fmt.Sprintf("Replace %d instance(s)?", len(planned))); err != nil {
			return err
		}
	}
	outcomes := o.runJobs(ctx, planned)
	failed := 0
	for _, oc := range outcomes {
		if oc.Error != "" {
			failed++
		}
	}
	if err := printData(o.IO.Out, o.Output, outcomes, func(w io.Writer) error { return printOutcomes(w, outcomes) }); err != nil {
		return err
	}
	if failed > 0 {
		// When every failure is of one kind (busy, untrusted journal, not managed, ...), the exit
		// code says which, and one failure is shown whole.
		var first error
		same := true
		for _, oc := range outcomes {
			if oc.err == nil {
				continue
			}
			if first == nil {
				first = oc.err
			} else if exitCode(oc.err) != exitCode(first) {
				same = false
			}
		}
		if first != nil && same && (failed == 1 || exitCode(first) != ExitError) {
			return fmt.Errorf("%d of %d replacement(s) failed: %w", failed, len(outcomes), first)
		}
		return fmt.Errorf("%d of %d replacement(s) failed", failed, len(outcomes))
	}
	return nil
}

// selectJobs resolves the command line into replacements, grouped by group.
func (o *ReplaceOptions) selectJobs(ctx context.Context) ([]*replaceJob, error) {
	groups := map[string]*inventory.Group{}
	group := func(name string) (*inventory.Group, error) {
		if g, ok := groups[name]; ok {
			return g, nil
		}
		g, err := o.Lister.Group(ctx, name)
		if err != nil {
			return nil, err
		}
		groups[name] = g
		return g, nil
	}
	var jobs []*replaceJob
	add := func(g *inventory.Group, id string, reason replace.Reason) {
		jobs = append(jobs, &replaceJob{group: g, req: replace.Request{InstanceID: id, Reason: reason, ForceDetach: o.ForceDetach}})
	}
	switch {
	case o.Resume:
		if o.Group != "" {
			// A group that does not exist is an error, not "nothing to resume".
			if _, err := group(o.Group); err != nil {
				return nil, err
			}
		}
		js, err := o.Workflow.InFlight(ctx)
		if err != nil {
			return nil, err
		}
		for _, j := range js {
			if o.Group != "" && j.Group != o.Group {
				continue
			}
			g, err := group(j.Group)
			if err != nil {
				return nil, fmt.Errorf("resuming the replacement of %s: %w", j.Old, err)
			}
			add(g, j.Old, j.Reason)
		}
	case o.Group != "":
		g, err := group(o.Group)
		if err != nil {
			return nil, err
		}
		now := o.Now()
		standIns := g.StandIns() // a mixed instances group's on-demand base is no stand-in
		for _, m := range g.Members {
			switch {
			case o.All:
			case o.OnDemand && standIns[m.ID]:
			case o.OlderThan > 0 && !m.LaunchTime.IsZero() && now.Sub(m.LaunchTime) >= o.OlderThan:
			default:
				continue
			}
			reason := replace.ReasonManual
			if o.OnDemand {
				reason = replace.ReasonRevert
			}
			add(g, m.ID, reason)
		}
	default:
		names, err := o.instanceGroups(ctx)
		if err != nil {
			return nil, err
		}
		for _, id := range o.Instances {
			g, err := group(names[id])
			if err != nil {
				return nil, err
			}
			add(g, id, replace.ReasonManual)
		}
	}
	return jobs, nil
}

// instanceGroups finds the group of each instance named on the command line, in one call.
func (o *ReplaceOptions) instanceGroups(ctx context.Context) (map[string]string, error) {
	out, err := o.Lister.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: o.Instances})
	if err != nil {
		return nil, fmt.Errorf("describing %s: %w", strings.Join(o.Instances, ", "), err)
	}
	names := map[string]string{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			tags := map[string]string{}
			for _, t := range in.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			name := tags[inventory.TagASGName]
			if name == "" {
				name = tags[groupconfig.StateJournalGroup]
			}
			names[aws.ToString(in.InstanceId)] = name
		}
	}
	for _, id := range o.Instances {
		switch name, ok := names[id]; {
		case !ok:
			return nil, &awsapi.NotFoundError{Kind: "instance", Name: id}
		case name == "":
			return nil, fmt.Errorf("cannot replace %s: %w", id, &replace.RefusedError{Instance: id, Why: "not in an Auto Scaling group"})
		}
	}
	return names, nil
}

// runJobs runs the replacements, at most MaxParallel at a time per group (default the group's
// max_num_of_terminated_one_time), with progress on stderr.
func (o *ReplaceOptions) runJobs(ctx context.Context, jobs []*replaceJob) []replaceOutcome {
	prog := newProgress(o.IO, o.Now)
	w := o.Workflow
	w.OnProgress = prog.update
	defer prog.stop()

	sems := map[string]chan struct{}{}
	for _, j := range jobs {
		if _, ok := sems[j.group.Name]; ok {
			continue
		}
		n := o.MaxParallel
		if n == 0 && j.group.Config != nil {
			n = j.group.Config.MaxTerminatedOneTime
		}
		sems[j.group.Name] = make(chan struct{}, max(n, 1))
	}
	out := make([]replaceOutcome, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem := sems[j.group.Name]
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out[i] = replaceOutcome{Group: j.group.Name, Old: j.req.InstanceID, Error: ctx.Err().Error()}
				return
			}
			defer func() { <-sem }()
			prog.start(j.req.InstanceID)
			start := time.Now()
			res, err := w.Replace(ctx, j.group, j.req)
			oc := replaceOutcome{Group: j.group.Name, Old: j.req.InstanceID, Result: res, DurationSeconds: time.Since(start).Seconds()}
			if err != nil {
				oc.Error, oc.err = err.Error(), err
			}
			prog.finish(j.req.InstanceID, err)
			out[i] = oc
		}()
	}
	wg.Wait()
	return out
}

func printPlans(w io.Writer, jobs []*replaceJob) error {
	t := NewTable("GROUP", "INSTANCE", "REASON", "FIRST CHOICE", "FALLBACKS", "DATA VOLUME", "STEPS")
	for _, j := range jobs {
		p := j.plan
		first, fallbacks := "", ""
		if len(p.Options) > 0 {
			first = p.Options[0].String()
			var rest []string
			for _, o := range p.Options[1:] {
				rest = append(rest, o.Market+" "+o.InstanceType+"/"+o.AZ)
			}
			fallbacks = strings.Join(rest, ", ")
		}
		var vols []string
		for _, v := range p.Volumes {
			s := v.ID + " " + v.Device
			if v.MountPath != "" {
				s += "→" + v.MountPath
			}
			vols = append(vols, s)
		}
		vol := strings.Join(vols, ", ")
		steps := strings.Join(p.Steps, " → ")
		if p.Resume != "" {
			steps = "resume after " + string(p.Resume) + ": " + steps
		}
		t.Row(p.Group, p.Old, string(p.Reason), first, fallbacks, vol, steps)
	}
	return t.Write(w)
}

func printOutcomes(w io.Writer, outcomes []replaceOutcome) error {
	t := NewTable("GROUP", "OLD", "NEW", "MARKET", "TYPE", "AZ", "VOLUME", "DURATION", "RESULT")
	for _, oc := range outcomes {
		r := oc.Result
		if r == nil {
			r = &replace.Result{}
		}
		result := "ok"
		if oc.Error != "" {
			result = "FAILED: " + oc.Error
		} else if len(r.Warnings) > 0 {
			result = "ok, " + strings.Join(r.Warnings, "; ")
		}
		for _, m := range r.CrossAZ {
			result += "; cross-AZ move: " + m.String()
		}
		t.Row(oc.Group, oc.Old, r.New, r.Market, r.Type, r.AZ, strings.Join(r.Volumes, ","), (time.Duration(oc.DurationSeconds * float64(time.Second))).Round(100*time.Millisecond).String(), result)
	}
	return t.Write(w)
}

// progress shows replacements as they go: on a terminal one live line per replacement (steps
// done, current step, elapsed); otherwise one line per step.
type progress struct {
	io    *IOStreams
	now   func() time.Time
	mu    sync.Mutex
	rows  map[string]*progressRow
	order []string
	drawn int
	done  chan struct{}
	wg    sync.WaitGroup
}

type progressRow struct {
	new, step string
	steps     int
	start     time.Time
	end       time.Time
	err       error
}

func newProgress(ios *IOStreams, now func() time.Time) *progress {
	p := &progress{io: ios, now: now, rows: map[string]*progressRow{}, done: make(chan struct{})}
	if ios.ErrTTY {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-p.done:
					p.draw()
					return
				case <-t.C:
					p.draw()
				}
			}
		}()
	}
	return p
}

func (p *progress) start(old string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows[old] = &progressRow{start: p.now(), step: "start"}
	p.order = append(p.order, old)
}

func (p *progress) update(ev replace.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	row := p.rows[ev.Old]
	if row == nil {
		return
	}
	if ev.New != "" {
		row.new = ev.New
	}
	if ev.Done && ev.Err == nil {
		row.steps++
	}
	row.step = ev.Step
	if ev.Detail != "" {
		row.step += " (" + ev.Detail + ")"
	}
	if !p.io.ErrTTY {
		status := "started"
		switch {
		case ev.Done && ev.Err != nil:
			status = "failed: " + ev.Err.Error()
		case ev.Done:
			status = "done"
		case ev.Detail != "":
			status = ev.Detail
		}
		fmt.Fprintf(p.io.ErrOut, "%s %s: %s %s (%s)\n", time.Now().UTC().Format(time.RFC3339), ev.Old, ev.Step, status,
			p.now().Sub(row.start).Round(time.Second))
	}
}

func (p *progress) finish(old string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if row := p.rows[old]; row != nil {
		row.end, row.err = p.now(), err
	}
}

func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\033[%dA", p.drawn)
	}
	ids := append([]string(nil), p.order...)
	sort.Strings(ids)
	for _, id := range ids {
		r := p.rows[id]
		end := p.now()
		state := r.step
		switch {
		case !r.end.IsZero() && r.err != nil:
			end, state = r.end, "FAILED"
		case !r.end.IsZero():
			end, state = r.end, "done"
		}
		arrow := id
		if r.new != "" {
			arrow += " → " + r.new
		}
		fmt.Fprintf(&b, "\033[2K%-45s %2d steps  %-40s %6s\n", arrow, r.steps, state, end.Sub(r.start).Round(time.Second))
	}
	p.drawn = len(ids)
	fmt.Fprint(p.io.ErrOut, b.String())
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}
