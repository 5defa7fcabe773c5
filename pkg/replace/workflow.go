package replace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
)

// Timeouts bound the waits of a replacement, in the workflow clock's time.
type Timeouts struct {
	Running   time.Duration // replacement pending → running
	InService time.Duration // replacement attached → InService
	Detach    time.Duration // old instance Detaching → gone from the group
	// Release is how long a proactive replacement waits for the agent to release the data
	// volume before it terminates the (already detached and drained) old instance to free it.
	Release time.Duration
	Volume  time.Duration // volume detaching → available, attaching → in-use
}

// DefaultTimeouts are generous against AWS's usual latencies.
func DefaultTimeouts() Timeouts {
	return Timeouts{Running: 10 * time.Minute, InService: 10 * time.Minute, Detach: 5 * time.Minute,
		Release: 3 * time.Minute, Volume: 5 * time.Minute}
}

// Workflow runs replacements. Its zero value is not usable: set EC2 and ASG at least.
type Workflow struct {
	EC2 EC2API
	ASG ASGAPI
	// Steps run in order before the old instance is detached.
	Steps []PreDetachStep
	// Clock defaults to the wall clock.
	Clock Clock
	// PollMin and PollMax bound the real-time backoff of status polls (default 1 s and 15 s):
	// no poll is faster than the state it watches can change.
	PollMin, PollMax time.Duration
	// Timeouts default to DefaultTimeouts.
	Timeouts *Timeouts
	Log      *slog.Logger
	// OnProgress, when set, receives every step as it starts and ends.
	OnProgress func(Progress)
	// AfterPhase, when set, is called after each phase is journaled; an error stops the workflow
	// on the spot, as a crash would. Fault-injection tests use it.
	AfterPhase func(old string, p Phase) error
	// Stop, when closed, makes running replacements stop before their next step, leaving the
	// journal for a resume: a graceful shutdown finishes the step in flight.
	Stop <-chan struct{}
	// Metrics, when set, receives the workflow's actions: replacement started, succeeded or
	// failed, on-demand fallback, revert to spot, lifetime rotation, volume moved.
	Metrics Recorder

	sizeLocks sync.Map // group name → *sync.Mutex, see lockGroupSize
}

func (w *Workflow) clock() Clock {
	if w.Clock == nil {
		return RealClock{}
	}
	return w.Clock
}

func (w *Workflow) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}

func (w *Workflow) timeouts() Timeouts {
	if w.Timeouts == nil {
		return DefaultTimeouts()
	}
	return *w.Timeouts
}

// Recorder receives the workflow's actions as metrics events; *metrics.Publisher satisfies it.
type Recorder interface {
	Record(ctx context.Context, e metrics.Event)
}

func (r *run) record(ctx context.Context, name metrics.Name, d time.Duration, fields map[string]string) {
	if r.w.Metrics == nil {
		return
	}
	if fields == nil {
		fields = map[string]string{}
	}
	fields["reason"] = string(r.req.Reason)
	if r.newID != "" {
		fields["replacement"] = r.newID
	}
	r.w.Metrics.Record(ctx, metrics.Event{Name: name, Group: r.g.Name, Instance: r.req.InstanceID, Duration: d,
		Time: r.w.clock().Now(), Fields: fields})
}

// run is the state of one replacement in progress.
type run struct {
	w       *Workflow
	g       *inventory.Group
	cfg     *groupconfig.Config
	req     Request
	old     ec2types.Instance
	journal map[string]string // the old instance's spotmax:state:* tags
	plan    *Plan
	tmpl    *ec2types.ResponseLaunchTemplateData // read once, see template
	newID   string
	res     *Result
}

// Replace replaces one instance of g. If the instance already has a journaled replacement, it
// resumes that one. g must be fresh (inventory.Lister.Group).
func (w *Workflow) Replace(ctx context.Context, g *inventory.Group, req Request) (*Result, error) {
	r, err := w.prepare(ctx, g, req)
	if err != nil {
		return nil, err
	}
	return r.execute(ctx)
}

// Plan computes what Replace would do, changing nothing.
func (w *Workflow) Plan(ctx context.Context, g *inventory.Group, req Request) (*Plan, error) {
	r, err := w.prepare(ctx, g, req)
	if err != nil {
		return nil, err
	}
	return r.plan, nil
}

// prepare validates the request and computes the plan (or loads the journal).
func (w *Workflow) prepare(ctx context.Context, g *inventory.Group, req Request) (*run, error) {
	if req.Reason == "" {
		req.Reason = ReasonManual
	}
	if !req.Reason.Valid() {
		return nil, &RefusedError{Instance: req.InstanceID, Group: g.Name, Why: fmt.Sprintf("unknown reason %q", req.Reason)}
	}
	if g.ConfigErr != nil {
		return nil, &RefusedError{Instance: req.InstanceID, Group: g.Name, Why: "the group's spotmax configuration is invalid: " + g.ConfigErr.Error()}
	}
	if g.Config == nil {
		return nil, &RefusedError{Instance: req.InstanceID, Group: g.Name, Why: "not a spotmax group (no spotmax:group tag)"}
	}
	if g.Config.Ignore {
		return nil, &RefusedError{Instance: req.InstanceID, Group: g.Name, Why: "the group has spotmax:ignore_tag=true"}
	}
	old, err := w.describeInstance(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	r := &run{w: w, g: g, cfg: g.Config, req: req, old: old, journal: stateTags(old.Tags)}
	r.res = &Result{Group: g.Name, Old: req.InstanceID, Reason: req.Reason, Attempts: []Attempt{}, Warnings: []string{}}
	if phase := Phase(r.journal[groupconfig.StatePhase]); phase != "" {
		if jg := r.journal[groupconfig.StateJournalGroup]; jg != "" && jg != g.Name {
			return nil, &RefusedError{Instance: req.InstanceID, Group: g.Name, Why: "its journaled replacement belongs to group " + jg}
		}
		r.req.Reason = Reason(r.journal[groupconfig.StateReason])
		r.req.ForceDetach = r.req.ForceDetach || strings.Contains(r.journal[groupconfig.StateOptions], optForceDetach)
		r.res.Reason = r.req.Reason
		r.res.Resumed = true
		r.newID = r.journal[groupconfig.StateReplacement]
		if t, err := time.Parse(time.RFC3339, r.journal[groupconfig.StateStarted]); err == nil {
			r.res.Started = t
		}
	} else {
		if !isMember(g, req.InstanceID) {
			return nil, &RefusedError{Instance: req.InstanceID, Group: g.Name, Why: "not a member of the group"}
		}
		switch st := stateName(old); st {
		case "pending", "running":
		default:
			return nil, &RefusedError{Instance: req.InstanceID, Group: g.Name, Why: "instance is " + st}
		}
	}
	plan, err := r.makePlan(ctx)
	if err != nil {
		return nil, err
	}
	r.plan = plan
	return r, nil
}

func (r *run) execute(ctx context.Context) (*Result, error) {
	w := r.w
	if r.res.Started.IsZero() {
		r.res.Started = w.clock().Now()
	}
	cur := Phase(r.journal[groupconfig.StatePhase])
	if cur == "" {
		r.record(ctx, metrics.ReplacementStarted, 0, nil)
	}
	for {
		s, ok := r.next(cur)
		if !ok {
			break
		}
		select {
		case <-w.Stop:
			return r.res, fmt.Errorf("%w: replacement of %s paused before %s, its journal is kept", ErrStopped, r.req.InstanceID, s.name)
		default:
		}
		r.progress(s.name, "", false, nil)
		stepStart := w.clock().Now()
		err := s.fn(ctx)
		r.progress(s.name, "", true, err)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, ErrStopped) {
				r.record(context.WithoutCancel(ctx), metrics.ReplacementFailed, w.clock().Now().Sub(r.res.Started), map[string]string{"step": s.name, "error": err.Error()})
			}
			return r.res, err
		}
		if s.after == PhaseVolumeMoved && r.plan.Volume != "" {
			r.record(ctx, metrics.VolumeMoved, w.clock().Now().Sub(stepStart), map[string]string{"volume": r.plan.Volume})
		}
		if s.after != PhaseDone {
			if err := r.setPhase(ctx, s.after); err != nil {
				return r.res, err
			}
		}
		cur = s.after
		if w.AfterPhase != nil {
			if err := w.AfterPhase(r.req.InstanceID, s.after); err != nil {
				return r.res, err
			}
		}
	}
	r.res.Finished = w.clock().Now()
	took := r.res.Finished.Sub(r.res.Started)
	r.record(ctx, metrics.ReplacementSucceeded, took, map[string]string{"market": r.res.Market, "type": r.res.Type})
	switch {
	case r.req.Reason == ReasonRevert:
		r.record(ctx, metrics.RevertToSpot, took, nil)
	case r.res.Market == MarketOnDemand && !r.cfg.OnlyOD:
		r.record(ctx, metrics.OnDemandFallback, 0, nil)
	}
	if r.req.Reason == ReasonLifetime {
		r.record(ctx, metrics.LifetimeRotation, took, nil)
	}
	return r.res, nil
}

// step is one step of the workflow and the phase journaled once it is done.
type step struct {
	after Phase
	name  string
	fn    func(context.Context) error
}

// order is the run's sequence of steps. The data volume normally moves once the old instance is
// out of the group; for an interrupted instance whose volume is already released (the agent
// unmounted it on the notice), it moves right after the launch, so the replacement has its data
// before it takes traffic and well inside the two minutes.
func (r *run) order() []step {
	head := []step{{PhaseStarted, "start", r.start}, {PhaseLaunched, "launch", r.launch}}
	move := step{PhaseVolumeMoved, "move-volume", r.moveVolume}
	tail := []step{{PhaseJoined, "join", r.join}, {PhaseRetired, "retire", r.retire}, {PhaseDetached, "detach", r.detach}}
	finish := step{PhaseDone, "finish", r.finish}
	if r.volumeFirst() {
		return append(append(append(head, move), tail...), finish)
	}
	return append(append(head, tail...), move, finish)
}

// next returns the step after the journaled phase cur.
func (r *run) next(cur Phase) (step, bool) {
	ord := r.order()
	if cur == "" {
		return ord[0], true
	}
	for i, s := range ord {
		if s.after == cur && i+1 < len(ord) {
			return ord[i+1], true
		}
	}
	return step{}, false
}

func (r *run) volumeFirst() bool {
	return strings.Contains(r.journal[groupconfig.StateOptions], optVolumeFirst)
}

// Journaled options of a replacement.
const (
	optForceDetach = "force-detach"
	optVolumeFirst = "volume-first"
)

func (r *run) progress(step, detail string, done bool, err error) {
	if r.w.OnProgress != nil {
		r.w.OnProgress(Progress{Group: r.g.Name, Old: r.req.InstanceID, New: r.newID, Step: step, Detail: detail,
			Done: done, Err: err, At: r.w.clock().Now()})
	}
	if done {
		if err != nil {
			r.w.log().Warn("replacement step failed", "group", r.g.Name, "old", r.req.InstanceID, "new", r.newID, "step", step, "error", err)
		} else {
			r.w.log().Info("replacement step done", "group", r.g.Name, "old", r.req.InstanceID, "new", r.newID, "step", step, "detail", detail)
		}
	}
}

func (r *run) setPhase(ctx context.Context, p Phase) error {
	if err := r.w.tagInstance(ctx, r.req.InstanceID, map[string]string{groupconfig.StatePhase: string(p)}); err != nil {
		return fmt.Errorf("journaling phase %s on %s: %w", p, r.req.InstanceID, err)
	}
	r.journal[groupconfig.StatePhase] = string(p)
	return nil
}

// start secures the data volume and writes the journal.
func (r *run) start(ctx context.Context) error {
	if r.plan.Volume != "" {
		if err := r.w.keepVolume(ctx, r.req.InstanceID, r.plan.Device); err != nil {
			return err
		}
		if err := r.w.tagResource(ctx, r.plan.Volume, map[string]string{groupconfig.StateMovingFrom: r.req.InstanceID}); err != nil {
			return fmt.Errorf("journaling volume %s: %w", r.plan.Volume, err)
		}
	}
	opts := ""
	if r.req.ForceDetach {
		opts = optForceDetach
	}
	j := map[string]string{
		groupconfig.StateJournalGroup: r.g.Name,
		groupconfig.StateReason:       string(r.req.Reason),
		groupconfig.StateStarted:      r.res.Started.UTC().Format(time.RFC3339),
		groupconfig.StateToken:        newToken(),
		groupconfig.StateOptions:      opts,
	}
	if err := r.w.tagInstance(ctx, r.req.InstanceID, j); err != nil {
		return fmt.Errorf("journaling the replacement of %s: %w", r.req.InstanceID, err)
	}
	for k, v := range j {
		r.journal[k] = v
	}
	return nil
}

// launch starts the replacement: adopts one launched before a crash, else tries the plan's
// options in order.
func (r *run) launch(ctx context.Context) error {
	w := r.w
	id, err := w.findReplacement(ctx, r.req.InstanceID)
	if err != nil {
		return err
	}
	if id == "" {
		id, err = r.launchFirstFitting(ctx)
		if err != nil {
			return r.abort(ctx, err)
		}
	}
	r.newID = id
	r.res.New = id
	if err := w.tagInstance(ctx, r.req.InstanceID, map[string]string{groupconfig.StateReplacement: id}); err != nil {
		return fmt.Errorf("journaling replacement %s on %s: %w", id, r.req.InstanceID, err)
	}
	r.journal[groupconfig.StateReplacement] = id
	if r.plan.Volume != "" {
		if err := w.tagResource(ctx, r.plan.Volume, map[string]string{groupconfig.StateMovingTo: id}); err != nil {
			return fmt.Errorf("journaling volume %s: %w", r.plan.Volume, err)
		}
	}
	inst, err := w.waitRunning(ctx, id, "replacement")
	if err != nil {
		return r.abort(ctx, fmt.Errorf("waiting for replacement %s to run: %w", id, err))
	}
	r.recordNew(inst)
	if r.req.Reason == ReasonInterruption && r.plan.Volume != "" && !r.volumeFirst() {
		released, err := r.volumeReleased(ctx)
		if err != nil {
			return err
		}
		if released {
			opts := strings.TrimSpace(r.journal[groupconfig.StateOptions] + " " + optVolumeFirst)
			if err := w.tagInstance(ctx, r.req.InstanceID, map[string]string{groupconfig.StateOptions: opts}); err != nil {
				return fmt.Errorf("journaling the order of the replacement of %s: %w", r.req.InstanceID, err)
			}
			r.journal[groupconfig.StateOptions] = opts
		}
	}
	return nil
}

func (r *run) recordNew(inst ec2types.Instance) {
	r.res.Type = string(inst.InstanceType)
	r.res.Market = MarketOnDemand
	if inst.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot {
		r.res.Market = MarketSpot
	}
	if inst.Placement != nil {
		r.res.AZ = aws.ToString(inst.Placement.AvailabilityZone)
	}
}

func (r *run) launchFirstFitting(ctx context.Context) (string, error) {
	var tried []string
	for i, opt := range r.plan.Options {
		id, err := r.w.runInstance(ctx, r, opt, fmt.Sprintf("%s-%d", r.journal[groupconfig.StateToken], i))
		if err == nil {
			r.res.Attempts = append(r.res.Attempts, Attempt{Option: opt})
			r.progress("launch", opt.String()+": "+id, false, nil)
			return id, nil
		}
		r.res.Attempts = append(r.res.Attempts, Attempt{Option: opt, Error: err.Error()})
		if !awsapi.IsCapacity(err) {
			return "", fmt.Errorf("launching %s: %w", opt, err)
		}
		tried = append(tried, fmt.Sprintf("%s (%s)", opt, awsapi.Code(err)))
		r.progress("launch", opt.String()+": "+awsapi.Code(err), false, nil)
	}
	return "", fmt.Errorf("%w: tried %s", ErrNoCapacity, strings.Join(tried, ", "))
}

// abort rolls back a replacement whose old instance has not been detached: the replacement (if
// any) leaves the group and is terminated, MaxSize is restored and the journal cleared. The old
// instance keeps serving.
func (r *run) abort(ctx context.Context, cause error) error {
	w := r.w
	// Rolling back must not be cut short by the caller's deadline.
	ctx = context.WithoutCancel(ctx)
	var errs []error
	if r.newID != "" {
		member, err := w.groupMember(ctx, r.g.Name, r.newID)
		if err != nil {
			errs = append(errs, err)
		} else if member {
			if err := w.detachFromGroup(ctx, r.g.Name, r.newID); err != nil {
				errs = append(errs, err)
			}
		}
		if err := w.terminate(ctx, r.newID); err != nil {
			errs = append(errs, err)
		}
	}
	if err := w.RestoreMaxSize(ctx, r.g.Name); err != nil {
		errs = append(errs, err)
	}
	if r.plan.Volume != "" {
		if err := w.untagResource(ctx, r.plan.Volume, groupconfig.StateMovingFrom, groupconfig.StateMovingTo); err != nil {
			errs = append(errs, err)
		}
	}
	if err := w.clearJournal(ctx, r.req.InstanceID); err != nil {
		errs = append(errs, err)
	}
	err := fmt.Errorf("%w: replacement of %s rolled back, the instance keeps serving: %w", ErrAborted, r.req.InstanceID, cause)
	if len(errs) > 0 {
		err = fmt.Errorf("%w (rollback incomplete, resume with 'spotmax replace --resume %s': %w)", err, r.req.InstanceID, errors.Join(errs...))
	}
	return err
}

// join attaches the replacement to the group and waits until it is InService, raising MaxSize by
// one for the duration when the group is full.
func (r *run) join(ctx context.Context) error {
	w := r.w
	if r.newID == "" {
		return fmt.Errorf("journal of %s names no replacement", r.req.InstanceID)
	}
	if _, ok := r.journal[groupconfig.StateDesired]; !ok {
		g, err := w.describeGroup(ctx, r.g.Name)
		if err != nil {
			return err
		}
		if _, member := memberState(g, r.newID); !member {
			d := strconv.Itoa(int(aws.ToInt32(g.DesiredCapacity)))
			if err := w.tagInstance(ctx, r.req.InstanceID, map[string]string{groupconfig.StateDesired: d}); err != nil {
				return fmt.Errorf("journaling the desired capacity of group %s: %w", r.g.Name, err)
			}
			r.journal[groupconfig.StateDesired] = d
		}
	}
	if err := w.attachToGroup(ctx, r.g.Name, r.newID); err != nil {
		if r.volumeFirst() {
			// The data already lives on the replacement and the interrupted instance is going:
			// rolling back would orphan the volume. Keep the journal; a resume tries again.
			return err
		}
		return r.abort(ctx, err)
	}
	if err := w.waitMember(ctx, r.g.Name, r.newID, w.timeouts().InService, func(state string, present bool) (bool, error) {
		if !present {
			return false, fmt.Errorf("replacement %s left group %s", r.newID, r.g.Name)
		}
		return state == "InService", nil
	}); err != nil {
		if r.volumeFirst() {
			return err
		}
		return r.abort(ctx, err)
	}
	return nil
}

// retire runs the pre-detach steps and the configured delays.
func (r *run) retire(ctx context.Context) error {
	w := r.w
	if r.req.Reason.Proactive() {
		// Tell the agent: deregister and release the data volume as on a notice.
		if err := w.tagInstance(ctx, r.req.InstanceID, map[string]string{groupconfig.StateRetiring: string(r.req.Reason)}); err != nil {
			return fmt.Errorf("marking %s as retiring: %w", r.req.InstanceID, err)
		}
	}
	oldInv := r.oldInventory()
	target := Target{Group: r.g, Old: oldInv, New: r.newID, Reason: r.req.Reason, Deadline: r.req.Deadline}
	for _, step := range w.Steps {
		if !step.Enabled(r.g) {
			continue
		}
		r.progress(step.Name(), "", false, nil)
		sctx, cancel := r.deadlineCtx(ctx)
		stepStart := w.clock().Now()
		err := step.Run(sctx, target)
		cancel()
		r.progress(step.Name(), "", true, err)
		if err == nil {
			if m, ok := step.(interface{ MetricName() metrics.Name }); ok {
				r.record(ctx, m.MetricName(), w.clock().Now().Sub(stepStart), nil)
			}
			continue
		}
		if r.req.Reason.Proactive() {
			_ = w.untagResource(context.WithoutCancel(ctx), r.req.InstanceID, groupconfig.StateRetiring)
			return r.abort(ctx, fmt.Errorf("%s: %w", step.Name(), err))
		}
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s failed on interrupted instance %s (continuing, it stops at %s): %v",
			step.Name(), r.req.InstanceID, r.req.Deadline.UTC().Format(time.RFC3339), err))
	}
	if r.cfg.ConsulPort > 0 {
		if err := r.delay(ctx, "sd-delay", r.cfg.SDDelayDetach); err != nil {
			return err
		}
	}
	d := r.cfg.DetachingDelay
	if r.req.Reason.Proactive() {
		d = r.cfg.PreactionDetachDelay
	}
	return r.delay(ctx, "detaching-delay", d)
}

// deadlineCtx bounds a step of an interrupted instance by its deadline.
func (r *run) deadlineCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.req.Deadline.IsZero() {
		return context.WithCancel(ctx)
	}
	left := r.req.Deadline.Sub(r.w.clock().Now())
	return context.WithTimeout(ctx, max(left, 0))
}

// delay sleeps for d, never past an interruption's deadline.
func (r *run) delay(ctx context.Context, name string, d time.Duration) error {
	if !r.req.Deadline.IsZero() {
		if left := r.req.Deadline.Sub(r.w.clock().Now()); left < d {
			d = max(left, 0)
		}
	}
	if d <= 0 {
		return nil
	}
	r.progress(name, d.String(), false, nil)
	return r.w.clock().Sleep(ctx, d)
}

func (r *run) oldInventory() inventory.Instance {
	inst := inventory.Instance{ID: r.req.InstanceID, Type: string(r.old.InstanceType), PrivateIP: aws.ToString(r.old.PrivateIpAddress),
		State: stateName(r.old), LaunchTime: aws.ToTime(r.old.LaunchTime)}
	if r.old.Placement != nil {
		inst.AZ = aws.ToString(r.old.Placement.AvailabilityZone)
	}
	return inst
}

// detach takes the old instance out of the group, decrementing desired so that the group does
// not launch a replacement of its own, and restores MaxSize.
func (r *run) detach(ctx context.Context) error {
	w := r.w
	detachable, err := w.detachable(ctx, r.g.Name, r.req.InstanceID)
	if err != nil {
		return err
	}
	if detachable {
		if err := w.detachFromGroup(ctx, r.g.Name, r.req.InstanceID); err != nil {
			// An interrupted instance may leave the group on its own between the check and the call.
			if still, err2 := w.detachable(ctx, r.g.Name, r.req.InstanceID); err2 != nil || still {
				return err
			}
			detachable = false
		}
	}
	if !detachable {
		if err := r.takeBackExtraMember(ctx); err != nil {
			return err
		}
	}
	return w.RestoreMaxSize(ctx, r.g.Name)
}

// takeBackExtraMember handles an old instance that left the group without being detached (a spot
// instance terminated at the end of its notice while still a member): the group kept the desired
// capacity that the replacement's attach raised and launches a member of its own to fill it.
// Once that member is there, it is terminated with the desired capacity decremented, so the
// group is back to its size and the replacement, which holds the data volume, stays.
func (r *run) takeBackExtraMember(ctx context.Context) error {
	w := r.w
	before, err := strconv.Atoi(r.journal[groupconfig.StateDesired])
	if err != nil {
		return nil // not journaled: the replacement never joined
	}
	return w.poll(ctx, "group "+r.g.Name+" to launch for the lost "+r.req.InstanceID, w.timeouts().InService, func(ctx context.Context) (bool, error) {
		g, err := w.describeGroup(ctx, r.g.Name)
		if err != nil {
			return false, err
		}
		desired := int(aws.ToInt32(g.DesiredCapacity))
		if desired <= before {
			return true, nil
		}
		var ids []string
		for _, m := range g.Instances {
			switch m.LifecycleState {
			case astypes.LifecycleStatePending, astypes.LifecycleStateInService:
				if id := aws.ToString(m.InstanceId); id != r.newID {
					ids = append(ids, id)
				}
			}
		}
		if len(ids)+1 < desired {
			return false, nil // the group has not launched its own member yet
		}
		extra, err := w.newest(ctx, ids)
		if err != nil || extra == "" {
			return false, err
		}
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s left group %s before it could be detached; terminating %s, which the group launched in its place",
			r.req.InstanceID, r.g.Name, extra))
		err = w.call(ctx, func(ctx context.Context) error {
			_, err := w.ASG.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
				InstanceId: aws.String(extra), ShouldDecrementDesiredCapacity: aws.Bool(true)})
			return err
		})
		if err != nil {
			return false, fmt.Errorf("terminating %s in group %s: %w", extra, r.g.Name, err)
		}
		return true, nil
	})
}

// newest returns the most recently launched of ids: the member the group launched in place of
// a lost one (or, if the group also scaled out meanwhile, one as new; either way the group gets
// back to its size).
func (w *Workflow) newest(ctx context.Context, ids []string) (string, error) {
	if len(ids) == 0 {
		return "", nil
	}
	var out *ec2.DescribeInstancesOutput
	err := w.call(ctx, func(ctx context.Context) (err error) {
		out, err = w.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("describing %d members: %w", len(ids), err)
	}
	best, bestAt := "", time.Time{}
	for _, res := range out.Reservations {
		for _, in := range res.Instances {
			if at := aws.ToTime(in.LaunchTime); best == "" || at.After(bestAt) {
				best, bestAt = aws.ToString(in.InstanceId), at
			}
		}
	}
	return best, nil
}

// finish terminates the old instance and clears the journal.
func (r *run) finish(ctx context.Context) error {
	w := r.w
	if err := w.terminate(ctx, r.req.InstanceID); err != nil {
		return err
	}
	if r.plan.Volume != "" {
		if err := w.untagResource(ctx, r.plan.Volume, groupconfig.StateMovingFrom, groupconfig.StateMovingTo); err != nil {
			return err
		}
	}
	if r.newID != "" && r.res.Type == "" {
		if inst, err := w.describeInstance(ctx, r.newID); err == nil {
			r.recordNew(inst)
		}
	}
	r.res.New = r.newID
	r.res.Volume = r.plan.Volume
	return w.clearJournal(ctx, r.req.InstanceID)
}

func newToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func stateTags(tags []ec2types.Tag) map[string]string {
	out := map[string]string{}
	for _, t := range tags {
		if k := aws.ToString(t.Key); strings.HasPrefix(k, groupconfig.StatePrefix) {
			out[k] = aws.ToString(t.Value)
		}
	}
	return out
}

func stateName(in ec2types.Instance) string {
	if in.State == nil {
		return ""
	}
	return string(in.State.Name)
}

func isMember(g *inventory.Group, id string) bool {
	for _, m := range g.Members {
		if m.ID == id {
			return true
		}
	}
	return false
}
