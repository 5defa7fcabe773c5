package replace_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// Tests of bugs the proof harness found (each failed before its fix; they guard against a return).

// TestIssue11Case2RivalWriteAfterReadBack: the window EC2 tags leave open — b read the instance
// (no journal) before a wrote its journal, and b's write lands only after a has read its claim
// back and gone on (b's plan took longer than LeaseSettle, e.g. under throttling). Still exactly
// one replacement may be launched and only one actor may drive the instance.
//
// EC2 tags have no compare-and-swap, so this window cannot be closed by tags alone. What is
// guaranteed: the actor whose claim was overwritten finds out at its next step boundary, and if
// it had launched a replacement already it terminates it (its own, by its launch token) before
// backing off; the winner never adopts the loser's launch. One replacement remains, nothing of
// the group is changed by the loser, and the invariants hold.
func TestIssue11Case2RivalWriteAfterReadBack(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	log := newActorLog()
	errA, errB := twoOwners(t, f, log, func(_, aClaimed *gate) *gate { return aClaimed })
	var busy *replace.BusyError
	if !(errA == nil && errors.As(errB, &busy)) && !(errB == nil && errors.As(errA, &busy)) {
		t.Fatalf("a: %v\nb: %v\nwant one replacement and one BusyError", errA, errB)
	}
	running := 0
	for _, in := range f.env.Region().Instances() {
		if in.Tags[groupconfig.StateReplaces] != f.members[0] {
			continue
		}
		switch in.State {
		case sim.StateRunning, sim.StatePending:
			running++
		case sim.StateTerminated, sim.StateShuttingDown:
		default:
			t.Errorf("replacement %s is %s", in.ID, in.State)
		}
	}
	if running != 1 {
		t.Errorf("%d replacements of %s still run, want exactly one\n%s", running, f.members[0], log.dump())
	}
	loser := "actor-b"
	if errA != nil {
		loser = "actor-a"
	}
	for _, m := range log.mutations("") {
		if m.actor == loser && strings.HasPrefix(m.action, "autoscaling:") {
			t.Errorf("the actor that lost its claim changed the group: %s %v", m.action, m.ids)
		}
	}
	f.checkInvariants(t)
}

// TestBugInterruptionDuringSpotOutageInEveryAZ: a spot instance is interrupted while the group's
// spot pools are empty in every AZ (the usual reason for an interruption). The replacement falls
// back to on-demand and joins; the interrupted instance then terminates before it is detached,
// and the detach step waits for the group to launch a member in its place — which the group
// cannot (its template asks for spot) — so the data volume is never moved to the replacement.
func TestBugInterruptionDuringSpotOutageInEveryAZ(t *testing.T) {
	f := newFixture(t, fixtureOpts{seed: 7})
	r := f.env.Region()
	ctx := context.Background()
	if _, err := f.workflow().EnsureKeepVolumes(ctx, f.inventory(t)); err != nil {
		t.Fatal(err)
	}
	for _, az := range r.AZs() {
		r.SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: az.Name, Market: sim.MarketSpot}, 0)
	}
	old := f.members[0]
	if err := r.Interrupt(old, ""); err != nil {
		t.Fatal(err)
	}
	in, _ := r.Instance(old)
	// The process stops once the replacement has joined; when it is back, the interrupted
	// instance has terminated without being detached.
	w := f.workflow()
	w.AfterPhase = func(_ string, p replace.Phase) error {
		if p == replace.PhaseJoined {
			return errCrash
		}
		return nil
	}
	req := replace.Request{InstanceID: old, Reason: replace.ReasonInterruption, Deadline: in.Interruption.Time}
	if _, err := w.Replace(ctx, f.inventory(t), req); !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v, want the crash after joined", err)
	}
	r.Advance(3 * time.Minute)
	w = f.workflow()
	to := *w.Timeouts
	to.InService = 30 * time.Minute // 1.8 s of real time
	w.Timeouts = &to
	res, err := w.Replace(ctx, f.inventory(t), req)
	if err != nil {
		t.Fatalf("resumed Replace: %v", err)
	}
	if res.Market != replace.MarketOnDemand || len(res.Volumes) == 0 {
		t.Errorf("result = %+v, want an on-demand replacement holding the data volume", res)
	}
	t.Logf("result: %+v", res)
	f.checkInvariants(t)
}

// TestBugRefusedJournalKeepsLease: a journal refused as untrusted ("nothing was changed") has
// been changed: the refusing actor wrote its owner and lease on it before checking the
// replacement, so for the lease's duration every other actor — the operator's `spotmax replace
// --resume`, a second controller — is told the instance is busy ("being replaced by … since
// 0001-01-01…") instead of that the journal is untrusted.
func TestBugRefusedJournalKeepsLease(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	other := f.addOtherGroup(t)
	victim := f.members[1]
	f.forge(t, victim, forgeries(other.members[0])["foreign-replacement"])
	before, _ := f.env.Region().Instance(victim)
	for _, owner := range []string{"controller-1", "operator"} {
		w := f.workflow()
		w.Owner = owner
		_, err := w.Replace(ctx, f.inventory(t), replace.Request{InstanceID: victim})
		if !errors.Is(err, replace.ErrUntrusted) {
			t.Errorf("%s resuming the forged journal: err = %v, want ErrUntrusted", owner, err)
		}
	}
	after, _ := f.env.Region().Instance(victim)
	for k, v := range after.Tags {
		if before.Tags[k] != v {
			t.Errorf("refusing the journal changed %s: %q → %q", k, before.Tags[k], v)
		}
	}
}

// TestBugHalfWrittenJournalOfInterruptedInstanceLosesVolume: issue 11's case 1 for an
// interrupted instance. The process dies right after writing the journal (before the data volume
// is secured and tagged moving_from); by the time a new process resumes, EC2 has terminated the
// instance, so its block devices no longer name the volume. The journal does not record the
// volume either, so the resumed replacement finishes without moving it: the replacement serves
// an empty disk and the group's data volume stays available, attached to nothing. (Found by
// TestReplaceChaos seed 100000.)
func TestBugHalfWrittenJournalOfInterruptedInstanceLosesVolume(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	r := f.env.Region()
	ctx := context.Background()
	if _, err := f.workflow().EnsureKeepVolumes(ctx, f.inventory(t)); err != nil {
		t.Fatal(err)
	}
	old := f.members[0]
	if err := r.Interrupt(old, ""); err != nil {
		t.Fatal(err)
	}
	in, _ := r.Instance(old)
	req := replace.Request{InstanceID: old, Reason: replace.ReasonInterruption, Deadline: in.Interruption.Time}
	w := f.workflow()
	crashed := false
	w.EC2 = hookEC2{EC2API: f.ec2, key: groupconfig.StatePhase, after: func() error {
		if !crashed {
			crashed = true
			return errCrash
		}
		return nil
	}}
	if _, err := w.Replace(ctx, f.inventory(t), req); !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v, want the crash after the journal write", err)
	}
	r.Advance(3 * time.Minute) // the notice ends: EC2 terminates the instance
	res, err := f.workflow().Replace(ctx, f.inventory(t), req)
	if err != nil {
		t.Fatalf("resumed Replace: %v", err)
	}
	if len(res.Volumes) == 0 {
		t.Errorf("result = %+v: the resumed replacement moved no data volume", res)
	}
	r.Advance(5 * time.Minute)
	f.env.WaitInService(t, f.group, int(f.desired))
	f.checkInvariants(t)
}
