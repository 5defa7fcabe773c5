package kube

import (
	"context"
	"errors"
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
