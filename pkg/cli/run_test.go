package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// TestRunOnceActsOnRelayedNotice runs `spotmax run --once` against the simulated region: an
// agent relayed an interruption notice; the controller replaces the instance, and its data
// volume arrives on the replacement once the interrupted instance is gone.
func TestRunOnceActsOnRelayedNotice(t *testing.T) {
	e := newTestEnv(t)
	ids := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 2,
		Tags: map[string]string{groupconfig.TagGroup: "web", groupconfig.TagPersistenceDev: "/dev/sdf",
			groupconfig.TagDetachingDelaySeconds: "0"}})
	r := e.Region()
	if err := r.Interrupt(ids[0], ""); err != nil {
		t.Fatal(err)
	}
	in, _ := r.Instance(ids[0])
	notice := groupconfig.RelayedNotice{Action: "terminate", Time: in.Interruption.Time}.String()
	if _, err := e.ec2.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{ids[0]},
		Tags: []ec2types.Tag{{Key: aws.String(groupconfig.StateNotice), Value: aws.String(notice)}}}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		out, errOut string
		code        int
	}
	done := make(chan result, 1)
	go func() {
		o, eo, c := run(t, "run", "--once", "--no-cloudwatch", "--poll-interval", "10ms")
		done <- result{o, eo, c}
	}()
	// Let the notice's two minutes pass once the replacement is on its way.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		launched := false
		for _, x := range r.Instances() {
			launched = launched || x.Tags[groupconfig.StateReplaces] == ids[0]
		}
		if launched {
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
	r.Advance(3 * time.Minute)
	var res result
	select {
	case res = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("spotmax run --once did not return")
	}
	if res.code != 0 || !strings.Contains(res.errOut, "1 succeeded") {
		t.Fatalf("exit %d, stderr:\n%s", res.code, res.errOut)
	}
	// A member the group launched for the lost instance is being terminated; let it go.
	var g sim.ASG
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r.Advance(10 * time.Second)
		g, _ = r.Group("web")
		if len(g.Members) == 2 || time.Now().After(deadline) {
			break
		}
	}
	if _, still := g.Member(ids[0]); still || len(g.Members) != 2 {
		var states []string
		for _, m := range g.Members {
			states = append(states, m.InstanceID+":"+m.LifecycleState)
		}
		t.Errorf("members after run: %v\nstderr:\n%s", states, res.errOut)
	}
	vol := in.BlockDevices[1].VolumeID
	v, _ := r.Volume(vol)
	if v.Attachment == nil || v.Attachment.InstanceID == ids[0] {
		t.Errorf("data volume %s attachment %+v, want the replacement", vol, v.Attachment)
	}
}

func TestRunRefusesBadResyncFlags(t *testing.T) {
	for _, args := range [][]string{{"--full-resync-every", "0"}, {"--full-resync-after", "0s"}} {
		_, stderr, code := run(t, append([]string{"run", "--no-cloudwatch"}, args...)...)
		if code != ExitUsage || !strings.Contains(stderr, "--full-resync-every must be at least 1") {
			t.Errorf("run %v: exit %d, stderr %q; want a usage error naming the flags", args, code, stderr)
		}
	}
}
