// Package simtest starts the simulated AWS region for tests and hands out AWS SDK
// configuration that points every client at it.
package simtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/sim"
)

// Env is a running simulated region.
type Env struct {
	*sim.Server
	// Config is an SDK configuration with dummy credentials and the simulated region's endpoint.
	Config aws.Config
}

// Region returns the simulated region's state.
func (e *Env) Region() *sim.Region { return e.Server.Region() }

// Start serves a simulated region on a loopback port until the test ends.
func Start(t testing.TB, opts sim.Options) *Env {
	t.Helper()
	srv, err := sim.Start(context.Background(), "127.0.0.1:0", opts)
	if err != nil {
		t.Fatalf("starting simulated region: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &Env{Server: srv, Config: Config(srv.URL(), srv.Region().Name())}
}

// RetryPolicy is the production retry policy (awsapi.DefaultRetryPolicy) with its backoff
// bounded for a loopback simulator whose clock may run faster than real time.
func RetryPolicy() awsapi.RetryPolicy {
	p := awsapi.DefaultRetryPolicy()
	p.MaxBackoff = 20 * time.Millisecond
	return p
}

// Config returns an SDK configuration for a simulated region at endpoint, with dummy static
// credentials, spotmax's retry policy (RetryPolicy) and the endpoint set for every service
// (what AWS_ENDPOINT_URL does for a real client).
func Config(endpoint, region string) aws.Config {
	return aws.Config{
		Retryer:      RetryPolicy().NewRetryer,
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDSIMTEST", "secret", ""),
		BaseEndpoint: aws.String(endpoint),
		HTTPClient:   bufferingClient{c: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}},
	}
}

// bufferingClient hands the transport a copy of the request body. The SDK closes its own request
// body as soon as the response arrives; a local server answers so fast that the transport may not
// have finished its final read of that body yet, and then drops the connection mid-response
// ("use of closed network connection"). Against AWS's latencies the race does not show; against
// a loopback simulator it made tests that disable retries flaky.
type bufferingClient struct{ c *http.Client }

func (b bufferingClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return b.c.Do(req)
}
