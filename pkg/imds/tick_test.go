package imds

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTickerSkipsMissedTicksAndStops: a wait after several periods without one returns them
// all at once (the watcher skips them rather than polling back to back), ticks keep their
// period, and the wait ends with ctx's error when ctx ends.
func TestTickerSkipsMissedTicksAndStops(t *testing.T) {
	for name, mk := range map[string]func(context.Context, time.Duration) (ticker, error){
		"default": newTicker,
		"runtime": func(ctx context.Context, d time.Duration) (ticker, error) { return newRuntimeTicker(ctx, d), nil },
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			const period = 40 * time.Millisecond
			start := time.Now()
			tk, err := mk(ctx, period)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := tk.wait(ctx); err != nil || n < 1 {
				t.Fatalf("first wait: %d, %v", n, err)
			}
			if d := time.Since(start); d < period-5*time.Millisecond {
				t.Errorf("first tick after %v, want about %v", d, period)
			}
			time.Sleep(5 * period)
			n, err := tk.wait(ctx)
			if err != nil || n < 4 {
				t.Fatalf("wait after 5 periods without one: %d, %v; want the periods that ended (≥ 4)", n, err)
			}
			cancel()
			if _, err := tk.wait(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("wait after ctx ended: %v, want context.Canceled", err)
			}
		})
	}
}
