package imds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Source is one thing a Watcher polls. Check returns the notice the source shows now, or nil
// when it shows none; it bounds the time its requests take itself.
type Source struct {
	Name  string
	Every time.Duration
	Check func(ctx context.Context) (*Notice, error)
	// Path is the document below /latest/meta-data/ that Check reads first, if it reads one: the
	// Watcher prefetches the paths of the sources due on the same tick together.
	Path string
}

// Default poll intervals. IMDS is a local link with sub-millisecond answers and no rate limit
// that these come near; aws-node-termination-handler polls every 2 s, AWS suggests 5 s.
const (
	DefaultNoticeInterval = 180 * time.Millisecond
	DefaultTagInterval    = 2 * time.Second
)

// SpotSource watches spot/instance-action.
func (c *Client) SpotSource(every time.Duration) Source {
	return Source{Name: "spot/instance-action", Path: "spot/instance-action", Every: every, Check: func(ctx context.Context) (*Notice, error) {
		doc, err := c.Get(ctx, "spot/instance-action")
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		action, at, err := ParseInstanceAction([]byte(doc))
		if err != nil {
			return nil, err
		}
		return &Notice{Kind: KindSpotInterruption, Action: action, Time: at}, nil
	}}
}

// RebalanceSource watches events/recommendations/rebalance.
func (c *Client) RebalanceSource(every time.Duration) Source {
	return Source{Name: "events/recommendations/rebalance", Path: "events/recommendations/rebalance", Every: every, Check: func(ctx context.Context) (*Notice, error) {
		doc, err := c.Get(ctx, "events/recommendations/rebalance")
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		at, err := ParseRebalance([]byte(doc))
		if err != nil {
			return nil, err
		}
		return &Notice{Kind: KindRebalance, Action: string(KindRebalance), Time: at}, nil
	}}
}

// LifecycleSource watches autoscaling/target-lifecycle-state for Terminated. An instance that
// is in no group has no such document, which is not an error.
func (c *Client) LifecycleSource(every time.Duration) Source {
	return Source{Name: "autoscaling/target-lifecycle-state", Path: "autoscaling/target-lifecycle-state", Every: every, Check: func(ctx context.Context) (*Notice, error) {
		doc, err := c.Get(ctx, "autoscaling/target-lifecycle-state")
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		state, terminating, err := ParseLifecycleState([]byte(doc))
		if err != nil || !terminating {
			return nil, err
		}
		return &Notice{Kind: KindASGTermination, Action: state}, nil
	}}
}

// TagSource turns the presence of an instance tag, read from IMDS, into a notice of kind; the
// tag's value is the notice's action.
func (c *Client) TagSource(key string, kind Kind, every time.Duration) Source {
	return Source{Name: "tags/instance/" + key, Path: tagsPath + key, Every: every, Check: func(ctx context.Context) (*Notice, error) {
		v, err := c.Get(ctx, tagsPath+key)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return &Notice{Kind: kind, Action: v}, nil
	}}
}

// Watcher polls its sources, each on its own schedule, and reports every new notice once.
type Watcher struct {
	Sources []Source
	Log     *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// ErrorEvery is how often a source that keeps failing is logged again (default 30 s).
	ErrorEvery time.Duration
	// Prefetch, when set, is given the Paths of the sources due on the same tick (two or more)
	// before they are polled, and done after (Client.Prefetch).
	Prefetch func(ctx context.Context, paths []string) (done func())
}

// Run polls until ctx ends and sends each new notice on out (a notice whose Key changed since
// the source last showed one). All sources are polled from one goroutine on one timer: the tick
// of the fastest source, at absolute times (start + n × its interval, so the period does not
// drift with the time a poll takes), and every other source on every k-th tick, k its interval
// divided by the tick's, rounded (2 s on a 180 ms tick: every 11th, 1.98 s). An idle agent thus
// wakes up exactly as often as its fastest source asks, which is most of its CPU
// (docs/benchmarks.md, issue 16). A failing source is logged (once, then every ErrorEvery),
// backs off up to ten times its interval (at most 5 s) and keeps being polled: IMDS being down
// for a while is survived.
func (w *Watcher) Run(ctx context.Context, out chan<- Notice) error {
	if len(w.Sources) == 0 {
		return errors.New("watching instance metadata: no sources")
	}
	tick := time.Duration(0)
	for _, s := range w.Sources {
		if s.Every <= 0 || s.Check == nil {
			return fmt.Errorf("watching %s: no interval or check", s.Name)
		}
		if tick == 0 || s.Every < tick {
			tick = s.Every
		}
	}
	states := make([]*pollState, len(w.Sources))
	for i, s := range w.Sources {
		states[i] = &pollState{src: s, tick: tick, every: ticksOf(s.Every, tick)}
		states[i].delay = states[i].every
	}
	tk, err := newTicker(ctx, tick)
	if err != nil {
		return fmt.Errorf("watching instance metadata: %w", err)
	}
	var paths []string
	for n := int64(0); ; {
		paths = paths[:0]
		for _, st := range states {
			if st.due <= n && st.src.Path != "" {
				paths = append(paths, st.src.Path)
			}
		}
		done := func() {}
		if len(paths) > 1 && w.Prefetch != nil {
			done = w.Prefetch(ctx, paths)
		}
		for _, st := range states {
			if st.due <= n {
				if !w.poll(ctx, st, out) {
					done()
					return ctx.Err()
				}
				st.due = n + st.delay
			}
		}
		done()
		// Ticks a poll overran (or a suspended machine slept through) are skipped rather than
		// polled back to back.
		ended, err := tk.wait(ctx)
		if err != nil {
			return err
		}
		n += ended
	}
}

// ticksOf is d in ticks, rounded, at least one.
func ticksOf(d, tick time.Duration) int64 {
	return max(1, int64((d+tick/2)/tick))
}

// pollState is the progress of one source.
type pollState struct {
	src      Source
	last     string    // key of the notice last shown
	failing  time.Time // start of the current run of failures
	lastLog  time.Time
	failures int
	tick     time.Duration
	every    int64 // the source's interval, in ticks
	delay    int64 // the current interval in ticks: every, or longer while failing
	due      int64 // the tick it is next polled at
}

func (w *Watcher) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Watcher) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}

// poll checks one source once; false when ctx ended.
func (w *Watcher) poll(ctx context.Context, st *pollState, out chan<- Notice) bool {
	errEvery := w.ErrorEvery
	if errEvery <= 0 {
		errEvery = 30 * time.Second
	}
	s := st.src
	// No timeout context here: its timer, made and stopped at every poll, would wake the idle
	// agent by itself. Each Check bounds its own requests (Client.Get by requestTimeout).
	n, err := s.Check(ctx)
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		st.failures++
		if st.failures == 1 {
			st.failing = w.now()
		}
		if st.failures == 1 || w.now().Sub(st.lastLog) >= errEvery {
			w.log().Warn("polling instance metadata failed", "source", s.Name, "failures", st.failures,
				"since", st.failing.Format(time.RFC3339), "error", err)
			st.lastLog = w.now()
		}
		st.delay = min(st.delay*2, max(st.every, min(10*st.every, ticksOf(5*time.Second, st.tick))))
		return true
	}
	if st.failures > 0 {
		w.log().Info("polling instance metadata recovered", "source", s.Name, "failures", st.failures,
			"down_for", w.now().Sub(st.failing).Round(time.Millisecond).String())
	}
	st.failures, st.delay = 0, st.every
	if n == nil {
		st.last = ""
		return true
	}
	n.Seen = w.now()
	if k := n.Key(); k != st.last {
		st.last = k
		select {
		case out <- *n:
		case <-ctx.Done():
			return false
		}
	}
	return true
}
