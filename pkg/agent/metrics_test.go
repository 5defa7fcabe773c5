package agent_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/agent"
	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/blockdev/blockdevtest"
	"github.com/spotmax/spotmax/pkg/consul/consultest"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/imds/imdstest"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// promSeries is the Prometheus series of an event's count for a group, as /metrics shows it.
func promSeries(n metrics.Name, group string) string {
	return metrics.PromNamespace + "_" + metrics.PromName(string(n)) + `_total{group="` + group + `"}`
}

// promDurationCount is the sample count series of a timed event's histogram for a group.
func promDurationCount(n metrics.Name, group string) string {
	return metrics.PromNamespace + "_" + metrics.PromName(string(n)) + `_duration_seconds_count{group="` + group + `"}`
}

var servingAddr = regexp.MustCompile(`msg="serving Prometheus metrics".* addr=(\S+)`)

// metricsURL waits for the agent to log where it serves /metrics.
func metricsURL(t *testing.T, lb *logBuffer) string {
	t.Helper()
	var addr string
	eventually(t, 10*time.Second, "the agent to serve Prometheus metrics", func() bool {
		m := servingAddr.FindStringSubmatch(lb.String())
		if m != nil {
			addr = m[1]
		}
		return addr != ""
	}, lb)
	return "http://" + addr + "/metrics"
}

// scrape GETs /metrics and returns its series as series → value text.
func scrape(t *testing.T, url string) map[string]string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s %v: %s", url, resp.Status, err, b)
	}
	series := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			series[l[:i]] = l[i+1:]
		}
	}
	return series
}

// cwEvents sums the CloudWatch datapoints (SampleCount) of one metric in the SpotMax namespace
// for a group ("" for the region-wide total).
func cwEvents(r *sim.Region, metric, group string) float64 {
	n := 0.0
	for _, d := range r.MetricData(metrics.Namespace) {
		if d.MetricName != metric {
			continue
		}
		if g := d.Dimensions[metrics.DimensionGroup]; g == group && (group != "" || len(d.Dimensions) == 0) {
			n += d.SampleCount
		}
	}
	return n
}

// startAgent runs the agent until stop is called or the test ends. stop returns Run's error,
// or an error when the agent does not stop within 20 s of its context ending.
func startAgent(t *testing.T, cfg agent.Config) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, cfg) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				err = errors.New("the agent did not stop within 20s of its context ending")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return stop
}

func TestPrometheusEndpointShowsNotices(t *testing.T) {
	env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
	cs := consultest.Start(t, consultest.Options{Bind: in.PrivateIP})
	cs.Register(t, "web-1", "web")
	cfg := baseConfig(env, in.ID, t)
	cfg.ConsulMode, cfg.ConsulAddr = "deregister", cs.Addr
	cfg.MetricsAddr = "127.0.0.1:0"
	lb := runAgent(t, "prometheus", cfg)
	url := metricsURL(t, lb)
	interrupted := promSeries(metrics.InterruptionReceived, "g")
	rebalanced := promSeries(metrics.RebalanceReceived, "g")
	deregistered := promSeries(metrics.ConsulDeregistered, "g")

	before := scrape(t, url)
	for _, s := range []string{interrupted, rebalanced, deregistered} {
		if v, ok := before[s]; ok {
			t.Errorf("before any notice /metrics has %s %s", s, v)
		}
	}
	if _, ok := before["process_resident_memory_bytes"]; !ok {
		t.Errorf("/metrics lacks the process collector's process_resident_memory_bytes (the agent's footprint)")
	}

	// A rebalance recommendation (relayed, not acted on), then the interruption (acted on).
	if err := env.Region().Rebalance(in.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the rebalance recommendation in /metrics", func() bool { return scrape(t, url)[rebalanced] == "1" }, lb)
	if v, ok := scrape(t, url)[deregistered]; ok {
		t.Errorf("%s %s after a recommendation the agent does not act on", deregistered, v)
	}
	if err := env.Region().Interrupt(in.ID, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the interruption and the deregistration in /metrics", func() bool {
		s := scrape(t, url)
		return s[interrupted] == "1" && s[deregistered] == "1"
	}, lb)
	after := scrape(t, url)
	if got := after[promDurationCount(metrics.ConsulDeregistered, "g")]; got != "1" {
		t.Errorf("%s = %q, want 1 (the deregistration's duration)", promDurationCount(metrics.ConsulDeregistered, "g"), got)
	}
	if got := after[rebalanced]; got != "1" {
		t.Errorf("%s = %q after the interruption, want still 1", rebalanced, got)
	}
	if len(cs.Services(t)) != 0 {
		t.Errorf("services left in Consul: %v", cs.Services(t))
	}
}

func TestMetricsOffOpensNoPort(t *testing.T) {
	env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
	lb := runAgent(t, "off", baseConfig(env, in.ID, t))
	eventually(t, 10*time.Second, "the agent to start", func() bool { return strings.Contains(lb.String(), "spotmax-agent started") }, lb)
	if strings.Contains(lb.String(), "serving Prometheus metrics") {
		t.Errorf("the agent serves metrics without --metrics-addr:\n%s", lb.String())
	}
	if !strings.Contains(lb.String(), `metrics_addr="" cloudwatch=false`) {
		t.Errorf("the start-up line does not show metrics off:\n%s", lb.String())
	}
}

func TestMetricsAddressTakenFailsTheStart(t *testing.T) {
	env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
	first := baseConfig(env, in.ID, t)
	first.MetricsAddr = "127.0.0.1:0"
	lb := runAgent(t, "first", first)
	addr := strings.TrimSuffix(strings.TrimPrefix(metricsURL(t, lb), "http://"), "/metrics")
	second := baseConfig(env, in.ID, t)
	second.MetricsAddr = addr
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := agent.Run(ctx, second)
	if err == nil || !strings.Contains(err.Error(), "metrics address "+addr) {
		t.Errorf("Run with a taken metrics address = %v, want an error naming %s", err, addr)
	}
}

func TestCloudWatchEventsReachTheRegion(t *testing.T) {
	for _, tc := range []struct {
		name string
		// shutdownOnly delays the flush after an event past the test: only the flush at
		// shutdown can deliver.
		shutdownOnly bool
	}{{"soon after the event", false}, {"at shutdown", true}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.shutdownOnly {
				agent.SetFlushDelay(t, time.Hour)
			}
			env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
			r := env.Region()
			cs := consultest.Start(t, consultest.Options{Bind: in.PrivateIP})
			cs.Register(t, "api-1", "api")
			cfg := baseConfig(env, in.ID, t)
			cfg.ConsulMode, cfg.ConsulAddr, cfg.CloudWatch = "deregister", cs.Addr, true
			lb := &logBuffer{}
			cfg.Log = newLogger(lb)
			stop := startAgent(t, cfg)
			eventually(t, 10*time.Second, "the agent to start", func() bool { return strings.Contains(lb.String(), "spotmax-agent started") }, lb)
			if err := r.Interrupt(in.ID, ""); err != nil {
				t.Fatal(err)
			}
			landed := func() bool {
				return cwEvents(r, string(metrics.InterruptionReceived), "g") == 1 &&
					cwEvents(r, string(metrics.InterruptionReceived), "") == 1 &&
					cwEvents(r, string(metrics.ConsulDeregistered), "g") == 1 &&
					cwEvents(r, metrics.ConsulDeregistered.DurationMetric(), "g") == 1
			}
			if !tc.shutdownOnly {
				eventually(t, 15*time.Second, "the events in CloudWatch while the agent runs", landed, lb)
				return
			}
			eventually(t, 10*time.Second, "the notice to be handled", func() bool {
				return hasLine(lb.String(), "notice step done", "step=consul")
			}, lb)
			if n := len(r.MetricData(metrics.Namespace)); n != 0 {
				t.Fatalf("%d datapoints in CloudWatch before the shutdown, with the flush after events an hour away", n)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if !landed() {
				t.Errorf("after the shutdown CloudWatch has %+v, want InterruptionReceived and ConsulDeregistered(Duration) of group g\n%s",
					r.MetricData(metrics.Namespace), lb.String())
			}
		})
	}
}

func TestNoticeRecordedOnceAcrossRestarts(t *testing.T) {
	m := imdstest.Start(t, imdstest.Options{V2Only: true, SpotDelay: 0, RebalanceDelay: imdstest.Never,
		ASGTerminationDelay: imdstest.Never, Tags: map[string]string{groupconfig.TagGroup: "g"}})
	env := simtest.Start(t, sim.Options{})
	stateDir := t.TempDir()
	series := promSeries(metrics.InterruptionReceived, "g")
	for i, want := range []string{"1", ""} {
		cfg := agent.Config{IMDSEndpoint: m.URL, AWS: &env.Config, ConsulMode: "off", StateDir: stateDir, ByIDDir: t.TempDir(),
			SysBlockDir: "-", DevDir: "-", NoticeInterval: 50 * time.Millisecond, MetricsAddr: "127.0.0.1:0"}
		lb := &logBuffer{}
		cfg.Log = newLogger(lb)
		stop := startAgent(t, cfg)
		url := metricsURL(t, lb)
		eventually(t, 10*time.Second, "the notice to be handled", func() bool {
			return hasLine(lb.String(), "step=release-volume")
		}, lb)
		got := scrape(t, url)[series]
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("run %d of the agent: %s = %q, want %q (a notice is one event, also across restarts)", i+1, series, got, want)
		}
	}
}

func TestVolumeMountedRecorded(t *testing.T) {
	blockdevtest.Require(t)
	env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
	r := env.Region()
	data := blockdevtest.NewLoop(t, 16, true)
	path := filepath.Join(t.TempDir(), "data")
	t.Cleanup(func() { blockdevtest.UnmountPath(t, path) })
	const vol = "vol-0ddddddddddddddd4"
	setTag(t, env, in.ID, groupconfig.StateVolume, vol)
	setTag(t, env, in.ID, groupconfig.StateMountPath, path)
	byIDDir := t.TempDir()
	stateDir := t.TempDir()
	start := func(name string) (*logBuffer, string, func() error) {
		cfg := baseConfig(env, in.ID, t)
		cfg.ByIDDir, cfg.StateDir, cfg.MetricsAddr, cfg.CloudWatch = byIDDir, stateDir, "127.0.0.1:0", true
		lb := &logBuffer{}
		cfg.Log = newLogger(lb).With("agent", name)
		stop := startAgent(t, cfg)
		return lb, metricsURL(t, lb), stop
	}
	mounted := promSeries(metrics.VolumeMounted, "g")
	mountedDur := promDurationCount(metrics.VolumeMounted, "g")

	lb, url, stop := start("first")
	eventually(t, 10*time.Second, "the agent to wait for the volume", func() bool {
		return strings.Contains(lb.String(), "waiting for the data volume to be attached")
	}, lb)
	if v, ok := scrape(t, url)[mounted]; ok {
		t.Errorf("%s %s before the volume appeared", mounted, v)
	}
	(&blockdevtest.ByIDDir{Dir: byIDDir}).Attach(t, vol, data.Dev)
	eventually(t, 10*time.Second, "the volume to be mounted", func() bool {
		src, _ := (&blockdev.Mounter{}).MountedAt(path)
		return src == data.Dev
	}, lb)
	eventually(t, 5*time.Second, "the mount in /metrics", func() bool {
		s := scrape(t, url)
		return s[mounted] == "1" && s[mountedDur] == "1"
	}, lb)
	eventually(t, 15*time.Second, "the mount in CloudWatch", func() bool {
		return cwEvents(r, string(metrics.VolumeMounted), "g") == 1 && cwEvents(r, metrics.VolumeMounted.DurationMetric(), "g") == 1
	}, lb)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// A restarted agent finds the volume mounted: not a mount to count again.
	lb2, url2, stop2 := start("restarted")
	eventually(t, 10*time.Second, "the restarted agent to find the volume mounted", func() bool {
		return hasLine(lb2.String(), "data volume mounted", "already_mounted=true")
	}, lb2)
	if v, ok := scrape(t, url2)[mounted]; ok {
		t.Errorf("the restarted agent counted the volume it found mounted: %s %s", mounted, v)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if n := cwEvents(r, string(metrics.VolumeMounted), "g"); n != 1 {
		t.Errorf("CloudWatch has %v VolumeMounted events of group g after a restart of the agent, want 1", n)
	}
}
