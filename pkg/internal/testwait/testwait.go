// Package testwait is the tests' one wait-until helper: poll a condition with a generous
// timeout instead of asserting wall-clock timings, which are load-sensitive on small machines.
package testwait

import (
	"testing"
	"time"
)

// Poll is how often For checks its condition.
const Poll = 5 * time.Millisecond

// For polls cond until it holds. When timeout passes first, it runs onTimeout (e.g. to log what
// a process printed) and fails the test, naming what it waited for.
func For(t testing.TB, what string, timeout time.Duration, cond func() bool, onTimeout ...func()) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, f := range onTimeout {
				f()
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(Poll)
	}
}
