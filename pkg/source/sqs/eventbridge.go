package sqs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/spotmax/spotmax/pkg/source"
)

// EventBridge sources and detail types of the events spotmax consumes.
const (
	SourceEC2         = "aws.ec2"
	SourceAutoScaling = "aws.autoscaling"

	DetailSpotInterruption   = "EC2 Spot Instance Interruption Warning"
	DetailRebalance          = "EC2 Instance Rebalance Recommendation"
	DetailStateChange        = "EC2 Instance State-change Notification"
	DetailLaunchUnsuccessful = "EC2 Instance Launch Unsuccessful"
)

// InterruptionNotice is how long before the stop or termination a spot interruption warning
// comes. The warning's detail carries no time of its own: the event's time plus the notice is
// the deadline (hibernation starts at once, so its deadline is the event's time).
const InterruptionNotice = 2 * time.Minute

// ErrUnsupportedEvent is returned by ParseEventBridge for a well-formed EventBridge event of a
// source and detail type that spotmax does not consume (a rule someone widened, say).
var ErrUnsupportedEvent = errors.New("unsupported EventBridge event")

// BridgeEvent is the envelope of an EventBridge event as an SQS target receives it.
type BridgeEvent struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       time.Time       `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// bridgeKey selects a parser: the envelope's version, source and detail type.
type bridgeKey struct{ version, source, detailType string }

// bridgeParsers is the registry of the events spotmax consumes. Each parser reads the event's
// detail and returns the Event without Source and ID, which the caller sets.
var bridgeParsers = map[bridgeKey]func(BridgeEvent) (source.Event, error){
	{"0", SourceEC2, DetailSpotInterruption}:           parseSpotInterruption,
	{"0", SourceEC2, DetailRebalance}:                  parseRebalance,
	{"0", SourceEC2, DetailStateChange}:                parseStateChange,
	{"0", SourceAutoScaling, DetailLaunchUnsuccessful}: parseLaunchUnsuccessful,
}

// ParseEventBridge parses an SQS message body holding an EventBridge event. The error names what
// is wrong; it wraps ErrUnsupportedEvent for well-formed events that spotmax does not consume.
func ParseEventBridge(body []byte) (source.Event, error) {
	var env BridgeEvent
	if err := decodeStrict(body, &env); err != nil {
		return source.Event{}, fmt.Errorf("decoding EventBridge event: %w", err)
	}
	if env.Version == "" || env.Source == "" || env.DetailType == "" {
		return source.Event{}, fmt.Errorf("EventBridge event %q: version, source and detail-type are required", env.ID)
	}
	parse, ok := bridgeParsers[bridgeKey{env.Version, env.Source, env.DetailType}]
	if !ok {
		return source.Event{}, fmt.Errorf("EventBridge event %q (source %s, detail-type %q, version %s): %w",
			env.ID, env.Source, env.DetailType, env.Version, ErrUnsupportedEvent)
	}
	if env.Time.IsZero() {
		return source.Event{}, fmt.Errorf("EventBridge event %q (%s): no time", env.ID, env.DetailType)
	}
	d := bytes.TrimSpace(env.Detail)
	if len(d) == 0 || d[0] != '{' {
		return source.Event{}, fmt.Errorf("EventBridge event %q (%s): detail is not an object", env.ID, env.DetailType)
	}
	e, err := parse(env)
	if err != nil {
		return source.Event{}, fmt.Errorf("EventBridge event %q (%s): %w", env.ID, env.DetailType, err)
	}
	e.Time = env.Time.UTC()
	return e, nil
}

// decodeStrict decodes one JSON value and nothing after it.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("text after the JSON value")
	}
	return nil
}

// instanceIDPattern is an EC2 instance id: i- and 8 or 17 hex digits.
var instanceIDPattern = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

func checkInstanceID(id string) error {
	if id == "" {
		return errors.New("detail has no instance-id")
	}
	if !instanceIDPattern.MatchString(id) {
		return fmt.Errorf("instance-id %q is not an EC2 instance id", id)
	}
	return nil
}

func parseSpotInterruption(env BridgeEvent) (source.Event, error) {
	var d struct {
		InstanceID string `json:"instance-id"`
		Action     string `json:"instance-action"`
	}
	if err := json.Unmarshal(env.Detail, &d); err != nil {
		return source.Event{}, fmt.Errorf("decoding detail: %w", err)
	}
	if err := checkInstanceID(d.InstanceID); err != nil {
		return source.Event{}, err
	}
	deadline := env.Time.UTC().Add(InterruptionNotice)
	switch d.Action {
	case "terminate", "stop":
	case "hibernate":
		deadline = env.Time.UTC()
	case "":
		return source.Event{}, fmt.Errorf("instance %s: detail has no instance-action", d.InstanceID)
	default:
		return source.Event{}, fmt.Errorf("instance %s: unknown instance-action %q (want terminate, stop or hibernate)", d.InstanceID, d.Action)
	}
	return source.Event{Kind: source.KindInterruption, Instance: d.InstanceID, Deadline: deadline, Detail: d.Action}, nil
}

func parseRebalance(env BridgeEvent) (source.Event, error) {
	var d struct {
		InstanceID string `json:"instance-id"`
	}
	if err := json.Unmarshal(env.Detail, &d); err != nil {
		return source.Event{}, fmt.Errorf("decoding detail: %w", err)
	}
	if err := checkInstanceID(d.InstanceID); err != nil {
		return source.Event{}, err
	}
	return source.Event{Kind: source.KindRebalance, Instance: d.InstanceID}, nil
}

// instanceStates are the states an EC2 instance can report in a state-change notification.
var instanceStates = map[string]bool{
	"pending": true, "running": true, "stopping": true, "stopped": true, "shutting-down": true, "terminated": true,
}

func parseStateChange(env BridgeEvent) (source.Event, error) {
	var d struct {
		InstanceID string `json:"instance-id"`
		State      string `json:"state"`
	}
	if err := json.Unmarshal(env.Detail, &d); err != nil {
		return source.Event{}, fmt.Errorf("decoding detail: %w", err)
	}
	if err := checkInstanceID(d.InstanceID); err != nil {
		return source.Event{}, err
	}
	if !instanceStates[d.State] {
		return source.Event{}, fmt.Errorf("instance %s: unknown state %q", d.InstanceID, d.State)
	}
	return source.Event{Kind: source.KindStateChange, Instance: d.InstanceID, Detail: d.State}, nil
}

func parseLaunchUnsuccessful(env BridgeEvent) (source.Event, error) {
	var d struct {
		Group         string `json:"AutoScalingGroupName"`
		InstanceID    string `json:"EC2InstanceId"`
		StatusCode    string `json:"StatusCode"`
		StatusMessage string `json:"StatusMessage"`
	}
	if err := json.Unmarshal(env.Detail, &d); err != nil {
		return source.Event{}, fmt.Errorf("decoding detail: %w", err)
	}
	if d.Group == "" || len(d.Group) > 255 {
		return source.Event{}, fmt.Errorf("detail has no valid AutoScalingGroupName (%q)", d.Group)
	}
	// A launch that never produced an instance has an empty EC2InstanceId.
	if d.InstanceID != "" {
		if err := checkInstanceID(d.InstanceID); err != nil {
			return source.Event{}, fmt.Errorf("group %s: %w", d.Group, err)
		}
	}
	msg := d.StatusMessage
	if msg == "" {
		msg = d.StatusCode
	}
	return source.Event{Kind: source.KindLaunchFailure, Group: d.Group, Instance: d.InstanceID, Detail: msg}, nil
}
