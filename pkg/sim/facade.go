package sim

import (
	"github.com/spotmax/spotmax/pkg/sim/logs"
)

// The region's view of the services in packages of their own: what tests and the control API
// read of them, under the names callers have always used.

// LogEvent is one event of a simulated log stream.
type LogEvent = logs.Event

// LogEvents returns the events of a CloudWatch Logs log group, oldest first, for tests.
func (r *Region) LogEvents(group string) []LogEvent { return r.logs.Events(group) }
