package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
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

// remountLoop waits for the data volumes that the replacement workflow or the pool assigns to
// this instance (groupconfig.StateVolume, with groupconfig.StateMountPath: one entry per volume)
// and mounts each at its own path, at once if it is already attached. It keeps watching the
// assignment, which grows when the pool adopts a volume for another data device, until the
// instance is leaving or the agent stops. A volume the agent released (its StateVolumeReleased
// names it, also from before a restart) is never mounted again.
func (a *agent) remountLoop(ctx context.Context) {
	watch := watchDevices(ctx, a.cfg.ByIDDir, a.cfg.DevDir)
	devPoll := a.cfg.DeviceInterval
	if watch != nil {
		devPoll = max(devPoll, time.Second) // inotify wakes us; polling is only a safety net
	}
	waits := map[string]*mountWait{}
	mounted := map[string]bool{}
	errs := &mountWait{}
	var assigned []assignedVolume
	// With the tags in IMDS, the assignment is read each time the watcher lists the tags (for
	// the retiring mark), from that listing, and this loop has no timer of its own unless a
	// volume is awaited: an idle agent wakes on the watcher's tick only (a Go timer, even one
	// stopped before it fires, wakes the process; docs/benchmarks.md, issue 16).
	var fresh <-chan struct{}
	it, _ := a.tags.(*imdsTags)
	if it != nil {
		fresh = it.refreshed()
	}
	nextTags := time.Now()
	woke, listed := false, false
	for {
		now := time.Now()
		pending := false
		for _, av := range assigned {
			if !mounted[av.vol] {
				pending = true
			}
		}
		if listed || !now.Before(nextTags) || (woke && (pending || len(assigned) == 0) && it != nil) {
			if it != nil && woke {
				it.invalidate() // a device appeared: the assignment may have come with it
			}
			v, err := a.assignment(ctx)
			if err != nil {
				errs.report(a, "reading the volume assignment failed", err)
			} else {
				assigned = v
			}
			nextTags = time.Now().Add(a.tags.Every())
			select {
			case <-fresh: // this read's own listing, if it made one
			default:
			}
		}
		pending = false
		for _, av := range assigned {
			if mounted[av.vol] || av.path == "" {
				continue
			}
			w := waits[av.vol]
			if w == nil {
				w = &mountWait{}
				waits[av.vol] = w
			}
			if a.tryMount(ctx, av.vol, av.path, w) {
				mounted[av.vol] = true
			} else {
				pending = true
			}
		}
		if a.isLeaving() {
			return
		}
		var timeout <-chan time.Time
		var timer *time.Timer
		if fresh == nil || pending {
			wait := time.Until(nextTags)
			if fresh != nil || pending && devPoll < wait {
				wait = devPoll
			}
			timer = time.NewTimer(max(wait, time.Millisecond))
			timeout = timer.C
		}
		woke, listed = false, false
		select {
		case <-ctx.Done():
		case <-watch.C():
			woke = true
		case <-fresh:
			listed = true
		case <-timeout:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (a *agent) isLeaving() bool {
	a.volMu.Lock()
	defer a.volMu.Unlock()
	return a.leaving
}

// assignedVolume is one data volume assigned to this instance and where to mount it.
type assignedVolume struct {
	vol, path string
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

// assignment reads the volumes assigned to this instance and where to mount each: the entry of
// StateMountPath at the volume's position, else (when the workflow wrote no paths) the group's
// propagated spotmax:persistence_mount_path entry at that position. --mount-path overrides the
// path of a single assigned volume; with several it cannot say which, and is not used. Volumes
// already released by this instance's agent are left out.
func (a *agent) assignment(ctx context.Context) ([]assignedVolume, error) {
	v, ok, err := a.tags.Tag(ctx, groupconfig.StateVolume)
	if err != nil || !ok {
		return nil, err
	}
	vols := groupconfig.SplitStateList(v)
	for _, vol := range vols {
		if !blockdev.ValidVolumeID(vol) {
			return nil, fmt.Errorf("tag %s=%q on %s: %q is not an EBS volume id", groupconfig.StateVolume, v, a.id.InstanceID, vol)
		}
	}
	var paths []string
	if p, ok, err := a.tags.Tag(ctx, groupconfig.StateMountPath); err != nil {
		return nil, err
	} else if ok {
		paths = groupconfig.SplitStateList(p)
	}
	if len(paths) != len(vols) {
		paths = groupconfig.SplitStateList(a.groupMountPath(ctx))
	}
	released, _, err := a.tags.Tag(ctx, groupconfig.StateVolumeReleased)
	if err != nil {
		return nil, err
	}
	var out []assignedVolume
	for i, vol := range vols {
		path := ""
		if i < len(paths) && len(paths) == len(vols) {
			path = paths[i]
		}
		if a.cfg.MountPath != "" && len(vols) == 1 {
			path = a.cfg.MountPath
		}
		if path != "" && !filepath.IsAbs(path) {
			return nil, fmt.Errorf("mount path %q for volume %s on %s is not absolute", path, vol, a.id.InstanceID)
		}
		if groupconfig.StateListHas(released, vol) {
			continue
		}
		out = append(out, assignedVolume{vol: vol, path: path})
	}
	return out, nil
}

// groupMountPath is the group's spotmax:persistence_mount_path, propagated to the instance (a
// comma list for several data devices).
func (a *agent) groupMountPath(ctx context.Context) string {
	p, ok, err := a.tags.Tag(ctx, groupconfig.TagPersistenceMountPath)
	if err != nil || !ok {
		return ""
	}
	return p
}

// mountPathsForRelease are where data volumes are mounted as far as this run knows: --mount-path,
// what this run mounted, the assignment's paths and the group's, without duplicates.
func (a *agent) mountPathsForRelease(ctx context.Context) []string {
	var out []string
	add := func(ps ...string) {
		for _, p := range ps {
			if p != "" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	add(a.cfg.MountPath)
	for _, p := range slices.Sorted(maps.Keys(a.mounted)) {
		add(p)
	}
	if p, ok, err := a.tags.Tag(ctx, groupconfig.StateMountPath); err == nil && ok {
		add(groupconfig.SplitStateList(p)...)
	}
	add(groupconfig.SplitStateList(a.groupMountPath(ctx))...)
	return out
}

// mountPathForRelease is mountPathsForRelease for hooks: one path, or several joined by commas.
func (a *agent) mountPathForRelease() string {
	a.volMu.Lock()
	defer a.volMu.Unlock()
	if a.cfg.MountPath != "" {
		return a.cfg.MountPath
	}
	return groupconfig.JoinStateList(slices.Sorted(maps.Keys(a.mounted)))
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
	if a.mounted == nil {
		a.mounted = map[string]string{}
	}
	a.mounted[path] = vol
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
	if err := a.addToTagList(ctx, groupconfig.StateVolumeMounted, vol); err != nil {
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

// release unmounts every data volume cleanly and marks each released (groupconfig
// StateVolumeReleased, one entry per volume, written right after its unmount) so that the
// replacement workflow may detach it. The list grows volume by volume: a crash between two
// unmounts leaves the first listed (it is unmounted for good, and a restarted agent never mounts
// a listed volume again) and the second unlisted, which the next notice or the instance's
// termination releases — the workflow moves each volume as soon as it is listed, and never one
// that is not. From then on the agent does not mount a volume again. A volume that cannot be
// released does not keep the others from being released; the errors are returned together.
func (a *agent) release(ctx context.Context, n imds.Notice, log *slog.Logger) error {
	a.volMu.Lock()
	defer a.volMu.Unlock()
	a.leaving = true
	paths := a.mountPathsForRelease(ctx)
	if len(paths) == 0 {
		log.Info("no data volume to release: the group has no mount path")
		return nil
	}
	var errs []error
	for _, path := range paths {
		if err := a.releaseOne(ctx, n, path, log); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// releaseOne unmounts the data volume mounted at path, if any, and adds it to the released list.
func (a *agent) releaseOne(ctx context.Context, n imds.Notice, path string, log *slog.Logger) error {
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
	delete(a.mounted, path)
	if vol == "" {
		return fmt.Errorf("data volume at %s unmounted, but its EBS volume id is unknown: not marked released (the workflow waits for the instance to stop)", path)
	}
	if err := a.addToTagList(ctx, groupconfig.StateVolumeReleased, vol); err != nil {
		return fmt.Errorf("data volume %s unmounted, marking it released: %w", vol, err)
	}
	log.Info("data volume released", "event", "volume-released", "volume", vol, "device", src, "mount_path", path)
	return nil
}

// addToTagList adds item to the list-valued progress tag key on this instance (read fresh, so
// that entries written before a restart are kept); nothing is written when it is there already.
// Only the agent writes these keys on its instance, one write at a time (volMu).
func (a *agent) addToTagList(ctx context.Context, key, item string) error {
	cur, _, err := a.tags.Tag(ctx, key)
	if err != nil {
		return err
	}
	// The tags read may be a cached copy (IMDS tags are read every TagInterval): what this run
	// wrote itself is added to it, so a write never drops an entry of the one before.
	items := groupconfig.SplitStateList(cur)
	for _, w := range a.listed[key] {
		if !slices.Contains(items, w) {
			items = append(items, w)
		}
	}
	if slices.Contains(items, item) && len(items) == len(groupconfig.SplitStateList(cur)) {
		return nil
	}
	if !slices.Contains(items, item) {
		items = append(items, item)
	}
	if err := a.setTags(ctx, map[string]string{key: groupconfig.JoinStateList(items)}); err != nil {
		return err
	}
	if a.listed == nil {
		a.listed = map[string][]string{}
	}
	a.listed[key] = items
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
	if v := a.mounted[path]; v != "" {
		return v, nil
	}
	if v, ok, err := a.tags.Tag(ctx, groupconfig.StateVolumeMounted); err == nil && ok && blockdev.ValidVolumeID(v) {
		return v, nil // one volume mounted: it is the one (with several, the ids say which is where)
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
