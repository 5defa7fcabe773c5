package controller

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/leader"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/source"
	"github.com/spotmax/spotmax/pkg/source/reconcile"
)

// Source produces events until ctx ends. Sources never act.
type Source interface {
	Run(ctx context.Context, out chan<- source.Event) error
}

// Recorder receives metrics events and gauges; *metrics.Publisher satisfies it.
type Recorder interface {
	Record(ctx context.Context, e metrics.Event)
	Gauge(ctx context.Context, group string, c metrics.Counts)
}

// Controller keeps the spotmax groups of a region on spot.
type Controller struct {
	Lister *inventory.Lister
	// Inventory lists the groups at each reconcile, incrementally (inventory.Tracker); default a
	// Tracker over Lister with its default full resync.
	Inventory *inventory.Tracker
	Workflow  *replace.Workflow
	// Sources run beside the controller's own reconcile source (package source/reconcile), e.g.
	// the SQS source.
	Sources []Source
	// Interval between reconciles; default 30 s.
	Interval time.Duration
	// MaxParallel bounds replacements in the region; default 10. Proactive replacements are also
	// bounded per group by spotmax:max_num_of_terminated_one_time; interruptions are not (their
	// instances stop anyway).
	MaxParallel int
	// ShutdownGrace is how long a step in flight may go on after Run's context ends; default 60 s.
	ShutdownGrace time.Duration
	// RetryAfter is how long a failed proactive replacement (or resume) waits before it is tried again;
	// default 5 minutes.
	RetryAfter time.Duration
	Clock      replace.Clock
	Metrics    Recorder
	Log        *slog.Logger

	mu        sync.Mutex
	inflight  map[string]bool      // instance → being replaced
	perGroup  map[string]int       // group → proactive replacements running
	lastStart map[string]time.Time // group → start of the last proactive replacement
	failedAt  map[string]time.Time // instance → last failed proactive replacement
	seen      *dedup
	// unconfirmed are interruption warnings EC2 has not confirmed yet, re-checked at each
	// reconcile until their deadline.
	unconfirmed map[string]source.Event
	groups      map[string]*inventory.Group // from the last reconcile
	instGroup   map[string]string           // instance → group, from the last reconcile
	wg          sync.WaitGroup
	sem         chan struct{}
	stats       Stats
	quiesced    bool
}

// Stats count what the controller did since it started.
type Stats struct {
	Reconciles   int
	Events       int
	Duplicates   int
	Replacements int
	Succeeded    int
	Failed       int
	// AlreadyDone counts resumes that found the journal already finished by the run that drove
	// it (the reconcile's snapshot was read just before): nothing was done for them.
	AlreadyDone int
}

// Stats returns the counters.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Controller) init() {
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.MaxParallel <= 0 {
		c.MaxParallel = 10
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = time.Minute
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = 5 * time.Minute
	}
	if c.Clock == nil {
		c.Clock = replace.RealClock{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = metrics.Nop{}
	}
	c.inflight = map[string]bool{}
	c.perGroup = map[string]int{}
	c.lastStart = map[string]time.Time{}
	c.failedAt = map[string]time.Time{}
	c.seen = newDedup(4096)
	c.unconfirmed = map[string]source.Event{}
	c.sem = make(chan struct{}, c.MaxParallel)
	if c.Workflow.Metrics == nil {
		c.Workflow.Metrics = c.Metrics
	}
}

// Run runs the reconcile source (every Interval) and Sources, and acts on their events until ctx
// ends. On return every replacement in flight has finished its current step or stopped between
// steps with its journal intact, so the next controller resumes it.
func (c *Controller) Run(ctx context.Context) error {
	c.init()
	// Replacements stop between steps when ctx ends, and the step in flight gets ShutdownGrace to
	// finish before its calls are cancelled too.
	stop := make(chan struct{})
	c.Workflow.Stop = stop
	wctx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		<-ctx.Done()
		close(stop)
		t := time.NewTimer(c.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelWork()
		case <-wctx.Done():
		}
	}()
	events := make(chan source.Event, 1024)
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	// The reconcile source hands each snapshot to this loop and waits for it: the upkeep (apply)
	// and the handling of events take turns in one goroutine, and the next read starts after the
	// upkeep of the last one (its Forget calls included).
	snapshots := make(chan snapshotReq)
	reconciler := c.reconciler(func(ctx context.Context, snap reconcile.Snapshot) []source.Event {
		r := snapshotReq{snap: snap, reoffer: make(chan []source.Event, 1)}
		select {
		case snapshots <- r:
		case <-ctx.Done():
			return nil
		}
		select {
		case evs := <-r.reoffer:
			return evs
		case <-ctx.Done():
			return nil
		}
	})
	var srcWG sync.WaitGroup
	for _, s := range append([]Source{reconciler}, c.Sources...) {
		srcWG.Add(1)
		go func() {
			defer srcWG.Done()
			if err := s.Run(srcCtx, events); err != nil && !errors.Is(err, context.Canceled) {
				c.Log.Error("event source stopped", "error", err)
			}
		}()
	}
	// Events wait until the first snapshot has been applied: before it no group is known, and an
	// event would be dropped as one for an unmanaged instance.
	var in <-chan source.Event
	for {
		select {
		case <-ctx.Done():
			stopSources()
			srcWG.Wait()
			c.wg.Wait()
			return nil
		case e := <-in:
			c.handle(wctx, e)
		case r := <-snapshots:
			r.reoffer <- c.apply(ctx, r.snap)
			in = events
		}
	}
}

// snapshotReq is a reconcile snapshot handed to Run's loop, and where the loop answers with the
// events apply re-offers.
type snapshotReq struct {
	snap    reconcile.Snapshot
	reoffer chan []source.Event
}

// Quiesce stops the controller from starting replacements; the ones running go on. Together
// with Idle it lets a caller end at a point where no replacement is in flight.
func (c *Controller) Quiesce() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quiesced = true
}

// Idle reports whether no replacement is running.
func (c *Controller) Idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.inflight) == 0
}

// Wait waits for the replacements started so far.
func (c *Controller) Wait() { c.wg.Wait() }

// Handle applies the policies to one event, as Run does with every event: it starts a
// replacement when one is due. Call Wait to wait for the replacements started.
func (c *Controller) Handle(ctx context.Context, e source.Event) {
	if c.inflight == nil {
		c.init()
	}
	c.handle(ctx, e)
}

// handle applies the policies to one event and starts a replacement when one is due.
func (c *Controller) handle(ctx context.Context, e source.Event) {
	e.EnsureID()
	c.mu.Lock()
	c.stats.Events++
	if c.seen.has(e.ID) {
		c.stats.Duplicates++
		c.mu.Unlock()
		return
	}
	if e.Group == "" {
		e.Group = c.instGroup[e.Instance]
	}
	g := c.groups[e.Group]
	c.mu.Unlock()

	log := c.Log.With("event", e.Kind, "instance", e.Instance, "group", e.Group, "source", e.Source)
	if g == nil || !g.Managed() {
		log.Debug("event for an instance outside the managed groups; ignored")
		c.markSeen(e.ID)
		return
	}
	if e.Kind == source.KindInterruption && e.Source != source.Agent {
		// An interruption warning from a queue may be duplicated, stale or mistaken: acting on it
		// detaches a healthy instance that holds the group's data. Only the agent's relay comes
		// from the instance's own IMDS notice; anything else is confirmed with EC2 first.
		ok, why, err := c.Workflow.ConfirmInterruption(ctx, e.Instance)
		if err != nil && !awsapi.IsNotFound(err) {
			log.Warn("cannot confirm the interruption warning yet", "error", err)
		}
		if !ok {
			c.mu.Lock()
			if _, known := c.unconfirmed[e.ID]; !known {
				log.Warn("interruption warning not confirmed by EC2: not acting on it until it is", "found", why)
			}
			c.unconfirmed[e.ID] = e
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		delete(c.unconfirmed, e.ID)
		c.mu.Unlock()
		log.Info("interruption confirmed", "by", why)
	}
	switch e.Kind {
	case source.KindInterruption, source.KindRebalance:
		// Notices are acted on once, whatever comes of it.
		name := metrics.InterruptionReceived
		if e.Kind == source.KindRebalance {
			name = metrics.RebalanceReceived
		}
		c.Metrics.Record(ctx, metrics.Event{Name: name, Group: e.Group, Instance: e.Instance, Time: e.Time})
		c.markSeen(e.ID)
	}
	var req replace.Request
	switch e.Kind {
	case source.KindInterruption:
		req = replace.Request{InstanceID: e.Instance, Reason: replace.ReasonInterruption, Deadline: e.Deadline}
	case source.KindRebalance:
		if !g.Config.HandleRebalanceEvent {
			log.Info("rebalance recommendation ignored: the group does not set spotmax:is_to_handle_rebalance_event")
			return
		}
		req = replace.Request{InstanceID: e.Instance, Reason: replace.ReasonRebalance}
	case source.KindLifetime:
		req = replace.Request{InstanceID: e.Instance, Reason: replace.ReasonLifetime}
	case source.KindRevert:
		req = replace.Request{InstanceID: e.Instance, Reason: replace.ReasonRevert}
	case source.KindResume:
		// The workflow takes the reason from the journal; the log says it (Detail: "reason,
		// after phase").
		req = replace.Request{InstanceID: e.Instance, ResumeOnly: true}
		log = log.With("resume", e.Detail)
	case source.KindLaunchFailure:
		if !g.Config.HandleScalingFailure {
			log.Info("launch failure ignored: the group sets spotmax:is_to_handle_scaling_failure=false", "detail", e.Detail)
			c.markSeen(e.ID)
			return
		}
		if c.startFill(ctx, g, log) {
			c.markSeen(e.ID)
		}
		return
	default:
		log.Debug("event needs no replacement")
		c.markSeen(e.ID)
		return
	}
	// A resume is not marked seen: the reconcile names the journal again at each interval until
	// it is gone, and a resume that failed (throttled, busy) is tried again after RetryAfter
	// rather than left half done until the controller restarts.
	if c.start(ctx, g, req, log) && e.Kind != source.KindResume {
		c.markSeen(e.ID)
	}
}

func (c *Controller) markSeen(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen.add(id)
}

// start runs a replacement in the pool unless the instance is already being replaced or the
// group's proactive budget is spent; it reports whether the event is dealt with (started, or
// already running). A deferred event comes again with the next reconcile.
func (c *Controller) start(ctx context.Context, g *inventory.Group, req replace.Request, log *slog.Logger) bool {
	// Reason.Proactive is the one rule; a resume (no reason: the journal has it) is not
	// counted against the group's proactive budget.
	proactive := req.Reason != "" && req.Reason.Proactive()
	now := c.Clock.Now()
	c.mu.Lock()
	if c.quiesced {
		c.mu.Unlock()
		return false
	}
	if c.inflight[req.InstanceID] {
		c.mu.Unlock()
		return req.Reason == replace.ReasonInterruption
	}
	if proactive || req.ResumeOnly {
		if at, ok := c.failedAt[req.InstanceID]; ok && now.Sub(at) < c.RetryAfter {
			c.mu.Unlock()
			return false
		}
	}
	if proactive {
		if c.perGroup[g.Name] >= max(g.Config.MaxTerminatedOneTime, 1) {
			c.mu.Unlock()
			return false
		}
		if last, ok := c.lastStart[g.Name]; ok && now.Sub(last) < g.Config.PreactionTerminationDelay {
			c.mu.Unlock()
			return false
		}
		c.perGroup[g.Name]++
		c.lastStart[g.Name] = now
	}
	c.inflight[req.InstanceID] = true
	c.stats.Replacements++
	c.mu.Unlock()
	c.spawn(req.InstanceID, func() {
		if proactive {
			c.perGroup[g.Name]--
		}
	}, func() {
		if req.Reason != "" {
			log.Info("replacing", "reason", req.Reason)
		} else {
			log.Info("replacing: resuming a journaled replacement")
		}
		// A stopping controller lets the step in flight finish; the journal keeps the rest.
		res, err := c.Workflow.Replace(ctx, g, req)
		c.mu.Lock()
		defer c.mu.Unlock()
		if errors.Is(err, replace.ErrNothingToResume) {
			// The snapshot that named the journal was read before the run driving it cleared it.
			c.stats.AlreadyDone++
			log.Debug("journal already finished; nothing to resume")
			return
		}
		if err != nil {
			c.stats.Failed++
			if proactive || req.ResumeOnly {
				c.failedAt[req.InstanceID] = c.Clock.Now()
			}
			log.Warn("replacement failed", "error", err)
			return
		}
		c.stats.Succeeded++
		delete(c.failedAt, req.InstanceID)
		log.Info("replaced", "new", res.New, "market", res.Market, "type", res.Type, "az", res.AZ, "volumes", strings.Join(res.Volumes, ","),
			"took", res.Finished.Sub(res.Started).Round(time.Second).String())
	})
	return true
}

// spawn runs work in the pool: it waits for a slot (or for the controller to stop), and when
// work returns it releases the slot and the in-flight key; release runs with c.mu held.
func (c *Controller) spawn(key string, release func(), work func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.inflight, key)
			if release != nil {
				release()
			}
			c.mu.Unlock()
		}()
		select {
		case c.sem <- struct{}{}:
		case <-c.Workflow.Stop:
			return
		}
		defer func() { <-c.sem }()
		work()
	}()
}

// startFill launches a stand-in for a member the group could not launch, one at a time per group.
func (c *Controller) startFill(ctx context.Context, g *inventory.Group, log *slog.Logger) bool {
	key := "fill/" + g.Name
	c.mu.Lock()
	if c.quiesced || c.inflight[key] {
		c.mu.Unlock()
		return c.inflight[key]
	}
	c.inflight[key] = true
	c.stats.Replacements++
	c.mu.Unlock()
	c.spawn(key, nil, func() {
		log.Info("the group could not launch: filling in with a stand-in")
		res, err := c.Workflow.Fill(ctx, g)
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case err != nil:
			c.stats.Failed++
			log.Warn("stand-in failed", "error", err)
		case res == nil:
			log.Info("the group is no longer short")
		default:
			c.stats.Succeeded++
			log.Info("stand-in joined", "new", res.New, "market", res.Market, "type", res.Type, "az", res.AZ)
		}
	})
	return true
}

// dedup remembers the last n event ids.
type dedup struct {
	n     int
	set   map[string]bool
	order []string
}

func newDedup(n int) *dedup { return &dedup{n: n, set: map[string]bool{}} }

func (d *dedup) has(id string) bool { return d.set[id] }

// add records id and reports whether it was new.
func (d *dedup) add(id string) bool {
	if d.set[id] {
		return false
	}
	d.set[id] = true
	d.order = append(d.order, id)
	if len(d.order) > d.n {
		delete(d.set, d.order[0])
		d.order = d.order[1:]
	}
	return true
}

// RunElected runs the controller only while it leads: each term of leadership is one Run,
// which stops gracefully (step in flight finished, journals kept) when leadership ends.
func (c *Controller) RunElected(ctx context.Context, e leader.Elector) error {
	return e.Run(ctx, func(ctx context.Context) {
		if err := c.Run(ctx); err != nil {
			c.Log.Error("controller stopped", "error", err)
		}
	})
}
