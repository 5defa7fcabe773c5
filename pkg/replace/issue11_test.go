package replace_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// hookEC2 runs a function around CreateTags calls that write a given journal key, to stop a
// process or hold it at an exact point.
type hookEC2 struct {
	replace.EC2API
	key    string
	before func()
	after  func() error
}

func writesKey(in *ec2.CreateTagsInput, key string) bool {
	for _, t := range in.Tags {
		if aws.ToString(t.Key) == key {
			return true
		}
	}
	return false
}

func (x hookEC2) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, o ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	hit := writesKey(in, x.key)
	if hit && x.before != nil {
		x.before()
	}
	out, err := x.EC2API.CreateTags(ctx, in, o...)
	if hit && x.after != nil && err == nil {
		if herr := x.after(); herr != nil {
			return nil, herr
		}
	}
	return out, err
}

// TestIssue11Case1HalfWrittenJournal: the process dies right after the journal is written and
// before anything else (no volume secured, nothing launched). The journal is whole (one call), so
// a new process resumes it — after the dead owner's lease has run out; before that it is told who
// holds it — and the replacement completes with the data volume moved.
func TestIssue11Case1HalfWrittenJournal(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	r := f.env.Region()
	ctx := context.Background()
	old := f.members[0]
	log := newActorLog()

	w := f.workflow()
	w.Owner = "dead-process"
	// 10 simulated minutes (0.6 s of wall time at the fixture's 1000×): the lease must still run
	// when the refused resume below comes, also on a loaded machine (45 s was 45 ms).
	w.Lease = 10 * time.Minute
	c := &crasher{}
	e, a := log.wrap("dead-process", f.ec2, f.asg)
	w.EC2 = crashEC2{EC2API: hookEC2{EC2API: e, key: groupconfig.StatePhase, after: func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.crashed {
			c.crashed = true
			return errCrash
		}
		return nil
	}}, c: c}
	w.ASG = crashASG{ASGAPI: a, c: c}
	if _, err := w.Replace(ctx, f.inventory(t), replace.Request{InstanceID: old}); !errors.Is(err, errCrash) {
		t.Fatalf("first process: err = %v, want the crash after the journal write", err)
	}
	if ms := log.mutations(""); len(ms) != 1 || ms[0].action != "ec2:CreateTags" {
		t.Fatalf("the dead process did more than write its journal:\n%s", log.dump())
	}
	in, _ := r.Instance(old)
	for _, k := range []string{groupconfig.StatePhase, groupconfig.StateJournalGroup, groupconfig.StateReason, groupconfig.StateToken,
		groupconfig.StateOwner, groupconfig.StateLeaseUntil, groupconfig.StateStarted} {
		if in.Tags[k] == "" {
			t.Errorf("journal written in one call lacks %s: %v", k, in.Tags)
		}
	}

	// A new process (its own identity, as a restarted `spotmax run` or `replace --resume` has).
	// Tag filters match the journal once EC2's tag visibility (1 s) has passed.
	var js []replace.Journal
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		js, err = f.workflow().InFlight(ctx)
		if err == nil && len(js) == 1 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || len(js) != 1 || js[0].Old != old {
		t.Fatalf("InFlight = %+v, %v; want the half-done journal of %s", js, err, old)
	}
	w2 := f.workflow()
	w2.Owner = "new-process"
	w2.EC2, w2.ASG = log.wrap("new-early", f.ec2, f.asg)
	_, err = w2.Replace(ctx, f.inventory(t), replace.Request{InstanceID: old})
	var busy *replace.BusyError
	if !errors.As(err, &busy) || busy.Owner != "dead-process" || !strings.Contains(err.Error(), old) || !strings.Contains(err.Error(), "web") {
		t.Fatalf("resume while the lease runs: err = %v, want a BusyError naming %s, web and dead-process", err, old)
	}
	if ms := log.mutations(""); len(ms) != 1 {
		t.Fatalf("the refused resume changed things:\n%s", log.dump())
	}

	r.Advance(10*time.Minute + time.Second)
	w3 := f.workflow()
	w3.Owner = "new-process"
	w3.EC2, w3.ASG = log.wrap("new-process", f.ec2, f.asg)
	res, err := w3.Replace(ctx, f.inventory(t), replace.Request{InstanceID: old})
	if err != nil {
		t.Fatalf("resume after the lease ran out: %v", err)
	}
	if !res.Resumed || res.New == "" || len(res.Volumes) == 0 {
		t.Errorf("result = %+v, want a resumed replacement that moved the data volume", res)
	}
	f.checkInvariants(t)
	log.checkOneDriver(t, "case 1")
}

// gate holds callers until released.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate() *gate  { return &gate{ch: make(chan struct{})} }
func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }
func (g *gate) wait() { <-g.ch }

// twoOwners runs two Replace of one instance by the owners actor-a and actor-b at once, with b's
// journal write held until the gate hold returns opens: aWrote opens when a's journal write has
// returned, aClaimed when a has confirmed its claim and makes its next change.
func twoOwners(t *testing.T, f *fixture, log *actorLog, hold func(aWrote, aClaimed *gate) *gate) (errA, errB error) {
	t.Helper()
	ctx := context.Background()
	old := f.members[0]
	g := f.inventory(t)
	aWrote, aClaimed := newGate(), newGate()
	bGo := hold(aWrote, aClaimed)
	mk := func(owner string) *replace.Workflow {
		w := f.workflow()
		w.Owner = owner
		// 20 ms of real time at 1000×: a claim is read back well after a rival write in flight.
		w.LeaseSettle = 20 * time.Second
		return w
	}
	wa, wb := mk("actor-a"), mk("actor-b")
	ea, aa := log.wrap("actor-a", f.ec2, f.asg)
	wa.EC2, wa.ASG = hookEC2{EC2API: aClaimedHook{EC2API: ea, claimed: aClaimed}, key: groupconfig.StatePhase,
		after: func() error { aWrote.open(); return nil }}, aa
	eb, ab := log.wrap("actor-b", f.ec2, f.asg)
	wb.EC2, wb.ASG = hookEC2{EC2API: eb, key: groupconfig.StatePhase, before: bGo.wait}, ab
	// Both plan first (prepare reads the instance: no journal yet), as two processes started
	// together do.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		// Whatever a does, b is not held past a's end.
		defer aClaimed.open()
		defer aWrote.open()
		_, errA = wa.Replace(ctx, g, replace.Request{InstanceID: old})
	}()
	go func() { defer wg.Done(); _, errB = wb.Replace(ctx, g, replace.Request{InstanceID: old}) }()
	wg.Wait()
	return errA, errB
}

// aClaimedHook opens claimed at actor a's first change after its claim was confirmed (the
// volume's DeleteOnTermination or its moving_from tag).
type aClaimedHook struct {
	replace.EC2API
	claimed *gate
}

func (x aClaimedHook) ModifyInstanceAttribute(ctx context.Context, in *ec2.ModifyInstanceAttributeInput, o ...func(*ec2.Options)) (*ec2.ModifyInstanceAttributeOutput, error) {
	x.claimed.open()
	return x.EC2API.ModifyInstanceAttribute(ctx, in, o...)
}

func (x aClaimedHook) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, o ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	if !writesKey(in, groupconfig.StatePhase) && len(in.Resources) == 1 && strings.HasPrefix(in.Resources[0], "vol-") {
		x.claimed.open()
	}
	return x.EC2API.CreateTags(ctx, in, o...)
}

// checkOneWinner checks that exactly one of two actors replaced the instance, the other got a
// BusyError naming the winner, and exactly one replacement was launched.
func checkOneWinner(t *testing.T, f *fixture, log *actorLog, errA, errB error) {
	t.Helper()
	var busy *replace.BusyError
	switch {
	case errA == nil && errors.As(errB, &busy):
		if busy.Owner != "actor-a" {
			t.Errorf("b's BusyError names %q, want actor-a: %v", busy.Owner, errB)
		}
	case errB == nil && errors.As(errA, &busy):
		if busy.Owner != "actor-b" {
			t.Errorf("a's BusyError names %q, want actor-b: %v", busy.Owner, errA)
		}
	default:
		t.Errorf("a: %v\nb: %v\nwant one replacement and one BusyError naming the other owner", errA, errB)
	}
	var launched []string
	for _, in := range f.env.Region().Instances() {
		if in.Tags[groupconfig.StateReplaces] == f.members[0] {
			launched = append(launched, in.ID+" ("+in.State+")")
		}
	}
	if len(launched) != 1 {
		t.Errorf("replacements launched for %s: %v, want exactly one\n%s", f.members[0], launched, log.dump())
	}
	log.checkOneDriver(t, "case 2")
	f.checkInvariants(t)
}

// TestIssue11Case2TwoOwnersAtOnce: two Replace of one instance by different owners, both planned
// before either wrote its journal. The journal writes land one right after the other: the claim
// read back tells the first writer that it lost.
func TestIssue11Case2TwoOwnersAtOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	log := newActorLog()
	errA, errB := twoOwners(t, f, log, func(aWrote, _ *gate) *gate { return aWrote })
	checkOneWinner(t, f, log, errA, errB)
}

// TestIssue11Case2MidWayResumeIsBusy: a second actor asks for the instance while the first is
// between steps (joined, holding its lease): it is told who drives it and changes nothing; the
// first finishes.
func TestIssue11Case2MidWayResumeIsBusy(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	old := f.members[0]
	log := newActorLog()
	joined, resume := newGate(), newGate()
	wa := f.workflow()
	wa.Owner = "actor-a"
	wa.EC2, wa.ASG = log.wrap("actor-a", f.ec2, f.asg)
	wa.AfterPhase = func(_ string, p replace.Phase) error {
		if p == replace.PhaseJoined {
			joined.open()
			resume.wait()
		}
		return nil
	}
	errA := make(chan error, 1)
	go func() { _, err := wa.Replace(ctx, f.inventory(t), replace.Request{InstanceID: old}); errA <- err }()
	select {
	case <-joined.ch:
	case err := <-errA:
		t.Fatalf("actor a ended before joining: %v", err)
	}
	for _, req := range []replace.Request{{InstanceID: old}, {InstanceID: old, Reason: replace.ReasonInterruption}} {
		wb := f.workflow()
		wb.Owner = "actor-b"
		wb.EC2, wb.ASG = log.wrap("actor-b", f.ec2, f.asg)
		_, err := wb.Replace(ctx, f.inventory(t), req)
		var busy *replace.BusyError
		if !errors.As(err, &busy) || busy.Owner != "actor-a" || !strings.Contains(err.Error(), old) {
			t.Errorf("%s while actor a drives it: err = %v, want a BusyError naming actor-a and %s", req.Reason, err, old)
		}
	}
	// Nor may b pick the replacement that is receiving the volume.
	in, _ := f.env.Region().Instance(old)
	wb := f.workflow()
	wb.Owner = "actor-b"
	wb.EC2, wb.ASG = log.wrap("actor-b", f.ec2, f.asg)
	newID := ""
	for _, x := range f.env.Region().Instances() {
		if x.Tags[groupconfig.StateReplaces] == old {
			newID = x.ID
		}
	}
	if newID == "" {
		t.Fatalf("no replacement of %s (tags %v)", old, in.Tags)
	}
	if _, err := wb.Replace(ctx, f.inventory(t), replace.Request{InstanceID: newID}); !errors.Is(err, replace.ErrBusy) {
		t.Errorf("replacing %s, which receives %s's volume: err = %v, want ErrBusy", newID, old, err)
	}
	if ms := log.mutations(""); len(ms) > 0 {
		for _, m := range ms {
			if m.actor == "actor-b" {
				t.Errorf("busy actor b changed things: %+v", m)
			}
		}
	}
	resume.open()
	if err := <-errA; err != nil {
		t.Fatalf("actor a: %v", err)
	}
	log.checkOneDriver(t, "case 2 mid-way")
	f.checkInvariants(t)
}

// TestIssue11Case3ForgedJournal: tags an attacker with root on a member writes on it (the
// journal keys, phase launched, the replacement an instance of another group, even a lease) are
// refused when that member is replaced or resumed, and nothing of the other group is touched;
// the group's other replacements go on.
func TestIssue11Case3ForgedJournal(t *testing.T) {
	for name := range forgeries("") {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			ctx := context.Background()
			other := f.addOtherGroup(t)
			log := newActorLog()
			victim := f.members[1]
			forged := forgeries(other.members[0])[name]
			f.forge(t, victim, forged)
			for _, reason := range []replace.Reason{replace.ReasonManual, replace.ReasonInterruption} {
				w := f.workflow()
				w.EC2, w.ASG = log.wrap("resume-"+string(reason), f.ec2, f.asg)
				_, err := w.Replace(ctx, f.inventory(t), replace.Request{InstanceID: victim, Reason: reason})
				if !errors.Is(err, replace.ErrUntrusted) || !strings.Contains(err.Error(), victim) {
					t.Errorf("%s of %s with a forged journal: err = %v, want ErrUntrusted naming it", reason, victim, err)
				}
			}
			other.checkUntouched(t, f.env.Region(), log, name)
			for _, m := range log.mutations("") {
				for _, id := range m.ids {
					if id != victim {
						t.Errorf("refusing the forged journal changed %s: %+v", id, m)
					}
				}
			}
			// The rest of the group is replaced as usual; the forged journal stays, reported.
			w := f.workflow()
			w.EC2, w.ASG = log.wrap("other-replacement", f.ec2, f.asg)
			if _, err := w.Replace(ctx, f.inventory(t), replace.Request{InstanceID: f.members[0]}); err != nil {
				t.Fatalf("replacing %s next to the forged journal: %v", f.members[0], err)
			}
			other.checkUntouched(t, f.env.Region(), log, name)
			if in, _ := f.env.Region().Instance(victim); in.State != sim.StateRunning {
				t.Errorf("%s with the forged journal is %s", victim, in.State)
			}
			f.unforge(t, victim)
			f.checkInvariants(t)
		})
	}
}
