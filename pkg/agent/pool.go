package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sys/unix"

	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/version"
)

// Announcement states, the first word of groupconfig.StateAgent.
const (
	announceRunning = "running"
	announceStopped = "stopped"
)

// announce tells spotmax that an agent runs on this instance (groupconfig.StateAgent, "running
// <version> <time>"), so that a replacement waits for its clean release of the data volume,
// refreshes it every AnnounceInterval (which also undoes a forged "stopped"), and says "stopped"
// when the agent ends: a replacement then stops waiting for a release that would never come and
// terminates the instance at once, whose shutdown unmounts the volume.
func (a *agent) announce(ctx context.Context) {
	write := func(ctx context.Context, state string) {
		v := state + " " + version.Version + " " + time.Now().UTC().Format(time.RFC3339)
		if err := a.setTags(ctx, map[string]string{groupconfig.StateAgent: v}); err != nil {
			a.log.Warn("announcing the agent on its instance failed; replacements wait for the release timeout", "instance", a.id.InstanceID, "error", err)
		}
	}
	write(ctx, announceRunning)
	t := time.NewTicker(a.cfg.AnnounceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			write(sctx, announceStopped)
			cancel()
			return
		case <-t.C:
			write(ctx, announceRunning)
		}
	}
}

// holdBlank runs once at start: it looks for the volumes attached to the instance (other than
// those assigned to it) that are blank — no file system or partition table (blkid's low-level probe), mounted
// nowhere — opens each with O_EXCL, which makes mkfs and mount fail on it while held, and reports
// them (groupconfig.StateBlankVolume). spotmax may then swap such a volume for a pooled data volume
// of the group and delete it. After BlankHold, or once every held device is gone, the report is
// withdrawn and the devices let go.
func (a *agent) holdBlank(ctx context.Context) {
	if a.cfg.BlankHold < 0 {
		return
	}
	// Volumes assigned to the instance (a replacement's moved volumes) are never held. A
	// replacement is looked at too: when its old instance held only some of the group's data
	// devices, the others got the template's fresh volumes, which the pool may swap per device.
	assigned, _, err := a.tags.Tag(ctx, groupconfig.StateVolume)
	if err != nil {
		a.log.Warn("reading the volume assignment failed; not holding blank volumes", "instance", a.id.InstanceID, "error", err)
		return
	}
	held, err := a.blankVolumes(ctx, groupconfig.SplitStateList(assigned))
	if err != nil {
		a.log.Warn("looking for a blank fresh volume failed", "instance", a.id.InstanceID, "error", err)
	}
	if len(held) == 0 {
		return
	}
	defer func() {
		for _, h := range held {
			_ = h.f.Close()
		}
	}()
	var ids []string
	for _, h := range held {
		ids = append(ids, h.vol)
	}
	if err := a.setTags(ctx, map[string]string{groupconfig.StateBlankVolume: strings.Join(ids, " ")}); err != nil {
		a.log.Warn("reporting a blank fresh volume failed", "instance", a.id.InstanceID, "error", err)
		return
	}
	a.log.Info("blank fresh volume held for the group's pool: spotmax may swap it for a pooled data volume", "instance", a.id.InstanceID,
		"volumes", strings.Join(ids, ","), "hold", a.cfg.BlankHold.String())
	until := time.Now().Add(a.cfg.BlankHold)
	for time.Now().Before(until) {
		gone := 0
		for _, h := range held {
			if dev, _ := a.locator.Find(h.vol); dev == "" {
				gone++
			}
		}
		if gone == len(held) {
			break
		}
		select {
		case <-ctx.Done():
			until = time.Now()
		case <-time.After(max(a.cfg.DeviceInterval, 200*time.Millisecond)):
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.setTags(wctx, map[string]string{groupconfig.StateBlankVolume: ""}); err != nil {
		a.log.Warn("withdrawing the blank-volume report failed", "instance", a.id.InstanceID, "error", err)
	}
}

type heldVolume struct {
	vol, dev string
	f        *os.File
}

// blankVolumes finds and opens (O_EXCL) the blank volumes attached to the instance.
func (a *agent) blankVolumes(ctx context.Context, except []string) ([]heldVolume, error) {
	api, err := a.ec2.get(ctx)
	if err != nil {
		return nil, err
	}
	out, err := api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{a.id.InstanceID}}}})
	if err != nil {
		return nil, fmt.Errorf("describing the volumes of %s: %w", a.id.InstanceID, err)
	}
	mounts, err := blockdev.ReadMountInfo(a.mounter.MountInfo)
	if err != nil {
		return nil, err
	}
	var held []heldVolume
	for _, v := range out.Volumes {
		id := aws.ToString(v.VolumeId)
		if slices.Contains(except, id) {
			continue
		}
		dev, err := a.locator.Find(id)
		if err != nil || dev == "" {
			continue // no device proves to be it: never guessed
		}
		if mountedFrom(mounts, dev) {
			continue
		}
		f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_EXCL, 0)
		if err != nil {
			continue // in use (EBUSY): a mount or a partition's mount holds it
		}
		if blank, err := isBlank(ctx, dev); err != nil || !blank {
			_ = f.Close()
			continue
		}
		held = append(held, heldVolume{vol: id, dev: dev, f: f})
	}
	return held, nil
}

func mountedFrom(mounts []blockdev.MountEntry, dev string) bool {
	for _, m := range mounts {
		if m.Source == dev || strings.HasPrefix(m.Source, dev) && len(m.Source) > len(dev) && strings.ContainsAny(m.Source[len(dev):], "0123456789") {
			return true
		}
	}
	return false
}

// isBlank reports whether dev holds no file system, partition table or other signature that
// blkid's low-level probe knows.
func isBlank(ctx context.Context, dev string) (bool, error) {
	cmd := exec.CommandContext(ctx, "blkid", "-p", "-o", "export", dev)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return true, nil // nothing found
	}
	if err != nil {
		return false, fmt.Errorf("probing %s (blkid -p): %w", dev, err)
	}
	return strings.TrimSpace(string(out)) == "", nil
}
