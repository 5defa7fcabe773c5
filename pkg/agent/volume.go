package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/imds"
	"github.com/spotmax/spotmax/pkg/metrics"
)

// mountTimeout bounds one mount; a mount is never cut short by the agent's own shutdown.
const mountTimeout = 30 * time.Second

// remountLoop waits for the data volume that the replacement workflow assigns to this instance
// (groupconfig.StateVolume, with groupconfig.StateMountPath) and mounts it, at once if it is
// already attached. It returns once the volume is mounted, or when the agent stops.
func (a *agent) remountLoop(ctx context.Context) {
	watch := watchDevices(ctx, a.cfg.ByIDDir, a.cfg.DevDir)
	devPoll := a.cfg.DeviceInterval
	if watch != nil {
		devPoll = max(devPoll, time.Second) // inotify wakes us; polling is only a safety net
	}
	w := &mountWait{}
	var vol, path string
	nextTags := time.Now()
	woke := false
	for {
		now := time.Now()
		if !now.Before(nextTags) || (woke && vol == "" && a.tags.Source() == "imds") {
			if it, ok := a.tags.(*imdsTags); ok && woke {
				it.invalidate() // a device appeared: the assignment may have come with it
			}
			v, p, err := a.assignment(ctx)
			if err != nil {
				w.report(a, "reading the volume assignment failed", err)
			} else {
				vol, path = v, p
			}
			nextTags = time.Now().Add(a.tags.Every())
		}
		if vol != "" && path != "" {
			if a.tryMount(ctx, vol, path, w) {
				return
			}
		}
		wait := time.Until(nextTags)
		if vol != "" && devPoll < wait {
			wait = devPoll
		}
		timer := time.NewTimer(max(wait, time.Millisecond))
		woke = false
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-watch.C():
			woke = true
		case <-timer.C:
		}
		timer.Stop()
	}
}

// mountWait is the progress of waiting for one volume, for logs that say things once.
type mountWait struct {
	since     time.Time // assignment first seen
	found     time.Time // device first seen
	waiting   bool
	lastError string
	lastAt    time.Time
	// lastRecord is when EC2's attachment record was last read, recorded the device name it
	// gave for this instance, recordState what it said otherwise (logged once per state).
	lastRecord  time.Time
	recorded    string
	recordState string
}

// report logs an error once, and again only when it changes or every minute.
func (w *mountWait) report(a *agent, msg string, err error) {
	if err.Error() == w.lastError && time.Since(w.lastAt) < time.Minute {
		return
	}
	w.lastError, w.lastAt = err.Error(), time.Now()
	a.log.Error(msg, "instance", a.id.InstanceID, "error", err)
}

// assignment reads the volume assigned to this instance and where to mount it.
func (a *agent) assignment(ctx context.Context) (vol, path string, err error) {
	vol, ok, err := a.tags.Tag(ctx, groupconfig.StateVolume)
	if err != nil || !ok {
		return "", "", err
	}
	if !blockdev.ValidVolumeID(vol) {
		return "", "", fmt.Errorf("tag %s=%q on %s is not an EBS volume id", groupconfig.StateVolume, vol, a.id.InstanceID)
	}
	path = a.cfg.MountPath
	if path == "" {
		if p, ok, err := a.tags.Tag(ctx, groupconfig.StateMountPath); err != nil {
			return "", "", err
		} else if ok {
			path = p
		}
	}
	if path == "" {
		path = a.groupMountPath(ctx)
	}
	if path != "" && !filepath.IsAbs(path) {
		return "", "", fmt.Errorf("mount path %q for volume %s on %s is not absolute", path, vol, a.id.InstanceID)
	}
	return vol, path, nil
}

// groupMountPath is the group's spotmax:persistence_mount_path, propagated to the instance.
func (a *agent) groupMountPath(ctx context.Context) string {
	p, ok, err := a.tags.Tag(ctx, groupconfig.TagPersistenceMountPath)
	if err != nil || !ok {
		return ""
	}
	return p
}

// mountPathForRelease is where the data volume is mounted as far as this run knows.
func (a *agent) mountPathForRelease() string {
	if a.cfg.MountPath != "" {
		return a.cfg.MountPath
	}
	return a.mountPath
}

// tryMount finds the assigned volume's device and mounts it. It reports whether the work is
// over (mounted, or the instance is leaving).
func (a *agent) tryMount(ctx context.Context, vol, path string, w *mountWait) bool {
	if w.since.IsZero() {
		w.since = time.Now()
		a.log.Info("data volume assigned", "instance", a.id.InstanceID, "volume", vol, "mount_path", path)
	}
	dev, err := a.locator.Find(vol)
	if err != nil {
		w.report(a, "looking for the device of volume "+vol+" failed", err)
		return false
	}
	if dev == "" {
		if dev, err = a.recordedDevice(ctx, vol, path, w); err != nil {
			w.report(a, "not mounting the device that EC2's attachment record names", err)
			return false
		}
	}
	if dev == "" {
		if !w.waiting {
			w.waiting = true
			a.log.Info("waiting for the data volume to be attached: no device proves to be it yet (its NVMe serial, a by-id link "+
				"naming it, or EC2's attachment record for this instance); no other disk is ever mounted",
				"instance", a.id.InstanceID, "volume", vol, "mount_path", path)
		}
		return false
	}
	if w.found.IsZero() {
		w.found = time.Now()
	}
	a.volMu.Lock()
	defer a.volMu.Unlock()
	if a.leaving {
		a.log.Warn("not mounting the data volume: the instance is going away", "instance", a.id.InstanceID, "volume", vol)
		return true
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mountTimeout)
	defer cancel()
	res, err := a.mounter.Mount(mctx, dev, path)
	if err != nil {
		msg := "mounting the data volume failed, will retry"
		switch {
		case errors.Is(err, blockdev.ErrBusy):
			msg = "the mount path is busy (a placeholder is in use), will retry"
		case errors.Is(err, blockdev.ErrNoFileSystem), errors.Is(err, blockdev.ErrMountedElsewhere):
			msg = "refusing to mount the data volume"
		}
		w.report(a, msg, fmt.Errorf("volume %s (%s) at %s: %w", vol, dev, path, err))
		return false
	}
	a.mountedVolume, a.mountPath = vol, path
	a.log.Info("data volume mounted", "event", "volume-mounted", "instance", a.id.InstanceID, "volume", vol,
		"device", res.Device, "fstype", res.FSType, "mount_path", path, "replaced_placeholder", res.Replaced,
		"already_mounted", res.Already, "since_device_found", time.Since(w.found).Round(time.Microsecond).String(),
		"since_assigned", time.Since(w.since).Round(time.Millisecond).String())
	if !res.Already {
		// From the first sight of the device: the wait for the attachment is the workflow's
		// VolumeMoved. A volume found mounted (a restarted agent) was counted when it was mounted.
		a.record(ctx, metrics.Event{Name: metrics.VolumeMounted, Duration: time.Since(w.found),
			Fields: map[string]string{"volume": vol, "mount_path": path}})
	}
	if cur, ok, err := a.tags.Tag(ctx, groupconfig.StateVolumeMounted); err == nil && ok && cur == vol {
		return true
	}
	if err := a.setTags(ctx, map[string]string{groupconfig.StateVolumeMounted: vol}); err != nil {
		a.log.Error("reporting the mount failed (the volume is mounted)", "instance", a.id.InstanceID, "volume", vol, "error", err)
	}
	return true
}

// recordPoll is how often EC2 is asked for the volume's attachment record while its device
// has not appeared.
const recordPoll = 2 * time.Second

// recordedDevice identifies the volume's device from EC2's attachment record, for instances
// whose disks carry no EBS serial (Xen: EC2's /dev/sdf is the kernel's /dev/xvdf). The record
// must say the volume is attached to this instance; the device it names (or its Xen name) must
// exist as a block device that is neither the root disk nor mounted anywhere but at path, and
// must not carry another volume's id. The record is read again right before the device is
// returned, so that a name reused by another attachment in the meantime is not taken. It returns
// "" while any of that is not so: nothing else is ever mounted.
func (a *agent) recordedDevice(ctx context.Context, vol, path string, w *mountWait) (string, error) {
	if a.cfg.DevDir == "-" || !a.hasXenDisks() {
		return "", nil // a Nitro instance: volumes prove themselves by serial
	}
	if w.recorded == "" {
		if time.Since(w.lastRecord) < recordPoll {
			return "", nil
		}
		dev, err := a.attachmentRecord(ctx, vol, w)
		if err != nil || dev == "" {
			return "", err
		}
		w.recorded = dev
	}
	mounts, err := blockdev.ReadMountInfo(a.mounter.MountInfo)
	if err != nil {
		return "", err
	}
	dev, err := blockdev.AttachedDevice(a.cfg.DevDir, w.recorded, mounts, path)
	if err != nil || dev == "" {
		return "", err
	}
	if id, _ := a.locator.VolumeOf(dev); id != "" && id != vol {
		return "", fmt.Errorf("device %s, named by the attachment record of %s (%s), is volume %s", dev, vol, w.recorded, id)
	}
	recorded := w.recorded
	if again, err := a.attachmentRecord(ctx, vol, w); err != nil || again != recorded {
		w.recorded = again
		return "", err
	}
	a.log.Info("device identified by EC2's attachment record", "instance", a.id.InstanceID, "volume", vol,
		"attachment_device", recorded, "device", dev)
	return dev, nil
}

// attachmentRecord returns EC2's device name of the volume's attachment to this instance, or ""
// when EC2 does not show it attached here (yet), which is logged once per state.
func (a *agent) attachmentRecord(ctx context.Context, vol string, w *mountWait) (string, error) {
	w.lastRecord = time.Now()
	api, err := a.ec2.get(ctx)
	if err != nil {
		return "", err
	}
	out, err := api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{vol}})
	if err != nil {
		return "", fmt.Errorf("reading the attachment record of volume %s: %w", vol, err)
	}
	state := "not attached"
	for _, v := range out.Volumes {
		if aws.ToString(v.VolumeId) != vol {
			continue
		}
		for _, att := range v.Attachments {
			switch {
			case aws.ToString(att.InstanceId) != a.id.InstanceID:
				state = "attached to " + aws.ToString(att.InstanceId)
			case att.State != ec2types.VolumeAttachmentStateAttached:
				state = string(att.State) + " here"
			default:
				return aws.ToString(att.Device), nil
			}
		}
	}
	if state != w.recordState {
		w.recordState = state
		a.log.Info("EC2 does not show the data volume attached to this instance yet", "instance", a.id.InstanceID,
			"volume", vol, "attachment", state)
	}
	return "", nil
}

// hasXenDisks reports whether the device directory shows any disk with a Xen-style name.
func (a *agent) hasXenDisks() bool {
	entries, err := os.ReadDir(a.cfg.DevDir)
	if err != nil {
		return true // cannot tell: let the attachment record decide
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "xvd") || strings.HasPrefix(e.Name(), "sd") {
			return true
		}
	}
	return false
}

// release unmounts the data volume cleanly and marks it released (groupconfig
// StateVolumeReleased) so that the replacement workflow may detach it. From then on the agent
// does not mount a volume again.
func (a *agent) release(ctx context.Context, n imds.Notice, log *slog.Logger) error {
	a.volMu.Lock()
	defer a.volMu.Unlock()
	a.leaving = true
	path := a.mountPathForRelease()
	if path == "" {
		if p, ok, err := a.tags.Tag(ctx, groupconfig.StateMountPath); err == nil && ok {
			path = p
		} else {
			path = a.groupMountPath(ctx)
		}
	}
	if path == "" {
		log.Info("no data volume to release: the group has no mount path")
		return nil
	}
	src, err := a.mounter.MountedAt(path)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(src, "/dev/") {
		log.Info("no data volume to release: nothing from a block device is mounted there", "mount_path", path, "mounted", src)
		return nil
	}
	vol, err := a.volumeOf(ctx, src, path)
	if err != nil {
		log.Warn("cannot tell the EBS volume id of the data volume; it is unmounted but not marked released", "device", src, "error", err)
	}
	if a.cfg.StopWritersHook != "" {
		if err := a.runHook(ctx, "stop-writers hook", a.cfg.StopWritersHook, n, vol, path); err != nil {
			log.Warn("stop-writers hook failed; unmounting anyway", "error", err)
		}
	}
	deadline := time.Now().Add(a.cfg.ReleaseTimeout)
	if n.Kind == imds.KindSpotInterruption && !n.Time.IsZero() {
		deadline = n.Time.Add(-5 * time.Second)
	}
	for {
		// An unmount is never cut short by the agent's own shutdown: it either happens or not.
		_, err = a.mounter.Unmount(context.WithoutCancel(ctx), path)
		if err == nil {
			break
		}
		if !errors.Is(err, blockdev.ErrBusy) || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("releasing data volume %s at %s: %w", orUnknown(vol), path, err)
		}
		log.Warn("data volume busy, retrying the unmount", "mount_path", path, "until", deadline.UTC().Format(time.RFC3339))
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if vol == "" {
		return fmt.Errorf("data volume at %s unmounted, but its EBS volume id is unknown: not marked released (the workflow waits for the instance to stop)", path)
	}
	if err := a.setTags(ctx, map[string]string{groupconfig.StateVolumeReleased: vol}); err != nil {
		return fmt.Errorf("data volume %s unmounted, marking it released: %w", vol, err)
	}
	log.Info("data volume released", "event", "volume-released", "volume", vol, "device", src, "mount_path", path)
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown id)"
	}
	return s
}

// volumeOf returns the EBS volume id of the device mounted at path: from its by-id link or NVMe
// serial, from what this agent mounted, from the mount the agent reported, or from EC2 (Xen
// instances: the attachment whose device name matches).
func (a *agent) volumeOf(ctx context.Context, dev, path string) (string, error) {
	if id, err := a.locator.VolumeOf(dev); err == nil && id != "" {
		return id, nil
	}
	if a.mountedVolume != "" && a.mountPath == path {
		return a.mountedVolume, nil
	}
	if v, ok, err := a.tags.Tag(ctx, groupconfig.StateVolumeMounted); err == nil && ok && blockdev.ValidVolumeID(v) {
		return v, nil
	}
	api, err := a.ec2.get(ctx)
	if err != nil {
		return "", err
	}
	out, err := api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{a.id.InstanceID}}}})
	if err != nil {
		return "", fmt.Errorf("describing the volumes of %s: %w", a.id.InstanceID, err)
	}
	want := xenSuffix(filepath.Base(dev))
	for _, v := range out.Volumes {
		for _, att := range v.Attachments {
			if aws.ToString(att.InstanceId) == a.id.InstanceID && want != "" && xenSuffix(filepath.Base(aws.ToString(att.Device))) == want {
				return aws.ToString(v.VolumeId), nil
			}
		}
	}
	return "", fmt.Errorf("no volume attached to %s matches device %s", a.id.InstanceID, dev)
}

// xenSuffix maps sdf, xvdf and xvdf1 to "f": the letters that the EC2 device name and the Xen
// kernel name share.
func xenSuffix(name string) string {
	for _, p := range []string{"xvd", "sd"} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			return strings.TrimRight(rest, "0123456789")
		}
	}
	return ""
}
