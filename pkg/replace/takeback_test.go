package replace_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/replace"
)

// TestTwoLostInstancesTakeBackOneMemberEach: two interrupted members of one group are replaced
// at once; both replacements join (desired 4 → 6) and then both old instances terminate at the
// end of their notices while still members, so the group launches two members of its own. Each
// resume must take back exactly one of those: the group ends at 4, not 5 (the second replacement
// journaled a desired capacity of 5, which already counted the first one's extra member) nor 3.
func TestTwoLostInstancesTakeBackOneMemberEach(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		name := "one after the other"
		if concurrent {
			name = "at the same time"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{desired: 4, max: 4, seed: 11, scale: 100})
			r := f.env.Region()
			ctx := context.Background()
			if _, err := f.workflow().EnsureKeepVolumes(ctx, f.inventory(t)); err != nil {
				t.Fatal(err)
			}
			olds := f.members[:2]
			reqs := make([]replace.Request, len(olds))
			// Each old instance gets its notice, and each run stops once its replacement has
			// joined (well within the notice: 2 simulated minutes are 1.2 s here).
			for i, old := range olds {
				if err := r.Interrupt(old, ""); err != nil {
					t.Fatal(err)
				}
				in, _ := r.Instance(old)
				req := replace.Request{InstanceID: old, Reason: replace.ReasonInterruption, Deadline: in.Interruption.Time}
				reqs[i] = req
				w := f.workflow()
				w.AfterPhase = func(_ string, p replace.Phase) error {
					if p == replace.PhaseJoined {
						return errCrash
					}
					return nil
				}
				if _, err := w.Replace(ctx, f.inventory(t), req); !errors.Is(err, errCrash) {
					t.Fatalf("first run of %s: %v, want the crash after joined", req.InstanceID, err)
				}
			}
			if g, _ := r.Group(f.group); g.Desired != 6 {
				t.Fatalf("desired after both joins = %d, want 6", g.Desired)
			}
			r.Advance(3 * time.Minute) // both notices end: the old instances terminate as members
			w := f.workflow()          // one process, as in `spotmax run`
			to := *w.Timeouts
			to.InService = 30 * time.Minute
			w.Timeouts = &to // 18 s of real time
			errs := make([]error, len(reqs))
			var wg sync.WaitGroup
			for i, req := range reqs {
				resume := func() { _, errs[i] = w.Replace(ctx, f.inventory(t), req) }
				if !concurrent {
					resume()
					continue
				}
				wg.Add(1)
				go func() { defer wg.Done(); resume() }()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("resume of %s: %v", reqs[i].InstanceID, err)
				}
			}
			f.checkInvariants(t)
		})
	}
}
