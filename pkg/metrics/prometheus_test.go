package metrics

import (
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics from h and parses the text exposition format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// sample returns the metric of a family with group=g.
func sample(fams map[string]*dto.MetricFamily, name, g string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == "group" && l.GetValue() == g {
				return m
			}
		}
	}
	return nil
}

func TestPromName(t *testing.T) {
	for in, want := range map[string]string{
		"InterruptionReceived": "interruption_received",
		"OnDemandFallback":     "on_demand_fallback",
		"RevertToSpot":         "revert_to_spot",
		"InstancesOnDemand":    "instances_on_demand",
	} {
		if got := PromName(in); got != want {
			t.Errorf("PromName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrometheusExposesEveryEvent(t *testing.T) {
	p := NewPrometheus()
	ctx := context.Background()
	for _, d := range Defs() {
		p.Record(ctx, Event{Name: d.Name, Group: "web", Duration: 2 * time.Second})
	}
	p.Record(ctx, Event{Name: ReplacementSucceeded, Group: "web", Duration: 178 * time.Second})
	p.Record(ctx, Event{Name: InvalidConfiguration})
	p.Record(ctx, Event{Name: "NoSuchEvent", Group: "web"})
	p.Gauge(ctx, "web", Counts{Spot: 3, OnDemand: 1, Alternative: 2})
	fams := scrape(t, p.Handler())

	for _, d := range Defs() {
		name := "spotmax_" + PromName(string(d.Name)) + "_total"
		m := sample(fams, name, "web")
		if m == nil || fams[name].GetType() != dto.MetricType_COUNTER {
			t.Errorf("no counter %s{group=\"web\"}", name)
			continue
		}
		want := 1.0
		if d.Name == ReplacementSucceeded {
			want = 2
		}
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("%s{group=\"web\"} = %v, want %v", name, got, want)
		}
		hist := "spotmax_" + PromName(string(d.Name)) + "_duration_seconds"
		if d.Timed != (fams[hist] != nil) {
			t.Errorf("histogram %s present = %v, want %v (timed event)", hist, fams[hist] != nil, d.Timed)
		}
	}
	h := sample(fams, "spotmax_replacement_succeeded_duration_seconds", "web").GetHistogram()
	if h.GetSampleCount() != 2 || h.GetSampleSum() != 180 {
		t.Errorf("replacement duration histogram: %d samples, sum %v; want 2, 180", h.GetSampleCount(), h.GetSampleSum())
	}
	if m := sample(fams, "spotmax_invalid_configuration_total", ""); m.GetCounter().GetValue() != 1 {
		t.Errorf("an event without a group counts with group=\"\": got %v", m)
	}
	for name, want := range map[string]float64{"spotmax_instances_spot": 3, "spotmax_instances_on_demand": 1, "spotmax_instances_alternative": 2} {
		if got := sample(fams, name, "web").GetGauge().GetValue(); got != want {
			t.Errorf("%s{group=\"web\"} = %v, want %v", name, got, want)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Error("the Go runtime and process collectors are missing")
	}

	p.ForgetGroup("web")
	fams = scrape(t, p.Handler())
	if sample(fams, "spotmax_instances_spot", "web") != nil || sample(fams, "spotmax_replacement_started_total", "web") != nil {
		t.Error("ForgetGroup left series of group web")
	}
}

func TestMultiFansOutToCloudWatchAndPrometheus(t *testing.T) {
	env := startSim(t)
	pub := newPublisher(env, PublisherOptions{})
	prom := NewPrometheus()
	prom.WatchPublisher(pub)
	var r Recorder = Multi{pub, prom, Nop{}}
	ctx := context.Background()
	r.Record(ctx, Event{Name: VolumeMounted, Group: "db", Duration: 1500 * time.Millisecond, Time: t0})
	r.Gauge(ctx, "db", Counts{Spot: 2})

	fams := scrape(t, prom.Handler())
	if got := sample(fams, "spotmax_volume_mounted_total", "db").GetCounter().GetValue(); got != 1 {
		t.Errorf("prometheus volume_mounted{db} = %v, want 1", got)
	}
	if got := fams["spotmax_cloudwatch_datapoints_buffered"].GetMetric()[0].GetGauge().GetValue(); got != 7 {
		t.Errorf("cloudwatch_datapoints_buffered = %v, want 7 (count and duration ×2, 3 gauges)", got)
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if sum, _ := stored(env, "VolumeMountedDuration", "db"); sum != 1.5 {
		t.Errorf("CloudWatch VolumeMountedDuration{db} = %v, want 1.5", sum)
	}
	fams = scrape(t, prom.Handler())
	if got := fams["spotmax_cloudwatch_datapoints_sent_total"].GetMetric()[0].GetCounter().GetValue(); got != 7 {
		t.Errorf("cloudwatch_datapoints_sent_total = %v, want 7", got)
	}
}

const (
	docBegin = "<!-- BEGIN GENERATED: go test ./pkg/metrics -run TestDocsAreCurrent -update -->\n"
	docEnd   = "<!-- END GENERATED -->\n"
)

var update = flag.Bool("update", false, "rewrite the generated section of docs/metrics.md")

func TestDocsAreCurrent(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "metrics.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, docBegin), strings.Index(doc, docEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated section markers", path)
	}
	want := "\n" + Markdown() + "\n"
	if doc[i+len(docBegin):j] == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc[:i+len(docBegin)]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the generated section of %s is stale: go test ./pkg/metrics -run TestDocsAreCurrent -update", path)
}
