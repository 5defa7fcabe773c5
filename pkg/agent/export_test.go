package agent

import (
	"testing"
	"time"
)

// SetFlushDelay sets how long after an event the CloudWatch publisher flushes, for one test.
// Set it before the agent starts; it is restored when the test ends (after the agent stopped).
func SetFlushDelay(t testing.TB, d time.Duration) {
	old := flushDelay
	flushDelay = d
	t.Cleanup(func() { flushDelay = old })
}
