package metrics

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
)

// DashboardAPI is what writing a dashboard needs from CloudWatch. *cloudwatch.Client satisfies
// it.
type DashboardAPI interface {
	PutDashboard(ctx context.Context, params *cloudwatch.PutDashboardInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.PutDashboardOutput, error)
}

var _ DashboardAPI = (*cloudwatch.Client)(nil)

// DashboardPrefix starts the name of every dashboard spotmax writes; the controller's IAM
// policy allows PutDashboard on these names only.
const DashboardPrefix = "SpotMax"

// DashboardName is the default name of a group's dashboard ("SpotMax-web"), or of the
// region-wide one ("SpotMax").
func DashboardName(group string) string {
	if group == "" {
		return DashboardPrefix
	}
	return DashboardPrefix + "-" + group
}

// widget is one CloudWatch dashboard widget.
type widget struct {
	Type       string         `json:"type"`
	X          int            `json:"x"`
	Y          int            `json:"y"`
	Width      int            `json:"width"`
	Height     int            `json:"height"`
	Properties map[string]any `json:"properties"`
}

// DashboardBody returns the CloudWatch dashboard JSON of a group ("" for the region-wide
// totals): the event counts, the average durations of the timed events and, for a group, its
// instances by market, from the one list of events.
func DashboardBody(group, region string) ([]byte, error) {
	dims := []any{}
	scope := "all groups (region-wide totals)"
	if group != "" {
		dims = []any{DimensionGroup, group}
		scope = "group " + group
	}
	series := func(names []string) [][]any {
		out := make([][]any, 0, len(names))
		for _, n := range names {
			out = append(out, append([]any{Namespace, n}, dims...))
		}
		return out
	}
	var counts, durations []string
	for _, d := range defs {
		counts = append(counts, string(d.Name))
		if d.Timed {
			durations = append(durations, d.Name.DurationMetric())
		}
	}
	metric := func(y int, title, stat string, names []string) widget {
		return widget{Type: "metric", X: 0, Y: y, Width: 24, Height: 6, Properties: map[string]any{
			"title": title, "region": region, "view": "timeSeries", "stacked": false,
			"stat": stat, "period": 300, "metrics": series(names)}}
	}
	widgets := []widget{
		{Type: "text", Width: 24, Height: 2, Properties: map[string]any{"markdown": fmt.Sprintf(
			"# spotmax: %s\nWhat spotmax did, per 5 minutes. The same data on the command line: `spotmax history%s`.",
			scope, map[bool]string{true: " --group " + group, false: ""}[group != ""])}},
		metric(2, "Events (count per 5 minutes)", "Sum", counts),
		metric(8, "Durations (average seconds)", "Average", durations),
	}
	if group != "" {
		widgets = append(widgets, metric(14, "Instances by market (average)", "Average",
			[]string{InstancesSpot, InstancesOnDemand, InstancesAlternative}))
	}
	return json.MarshalIndent(map[string]any{"widgets": widgets}, "", "  ")
}
