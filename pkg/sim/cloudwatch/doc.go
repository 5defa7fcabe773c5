// Package cloudwatch is the simulated CloudWatch (signing name monitoring): PutMetricData with
// AWS's limits (1,000 data per call, 30 dimensions, values and statistic sets, timestamps at
// most two weeks old or two hours ahead), GetMetricData (metric stats and the expressions
// spotmax uses), GetMetricStatistics, ListMetrics (dimension filters, RecentlyActive, pages of
// 500), and dashboards (PutDashboard, GetDashboard). It speaks Smithy RPC v2 CBOR (current SDKs),
// AWS JSON 1.0 and the query protocol (older clients) through the kernel's document codec
// (awsproto.Document), so each action is written once.
//
// spotmax publishes its metrics here, `spotmax history` reads them back and `spotmax dashboard`
// writes its dashboard. Its state is guarded by the region's lock, which it reaches through the
// Region interface.
package cloudwatch
