package replace

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
)

// Reason says why an instance is replaced.
type Reason string

// Reasons.
const (
	// ReasonInterruption: a spot interruption notice; the instance stops at the deadline.
	ReasonInterruption Reason = "interruption"
	// ReasonRebalance: an EC2 rebalance recommendation.
	ReasonRebalance Reason = "rebalance"
	// ReasonLifetime: the instance reached its guaranteed lifetime.
	ReasonLifetime Reason = "lifetime"
	// ReasonRevert: an on-demand or alternative-type stand-in goes back to spot on the group's type.
	ReasonRevert Reason = "revert"
	// ReasonManual: an operator asked for it.
	ReasonManual Reason = "manual"
)

// Proactive reports whether the old instance is not about to be taken away: its retirement can
// be aborted and its proactive delays apply.
func (r Reason) Proactive() bool { return r != ReasonInterruption }

// Valid reports whether r is a known reason.
func (r Reason) Valid() bool {
	switch r {
	case ReasonInterruption, ReasonRebalance, ReasonLifetime, ReasonRevert, ReasonManual:
		return true
	}
	return false
}

// Request asks for one replacement.
type Request struct {
	InstanceID string
	Reason     Reason
	// Deadline is when an interrupted instance stops; delays never wait past it. Zero for
	// proactive replacements.
	Deadline time.Time
	// ForceDetach allows a forced detach of the data volume when the old instance does not
	// release it in time. Forcing can corrupt the file system; only an operator asks for it.
	ForceDetach bool
	// ResumeOnly asks only to resume the instance's journaled replacement: with no journal on the
	// instance (another run finished or rolled it back since the journal was seen) nothing is
	// done and Replace returns ErrNothingToResume. The reconcile's resume events set it, so a
	// stale one never starts a new replacement of an instance that keeps serving.
	ResumeOnly bool
}

// Markets, as package inventory names them (its MarketOf derives an instance's).
const (
	MarketSpot     = inventory.MarketSpot
	MarketOnDemand = inventory.MarketOnDemand
)

// Option is one way to launch the replacement: an instance type in a market, in a subnet.
type Option struct {
	InstanceType string `json:"instance_type"`
	Market       string `json:"market"`
	SubnetID     string `json:"subnet_id"`
	AZ           string `json:"az"`
	// Template is the launch template of a mixed instances policy's override that has its own;
	// nil means the group's template.
	Template *inventory.TemplateRef `json:"template,omitempty"`
}

// String renders the option for logs: "spot m5.large in us-east-1a".
func (o Option) String() string { return fmt.Sprintf("%s %s in %s", o.Market, o.InstanceType, o.AZ) }

// Plan is what a replacement will do, computed without changing anything.
type Plan struct {
	Group  string `json:"group"`
	Old    string `json:"old"`
	Reason Reason `json:"reason"`
	// Options are tried in order until one launches.
	Options []Option `json:"options"`
	// Volumes are the data volumes that move, each with its device and mount path, in the order
	// of the group's spotmax:persistence_dev; empty when the group keeps no data volume or the
	// old instance holds none.
	Volumes []DataVolume `json:"volumes,omitempty"`
	// Steps are the workflow's steps in order, including the enabled pre-detach steps.
	Steps []string `json:"steps"`
	// Resume is set when the instance already has a replacement in progress, at this phase.
	Resume Phase `json:"resume,omitempty"`
	// Warm is set when the replacement takes a warmed instance from the group's warm pool
	// (is_warm_pool_first, warm.go); WarmNote says why it does not when the group asks for it.
	Warm     bool   `json:"warm,omitempty"`
	WarmNote string `json:"warm_note,omitempty"`
	// VolumeAZ is the data volume's AZ. CrossAZOptions are tried, in order, when every option
	// in it failed for capacity and the group opted into cross-AZ moves (crossaz.go).
	VolumeAZ       string   `json:"volume_az,omitempty"`
	CrossAZOptions []Option `json:"cross_az_options,omitempty"`
}

// DataVolume is one data volume of a replacement: its id, the device it is attached at (an entry
// of the group's spotmax:persistence_dev) and where the agent mounts it ("" = the agent's own
// default or the group's propagated tag).
type DataVolume struct {
	ID        string `json:"volume"`
	Device    string `json:"device"`
	MountPath string `json:"mount_path,omitempty"`
}

// Phase is a journaled point of progress: the last step completed.
type Phase string

// Phases. The usual order is the order below; an interrupted instance whose data volume is
// already released moves it right after the launch (see run.order).
const (
	PhaseStarted     Phase = "started"
	PhaseLaunched    Phase = "launched"
	PhaseJoined      Phase = "joined"
	PhaseRetired     Phase = "retired"
	PhaseDetached    Phase = "detached"
	PhaseVolumeMoved Phase = "volume-moved"
	PhaseDone        Phase = "done"
	// PhaseAborting is journaled when a rollback starts; a resume finishes the rollback.
	PhaseAborting Phase = "aborting"
	// The warm pool's route (warm.go).
	PhaseWarmPrepared Phase = "warm-prepared"
	PhaseWarmDetached Phase = "warm-detached"
	PhaseWarmTaken    Phase = "warm-taken"
	PhaseWarmJoined   Phase = "warm-joined"
)

// Attempt is one launch option tried.
type Attempt struct {
	Option Option `json:"option"`
	Error  string `json:"error,omitempty"`
}

// Result is what a replacement did.
type Result struct {
	Group  string `json:"group"`
	Old    string `json:"old"`
	New    string `json:"new"`
	Reason Reason `json:"reason"`
	Market string `json:"market"`
	Type   string `json:"type"`
	AZ     string `json:"az"`
	// Volumes are the ids of the data volumes moved.
	Volumes  []string  `json:"volumes,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Attempts []Attempt `json:"attempts"`
	// Warnings are failures that did not stop the replacement, e.g. a drain that failed on an
	// interrupted instance.
	Warnings []string `json:"warnings"`
	// Resumed is set when this run continued a journaled replacement.
	Resumed bool `json:"resumed"`
	// Warm is set when the replacement is a warmed instance from the group's warm pool.
	Warm bool `json:"warm,omitempty"`
	// CrossAZ reports the data volumes' moves to the replacement's AZ through snapshots, one per
	// volume, when there were any.
	CrossAZ []*CrossAZMove `json:"cross_az,omitempty"`
}

// Progress reports one step of a replacement as it happens.
type Progress struct {
	Group  string
	Old    string
	New    string
	Step   string
	Detail string
	// Done is false when the step starts and true when it ends; Err is set when it failed.
	Done bool
	Err  error
	At   time.Time
}

// Target is what a pre-detach step acts on.
type Target struct {
	Group *inventory.Group
	// Old is the instance being retired, with its private IP for remote agents.
	Old inventory.Instance
	// New is the replacement's instance id.
	New      string
	Reason   Reason
	Deadline time.Time
}

// PreDetachStep prepares the old instance for detaching: Consul deregistration, Kubernetes drain.
// Steps run in order; an error aborts a proactive replacement (the old instance keeps serving)
// and is reported but not fatal for an interrupted one.
type PreDetachStep interface {
	// Name names the step in progress and plans, e.g. "consul-deregister".
	Name() string
	// Enabled reports whether the group configures the step.
	Enabled(g *inventory.Group) bool
	// Run does the step. It must be idempotent: a resumed replacement runs it again.
	Run(ctx context.Context, t Target) error
}

// PreDetach registers a pre-detach step with the workflow (Workflow.Steps): the step and the
// metrics event recorded when it succeeds ("" for none). The registrations of spotmax's own
// steps are listed in one place, package replace/steps.
type PreDetach struct {
	Step   PreDetachStep
	Metric metrics.Name
}

// Clock is the workflow's time: Now for journals and deadlines, Sleep for configured delays.
// Against the simulated region it is the simulator's scaled clock.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx ends.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Errors a caller may test for.
var (
	// ErrRefused means the instance or group cannot be replaced as asked; nothing was changed.
	ErrRefused = errors.New("refused")
	// ErrNoCapacity means no launch option could get an instance; the old one keeps serving.
	ErrNoCapacity = errors.New("no capacity")
	// ErrAborted means the replacement was rolled back; the old instance keeps serving.
	ErrAborted = errors.New("aborted")
	// ErrStopped means the workflow was asked to stop between steps; the journal is kept.
	ErrStopped = errors.New("stopped")
	// ErrBusy means another actor holds the instance's journal (BusyError); nothing was changed.
	ErrBusy = errors.New("busy")
	// ErrUntrusted means a journal names something that is not what the journal says (a
	// replacement not launched by spotmax for this instance, another group); nothing was done.
	ErrUntrusted = errors.New("untrusted journal")
	// ErrNothingToResume means a ResumeOnly request found no journal on the instance: the
	// replacement it was meant to resume has finished or rolled back; nothing was done.
	ErrNothingToResume = errors.New("nothing to resume")
)

// RefusedError explains a refusal.
type RefusedError struct {
	Instance, Group, Why string
	// Err is the underlying error, when there is one (e.g. a *groupconfig.NotManagedError).
	Err error
}

// Unwrap returns the underlying error.
func (e *RefusedError) Unwrap() error { return e.Err }

// Error implements error.
func (e *RefusedError) Error() string {
	if e.Group != "" {
		return fmt.Sprintf("cannot replace %s of group %s: %s", e.Instance, e.Group, e.Why)
	}
	return fmt.Sprintf("cannot replace %s: %s", e.Instance, e.Why)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }
