package imds

import (
	"context"
	"time"
)

// ticker is the watcher's clock: wait blocks until the next tick and returns how many periods
// ended since the last wait (more than one when a poll overran), or ctx's error.
type ticker interface {
	wait(ctx context.Context) (int64, error)
}

// runtimeTicker is a ticker on a Go timer, at absolute times (start + n × period).
type runtimeTicker struct {
	start  time.Time
	period time.Duration
	n      int64
	timer  *time.Timer
}

func newRuntimeTicker(_ context.Context, period time.Duration) *runtimeTicker {
	t := &runtimeTicker{start: time.Now(), period: period}
	t.timer = time.NewTimer(period)
	return t
}

func (t *runtimeTicker) wait(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		t.timer.Stop()
		return 0, err
	}
	select {
	case <-ctx.Done():
		t.timer.Stop()
		return 0, ctx.Err()
	case <-t.timer.C:
	}
	since := time.Since(t.start)
	n := max(t.n+1, int64(since/t.period))
	ended := n - t.n
	t.n = n
	t.timer.Reset(time.Duration(n+1)*t.period - since)
	return ended, nil
}
