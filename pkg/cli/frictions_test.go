package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/savings"
)

// Issue 13's small frictions, one test each.

// `spotmax group tag web --yes` with no tag flag enables the group with the defaults.
func TestGroupTagWithoutFlagsEnablesTheGroup(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 1, nil)
	if _, errOut, code := run(t, "group", "tag", "web", "--yes"); code != 0 {
		t.Fatalf("group tag web --yes: exit %d: %s", code, errOut)
	}
	g, _ := e.Region().Group("web")
	if v, ok := g.Tag(groupconfig.TagGroup); !ok || v != "web" {
		t.Fatalf("group web has %s = %q after group tag --yes", groupconfig.TagGroup, v)
	}
	out, errOut, code := run(t, "group", "status", "web")
	if code != 0 || strings.Contains(out, "NOT MANAGED") || !strings.Contains(out, "config: ") {
		t.Errorf("group status after enabling: exit %d\n%s%s", code, out, errOut)
	}
}

// `group status` of a group without spotmax:group says it is not managed and shows no
// configuration.
func TestGroupStatusOfAnUnmanagedGroup(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "plain", 1, nil)
	out, errOut, code := run(t, "group", "status", "plain")
	if code != 0 || !strings.Contains(out, "NOT MANAGED") || strings.Contains(out, "config: ") {
		t.Errorf("group status of an unmanaged group: exit %d\n%s%s", code, out, errOut)
	}
}

// `spotmax demo` keeps the components' logs out of its timeline and prints them after it.
func TestDemoLogsAreKeptOutOfTheTimeline(t *testing.T) {
	d := newDeferredLog(slog.LevelInfo)
	var errOut bytes.Buffer
	d.logger.Info("replacement step done", "step", "launch")
	d.logger.Debug("below the level")
	if errOut.Len() != 0 {
		t.Fatal("a log line reached the terminal during the timeline")
	}
	d.dump(&errOut, false)
	if got := errOut.String(); !strings.Contains(got, "1 component log lines kept out of the timeline") || strings.Contains(got, "replacement step done") {
		t.Errorf("dump without --log-level debug: %q", got)
	}
	errOut.Reset()
	d.dump(&errOut, true)
	if got := errOut.String(); !strings.Contains(got, "replacement step done") || strings.Contains(got, "below the level") {
		t.Errorf("dump of all lines: %q", got)
	}
}

// An unreachable Kubernetes API server is reported as such, not as the AWS endpoint.
func TestUnreachableKubernetesIsNotAWS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://" + addr + "\n    insecure-skip-tls-verify: true\n" +
		"contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: x\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL", "http://"+addr) // unreachable too: must not be what is blamed
	_, errOut, code := run(t, "drain", "node-1", "--kubeconfig", kc, "--grace-period", "1s", "--yes", "--no-cloudwatch")
	if code == 0 || strings.Contains(errOut, "AWS endpoint") || !strings.Contains(errOut, "cannot reach https://"+addr) {
		t.Errorf("drain against an unreachable API server: exit %d: %s", code, errOut)
	}
}

// Bad `spotmax replace` inputs are clear usage errors; --resume of a group that does not exist
// fails.
func TestReplaceFlagFrictions(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web", groupconfig.TagPersistenceDev: "/dev/sdf"})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replace", "--group", "web", "--older-than", "-5m", "--yes"}, ExitUsage, "invalid --older-than -5m0s: want a positive age"},
		{[]string{"replace", "--group", "web", "--all", "--release-timeout", "-1s", "--yes"}, ExitUsage, "invalid --release-timeout -1s: must not be negative"},
		{[]string{"replace", "--resume", "--group", "nosuch", "--yes"}, ExitNotFound, "nosuch"},
	} {
		_, errOut, code := run(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("spotmax %s: exit %d (want %d): %s (want %q)", strings.Join(tc.args, " "), code, tc.code, errOut, tc.want)
		}
	}
}

// The simulator's port taken: a clear message, not "cannot reach the AWS endpoint".
func TestSimServePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, errOut, code := run(t, "sim", "serve", "--addr", ln.Addr().String())
	if code == 0 || strings.Contains(errOut, "AWS endpoint") || !strings.Contains(errOut, "the port is in use") || !strings.Contains(errOut, ln.Addr().String()) {
		t.Errorf("sim serve on a taken port: exit %d: %s", code, errOut)
	}
	if DefaultSimAddr == "127.0.0.1:4566" {
		t.Errorf("the default simulator address is LocalStack's")
	}
}

// `spotmax replace` publishes what it did like the controller: CloudWatch metrics and an action
// record naming the operator's command (issue 13: manual actions left no trace).
func TestReplacePublishesAndRecords(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web", groupconfig.TagPersistenceDev: "/dev/sdf",
		groupconfig.TagDetachingDelaySeconds: "0", groupconfig.TagPreactionDetachDelaySeconds: "0"})
	g, _ := e.Region().Group("web")
	old := g.Members[0].InstanceID
	if _, errOut, code := run(t, "replace", old, "--yes", "--release-timeout", "0s", "--poll-interval", "20ms"); code != 0 {
		t.Fatalf("replace: exit %d: %s", code, errOut)
	}
	succeeded := 0
	for _, d := range e.Region().MetricData(metrics.Namespace) {
		if d.MetricName == string(metrics.ReplacementSucceeded) && d.Dimensions[metrics.DimensionGroup] == "web" {
			succeeded += int(d.Sum)
		}
	}
	if succeeded != 1 {
		t.Errorf("ReplacementSucceeded for web = %d after spotmax replace, want 1", succeeded)
	}
	out, errOut, code := run(t, "history", "--group", "web", "--since", "1h", "--period", "1m", "-o", "json")
	if code != 0 {
		t.Fatalf("history: exit %d: %s", code, errOut)
	}
	var h historyJSON
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Actions) != 1 || h.Actions[0].Instance != old || h.Actions[0].Reason != "manual" || h.Actions[0].Replacement == "" ||
		!strings.HasPrefix(h.Actions[0].Actor, "spotmax replace (") || h.Actions[0].Owner == "" || h.Actions[0].Volume == "" {
		t.Errorf("history actions after spotmax replace = %+v", h.Actions)
	}
	// --no-cloudwatch leaves no trace, as asked.
	g, _ = e.Region().Group("web")
	if _, errOut, code := run(t, "replace", g.Members[0].InstanceID, "--yes", "--release-timeout", "0s", "--poll-interval", "20ms", "--no-cloudwatch"); code != 0 {
		t.Fatalf("replace --no-cloudwatch: exit %d: %s", code, errOut)
	}
	if n := len(e.Region().LogEvents(metrics.DefaultActionLogGroup)); n != 1 {
		t.Errorf("%d action records after a --no-cloudwatch replace, want still 1", n)
	}
}

// The savings report's chart on a terminal: paid against all on-demand, per group.
func TestSavingsChart(t *testing.T) {
	rep := &savings.Report{Groups: []savings.Group{
		{Name: "web", Lines: []savings.Line{{Market: "spot", Type: "m5.large", AZ: "us-east-1a", Hours: 10, Cost: 0.3, OnDemandCost: 0.96, Instances: 1}},
			Total: savings.Total{Hours: 10, SpotHours: 10, Cost: 0.3, OnDemandCost: 0.96, Saved: 0.66, SavedPercent: 68.75}},
	}, Total: savings.Total{Hours: 10, SpotHours: 10, Cost: 0.3, OnDemandCost: 0.96, Saved: 0.66, SavedPercent: 68.75}}
	var b bytes.Buffer
	if err := WriteSavings(&b, rep, true); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"group web", "10.00 instance-hours (100% spot)", "saved $0.66 (68.8%)", "█", "░", "$0.30 of $0.96"} {
		if !strings.Contains(out, want) {
			t.Errorf("savings output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	_ = WriteSavings(&b, rep, false)
	if strings.Contains(b.String(), "█") {
		t.Errorf("chart drawn when not on a terminal:\n%s", b.String())
	}
}

// One clock: `sim serve` runs at the wall clock, a scenario's faster timeScale is not used,
// and a faster --time-scale is explicit and warned about.
func TestSimServeRunsOnTheWallClock(t *testing.T) {
	serve := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		ios, _, _, errOut := Test()
		if code := Run(ctx, NewFactory(ios), append([]string{"sim", "serve", "--addr", "127.0.0.1:0"}, args...)); code != 0 {
			t.Fatalf("sim serve %v: exit %d: %s", args, code, errOut)
		}
		return errOut.String()
	}
	scenario := filepath.Join(t.TempDir(), "fast.yaml")
	if err := os.WriteFile(scenario, []byte("timeScale: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := serve("--scenario", scenario); !strings.Contains(out, "time scale 1x") || strings.Contains(out, "warning") {
		t.Errorf("sim serve of a timeScale 10 scenario:\n%s", out)
	}
	if out := serve("--time-scale", "10"); !strings.Contains(out, "time scale 10x") || !strings.Contains(out, "warning: simulated time runs 10x faster than the wall clock") {
		t.Errorf("sim serve --time-scale 10:\n%s", out)
	}
}
