package sim

import (
	"context"
	"fmt"
	"github.com/spotmax/spotmax/pkg/sim/awsproto"
	"github.com/spotmax/spotmax/pkg/sim/cloudwatch"
	"github.com/spotmax/spotmax/pkg/sim/eventbridge"
	"github.com/spotmax/spotmax/pkg/sim/logs"
	"github.com/spotmax/spotmax/pkg/sim/sqs"
	"math/rand"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Latencies are the simulated durations of state transitions.
type Latencies struct {
	Pending time.Duration // pending → running
	// Start is pending → running of a stopped instance started again (StartInstances, a
	// warmed instance leaving its warm pool); 0 means Pending.
	Start        time.Duration
	ShuttingDown time.Duration // shutting-down → terminated
	Stopping     time.Duration // stopping → stopped
	Attach       time.Duration // attaching → attached (volume in-use)
	Detach       time.Duration // detaching → detached (volume available)
	CreateVolume time.Duration // creating → available
	DeleteVolume time.Duration // deleting → deleted
	// SnapshotBase + SnapshotPerGiB × the volume's size is how long a snapshot stays pending
	// (ec2_snapshots.go: the first snapshot copies all of a volume's data).
	SnapshotBase, SnapshotPerGiB time.Duration
	// InterruptionNotice is the time between a spot interruption notice and the stop or
	// termination; AWS gives two minutes.
	InterruptionNotice time.Duration
	// ASGCheck is how often Auto Scaling groups replace lost members and launch to desired.
	ASGCheck time.Duration
}

// AWSLatencies are latencies close to what AWS shows.
func AWSLatencies() Latencies {
	return Latencies{
		Pending:            40 * time.Second,
		Start:              12 * time.Second,
		ShuttingDown:       30 * time.Second,
		Stopping:           30 * time.Second,
		Attach:             5 * time.Second,
		Detach:             10 * time.Second,
		CreateVolume:       5 * time.Second,
		DeleteVolume:       5 * time.Second,
		SnapshotBase:       15 * time.Second,
		SnapshotPerGiB:     5 * time.Second,
		InterruptionNotice: 2 * time.Minute,
		ASGCheck:           10 * time.Second,
	}
}

// FastLatencies are the latencies tests use by default: every transition takes a short but
// non-zero time, so clients must wait for states the way they do on AWS.
func FastLatencies() Latencies {
	return Latencies{
		Pending:            2 * time.Second,
		ShuttingDown:       time.Second,
		Stopping:           time.Second,
		Attach:             time.Second,
		Detach:             time.Second,
		CreateVolume:       time.Second,
		DeleteVolume:       time.Second,
		SnapshotBase:       2 * time.Second,
		SnapshotPerGiB:     100 * time.Millisecond,
		InterruptionNotice: 2 * time.Minute,
		ASGCheck:           5 * time.Second,
	}
}

// Options configure a simulated region.
type Options struct {
	// Region is the region name; default us-east-1.
	Region string
	// AccountID is the owner of every resource; default 123456789012.
	AccountID string
	// TimeScale makes simulated time run faster than real time; default 1.
	TimeScale float64
	// Start is the simulated time at start; default the real time.
	Start time.Time
	// Latencies of state transitions; the zero value means FastLatencies.
	Latencies *Latencies
	// Seed makes ids, throttling and other random choices reproducible; 0 means 1.
	Seed int64
	// IMDS starts an IMDS endpoint on a loopback port for every instance.
	IMDS bool
	// LoopbackPrivateIPs hands out instance private IPs from 127.0.0.0/8 instead of the subnet's
	// range, so that a real program bound to such an address can play the instance's agent.
	LoopbackPrivateIPs bool
	// NoDefaultVPC starts without the default VPC and its subnets (a scenario supplies them).
	NoDefaultVPC bool
	// Behaviors switch AWS's harder behaviours (eventual consistency, capacity errors as server
	// errors, lifecycle hooks, ...); nil means AWSBehaviors: the simulator is as hard as AWS unless
	// a test asks for the kind world (KindBehaviors) and says why.
	Behaviors *Behaviors
}

// Region is the state of one simulated region. All methods are safe for concurrent use.
type Region struct {
	mu    sync.Mutex
	opts  Options
	lat   Latencies
	beh   Behaviors
	clock *Clock
	sched *scheduler
	rng   *rand.Rand
	idSeq uint64

	azs       []AZ
	vpcs      map[string]*VPC
	subnets   map[string]*Subnet
	templates map[string]*LaunchTemplate // by id
	instances map[string]*Instance
	volumes   map[string]*Volume
	asgs      map[string]*ASG
	capacity  map[PoolKey]int // live-instance limit per pool; absent = unlimited
	nextLoop  int

	faults  faults
	calls   map[string]int
	callsBy map[string]map[string]bool // access key id → service:Action
	// hooks run after an instance changes state, with the lock held (IMDS, ASG bookkeeping).
	stateHooks []func(*Instance)

	mux *awsproto.Mux // routes API requests to the services
	// The services in packages of their own (pkg/sim/<service>), each owning its state.
	logs        *logs.Service
	cloudwatch  *cloudwatch.Service
	sqs         *sqs.Service
	eventbridge *eventbridge.Service
	// svc is the state of this package's services and features by key (ec2State, asgState, the
	// IMDS extras, ...), owned by their files.
	svc map[string]any
	// closers stop endpoints that the region opened (IMDS listeners) when the server closes.
	closers []func()
}

// New returns a region with three availability zones and, unless opts.NoDefaultVPC, a default VPC
// with a default subnet in each zone, like a fresh account.
func New(opts Options) *Region {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now().UTC().Truncate(time.Second)
	}
	lat := FastLatencies()
	if opts.Latencies != nil {
		lat = *opts.Latencies
	}
	beh := AWSBehaviors()
	if opts.Behaviors != nil {
		beh = *opts.Behaviors
	}
	r := &Region{
		opts:      opts,
		lat:       lat,
		beh:       beh,
		clock:     NewClock(opts.Start, opts.TimeScale),
		sched:     newScheduler(),
		rng:       rand.New(rand.NewSource(opts.Seed)),
		vpcs:      map[string]*VPC{},
		subnets:   map[string]*Subnet{},
		templates: map[string]*LaunchTemplate{},
		instances: map[string]*Instance{},
		volumes:   map[string]*Volume{},
		asgs:      map[string]*ASG{},
		capacity:  map[PoolKey]int{},
		calls:     map[string]int{},
		callsBy:   map[string]map[string]bool{},
		svc:       map[string]any{},
		mux:       &awsproto.Mux{},
	}
	for i, suffix := range []string{"a", "b", "c"} {
		r.azs = append(r.azs, AZ{Name: opts.Region + suffix, ID: fmt.Sprintf("%s-az%d", shortRegion(opts.Region), i+1)})
	}
	if !opts.NoDefaultVPC {
		vpc := &VPC{ID: r.newID("vpc"), CIDR: "172.31.0.0/16", IsDefault: true}
		r.vpcs[vpc.ID] = vpc
		for i, az := range r.azs {
			sn := &Subnet{ID: r.newID("subnet"), VPCID: vpc.ID, AZ: az.Name, CIDR: fmt.Sprintf("172.31.%d.0/20", i*16),
				DefaultForAZ: true, MapPublicIP: true, Tags: Tags{}, AvailableIPCount: 4091}
			r.subnets[sn.ID] = sn
		}
	}
	r.setupServices()
	for _, fn := range regionSetups {
		fn(r)
	}
	return r
}

func shortRegion(region string) string {
	// us-east-1 → use1, eu-west-2 → euw2
	out := []byte{}
	parts := []string{}
	cur := ""
	for _, c := range region {
		if c == '-' {
			parts = append(parts, cur)
			cur = ""
			continue
		}
		cur += string(c)
	}
	parts = append(parts, cur)
	for i, p := range parts {
		if p == "" {
			continue
		}
		if i == 0 {
			out = append(out, p...)
		} else if i == len(parts)-1 {
			out = append(out, p...)
		} else {
			out = append(out, p[0])
		}
	}
	return string(out)
}

// Name returns the region name.
func (r *Region) Name() string { return r.opts.Region }

// AccountID returns the account that owns every resource.
func (r *Region) AccountID() string { return r.opts.AccountID }

// Clock returns the region's clock.
func (r *Region) Clock() *Clock { return r.clock }

// Latencies returns the region's state-transition latencies.
func (r *Region) Latencies() Latencies {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lat
}

// SetLatencies changes the state-transition latencies for transitions that start from now on.
func (r *Region) SetLatencies(l Latencies) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = l
}

// Run processes scheduled state changes until ctx ends. Start runs it for a server; a test that
// uses the Region without a server can run it itself or call Step.
func (r *Region) Run(ctx context.Context) {
	for {
		r.mu.Lock()
		now := r.clock.Now()
		r.sched.runDue(now)
		next, ok := r.sched.next()
		r.mu.Unlock()
		wait := time.Hour
		if ok {
			wait = r.clock.Real(next.Sub(r.clock.Now()))
			if wait < 0 {
				wait = 0
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.sched.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Step runs every state change that is due now.
func (r *Region) Step() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sched.runDue(r.clock.Now())
}

// Advance jumps simulated time forward by d and runs what became due.
func (r *Region) Advance(d time.Duration) {
	r.clock.Advance(d)
	r.Step()
}

// Do runs fn with the region locked after running due state changes, for tests and the control
// API that need a consistent view or change of the state.
func (r *Region) Do(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sched.runDue(r.clock.Now())
	fn()
}

// after schedules fn to run d of simulated time from now, with the lock held. A zero d runs at
// the next step, never inside the current call, so callers always see the intermediate state.
func (r *Region) after(d time.Duration, fn func()) {
	r.sched.at(r.clock.Now().Add(d), fn)
}

// now returns the simulated time.
func (r *Region) now() time.Time { return r.clock.Now() }

// newID returns a fresh resource id with an AWS-like shape: prefix-17 hex digits.
func (r *Region) newID(prefix string) string {
	r.idSeq++
	return fmt.Sprintf("%s-%017x", prefix, uint64(r.rng.Int63())&0xfffffffff000|r.idSeq&0xfff)
}

// newRequestID returns a request id in the UUID shape AWS uses.
func (r *Region) newRequestID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := make([]byte, 16)
	r.rng.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// AZs returns the region's availability zones.
func (r *Region) AZs() []AZ {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]AZ(nil), r.azs...)
}

// SetAZs replaces the availability zones (before anything else is created).
func (r *Region) SetAZs(names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.azs = nil
	for i, n := range names {
		r.azs = append(r.azs, AZ{Name: n, ID: fmt.Sprintf("%s-az%d", shortRegion(r.opts.Region), i+1)})
	}
}

func (r *Region) hasAZ(name string) bool {
	for _, az := range r.azs {
		if az.Name == name {
			return true
		}
	}
	return false
}

// SetCapacity limits the number of live instances in a pool; a negative n removes the limit.
// Launches beyond the limit fail with InsufficientInstanceCapacity.
func (r *Region) SetCapacity(k PoolKey, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n < 0 {
		delete(r.capacity, k)
		return
	}
	r.capacity[k] = n
}

// Capacity returns the pool limits that are set.
func (r *Region) Capacity() map[PoolKey]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[PoolKey]int, len(r.capacity))
	for k, v := range r.capacity {
		out[k] = v
	}
	return out
}

// poolFree reports whether one more instance fits in the pool.
func (r *Region) poolFree(k PoolKey, extra int) bool {
	limit, ok := r.capacity[k]
	if !ok {
		return true
	}
	used := 0
	for _, in := range r.instances {
		if in.Live() && in.Type == k.InstanceType && in.AZ == k.AZ && in.Market == k.Market {
			used++
		}
	}
	return used+extra < limit
}

// onStateChange registers a hook that runs with the lock held after an instance changes state.
func (r *Region) onStateChange(fn func(*Instance)) {
	r.stateHooks = append(r.stateHooks, fn)
}

func (r *Region) setState(in *Instance, state string) {
	if in.State == state {
		return
	}
	in.State = state
	if state != StateRunning && state != StatePending {
		in.StateTransition = fmt.Sprintf("User initiated (%s)", r.now().UTC().Format("2006-01-02 15:04:05 MST"))
	}
	for _, h := range r.stateHooks {
		h(in)
	}
}

// Instance returns a copy of an instance's state.
func (r *Region) Instance(id string) (Instance, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in, ok := r.instances[id]
	if !ok {
		return Instance{}, false
	}
	return cloneInstance(in), true
}

// Instances returns copies of every instance, ordered by launch time and id.
func (r *Region) Instances() []Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Instance, 0, len(r.instances))
	for _, in := range r.instances {
		out = append(out, cloneInstance(in))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LaunchTime.Equal(out[j].LaunchTime) {
			return out[i].LaunchTime.Before(out[j].LaunchTime)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func cloneInstance(in *Instance) Instance {
	c := *in
	c.Tags = in.Tags.Clone()
	c.SecurityGroupIDs = append([]string(nil), in.SecurityGroupIDs...)
	c.BlockDevices = nil
	for _, bd := range in.BlockDevices {
		b := *bd
		c.BlockDevices = append(c.BlockDevices, &b)
	}
	if in.Interruption != nil {
		i := *in.Interruption
		c.Interruption = &i
	}
	if in.LaunchTemplate != nil {
		l := *in.LaunchTemplate
		c.LaunchTemplate = &l
	}
	return c
}

// Volume returns a copy of a volume's state.
func (r *Region) Volume(id string) (Volume, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.volumes[id]
	if !ok {
		return Volume{}, false
	}
	return cloneVolume(v), true
}

// Volumes returns copies of every volume, ordered by id.
func (r *Region) Volumes() []Volume {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Volume, 0, len(r.volumes))
	for _, v := range r.volumes {
		out = append(out, cloneVolume(v))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func cloneVolume(v *Volume) Volume {
	c := *v
	c.Tags = v.Tags.Clone()
	if v.Attachment != nil {
		a := *v.Attachment
		c.Attachment = &a
	}
	return c
}

// Group returns a copy of an Auto Scaling group's state.
func (r *Region) Group(name string) (ASG, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.asgs[name]
	if !ok {
		return ASG{}, false
	}
	c := *g
	c.Members = nil
	for _, m := range g.Members {
		mm := *m
		c.Members = append(c.Members, &mm)
	}
	c.Tags = append([]ASGTag(nil), g.Tags...)
	c.Subnets = append([]string(nil), g.Subnets...)
	c.Activities = nil
	for _, a := range g.Activities {
		aa := *a
		c.Activities = append(c.Activities, &aa)
	}
	return c, true
}

// allocIP returns a private IP for an instance in a subnet.
func (r *Region) allocIP(sn *Subnet) string {
	if r.opts.LoopbackPrivateIPs {
		r.nextLoop++
		n := r.nextLoop + 1 // 127.0.0.2 onwards; 127.0.0.1 stays the host's
		return fmt.Sprintf("127.%d.%d.%d", (n>>16)&0xff, (n>>8)&0xff, n&0xff)
	}
	p, err := netip.ParsePrefix(sn.CIDR)
	if err != nil {
		return "10.0.0.10"
	}
	sn.nextHost++
	a := p.Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n += uint32(sn.nextHost) + 3 // AWS reserves the first four addresses
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}).String()
}

func parseInt64(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
