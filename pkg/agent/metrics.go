package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/spotmax/spotmax/pkg/metrics"
)

// flushDelay is how long after an event the CloudWatch publisher sends what it holds, instead
// of waiting for its one-minute flush: an instance that got a notice may be gone within
// seconds, and the events of one notice (received, Consul deregistered) go out in one call.
// A variable so that a test can make the shutdown flush the only one.
var flushDelay = time.Second

// Bounds of the shutdown: the metrics server's open scrapes, and the last CloudWatch flush.
const (
	metricsServerShutdown = 2 * time.Second
	metricsFlushTimeout   = 10 * time.Second
)

// agentMetrics records the agent's events (pkg/metrics) in Prometheus and/or CloudWatch. A nil
// *agentMetrics records nothing: with both off the agent creates none and runs exactly as
// without metrics.
type agentMetrics struct {
	rec  metrics.Multi
	pub  *metrics.Publisher
	srv  *http.Server
	addr string // where /metrics is served

	base    context.Context // for flushes: the agent's context without its cancellation
	mu      sync.Mutex
	pending *time.Timer // a flush soon, after an event
	closed  bool
	wg      sync.WaitGroup // the publisher's loop and the server
}

// startMetrics starts what the configuration asks for: the Prometheus endpoint (listening at
// once, so that a bad or taken address fails the start) and the CloudWatch publisher. It
// returns nil when both are off.
func (a *agent) startMetrics(ctx context.Context) (*agentMetrics, error) {
	if a.cfg.MetricsAddr == "" && !a.cfg.CloudWatch {
		return nil, nil
	}
	m := &agentMetrics{base: context.WithoutCancel(ctx)}
	var prom *metrics.Prometheus
	if a.cfg.MetricsAddr != "" {
		prom = metrics.NewPrometheus()
		m.rec = append(m.rec, prom)
	}
	if a.cfg.CloudWatch {
		cfg, err := a.ec2.config(ctx)
		if err != nil {
			return nil, fmt.Errorf("configuring the CloudWatch publisher: %w", err)
		}
		m.pub = metrics.NewPublisher(cloudwatch.NewFromConfig(cfg), metrics.PublisherOptions{Log: a.log})
		m.rec = append(m.rec, m.pub)
		if prom != nil {
			prom.WatchPublisher(m.pub)
		}
	}
	if prom != nil {
		ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("listening on metrics address %s for Prometheus: %w", a.cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", prom.Handler())
		m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
		m.addr = ln.Addr().String()
		m.wg.Go(func() {
			if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("serving Prometheus metrics stopped", "addr", m.addr, "error", err)
			}
		})
		a.log.Info("serving Prometheus metrics", "addr", m.addr, "path", "/metrics")
	}
	if m.pub != nil {
		m.wg.Go(func() { m.pub.Run(m.base) })
	}
	return m, nil
}

// record records one event of this instance.
func (a *agent) record(ctx context.Context, e metrics.Event) {
	if a.metrics == nil {
		return
	}
	e.Group, e.Instance = a.group, a.id.InstanceID
	a.metrics.rec.Record(ctx, e)
	a.metrics.flushSoon(a)
}

// flushSoon sends the CloudWatch buffer flushDelay from now, unless a flush is already due.
func (m *agentMetrics) flushSoon(a *agent) {
	if m.pub == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.pending != nil {
		return
	}
	m.pending = time.AfterFunc(flushDelay, func() {
		m.mu.Lock()
		m.pending = nil
		closed := m.closed
		m.mu.Unlock()
		if closed {
			return // Close sends it
		}
		ctx, cancel := context.WithTimeout(m.base, metricsFlushTimeout)
		defer cancel()
		if err := m.pub.Flush(ctx); err != nil {
			a.log.Warn("publishing events to CloudWatch; kept for the next flush", "error", err, "dropped", m.pub.Dropped())
		}
	})
}

// close stops the metrics server and sends what the CloudWatch publisher still holds, within
// metricsFlushTimeout.
func (m *agentMetrics) close(a *agent) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.closed = true
	if m.pending != nil {
		m.pending.Stop() // a flush already running finishes first: Close waits for it
	}
	m.mu.Unlock()
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(m.base, metricsServerShutdown)
		if err := m.srv.Shutdown(ctx); err != nil {
			_ = m.srv.Close()
		}
		cancel()
	}
	if m.pub != nil {
		ctx, cancel := context.WithTimeout(m.base, metricsFlushTimeout)
		err := m.pub.Close(ctx)
		cancel()
		if err != nil {
			a.log.Warn("publishing the last events to CloudWatch at shutdown", "error", err)
		} else {
			a.log.Info("events published to CloudWatch", "datapoints_sent", m.pub.Sent(), "datapoints_dropped", m.pub.Dropped())
		}
	}
	m.wg.Wait()
}
