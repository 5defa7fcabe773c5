package agent_test

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/agent"
	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/blockdev/blockdevtest"
	"github.com/spotmax/spotmax/pkg/consul/consultest"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/imds"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// Latency benchmarks: run with a fixed count, e.g.
//
//	go test ./pkg/agent -run '^$' -bench 'NoticeToDeregistered|Remount' -benchtime 20x
//
// Each iteration is one real event; the percentiles are reported as custom metrics.

func reportLatencies(b *testing.B, ds []time.Duration) {
	b.Helper()
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	pct := func(p float64) float64 {
		i := int(float64(len(ds)-1) * p)
		return float64(ds[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(float64(ds[len(ds)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkNoticeToDeregistered: a spot interruption notice becomes visible in the instance's
// IMDS (the simulated region's, IMDSv2 over HTTP) → the services are gone from the real Consul
// agent. nth-like-2s polls like aws-node-termination-handler (every 2 s): the baseline.
func BenchmarkNoticeToDeregistered(b *testing.B) {
	for _, c := range []struct {
		name  string
		every time.Duration
	}{{"agent-180ms", imds.DefaultNoticeInterval}, {"agent-350ms-before", 350 * time.Millisecond}, {"nth-like-2s", 2 * time.Second}} {
		b.Run(c.name, func(b *testing.B) {
			env := simtest.Start(b, sim.Options{IMDS: true, TimeScale: 20})
			r := env.Region()
			r.PutLaunchTemplate("lt", sim.LaunchTemplateData{ImageID: "ami-0123456789abcdef0", InstanceType: "m5.large", Spot: true,
				InstanceMetadataTag: true, HTTPTokensRequired: true})
			n := int32(b.N)
			if err := r.CreateGroup(sim.GroupSpec{Name: "g", LaunchTemplate: sim.LaunchTemplateRef{Name: "lt"}, Min: n, Max: n,
				AZs: []string{"us-east-1a"}, Tags: []sim.ASGTag{{Key: groupconfig.TagGroup, Value: "g", PropagateAtLaunch: true}}}); err != nil {
				b.Fatal(err)
			}
			var ids []string
			deadline := time.Now().Add(60 * time.Second)
			for len(ids) < b.N && time.Now().Before(deadline) {
				ids = ids[:0]
				for _, in := range r.Instances() {
					if in.State == sim.StateRunning {
						ids = append(ids, in.ID)
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			if len(ids) < b.N {
				b.Fatalf("%d of %d instances running", len(ids), b.N)
			}
			cs := consultest.Start(b, consultest.Options{})
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cs.Register(b, "svc", "svc")
				lb := &logBuffer{}
				cfg := agent.Config{AWS: &env.Config, IMDSEndpoint: r.IMDSURL(ids[i]), ConsulAddr: cs.Addr, NoticeInterval: c.every,
					StateDir: b.TempDir(), ByIDDir: b.TempDir(), SysBlockDir: "-", DevDir: "-", Log: newLogger(lb)}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { defer close(done); _ = agent.Run(ctx, cfg) }()
				for !strings.Contains(lb.String(), "spotmax-agent started") {
					time.Sleep(time.Millisecond)
				}
				// Notices come at any moment of the agent's poll cycle.
				time.Sleep(time.Duration(rand.Int64N(int64(c.every))))
				t0 := time.Now()
				if err := r.Interrupt(ids[i], ""); err != nil {
					b.Fatal(err)
				}
				for len(cs.Services(b)) > 0 {
					time.Sleep(time.Millisecond)
				}
				lat = append(lat, time.Since(t0))
				cancel()
				<-done
			}
			b.StopTimer()
			reportLatencies(b, lat)
		})
	}
}

// BenchmarkRemount: the retained volume's block device appears (loop device attached; for the
// agent also its by-id link, as udev makes it) → it is mounted at the mount path over a
// placeholder. seed-loop is the original product's script (lsblk every 3 s), the baseline, on
// the same kind of loop devices.
func BenchmarkRemount(b *testing.B) {
	blockdevtest.Require(b)
	b.Run("agent", func(b *testing.B) {
		env := simtest.Start(b, sim.Options{IMDS: true, TimeScale: 20})
		r := env.Region()
		r.PutLaunchTemplate("lt", sim.LaunchTemplateData{ImageID: "ami-0123456789abcdef0", InstanceType: "m5.large", InstanceMetadataTag: true})
		if err := r.CreateGroup(sim.GroupSpec{Name: "g", LaunchTemplate: sim.LaunchTemplateRef{Name: "lt"}, Min: 1, Max: 1,
			AZs: []string{"us-east-1a"}, Tags: []sim.ASGTag{{Key: groupconfig.TagGroup, Value: "g", PropagateAtLaunch: true}}}); err != nil {
			b.Fatal(err)
		}
		var id string
		for id == "" {
			for _, in := range r.Instances() {
				if in.State == sim.StateRunning {
					id = in.ID
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		var lat []time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			path, img, cleanup := remountSetup(b)
			vol := "vol-0" + strings.Repeat("0", 15) + string(rune('a'+i%6))
			setTag(b, env, id, groupconfig.StateVolume, vol)
			setTag(b, env, id, groupconfig.StateMountPath, path)
			byID := blockdevtest.NewByIDDir(b)
			lb := &logBuffer{}
			cfg := agent.Config{AWS: &env.Config, IMDSEndpoint: r.IMDSURL(id), ConsulMode: "off", StateDir: b.TempDir(),
				ByIDDir: byID.Dir, SysBlockDir: "-", DevDir: "-", Log: newLogger(lb)}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = agent.Run(ctx, cfg) }()
			for !strings.Contains(lb.String(), "waiting for the data volume") {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
			b.StartTimer()
			t0 := time.Now()
			dev := attachImage(b, img)
			byID.Attach(b, vol, dev)
			waitMounted(b, dev, path)
			lat = append(lat, time.Since(t0))
			b.StopTimer()
			cancel()
			<-done
			blockdevtest.UnmountPath(b, path)
			blockdevtest.Detach(b, dev)
			cleanup()
		}
		reportLatencies(b, lat)
	})
	b.Run("seed-loop", func(b *testing.B) {
		_, file, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "bench-seed-remount.sh")
		var lat []time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			path, img, cleanup := remountSetup(b)
			cmd := exec.Command("bash", script, path)
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(200*time.Millisecond + time.Duration(rand.Int64N(int64(3*time.Second))))
			b.StartTimer()
			t0 := time.Now()
			dev := attachImage(b, img)
			waitMounted(b, dev, path)
			lat = append(lat, time.Since(t0))
			b.StopTimer()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			blockdevtest.UnmountPath(b, path)
			blockdevtest.Detach(b, dev)
			cleanup()
		}
		reportLatencies(b, lat)
	})
}

// remountSetup mounts a placeholder loop device at a fresh path and makes an ext4 image that is
// not attached yet. cleanup unmounts and detaches everything of the iteration at once: loop
// devices left attached would be "new disks" to the seed loop's lsblk grep in the next one.
func remountSetup(b *testing.B) (path, img string, cleanup func()) {
	dir := b.TempDir()
	path = filepath.Join(dir, "data")
	pimg := filepath.Join(dir, "placeholder.img")
	img = filepath.Join(dir, "data.img")
	for _, f := range []string{pimg, img} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Truncate(f, 16<<20); err != nil {
			b.Fatal(err)
		}
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", f).CombinedOutput(); err != nil {
			b.Fatalf("mkfs.ext4: %v: %s", err, out)
		}
	}
	var devs []string
	cleanup = func() {
		blockdevtest.UnmountPath(b, path)
		for _, d := range devs {
			blockdevtest.Detach(b, d)
		}
		devs = nil
	}
	b.Cleanup(cleanup)
	pdev := attachImage(b, pimg)
	devs = append(devs, pdev)
	if err := os.MkdirAll(path, 0o755); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("mount", pdev, path).CombinedOutput(); err != nil {
		b.Fatalf("mounting the placeholder: %v: %s", err, out)
	}
	return path, img, cleanup
}

// attachImage attaches img to a loop device; the caller detaches it.
func attachImage(b *testing.B, img string) string {
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		b.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	// Also on a failed iteration; detaching twice only fails quietly.
	b.Cleanup(func() {
		blockdevtest.UnmountDevice(b, dev)
		_ = exec.Command("losetup", "-d", dev).Run()
	})
	return dev
}

func waitMounted(b *testing.B, dev, path string) {
	m := &blockdev.Mounter{}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if src, _ := m.MountedAt(path); src == dev {
			return
		}
		time.Sleep(time.Millisecond)
	}
	b.Fatalf("%s not mounted at %s within 30s", dev, path)
}
