package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// historyT0 is the simulated region's start in the history tests: fixed, so that the output
// is exact.
var historyT0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// historyEnv starts a simulated region at historyT0, points the CLI at it and publishes a known
// set of events through the CloudWatch publisher.
func historyEnv(t *testing.T) *simtest.Env {
	t.Helper()
	env := simtest.Start(t, sim.Options{Start: historyT0})
	t.Setenv("AWS_ENDPOINT_URL", env.URL())
	t.Setenv("AWS_REGION", env.Region().Name())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDCLITEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_PROFILE", "")
	pub := metrics.NewPublisher(cloudwatch.NewFromConfig(env.Config), metrics.PublisherOptions{Now: env.Region().Clock().Now})
	ctx := context.Background()
	ago := func(m int) time.Time { return historyT0.Add(-time.Duration(m) * time.Minute) }
	for _, e := range []metrics.Event{
		{Name: metrics.InterruptionReceived, Group: "web", Instance: "i-1", Time: ago(58)},
		{Name: metrics.InterruptionReceived, Group: "web", Instance: "i-2", Time: ago(56)},
		{Name: metrics.InterruptionReceived, Group: "web", Instance: "i-3", Time: ago(20)},
		{Name: metrics.InterruptionReceived, Group: "api", Instance: "i-4", Time: ago(20)},
		{Name: metrics.ReplacementStarted, Group: "web", Time: ago(58)},
		{Name: metrics.ReplacementStarted, Group: "web", Time: ago(56)},
		{Name: metrics.ReplacementStarted, Group: "web", Time: ago(20)},
		{Name: metrics.ReplacementSucceeded, Group: "web", Duration: 150 * time.Second, Time: ago(55)},
		{Name: metrics.ReplacementSucceeded, Group: "web", Duration: 210 * time.Second, Time: ago(53)},
		{Name: metrics.ReplacementFailed, Group: "web", Duration: 45 * time.Second, Time: ago(17)},
		{Name: metrics.OnDemandFallback, Group: "web", Time: ago(17)},
	} {
		pub.Record(ctx, e)
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestHistoryJSONGolden(t *testing.T) {
	historyEnv(t)
	stdout, stderr, code := run(t, "history", "--group", "web", "--start", "2026-03-02T09:00:00Z", "--end", "2026-03-02T10:00:00Z",
		"--period", "15m", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var h historyJSON
	if err := json.Unmarshal([]byte(stdout), &h); err != nil {
		t.Fatal(err)
	}
	counts := map[string]string{}
	for _, e := range h.Events {
		var parts []string
		for _, b := range e.Buckets {
			parts = append(parts, b.Time[11:16]+"="+jsonNumber(b.Count))
		}
		counts[e.Name] = strings.Join(parts, " ")
	}
	for name, want := range map[string]string{
		"InterruptionReceived": "09:00=2 09:30=1",
		"ReplacementStarted":   "09:00=2 09:30=1",
		"ReplacementSucceeded": "09:00=2",
		"ReplacementFailed":    "09:30=1",
		"OnDemandFallback":     "09:30=1",
		"VolumeMoved":          "",
	} {
		if counts[name] != want {
			t.Errorf("%s per 15m: got %q, want %q", name, counts[name], want)
		}
	}
	goldenExact(t, "history.json", stdout)
}

func jsonNumber(f float64) string { b, _ := json.Marshal(f); return string(b) }

func TestHistoryTable(t *testing.T) {
	historyEnv(t)
	stdout, stderr, code := run(t, "history", "--start", "2026-03-02T09:00:00Z", "--end", "2026-03-02T10:00:00Z", "--period", "30m")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// Region-wide: the interruption of group api counts too.
	for _, want := range []string{
		"spotmax events of all groups, 2026-03-02 09:00Z to 2026-03-02 10:00Z, per 30m",
		"InterruptionReceived: 4 events",
		"2026-03-02 09:00Z  2",
		"2026-03-02 09:30Z  2",
		"ReplacementSucceeded: 2 events, average 3m",
		"2026-03-02 09:00Z  2      3m",
		"no events: RebalanceReceived,",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "│") {
		t.Errorf("a chart was drawn without a terminal:\n%s", stdout)
	}
}

func TestHistoryChartOnATerminal(t *testing.T) {
	historyEnv(t)
	ios, _, out, errOut := Test()
	ios.OutTTY = true
	f := NewFactory(ios)
	code := Run(context.Background(), f, []string{"history", "--group", "web", "--start", "2026-03-02T09:00:00Z", "--end", "2026-03-02T10:00:00Z", "--period", "5m"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// 12 five-minute columns; interruptions at 09:02, 09:04 (one column, 2) and 09:40 (1).
	want := "│█·······▄···│ 03-02 09:00 … 03-02 10:00, one column = 5m, peak 2"
	if !strings.Contains(out.String(), want) {
		t.Errorf("chart of InterruptionReceived missing; want %q in:\n%s", want, out)
	}
}

func TestHistoryFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--since", "1h", "--start", "2026-03-01T00:00:00Z"}, "--since and --start/--end are mutually exclusive"},
		{[]string{"--end", "2026-03-01T00:00:00Z"}, "--end needs --start"},
		{[]string{"--start", "yesterday"}, `invalid --start "yesterday": want an RFC 3339 time`},
		{[]string{"--start", "2026-03-01T00:00:00Z", "--end", "2026-02-01T00:00:00Z"}, "--start 2026-03-01T00:00:00Z is not before --end 2026-02-01T00:00:00Z"},
		{[]string{"--start", "2999-01-01T00:00:00Z"}, "--start 2999-01-01T00:00:00Z is in the future"},
		{[]string{"--start", "2001-01-01T00:00:00Z"}, "older than CloudWatch keeps metrics"},
		{[]string{"--since", "-5m"}, `invalid --since "-5m"`},
		{[]string{"--since", "soon"}, `invalid --since "soon"`},
		{[]string{"--period", "90s"}, "invalid --period 1m30s: want a whole number of minutes"},
		{[]string{"--period", "0s"}, "invalid --period 0s"},
	}
	for _, c := range cases {
		ios, _, _, _ := Test()
		f := NewFactory(ios)
		cmd := newHistoryCmd(f, func(_ context.Context, o *HistoryOptions) error {
			_, err := o.query()
			return err
		})
		cmd.SetArgs(c.args)
		cmd.SetOut(ios.Out)
		cmd.SetErr(ios.ErrOut)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("history %v: got %v, want an error containing %q", c.args, err, c.want)
			continue
		}
		if code := exitCode(err); code != ExitUsage {
			t.Errorf("history %v: exit code %d, want %d", c.args, code, ExitUsage)
		}
	}
}

func TestHistorySinceDays(t *testing.T) {
	now := historyT0
	var got *HistoryOptions
	ios, _, _, _ := Test()
	cmd := newHistoryCmd(NewFactory(ios), func(_ context.Context, o *HistoryOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--since", "7d", "--period", "1h", "--group", "web"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	got.Now = func() time.Time { return now }
	q, err := got.query()
	if err != nil {
		t.Fatal(err)
	}
	if !q.Start.Equal(now.Add(-7*24*time.Hour)) || !q.End.Equal(now) || q.Period != time.Hour || q.Group != "web" {
		t.Errorf("query %+v, want 7 days to now per hour for web", q)
	}
}

// goldenExact compares got to testdata/name byte for byte (the history tests run at a fixed
// simulated time, so nothing needs masking).
func goldenExact(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test ./pkg/cli -run %s -update): %v", t.Name(), err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file %s:\ngot:\n%s\nwant:\n%s", t.Name(), path, got, want)
	}
}
