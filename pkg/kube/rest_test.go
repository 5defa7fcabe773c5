package kube

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// The client-side rate limit: a burst passes at once; beyond it a request whose wait would
// outlast its context's deadline fails at once with context.DeadlineExceeded (so a drain
// reports its timeout) and gives its token back.
func TestLimiterRefusesWaitsPastTheDeadline(t *testing.T) {
	l := newLimiter(0.5, 2) // a token every 2 s
	for i := range 2 {
		if err := l.wait(context.Background()); err != nil {
			t.Fatalf("request %d of the burst: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := l.wait(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("got %v (context error %v), want DeadlineExceeded before the deadline", err, ctx.Err())
	}
	l.mu.Lock()
	tokens := l.tokens
	l.mu.Unlock()
	if tokens < -0.01 || tokens > 0.5 {
		t.Errorf("%.2f tokens after the refused wait, want the token given back (about 0)", tokens)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := l.wait(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v", err)
	}
}

// A read the server asks to repeat (429 with Retry-After, as API priority and fairness answers)
// is repeated; a write is not (an eviction's 429 is the drain's to handle), and its error keeps
// the server's Status and Retry-After.
func TestRetryAfterRepeatsReadsOnly(t *testing.T) {
	var gets, posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int64
		if r.Method == http.MethodPost {
			n = posts.Add(1)
		} else {
			n = gets.Add(1)
		}
		if n == 1 || r.Method == http.MethodPost {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"kind":"Status","status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","code":429}`))
			return
		}
		_, _ = w.Write([]byte(`{"metadata":{"name":"n1","uid":"u1"},"spec":{"providerID":"aws:///us-east-1a/i-1"}}`))
	}))
	defer srv.Close()
	c := NewClient(&Config{Host: srv.URL}, nil)
	n, err := c.Node(context.Background(), "n1")
	if err != nil || n.UID != "u1" || n.Spec.ProviderID != "aws:///us-east-1a/i-1" || gets.Load() != 2 {
		t.Fatalf("got %+v, %v after %d GETs; want node n1 after 2", n, err, gets.Load())
	}
	err = c.evict(context.Background(), &Pod{ObjectMeta: ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}, 0, false)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || !IsTooManyRequests(err) || apiErr.RetryAfter != time.Second || posts.Load() != 1 ||
		err.Error() != "Too many requests, please try again later." {
		t.Fatalf("got %v (%d POSTs), want one 429 with Retry-After 1s", err, posts.Load())
	}
}
