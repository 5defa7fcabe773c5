package agent_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/agent"
	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/blockdev/blockdevtest"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// TestEndToEndTwoDataVolumes: a group with data and log on two devices
// (spotmax:persistence_dev=/dev/sdf,/dev/sdg, mount paths data,log), on two real loop devices.
// On the interruption the old instance's agent unmounts both and lists both as released; the
// workflow moves each to its own device on the replacement, whose agent mounts each at its own
// path, with the data written on the old instance.
func TestEndToEndTwoDataVolumes(t *testing.T) {
	blockdevtest.Require(t)
	devs := []string{"/dev/sdf", "/dev/sdg"}
	loops := []*blockdevtest.Loop{blockdevtest.NewLoop(t, 32, true), blockdevtest.NewLoop(t, 32, true)}
	sums := []string{blockdevtest.WriteData(t, loops[0].Dev, 1<<20), blockdevtest.WriteData(t, loops[1].Dev, 1<<19)}
	base := t.TempDir()
	paths := []string{filepath.Join(base, "data"), filepath.Join(base, "log")}
	for _, p := range paths {
		t.Cleanup(func() { blockdevtest.UnmountPath(t, p) })
	}

	env := simtest.Start(t, sim.Options{IMDS: true, LoopbackPrivateIPs: true, TimeScale: 20})
	r := env.Region()
	ctx := context.Background()
	r.PutLaunchTemplate("db", sim.LaunchTemplateData{ImageID: "ami-0123456789abcdef0", InstanceType: "m5.large", Spot: true,
		InstanceMetadataTag: true, HTTPTokensRequired: true,
		BlockDevices: []sim.BlockDevice{{DeviceName: "/dev/xvda", VolumeSize: 8},
			{DeviceName: devs[0], VolumeSize: 10, VolumeType: "gp3", DeleteOnTermination: true},
			{DeviceName: devs[1], VolumeSize: 4, VolumeType: "gp3", DeleteOnTermination: true}}})
	tags := []sim.ASGTag{
		{Key: groupconfig.TagGroup, Value: "db", PropagateAtLaunch: true},
		{Key: groupconfig.TagPersistenceDev, Value: strings.Join(devs, ",")},
		{Key: groupconfig.TagPersistenceMountPath, Value: strings.Join(paths, ","), PropagateAtLaunch: true},
		{Key: groupconfig.TagDetachingDelaySeconds, Value: "1"},
	}
	if err := r.CreateGroup(sim.GroupSpec{Name: "db", LaunchTemplate: sim.LaunchTemplateRef{Name: "db"}, Min: 1, Max: 1, AZs: []string{"us-east-1a"}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	var old sim.Instance
	eventually(t, 20*time.Second, "the group's instance to run", func() bool {
		for _, in := range r.Instances() {
			if in.State == sim.StateRunning && in.Tags[groupconfig.TagGroup] == "db" {
				old = in
				return true
			}
		}
		return false
	})
	vols := make([]string, 2)
	for _, bd := range old.BlockDevices {
		for i, d := range devs {
			if bd.DeviceName == d {
				vols[i] = bd.VolumeID
			}
		}
	}
	if vols[0] == "" || vols[1] == "" {
		t.Fatalf("instance %s has volumes %v at %v", old.ID, vols, devs)
	}

	// Each volume's link follows its attachment, as udev would; both are mounted at boot.
	dirs := map[string]string{old.ID: t.TempDir()}
	var dirsMu sync.Mutex
	uctx, ucancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range vols {
		wg.Add(1)
		go func() { defer wg.Done(); udev(t, uctx, r, vols[i], loops[i].Dev, false, dirs, &dirsMu) }()
	}
	t.Cleanup(func() { ucancel(); wg.Wait() })
	for i := range vols {
		eventually(t, 5*time.Second, "the link of "+vols[i], func() bool {
			dev, _ := (&blockdev.Locator{ByIDDir: dirs[old.ID], SysBlockDir: "-"}).Find(vols[i])
			return dev == loops[i].Dev
		})
		blockdevtest.Mount(t, loops[i].Dev, paths[i])
	}

	cfgBase := agent.Config{AWS: &env.Config, SysBlockDir: "-", DevDir: "-", NoticeInterval: 50 * time.Millisecond,
		TagInterval: 100 * time.Millisecond, DeviceInterval: 10 * time.Millisecond, ConsulMode: "off"}
	cfgOld := cfgBase
	cfgOld.IMDSEndpoint = r.IMDSURL(old.ID)
	cfgOld.ByIDDir = dirs[old.ID]
	cfgOld.StateDir = t.TempDir()
	logOld := runAgent(t, "old", cfgOld)
	eventually(t, 10*time.Second, "the old agent to start", func() bool { return strings.Contains(logOld.String(), "spotmax-agent started") }, logOld)

	if err := r.Interrupt(old.ID, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both volumes released", func() bool {
		rel := tagOf(r, old.ID, groupconfig.StateVolumeReleased)
		return groupconfig.StateListHas(rel, vols[0]) && groupconfig.StateListHas(rel, vols[1])
	}, logOld)
	for _, p := range paths {
		if src, _ := (&blockdev.Mounter{}).MountedAt(p); src != "" {
			t.Fatalf("%s is still mounted at %s after the release", src, p)
		}
	}

	asg := autoscaling.NewFromConfig(env.Config)
	ec2c := ec2.NewFromConfig(env.Config)
	g, err := (&inventory.Lister{ASG: asg, EC2: ec2c}).Group(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	in, _ := r.Instance(old.ID)
	wf := &replace.Workflow{EC2: ec2c, ASG: asg, Clock: simClock{r.Clock()}, PollMin: 20 * time.Millisecond, PollMax: 200 * time.Millisecond}
	newID, finished := replaceInterrupted(ctx, t, r, wf, g, old.ID, in.Interruption.Time)
	dirsMu.Lock()
	dirs[newID] = t.TempDir()
	dirsMu.Unlock()
	cfgNew := cfgBase
	cfgNew.IMDSEndpoint = r.IMDSURL(newID)
	cfgNew.ByIDDir = dirs[newID]
	cfgNew.StateDir = t.TempDir()
	logNew := runAgent(t, "new", cfgNew)

	res := finished(logOld)
	if res.New != newID || strings.Join(res.Volumes, ",") != strings.Join(vols, ",") {
		t.Errorf("replacement result = %+v, want %s with volumes %v", res, newID, vols)
	}
	nin, _ := r.Instance(newID)
	if got, want := nin.Tags[groupconfig.StateVolume], strings.Join(vols, ","); got != want {
		t.Errorf("replacement's %s = %q, want %q", groupconfig.StateVolume, got, want)
	}
	for i := range vols {
		v, _ := r.Volume(vols[i])
		if v.Attachment == nil || v.Attachment.InstanceID != newID || v.Attachment.Device != devs[i] {
			t.Errorf("volume %s attachment %+v, want %s at %s", vols[i], v.Attachment, newID, devs[i])
		}
		eventually(t, 10*time.Second, "the replacement's agent to mount "+vols[i]+" at "+paths[i], func() bool {
			src, _ := (&blockdev.Mounter{}).MountedAt(paths[i])
			return src == loops[i].Dev && groupconfig.StateListHas(tagOf(r, newID, groupconfig.StateVolumeMounted), vols[i])
		}, logNew)
		if got := blockdevtest.Checksum(t, paths[i]); got != sums[i] {
			t.Errorf("%s on the replacement: checksum %s, want %s as written on the old instance", paths[i], got, sums[i])
		}
	}
}

// TestAgentMountsEachAssignedVolume: on real loop devices, the agent mounts each volume of its
// assignment at the path of the same position, never one its instance already released (listed
// in volume_released, as after a crash between two releases), mounts a volume added to the
// assignment later (the pool adopts per device), and on a notice releases each mounted one,
// keeping the entries already listed.
func TestAgentMountsEachAssignedVolume(t *testing.T) {
	blockdevtest.Require(t)
	env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
	r := env.Region()
	c := ec2.NewFromConfig(env.Config)
	cfg := baseConfig(env, in.ID, t)
	byID := &blockdevtest.ByIDDir{Dir: cfg.ByIDDir}
	base := t.TempDir()
	var vols, paths []string
	var loops []*blockdevtest.Loop
	for i, dev := range []string{"/dev/sdf", "/dev/sdg", "/dev/sdh"} {
		l := blockdevtest.NewLoop(t, 16, true)
		v := attachSimVolume(t, c, r, in, dev)
		byID.Attach(t, v, l.Dev)
		p := filepath.Join(base, "p"+string(rune('a'+i)))
		t.Cleanup(func() { blockdevtest.UnmountPath(t, p) })
		vols, paths, loops = append(vols, v), append(paths, p), append(loops, l)
	}
	setTag(t, env, in.ID, groupconfig.StateVolumeReleased, vols[0])
	setTag(t, env, in.ID, groupconfig.StateVolume, vols[0]+","+vols[1])
	setTag(t, env, in.ID, groupconfig.StateMountPath, paths[0]+","+paths[1])
	lb := runAgent(t, "multi", cfg)
	mounted := func(i int) bool {
		src, _ := (&blockdev.Mounter{}).MountedAt(paths[i])
		return src == loops[i].Dev
	}
	eventually(t, 10*time.Second, "the second volume mounted at its path", func() bool { return mounted(1) }, lb)
	time.Sleep(300 * time.Millisecond) // several tag and device polls
	if src, _ := (&blockdev.Mounter{}).MountedAt(paths[0]); src != "" {
		t.Errorf("the released volume %s was mounted again at %s (%s)", vols[0], paths[0], src)
	}
	// The pool adopts a third volume: the assignment grows.
	setTag(t, env, in.ID, groupconfig.StateMountPath, strings.Join(paths, ","))
	setTag(t, env, in.ID, groupconfig.StateVolume, strings.Join(vols, ","))
	eventually(t, 10*time.Second, "the adopted volume mounted at its path", func() bool { return mounted(2) }, lb)
	eventually(t, 5*time.Second, "both mounts reported", func() bool {
		m := tagOf(r, in.ID, groupconfig.StateVolumeMounted)
		return groupconfig.StateListHas(m, vols[1]) && groupconfig.StateListHas(m, vols[2])
	}, lb)
	if err := r.Interrupt(in.ID, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "every volume listed released", func() bool {
		rel := tagOf(r, in.ID, groupconfig.StateVolumeReleased)
		return groupconfig.StateListHas(rel, vols[0]) && groupconfig.StateListHas(rel, vols[1]) && groupconfig.StateListHas(rel, vols[2])
	}, lb)
	for i := 1; i < 3; i++ {
		if mounted(i) {
			t.Errorf("%s is still mounted after the release", paths[i])
		}
	}
}
