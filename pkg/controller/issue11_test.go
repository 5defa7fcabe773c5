package controller_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotmax/spotmax/pkg/controller"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
	sqssource "github.com/spotmax/spotmax/pkg/source/sqs"
	"github.com/spotmax/spotmax/pkg/source/sqs/sqstest"
)

// calls returns how often the region served action (service:Action) since the last ResetCalls.
func calls(r *sim.Region, action string) int {
	for _, c := range r.Calls() {
		if c.Action == action {
			return c.Count
		}
	}
	return 0
}

// drastic are the calls that launch, detach or terminate.
var drastic = []string{"ec2:RunInstances", "ec2:TerminateInstances", "ec2:DetachVolume", "ec2:AttachVolume",
	"autoscaling:DetachInstances", "autoscaling:AttachInstances", "autoscaling:TerminateInstanceInAutoScalingGroup"}

// interruptionWarning is the EventBridge sample (testdata, as aws-node-termination-handler
// publishes it) for instance id, sent at t.
func interruptionWarning(tb testing.TB, id string, at time.Time) string {
	tb.Helper()
	b, err := os.ReadFile("../source/sqs/testdata/eventbridge/spot-interruption-terminate.json")
	if err != nil {
		tb.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "i-0a1b2c3d4e5f60718", id)
	s = strings.Replace(s, "2026-03-04T10:15:30Z", at.UTC().Format(time.RFC3339), 1)
	s = strings.Replace(s, "0d1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7", "evt-"+id, 1)
	return s
}

// TestIssue11Case8UnconfirmedInterruptionWarning: a real "EC2 Spot Instance Interruption
// Warning" on the queue for an instance AWS then does not reclaim (duplicate, stale or mistaken)
// launches nothing and detaches nothing, through its whole deadline; a warning AWS carries out
// (the sim interrupts the instance: its spot request is marked-for-termination) is acted on.
func TestIssue11Case8UnconfirmedInterruptionWarning(t *testing.T) {
	e := newEnv(t, 1000)
	ctx := context.Background()
	r := e.Region()
	ids := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 3, Tags: tags("web", nil)})
	sqsc := sqs.NewFromConfig(e.Config)
	q, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("spotmax-events")})
	if err != nil {
		t.Fatal(err)
	}
	src := &sqssource.Source{Client: sqsc, QueueURL: aws.ToString(q.QueueUrl), Filter: sqstest.TagFilter(e.ec2),
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	rec := &recorder{}
	c := e.controller(rec)
	c.Sources = []controller.Source{src}
	sent := r.Clock().Now()
	if err := r.SendQueueMessage("spotmax-events", interruptionWarning(t, ids[0], sent)); err != nil {
		t.Fatal(err)
	}
	r.ResetCalls()
	// Run past the warning's deadline (two minutes after it) and a few reconciles more.
	runUntil(t, c, 30*time.Second, func() bool {
		return src.Stats().HandedOver >= 1 && r.Clock().Now().After(sent.Add(3*time.Minute)) && c.Stats().Reconciles >= 5
	})
	c.Wait()
	for _, a := range drastic {
		if n := calls(r, a); n > 0 {
			t.Errorf("an unconfirmed warning for %s led to %d %s", ids[0], n, a)
		}
	}
	if _, ok := members(r, "web")[ids[0]]; !ok {
		t.Errorf("%s left the group for a warning AWS never carried out", ids[0])
	}
	if in, _ := r.Instance(ids[0]); in.State != sim.StateRunning || in.Tags[groupconfig.StatePhase] != "" {
		t.Errorf("%s is %s with journal phase %q, want running and untouched", ids[0], in.State, in.Tags[groupconfig.StatePhase])
	}
	if n := calls(r, "ec2:DescribeSpotInstanceRequests"); n == 0 {
		t.Error("the warning was never checked with EC2 (DescribeSpotInstanceRequests)")
	}

	// The same warning for an instance AWS does interrupt is acted on.
	if err := r.Interrupt(ids[1], ""); err != nil {
		t.Fatal(err)
	}
	in, _ := r.Instance(ids[1])
	if err := r.SendQueueMessage("spotmax-events", interruptionWarning(t, ids[1], in.Interruption.Notice)); err != nil {
		t.Fatal(err)
	}
	c = e.controller(rec)
	c.Sources = []controller.Source{src}
	runUntil(t, c, 30*time.Second, func() bool {
		_, still := members(r, "web")[ids[1]]
		return !still && c.Stats().Succeeded >= 1
	})
	c.Wait()
	if rec.count(metrics.InterruptionReceived) != 1 {
		t.Errorf("InterruptionReceived = %d, want 1 (the confirmed warning only)", rec.count(metrics.InterruptionReceived))
	}
	if _, ok := members(r, "web")[ids[0]]; !ok {
		t.Errorf("%s, whose warning was never confirmed, left the group", ids[0])
	}
}

// TestIssue11Case3ForgedJournalController: an attacker with root on a member of web tags it with
// a journal (phase launched) whose replacement is an instance of the group db. Reconciles and the
// controller's handling of the resume leave db's instance and volume alone (no attach, detach or
// terminate), and the forged journal is refused, not cleared into action.
func TestIssue11Case3ForgedJournalController(t *testing.T) {
	e := newEnv(t, 1000)
	ctx := context.Background()
	r := e.Region()
	web := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 3, Tags: tags("web", nil)})
	db := e.CreateGroup(t, simtest.GroupSpec{Name: "db", Spot: true, DataDevice: "/dev/sdf", Desired: 1, Max: 2, Tags: tags("db", nil)})
	dbIn, _ := r.Instance(db[0])
	var dbVol string
	for _, bd := range dbIn.BlockDevices {
		if bd.DeviceName == "/dev/sdf" {
			dbVol = bd.VolumeID
		}
	}
	forged := []ec2types.Tag{
		{Key: aws.String(groupconfig.StateJournalGroup), Value: aws.String("web")},
		{Key: aws.String(groupconfig.StatePhase), Value: aws.String(string(replace.PhaseLaunched))},
		{Key: aws.String(groupconfig.StateReason), Value: aws.String(string(replace.ReasonManual))},
		{Key: aws.String(groupconfig.StateReplacement), Value: aws.String(db[0])},
	}
	if _, err := e.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{web[1]}, Tags: forged}); err != nil {
		t.Fatal(err)
	}
	r.ResetCalls()
	rec := &recorder{}
	c := e.controller(rec)
	runUntil(t, c, 30*time.Second, func() bool { return c.Stats().Reconciles >= 10 && c.Stats().Failed >= 1 })
	c.Wait()
	for _, a := range drastic {
		if n := calls(r, a); n > 0 {
			t.Errorf("the forged journal led to %d %s", n, a)
		}
	}
	if g, ok := r.GroupOf(db[0]); !ok || g != "db" {
		t.Errorf("%s of db is in group %q", db[0], g)
	}
	if in, _ := r.Instance(db[0]); in.State != sim.StateRunning {
		t.Errorf("%s of db is %s", db[0], in.State)
	}
	if v, _ := r.Volume(dbVol); v.Attachment == nil || v.Attachment.InstanceID != db[0] {
		t.Errorf("db's volume %s attachment = %+v, want on %s", dbVol, v.Attachment, db[0])
	}
	for _, id := range web {
		if g, ok := r.GroupOf(id); !ok || g != "web" {
			t.Errorf("%s of web is in group %q", id, g)
		}
	}
	if in, _ := r.Instance(web[1]); in.Tags[groupconfig.StatePhase] == "" {
		t.Errorf("the forged journal on %s was cleared; it must stay for the operator to see", web[1])
	}
}

// TestIssue11Case2RevertSkipsStandInReceivingVolume: an on-demand stand-in, old enough for the
// revert policy, that is still receiving the data volume of a replacement another actor drives
// (`spotmax replace` with its lease) is never picked; once that replacement is done, the policy
// reverts it.
func TestIssue11Case2RevertSkipsStandInReceivingVolume(t *testing.T) {
	e := newEnv(t, 1000)
	ctx := context.Background()
	r := e.Region()
	ids := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 1, Max: 1,
		Tags: tags("web", map[string]string{groupconfig.TagODLeastLiveMins: "1"})})
	in, _ := r.Instance(ids[0])
	pool := sim.PoolKey{InstanceType: "m5.large", AZ: in.AZ, Market: sim.MarketSpot}
	r.SetCapacity(pool, 0) // no spot for the replacement: an on-demand stand-in
	cli := e.controller(&recorder{}).Workflow
	cli.Owner, cli.Lease = "spotmax@operator/cli", time.Hour
	cli.AfterPhase = func(_ string, p replace.Phase) error {
		if p == replace.PhaseDetached {
			return context.Canceled // the CLI stops here, its lease held, the volume not yet moved
		}
		return nil
	}
	c0 := e.controller(&recorder{})
	g, err := c0.Lister.Group(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Replace(ctx, g, replace.Request{InstanceID: ids[0]}); !errors.Is(err, context.Canceled) {
		t.Fatalf("CLI replacement: %v, want it stopped after detached", err)
	}
	var standIn string
	for id, m := range members(r, "web") {
		if m.Tags[groupconfig.StateReplaces] == ids[0] && m.Market == sim.MarketOnDemand {
			standIn = id
		}
	}
	if standIn == "" {
		t.Fatalf("no on-demand stand-in in web: %v", members(r, "web"))
	}
	r.SetCapacity(pool, -1)
	r.Advance(2 * time.Minute) // the stand-in is past od_least_live_mins
	r.ResetCalls()
	rec := &recorder{}
	c := e.controller(rec)
	runUntil(t, c, 30*time.Second, func() bool { return c.Stats().Reconciles >= 10 })
	c.Wait()
	if n := calls(r, "ec2:RunInstances"); n > 0 {
		t.Errorf("the controller launched %d instances while %s was receiving %s's volume", n, standIn, ids[0])
	}
	if in, _ := r.Instance(standIn); in.State != sim.StateRunning || in.Tags[groupconfig.StatePhase] != "" {
		t.Errorf("stand-in %s is %s with journal phase %q, want untouched", standIn, in.State, in.Tags[groupconfig.StatePhase])
	}
	if rec.count(metrics.RevertToSpot) != 0 {
		t.Errorf("RevertToSpot = %d while the stand-in receives a volume", rec.count(metrics.RevertToSpot))
	}
	// The CLI finishes its replacement; now the stand-in may go back to spot.
	cli.AfterPhase = nil
	if _, err := cli.Replace(ctx, g, replace.Request{InstanceID: ids[0]}); err != nil {
		t.Fatalf("resuming the CLI replacement: %v", err)
	}
	c = e.controller(rec)
	runUntil(t, c, 30*time.Second, func() bool {
		_, still := members(r, "web")[standIn]
		return !still && rec.count(metrics.RevertToSpot) == 1
	})
	c.Wait()
	for _, m := range members(r, "web") {
		if m.Market != sim.MarketSpot || m.Tags[groupconfig.StateVolume] == "" {
			t.Errorf("member %s is %s with volume %q, want the reverted spot instance holding the data", m.ID, m.Market, m.Tags[groupconfig.StateVolume])
		}
	}
}
