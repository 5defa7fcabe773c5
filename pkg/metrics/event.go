// Package metrics owns what spotmax reports about its own actions: the event names (one list,
// used by every recorder and by `spotmax history`), the Event type that producers record, the
// CloudWatch publisher (aggregated, batched, bounded, never blocking its caller), the Prometheus
// collector and its /metrics handler, and the GetMetricData queries behind `spotmax history`.
package metrics

import (
	"context"
	"fmt"
	"time"
)

// Name is an event name. It is the CloudWatch metric name of the event's count; events that
// have a duration also publish Name+"Duration" in seconds.
type Name string

// Event names, in CloudWatch's CamelCase. Defs lists them with their help text.
const (
	InterruptionReceived Name = "InterruptionReceived"
	RebalanceReceived    Name = "RebalanceReceived"
	ReplacementStarted   Name = "ReplacementStarted"
	ReplacementSucceeded Name = "ReplacementSucceeded"
	ReplacementFailed    Name = "ReplacementFailed"
	OnDemandFallback     Name = "OnDemandFallback"
	RevertToSpot         Name = "RevertToSpot"
	VolumeMoved          Name = "VolumeMoved"
	VolumeMounted        Name = "VolumeMounted"
	NodeDrained          Name = "NodeDrained"
	ConsulDeregistered   Name = "ConsulDeregistered"
	LifetimeRotation     Name = "LifetimeRotation"
	InvalidConfiguration Name = "InvalidConfiguration"
	DataVolumeOrphaned   Name = "DataVolumeOrphaned"
	VolumeMovedAcrossAZ  Name = "VolumeMovedAcrossAZ"
)

// Namespace is the CloudWatch namespace of every spotmax metric.
const Namespace = "SpotMax"

// DimensionGroup is the CloudWatch dimension that carries the Auto Scaling group's name. Every
// event is also published without it, as the region-wide total.
const DimensionGroup = "AutoScalingGroupName"

// durationSuffix makes an event's duration metric name from its count metric name.
const durationSuffix = "Duration"

// Gauge metric names, published per group on every reconcile.
const (
	InstancesSpot        = "InstancesSpot"
	InstancesOnDemand    = "InstancesOnDemand"
	InstancesAlternative = "InstancesAlternative"
)

// MetricsDropped is the region-wide count of datapoints the CloudWatch publisher could not
// deliver (buffer full, CloudWatch unreachable for too long, or rejected).
const MetricsDropped = "MetricsDropped"

// Def describes one event.
type Def struct {
	Name Name
	// Timed events carry a duration, published as Name+"Duration" in seconds.
	Timed bool
	// Help says when the event is recorded.
	Help string
}

// defs is the one list of events.
var defs = []Def{
	{InterruptionReceived, false, "a spot interruption notice for a managed instance was received"},
	{RebalanceReceived, false, "an EC2 rebalance recommendation for a managed instance was received"},
	{ReplacementStarted, false, "a replacement started"},
	{ReplacementSucceeded, true, "a replacement finished; duration from start to finish"},
	{ReplacementFailed, true, "a replacement failed or was rolled back; duration from start to failure"},
	{OnDemandFallback, false, "no spot capacity could be had and an on-demand instance was launched instead"},
	{RevertToSpot, false, "an on-demand or alternative-type stand-in was replaced by spot of the group's type"},
	{VolumeMoved, true, "a data volume was detached from the old instance and attached to its replacement; duration of the move"},
	{VolumeMounted, true, "the agent mounted a data volume at its mount path; duration from first sight of the disk"},
	{NodeDrained, true, "a Kubernetes node was cordoned and drained; duration of the drain"},
	{ConsulDeregistered, true, "an instance's services were deregistered from Consul; duration of the deregistration"},
	{LifetimeRotation, false, "an instance reached its guaranteed lifetime and is being rotated"},
	{InvalidConfiguration, false, "a group's spotmax tags did not validate; the group is left alone"},
	{DataVolumeOrphaned, false, "a group's data volume is attached to no instance outside a replacement (kept, never deleted), reported once per volume: it waits in the pool for the next member of its AZ that lacks its data (`spotmax run` re-homes it), or, when its group is no longer managed with a data device, for an operator (`spotmax volumes`)"},
	{VolumeMovedAcrossAZ, true, "a data volume was copied through a snapshot to its replacement in another AZ (spotmax:cross_az_move), the copy verified and the source kept; duration of the move"},
}

var defByName = func() map[Name]Def {
	m := make(map[Name]Def, len(defs))
	for _, d := range defs {
		m[d.Name] = d
	}
	return m
}()

// Defs returns every event definition in a stable order.
func Defs() []Def { return append([]Def(nil), defs...) }

// Lookup returns the definition of an event name.
func Lookup(n Name) (Def, bool) {
	d, ok := defByName[n]
	return d, ok
}

// Valid reports whether n is a known event name.
func (n Name) Valid() bool {
	_, ok := defByName[n]
	return ok
}

// DurationMetric returns the CloudWatch metric name of the event's duration.
func (n Name) DurationMetric() string { return string(n) + durationSuffix }

// Event is one action spotmax or the agent took.
type Event struct {
	Name Name
	// Group is the Auto Scaling group; "" for events that belong to no group (they count in the
	// region-wide total only).
	Group string
	// Instance is the instance acted on. It is not a CloudWatch dimension (one metric per
	// instance would be costly and useless for history); Prometheus ignores it too. Logs carry it.
	Instance string
	// Duration is how long the action took; zero for events without one.
	Duration time.Duration
	// Time is when it happened; zero means now.
	Time time.Time
	// Fields are free-form details for logs (reason, market, volume id); not published as
	// dimensions.
	Fields map[string]string
}

// String renders the event for logs and errors.
func (e Event) String() string {
	s := string(e.Name)
	if e.Group != "" {
		s += " group=" + e.Group
	}
	if e.Instance != "" {
		s += " instance=" + e.Instance
	}
	if e.Duration > 0 {
		s += fmt.Sprintf(" duration=%s", e.Duration)
	}
	return s
}

// Counts are a group's instances by market at one reconcile.
type Counts struct {
	// Spot and OnDemand count the group's members by market.
	Spot, OnDemand int
	// Alternative counts members (of either market) whose type is one of the group's
	// alternative types rather than its own.
	Alternative int
}

// Recorder receives events and gauges. Recording never fails and never blocks on I/O: a
// recorder that cannot deliver drops and counts. Producers declare the subset they need, e.g.
// interface{ Record(context.Context, metrics.Event) }.
type Recorder interface {
	Record(ctx context.Context, e Event)
	Gauge(ctx context.Context, group string, c Counts)
}

// Multi fans events and gauges out to several recorders, in order.
type Multi []Recorder

// Record implements Recorder.
func (m Multi) Record(ctx context.Context, e Event) {
	for _, r := range m {
		r.Record(ctx, e)
	}
}

// Gauge implements Recorder.
func (m Multi) Gauge(ctx context.Context, group string, c Counts) {
	for _, r := range m {
		r.Gauge(ctx, group, c)
	}
}

// Nop is a Recorder that records nothing, for producers run without metrics.
type Nop struct{}

// Record implements Recorder.
func (Nop) Record(context.Context, Event) {}

// Gauge implements Recorder.
func (Nop) Gauge(context.Context, string, Counts) {}

var (
	_ Recorder = Multi(nil)
	_ Recorder = Nop{}
)
