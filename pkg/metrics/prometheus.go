package metrics

import (
	"context"
	"net/http"
	"strings"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// PromNamespace prefixes every Prometheus metric name.
const PromNamespace = "spotmax"

// DurationBuckets are the histogram buckets of event durations, in seconds: from a volume mount
// (about a second) to a replacement that waits out long delays (tens of minutes).
var DurationBuckets = []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600}

// Prometheus exposes events and gauges as Prometheus metrics with the same names as in
// CloudWatch, in Prometheus's spelling: ReplacementSucceeded becomes the counter
// spotmax_replacement_succeeded_total{group} and the histogram
// spotmax_replacement_succeeded_duration_seconds{group}; InstancesSpot becomes the gauge
// spotmax_instances_spot{group}. Events without a group count with group="".
type Prometheus struct {
	reg       *prometheus.Registry
	counters  map[Name]*prometheus.CounterVec
	durations map[Name]*prometheus.HistogramVec
	spot      *prometheus.GaugeVec
	onDemand  *prometheus.GaugeVec
	alt       *prometheus.GaugeVec
}

var _ Recorder = (*Prometheus)(nil)

// PromName returns the Prometheus spelling of a CloudWatch metric name, without namespace or
// suffix: "OnDemandFallback" → "on_demand_fallback".
func PromName(cw string) string {
	var b strings.Builder
	for i, r := range cw {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// NewPrometheus returns a collector with its own registry, which also holds the Go runtime and
// process collectors (the agent's footprint on every instance is worth watching).
func NewPrometheus() *Prometheus {
	p := &Prometheus{
		reg:       prometheus.NewRegistry(),
		counters:  make(map[Name]*prometheus.CounterVec, len(defs)),
		durations: map[Name]*prometheus.HistogramVec{},
	}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, d := range defs {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: PromNamespace, Name: PromName(string(d.Name)) + "_total",
			Help: "Count of events: " + d.Help + ".",
		}, []string{"group"})
		p.reg.MustRegister(c)
		p.counters[d.Name] = c
		if d.Timed {
			h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Namespace: PromNamespace, Name: PromName(string(d.Name)) + "_duration_seconds",
				Help: "Duration in seconds: " + d.Help + ".", Buckets: DurationBuckets,
			}, []string{"group"})
			p.reg.MustRegister(h)
			p.durations[d.Name] = h
		}
	}
	gauge := func(cw, help string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: PromNamespace, Name: PromName(cw), Help: help}, []string{"group"})
		p.reg.MustRegister(g)
		return g
	}
	p.spot = gauge(InstancesSpot, "Spot instances in the group at the last reconcile.")
	p.onDemand = gauge(InstancesOnDemand, "On-demand instances in the group at the last reconcile.")
	p.alt = gauge(InstancesAlternative, "Instances of an alternative type (either market) in the group at the last reconcile.")
	return p
}

// Record implements Recorder. Unknown event names are ignored.
func (p *Prometheus) Record(_ context.Context, e Event) {
	c, ok := p.counters[e.Name]
	if !ok {
		return
	}
	c.WithLabelValues(e.Group).Inc()
	if h, ok := p.durations[e.Name]; ok && e.Duration > 0 {
		h.WithLabelValues(e.Group).Observe(e.Duration.Seconds())
	}
}

// Gauge implements Recorder.
func (p *Prometheus) Gauge(_ context.Context, group string, c Counts) {
	if group == "" {
		return
	}
	p.spot.WithLabelValues(group).Set(float64(c.Spot))
	p.onDemand.WithLabelValues(group).Set(float64(c.OnDemand))
	p.alt.WithLabelValues(group).Set(float64(c.Alternative))
}

// ForgetGroup removes a group's series, for a group that was deleted or untagged.
func (p *Prometheus) ForgetGroup(group string) {
	for _, c := range p.counters {
		c.DeleteLabelValues(group)
	}
	for _, h := range p.durations {
		h.DeleteLabelValues(group)
	}
	p.spot.DeleteLabelValues(group)
	p.onDemand.DeleteLabelValues(group)
	p.alt.DeleteLabelValues(group)
}

// WatchPublisher exposes a CloudWatch publisher's own health: datapoints sent, dropped and
// waiting, so that an outage of CloudWatch shows up where Prometheus looks.
func (p *Prometheus) WatchPublisher(pub *Publisher) {
	p.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: PromNamespace, Name: "cloudwatch_datapoints_sent_total",
			Help: "Datapoints CloudWatch accepted."}, func() float64 { return float64(pub.Sent()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: PromNamespace, Name: "cloudwatch_datapoints_dropped_total",
			Help: "Datapoints dropped: buffer full, too old, rejected, or undelivered at shutdown."}, func() float64 { return float64(pub.Dropped()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: PromNamespace, Name: "cloudwatch_datapoints_buffered",
			Help: "Datapoints waiting to be sent to CloudWatch."}, func() float64 { return float64(pub.Buffered()) }),
	)
}

// Registry returns the registry, for more collectors.
func (p *Prometheus) Registry() *prometheus.Registry { return p.reg }

// Handler serves the metrics in the Prometheus exposition formats, for a /metrics endpoint.
func (p *Prometheus) Handler() http.Handler {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{Registry: p.reg})
}
