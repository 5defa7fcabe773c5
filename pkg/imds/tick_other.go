//go:build !linux

package imds

import (
	"context"
	"time"
)

// newTicker returns the runtime's timer elsewhere than on Linux.
func newTicker(ctx context.Context, period time.Duration) (ticker, error) {
	return newRuntimeTicker(ctx, period), nil
}
