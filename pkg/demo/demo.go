// Package demo is `spotmax demo`: the whole story of spotmax in under a minute, on the simulated
// region in-process. A group of spot instances with data volumes, Consul and Kubernetes
// configured goes through a spot interruption, a spot capacity outage (on-demand fallback) and
// its recovery (revert to spot), and guaranteed-lifetime rotations, while the controller, the
// replacement workflow and agents (stand-ins) do their work. It prints a timeline and a summary
// and fails if an invariant broke.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotmax/spotmax/pkg/controller"
	"github.com/spotmax/spotmax/pkg/eventsetup"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/savings"
	"github.com/spotmax/spotmax/pkg/sim"
	sqssource "github.com/spotmax/spotmax/pkg/source/sqs"
)

// Options configure the demo.
type Options struct {
	// Scale is the simulated seconds per real second; default 60.
	Scale float64
	// Log receives the components' own logs; nil discards them.
	Log *slog.Logger
}

const group = "web"

// Run plays the demo, writing the timeline and summary to out.
func Run(ctx context.Context, out io.Writer, o Options) error {
	if o.Scale <= 0 {
		o.Scale = 60
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	lat := sim.AWSLatencies()
	srv, err := sim.Start(ctx, "127.0.0.1:0", sim.Options{TimeScale: o.Scale, Latencies: &lat})
	if err != nil {
		return err
	}
	defer srv.Close()
	r := srv.Region()
	clk := r.Clock()
	t0 := clk.Now()
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, "[+%s] %s\n", mmss(clk.Now().Sub(t0)), fmt.Sprintf(format, args...))
	}
	cfg := aws.Config{Region: r.Name(), BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("demo", "demo", "")}
	ec2c, asg := ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg)

	fmt.Fprintf(out, "spotmax demo: a simulated region at %s, time running %gx (every line is simulated time)\n", srv.URL(), o.Scale)
	fmt.Fprintln(out, "Consul, Kubernetes and the on-instance agents are in-process stand-ins here; AWS is the simulated region, reached through the real SDK.")
	fmt.Fprintln(out)
	ids, markers, err := createGroup(ctx, ec2c, asg, elasticloadbalancingv2.NewFromConfig(cfg), r)
	if err != nil {
		return err
	}
	say("group %s: 3 spot m5.large instances, each with a 20 GiB data volume at /dev/sdf mounted at /data", group)
	say("launch template leaves DeleteOnTermination on for the data volume: spotmax must turn it off")

	consul := &consulStandIn{services: map[string][]string{}, say: say}
	kube := &kubeStandIn{pods: map[string]int{}, say: say}
	for _, id := range ids {
		consul.register(id, "web")
		kube.pods[id] = 12
	}
	ag := &agents{ec2: ec2c, region: r, consul: consul, say: say, released: map[string]bool{}, mounted: map[string]time.Time{}, relayed: map[string]bool{}}
	rec := &recorder{say: say, clock: clk}
	to := replace.DefaultTimeouts()
	w := &replace.Workflow{EC2: ec2c, ASG: asg, Steps: []replace.PreDetach{{Step: consulStep{consul}, Metric: metrics.ConsulDeregistered}, {Step: drainStep{kube}, Metric: metrics.NodeDrained}},
		Clock: clk, PollMin: time.Duration(float64(time.Second) / o.Scale), PollMax: time.Duration(float64(15*time.Second) / o.Scale),
		Timeouts: &to, Log: o.Log}
	var joinMu sync.Mutex
	joined := map[string]time.Time{} // replacement → InService
	w.OnProgress = func(p replace.Progress) {
		if p.Done && p.Err == nil && p.Step == replace.StepJoin {
			joinMu.Lock()
			joined[p.New] = p.At
			joinMu.Unlock()
		}
		if p.Done && p.Err == nil && (p.Step == replace.StepLaunch || p.Step == replace.StepDetach || p.Step == replace.StepMoveVolume) {
			switch p.Step {
			case replace.StepLaunch:
				say("spotmax: %s launched to replace %s", p.New, p.Old)
			case replace.StepDetach:
				say("spotmax: %s detached from the group (desired capacity kept by %s)", p.Old, p.New)
			case replace.StepMoveVolume:
				say("spotmax: data volume moved from %s to %s", p.Old, p.New)
			}
		}
	}
	c := &controller.Controller{Lister: &inventory.Lister{ASG: asg, EC2: ec2c}, Workflow: w,
		Interval: 250 * time.Millisecond, Clock: clk, Metrics: rec, Log: o.Log}
	// The EventBridge rules and queue, as `spotmax setup events` makes them; the controller
	// consumes the queue like `spotmax run --queue-url`.
	setup, err := (&eventsetup.Setup{SQS: sqs.NewFromConfig(cfg), Events: eventbridge.NewFromConfig(cfg)}).Ensure(ctx, eventsetup.Options{})
	if err != nil {
		return fmt.Errorf("setting up the event queue: %w", err)
	}
	say("EventBridge rules deliver spot interruption, rebalance, state-change and launch-failure events to %s", setup.QueueURL)
	c.Sources = []controller.Source{&sqssource.Source{Client: sqs.NewFromConfig(cfg), QueueURL: setup.QueueURL,
		Filter: c.ManagedInstances, Log: o.Log, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ag.run(runCtx) }()
	ctrlDone := make(chan error, 1)
	go func() { defer wg.Done(); ctrlDone <- c.Run(runCtx) }()

	wait := func(d time.Duration) error { return clk.Sleep(ctx, t0.Add(d).Sub(clk.Now())) }
	until := func(what string, limit time.Duration, cond func() bool) error {
		for !cond() {
			if clk.Now().Sub(t0) > limit {
				return fmt.Errorf("%s: not reached by +%s", what, mmss(limit))
			}
			if err := clk.Sleep(ctx, 5*time.Second); err != nil {
				return err
			}
		}
		return nil
	}
	script := func() error {
		if err := wait(time.Minute); err != nil {
			return err
		}
		say("AWS: spot interruption notice for %s (two minutes)", ids[0])
		if err := r.Interrupt(ids[0], ""); err != nil {
			return err
		}
		if err := until("interruption handled", 8*time.Minute, func() bool { return rec.count(metrics.ReplacementSucceeded) >= 1 }); err != nil {
			return err
		}
		if err := wait(5 * time.Minute); err != nil {
			return err
		}
		say("AWS: no more spot capacity for m5.large or m5a.large in any AZ")
		for _, az := range r.AZs() {
			for _, typ := range []string{"m5.large", "m5a.large"} {
				r.SetCapacity(sim.PoolKey{InstanceType: typ, AZ: az.Name, Market: sim.MarketSpot}, 0)
			}
		}
		say("AWS: spot interruption notice for %s (two minutes)", ids[1])
		if err := r.Interrupt(ids[1], ""); err != nil {
			return err
		}
		if err := until("on-demand fallback", 14*time.Minute, func() bool { return rec.count(metrics.OnDemandFallback) >= 1 }); err != nil {
			return err
		}
		if err := wait(11 * time.Minute); err != nil {
			return err
		}
		say("AWS: spot capacity is back")
		for k := range r.Capacity() {
			r.SetCapacity(k, -1)
		}
		return until("revert to spot and lifetime rotation", 40*time.Minute, func() bool {
			return rec.count(metrics.RevertToSpot) >= 1 && rec.count(metrics.LifetimeRotation) >= 1 && settled(r, ids)
		})
	}
	scriptErr := script()
	// End where no replacement is in flight: start none, let the running ones finish.
	c.Quiesce()
	if err := until("replacements in flight to finish", clk.Now().Sub(t0)+15*time.Minute, c.Idle); err != nil && scriptErr == nil {
		scriptErr = err
	}
	stop()
	ctrlErr := <-ctrlDone
	wg.Wait()
	fmt.Fprintln(out)
	prices := &savings.AWSPrices{EC2: ec2c, Pricing: pricing.NewFromConfig(cfg), Region: r.Name()}
	if err := summary(ctx, out, r, rec, ag, &inventory.Lister{ASG: asg, EC2: ec2c}, prices, t0); err != nil {
		return err
	}
	problems := checkInvariants(r, markers)
	joinMu.Lock()
	problems = append(problems, checkHandovers(r, rec, ag, joined)...)
	joinMu.Unlock()
	if scriptErr != nil {
		problems = append([]string{scriptErr.Error()}, problems...)
	}
	if ctrlErr != nil && !errors.Is(ctrlErr, context.Canceled) {
		problems = append(problems, "controller: "+ctrlErr.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintln(out, "\nINVARIANTS BROKEN:")
		for _, p := range problems {
			fmt.Fprintln(out, "  - "+p)
		}
		return fmt.Errorf("demo: %d invariant(s) broken", len(problems))
	}
	fmt.Fprintln(out, "\nall invariants hold: every data volume kept its content, is attached to exactly one running member, nothing was force-detached or deleted, the group is back to its size, no journal is left")
	return nil
}

// settled reports whether the original instances are all gone and the group is back to three
// spot members.
func settled(r *sim.Region, orig []string) bool {
	g, _ := r.Group(group)
	if len(g.Members) != 3 {
		return false
	}
	for _, m := range g.Members {
		for _, id := range orig {
			if m.InstanceID == id {
				return false
			}
		}
		in, _ := r.Instance(m.InstanceID)
		if in.Market != sim.MarketSpot || m.LifecycleState != "InService" {
			return false
		}
	}
	return true
}

func createGroup(ctx context.Context, ec2c *ec2.Client, asg *autoscaling.Client, elb *elasticloadbalancingv2.Client, r *sim.Region) ([]string, map[string]string, error) {
	_, err := ec2c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("web-spot"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
			ImageId: aws.String("ami-0demo"), InstanceType: ec2types.InstanceTypeM5Large,
			InstanceMarketOptions: &ec2types.LaunchTemplateInstanceMarketOptionsRequest{MarketType: ec2types.MarketTypeSpot},
			MetadataOptions:       &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{InstanceMetadataTags: ec2types.LaunchTemplateInstanceMetadataTagsStateEnabled},
			BlockDeviceMappings: []ec2types.LaunchTemplateBlockDeviceMappingRequest{{DeviceName: aws.String("/dev/sdf"),
				Ebs: &ec2types.LaunchTemplateEbsBlockDeviceRequest{VolumeSize: aws.Int32(20), DeleteOnTermination: aws.Bool(true)}}},
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("creating the launch template: %w", err)
	}
	tags := map[string]string{
		groupconfig.TagGroup: group, groupconfig.TagPersistenceDev: "/dev/sdf", groupconfig.TagPersistenceMountPath: "/data",
		groupconfig.TagConsulPort: "8500", groupconfig.TagK8sConfigFilePath: "/data/spotmax/k8sconfig",
		groupconfig.TagGuaranteeLivingMins: "30", groupconfig.TagBufferMins: "2", groupconfig.TagODLeastLiveMins: "5",
		groupconfig.AltKey(1): "m5a.large", groupconfig.TagDetachingDelaySeconds: "20", groupconfig.TagSDDelayDetachSecs: "5",
		groupconfig.TagPreactionDetachDelaySeconds: "20", groupconfig.TagPreactionTerminationDelaySeconds: "60",
	}
	var asgTags []astypes.Tag
	for k, v := range tags {
		def, _ := groupconfig.Lookup(k)
		asgTags = append(asgTags, astypes.Tag{Key: aws.String(k), Value: aws.String(v), PropagateAtLaunch: aws.Bool(def.Propagate),
			ResourceId: aws.String(group), ResourceType: aws.String("auto-scaling-group")})
	}
	var azs []string
	for _, az := range r.AZs() {
		azs = append(azs, az.Name)
	}
	_, err = asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(group), MinSize: aws.Int32(1), MaxSize: aws.Int32(3), DesiredCapacity: aws.Int32(3),
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web-spot"), Version: aws.String("$Latest")},
		AvailabilityZones: azs, Tags: asgTags,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("creating group %s: %w", group, err)
	}
	// Behind a target group with AWS's default 300 s deregistration delay — longer than a spot
	// notice: a detached member stays Detaching that long.
	tg, err := elb.CreateTargetGroup(ctx, &elasticloadbalancingv2.CreateTargetGroupInput{Name: aws.String("web"),
		Protocol: elbv2types.ProtocolEnumHttp, Port: aws.Int32(80), TargetType: elbv2types.TargetTypeEnumInstance})
	if err != nil {
		return nil, nil, fmt.Errorf("creating target group web: %w", err)
	}
	if _, err := asg.AttachLoadBalancerTargetGroups(ctx, &autoscaling.AttachLoadBalancerTargetGroupsInput{AutoScalingGroupName: aws.String(group),
		TargetGroupARNs: []string{aws.ToString(tg.TargetGroups[0].TargetGroupArn)}}); err != nil {
		return nil, nil, fmt.Errorf("attaching target group web to group %s: %w", group, err)
	}
	for {
		g, _ := r.Group(group)
		var ids []string
		for _, m := range g.Members {
			if m.LifecycleState == "InService" {
				ids = append(ids, m.InstanceID)
			}
		}
		if len(ids) == 3 {
			sort.Strings(ids)
			markers := map[string]string{}
			for _, id := range ids {
				in, _ := r.Instance(id)
				for _, bd := range in.BlockDevices {
					if bd.DeviceName == "/dev/sdf" {
						v, _ := r.Volume(bd.VolumeID)
						markers[bd.VolumeID] = v.Marker
					}
				}
			}
			return ids, markers, nil
		}
		if err := r.Clock().Sleep(ctx, 5*time.Second); err != nil {
			return nil, nil, err
		}
	}
}

// recorder keeps the metrics events for the summary and tells the timeline about them.
type recorder struct {
	mu     sync.Mutex
	events []metrics.Event
	say    func(string, ...any)
	clock  *sim.Clock
}

func (r *recorder) Record(_ context.Context, e metrics.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	switch e.Name {
	case metrics.ReplacementStarted:
		r.say("spotmax: replacing %s (%s)", e.Instance, e.Fields["reason"])
	case metrics.ReplacementSucceeded:
		r.say("spotmax: %s replaced by %s (%s %s) in %s", e.Instance, e.Fields["replacement"], e.Fields["market"], e.Fields["type"], mmss(e.Duration))
	case metrics.ReplacementFailed:
		r.say("spotmax: replacing %s failed: %s", e.Instance, e.Fields["error"])
	case metrics.OnDemandFallback:
		r.say("spotmax: no spot capacity: %s is an on-demand stand-in", e.Fields["replacement"])
	case metrics.RevertToSpot:
		r.say("spotmax: on-demand stand-in %s swapped back to spot", e.Instance)
	}
}

func (r *recorder) Gauge(context.Context, string, metrics.Counts) {}

func (r *recorder) named(n metrics.Name) []metrics.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []metrics.Event
	for _, e := range r.events {
		if e.Name == n {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) count(n metrics.Name) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := 0
	for _, e := range r.events {
		if e.Name == n {
			c++
		}
	}
	return c
}

func summary(ctx context.Context, out io.Writer, r *sim.Region, rec *recorder, ag *agents, lister *inventory.Lister, prices savings.Prices, t0 time.Time) error {
	fmt.Fprintf(out, "SUMMARY (%s of simulated time)\n", mmss(r.Clock().Now().Sub(t0)))
	rec.mu.Lock()
	events := append([]metrics.Event(nil), rec.events...)
	rec.mu.Unlock()
	fmt.Fprintf(out, "  %-12s %-21s %-21s %-21s %-10s %s\n", "REASON", "OLD", "NEW", "MARKET/TYPE", "HANDOVER", "VOLUME MOUNTED AFTER")
	for _, e := range events {
		if e.Name != metrics.ReplacementSucceeded {
			continue
		}
		newID := e.Fields["replacement"]
		mounted := "-"
		ag.mu.Lock()
		if at, ok := ag.mounted[newID]; ok {
			mounted = mmss(at.Sub(e.Time.Add(-e.Duration)))
		}
		ag.mu.Unlock()
		fmt.Fprintf(out, "  %-12s %-21s %-21s %-21s %-10s %s\n", e.Fields["reason"], e.Instance, newID,
			e.Fields["market"]+" "+e.Fields["type"], mmss(e.Duration), mounted)
	}
	counts := map[metrics.Name]int{}
	for _, e := range events {
		counts[e.Name]++
	}
	var parts []string
	for _, n := range []metrics.Name{metrics.InterruptionReceived, metrics.ReplacementSucceeded, metrics.ReplacementFailed,
		metrics.OnDemandFallback, metrics.RevertToSpot, metrics.LifetimeRotation, metrics.VolumeMoved} {
		parts = append(parts, fmt.Sprintf("%s %d", n, counts[n]))
	}
	fmt.Fprintln(out, "  metrics: "+strings.Join(parts, ", "))
	// The realised cost, as `spotmax savings` computes it: hours from the group's instances and
	// the replacements' action records, priced with the region's spot price history and Price
	// List.
	g, err := lister.Group(ctx, group)
	if err != nil {
		return fmt.Errorf("listing group %s for the summary: %w", group, err)
	}
	var live []savings.Live
	for _, m := range g.Members {
		if m.State == "running" || m.State == "pending" {
			live = append(live, savings.Live{Group: group, Instance: m.ID, Market: m.Market, Type: m.Type, AZ: m.AZ, Launched: m.LaunchTime})
		}
	}
	var actions []metrics.Action
	for _, e := range events {
		if a, ok := metrics.ActionFromEvent(e, "spotmax demo"); ok {
			actions = append(actions, a)
		}
	}
	end := r.Clock().Now()
	rep, err := savings.Compute(ctx, savings.Reconstruct(live, actions, t0, end), prices, t0, end)
	if err != nil {
		return fmt.Errorf("computing the demo's savings: %w", err)
	}
	if t := rep.Total; t.Hours > 0 {
		fmt.Fprintf(out, "  spot share %.0f%% of instance time; realised cost $%.4f vs $%.4f all on-demand: %.0f%% saved (spotmax savings)\n",
			100*t.SpotHours/t.Hours, t.Cost, t.OnDemandCost, t.SavedPercent)
	}
	return nil
}

// checkInvariants returns what is wrong with the region after the demo.
func checkInvariants(r *sim.Region, markers map[string]string) []string {
	var out []string
	g, _ := r.Group(group)
	members := map[string]bool{}
	for _, m := range g.Members {
		members[m.InstanceID] = true
	}
	if g.Max != 3 || g.Desired != 3 {
		out = append(out, fmt.Sprintf("group size max/desired %d/%d, want 3/3", g.Max, g.Desired))
	}
	if _, ok := g.Tag(groupconfig.StateGroupMaxSize); ok {
		out = append(out, "MaxSize journal left on the group")
	}
	for _, d := range r.DeletedVolumes() {
		if _, ours := markers[d.VolumeID]; ours {
			out = append(out, "data volume "+d.VolumeID+" was deleted")
		}
	}
	for _, f := range r.ForceDetaches() {
		out = append(out, "volume "+f.VolumeID+" was force-detached")
	}
	for id, marker := range markers {
		v, ok := r.Volume(id)
		switch {
		case !ok:
			out = append(out, "data volume "+id+" is gone")
		case v.Marker != marker:
			out = append(out, "data volume "+id+" lost its content")
		case v.Attachment == nil:
			out = append(out, "data volume "+id+" is not attached")
		case !members[v.Attachment.InstanceID]:
			out = append(out, "data volume "+id+" is attached to "+v.Attachment.InstanceID+", not a member")
		}
	}
	for _, in := range r.Instances() {
		if in.State == sim.StateRunning && !members[in.ID] {
			out = append(out, "instance "+in.ID+" runs outside the group")
		}
		if in.State == sim.StateRunning && in.Tags[groupconfig.StatePhase] != "" {
			out = append(out, "journal left on "+in.ID)
		}
	}
	return out
}

func mmss(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int(d.Round(time.Second).Seconds())
	return fmt.Sprintf("%02d:%02d", s/60, s%60)
}

// checkHandovers checks each interruption's handover: the replacement InService and the data
// volume mounted on it before the interrupted instance's termination time.
func checkHandovers(r *sim.Region, rec *recorder, ag *agents, joined map[string]time.Time) []string {
	var out []string
	for _, e := range rec.named(metrics.ReplacementSucceeded) {
		if e.Fields["reason"] != string(replace.ReasonInterruption) {
			continue
		}
		old, repl := e.Instance, e.Fields["replacement"]
		in, _ := r.Instance(old)
		if in.Interruption == nil {
			continue
		}
		end := in.Interruption.Time
		if at, ok := joined[repl]; !ok || at.After(end) {
			out = append(out, fmt.Sprintf("replacement %s of %s InService at %s, after the interruption at %s", repl, old, at.Format(time.TimeOnly), end.Format(time.TimeOnly)))
		}
		ag.mu.Lock()
		at, ok := ag.mounted[repl]
		ag.mu.Unlock()
		if !ok || at.After(end) {
			out = append(out, fmt.Sprintf("data volume mounted on %s at %s, after %s's interruption at %s", repl, at.Format(time.TimeOnly), old, end.Format(time.TimeOnly)))
		}
	}
	return out
}
