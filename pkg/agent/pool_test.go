package agent_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/blockdev/blockdevtest"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/sim"
)

// attachSimVolume creates a volume in the instance's AZ and attaches it at dev.
func attachSimVolume(t *testing.T, c *ec2.Client, r *sim.Region, in sim.Instance, dev string) string {
	t.Helper()
	ctx := context.Background()
	v, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(in.AZ), Size: aws.Int32(8)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(v.VolumeId)
	eventually(t, 20*time.Second, "volume "+id+" to be available", func() bool {
		x, ok := r.Volume(id)
		return ok && x.State == sim.VolumeAvailable
	})
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(id), InstanceId: aws.String(in.ID), Device: aws.String(dev)}); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestBlankFreshVolumeHeldAndReported: on an instance assigned no data volume, the agent
// announces itself, reports the attached volume whose device is blank (never the one holding a
// file system) and holds it with O_EXCL — mkfs fails on it meanwhile — then withdraws the report
// and lets go after --blank-hold; stopped, it says so.
func TestBlankFreshVolumeHeldAndReported(t *testing.T) {
	blockdevtest.Require(t)
	env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
	r := env.Region()
	c := ec2.NewFromConfig(env.Config)
	blank := blockdevtest.NewLoop(t, 16, false)
	formatted := blockdevtest.NewLoop(t, 16, true)
	blankVol := attachSimVolume(t, c, r, in, "/dev/sdf")
	dataVol := attachSimVolume(t, c, r, in, "/dev/sdg")
	cfg := baseConfig(env, in.ID, t)
	cfg.BlankHold = 3 * time.Second
	byID := &blockdevtest.ByIDDir{Dir: cfg.ByIDDir}
	byID.Attach(t, blankVol, blank.Dev)
	byID.Attach(t, dataVol, formatted.Dev)
	ctx, cancel := context.WithCancel(context.Background())
	lb := runAgentCtx(t, ctx, "blank", cfg)
	eventually(t, 10*time.Second, "the blank volume reported", func() bool {
		return tagOf(r, in.ID, groupconfig.StateBlankVolume) == blankVol
	}, lb)
	if a := tagOf(r, in.ID, groupconfig.StateAgent); !strings.HasPrefix(a, "running ") {
		t.Errorf("%s = %q, want the agent's running announcement", groupconfig.StateAgent, a)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", blank.Dev).CombinedOutput(); err == nil {
		t.Fatalf("mkfs on the held blank device succeeded; want it refused while the agent holds it:\n%s", out)
	}
	eventually(t, 10*time.Second, "the report withdrawn after the hold", func() bool {
		return tagOf(r, in.ID, groupconfig.StateBlankVolume) == ""
	}, lb)
	eventually(t, 5*time.Second, "the device let go", func() bool {
		return exec.Command("mkfs.ext4", "-q", "-F", blank.Dev).Run() == nil
	}, lb)
	cancel()
	eventually(t, 10*time.Second, "the stopped announcement", func() bool {
		return strings.HasPrefix(tagOf(r, in.ID, groupconfig.StateAgent), "stopped ")
	}, lb)
}
