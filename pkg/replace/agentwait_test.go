package replace_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// TestReplaceWaitsForAReleaseOnlyWhereAnAgentRuns: with no agent announced on the old instance,
// the replacement terminates the detached instance at once instead of waiting the release
// timeout (an hour here); with an agent announced that never releases, it waits the whole
// timeout first. Either way the data volume arrives whole and nothing is force-detached.
func TestReplaceWaitsForAReleaseOnlyWhereAnAgentRuns(t *testing.T) {
	for _, tc := range []struct {
		name     string
		announce string // "" = no tag
		wait     bool
	}{
		{"no agent", "", false},
		{"agent stopped", "stopped v1 2026-01-01T00:00:00Z", false},
		{"malformed announcement", "running", false},
		{"agent running, never releases", "running v1 2026-01-01T00:00:00Z", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			old := f.members[0]
			if tc.announce != "" {
				if err := f.setTag(old, groupconfig.StateAgent, tc.announce); err != nil {
					t.Fatal(err)
				}
			}
			w := f.workflow()
			to := *w.Timeouts
			to.Release = 20 * time.Minute
			w.Timeouts = &to
			res, err := f.replace(t, w, replace.Request{InstanceID: old, Reason: replace.ReasonLifetime})
			if err != nil {
				t.Fatalf("Replace: %v", err)
			}
			took := res.Finished.Sub(res.Started)
			if waited := took >= to.Release; waited != tc.wait {
				t.Errorf("replacement took %s of simulated time with release timeout %s: waited = %v, want %v", took, to.Release, waited, tc.wait)
			}
			in, _ := f.env.Region().Instance(old)
			if in.State != sim.StateTerminated && in.State != sim.StateShuttingDown {
				t.Errorf("old instance %s is %s, want terminated", old, in.State)
			}
			f.checkInvariants(t)
		})
	}
}

func TestAgentRunningParsesOnlyAWellFormedAnnouncement(t *testing.T) {
	for v, want := range map[string]bool{
		"running v1.2.0 2026-03-01T10:00:00Z": true,
		"running dev 2026-03-01T10:00:00Z":    true,
		"stopped v1.2.0 2026-03-01T10:00:00Z": false,
		"running v1.2.0":                      false,
		"running v1.2.0 yesterday":            false,
		"":                                    false,
		"RUNNING v1 2026-03-01T10:00:00Z":     false,
	} {
		tags := []ec2types.Tag{{Key: aws.String(groupconfig.StateAgent), Value: aws.String(v)}}
		if got := replace.AgentRunning(tags); got != want {
			t.Errorf("AgentRunning(%q) = %v, want %v", v, got, want)
		}
	}
}
