package controller_test

import (
	"context"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/controller"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
	"github.com/spotmax/spotmax/pkg/source"
)

// TestStaleResumeStartsNothing: a resume event names a journal that the run driving it has
// cleared since the snapshot was read (here: an instance that never had one). The controller
// must not take it for a request to replace the instance, which keeps serving.
func TestStaleResumeStartsNothing(t *testing.T) {
	e := newEnv(t, 1000)
	ids := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 2, Tags: tags("web", nil)})
	r := e.Region()
	before := len(r.Instances())
	c := e.controller(&recorder{})
	c.Sources = []controller.Source{oneEvent(source.Event{Kind: source.KindResume, Instance: ids[0], Group: "web",
		Time: r.Clock().Now(), Source: source.Reconcile, Detail: "lifetime, after detached"})}
	runUntil(t, c, 30*time.Second, func() bool { return c.Stats().AlreadyDone == 1 && c.Stats().Reconciles >= 3 })
	c.Wait()
	st := c.Stats()
	if st.Failed != 0 || st.Succeeded != 0 {
		t.Errorf("stats %+v; want the stale resume to do nothing", st)
	}
	ms := members(r, "web")
	if _, ok := ms[ids[0]]; !ok || len(ms) != 2 || len(r.Instances()) != before {
		t.Errorf("members %v, %d instances (was %d): the stale resume replaced %s", ms, len(r.Instances()), before, ids[0])
	}
}

// TestFailedResumeIsRetried: a resume that fails (here: Auto Scaling throttles every detach for
// a while) is tried again after RetryAfter, not left half done until the controller restarts.
func TestFailedResumeIsRetried(t *testing.T) {
	e := newEnv(t, 1000)
	ids := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 3, Tags: tags("web", nil)})
	r := e.Region()
	// A crashed replacement of ids[1] left a journal after the join.
	crashAfterJoin(t, e, "web", ids[1])
	// The resumes meet a throttled detach and fail with the journal kept.
	r.ThrottleNext("autoscaling:DetachInstances", 1000)
	c := e.controller(&recorder{})
	c.RetryAfter = time.Minute
	cleared := false
	runUntil(t, c, 30*time.Second, func() bool {
		// Two failures: the second resume finds the journal at the phase the first left it
		// in, so the third is the same event again.
		if !cleared && c.Stats().Failed >= 2 {
			r.ClearFaults() // the same controller must now try again
			cleared = true
		}
		_, still := members(r, "web")[ids[1]]
		return cleared && !still && c.Stats().Succeeded == 1
	})
	c.Wait()
	js, err := c.Workflow.InFlight(context.Background())
	if err != nil || len(js) != 0 {
		t.Errorf("journals left: %v %v", js, err)
	}
	if gg, _ := r.Group("web"); gg.Max != 3 || gg.Desired != 2 {
		t.Errorf("max/desired = %d/%d, want 3/2", gg.Max, gg.Desired)
	}
}
