package kube

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

// testClient connects to the test server as its admin, with the test server's generous rate
// limit.
func testClient(t testing.TB, s *kubetest.Server, log *slog.Logger) *Client {
	t.Helper()
	return connectTest(t, s, ConnectOptions{QPS: 500, Burst: 1000, Log: log})
}

func connectTest(t testing.TB, s *kubetest.Server, opts ConnectOptions) *Client {
	t.Helper()
	c, err := Connect(context.Background(), Source{Path: s.Kubeconfig, From: "test"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.Log = opts.Log
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// countingTransport counts the requests that reach the API server.
type countingTransport struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

// counting wraps a transport with a countingTransport on n.
func counting(n *atomic.Int64) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt: rt, n: n} }
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
