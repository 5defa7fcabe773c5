package leader

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// KubeLease elects the leader with a Kubernetes Lease (coordination.k8s.io/v1) through
// client-go's leaderelection, for users who run spotmax next to a cluster rather than Consul.
// A leader that cannot renew the Lease within RenewDeadline stops acting; on shutdown it finishes
// the step in flight, then releases the Lease so that the next leader starts at once instead of
// waiting LeaseDuration.
type KubeLease struct {
	Client kubernetes.Interface
	// Namespace and Name locate the Lease, e.g. default/spotmax-us-east-1.
	Namespace, Name string
	// Identity names this candidate in the Lease's holderIdentity; default hostname_pid.
	Identity string
	// LeaseDuration is how long followers wait after the last renewal before taking over
	// (default 15 s); RenewDeadline how long the leader keeps retrying a renewal before it
	// stops leading (default 10 s); RetryPeriod the pause between attempts (default 2 s).
	// client-go requires LeaseDuration > RenewDeadline > 1.2 × RetryPeriod.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       *slog.Logger
}

// Run campaigns for the Lease and leads while holding it, campaigning again after a term ends,
// until ctx ends. lead is never called twice at once.
func (l *KubeLease) Run(ctx context.Context, lead func(ctx context.Context)) error {
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := l.config()
	if err != nil {
		return err
	}
	log = log.With("lease", l.Namespace+"/"+l.Name, "identity", cfg.Lock.Identity())
	for ctx.Err() == nil {
		l.term(ctx, cfg, log, lead)
		// After a term (or a failed campaign) pause before campaigning again, so that a lead
		// that returns at once does not spin.
		select {
		case <-ctx.Done():
		case <-time.After(cfg.RetryPeriod):
		}
	}
	return nil
}

// config checks the fields and fills in the defaults.
func (l *KubeLease) config() (leaderelection.LeaderElectionConfig, error) {
	var zero leaderelection.LeaderElectionConfig
	if l.Client == nil {
		return zero, fmt.Errorf("electing a leader with Lease %s/%s: no Kubernetes client", l.Namespace, l.Name)
	}
	if l.Namespace == "" || l.Name == "" {
		return zero, fmt.Errorf("electing a leader with a Kubernetes Lease: namespace %q and name %q must both be set", l.Namespace, l.Name)
	}
	id := l.Identity
	if id == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "spotmax"
		}
		id = fmt.Sprintf("%s_%d", host, os.Getpid())
	}
	cfg := leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name},
			Client:     l.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		},
		LeaseDuration:   orDefault(l.LeaseDuration, 15*time.Second),
		RenewDeadline:   orDefault(l.RenewDeadline, 10*time.Second),
		RetryPeriod:     orDefault(l.RetryPeriod, 2*time.Second),
		ReleaseOnCancel: true,
		Name:            l.Namespace + "/" + l.Name,
	}
	// NewLeaderElector validates the durations; check them once here with a clear message.
	cfg.Callbacks = leaderelection.LeaderCallbacks{OnStartedLeading: func(context.Context) {}, OnStoppedLeading: func() {}}
	if _, err := leaderelection.NewLeaderElector(cfg); err != nil {
		return zero, fmt.Errorf("electing a leader with Lease %s/%s (lease duration %s, renew deadline %s, retry period %s): %w",
			l.Namespace, l.Name, cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod, err)
	}
	return cfg, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// term campaigns once and, when elected, leads until the term ends: leadership lost, lead
// returned, or ctx ended and lead has finished. It returns once lead has returned and the Lease
// has been released.
//
// The elector runs on a context of its own, not ctx: when ctx ends, the leader keeps renewing
// the Lease while lead finishes its step in flight, and releases it only then. Releasing at
// once (client-go's ReleaseOnCancel on ctx) would let a follower act while we still do.
func (l *KubeLease) term(ctx context.Context, cfg leaderelection.LeaderElectionConfig, log *slog.Logger, lead func(context.Context)) {
	elCtx, stopElector := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), logr.FromSlogHandler(log.Handler())))
	defer stopElector()

	var (
		mu       sync.Mutex
		stopping bool          // no new lead may start
		leadDone chan struct{} // set when lead starts, closed when it returns
	)
	cfg.Callbacks = leaderelection.LeaderCallbacks{
		OnStartedLeading: func(termCtx context.Context) {
			mu.Lock()
			if stopping {
				mu.Unlock()
				return
			}
			done := make(chan struct{})
			leadDone = done
			mu.Unlock()
			defer close(done)
			// lead's context ends with ctx (shutdown) or with the term (Lease lost).
			leadCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			stop := context.AfterFunc(termCtx, func() {
				log.Warn("lost the Kubernetes Lease: stopping")
				cancel()
			})
			log.Info("leading: holding the Kubernetes Lease")
			lead(leadCtx)
			stop()
			// Whatever ended lead, end the term: release the Lease if still held.
			stopElector()
		},
		OnStoppedLeading: func() {},
		OnNewLeader: func(identity string) {
			if identity != cfg.Lock.Identity() {
				log.Info("following: another controller holds the Kubernetes Lease", "leader", identity)
			}
		},
	}
	// When ctx ends while campaigning, stop at once; while leading, lead's own context ends
	// and OnStartedLeading stops the elector after lead has returned.
	stopWatch := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if leadDone == nil {
			stopping = true
			stopElector()
		}
	})
	defer stopWatch()

	le, err := leaderelection.NewLeaderElector(cfg)
	if err != nil { // checked in config; only a programming error gets here
		log.Error("cannot campaign for the Kubernetes Lease", "error", err)
		return
	}
	le.Run(elCtx)

	// le.Run returns without waiting for OnStartedLeading: wait for lead, and make sure no
	// lead starts late.
	mu.Lock()
	stopping = true
	done := leadDone
	mu.Unlock()
	if done != nil {
		<-done
	}
}
