// Package logs is the simulated CloudWatch Logs: log groups, log streams, PutLogEvents with AWS's batch rules
// (chronological order, 24-hour span, 10,000 events, 1,048,576 bytes, events more than 14 days
// old or 2 hours ahead rejected but reported), and FilterLogEvents with a subset of the filter
// pattern syntax (terms, and JSON equality such as { $.group = "web" && $.result = "succeeded" }).
// It speaks AWS JSON 1.1 (X-Amz-Target: Logs_20140328.*), as the SDK does.
//
// It holds spotmax's audit trail (`spotmax history`, the /spotmax/actions log group). Its state
// is guarded by the region's lock, which it reaches through the Region interface.
package logs
