package cli

import (
	"context"
	"encoding/json"
	"github.com/spotmax/spotmax/pkg/metrics"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
)

// dashboardDoc is the part of a dashboard body the tests look at.
type dashboardDoc struct {
	Widgets []struct {
		Type       string
		Properties struct {
			Title   string
			Stat    string
			Region  string
			Metrics [][]string
		}
	}
}

func TestDashboardDryRunPrintsTheBody(t *testing.T) {
	historyEnv(t)
	out, errOut, code := run(t, "dashboard", "--group", "web", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var d dashboardDoc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("--dry-run did not print JSON: %v\n%s", err, out)
	}
	if len(d.Widgets) != 4 || d.Widgets[0].Type != "text" {
		t.Fatalf("want a text widget and 3 metric widgets, got %+v", d.Widgets)
	}
	events := d.Widgets[1].Properties
	if n := len(metrics.Defs()); events.Stat != "Sum" || events.Region != "us-east-1" || len(events.Metrics) != n {
		t.Errorf("events widget: stat %s, region %s, %d metrics; want Sum, us-east-1, one per event (%d)", events.Stat, events.Region, len(events.Metrics), n)
	}
	if got := strings.Join(events.Metrics[0], " "); got != "SpotMax InterruptionReceived AutoScalingGroupName web" {
		t.Errorf("first metric %q", got)
	}
	if got := d.Widgets[3].Properties.Metrics[2][1]; got != "InstancesAlternative" {
		t.Errorf("instances widget's last metric %q", got)
	}
	// Nothing was written.
	if _, err := cloudwatch.NewFromConfig(cloudwatchCfg(t)).GetDashboard(context.Background(),
		&cloudwatch.GetDashboardInput{DashboardName: aws.String("SpotMax-web")}); err == nil {
		t.Error("--dry-run wrote the dashboard")
	}
}

func TestDashboardWrites(t *testing.T) {
	env := historyEnv(t)
	if _, errOut, code := run(t, "dashboard", "--group", "web"); code != ExitUsage || !strings.Contains(errOut, "pass --yes") {
		t.Errorf("without a terminal and --yes: exit %d, %s; want a usage error asking for --yes", code, errOut)
	}
	out, errOut, code := run(t, "dashboard", "--group", "web", "--yes")
	if code != 0 || !strings.Contains(out, "wrote CloudWatch dashboard SpotMax-web") {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	got, err := cloudwatch.NewFromConfig(env.Config).GetDashboard(context.Background(),
		&cloudwatch.GetDashboardInput{DashboardName: aws.String("SpotMax-web")})
	if err != nil {
		t.Fatal(err)
	}
	var d dashboardDoc
	if err := json.Unmarshal([]byte(aws.ToString(got.DashboardBody)), &d); err != nil || len(d.Widgets) != 4 {
		t.Errorf("stored body: %v, %d widgets", err, len(d.Widgets))
	}
	if !strings.HasSuffix(aws.ToString(got.DashboardArn), ":dashboard/SpotMax-web") {
		t.Errorf("ARN %s", aws.ToString(got.DashboardArn))
	}
	// Region-wide: no dimensions and no instances widget.
	out, errOut, code = run(t, "dashboard", "--yes", "-o", "json")
	if code != 0 || !strings.Contains(out, `"name": "SpotMax"`) {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	body, _ := env.Region().Dashboard("SpotMax")
	if err := json.Unmarshal([]byte(body), &d); err != nil || len(d.Widgets) != 3 || len(d.Widgets[1].Properties.Metrics[0]) != 2 {
		t.Errorf("region-wide dashboard: %v, %+v", err, d.Widgets)
	}
	if _, errOut, code := run(t, "dashboard", "--name", "bad name", "--yes"); code == 0 || !strings.Contains(errOut, "writing CloudWatch dashboard bad name") {
		t.Errorf("a name CloudWatch rejects: exit %d, %s", code, errOut)
	}
}

// cloudwatchCfg is the SDK configuration of the region the environment points the CLI at.
func cloudwatchCfg(t *testing.T) aws.Config {
	t.Helper()
	f := NewFactory(&IOStreams{})
	cfg, err := f.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
