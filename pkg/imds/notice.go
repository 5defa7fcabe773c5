package imds

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// Kind is the kind of a notice that the instance is about to go away.
type Kind string

// Kinds of notices.
const (
	// KindSpotInterruption: spot/instance-action shows an action (terminate, stop, hibernate)
	// and the time it happens, about two minutes ahead.
	KindSpotInterruption Kind = "spot-interruption"
	// KindRebalance: events/recommendations/rebalance shows a rebalance recommendation: the
	// instance is at elevated risk of interruption.
	KindRebalance Kind = "rebalance"
	// KindASGTermination: autoscaling/target-lifecycle-state is Terminated: the Auto Scaling
	// group is terminating the instance (scale-in, instance refresh, health replacement).
	KindASGTermination Kind = "asg-termination"
	// KindRetiring: the replacement workflow marked the instance as retiring (a proactive
	// replacement) with the groupconfig.StateRetiring tag.
	KindRetiring Kind = "retiring"
)

// Notice says the instance is about to go away.
type Notice struct {
	Kind Kind
	// Action is what happens: terminate, stop or hibernate for a spot interruption, the target
	// lifecycle state for an Auto Scaling termination, the reason for a retirement.
	Action string
	// Time is when the action happens (spot interruption) or when the notice was given
	// (rebalance); zero when the source does not say.
	Time time.Time
	// Seen is when the agent saw the notice.
	Seen time.Time
}

// Key identifies the notice: its kind and action. The time is left out on purpose: an
// instance gets one interruption and one rebalance recommendation in its life, and AWS's IMDS
// emulator moves the times with every request, so the same notice seen again must keep its key.
func (n Notice) Key() string { return string(n.Kind) + ":" + n.Action }

// Relay renders the notice for the groupconfig.StateNotice tag with the tag's one codec
// (groupconfig.RelayedNotice): the time the agent saw it when the source gives none; the action,
// "rebalance" for a recommendation, or prefixed by the kind for notices other than spot
// interruptions (e.g. "asg-termination:Terminated").
func (n Notice) Relay() groupconfig.RelayedNotice {
	t := n.Time
	if t.IsZero() {
		t = n.Seen
	}
	action := n.Action
	switch n.Kind {
	case KindSpotInterruption:
	case KindRebalance:
		action = groupconfig.RelayRebalance
	default:
		action = string(n.Kind) + ":" + n.Action
	}
	return groupconfig.RelayedNotice{Action: action, Time: t.UTC().Truncate(time.Second)}
}

// Spot interruption actions.
var spotActions = map[string]bool{"terminate": true, "stop": true, "hibernate": true}

// maxDoc bounds the notice documents accepted; real ones are under 100 bytes.
const maxDoc = 4096

// ParseInstanceAction parses the spot/instance-action document:
// {"action": "terminate", "time": "2017-09-18T08:22:00Z"}.
func ParseInstanceAction(doc []byte) (action string, at time.Time, err error) {
	if len(doc) > maxDoc {
		return "", time.Time{}, fmt.Errorf("spot/instance-action document of %d bytes is too long", len(doc))
	}
	var d struct {
		Action *string `json:"action"`
		Time   *string `json:"time"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return "", time.Time{}, fmt.Errorf("parsing spot/instance-action %q: %w", doc, err)
	}
	if d.Action == nil || !spotActions[*d.Action] {
		return "", time.Time{}, fmt.Errorf("spot/instance-action %q: action must be terminate, stop or hibernate", doc)
	}
	if d.Time == nil {
		return "", time.Time{}, fmt.Errorf("spot/instance-action %q: no time", doc)
	}
	at, err = parseTime(*d.Time)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("spot/instance-action %q: bad time: %w", doc, err)
	}
	return *d.Action, at, nil
}

// ParseRebalance parses the events/recommendations/rebalance document:
// {"noticeTime": "2020-10-27T08:22:00Z"}.
func ParseRebalance(doc []byte) (time.Time, error) {
	if len(doc) > maxDoc {
		return time.Time{}, fmt.Errorf("rebalance document of %d bytes is too long", len(doc))
	}
	var d struct {
		NoticeTime *string `json:"noticeTime"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return time.Time{}, fmt.Errorf("parsing events/recommendations/rebalance %q: %w", doc, err)
	}
	if d.NoticeTime == nil {
		return time.Time{}, errors.New("events/recommendations/rebalance: no noticeTime")
	}
	t, err := parseTime(*d.NoticeTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("events/recommendations/rebalance: bad noticeTime: %w", err)
	}
	return t, nil
}

// parseTime parses an RFC 3339 time of a notice, in UTC, refusing years that RFC 3339 cannot
// write back (an offset can push 0000-01-01 into year -1).
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	t = t.UTC()
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("time %s is out of range", s)
	}
	return t, nil
}

// Target lifecycle states that mean the instance is going away.
const lifecycleTerminated = "Terminated"

// ParseLifecycleState parses autoscaling/target-lifecycle-state and reports whether it means
// the group is terminating the instance.
func ParseLifecycleState(doc []byte) (state string, terminating bool, err error) {
	s := strings.TrimSpace(string(doc))
	if s == "" || len(s) > 64 || strings.ContainsAny(s, " \t\n{}<>") {
		return "", false, fmt.Errorf("autoscaling/target-lifecycle-state %q is not a lifecycle state", doc)
	}
	return s, s == lifecycleTerminated, nil
}
