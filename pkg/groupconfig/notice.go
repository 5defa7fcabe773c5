package groupconfig

import (
	"fmt"
	"strings"
	"time"
)

// RelayedNotice is the value of the StateNotice tag: a notice the agent saw on its instance's
// IMDS, relayed for a controller without an EventBridge queue. This is its one codec: the agent
// writes it with String, the controller's reconcile reads it with ParseRelayedNotice, and the
// tests use both; the format is "action@RFC3339 time".
type RelayedNotice struct {
	// Action is the spot interruption's instance action (terminate, stop, hibernate),
	// RelayRebalance for a rebalance recommendation, or "kind:action" for other notices (e.g.
	// "asg-termination:Terminated").
	Action string
	// Time is when the action happens, or when the notice was given or seen; whole seconds.
	Time time.Time
}

// RelayRebalance is the Action of a relayed rebalance recommendation.
const RelayRebalance = "rebalance"

// String renders the notice as the StateNotice tag's value.
func (n RelayedNotice) String() string {
	return n.Action + "@" + n.Time.UTC().Format(time.RFC3339)
}

// Rebalance reports whether the notice is a rebalance recommendation; every other relayed
// notice says the instance is going away at Time.
func (n RelayedNotice) Rebalance() bool { return n.Action == RelayRebalance }

// ParseRelayedNotice parses a StateNotice value written by RelayedNotice.String. The error names
// the value and what is wrong with it.
func ParseRelayedNotice(v string) (RelayedNotice, error) {
	action, ts, ok := strings.Cut(v, "@")
	if !ok || action == "" {
		return RelayedNotice{}, fmt.Errorf("%s %q is not action@time", StateNotice, v)
	}
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return RelayedNotice{}, fmt.Errorf("%s %q: bad time: %w", StateNotice, v, err)
	}
	return RelayedNotice{Action: action, Time: t}, nil
}
