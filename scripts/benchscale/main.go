// Command benchscale measures the controller's reconcile at fleet scale against a simulated
// region served by another process (scripts/bench-scale.sh drives it):
//
//	benchscale serve -groups 1000 -per 10            # a region of spotmax groups; prints the env
//	benchscale reconcile -mode full|incremental -n 5 # reconciles in this process, one line each
//	benchscale run -spotmax BIN -for 65s -interval 10s -- ARGS # a long-running `spotmax run`, sampled
//
// Each reconcile line reports the API calls by service (from the simulator's /_sim/calls), the
// process's CPU (user+sys, getrusage), RSS and wall time.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/controller"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchscale serve|reconcile|run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "reconcile":
		err = reconcile(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchscale:", err)
		os.Exit(1)
	}
}

// serve populates a region with groups × per running spot instances (data volume at /dev/sdf,
// already kept on termination so that the first reconcile changes nothing) and serves it.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	groups := fs.Int("groups", 1000, "spotmax groups")
	per := fs.Int("per", 10, "instances per group")
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback)")
	profile := fs.String("cpuprofile", "", "write a CPU profile of populating the region to this file")
	_ = fs.Parse(args)
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile() // on an error; stopped below once the fleet runs
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	lat := sim.FastLatencies()
	lat.Pending, lat.ASGCheck = time.Millisecond, time.Hour
	// The fleet has been running for an hour: the simulated clock starts an hour behind the real
	// one that the controller reads, so no instance is still settling (inventory.SettleWindow).
	srv, err := sim.Start(ctx, *addr, sim.Options{Latencies: &lat, Start: time.Now().Add(-time.Hour)})
	if err != nil {
		return err
	}
	defer srv.Close()
	r := srv.Region()
	lt := r.PutLaunchTemplate("bench", sim.LaunchTemplateData{ImageID: "ami-1", InstanceType: "m5.large", Spot: true,
		BlockDevices: []sim.BlockDevice{{DeviceName: "/dev/sdf", VolumeSize: 10, DeleteOnTermination: false}}})
	var azs []string
	for _, az := range r.AZs() {
		azs = append(azs, az.Name)
	}
	desired := int32(*per)
	for i := 0; i < *groups; i++ {
		name := fmt.Sprintf("g%05d", i)
		if err := r.CreateGroup(sim.GroupSpec{Name: name, LaunchTemplate: sim.LaunchTemplateRef{ID: lt}, Max: desired + 1, Desired: &desired, AZs: azs,
			Tags: []sim.ASGTag{{Key: groupconfig.TagGroup, Value: name, PropagateAtLaunch: true}, {Key: groupconfig.TagPersistenceDev, Value: "/dev/sdf"}}}); err != nil {
			return err
		}
	}
	for deadline := time.Now().Add(10 * time.Minute); ; {
		running := 0
		for _, in := range r.Instances() {
			if in.State == sim.StateRunning {
				running++
			}
		}
		if running == *groups**per {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d instances running", running, *groups**per)
		}
		time.Sleep(time.Second)
	}
	r.Advance(time.Minute) // past EC2's visibility windows
	if *profile != "" {
		pprof.StopCPUProfile()
	}
	fmt.Fprintf(os.Stderr, "benchscale: %d instances running after %s\n", *groups**per, time.Since(start).Round(time.Millisecond))
	fmt.Printf("export AWS_ENDPOINT_URL=%s AWS_REGION=%s AWS_ACCESS_KEY_ID=sim AWS_SECRET_ACCESS_KEY=sim\n", srv.URL(), r.Name())
	_ = os.Stdout.Sync()
	<-ctx.Done()
	return nil
}

// sample is one measured interval.
type sample struct {
	Mode      string         `json:"mode"`
	N         int            `json:"reconcile"`
	Calls     map[string]int `json:"calls"`
	CPU       float64        `json:"cpu_s"`
	Wall      float64        `json:"wall_s"`
	RSSMB     float64        `json:"rss_mb"`
	PeakRSSMB float64        `json:"peak_rss_mb"`
	Events    int            `json:"events"`
	HeapMB    float64        `json:"heap_inuse_mb"`
}

// reconcile runs n reconciles in this process against AWS_ENDPOINT_URL.
func reconcile(args []string) error {
	fs := flag.NewFlagSet("reconcile", flag.ExitOnError)
	mode := fs.String("mode", "incremental", "full (describe every instance each time, as before) or incremental")
	n := fs.Int("n", 5, "reconciles")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the reconciles after the first to this file")
	memprofile := fs.String("memprofile", "", "write a heap profile after the last reconcile to this file")
	_ = fs.Parse(args)
	endpoint, region := os.Getenv("AWS_ENDPOINT_URL"), os.Getenv("AWS_REGION")
	if endpoint == "" || region == "" {
		return fmt.Errorf("set AWS_ENDPOINT_URL and AWS_REGION (from benchscale serve)")
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 4096 // the default 512 kB sampling cannot tell 1 MB parts apart
	}
	cfg := simtest.Config(endpoint, region)
	ec2c, asg := ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg)
	lister := &inventory.Lister{ASG: asg, EC2: ec2c}
	tr := &inventory.Tracker{Lister: lister, FullAfter: 24 * time.Hour, FullEvery: 1 << 30}
	switch *mode {
	case "full":
		tr.FullEvery, tr.DecodeEveryPage = 1, true // what a reconcile did before the Tracker
	case "incremental":
	default:
		return fmt.Errorf("-mode %q: want full or incremental", *mode)
	}
	c := &controller.Controller{Lister: lister, Inventory: tr, Workflow: &replace.Workflow{EC2: ec2c, ASG: asg},
		Log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	for i := 1; i <= *n; i++ {
		if err := resetCalls(endpoint); err != nil {
			return err
		}
		if i == 2 && *profile != "" {
			f, err := os.Create(*profile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		cpu0, t0 := cpuSeconds(), time.Now()
		evs, err := c.Reconcile(ctx)
		if err != nil {
			return err
		}
		s := sample{Mode: *mode, N: i, CPU: cpuSeconds() - cpu0, Wall: time.Since(t0).Seconds(), Events: len(evs)}
		s.RSSMB, s.PeakRSSMB = rss(os.Getpid())
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.HeapMB = float64(ms.HeapInuse) / (1 << 20)
		if s.Calls, err = calls(endpoint); err != nil {
			return err
		}
		if err := json.NewEncoder(os.Stdout).Encode(s); err != nil {
			return err
		}
	}
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC()
		err = pprof.WriteHeapProfile(f)
		runtime.KeepAlive(c) // what the controller keeps between reconciles
		return err
	}
	return nil
}

// run starts `spotmax run ARGS`, waits for its first reconcile (a full listing) to end, and
// measures CPU and calls over the next -for, then RSS.
func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	bin := fs.String("spotmax", "spotmax", "spotmax binary")
	dur := fs.Duration("for", 65*time.Second, "how long to run it")
	label := fs.String("label", "run", "label of the output line")
	interval := fs.Duration("interval", 10*time.Second, "--interval of spotmax run")
	pages := fs.Int("pages", 10, "DescribeAutoScalingGroups pages per reconcile (groups/100), to count reconciles")
	_ = fs.Parse(args)
	endpoint := os.Getenv("AWS_ENDPOINT_URL")
	cmd := exec.Command(*bin, append([]string{"run", "--no-cloudwatch", "--interval", interval.String(), "--log-level", "warn"}, fs.Args()...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := resetCalls(endpoint); err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	// The first reconcile is a full listing (the cache is empty): measure from its end, which
	// is the reconcile's last call (DescribeVolumes of the orphan check).
	t0 := time.Now()
	for {
		cs, err := calls(endpoint)
		if err != nil {
			return err
		}
		if cs["ec2:DescribeVolumes"] > 0 {
			break
		}
		if time.Since(t0) > 10*time.Minute {
			return fmt.Errorf("no reconcile finished in 10 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	first := time.Since(t0)
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return err
	}
	rssFirst, _ := rss(cmd.Process.Pid)
	if err := resetCalls(endpoint); err != nil {
		return err
	}
	time.Sleep(*dur)
	cpu, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return err
	}
	cpu -= cpu0
	rssMB, peakMB := rss(cmd.Process.Pid)
	anonMB, fileMB := rssSplit(cmd.Process.Pid)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	cs, err := calls(endpoint)
	if err != nil {
		return err
	}
	reconciles := max(cs["autoscaling:DescribeAutoScalingGroups"] / *pages, 1)
	// The call rate against the request-token buckets (docs/benchmarks.md, "API budget"): EC2
	// refills each Describe* action's bucket separately, Auto Scaling throttles per account.
	rate := map[string]float64{}
	for _, a := range []string{"autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances", "ec2:DescribeVolumes"} {
		rate[a] = float64(cs[a]) / dur.Seconds()
	}
	out := map[string]any{"label": *label, "interval_s": interval.Seconds(), "first_reconcile_s": first.Seconds(), "first_cpu_s": cpu0, "rss_after_first_mb": rssFirst,
		"seconds": dur.Seconds(), "reconciles": reconciles, "cpu_s": cpu, "calls_per_s": rate,
		"cpu_s_per_reconcile": cpu / float64(reconciles), "rss_mb": rssMB, "peak_rss_mb": peakMB,
		"rss_anon_mb": anonMB, "rss_file_mb": fileMB, "calls": cs}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func resetCalls(endpoint string) error {
	resp, err := http.Post(endpoint+"/_sim/calls/reset", "", nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// calls returns the simulator's call counts by service ("ec2", "autoscaling") and in total.
func calls(endpoint string) (map[string]int, error) {
	resp, err := http.Get(endpoint + "/_sim/calls")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var cs []sim.CallCount
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
		return nil, fmt.Errorf("reading /_sim/calls: %w", err)
	}
	out := map[string]int{}
	for _, c := range cs {
		svc, _, _ := strings.Cut(c.Action, ":")
		out[svc] += c.Count
		out[c.Action] += c.Count
		out["total"] += c.Count
	}
	return out, nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procCPU reads a process's user+sys time from /proc/PID/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ
}

// statusMB returns fields of /proc/PID/status given in kB, in MB: VmRSS and VmHWM (the RSS
// and its peak), RssAnon (heap and stacks) and RssFile (the binary's and libraries' pages the
// process touched, which the kernel maps in fault-around blocks and may drop and read again).
func statusMB(pid int) map[string]float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64); err == nil {
			out[k] = kb / 1024
		}
	}
	return out
}

// rssSplit returns RssAnon and RssFile of a process in MB.
func rssSplit(pid int) (anon, file float64) {
	st := statusMB(pid)
	return st["RssAnon"], st["RssFile"]
}

// rss returns VmRSS and VmHWM of a process in MB.
func rss(pid int) (cur, peak float64) {
	st := statusMB(pid)
	return st["VmRSS"], st["VmHWM"]
}
