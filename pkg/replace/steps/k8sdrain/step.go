package k8sdrain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/kube"
	"github.com/spotmax/spotmax/pkg/replace"
)

// InstanceDescriber is what the drain step reads from EC2: the instances' AZs and private DNS
// names. *ec2.Client satisfies it.
type InstanceDescriber interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// Events the drain step publishes through Step.Event.
const (
	EventCordoned         = "node_cordoned"
	EventReplacementReady = "replacement_node_ready"
	EventReplacementLate  = "replacement_node_not_ready"
	EventDrained          = "node_drained"
	EventDrainFailed      = "node_drain_failed"
	EventUncordoned       = "node_uncordoned"
)

// StepName is the name of the drain step in plans and progress.
const StepName = "k8s-drain"

// AnnotationCordonedBy marks a node that the drain step cordoned, with the id of the instance
// being replaced, so that a resumed replacement knows the cordon is its own to undo.
const AnnotationCordonedBy = "spotmax/cordoned-by"

// Step is the replacement workflow's Kubernetes drain (a replace.PreDetachStep), enabled for
// groups with spotmax:k8s_config_file_path. It cordons the old instance's node, waits until the
// replacement's node is Ready or spotmax:k8s_delay_draining_secs
// (spotmax:preaction_k8s_delay_draining_secs in proactive replacements) has passed, whichever is
// first, then drains the old node with spotmax:k8s_node_drain_grace_second as the pods' grace
// period. When a proactive replacement's drain fails, the step uncordons the node before it
// returns the error (the workflow then aborts and the old node keeps serving); an interrupted
// instance's node stays cordoned.
type Step struct {
	// EC2, when set, gives the instances' AZs and private DNS names (the node-name fallback).
	// Without it the old node is found by providerID with Target.Old's AZ and the replacement's
	// by any providerID ending in its id.
	EC2 InstanceDescriber
	// Clock times the wait for the replacement's node; default the wall clock. Evictions and
	// their timeout run in real time.
	Clock replace.Clock
	// Poll is how often (Clock time) the replacement's node is checked; default 5s.
	Poll time.Duration
	// DrainMargin is added to the grace period to bound the whole drain (PodDisruptionBudget
	// retries and the wait for evicted pods to go); default 60s.
	DrainMargin time.Duration
	// EvictRetry is the wait before retrying an eviction a PodDisruptionBudget refused; default 5s.
	EvictRetry time.Duration
	// Connect opens the cluster of a kubeconfig; default kube.Connect with a 5s connect timeout.
	Connect func(ctx context.Context, src kube.Source) (*kube.Client, error)
	// Event, when set, receives what the step did (the Event* names) for metrics.
	Event func(name string, fields map[string]any)
	Log   *slog.Logger
}

var _ replace.PreDetachStep = (*Step)(nil)

// Name implements replace.PreDetachStep.
func (s *Step) Name() string { return StepName }

// Enabled implements replace.PreDetachStep: the group has spotmax:k8s_config_file_path.
func (s *Step) Enabled(g *inventory.Group) bool {
	return g != nil && g.Config != nil && g.Config.K8sConfigFilePath != ""
}

// Run implements replace.PreDetachStep. It is idempotent: a node already cordoned or drained
// drains again in a moment.
func (s *Step) Run(ctx context.Context, t replace.Target) (err error) {
	if !s.Enabled(t.Group) {
		return nil
	}
	cfg := t.Group.Config
	clk := s.Clock
	if clk == nil {
		clk = replace.RealClock{}
	}
	log := s.log().With("group", t.Group.Name, "old", t.Old.ID, "new", t.New)
	fields := func(kv ...any) map[string]any {
		m := map[string]any{"group": t.Group.Name, "old": t.Old.ID, "new": t.New, "reason": string(t.Reason)}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}

	src := kube.ResolveKubeconfig("", cfg, os.Getenv)
	c, err := s.connect(ctx, src)
	if err != nil {
		s.event(EventDrainFailed, fields("error", err.Error()))
		return err
	}
	c.Log = log
	oldRef, newRef, err := s.refs(ctx, t)
	if err != nil {
		s.event(EventDrainFailed, fields("error", err.Error()))
		return err
	}
	node, err := c.NodeFor(ctx, oldRef)
	if err != nil {
		s.event(EventDrainFailed, fields("error", err.Error()))
		return err
	}
	// A node cordoned by someone else stays cordoned whatever happens; one this step cordoned,
	// in this run or in a run before a crash, is given back when a proactive replacement aborts.
	ours := !node.Spec.Unschedulable || node.Annotations[AnnotationCordonedBy] == t.Old.ID
	defer func() {
		if err == nil {
			return
		}
		if t.Reason.Proactive() && ours {
			err = s.uncordon(ctx, c, node, err, fields)
		}
		s.event(EventDrainFailed, fields("node", node.Name, "error", err.Error()))
	}()

	// Cordon now: nothing new lands on the old node while the replacement's node gets ready.
	if !node.Spec.Unschedulable {
		id := t.Old.ID
		if err := c.Annotate(ctx, node.Name, AnnotationCordonedBy, &id); err != nil {
			return err
		}
		if err := c.Cordon(ctx, node); err != nil {
			return err
		}
		s.event(EventCordoned, fields("node", node.Name))
	}

	delay := cfg.K8sDelayDraining
	if t.Reason.Proactive() {
		delay = cfg.PreactionK8sDelayDraining
	}
	if !t.Deadline.IsZero() {
		delay = max(0, min(delay, t.Deadline.Sub(clk.Now())))
	}
	waitStart := clk.Now()
	newNode, ready, err := c.WaitReady(ctx, newRef, clk, s.Poll, delay)
	if err != nil {
		return fmt.Errorf("waiting for the node of replacement %s: %w", t.New, err)
	}
	waited := clk.Now().Sub(waitStart)
	if ready {
		log.Info("replacement's node is ready", "node", newNode.Name, "waited", waited)
		s.event(EventReplacementReady, fields("node", newNode.Name, "waited_seconds", waited.Seconds()))
	} else {
		log.Warn("replacement's node is not ready, draining anyway", "delay", delay, "found", newNode != nil)
		s.event(EventReplacementLate, fields("waited_seconds", waited.Seconds()))
	}

	grace := cfg.K8sNodeDrainGrace
	margin := s.DrainMargin
	if margin <= 0 {
		margin = 60 * time.Second
	}
	res, err := c.Drain(ctx, node, kube.DrainOptions{
		GracePeriod: grace, Timeout: grace + margin, EvictRetry: s.EvictRetry, ProgressEvery: 10 * time.Second,
		Progress: func(p kube.DrainProgress) {
			log.Debug("draining node", "node", p.Node, "left", p.Left, "total", p.Total, "elapsed", p.Elapsed.Round(time.Second))
		},
	})
	if err != nil {
		return err
	}
	log.Info("drained node", "node", node.Name, "evicted", len(res.Evicted), "elapsed", res.Elapsed.Round(time.Millisecond))
	s.event(EventDrained, fields("node", node.Name, "pods", len(res.Evicted), "duration_seconds", res.Elapsed.Seconds()))
	return nil
}

// uncordon gives a node back after a failed proactive drain and says so in the error.
func (s *Step) uncordon(ctx context.Context, c *kube.Client, node *kube.Node, cause error, fields func(...any) map[string]any) error {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// The node object may be stale after the failure; read it again.
	fresh, err := c.Node(uctx, node.Name)
	if err == nil {
		err = c.Uncordon(uctx, fresh)
	}
	if err == nil {
		err = c.Annotate(uctx, node.Name, AnnotationCordonedBy, nil)
	}
	if err != nil {
		return fmt.Errorf("%w; uncordoning node %s failed too, it stays cordoned: %w", cause, node.Name, err)
	}
	s.event(EventUncordoned, fields("node", node.Name))
	var derr *kube.DrainError
	if errors.As(cause, &derr) {
		derr.Cordoned, derr.Uncordoned = false, true
		return cause
	}
	return fmt.Errorf("%w; node %s was uncordoned and keeps serving", cause, node.Name)
}

// refs builds the lookups of the old and the replacement instance's nodes, asking EC2 for AZs
// and private DNS names when the step has a client.
func (s *Step) refs(ctx context.Context, t replace.Target) (oldRef, newRef kube.InstanceRef, err error) {
	oldRef = kube.InstanceRef{ID: t.Old.ID, AZ: t.Old.AZ}
	newRef = kube.InstanceRef{ID: t.New}
	if s.EC2 == nil {
		return oldRef, newRef, nil
	}
	ids := []string{t.Old.ID}
	if t.New != "" {
		ids = append(ids, t.New)
	}
	out, err := s.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		return oldRef, newRef, fmt.Errorf("describing %v for their nodes: %w", ids, err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			ref := kube.InstanceRef{ID: aws.ToString(in.InstanceId), PrivateDNSName: aws.ToString(in.PrivateDnsName)}
			if in.Placement != nil {
				ref.AZ = aws.ToString(in.Placement.AvailabilityZone)
			}
			switch ref.ID {
			case t.Old.ID:
				oldRef = ref
			case t.New:
				newRef = ref
			}
		}
	}
	return oldRef, newRef, nil
}

func (s *Step) connect(ctx context.Context, src kube.Source) (*kube.Client, error) {
	if s.Connect != nil {
		return s.Connect(ctx, src)
	}
	return kube.Connect(ctx, src, kube.ConnectOptions{Log: s.log()})
}

func (s *Step) event(name string, fields map[string]any) {
	if s.Event != nil {
		s.Event(name, fields)
	}
}

func (s *Step) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}
