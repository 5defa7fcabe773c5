package replace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// Ownership: at most one actor drives an instance's journal at a time. The journal carries its
// owner and a lease (StateOwner, StateLeaseUntil), written with the journal in one call and
// renewed while the owner works. Every entry point — `spotmax replace`, each policy of `spotmax
// run`, `--resume`, a second controller — goes through prepare/execute, which refuse a journal
// whose lease another actor still holds (BusyError) and take over an expired one.
//
// EC2 tags have no compare-and-swap: two actors may both find an instance free and both write a
// claim. Each waits LeaseSettle after writing and reads the claim back; the one whose claim was
// overwritten backs off before it has changed anything else. The remaining window (a rival's
// read before our write and its write after our read-back, more than LeaseSettle apart) is
// closed by the launch's idempotency token and the replacement's checks (verifyReplacement).

// BusyError says that another actor drives the instance's replacement.
type BusyError struct {
	Instance, Group, Owner string
	Since, Until           time.Time
}

// Error implements error.
func (e *BusyError) Error() string {
	since := ""
	if !e.Since.IsZero() {
		since = " since " + e.Since.UTC().Format(time.RFC3339)
	}
	until := ""
	if !e.Until.IsZero() {
		until = " (its lease runs until " + e.Until.UTC().Format(time.RFC3339) + ")"
	}
	return fmt.Sprintf("%s of group %s is being replaced by %s%s%s; leave it to that actor, or run 'spotmax replace --resume --group %s --yes' after the lease has run out",
		e.Instance, e.Group, e.Owner, since, until, e.Group)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// UntrustedError says that a journal names something spotmax did not put there.
type UntrustedError struct {
	Instance, Group, Why string
}

// Error implements error.
func (e *UntrustedError) Error() string {
	return fmt.Sprintf("journal of %s (group %s) not acted on: %s; nothing was changed — check who wrote the instance's spotmax:state:* tags (docs/iam.md) and remove them with 'aws ec2 delete-tags'",
		e.Instance, e.Group, e.Why)
}

// Is makes errors.Is(err, ErrUntrusted) true.
func (e *UntrustedError) Is(target error) bool { return target == ErrUntrusted }

// Identity is the name this workflow writes as the owner of the journals it drives.
func (w *Workflow) Identity() string { return w.owner() }

// Busy reports whether a journal's lease is held by an actor other than this workflow at now.
func (w *Workflow) Busy(j Journal, now time.Time) bool {
	return j.Owner != "" && j.Owner != w.owner() && now.Before(j.LeaseUntil)
}

func (w *Workflow) owner() string {
	w.ownerOnce.Do(func() {
		w.ownerID = w.Owner
		if w.ownerID == "" {
			host, _ := os.Hostname()
			b := make([]byte, 3)
			_, _ = rand.Read(b)
			w.ownerID = fmt.Sprintf("spotmax@%s/%d-%s", host, os.Getpid(), hex.EncodeToString(b))
		}
	})
	return w.ownerID
}

func (w *Workflow) lease() time.Duration {
	if w.Lease <= 0 {
		return 45 * time.Second
	}
	return w.Lease
}

func (w *Workflow) leaseSettle() time.Duration {
	if w.LeaseSettle <= 0 {
		return 500 * time.Millisecond
	}
	return w.LeaseSettle
}

// busy returns the BusyError for a journal whose lease another actor holds, or nil.
func (r *run) busy() error {
	j := r.journal
	if !r.w.Busy(j, r.w.clock().Now()) {
		return nil
	}
	return &BusyError{Instance: r.req.InstanceID, Group: r.g.Name, Owner: j.Owner, Since: j.Started, Until: j.LeaseUntil}
}

// takeOver claims a journal found on the instance (a resume), once busy and the replacement's
// checks have passed: written, then confirmed.
func (r *run) takeOver(ctx context.Context) error {
	until := r.w.clock().Now().Add(r.w.lease())
	if err := r.set(ctx, "this actor's lease", func(j *Journal) { j.Owner, j.LeaseUntil = r.w.owner(), until }); err != nil {
		return err
	}
	return r.confirmClaim(ctx)
}

// confirmClaim waits LeaseSettle and reads the claim back (stillOwned): a rival's claim written
// after ours is a BusyError. The step loop's next ownership check is then redundant and skipped.
func (r *run) confirmClaim(ctx context.Context) error {
	if err := r.w.clock().Sleep(ctx, r.w.leaseSettle()); err != nil {
		return err
	}
	if err := r.stillOwned(ctx); err != nil {
		return err
	}
	r.ownershipChecked = true
	return nil
}

// stillOwned reads the journal back and reports a BusyError when another actor's claim has
// replaced this run's (a claim written after ours was confirmed).
func (r *run) stillOwned(ctx context.Context) error {
	inst, err := r.w.describeInstance(ctx, r.req.InstanceID)
	if err != nil {
		if awsapi.IsNotFound(err) {
			return nil // the old instance is long gone; the journal went with it
		}
		return err
	}
	got := loadJournal(r.req.InstanceID, inst.Tags)
	if got.Phase == "" {
		// Our journal is cleared only by our own last step or rollback: someone else did it.
		return &BusyError{Instance: r.req.InstanceID, Group: r.g.Name, Owner: "another actor (the journal was cleared)"}
	}
	if got.Owner != r.w.owner() || got.Token != r.journal.Token {
		return &BusyError{Instance: r.req.InstanceID, Group: r.g.Name, Owner: got.Owner, Since: got.Started, Until: got.LeaseUntil}
	}
	return nil
}

// errLeaseLost ends a run whose lease could not be renewed before it ran out.
var errLeaseLost = errors.New("lease on the journal lost")

// holdLease renews the run's lease every third of its duration until the returned stop is
// called. If the lease runs out unrenewed (AWS unreachable), the returned context is cancelled
// so that the run stops before its next step; another actor may then take over.
func (r *run) holdLease(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		w := r.w
		until := r.journal.LeaseUntil
		for {
			if err := w.clock().Sleep(ctx, w.lease()/3); err != nil {
				return
			}
			select {
			case <-done:
				return
			default:
			}
			next := w.clock().Now().Add(w.lease())
			err := w.tagResource(ctx, r.req.InstanceID, map[string]string{groupconfig.StateLeaseUntil: next.UTC().Format(time.RFC3339Nano)})
			switch {
			case err == nil:
				until = next
			case !until.IsZero() && !w.clock().Now().Before(until):
				w.log().Error("lease on a journal lost: stopping before the next step", "old", r.req.InstanceID, "error", err)
				cancel(fmt.Errorf("%w: %s: %w", ErrStopped, errLeaseLost, err))
				return
			}
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}

// releaseLease lets another actor take over at once (a graceful stop keeps the journal).
func (r *run) releaseLease(ctx context.Context) {
	if r.journal.Phase == "" {
		return
	}
	now := r.w.clock().Now()
	_ = r.w.tagResource(context.WithoutCancel(ctx), r.req.InstanceID, map[string]string{groupconfig.StateLeaseUntil: now.UTC().Format(time.RFC3339Nano)})
}

// checkJournal refuses a journal that is not this group's: the journal must name the group it
// is resumed in, and the old instance, while it still carries the group's tag (Auto Scaling
// writes it at launch), must carry this one.
func (r *run) checkJournal() error {
	j := r.journal
	if j.Group == "" || j.Group != r.g.Name {
		return &UntrustedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: fmt.Sprintf("its journal names group %q", j.Group)}
	}
	if tg := instanceTag(r.old.Tags, groupconfig.TagGroup); tg != "" && tg != r.g.Name && !isMember(r.g, r.req.InstanceID) {
		return &UntrustedError{Instance: r.req.InstanceID, Group: r.g.Name,
			Why: fmt.Sprintf("the instance belongs to group %s, not to the journaled group %s", tg, j.Group)}
	}
	if !j.Reason.Valid() {
		return &UntrustedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: fmt.Sprintf("its journal has an unknown reason %q", j.Reason)}
	}
	return nil
}

// verifyReplacement checks that id is what a journal may name as the replacement: launched by
// spotmax for this very instance (the spotmax:state:replaces tag written at launch, and a launch
// idempotency token of this journal), into this group. Anything else is refused and reported,
// never attached, detached or terminated.
func (r *run) verifyReplacement(ctx context.Context, id string) error {
	inst, err := r.w.describeLaunched(ctx, id)
	if err != nil {
		if awsapi.IsNotFound(err) {
			return &UntrustedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: fmt.Sprintf("its journaled replacement %s does not exist", id)}
		}
		return err
	}
	why := ""
	switch {
	case r.journal.has(optWarm):
		// A warmed instance carries no launch token of spotmax's: what AWS alone writes proves it.
		if why, err = r.verifyWarm(ctx, id, inst); err != nil {
			return err
		}
	case instanceTag(inst.Tags, groupconfig.StateReplaces) != r.req.InstanceID:
		why = fmt.Sprintf("%s was not launched to replace it (its %s tag is %q)", id, groupconfig.StateReplaces, instanceTag(inst.Tags, groupconfig.StateReplaces))
	case instanceTag(inst.Tags, groupconfig.TagGroup) != r.g.Name:
		why = fmt.Sprintf("%s is tagged for group %q", id, instanceTag(inst.Tags, groupconfig.TagGroup))
	case r.journal.Token == "" || !strings.HasPrefix(aws.ToString(inst.ClientToken), r.journal.Token+"-"):
		why = fmt.Sprintf("%s was not launched by this replacement (launch token mismatch)", id)
	}
	if why != "" {
		r.w.log().Error("untrusted journal: not acting on it", "old", r.req.InstanceID, "group", r.g.Name, "replacement", id, "why", why)
		return &UntrustedError{Instance: r.req.InstanceID, Group: r.g.Name, Why: why}
	}
	return nil
}

// checkNotReceiving refuses to start replacing an instance that is itself the replacement of a
// replacement in progress: it owns, or is about to receive, another instance's data volume.
func (w *Workflow) checkNotReceiving(ctx context.Context, group string, inst ec2types.Instance) error {
	from := instanceTag(inst.Tags, groupconfig.StateReplaces)
	if from == "" {
		return nil
	}
	old, err := w.describeInstance(ctx, from)
	if err != nil {
		if awsapi.IsNotFound(err) {
			return nil
		}
		return err
	}
	j := loadJournal(from, old.Tags)
	if j.Phase == "" {
		return nil
	}
	id := aws.ToString(inst.InstanceId)
	return &BusyError{Instance: id, Group: group, Owner: fmt.Sprintf("%s (it is the replacement of %s, phase %s)", j.Owner, from, j.Phase),
		Since: j.Started, Until: j.LeaseUntil}
}

func instanceTag(tags []ec2types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}
