package replace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
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
	// Visible is how long an instance spotmax launched may stay invisible to calls that name it
	// (EC2's eventual consistency answers InvalidInstanceID.NotFound meanwhile); zero means the
	// default.
	Visible time.Duration
}

// DefaultTimeouts are generous against AWS's usual latencies.
func DefaultTimeouts() Timeouts {
	return Timeouts{Running: 10 * time.Minute, InService: 10 * time.Minute, Detach: 5 * time.Minute,
		Release: 3 * time.Minute, Volume: 5 * time.Minute, Visible: 2 * time.Minute}
}

// Workflow runs replacements. Its zero value is not usable: set EC2 and ASG at least.
type Workflow struct {
	EC2 EC2API
	ASG ASGAPI
	// Steps run in order before the old instance is detached (replace/steps lists spotmax's).
	Steps []PreDetach
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
	// Owner names this actor in the journals it drives (lease.go). A controller sets a name that
	// stays the same across its restarts, so that it resumes its own journals at once; the
	// default, "spotmax@<host>/<pid>-<random>", is unique per process.
	Owner string
	// Lease is how long an actor's hold on a journal lasts unless renewed (default 45 s, in the
	// workflow clock's time); a crashed actor's journal is resumed by another after that.
	Lease time.Duration
	// LeaseSettle is how long an actor waits after writing its claim on a journal before it reads
	// the claim back to see whether a rival's write came after it (default 500 ms, in the workflow
	// clock's time like every duration of the workflow).
	LeaseSettle time.Duration

	sizeLocks sync.Map // group name → *sync.Mutex, see lockGroupSize
	takeBacks sync.Map // member taken back → the lost instance it makes up for (takeback.go); one small entry per lost instance, kept for the process's life
	ownerOnce sync.Once
	ownerID   string
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
	t := *w.Timeouts
	if t.Visible <= 0 {
		t.Visible = DefaultTimeouts().Visible
	}
	return t
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
	// The audit trail (metrics.ActionLog) records who acted and what the old instance was, so
	// that its hours can be priced after it is gone.
	fields["owner"] = r.w.owner()
	if r.res.AZ != "" {
		fields["az"] = r.res.AZ
	}
	if _, ok := fields["volume"]; !ok && r.plan != nil && len(r.plan.Volumes) > 0 {
		fields["volume"] = strings.Join(volumeIDs(r.plan.Volumes), ",")
	}
	for k, v := range crossAZFields(r.res.CrossAZ) {
		if _, ok := fields[k]; !ok {
			fields[k] = v
		}
	}
	fields["old_type"] = string(r.old.InstanceType)
	fields["old_market"] = inventory.MarketOf(r.old)
	if r.old.Placement != nil {
		fields["old_az"] = aws.ToString(r.old.Placement.AvailabilityZone)
	}
	if r.old.LaunchTime != nil {
		fields["old_launched"] = r.old.LaunchTime.UTC().Format(time.RFC3339)
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
	journal Journal // the old instance's journal (journal.go)
	plan    *Plan
	secured bool // the data volume is kept and tagged (launch, or again after a resume)
	// ownershipChecked is set when the claim was just read back (confirmClaim), so the next step
	// boundary need not read it again.
	ownershipChecked bool
	launcher         *launcher // launches into the group (launch.go); reads its template once
	newID            string
	res              *Result
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
	if err := g.CheckManaged(); err != nil {
		why := err.Error()
		if g.ConfigErr != nil {
			why = "the group's spotmax configuration is invalid: " + why
		}
		return nil, &RefusedError{Instance: req.InstanceID, Group: g.Name, Why: why, Err: err}
	}
	old, err := w.describeInstance(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	r := &run{w: w, g: g, cfg: g.Config, req: req, old: old, journal: loadJournal(req.InstanceID, old.Tags), launcher: w.launcher(g)}
	r.res = &Result{Group: g.Name, Old: req.InstanceID, Reason: req.Reason, Attempts: []Attempt{}, Warnings: []string{}}
	if r.journal.Phase != "" {
		if err := r.checkJournal(); err != nil {
			return nil, err
		}
		r.req.Reason = r.journal.Reason
		r.req.ForceDetach = r.req.ForceDetach || r.journal.has(optForceDetach)
		r.res.Reason = r.req.Reason
		r.res.Resumed = true
		r.newID = r.journal.Replacement
		r.res.Started = r.journal.Started
	} else {
		if req.ResumeOnly {
			return nil, fmt.Errorf("instance %s of group %s has no journal: %w", req.InstanceID, g.Name, ErrNothingToResume)
		}
		if !isMember(g, req.InstanceID) {
			return nil, &RefusedError{Instance: req.InstanceID, Group: g.Name, Why: "not a member of the group"}
		}
		switch st := stateName(old); st {
		case "pending", "running":
		default:
			return nil, &RefusedError{Instance: req.InstanceID, Group: g.Name, Why: "instance is " + st}
		}
		if err := w.checkNotReceiving(ctx, g.Name, old); err != nil {
			return nil, err
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
	if r.journal.Phase == "" {
		r.record(ctx, metrics.ReplacementStarted, 0, nil)
	} else {
		// A journal is checked before it is claimed: refusing a busy or untrusted one changes
		// nothing.
		if err := r.busy(); err != nil {
			return r.res, err
		}
		if r.newID != "" {
			if err := r.verifyReplacement(ctx, r.newID); err != nil {
				return r.res, err
			}
		}
		if err := r.takeOver(ctx); err != nil {
			return r.res, err
		}
	}
	ctx, stopRenewing := r.holdLease(ctx)
	defer stopRenewing()
	if r.journal.Phase == PhaseAborting {
		return r.res, r.abort(ctx, errors.New("resuming an interrupted rollback"))
	}
	for {
		s, ok := r.next(r.journal.Phase)
		if !ok {
			break
		}
		select {
		case <-w.Stop:
			r.releaseLease(ctx)
			return r.res, fmt.Errorf("%w: replacement of %s paused before %s, its journal is kept; resume with 'spotmax replace --resume --group %s --yes'",
				ErrStopped, r.req.InstanceID, s.name, r.g.Name)
		default:
		}
		if r.journal.Phase != "" && !r.ownershipChecked {
			// EC2 tags have no compare-and-swap: a rival's claim may have landed after ours was
			// read back. Whoever finds the journal no longer theirs stops before acting again.
			if err := r.stillOwned(ctx); err != nil {
				if errors.Is(err, ErrBusy) && r.newID != "" && !r.journal.has(optVolumeFirst) && r.journal.Phase == PhaseLaunched {
					// Lost the claim after launching: the replacement is this actor's own (its
					// launch token), the winner launches its own; leave nothing running.
					if terr := w.terminateLaunched(context.WithoutCancel(ctx), r.newID); terr != nil {
						err = fmt.Errorf("%w (and terminating this actor's own replacement %s failed: %w)", err, r.newID, terr)
					}
				}
				return r.res, err
			}
		}
		r.ownershipChecked = false
		r.progress(s.name, "", false, nil)
		stepStart := w.clock().Now()
		err := s.run(r, ctx)
		if err == nil && ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		r.progress(s.name, "", true, err)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, ErrStopped) && !errors.Is(err, ErrBusy) {
				r.record(context.WithoutCancel(ctx), metrics.ReplacementFailed, w.clock().Now().Sub(r.res.Started), map[string]string{"step": s.name, "error": err.Error()})
			}
			return r.res, r.resumeHint(err)
		}
		if s.done == PhaseVolumeMoved {
			// One event per volume moved, each with the step's duration (they move together).
			for _, v := range r.plan.Volumes {
				r.record(ctx, metrics.VolumeMoved, w.clock().Now().Sub(stepStart), map[string]string{"volume": v.ID, "device": v.Device})
			}
		}
		if s.done != PhaseDone && s.done != PhaseStarted {
			if err := r.set(ctx, "phase "+string(s.done), func(j *Journal) { j.Phase = s.done }); err != nil {
				return r.res, r.resumeHint(err)
			}
		}
		r.journal.Phase = s.done
		if w.AfterPhase != nil {
			if err := w.AfterPhase(r.req.InstanceID, s.done); err != nil {
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
	case r.res.Market == MarketOnDemand && !r.cfg.OnlyOD && !r.res.Warm:
		r.record(ctx, metrics.OnDemandFallback, 0, nil)
	}
	if r.req.Reason == ReasonLifetime {
		r.record(ctx, metrics.LifetimeRotation, took, nil)
	}
	return r.res, nil
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

// start writes the journal, with this actor's lease and the data volume's id, in one call (a
// crash leaves either a whole journal that a resume continues, or none), and makes sure no rival
// wrote one at the same time.
func (r *run) start(ctx context.Context) error {
	var opts []string
	if r.req.ForceDetach {
		opts = append(opts, optForceDetach)
	}
	if r.plan.Warm {
		opts = append(opts, optWarm)
	}
	// Read the instance again right before claiming it: a rival may have claimed it since it
	// was planned.
	cur, err := r.w.describeInstance(ctx, r.req.InstanceID)
	if err != nil {
		return err
	}
	if j := loadJournal(r.req.InstanceID, cur.Tags); j.Phase != "" {
		return &BusyError{Instance: r.req.InstanceID, Group: r.g.Name, Owner: j.Owner, Since: j.Started, Until: j.LeaseUntil}
	}
	now := r.w.clock().Now()
	err = r.set(ctx, "the replacement", func(j *Journal) {
		*j = Journal{Old: r.req.InstanceID, Group: r.g.Name, Reason: r.req.Reason, Started: r.res.Started, Token: newToken(),
			Options: opts, Phase: PhaseStarted, Desired: -1, Owner: r.w.owner(), LeaseUntil: now.Add(r.w.lease()),
			Volumes: journalVolumes(r.plan.Volumes)}
	})
	if err != nil {
		return err
	}
	// The data volume is secured at the start of the launch step, after the step boundary's
	// ownership check: an actor whose claim was overwritten changes nothing but its claim.
	return r.confirmClaim(ctx)
}

// journalVolumes are the plan's data volumes as the journal records them: id and device.
func journalVolumes(vs []DataVolume) []DataVolume {
	out := make([]DataVolume, 0, len(vs))
	for _, v := range vs {
		out = append(out, DataVolume{ID: v.ID, Device: v.Device})
	}
	return out
}

// secure turns DeleteOnTermination off for every data volume and tags each as moving from the old
// instance, first thing in the launch step. It is idempotent; a resumed replacement runs it
// again.
func (r *run) secure(ctx context.Context) error {
	if r.secured || len(r.plan.Volumes) == 0 {
		r.secured = true
		return nil
	}
	if err := r.w.keepVolumes(ctx, r.req.InstanceID, r.plan.Volumes); err != nil && !awsapi.IsNotFound(err) {
		return err
	}
	for _, v := range r.plan.Volumes {
		// Marked as the group's in the same call (pool.go): lost later, it stays in the group's
		// pool, for its own device.
		if err := r.w.tagResource(ctx, v.ID, map[string]string{groupconfig.StateMovingFrom: r.req.InstanceID,
			groupconfig.TagGroup: r.g.Name, groupconfig.StateDevice: v.Device}); err != nil {
			return fmt.Errorf("journaling volume %s: %w", v.ID, err)
		}
	}
	r.secured = true
	return nil
}

// launch starts the replacement: adopts one launched before a crash, else tries the plan's
// options in order.
func (r *run) launch(ctx context.Context) error {
	w := r.w
	if err := r.secure(ctx); err != nil {
		return err
	}
	id, err := r.launcher.adopt(ctx, r.launchSpec())
	if err != nil {
		return err
	}
	if id != "" && r.verifyReplacement(ctx, id) != nil {
		// Launched for this instance but not by this journal (a rival that lost its claim, or a
		// forgery): not ours to adopt; the rival cleans up its own.
		id = ""
	}
	if id == "" {
		id, err = r.launchFirstFitting(ctx)
		if err != nil {
			return r.abort(ctx, err)
		}
	}
	r.newID = id
	r.res.New = id
	if err := r.set(ctx, "replacement "+id, func(j *Journal) { j.Replacement = id }); err != nil {
		return err
	}
	if len(r.plan.Volumes) > 0 {
		if err := w.tagResources(ctx, volumeIDs(r.plan.Volumes), map[string]string{groupconfig.StateMovingTo: id}); err != nil {
			return fmt.Errorf("journaling volumes %s: %w", strings.Join(volumeIDs(r.plan.Volumes), ", "), err)
		}
	}
	inst, err := w.waitRunning(ctx, id, "replacement")
	if err != nil {
		return r.abort(ctx, fmt.Errorf("waiting for replacement %s to run: %w", id, err))
	}
	r.res.recordInstance(inst)
	if r.req.Reason == ReasonInterruption && len(r.plan.Volumes) > 0 && !r.journal.has(optVolumeFirst) {
		released, err := r.volumeReleased(ctx)
		if err != nil {
			return err
		}
		if released {
			if err := r.set(ctx, "the order of the replacement", func(j *Journal) { j.Options = append(j.Options, optVolumeFirst) }); err != nil {
				return err
			}
		}
	}
	return nil
}

// launchSpec is the replacement's launch (launch.go): the plan's options, then its cross-AZ
// options (spotmax:cross_az_move, crossaz.go), with client tokens from the journal's token and
// the spotmax:state:replaces tag that a resume adopts the replacement by.
func (r *run) launchSpec() launchSpec {
	opts := append(slices.Clip(r.plan.Options), r.plan.CrossAZOptions...)
	return launchSpec{options: opts, token: r.journal.Token, linkKey: groupconfig.StateReplaces, linkValue: r.req.InstanceID,
		volumes: r.plan.Volumes, progress: func(i int, opt Option, id string, err error) {
			detail := id
			switch {
			case err != nil:
				detail = awsapi.Code(err)
			case i >= len(r.plan.Options):
				detail += " (the data volume moves there through a snapshot)"
			}
			r.progress(StepLaunch, opt.String()+": "+detail, false, nil)
		}}
}

// launchFirstFitting launches the first of the plan's options that has capacity; when that is a
// cross-AZ option, it journals the AZ the data volume moves to.
func (r *run) launchFirstFitting(ctx context.Context) (string, error) {
	id, i, err := r.launcher.first(ctx, r.launchSpec(), r.res)
	if err != nil {
		return "", err
	}
	if i >= len(r.plan.Options) {
		az := r.plan.CrossAZOptions[i-len(r.plan.Options)].AZ
		if err := r.set(ctx, "the cross-AZ move to "+az, func(j *Journal) { j.CrossAZ = az }); err != nil {
			return "", err
		}
	}
	return id, nil
}

// abort rolls back a replacement whose old instance has not been detached: the replacement (if
// any) leaves the group and is terminated, MaxSize is restored and the journal cleared. The old
// instance keeps serving. The rollback is journaled first (PhaseAborting), and the journal is
// cleared only once EC2 confirms the replacement is terminated: a replacement that is not visible
// yet (EC2's eventual consistency) is never taken for gone, and a rollback cut short is resumed,
// never forgotten with an instance left running outside the group.
func (r *run) abort(ctx context.Context, cause error) error {
	w := r.w
	if r.warmPastDetach() {
		// The warm route detached the old instance already: nothing to roll back to. The
		// journal stays; a resume carries on.
		return fmt.Errorf("%s has left group %s on the warm pool's route, so the replacement cannot be rolled back: %w", r.req.InstanceID, r.g.Name, cause)
	}
	// Rolling back must not be cut short by the caller's deadline.
	ctx = context.WithoutCancel(ctx)
	var errs []error
	if r.journal.Phase != PhaseAborting {
		if err := r.set(ctx, "the rollback", func(j *Journal) { j.Phase = PhaseAborting }); err != nil {
			errs = append(errs, err)
		}
	}
	if r.newID == "" {
		// A launch whose answer was lost still left its tag: adopt it to terminate it.
		if id, err := w.findReplacement(ctx, r.req.InstanceID); err != nil {
			errs = append(errs, err)
		} else if id != "" && r.verifyReplacement(ctx, id) == nil {
			r.newID = id
		}
	}
	if r.newID != "" {
		member, err := w.groupMember(ctx, r.g.Name, r.newID)
		if err != nil {
			errs = append(errs, err)
		} else if member {
			// No need to wait out the load balancers' draining: the replacement is terminated next.
			if err := w.detachFromGroup(ctx, r.g.Name, r.newID, false); err != nil {
				errs = append(errs, err)
			}
		}
		if err := w.terminateLaunched(ctx, r.newID); err != nil {
			errs = append(errs, err)
		}
	}
	if err := w.RestoreMaxSize(ctx, r.g.Name); err != nil {
		errs = append(errs, err)
	}
	for _, v := range r.plan.Volumes {
		if err := w.untagResource(ctx, v.ID, groupconfig.StateMovingFrom, groupconfig.StateMovingTo); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := w.clearJournal(ctx, r.req.InstanceID); err != nil {
			errs = append(errs, err)
		}
	}
	err := fmt.Errorf("%w: replacement of %s in group %s rolled back, the instance keeps serving: %w", ErrAborted, r.req.InstanceID, r.g.Name, cause)
	if len(errs) > 0 {
		err = fmt.Errorf("%w (rollback incomplete, its journal is kept: finish it with 'spotmax replace --resume --group %s --yes' or let 'spotmax run' resume it: %w)",
			err, r.g.Name, errors.Join(errs...))
	}
	return err
}

// resumeHint adds to a failure after which the journal is kept how to resume it.
func (r *run) resumeHint(err error) error {
	if errors.Is(err, ErrAborted) || errors.Is(err, ErrStopped) || errors.Is(err, ErrBusy) || errors.Is(err, ErrRefused) {
		return err
	}
	return fmt.Errorf("replacement of %s in group %s stopped at %s, its journal is kept: resume with 'spotmax replace --resume --group %s --yes' (or let 'spotmax run' resume it): %w",
		r.req.InstanceID, r.g.Name, r.journal.Phase, r.g.Name, err)
}

// join attaches the replacement to the group and waits until it is InService, raising MaxSize by
// one for the duration when the group is full.
func (r *run) join(ctx context.Context) error {
	w := r.w
	if r.newID == "" {
		return fmt.Errorf("journal of %s names no replacement", r.req.InstanceID)
	}
	if r.journal.Desired < 0 {
		g, err := w.describeGroup(ctx, r.g.Name)
		if err != nil {
			return err
		}
		if _, member := memberState(g, r.newID); !member {
			d := int(aws.ToInt32(g.DesiredCapacity))
			if err := r.set(ctx, "the desired capacity of group "+r.g.Name, func(j *Journal) { j.Desired = d }); err != nil {
				return err
			}
		}
	}
	if err := w.attachToGroup(ctx, r.g.Name, r.newID); err != nil {
		if r.journal.has(optVolumeFirst) {
			// The data already lives on the replacement and the interrupted instance is going:
			// rolling back would orphan the volume. Keep the journal; a resume tries again.
			return err
		}
		return r.abort(ctx, err)
	}
	if err := w.waitInService(ctx, r.g.Name, r.newID, "replacement"); err != nil {
		if r.journal.has(optVolumeFirst) {
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
		if err := r.set(ctx, "the retirement", func(j *Journal) { j.Retiring = string(r.req.Reason) }); err != nil {
			return err
		}
	}
	oldInv := r.oldInventory()
	target := Target{Group: r.g, Old: oldInv, New: r.newID, Reason: r.req.Reason, Deadline: r.req.Deadline}
	for _, reg := range w.Steps {
		step := reg.Step
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
			if m := reg.Metric; m != "" {
				r.record(ctx, m, w.clock().Now().Sub(stepStart), nil)
			}
			continue
		}
		if r.req.Reason.Proactive() {
			_ = r.set(context.WithoutCancel(ctx), "the end of the retirement", func(j *Journal) { j.Retiring = "" })
			return r.abort(ctx, fmt.Errorf("%s: %w", step.Name(), err))
		}
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s failed on interrupted instance %s (continuing, it stops at %s): %v",
			step.Name(), r.req.InstanceID, r.req.Deadline.UTC().Format(time.RFC3339), err))
	}
	if r.cfg.K8sConfigFilePath != "" {
		// pod_delay_detaching_secs: evicted pods get running elsewhere before the node leaves
		// the group's load balancers.
		if err := r.delay(ctx, "pod-delay", r.cfg.PodDelayDetaching); err != nil {
			return err
		}
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
		// An interruption does not wait out the load balancers' deregistration delay (300 s by
		// default, longer than the notice): detached with the desired capacity decremented, the
		// instance is on its way out and its data volume moves on. A proactive replacement
		// honours the delay, so connections drain before the old instance goes.
		if err := w.detachFromGroup(ctx, r.g.Name, r.req.InstanceID, r.req.Reason.Proactive()); err != nil {
			// An interrupted instance may leave the group on its own between the check and the call.
			if still, err2 := w.detachable(ctx, r.g.Name, r.req.InstanceID); err2 != nil {
				return err2
			} else if still {
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

// setDesiredProtecting sets a group's desired capacity with keep protected from scale-in for the
// moment, so that the instance Auto Scaling picks to match a lower count is never keep.
func (w *Workflow) setDesiredProtecting(ctx context.Context, group string, desired int, keep string) error {
	protect := func(on bool) error {
		return w.call(ctx, func(ctx context.Context) error {
			_, err := w.ASG.SetInstanceProtection(ctx, &autoscaling.SetInstanceProtectionInput{AutoScalingGroupName: aws.String(group),
				InstanceIds: []string{keep}, ProtectedFromScaleIn: aws.Bool(on)})
			return err
		})
	}
	if err := protect(true); err != nil {
		return fmt.Errorf("protecting %s from scale-in in group %s: %w", keep, group, err)
	}
	err := w.call(ctx, func(ctx context.Context) error {
		_, err := w.ASG.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(group),
			DesiredCapacity: aws.Int32(int32(desired)), HonorCooldown: aws.Bool(false)})
		return err
	})
	if perr := protect(false); perr != nil && err == nil {
		err = fmt.Errorf("removing the scale-in protection of %s in group %s: %w", keep, group, perr)
	}
	if err != nil {
		return fmt.Errorf("setting the desired capacity of group %s back to %d: %w", group, desired, err)
	}
	return nil
}

// finish terminates the old instance and clears the journal.
func (r *run) finish(ctx context.Context) error {
	w := r.w
	if err := w.terminate(ctx, r.req.InstanceID); err != nil {
		return err
	}
	for _, v := range r.plan.Volumes {
		if err := w.untagResource(ctx, v.ID, groupconfig.StateMovingFrom, groupconfig.StateMovingTo); err != nil {
			return err
		}
	}
	if r.newID != "" && r.res.Type == "" {
		if inst, err := w.describeLaunched(ctx, r.newID); err == nil {
			r.res.recordInstance(inst)
		}
	}
	r.res.New = r.newID
	r.res.Volumes = volumeIDs(r.plan.Volumes)
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
