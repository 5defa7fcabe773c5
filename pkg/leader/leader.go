package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// Elector makes sure one controller acts on a region at a time: Run calls lead with a context
// that ends when leadership is lost, and campaigns again, until ctx ends.
type Elector interface {
	Run(ctx context.Context, lead func(ctx context.Context)) error
}

// ConsulLock elects the leader with a Consul lock (a session-bound KV key), the coordination
// service many spotmax users already run. A leader that loses its session (partition, Consul
// restart) stops acting at once; its journals let the next leader resume its replacements.
type ConsulLock struct {
	Client *consul.Client
	// Key is the lock's KV key, e.g. spotmax/leader/us-east-1.
	Key string
	// SessionTTL bounds how long a dead leader holds the lock; default 15 s.
	SessionTTL time.Duration
	// RetryWait is the pause after a failed attempt to reach Consul; default 5 s.
	RetryWait time.Duration
	Log       *slog.Logger
}

// Run campaigns for the lock and leads while holding it.
func (l *ConsulLock) Run(ctx context.Context, lead func(ctx context.Context)) error {
	ttl := l.SessionTTL
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	wait := l.RetryWait
	if wait <= 0 {
		wait = 5 * time.Second
	}
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lock, err := l.Client.LockOpts(&consul.LockOptions{Key: l.Key, SessionName: "spotmax controller", SessionTTL: ttl.String(),
		LockTryOnce: false, MonitorRetries: 3, MonitorRetryTime: time.Second})
	if err != nil {
		return fmt.Errorf("preparing Consul lock %s: %w", l.Key, err)
	}
	for ctx.Err() == nil {
		lost, err := lock.Lock(ctx.Done())
		if err != nil {
			log.Warn("cannot reach Consul to campaign for leadership; retrying", "key", l.Key, "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		if lost == nil {
			break // ctx ended while waiting
		}
		log.Info("leading: holding the Consul lock", "key", l.Key)
		leadCtx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lost:
				log.Warn("lost the Consul lock: stopping", "key", l.Key)
				cancel()
			case <-leadCtx.Done():
			}
		}()
		lead(leadCtx)
		cancel()
		if err := lock.Unlock(); err != nil && !errors.Is(err, consul.ErrLockNotHeld) {
			log.Warn("releasing the Consul lock", "key", l.Key, "error", err)
		}
	}
	return nil
}
