package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/agent"
	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/blockdev/blockdevtest"
	"github.com/spotmax/spotmax/pkg/consul/consultest"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/imds/imdstest"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// simInstance starts a simulated region with one running spot instance of a group whose
// tags are groupTags (propagated to the instance), and returns the instance.
func simInstance(t *testing.T, metadataTags bool, groupTags map[string]string) (*simtest.Env, sim.Instance) {
	t.Helper()
	env := simtest.Start(t, sim.Options{IMDS: true, LoopbackPrivateIPs: true, TimeScale: 20})
	r := env.Region()
	r.PutLaunchTemplate("lt", sim.LaunchTemplateData{ImageID: "ami-0123456789abcdef0", InstanceType: "m5.large", Spot: true,
		InstanceMetadataTag: metadataTags, HTTPTokensRequired: true,
		BlockDevices: []sim.BlockDevice{{DeviceName: "/dev/xvda", VolumeSize: 8}}})
	var tags []sim.ASGTag
	for k, v := range groupTags {
		tags = append(tags, sim.ASGTag{Key: k, Value: v, PropagateAtLaunch: true})
	}
	if err := r.CreateGroup(sim.GroupSpec{Name: "g", LaunchTemplate: sim.LaunchTemplateRef{Name: "lt"}, Min: 1, Max: 1, AZs: []string{"us-east-1a"}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	var in sim.Instance
	eventually(t, 20*time.Second, "the instance to run", func() bool {
		for _, i := range r.Instances() {
			if i.State == sim.StateRunning {
				in = i
				return true
			}
		}
		return false
	})
	return env, in
}

func setTag(t testing.TB, env *simtest.Env, id, key, value string) {
	t.Helper()
	_, err := ec2.NewFromConfig(env.Config).CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{id},
		Tags: []ec2types.Tag{{Key: aws.String(key), Value: aws.String(value)}}})
	if err != nil {
		t.Fatal(err)
	}
}

func baseConfig(env *simtest.Env, id string, t *testing.T) agent.Config {
	return agent.Config{AWS: &env.Config, IMDSEndpoint: env.Region().IMDSURL(id), SysBlockDir: "-", DevDir: "-",
		NoticeInterval: 50 * time.Millisecond, TagInterval: 100 * time.Millisecond, EC2TagInterval: 200 * time.Millisecond,
		DeviceInterval: 10 * time.Millisecond, StateDir: t.TempDir(), ConsulMode: "off", ByIDDir: t.TempDir()}
}

func TestNotAMemberExitsZero(t *testing.T) {
	for _, metadataTags := range []bool{true, false} {
		env, in := simInstance(t, metadataTags, map[string]string{"team": "search"})
		cfg := baseConfig(env, in.ID, t)
		lb := &logBuffer{}
		cfg.Log = newLogger(lb)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := agent.Run(ctx, cfg)
		cancel()
		if err != nil {
			t.Fatalf("Run on a non-member (metadata tags %v): %v", metadataTags, err)
		}
		logs := lb.String()
		if strings.Count(logs, "\n") != 1+boolInt(!metadataTags) || !strings.Contains(logs, "not a member of a spotmax group") || !strings.Contains(logs, in.ID) {
			t.Errorf("log of a non-member (metadata tags %v) = %q, want one clear line naming the instance", metadataTags, logs)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestMembershipFromEC2WhenIMDSHasNoTags(t *testing.T) {
	env, in := simInstance(t, false, map[string]string{groupconfig.TagGroup: "g"})
	cs := consultest.Start(t, consultest.Options{Bind: in.PrivateIP})
	cs.Register(t, "api-1", "api")
	cfg := baseConfig(env, in.ID, t)
	cfg.ConsulMode, cfg.ConsulAddr = "maintenance", cs.Addr
	lb := runAgent(t, "ec2tags", cfg)
	eventually(t, 10*time.Second, "the agent to start", func() bool { return strings.Contains(lb.String(), "spotmax-agent started") })
	if !strings.Contains(lb.String(), "tags=ec2") {
		t.Errorf("the agent did not fall back to EC2 for the tags:\n%s", lb.String())
	}
	// The retiring mark reaches it through EC2 DescribeTags too.
	setTag(t, env, in.ID, groupconfig.StateRetiring, "lifetime")
	eventually(t, 10*time.Second, "node maintenance", func() bool { return cs.Passing(t, "api") == 0 }, lb)
	if got := cs.Services(t); len(got) != 1 {
		t.Errorf("maintenance mode must keep the registration, have %v", got)
	}
}

func TestRebalanceRelayedActedOnOnlyWhenAsked(t *testing.T) {
	for _, handle := range []bool{false, true} {
		env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
		cs := consultest.Start(t, consultest.Options{Bind: in.PrivateIP})
		cs.Register(t, "web-1", "web")
		cfg := baseConfig(env, in.ID, t)
		cfg.ConsulMode, cfg.ConsulAddr, cfg.HandleRebalance = "deregister", cs.Addr, handle
		lb := runAgent(t, "rebalance", cfg)
		eventually(t, 10*time.Second, "the agent to start", func() bool { return strings.Contains(lb.String(), "spotmax-agent started") })
		if err := env.Region().Rebalance(in.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the rebalance recommendation to be relayed", func() bool {
			return relayedAction(env.Region(), in.ID) == groupconfig.RelayRebalance
		}, lb)
		time.Sleep(300 * time.Millisecond)
		if got := len(cs.Services(t)); (got == 0) != handle {
			t.Errorf("handle-rebalance=%v: %d services left, want deregistration only when asked", handle, got)
		}
		// A spot interruption afterwards is relayed over the recommendation.
		if err := env.Region().Interrupt(in.ID, ""); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the interruption to be relayed", func() bool {
			return relayedAction(env.Region(), in.ID) == "terminate"
		}, lb)
		eventually(t, 10*time.Second, "deregistration on the interruption", func() bool { return len(cs.Services(t)) == 0 }, lb)
	}
}

func TestVolumeAttachedAtBootIsMountedOverPlaceholder(t *testing.T) {
	blockdevtest.Require(t)
	env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
	data := blockdevtest.NewLoop(t, 16, true)
	sum := blockdevtest.WriteData(t, data.Dev, 64<<10)
	placeholder := blockdevtest.NewLoop(t, 16, true)
	path := filepath.Join(t.TempDir(), "data")
	blockdevtest.Mount(t, placeholder.Dev, path)
	t.Cleanup(func() { blockdevtest.UnmountPath(t, path) })
	cfg := baseConfig(env, in.ID, t)
	byID := &blockdevtest.ByIDDir{Dir: cfg.ByIDDir}
	const vol = "vol-0123456789abcdef0"
	byID.Attach(t, vol, data.Dev)
	setTag(t, env, in.ID, groupconfig.StateVolume, vol)
	setTag(t, env, in.ID, groupconfig.StateMountPath, path)
	lb := runAgent(t, "boot", cfg)
	eventually(t, 10*time.Second, "the volume to be mounted and reported", func() bool {
		src, _ := (&blockdev.Mounter{}).MountedAt(path)
		return src == data.Dev && tagOf(env.Region(), in.ID, groupconfig.StateVolumeMounted) == vol
	}, lb)
	if got := blockdevtest.Checksum(t, path); got != sum {
		t.Errorf("checksum after the mount = %s, want %s", got, sum)
	}
	if !strings.Contains(lb.String(), "replaced_placeholder="+placeholder.Dev) {
		t.Errorf("the placeholder swap was not logged:\n%s", lb.String())
	}
}

func TestVolumeAppearingLateAndWrongDeviceIgnored(t *testing.T) {
	blockdevtest.Require(t)
	env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
	data := blockdevtest.NewLoop(t, 16, true)
	other := blockdevtest.NewLoop(t, 16, true)
	path := filepath.Join(t.TempDir(), "data")
	t.Cleanup(func() { blockdevtest.UnmountPath(t, path) })
	cfg := baseConfig(env, in.ID, t)
	byID := &blockdevtest.ByIDDir{Dir: cfg.ByIDDir}
	const vol, otherVol = "vol-0aaaaaaaaaaaaaaa1", "vol-0bbbbbbbbbbbbbbb2"
	setTag(t, env, in.ID, groupconfig.StateVolume, vol)
	setTag(t, env, in.ID, groupconfig.StateMountPath, path)
	lb := runAgent(t, "late", cfg)
	eventually(t, 10*time.Second, "the agent to wait for the volume", func() bool {
		return strings.Contains(lb.String(), "waiting for the data volume to be attached")
	}, lb)
	byID.Attach(t, otherVol, other.Dev) // another volume: not ours
	time.Sleep(300 * time.Millisecond)
	if src, _ := (&blockdev.Mounter{}).MountedAt(path); src != "" {
		t.Fatalf("%s was mounted at %s, but it is volume %s, not %s", src, path, otherVol, vol)
	}
	appeared := time.Now()
	byID.Attach(t, vol, data.Dev)
	eventually(t, 10*time.Second, "the late volume to be mounted", func() bool {
		src, _ := (&blockdev.Mounter{}).MountedAt(path)
		return src == data.Dev
	}, lb)
	t.Logf("device appeared → mounted: %v", time.Since(appeared))
}

func TestNoticeStepsNotRepeatedAfterRestart(t *testing.T) {
	m := imdstest.Start(t, imdstest.Options{V2Only: true, SpotDelay: 0, RebalanceDelay: imdstest.Never,
		ASGTerminationDelay: imdstest.Never, Tags: map[string]string{groupconfig.TagGroup: "g"}})
	hookOut := filepath.Join(t.TempDir(), "hook.log")
	stateDir := t.TempDir()
	env := simtest.Start(t, sim.Options{})
	for i := range 2 {
		cfg := agent.Config{IMDSEndpoint: m.URL, AWS: &env.Config, ConsulMode: "off", StateDir: stateDir, ByIDDir: t.TempDir(),
			SysBlockDir: "-", DevDir: "-", NoticeInterval: 50 * time.Millisecond, PreStopHook: "echo ran >> " + hookOut}
		lb := &logBuffer{}
		cfg.Log = newLogger(lb)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- agent.Run(ctx, cfg) }()
		eventually(t, 10*time.Second, "the notice to be handled", func() bool {
			return strings.Contains(lb.String(), "step=pre-stop-hook")
		}, lb)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if i == 1 && !hasLine(lb.String(), `msg="notice step already done"`, "step=pre-stop-hook") {
			t.Errorf("restarted agent log:\n%s", lb.String())
		}
	}
	b, _ := os.ReadFile(hookOut)
	if string(b) != "ran\n" {
		t.Errorf("the pre-stop hook ran %d times across an agent restart, want once", strings.Count(string(b), "ran"))
	}
}

// hasLine reports whether one line of logs contains every part.
func hasLine(logs string, parts ...string) bool {
	for _, l := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

func TestReleaseWaitsForBusyVolumeOnRetiring(t *testing.T) {
	blockdevtest.Require(t)
	env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
	data := blockdevtest.NewLoop(t, 16, true)
	path := filepath.Join(t.TempDir(), "data")
	blockdevtest.Mount(t, data.Dev, path)
	cfg := baseConfig(env, in.ID, t)
	cfg.MountPath = path
	const vol = "vol-0cccccccccccccccc3"
	(&blockdevtest.ByIDDir{Dir: cfg.ByIDDir}).Attach(t, vol, data.Dev)
	f, err := os.Create(filepath.Join(path, "spool.log")) // a writer that has not stopped yet
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lb := runAgent(t, "retiring", cfg)
	eventually(t, 10*time.Second, "the agent to start", func() bool { return strings.Contains(lb.String(), "spotmax-agent started") })
	setTag(t, env, in.ID, groupconfig.StateRetiring, "lifetime")
	eventually(t, 10*time.Second, "the busy unmount to be retried", func() bool {
		return strings.Contains(lb.String(), "data volume busy, retrying the unmount")
	}, lb)
	if v := tagOf(env.Region(), in.ID, groupconfig.StateVolumeReleased); v != "" {
		t.Fatalf("volume marked released (%s) while still mounted and busy", v)
	}
	_ = f.Close()
	eventually(t, 10*time.Second, "the release once the writer is gone", func() bool {
		return tagOf(env.Region(), in.ID, groupconfig.StateVolumeReleased) == vol
	}, lb)
	if src, _ := (&blockdev.Mounter{}).MountedAt(path); src != "" {
		t.Errorf("%s still mounted at %s after the release", src, path)
	}
	if !hasLine(lb.String(), "notice received", "notice=retiring", "action=lifetime") {
		t.Errorf("the retiring mark was not logged as a notice:\n%s", lb.String())
	}
}
