package leader

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/spotmax/spotmax/pkg/kube"
)

// KubeLease elects the leader with a Kubernetes Lease (coordination.k8s.io/v1), for users who
// run spotmax next to a cluster rather than Consul. It follows client-go's leader election
// protocol, so it interoperates with any other holder of the Lease: a candidate takes the Lease
// when it is free or when its holder has not renewed it for leaseDurationSeconds (measured on
// the candidate's own clock from when it saw the last change, so clock skew does not matter);
// every write carries the resourceVersion read, so of two candidates only one wins (409 for the
// other). A leader that cannot renew the Lease within RenewDeadline stops acting; on shutdown it
// finishes the step in flight, then releases the Lease so that the next leader starts at once
// instead of waiting LeaseDuration.
type KubeLease struct {
	Client *kube.Client
	// Namespace and Name locate the Lease, e.g. default/spotmax-us-east-1.
	Namespace, Name string
	// Identity names this candidate in the Lease's holderIdentity; default hostname_pid.
	Identity string
	// LeaseDuration is how long followers wait after the last renewal before taking over
	// (default 15 s); RenewDeadline how long the leader keeps retrying a renewal before it
	// stops leading (default 10 s); RetryPeriod the pause between attempts (default 2 s).
	// As in client-go, LeaseDuration > RenewDeadline > 1.2 × RetryPeriod.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       *slog.Logger
}

// jitter is client-go's factor: attempts come every RetryPeriod × [1, 1.2).
const jitter = 1.2

// leaseConfig is a KubeLease with its defaults filled in.
type leaseConfig struct {
	c                              *kube.Client
	ns, name, id                   string
	duration, renewDeadline, retry time.Duration
	log                            *slog.Logger
}

// Run campaigns for the Lease and leads while holding it, campaigning again after a term ends,
// until ctx ends. lead is never called twice at once.
func (l *KubeLease) Run(ctx context.Context, lead func(ctx context.Context)) error {
	cfg, err := l.config()
	if err != nil {
		return err
	}
	cfg.log.Debug("campaigning for the Kubernetes Lease")
	e := &elector{cfg: cfg}
	for ctx.Err() == nil {
		e.term(ctx, lead)
		// After a term (or a failed campaign) pause before campaigning again, so that a lead
		// that returns at once does not spin.
		_ = sleep(ctx, cfg.retry)
	}
	return nil
}

// config checks the fields and fills in the defaults.
func (l *KubeLease) config() (*leaseConfig, error) {
	if l.Client == nil {
		return nil, fmt.Errorf("electing a leader with Lease %s/%s: no Kubernetes client", l.Namespace, l.Name)
	}
	if l.Namespace == "" || l.Name == "" {
		return nil, fmt.Errorf("electing a leader with a Kubernetes Lease: namespace %q and name %q must both be set", l.Namespace, l.Name)
	}
	id := l.Identity
	if id == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "spotmax"
		}
		id = fmt.Sprintf("%s_%d", host, os.Getpid())
	}
	cfg := &leaseConfig{c: l.Client, ns: l.Namespace, name: l.Name, id: id,
		duration:      orDefault(l.LeaseDuration, 15*time.Second),
		renewDeadline: orDefault(l.RenewDeadline, 10*time.Second),
		retry:         orDefault(l.RetryPeriod, 2*time.Second),
		log:           l.Log}
	var problem string
	switch {
	case cfg.duration <= cfg.renewDeadline:
		problem = "the lease duration must be longer than the renew deadline"
	case float64(cfg.renewDeadline) <= jitter*float64(cfg.retry):
		problem = fmt.Sprintf("the renew deadline must be longer than %.1f × the retry period", jitter)
	}
	if problem != "" {
		return nil, fmt.Errorf("electing a leader with Lease %s/%s (lease duration %s, renew deadline %s, retry period %s): %s",
			l.Namespace, l.Name, cfg.duration, cfg.renewDeadline, cfg.retry, problem)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	cfg.log = cfg.log.With("lease", l.Namespace+"/"+l.Name, "identity", id)
	return cfg, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// elector holds what one candidate has seen of the Lease.
type elector struct {
	cfg *leaseConfig

	mu sync.Mutex
	// observed is the Lease as last read or written, observedAt when its holder or renewTime
	// last changed on our clock.
	observed   *kube.Lease
	observedAt time.Time
	// leader is the holder last logged.
	leader string
}

// term campaigns until elected (or ctx ends), then leads until the term ends: leadership lost,
// lead returned, or ctx ended and lead has finished. It returns once lead has returned and the
// Lease has been released.
//
// Renewals run on a context of their own, not ctx: when ctx ends, the leader keeps renewing the
// Lease while lead finishes its step in flight, and releases it only then. Releasing at once
// would let a follower act while we still do.
func (e *elector) term(ctx context.Context, lead func(context.Context)) {
	log := e.cfg.log
	for {
		if e.tryAcquireOrRenew(ctx) {
			break
		}
		if sleep(ctx, jittered(e.cfg.retry)) != nil {
			return
		}
	}
	log.Info("leading: holding the Kubernetes Lease")
	leadCtx, cancelLead := context.WithCancel(ctx)
	defer cancelLead()
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	lost := make(chan struct{})
	go func() {
		defer close(lost)
		for {
			if sleep(renewCtx, e.cfg.retry) != nil {
				return
			}
			if !e.renew(renewCtx) {
				if renewCtx.Err() == nil {
					log.Warn("lost the Kubernetes Lease: stopping")
					cancelLead()
				}
				return
			}
		}
	}()
	lead(leadCtx)
	stopRenew()
	<-lost
	e.release()
}

// renew retries a renewal every RetryPeriod until it succeeds, the Lease is found taken, or
// RenewDeadline passes.
func (e *elector) renew(ctx context.Context) bool {
	dctx, cancel := context.WithTimeout(ctx, e.cfg.renewDeadline)
	defer cancel()
	for {
		if e.tryAcquireOrRenew(dctx) {
			return true
		}
		if e.heldByOther() || sleep(dctx, e.cfg.retry) != nil {
			return false
		}
	}
}

// heldByOther reports whether the last observed Lease has another, unexpired holder.
func (e *elector) heldByOther() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := holder(e.observed)
	return h != "" && h != e.cfg.id && !e.expiredLocked()
}

func holder(l *kube.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// expiredLocked: the observed holder has not renewed for its leaseDurationSeconds on our clock.
func (e *elector) expiredLocked() bool {
	d := e.cfg.duration
	if s := e.observed.Spec.LeaseDurationSeconds; s != nil {
		d = time.Duration(*s) * time.Second
	}
	return time.Now().After(e.observedAt.Add(d))
}

// observe records a Lease read or written, restarting the expiry clock when its holder or
// renewal changed.
func (e *elector) observe(l *kube.Lease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	changed := e.observed == nil || holder(e.observed) != holder(l) || !sameTime(e.observed.Spec.RenewTime, l.Spec.RenewTime)
	e.observed = l
	if changed {
		e.observedAt = time.Now()
	}
	if h := holder(l); h != e.leader {
		e.leader = h
		if h != "" && h != e.cfg.id {
			e.cfg.log.Info("following: another controller holds the Kubernetes Lease", "leader", h)
		}
	}
}

func sameTime(a, b *kube.MicroTime) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b.Time)
}

// tryAcquireOrRenew reads the Lease and writes ourselves in as holder when it is free, expired
// or ours. A write that conflicts (409: someone wrote since our read) reads again at once and
// decides on what it finds, once; a create that races another candidate's does the same.
func (e *elector) tryAcquireOrRenew(ctx context.Context) bool {
	c, ns, name := e.cfg.c, e.cfg.ns, e.cfg.name
	for attempt := 0; attempt < 2; attempt++ {
		now := kube.MicroTime{Time: time.Now()}
		secs := int32(e.cfg.duration / time.Second)
		id := e.cfg.id
		cur, err := c.Lease(ctx, ns, name)
		switch {
		case kube.IsNotFound(err):
			zero := int32(0)
			created, err := c.CreateLease(ctx, &kube.Lease{ObjectMeta: kube.ObjectMeta{Namespace: ns, Name: name},
				Spec: kube.LeaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now, LeaseTransitions: &zero}})
			if kube.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				e.cfg.log.Warn("creating the Kubernetes Lease", "error", err)
				return false
			}
			e.observe(created)
			return true
		case err != nil:
			e.cfg.log.Warn("reading the Kubernetes Lease", "error", err)
			return false
		}
		e.observe(cur)
		e.mu.Lock()
		h := holder(cur)
		free := h == "" || h == id || e.expiredLocked()
		e.mu.Unlock()
		if !free {
			return false
		}
		next := *cur
		next.Spec.HolderIdentity, next.Spec.LeaseDurationSeconds, next.Spec.RenewTime = &id, &secs, &now
		if h != id {
			// Taking over: a new term.
			n := int32(1)
			if cur.Spec.LeaseTransitions != nil {
				n += *cur.Spec.LeaseTransitions
			}
			next.Spec.AcquireTime, next.Spec.LeaseTransitions = &now, &n
		}
		updated, err := c.UpdateLease(ctx, &next)
		if kube.IsConflict(err) {
			continue
		}
		if err != nil {
			e.cfg.log.Warn("writing the Kubernetes Lease", "error", err)
			return false
		}
		e.observe(updated)
		return true
	}
	return false
}

// release gives the Lease up if we still hold it: holder empty and a one-second duration, as
// client-go's ReleaseOnCancel writes it, so that the next candidate need not wait.
func (e *elector) release() {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.renewDeadline)
	defer cancel()
	for attempt := 0; attempt < 2; attempt++ {
		cur, err := e.cfg.c.Lease(ctx, e.cfg.ns, e.cfg.name)
		if err != nil {
			e.cfg.log.Warn("releasing the Kubernetes Lease", "error", err)
			return
		}
		if holder(cur) != e.cfg.id {
			return
		}
		empty, one, now := "", int32(1), kube.MicroTime{Time: time.Now()}
		next := *cur
		next.Spec.HolderIdentity, next.Spec.LeaseDurationSeconds, next.Spec.RenewTime = &empty, &one, &now
		_, err = e.cfg.c.UpdateLease(ctx, &next)
		if kube.IsConflict(err) {
			continue
		}
		if err != nil {
			e.cfg.log.Warn("releasing the Kubernetes Lease", "error", err)
		} else {
			e.cfg.log.Info("released the Kubernetes Lease")
		}
		return
	}
}

func jittered(d time.Duration) time.Duration {
	return d + time.Duration(rand.Float64()*(jitter-1)*float64(d))
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
