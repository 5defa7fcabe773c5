package reconcile_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/source"
	"github.com/spotmax/spotmax/pkg/source/reconcile"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// group makes a group with a valid configuration from tags (spotmax:group added) and members.
func group(t *testing.T, name string, tags map[string]string, members ...inventory.Instance) *inventory.Group {
	t.Helper()
	ts := []groupconfig.Tag{{Key: groupconfig.TagGroup, Value: name}}
	for k, v := range tags {
		ts = append(ts, groupconfig.Tag{Key: k, Value: v})
	}
	cfg, err := groupconfig.Load(name, ts)
	if err != nil {
		t.Fatalf("config of %s: %v", name, err)
	}
	return &inventory.Group{Name: name, Tags: ts, Config: cfg, Members: members}
}

func member(id string, age time.Duration, tags map[string]string) inventory.Instance {
	return inventory.Instance{ID: id, Type: "m5.large", State: "running", LifecycleState: "InService", Market: inventory.MarketSpot,
		LaunchTime: t0.Add(-age), Tags: tags}
}

// TestEvents derives a snapshot's events: a relayed notice wins over the lifetime; members a
// journal drives, being replaced or of an invalid or ignored group give none; a journal is
// resumed unless another actor's lease holds it.
func TestEvents(t *testing.T) {
	life := map[string]string{groupconfig.TagGuaranteeLivingMins: "50", groupconfig.TagEnablePreaction: "true"}
	notice := groupconfig.RelayedNotice{Action: "terminate", Time: t0.Add(2 * time.Minute)}.String()
	a := group(t, "a", life,
		member("i-old", time.Hour, nil),
		member("i-young", time.Minute, nil),
		member("i-noticed", time.Hour, map[string]string{groupconfig.StateNotice: notice}),
		member("i-journaled", time.Hour, nil),
		member("i-receiving", time.Hour, nil),
		member("i-phase", time.Hour, map[string]string{groupconfig.StatePhase: "launch"}),
	)
	ignored := group(t, "ignored", map[string]string{groupconfig.TagIgnore: "true", groupconfig.TagGuaranteeLivingMins: "50"},
		member("i-ignored", time.Hour, nil))
	invalid := &inventory.Group{Name: "invalid", ConfigErr: errors.New("bad tag"), Members: []inventory.Instance{member("i-invalid", time.Hour, nil)}}
	snap := reconcile.Snapshot{Time: t0, Groups: []*inventory.Group{a, ignored, invalid},
		Journals: []replace.Journal{
			{Group: "a", Old: "i-journaled", Replacement: "i-receiving", Phase: "launch", Reason: replace.ReasonLifetime},
			{Group: "b", Old: "i-leased", Phase: "detach", Reason: replace.ReasonRebalance},
			{Old: "i-groupless", Phase: "detach"},
		},
		Leased: map[string]bool{"i-leased": true}}
	got := reconcile.Events(snap)
	want := []source.Event{
		{ID: "lifetime/i-old", Kind: source.KindLifetime, Instance: "i-old", Group: "a", Time: t0.Add(-time.Hour).Add(a.Config.ProactiveDeadline()),
			Source: source.Reconcile, Detail: "age 1h0m0s ≥ " + a.Config.ProactiveDeadline().String()},
		{Kind: source.KindInterruption, Instance: "i-noticed", Group: "a", Time: t0.Add(2 * time.Minute), Deadline: t0.Add(2 * time.Minute),
			Source: source.Agent, Detail: "terminate"},
		{ID: "resume/i-journaled/launch", Kind: source.KindResume, Instance: "i-journaled", Group: "a", Time: t0, Source: source.Reconcile,
			Detail: "lifetime, after launch"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Events:\n got %+v\nwant %+v", got, want)
	}
}

type fakeGroups []*inventory.Group

func (f fakeGroups) List(context.Context) ([]*inventory.Group, error) { return f, nil }

type fakeJournals struct {
	js    []replace.Journal
	owner string
}

func (f fakeJournals) InFlight(context.Context) ([]replace.Journal, error) { return f.js, nil }
func (f fakeJournals) Busy(j replace.Journal, now time.Time) bool {
	return j.Owner != "" && j.Owner != f.owner && now.Before(j.LeaseUntil)
}

// TestPass reads a snapshot (a journal under another actor's lease is Leased), hands it to Apply
// before anything is emitted, and returns its events with Apply's, oldest first.
func TestPass(t *testing.T) {
	a := group(t, "a", map[string]string{groupconfig.TagGuaranteeLivingMins: "50", groupconfig.TagEnablePreaction: "true"},
		member("i-old", time.Hour, nil))
	js := []replace.Journal{
		{Group: "a", Old: "i-mine", Phase: "detach", Owner: "me", LeaseUntil: t0.Add(time.Minute)},
		{Group: "a", Old: "i-theirs", Phase: "detach", Owner: "them", LeaseUntil: t0.Add(time.Minute)},
		{Group: "a", Old: "i-expired", Phase: "detach", Owner: "them", LeaseUntil: t0.Add(-time.Second)},
	}
	early := source.Event{ID: "x", Kind: source.KindInterruption, Instance: "i-sqs", Group: "a", Time: t0.Add(-2 * time.Hour), Source: source.SQS}
	var applied []reconcile.Snapshot
	s := &reconcile.Source{Groups: fakeGroups{a}, Journals: fakeJournals{js: js, owner: "me"}, Now: func() time.Time { return t0 },
		Apply: func(_ context.Context, snap reconcile.Snapshot) []source.Event {
			applied = append(applied, snap)
			return []source.Event{early}
		}}
	evs, err := s.Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 1 || !reflect.DeepEqual(applied[0].Leased, map[string]bool{"i-theirs": true}) || !applied[0].Time.Equal(t0) {
		t.Fatalf("Apply got %+v; want one snapshot at %s with i-theirs leased", applied, t0)
	}
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	if want := []string{"x", "lifetime/i-old", "resume/i-mine/detach", "resume/i-expired/detach"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("Pass events %v; want %v (oldest first, the leased journal left out)", ids, want)
	}
}

// TestRunEmitsEveryInterval runs the source: each pass is applied, then its events emitted.
func TestRunEmitsEveryInterval(t *testing.T) {
	a := group(t, "a", map[string]string{groupconfig.TagGuaranteeLivingMins: "50", groupconfig.TagEnablePreaction: "true"},
		member("i-old", time.Hour, nil))
	applies := make(chan int, 16)
	n := 0
	s := &reconcile.Source{Groups: fakeGroups{a}, Journals: fakeJournals{}, Now: func() time.Time { return t0 }, Interval: time.Millisecond,
		Apply: func(context.Context, reconcile.Snapshot) []source.Event { n++; applies <- n; return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan source.Event)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	for pass := 1; pass <= 3; pass++ {
		select {
		case got := <-applies:
			if got != pass {
				t.Fatalf("apply %d, want %d", got, pass)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("pass %d never applied", pass)
		}
		select {
		case e := <-out:
			if e.ID != "lifetime/i-old" || e.Source != source.Reconcile {
				t.Fatalf("pass %d emitted %+v", pass, e)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("pass %d emitted nothing", pass)
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
