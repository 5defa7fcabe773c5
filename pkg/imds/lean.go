package imds

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Token lifetime of the lean path: IMDS's maximum (6 hours); a token is renewed tokenRenewBefore
// its end, or at once when IMDS refuses it (401, e.g. after IMDS restarted).
const (
	tokenTTL         = 6 * time.Hour
	tokenRenewBefore = 5 * time.Minute
)

// doer is the one method of an HTTP client the lean path needs (*http.Client, sdk.HTTPClient).
type doer interface {
	Do(*http.Request) (*http.Response, error)
}

// lean is the request path of Client.Get, which the agent's notice polls run several times a
// second: one GET with a cached IMDSv2 session token over one kept-alive connection, without
// the SDK's middleware stack (its per-request cost was most of the agent's idle CPU). It is
// IMDSv2 only: without a token it sends nothing, and a token refused with 401 is renewed once.
type lean struct {
	base string
	hc   doer
	now  func() time.Time
	// raw is the kept-alive connection of GETs when no HTTP client was given (rawconn.go).
	raw *rawConn

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// leanEndpoint is the endpoint the SDK's client would use: o.Endpoint, else
// AWS_EC2_METADATA_SERVICE_ENDPOINT, else the IPv4 (or, with
// AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6, the IPv6) link-local address.
func leanEndpoint(endpoint string) string {
	if endpoint == "" {
		endpoint = os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
	}
	if endpoint == "" {
		endpoint = "http://169.254.169.254"
		if strings.EqualFold(os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"), "IPv6") {
			endpoint = "http://[fd00:ec2::254]"
		}
	}
	return strings.TrimRight(endpoint, "/")
}

func newLean(endpoint string, hc doer) *lean {
	l := &lean{base: leanEndpoint(endpoint), now: time.Now}
	if hc == nil {
		l.raw = newRawConn(l.base)
		hc = &http.Client{Transport: &http.Transport{
			Proxy:       nil, // IMDS is link-local: never through a proxy
			DialContext: (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
			// One connection, kept between polls.
			MaxIdleConns: 1, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 2, IdleConnTimeout: 5 * time.Minute,
			DisableCompression: true, ResponseHeaderTimeout: requestTimeout,
		}}
	}
	l.hc = hc
	return l
}

// get returns the body of /latest/meta-data/<path>; a 404 is ErrNotFound.
func (l *lean) get(ctx context.Context, path string) (string, error) {
	for attempt := 0; ; attempt++ {
		tok, err := l.sessionToken(ctx)
		if err != nil {
			return "", err
		}
		status, body, err := l.do(ctx, http.MethodGet, "/latest/meta-data/"+path, "X-aws-ec2-metadata-token", tok)
		switch {
		case err != nil:
			return "", err
		case status == http.StatusOK:
			return body, nil
		case status == http.StatusNotFound:
			return "", ErrNotFound
		case status == http.StatusUnauthorized && attempt == 0:
			l.dropToken(tok) // refused (IMDS restarted, or the token expired early): renew once
			continue
		}
		return "", &statusError{status: status, what: "GET " + path}
	}
}

// prefetch reads the documents at paths (below /latest/meta-data/) at once on the raw
// connection and keeps their answers for the gets that follow; forget drops the rest.
func (l *lean) prefetch(ctx context.Context, paths []string) {
	if l.raw == nil || len(paths) < 2 {
		return
	}
	tok, err := l.sessionToken(ctx)
	if err != nil {
		return // the gets will say why
	}
	full := make([]string, len(paths))
	for i, p := range paths {
		full[i] = "/latest/meta-data/" + p
	}
	l.raw.prefetch(ctx, full, "X-aws-ec2-metadata-token", tok)
}

func (l *lean) forget() {
	if l.raw != nil {
		l.raw.forget()
	}
}

// sessionToken returns the cached token, fetching a new one when there is none or it is near its
// end.
func (l *lean) sessionToken(ctx context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token != "" && l.now().Before(l.renewAt) {
		return l.token, nil
	}
	status, body, err := l.do(ctx, http.MethodPut, "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds",
		strconv.Itoa(int(tokenTTL/time.Second)))
	if err != nil {
		return "", fmt.Errorf("getting an IMDSv2 session token: %w", err)
	}
	if status != http.StatusOK || body == "" {
		return "", fmt.Errorf("getting an IMDSv2 session token: %w", &statusError{status: status, what: "PUT /latest/api/token"})
	}
	l.token, l.renewAt = body, l.now().Add(tokenTTL-tokenRenewBefore)
	return l.token, nil
}

func (l *lean) dropToken(tok string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token == tok {
		l.token = ""
	}
}

func (l *lean) do(ctx context.Context, method, path, header, value string) (int, string, error) {
	if method == http.MethodGet && l.raw != nil {
		if status, body, ok := l.raw.get(ctx, path, header, value); ok {
			return status, body, nil
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set(header, value)
	resp, err := l.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(b), nil
}

// statusError is an IMDS answer other than 200 or 404.
type statusError struct {
	status int
	what   string
}

func (e *statusError) Error() string       { return fmt.Sprintf("%s: HTTP %d", e.what, e.status) }
func (e *statusError) HTTPStatusCode() int { return e.status }

var _ interface{ HTTPStatusCode() int } = (*statusError)(nil)
