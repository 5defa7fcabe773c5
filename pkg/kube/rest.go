package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Content types of the patches spotmax sends.
const (
	mergePatch = "application/merge-patch+json"
	jsonBody   = "application/json"
)

// transport is the HTTP side of a Client: base URL, credentials, client-side rate limit.
type transport struct {
	base      string // https://host:port[/prefix], no trailing slash
	hc        *http.Client
	auth      authenticator
	limit     *limiter
	userAgent string
}

// authenticator sets a request's credentials. refresh is called after a 401 and reports whether
// new credentials are worth a second try (an exec plugin's token that expired early, a
// rotated service-account token).
type authenticator interface {
	authorize(ctx context.Context, r *http.Request) error
	refresh() bool
}

// noAuth is a kubeconfig without a token (client certificates are in the TLS configuration).
type noAuth struct{}

func (noAuth) authorize(context.Context, *http.Request) error { return nil }
func (noAuth) refresh() bool                                  { return false }

// bearer is a static token.
type bearer string

func (b bearer) authorize(_ context.Context, r *http.Request) error {
	r.Header.Set("Authorization", "Bearer "+string(b))
	return nil
}
func (bearer) refresh() bool { return false }

// basic is a kubeconfig's username and password.
type basic struct{ user, password string }

func (b basic) authorize(_ context.Context, r *http.Request) error {
	r.SetBasicAuth(b.user, b.password)
	return nil
}
func (basic) refresh() bool { return false }

// tokenFile is a token read from a file and read again every minute, as client-go does: the
// kubelet rotates projected service-account tokens in place.
type tokenFile struct {
	path string
	read func(string) ([]byte, error)
	mu   sync.Mutex
	tok  string
	at   time.Time
}

func (t *tokenFile) authorize(_ context.Context, r *http.Request) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok == "" || time.Since(t.at) > time.Minute {
		b, err := t.read(t.path)
		if err != nil {
			return fmt.Errorf("reading the token file %s: %w", t.path, err)
		}
		t.tok, t.at = strings.TrimSpace(string(b)), time.Now()
		if t.tok == "" {
			return fmt.Errorf("the token file %s is empty", t.path)
		}
	}
	r.Header.Set("Authorization", "Bearer "+t.tok)
	return nil
}

func (t *tokenFile) refresh() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tok = ""
	return true
}

// limiter is a token bucket: qps tokens a second, at most burst saved, like client-go's
// client-side rate limit.
type limiter struct {
	mu     sync.Mutex
	qps    float64
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(qps float64, burst int) *limiter {
	return &limiter{qps: qps, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// wait takes a token, waiting for one when the bucket is empty; it fails at once when the wait
// would outlast ctx's deadline, as client-go's limiter does.
func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.qps)
	l.last = now
	l.tokens--
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / l.qps * float64(time.Second))
	}
	l.mu.Unlock()
	if d == 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		l.give()
		return fmt.Errorf("client rate limiter: waiting %s would exceed the deadline: %w", d.Round(time.Millisecond), context.DeadlineExceeded)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		l.give()
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (l *limiter) give() {
	l.mu.Lock()
	l.tokens++
	l.mu.Unlock()
}

// maxRetries bounds the retries of a request the server asked to repeat (429 or 5xx with
// Retry-After, as API priority and fairness answers) before its error is returned.
const maxRetries = 3

// do sends one request and decodes a 2xx answer's JSON into out (when non-nil). body, when
// non-nil, is sent as JSON ([]byte as is) with contentType. Error statuses are *APIError.
func (t *transport) do(ctx context.Context, method, path string, query url.Values, body any, contentType string, out any) error {
	var payload []byte
	if body != nil {
		if b, ok := body.([]byte); ok {
			payload = b
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				return fmt.Errorf("encoding %s %s: %w", method, path, err)
			}
			payload = b
		}
	}
	u := t.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	refreshed := false
	for attempt := 0; ; attempt++ {
		err := t.once(ctx, method, u, path, payload, contentType, out)
		apiErr, ok := err.(*APIError)
		switch {
		case !ok:
			return err
		case apiErr.Status.Code == http.StatusUnauthorized && !refreshed && t.auth.refresh():
			refreshed = true
			continue
		case apiErr.RetryAfter > 0 && attempt < maxRetries && method == http.MethodGet &&
			(apiErr.Status.Code == http.StatusTooManyRequests || apiErr.Status.Code >= 500):
			if err := sleep(ctx, min(apiErr.RetryAfter, 10*time.Second)); err != nil {
				return apiErr
			}
			continue
		}
		return err
	}
}

func (t *transport) once(ctx context.Context, method, u, path string, payload []byte, contentType string, out any) error {
	if err := t.limit.wait(ctx); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", jsonBody)
	req.Header.Set("User-Agent", t.userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if err := t.auth.authorize(ctx, req); err != nil {
		return err
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return statusError(method, path, resp, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// statusError turns an error answer into an *APIError: the server's Status when it sent one,
// else the status line and the start of the body.
func statusError(method, path string, resp *http.Response, body []byte) *APIError {
	e := &APIError{Method: method, Path: path}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	if json.Unmarshal(body, &e.Status) != nil || e.Status.Message == "" {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		e.Status = Status{Message: fmt.Sprintf("%s %s: %s", method, path, resp.Status)}
		if msg != "" {
			e.Status.Message += ": " + msg
		}
		// 401 without a Status body (a proxy in between) still reads like the API's own.
		if resp.StatusCode == http.StatusUnauthorized {
			e.Status.Reason = "Unauthorized"
		}
	}
	e.Status.Code = resp.StatusCode
	return e
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
