package metrics

import (
	"fmt"
	"strings"
)

// Markdown renders the event reference of docs/metrics.md from Defs: each event's CloudWatch
// metrics and Prometheus series.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| event | CloudWatch metrics | Prometheus | recorded when |\n|---|---|---|---|\n")
	for _, d := range defs {
		cw := "`" + string(d.Name) + "` (Count)"
		prom := "`" + PromNamespace + "_" + PromName(string(d.Name)) + "_total`"
		if d.Timed {
			cw += "<br>`" + d.Name.DurationMetric() + "` (Seconds)"
			prom += "<br>`" + PromNamespace + "_" + PromName(string(d.Name)) + "_duration_seconds`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", d.Name, cw, prom, d.Help)
	}
	for _, g := range []struct{ name, help string }{
		{InstancesSpot, "spot instances in the group, at every reconcile"},
		{InstancesOnDemand, "on-demand instances in the group, at every reconcile"},
		{InstancesAlternative, "instances of an alternative type (either market), at every reconcile"},
	} {
		fmt.Fprintf(&b, "| (gauge) | `%s` (Count, per group only) | `%s_%s` | %s |\n", g.name, PromNamespace, PromName(g.name), g.help)
	}
	fmt.Fprintf(&b, "| (publisher) | `%s` (Count, region-wide only) | `%s_cloudwatch_datapoints_dropped_total` | datapoints the CloudWatch publisher could not deliver |\n",
		MetricsDropped, PromNamespace)
	return b.String()
}
