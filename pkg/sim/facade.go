package sim

import (
	"github.com/spotmax/spotmax/pkg/sim/cloudwatch"
	"github.com/spotmax/spotmax/pkg/sim/logs"
)

// The region's view of the services in packages of their own: what tests and the control API
// read of them, under the names callers have always used.

// LogEvent is one event of a simulated log stream.
type LogEvent = logs.Event

// LogEvents returns the events of a CloudWatch Logs log group, oldest first, for tests.
func (r *Region) LogEvents(group string) []LogEvent { return r.logs.Events(group) }

// MetricDatum is one datapoint that PutMetricData stored, as a statistic set.
type MetricDatum = cloudwatch.Datum

// MetricData returns copies of the CloudWatch datapoints stored in a namespace ("" for every
// namespace), ordered by namespace, metric name, dimensions and timestamp.
func (r *Region) MetricData(namespace string) []MetricDatum { return r.cloudwatch.Data(namespace) }

// Dashboard returns the body of a CloudWatch dashboard that PutDashboard stored.
func (r *Region) Dashboard(name string) (string, bool) { return r.cloudwatch.Dashboard(name) }
