package agent_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/agent"
	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/blockdev/blockdevtest"
	"github.com/spotmax/spotmax/pkg/consul/consultest"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/internal/syncbuf"
	"github.com/spotmax/spotmax/pkg/internal/testwait"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
	consulstep "github.com/spotmax/spotmax/pkg/replace/steps/consul"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// logBuffer is a buffer safe for concurrent writers and the reading test.
type logBuffer = syncbuf.Buffer

// runAgent runs the agent until the test ends and returns its log.
func runAgent(t *testing.T, name string, cfg agent.Config) *logBuffer {
	t.Helper()
	return runAgentCtx(t, context.Background(), name, cfg)
}

// runAgentCtx is runAgent stopped when parent ends too.
func runAgentCtx(t *testing.T, parent context.Context, name string, cfg agent.Config) *logBuffer {
	t.Helper()
	lb := &logBuffer{}
	cfg.Log = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})).With("agent", name)
	ctx, cancel := context.WithCancel(parent)
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent %s: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("agent %s did not stop within 10s of its context ending", name)
		}
		if t.Failed() {
			t.Logf("log of agent %s:\n%s", name, lb.String())
		}
	})
	return lb
}

// replaceInterrupted runs wf's replacement of the interrupted instance old (notice deadline
// deadline) in the background and waits until the replacement is launched with its IMDS served. It
// returns the replacement's id and a wait for the workflow's result, which fails the test on an
// error or after 60 s (with the old instance's agent log).
func replaceInterrupted(ctx context.Context, t *testing.T, r *sim.Region, wf *replace.Workflow, g *inventory.Group, old string,
	deadline time.Time) (string, func(logOld *logBuffer) *replace.Result) {
	t.Helper()
	type outcome struct {
		res *replace.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := wf.Replace(ctx, g, replace.Request{InstanceID: old, Reason: replace.ReasonInterruption, Deadline: deadline})
		done <- outcome{res, err}
	}()
	var newID string
	eventually(t, 30*time.Second, "the replacement to be launched", func() bool {
		newID = tagOf(r, old, groupconfig.StateReplacement)
		return newID != "" && r.IMDSURL(newID) != ""
	})
	return newID, func(logOld *logBuffer) *replace.Result {
		t.Helper()
		var out outcome
		select {
		case out = <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("the replacement workflow did not finish within 60s; old agent:\n%s", logOld.String())
		}
		if out.err != nil {
			t.Fatalf("replacement: %v (result %+v)", out.err, out.res)
		}
		return out.res
	}
}

// eventually polls cond until it holds or the time is up (testwait.For), then shows the logs.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool, logs ...*logBuffer) {
	t.Helper()
	testwait.For(t, what, within, cond, func() {
		for _, lb := range logs {
			t.Logf("agent log:\n%s", lb.String())
		}
	})
}

// relayedAction is the action of the notice relayed on instance id ("" when none is).
func relayedAction(r *sim.Region, id string) string {
	n, err := groupconfig.ParseRelayedNotice(tagOf(r, id, groupconfig.StateNotice))
	if err != nil {
		return ""
	}
	return n.Action
}

func tagOf(r *sim.Region, id, key string) string {
	in, ok := r.Instance(id)
	if !ok {
		return ""
	}
	return in.Tags[key]
}

// simClock runs the workflow's delays on the simulated region's scaled clock.
type simClock struct{ c *sim.Clock }

func (s simClock) Now() time.Time { return s.c.Now() }
func (s simClock) Sleep(ctx context.Context, d time.Duration) error {
	return replace.RealClock{}.Sleep(ctx, s.c.Real(d))
}

// udev mirrors the simulated region's attachments of one volume into per-instance directories,
// pointing at the loop device that holds the volume's data: what the kernel and udev do on each
// instance when EBS attaches or detaches the volume. On Nitro (xen false) the directories are
// by-id directories and the link is named after the volume's serial; on Xen they are the
// instances' /dev, and the link has the Xen name of the attachment's device (/dev/sdf: xvdf),
// with nothing that names the volume.
func udev(t *testing.T, ctx context.Context, r *sim.Region, vol, dev string, xen bool, dirs map[string]string, mu *sync.Mutex) {
	linked := map[string]string{}
	for ctx.Err() == nil {
		v, _ := r.Volume(vol)
		holder, name := "", blockdevtest.LinkName(vol)
		if v.Attachment != nil && (v.Attachment.State == "attached" || v.Attachment.State == "detaching") {
			holder = v.Attachment.InstanceID
			if names := blockdev.AttachmentNames(v.Attachment.Device); xen && len(names) == 2 {
				name = names[1]
			}
		}
		mu.Lock()
		for id, d := range dirs {
			switch {
			case id == holder && linked[id] == "":
				if err := os.Symlink(dev, filepath.Join(d, name)); err != nil {
					t.Errorf("udev: linking %s for %s: %v", vol, id, err)
				}
				linked[id] = name
			case id != holder && linked[id] != "":
				if err := os.Remove(filepath.Join(d, linked[id])); err != nil {
					t.Errorf("udev: unlinking %s for %s: %v", vol, id, err)
				}
				linked[id] = ""
			}
		}
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEndToEndInterruptionMovesVolumeAndDeregisters(t *testing.T) { endToEnd(t, false) }

// On Xen instances no device carries the volume's id: both agents find it by EC2's attachment
// record (the workflow attaches it as /dev/sdf, the kernel shows xvdf), the old one at boot.
func TestEndToEndXenVolumeFoundByAttachmentRecord(t *testing.T) { endToEnd(t, true) }

func endToEnd(t *testing.T, xen bool) {
	blockdevtest.Require(t)
	data := blockdevtest.NewLoop(t, 32, true)
	sum := blockdevtest.WriteData(t, data.Dev, 1<<20)
	mountPath := filepath.Join(t.TempDir(), "data")
	t.Cleanup(func() { blockdevtest.UnmountPath(t, mountPath) })

	env := simtest.Start(t, sim.Options{IMDS: true, LoopbackPrivateIPs: true, TimeScale: 20})
	r := env.Region()
	ctx := context.Background()
	r.PutLaunchTemplate("web", sim.LaunchTemplateData{ImageID: "ami-0123456789abcdef0", InstanceType: "m5.large", Spot: true,
		InstanceMetadataTag: true, HTTPTokensRequired: true,
		BlockDevices: []sim.BlockDevice{{DeviceName: "/dev/xvda", VolumeSize: 8}, {DeviceName: "/dev/sdf", VolumeSize: 10, VolumeType: "gp3", DeleteOnTermination: true}}})
	tags := []sim.ASGTag{
		{Key: groupconfig.TagGroup, Value: "web", PropagateAtLaunch: true},
		{Key: groupconfig.TagPersistenceDev, Value: "/dev/sdf"},
		{Key: groupconfig.TagPersistenceMountPath, Value: mountPath, PropagateAtLaunch: true},
		{Key: groupconfig.TagSDDelayDetachSecs, Value: "2"},
		{Key: groupconfig.TagDetachingDelaySeconds, Value: "2"},
	}
	if err := r.CreateGroup(sim.GroupSpec{Name: "web", LaunchTemplate: sim.LaunchTemplateRef{Name: "web"}, Min: 1, Max: 1, AZs: []string{"us-east-1a"}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	var old sim.Instance
	eventually(t, 20*time.Second, "the group's instance to run", func() bool {
		for _, in := range r.Instances() {
			if in.State == sim.StateRunning && in.Tags[groupconfig.TagGroup] == "web" {
				old = in
				return true
			}
		}
		return false
	})
	var vol string
	for _, bd := range old.BlockDevices {
		if bd.DeviceName == "/dev/sdf" {
			vol = bd.VolumeID
		}
	}
	if vol == "" || !strings.HasPrefix(old.PrivateIP, "127.") {
		t.Fatalf("instance %s: data volume %q, private IP %q; want a volume at /dev/sdf and a loopback IP", old.ID, vol, old.PrivateIP)
	}

	// The old instance's Consul agent, on its private IP, with the application's service.
	cs := consultest.Start(t, consultest.Options{Bind: old.PrivateIP})
	cs.Register(t, "web-1", "web")
	asg := autoscaling.NewFromConfig(env.Config)
	if _, err := asg.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{{
		ResourceId: aws.String("web"), ResourceType: aws.String("auto-scaling-group"),
		Key: aws.String(groupconfig.TagConsulPort), Value: aws.String(strconv.Itoa(cs.Port)), PropagateAtLaunch: aws.Bool(false)}}}); err != nil {
		t.Fatal(err)
	}

	// The data volume is attached to the old instance and mounted at boot: by the user data on
	// Nitro, by the agent itself on Xen (through the attachment record of the launch).
	dirs := map[string]string{old.ID: t.TempDir()}
	var dirsMu sync.Mutex
	uctx, ucancel := context.WithCancel(ctx)
	udevDone := make(chan struct{})
	go func() { defer close(udevDone); udev(t, uctx, r, vol, data.Dev, xen, dirs, &dirsMu) }()
	t.Cleanup(func() { ucancel(); <-udevDone })
	deviceDirs := func(cfg *agent.Config, id string) {
		cfg.ByIDDir, cfg.DevDir = dirs[id], "-"
		if xen {
			cfg.ByIDDir, cfg.DevDir = t.TempDir(), dirs[id]
		}
	}
	if !xen {
		eventually(t, 5*time.Second, "the data volume's link on the old instance", func() bool {
			dev, _ := (&blockdev.Locator{ByIDDir: dirs[old.ID], SysBlockDir: "-"}).Find(vol)
			return dev == data.Dev
		})
		blockdevtest.Mount(t, data.Dev, mountPath)
	} else {
		setTag(t, env, old.ID, groupconfig.StateVolume, vol)
	}

	hookOut := filepath.Join(t.TempDir(), "hooks.log")
	base := agent.Config{AWS: &env.Config, SysBlockDir: "-", NoticeInterval: 50 * time.Millisecond,
		TagInterval: 100 * time.Millisecond, DeviceInterval: 10 * time.Millisecond}
	cfgOld := base
	cfgOld.IMDSEndpoint = r.IMDSURL(old.ID)
	cfgOld.ConsulAddr = cs.Addr
	deviceDirs(&cfgOld, old.ID)
	cfgOld.StateDir = t.TempDir()
	cfgOld.PreStopHook = `echo "pre-stop $SPOTMAX_NOTICE_KIND $SPOTMAX_GROUP" >> ` + hookOut
	cfgOld.StopWritersHook = `echo "stop-writers $SPOTMAX_VOLUME_ID $SPOTMAX_MOUNT_PATH" >> ` + hookOut
	logOld := runAgent(t, "old", cfgOld)
	eventually(t, 10*time.Second, "the old instance's agent to start", func() bool { return strings.Contains(logOld.String(), "spotmax-agent started") }, logOld)
	if xen {
		eventually(t, 10*time.Second, "the old instance's agent to mount the volume by its attachment record", func() bool {
			src, _ := (&blockdev.Mounter{}).MountedAt(mountPath)
			return src == data.Dev && hasLine(logOld.String(), "device identified by EC2's attachment record", "attachment_device=/dev/sdf")
		}, logOld)
	}

	// The spot interruption notice.
	noticeAt := time.Now()
	if err := r.Interrupt(old.ID, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the services to leave Consul", func() bool { return len(cs.Services(t)) == 0 }, logOld)
	t.Logf("notice → services deregistered: %v", time.Since(noticeAt))
	eventually(t, 10*time.Second, "the volume to be released", func() bool { return tagOf(r, old.ID, groupconfig.StateVolumeReleased) == vol }, logOld)
	if src, _ := (&blockdev.Mounter{}).MountedAt(mountPath); src != "" {
		t.Fatalf("%s is still mounted at %s after the release", src, mountPath)
	}
	if a := relayedAction(r, old.ID); a != "terminate" {
		t.Errorf("relayed notice %s=%q, want terminate@<time>", groupconfig.StateNotice, tagOf(r, old.ID, groupconfig.StateNotice))
	}
	hooks, _ := os.ReadFile(hookOut)
	wantHooks := "pre-stop spot-interruption web\nstop-writers " + vol + " " + mountPath + "\n"
	if string(hooks) != wantHooks {
		t.Errorf("hooks ran:\n%s\nwant:\n%s", hooks, wantHooks)
	}

	// The replacement workflow moves the volume; the agent on the replacement mounts it.
	ec2c := ec2.NewFromConfig(env.Config)
	lister := &inventory.Lister{ASG: asg, EC2: ec2c}
	g, err := lister.Group(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	in, _ := r.Instance(old.ID)
	wf := &replace.Workflow{EC2: ec2c, ASG: asg, Steps: []replace.PreDetach{{Step: &consulstep.Step{Timeout: 2 * time.Second}}},
		Clock: simClock{r.Clock()}, PollMin: 20 * time.Millisecond, PollMax: 200 * time.Millisecond}
	newID, finished := replaceInterrupted(ctx, t, r, wf, g, old.ID, in.Interruption.Time)
	dirsMu.Lock()
	dirs[newID] = t.TempDir()
	dirsMu.Unlock()
	cfgNew := base
	cfgNew.IMDSEndpoint = r.IMDSURL(newID)
	cfgNew.ConsulMode = "off"
	deviceDirs(&cfgNew, newID)
	cfgNew.StateDir = t.TempDir()
	logNew := runAgent(t, "new", cfgNew)

	res := finished(logOld)
	if res.New != newID || !slices.Equal(res.Volumes, []string{vol}) {
		t.Errorf("replacement result = %+v, want %s with volume %s", res, newID, vol)
	}
	eventually(t, 10*time.Second, "the replacement's agent to mount the volume", func() bool {
		src, _ := (&blockdev.Mounter{}).MountedAt(mountPath)
		return src == data.Dev && tagOf(r, newID, groupconfig.StateVolumeMounted) == vol
	}, logNew)
	if got := blockdevtest.Checksum(t, mountPath); got != sum {
		t.Errorf("data on the replacement: checksum %s, want %s as written on the old instance", got, sum)
	}
	if !strings.Contains(logNew.String(), "event=volume-mounted") {
		t.Errorf("the mount was not logged as an event:\n%s", logNew.String())
	}
	if identified := hasLine(logNew.String(), "device identified by EC2's attachment record"); identified != xen {
		t.Errorf("xen %v: the replacement's device identified by the attachment record: %v, want %v", xen, identified, xen)
	}
	for _, w := range res.Warnings {
		t.Logf("workflow warning: %s", w)
	}
}

func newLogger(lb *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
