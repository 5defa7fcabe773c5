package sim

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Clock is the simulated region's time: real time scaled by a factor, plus any jumps made with
// Advance. With a scale of 60, a simulated minute passes in one real second.
type Clock struct {
	mu       sync.Mutex
	scale    float64
	realBase time.Time
	simBase  time.Time
}

// NewClock returns a clock that starts at start and runs scale times faster than real time.
// A scale of 0 or less means 1.
func NewClock(start time.Time, scale float64) *Clock {
	if scale <= 0 {
		scale = 1
	}
	return &Clock{scale: scale, realBase: time.Now(), simBase: start}
}

// Now returns the current simulated time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *Clock) nowLocked() time.Time {
	elapsed := time.Since(c.realBase)
	return c.simBase.Add(time.Duration(float64(elapsed) * c.scale))
}

// Scale returns how many simulated seconds pass per real second.
func (c *Clock) Scale() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scale
}

// Advance jumps simulated time forward by d.
func (c *Clock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.simBase = c.simBase.Add(d)
}

// Real converts a simulated duration into the real duration it takes on this clock.
func (c *Clock) Real(d time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Duration(float64(d) / c.scale)
}

// event is one scheduled state change.
type event struct {
	at  time.Time
	seq uint64
	fn  func()
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *eventHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	*h = old[:n-1]
	return e
}

// scheduler runs functions at simulated times. It is not safe for concurrent use: the Region
// calls it with its lock held.
type scheduler struct {
	events eventHeap
	seq    uint64
	wake   chan struct{}
}

func newScheduler() *scheduler {
	return &scheduler{wake: make(chan struct{}, 1)}
}

func (s *scheduler) at(t time.Time, fn func()) {
	s.seq++
	heap.Push(&s.events, &event{at: t, seq: s.seq, fn: fn})
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// runDue runs every event due at or before now, in time order, including events that the
// functions themselves schedule for times not later than now.
func (s *scheduler) runDue(now time.Time) {
	for len(s.events) > 0 && !s.events[0].at.After(now) {
		e := heap.Pop(&s.events).(*event)
		e.fn()
	}
}

// next returns the time of the next event.
func (s *scheduler) next() (time.Time, bool) {
	if len(s.events) == 0 {
		return time.Time{}, false
	}
	return s.events[0].at, true
}

// Sleep waits d of simulated time (d/scale of real time) or until ctx ends, so that code taking a
// Now/Sleep clock runs on the simulator's time.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(c.Real(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
