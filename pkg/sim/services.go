package sim

import "time"

// serviceRegion is what the service packages (pkg/sim/sqs, cloudwatch, logs, eventbridge) see of
// the region: its one lock, which also guards their state so that a region event and its
// delivery to EventBridge and SQS happen in one step, as the scheduler runs them; the due state
// changes; the simulated time; and its names. Each package declares the part it needs.
type serviceRegion struct{ r *Region }

func (h serviceRegion) Lock()   { h.r.mu.Lock() }
func (h serviceRegion) Unlock() { h.r.mu.Unlock() }

// RunDue runs the state changes that are due (lock held), as every API call does first.
func (h serviceRegion) RunDue() { h.r.sched.runDue(h.r.clock.Now()) }

// Now returns the simulated time.
func (h serviceRegion) Now() time.Time { return h.r.clock.Now() }

// After runs fn d of simulated time from now, with the lock held.
func (h serviceRegion) After(d time.Duration, fn func()) { h.r.after(d, fn) }

// Rand fills b from the region's seeded source (lock held), so ids are reproducible.
func (h serviceRegion) Rand(b []byte) { h.r.rng.Read(b) }

// Name returns the region's name (us-east-1).
func (h serviceRegion) Name() string { return h.r.opts.Region }

// AccountID returns the account that owns every resource.
func (h serviceRegion) AccountID() string { return h.r.opts.AccountID }
